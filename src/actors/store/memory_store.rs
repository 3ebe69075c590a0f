//! MemoryStore actor: the cache contract in memory, for embedded mode.
//!
//! It keeps what Redis would (strings with a TTL, capped lists newest first, leases) and
//! delivers every published value to in-process subscribers whose pattern matches the
//! channel, so one process runs the whole pipeline with no Redis. Expired keys disappear on
//! read and in a sweep once a second, so memory stays bounded by the live key set.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient};
use bytes::Bytes;

use super::metrics::MemoryStoreFigures;
use crate::metrics::Registry;
use crate::store::{
    glob_match, Acquire, CacheWrite, Get, Members, Put, Read, Release, Snapshot, Store, StoreError,
    Stored, Write, WriteOp,
};

/// A value published on `channel` (the same bytes that were cached under that key).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Published {
    pub channel: Arc<str>,
    pub payload: Bytes,
    /// Listener receive time of the source event (epoch ms; 0 when unknown).
    pub received_at_ms: i64,
}

/// Deliver everything published on channels matching `pattern` (Redis glob) to `to`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub pattern: String,
    pub to: Recipient<Published>,
}

enum Value {
    Str(Bytes),
    List(VecDeque<Bytes>),
    Lease(String),
}

struct Entry {
    value: Value,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

pub struct MemoryStore {
    data: HashMap<String, Entry>,
    subscribers: Vec<(String, Recipient<Published>)>,
    figures: MemoryStoreFigures,
}

fn ttl_of(secs: u64) -> Option<Instant> {
    (secs > 0).then(|| Instant::now() + Duration::from_secs(secs))
}

impl MemoryStore {
    pub fn new(figures: MemoryStoreFigures) -> Self {
        MemoryStore {
            data: HashMap::new(),
            subscribers: Vec::new(),
            figures,
        }
    }

    /// Starts a store and returns the handle components use.
    pub fn start_store(registry: &Registry) -> (actix::Addr<MemoryStore>, Store) {
        let figures = MemoryStoreFigures::register(registry, &[]);
        let metrics = figures.actor.clone();
        let store = MemoryStore::new(figures);
        let addr = store.start();
        let handle = Store::of(&addr, metrics);
        (addr, handle)
    }

    fn apply(&mut self, w: CacheWrite) {
        self.figures.writes.inc();
        match w.op {
            WriteOp::Set { ttl_secs } => {
                self.data.insert(
                    w.key.clone(),
                    Entry {
                        value: Value::Str(w.value.clone()),
                        expires: ttl_of(ttl_secs),
                    },
                );
            }
            WriteOp::Push { cap, ttl_secs } | WriteOp::Replace { cap, ttl_secs, .. } => {
                let now = Instant::now();
                let entry = self.data.entry(w.key.clone()).or_insert(Entry {
                    value: Value::List(VecDeque::new()),
                    expires: None,
                });
                if !entry.live(now) || !matches!(entry.value, Value::List(_)) {
                    // Redis would answer WRONGTYPE for a string; the contract never mixes
                    // types on one key, so an expired or foreign value is just replaced.
                    entry.value = Value::List(VecDeque::new());
                    entry.expires = None;
                }
                if let Value::List(l) = &mut entry.value {
                    if let WriteOp::Replace { old, .. } = &w.op {
                        if let Some(i) = l.iter().position(|v| v == old) {
                            l.remove(i);
                        }
                    }
                    l.push_front(w.value.clone());
                    l.truncate(cap.max(1));
                }
                if ttl_secs > 0 {
                    entry.expires = ttl_of(ttl_secs);
                }
            }
        }
        if w.publish {
            self.publish(&w.key, &w.value, w.received_at_ms);
        }
        self.figures.keys.set(self.data.len() as i64);
    }

    fn publish(&mut self, key: &str, value: &Bytes, received_at_ms: i64) {
        let mut channel: Option<Arc<str>> = None;
        self.subscribers.retain(|(_, to)| to.connected());
        for (pattern, to) in &self.subscribers {
            if glob_match(pattern.as_bytes(), key.as_bytes()) {
                let channel = channel.get_or_insert_with(|| Arc::from(key));
                self.figures.publishes.inc();
                to.do_send(Published {
                    channel: channel.clone(),
                    payload: value.clone(),
                    received_at_ms,
                });
            }
        }
    }

    fn live(&mut self, key: &str) -> Option<&Entry> {
        let now = Instant::now();
        if self.data.get(key).is_some_and(|e| !e.live(now)) {
            self.data.remove(key);
        }
        self.data.get(key)
    }
}

impl Actor for MemoryStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            let now = Instant::now();
            act.data.retain(|_, e| e.live(now));
            act.figures.keys.set(act.data.len() as i64);
        });
    }
}

impl Handler<Write> for MemoryStore {
    type Result = ();

    fn handle(&mut self, msg: Write, _: &mut Context<Self>) {
        self.figures.actor.received();
        for w in msg.0 {
            self.apply(w);
        }
    }
}

impl Handler<Put> for MemoryStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: Put, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.handled();
        for w in msg.0 {
            self.apply(w);
        }
        Ok(())
    }
}

impl Handler<Get> for MemoryStore {
    type Result = Result<Vec<Option<Bytes>>, StoreError>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.handled();
        Ok(msg
            .0
            .iter()
            .map(|k| match self.live(k) {
                Some(Entry {
                    value: Value::Str(b),
                    ..
                }) => Some(b.clone()),
                _ => None,
            })
            .collect())
    }
}

impl Handler<Read> for MemoryStore {
    type Result = Result<Option<(Stored, Option<Duration>)>, StoreError>;

    fn handle(&mut self, msg: Read, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.handled();
        let now = Instant::now();
        Ok(self.live(&msg.key).and_then(|e| {
            let ttl = e.expires.map(|t| t.saturating_duration_since(now));
            let v = match &e.value {
                Value::Str(b) => Stored::Str(b.clone()),
                Value::List(l) => Stored::List(l.iter().take(msg.limit).cloned().collect()),
                Value::Lease(_) => return None,
            };
            Some((v, ttl))
        }))
    }
}

impl Handler<Snapshot> for MemoryStore {
    type Result = Result<Option<Stored>, StoreError>;

    /// The read and the marker happen in one handler, so the marker reaches subscribers
    /// after every value the read includes and before any later one.
    fn handle(&mut self, msg: Snapshot, ctx: &mut Context<Self>) -> Self::Result {
        let read = <Self as Handler<Read>>::handle(
            self,
            Read {
                key: msg.key,
                limit: msg.limit,
            },
            ctx,
        )?;
        self.publish(&msg.marker_channel, &msg.marker, 0);
        Ok(read.map(|(v, _)| v))
    }
}

impl Handler<Acquire> for MemoryStore {
    type Result = Result<bool, StoreError>;

    fn handle(&mut self, msg: Acquire, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.handled();
        let expires = Some(Instant::now() + msg.ttl);
        let free = match self.live(&msg.key) {
            None => true,
            Some(Entry {
                value: Value::Lease(h),
                ..
            }) => *h == msg.holder,
            Some(_) => false,
        };
        if free {
            self.data.insert(
                msg.key,
                Entry {
                    value: Value::Lease(msg.holder),
                    expires,
                },
            );
        }
        Ok(free)
    }
}

impl Handler<Release> for MemoryStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.handled();
        if matches!(self.live(&msg.key), Some(Entry { value: Value::Lease(h), .. }) if *h == msg.holder)
        {
            self.data.remove(&msg.key);
        }
        Ok(())
    }
}

impl Handler<Members> for MemoryStore {
    type Result = Result<Vec<String>, StoreError>;

    fn handle(&mut self, msg: Members, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.handled();
        // One lease-like entry per member, `key\0member`, expiring on its own.
        let prefix = format!("{}\0", msg.key);
        self.data.insert(
            format!("{prefix}{}", msg.member),
            Entry {
                value: Value::Lease(msg.member),
                expires: Some(Instant::now() + msg.ttl),
            },
        );
        let now = Instant::now();
        let mut live: Vec<String> = self
            .data
            .iter()
            .filter(|(k, e)| k.starts_with(&prefix) && e.live(now))
            .filter_map(|(_, e)| match &e.value {
                Value::Lease(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        live.sort();
        Ok(live)
    }
}

impl Handler<Subscribe> for MemoryStore {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.figures.actor.handled();
        self.subscribers.push((msg.pattern, msg.to));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Registry;

    struct Sink(std::sync::mpsc::Sender<Published>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Published> for Sink {
        type Result = ();
        fn handle(&mut self, m: Published, _: &mut Context<Self>) {
            let _ = self.0.send(m);
        }
    }

    #[actix::test]
    async fn strings_lists_leases_and_pubsub() {
        let reg = Registry::new();
        let (addr, store) = MemoryStore::start_store(&reg);
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Sink(tx).start();
        addr.send(Subscribe {
            pattern: "quote:*".into(),
            to: sink.recipient(),
        })
        .await
        .unwrap();
        let v = |s: &str| Bytes::from(s.to_string());
        store.write.do_send(Write(vec![
            CacheWrite::value("quote:AAPL".into(), v("1"), 10, 0),
            CacheWrite::value("other".into(), v("x"), 0, 0),
            CacheWrite::push("alerts".into(), v("a"), 2, 10, 0),
            CacheWrite::push("alerts".into(), v("b"), 2, 10, 0),
            CacheWrite::push("alerts".into(), v("c"), 2, 10, 0),
        ]));
        let got = store
            .get(vec!["quote:AAPL".into(), "nope".into()])
            .await
            .unwrap();
        assert_eq!(got, vec![Some(v("1")), None]);
        assert_eq!(
            store.read("alerts", 10).await.unwrap(),
            Some(Stored::List(vec![v("c"), v("b")])),
            "newest first, capped"
        );
        let replace = |value: &str, old: &str| CacheWrite {
            op: WriteOp::Replace {
                old: v(old),
                cap: 3,
                ttl_secs: 10,
            },
            ..CacheWrite::push("alerts".into(), v(value), 3, 10, 0)
        };
        store
            .write
            .do_send(Write(vec![replace("b2", "b"), replace("d", "gone")]));
        assert_eq!(
            store.read("alerts", 10).await.unwrap(),
            Some(Stored::List(vec![v("d"), v("b2"), v("c")])),
            "the old copy removed, the new one on top; a missing one removes nothing"
        );
        let p = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((&*p.channel, &p.payload[..]), ("quote:AAPL", &b"1"[..]));
        assert!(rx.try_recv().is_err(), "`other` and `alerts` do not match");

        let ttl = Duration::from_secs(5);
        assert!(store.acquire("l", "a", ttl).await.unwrap());
        assert!(!store.acquire("l", "b", ttl).await.unwrap());
        assert!(store.acquire("l", "a", ttl).await.unwrap(), "renewal");
        store.release("l", "b").await.unwrap();
        assert!(
            !store.acquire("l", "b", ttl).await.unwrap(),
            "not b's to release"
        );
        store.release("l", "a").await.unwrap();
        assert!(store.acquire("l", "b", ttl).await.unwrap());
    }
}
