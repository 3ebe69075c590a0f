//! The WantsWriter actor (distributed mode): what this node's relay clients hold, per market,
//! written to the node registry's Redis ([`crate::relay::wants_key`], field = this node) for
//! a listener that widens its upstream subscription to it.
//!
//! Written when the hub reports a change and again every [`WANTS_EVERY`] (a heartbeat: the
//! listener ignores an entry older than [`crate::relay::WANTS_STALE`], so a node that died
//! stops counting by itself). One write at a time, in order, so an older set never lands
//! after a newer one. A failed write is counted and made again at the next heartbeat.

use std::collections::HashMap;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use deadpool_redis::redis::AsyncCommands;

use crate::actors::wds::metrics::RelayFigures;
use crate::massive::Market;
use crate::relay::{wants_key, NodeWants, RelayWants, WANTS_EVERY};

pub struct WantsWriter {
    pool: deadpool_redis::Pool,
    registry_prefix: String,
    node_id: String,
    figures: RelayFigures,
    latest: HashMap<Market, Vec<String>>,
}

impl WantsWriter {
    pub fn new(
        pool: deadpool_redis::Pool,
        registry_prefix: &str,
        node_id: &str,
        figures: RelayFigures,
    ) -> Self {
        WantsWriter {
            pool,
            registry_prefix: registry_prefix.to_string(),
            node_id: node_id.to_string(),
            figures,
            latest: HashMap::new(),
        }
    }

    /// Writes `markets`' latest sets (an empty one removes the node's entry), in order; the
    /// actor reads no message until it is done.
    fn write(&mut self, markets: Vec<Market>, ctx: &mut Context<Self>) {
        let at = chrono::Utc::now().timestamp_millis();
        let writes: Vec<(String, Option<String>)> = markets
            .into_iter()
            .filter_map(|m| {
                let topics = self.latest.get(&m)?;
                let key = wants_key(&self.registry_prefix, m);
                let value = (!topics.is_empty()).then(|| {
                    let w = NodeWants {
                        at,
                        topics: topics.clone(),
                    };
                    serde_json::to_string(&w).unwrap_or_default()
                });
                Some((key, value))
            })
            .collect();
        if writes.is_empty() {
            return;
        }
        let (pool, node) = (self.pool.clone(), self.node_id.clone());
        let fut = async move {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            for (key, value) in writes {
                let r: Result<(), _> = match value {
                    Some(v) => conn.hset(&key, &node, v).await,
                    None => conn.hdel(&key, &node).await,
                };
                r.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        };
        ctx.wait(fut.into_actor(self).map(|r, act, _| {
            if let Err(e) = r {
                act.figures.wants_failed(&e);
            }
        }));
    }
}

impl Actor for WantsWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(WANTS_EVERY, |act, ctx| {
            let markets = act.latest.keys().copied().collect();
            act.write(markets, ctx);
        });
    }
}

impl Handler<RelayWants> for WantsWriter {
    type Result = ();

    fn handle(&mut self, msg: RelayWants, ctx: &mut Context<Self>) {
        self.latest.insert(msg.market, msg.topics);
        self.write(vec![msg.market], ctx);
    }
}
