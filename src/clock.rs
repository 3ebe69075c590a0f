//! US market time: Eastern time, trading sessions, the 04:00 ET market day, and the
//! simulator's clock with a configurable speed-up.
//!
//! Simulated time runs at `speed` times wall time from a configured start, so a test can see the
//! 09:30 ET open or the 04:00 ET day reset within minutes. ET is computed with the US daylight
//! saving rule (second Sunday of March to first Sunday of November, 02:00 local) rather than a
//! time-zone database: it is the only zone the market needs. Weekends are closed; holidays are
//! not modelled.

use std::time::Instant;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc, Weekday,
};

/// Trading session of the US equities market at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// 04:00 - 09:30 ET.
    PreMarket,
    /// 09:30 - 16:00 ET.
    Regular,
    /// 16:00 - 20:00 ET.
    AfterHours,
    /// 20:00 - 04:00 ET, and weekends.
    Closed,
}

impl Session {
    pub fn as_str(self) -> &'static str {
        match self {
            Session::PreMarket => "pre_market",
            Session::Regular => "regular",
            Session::AfterHours => "after_hours",
            Session::Closed => "closed",
        }
    }
}

fn nth_sunday(year: i32, month: u32, n: u32) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or_default();
    let to_sunday = (7 - first.weekday().num_days_from_sunday()) % 7;
    first + Duration::days(i64::from(to_sunday + 7 * (n - 1)))
}

/// The ET offset from UTC in hours (-4 in daylight time, -5 in standard time) at `utc`.
pub fn et_offset_hours(utc: DateTime<Utc>) -> i64 {
    let year = utc.year();
    // DST starts 02:00 EST (07:00 UTC) and ends 02:00 EDT (06:00 UTC).
    let start = nth_sunday(year, 3, 2)
        .and_hms_opt(7, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let end = nth_sunday(year, 11, 1)
        .and_hms_opt(6, 0, 0)
        .unwrap_or_default()
        .and_utc();
    if utc >= start && utc < end {
        -4
    } else {
        -5
    }
}

/// The ET offset at `utc` as a chrono offset (for RFC 3339 times with `-05:00`/`-04:00`).
pub fn et_offset(utc: DateTime<Utc>) -> FixedOffset {
    let hours = et_offset_hours(utc) as i32;
    FixedOffset::west_opt(-hours * 3600).unwrap_or_else(|| Utc.fix())
}

/// UTC -> ET wall-clock time.
pub fn to_et(utc: DateTime<Utc>) -> NaiveDateTime {
    utc.naive_utc() + Duration::hours(et_offset_hours(utc))
}

/// ET wall-clock time -> UTC (for times that exist; the DST gap hour is taken as standard time).
pub fn from_et(et: NaiveDateTime) -> DateTime<Utc> {
    let guess = Utc.from_utc_datetime(&(et + Duration::hours(4)));
    let off = et_offset_hours(guess);
    Utc.from_utc_datetime(&(et - Duration::hours(off)))
}

pub fn is_trading_day(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The trading day before `d`.
pub fn previous_trading_day(d: NaiveDate) -> NaiveDate {
    let mut p = d - Duration::days(1);
    while !is_trading_day(p) {
        p -= Duration::days(1);
    }
    p
}

/// The session at an ET wall-clock time.
pub fn session_at(et: NaiveDateTime) -> Session {
    if !is_trading_day(et.date()) {
        return Session::Closed;
    }
    session_at_time(et.time())
}

/// The session at an ET time of day on a full trading day.
pub fn session_at_time(t: NaiveTime) -> Session {
    let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
    if t < hm(4, 0) || t >= hm(20, 0) {
        Session::Closed
    } else if t < hm(9, 30) {
        Session::PreMarket
    } else if t < hm(16, 0) {
        Session::Regular
    } else {
        Session::AfterHours
    }
}

/// The market day an ET time belongs to: the day resets at 04:00 ET, so 02:00 belongs to the
/// previous calendar day's trading.
pub fn market_day(et: NaiveDateTime) -> NaiveDate {
    if et.time() < NaiveTime::from_hms_opt(4, 0, 0).unwrap_or_default() {
        et.date() - Duration::days(1)
    } else {
        et.date()
    }
}

/// Parses `--start-time`: `now`, an RFC 3339 timestamp, or `HH:MM[:SS]` ET on the most recent
/// trading day (today if today is one).
pub fn parse_start(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let time = NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .map_err(|_| format!("start time {s:?} is not `now`, RFC 3339, or HH:MM[:SS] (ET)"))?;
    let mut day = to_et(now).date();
    while !is_trading_day(day) {
        day -= Duration::days(1);
    }
    Ok(from_et(day.and_time(time)))
}

/// Simulated time: `start + (wall elapsed) * speed`.
#[derive(Debug, Clone)]
pub struct MarketClock {
    start: DateTime<Utc>,
    origin: Instant,
    speed: f64,
}

impl MarketClock {
    pub fn new(start: DateTime<Utc>, speed: f64) -> Self {
        MarketClock {
            start,
            origin: Instant::now(),
            speed: speed.max(0.0),
        }
    }

    /// Simulated now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        let elapsed = self.origin.elapsed().as_secs_f64() * self.speed;
        self.start.timestamp_millis() + (elapsed * 1000.0) as i64
    }
}

pub fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn et(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn dst_rule_matches_known_dates() {
        // 2026: DST from 8 March to 1 November.
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 14, 0, 0).unwrap();
        let winter = Utc.with_ymd_and_hms(2026, 11, 24, 14, 30, 0).unwrap();
        assert_eq!(et_offset_hours(summer), -4);
        assert_eq!(et_offset_hours(winter), -5);
        assert_eq!(to_et(winter), et("2026-11-24 09:30:00"));
        assert_eq!(et_offset(winter).local_minus_utc(), -5 * 3600);
        assert_eq!(et_offset(summer).local_minus_utc(), -4 * 3600);
        assert_eq!(
            from_et(et("2026-03-04 09:30:00")),
            Utc.with_ymd_and_hms(2026, 3, 4, 14, 30, 0).unwrap()
        );
        assert_eq!(
            from_et(et("2026-03-09 09:30:00")),
            Utc.with_ymd_and_hms(2026, 3, 9, 13, 30, 0).unwrap()
        );
    }

    #[test]
    fn sessions_and_market_day() {
        assert_eq!(session_at(et("2026-11-24 03:59:59")), Session::Closed);
        assert_eq!(session_at(et("2026-11-24 04:00:00")), Session::PreMarket);
        assert_eq!(session_at(et("2026-11-24 09:30:00")), Session::Regular);
        assert_eq!(session_at(et("2026-11-24 16:00:00")), Session::AfterHours);
        assert_eq!(session_at(et("2026-11-24 20:00:00")), Session::Closed);
        assert_eq!(session_at(et("2026-11-28 10:00:00")), Session::Closed); // Saturday
        assert_eq!(
            market_day(et("2026-11-25 02:00:00")).to_string(),
            "2026-11-24"
        );
        assert_eq!(
            previous_trading_day(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()).to_string(),
            "2026-11-20"
        );
    }

    #[test]
    fn start_time_forms() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap(); // Sunday
        assert_eq!(
            parse_start("09:29", now).unwrap(),
            from_et(et("2026-11-27 09:29:00"))
        );
        assert_eq!(parse_start("now", now).unwrap(), now);
        assert_eq!(
            parse_start("2026-03-04T14:29:33-05:00", now)
                .unwrap()
                .timestamp(),
            1772652573
        );
        assert!(parse_start("tomorrow", now).is_err());
    }

    #[test]
    fn clock_runs_at_speed() {
        let start = Utc.with_ymd_and_hms(2026, 11, 24, 14, 0, 0).unwrap();
        let c = MarketClock::new(start, 0.0);
        assert_eq!(c.now_ms(), start.timestamp_millis());
    }
}
