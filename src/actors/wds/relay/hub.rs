//! RelayHub actor: the listener's indexed frames to every relay session that wants them.
//!
//! Per frame, not per event: the index says each event's channel and symbol, so the hub
//! looks up who wants it (wildcard holders of the channel, then holders of the symbol) and
//! collects, per session, the positions of its events. Each session then gets one frame:
//! the listener's own bytes when it wants all of them, else its events' original bytes
//! joined. Work is proportional to deliveries, not to sessions times events.
//!
//! Frames go straight into the session's bounded [`Outbound`]; the hub never waits on a
//! client. One that falls behind (more than the buffer queued, or its oldest frame older
//! than the lag limit, checked on every push and every second) gets Massive's
//! `slow_consumer` status and a close, and is cut off.
//!
//! The hub also keeps the last seconds of frames for `replay` (tickwire's extension):
//! handled between two frames in this one actor, so the replayed events, the end-of-replay
//! status and the live stream reach the client in order, with nothing missed between them.
//!
//! When the listener widens its upstream subscription (it says so in what it carries), the
//! hub accepts topics beyond it and reports what its sessions hold, per market, at most
//! every [`WANTS_FLUSH`], to whoever asked ([`WantsTo`]): the listener itself in embedded
//! mode, the Redis writer ([`super::wants`]) in distributed mode.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient};
use bytes::Bytes;

use super::RelaySettings;
use crate::actors::wds::metrics::RelayFigures;
use crate::massive::control::{parse_topics, Topic};
use crate::massive::events::encode_frame;
use crate::massive::subscriptions::SubscriptionSet;
use crate::massive::{Event, Market, Status};
use crate::relay::{RelayBatch, RelayKeys, RelayWants, Relayed, Widening};
use crate::wsio::{self, Outbound};

pub type RelaySessionId = u64;

/// How often changed wants are reported: subscriptions in a burst go up as one.
pub const WANTS_FLUSH: Duration = Duration::from_millis(250);

/// A Massive status as one WebSocket text frame.
pub fn status_frame(status: &str, message: &str) -> Bytes {
    let json = encode_frame(&[Event::Status(Status::new(status, message))]);
    wsio::text_frame(json.as_bytes())
}

/// An authenticated session joins.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub id: RelaySessionId,
    pub market: Market,
    pub out: Arc<Outbound>,
    /// Its key's hash: the session ends when the key does.
    pub key_hash: String,
    /// Told when the hub cuts the session off.
    pub cut: Recipient<Cut>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave(pub RelaySessionId);

/// `subscribe` (`on`) or `unsubscribe`, with Massive's `params`; the hub answers the
/// statuses itself, so they are queued before the first data frame they allow.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub id: RelaySessionId,
    pub params: String,
    pub on: bool,
}

/// `replay`: subscribe to `params` and first send what the buffer holds of them from `since`
/// (event time, epoch ms, inclusive), then a `replay_complete` status.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replay {
    pub id: RelaySessionId,
    pub params: String,
    pub since: i64,
}

/// The relay keys as now known: sessions whose key is gone end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KeysNow(pub Arc<RelayKeys>);

/// The node is stopping: every relay socket closes (1001, so clients reconnect elsewhere).
#[derive(Message)]
#[rtype(result = "()")]
pub struct GoingAway;

/// Report what the sessions hold to this recipient, now and on every change.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WantsTo(pub Recipient<RelayWants>);

/// The hub ended a session's stream (what it queued says why); the session finishes up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cut(pub &'static str);

struct Member {
    id: RelaySessionId,
    market: Market,
    out: Arc<Outbound>,
    subs: SubscriptionSet,
    topics: HashSet<Topic>,
    key_hash: String,
    cut: Recipient<Cut>,
    /// This frame's events for the session (positions in the batch's index).
    picks: Vec<u32>,
    /// Bytes a replay queued at once, allowed over the buffer until the client has read them.
    allowance: usize,
}

/// What the listener said it carries on a market.
struct CarriedNow {
    set: SubscriptionSet,
    list: Vec<String>,
    widens: Option<Widening>,
}

#[derive(Default)]
struct ChannelIndex {
    wild: Vec<usize>,
    symbols: HashMap<Box<str>, Vec<usize>>,
}

pub struct RelayHub {
    settings: RelaySettings,
    figures: RelayFigures,
    /// Sessions by slot (a freed slot is reused); `slots` finds a session's.
    members: Vec<Option<Member>>,
    free: Vec<usize>,
    slots: HashMap<RelaySessionId, usize>,
    /// Market -> channel -> who wants what.
    index: HashMap<Market, HashMap<Box<str>, ChannelIndex>>,
    /// What the listener carries, per market (unknown until it says).
    carried: HashMap<Market, CarriedNow>,
    /// Who hears what the sessions hold; markets changed since last told; what was told.
    wants_to: Vec<Recipient<RelayWants>>,
    wants_dirty: HashSet<Market>,
    wants_told: HashMap<Market, Vec<String>>,
    ring: VecDeque<(Arc<RelayBatch>, usize)>,
    ring_bytes: usize,
    ring_events: usize,
    touched: Vec<usize>,
}

impl RelayHub {
    pub fn new(settings: RelaySettings, figures: RelayFigures) -> Self {
        RelayHub {
            settings,
            figures,
            members: Vec::new(),
            free: Vec::new(),
            slots: HashMap::new(),
            index: HashMap::new(),
            carried: HashMap::new(),
            wants_to: Vec::new(),
            wants_dirty: HashSet::new(),
            wants_told: HashMap::new(),
            ring: VecDeque::new(),
            ring_bytes: 0,
            ring_events: 0,
            touched: Vec::new(),
        }
    }

    fn member(&mut self, id: RelaySessionId) -> Option<(usize, &mut Member)> {
        let slot = *self.slots.get(&id)?;
        self.members[slot].as_mut().map(|m| (slot, m))
    }

    /// Why `topic` may not be subscribed on `market`: outside what the listener carries,
    /// and beyond what it would widen to.
    fn refusal(&self, market: Market, topic: &Topic) -> Option<String> {
        let c = self.carried.get(&market)?;
        let carried = if topic.is_wildcard() {
            c.set.any_on(&topic.channel)
        } else {
            c.set.matches(&topic.channel, &topic.symbol)
        };
        let widened = c
            .widens
            .is_some_and(|w| w.wildcards || !topic.is_wildcard());
        if carried || widened {
            return None;
        }
        let upstream = c.list.join(",");
        Some(if c.widens.is_some() {
            format!(
                "{topic} is not carried by this relay, which adds single symbols only \
                 (upstream subscriptions: {upstream})"
            )
        } else {
            format!("{topic} is not carried by this relay (upstream subscriptions: {upstream})")
        })
    }

    /// The topics the sessions hold on `market`, sorted, at most `RELAY_MAX_TOPICS` of them
    /// (the union over sessions is otherwise unbounded; a listener adds fewer anyway).
    fn wants(&self, market: Market) -> Vec<String> {
        let mut out = Vec::new();
        for (channel, ci) in self.index.get(&market).into_iter().flatten() {
            if !ci.wild.is_empty() {
                out.push(format!("{channel}.*"));
            }
            out.extend(ci.symbols.keys().map(|sym| format!("{channel}.{sym}")));
        }
        out.sort();
        if out.len() > self.settings.max_topics {
            self.figures.wants_truncated.inc();
            out.truncate(self.settings.max_topics);
        }
        out
    }

    /// Tells the wants' recipients about the markets whose topics changed, where the
    /// listener widens (elsewhere nobody needs them; one that stopped widening hears "none").
    fn flush_wants(&mut self) {
        if self.wants_to.is_empty() {
            self.wants_dirty.clear();
            return;
        }
        for market in std::mem::take(&mut self.wants_dirty) {
            let widens = self
                .carried
                .get(&market)
                .is_some_and(|c| c.widens.is_some());
            let topics = if widens {
                self.wants(market)
            } else {
                Vec::new()
            };
            if self.wants_told.get(&market).unwrap_or(&Vec::new()) == &topics {
                continue;
            }
            for to in &self.wants_to {
                to.do_send(RelayWants {
                    market,
                    topics: topics.clone(),
                });
            }
            self.wants_told.insert(market, topics);
        }
    }

    fn subscribe(&mut self, id: RelaySessionId, params: &str, on: bool) -> Vec<Topic> {
        let Some((slot, m)) = self.member(id) else {
            return Vec::new();
        };
        let market = m.market;
        let (topics, _undotted) = parse_topics(params);
        let mut accepted = Vec::new();
        let mut answers = Vec::new();
        for topic in topics {
            // Unknown prefixes get no reply of any kind, as on Massive.
            if !market.knows_channel(&topic.channel) {
                continue;
            }
            if !on {
                self.unindex(slot, &topic);
                answers.push(status_frame(
                    "success",
                    &format!("unsubscribed to: {topic}"),
                ));
                continue;
            }
            let held = self.members[slot].as_ref().map_or(0, |m| m.topics.len());
            if held >= self.settings.max_topics && !self.holds(slot, &topic) {
                self.figures.refused.inc();
                let why = format!(
                    "maximum of {} subscriptions exceeded ({topic})",
                    self.settings.max_topics
                );
                answers.push(status_frame("error", &why));
                continue;
            }
            if let Some(why) = self.refusal(market, &topic) {
                self.figures.refused.inc();
                answers.push(status_frame("error", &why));
                continue;
            }
            self.reindex(slot, &topic);
            answers.push(status_frame("success", &format!("subscribed to: {topic}")));
            accepted.push(topic);
        }
        if let Some(Some(m)) = self.members.get(slot) {
            for a in answers {
                m.out.push(a);
            }
        }
        accepted
    }

    fn holds(&self, slot: usize, topic: &Topic) -> bool {
        matches!(self.members.get(slot), Some(Some(m)) if m.topics.contains(topic))
    }

    fn reindex(&mut self, slot: usize, topic: &Topic) {
        let Some(Some(m)) = self.members.get_mut(slot) else {
            return;
        };
        if !m.topics.insert(topic.clone()) {
            return;
        }
        m.subs.add(topic);
        self.wants_dirty.insert(m.market);
        let ci = self
            .index
            .entry(m.market)
            .or_default()
            .entry(topic.channel.as_str().into())
            .or_default();
        if topic.is_wildcard() {
            ci.wild.push(slot);
        } else {
            ci.symbols
                .entry(topic.symbol.as_str().into())
                .or_default()
                .push(slot);
        }
    }

    fn unindex(&mut self, slot: usize, topic: &Topic) {
        let Some(Some(m)) = self.members.get_mut(slot) else {
            return;
        };
        if !m.topics.remove(topic) {
            return;
        }
        m.subs.remove(topic);
        self.wants_dirty.insert(m.market);
        let Some(ci) = self
            .index
            .get_mut(&m.market)
            .and_then(|c| c.get_mut(topic.channel.as_str()))
        else {
            return;
        };
        if topic.is_wildcard() {
            ci.wild.retain(|&s| s != slot);
        } else if let Some(v) = ci.symbols.get_mut(topic.symbol.as_str()) {
            v.retain(|&s| s != slot);
            if v.is_empty() {
                ci.symbols.remove(topic.symbol.as_str());
            }
        }
    }

    fn remove(&mut self, id: RelaySessionId) -> Option<Member> {
        let slot = self.slots.remove(&id)?;
        let topics: Vec<Topic> = self.members[slot]
            .as_ref()
            .map(|m| m.topics.iter().cloned().collect())
            .unwrap_or_default();
        for t in &topics {
            self.unindex(slot, t);
        }
        self.free.push(slot);
        self.members[slot].take()
    }

    /// Ends a session: `last` frames replace whatever it had queued, then the close.
    fn cut(&mut self, id: RelaySessionId, reason: &'static str, why: &str, last: Vec<Bytes>) {
        if let Some(m) = self.remove(id) {
            self.figures.dropped.add(m.out.queued_bytes() as u64);
            m.out.finish_now(last);
            self.figures.closed(reason, id, why);
            m.cut.do_send(Cut(reason));
        }
    }

    fn cut_slow(&mut self, id: RelaySessionId, queued: usize, lag: Duration) {
        let why = format!("slow consumer ({queued} bytes queued, {lag:?} behind)");
        let last = vec![
            status_frame("slow_consumer", "slow consumer"),
            wsio::close_frame(1008),
        ];
        self.cut(id, "slow", &why, last);
    }

    /// Queues `frame` for the session in `slot`; cuts it off when it is too far behind.
    fn deliver(&mut self, slot: usize, frame: Bytes, events: usize) -> bool {
        let Some(Some(m)) = self.members.get_mut(slot) else {
            return false;
        };
        self.figures.frames_out.inc();
        self.figures.bytes_out.add(frame.len() as u64);
        self.figures.deliveries.add(events as u64);
        let queued = m.out.push(frame);
        if queued <= self.settings.client_buffer_bytes {
            m.allowance = 0;
        }
        let lag = m.out.lag();
        if queued > self.settings.client_buffer_bytes + m.allowance || lag > self.settings.max_lag()
        {
            let id = m.id;
            self.cut_slow(id, queued, lag);
            return false;
        }
        true
    }

    fn fan_out(&mut self, b: &RelayBatch) {
        let Some(channels) = self.index.get(&b.market) else {
            return;
        };
        self.touched.clear();
        for (i, ev) in b.events.iter().enumerate() {
            let Some(ci) = channels.get(&*ev.channel) else {
                continue;
            };
            for &slot in &ci.wild {
                if let Some(Some(m)) = self.members.get_mut(slot) {
                    if m.picks.is_empty() {
                        self.touched.push(slot);
                    }
                    m.picks.push(i as u32);
                }
            }
            let Some(holders) = ci.symbols.get(&*ev.symbol) else {
                continue;
            };
            for &slot in holders {
                if let Some(Some(m)) = self.members.get_mut(slot) {
                    // A wildcard holder already has it: each event once per session.
                    if m.subs.wildcard(&ev.channel) {
                        continue;
                    }
                    if m.picks.is_empty() {
                        self.touched.push(slot);
                    }
                    m.picks.push(i as u32);
                }
            }
        }
        // Sessions that want the whole frame share one copy of it.
        let mut whole: Option<Bytes> = None;
        let touched = std::mem::take(&mut self.touched);
        for &slot in &touched {
            let Some(Some(m)) = self.members.get_mut(slot) else {
                continue;
            };
            let frame = if b.is_all(&m.picks) {
                whole
                    .get_or_insert_with(|| wsio::text_frame(&b.frame))
                    .clone()
            } else {
                wsio::text_frame_from(|out| b.write_json(&m.picks, out))
            };
            let n = m.picks.len();
            m.picks.clear();
            self.deliver(slot, frame, n);
        }
        self.touched = touched;
    }

    fn keep(&mut self, b: Arc<RelayBatch>) {
        if self.settings.replay_secs == 0 {
            return;
        }
        let size = b.frame.len() + b.events.len() * std::mem::size_of::<crate::relay::RelayEvent>();
        self.ring_bytes += size;
        self.ring_events += b.events.len();
        let oldest_kept = b.received_at_ms - self.settings.replay_window().as_millis() as i64;
        self.ring.push_back((b, size));
        while let Some((front, size)) = self.ring.front() {
            let too_old = front.received_at_ms < oldest_kept;
            let too_big = self.ring_bytes > self.settings.replay_max_bytes;
            if !too_old && !too_big {
                break;
            }
            if too_big && !too_old {
                self.figures.ring_evicted.inc();
            }
            self.ring_bytes -= size;
            self.ring_events -= front.events.len();
            self.ring.pop_front();
        }
        self.figures.ring_bytes.set(self.ring_bytes as i64);
        self.figures.ring_events.set(self.ring_events as i64);
    }

    fn replay(&mut self, msg: Replay) {
        let accepted = self.subscribe(msg.id, &msg.params, true);
        let Some((slot, m)) = self.member(msg.id) else {
            return;
        };
        let market = m.market;
        let mut wanted = SubscriptionSet::default();
        for t in &accepted {
            wanted.add(t);
        }
        let mut frames = Vec::new();
        let mut count = 0usize;
        for (b, _) in self.ring.iter().filter(|(b, _)| b.market == market) {
            let picks: Vec<u32> = b
                .events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.time_ms >= msg.since && wanted.matches(&e.channel, &e.symbol))
                .map(|(i, _)| i as u32)
                .collect();
            if !picks.is_empty() {
                count += picks.len();
                frames.push(wsio::text_frame_from(|out| b.write_json(&picks, out)));
            }
        }
        let bytes: usize = frames.iter().map(Bytes::len).sum();
        let m = match self.members.get_mut(slot) {
            Some(Some(m)) => m,
            _ => return,
        };
        m.allowance = bytes;
        for f in frames {
            m.out.push(f);
        }
        self.figures.replays.inc();
        self.figures.replayed.add(count as u64);
        self.figures.deliveries.add(count as u64);
        let done = status_frame(
            "replay_complete",
            &format!("replayed {count} events since {}", msg.since),
        );
        self.deliver(slot, done, 0);
    }

    /// Cuts off the sessions that stopped reading even when nothing new is sent to them.
    fn sweep(&mut self) {
        let limit = self.settings.max_lag();
        let late: Vec<(RelaySessionId, usize, Duration)> = self
            .members
            .iter()
            .flatten()
            .filter_map(|m| {
                let lag = m.out.lag();
                (lag > limit).then(|| (m.id, m.out.queued_bytes(), lag))
            })
            .collect();
        for (id, queued, lag) in late {
            self.cut_slow(id, queued, lag);
        }
    }
}

impl Actor for RelayHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |act, _| act.sweep());
        ctx.run_interval(WANTS_FLUSH, |act, _| act.flush_wants());
    }
}

impl Handler<Relayed> for RelayHub {
    type Result = ();

    fn handle(&mut self, msg: Relayed, _: &mut Context<Self>) {
        self.figures.actor.received();
        match msg {
            Relayed::Batch(b) => {
                self.figures.batches_in.inc();
                self.figures.events_in.add(b.events.len() as u64);
                let b = Arc::new(b);
                self.fan_out(&b);
                self.keep(b);
            }
            Relayed::Carried(c) => {
                let mut set = SubscriptionSet::default();
                for t in c.topics.iter().filter_map(|t| Topic::parse(t)) {
                    set.add(&t);
                }
                let now = CarriedNow {
                    set,
                    list: c.topics,
                    widens: c.widens,
                };
                let was = self.carried.insert(c.market, now);
                if was.map(|w| w.widens) != Some(c.widens) {
                    self.wants_dirty.insert(c.market);
                }
            }
        }
    }
}

impl Handler<Join> for RelayHub {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        let member = Member {
            id: msg.id,
            market: msg.market,
            out: msg.out,
            subs: SubscriptionSet::default(),
            topics: HashSet::new(),
            key_hash: msg.key_hash,
            cut: msg.cut,
            picks: Vec::new(),
            allowance: 0,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.members[s] = Some(member);
                s
            }
            None => {
                self.members.push(Some(member));
                self.members.len() - 1
            }
        };
        self.slots.insert(msg.id, slot);
    }
}

impl Handler<Leave> for RelayHub {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.remove(msg.0);
    }
}

impl Handler<Subscribe> for RelayHub {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.subscribe(msg.id, &msg.params, msg.on);
    }
}

impl Handler<Replay> for RelayHub {
    type Result = ();

    fn handle(&mut self, msg: Replay, _: &mut Context<Self>) {
        self.replay(msg);
    }
}

impl Handler<KeysNow> for RelayHub {
    type Result = ();

    fn handle(&mut self, msg: KeysNow, _: &mut Context<Self>) {
        let gone: Vec<RelaySessionId> = self
            .members
            .iter()
            .flatten()
            .filter(|m| !msg.0.contains_key(&m.key_hash))
            .map(|m| m.id)
            .collect();
        for id in gone {
            let last = vec![
                status_frame("auth_failed", "API key revoked"),
                wsio::close_frame(1008),
            ];
            self.cut(id, "revoked", "its key was revoked", last);
        }
    }
}

impl Handler<WantsTo> for RelayHub {
    type Result = ();

    fn handle(&mut self, msg: WantsTo, _: &mut Context<Self>) {
        // The newcomer hears every market's topics at the next flush.
        self.wants_told.clear();
        self.wants_dirty.extend(self.index.keys().copied());
        self.wants_dirty.extend(self.carried.keys().copied());
        self.wants_to.push(msg.0);
    }
}

impl Handler<GoingAway> for RelayHub {
    type Result = ();

    fn handle(&mut self, _: GoingAway, _: &mut Context<Self>) {
        let ids: Vec<RelaySessionId> = self.slots.keys().copied().collect();
        for id in ids {
            if let Some(m) = self.remove(id) {
                m.out.finish_after(vec![wsio::close_frame(1001)]);
                self.figures.closed("shutdown", id, "the node is stopping");
                m.cut.do_send(Cut("shutdown"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::RelayEvent;
    use futures_util::StreamExt;

    fn settings() -> RelaySettings {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            r: RelaySettings,
        }
        let mut s = Cli::parse_from(["t"]).r;
        s.max_topics = 2;
        s
    }

    /// The JSON payloads of the server frames queued so far.
    async fn texts(stream: &mut crate::wsio::OutboundStream, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            let f = stream.next().await.expect("a frame").expect("not aborted");
            // Header: 2 bytes under 126 bytes of payload, else 4 (the tests stay under 64 KiB).
            let skip = if f[1] & 0x7f < 126 { 2 } else { 4 };
            out.push(String::from_utf8_lossy(&f[skip..]).to_string());
        }
        out
    }

    /// Hears what the hub tells: cuts (ignored) and wants (forwarded to the test).
    struct Sink(Option<tokio::sync::mpsc::UnboundedSender<RelayWants>>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Cut> for Sink {
        type Result = ();
        fn handle(&mut self, _: Cut, _: &mut Context<Self>) {}
    }
    impl Handler<RelayWants> for Sink {
        type Result = ();
        fn handle(&mut self, w: RelayWants, _: &mut Context<Self>) {
            if let Some(tx) = &self.0 {
                let _ = tx.send(w);
            }
        }
    }

    /// A hub with one session (id 1, stocks) and the session's frames.
    fn hub_with_session(
        sink: &actix::Addr<Sink>,
    ) -> (actix::Addr<RelayHub>, crate::wsio::OutboundStream) {
        let registry = crate::metrics::Registry::new();
        let figures = RelayFigures::register(&registry, &[]);
        let hub = RelayHub::new(settings(), figures).start();
        let (out, stream) = crate::wsio::outbound();
        hub.do_send(Join {
            id: 1,
            market: Market::Stocks,
            out: Arc::new(out),
            key_hash: "h".into(),
            cut: sink.clone().recipient(),
        });
        (hub, stream)
    }

    #[actix::test]
    async fn widening_accepts_symbols_beyond_upstream_and_reports_them() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Sink(Some(tx)).start();
        let (hub, mut stream) = hub_with_session(&sink);
        hub.do_send(WantsTo(sink.clone().recipient()));
        hub.do_send(Relayed::Carried(crate::relay::Carried {
            market: Market::Stocks,
            topics: vec!["T.*".into()],
            widens: Some(Widening { wildcards: false }),
        }));
        hub.do_send(Subscribe {
            id: 1,
            params: "Q.A,Q.*".into(),
            on: true,
        });
        let st = texts(&mut stream, 2).await;
        assert!(st[0].contains("subscribed to: Q.A"), "{st:?}");
        assert!(st[1].contains("adds single symbols only"), "{st:?}");
        let w = rx.recv().await.expect("wants reported");
        assert_eq!(
            (w.market, w.topics),
            (Market::Stocks, vec!["Q.A".to_string()])
        );
        hub.do_send(Leave(1));
        assert!(rx.recv().await.expect("and again").topics.is_empty());
    }

    #[actix::test]
    async fn picks_per_session_by_the_index_and_caps_topics() {
        let sink = Sink(None).start();
        let (hub, mut stream) = hub_with_session(&sink);
        hub.do_send(Subscribe {
            id: 1,
            params: "T.A,Q.*,T.B".into(),
            on: true,
        });
        let st = texts(&mut stream, 3).await;
        assert!(st[0].contains("subscribed to: T.A") && st[1].contains("subscribed to: Q.*"));
        assert!(
            st[2].contains("maximum of 2 subscriptions exceeded (T.B)"),
            "{st:?}"
        );
        let frame = bytes::Bytes::from_static(
            br#"[{"ev":"T","sym":"A"},{"ev":"T","sym":"B"},{"ev":"Q","sym":"C"}]"#,
        );
        let ev = |ch: &str, sym: &str, start: u32, end: u32| RelayEvent {
            channel: ch.into(),
            symbol: sym.into(),
            start,
            end,
            time_ms: 1,
        };
        hub.do_send(Relayed::Batch(RelayBatch {
            market: Market::Stocks,
            received_at_ms: 1,
            frame,
            events: vec![
                ev("T", "A", 1, 21),
                ev("T", "B", 22, 42),
                ev("Q", "C", 43, 63),
            ],
            whole: true,
        }));
        let data = texts(&mut stream, 1).await;
        assert_eq!(data[0], r#"[{"ev":"T","sym":"A"},{"ev":"Q","sym":"C"}]"#);
    }
}
