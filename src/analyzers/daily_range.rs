//! Daily range tracker: session highs and lows per symbol, and HOD/LOD alerts
//! (reference-system.md §3.5).
//!
//! The reference ran this in a separate scanner fed by `quote:*` pub/sub, with state in one
//! replica's memory. Here it runs inside the processor that owns the symbol's shard, right
//! after the quote is computed: per-symbol order is kept, the state is checkpointed with the
//! rest of the shard, and the session comes from the bar's own end time instead of a status
//! answer up to a minute old.

use serde::{Deserialize, Serialize};

use crate::clock::Session;

use super::quote::{write_num, write_str, Quote, F};

/// High and low of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Extremes {
    pub high: Option<f64>,
    pub low: Option<f64>,
}

/// The six session extremes of one symbol for one market day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DailyRange {
    pub pre_market: Extremes,
    pub regular: Extremes,
    pub after_hours: Extremes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    High,
    Low,
}

/// A new session high or low after the session's first print.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub session: Session,
    pub direction: Direction,
    pub price: f64,
    pub previous: f64,
    pub note: String,
}

fn note(kind: &str, dir: &str, x: f64) -> String {
    format!("Broke {kind} {dir} of ${x:.2}")
}

impl DailyRange {
    fn session_mut(&mut self, s: Session) -> Option<&mut Extremes> {
        match s {
            Session::PreMarket => Some(&mut self.pre_market),
            Session::Regular => Some(&mut self.regular),
            Session::AfterHours => Some(&mut self.after_hours),
            Session::Closed => None,
        }
    }

    /// Tracks one bar's high and low in `session`; returns the alerts it raises (0 to 2).
    pub fn observe(&mut self, session: Session, high: f64, low: f64) -> Vec<Alert> {
        let before = *self;
        let Some(ex) = self.session_mut(session) else {
            return Vec::new();
        };
        let mut alerts = Vec::new();
        match ex.high {
            Some(prev) if high > prev => {
                ex.high = Some(high);
                alerts.push((Direction::High, high, prev));
            }
            None => ex.high = Some(high),
            _ => {}
        }
        match ex.low {
            Some(prev) if low < prev => {
                ex.low = Some(low);
                alerts.push((Direction::Low, low, prev));
            }
            None => ex.low = Some(low),
            _ => {}
        }
        alerts
            .into_iter()
            .map(|(direction, price, previous)| Alert {
                session,
                direction,
                price,
                previous,
                note: before.note(session, direction, price),
            })
            .collect()
    }

    /// The first prior-session extreme the new one breaks (strictly), as the reference words it.
    fn note(&self, session: Session, dir: Direction, price: f64) -> String {
        let (pm, reg) = (self.pre_market, self.regular);
        let checks: Vec<(&str, Option<f64>)> = match (session, dir) {
            (Session::Regular, Direction::High) => vec![("pre-market", pm.high)],
            (Session::Regular, Direction::Low) => vec![("pre-market", pm.low)],
            (Session::AfterHours, Direction::High) => {
                vec![("regular session", reg.high), ("pre-market", pm.high)]
            }
            (Session::AfterHours, Direction::Low) => {
                vec![("regular session", reg.low), ("pre-market", pm.low)]
            }
            _ => Vec::new(),
        };
        for (kind, level) in checks {
            if let Some(level) = level {
                let broke = match dir {
                    Direction::High => price > level,
                    Direction::Low => price < level,
                };
                if broke {
                    let d = if dir == Direction::High {
                        "high"
                    } else {
                        "low"
                    };
                    return note(kind, d, level);
                }
            }
        }
        String::new()
    }

    /// The six session fields of a published `daily_range:{SYM}` object (a missing or
    /// non-numeric field reads as unseen).
    pub fn from_json_object(obj: &serde_json::Map<String, serde_json::Value>) -> Self {
        let f = |name: &str| obj.get(name).and_then(serde_json::Value::as_f64);
        let ex = |s: &str| Extremes {
            high: f(&format!("{s}_high")),
            low: f(&format!("{s}_low")),
        };
        DailyRange {
            pre_market: ex("pre_market"),
            regular: ex("regular_session"),
            after_hours: ex("after_hours"),
        }
    }

    /// The union of two ranges of the same day: the higher high and the lower low of each
    /// session.
    pub fn merge(&mut self, other: &DailyRange) {
        fn pick(a: Option<f64>, b: Option<f64>, better: fn(f64, f64) -> f64) -> Option<f64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(better(a, b)),
                (a, b) => a.or(b),
            }
        }
        for (mine, theirs) in [
            (&mut self.pre_market, other.pre_market),
            (&mut self.regular, other.regular),
            (&mut self.after_hours, other.after_hours),
        ] {
            mine.high = pick(mine.high, theirs.high, f64::max);
            mine.low = pick(mine.low, theirs.low, f64::min);
        }
    }

    /// `daily_range:{SYM}`: the quote plus the six session fields (null when unseen).
    pub fn state_json(&self, q: &Quote) -> Vec<u8> {
        self.state_json_from(&q.to_json())
    }

    /// [`DailyRange::state_json`] from the quote's JSON object, already written for
    /// `quote:{SYM}`: every bar needs both, and this writes the quote's fields once.
    pub fn state_json_from(&self, quote_json: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(quote_json.len() + 200);
        // The quote's object without its closing brace; the range's fields follow.
        out.extend_from_slice(quote_json.strip_suffix(b"}").unwrap_or(b"{"));
        let opt = |out: &mut Vec<u8>, name: &str, x: Option<f64>| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            match x {
                Some(x) => write_num(out, x),
                None => out.extend_from_slice(b"null"),
            }
        };
        opt(&mut out, "pre_market_high", self.pre_market.high);
        opt(&mut out, "pre_market_low", self.pre_market.low);
        opt(&mut out, "regular_session_high", self.regular.high);
        opt(&mut out, "regular_session_low", self.regular.low);
        opt(&mut out, "after_hours_high", self.after_hours.high);
        opt(&mut out, "after_hours_low", self.after_hours.low);
        out.push(b'}');
        out
    }
}

impl Alert {
    /// The alert list entry: alert fields, then the quote's (which win on a clash; none clash).
    /// `timestamp` is the bar's end time in epoch seconds, not processing time.
    pub fn to_json(&self, q: &Quote) -> Vec<u8> {
        let mut out = Vec::with_capacity(800);
        out.extend_from_slice(b"{\"session\":");
        write_str(&mut out, self.session.as_str());
        out.extend_from_slice(b",\"direction\":");
        write_str(
            &mut out,
            if self.direction == Direction::High {
                "high"
            } else {
                "low"
            },
        );
        out.extend_from_slice(b",\"price\":");
        write_num(&mut out, self.price);
        out.extend_from_slice(b",\"previous\":");
        write_num(&mut out, self.previous);
        out.extend_from_slice(b",\"timestamp\":");
        // A float, as the reference's; an integral second still gets its `.0`.
        let ts = q.get(F::EndTimestamp) / 1000.0;
        let _ = serde_json::to_writer(&mut out, &ts);
        out.extend_from_slice(b",\"note\":");
        write_str(&mut out, &self.note);
        out.push(b',');
        q.write_fields(&mut out);
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Session::*;

    #[test]
    fn first_print_is_silent_then_breaks_alert() {
        let mut r = DailyRange::default();
        assert!(r.observe(PreMarket, 10.0, 9.0).is_empty(), "first print");
        assert!(
            r.observe(PreMarket, 10.0, 9.0).is_empty(),
            "equal is no break"
        );
        let a = r.observe(PreMarket, 10.5, 8.5);
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].direction, a[0].price, a[0].previous),
            (Direction::High, 10.5, 10.0)
        );
        assert_eq!(
            (a[1].direction, a[1].price, a[1].previous),
            (Direction::Low, 8.5, 9.0)
        );
        assert_eq!(a[0].note, "", "pre-market alerts carry no note");
        assert!(
            r.observe(Closed, 99.0, 1.0).is_empty(),
            "nothing while closed"
        );
        assert_eq!(r.pre_market.high, Some(10.5));
    }

    #[test]
    fn notes_name_the_prior_session_extreme() {
        let mut r = DailyRange::default();
        r.observe(PreMarket, 10.0, 9.0);
        // The regular session's first print is silent even above the pre-market high.
        assert!(r.observe(Regular, 10.2, 9.5).is_empty());
        let a = r.observe(Regular, 10.25, 9.4);
        assert_eq!(a[0].note, "Broke pre-market high of $10.00");
        assert_eq!(a[1].note, "", "9.4 is above the pre-market low");
        let a = r.observe(Regular, 10.0, 8.991);
        assert_eq!(a[0].note, "Broke pre-market low of $9.00");
        r.observe(AfterHours, 10.1, 9.9);
        // 10.22 is below the regular high (10.25) but above the pre-market high.
        let a = r.observe(AfterHours, 10.22, 9.95);
        assert_eq!(a[0].note, "Broke pre-market high of $10.00");
        let a = r.observe(AfterHours, 10.3, 8.9);
        assert_eq!(a[0].note, "Broke regular session high of $10.25");
        assert_eq!(a[1].note, "Broke regular session low of $8.99");
    }

    #[test]
    fn a_note_needs_a_strict_break_of_the_prior_extreme() {
        let mut r = DailyRange::default();
        r.observe(PreMarket, 10.0, 9.0);
        r.observe(Regular, 9.8, 9.2);
        // New regular extremes that only touch the pre-market ones: alerts, but no note.
        let a = r.observe(Regular, 10.0, 9.0);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].note.as_str(), a[1].note.as_str()), ("", ""));
        r.observe(AfterHours, 9.5, 9.5);
        // Touching the regular high (10.0) breaks nothing there; the pre-market high is the
        // same level, so no note either. Below the regular low only by touching: none.
        let a = r.observe(AfterHours, 10.0, 9.0);
        assert_eq!((a[0].note.as_str(), a[1].note.as_str()), ("", ""));
    }

    #[test]
    fn payload_shapes() {
        let mut r = DailyRange::default();
        r.observe(PreMarket, 10.0, 9.0);
        let mut q = Quote {
            symbol: "ABC".into(),
            v: [0.0; super::super::quote::N],
        };
        q.v[F::EndTimestamp as usize] = 1_772_000_000_000.0;
        let state: serde_json::Value = serde_json::from_slice(&r.state_json(&q)).unwrap();
        assert_eq!(state.as_object().unwrap().len(), 32);
        assert_eq!(state["pre_market_high"], 10);
        assert!(state["regular_session_low"].is_null());
        let a = r.observe(PreMarket, 11.0, 9.0).remove(0);
        let alert: serde_json::Value = serde_json::from_slice(&a.to_json(&q)).unwrap();
        assert_eq!(alert["session"], "pre_market");
        assert_eq!(alert["direction"], "high");
        assert_eq!(alert["price"], 11);
        assert_eq!(alert["previous"], 10);
        assert_eq!(alert["timestamp"], 1_772_000_000.0);
        assert_eq!(alert["symbol"], "ABC");
        assert_eq!(alert.as_object().unwrap().len(), 6 + 26);
    }
}
