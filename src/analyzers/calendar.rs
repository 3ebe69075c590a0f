//! Market days and sessions for the analyzers, by event time.
//!
//! The reference resets "today's 04:00 ET", which moves at midnight, and never asks whether
//! today is a trading day. Here every decision is taken from the event's own timestamp: the
//! market day of an event starts at the most recent 04:00 ET *of a trading day*, and its
//! session (pre-market, regular, after-hours) is the clock's at that instant. So replays and a
//! sped-up simulator behave like the live market, a bar is never filed under the session of
//! the moment it happened to be processed, and a weekend or holiday never resets anything.
//!
//! Which days trade comes from Massive's market status, read by the processor node: holidays
//! and early closes ahead from `/v1/marketstatus/upcoming` ([`TradingCalendar::prime`], at
//! start and daily), and on the day from `/v1/marketstatus/now`: a weekday reported closed all
//! day is a holiday, a day reported open is a trading day, and a day that closes early ends
//! its regular session at 13:00 ET. Without status information, weekdays trade.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::{Deserialize, Serialize};

use crate::clock::{self, Session};

/// 04:00 to 09:30 ET: no clock change falls in between (they happen at 02:00), so the open
/// of a market day is always this long after its start.
pub const OPEN_AFTER_DAY_START_MS: i64 = (5 * 60 + 30) * 60 * 1000;

/// What the market status said about a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DayKind {
    Trading,
    Holiday,
    /// Regular session ends 13:00 ET, after-hours 17:00 ET.
    EarlyClose,
}

/// Trading days: weekdays, corrected by what market status reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradingCalendar {
    days: BTreeMap<NaiveDate, DayKind>,
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
}

/// A market status answer, reduced to what the calendar needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusReport {
    /// `market` was anything but `closed`, or early/after hours were flagged.
    pub open: bool,
}

impl StatusReport {
    /// Reads `/v1/marketstatus/now`; None when the body is not a status.
    pub fn parse(body: &serde_json::Value) -> Option<Self> {
        let market = body.get("market")?.as_str()?;
        let flag = |k: &str| body.get(k).and_then(serde_json::Value::as_bool) == Some(true);
        Some(StatusReport {
            open: market != "closed" || flag("earlyHours") || flag("afterHours"),
        })
    }
}

impl TradingCalendar {
    pub fn kind(&self, d: NaiveDate) -> Option<DayKind> {
        if let Some(k) = self.days.get(&d) {
            return Some(*k);
        }
        clock::is_trading_day(d).then_some(DayKind::Trading)
    }

    pub fn is_trading_day(&self, d: NaiveDate) -> bool {
        self.kind(d).is_some_and(|k| k != DayKind::Holiday)
    }

    /// Learns from a status report taken at ET time `et`. Returns true if anything changed.
    pub fn observe(&mut self, et: NaiveDateTime, report: StatusReport) -> bool {
        let d = et.date();
        let t = et.time();
        let before = self.days.get(&d).copied();
        let expected_open = t >= hm(4, 0) && t < hm(20, 0);
        let now = if report.open {
            // Open on a day the weekday rule calls closed: it trades after all.
            match before {
                Some(DayKind::EarlyClose) => DayKind::EarlyClose,
                _ => DayKind::Trading,
            }
        } else if !expected_open {
            return false;
        } else if before == Some(DayKind::Trading) && t >= hm(13, 0) {
            // It traded earlier today and closed in the afternoon: an early close.
            DayKind::EarlyClose
        } else if before.is_none() || before == Some(DayKind::Holiday) {
            DayKind::Holiday
        } else {
            return false;
        };
        self.days.insert(d, now);
        // Keep a few weeks: enough for any replay, bounded forever.
        while self.days.len() > 60 {
            self.days.pop_first();
        }
        before != Some(now)
    }

    /// Takes holidays and early closes known ahead (`/v1/marketstatus/upcoming`, or the
    /// simulator's `--holidays`). Returns true if anything changed. A day already seen to
    /// trade by a status report keeps what the report said.
    pub fn prime(&mut self, days: impl IntoIterator<Item = (NaiveDate, DayKind)>) -> bool {
        let mut changed = false;
        for (d, kind) in days {
            match self.days.get(&d) {
                Some(k) if *k == kind => {}
                Some(DayKind::Trading) => {}
                _ => {
                    self.days.insert(d, kind);
                    changed = true;
                }
            }
        }
        changed
    }

    /// The holidays and early closes known from `from` on, in date order.
    pub fn upcoming(&self, from: NaiveDate) -> Vec<(NaiveDate, DayKind)> {
        self.days
            .range(from..)
            .filter(|(_, k)| **k != DayKind::Trading)
            .map(|(d, k)| (*d, *k))
            .collect()
    }

    /// The market day an event at `ms` belongs to: the most recent trading day whose 04:00 ET
    /// is at or before it.
    pub fn market_day(&self, ms: i64) -> NaiveDate {
        let mut d = clock::market_day(clock::to_et(clock::ms_to_utc(ms)));
        // Bounded walk back: never more than a long weekend plus holidays.
        for _ in 0..10 {
            if self.is_trading_day(d) {
                break;
            }
            d -= Duration::days(1);
        }
        d
    }

    /// Epoch ms of 04:00 ET on `day`: the day's anchor.
    pub fn day_start_ms(day: NaiveDate) -> i64 {
        clock::from_et(day.and_time(hm(4, 0))).timestamp_millis()
    }

    /// Epoch ms of 09:30 ET on `day`: the open, when gainers start over.
    pub fn open_ms(day: NaiveDate) -> i64 {
        Self::day_start_ms(day) + OPEN_AFTER_DAY_START_MS
    }

    /// The session at `ms` (Closed on days that do not trade).
    pub fn session(&self, ms: i64) -> Session {
        let et = clock::to_et(clock::ms_to_utc(ms));
        let Some(kind) = self.kind(et.date()) else {
            return Session::Closed;
        };
        let t = et.time();
        match kind {
            DayKind::Holiday => Session::Closed,
            DayKind::Trading => clock::session_at_time(t),
            DayKind::EarlyClose => {
                if t >= hm(13, 0) && t < hm(17, 0) {
                    Session::AfterHours
                } else if t >= hm(17, 0) {
                    Session::Closed
                } else {
                    clock::session_at_time(t)
                }
            }
        }
    }
}

/// Reads `/v1/marketstatus/upcoming` (an array of `{date, exchange, status, …}` per
/// exchange): the NYSE and Nasdaq days that are `closed` (holidays) or `early-close`.
/// Anything else, or an unreadable entry, is skipped.
pub fn parse_upcoming(body: &serde_json::Value) -> Vec<(NaiveDate, DayKind)> {
    let Some(entries) = body.as_array() else {
        return Vec::new();
    };
    let mut out: BTreeMap<NaiveDate, DayKind> = BTreeMap::new();
    for e in entries {
        let exchange = e.get("exchange").and_then(|v| v.as_str()).unwrap_or("");
        if !matches!(exchange.to_ascii_uppercase().as_str(), "NYSE" | "NASDAQ") {
            continue;
        }
        let Some(date) = e
            .get("date")
            .and_then(|v| v.as_str())
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        let kind = match e.get("status").and_then(|v| v.as_str()) {
            Some("closed") => DayKind::Holiday,
            Some("early-close") => DayKind::EarlyClose,
            _ => continue,
        };
        // A holiday on either exchange closes the day for the scanners.
        let k = out.entry(date).or_insert(kind);
        if kind == DayKind::Holiday {
            *k = DayKind::Holiday;
        }
    }
    out.into_iter().collect()
}

/// Parses a holiday list: `YYYY-MM-DD` (closed) or `YYYY-MM-DD/early` (closes 13:00 ET),
/// comma separated; empty is none.
pub fn parse_days(s: &str) -> Result<Vec<(NaiveDate, DayKind)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|item| {
            let (date, kind) = match item.split_once('/') {
                Some((d, "early")) => (d, DayKind::EarlyClose),
                Some((_, other)) => {
                    return Err(format!("{item:?}: unknown kind {other:?} (only /early)"))
                }
                None => (item, DayKind::Holiday),
            };
            NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map(|d| (d, kind))
                .map_err(|_| format!("{item:?} is not YYYY-MM-DD[/early]"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ET wall-clock time, `YYYY-MM-DD HH:MM:SS`.
    fn et(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn ms(s: &str) -> i64 {
        clock::from_et(et(s)).timestamp_millis()
    }

    const OPEN: StatusReport = StatusReport { open: true };
    const CLOSED: StatusReport = StatusReport { open: false };

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn market_day_starts_at_four_not_midnight() {
        let c = TradingCalendar::default();
        // Tuesday 2026-03-03.
        assert_eq!(c.market_day(ms("2026-03-03 00:30:00")), day("2026-03-02"));
        assert_eq!(c.market_day(ms("2026-03-03 03:59:59")), day("2026-03-02"));
        assert_eq!(c.market_day(ms("2026-03-03 04:00:00")), day("2026-03-03"));
        // Saturday and Monday 02:00 still belong to Friday.
        assert_eq!(c.market_day(ms("2026-03-07 12:00:00")), day("2026-03-06"));
        assert_eq!(c.market_day(ms("2026-03-09 02:00:00")), day("2026-03-06"));
        assert_eq!(
            TradingCalendar::day_start_ms(day("2026-03-03")),
            ms("2026-03-03 04:00:00")
        );
        assert_eq!(
            TradingCalendar::open_ms(day("2026-03-09")),
            ms("2026-03-09 09:30:00"),
            "first day of daylight time"
        );
        assert_eq!(
            TradingCalendar::open_ms(day("2025-11-03")),
            ms("2025-11-03 09:30:00"),
            "first day of standard time"
        );
    }

    #[test]
    fn sessions_by_event_time() {
        let c = TradingCalendar::default();
        assert_eq!(c.session(ms("2026-03-03 04:00:00")), Session::PreMarket);
        assert_eq!(c.session(ms("2026-03-03 09:29:59")), Session::PreMarket);
        assert_eq!(c.session(ms("2026-03-03 09:30:00")), Session::Regular);
        assert_eq!(c.session(ms("2026-03-03 16:00:00")), Session::AfterHours);
        assert_eq!(c.session(ms("2026-03-03 20:00:00")), Session::Closed);
        assert_eq!(c.session(ms("2026-03-07 10:00:00")), Session::Closed);
    }

    #[test]
    fn market_status_marks_holidays_and_early_closes() {
        let mut c = TradingCalendar::default();
        // Closed at night says nothing.
        assert!(!c.observe(et("2026-01-19 02:00:00"), CLOSED));
        // Closed at 10:00 on a Monday: a holiday (MLK day). Its events are closed-session and
        // the market day stays the previous Friday.
        assert!(c.observe(et("2026-01-19 10:00:00"), CLOSED));
        assert_eq!(c.session(ms("2026-01-19 10:00:00")), Session::Closed);
        assert_eq!(c.market_day(ms("2026-01-19 10:00:00")), day("2026-01-16"));
        // Open, then closed at 13:30: an early close.
        assert!(c.observe(et("2025-11-28 10:00:00"), OPEN));
        assert!(c.observe(et("2025-11-28 13:30:00"), CLOSED));
        assert_eq!(c.session(ms("2025-11-28 12:59:00")), Session::Regular);
        assert_eq!(c.session(ms("2025-11-28 13:00:00")), Session::AfterHours);
        assert_eq!(c.session(ms("2025-11-28 17:00:00")), Session::Closed);
        let body = serde_json::json!({"market": "extended-hours", "earlyHours": true});
        assert_eq!(StatusReport::parse(&body), Some(OPEN));
        assert_eq!(StatusReport::parse(&serde_json::json!({})), None);
    }

    #[test]
    fn a_status_is_closed_only_when_the_market_and_both_flags_say_so() {
        let parse = |v: serde_json::Value| StatusReport::parse(&v).map(|r| r.open);
        use serde_json::json;
        assert_eq!(parse(json!({"market": "open"})), Some(true));
        assert_eq!(parse(json!({"market": "closed"})), Some(false));
        let closed_flags = json!({"market": "closed", "earlyHours": false, "afterHours": false});
        assert_eq!(parse(closed_flags), Some(false));
        assert_eq!(
            parse(json!({"market": "closed", "earlyHours": true})),
            Some(true)
        );
        assert_eq!(
            parse(json!({"market": "closed", "afterHours": true})),
            Some(true)
        );
        // A flag that is not a boolean is no flag.
        assert_eq!(
            parse(json!({"market": "closed", "afterHours": "true"})),
            Some(false)
        );
        assert_eq!(parse(json!({"market": 1})), None);
    }

    #[test]
    fn later_reports_keep_what_a_day_turned_out_to_be() {
        let mut c = TradingCalendar::default();
        let friday = day("2025-11-28");
        // Closed at 20:00 or later says nothing, like at night.
        assert!(!c.observe(et("2025-11-28 20:00:00"), CLOSED));
        assert_eq!(c.kind(friday), Some(DayKind::Trading));
        // A closed report in the morning of a day seen open is not an early close (that is
        // only read from the afternoon) and not a holiday.
        assert!(c.observe(et("2025-11-28 09:00:00"), OPEN));
        assert!(!c.observe(et("2025-11-28 10:00:00"), CLOSED));
        assert_eq!(c.kind(friday), Some(DayKind::Trading));
        // Closed at 13:30: an early close, which neither another closed report nor the
        // after-hours session's open report turns into a holiday or a full day.
        assert!(c.observe(et("2025-11-28 13:30:00"), CLOSED));
        assert!(!c.observe(et("2025-11-28 14:00:00"), CLOSED));
        assert!(!c.observe(et("2025-11-28 16:00:00"), OPEN));
        assert_eq!(c.kind(friday), Some(DayKind::EarlyClose));
    }

    #[test]
    fn holidays_known_ahead_close_their_days() {
        let body = serde_json::json!([
            {"date": "2026-12-25", "exchange": "NYSE", "name": "Christmas", "status": "closed"},
            {"date": "2026-12-25", "exchange": "NASDAQ", "name": "Christmas", "status": "closed"},
            {"date": "2026-11-27", "exchange": "NASDAQ", "status": "early-close",
             "open": "2026-11-27T14:30:00.000Z", "close": "2026-11-27T18:00:00.000Z"},
            {"date": "2026-11-26", "exchange": "OTC", "status": "closed"},
            {"date": "not a date", "exchange": "NYSE", "status": "closed"},
            {"date": "2026-07-03", "exchange": "NYSE", "status": "open"},
        ]);
        let days = parse_upcoming(&body);
        assert_eq!(
            days,
            vec![
                (day("2026-11-27"), DayKind::EarlyClose),
                (day("2026-12-25"), DayKind::Holiday)
            ]
        );
        assert!(parse_upcoming(&serde_json::json!({"status": "ERROR"})).is_empty());
        let mut c = TradingCalendar::default();
        assert!(c.prime(days.clone()));
        assert!(!c.prime(days), "nothing new");
        assert_eq!(c.session(ms("2026-12-25 10:00:00")), Session::Closed);
        assert_eq!(c.market_day(ms("2026-12-25 10:00:00")), day("2026-12-24"));
        assert_eq!(c.session(ms("2026-11-27 13:30:00")), Session::AfterHours);
        assert_eq!(
            c.upcoming(day("2026-12-01")),
            vec![(day("2026-12-25"), DayKind::Holiday)]
        );
        // A day a status report saw trading keeps what the report said.
        let mut seen = TradingCalendar::default();
        seen.observe(et("2026-12-25 10:00:00"), OPEN);
        assert!(!seen.prime([(day("2026-12-25"), DayKind::Holiday)]));
        assert_eq!(seen.kind(day("2026-12-25")), Some(DayKind::Trading));

        assert_eq!(
            parse_days(" 2026-12-25, 2026-11-27/early ,").unwrap(),
            vec![
                (day("2026-12-25"), DayKind::Holiday),
                (day("2026-11-27"), DayKind::EarlyClose)
            ]
        );
        assert!(parse_days("2026-12-25/late").is_err());
        assert!(parse_days("12/25").is_err());
        assert_eq!(parse_days("").unwrap(), vec![]);
    }

    #[test]
    fn the_calendar_keeps_sixty_days() {
        let mut c = TradingCalendar::default();
        let first = day("2026-01-01");
        for i in 0..61 {
            let d = first + Duration::days(i);
            assert!(c.observe(d.and_time(hm(10, 0)), OPEN));
        }
        assert_eq!(c.days.len(), 60);
        assert!(!c.days.contains_key(&first), "the oldest day goes first");
        assert!(c.days.contains_key(&(first + Duration::days(1))));
    }
}
