//! Leaderboards: top volume, gappers and gainers (reference-system.md §3.2), built in two
//! steps so that they stay exact across shards and nodes.
//!
//! 1. Each processor keeps its shard's quotes and, once a second when something changed,
//!    writes its shard's candidates ([`ShardBoard`]: the union of its top 500 for each board)
//!    to the state store.
//! 2. One elected publisher per cluster reads every shard's candidates, keeps the newest
//!    market day, ranks them ([`rank`]) and writes `scanners:*` when a board changed.
//!
//! The reference's defects are fixed here: gainers rank against the official open (after
//! 09:30 ET only symbols with a regular-session open count), gappers and gainers hold
//! positive movers only, ranks are contiguous from 1, rows always carry numbers, and an empty
//! board is published after a reset instead of leaving yesterday's visible.

use serde::{Deserialize, Serialize};

use super::calendar::OPEN_AFTER_DAY_START_MS;
use super::quote::{Quote, F};

/// Rows per board.
pub const TOP_N: usize = 500;

/// The three boards, in publishing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    Volume,
    Gappers,
    Gainers,
}

impl Board {
    pub const ALL: [Board; 3] = [Board::Volume, Board::Gappers, Board::Gainers];

    /// Key and channel (before the results prefix).
    pub fn key(self) -> &'static str {
        match self {
            Board::Volume => "scanners:top_volume",
            Board::Gappers => "scanners:top_gappers",
            Board::Gainers => "scanners:top_gainers",
        }
    }

    fn score(self, q: &Quote) -> f64 {
        match self {
            Board::Volume => q.get(F::AccumulatedVolume),
            Board::Gappers => q.get(F::PctChange),
            Board::Gainers => q.get(F::PctChangeSinceOpen),
        }
    }
}

/// One symbol as a leaderboard candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub quote: Quote,
    /// Its session open was set at or after 09:30 ET (the official open).
    pub regular_open: bool,
}

/// A shard's candidates for one market day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardBoard {
    /// Market day (epoch ms of its 04:00 ET).
    pub day_ms: i64,
    /// Newest bar end time the shard has seen (ms): the shard's market clock.
    pub clock_ms: i64,
    pub rows: Vec<Row>,
}

impl ShardBoard {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub fn decode(b: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(b)
    }
}

fn eligible(board: Board, row: &Row, after_open: bool) -> bool {
    match board {
        Board::Volume => true,
        Board::Gappers => board.score(&row.quote) > 0.0,
        Board::Gainers => board.score(&row.quote) > 0.0 && (!after_open || row.regular_open),
    }
}

/// Indices of the best `TOP_N` eligible rows for `board`, best first; ties by symbol.
pub fn top(board: Board, rows: &[Row], after_open: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows.len())
        .filter(|i| eligible(board, &rows[*i], after_open))
        .collect();
    let cmp = |a: &usize, b: &usize| {
        let (ra, rb) = (&rows[*a].quote, &rows[*b].quote);
        board
            .score(rb)
            .total_cmp(&board.score(ra))
            .then_with(|| ra.symbol.cmp(&rb.symbol))
    };
    if idx.len() > TOP_N {
        idx.select_nth_unstable_by(TOP_N - 1, cmp);
        idx.truncate(TOP_N);
    }
    idx.sort_unstable_by(cmp);
    idx
}

/// A shard's candidates: every row in the top `TOP_N` of any board.
pub fn shard_candidates(rows: Vec<Row>, after_open: bool) -> Vec<Row> {
    let mut keep = vec![false; rows.len()];
    for b in Board::ALL {
        for i in top(b, &rows, after_open) {
            keep[i] = true;
        }
    }
    rows.into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect()
}

/// Merges shard candidates into the three boards' JSON arrays, in [`Board::ALL`] order.
/// Only the newest market day counts; rows of an older day are a day reset's leftovers.
pub fn rank(shards: &[ShardBoard]) -> [Vec<u8>; 3] {
    let day = shards.iter().map(|s| s.day_ms).max().unwrap_or(0);
    let clock = shards
        .iter()
        .filter(|s| s.day_ms == day)
        .map(|s| s.clock_ms)
        .max()
        .unwrap_or(0);
    let after_open = clock >= day + OPEN_AFTER_DAY_START_MS;
    // At most shards × 1,500 rows, once a second: copying them is cheap.
    let rows: Vec<Row> = shards
        .iter()
        .filter(|s| s.day_ms == day)
        .flat_map(|s| s.rows.iter().cloned())
        .collect();
    Board::ALL.map(|b| board_json(&rows, &top(b, &rows, after_open)))
}

/// `[{"rank":1,"symbol":…,…26 fields},…]`.
fn board_json(rows: &[Row], order: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(order.len() * 660 + 2);
    out.push(b'[');
    for (n, i) in order.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"rank\":");
        out.extend_from_slice((n + 1).to_string().as_bytes());
        out.push(b',');
        rows[*i].quote.write_fields(&mut out);
        out.push(b'}');
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::quote::N;

    fn row(sym: &str, av: f64, gap: f64, gain: f64, regular_open: bool) -> Row {
        let mut v = [0.0; N];
        v[F::AccumulatedVolume as usize] = av;
        v[F::PctChange as usize] = gap;
        v[F::PctChangeSinceOpen as usize] = gain;
        Row {
            quote: Quote {
                symbol: sym.into(),
                v,
            },
            regular_open,
        }
    }

    fn parse(b: &[u8]) -> Vec<serde_json::Value> {
        serde_json::from_slice::<Vec<serde_json::Value>>(b).unwrap()
    }

    fn shard(day_ms: i64, clock_ms: i64, rows: Vec<Row>) -> ShardBoard {
        ShardBoard {
            day_ms,
            clock_ms,
            rows,
        }
    }

    #[test]
    fn ranks_merge_across_shards_contiguously_and_positive_only() {
        let a = shard(
            1,
            500,
            vec![
                row("AAA", 300.0, 5.0, -1.0, false),
                row("BBB", 100.0, -2.0, 3.0, false),
            ],
        );
        let b = shard(
            1,
            400,
            vec![
                row("CCC", 200.0, 7.5, 0.0, false),
                row("DDD", 200.0, 1.0, 2.0, false),
            ],
        );
        let [vol, gap, gain] = rank(&[a, b]);
        let vol = parse(&vol);
        let syms: Vec<_> = vol.iter().map(|r| r["symbol"].as_str().unwrap()).collect();
        assert_eq!(syms, ["AAA", "CCC", "DDD", "BBB"], "ties broken by symbol");
        let ranks: Vec<_> = vol.iter().map(|r| r["rank"].as_i64().unwrap()).collect();
        assert_eq!(ranks, [1, 2, 3, 4]);
        assert_eq!(vol[0].as_object().unwrap().len(), 27, "rank + 26 fields");
        let gap = parse(&gap);
        let syms: Vec<_> = gap.iter().map(|r| r["symbol"].as_str().unwrap()).collect();
        assert_eq!(syms, ["CCC", "AAA", "DDD"], "BBB is down: not a gapper");
        assert_eq!(gap[0]["pct_change"], 7.5);
        let gain = parse(&gain);
        let syms: Vec<_> = gain.iter().map(|r| r["symbol"].as_str().unwrap()).collect();
        assert_eq!(syms, ["BBB", "DDD"], "zero and negative excluded");
    }

    #[test]
    fn after_the_open_gainers_need_a_regular_open_and_old_days_drop() {
        let today = shard(
            2,
            2 + OPEN_AFTER_DAY_START_MS,
            vec![
                row("NEW", 1.0, 1.0, 9.0, true),
                row("PRE", 1.0, 1.0, 20.0, false),
            ],
        );
        let yesterday = shard(1, 99_999, vec![row("OLD", 1e9, 50.0, 50.0, true)]);
        let [vol, _, gain] = rank(&[yesterday, today.clone()]);
        let syms: Vec<_> = parse(&vol)
            .iter()
            .map(|r| r["symbol"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            syms,
            ["NEW", "PRE"],
            "yesterday's shard is a reset leftover"
        );
        let syms: Vec<_> = parse(&gain)
            .iter()
            .map(|r| r["symbol"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            syms,
            ["NEW"],
            "09:30 gainers reset: PRE's open is pre-market"
        );
        // Before the open both count.
        let mut before = today;
        before.clock_ms = 2 + OPEN_AFTER_DAY_START_MS - 1;
        let [_, _, gain] = rank(&[before]);
        assert_eq!(parse(&gain).len(), 2);
        // Nothing at all: empty arrays, published so that stale boards disappear.
        assert_eq!(rank(&[]), [b"[]".to_vec(), b"[]".to_vec(), b"[]".to_vec()]);
    }

    #[test]
    fn top_500_and_candidates() {
        let rows: Vec<Row> = (0..1200)
            .map(|i| row(&format!("S{i:04}"), i as f64, (i % 600) as f64, 1.0, false))
            .collect();
        let t = top(Board::Volume, &rows, false);
        assert_eq!(t.len(), TOP_N);
        assert_eq!(rows[t[0]].quote.symbol, "S1199");
        let c = shard_candidates(rows, false);
        // Volume keeps 700..1199; gappers' top 500 by i%600 are 100..599 and 700..1199 (ties
        // by symbol); gainers all tie at 1.0 and keep S0000..S0499.
        assert!(c.len() <= 3 * TOP_N && c.len() >= TOP_N);
        assert!(c.iter().any(|r| r.quote.symbol == "S0000"));
        let back = ShardBoard::decode(&shard(1, 1, c.clone()).encode()).unwrap();
        assert_eq!(back.rows, c);
    }

    #[test]
    fn top_keeps_exactly_the_best_500_best_first() {
        // More rows than the board holds, in no useful order: the selection must keep every
        // one of the best 500 (not just some 500 near the top) and sort them.
        let rows: Vec<Row> = (0..1501)
            .map(|i| {
                let v = ((i * 7919) % 1501) as f64;
                row(&format!("S{i:04}"), v, v, v, false)
            })
            .collect();
        for board in Board::ALL {
            let got: Vec<f64> = top(board, &rows, false)
                .iter()
                .map(|&i| board.score(&rows[i].quote))
                .collect();
            let want: Vec<f64> = (1001..1501).rev().map(f64::from).collect();
            assert_eq!(got, want, "{board:?}");
        }
    }

    #[test]
    fn a_gapper_or_gainer_needs_a_rise_not_just_no_fall() {
        let rows = vec![
            row("FLAT", 10.0, 0.0, 0.0, true),
            row("UP", 10.0, 0.01, 0.01, true),
        ];
        for board in [Board::Gappers, Board::Gainers] {
            let syms: Vec<&str> = top(board, &rows, true)
                .iter()
                .map(|&i| rows[i].quote.symbol.as_str())
                .collect();
            assert_eq!(syms, ["UP"], "{board:?}");
        }
        assert_eq!(top(Board::Volume, &rows, true).len(), 2);
    }
}
