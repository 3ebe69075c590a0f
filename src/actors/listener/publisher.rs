//! QueuePublisher actor (lapin): puts event batches on RabbitMQ without ever holding up the
//! listener.
//!
//! - The [topology](crate::queue::topology) is declared at connect. Messages are
//!   non-persistent.
//! - One AMQP message per (frame, queue, shard): the [envelope](crate::queue::envelope).
//! - Batches wait in a bounded buffer. When it is full (RabbitMQ slow or down) the OLDEST batch
//!   is dropped and counted per queue: fresh data beats old data, and the socket is never
//!   blocked. Up to `max_in_flight` publishes run at once; none is awaited on its own.
//! - When the broker goes away the publisher reconnects by itself with backoff, while the
//!   listener keeps reading Massive.
//! - Losses are counted either way: with confirms every unconfirmed publish counts as failed;
//!   without them (the default: measured faster, docs/benchmarks.md) the client cannot know
//!   what the broker got, so at a link loss the messages handed over since the link was last
//!   seen up (the last half second to second) are counted as possibly lost.

use std::collections::VecDeque;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::metrics::PublisherFigures;
use crate::backoff::Backoff;
use crate::queue::envelope;
use crate::queue::topology::{declare_topology, queue_name};
use crate::queue::EventBatch;

/// Publisher settings.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub url: String,
    pub message_ttl_ms: u32,
    pub shards: u16,
    /// Prepended to every queue name (tests use a unique one).
    pub queue_prefix: String,
    /// Batches held while RabbitMQ is slow or down; past it the oldest is dropped.
    pub buffer_batches: usize,
    pub max_in_flight: usize,
    /// Wait for broker confirms (slower; a failed confirm is counted as lost).
    pub confirms: bool,
    /// Under backpressure (batches already waiting), merge waiting batches of the same
    /// (queue, shard) into one message of up to this many events; 0 or 1 never merges.
    pub coalesce_max_events: usize,
}

impl PublisherConfig {
    /// Settings with the listener node's defaults (10,000 batches buffered, 64 in flight, no
    /// confirms, merging up to 500 events).
    pub fn new(url: &str, queue_prefix: &str, shards: u16, message_ttl_ms: u32) -> Self {
        PublisherConfig {
            url: url.to_string(),
            message_ttl_ms,
            shards,
            queue_prefix: queue_prefix.to_string(),
            buffer_batches: 10_000,
            max_in_flight: 64,
            confirms: false,
            coalesce_max_events: 500,
        }
    }
}

async fn open(cfg: PublisherConfig) -> Result<(Connection, Channel), lapin::Error> {
    let conn = Connection::connect(&cfg.url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    if cfg.confirms {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
    }
    declare_topology(&channel, &cfg.queue_prefix, cfg.shards, cfg.message_ttl_ms).await?;
    Ok((conn, channel))
}

/// An open broker connection and its publishing channel.
struct Open {
    conn: Connection,
    channel: Channel,
}

enum Link {
    Down,
    Connecting,
    Up(Box<Open>),
}

pub struct QueuePublisher {
    cfg: PublisherConfig,
    link: Link,
    buffer: VecDeque<EventBatch>,
    in_flight: usize,
    /// Without confirms: messages handed to the client in the current and the previous
    /// half-second tick, so that a loss always covers at least the last half second.
    unconfirmed_recent: [u64; 2],
    backoff: Backoff,
    figures: PublisherFigures,
}

impl QueuePublisher {
    pub fn new(cfg: PublisherConfig, figures: PublisherFigures) -> Self {
        QueuePublisher {
            cfg,
            link: Link::Down,
            buffer: VecDeque::new(),
            in_flight: 0,
            unconfirmed_recent: [0; 2],
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            figures,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.link, Link::Down) {
            return;
        }
        self.link = Link::Connecting;
        let cfg = self.cfg.clone();
        ctx.spawn(open(cfg).into_actor(self).map(|res, act, ctx| match res {
            Ok((conn, channel)) => {
                log::info!(
                    "connected to RabbitMQ; {} shard queues per type declared",
                    act.cfg.shards
                );
                act.figures.connects.inc();
                act.figures.connected.set(1);
                act.backoff.reset();
                act.link = Link::Up(Box::new(Open { conn, channel }));
                act.pump(ctx);
            }
            Err(e) => {
                let delay = act.backoff.next_delay();
                act.figures.connect_failed(&e.to_string(), delay);
                act.link = Link::Down;
                ctx.run_later(delay, |act, ctx| act.connect(ctx));
            }
        }));
    }

    fn mark_down(&mut self, ctx: &mut Context<Self>) {
        if let Link::Up(_) = self.link {
            log::warn!(
                "lost the RabbitMQ connection; buffering (oldest dropped past {} batches)",
                self.cfg.buffer_batches
            );
            self.link = Link::Down;
            self.figures.connected.set(0);
            if !self.cfg.confirms {
                let [prev, this] = std::mem::take(&mut self.unconfirmed_recent);
                self.figures.link_lost_unconfirmed(prev + this);
            }
            let delay = self.backoff.next_delay();
            ctx.run_later(delay, |act, ctx| act.connect(ctx));
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let Link::Up(open) = &self.link else {
            return;
        };
        let channel = open.channel.clone();
        while self.in_flight < self.cfg.max_in_flight {
            let Some(mut batch) = self.buffer.pop_front() else {
                break;
            };
            self.coalesce(&mut batch);
            let body = envelope::encode(batch.received_at_ms, batch.market.path(), &batch.events);
            let name = queue_name(&self.cfg.queue_prefix, batch.queue, batch.shard);
            let channel = channel.clone();
            let confirms = self.cfg.confirms;
            let queue = batch.queue;
            let n_events = batch.events.len() as u64;
            self.in_flight += 1;
            let props = BasicProperties::default()
                .with_content_type(envelope::CONTENT_TYPE.into())
                .with_delivery_mode(1)
                .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
            let fut = async move {
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        name.into(),
                        BasicPublishOptions::default(),
                        &body,
                        props,
                    )
                    .await?;
                if confirms {
                    confirm.await?;
                }
                Ok::<(), lapin::Error>(())
            };
            ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
                act.in_flight -= 1;
                match res {
                    Ok(()) => {
                        act.figures.published(queue, n_events);
                        if !act.cfg.confirms {
                            act.unconfirmed_recent[1] += 1;
                        }
                    }
                    Err(e) => {
                        act.figures.publish_failed(queue, &e.to_string());
                        act.mark_down(ctx);
                    }
                }
                act.pump(ctx);
            }));
        }
        self.figures.buffered.set(self.buffer.len() as i64);
        self.figures.in_flight.set(self.in_flight as i64);
    }

    /// Folds batches for the same (queue, shard, market) that are waiting in the buffer into
    /// `batch`, oldest first, keeping per-symbol order (they are consecutive for that shard).
    /// Only batches already queued are merged, so a publisher that keeps up still sends one
    /// message per (frame, queue, shard); under backpressure this keeps events that the full
    /// buffer would otherwise drop. `received_at` stays the oldest frame's.
    fn coalesce(&mut self, batch: &mut EventBatch) {
        let max = self.cfg.coalesce_max_events;
        if max <= 1 || self.buffer.is_empty() {
            return;
        }
        let mut i = 0;
        // Bounded scan: merging is an optimisation, not worth an O(buffer) walk per message.
        while i < self.buffer.len().min(256) && batch.events.len() < max {
            let b = &self.buffer[i];
            if b.queue == batch.queue
                && b.shard == batch.shard
                && b.market == batch.market
                && batch.events.len() + b.events.len() <= max
            {
                if let Some(b) = self.buffer.remove(i) {
                    batch.events.extend(b.events);
                    batch.received_at_ms = batch.received_at_ms.min(b.received_at_ms);
                    self.figures.coalesced.inc();
                }
            } else {
                i += 1;
            }
        }
    }

    fn check_link(&mut self, ctx: &mut Context<Self>) {
        if let Link::Up(open) = &self.link {
            if open.conn.status().connected() {
                self.unconfirmed_recent = [self.unconfirmed_recent[1], 0];
            } else {
                self.mark_down(ctx);
            }
        }
        self.figures.buffered.set(self.buffer.len() as i64);
    }
}

impl Actor for QueuePublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
        ctx.run_interval(Duration::from_millis(500), |act, ctx| act.check_link(ctx));
    }
}

impl Handler<EventBatch> for QueuePublisher {
    type Result = ();

    fn handle(&mut self, msg: EventBatch, ctx: &mut Context<Self>) {
        self.figures.actor.received();
        if self.buffer.len() >= self.cfg.buffer_batches.max(1) {
            if let Some(old) = self.buffer.pop_front() {
                self.figures.dropped_oldest(old.queue);
            }
        }
        self.buffer.push_back(msg);
        self.pump(ctx);
    }
}
