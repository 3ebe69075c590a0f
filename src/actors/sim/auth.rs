//! API keys and entitlements of the simulator, and Massive's exact auth/REST error texts.

use std::collections::BTreeSet;

pub use crate::massive::control::{AUTHENTICATED, AUTH_FAILED, AUTH_TIMEOUT, CONNECTED};
use crate::massive::Market;

/// `auth_failed` message for a valid key whose plan lacks the market.
pub const PLAN_LACKS_MARKET: &str =
    "Your plan doesn't include websocket access. Visit https://massive.com/pricing to upgrade.";
/// `max_connections` message; the trailing space is part of the live text.
pub const MAX_CONNECTIONS: &str = "Maximum number of websocket connections exceeded. ";
/// REST 401 texts.
pub const REST_NO_KEY: &str = "API Key was not provided";
pub const REST_UNKNOWN_KEY: &str = "Unknown API Key";
/// REST 403 text.
pub const REST_NOT_ENTITLED: &str =
    "You are not entitled to this data. Please upgrade your plan at https://massive.com/pricing";
/// REST 429 text.
pub const REST_RATE_LIMITED: &str = "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. https://massive.com/pricing";

/// One accepted key and what it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub key: String,
    /// Markets the plan includes; empty means all.
    pub markets: BTreeSet<Market>,
    /// Channel prefixes refused with `not authorized`.
    pub denied_channels: BTreeSet<String>,
}

impl KeySpec {
    pub fn allows_market(&self, m: Market) -> bool {
        self.markets.is_empty() || self.markets.contains(&m)
    }

    pub fn allows_channel(&self, ch: &str) -> bool {
        !self.denied_channels.contains(ch)
    }
}

/// Parses `KEY[:MARKETS[:DENIED]]` items, comma separated (see `--api-keys`).
pub fn parse_key_specs(s: &str) -> Result<KeySpecs, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let mut parts = item.splitn(3, ':');
        let key = parts.next().unwrap_or_default().to_string();
        if key.is_empty() {
            return Err(format!("empty API key in {item:?}"));
        }
        let markets = parts
            .next()
            .unwrap_or_default()
            .split('+')
            .filter(|m| !m.is_empty())
            .map(|m| m.parse::<Market>().map_err(|e| e.to_string()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let denied = parts
            .next()
            .unwrap_or_default()
            .split('+')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        out.push(KeySpec {
            key,
            markets,
            denied_channels: denied,
        });
    }
    Ok(KeySpecs(out))
}

/// Parsed `--api-keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpecs(pub Vec<KeySpec>);

impl KeySpecs {
    pub fn find(&self, key: &str) -> Option<&KeySpec> {
        self.0.iter().find(|k| k.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_parse() {
        let k = parse_key_specs("demo, stocksonly:stocks, nonoi:stocks+options:NOI+FMV").unwrap();
        assert!(k.find("demo").unwrap().allows_market(Market::Crypto));
        let s = k.find("stocksonly").unwrap();
        assert!(s.allows_market(Market::Stocks) && !s.allows_market(Market::Options));
        let n = k.find("nonoi").unwrap();
        assert!(!n.allows_channel("NOI") && n.allows_channel("T"));
        assert!(parse_key_specs("x:bonds").is_err());
        assert!(k.find("nope").is_none());
    }
}
