//! ShardManager actor: shares the shard queues fairly among the live processor nodes.
//!
//! Every node heartbeats into the node group `processor:nodes` and holds a lease per shard it
//! consumes (`processor:lease:shard:{n}`). Each tick (a third of the lease TTL) it renews its
//! leases, counts the live nodes, and moves towards its fair share `ceil(shards / nodes)`:
//! when a node joins, the others hand shards over (stop consuming, store the processor's
//! checkpoint, then release the lease); when a node dies, its leases expire and the others
//! take its shards, rehydrating from its last checkpoint. RabbitMQ's single-active-consumer
//! queues are the second safety net: even during a handover only one consumer gets a queue's
//! messages.

use std::collections::BTreeSet;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Recipient, WrapFuture,
};

use super::consumer::Assign;
use super::shard::{Flush, Processor};
use crate::metrics::{ActorMetrics, Counter, Gauge, Registry};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct ShardManagerConfig {
    pub shards: u16,
    pub holder: String,
    pub state_prefix: String,
    pub lease_ttl: Duration,
    /// At most this many shards on this node (operator's limit; `None`: its fair share).
    pub max_shards: Option<u16>,
}

pub fn shard_lease_key(prefix: &str, shard: u16) -> String {
    format!("{prefix}processor:lease:shard:{shard}")
}

pub struct ShardManager {
    cfg: ShardManagerConfig,
    store: Store,
    consumer: Recipient<Assign>,
    processors: Vec<Addr<Processor>>,
    held: BTreeSet<u16>,
    busy: bool,
    metrics: ActorMetrics,
    held_gauge: Gauge,
    nodes: Gauge,
    taken: Counter,
    released: Counter,
    errors: Counter,
    held_view: std::sync::Arc<std::sync::Mutex<Vec<u16>>>,
    max_gauge: Gauge,
}

impl ShardManager {
    pub const NAME: &'static str = "shard_manager";

    pub fn new(
        cfg: ShardManagerConfig,
        store: Store,
        consumer: Recipient<Assign>,
        processors: Vec<Addr<Processor>>,
        registry: &Registry,
    ) -> Self {
        ShardManager {
            store,
            consumer,
            processors,
            held: BTreeSet::new(),
            busy: false,
            metrics: ActorMetrics::new(registry, Self::NAME),
            held_gauge: registry.gauge("tickwire_shards_held", "Shards this node consumes", &[]),
            nodes: registry.gauge("tickwire_processor_nodes", "Live processor nodes seen", &[]),
            taken: registry.counter("tickwire_shards_taken_total", "Shards taken over", &[]),
            released: registry.counter("tickwire_shards_released_total", "Shards handed over", &[]),
            errors: registry.counter(
                "tickwire_shards_errors_total",
                "Store errors while managing shard leases",
                &[],
            ),
            max_gauge: {
                let g = registry.gauge(
                    "tickwire_shards_max",
                    "Operator's cap on this node's shards (0: its fair share)",
                    &[],
                );
                g.set(i64::from(cfg.max_shards.unwrap_or(0)));
                g
            },
            held_view: Default::default(),
            cfg,
        }
    }

    /// The shards held, for `/stats`.
    pub fn held_view(&self) -> std::sync::Arc<std::sync::Mutex<Vec<u16>>> {
        self.held_view.clone()
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (cfg, store, held) = (self.cfg.clone(), self.store.clone(), self.held.clone());
        let processors = self.processors.clone();
        let consumer = self.consumer.clone();
        let fut = async move {
            let p = &cfg.state_prefix;
            let nodes = store
                .members(&format!("{p}processor:nodes"), &cfg.holder, cfg.lease_ttl)
                .await?;
            let n = nodes.len().max(1);
            let me = nodes.iter().position(|m| *m == cfg.holder).unwrap_or(0);
            let mut fair = usize::from(cfg.shards).div_ceil(n);
            if let Some(max) = cfg.max_shards {
                fair = fair.min(usize::from(max));
            }
            let mut now_held = BTreeSet::new();
            for s in &held {
                if store
                    .acquire(&shard_lease_key(p, *s), &cfg.holder, cfg.lease_ttl)
                    .await?
                {
                    now_held.insert(*s);
                }
            }
            let lost = held.len() - now_held.len();
            // Over the fair share: hand the highest shards over, checkpoint first.
            let mut released = 0;
            while now_held.len() > fair {
                let Some(s) = now_held.pop_last() else { break };
                consumer.do_send(Assign(now_held.clone()));
                if let Some(proc_) = processors.get(usize::from(s)) {
                    let _ = proc_.send(Flush).await;
                }
                store.release(&shard_lease_key(p, s), &cfg.holder).await?;
                released += 1;
            }
            // Under it: try free shards, starting where this node's share would begin.
            let mut taken = 0;
            let start = me * fair;
            for i in 0..usize::from(cfg.shards) {
                if now_held.len() >= fair {
                    break;
                }
                let s = ((start + i) % usize::from(cfg.shards)) as u16;
                if now_held.contains(&s) {
                    continue;
                }
                if store
                    .acquire(&shard_lease_key(p, s), &cfg.holder, cfg.lease_ttl)
                    .await?
                {
                    now_held.insert(s);
                    taken += 1;
                }
            }
            Ok::<_, StoreError>((now_held, n, lost, released, taken))
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, _| {
            act.busy = false;
            match res {
                Ok((held, nodes, lost, released, taken)) => {
                    if lost > 0 {
                        log::warn!("lost {lost} shard leases (renewal came too late)");
                    }
                    act.released.add(released);
                    act.taken.add(taken);
                    act.nodes.set(nodes as i64);
                    if held != act.held {
                        log::info!("consuming shards {held:?} ({nodes} processor nodes)");
                        act.consumer.do_send(Assign(held.clone()));
                    }
                    act.held = held;
                    act.held_gauge.set(act.held.len() as i64);
                    if let Ok(mut v) = act.held_view.lock() {
                        *v = act.held.iter().copied().collect();
                    }
                }
                Err(e) => {
                    act.errors.inc();
                    act.metrics.errors.inc();
                    log::warn!("shard lease check failed: {e}");
                }
            }
        }));
    }
}

/// Caps (or uncaps, with `None`) how many shards this node consumes: the processor pool
/// size an operator sets at run time. Shards over the cap are checkpointed and handed over
/// at the next lease check; other nodes pick them up as their share allows.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct SetMaxShards(pub Option<u16>);

impl actix::Handler<SetMaxShards> for ShardManager {
    type Result = ();

    fn handle(&mut self, msg: SetMaxShards, _: &mut Context<Self>) {
        self.metrics.handled();
        log::info!(
            "processor pool size: {}",
            msg.0
                .map_or("fair share".to_string(), |n| format!("at most {n} shards"))
        );
        self.cfg.max_shards = msg.0;
        self.max_gauge.set(i64::from(msg.0.unwrap_or(0)));
    }
}

/// Hand every shard over now (clean shutdown): stop consuming, checkpoint, release.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Stop;

impl actix::Handler<Stop> for ShardManager {
    type Result = actix::ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Stop, _: &mut Context<Self>) -> Self::Result {
        self.metrics.handled();
        let held = std::mem::take(&mut self.held);
        self.consumer.do_send(Assign(BTreeSet::new()));
        let (store, cfg, processors) = (
            self.store.clone(),
            self.cfg.clone(),
            self.processors.clone(),
        );
        Box::pin(
            async move {
                for s in held {
                    if let Some(p) = processors.get(usize::from(s)) {
                        let _ = p.send(Flush).await;
                    }
                    let _ = store
                        .release(&shard_lease_key(&cfg.state_prefix, s), &cfg.holder)
                        .await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}

impl Actor for ShardManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        ctx.run_interval(self.cfg.lease_ttl / 3, |act, ctx| act.tick(ctx));
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        // Best effort on a clean stop: hand the shards over at once instead of after a TTL.
        let (store, cfg, held) = (self.store.clone(), self.cfg.clone(), self.held.clone());
        actix::spawn(async move {
            for s in held {
                let _ = store
                    .release(&shard_lease_key(&cfg.state_prefix, s), &cfg.holder)
                    .await;
            }
        });
        actix::Running::Stop
    }
}
