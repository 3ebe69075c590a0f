//! CacheWriter actor: the cache contract on Redis, coalesced and pipelined.
//!
//! Results arrive as [`Write`] batches from the processors. The writer keeps one pipeline in
//! flight at a time; whatever arrives meanwhile waits in a pending buffer, where a newer
//! string value for a key replaces the older one (only the newest value of a key matters to
//! a reader, and both were headed for the same SET and PUBLISH). So at low load every write
//! goes out at once, and under load pipelines grow instead of round trips: Redis round trips
//! per event fall towards zero.
//!
//! Redis being away never blocks the processors: a failed pipeline is counted and dropped,
//! the next attempt waits a growing backoff, pending writes stay bounded (the newest value per
//! key still replaces the older; list pushes past the bound are dropped and counted), and the
//! next pipeline after a failure opens a new connection, so writing resumes when Redis is
//! back.
//!
//! The results pipelines go over the writer's own connection ([`resp`]), which encodes them
//! straight into one buffer and checks the replies without building them into values; the
//! awaited calls (`Put`, `Get`, the locks and snapshots) use redis-rs through deadpool.

pub(crate) mod resp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, ResponseFuture, WrapFuture};
use bytes::Bytes;
use deadpool_redis::redis::{self, Pipeline};
use deadpool_redis::Pool;
use resp::{Connection, Endpoint, RespError, Transaction};

use super::metrics::CacheWriterFigures;
use crate::backoff::Backoff;
use crate::metrics::{ActorMetrics, Registry};
use crate::redis_pool::{self, RedisUrlError};
use crate::store::{
    lrange_stop, Acquire, CacheWrite, Get, Members, Put, Read, Release, Snapshot, Store,
    StoreError, Stored, Write, WriteOp, ACQUIRE_LUA, RELEASE_LUA, SNAPSHOT_LUA,
};

#[derive(Debug, thiserror::Error)]
pub enum CacheWriterError {
    #[error(transparent)]
    Config(#[from] RedisUrlError),
}

#[derive(Debug, Clone)]
pub struct CacheWriterConfig {
    pub url: String,
    /// Most writes per pipeline.
    pub max_batch: usize,
    /// Most writes waiting while Redis is slow or away.
    pub max_pending: usize,
    /// Metric label: which store this is (`results`, `state`).
    pub name: String,
    /// Where each pipeline first announces the listener receive time of the values it
    /// publishes (`[[channel, epoch ms], ...]`), so the widget data service can stamp its
    /// pushes: Redis pub/sub carries only the payload, and the payload is the contract.
    pub timing_channel: Option<String>,
}

impl CacheWriterConfig {
    pub fn new(url: &str, name: &str) -> Self {
        CacheWriterConfig {
            url: url.to_string(),
            max_batch: 5000,
            max_pending: 200_000,
            name: name.to_string(),
            timing_channel: None,
        }
    }

    pub fn with_timing_channel(mut self, channel: String) -> Self {
        self.timing_channel = Some(channel);
        self
    }
}

/// The timing announcement for `batch` (see [`CacheWriterConfig::timing_channel`]).
fn timing_payload(batch: &[CacheWrite]) -> Option<Vec<u8>> {
    let stamps: Vec<(&str, i64)> = batch
        .iter()
        .filter(|w| w.publish && w.received_at_ms > 0)
        .map(|w| (w.key.as_str(), w.received_at_ms))
        .collect();
    if stamps.is_empty() {
        None
    } else {
        serde_json::to_vec(&stamps).ok()
    }
}

/// Writes per pipeline of a [`Put`].
const PUT_PIPELINE_MAX: usize = 2_000;

fn cmd_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Command(e.to_string())
}

fn pool_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Hands each command of one write, as its words, to `f` (reference-system.md §3.1). The one
/// statement of the write contract on Redis, whichever client sends it.
pub(crate) fn for_each_command(w: &CacheWrite, mut f: impl FnMut(&[&[u8]])) {
    let (key, value) = (w.key.as_bytes(), &w.value[..]);
    let mut ttl = itoa::Buffer::new();
    match w.op {
        WriteOp::Set { ttl_secs: 0 } => f(&[b"SET", key, value]),
        WriteOp::Set { ttl_secs } => f(&[b"SETEX", key, ttl.format(ttl_secs).as_bytes(), value]),
        WriteOp::Push { cap, ttl_secs } | WriteOp::Replace { cap, ttl_secs, .. } => {
            if let WriteOp::Replace { old, .. } = &w.op {
                f(&[b"LREM", key, b"1", old]);
            }
            f(&[b"LPUSH", key, value]);
            let mut stop = itoa::Buffer::new();
            f(&[b"LTRIM", key, b"0", stop.format(cap.max(1) - 1).as_bytes()]);
            if ttl_secs > 0 {
                f(&[b"EXPIRE", key, ttl.format(ttl_secs).as_bytes()]);
            }
        }
    }
    if w.publish {
        f(&[b"PUBLISH", key, value]);
    }
}

/// Appends the commands of one write to a redis-rs pipeline.
pub(crate) fn add_to_pipeline(p: &mut Pipeline, w: &CacheWrite) {
    for_each_command(w, |words| {
        let mut c = redis::Cmd::new();
        for word in words {
            c.arg(*word);
        }
        p.add_command(c).ignore();
    });
}

/// One results pipeline: MULTI, the timing announcement, every write's commands (EXEC is
/// added when it is sent).
pub(crate) fn transaction(batch: &[CacheWrite], timing_channel: Option<&str>) -> Transaction {
    let mut tx = Transaction::new();
    if let Some((channel, stamps)) = timing_channel.zip(timing_payload(batch)) {
        tx.command(&[b"PUBLISH", channel.as_bytes(), &stamps[..]]);
    }
    for w in batch {
        for_each_command(w, |words| tx.command(words));
    }
    tx
}

const FAILED_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a pipeline may take before the connection is given up as hung.
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends one transaction over `conn`, or a fresh connection when there is none; gives back
/// the connection if it is still good.
async fn send(
    conn: Option<Connection>,
    endpoint: &Endpoint,
    tx: Transaction,
) -> Result<(Connection, resp::TxReport), StoreError> {
    let mut conn = match conn {
        Some(c) => c,
        None => tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(endpoint))
            .await
            .map_err(|_| pool_err("connect timed out"))?
            .map_err(pool_err)?,
    };
    match tokio::time::timeout(PIPELINE_TIMEOUT, conn.exec(tx)).await {
        Ok(Ok(report)) => Ok((conn, report)),
        Ok(Err(e @ RespError::Refused(_))) => Err(cmd_err(e)),
        Ok(Err(e)) => Err(pool_err(e)),
        Err(_) => Err(pool_err(format!(
            "no reply within {PIPELINE_TIMEOUT:?}, connection dropped"
        ))),
    }
}

pub struct CacheWriter {
    cfg: CacheWriterConfig,
    pool: Pool,
    /// The results pipelines' own connection ([`resp`]): taken by the pipeline in flight,
    /// given back if still good, opened again by the next pipeline if not.
    /// Shared with each pipeline's future, which needs it only to reconnect.
    endpoint: Arc<Endpoint>,
    conn: Option<Connection>,
    /// Commands that ran and failed inside transactions, not yet logged (logged at most
    /// every [`FAILED_LOG_EVERY`], so a key of the wrong type cannot flood the log).
    failed_unlogged: u64,
    failed_logged_at: Option<Instant>,
    /// Waiting writes in arrival order; a coalesced one leaves a `None` behind.
    pending: Vec<Option<CacheWrite>>,
    /// Key -> position of its waiting string value, counted from the first write ever queued
    /// (so draining the front never renumbers: a position below `drained` has been sent).
    pending_sets: HashMap<String, usize>,
    /// Writes taken off the front of `pending` so far.
    drained: usize,
    in_flight: bool,
    retry_at: Option<Instant>,
    backoff: Backoff,
    actor: ActorMetrics,
    figures: CacheWriterFigures,
}

impl CacheWriter {
    pub fn new(
        cfg: CacheWriterConfig,
        (actor, figures): (ActorMetrics, CacheWriterFigures),
    ) -> Result<Self, CacheWriterError> {
        let pool = redis_pool::open(&cfg.url)?;
        let endpoint = Endpoint::parse(&cfg.url)
            .map(Arc::new)
            .map_err(|e| RedisUrlError {
                url: cfg.url.clone(),
                reason: e.to_string(),
            })?;
        Ok(CacheWriter {
            pool,
            endpoint,
            conn: None,
            failed_unlogged: 0,
            failed_logged_at: None,
            pending: Vec::new(),
            pending_sets: HashMap::new(),
            drained: 0,
            in_flight: false,
            retry_at: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            actor,
            figures,
            cfg,
        })
    }

    /// Starts a writer and returns its address and the store handle.
    pub fn start_store(
        cfg: CacheWriterConfig,
        registry: &Registry,
    ) -> Result<(actix::Addr<CacheWriter>, Store), CacheWriterError> {
        let figures = CacheWriterFigures::for_store(registry, &cfg.name);
        let metrics = figures.0.clone();
        let w = CacheWriter::new(cfg, figures)?;
        let addr = w.start();
        let store = Store::of(&addr, metrics);
        Ok((addr, store))
    }

    fn ping(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        let pool = self.pool.clone();
        let fut = async move {
            let mut conn = pool.get().await.map_err(pool_err)?;
            redis::cmd("PING")
                .query_async::<String>(&mut *conn)
                .await
                .map_err(cmd_err)
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, _| {
            let up = i64::from(res.is_ok());
            if up != act.figures.connected.get() {
                if up == 1 {
                    log::info!("Redis ({}) reachable", act.cfg.name);
                } else {
                    log::warn!("Redis ({}) unreachable", act.cfg.name);
                }
            }
            act.figures.connected.set(up);
        }));
    }

    /// Counts (and now and then logs) the commands of a transaction that ran but failed.
    fn command_failures(&mut self, report: &resp::TxReport) {
        if report.failed == 0 {
            return;
        }
        self.figures.errors.add(report.failed as u64);
        self.failed_unlogged += report.failed as u64;
        let due = self
            .failed_logged_at
            .is_none_or(|t| t.elapsed() >= FAILED_LOG_EVERY);
        if due {
            log::warn!(
                "Redis ({}): {} commands failed since last reported, e.g. {}",
                self.cfg.name,
                self.failed_unlogged,
                report.first_error.as_deref().unwrap_or("?")
            );
            self.failed_unlogged = 0;
            self.failed_logged_at = Some(Instant::now());
        }
    }

    fn enqueue(&mut self, w: CacheWrite) {
        if matches!(w.op, WriteOp::Set { .. }) {
            if let Some(&pos) = self.pending_sets.get(&w.key) {
                if let Some(slot) = pos
                    .checked_sub(self.drained)
                    .and_then(|i| self.pending.get_mut(i))
                {
                    *slot = Some(w);
                    self.figures.coalesced.inc();
                    return;
                }
            }
        }
        if self.pending.len() >= self.cfg.max_pending {
            self.figures.dropped.inc();
            return;
        }
        if matches!(w.op, WriteOp::Set { .. }) {
            self.pending_sets
                .insert(w.key.clone(), self.drained + self.pending.len());
        }
        self.pending.push(Some(w));
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight || self.pending.is_empty() {
            return;
        }
        if let Some(t) = self.retry_at {
            if Instant::now() < t {
                return;
            }
        }
        let take = self.pending.len().min(self.cfg.max_batch);
        let batch: Vec<CacheWrite> = self.pending.drain(..take).flatten().collect();
        // Indices of what is still waiting moved down by `take`.
        self.drained += take;
        if self.pending.is_empty() {
            // Every position is stale now; forgetting them keeps the map bounded.
            self.pending_sets.clear();
        }
        self.figures.pending.set(self.pending.len() as i64);
        if batch.is_empty() {
            return;
        }
        self.in_flight = true;
        // MULTI/EXEC: a reader's atomic snapshot (store::Snapshot) then never sees a SET whose
        // PUBLISH is still to come, which is what lets the WDS join snapshot and stream with
        // no duplicate.
        let tx = transaction(&batch, self.cfg.timing_channel.as_deref());
        let (conn, endpoint) = (self.conn.take(), Arc::clone(&self.endpoint));
        let fut = async move {
            let sent = Instant::now();
            let res = send(conn, &endpoint, tx).await;
            (batch, res, sent.elapsed())
        };
        ctx.spawn(fut.into_actor(self).map(|(batch, res, took), act, ctx| {
            act.in_flight = false;
            act.figures.pipelines.inc();
            act.figures.round_trip.observe(took.as_secs_f64() * 1000.0);
            match res {
                Ok((conn, report)) => {
                    act.conn = Some(conn);
                    act.command_failures(&report);
                    if act.figures.connected.get() == 0 && act.backoff.attempts() > 0 {
                        log::info!("Redis ({}) is writable again", act.cfg.name);
                    }
                    act.figures.connected.set(1);
                    act.backoff.reset();
                    act.retry_at = None;
                    let now = chrono::Utc::now().timestamp_millis();
                    for w in &batch {
                        act.figures.writes.inc();
                        if w.publish {
                            act.figures.publishes.inc();
                            if w.received_at_ms > 0 {
                                act.figures.hop.observe((now - w.received_at_ms) as f64);
                            }
                        }
                    }
                }
                Err(e) => {
                    if act.figures.connected.get() == 1 || act.backoff.attempts() == 0 {
                        log::warn!(
                            "Redis ({}) write failed, {} writes dropped: {e}",
                            act.cfg.name,
                            batch.len()
                        );
                    }
                    act.figures.connected.set(0);
                    act.figures.errors.inc();
                    act.actor.errors.inc();
                    act.figures.dropped.add(batch.len() as u64);
                    let delay = act.backoff.next_delay();
                    act.retry_at = Some(Instant::now() + delay);
                    ctx.run_later(delay, |act, ctx| act.flush(ctx));
                }
            }
            act.flush(ctx);
        }));
    }
}

impl Actor for CacheWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // `connected` must be true before the first write, and must notice an outage while
        // nothing is written: a PING now and every 5 s.
        self.ping(ctx);
        ctx.run_interval(Duration::from_secs(5), |act, ctx| act.ping(ctx));
    }
}

/// Whether every write handed over so far has been sent and answered (a stopping node waits
/// for it before it exits, so nothing it computed is left behind).
#[derive(actix::Message)]
#[rtype(result = "bool")]
pub struct IsIdle;

impl Handler<IsIdle> for CacheWriter {
    type Result = bool;

    fn handle(&mut self, _: IsIdle, _: &mut Context<Self>) -> bool {
        self.actor.handled();
        self.pending.iter().all(Option::is_none) && !self.in_flight
    }
}

impl Handler<Write> for CacheWriter {
    type Result = ();

    fn handle(&mut self, msg: Write, ctx: &mut Context<Self>) {
        self.actor.received();
        for w in msg.0 {
            self.enqueue(w);
        }
        self.figures.pending.set(self.pending.len() as i64);
        self.flush(ctx);
    }
}

impl Handler<Put> for CacheWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: Put, _: &mut Context<Self>) -> Self::Result {
        self.actor.handled();
        let (pool, errors, writes) = (
            self.pool.clone(),
            self.figures.errors.clone(),
            self.figures.writes.clone(),
        );
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(pool_err)?;
            // Bounded pipelines: a bulk warm-up is tens of thousands of writes.
            for chunk in msg.0.chunks(PUT_PIPELINE_MAX) {
                let mut p = redis::pipe();
                for w in chunk {
                    add_to_pipeline(&mut p, w);
                }
                let r = p.query_async::<()>(&mut *conn).await.map_err(cmd_err);
                match &r {
                    Ok(()) => writes.add(chunk.len() as u64),
                    Err(_) => errors.inc(),
                }
                r?;
            }
            Ok(())
        })
    }
}

impl Handler<Get> for CacheWriter {
    type Result = ResponseFuture<Result<Vec<Option<Bytes>>, StoreError>>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        self.actor.handled();
        let pool = self.pool.clone();
        Box::pin(async move {
            if msg.0.is_empty() {
                return Ok(Vec::new());
            }
            let mut conn = pool.get().await.map_err(pool_err)?;
            let vals: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&msg.0)
                .query_async(&mut *conn)
                .await
                .map_err(cmd_err)?;
            Ok(vals.into_iter().map(|v| v.map(Bytes::from)).collect())
        })
    }
}

impl Handler<Read> for CacheWriter {
    type Result = ResponseFuture<Result<Option<(Stored, Option<Duration>)>, StoreError>>;

    fn handle(&mut self, msg: Read, _: &mut Context<Self>) -> Self::Result {
        self.actor.handled();
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(pool_err)?;
            let kind: String = redis::cmd("TYPE")
                .arg(&msg.key)
                .query_async(&mut *conn)
                .await
                .map_err(cmd_err)?;
            let value = match kind.as_str() {
                "string" => {
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&msg.key)
                        .query_async(&mut *conn)
                        .await
                        .map_err(cmd_err)?;
                    match v {
                        Some(v) => Stored::Str(Bytes::from(v)),
                        None => return Ok(None),
                    }
                }
                "list" => {
                    let v: Vec<Vec<u8>> = redis::cmd("LRANGE")
                        .arg(&msg.key)
                        .arg(0)
                        .arg(lrange_stop(msg.limit))
                        .query_async(&mut *conn)
                        .await
                        .map_err(cmd_err)?;
                    Stored::List(v.into_iter().map(Bytes::from).collect())
                }
                _ => return Ok(None),
            };
            let pttl: i64 = redis::cmd("PTTL")
                .arg(&msg.key)
                .query_async(&mut *conn)
                .await
                .map_err(cmd_err)?;
            let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
            Ok(Some((value, ttl)))
        })
    }
}

impl Handler<Snapshot> for CacheWriter {
    type Result = ResponseFuture<Result<Option<Stored>, StoreError>>;

    fn handle(&mut self, msg: Snapshot, _: &mut Context<Self>) -> Self::Result {
        self.actor.handled();
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(pool_err)?;
            let (kind, value): (String, redis::Value) = redis::cmd("EVAL")
                .arg(SNAPSHOT_LUA)
                .arg(1)
                .arg(&msg.key)
                .arg(lrange_stop(msg.limit))
                .arg(&msg.marker_channel)
                .arg(&msg.marker[..])
                .query_async(&mut *conn)
                .await
                .map_err(cmd_err)?;
            Ok(match (kind.as_str(), value) {
                ("string", redis::Value::BulkString(b)) => Some(Stored::Str(Bytes::from(b))),
                ("list", redis::Value::Array(items)) => Some(Stored::List(
                    items
                        .into_iter()
                        .filter_map(|v| match v {
                            redis::Value::BulkString(b) => Some(Bytes::from(b)),
                            _ => None,
                        })
                        .collect(),
                )),
                _ => None,
            })
        })
    }
}

impl Handler<Acquire> for CacheWriter {
    type Result = ResponseFuture<Result<bool, StoreError>>;

    fn handle(&mut self, msg: Acquire, _: &mut Context<Self>) -> Self::Result {
        self.actor.handled();
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(pool_err)?;
            let held: i64 = redis::cmd("EVAL")
                .arg(ACQUIRE_LUA)
                .arg(1)
                .arg(&msg.key)
                .arg(&msg.holder)
                .arg(msg.ttl.as_millis() as u64)
                .query_async(&mut *conn)
                .await
                .map_err(cmd_err)?;
            Ok(held == 1)
        })
    }
}

impl Handler<Members> for CacheWriter {
    type Result = ResponseFuture<Result<Vec<String>, StoreError>>;

    fn handle(&mut self, msg: Members, _: &mut Context<Self>) -> Self::Result {
        self.actor.handled();
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(pool_err)?;
            // A sorted set scored by expiry time: add or refresh, drop the expired, list.
            let now = chrono::Utc::now().timestamp_millis();
            let expires = now + msg.ttl.as_millis() as i64;
            let (mut live,): (Vec<String>,) = redis::pipe()
                .cmd("ZADD")
                .arg(&msg.key)
                .arg(expires)
                .arg(&msg.member)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&msg.key)
                .arg("-inf")
                .arg(now)
                .ignore()
                .cmd("ZRANGE")
                .arg(&msg.key)
                .arg(0)
                .arg(-1)
                .cmd("PEXPIRE")
                .arg(&msg.key)
                .arg(msg.ttl.as_millis() as u64 * 2)
                .ignore()
                .query_async(&mut *conn)
                .await
                .map_err(cmd_err)?;
            live.sort();
            Ok(live)
        })
    }
}

impl Handler<Release> for CacheWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) -> Self::Result {
        self.actor.handled();
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await.map_err(pool_err)?;
            let _: i64 = redis::cmd("EVAL")
                .arg(RELEASE_LUA)
                .arg(1)
                .arg(&msg.key)
                .arg(&msg.holder)
                .query_async(&mut *conn)
                .await
                .map_err(cmd_err)?;
            Ok(())
        })
    }
}
