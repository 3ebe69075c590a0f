//! MarketStatus actor: keeps the processors' trading calendar current (holidays and early
//! closes; see [`TradingCalendar`]): the ones ahead from `/v1/marketstatus/upcoming` at start
//! and daily, today's from polling `/v1/marketstatus/now`.
//!
//! The status's own `serverTime` dates each answer (so a simulator running on its own clock
//! is read correctly); a failing call is counted and logged, and the calendar simply keeps
//! what it knew: weekdays trade.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Recipient, WrapFuture};

use super::metrics::MarketStatusFigures;
use super::shard::CalendarUpdate;
use crate::analyzers::calendar::{parse_upcoming, StatusReport, TradingCalendar};
use crate::clock;

/// How often the holidays ahead are read again.
const UPCOMING_EVERY: Duration = Duration::from_secs(24 * 3600);

pub struct MarketStatus {
    url: String,
    upcoming_url: String,
    /// The key travels in a header, never in a URL (or a log).
    key: String,
    every: Duration,
    to: Recipient<CalendarUpdate>,
    calendar: TradingCalendar,
    client: awc::Client,
    figures: MarketStatusFigures,
}

impl MarketStatus {
    /// Polls `{rest_url}/v1/marketstatus/now` every `every`.
    pub fn new(
        rest_url: &str,
        api_key: &str,
        every: Duration,
        to: Recipient<CalendarUpdate>,
        figures: MarketStatusFigures,
    ) -> Self {
        MarketStatus {
            url: format!("{}/v1/marketstatus/now", rest_url.trim_end_matches('/')),
            upcoming_url: format!(
                "{}/v1/marketstatus/upcoming",
                rest_url.trim_end_matches('/')
            ),
            key: api_key.to_string(),
            every,
            to,
            calendar: TradingCalendar::default(),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish(),
            figures,
        }
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        self.figures.polls.inc();
        let fut = self.get_json(&self.url);
        ctx.spawn(fut.into_actor(self).map(|res, act, _| {
            let body = match res {
                Ok(b) => b,
                Err(e) => {
                    act.figures.errors.inc();
                    log::warn!("market status: {e}");
                    return;
                }
            };
            let Some(report) = StatusReport::parse(&body) else {
                act.figures.errors.inc();
                log::warn!("market status: unreadable answer {body}");
                return;
            };
            let at = body["serverTime"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(chrono::Utc::now);
            if act.calendar.observe(clock::to_et(at), report) {
                log::info!("trading calendar updated from market status");
                act.to.do_send(CalendarUpdate(act.calendar.clone()));
            }
        }));
    }
}

impl MarketStatus {
    /// GET `url` as JSON with the key in a header.
    fn get_json(
        &self,
        url: &str,
    ) -> impl std::future::Future<Output = Result<serde_json::Value, String>> + 'static {
        let (url, key) = (url.to_string(), self.key.clone());
        crate::massive::rest::get_json(self.client.clone(), url, key, crate::massive::rest::SMALL)
    }

    /// Primes the calendar with the holidays and early closes ahead.
    fn upcoming(&mut self, ctx: &mut Context<Self>) {
        self.figures.polls.inc();
        let fut = self.get_json(&self.upcoming_url);
        ctx.spawn(fut.into_actor(self).map(|res, act, _| match res {
            Ok(body) => {
                let days = parse_upcoming(&body);
                if act.calendar.prime(days.iter().copied()) {
                    log::info!(
                        "trading calendar: {} holidays and early closes ahead",
                        days.len()
                    );
                    act.to.do_send(CalendarUpdate(act.calendar.clone()));
                }
            }
            Err(e) => {
                act.figures.errors.inc();
                log::warn!("upcoming market holidays: {e}");
            }
        }));
    }
}

impl Actor for MarketStatus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.upcoming(ctx);
        self.poll(ctx);
        ctx.run_interval(self.every, |act, ctx| act.poll(ctx));
        ctx.run_interval(UPCOMING_EVERY, |act, ctx| act.upcoming(ctx));
    }
}
