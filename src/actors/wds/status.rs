//! What a WDS reports about itself, read from its typed figures: readiness (serving, pub/sub
//! connected, hub alive, results Redis reachable), the reference `/health` body
//! (`active_ws_clients`), and `/stats` (sessions, deliveries, limits, revocations, the relay).

use std::sync::Arc;

use actix_web::web;
use serde_json::json;

use super::hub::GetHubState;
use super::WdsState;
use crate::admin::{check_that, AdminState, FnCheck};
use crate::config::CommonArgs;
use crate::metrics::Registry;

/// The admin state of a WDS: the reference health body, honest readiness, hub figures.
pub fn admin_state(
    common: &CommonArgs,
    registry: &Arc<Registry>,
    state: &web::Data<WdsState>,
) -> AdminState {
    let mut admin_state = AdminState::new("Widget Data Service", registry.clone()).with_identity(
        &common.container_image,
        &common.image_version,
        &common.admin_token,
    );
    let wds = state.clone();
    admin_state = admin_state.with_check(FnCheck::new("serving", move || {
        if wds.is_stopping() {
            Err("stopping: sessions are being closed".into())
        } else {
            Ok(())
        }
    }));
    let f = state.figures.clone();
    let pubsub_up = move || f.hub.connected.get() == 1;
    admin_state = admin_state.with_check(check_that("pubsub", pubsub_up, "pub/sub not connected"));
    let f = state.figures.clone();
    admin_state = admin_state.with_check(FnCheck::new("hub", move || {
        let age = f.hub_silent_ms();
        if age < 5_000 {
            Ok(())
        } else {
            Err(format!("hub silent for {age} ms"))
        }
    }));
    let f = state.figures.clone();
    admin_state = admin_state.with_check(FnCheck::new("store", move || {
        // The memory store has no connection to lose.
        match &f.store {
            Some(s) if !s.up() => Err("results Redis unreachable".into()),
            _ => Ok(()),
        }
    }));
    let f = state.figures.clone();
    admin_state = admin_state.with_health(Arc::new(move || {
        let clients = f.sessions.authorized.get();
        Box::pin(async move {
            let mut extra = serde_json::Map::new();
            extra.insert("active_ws_clients".into(), json!(clients));
            (true, extra)
        })
    }));
    let s = state.clone();
    admin_state.with_info(Arc::new(move || {
        let s = s.clone();
        Box::pin(async move {
            let hub = s.hub.send(GetHubState).await.ok();
            let (f, l) = (&s.figures, &s.limits);
            json!({
                "sessions": f.sessions.open.get(),
                "authorized_sessions": f.sessions.authorized.get(),
                "hub": hub,
                "deliveries_per_second": f.hub.rate.get(),
                "deliveries": f.hub.deliveries.get(),
                "coalesced": f.hub.coalesced.get(),
                "dropped": f.hub.dropped.get(),
                "slow_clients_closed": f.hub.slow_closed.get(),
                "auth_required": s.auth.required,
                // Live token revocations this node applies (logouts within a token lifetime).
                "revocations": s.revoked.len(),
                "relay": relay_stats(&f.relay),
                "limits": {
                    "max_frame_bytes": l.max_frame_bytes,
                    "max_topics": l.max_topics,
                    "max_msgs_per_sec": l.max_msgs_per_sec,
                    "max_sessions": l.max_sessions,
                    "handshake_timeout_secs": l.handshake_timeout.as_secs(),
                    "max_violations": l.max_violations,
                    "outbox_frames": l.outbox_frames,
                    "slow_grace_secs": l.slow_grace.as_secs(),
                },
            })
        })
    }))
}

/// The Massive relay's part of `/stats` (all zero when the relay is off).
fn relay_stats(r: &crate::actors::wds::metrics::RelayFigures) -> serde_json::Value {
    let closed: serde_json::Map<String, serde_json::Value> =
        crate::actors::wds::metrics::RELAY_CLOSES
            .iter()
            .map(|reason| {
                let n = r.closed.get(reason).map_or(0, |c| c.get());
                (reason.to_string(), json!(n))
            })
            .collect();
    json!({
        "sessions": r.open.get(),
        "keys": r.keys.get(),
        "feed_connected": r.feed_connected.get() == 1,
        "batches_in": r.batches_in.get(),
        "events_in": r.events_in.get(),
        "deliveries": r.deliveries.get(),
        "frames_out": r.frames_out.get(),
        "dropped_bytes": r.dropped.get(),
        "refused_subscriptions": r.refused.get(),
        "closed": closed,
        "replays": r.replays.get(),
        "replay_buffer_events": r.ring_events.get(),
        "replay_buffer_bytes": r.ring_bytes.get(),
    })
}
