//! What the processor node reports about itself, read from its typed figures:
//!
//! - readiness checks: RabbitMQ connected, both Redis stores reachable;
//! - `/health`: the reference processor body (`parallelism`, `prefetch_count`,
//!   `processors[]`), unhealthy (503) while RabbitMQ is away;
//! - `/stats` node facts: shards held, the pool size and cap, the node group, whether this
//!   node publishes the leaderboards, and each shard's worker item.

use std::sync::Arc;

use serde_json::json;

use super::metrics::ProcessorFigures;
use crate::admin::{check_that, AdminState};

/// The node's fixed facts.
pub struct Report {
    pub id: String,
    pub prefetch: u16,
    pub shards: u16,
}

/// Adds the processor node's checks, `/health` body and `/stats` facts to `admin`.
pub fn report(mut admin: AdminState, figures: ProcessorFigures, node: Report) -> AdminState {
    let f = figures.clone();
    admin = admin.with_check(check_that(
        "broker",
        move || f.broker_up(),
        "RabbitMQ not connected",
    ));
    for (store, what, figures) in [
        (
            "results",
            "results Redis unreachable",
            &figures.results_store,
        ),
        ("state", "state Redis unreachable", &figures.state_store),
    ] {
        let f = figures.clone();
        admin = admin.with_check(check_that(format!("redis:{store}"), move || f.up(), what));
    }
    let (f, prefetch, n) = (figures.clone(), node.prefetch, node.shards);
    admin = admin.with_health(Arc::new(move || {
        let f = f.clone();
        Box::pin(async move {
            let mut extra = serde_json::Map::new();
            extra.insert("parallelism".into(), json!(n));
            extra.insert("prefetch_count".into(), json!(prefetch));
            extra.insert("max_concurrency".into(), json!(prefetch));
            extra.insert("processors".into(), json!(f.shard_items()));
            (f.broker_up(), extra)
        })
    }));
    let id = node.id;
    admin.with_info(Arc::new(move || {
        let (f, id) = (figures.clone(), id.clone());
        Box::pin(async move {
            let max = f.manager.max.get();
            json!({
                "node_id": id,
                "pool_size": n,
                "max_shards": (max > 0).then_some(max),
                "shards_held": f.held(),
                "processor_nodes": f.manager.nodes.get(),
                "roles": {"leaderboard_publisher": f.boards.leader.get() == 1},
                "shards": f.shard_items(),
            })
        })
    }))
}
