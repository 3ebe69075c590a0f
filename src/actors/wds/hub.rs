//! Hub actor: the widget data service's one upstream subscription per node, fanned out to
//! the sessions.
//!
//! - **Refcounted interest.** The first session to want a feed (an exact channel, or a
//!   pattern with `*`) makes the hub SUBSCRIBE / PSUBSCRIBE; the last to leave makes it
//!   unsubscribe. Upstream is Redis pub/sub ([`crate::actors::wds::upstream`], resubscribed after a
//!   reconnect) or, in embedded mode, the [`MemoryStore`](crate::actors::store::memory_store::MemoryStore),
//!   to which the hub subscribes once for everything and matches locally.
//! - **Shared frames.** Each message is turned into its v1 frame (the payload verbatim) and
//!   its v2 frame (topic, per-topic sequence number, receive time) once, and every session
//!   gets a reference-counted copy in its [`Outbox`]: the payload is never serialised per
//!   client, and no client can make the hub wait.
//! - **Snapshot then stream.** A v2 subscription to a channel starts with a snapshot taken by
//!   [`Snapshot`]: the store reads the key and, atomically with the read, publishes a marker
//!   on this node's marker channel. Messages on the channel before the marker are already in
//!   the snapshot and are skipped for that session; messages after it are buffered until the
//!   snapshot is sent, then flow. No gap, no duplicate, and the snapshot's `seq` is that of
//!   the last message it includes. After an upstream reconnect every v2 subscription gets a
//!   fresh snapshot, since messages published while away are lost to pub/sub.
//! - **Receive times.** Embedded mode hands them over with each message; on Redis the
//!   results writer announces them on the timing channel just before the values.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::{mpsc, oneshot};

use super::metrics::HubFigures;
use crate::actors::store::memory_store::Published;
use crate::actors::wds::outbox::{Frame, Outbox, Pushed};
use crate::actors::wds::protocol::{self, v2};
use crate::actors::wds::upstream::{UpCmd, UpEvent};
use crate::store::{glob_match, Snapshot, Store, StoreError, Stored};

pub type SessionId = u64;

/// A session wants `feed` (store key or pattern, with the results prefix).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub session: SessionId,
    pub feed: String,
    pub outbox: Arc<Outbox>,
    /// v2 frames (and, for a channel, a snapshot first); v1 gets raw payloads.
    pub v2: bool,
    /// List items in the snapshot.
    pub limit: usize,
    /// Fired once upstream delivers the feed (the subscription is confirmed), so the session
    /// acknowledges only what is really live: a client that publishes after the ack gets it.
    pub ready: Option<oneshot::Sender<()>>,
}

/// A session no longer wants these feeds.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub session: SessionId,
    pub feeds: Vec<String>,
}

/// The hub's state for `/stats`.
#[derive(Message)]
#[rtype(result = "HubState")]
pub struct GetHubState;

#[derive(Debug, Clone, serde::Serialize)]
pub struct HubState {
    pub connected: bool,
    pub channels: usize,
    pub patterns: usize,
    pub subscriptions: usize,
}

pub struct HubConfig {
    /// Prefix of every client-facing key; stripped from the topics clients see.
    pub results_prefix: String,
    /// Names this node's marker channel.
    pub node_id: String,
    /// Redis pub/sub URL; `None` in embedded mode (subscribe the hub to the memory store).
    pub redis_url: Option<String>,
}

/// A value topic: only its newest value matters, so a lagging client gets coalesced updates.
pub fn is_value_topic(topic: &str) -> bool {
    ["scanners:", "quote:", "daily_range:"]
        .iter()
        .any(|p| topic.starts_with(p))
}

/// Which snapshot a marker or a read belongs to.
struct Ticket {
    token: u64,
    session: SessionId,
    feed: String,
}

impl Ticket {
    /// A marker payload: `{token} {session} {feed}`.
    fn parse(payload: &[u8]) -> Option<Ticket> {
        let mut it = std::str::from_utf8(payload).ok()?.splitn(3, ' ');
        Some(Ticket {
            token: it.next()?.parse().ok()?,
            session: it.next()?.parse().ok()?,
            feed: it.next()?.to_string(),
        })
    }
}

struct Pending {
    token: u64,
    marker_seen: bool,
    /// The seq of the last message before the marker: the snapshot's.
    seq: u64,
    result: Option<Result<Option<Stored>, StoreError>>,
    /// Messages after the marker, until the snapshot is out.
    buffer: Vec<(Frame, Bytes)>,
}

enum State {
    Live,
    /// A v2 subscription waiting for the upstream subscription to be confirmed.
    Waiting,
    Snapshotting(Box<Pending>),
}

struct Member {
    outbox: Arc<Outbox>,
    v2: bool,
    /// List items in its snapshots.
    limit: usize,
    state: State,
}

struct Interest {
    pattern: bool,
    /// The feed as clients name it (results prefix stripped).
    topic: Arc<str>,
    members: HashMap<SessionId, Member>,
    /// Messages seen on the channel (exact feeds).
    seq: u64,
    /// Per matched channel (patterns).
    seqs: HashMap<Arc<str>, u64>,
}

pub struct Hub {
    cfg: HubConfig,
    store: Store,
    upstream: Option<mpsc::UnboundedSender<UpCmd>>,
    connected: bool,
    feeds: HashMap<String, Interest>,
    patterns: BTreeSet<String>,
    /// Subscribes sent and not yet confirmed, per feed (survives the interest going away,
    /// so a confirmation of an older subscribe is never taken for a newer one's).
    unacked: HashMap<String, u32>,
    /// Sessions waiting for a feed to be live upstream.
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
    next_token: u64,
    marker_channel: String,
    timing_channel: String,
    received_at: HashMap<Arc<str>, i64>,
    figures: HubFigures,
    last_deliveries: u64,
}

impl Hub {
    pub fn new(cfg: HubConfig, store: Store, figures: HubFigures) -> Self {
        let marker_channel = format!("{}tickwire:wds:{}", cfg.results_prefix, cfg.node_id);
        let timing_channel = crate::store::timing_channel(&cfg.results_prefix);
        Hub {
            store,
            upstream: None,
            connected: cfg.redis_url.is_none(),
            feeds: HashMap::new(),
            patterns: BTreeSet::new(),
            unacked: HashMap::new(),
            waiters: HashMap::new(),
            next_token: 1,
            marker_channel,
            timing_channel,
            received_at: HashMap::new(),
            figures,
            last_deliveries: 0,
            cfg,
        }
    }

    fn command(&mut self, cmd: UpCmd) {
        if let Some(up) = &self.upstream {
            if let UpCmd::Subscribe(f) | UpCmd::PSubscribe(f) = &cmd {
                *self.unacked.entry(f.clone()).or_default() += 1;
            }
            let _ = up.send(cmd);
        }
    }

    /// Upstream delivers this feed (confirmed and connected).
    fn ready(&self, feed: &str) -> bool {
        self.connected && !self.unacked.contains_key(feed)
    }

    fn client_topic<'a>(&self, channel: &'a str) -> &'a str {
        channel
            .strip_prefix(self.cfg.results_prefix.as_str())
            .unwrap_or(channel)
    }

    fn snapshot(&self) -> HubState {
        HubState {
            connected: self.connected,
            channels: self.feeds.len() - self.patterns.len(),
            patterns: self.patterns.len(),
            subscriptions: self.feeds.values().map(|i| i.members.len()).sum(),
        }
    }

    fn update_gauges(&self) {
        let f = self.snapshot();
        self.figures.channels.set(f.channels as i64);
        self.figures.patterns.set(f.patterns as i64);
    }

    fn join(&mut self, mut msg: Join, ctx: &mut Context<Self>) {
        let pattern = msg.feed.contains('*');
        if !self.feeds.contains_key(&msg.feed) {
            let topic: Arc<str> = Arc::from(self.client_topic(&msg.feed));
            self.feeds.insert(
                msg.feed.clone(),
                Interest {
                    pattern,
                    topic,
                    members: HashMap::new(),
                    seq: 0,
                    seqs: HashMap::new(),
                },
            );
            if pattern {
                self.patterns.insert(msg.feed.clone());
                self.command(UpCmd::PSubscribe(msg.feed.clone()));
            } else {
                self.command(UpCmd::Subscribe(msg.feed.clone()));
            }
            self.update_gauges();
        }
        let snapshot = msg.v2 && !pattern;
        let ready = self.ready(&msg.feed);
        if let Some(tx) = msg.ready.take() {
            if ready {
                let _ = tx.send(());
            } else {
                self.waiters.entry(msg.feed.clone()).or_default().push(tx);
            }
        }
        let Some(interest) = self.feeds.get_mut(&msg.feed) else {
            return;
        };
        // A repeated subscribe is acknowledged again but delivered once; a repeated v2
        // subscribe starts over from a new snapshot (the old one's marker finds no match).
        if !snapshot && interest.members.contains_key(&msg.session) {
            return;
        }
        let state = if snapshot {
            State::Waiting
        } else {
            State::Live
        };
        interest.members.insert(
            msg.session,
            Member {
                outbox: msg.outbox,
                v2: msg.v2,
                limit: msg.limit,
                state,
            },
        );
        if snapshot && ready {
            self.start_snapshot(&msg.feed, msg.session, ctx);
        }
    }

    fn leave(&mut self, msg: Leave) {
        for feed in msg.feeds {
            let Some(interest) = self.feeds.get_mut(&feed) else {
                continue;
            };
            interest.members.remove(&msg.session);
            if interest.members.is_empty() {
                let pattern = interest.pattern;
                self.feeds.remove(&feed);
                self.waiters.remove(&feed);
                if pattern {
                    self.patterns.remove(&feed);
                    self.command(UpCmd::PUnsubscribe(feed));
                } else {
                    self.command(UpCmd::Unsubscribe(feed));
                }
            }
        }
        self.update_gauges();
    }

    /// Reads `feed` for `session` with a marker (see the module docs).
    fn start_snapshot(&mut self, feed: &str, session: SessionId, ctx: &mut Context<Self>) {
        let Some(member) = self
            .feeds
            .get_mut(feed)
            .and_then(|i| i.members.get_mut(&session))
        else {
            return;
        };
        let limit = member.limit;
        let token = self.next_token;
        self.next_token += 1;
        member.state = State::Snapshotting(Box::new(Pending {
            token,
            marker_seen: false,
            seq: 0,
            result: None,
            buffer: Vec::new(),
        }));
        // The marker names its snapshot (token, session, feed): no lookup table to keep.
        let ticket = Ticket {
            token,
            session,
            feed: feed.to_string(),
        };
        let req = self.store.snapshot.send(Snapshot {
            key: feed.to_string(),
            limit,
            marker_channel: self.marker_channel.clone(),
            marker: Bytes::from(format!("{token} {session} {feed}")),
        });
        ctx.spawn(req.into_actor(self).map(move |r, act, _| {
            let r = r.unwrap_or_else(|e| Err(StoreError::from(e)));
            act.snapshot_read(&ticket, r);
        }));
    }

    fn snapshot_read(&mut self, t: &Ticket, r: Result<Option<Stored>, StoreError>) {
        let failed = r.is_err();
        if let Some(p) = self.pending_mut(t) {
            p.result = Some(r);
            if failed {
                // The marker was never published: finish now, with an error.
                p.marker_seen = true;
            }
        }
        self.try_complete(t);
    }

    fn marker(&mut self, payload: &[u8]) {
        let Some(t) = Ticket::parse(payload) else {
            return;
        };
        let seq = self.feeds.get(&t.feed).map_or(0, |i| i.seq);
        if let Some(p) = self.pending_mut(&t) {
            p.marker_seen = true;
            p.seq = seq;
        }
        self.try_complete(&t);
    }

    /// The snapshot `t` names, if that member is still waiting for exactly it.
    fn pending_mut(&mut self, t: &Ticket) -> Option<&mut Pending> {
        let member = self.feeds.get_mut(&t.feed)?.members.get_mut(&t.session)?;
        match &mut member.state {
            State::Snapshotting(p) if p.token == t.token => Some(p),
            _ => None,
        }
    }

    fn try_complete(&mut self, t: &Ticket) {
        let feed = &t.feed;
        let Some(interest) = self.feeds.get_mut(feed) else {
            return;
        };
        let topic = interest.topic.clone();
        let Some(member) = interest.members.get_mut(&t.session) else {
            return;
        };
        let done = matches!(&member.state,
            State::Snapshotting(p) if p.token == t.token && p.marker_seen && p.result.is_some());
        if !done {
            return;
        }
        let State::Snapshotting(p) = std::mem::replace(&mut member.state, State::Live) else {
            return;
        };
        let Pending {
            result,
            buffer,
            seq,
            ..
        } = *p;
        let Some(result) = result else {
            return;
        };
        let head = match result {
            Ok(v) => {
                self.figures.snapshots.inc();
                let text = v2::snapshot(&topic, seq, &protocol::stored_json(v.as_ref()));
                member.outbox.push(Frame {
                    slot: None,
                    text: ByteString::from(text),
                });
                match v {
                    Some(Stored::Str(b)) => Some(b),
                    Some(Stored::List(l)) => l.into_iter().next(),
                    None => None,
                }
            }
            Err(e) => {
                self.figures.snapshot_errors.inc();
                log::warn!("snapshot of {feed} failed: {e}");
                let text = v2::error("unavailable", &format!("snapshot: {e}"), Some(&topic), None);
                member.outbox.push(Frame {
                    slot: None,
                    text: ByteString::from(text),
                });
                None
            }
        };
        for (i, (frame, payload)) in buffer.into_iter().enumerate() {
            // A writer that does not publish atomically with its SET may land the snapshot's
            // own value just after the marker: that one is already in the snapshot.
            if i == 0 && head.as_ref() == Some(&payload) {
                continue;
            }
            member.outbox.push(frame);
        }
    }

    /// One published message on `channel`; `pattern` is set for a Redis pattern delivery.
    fn message(
        &mut self,
        channel: Arc<str>,
        pattern: Option<Arc<str>>,
        payload: Bytes,
        received_at: Option<i64>,
        embedded: bool,
    ) {
        self.figures.messages.inc();
        if *channel == *self.marker_channel {
            self.marker(&payload);
            return;
        }
        if *channel == *self.timing_channel {
            self.timing(&payload);
            return;
        }
        let received_at = received_at
            .filter(|&t| t > 0)
            .or_else(|| self.received_at.get(&channel).copied());
        if let Some(t) = received_at {
            let now = chrono::Utc::now().timestamp_millis();
            self.figures.latency.observe((now - t).max(0) as f64);
        }
        let mut fanout = Fanout {
            channel: &channel,
            topic: self.client_topic(&channel),
            payload: &payload,
            received_at,
            v1: None,
            figures: &self.figures,
        };
        if embedded {
            if let Some(i) = self.feeds.get_mut(&*channel) {
                fanout.deliver(i, None);
            }
            for p in &self.patterns {
                if glob_match(p.as_bytes(), channel.as_bytes()) {
                    if let Some(i) = self.feeds.get_mut(p) {
                        fanout.deliver(i, Some(p));
                    }
                }
            }
        } else {
            match pattern {
                None => {
                    if let Some(i) = self.feeds.get_mut(&*channel) {
                        fanout.deliver(i, None);
                    }
                }
                Some(p) => {
                    if let Some(i) = self.feeds.get_mut(&*p) {
                        fanout.deliver(i, Some(&p));
                    }
                }
            }
        }
    }

    fn timing(&mut self, payload: &[u8]) {
        let Ok(stamps) = serde_json::from_slice::<Vec<(String, i64)>>(payload) else {
            return;
        };
        if self.received_at.len() > 200_000 {
            // Bounded: a stamp only matters until its value's publish, which follows at once.
            self.received_at.clear();
        }
        for (channel, at) in stamps {
            self.received_at.insert(Arc::from(channel), at);
        }
    }

    fn upstream_event(&mut self, ev: UpEvent, ctx: &mut Context<Self>) {
        match ev {
            UpEvent::Message {
                channel,
                pattern,
                payload,
            } => self.message(channel, pattern, payload, None, false),
            UpEvent::Acked { feed, .. } => {
                if let Some(n) = self.unacked.get_mut(&feed) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.unacked.remove(&feed);
                    }
                }
                if self.ready(&feed) {
                    self.feed_ready(&feed, ctx);
                }
            }
            UpEvent::Connected => {
                log::info!(
                    "hub: pub/sub connected, {} feeds subscribed",
                    self.feeds.len()
                );
                self.connected = true;
                self.figures.connected.set(1);
                // Whatever was published while away is lost to pub/sub: every v2 channel
                // subscription starts again from a snapshot.
                let feeds: Vec<String> = self.feeds.keys().cloned().collect();
                for feed in feeds {
                    if let Some(i) = self.feeds.get_mut(&feed) {
                        for m in i.members.values_mut() {
                            if let State::Live | State::Snapshotting(_) = m.state {
                                if m.v2 && !i.pattern {
                                    m.state = State::Waiting;
                                }
                            }
                        }
                    }
                    if self.ready(&feed) {
                        self.feed_ready(&feed, ctx);
                    }
                }
            }
            UpEvent::Disconnected(reason) => {
                if self.connected {
                    log::warn!("hub: pub/sub connection lost: {reason}");
                }
                self.connected = false;
                self.figures.connected.set(0);
                self.figures.reconnects.inc();
            }
        }
    }

    /// The feed is live upstream: release the sessions waiting to acknowledge it, and take
    /// the snapshots waiting for it.
    fn feed_ready(&mut self, feed: &str, ctx: &mut Context<Self>) {
        for tx in self.waiters.remove(feed).unwrap_or_default() {
            let _ = tx.send(());
        }
        self.snapshot_waiting(feed, ctx);
    }

    fn snapshot_waiting(&mut self, feed: &str, ctx: &mut Context<Self>) {
        let waiting: Vec<SessionId> = match self.feeds.get(feed) {
            Some(i) => i
                .members
                .iter()
                .filter(|(_, m)| matches!(m.state, State::Waiting))
                .map(|(s, _)| *s)
                .collect(),
            None => return,
        };
        for s in waiting {
            self.start_snapshot(feed, s, ctx);
        }
    }
}

/// One message being fanned out: frames built at most once per message (v1) or once per
/// interest (v2, which names the pattern and its own seq).
struct Fanout<'a> {
    channel: &'a Arc<str>,
    topic: &'a str,
    payload: &'a Bytes,
    received_at: Option<i64>,
    v1: Option<ByteString>,
    figures: &'a HubFigures,
}

impl Fanout<'_> {
    fn deliver(&mut self, interest: &mut Interest, pattern: Option<&str>) {
        let seq = match pattern {
            None => {
                interest.seq += 1;
                interest.seq
            }
            Some(_) => {
                let s = interest.seqs.entry(self.channel.clone()).or_insert(0);
                *s += 1;
                *s
            }
        };
        let slot: Option<Arc<str>> = is_value_topic(self.topic).then(|| match pattern {
            None => self.channel.clone(),
            Some(p) => Arc::from(format!("{p}\u{0}{}", self.channel)),
        });
        let mut v2_frame: Option<ByteString> = None;
        for m in interest.members.values_mut() {
            let text = if m.v2 {
                v2_frame
                    .get_or_insert_with(|| {
                        let p = pattern.map(|_| &*interest.topic);
                        ByteString::from(v2::update(
                            self.topic,
                            p,
                            seq,
                            self.received_at,
                            self.payload,
                        ))
                    })
                    .clone()
            } else {
                self.v1
                    .get_or_insert_with(|| {
                        ByteString::from(String::from_utf8_lossy(self.payload).into_owned())
                    })
                    .clone()
            };
            let frame = Frame {
                slot: slot.clone(),
                text,
            };
            match &mut m.state {
                State::Live => match m.outbox.push(frame) {
                    Pushed::Queued => self.figures.deliveries.inc(),
                    Pushed::Coalesced => {
                        self.figures.deliveries.inc();
                        self.figures.coalesced.inc();
                    }
                    Pushed::Dropped => self.figures.dropped.inc(),
                    Pushed::Evicted => self.figures.slow_closed.inc(),
                    Pushed::Closed => {}
                },
                // Before the marker: the snapshot has it. After: wait for the snapshot.
                State::Snapshotting(p) if p.marker_seen => {
                    p.buffer.push((frame, self.payload.clone()));
                }
                State::Snapshotting(_) | State::Waiting => {}
            }
        }
    }
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(url) = self.cfg.redis_url.clone() {
            let up = crate::actors::wds::upstream::spawn(url, ctx.address().recipient());
            // Marker and timing channels first, before any snapshot can be asked for.
            for c in [self.marker_channel.clone(), self.timing_channel.clone()] {
                let _ = up.send(UpCmd::Subscribe(c));
            }
            self.upstream = Some(up);
        } else {
            self.figures.connected.set(1);
        }
        self.figures
            .heartbeat
            .set(chrono::Utc::now().timestamp_millis());
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            act.figures
                .heartbeat
                .set(chrono::Utc::now().timestamp_millis());
            let d = act.figures.deliveries.get();
            act.figures.rate.set((d - act.last_deliveries) as i64);
            act.last_deliveries = d;
        });
    }
}

impl Handler<Join> for Hub {
    type Result = ();
    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) {
        self.figures.actor.handled();
        self.join(msg, ctx);
    }
}

impl Handler<Leave> for Hub {
    type Result = ();
    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.figures.actor.handled();
        self.leave(msg);
    }
}

impl Handler<UpEvent> for Hub {
    type Result = ();
    fn handle(&mut self, msg: UpEvent, ctx: &mut Context<Self>) {
        self.figures.actor.handled();
        self.upstream_event(msg, ctx);
    }
}

/// Embedded mode: everything the memory store publishes.
impl Handler<Published> for Hub {
    type Result = ();
    fn handle(&mut self, msg: Published, _: &mut Context<Self>) {
        self.figures.actor.handled();
        self.message(
            msg.channel,
            None,
            msg.payload,
            Some(msg.received_at_ms),
            true,
        );
    }
}

impl Handler<GetHubState> for Hub {
    type Result = actix::MessageResult<GetHubState>;
    fn handle(&mut self, _: GetHubState, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(self.snapshot())
    }
}
