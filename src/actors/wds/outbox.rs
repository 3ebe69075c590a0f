//! A session's bounded outbound buffer, shared by the hub (which fills it) and the session
//! actor (which drains it into its socket).
//!
//! Why not the session's mailbox: a WebSocket session actor only runs while the HTTP layer
//! polls its response stream, and the HTTP layer stops polling once the socket's write buffer
//! is full. A slow reader therefore freezes its session actor, and anything sent to its
//! mailbox would pile up without bound. The hub instead pushes here, under a short lock, and
//! sends one [`Wake`] when the buffer turns non-empty, so the hub never waits on a client and
//! memory per client is bounded:
//!
//! - a value topic (`scanners:*`, `quote:*`, `daily_range:*`) keeps only its newest frame:
//!   a newer one replaces the waiting one in place (counted as coalesced);
//! - other frames queue up to the limit; past it they are dropped (counted) and the time the
//!   buffer went over is noted;
//! - a buffer still over its limit after the grace period is closed with a reason; the
//!   session sends that reason in its close frame as soon as it runs again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::{Message, Recipient};
use bytestring::ByteString;

/// "Frames are waiting": sent to the session when its outbox turns non-empty or is closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// One outbound text frame.
#[derive(Clone)]
pub struct Frame {
    /// What a newer frame must share to replace this one; `None`: never replaced.
    pub slot: Option<Arc<str>>,
    pub text: ByteString,
}

/// What became of a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Replaced an older frame of the same value topic.
    Coalesced,
    /// The buffer is full.
    Dropped,
    /// The buffer stayed full past the grace period and is now closed.
    Evicted,
    /// Closed earlier; the frame was discarded.
    Closed,
}

struct Inner {
    queue: VecDeque<Option<Frame>>,
    /// Slot -> absolute position of its waiting frame (positions below `popped` are gone).
    slots: HashMap<Arc<str>, u64>,
    popped: u64,
    /// Frames waiting (the queue minus coalesced holes).
    len: usize,
    woken: bool,
    over_since: Option<Instant>,
    closed: Option<String>,
}

pub struct Outbox {
    inner: Mutex<Inner>,
    limit: usize,
    grace: Duration,
    wake: Recipient<Wake>,
}

impl Outbox {
    pub fn new(limit: usize, grace: Duration, wake: Recipient<Wake>) -> Arc<Self> {
        Arc::new(Outbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                slots: HashMap::new(),
                popped: 0,
                len: 0,
                woken: false,
                over_since: None,
                closed: None,
            }),
            limit: limit.max(1),
            grace,
            wake,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave it inconsistent in a way that matters
        // more than losing the session; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self, inner: &mut Inner) {
        if !inner.woken {
            inner.woken = true;
            self.wake.do_send(Wake);
        }
    }

    pub fn push(&self, frame: Frame) -> Pushed {
        let mut inner = self.lock();
        if inner.closed.is_some() {
            return Pushed::Closed;
        }
        if let Some(slot) = &frame.slot {
            if let Some(&pos) = inner.slots.get(slot) {
                let popped = inner.popped;
                if let Some(i) = pos.checked_sub(popped) {
                    if let Some(waiting) = inner.queue.get_mut(i as usize) {
                        *waiting = Some(frame);
                        return Pushed::Coalesced;
                    }
                }
            }
        }
        if inner.len >= self.limit {
            let now = Instant::now();
            let since = *inner.over_since.get_or_insert(now);
            if now.duration_since(since) >= self.grace {
                inner.closed = Some(format!(
                    "slow consumer: more than {} frames waiting for {} s",
                    self.limit,
                    self.grace.as_secs()
                ));
                inner.queue.clear();
                inner.slots.clear();
                inner.len = 0;
                self.wake(&mut inner);
                return Pushed::Evicted;
            }
            return Pushed::Dropped;
        }
        if let Some(slot) = &frame.slot {
            let pos = inner.popped + inner.queue.len() as u64;
            inner.slots.insert(slot.clone(), pos);
        }
        inner.queue.push_back(Some(frame));
        inner.len += 1;
        self.wake(&mut inner);
        Pushed::Queued
    }

    /// Up to `max` waiting frames, oldest first, and whether more wait. Draining re-arms the
    /// wake-up once the buffer is empty.
    pub fn drain(&self, max: usize) -> (Vec<ByteString>, bool) {
        let mut inner = self.lock();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(item) = inner.queue.pop_front() else {
                break;
            };
            inner.popped += 1;
            if let Some(f) = item {
                inner.len -= 1;
                out.push(f.text);
            }
        }
        if inner.queue.is_empty() {
            inner.slots.clear();
        }
        if inner.len < self.limit {
            inner.over_since = None;
        }
        let more = !inner.queue.is_empty();
        if !more {
            inner.woken = false;
        }
        (out, more)
    }

    /// Why the buffer was closed, if it was.
    pub fn closed(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    /// Closes the buffer (the session is going away); later pushes are discarded.
    pub fn close(&self, reason: &str) {
        let mut inner = self.lock();
        if inner.closed.is_none() {
            inner.closed = Some(reason.to_string());
        }
        inner.queue.clear();
        inner.slots.clear();
        inner.len = 0;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Actor, Context, Handler};

    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Wake> for Sink {
        type Result = ();
        fn handle(&mut self, _: Wake, _: &mut Context<Self>) {}
    }

    fn frame(slot: Option<&str>, text: &str) -> Frame {
        Frame {
            slot: slot.map(Arc::from),
            text: ByteString::from(text.to_string()),
        }
    }

    #[actix::test]
    async fn coalesces_values_bounds_the_rest_and_evicts_after_grace() {
        let sink = Sink.start().recipient();
        let o = Outbox::new(3, Duration::ZERO, sink.clone());
        assert_eq!(o.push(frame(Some("quote:A"), "a1")), Pushed::Queued);
        assert_eq!(o.push(frame(None, "alert1")), Pushed::Queued);
        assert_eq!(o.push(frame(Some("quote:A"), "a2")), Pushed::Coalesced);
        assert_eq!(o.len(), 2);
        let (got, more) = o.drain(10);
        assert_eq!(got, vec!["a2", "alert1"]);
        assert!(!more);
        // Draining forgot the slot: a new value queues again.
        assert_eq!(o.push(frame(Some("quote:A"), "a3")), Pushed::Queued);
        assert_eq!(o.drain(10).0, vec!["a3"]);

        let slow = Outbox::new(2, Duration::from_secs(3600), sink.clone());
        for i in 0..2 {
            assert_eq!(slow.push(frame(None, &i.to_string())), Pushed::Queued);
        }
        assert_eq!(slow.push(frame(None, "x")), Pushed::Dropped);
        // A value topic already waiting still takes the newest value when full.
        let full = Outbox::new(1, Duration::from_secs(3600), sink.clone());
        full.push(frame(Some("s"), "1"));
        assert_eq!(full.push(frame(Some("s"), "2")), Pushed::Coalesced);

        let evicting = Outbox::new(1, Duration::ZERO, sink);
        evicting.push(frame(None, "1"));
        assert_eq!(evicting.push(frame(None, "2")), Pushed::Evicted);
        assert!(evicting.closed().unwrap().starts_with("slow consumer"));
        assert_eq!(evicting.push(frame(None, "3")), Pushed::Closed);
    }
}
