//! QueueConsumer actor: consumes the listener's shard queues for the shards this node holds
//! and hands each message's events to the shard's processor.
//!
//! - One channel per (queue type, shard), `basic.qos(prefetch)`; a message is acked once its
//!   processor has handled it (its results are with the cache writer). Up to `prefetch`
//!   messages per queue are in the processor's mailbox at once, in order.
//! - A message that is not an envelope (bad JSON, missing fields, unknown asset class) is
//!   rejected without requeue, counted and logged: it would fail again on any node.
//! - The set of shards comes from the ShardManager ([`Assign`]); newly assigned shards are
//!   rehydrated before their first message (the processor's mailbox is FIFO).
//! - Beside the shard queues it counts the messages that expired unconsumed
//!   ([`super::expired`]), for as long as the connection lives.
//! - On broker loss every consumption stops, the connection is rebuilt with backoff, and the
//!   assigned shards are consumed (and rehydrated) again.
//! - One queue's consumption can end while the connection lives (its channel closed by a
//!   channel error, the queue deleted, the consumer cancelled by the broker). Only that queue
//!   is consumed again, on a new channel, with a growing delay if it keeps failing; it is
//!   re-declared first, so a deleted queue comes back. The other queues never pause.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture};
use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, StreamExt};
use lapin::options::{BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

use super::expired::count_expired;
use super::metrics::ConsumerFigures;
use super::shard::{Rehydrate, ShardHandle};
use crate::backoff::Backoff;
use crate::queue::envelope;
use crate::queue::topology::{declare_queue, declare_topology, queue_name};
use crate::queue::{EventBatch, QueueKind};
use crate::recipient::CountedRecipient;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub url: String,
    pub queue_prefix: String,
    pub shards: u16,
    pub message_ttl_ms: u32,
    /// Unacked messages per queue.
    pub prefetch: u16,
}

/// Consume exactly these shards from now on.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Assign(pub BTreeSet<u16>);

/// A queue's consumption loop ended (broker loss, channel error, cancel); `id` tells a loop
/// that was replaced or released apart from the live one.
#[derive(Message)]
#[rtype(result = "()")]
struct Ended {
    id: u64,
    shard: u16,
    kind: QueueKind,
    error: Option<String>,
}

/// One consumed queue.
struct QueueSlot {
    /// Identifies its consumption loop (unique for the consumer's life).
    id: u64,
    /// None while the channel is being opened.
    channel: Option<Channel>,
}

pub struct QueueConsumer {
    cfg: ConsumerConfig,
    /// Every shard's processor, in shard order.
    shards: Vec<ShardHandle>,
    assigned: BTreeSet<u16>,
    conn: Option<std::sync::Arc<Connection>>,
    connecting: bool,
    /// The queues being consumed, by (shard, type).
    queues: HashMap<(u16, QueueKind), QueueSlot>,
    next_id: u64,
    /// The delays of queues that keep ending while the connection lives.
    restarts: HashMap<(u16, QueueKind), Backoff>,
    backoff: Backoff,
    figures: ConsumerFigures,
}

impl QueueConsumer {
    pub fn new(cfg: ConsumerConfig, shards: Vec<ShardHandle>, figures: ConsumerFigures) -> Self {
        QueueConsumer {
            cfg,
            shards,
            assigned: BTreeSet::new(),
            conn: None,
            connecting: false,
            queues: HashMap::new(),
            next_id: 0,
            restarts: HashMap::new(),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(10)),
            figures,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.conn.is_some() || self.connecting {
            return;
        }
        self.connecting = true;
        let cfg = self.cfg.clone();
        let fut = async move {
            let conn = Connection::connect(&cfg.url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            declare_topology(&ch, &cfg.queue_prefix, cfg.shards, cfg.message_ttl_ms).await?;
            let _ = ch.close(200, "declared".into()).await;
            Ok::<_, lapin::Error>(conn)
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.connecting = false;
            match res {
                Ok(conn) => {
                    log::info!("consumer connected to RabbitMQ");
                    act.figures.connects.inc();
                    act.figures.connected.set(1);
                    act.backoff.reset();
                    let conn = std::sync::Arc::new(conn);
                    let (prefix, figures) = (act.cfg.queue_prefix.clone(), act.figures.clone());
                    actix::spawn(count_expired_until_closed(conn.clone(), prefix, figures));
                    act.conn = Some(conn);
                    for shard in act.assigned.clone() {
                        act.start_shard(shard, ctx);
                    }
                }
                Err(e) => {
                    let delay = act.backoff.next_delay();
                    act.figures.connect_failed(&e.to_string(), delay);
                    ctx.run_later(delay, |act, ctx| act.connect(ctx));
                }
            }
        }));
    }

    fn start_shard(&mut self, shard: u16, ctx: &mut Context<Self>) {
        if self.conn.is_none() {
            return;
        }
        if let Some(p) = self.shards.get(usize::from(shard)) {
            p.rehydrate.do_send(Rehydrate);
        }
        for kind in QueueKind::ALL {
            self.start_queue(shard, kind, ctx);
        }
    }

    fn start_queue(&mut self, shard: u16, kind: QueueKind, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let Some(processor) = self
            .shards
            .get(usize::from(shard))
            .map(|s| s.batches.clone())
        else {
            log::warn!("no processor for shard {shard}");
            return;
        };
        self.next_id += 1;
        let id = self.next_id;
        self.queues
            .insert((shard, kind), QueueSlot { id, channel: None });
        let (cfg, me, figures) = (self.cfg.clone(), ctx.address(), self.figures.clone());
        let fut = async move {
            let ch = conn.create_channel().await?;
            ch.basic_qos(cfg.prefetch, BasicQosOptions::default())
                .await?;
            let queue = queue_name(&cfg.queue_prefix, kind, shard);
            // Idempotent; brings back a queue deleted under a running consumer.
            declare_queue(&ch, &cfg.queue_prefix, kind, shard, cfg.message_ttl_ms).await?;
            let consumer = ch
                .basic_consume(
                    queue.clone().into(),
                    format!("tickwire-{queue}").into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let end = Ended {
                id,
                shard,
                kind,
                error: None,
            };
            actix::spawn(consume(consumer, cfg.prefetch, processor, figures, me, end));
            Ok::<_, lapin::Error>(ch)
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let live = act.queues.get(&(shard, kind)).is_some_and(|q| q.id == id);
            match res {
                Ok(ch) if live => {
                    act.restarts.remove(&(shard, kind));
                    if let Some(q) = act.queues.get_mut(&(shard, kind)) {
                        q.channel = Some(ch);
                    }
                    act.count_queues();
                }
                // Released (or the connection replaced) while starting: undo.
                Ok(ch) => close(ch, "released"),
                Err(e) if live => {
                    log::warn!("could not consume {}.{shard}: {e}", kind.name());
                    act.queue_ended(shard, kind, ctx);
                }
                Err(_) => {}
            }
        }));
    }

    /// The live consumption of one queue ended: consume it again, or everything again if the
    /// connection went with it.
    fn queue_ended(&mut self, shard: u16, kind: QueueKind, ctx: &mut Context<Self>) {
        self.queues.remove(&(shard, kind));
        self.count_queues();
        if !self.conn.as_ref().is_some_and(|c| c.status().connected()) {
            self.link_lost(ctx);
            return;
        }
        let delay = self
            .restarts
            .entry((shard, kind))
            .or_insert_with(|| Backoff::new(Duration::from_millis(200), Duration::from_secs(25)))
            .next_delay();
        self.figures.queue_restarted(kind, shard, delay);
        ctx.run_later(delay, move |act, ctx| {
            if act.assigned.contains(&shard) && !act.queues.contains_key(&(shard, kind)) {
                act.start_queue(shard, kind, ctx);
            }
        });
    }

    fn count_queues(&self) {
        let n = self.queues.values().filter(|q| q.channel.is_some()).count();
        self.figures.queues.set(n as i64);
    }

    fn stop_shard(&mut self, shard: u16) {
        for kind in QueueKind::ALL {
            // Closing the channel returns its unacked messages to the queue for the next owner.
            if let Some(ch) = self.queues.remove(&(shard, kind)).and_then(|q| q.channel) {
                close(ch, "shard released");
            }
            self.restarts.remove(&(shard, kind));
        }
        self.count_queues();
    }

    fn link_lost(&mut self, ctx: &mut Context<Self>) {
        if self.conn.take().is_none() {
            return;
        }
        // The channels went with the connection; their loops' ends no longer match a slot.
        self.queues.clear();
        self.restarts.clear();
        self.figures.queues.set(0);
        self.figures.connected.set(0);
        let delay = self.backoff.next_delay();
        log::warn!("lost RabbitMQ; reconnecting in {delay:?}");
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }
}

/// Counts expiries while the connection lives; a channel error alone (the queue deleted
/// under it) restarts the count after a pause, a lost connection ends it (the reconnect
/// starts a new one).
async fn count_expired_until_closed(
    conn: std::sync::Arc<Connection>,
    prefix: String,
    figures: ConsumerFigures,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let res = count_expired(conn.clone(), prefix.clone(), figures.clone()).await;
        if !conn.status().connected() {
            return;
        }
        let delay = backoff.next_delay();
        figures.expired_count_ended(res.err(), delay);
        tokio::time::sleep(delay).await;
    }
}

fn close(ch: Channel, why: &'static str) {
    actix::spawn(async move {
        let _ = ch.close(200, why.into()).await;
    });
}

/// One queue's loop: decode, hand over in order (up to `prefetch` at once), ack when handled;
/// reports `end` (with the error, if any) when the stream stops.
async fn consume(
    mut consumer: lapin::Consumer,
    prefetch: u16,
    processor: CountedRecipient<EventBatch>,
    figures: ConsumerFigures,
    me: Addr<QueueConsumer>,
    mut end: Ended,
) {
    let (kind, shard) = (end.kind, end.shard);
    let mut in_flight = FuturesOrdered::new();
    let mut error = None;
    loop {
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            d = consumer.next(), if in_flight.len() < usize::from(prefetch.max(1)) => {
                let d = match d {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => {
                        error = Some(e.to_string());
                        break;
                    }
                    None => break,
                };
                match envelope::decode_batch(kind, shard, Bytes::from(d.data)) {
                    Ok(batch) => {
                        let send = processor.send(batch);
                        let (acker, figures) = (d.acker, figures.clone());
                        in_flight.push_back(async move {
                            if send.await.is_ok() {
                                figures.messages.inc();
                                let _ = acker.ack(Default::default()).await;
                            }
                        });
                    }
                    Err(e) => {
                        figures.rejected(kind, shard, &e);
                        let _ = d.acker.reject(BasicRejectOptions { requeue: false }).await;
                    }
                }
            }
        }
    }
    while in_flight.next().await.is_some() {}
    end.error = error;
    me.do_send(end);
}

impl Actor for QueueConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
    }
}

impl Handler<Assign> for QueueConsumer {
    type Result = ();

    fn handle(&mut self, msg: Assign, ctx: &mut Context<Self>) {
        self.figures.actor.handled();
        let removed: Vec<u16> = self.assigned.difference(&msg.0).copied().collect();
        let added: Vec<u16> = msg.0.difference(&self.assigned).copied().collect();
        self.assigned = msg.0;
        for s in removed {
            log::info!("releasing shard {s}");
            self.stop_shard(s);
        }
        for s in added {
            log::info!("taking shard {s}");
            self.start_shard(s, ctx);
        }
    }
}

impl Handler<Ended> for QueueConsumer {
    type Result = ();

    fn handle(&mut self, msg: Ended, ctx: &mut Context<Self>) {
        self.figures.actor.handled();
        let key = (msg.shard, msg.kind);
        if self.queues.get(&key).map(|q| q.id) != Some(msg.id) {
            return; // released or replaced: its end was asked for
        }
        match &msg.error {
            Some(e) => log::warn!("consuming {}.{} failed: {e}", msg.kind.name(), msg.shard),
            None => log::warn!(
                "consuming {}.{} ended (channel closed or consumer cancelled)",
                msg.kind.name(),
                msg.shard
            ),
        }
        self.queue_ended(msg.shard, msg.kind, ctx);
    }
}
