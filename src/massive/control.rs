//! Client -> server control messages: `auth`, `subscribe`, `unsubscribe` (massive.md §2.4).
//!
//! `params` is one comma-separated string. Whitespace around topics is insignificant, and a
//! topic splits at the FIRST dot only, because tickers contain dots (`T.BRK.A`).

use serde::{Deserialize, Serialize};

/// Massive-recommended maximum number of topics in one subscribe message.
pub const MAX_TOPICS_PER_MESSAGE: usize = 500;

// Massive's status texts a server sends (the simulator's and the relay's sessions).

/// `connected`, on upgrade.
pub const CONNECTED: &str = "Connected Successfully";
/// `auth_success`.
pub const AUTHENTICATED: &str = "authenticated";
/// `auth_failed` for an unknown key.
pub const AUTH_FAILED: &str = "authentication failed";
/// `auth_timeout`.
pub const AUTH_TIMEOUT: &str = "No authentication request received.";

/// One client message as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMessage {
    pub action: String,
    #[serde(default)]
    pub params: String,
}

impl ClientMessage {
    pub fn auth(key: &str) -> Self {
        ClientMessage {
            action: "auth".into(),
            params: key.into(),
        }
    }

    /// Subscribe messages for `topics`, at most [`MAX_TOPICS_PER_MESSAGE`] per message.
    pub fn subscribe_chunks(topics: &[Topic]) -> Vec<Self> {
        Self::chunks("subscribe", topics)
    }

    pub fn unsubscribe_chunks(topics: &[Topic]) -> Vec<Self> {
        Self::chunks("unsubscribe", topics)
    }

    fn chunks(action: &str, topics: &[Topic]) -> Vec<Self> {
        topics
            .chunks(MAX_TOPICS_PER_MESSAGE)
            .map(|c| ClientMessage {
                action: action.into(),
                params: c.iter().map(Topic::to_string).collect::<Vec<_>>().join(","),
            })
            .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One subscription topic: `<CH>.<SYM>`, where `SYM` may be `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic {
    pub channel: String,
    pub symbol: String,
}

impl Topic {
    /// Splits at the first dot. `None` for a topic without a dot or with an empty part.
    pub fn parse(s: &str) -> Option<Topic> {
        let (channel, symbol) = s.trim().split_once('.')?;
        let (channel, symbol) = (channel.trim(), symbol.trim());
        if channel.is_empty() || symbol.is_empty() {
            return None;
        }
        Some(Topic {
            channel: channel.to_string(),
            symbol: symbol.to_string(),
        })
    }

    pub fn is_wildcard(&self) -> bool {
        self.symbol == "*"
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.channel, self.symbol)
    }
}

/// Splits a `params` string into topics; empty pieces are skipped, undotted ones reported.
pub fn parse_topics(params: &str) -> (Vec<Topic>, Vec<String>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for piece in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match Topic::parse(piece) {
            Some(t) => good.push(t),
            None => bad.push(piece.to_string()),
        }
    }
    (good, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_split_at_first_dot_and_trim() {
        let (t, bad) = parse_topics(" T.BRK.A, AM.AAPL ,,Q.*,nodot");
        assert_eq!(
            t[0],
            Topic {
                channel: "T".into(),
                symbol: "BRK.A".into()
            }
        );
        assert_eq!(t[1].to_string(), "AM.AAPL");
        assert!(t[2].is_wildcard());
        assert_eq!(bad, vec!["nodot".to_string()]);
    }

    #[test]
    fn subscribe_is_chunked_at_500() {
        let topics: Vec<Topic> = (0..1201)
            .map(|i| Topic {
                channel: "T".into(),
                symbol: format!("S{i}"),
            })
            .collect();
        let msgs = ClientMessage::subscribe_chunks(&topics);
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[2].params.split(',').count(), 201);
        assert!(msgs[0]
            .to_json()
            .starts_with("{\"action\":\"subscribe\",\"params\":\"T.S0,T.S1,"));
    }
}
