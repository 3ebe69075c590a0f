//! Router actor: splits each Massive frame and sends its events on per (queue, shard).
//!
//! It reads only `ev` and the ticker of each element (the route-only parse) and forwards the
//! original bytes as zero-copy slices of the frame. Status elements stay with the listener;
//! unreadable elements and frames are counted and logged, never forwarded and never fatal.
//!
//! With a relay (issue 23) the same one parse also indexes the frame's events, and the frame
//! goes on whole to the relay ([`crate::relay`]) beside the queues.

use actix::{Actor, Context, Handler, Message};
use bytes::Bytes;

use super::metrics::{FrameLag, RouterFigures};
use crate::massive::Market;
use crate::queue::{split_frame_indexed, EventBatch};
use crate::recipient::CountedRecipient;
use crate::relay::{RelayBatch, Relayed};

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
    /// The relay's feed, when relay clients are served.
    relay: Option<CountedRecipient<Relayed>>,
    figures: RouterFigures,
    frame_lag: FrameLag,
}

impl Router {
    pub fn new(
        shards: u16,
        out: CountedRecipient<EventBatch>,
        figures: RouterFigures,
        frame_lag: FrameLag,
    ) -> Self {
        Router {
            shards: shards.max(1),
            out,
            relay: None,
            figures,
            frame_lag,
        }
    }

    /// Also hand every frame, indexed, to the relay.
    pub fn with_relay(mut self, relay: Option<CountedRecipient<Relayed>>) -> Self {
        self.relay = relay;
        self
    }
}

impl Actor for Router {
    type Context = Context<Self>;
}

impl Handler<RawFrame> for Router {
    type Result = ();

    fn handle(&mut self, msg: RawFrame, _: &mut Context<Self>) {
        self.figures.actor.received();
        let mut index = Vec::new();
        let indexing = self
            .relay
            .is_some()
            .then_some((&mut index, msg.received_at_ms));
        let routed = match split_frame_indexed(&msg.bytes, self.shards, indexing) {
            Ok(r) => r,
            Err(e) => return self.figures.frame_skipped(msg.bytes.len(), &e),
        };
        if let Some(relay) = self.relay.as_ref().filter(|_| !index.is_empty()) {
            relay.do_send(Relayed::Batch(RelayBatch {
                market: msg.market,
                received_at_ms: msg.received_at_ms,
                whole: routed.bad.is_empty() && routed.statuses == 0,
                frame: msg.bytes.clone(),
                events: index,
            }));
        }
        if let Some(newest) = routed.newest_ms {
            self.frame_lag
                .of(msg.market)
                .set(msg.received_at_ms - newest);
        }
        self.figures.elements_skipped(&routed.bad);
        for g in routed.groups {
            if let Some(c) = self.figures.events.at(g.queue.index()) {
                c.add(g.events.len() as u64);
            }
            self.figures.actor.messages_out.inc();
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
