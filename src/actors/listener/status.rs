//! What the listener node reports about itself, read from its typed figures and its
//! listeners, never from metric names:
//!
//! - readiness checks: RabbitMQ up; per market, authenticated on Massive and holding the
//!   lease (a standby is not ready, so a load balancer or operator sees which replica streams);
//! - `/health`: the reference MDL body (operators' exporters read its fields), for the first
//!   market; unhealthy (503) when RabbitMQ is down, or auto-start is on and a key was refused;
//! - `/stats` node facts: each market's listener state and lease holder, and the news
//!   connection's state (`news`) when there is one.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::json;

use super::connection::Describe;
use super::control::MarketLink;
use super::metrics::ListenerFigures;
use crate::admin::{check_that, AdminState, FnCheck};
use crate::queue::QueueKind;

/// Adds the listener node's checks, `/health` body and `/stats` facts to `admin`.
pub fn report(
    mut admin: AdminState,
    figures: ListenerFigures,
    links: Vec<MarketLink>,
    news: Option<actix::Addr<super::news::NewsListener>>,
    auto_start: bool,
) -> AdminState {
    let f = figures.clone();
    admin = admin.with_check(check_that(
        "broker",
        move || f.broker_up(),
        "RabbitMQ not connected",
    ));
    for l in &links {
        let health = l.health.clone();
        admin = admin.with_check(FnCheck::new(format!("massive:{}", l.market), move || {
            if health.fatal.load(Ordering::Relaxed) {
                Err(format!("auth failed: {}", health.last_error()))
            } else if !health.connected.load(Ordering::Relaxed) {
                Err("not connected to Massive".into())
            } else if !health.authenticated.load(Ordering::Relaxed) {
                Err("connected, not authenticated".into())
            } else {
                Ok(())
            }
        }));
        if let Some(lease) = l.lease.clone() {
            let standby = "standby: another replica holds the lease";
            admin = admin.with_check(check_that(
                format!("lease:{}", l.market),
                move || lease.held(),
                standby,
            ));
        }
    }
    let health_links = links.clone();
    admin = admin.with_health(Arc::new(move || {
        let (links, f) = (health_links.clone(), figures.clone());
        Box::pin(async move { health_body(&f, &links, auto_start).await })
    }));
    admin.with_info(Arc::new(move || {
        let (links, news) = (links.clone(), news.clone());
        Box::pin(async move {
            let mut node = serde_json::Map::new();
            if let Some(n) = news {
                let v = n
                    .send(Describe)
                    .await
                    .unwrap_or_else(|e| json!({"error": e.to_string()}));
                node.insert("news".into(), v);
            }
            for l in links {
                let mut v = l
                    .listener
                    .send(Describe)
                    .await
                    .unwrap_or_else(|e| json!({"error": e.to_string()}));
                v["lease_holder"] = match &l.lease {
                    Some(lease) => json!(lease.holder()),
                    None => json!(null),
                };
                node.insert(l.market.path().to_string(), v);
            }
            serde_json::Value::Object(node)
        })
    }))
}

/// The reference MDL `/health` fields and whether the node is healthy.
async fn health_body(
    f: &ListenerFigures,
    links: &[MarketLink],
    auto_start: bool,
) -> (bool, serde_json::Map<String, serde_json::Value>) {
    let broker_up = f.broker_up();
    let mut fatal = false;
    let mut first = json!({});
    for (n, l) in links.iter().enumerate() {
        let d = l
            .listener
            .send(Describe)
            .await
            .unwrap_or_else(|_| json!({}));
        fatal |= d["state"] == "auth_failed";
        if n == 0 {
            first = d;
        }
    }
    let market = links.first().map_or("stocks", |l| l.market.path());
    let conn = links.first().map(|l| &l.connection);
    let count = |c: Option<&crate::metrics::Counter>| c.map_or(0, |c| c.get());
    let last = conn.map_or(0, |c| c.last_frame_ms.get());
    let mut extra = serde_json::Map::new();
    extra.insert("auto-start".into(), json!(auto_start));
    extra.insert(
        "mdq_connection_status".into(),
        json!({
            "connected": broker_up,
            "last_message_time": if last > 0 { json!(last as f64 / 1000.0) } else { json!(null) },
            "messages_received": count(conn.map(|c| &c.frames_in)),
            "trades": f.routed(QueueKind::Trades),
            "aggregate": f.routed(QueueKind::Aggregate),
            "quotes": f.routed(QueueKind::Quotes),
            "halts": f.routed(QueueKind::Halts),
            "unknown": f.routed(QueueKind::Unknown),
            "unsupported_messages": f.router.skipped_elements.get(),
            "reconnect_attempts": f.publisher.connect_errors.get(),
        }),
    );
    extra.insert(
        "mdl_connection_status".into(),
        json!({
            "connected": first["state"] == "streaming" || first["state"] == "connected",
            "healthy": first["state"] == "streaming",
            "feed": first["feed"], "market": market,
            "reconnects": count(conn.map(|c| &c.reconnects)),
            "subscriptions": first["subscriptions"],
        }),
    );
    (broker_up && !(auto_start && fatal), extra)
}
