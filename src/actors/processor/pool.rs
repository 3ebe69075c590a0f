//! ProcessorPool actor: starts one [`ShardProcessor`] per shard, spread over a few arbiters
//! (threads), and routes event batches to them by shard.
//!
//! In embedded mode the router sends its batches here directly; in distributed mode the queue
//! consumers talk to the processors themselves (they need each batch's completion to ack) and
//! the pool only owns them and relays calendar updates.

use actix::{Actor, Arbiter, Context, Handler};

use super::enricher::EnricherHandle;
use super::metrics::{PoolFigures, ShardFigures};
use super::shard::{CalendarUpdate, ProcessorConfig, ShardHandle, ShardProcessor};
use crate::metrics::Registry;
use crate::queue::EventBatch;
use crate::store::Store;

pub struct ProcessorPool {
    shards: Vec<ShardHandle>,
    figures: PoolFigures,
    _arbiters: Vec<Arbiter>,
}

impl ProcessorPool {
    /// Starts `configs.len()` processors on `threads` arbiters; each shard's figures are
    /// registered on `registry`.
    pub fn new(
        configs: Vec<ProcessorConfig>,
        threads: usize,
        results_store: &Store,
        state_store: &Store,
        enricher: Option<EnricherHandle>,
        registry: &Registry,
    ) -> Self {
        let arbiters: Vec<Arbiter> = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        let mut shards = Vec::new();
        for (i, cfg) in configs.into_iter().enumerate() {
            let (actor, figures) = ShardFigures::for_shard(registry, cfg.shard);
            let p = ShardProcessor::new(
                cfg,
                results_store.clone(),
                state_store.clone(),
                enricher.clone(),
                (actor.clone(), figures),
            );
            let addr =
                ShardProcessor::start_in_arbiter(&arbiters[i % arbiters.len()].handle(), |_| p);
            shards.push(ShardHandle::of(&addr, actor));
        }
        ProcessorPool {
            shards,
            figures: PoolFigures::register(registry, &[]),
            _arbiters: arbiters,
        }
    }

    /// Every shard's processor, in shard order.
    pub fn shards(&self) -> Vec<ShardHandle> {
        self.shards.clone()
    }

    pub fn figures(&self) -> PoolFigures {
        self.figures.clone()
    }
}

impl Actor for ProcessorPool {
    type Context = Context<Self>;
}

impl Handler<EventBatch> for ProcessorPool {
    type Result = ();

    fn handle(&mut self, msg: EventBatch, _: &mut Context<Self>) {
        self.figures.actor.received();
        let n = self.shards.len();
        if n == 0 {
            return;
        }
        self.figures.actor.messages_out.inc();
        self.shards[usize::from(msg.shard) % n].batches.do_send(msg);
    }
}

impl Handler<CalendarUpdate> for ProcessorPool {
    type Result = ();

    fn handle(&mut self, msg: CalendarUpdate, _: &mut Context<Self>) {
        self.figures.actor.handled();
        for s in &self.shards {
            s.calendar.do_send(msg.clone());
        }
    }
}
