//! Capture replay: play recorded Massive frames at their original pace, or faster.
//!
//! A capture is JSON lines, one frame per line (see `docs/simulator.md`):
//! `{"t": <epoch ms received>, "market": "stocks", "frame": [ ...events as received... ]}`.
//! Elements are replayed byte for byte, including malformed ones, so a capture of bad data
//! reproduces the bad data. Status elements are not replayed (the simulator speaks its own
//! connection protocol); elements without a readable `ev` cannot be routed and are counted.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::filter::EncodedEvent;
use crate::massive::frame::route_frame;
use crate::massive::Market;

/// A capture that cannot be used, with the line at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read capture {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("capture line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("capture {0} holds no frames")]
    Empty(String),
}

/// One recorded frame.
#[derive(Debug, Clone)]
pub struct CaptureFrame {
    pub at_ms: i64,
    pub market: Market,
    pub events: Vec<EncodedEvent>,
}

#[derive(Deserialize)]
struct Line<'a> {
    t: i64,
    #[serde(default)]
    market: Option<String>,
    #[serde(borrow)]
    frame: &'a RawValue,
}

/// Parses a capture. Returns the frames and how many elements could not be routed.
pub fn parse_capture(text: &str) -> Result<(Vec<CaptureFrame>, usize), ReplayError> {
    let mut frames = Vec::new();
    let mut unroutable = 0;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| ReplayError::Line {
            line: line_no,
            reason: e.to_string(),
        })?;
        let market = match l.market {
            Some(m) => m
                .parse()
                .map_err(|e: crate::massive::MarketError| ReplayError::Line {
                    line: line_no,
                    reason: e.to_string(),
                })?,
            None => Market::Stocks,
        };
        let routes = route_frame(l.frame.get().as_bytes()).map_err(|e| ReplayError::Line {
            line: line_no,
            reason: e.to_string(),
        })?;
        let mut events = Vec::new();
        for r in routes {
            match r {
                Ok(r) if r.is_status() => {}
                Ok(r) => events.push(EncodedEvent {
                    channel: Arc::from(r.ev.as_ref()),
                    symbol: Arc::from(r.symbol.as_deref().unwrap_or("")),
                    json: Bytes::copy_from_slice(r.raw.get().as_bytes()),
                }),
                Err(_) => unroutable += 1,
            }
        }
        frames.push(CaptureFrame {
            at_ms: l.t,
            market,
            events,
        });
    }
    Ok((frames, unroutable))
}

/// Loads a capture file.
pub fn load_capture(path: &Path) -> Result<(Vec<CaptureFrame>, usize), ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let (frames, bad) = parse_capture(&text)?;
    if frames.is_empty() {
        return Err(ReplayError::Empty(path.display().to_string()));
    }
    Ok((frames, bad))
}

/// Plays frames by their recorded spacing divided by `speed` (0 = no waiting).
pub struct Replayer {
    frames: Vec<CaptureFrame>,
    speed: f64,
    looping: bool,
    started: Instant,
    pos: usize,
    /// Wall time added per completed loop, so loop N plays after loop N-1.
    loop_offset: Duration,
    pub loops: u64,
}

/// Frames played per tick when replaying as fast as possible (keeps ticks short).
const MAX_FRAMES_PER_TICK: usize = 2000;

impl Replayer {
    pub fn new(frames: Vec<CaptureFrame>, speed: f64, looping: bool) -> Self {
        Replayer {
            frames,
            speed,
            looping,
            started: Instant::now(),
            pos: 0,
            loop_offset: Duration::ZERO,
            loops: 0,
        }
    }

    pub fn finished(&self) -> bool {
        !self.looping && self.pos >= self.frames.len()
    }

    fn due_at(&self, i: usize) -> Duration {
        if self.speed <= 0.0 {
            return Duration::ZERO;
        }
        let first = self.frames.first().map_or(0, |f| f.at_ms);
        let offset_ms = (self.frames[i].at_ms - first).max(0) as f64 / self.speed;
        self.loop_offset + Duration::from_secs_f64(offset_ms / 1000.0)
    }

    /// The frames due by now, in order.
    pub fn due(&mut self, now: Instant) -> Vec<CaptureFrame> {
        let elapsed = now.saturating_duration_since(self.started);
        let mut out = Vec::new();
        while out.len() < MAX_FRAMES_PER_TICK {
            if self.pos >= self.frames.len() {
                if !self.looping {
                    break;
                }
                self.pos = 0;
                self.loops += 1;
                self.loop_offset = elapsed + Duration::from_millis(1);
            }
            if self.due_at(self.pos) > elapsed {
                break;
            }
            out.push(self.frames[self.pos].clone());
            self.pos += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURE: &str = r#"{"t":1000,"frame":[{"ev":"status","status":"connected"},{"ev":"T","sym":"AAPL","p":1.5,"t":1}]}
{"t":1500,"market":"stocks","frame":[{"ev":"Q","sym":"MSFT","bp":1,"ap":2,"t":1},{"no_ev":1}]}
"#;

    #[test]
    fn parses_and_keeps_bytes() {
        let (frames, bad) = parse_capture(CAPTURE).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(bad, 1);
        assert_eq!(
            frames[0].events.len(),
            1,
            "status elements are not replayed"
        );
        assert_eq!(
            &frames[0].events[0].json[..],
            br#"{"ev":"T","sym":"AAPL","p":1.5,"t":1}"#
        );
        assert_eq!(&*frames[1].events[0].symbol, "MSFT");
        let err = parse_capture("{\"t\":1}\n").unwrap_err();
        assert!(err.to_string().starts_with("capture line 1:"), "{err}");
    }

    #[test]
    fn fast_replay_plays_everything_and_loops() {
        let (frames, _) = parse_capture(CAPTURE).unwrap();
        let mut r = Replayer::new(frames.clone(), 0.0, false);
        assert_eq!(r.due(Instant::now()).len(), 2);
        assert!(r.finished());
        let mut r = Replayer::new(frames, 1.0, true);
        let later = Instant::now() + Duration::from_millis(600);
        assert_eq!(r.due(later).len(), 2);
        assert!(!r.finished());
    }
}
