//! The contract between every node and the control plane: the record each node keeps in
//! the node registry (written by its registrar, read by the SCP's directory), and the bodies
//! of the control routes that the SCP checks before relaying them to a node.
//!
//! The registry's Redis is not trusted to say where the nodes are: a record names the
//! address the control plane sends the admin token to. So each record carries a MAC under a
//! key derived from the admin token, which the nodes and the control plane share
//! ([`registry_key`]); a record that fails it is ignored (and counted) by the control plane.

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
    /// MAC of the fields above under the [`registry_key`] (hex); empty when unsigned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
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
            mac: String::new(),
        }
    }

    fn fields(&self) -> [Vec<u8>; 6] {
        [
            self.id.clone().into_bytes(),
            self.role.clone().into_bytes(),
            self.version.clone().into_bytes(),
            self.admin_url.clone().into_bytes(),
            self.started_ms.to_be_bytes().to_vec(),
            self.heartbeat_ms.to_be_bytes().to_vec(),
        ]
    }

    /// Signs the record as it is now.
    pub fn seal(&mut self, key: &[u8; 32]) {
        let f = self.fields();
        let parts: Vec<&[u8]> = f.iter().map(Vec::as_slice).collect();
        self.mac = crate::token::seal(key, &parts);
    }

    /// Whether the record was signed with `key` and not changed since.
    pub fn verify(&self, key: &[u8; 32]) -> bool {
        let f = self.fields();
        let parts: Vec<&[u8]> = f.iter().map(Vec::as_slice).collect();
        !self.mac.is_empty() && crate::token::unseal(key, &parts, &self.mac)
    }
}

/// The key node records are signed with, from the admin token every node and the control
/// plane share; `None` without one (records go unsigned, and the control plane, having no
/// token to send, calls no node).
pub fn registry_key(admin_token: &str) -> Option<[u8; 32]> {
    (!admin_token.is_empty())
        .then(|| crate::token::derive_key(admin_token.as_bytes(), "tickwire node registry v1"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_record_verifies_and_a_changed_one_does_not() {
        let key = registry_key("an-admin-token-of-thirty-two-bytes!").unwrap();
        let mut r = NodeRecord::new("n1", "listener", "http://10.0.0.5:4200");
        assert!(!r.verify(&key), "unsigned");
        r.seal(&key);
        assert!(r.verify(&key));
        let mut moved = r.clone();
        moved.admin_url = "http://attacker:4200".into();
        assert!(!moved.verify(&key), "pointed elsewhere");
        let other = registry_key("another-admin-token-of-32-bytes-too").unwrap();
        assert!(!r.verify(&other));
        assert!(registry_key("").is_none());
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<NodeRecord>(&json).unwrap(), r);
    }
}
