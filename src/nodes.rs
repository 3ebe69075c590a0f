//! The contract between every node and the control plane: the record each node keeps in
//! the node registry (written by its registrar, read by the SCP's directory), and the bodies
//! of the control routes that the SCP checks before relaying them to a node.

use serde::{Deserialize, Serialize};

/// What a node tells the control plane about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeRecord {
    /// Unique per process (role, host, pid).
    pub id: String,
    /// `listener`, `processor`, `wds` or `embedded`.
    pub role: String,
    pub version: String,
    /// Where the control plane reaches the node's admin routes.
    pub admin_url: String,
    pub started_ms: i64,
    /// Time of the last heartbeat (epoch ms).
    pub heartbeat_ms: i64,
}

impl NodeRecord {
    /// A record for a node starting now.
    pub fn new(id: &str, role: &str, admin_url: &str) -> Self {
        let now = chrono::Utc::now().timestamp_millis();
        NodeRecord {
            id: id.to_string(),
            role: role.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            admin_url: admin_url.trim_end_matches('/').to_string(),
            started_ms: now,
            heartbeat_ms: now,
        }
    }
}

/// The registry key of a node.
pub fn node_key(prefix: &str, id: &str) -> String {
    format!("{prefix}nodes:{id}")
}

/// `PUT /control/pool` body: `{"max_shards": n}`, `null` or 0 for the node's fair share.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolBody {
    max_shards: Option<u16>,
}

/// Parses a `PUT /control/pool` body into the cap (`None`: fair share), or the reason it is
/// malformed. The control plane checks bodies with it before calling a node.
pub fn parse_pool_body(body: &[u8]) -> Result<Option<u16>, String> {
    serde_json::from_slice::<PoolBody>(body)
        .map(|b| b.max_shards.filter(|n| *n > 0))
        .map_err(|e| format!("expected {{\"max_shards\": n or null}}: {e}"))
}
