//! Router actor: splits each Massive frame and sends its events on per (queue, shard).
//!
//! It reads only `ev` and the ticker of each element (the route-only parse) and forwards the
//! original bytes as zero-copy slices of the frame. Status elements stay with the listener;
//! unreadable elements and frames are counted and logged, never forwarded and never fatal.

use actix::{Actor, Context, Handler, Message};
use bytes::Bytes;

use crate::massive::Market;
use crate::metrics::{ActorMetrics, Counter, Gauge, Registry};
use crate::queue::{route, EventBatch, QueueKind};
use crate::recipient::CountedRecipient;

/// A frame as read off the Massive socket.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RawFrame {
    pub bytes: Bytes,
    /// When the listener read it, epoch ms.
    pub received_at_ms: i64,
    pub market: Market,
}

pub struct Router {
    shards: u16,
    out: CountedRecipient<EventBatch>,
    metrics: ActorMetrics,
    events: Vec<Counter>,
    bad_elements: Counter,
    bad_frames: Counter,
    frame_lag: Vec<(Market, Gauge)>,
    registry: std::sync::Arc<Registry>,
}

impl Router {
    pub const NAME: &'static str = "router";

    pub fn new(
        shards: u16,
        out: CountedRecipient<EventBatch>,
        registry: &std::sync::Arc<Registry>,
    ) -> Self {
        Router {
            shards: shards.max(1),
            out,
            metrics: ActorMetrics::new(registry, Self::NAME),
            events: QueueKind::ALL
                .iter()
                .map(|q| {
                    registry.counter(
                        "tickwire_router_events_total",
                        "Events routed, by queue",
                        &[("queue", q.name())],
                    )
                })
                .collect(),
            bad_elements: registry.counter(
                "tickwire_router_skipped_elements_total",
                "Frame elements skipped because they could not be read (no ev, not an object)",
                &[],
            ),
            bad_frames: registry.counter(
                "tickwire_router_skipped_frames_total",
                "Frames skipped because they were not a JSON array",
                &[],
            ),
            frame_lag: Vec::new(),
            registry: registry.clone(),
        }
    }

    pub fn metrics(&self) -> ActorMetrics {
        self.metrics.clone()
    }

    /// Receive time minus the newest event time of the last frame, per market (registered on
    /// first use: the registry is locked once per market, not per frame).
    fn lag_gauge(&mut self, market: Market) -> &Gauge {
        if let Some(pos) = self.frame_lag.iter().position(|(m, _)| *m == market) {
            return &self.frame_lag[pos].1;
        }
        let g = self.registry.gauge(
            "tickwire_router_frame_lag_ms",
            "Receive time minus the newest event time of the last frame (ms)",
            &[("market", market.path())],
        );
        self.frame_lag.push((market, g));
        &self.frame_lag[self.frame_lag.len() - 1].1
    }
}

impl Actor for Router {
    type Context = Context<Self>;
}

impl Handler<RawFrame> for Router {
    type Result = ();

    fn handle(&mut self, msg: RawFrame, _: &mut Context<Self>) {
        self.metrics.received();
        let routed = match route(&msg.bytes, self.shards) {
            Ok(r) => r,
            Err(e) => {
                // Count every one; log the first and then every 1,000th, not a storm.
                if self.bad_frames.get() % 1000 == 0 {
                    log::warn!(
                        "skipping a frame of {} bytes: {e} ({} skipped so far)",
                        msg.bytes.len(),
                        self.bad_frames.get() + 1
                    );
                }
                self.bad_frames.inc();
                self.metrics.errors.inc();
                return;
            }
        };
        if let Some(newest) = routed.newest_ms {
            let lag = msg.received_at_ms - newest;
            self.lag_gauge(msg.market).set(lag);
        }
        if !routed.bad.is_empty() {
            self.bad_elements.add(routed.bad.len() as u64);
            log::debug!(
                "skipped {} unreadable elements, first: {}",
                routed.bad.len(),
                routed.bad[0]
            );
        }
        for g in routed.groups {
            self.events[g.queue.index()].add(g.events.len() as u64);
            self.metrics.messages_out.inc();
            self.out.do_send(EventBatch {
                queue: g.queue,
                shard: g.shard,
                received_at_ms: msg.received_at_ms,
                market: msg.market,
                events: g.events,
            });
        }
    }
}
