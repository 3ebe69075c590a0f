//! What flows from the feed to sessions (events encoded once, shared by all), and each
//! session's subscription set that picks its events out.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use crate::massive::control::Topic;

/// One event, serialised once by the feed and shared by every session that wants it.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    /// Subscription channel that delivers it (usually its `ev`).
    pub channel: Arc<str>,
    pub symbol: Arc<str>,
    /// The event's JSON object, exactly as sent.
    pub json: Bytes,
}

#[derive(Debug, Default, Clone)]
struct ChannelSubs {
    channel: String,
    wildcard: bool,
    symbols: HashSet<String>,
}

/// A connection's subscriptions. A symbol covered by both a wildcard and an explicit topic
/// matches once, so it is delivered once.
#[derive(Debug, Default, Clone)]
pub struct SubscriptionSet {
    // At most a handful of channels per market: a linear scan beats hashing the channel.
    channels: Vec<ChannelSubs>,
}

impl SubscriptionSet {
    fn entry(&mut self, channel: &str) -> &mut ChannelSubs {
        if let Some(pos) = self.channels.iter().position(|c| c.channel == channel) {
            &mut self.channels[pos]
        } else {
            self.channels.push(ChannelSubs {
                channel: channel.to_string(),
                ..ChannelSubs::default()
            });
            let last = self.channels.len() - 1;
            &mut self.channels[last]
        }
    }

    pub fn add(&mut self, t: &Topic) {
        let e = self.entry(&t.channel);
        if t.is_wildcard() {
            e.wildcard = true;
        } else {
            e.symbols.insert(t.symbol.clone());
        }
    }

    pub fn remove(&mut self, t: &Topic) {
        let e = self.entry(&t.channel);
        if t.is_wildcard() {
            e.wildcard = false;
        } else {
            e.symbols.remove(&t.symbol);
        }
    }

    /// Explicit symbols subscribed on `channel`.
    pub fn explicit_count(&self, channel: &str) -> usize {
        self.channels
            .iter()
            .find(|c| c.channel == channel)
            .map_or(0, |c| c.symbols.len())
    }

    pub fn matches(&self, channel: &str, symbol: &str) -> bool {
        self.channels
            .iter()
            .find(|c| c.channel == channel)
            .is_some_and(|c| c.wildcard || c.symbols.contains(symbol))
    }

    pub fn is_empty(&self) -> bool {
        self.channels
            .iter()
            .all(|c| !c.wildcard && c.symbols.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_explicit_match_once_and_unsubscribe() {
        let mut s = SubscriptionSet::default();
        s.add(&Topic::parse("T.*").unwrap());
        s.add(&Topic::parse("T.AAPL").unwrap());
        s.add(&Topic::parse("Q.BRK.A").unwrap());
        assert!(s.matches("T", "MSFT"));
        assert!(s.matches("Q", "BRK.A"));
        assert!(!s.matches("Q", "AAPL"));
        assert!(!s.matches("AM", "AAPL"));
        s.remove(&Topic::parse("T.*").unwrap());
        assert!(!s.matches("T", "MSFT"));
        assert!(s.matches("T", "AAPL"));
        assert_eq!(s.explicit_count("T"), 1);
        assert!(!s.is_empty());
    }
}
