//! The control API (admin role): the node registry, aggregated stats, and runtime control.
//!
//! The SCP holds no pipeline state of its own. It finds nodes in the registry each node's
//! [`Registrar`](crate::actors::registrar::Registrar) keeps in Redis (embedded mode: the
//! one in-process node), and calls their admin routes with awc and the admin token:
//!
//! | SCP route | node route |
//! |---|---|
//! | `GET /api/control/nodes` | (registry) |
//! | `GET /api/control/stats` | `GET /stats` on every node |
//! | `GET /api/control/nodes/{id}/stats` | `GET /stats` |
//! | `POST /api/control/nodes/{id}/listener/{start,stop,restart}` | `POST /control/{cmd}` |
//! | `PUT /api/control/nodes/{id}/listener/{subscriptions,feed,market}` | `PUT /control/{what}` |
//! | `PUT /api/control/nodes/{id}/pool` | `PUT /control/pool` |
//! | `GET /api/control/wds` | `GET /stats` on every WDS |
//!
//! A node's own answer (status and JSON body, e.g. its 400 for a bad subscription list) is
//! passed through; an unreachable node is a 502.

use std::time::Duration;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use deadpool_redis::{redis, Pool};
use serde_json::{json, Value};

use super::auth::{require_api, Need};
use super::{ScpError, ScpState};
use crate::metrics::Counter;
use crate::nodes::NodeRecord;

/// Where the SCP finds nodes.
pub enum Directory {
    /// The registry in Redis, under `{prefix}nodes:*`. With a `key`, only records signed with
    /// it are believed ([`crate::nodes`]); the others are skipped and counted in `rejected`,
    /// so the admin token never goes to an address the registry alone vouches for.
    Redis {
        pool: Pool,
        prefix: String,
        key: Option<[u8; 32]>,
        rejected: Counter,
    },
    /// A fixed list (embedded mode: the process itself).
    Static(Vec<NodeRecord>),
}

const NODE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_NODE_BODY: usize = 16 << 20;

impl Directory {
    /// Every live node, by role then id.
    pub async fn list(&self) -> Result<Vec<NodeRecord>, ScpError> {
        let (pool, prefix) = match self {
            // The in-process node is alive whenever this code runs.
            Directory::Static(nodes) => {
                let now = chrono::Utc::now().timestamp_millis();
                return Ok(nodes
                    .iter()
                    .cloned()
                    .map(|n| NodeRecord {
                        heartbeat_ms: now,
                        ..n
                    })
                    .collect());
            }
            Directory::Redis { pool, prefix, .. } => (pool, prefix),
        };
        let upstream = |e: String| ScpError::Upstream(format!("node registry: {e}"));
        let mut conn = pool.get().await.map_err(|e| upstream(e.to_string()))?;
        let pattern = format!("{prefix}nodes:*");
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(|e| upstream(e.to_string()))?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .map_err(|e| upstream(e.to_string()))?;
        let mut nodes: Vec<NodeRecord> = values
            .into_iter()
            .flatten()
            .filter_map(|v| match serde_json::from_str(&v) {
                Ok(n) => self.believed(n),
                Err(e) => {
                    log::warn!("skipping a malformed node registry entry: {e}");
                    None
                }
            })
            .collect();
        nodes.sort_by(|a, b| (&a.role, &a.id).cmp(&(&b.role, &b.id)));
        Ok(nodes)
    }

    /// One node by id: a single GET of its registry key (no scan).
    async fn find(&self, id: &str) -> Result<NodeRecord, ScpError> {
        let no_node = || ScpError::NoNode(id.to_string());
        let (pool, prefix) = match self {
            Directory::Static(_) => {
                return self
                    .list()
                    .await?
                    .into_iter()
                    .find(|n| n.id == id)
                    .ok_or_else(no_node)
            }
            Directory::Redis { pool, prefix, .. } => (pool, prefix),
        };
        let upstream = |e: String| ScpError::Upstream(format!("node registry: {e}"));
        let mut conn = pool.get().await.map_err(|e| upstream(e.to_string()))?;
        let value: Option<String> = redis::cmd("GET")
            .arg(crate::nodes::node_key(prefix, id))
            .query_async(&mut conn)
            .await
            .map_err(|e| upstream(e.to_string()))?;
        let value = value.ok_or_else(no_node)?;
        let record = serde_json::from_str(&value)
            .map_err(|e| upstream(format!("malformed entry for {id}: {e}")))?;
        self.believed(record).ok_or_else(no_node)
    }

    /// The record, unless a key is set and it was not signed with it (then counted).
    fn believed(&self, record: NodeRecord) -> Option<NodeRecord> {
        match self {
            Directory::Redis {
                key: Some(key),
                rejected,
                ..
            } if !record.verify(key) => {
                if rejected.get() % 100 == 0 {
                    log::warn!(
                        "ignoring node registry entry {:?} ({}): not signed with this cluster's key",
                        record.id,
                        record.admin_url
                    );
                }
                rejected.inc();
                None
            }
            _ => Some(record),
        }
    }
}

/// One call to a node's admin route: (status, JSON body).
async fn call_node(
    state: &ScpState,
    node: &NodeRecord,
    method: Method,
    path_and_query: &str,
    body: web::Bytes,
) -> Result<(u16, Value), ScpError> {
    state.metrics.control_calls.inc();
    let url = format!("{}{path_and_query}", node.admin_url);
    let client = awc::Client::builder().timeout(NODE_TIMEOUT).finish();
    let result = async {
        let mut resp = client
            .request(method, &url)
            .insert_header(("authorization", format!("Bearer {}", state.admin_token)))
            .insert_header(("content-type", "application/json"))
            .send_body(body)
            .await
            .map_err(|e| e.to_string())?;
        let bytes = resp
            .body()
            .limit(MAX_NODE_BODY)
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"body": String::from_utf8_lossy(&bytes)}));
        Ok::<_, String>((resp.status().as_u16(), v))
    }
    .await;
    result.map_err(|e| {
        state.metrics.control_errors.inc();
        log::warn!("control call {url} failed: {e}");
        ScpError::Upstream(format!("{}: {e}", node.id))
    })
}

fn pass_through((status, body): (u16, Value)) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    HttpResponse::build(status).json(body)
}

fn expect_role(node: &NodeRecord, roles: &[&str], what: &str) -> Result<(), ScpError> {
    if roles.contains(&node.role.as_str()) {
        Ok(())
    } else {
        Err(ScpError::BadRequest(format!(
            "node {} is a {} node; {what} applies to {} nodes",
            node.id,
            node.role,
            roles.join(" or ")
        )))
    }
}

async fn nodes(req: HttpRequest, state: web::Data<ScpState>) -> Result<HttpResponse, ScpError> {
    require_api(&req, &state, Need::Admin, false).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let list: Vec<Value> = state
        .directory
        .list()
        .await?
        .into_iter()
        .map(|n| {
            let age = now - n.heartbeat_ms;
            let mut v = serde_json::to_value(n).unwrap_or_default();
            v["heartbeat_age_ms"] = json!(age);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"nodes": list})))
}

/// `/stats` of each node in `nodes`, fetched concurrently: `[{node, ok, stats | error}]`.
async fn stats_of(state: &ScpState, nodes: Vec<NodeRecord>) -> Vec<Value> {
    let calls = nodes.into_iter().map(|n| async move {
        match call_node(state, &n, Method::GET, "/stats", web::Bytes::new()).await {
            Ok((200, stats)) => json!({"node": n, "ok": true, "stats": stats}),
            Ok((status, body)) => {
                json!({"node": n, "ok": false, "error": format!("HTTP {status}"), "body": body})
            }
            Err(e) => json!({"node": n, "ok": false, "error": e.to_string()}),
        }
    });
    futures_util::future::join_all(calls).await
}

async fn all_stats(req: HttpRequest, state: web::Data<ScpState>) -> Result<HttpResponse, ScpError> {
    require_api(&req, &state, Need::Admin, false).await?;
    let nodes = state.directory.list().await?;
    let at = chrono::Utc::now().timestamp_millis();
    Ok(HttpResponse::Ok().json(json!({"at_ms": at, "nodes": stats_of(&state, nodes).await})))
}

async fn node_stats(
    req: HttpRequest,
    state: web::Data<ScpState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ScpError> {
    require_api(&req, &state, Need::Admin, false).await?;
    let node = state.directory.find(&id).await?;
    Ok(pass_through(
        call_node(&state, &node, Method::GET, "/stats", web::Bytes::new()).await?,
    ))
}

/// The request's query string, passed on to the node (`?feed=`, `?to=`, `?market=`).
fn query(req: &HttpRequest) -> String {
    match req.query_string() {
        "" => String::new(),
        q => format!("?{q}"),
    }
}

async fn listener_command(
    req: HttpRequest,
    state: web::Data<ScpState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ScpError> {
    require_api(&req, &state, Need::AdminWrite, true).await?;
    let (id, cmd) = path.into_inner();
    if !matches!(cmd.as_str(), "start" | "stop" | "restart") {
        return Err(ScpError::BadRequest(format!(
            "unknown listener command {cmd:?}: use start, stop or restart"
        )));
    }
    let node = state.directory.find(&id).await?;
    expect_role(&node, &["listener", "embedded"], "listener control")?;
    log::info!("listener {cmd} on {id}");
    let path = format!("/control/{cmd}{}", query(&req));
    Ok(pass_through(
        call_node(&state, &node, Method::POST, &path, web::Bytes::new()).await?,
    ))
}

async fn listener_setting(
    req: HttpRequest,
    state: web::Data<ScpState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ScpError> {
    require_api(&req, &state, Need::AdminWrite, true).await?;
    let (id, what) = path.into_inner();
    if !matches!(what.as_str(), "subscriptions" | "feed" | "market") {
        return Err(ScpError::BadRequest(format!(
            "unknown listener setting {what:?}: use subscriptions, feed or market"
        )));
    }
    if what == "subscriptions" && body.iter().all(u8::is_ascii_whitespace) {
        return Err(ScpError::BadRequest(
            "subscriptions: send a JSON array or a comma list, e.g. [\"A.*\",\"T.AAPL\"]".into(),
        ));
    }
    let node = state.directory.find(&id).await?;
    expect_role(&node, &["listener", "embedded"], "listener control")?;
    log::info!("listener {what} change on {id}");
    let path = format!("/control/{what}{}", query(&req));
    Ok(pass_through(
        call_node(&state, &node, Method::PUT, &path, body).await?,
    ))
}

async fn pool_size(
    req: HttpRequest,
    state: web::Data<ScpState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ScpError> {
    require_api(&req, &state, Need::AdminWrite, true).await?;
    let max = crate::nodes::parse_pool_body(&body).map_err(ScpError::BadRequest)?;
    let node = state.directory.find(&id).await?;
    expect_role(&node, &["processor"], "the pool size")?;
    log::info!("processor pool size on {id}: {max:?}");
    let body = web::Bytes::from(json!({ "max_shards": max }).to_string());
    Ok(pass_through(
        call_node(&state, &node, Method::PUT, "/control/pool", body).await?,
    ))
}

async fn wds_sessions(
    req: HttpRequest,
    state: web::Data<ScpState>,
) -> Result<HttpResponse, ScpError> {
    require_api(&req, &state, Need::Admin, false).await?;
    let nodes: Vec<NodeRecord> = state
        .directory
        .list()
        .await?
        .into_iter()
        .filter(|n| n.role == "wds" || n.role == "embedded")
        .collect();
    let mut total = 0;
    let per_node: Vec<Value> = stats_of(&state, nodes)
        .await
        .into_iter()
        .map(|v| {
            let sessions = v["stats"]["node"]["sessions"].as_i64();
            total += sessions.unwrap_or(0);
            json!({"id": v["node"]["id"], "ok": v["ok"], "sessions": sessions,
                   "authorized_sessions": v["stats"]["node"]["authorized_sessions"]})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"total_sessions": total, "nodes": per_node})))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/control/nodes", web::get().to(nodes))
        .route("/api/control/stats", web::get().to(all_stats))
        .route("/api/control/wds", web::get().to(wds_sessions))
        .route("/api/control/nodes/{id}/stats", web::get().to(node_stats))
        .route(
            "/api/control/nodes/{id}/listener/{cmd}",
            web::post().to(listener_command),
        )
        .route(
            "/api/control/nodes/{id}/listener/{what}",
            web::put().to(listener_setting),
        )
        .route("/api/control/nodes/{id}/pool", web::put().to(pool_size));
}
