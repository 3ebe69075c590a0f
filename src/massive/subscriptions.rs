//! A Massive connection's subscription set (`T.*`, `Q.AAPL`, ...), as Massive applies it: the
//! simulator's sessions and the WDS relay's pick each event out with it.

use std::collections::HashSet;

use super::control::Topic;

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

    /// Whether `channel` is subscribed for every symbol.
    pub fn wildcard(&self, channel: &str) -> bool {
        self.channels
            .iter()
            .any(|c| c.channel == channel && c.wildcard)
    }

    /// Whether `channel` has anything subscribed, wildcard or symbol.
    pub fn any_on(&self, channel: &str) -> bool {
        self.channels
            .iter()
            .any(|c| c.channel == channel && (c.wildcard || !c.symbols.is_empty()))
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
