//! Registrar actor: announces this node in the node registry the control plane reads.
//!
//! Every heartbeat it writes `{prefix}nodes:{id}` = [`NodeRecord`] as JSON with a TTL of three
//! heartbeats, so a node that dies drops out of the registry on its own within that TTL and
//! nothing has to clean up after it. A failed write is logged and counted and retried at the
//! next beat; the node itself never depends on the registry.

use std::time::Duration;

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};
use deadpool_redis::{redis, Pool};

use crate::config::NodeRegistryArgs;
use crate::figures;
use crate::metrics::{ActorMetrics, Counter, Registry};
use crate::nodes::{node_key, NodeRecord};

figures! {
    /// The registrar's figures (every node has one).
    pub struct RegistrarFigures {
        /// The registrar's mailbox and messages
        pub actor: ActorMetrics = "registrar";
        /// Heartbeats written to the node registry
        pub beats: Counter = "tickwire_registry_heartbeats_total";
        /// Node registry writes that failed
        pub errors: Counter = "tickwire_registry_errors_total";
    }
}

/// Starts a node's registrar from its [`NodeRegistryArgs`], unless the registry is switched
/// off: `id` is the node's identity (as in its leases), `role` its kind, `port` its admin port.
pub fn start(
    args: &NodeRegistryArgs,
    id: &str,
    role: &str,
    port: u16,
    admin_token: &str,
    registry: &Registry,
) -> Option<actix::Addr<Registrar>> {
    if args.registry_url.is_empty() {
        return None;
    }
    let pool = match crate::redis_pool::open(&args.registry_url) {
        Ok(p) => p,
        Err(e) => {
            log::error!("node registry disabled: {e}");
            return None;
        }
    };
    let admin_url = if args.admin_url.is_empty() {
        format!("http://{}:{port}", crate::config::hostname_or("localhost"))
    } else {
        args.admin_url.clone()
    };
    let record = NodeRecord::new(id, role, &admin_url);
    let every = Duration::from_secs(args.heartbeat_secs.max(1));
    let key = crate::nodes::registry_key(admin_token);
    Some(Registrar::new(pool, &args.registry_prefix, record, key, every, registry).start())
}

pub struct Registrar {
    pool: Pool,
    prefix: String,
    record: NodeRecord,
    /// Signs the record ([`crate::nodes::registry_key`]); `None`: unsigned.
    key: Option<[u8; 32]>,
    every: Duration,
    busy: bool,
    figures: RegistrarFigures,
}

impl Registrar {
    pub fn new(
        pool: Pool,
        prefix: &str,
        record: NodeRecord,
        key: Option<[u8; 32]>,
        every: Duration,
        registry: &Registry,
    ) -> Self {
        Registrar {
            pool,
            prefix: prefix.to_string(),
            record,
            key,
            every: every.max(Duration::from_millis(100)),
            busy: false,
            figures: RegistrarFigures::register(registry, &[]),
        }
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        self.record.heartbeat_ms = chrono::Utc::now().timestamp_millis();
        if let Some(key) = &self.key {
            self.record.seal(key);
        }
        let key = node_key(&self.prefix, &self.record.id);
        let body = serde_json::to_string(&self.record).unwrap_or_default();
        let ttl_ms = (self.every * 3).as_millis() as u64;
        let pool = self.pool.clone();
        let fut = async move {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("SET")
                .arg(&key)
                .arg(body)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, _| {
            act.busy = false;
            act.figures.actor.handled();
            match res {
                Ok(()) => act.figures.beats.inc(),
                Err(e) => {
                    act.figures.errors.inc();
                    act.figures.actor.errors.inc();
                    log::warn!("node registry heartbeat failed: {e}");
                }
            }
        }));
    }
}

impl Actor for Registrar {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!(
            "registering node {} ({}) at {}",
            self.record.id,
            self.record.role,
            self.record.admin_url
        );
        self.beat(ctx);
        ctx.run_interval(self.every, |act, ctx| act.beat(ctx));
    }
}

/// Clean shutdown: removes this node from the registry now (instead of after its TTL) and
/// stops the heartbeats.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Deregister;

impl actix::Handler<Deregister> for Registrar {
    type Result = actix::ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Deregister, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.handled();
        let key = node_key(&self.prefix, &self.record.id);
        let pool = self.pool.clone();
        Box::pin(
            async move {
                let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| e.to_string())
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                if let Err(e) = res {
                    act.figures.errors.inc();
                    log::warn!("node registry: could not deregister ({e}); the entry expires");
                }
                ctx.stop();
            }),
        )
    }
}

/// Deregisters a node's registrar, if it has one (what every node's `stop` calls).
pub async fn deregister(registrar: &Option<actix::Addr<Registrar>>) {
    if let Some(r) = registrar {
        let _ = r.send(Deregister).await;
    }
}
