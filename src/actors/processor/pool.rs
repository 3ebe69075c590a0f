//! ProcessorPool actor: starts one [`Processor`] per shard, spread over a few arbiters
//! (threads), and routes event batches to them by shard.
//!
//! In embedded mode the router sends its batches here directly; in distributed mode the queue
//! consumers talk to the processors themselves (they need each batch's completion to ack) and
//! the pool only owns them and relays calendar updates.

use actix::{Actor, Addr, Arbiter, Context, Handler};

use super::enricher::Enrich;
use super::shard::{CalendarUpdate, Processor, ProcessorConfig};
use crate::metrics::{ActorMetrics, Registry};
use crate::queue::EventBatch;
use crate::recipient::CountedRecipient;
use crate::store::Store;

pub struct ProcessorPool {
    processors: Vec<Addr<Processor>>,
    mailboxes: Vec<CountedRecipient<EventBatch>>,
    metrics: ActorMetrics,
    _arbiters: Vec<Arbiter>,
}

impl ProcessorPool {
    pub const NAME: &'static str = "processor_pool";

    /// Starts `configs.len()` processors on `threads` arbiters.
    pub fn new(
        configs: Vec<ProcessorConfig>,
        threads: usize,
        results: &Store,
        store: &Store,
        enricher: Option<crate::recipient::CountedRecipient<Enrich>>,
        registry: &std::sync::Arc<Registry>,
    ) -> Self {
        let arbiters: Vec<Arbiter> = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        let mut processors = Vec::new();
        let mut mailboxes = Vec::new();
        for (i, cfg) in configs.into_iter().enumerate() {
            let p = Processor::new(
                cfg,
                results.clone(),
                store.clone(),
                enricher.clone(),
                registry,
            );
            let metrics = p.metrics();
            let addr = Processor::start_in_arbiter(&arbiters[i % arbiters.len()].handle(), |_| p);
            mailboxes.push(CountedRecipient::of(&addr, metrics));
            processors.push(addr);
        }
        ProcessorPool {
            processors,
            mailboxes,
            metrics: ActorMetrics::new(registry, Self::NAME),
            _arbiters: arbiters,
        }
    }

    pub fn processors(&self) -> Vec<Addr<Processor>> {
        self.processors.clone()
    }

    /// One mailbox per shard, in shard order.
    pub fn mailboxes(&self) -> Vec<CountedRecipient<EventBatch>> {
        self.mailboxes.clone()
    }

    pub fn metrics(&self) -> ActorMetrics {
        self.metrics.clone()
    }
}

impl Actor for ProcessorPool {
    type Context = Context<Self>;
}

impl Handler<EventBatch> for ProcessorPool {
    type Result = ();

    fn handle(&mut self, msg: EventBatch, _: &mut Context<Self>) {
        self.metrics.received();
        let n = self.mailboxes.len();
        if n == 0 {
            return;
        }
        self.metrics.messages_out.inc();
        self.mailboxes[usize::from(msg.shard) % n].do_send(msg);
    }
}

impl Handler<CalendarUpdate> for ProcessorPool {
    type Result = ();

    fn handle(&mut self, msg: CalendarUpdate, _: &mut Context<Self>) {
        self.metrics.handled();
        for p in &self.processors {
            p.do_send(msg.clone());
        }
    }
}
