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
//!   answers are retried with exponential backoff; a failed ticker is not asked again for a
//!   minute (answered "unknown" meanwhile), so a REST outage costs one call per ticker per
//!   minute, not one per event.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, WrapFuture,
};
use bytes::Bytes;
use chrono::NaiveDate;

use super::metrics::EnricherFigures;
use crate::analyzers::enrichment::{self, Kind, NEGATIVE_TTL_SECS, NONE};
use crate::analyzers::quote::Enrichment;
use crate::backoff::Backoff;
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

pub struct Enricher {
    cfg: EnricherConfig,
    store: Store,
    /// One client (and connection pool) for every fetch.
    client: awc::Client,
    waiting: HashMap<String, Vec<Recipient<Enriched>>>,
    queue: VecDeque<(String, NaiveDate)>,
    active: usize,
    failed: HashMap<String, Instant>,
    figures: EnricherFigures,
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
            figures,
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
        if first {
            self.queue.push_back((msg.symbol, msg.day));
            self.pump(ctx);
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
    let path = kind.path(sym, day);
    let sep = if path.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{path}{sep}apiKey={}",
        cfg.rest_url.trim_end_matches('/'),
        cfg.api_key
    );
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        figures.calls.inc();
        let res = client.get(&url).send().await;
        let err = match res {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                if status == 200 {
                    let body: serde_json::Value =
                        resp.json()
                            .limit(8 << 20)
                            .await
                            .map_err(|e| FetchError::Transport {
                                path: path.clone(),
                                reason: e.to_string(),
                            })?;
                    return Ok(kind.from_body(&body));
                }
                if status == 404 {
                    return Ok(Bytes::from_static(NONE));
                }
                if !retryable(status) {
                    return Err(FetchError::Status { path, status });
                }
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
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
