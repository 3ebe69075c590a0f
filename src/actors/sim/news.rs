//! The simulator's Finlight-compatible news stream (`/finlight`, `/finlight/raw`): plausible
//! articles about the synthetic market's tickers, spoken in Finlight's protocol
//! ([`crate::finlight`]) so that the official clients and tickwire's news listener work
//! against it.
//!
//! - [`NewsWire`] (one actor) writes the articles, weighted toward the most active tickers
//!   (`--news-per-sec`, about one a second by default, on the market clock), now and then an
//!   update of a recent one, and keeps the table of connections: one per key; a newer one
//!   with `x-takeover: true` preempts the older, without it the newer is refused.
//! - [`NewsSession`] (one per socket): reads the client's parameters, admits it, answers
//!   `ping` with `pong`, and sends the articles its `tickers`, `query`, `sources`,
//!   `excludeSources`, `language` and `includeUpdates` let through. `query` is a plain
//!   case-insensitive substring of title and summary (Finlight's own query language is
//!   richer).
//! - The handshake refuses a key not in `--finlight-keys` with 401, and the first
//!   `--finlight-reject` handshakes with 429 (`Retry-After: 1`), so clients' waits can be
//!   tested.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient,
    StreamHandler, WrapFuture,
};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use chrono::SecondsFormat;
use serde_json::json;

use super::market::TickerInfo;
use super::metrics::NewsFigures;
use crate::clock::{self, MarketClock};
use crate::finlight::{StreamParams, API_KEY_HEADER, TAKEOVER_HEADER};
use crate::rng::Rng;
use crate::wsio::{self, Frame, Outbound, ProtocolError};

/// Articles remembered for updates.
const RECENT: usize = 50;
/// Share of articles that are updates of a recent one.
const UPDATE_SHARE: f64 = 0.1;

/// What the news stream is told at start.
#[derive(Debug, Clone)]
pub struct NewsSettings {
    pub keys: Vec<String>,
    /// Articles per wall-clock second (0: none).
    pub per_sec: f64,
    /// Handshakes refused with 429 before any is admitted.
    pub reject_first: u32,
    pub seed: u64,
}

/// A ticker the news is about.
#[derive(Debug, Clone)]
struct Subject {
    /// Its place in the market (the article's `companyId` is made from it).
    id: usize,
    sym: String,
    /// MIC of its listing (`XNAS`, `XNYS`, `XASE`, or `OTCM`).
    mic: &'static str,
    weight: f64,
}

impl Subject {
    fn of(id: usize, t: &TickerInfo) -> Self {
        let mic = match (t.otc, t.tape) {
            (true, _) => "OTCM",
            (false, 1) => "XNYS",
            (false, 2) => "XASE",
            _ => "XNAS",
        };
        Subject {
            id,
            sym: t.sym.clone(),
            mic,
            weight: t.weight,
        }
    }

    /// The exchange as press releases write it (`NASDAQ: AAPL`).
    fn exchange_word(&self) -> &'static str {
        match self.mic {
            "XNYS" => "NYSE",
            "XASE" => "AMEX",
            "XNAS" => "NASDAQ",
            _ => "OTC",
        }
    }

    fn name(&self) -> String {
        format!("{} Inc.", self.sym)
    }
}

impl Handler<Runners> for NewsWire {
    type Result = ();

    fn handle(&mut self, msg: Runners, _: &mut Context<Self>) {
        let boosts: HashMap<usize, f64> = msg.0.iter().map(|(i, b, _)| (*i, *b)).collect();
        self.reweigh(&boosts);
        self.runner_stories = msg.0.iter().map(|(i, _, up)| (*i, *up)).collect();
    }
}

/// One article as written, in both of Finlight's shapes.
#[derive(Debug)]
pub struct SimArticle {
    /// `sendArticle` frame of the enhanced stream (`/finlight`).
    enhanced: Bytes,
    /// `sendArticle` frame of the raw stream (`/finlight/raw`).
    raw: Bytes,
    tickers: Vec<String>,
    /// Title and summary, lower-cased, for `query`.
    text: String,
    source: &'static str,
    is_update: bool,
}

const SOURCES: [&str; 3] = [
    "www.sim-newswire.test",
    "www.sim-markets.test",
    "www.sim-business.test",
];

/// (headline, summary, sentiment); `{name}`, `{ex}` and `{sym}` are filled in.
const STORIES: [(&str, &str, &str); 10] = [
    (
        "{name} shares jump after earnings beat",
        "{name} ({ex}: {sym}) reported quarterly results above analysts' estimates.",
        "positive",
    ),
    (
        "{name} raises full-year guidance",
        "{name} ({ex}: {sym}) lifted its outlook on strong demand.",
        "positive",
    ),
    (
        "Analysts upgrade {name} to buy",
        "Two brokers raised their rating on {name} ({ex}: {sym}).",
        "positive",
    ),
    (
        "{name} wins major supply contract",
        "{name} ({ex}: {sym}) signed a multi-year agreement.",
        "positive",
    ),
    (
        "{name} shares slide after guidance cut",
        "{name} ({ex}: {sym}) lowered its forecast for the year.",
        "negative",
    ),
    (
        "{name} misses revenue estimates",
        "Sales at {name} ({ex}: {sym}) fell short of expectations.",
        "negative",
    ),
    (
        "Regulators open inquiry into {name}",
        "{name} ({ex}: {sym}) said it is cooperating with the review.",
        "negative",
    ),
    (
        "{name} to present at industry conference",
        "{name} ({ex}: {sym}) will webcast its presentation.",
        "neutral",
    ),
    (
        "{name} schedules quarterly results call",
        "{name} ({ex}: {sym}) will report after the close.",
        "neutral",
    ),
    (
        "{name} files annual report",
        "{name} ({ex}: {sym}) published its annual filing.",
        "neutral",
    ),
];

/// Sent to a session: an article, or the end of its connection.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum NewsEvent {
    Article(Arc<SimArticle>),
    /// A newer connection with the same key took over.
    Preempted {
        new_lease: String,
    },
}

/// A session asks to be admitted.
#[derive(Message)]
#[rtype(result = "Result<String, Refused>")]
pub struct Join {
    pub id: u64,
    pub key: String,
    pub takeover: bool,
    pub to: Recipient<NewsEvent>,
}

/// Why a session was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The key has a connection and the newcomer did not ask to take over.
    ConnectionLimit,
}

/// A session has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub id: u64,
}

/// The simulator is stopping: close every news connection and stop writing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for NewsWire {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.conns.clear();
        self.figures.connections.set(0);
        ctx.stop();
    }
}

struct Conn {
    key: String,
    to: Recipient<NewsEvent>,
}

/// Writes the articles and holds the connections (one per key).
pub struct NewsWire {
    subjects: Vec<Subject>,
    cumulative: Vec<f64>,
    rng: Rng,
    clock: MarketClock,
    per_sec: f64,
    carry: f64,
    seq: u64,
    recent: VecDeque<(Subject, usize, u64, i64)>,
    conns: HashMap<u64, Conn>,
    leases: u64,
    figures: NewsFigures,
    /// Today's runners whose story (the news they gap on) is still to be written: (ticker,
    /// runs up).
    runner_stories: VecDeque<(usize, bool)>,
}

/// The market day's runners (from the feed): (ticker, activity multiplier, runs up). Their
/// story is written first, and they are written about as often as they trade.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Runners(pub Vec<(usize, f64, bool)>);

/// The story a runner gaps on: an earnings beat up, a guidance cut down (see [`STORIES`]).
const RUNNER_UP_STORY: usize = 0;
const RUNNER_DOWN_STORY: usize = 4;

impl NewsWire {
    pub fn new(
        tickers: &[TickerInfo],
        clock: MarketClock,
        settings: &NewsSettings,
        figures: NewsFigures,
    ) -> Self {
        let subjects: Vec<Subject> = tickers
            .iter()
            .enumerate()
            .map(|(i, t)| Subject::of(i, t))
            .collect();
        let mut acc = 0.0;
        let cumulative = subjects
            .iter()
            .map(|s| {
                acc += s.weight.max(0.0);
                acc
            })
            .collect();
        NewsWire {
            subjects,
            cumulative,
            rng: Rng::new(settings.seed ^ 0x6e65_7773),
            clock,
            per_sec: settings.per_sec.max(0.0),
            carry: 0.0,
            seq: 0,
            recent: VecDeque::new(),
            conns: HashMap::new(),
            leases: 0,
            figures,
            runner_stories: VecDeque::new(),
        }
    }

    fn reweigh(&mut self, boosts: &HashMap<usize, f64>) {
        let mut acc = 0.0;
        for (k, s) in self.subjects.iter().enumerate() {
            acc += s.weight.max(0.0) * boosts.get(&s.id).copied().unwrap_or(1.0);
            self.cumulative[k] = acc;
        }
    }

    fn pick(&mut self) -> Option<Subject> {
        let total = *self.cumulative.last()?;
        let x = self.rng.unit() * total;
        let i = self.cumulative.partition_point(|c| *c <= x);
        self.subjects
            .get(i.min(self.subjects.len().saturating_sub(1)))
            .cloned()
    }

    fn tick(&mut self, dt: f64) {
        self.carry += self.per_sec * dt;
        while self.carry >= 1.0 {
            self.carry -= 1.0;
            let runner = self.runner_stories.pop_front().and_then(|(i, up)| {
                let subject = self.subjects.iter().find(|s| s.id == i)?.clone();
                Some((
                    subject,
                    if up {
                        RUNNER_UP_STORY
                    } else {
                        RUNNER_DOWN_STORY
                    },
                ))
            });
            let article = if let Some((subject, story)) = runner {
                self.fresh(subject, story)
            } else if !self.recent.is_empty() && self.rng.chance(UPDATE_SHARE) {
                let i = self.rng.below(self.recent.len() as u64) as usize;
                let (subject, story, seq, published) = self.recent[i].clone();
                self.write(&subject, story, seq, published, true)
            } else {
                let Some(subject) = self.pick() else {
                    return;
                };
                let story = self.rng.below(STORIES.len() as u64) as usize;
                self.fresh(subject, story)
            };
            self.figures.articles.inc();
            let article = Arc::new(article);
            for c in self.conns.values() {
                c.to.do_send(NewsEvent::Article(article.clone()));
            }
        }
    }

    /// A new article (remembered, so that it may be updated later).
    fn fresh(&mut self, subject: Subject, story: usize) -> SimArticle {
        self.seq += 1;
        let now = self.clock.now_ms();
        self.recent
            .push_back((subject.clone(), story, self.seq, now));
        if self.recent.len() > RECENT {
            self.recent.pop_front();
        }
        self.write(&subject, story, self.seq, now, false)
    }

    /// One article (or an update of it) in both shapes.
    fn write(
        &mut self,
        s: &Subject,
        story: usize,
        seq: u64,
        published: i64,
        update: bool,
    ) -> SimArticle {
        let (title, summary, sentiment) = STORIES[story % STORIES.len()];
        let fill = |t: &str| {
            t.replace("{name}", &s.name())
                .replace("{ex}", s.exchange_word())
                .replace("{sym}", &s.sym)
        };
        let title = if update {
            format!("UPDATE: {}", fill(title))
        } else {
            fill(title)
        };
        let summary = fill(summary);
        let iso = |ms: i64| clock::ms_to_utc(ms).to_rfc3339_opts(SecondsFormat::Millis, true);
        let now = self.clock.now_ms();
        let date = clock::to_et(clock::ms_to_utc(published)).format("%Y-%m-%d");
        let source = SOURCES[(seq % SOURCES.len() as u64) as usize];
        let link = format!(
            "https://{source}/{date}/{seq}-{}",
            s.sym.to_ascii_lowercase()
        );
        let confidence = ((0.6 + self.rng.unit() * 0.39) * 100.0).round() / 100.0;
        let company_id = 1000 + s.id;
        let mut data = json!({
            "link": link,
            "title": title,
            "publishDate": iso(published),
            "source": source,
            "language": "en",
            "summary": summary,
            "images": [],
            "createdAt": iso(published),
            "revisedDate": if update { json!(iso(now)) } else { json!(null) },
            "isUpdate": update,
            "categories": ["markets", "business"],
        });
        let raw = json!({"action": "sendArticle", "data": data});
        let extra = json!({
            "sentiment": sentiment,
            "confidence": confidence,
            "content": format!("{summary} (Simulated article.)"),
            "companies": [{
                "companyId": company_id,
                "confidence": 0.95,
                "country": "US",
                "exchange": s.mic,
                "name": s.name(),
                "ticker": s.sym,
                "isin": null,
                "primaryListing": {"ticker": s.sym, "exchangeCode": s.mic, "exchangeCountry": "US"},
            }],
            "countries": ["US"],
        });
        if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        let enhanced = json!({"action": "sendArticle", "data": data});
        SimArticle {
            enhanced: Bytes::from(enhanced.to_string()),
            raw: Bytes::from(raw.to_string()),
            tickers: vec![s.sym.clone()],
            text: format!("{title} {summary}").to_lowercase(),
            source,
            is_update: update,
        }
    }
}

impl Actor for NewsWire {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = Duration::from_millis(100);
        ctx.run_interval(every, move |act, _| act.tick(every.as_secs_f64()));
    }
}

impl Handler<Join> for NewsWire {
    type Result = Result<String, Refused>;

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        self.figures.actor.received();
        self.conns.retain(|_, c| c.to.connected());
        let others: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.key == msg.key)
            .map(|(id, _)| *id)
            .collect();
        if !others.is_empty() && !msg.takeover {
            self.figures.handshakes.inc("refused");
            return Err(Refused::ConnectionLimit);
        }
        self.leases += 1;
        let lease = format!("sim-lease-{}", self.leases);
        for id in others {
            if let Some(c) = self.conns.remove(&id) {
                self.figures.preempted.inc();
                c.to.do_send(NewsEvent::Preempted {
                    new_lease: lease.clone(),
                });
            }
        }
        self.conns.insert(
            msg.id,
            Conn {
                key: msg.key,
                to: msg.to,
            },
        );
        self.figures.handshakes.inc("admitted");
        self.figures.connections.set(self.conns.len() as i64);
        Ok(lease)
    }
}

impl Handler<Leave> for NewsWire {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.figures.actor.received();
        self.conns.remove(&msg.id);
        self.figures.connections.set(self.conns.len() as i64);
    }
}

/// What a session lets through.
#[derive(Debug, Default)]
struct Filter {
    tickers: Option<Vec<String>>,
    query: Option<String>,
    sources: Option<Vec<String>>,
    exclude_sources: Vec<String>,
    english: bool,
    updates: bool,
}

impl Filter {
    fn of(p: &StreamParams) -> Self {
        let upper = |v: &Vec<String>| v.iter().map(|t| t.to_ascii_uppercase()).collect();
        Filter {
            tickers: p.tickers.as_ref().filter(|t| !t.is_empty()).map(upper),
            query: p
                .query
                .as_ref()
                .map(|q| q.trim().to_lowercase())
                .filter(|q| !q.is_empty()),
            sources: p.sources.clone().filter(|s| !s.is_empty()),
            exclude_sources: p.exclude_sources.clone().unwrap_or_default(),
            english: p
                .language
                .as_deref()
                .is_none_or(|l| l.eq_ignore_ascii_case("en")),
            updates: p.include_updates.unwrap_or(false),
        }
    }

    fn passes(&self, a: &SimArticle) -> bool {
        self.english
            && (self.updates || !a.is_update)
            && self
                .tickers
                .as_ref()
                .is_none_or(|ts| a.tickers.iter().any(|t| ts.contains(t)))
            && self
                .query
                .as_ref()
                .is_none_or(|q| a.text.contains(q.as_str()))
            && self
                .sources
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == a.source))
            && !self.exclude_sources.iter().any(|x| x == a.source)
    }
}

/// One client socket of the news stream.
pub struct NewsSession {
    id: u64,
    key: String,
    takeover: bool,
    raw: bool,
    out: Outbound,
    wire: Addr<NewsWire>,
    filter: Option<Filter>,
    figures: NewsFigures,
    /// Bytes a client may leave unread before it is cut off (`--client-buffer-bytes`).
    max_buffer: usize,
}

impl NewsSession {
    fn send(&self, text: &[u8]) {
        self.out.push(wsio::text_frame(text));
    }

    fn close(&mut self, code: u16, ctx: &mut Context<Self>) {
        self.out.finish_after(vec![wsio::close_frame(code)]);
        ctx.stop();
    }

    fn on_text(&mut self, text: &[u8], ctx: &mut Context<Self>) {
        if self.filter.is_some() {
            // After the parameters only pings are expected.
            let ping: Option<serde_json::Value> = serde_json::from_slice(text).ok();
            match ping.as_ref().and_then(|v| v.get("action")?.as_str()) {
                Some("ping") => {
                    let t = ping.as_ref().and_then(|v| v.get("t")).cloned();
                    self.send(json!({"action": "pong", "t": t}).to_string().as_bytes());
                }
                _ => self.figures.client_messages.inc("unknown"),
            }
            return;
        }
        let Ok(params) = serde_json::from_slice::<StreamParams>(text) else {
            self.figures.client_messages.inc("invalid");
            self.send(br#"{"action":"error","data":"invalid request parameters"}"#);
            return self.close(1008, ctx);
        };
        self.filter = Some(Filter::of(&params));
        let join = Join {
            id: self.id,
            key: self.key.clone(),
            takeover: self.takeover,
            to: ctx.address().recipient(),
        };
        let nonce = params.client_nonce;
        let fut = self
            .wire
            .send(join)
            .into_actor(self)
            .map(move |res, act, ctx| match res {
                Ok(Ok(lease)) => {
                    let admit = json!({
                        "action": "admit",
                        "leaseId": lease,
                        "serverNow": chrono::Utc::now().timestamp_millis(),
                        "clientNonce": nonce,
                    });
                    act.send(admit.to_string().as_bytes());
                }
                Ok(Err(Refused::ConnectionLimit)) => {
                    act.send(
                        br#"{"action":"error","data":"connection limit reached for this key"}"#,
                    );
                    act.close(4001, ctx);
                }
                Err(_) => act.close(1011, ctx),
            });
        ctx.wait(fut);
    }
}

impl Actor for NewsSession {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.wire.do_send(Leave { id: self.id });
    }
}

impl Handler<NewsEvent> for NewsSession {
    type Result = ();

    fn handle(&mut self, msg: NewsEvent, ctx: &mut Context<Self>) {
        match msg {
            NewsEvent::Article(a) => {
                if self.filter.as_ref().is_some_and(|f| f.passes(&a)) {
                    self.figures.sent.inc();
                    let frame = if self.raw { &a.raw } else { &a.enhanced };
                    if self.out.push(wsio::text_frame(frame)) > self.max_buffer {
                        // A client that does not read is cut off, as the market stream's.
                        self.figures.slow_consumer_kills.inc();
                        self.out.abort();
                        ctx.stop();
                    }
                }
            }
            NewsEvent::Preempted { new_lease } => {
                let m =
                    json!({"action": "preempted", "reason": "takeover", "newLeaseId": new_lease});
                self.send(m.to_string().as_bytes());
                self.close(1000, ctx);
            }
        }
    }
}

impl StreamHandler<Result<Frame, ProtocolError>> for NewsSession {
    fn handle(&mut self, item: Result<Frame, ProtocolError>, ctx: &mut Context<Self>) {
        match item {
            Ok(Frame::Text(b)) => self.on_text(&b, ctx),
            Ok(Frame::Ping(p)) => {
                let mut f = BytesMut::new();
                wsio::encode_frame(wsio::OP_PONG, &p, &mut f);
                self.out.push(f.freeze());
            }
            Ok(Frame::Close(reason)) => self.close(reason.map_or(1000, |r| u16::from(r.code)), ctx),
            Ok(Frame::Pong(_)) => {}
            Ok(Frame::Binary(_)) | Ok(Frame::Continuation(_)) => {
                self.figures.client_messages.inc("unknown")
            }
            Err(_) => {
                self.out.abort();
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// What the `/finlight` routes share.
pub struct NewsState {
    pub wire: Addr<NewsWire>,
    pub keys: Vec<String>,
    pub reject_left: AtomicU32,
    pub next_id: AtomicU64,
    pub figures: NewsFigures,
    /// Bytes a client may leave unread (`--client-buffer-bytes`).
    pub max_buffer: usize,
}

/// `GET /finlight` and `GET /finlight/raw`: check the key, then upgrade.
pub async fn entry(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<NewsState>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let key = header(API_KEY_HEADER).unwrap_or_default();
    if !state.keys.contains(&key) {
        state.figures.handshakes.inc("unknown_key");
        return HttpResponse::Unauthorized().json(json!({"error": "Invalid API key"}));
    }
    let rejecting = state
        .reject_left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok();
    if rejecting {
        state.figures.handshakes.inc("rate_limited");
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .json(json!({"error": "Too many connection attempts"}));
    }
    let mut response = match wsio::handshake(&req) {
        Ok(r) => r,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let takeover = header(TAKEOVER_HEADER).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let raw = req.path().ends_with("/raw");
    let (out, body) = wsio::outbound();
    let inbound = wsio::inbound(payload);
    let session = NewsSession {
        id: state.next_id.fetch_add(1, Ordering::Relaxed),
        key,
        takeover,
        raw,
        out,
        wire: state.wire.clone(),
        filter: None,
        figures: state.figures.clone(),
        max_buffer: state.max_buffer,
    };
    NewsSession::create(move |ctx| {
        ctx.add_stream(inbound);
        session
    });
    response.streaming(body)
}

/// Adds the two news routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/finlight", web::get().to(entry))
        .route("/finlight/raw", web::get().to(entry));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Registry;

    fn wire(per_sec: f64) -> NewsWire {
        let tickers: Vec<TickerInfo> = ["AAPL", "MSFT", "OTCX"]
            .iter()
            .enumerate()
            .map(|(n, s)| TickerInfo {
                sym: s.to_string(),
                otc: n == 2,
                tape: 3,
                base_price: 10.0,
                avg_volume: 1e6,
                shares_outstanding: 1e8,
                free_float: 5e7,
                weight: 1.0,
                drift_per_hour: 0.0,
            })
            .collect();
        let settings = NewsSettings {
            keys: vec!["demo".into()],
            per_sec,
            reject_first: 0,
            seed: 7,
        };
        let clock = MarketClock::new(chrono::Utc::now(), 1.0);
        NewsWire::new(
            &tickers,
            clock,
            &settings,
            NewsFigures::register(&Registry::new(), &[]),
        )
    }

    #[test]
    fn articles_read_back_as_finlight_sends_them() {
        let mut w = wire(1.0);
        let s = w.subjects[0].clone();
        let a = w.write(&s, 0, 1, w.clock.now_ms(), false);
        let m = crate::finlight::parse_server_message(std::str::from_utf8(&a.enhanced).unwrap())
            .expect("a server message");
        let crate::finlight::ServerMessage::SendArticle { data } = m else {
            panic!("not an article")
        };
        let f = crate::finlight::ArticleFields::parse(data.get().as_bytes()).expect("fields");
        assert_eq!(
            crate::analyzers::news::tickers(&f),
            ["AAPL"],
            "tagged with its listing"
        );
        assert!(f.link.unwrap().starts_with("https://"));
        // Raw: no companies; the text still names the listing.
        let v: serde_json::Value = serde_json::from_slice(&a.raw).unwrap();
        assert!(v["data"].get("companies").is_none());
        let f = crate::finlight::ArticleFields::parse(v["data"].to_string().as_bytes()).unwrap();
        assert_eq!(crate::analyzers::news::tickers(&f), ["AAPL"]);
        // An OTC name is not a US-exchange ticker.
        let otc = w.subjects[2].clone();
        let a = w.write(&otc, 0, 2, 0, false);
        let v: serde_json::Value = serde_json::from_slice(&a.enhanced).unwrap();
        let f = crate::finlight::ArticleFields::parse(v["data"].to_string().as_bytes()).unwrap();
        assert!(crate::analyzers::news::tickers(&f).is_empty());
    }

    #[test]
    fn filters_follow_the_parameters() {
        let mut w = wire(1.0);
        let s = w.subjects[1].clone();
        let a = w.write(&s, 0, 1, 0, false);
        let u = w.write(&s, 0, 1, 0, true);
        let f = |p: &str| Filter::of(&serde_json::from_str(p).unwrap());
        assert!(f("{}").passes(&a));
        assert!(!f("{}").passes(&u), "updates only when asked for");
        assert!(f(r#"{"includeUpdates":true}"#).passes(&u));
        assert!(f(r#"{"tickers":["msft"]}"#).passes(&a));
        assert!(!f(r#"{"tickers":["AAPL"]}"#).passes(&a));
        assert!(f(r#"{"query":"EARNINGS"}"#).passes(&a));
        assert!(!f(r#"{"query":"merger"}"#).passes(&a));
        assert!(!f(r#"{"language":"de"}"#).passes(&a));
        assert!(!f(&format!(r#"{{"excludeSources":["{}"]}}"#, a.source)).passes(&a));
        assert!(f(&format!(r#"{{"sources":["{}"]}}"#, a.source)).passes(&a));
    }

    #[test]
    fn the_rate_is_kept_and_updates_reuse_links() {
        let mut w = wire(10.0);
        for _ in 0..100 {
            w.tick(0.1);
        }
        assert_eq!(w.figures.articles.get(), 100);
        assert!(w.seq < 100, "some were updates");
        assert!(w.recent.len() <= RECENT);
        let mut none = wire(0.0);
        none.tick(10.0);
        assert_eq!(none.figures.articles.get(), 0);
    }
}
