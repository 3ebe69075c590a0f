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

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Recipient, WrapFuture};

use super::consumer::Assign;
use super::metrics::ShardManagerFigures;
use super::shard::Flush;
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
    state_store: Store,
    consumer: Recipient<Assign>,
    /// Each shard's processor, in shard order: flushed before its shard is handed over.
    flush: Vec<Recipient<Flush>>,
    held: BTreeSet<u16>,
    busy: bool,
    figures: ShardManagerFigures,
    held_view: std::sync::Arc<std::sync::Mutex<Vec<u16>>>,
}

impl ShardManager {
    pub fn new(
        cfg: ShardManagerConfig,
        state_store: Store,
        consumer: Recipient<Assign>,
        flush: Vec<Recipient<Flush>>,
        figures: ShardManagerFigures,
    ) -> Self {
        figures.max.set(i64::from(cfg.max_shards.unwrap_or(0)));
        ShardManager {
            state_store,
            consumer,
            flush,
            held: BTreeSet::new(),
            busy: false,
            figures,
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
        let (cfg, store, held) = (
            self.cfg.clone(),
            self.state_store.clone(),
            self.held.clone(),
        );
        let flush = self.flush.clone();
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
                if let Some(f) = flush.get(usize::from(s)) {
                    let _ = f.send(Flush).await;
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
                    act.figures.released.add(released);
                    act.figures.taken.add(taken);
                    act.figures.nodes.set(nodes as i64);
                    if held != act.held {
                        log::info!("consuming shards {held:?} ({nodes} processor nodes)");
                        act.consumer.do_send(Assign(held.clone()));
                    }
                    act.held = held;
                    act.figures.held.set(act.held.len() as i64);
                    if let Ok(mut v) = act.held_view.lock() {
                        *v = act.held.iter().copied().collect();
                    }
                }
                Err(e) => {
                    act.figures.errors.inc();
                    act.figures.actor.errors.inc();
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
        self.figures.actor.handled();
        log::info!(
            "processor pool size: {}",
            msg.0
                .map_or("fair share".to_string(), |n| format!("at most {n} shards"))
        );
        self.cfg.max_shards = msg.0;
        self.figures.max.set(i64::from(msg.0.unwrap_or(0)));
    }
}

/// Hand every shard over now (clean shutdown): stop consuming, checkpoint, release.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Stop;

impl actix::Handler<Stop> for ShardManager {
    type Result = actix::ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Stop, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.handled();
        let held = std::mem::take(&mut self.held);
        self.consumer.do_send(Assign(BTreeSet::new()));
        let (store, cfg, flush) = (
            self.state_store.clone(),
            self.cfg.clone(),
            self.flush.clone(),
        );
        Box::pin(
            async move {
                for s in held {
                    if let Some(f) = flush.get(usize::from(s)) {
                        let _ = f.send(Flush).await;
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
        let (store, cfg, held) = (
            self.state_store.clone(),
            self.cfg.clone(),
            self.held.clone(),
        );
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
