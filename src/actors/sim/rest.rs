//! Massive REST hydration endpoints served by the simulator (massive.md §6, §8 item 15).
//!
//! Handlers check the key (`apiKey=` query or `Authorization: Bearer`), apply the optional
//! per-key rate limit, then ask the feed actor, which owns the market, for the answer; the
//! answer functions here are pure over the market state, so the values agree with the stream
//! (the snapshot's `lastTrade` is the most recent `T`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, SecondsFormat};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{self, KeySpec, KeySpecs};
use super::config::Holidays;
use super::market::SyntheticMarket;
use crate::analyzers::calendar::{DayKind, TradingCalendar};
use crate::clock::{self, Session};
use crate::massive::Market;
use crate::metrics::{Counter, Registry};
use crate::recipient::CountedRecipient;

/// A REST question for the feed actor, which owns the market.
#[derive(actix::Message)]
#[rtype(result = "Result<Value, RestError>")]
pub struct Query(pub RestQuery);

/// A question for the market, answered by the feed actor.
#[derive(Debug, Clone)]
pub enum RestQuery {
    /// Today's status, with the simulator's holidays and early closes.
    MarketStatus(Arc<TradingCalendar>),
    /// The holidays and early closes from today on.
    Upcoming(Arc<TradingCalendar>),
    SnapshotAll {
        tickers: Option<Vec<String>>,
        include_otc: bool,
    },
    SnapshotOne(String),
    Grouped {
        date: NaiveDate,
        include_otc: bool,
    },
    Range {
        ticker: String,
        from: NaiveDate,
        to: NaiveDate,
        desc: bool,
        limit: usize,
    },
    /// Today's minute bars (or, `seconds`, the last half hour's second bars) of a ticker
    /// that start in `[from_ms, to_ms]`.
    Minutes {
        ticker: String,
        seconds: bool,
        from_ms: i64,
        to_ms: i64,
        desc: bool,
        limit: usize,
    },
    Prev(String),
    TickerDetails(String),
    Float(String),
    /// Every ticker's float, `limit` from position `cursor` (the answer names the next page).
    FloatList {
        limit: usize,
        cursor: usize,
    },
    Ratios(String),
}

/// Why a query has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
}

fn ticker_or_404(m: &SyntheticMarket, t: &str) -> Result<usize, RestError> {
    m.ticker_index(t)
        .ok_or_else(|| RestError::NotFound("Ticker not found.".to_string()))
}

fn status_word(s: Session) -> &'static str {
    match s {
        Session::Regular => "open",
        Session::PreMarket | Session::AfterHours => "extended-hours",
        Session::Closed => "closed",
    }
}

/// Answers a query from the market at simulated time `now_ms`.
pub fn answer(m: &SyntheticMarket, now_ms: i64, q: &RestQuery) -> Result<Value, RestError> {
    match q {
        RestQuery::MarketStatus(calendar) => {
            let utc = clock::ms_to_utc(now_ms);
            let session = calendar.session(now_ms);
            let offset = clock::et_offset(utc);
            let word = status_word(session);
            Ok(json!({
                "market": word,
                "earlyHours": session == Session::PreMarket,
                "afterHours": session == Session::AfterHours,
                "serverTime": utc.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::Secs, false),
                "exchanges": {"nyse": word, "nasdaq": word, "otc": word},
                "currencies": {"fx": "open", "crypto": "open"},
                "indicesGroups": {"s_and_p": word, "societe_generale": word, "msci": word,
                                  "ftse_russell": word, "mstar": word, "mstarc": word,
                                  "cccy": "open", "cgi": word, "nasdaq": word, "dow_jones": word},
            }))
        }
        RestQuery::Upcoming(calendar) => {
            let today = clock::to_et(clock::ms_to_utc(now_ms)).date();
            let iso = |d: NaiveDate, h: u32, m: u32| {
                d.and_hms_opt(h, m, 0)
                    .map(clock::from_et)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            };
            let entries: Vec<Value> = calendar
                .upcoming(today)
                .into_iter()
                .flat_map(|(d, kind)| {
                    ["NYSE", "NASDAQ"].map(|exchange| match kind {
                        DayKind::EarlyClose => json!({
                            "date": d.to_string(), "exchange": exchange, "name": "Early close",
                            "status": "early-close", "open": iso(d, 9, 30), "close": iso(d, 13, 0)}),
                        _ => json!({"date": d.to_string(), "exchange": exchange,
                                    "name": "Market holiday", "status": "closed"}),
                    })
                })
                .collect();
            Ok(Value::Array(entries))
        }
        RestQuery::SnapshotAll {
            tickers,
            include_otc,
        } => {
            let wanted: Vec<usize> = match tickers {
                Some(list) => list.iter().filter_map(|t| m.ticker_index(t)).collect(),
                None => (0..m.tickers().len())
                    .filter(|i| *include_otc || !m.tickers()[*i].otc)
                    .collect(),
            };
            let snaps: Vec<Value> = wanted.into_iter().map(|i| m.snapshot(i, now_ms)).collect();
            Ok(json!({"status": "OK", "count": snaps.len(), "tickers": snaps}))
        }
        RestQuery::SnapshotOne(t) => {
            let i = ticker_or_404(m, t)?;
            Ok(json!({"status": "OK", "ticker": m.snapshot(i, now_ms)}))
        }
        RestQuery::Grouped { date, include_otc } => {
            if !clock::is_trading_day(*date) || *date > m.day() {
                return Ok(
                    json!({"status": "OK", "queryCount": 0, "resultsCount": 0, "adjusted": true, "results": []}),
                );
            }
            let results: Vec<Value> = (0..m.tickers().len())
                .filter(|i| *include_otc || !m.tickers()[*i].otc)
                .filter_map(|i| {
                    let bar = if *date == m.day() {
                        m.today_bar(i)?
                    } else {
                        m.daily_bar(i, *date)
                    };
                    let mut v = bar.to_json();
                    v["T"] = json!(m.tickers()[i].sym);
                    if m.tickers()[i].otc {
                        v["otc"] = json!(true);
                    }
                    Some(v)
                })
                .collect();
            Ok(
                json!({"status": "OK", "queryCount": results.len(), "resultsCount": results.len(),
                      "adjusted": true, "results": results}),
            )
        }
        RestQuery::Range {
            ticker,
            from,
            to,
            desc,
            limit,
        } => {
            let i = ticker_or_404(m, ticker)?;
            let bars = m.range(i, *from, *to).iter().map(|b| b.to_json()).collect();
            Ok(aggregates(ticker, bars, *desc, *limit))
        }
        RestQuery::Minutes {
            ticker,
            seconds,
            from_ms,
            to_ms,
            desc,
            limit,
        } => {
            let i = ticker_or_404(m, ticker)?;
            let bars = if *seconds {
                m.second_bars(i, *from_ms, *to_ms)
            } else {
                m.minute_bars(i, *from_ms, *to_ms)
            };
            let bars = bars.iter().map(|b| b.to_json()).collect();
            Ok(aggregates(ticker, bars, *desc, *limit))
        }
        RestQuery::Prev(t) => {
            let i = ticker_or_404(m, t)?;
            let mut v = m
                .daily_bar(i, clock::previous_trading_day(m.day()))
                .to_json();
            v["T"] = json!(t);
            Ok(
                json!({"ticker": t, "status": "OK", "queryCount": 1, "resultsCount": 1, "adjusted": true, "results": [v]}),
            )
        }
        RestQuery::TickerDetails(t) => {
            let i = ticker_or_404(m, t)?;
            let info = &m.tickers()[i];
            let price = m.snapshot(i, now_ms)["prevDay"]["c"]
                .as_f64()
                .unwrap_or(info.base_price);
            Ok(json!({"status": "OK", "results": {
                "ticker": info.sym, "name": format!("{} Simulated Inc.", info.sym), "market": "stocks",
                "locale": "us", "primary_exchange": if info.tape == 3 { "XNAS" } else { "XNYS" },
                "type": "CS", "active": true, "currency_name": "usd",
                "market_cap": (price * info.shares_outstanding).round(),
                "share_class_shares_outstanding": info.shares_outstanding,
                "weighted_shares_outstanding": info.shares_outstanding,
                "round_lot": 100, "list_date": "2000-01-03"}}))
        }
        RestQuery::Float(t) => {
            let i = ticker_or_404(m, t)?;
            let info = &m.tickers()[i];
            Ok(json!({"status": "OK", "results": [{
                "ticker": info.sym, "free_float": info.free_float,
                "free_float_percent": (info.free_float / info.shares_outstanding * 10_000.0).round() / 100.0,
                "effective_date": m.day().to_string()}]}))
        }
        RestQuery::FloatList { limit, cursor } => {
            let all = m.tickers();
            let end = (cursor + limit).min(all.len());
            let results: Vec<Value> = all
                .get(*cursor..end)
                .unwrap_or_default()
                .iter()
                .map(|info| {
                    json!({"ticker": info.sym, "free_float": info.free_float,
                           "free_float_percent": (info.free_float / info.shares_outstanding * 10_000.0).round() / 100.0,
                           "effective_date": m.day().to_string()})
                })
                .collect();
            let mut body = json!({"status": "OK", "results": results});
            if end < all.len() {
                // Made into an absolute `next_url` by the handler, which knows the host.
                body["next_cursor"] = json!(end);
            }
            Ok(body)
        }
        RestQuery::Ratios(t) => {
            let i = ticker_or_404(m, t)?;
            let day = m.day();
            let bars = m.range(
                i,
                day - chrono::Duration::days(42),
                clock::previous_trading_day(day),
            );
            let avg = bars.iter().rev().take(30).map(|b| b.v).sum::<f64>()
                / bars.len().clamp(1, 30) as f64;
            Ok(
                json!({"status": "OK", "results": [{"ticker": t, "average_volume": avg.round(),
                                                     "date": day.to_string()}]}),
            )
        }
    }
}

/// An aggregates answer (`/range/…`): `bars` oldest first, newest first when `desc`, at most
/// `limit`.
fn aggregates(ticker: &str, mut bars: Vec<Value>, desc: bool, limit: usize) -> Value {
    if desc {
        bars.reverse();
    }
    bars.truncate(limit);
    json!({"ticker": ticker, "status": "OK", "queryCount": bars.len(),
           "resultsCount": bars.len(), "adjusted": true, "results": bars})
}

/// Shared state of the REST handlers.
pub struct RestState {
    pub keys: KeySpecs,
    pub holidays: Holidays,
    pub feed: CountedRecipient<Query>,
    pub rate_limit_per_min: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
    request_ids: AtomicU64,
    registry: Arc<Registry>,
}

impl RestState {
    pub fn new(
        keys: KeySpecs,
        holidays: Holidays,
        feed: CountedRecipient<Query>,
        rate_limit_per_min: u32,
        registry: Arc<Registry>,
    ) -> Self {
        RestState {
            keys,
            holidays,
            feed,
            rate_limit_per_min,
            windows: Mutex::new(HashMap::new()),
            request_ids: AtomicU64::new(1),
            registry,
        }
    }

    fn request_id(&self) -> String {
        format!(
            "sim{:016x}",
            self.request_ids.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn count(&self, status: u16) -> Counter {
        super::metrics::rest_requests(&self.registry, status)
    }

    /// Key check and rate limit; `Err` is the Massive-style error response.
    fn authorize(&self, req: &HttpRequest, rid: &str) -> Result<&KeySpec, Box<HttpResponse>> {
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let query_key = web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("apiKey").cloned());
        let Some(key) = query_key.or(bearer).filter(|k| !k.is_empty()) else {
            self.count(401).inc();
            return Err(Box::new(HttpResponse::Unauthorized().json(
                json!({"status": "ERROR", "request_id": rid, "error": auth::REST_NO_KEY}),
            )));
        };
        let Some(spec) = self.keys.find(&key) else {
            self.count(401).inc();
            return Err(Box::new(HttpResponse::Unauthorized().json(
                json!({"status": "ERROR", "request_id": rid, "error": auth::REST_UNKNOWN_KEY}),
            )));
        };
        if !spec.allows_market(Market::Stocks) {
            self.count(403).inc();
            return Err(Box::new(HttpResponse::Forbidden()
                .json(json!({"status": "NOT_AUTHORIZED", "request_id": rid, "message": auth::REST_NOT_ENTITLED}))));
        }
        if self.rate_limit_per_min > 0 {
            let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let entry = w.entry(key).or_insert((now, 0));
            if now.duration_since(entry.0).as_secs() >= 60 {
                *entry = (now, 0);
            }
            entry.1 += 1;
            if entry.1 > self.rate_limit_per_min {
                self.count(429).inc();
                // When this key's minute is over, rounded up.
                let wait = 60u64
                    .saturating_sub(now.duration_since(entry.0).as_secs())
                    .max(1);
                return Err(Box::new(
                    HttpResponse::TooManyRequests()
                        .insert_header(("Retry-After", wait.to_string()))
                        .json(json!({"status": "ERROR", "request_id": rid, "error": auth::REST_RATE_LIMITED})),
                ));
            }
        }
        Ok(spec)
    }

    /// Answers one request to `endpoint` (its name in the per-endpoint counts).
    async fn run(
        &self,
        req: &HttpRequest,
        endpoint: &'static str,
        q: Result<RestQuery, RestError>,
    ) -> HttpResponse {
        super::metrics::rest_endpoint_requests(&self.registry, endpoint).inc();
        let rid = self.request_id();
        if let Err(resp) = self.authorize(req, &rid) {
            return *resp;
        }
        let result = match q {
            Ok(q) => match self.feed.send(Query(q)).await {
                Ok(r) => r,
                Err(e) => Err(RestError::Unavailable(format!(
                    "market actor unavailable: {e}"
                ))),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(mut body) => {
                self.count(200).inc();
                // Market status carries no request_id on Massive either.
                if body.get("status").is_some() {
                    body["request_id"] = json!(rid);
                }
                if let Some(next) = body.as_object_mut().and_then(|o| o.remove("next_cursor")) {
                    let c = req.connection_info();
                    let limit =
                        web::Query::<HashMap<String, String>>::from_query(req.query_string())
                            .ok()
                            .and_then(|q| q.get("limit").cloned())
                            .unwrap_or_else(|| "100".into());
                    body["next_url"] = json!(format!(
                        "{}://{}{}?cursor={next}&limit={limit}",
                        c.scheme(),
                        c.host(),
                        req.path()
                    ));
                }
                HttpResponse::Ok().json(body)
            }
            Err(RestError::NotFound(msg)) => {
                self.count(404).inc();
                HttpResponse::NotFound()
                    .json(json!({"status": "NOT_FOUND", "request_id": rid, "message": msg}))
            }
            Err(RestError::BadRequest(msg)) => {
                self.count(400).inc();
                HttpResponse::BadRequest()
                    .json(json!({"status": "ERROR", "request_id": rid, "error": msg}))
            }
            Err(RestError::Unavailable(msg)) => {
                self.count(503).inc();
                HttpResponse::ServiceUnavailable()
                    .json(json!({"status": "ERROR", "request_id": rid, "error": msg}))
            }
        }
    }
}

/// `YYYY-MM-DD` or epoch milliseconds (Massive accepts both in aggregate ranges).
fn parse_date(s: &str) -> Result<NaiveDate, RestError> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d);
    }
    s.parse::<i64>()
        .ok()
        .map(|ms| clock::to_et(clock::ms_to_utc(ms)).date())
        .ok_or_else(|| {
            RestError::BadRequest(format!("Could not parse the date {s:?}. Use YYYY-MM-DD."))
        })
}

/// A range bound in epoch ms: a date means its whole day in ET (from its start, or to its
/// end when `end`), a number is epoch ms, as Massive reads them.
fn parse_bound(s: &str, end: bool) -> Result<i64, RestError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let d = parse_date(s)?;
    let start = clock::from_et(d.and_time(chrono::NaiveTime::MIN)).timestamp_millis();
    Ok(if end {
        let next = clock::from_et((d + chrono::Duration::days(1)).and_time(chrono::NaiveTime::MIN));
        next.timestamp_millis() - 1
    } else {
        start
    })
}

#[derive(Deserialize)]
struct SnapshotParams {
    tickers: Option<String>,
    include_otc: Option<bool>,
}

#[derive(Deserialize)]
struct OtcParam {
    include_otc: Option<bool>,
}

#[derive(Deserialize)]
struct RangeParams {
    sort: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct TickerParam {
    ticker: Option<String>,
}

#[derive(Deserialize)]
struct FloatParams {
    ticker: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

type State = web::Data<RestState>;

async fn market_status(s: State, req: HttpRequest) -> HttpResponse {
    let q = RestQuery::MarketStatus(s.holidays.0.clone());
    s.run(&req, "market_status", Ok(q)).await
}

async fn upcoming(s: State, req: HttpRequest) -> HttpResponse {
    let q = RestQuery::Upcoming(s.holidays.0.clone());
    s.run(&req, "market_status_upcoming", Ok(q)).await
}

async fn snapshot_all(s: State, req: HttpRequest, p: web::Query<SnapshotParams>) -> HttpResponse {
    let tickers = p.tickers.as_ref().map(|t| {
        t.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    });
    s.run(
        &req,
        "snapshot_all",
        Ok(RestQuery::SnapshotAll {
            tickers,
            include_otc: p.include_otc.unwrap_or(false),
        }),
    )
    .await
}

async fn snapshot_one(s: State, req: HttpRequest, t: web::Path<String>) -> HttpResponse {
    s.run(
        &req,
        "snapshot_one",
        Ok(RestQuery::SnapshotOne(t.into_inner())),
    )
    .await
}

async fn grouped(
    s: State,
    req: HttpRequest,
    d: web::Path<String>,
    p: web::Query<OtcParam>,
) -> HttpResponse {
    let q = parse_date(&d).map(|date| RestQuery::Grouped {
        date,
        include_otc: p.include_otc.unwrap_or(false),
    });
    s.run(&req, "grouped", q).await
}

async fn range(
    s: State,
    req: HttpRequest,
    path: web::Path<(String, u32, String, String, String)>,
    p: web::Query<RangeParams>,
) -> HttpResponse {
    let (ticker, mult, span, from, to) = path.into_inner();
    let desc = p.sort.as_deref() == Some("desc");
    let limit = p.limit.unwrap_or(5000).clamp(1, 50_000);
    let q = if mult == 1 && (span == "minute" || span == "second") {
        parse_bound(&from, false)
            .and_then(|f| parse_bound(&to, true).map(|t| (f, t)))
            .map(|(from_ms, to_ms)| RestQuery::Minutes {
                ticker,
                seconds: span == "second",
                from_ms,
                to_ms,
                desc,
                limit,
            })
    } else if mult != 1 || span != "day" {
        Err(RestError::BadRequest(
            "the simulator serves 1/day, 1/minute and 1/second aggregates only".to_string(),
        ))
    } else {
        parse_date(&from)
            .and_then(|f| parse_date(&to).map(|t| (f, t)))
            .map(|(from, to)| RestQuery::Range {
                ticker,
                from,
                to,
                desc,
                limit,
            })
    };
    s.run(&req, "range", q).await
}

async fn prev(s: State, req: HttpRequest, t: web::Path<String>) -> HttpResponse {
    s.run(&req, "prev", Ok(RestQuery::Prev(t.into_inner())))
        .await
}

async fn details(s: State, req: HttpRequest, t: web::Path<String>) -> HttpResponse {
    s.run(
        &req,
        "details",
        Ok(RestQuery::TickerDetails(t.into_inner())),
    )
    .await
}

fn ticker_param(p: &TickerParam) -> Result<String, RestError> {
    p.ticker
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| RestError::BadRequest("ticker is required".into()))
}

/// One ticker's float, or (without `ticker`) every ticker's, a page of `limit` (100 by
/// default, at most 5,000) at a time with `next_url` to the next page, as Massive pages.
async fn float(s: State, req: HttpRequest, p: web::Query<FloatParams>) -> HttpResponse {
    let q = match p.ticker.clone().filter(|t| !t.is_empty()) {
        Some(t) => Ok(RestQuery::Float(t)),
        None => p
            .cursor
            .as_deref()
            .map_or(Ok(0), str::parse::<usize>)
            .map_err(|_| RestError::BadRequest("cursor is not valid".into()))
            .map(|cursor| RestQuery::FloatList {
                limit: p.limit.unwrap_or(100).clamp(1, 5000),
                cursor,
            }),
    };
    s.run(&req, "float", q).await
}

async fn ratios(s: State, req: HttpRequest, p: web::Query<TickerParam>) -> HttpResponse {
    s.run(&req, "ratios", ticker_param(&p).map(RestQuery::Ratios))
        .await
}

/// Mounts the REST routes; the app must hold `web::Data<RestState>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/marketstatus/now", web::get().to(market_status))
        .route("/v1/marketstatus/upcoming", web::get().to(upcoming))
        .route(
            "/v2/snapshot/locale/us/markets/stocks/tickers",
            web::get().to(snapshot_all),
        )
        .route(
            "/v2/snapshot/locale/us/markets/stocks/tickers/{ticker}",
            web::get().to(snapshot_one),
        )
        .route(
            "/v2/aggs/grouped/locale/us/market/stocks/{date}",
            web::get().to(grouped),
        )
        .route(
            "/v2/aggs/ticker/{ticker}/range/{mult}/{span}/{from}/{to}",
            web::get().to(range),
        )
        .route("/v2/aggs/ticker/{ticker}/prev", web::get().to(prev))
        .route("/v3/reference/tickers/{ticker}", web::get().to(details))
        .route("/stocks/vX/float", web::get().to(float))
        .route("/stocks/financials/v1/ratios", web::get().to(ratios));
}
