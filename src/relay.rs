//! The relay contract (issue 23): what the listener hands the WDS nodes so that users' own
//! programs share the one Massive connection, and how the control plane tells every WDS which
//! keys may use it.
//!
//! - [`Relayed::Batch`]: one frame as Massive sent it (the original bytes) with an index of its
//!   events (channel, symbol, byte range, event time) built by the router's route-only parse,
//!   so a WDS picks each session's events out without parsing them again. Per frame, not per
//!   event.
//! - [`Relayed::Carried`]: the topics the listener subscribes upstream on a market; a relay
//!   client may subscribe within them only. Sent on every (re)subscription and repeated, so a
//!   WDS that starts later learns it.
//! - Distributed mode carries both over RabbitMQ ([`EXCHANGE`], MessagePack bodies; each WDS
//!   binds its own short-lived queue); embedded mode hands them over in process.
//! - [`RelayWants`]: the other way, what relay clients subscribe, for a listener that widens
//!   its upstream subscription to it (optional): each WDS writes its own in a Redis hash
//!   ([`wants_key`]) and the listener reads the union; embedded mode hands it over in process.
//! - Keys: the control plane publishes the SHA-256 of every key with the `relay` scope (never
//!   the key) in the node registry's Redis hash [`keys_key`]; embedded mode reads the key
//!   store in process.

use std::collections::HashMap;

use actix::Message;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::massive::Market;

/// The fanout exchange the listener publishes relay messages to.
pub const EXCHANGE: &str = "tickwire.relay";

/// How often the listener repeats what it carries.
pub const CARRIED_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// One event of a relayed frame: where it is and what it is, read once by the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayEvent {
    /// `ev`: the subscription channel.
    pub channel: Box<str>,
    /// The ticker (`sym`, `T`, `pair`, ...); empty when the event names none.
    pub symbol: Box<str>,
    /// Byte range of the event's JSON object in the frame.
    pub start: u32,
    pub end: u32,
    /// Event time, epoch ms (`t`, else a bar's end), or the listener's receive time.
    pub time_ms: i64,
}

/// One Massive frame and its index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayBatch {
    #[serde(with = "market_path")]
    pub market: Market,
    /// When the listener read the frame, epoch ms.
    pub received_at_ms: i64,
    /// The frame as Massive sent it.
    pub frame: Bytes,
    /// Its events in frame order (statuses and unreadable elements left out).
    pub events: Vec<RelayEvent>,
    /// The events are the whole frame: a client that wants them all gets `frame` itself.
    pub whole: bool,
}

impl RelayBatch {
    /// Whether `picks` are all of the frame's events and those are the whole frame.
    pub fn is_all(&self, picks: &[u32]) -> bool {
        self.whole && picks.len() == self.events.len()
    }

    /// Appends the JSON array of the events at `picks` (indexes into `events`, in order) to
    /// `out`: their original bytes, joined. (When [`RelayBatch::is_all`], `frame` is that
    /// array already.)
    pub fn write_json(&self, picks: &[u32], out: &mut BytesMut) {
        let len: usize = picks
            .iter()
            .filter_map(|&i| self.events.get(i as usize))
            .map(|e| (e.end - e.start) as usize + 1)
            .sum();
        out.reserve(len + 2);
        let mut first = true;
        for &i in picks {
            let Some(e) = self.events.get(i as usize) else {
                continue;
            };
            let Some(bytes) = self.frame.get(e.start as usize..e.end as usize) else {
                continue;
            };
            out.put_u8(if first { b'[' } else { b',' });
            out.put_slice(bytes);
            first = false;
        }
        if first {
            out.put_u8(b'[');
        }
        out.put_u8(b']');
    }
}

/// The topics a listener subscribes upstream on one market.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    #[serde(with = "market_path")]
    pub market: Market,
    /// `T.*`, `Q.AAPL`, ... as the listener sent them (widened ones included).
    pub topics: Vec<String>,
    /// The listener widens its upstream subscription to what relay clients ask for
    /// (`LISTENER_RELAY_WIDEN`): a relay accepts topics beyond `topics`, and hands on their
    /// events once the listener has subscribed them.
    #[serde(default)]
    pub widens: Option<Widening>,
}

/// How far a listener widens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Widening {
    /// Whether a whole channel (`T.*`) may be added, not only single symbols.
    pub wildcards: bool,
}

/// The topics a node's relay clients hold on one market, all of them (`T.*`, `Q.AAPL`):
/// from a WDS's hub to the listener (in process), or through Redis ([`wants_key`]).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct RelayWants {
    pub market: Market,
    pub topics: Vec<String>,
}

/// How often a WDS writes its relay clients' topics again (a heartbeat: a node's entry older
/// than [`WANTS_STALE`] is a node gone, and the listener stops widening for it).
pub const WANTS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Age past which a node's wanted topics no longer count.
pub const WANTS_STALE: std::time::Duration = std::time::Duration::from_secs(20);

/// The Redis hash (under the node registry's prefix) of what relay clients want on a
/// market: field = WDS node id, value = JSON [`NodeWants`].
pub fn wants_key(registry_prefix: &str, market: Market) -> String {
    format!("{registry_prefix}relay:wants:{}", market.path())
}

/// One WDS node's entry in [`wants_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeWants {
    /// When it was written, epoch ms.
    pub at: i64,
    pub topics: Vec<String>,
}

/// The union, sorted, of the entries of [`wants_key`] written since `now_ms -`
/// [`WANTS_STALE`]; unreadable entries are left out (counted by the caller from the second
/// value), stale ones listed in the third for deletion.
pub fn union_of_wants<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    now_ms: i64,
) -> (Vec<String>, usize, Vec<String>) {
    let mut all = std::collections::BTreeSet::new();
    let (mut unreadable, mut stale) = (0, Vec::new());
    for (node, raw) in entries {
        match serde_json::from_str::<NodeWants>(raw) {
            Ok(w) if now_ms - w.at <= WANTS_STALE.as_millis() as i64 => all.extend(w.topics),
            Ok(_) => stale.push(node.to_string()),
            Err(_) => unreadable += 1,
        }
    }
    (all.into_iter().collect(), unreadable, stale)
}

/// What travels from the listener to the relays.
#[derive(Message, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[rtype(result = "()")]
pub enum Relayed {
    Batch(RelayBatch),
    Carried(Carried),
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("relay message does not decode: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("relay message does not encode: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

impl Relayed {
    /// The RabbitMQ body.
    pub fn encode(&self) -> Result<Vec<u8>, RelayError> {
        Ok(rmp_serde::to_vec(self)?)
    }

    pub fn decode(body: &[u8]) -> Result<Relayed, RelayError> {
        Ok(rmp_serde::from_slice(body)?)
    }
}

/// The exchange's name under a node's queue prefix (tests use a unique one).
pub fn exchange_name(queue_prefix: &str) -> String {
    format!("{queue_prefix}{EXCHANGE}")
}

/// Declares the relay exchange (idempotent: the listener and every WDS do it).
pub async fn declare_exchange(channel: &lapin::Channel, name: &str) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Fanout,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
}

/// Publishes one encoded relay message (non-persistent, no confirm awaited).
pub async fn publish(
    channel: &lapin::Channel,
    exchange: &str,
    body: &[u8],
) -> Result<(), lapin::Error> {
    channel
        .basic_publish(
            exchange.into(),
            "".into(),
            lapin::options::BasicPublishOptions::default(),
            body,
            lapin::BasicProperties::default().with_delivery_mode(1),
        )
        .await
        .map(|_| ())
}

/// What a WDS knows of one relay key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayKey {
    pub id: String,
    pub user: String,
}

/// Relay keys by the hex SHA-256 of the key.
pub type RelayKeys = HashMap<String, RelayKey>;

/// The hex SHA-256 of a key: how it is stored and looked up everywhere.
pub fn key_hash(key: &str) -> String {
    crate::token::hex(&Sha256::digest(key.as_bytes()))
}

/// The Redis hash (under the node registry's prefix) of the relay keys: field = hash,
/// value = JSON [`RelayKey`].
pub fn keys_key(registry_prefix: &str) -> String {
    format!("{registry_prefix}relay:keys")
}

/// Serialises a market as its path (`stocks`), the wire name everyone uses.
mod market_path {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use crate::massive::Market;

    pub fn serialize<S: Serializer>(m: &Market, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.path())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Market, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> RelayBatch {
        let frame =
            Bytes::from_static(br#"[{"ev":"T","sym":"A","t":1},{"ev":"Q","sym":"B","t":2}]"#);
        let events = vec![
            RelayEvent {
                channel: "T".into(),
                symbol: "A".into(),
                start: 1,
                end: 27,
                time_ms: 1,
            },
            RelayEvent {
                channel: "Q".into(),
                symbol: "B".into(),
                start: 28,
                end: 54,
                time_ms: 2,
            },
        ];
        RelayBatch {
            market: Market::Stocks,
            received_at_ms: 5,
            frame,
            events,
            whole: true,
        }
    }

    #[test]
    fn frames_are_the_original_bytes() {
        let b = batch();
        let json = |picks: &[u32]| {
            let mut out = BytesMut::new();
            b.write_json(picks, &mut out);
            out
        };
        assert!(b.is_all(&[0, 1]) && !b.is_all(&[1]));
        assert_eq!(&json(&[0, 1])[..], &b.frame[..]);
        assert_eq!(&json(&[1])[..], br#"[{"ev":"Q","sym":"B","t":2}]"#);
        assert_eq!(&json(&[9])[..], b"[]");
    }

    #[test]
    fn messages_round_trip() {
        let m = Relayed::Batch(batch());
        assert_eq!(Relayed::decode(&m.encode().unwrap()).unwrap(), m);
        let c = Relayed::Carried(Carried {
            market: Market::Crypto,
            topics: vec!["XT.*".into()],
            widens: Some(Widening { wildcards: false }),
        });
        assert_eq!(Relayed::decode(&c.encode().unwrap()).unwrap(), c);
        assert!(Relayed::decode(b"\xc1garbage").is_err());
    }

    #[test]
    fn wants_are_the_union_of_fresh_nodes() {
        let fresh = r#"{"at":1000,"topics":["Q.AAPL","T.*"]}"#;
        let other = r#"{"at":900,"topics":["Q.AAPL","Q.MSFT"]}"#;
        let old = r#"{"at":1,"topics":["A.*"]}"#;
        let now = 1000 + WANTS_STALE.as_millis() as i64 - 200;
        let (topics, unreadable, stale) = union_of_wants(
            [("a", fresh), ("b", other), ("c", old), ("d", "{nope")],
            now,
        );
        assert_eq!(topics, ["Q.AAPL", "Q.MSFT", "T.*"]);
        assert_eq!((unreadable, stale), (1, vec!["c".to_string()]));
    }
}
