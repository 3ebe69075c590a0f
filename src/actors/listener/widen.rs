//! Widening (optional, `LISTENER_RELAY_WIDEN`): the listener adds to its upstream Massive
//! subscription what relay clients subscribe beyond `MASSIVE_SUBSCRIPTIONS`, and takes it off
//! again once no client has wanted it for a while.
//!
//! The relays report what their clients hold ([`crate::relay::RelayWants`]): in process in
//! embedded mode, through the node registry's Redis in distributed mode ([`watch`] reads the
//! union of every WDS node's entry). [`Widened`] decides what to subscribe and unsubscribe;
//! the `Listener` sends it on its socket and announces the topics it now carries.
//!
//! Bounded: single symbols only unless wildcards are allowed (one `T.*` on options is a
//! firehose), at most `LISTENER_RELAY_WIDEN_MAX_TOPICS` added (more are counted and logged,
//! not added), and a topic nobody wants lingers `LISTENER_RELAY_WIDEN_LINGER_SECS` so a client
//! that reconnects does not make the listener unsubscribe and subscribe again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use actix::Recipient;
use deadpool_redis::redis::AsyncCommands;

use super::metrics::ConnectionFigures;
use crate::massive::control::Topic;
use crate::massive::subscriptions::SubscriptionSet;
use crate::massive::Market;
use crate::relay::{union_of_wants, wants_key, RelayWants, Widening};

/// The widening flags (`tickwire-listener` and embedded `tickwire`).
#[derive(clap::Args, Debug, Clone)]
pub struct WidenArgs {
    /// Widen the upstream Massive subscription to what relay clients subscribe beyond
    /// `MASSIVE_SUBSCRIPTIONS`, and narrow it again when they leave. Off: such a subscription
    /// gets an error status naming it.
    #[arg(long = "listener-relay-widen", env = "LISTENER_RELAY_WIDEN", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub enabled: bool,

    /// Also add whole channels (`T.*`) when widening, not only single symbols.
    #[arg(long = "listener-relay-widen-wildcards", env = "LISTENER_RELAY_WIDEN_WILDCARDS",
          default_value = "false", value_parser = clap::builder::BoolishValueParser::new(),
          action = clap::ArgAction::Set)]
    pub wildcards: bool,

    /// Most topics added upstream per market; past it, relay clients' topics are not added
    /// (counted and logged).
    #[arg(
        long = "listener-relay-widen-max-topics",
        env = "LISTENER_RELAY_WIDEN_MAX_TOPICS",
        default_value_t = 1000
    )]
    pub max_topics: usize,

    /// Seconds an added topic stays subscribed after the last relay client let it go.
    #[arg(
        long = "listener-relay-widen-linger-secs",
        env = "LISTENER_RELAY_WIDEN_LINGER_SECS",
        default_value_t = 30
    )]
    pub linger_secs: u64,
}

impl WidenArgs {
    /// The connection's widening, when on.
    pub fn config(&self) -> Option<WidenConfig> {
        self.enabled.then(|| WidenConfig {
            wildcards: self.wildcards,
            max_topics: self.max_topics,
            linger: Duration::from_secs(self.linger_secs),
        })
    }
}

/// How one connection widens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WidenConfig {
    pub wildcards: bool,
    pub max_topics: usize,
    pub linger: Duration,
}

/// What a change of wants asks of the connection.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub subscribe: Vec<Topic>,
    /// Topics wanted but not added: past the cap.
    pub capped: usize,
}

/// The topics a connection added beyond its own subscriptions.
#[derive(Debug)]
pub struct Widened {
    cfg: WidenConfig,
    /// Added topics; `Some(since)` once no relay client wants it.
    extra: HashMap<Topic, Option<Instant>>,
}

impl Widened {
    pub fn new(cfg: WidenConfig) -> Self {
        Widened {
            cfg,
            extra: HashMap::new(),
        }
    }

    /// What the relays hear of it.
    pub fn policy(&self) -> Widening {
        Widening {
            wildcards: self.cfg.wildcards,
        }
    }

    pub fn max_topics(&self) -> usize {
        self.cfg.max_topics
    }

    /// The added topics, sorted.
    pub fn topics(&self) -> Vec<Topic> {
        let mut t: Vec<Topic> = self.extra.keys().cloned().collect();
        t.sort();
        t
    }

    /// The relays' clients now hold `wanted` on `market`; `base` is the connection's own
    /// subscription. Returns what to subscribe now; what is no longer wanted starts to
    /// linger (see [`Widened::expire`]).
    pub fn want(
        &mut self,
        market: Market,
        base: &[Topic],
        wanted: &[String],
        now: Instant,
    ) -> Change {
        let mut own = SubscriptionSet::default();
        for t in base {
            own.add(t);
        }
        let mut candidates: BTreeSet<Topic> = wanted
            .iter()
            .filter_map(|t| Topic::parse(t))
            .filter(|t| market.knows_channel(&t.channel))
            .filter(|t| self.cfg.wildcards || !t.is_wildcard())
            .filter(|t| {
                if t.is_wildcard() {
                    !own.wildcard(&t.channel)
                } else {
                    !own.matches(&t.channel, &t.symbol)
                }
            })
            .collect();
        // A symbol under an added wildcard comes with it.
        let wild: Vec<String> = candidates
            .iter()
            .filter(|t| t.is_wildcard())
            .map(|t| t.channel.clone())
            .collect();
        candidates.retain(|t| t.is_wildcard() || !wild.contains(&t.channel));
        // What is added already (wanted or lingering) keeps its place: a newcomer gets what
        // room is left under the cap, and waits for a lingering topic to go.
        let (kept, new): (Vec<Topic>, Vec<Topic>) = candidates
            .into_iter()
            .partition(|t| self.extra.contains_key(t));
        let kept: HashSet<Topic> = kept.into_iter().collect();
        let room = self.cfg.max_topics.saturating_sub(self.extra.len());
        let capped = new.len().saturating_sub(room);
        let new: Vec<Topic> = new.into_iter().take(room).collect();
        for (t, since) in self.extra.iter_mut() {
            if kept.contains(t) {
                *since = None;
            } else if since.is_none() {
                *since = Some(now);
            }
        }
        for t in &new {
            self.extra.insert(t.clone(), None);
        }
        Change {
            subscribe: new,
            capped,
        }
    }

    /// Removes the topics nobody has wanted for the linger time: to unsubscribe.
    pub fn expire(&mut self, now: Instant) -> Vec<Topic> {
        let linger = self.cfg.linger;
        let mut gone: Vec<Topic> = self
            .extra
            .iter()
            .filter(|(_, since)| since.is_some_and(|s| now.duration_since(s) >= linger))
            .map(|(t, _)| t.clone())
            .collect();
        gone.sort();
        for t in &gone {
            self.extra.remove(t);
        }
        gone
    }
}

/// How often the listener reads what the WDS nodes' relay clients want.
pub const WANTS_POLL: Duration = Duration::from_secs(1);

/// Reads every [`WANTS_POLL`] the union of the WDS nodes' entries under
/// [`wants_key`] for each market, and tells that market's listener when it changed. Stale
/// entries (a node gone) are removed; a failed read keeps the last union (counted).
pub fn watch(
    pool: deadpool_redis::Pool,
    registry_prefix: String,
    listeners: Vec<(Market, Recipient<RelayWants>, ConnectionFigures)>,
) {
    actix::spawn(async move {
        let mut told: HashMap<Market, Vec<String>> = HashMap::new();
        let mut tick = tokio::time::interval(WANTS_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if listeners.iter().all(|(_, to, _)| !to.connected()) {
                return;
            }
            for (market, to, figures) in &listeners {
                let key = wants_key(&registry_prefix, *market);
                let topics = match read_wants(&pool, &key).await {
                    Ok((topics, unreadable)) => {
                        if unreadable > 0 {
                            figures.wants_failed(&format!("{unreadable} unreadable entries"));
                        }
                        topics
                    }
                    Err(e) => {
                        figures.wants_failed(&e);
                        continue;
                    }
                };
                if told.get(market) != Some(&topics) {
                    to.do_send(RelayWants {
                        market: *market,
                        topics: topics.clone(),
                    });
                    told.insert(*market, topics);
                }
            }
        }
    });
}

/// The union of the fresh entries of `key`, and how many were unreadable; stale ones are
/// deleted on the way.
async fn read_wants(
    pool: &deadpool_redis::Pool,
    key: &str,
) -> Result<(Vec<String>, usize), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let raw: HashMap<String, String> = conn.hgetall(key).await.map_err(|e| e.to_string())?;
    let now = chrono::Utc::now().timestamp_millis();
    let (topics, unreadable, stale) =
        union_of_wants(raw.iter().map(|(k, v)| (k.as_str(), v.as_str())), now);
    if !stale.is_empty() {
        let _: Result<(), _> = conn.hdel(key, &stale).await;
    }
    Ok((topics, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(s: &str) -> Vec<Topic> {
        crate::massive::control::parse_topics(s).0
    }

    fn wanted(s: &str) -> Vec<String> {
        s.split(',').map(str::to_string).collect()
    }

    fn widened(wildcards: bool, max_topics: usize) -> Widened {
        Widened::new(WidenConfig {
            wildcards,
            max_topics,
            linger: Duration::from_secs(10),
        })
    }

    #[test]
    fn adds_what_is_not_carried_and_lets_it_linger() {
        let base = topics("T.*,Q.AAPL");
        let mut w = widened(false, 10);
        let t0 = Instant::now();
        let c = w.want(
            Market::Stocks,
            &base,
            &wanted("T.MSFT,Q.AAPL,Q.MSFT,Q.*,XT.X-USD,AM.IBM,junk"),
            t0,
        );
        // Carried already (T.MSFT under T.*, Q.AAPL), a wildcard, a crypto channel: not added.
        assert_eq!(c.subscribe, topics("AM.IBM,Q.MSFT"));
        assert_eq!(c.capped, 0);
        // Wanted again: nothing new; then let go: it lingers, then goes.
        assert_eq!(
            w.want(Market::Stocks, &base, &wanted("Q.MSFT,AM.IBM"), t0),
            Change::default()
        );
        w.want(Market::Stocks, &base, &wanted("Q.MSFT"), t0);
        assert!(w.expire(t0 + Duration::from_secs(9)).is_empty());
        // Wanted again while it lingers: it stays.
        w.want(Market::Stocks, &base, &wanted("Q.MSFT,AM.IBM"), t0);
        assert!(w.expire(t0 + Duration::from_secs(11)).is_empty());
        w.want(Market::Stocks, &base, &[], t0 + Duration::from_secs(20));
        assert_eq!(
            w.expire(t0 + Duration::from_secs(30)),
            topics("AM.IBM,Q.MSFT")
        );
        assert!(w.topics().is_empty());
    }

    #[test]
    fn wildcards_when_allowed_cover_their_symbols_and_the_cap_keeps_what_is_added() {
        let mut w = widened(true, 2);
        let t0 = Instant::now();
        let c = w.want(Market::Stocks, &[], &wanted("Q.*,Q.AAPL,T.A"), t0);
        assert_eq!(c.subscribe, topics("Q.*,T.A"));
        let c = w.want(Market::Stocks, &[], &wanted("A.A,Q.*,T.A"), t0);
        assert_eq!((c.subscribe.len(), c.capped), (0, 1), "full: A.A waits");
        assert_eq!(w.topics(), topics("Q.*,T.A"));
        // T.A let go still holds its place while it lingers; once gone, A.A gets it.
        let c = w.want(Market::Stocks, &[], &wanted("A.A,Q.*"), t0);
        assert_eq!((c.subscribe.len(), c.capped), (0, 1));
        assert_eq!(w.expire(t0 + Duration::from_secs(10)), topics("T.A"));
        let c = w.want(Market::Stocks, &[], &wanted("A.A,Q.*"), t0);
        assert_eq!(c.subscribe, topics("A.A"));
    }
}
