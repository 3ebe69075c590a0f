//! Enricher actor: fetches previous-day values, average volume and free float from Massive
//! REST for the processors, without ever blocking one (reference-system.md §3.4).
//!
//! - **Single flight in the node:** a ticker asked for by several processors (or again while
//!   in flight) is fetched once; every asker gets the answer.
//! - **Single flight in the cluster:** before calling REST a job takes the store lock
//!   `mdc:lock:enrich:{T}` (30 s); a job that finds it taken waits for the holder's result in
//!   the cache instead of calling REST too.
//! - **Cache-aside with a negative cache that hits:** "no data" is cached as `0` for 6 h and
//!   served like any value.
//! - **Bounded:** at most `concurrency` tickers in flight; the rest queue. 413/429/499/5xx
//!   answers are retried with exponential backoff (a 429 after its `Retry-After`); a failed
//!   ticker is not asked again for a minute (answered "unknown" meanwhile), so a REST outage
//!   costs one call per ticker per minute, not one per event.
//! - **Warm in bulk first** (`bulk`): the first ticker of a market day starts a warm-up of the
//!   whole market (one node in the cluster, lock `mdc:lock:warm:{day}`, marker
//!   `mdc:warmed:{day}`): the full-market snapshot, 30 sessions of grouped daily bars and the
//!   float list, about 33 calls, write every listed ticker's three values; tickers asked for
//!   meanwhile wait, then find them cached. Only tickers the bulk answers do not list cost
//!   calls of their own.
//! - **Board seeds:** the warm-up also stores every traded ticker's day so far from the
//!   snapshot (`mdc:seeds:{day}`, [`Seed`]); each shard asks once a day ([`SeedsFor`]) and
//!   ranks the tickers it has not seen trade from it, so boards after a mid-session start
//!   hold the quiet tickers a processor running since 04:00 would rank.
//! - The key goes in an `Authorization: Bearer` header, never in a URL; every call is counted
//!   by endpoint.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, WrapFuture,
};
use bytes::Bytes;
use chrono::NaiveDate;

use super::metrics::EnricherFigures;
use crate::analyzers::enrichment::{self, Kind, Seed, NEGATIVE_TTL_SECS, NONE};
use crate::analyzers::quote::Enrichment;
use crate::backoff::Backoff;
use crate::metrics::ActorMetrics;
use crate::recipient::CountedRecipient;
use crate::store::{CacheWrite, Store};

/// Fetch `symbol`'s enrichment for market day `day`; the answer goes to `reply`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enrich {
    pub symbol: String,
    pub day: NaiveDate,
    pub reply: Recipient<Enriched>,
}

/// The answer: None when it could not be fetched (REST failing); ask again later.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Enriched {
    pub symbol: String,
    pub enrichment: Option<Enrichment>,
}

/// Send the day's board seeds (after the day's warm-up) to `reply`. Without bulk
/// enrichment there are none and nothing is answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SeedsFor {
    pub day: NaiveDate,
    pub reply: Recipient<Seeds>,
}

/// Every traded ticker's day so far at the warm-up: each shard takes its own.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Seeds {
    pub day: NaiveDate,
    pub seeds: Arc<Vec<Seed>>,
}

/// How a shard reaches the enricher: enrichment through a counted recipient (its backlog is
/// the enricher's mailbox depth), seeds as a plain recipient.
#[derive(Clone)]
pub struct EnricherHandle {
    pub enrich: CountedRecipient<Enrich>,
    pub seeds: Recipient<SeedsFor>,
}

impl EnricherHandle {
    pub fn of(addr: &actix::Addr<Enricher>, actor: ActorMetrics) -> Self {
        EnricherHandle {
            enrich: CountedRecipient::of(addr, actor),
            seeds: addr.clone().recipient(),
        }
    }
}

/// State-store key of the day's board seeds.
pub fn seeds_key(prefix: &str, day: NaiveDate) -> String {
    format!("{prefix}mdc:seeds:{day}")
}

/// Collects answers, for callers that ask for many tickers at once and count what came back
/// (the warm-up benchmark, tests).
pub struct Answers(pub std::sync::Arc<std::sync::Mutex<Vec<Enriched>>>);

impl Actor for Answers {
    type Context = Context<Self>;
}

impl Handler<Enriched> for Answers {
    type Result = ();

    fn handle(&mut self, msg: Enriched, _: &mut Context<Self>) {
        if let Ok(mut a) = self.0.lock() {
            a.push(msg);
        }
    }
}

#[derive(Debug, Clone)]
pub struct EnricherConfig {
    /// Massive REST base URL, e.g. `https://api.massive.com`.
    pub rest_url: String,
    pub api_key: String,
    /// State-store key prefix.
    pub prefix: String,
    /// Tickers fetched at once.
    pub concurrency: usize,
    /// Identity used as the lock holder.
    pub holder: String,
    pub lock_ttl: Duration,
    pub retries: u32,
    /// How long a failed ticker is answered "unknown" without a new attempt.
    pub failure_memo: Duration,
    /// Warm the cache for the whole market once a day before any per-ticker call (the
    /// full-market snapshot, grouped daily bars, the float list: about 33 calls).
    pub bulk: bool,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("REST {path} answered {status}")]
    Status { path: String, status: u16 },
    #[error("REST {path}: {reason}")]
    Transport { path: String, reason: String },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the lock on {0} stayed taken and no value appeared")]
    LockTimeout(String),
}

/// How long one node may take to warm the cache for the market before another may try.
const WARM_LOCK_TTL: Duration = Duration::from_secs(120);
/// How long the "warmed today" marker lives.
const WARM_MARKER_TTL_SECS: u64 = 86_400;
/// Grouped-daily calls at most while looking for 30 past sessions (holidays answer empty).
const GROUPED_MAX_CALLS: usize = enrichment::SESSIONS + 15;
/// Float-list pages at most (5,000 tickers a page).
const FLOAT_MAX_PAGES: usize = 20;
/// The longest `Retry-After` obeyed; a longer one is cut to this.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);

pub struct Enricher {
    cfg: EnricherConfig,
    store: Store,
    /// One client (and connection pool) for every fetch.
    client: awc::Client,
    waiting: HashMap<String, Vec<Recipient<Enriched>>>,
    queue: VecDeque<(String, NaiveDate)>,
    active: usize,
    failed: HashMap<String, Instant>,
    /// The market day the cache was warmed for (or tried), and whether a warm-up runs now;
    /// while it runs, new tickers wait in `held` instead of calling REST one by one.
    warmed: Option<NaiveDate>,
    warming: bool,
    held: Vec<(String, NaiveDate)>,
    /// The board seeds of a warmed day, once read; the shards waiting for them.
    seeds: Option<(NaiveDate, Arc<Vec<Seed>>)>,
    seed_waiters: Vec<(NaiveDate, Recipient<Seeds>)>,
    loading_seeds: bool,
    figures: EnricherFigures,
}

/// A `Retry-After` header in seconds (the form Massive sends), at most [`RETRY_AFTER_MAX`];
/// None when it is not a number (an HTTP date is left to the backoff).
pub(super) fn retry_after_secs(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|secs| Duration::from_secs(secs).min(RETRY_AFTER_MAX))
}

fn retryable(status: u16) -> bool {
    matches!(status, 413 | 429 | 499 | 500 | 502 | 503 | 504)
}

impl Enricher {
    pub fn new(cfg: EnricherConfig, store: Store, figures: EnricherFigures) -> Self {
        Enricher {
            cfg,
            store,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish(),
            waiting: HashMap::new(),
            queue: VecDeque::new(),
            active: 0,
            failed: HashMap::new(),
            warmed: None,
            warming: false,
            held: Vec::new(),
            seeds: None,
            seed_waiters: Vec::new(),
            loading_seeds: false,
            figures,
        }
    }

    /// Warms the cache for `day` (once per day, one node in the cluster), then lets the
    /// held tickers go; a failed warm-up leaves them to per-ticker calls.
    fn warm(&mut self, day: NaiveDate, ctx: &mut Context<Self>) {
        self.warming = true;
        self.warmed = Some(day);
        let fut = warm_up(
            self.cfg.clone(),
            self.store.clone(),
            self.client.clone(),
            self.figures.clone(),
            day,
        );
        let started = Instant::now();
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.warming = false;
            match res {
                Ok(None) => log::info!("enrichment cache already warm for {day}"),
                Ok(Some(n)) => act.figures.warmed(n, started.elapsed()),
                Err(e) => act.figures.warm_failed(&e),
            }
            act.queue.extend(std::mem::take(&mut act.held));
            act.pump(ctx);
            act.serve_seeds(ctx);
        }));
    }

    /// Answers the shards waiting for the warmed day's seeds, reading them from the store
    /// once (whichever node warmed the day stored them). Waiters for a later day wait for
    /// its warm-up; those for an earlier one are dropped.
    fn serve_seeds(&mut self, ctx: &mut Context<Self>) {
        let Some(day) = self.warmed.filter(|_| !self.warming) else {
            return;
        };
        self.seed_waiters.retain(|(d, _)| *d >= day);
        if !self.seed_waiters.iter().any(|(d, _)| *d == day) {
            return;
        }
        match &self.seeds {
            Some((d, seeds)) if *d == day => {
                let seeds = seeds.clone();
                let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.seed_waiters)
                    .into_iter()
                    .partition(|(d, _)| *d == day);
                self.seed_waiters = later;
                for (_, r) in now {
                    self.figures.actor.messages_out.inc();
                    r.do_send(Seeds {
                        day,
                        seeds: seeds.clone(),
                    });
                }
            }
            _ if self.loading_seeds => {}
            _ => {
                self.loading_seeds = true;
                let (store, key) = (self.store.clone(), seeds_key(&self.cfg.prefix, day));
                let read = async move { store.get(vec![key]).await };
                ctx.spawn(read.into_actor(self).map(move |res, act, ctx| {
                    act.loading_seeds = false;
                    let seeds = match res.map(|mut v| v.pop().flatten()) {
                        Ok(Some(b)) => Seed::decode_all(&b).unwrap_or_else(|e| {
                            log::warn!("board seeds of {day} unreadable: {e}");
                            Vec::new()
                        }),
                        Ok(None) => Vec::new(),
                        Err(e) => {
                            log::warn!("board seeds of {day}: {e}");
                            Vec::new()
                        }
                    };
                    act.figures.seeds.set(seeds.len() as i64);
                    act.seeds = Some((day, Arc::new(seeds)));
                    act.serve_seeds(ctx);
                }));
            }
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.active < self.cfg.concurrency.max(1) {
            let Some((sym, day)) = self.queue.pop_front() else {
                break;
            };
            self.active += 1;
            let fut = fetch(
                self.cfg.clone(),
                self.store.clone(),
                self.client.clone(),
                self.figures.clone(),
                sym.clone(),
                day,
            );
            ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
                act.active -= 1;
                let enrichment = match res {
                    Ok(e) => Some(e),
                    Err(e) => {
                        act.figures.failed(&sym, &e);
                        act.failed.insert(sym.clone(), Instant::now());
                        None
                    }
                };
                act.answer(&sym, enrichment);
                act.pump(ctx);
            }));
        }
        self.figures.queued.set(self.queue.len() as i64);
    }

    fn answer(&mut self, sym: &str, enrichment: Option<Enrichment>) {
        for r in self.waiting.remove(sym).unwrap_or_default() {
            self.figures.actor.messages_out.inc();
            r.do_send(Enriched {
                symbol: sym.to_string(),
                enrichment,
            });
        }
    }
}

impl Actor for Enricher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(30), |act, _| {
            let memo = act.cfg.failure_memo;
            act.failed.retain(|_, t| t.elapsed() < memo);
        });
    }
}

impl Handler<Enrich> for Enricher {
    type Result = ();

    fn handle(&mut self, msg: Enrich, ctx: &mut Context<Self>) {
        self.figures.actor.received();
        if self
            .failed
            .get(&msg.symbol)
            .is_some_and(|t| t.elapsed() < self.cfg.failure_memo)
        {
            msg.reply.do_send(Enriched {
                symbol: msg.symbol,
                enrichment: None,
            });
            return;
        }
        let first = !self.waiting.contains_key(&msg.symbol);
        self.waiting
            .entry(msg.symbol.clone())
            .or_default()
            .push(msg.reply);
        if self.cfg.bulk && !self.warming && self.warmed != Some(msg.day) {
            self.warm(msg.day, ctx);
        }
        if first && self.warming {
            self.held.push((msg.symbol, msg.day));
            self.figures
                .queued
                .set((self.queue.len() + self.held.len()) as i64);
        } else if first {
            self.queue.push_back((msg.symbol, msg.day));
            self.pump(ctx);
        }
    }
}

impl Handler<SeedsFor> for Enricher {
    type Result = ();

    fn handle(&mut self, msg: SeedsFor, ctx: &mut Context<Self>) {
        self.figures.actor.received();
        if !self.cfg.bulk {
            return;
        }
        self.seed_waiters.push((msg.day, msg.reply));
        if !self.warming && self.warmed.is_none_or(|d| d < msg.day) {
            self.warm(msg.day, ctx);
        } else {
            self.serve_seeds(ctx);
        }
    }
}

/// Cache, then lock, then cache again, then REST for what is missing.
async fn fetch(
    cfg: EnricherConfig,
    store: Store,
    client: awc::Client,
    figures: EnricherFigures,
    sym: String,
    day: NaiveDate,
) -> Result<Enrichment, FetchError> {
    let keys: Vec<String> = Kind::ALL.iter().map(|k| k.key(&cfg.prefix, &sym)).collect();
    if let Some(e) = enrichment::from_cache(&store.get(keys.clone()).await?) {
        figures.cache_hits.inc();
        return Ok(e);
    }
    let lock = format!("{}mdc:lock:enrich:{sym}", cfg.prefix);
    let deadline = Instant::now() + cfg.lock_ttl;
    loop {
        if store.acquire(&lock, &cfg.holder, cfg.lock_ttl).await? {
            break;
        }
        // Another node is fetching this ticker: wait for its result in the cache.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(e) = enrichment::from_cache(&store.get(keys.clone()).await?) {
            figures.cache_hits.inc();
            return Ok(e);
        }
        if Instant::now() >= deadline {
            return Err(FetchError::LockTimeout(lock));
        }
    }
    let result = fetch_locked(&cfg, &store, &client, &figures, &sym, day, &keys).await;
    if let Err(e) = store.release(&lock, &cfg.holder).await {
        // The lock expires on its own; only worth a note.
        log::debug!("releasing {lock}: {e}");
    }
    result
}

async fn fetch_locked(
    cfg: &EnricherConfig,
    store: &Store,
    client: &awc::Client,
    figures: &EnricherFigures,
    sym: &str,
    day: NaiveDate,
    keys: &[String],
) -> Result<Enrichment, FetchError> {
    let mut vals = store.get(keys.to_vec()).await?;
    // The previous holder may have filled it between our last look and our lock.
    if let Some(e) = enrichment::from_cache(&vals) {
        figures.cache_hits.inc();
        return Ok(e);
    }
    for (i, kind) in Kind::ALL.iter().enumerate() {
        if vals[i].is_some() {
            continue;
        }
        let value = rest_value(cfg, client, figures, *kind, sym, day).await?;
        let ttl = if value[..] == *NONE {
            figures.negative.inc();
            NEGATIVE_TTL_SECS
        } else {
            kind.ttl_secs()
        };
        store
            .put(CacheWrite::unpublished(keys[i].clone(), value.clone(), ttl))
            .await?;
        vals[i] = Some(value);
    }
    Ok(enrichment::from_cache(&vals).unwrap_or_default())
}

/// One REST value with retries; 404 is "no data".
async fn rest_value(
    cfg: &EnricherConfig,
    client: &awc::Client,
    figures: &EnricherFigures,
    kind: Kind,
    sym: &str,
    day: NaiveDate,
) -> Result<Bytes, FetchError> {
    let url = format!(
        "{}{}",
        cfg.rest_url.trim_end_matches('/'),
        kind.path(sym, day)
    );
    Ok(
        match rest_json(cfg, client, figures, kind.endpoint(), &url).await? {
            Some(body) => kind.from_body(&body),
            None => Bytes::from_static(NONE),
        },
    )
}

/// GET `url` (on `cfg.rest_url`) as JSON, the key in an `Authorization` header (never in
/// the URL, so never in a log); None for 404. 413/429/499/5xx are retried with backoff, a 429
/// after its `Retry-After` (at most a minute) when it sends one. Each call is counted under
/// `endpoint`.
async fn rest_json(
    cfg: &EnricherConfig,
    client: &awc::Client,
    figures: &EnricherFigures,
    endpoint: &'static str,
    url: &str,
) -> Result<Option<serde_json::Value>, FetchError> {
    // Only the configured REST host gets the key (a `next_url` could name any).
    let path = url
        .strip_prefix(cfg.rest_url.trim_end_matches('/'))
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| FetchError::Transport {
            path: endpoint.to_string(),
            reason: "a URL off the configured REST host".into(),
        })?
        .to_string();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        figures.call(endpoint);
        let res = client
            .get(url)
            .insert_header(("Authorization", format!("Bearer {}", cfg.api_key)))
            .send()
            .await;
        let mut retry_after = None;
        let err = match res {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                if status == 200 {
                    let body: serde_json::Value =
                        resp.json()
                            .limit(64 << 20)
                            .await
                            .map_err(|e| FetchError::Transport {
                                path: path.clone(),
                                reason: e.to_string(),
                            })?;
                    return Ok(Some(body));
                }
                if status == 404 {
                    return Ok(None);
                }
                if !retryable(status) {
                    return Err(FetchError::Status { path, status });
                }
                retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after_secs);
                FetchError::Status {
                    path: path.clone(),
                    status,
                }
            }
            Err(e) => FetchError::Transport {
                path: path.clone(),
                reason: e.to_string(),
            },
        };
        if backoff.attempts() >= cfg.retries {
            return Err(err);
        }
        figures.retries.inc();
        let delay = backoff.next_delay();
        tokio::time::sleep(retry_after.unwrap_or(delay)).await;
    }
}

/// Warms the enrichment cache for market day `day` from the bulk sources, unless another
/// node did it today; answers how many tickers it wrote values for (None: already warm).
async fn warm_up(
    cfg: EnricherConfig,
    store: Store,
    client: awc::Client,
    figures: EnricherFigures,
    day: NaiveDate,
) -> Result<Option<usize>, FetchError> {
    let marker = format!("{}mdc:warmed:{day}", cfg.prefix);
    let warm = |store: Store, marker: String| async move {
        Ok::<_, FetchError>(store.get(vec![marker]).await?[0].is_some())
    };
    if warm(store.clone(), marker.clone()).await? {
        return Ok(None);
    }
    let lock = format!("{}mdc:lock:warm:{day}", cfg.prefix);
    let deadline = Instant::now() + WARM_LOCK_TTL;
    while !store.acquire(&lock, &cfg.holder, WARM_LOCK_TTL).await? {
        // Another node is warming the cache: wait for its marker.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if warm(store.clone(), marker.clone()).await? {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            return Err(FetchError::LockTimeout(lock));
        }
    }
    let result = warm_locked(&cfg, &store, &client, &figures, day).await;
    if let Ok(n) = result {
        store
            .put(CacheWrite::unpublished(
                marker,
                Bytes::from(n.to_string()),
                WARM_MARKER_TTL_SECS,
            ))
            .await?;
    }
    if let Err(e) = store.release(&lock, &cfg.holder).await {
        log::debug!("releasing {lock}: {e}");
    }
    result.map(Some)
}

async fn warm_locked(
    cfg: &EnricherConfig,
    store: &Store,
    client: &awc::Client,
    figures: &EnricherFigures,
    day: NaiveDate,
) -> Result<usize, FetchError> {
    let base = cfg.rest_url.trim_end_matches('/');
    let snapshot = rest_json(
        cfg,
        client,
        figures,
        "snapshot_all",
        &format!("{base}/v2/snapshot/locale/us/markets/stocks/tickers?include_otc=true"),
    )
    .await?
    .unwrap_or_default();
    let prev = enrichment::prev_days(&snapshot);

    // Past sessions, newest first, until 30 held bars (holidays answer empty).
    let mut volumes = HashMap::new();
    let (mut d, mut sessions) = (day, 0);
    for _ in 0..GROUPED_MAX_CALLS {
        if sessions >= enrichment::SESSIONS {
            break;
        }
        d = crate::clock::previous_trading_day(d);
        let url = format!(
            "{base}/v2/aggs/grouped/locale/us/market/stocks/{d}?adjusted=true&include_otc=true"
        );
        if let Some(body) = rest_json(cfg, client, figures, "grouped", &url).await? {
            if enrichment::add_grouped(&body, &mut volumes) > 0 {
                sessions += 1;
            }
        }
    }

    // The float list, page by page; `complete` once its last page is read.
    let mut floats = Vec::new();
    let mut next = Some(format!("{base}/stocks/vX/float?limit=5000"));
    let mut complete = false;
    for _ in 0..FLOAT_MAX_PAGES {
        let Some(url) = next.take() else {
            break;
        };
        let Some(body) = rest_json(cfg, client, figures, "float_all", &url).await? else {
            break; // No float list here: floats come per ticker.
        };
        let (page, after) = enrichment::float_page(&body);
        floats.extend(page);
        complete = after.is_none();
        next = after;
    }

    // Every ticker the snapshot lists gets all three values (a negative one where a source
    // has nothing for it; the float only when the whole list was read). A ticker none of the
    // sources knows is left to a per-ticker call when it trades.
    let averages: HashMap<String, Bytes> = enrichment::averages(&volumes).into_iter().collect();
    let floats: HashMap<String, Bytes> = floats.into_iter().collect();
    let none = || Bytes::from_static(NONE);
    let mut writes = Vec::with_capacity(prev.len() * 3);
    let put = |kind: Kind, sym: &str, value: Bytes| {
        let ttl = if value[..] == *NONE {
            NEGATIVE_TTL_SECS
        } else {
            kind.ttl_secs()
        };
        CacheWrite::unpublished(kind.key(&cfg.prefix, sym), value, ttl)
    };
    let mut enriched = HashMap::with_capacity(prev.len());
    for (sym, value) in &prev {
        writes.push(put(Kind::Snapshot, sym, value.clone()));
        let avg = averages.get(sym).cloned().unwrap_or_else(none);
        writes.push(put(Kind::AvgVolume, sym, avg.clone()));
        let float = match floats.get(sym) {
            Some(f) => Some(f.clone()),
            None if complete => Some(none()),
            None => None,
        };
        if let Some(f) = &float {
            writes.push(put(Kind::FreeFloat, sym, f.clone()));
        }
        let values = [Some(value.clone()), Some(avg), float];
        if let Some(e) = enrichment::from_cache(&values) {
            enriched.insert(sym.as_str(), e);
        }
    }
    // The day so far of every traded ticker, for the shards' leaderboards.
    let seeds: Vec<Seed> = enrichment::seed_bars(&snapshot)
        .into_iter()
        .map(|(symbol, bar)| Seed {
            enrichment: enriched.get(symbol.as_str()).copied(),
            symbol,
            bar,
        })
        .collect();
    writes.push(CacheWrite::unpublished(
        seeds_key(&cfg.prefix, day),
        Bytes::from(Seed::encode_all(&seeds)),
        WARM_MARKER_TTL_SECS,
    ));
    store.put_all(writes).await?;
    Ok(prev.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        assert_eq!(retry_after_secs("1"), Some(Duration::from_secs(1)));
        assert_eq!(retry_after_secs(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(retry_after_secs("3600"), Some(RETRY_AFTER_MAX));
        assert_eq!(retry_after_secs("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_secs("-1"), None);
    }
}
