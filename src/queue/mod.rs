//! The queue contract between the listener and the processors, in one place: which queue
//! and shard each event goes to ([`QueueKind`], [`shard_of`], [`split_frame`]), the message
//! body ([`envelope`]) and the RabbitMQ queues themselves ([`topology`]).
//!
//! News has a queue of its own, `news` ([`NewsArticle`]; not sharded: one active consumer).
//!
//! Queue per event type, as the reference system names them: `aggregate` (A, AM), `trades`
//! (T), `quotes` (Q), `halts` (LULD), `unknown` (everything else: kept and counted, never
//! dropped). Each queue has S shards; a symbol always lands on the same shard (FNV-1a of the
//! ticker), so the one consumer of a shard sees each symbol's events in order.

use actix::Message;
use bytes::Bytes;

use crate::massive::frame::{route_frame, ElementError, FrameError};
use crate::massive::Market;
use crate::relay::RelayEvent;

pub mod envelope;
pub mod topology;

/// The queues the listener publishes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueKind {
    Aggregate,
    Trades,
    Quotes,
    Halts,
    Unknown,
}

impl QueueKind {
    pub const ALL: [QueueKind; 5] = [
        QueueKind::Aggregate,
        QueueKind::Trades,
        QueueKind::Quotes,
        QueueKind::Halts,
        QueueKind::Unknown,
    ];

    /// Position in [`QueueKind::ALL`], for per-queue counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            QueueKind::Aggregate => "aggregate",
            QueueKind::Trades => "trades",
            QueueKind::Quotes => "quotes",
            QueueKind::Halts => "halts",
            QueueKind::Unknown => "unknown",
        }
    }

    /// The queue of a name from [`QueueKind::name`].
    pub fn from_name(name: &str) -> Option<QueueKind> {
        QueueKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The queue of an event code (stocks codes; other markets' events go to `unknown`).
    pub fn of(ev: &str) -> QueueKind {
        match ev {
            "A" | "AM" => QueueKind::Aggregate,
            "T" => QueueKind::Trades,
            "Q" => QueueKind::Quotes,
            "LULD" => QueueKind::Halts,
            _ => QueueKind::Unknown,
        }
    }
}

/// The queue names, in [`QueueKind::ALL`] order (so a per-queue figure's `at(kind.index())`
/// is the queue's).
pub const QUEUE_NAMES: [&str; 5] = [
    QueueKind::Aggregate.name(),
    QueueKind::Trades.name(),
    QueueKind::Quotes.name(),
    QueueKind::Halts.name(),
    QueueKind::Unknown.name(),
];

/// The events of one frame for one (queue, shard), in frame order.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct EventBatch {
    pub queue: QueueKind,
    pub shard: u16,
    pub received_at_ms: i64,
    pub market: Market,
    pub events: Vec<Bytes>,
}

/// One news article as Finlight sent it (its JSON object's bytes, never re-encoded) and when
/// the news listener read it. On RabbitMQ the body is the article itself, as the reference
/// system queued it, and the receive time travels in the [`topology::RECEIVED_AT_HEADER`]
/// header.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct NewsArticle {
    pub article: Bytes,
    pub received_at_ms: i64,
}

/// Stable shard of a symbol: FNV-1a, the same on every node and version.
pub fn shard_of(symbol: &str, shards: u16) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in symbol.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(shards.max(1))) as u16
}

/// The events of one frame bound for one (queue, shard), original bytes unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub queue: QueueKind,
    pub shard: u16,
    pub events: Vec<Bytes>,
}

/// What routing made of one frame.
#[derive(Debug, Default)]
pub struct SplitFrame {
    pub groups: Vec<Group>,
    /// Status elements (handled by the listener, never forwarded).
    pub statuses: usize,
    /// Elements that could not be read (no `ev`, not an object): counted and skipped.
    pub bad: Vec<ElementError>,
    /// The newest event time in the frame (epoch ms), for the frame-lag gauge.
    pub newest_ms: Option<i64>,
}

/// Splits `frame` and groups its events per (queue, shard), keeping each group's events in
/// frame order. `frame` is shared, so each event is a zero-copy slice of it.
pub fn split_frame(frame: &Bytes, shards: u16) -> Result<SplitFrame, FrameError> {
    split_frame_indexed(frame, shards, None)
}

/// [`split_frame`], also listing every event for the relay in `index` (in frame order, with
/// `fallback_ms` as the time of an event that names none) from the same one parse.
pub fn split_frame_indexed(
    frame: &Bytes,
    shards: u16,
    mut index: Option<(&mut Vec<RelayEvent>, i64)>,
) -> Result<SplitFrame, FrameError> {
    let mut out = SplitFrame::default();
    let base = frame.as_ptr() as usize;
    for entry in route_frame(frame)? {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.bad.push(e);
                continue;
            }
        };
        if entry.is_status() {
            out.statuses += 1;
            continue;
        }
        if let Some(t) = entry.time_ms {
            out.newest_ms = Some(out.newest_ms.map_or(t, |n| n.max(t)));
        }
        let queue = QueueKind::of(&entry.ev);
        let shard = entry.symbol.as_deref().map_or(0, |s| shard_of(s, shards));
        // The raw element borrows from `frame`: slice the shared buffer instead of copying.
        let raw = entry.raw.get().as_bytes();
        let start = raw.as_ptr() as usize - base;
        let bytes = frame.slice(start..start + raw.len());
        if let Some((index, fallback_ms)) = index.as_mut() {
            index.push(RelayEvent {
                channel: entry.ev.as_ref().into(),
                symbol: entry.symbol.as_deref().unwrap_or_default().into(),
                start: start as u32,
                end: (start + raw.len()) as u32,
                time_ms: entry.time_ms.unwrap_or(*fallback_ms),
            });
        }
        match out
            .groups
            .iter_mut()
            .find(|g| g.queue == queue && g.shard == shard)
        {
            Some(g) => g.events.push(bytes),
            None => out.groups.push(Group {
                queue,
                shard,
                events: vec![bytes],
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_queue_and_stable_shard_in_order() {
        let frame = Bytes::from_static(
            br#"[{"ev":"T","sym":"AAPL","p":1,"t":1},{"ev":"status","status":"x"},{"ev":"A","sym":"AAPL"},
                 {"ev":"T","sym":"AAPL","p":2,"t":2},{"ev":"LULD","T":"MSFT"},{"ev":"XT","pair":"BTC-USD"},7]"#,
        );
        let r = split_frame(&frame, 4).unwrap();
        assert_eq!(r.statuses, 1);
        assert_eq!(r.bad.len(), 1);
        let trades = r
            .groups
            .iter()
            .find(|g| g.queue == QueueKind::Trades)
            .unwrap();
        assert_eq!(trades.shard, shard_of("AAPL", 4));
        assert_eq!(trades.events.len(), 2);
        assert_eq!(
            &trades.events[1][..],
            br#"{"ev":"T","sym":"AAPL","p":2,"t":2}"#
        );
        assert!(r
            .groups
            .iter()
            .any(|g| g.queue == QueueKind::Halts && g.shard == shard_of("MSFT", 4)));
        assert!(r.groups.iter().any(|g| g.queue == QueueKind::Unknown));
        assert!(r.groups.iter().all(|g| g.shard < 4));
    }

    #[test]
    fn index_is_the_position_in_all() {
        for (i, q) in QueueKind::ALL.iter().enumerate() {
            assert_eq!(q.index(), i);
            assert_eq!(QUEUE_NAMES[i], q.name());
            assert_eq!(QueueKind::from_name(q.name()), Some(*q));
        }
        assert_eq!(QueueKind::from_name("news"), None);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("AAPL", 8), shard_of("AAPL", 8));
        let used: std::collections::HashSet<u16> =
            (0..200).map(|i| shard_of(&format!("S{i}"), 8)).collect();
        assert_eq!(used.len(), 8);
        assert_eq!(shard_of("AAPL", 1), 0);
    }
}
