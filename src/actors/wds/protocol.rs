//! The client protocols of the widget data service, as pure functions: frames in, requests
//! out; replies and pushes built here, byte for byte.
//!
//! - **v1** (`/ws`) is the reference web app's protocol (reference-system.md §5): `action`
//!   requests, `{"status":…}` acknowledgements, `{"cache","data"}` replies, raw pushes. Its
//!   defects are fixed without changing any reply the reference web app relies on: bad input
//!   gets `{"status":"error","error":…}` instead of a dead socket, and the requests it used to
//!   ignore in silence get the same error shape.
//! - **v2** (`/ws/v2`) is ours: `type`d frames, every push naming its topic with a per-topic
//!   sequence number and the listener receive time, structured errors with codes. See
//!   docs/protocol.md.
//!
//! The browser's v2 client is `src/scp/assets/wds-client.js` (served by the control plane
//! with the dashboard): refcounted subscriptions on one socket, reconnect with backoff and
//! jitter, resubscription (fresh snapshots) after a reconnect, in-band token renewal.

use serde_json::Value;

use crate::store::{Stored, ALL};

/// A request, whichever protocol it came in.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Auth {
        token: String,
    },
    Subscribe {
        topic: String,
        /// List items in the v2 snapshot.
        limit: usize,
    },
    Unsubscribe {
        topic: String,
    },
    Get {
        topic: String,
        limit: usize,
    },
    Ping,
    /// An action or type this protocol does not have.
    Unknown,
}

/// A request and the client's correlation id (v2 `id`, echoed in the reply).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub request: Request,
    pub id: Option<Value>,
}

/// Why a frame could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed JSON: {0}")]
    NotJson(String),
    #[error("a request must be a JSON object")]
    NotObject,
    #[error("limit must be an integer")]
    BadLimit,
    #[error("{0} must be a non-empty string")]
    MissingField(&'static str),
    #[error("topic may use only `*` as a wildcard")]
    BadTopic,
}

/// A frame refused, with what the client sent to tell which request it was: its `id` and
/// `topic`, as far as the frame had them, so that the error can echo them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct Refused {
    pub error: ProtocolError,
    pub id: Option<Value>,
    pub topic: Option<String>,
}

impl From<ProtocolError> for Refused {
    fn from(error: ProtocolError) -> Self {
        Refused {
            error,
            id: None,
            topic: None,
        }
    }
}

impl ProtocolError {
    /// The v2 error code.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::BadTopic => "bad_topic",
            _ => "bad_request",
        }
    }
}

/// Default list items in a v2 subscribe snapshot.
pub const DEFAULT_SNAPSHOT_LIMIT: usize = 100;

fn object(text: &str) -> Result<serde_json::Map<String, Value>, ProtocolError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ProtocolError::NotObject),
        Err(e) => Err(ProtocolError::NotJson(e.to_string())),
    }
}

/// `limit` as the reference converts it (`int(x)`: integers, floats truncated, integer-like
/// strings); absent, null or ≤ 0 means the whole list.
fn limit(v: Option<&Value>, default: usize) -> Result<usize, ProtocolError> {
    let n = match v {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
            .ok_or(ProtocolError::BadLimit)?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| ProtocolError::BadLimit)?,
        Some(Value::Bool(b)) => i64::from(*b),
        Some(_) => return Err(ProtocolError::BadLimit),
    };
    Ok(usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(ALL))
}

fn topic(m: &serde_json::Map<String, Value>, field: &'static str) -> Result<String, ProtocolError> {
    match m.get(field) {
        Some(Value::String(s)) if !s.is_empty() => {
            // Redis globs also know `?` and `[...]`; grants are checked by matching the
            // request as text, which is only sound when `*` is the one wildcard.
            if s.contains(['?', '[']) {
                Err(ProtocolError::BadTopic)
            } else {
                Ok(s.clone())
            }
        }
        _ => Err(ProtocolError::MissingField(field)),
    }
}

/// A v1 frame (`{"action": …}`).
pub fn parse_v1(text: &str) -> Result<Parsed, Refused> {
    let m = object(text)?;
    let context = |error| Refused {
        error,
        id: None,
        topic: ["feed", "cache"]
            .iter()
            .find_map(|f| m.get(*f).and_then(Value::as_str))
            .map(str::to_string),
    };
    parse_v1_fields(&m).map_err(context)
}

fn parse_v1_fields(m: &serde_json::Map<String, Value>) -> Result<Parsed, ProtocolError> {
    let request = match m.get("action").and_then(Value::as_str) {
        Some("auth") => Request::Auth {
            token: m
                .get("api_key")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        },
        Some("subscribe") => Request::Subscribe {
            topic: topic(m, "feed")?,
            limit: DEFAULT_SNAPSHOT_LIMIT,
        },
        Some("unsubscribe") => Request::Unsubscribe {
            topic: topic(m, "feed")?,
        },
        Some("get") => {
            // The reference converts limit before looking at the key.
            let limit = limit(m.get("limit"), ALL)?;
            Request::Get {
                topic: topic(m, "cache")?,
                limit,
            }
        }
        _ => Request::Unknown,
    };
    Ok(Parsed { request, id: None })
}

/// A v2 frame (`{"type": …}`). A refusal carries the frame's `id` and `topic` (docs/protocol.md:
/// an error names the request it answers).
pub fn parse_v2(text: &str) -> Result<Parsed, Refused> {
    let mut m = object(text)?;
    let id = m.remove("id");
    match v2_request(&m) {
        Ok(request) => Ok(Parsed { request, id }),
        Err(error) => Err(Refused {
            error,
            id,
            topic: m.get("topic").and_then(Value::as_str).map(str::to_string),
        }),
    }
}

fn v2_request(m: &serde_json::Map<String, Value>) -> Result<Request, ProtocolError> {
    Ok(match m.get("type").and_then(Value::as_str) {
        Some("auth") => Request::Auth {
            token: m
                .get("token")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        },
        Some("subscribe") => Request::Subscribe {
            topic: topic(m, "topic")?,
            limit: limit(m.get("limit"), DEFAULT_SNAPSHOT_LIMIT)?,
        },
        Some("unsubscribe") => Request::Unsubscribe {
            topic: topic(m, "topic")?,
        },
        Some("get") => Request::Get {
            topic: topic(m, "topic")?,
            limit: limit(m.get("limit"), ALL)?,
        },
        Some("ping") => Request::Ping,
        _ => Request::Unknown,
    })
}

fn quote(s: &str) -> String {
    // Serialising a &str cannot fail.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Whether `bytes` is one JSON document.
pub fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// A stored value as the JSON a client receives: the stored bytes verbatim when they are
/// JSON (they are what the reference would parse and re-serialise compactly), else the text
/// as a JSON string rather than a dead socket.
pub fn push_json(out: &mut Vec<u8>, bytes: &[u8]) {
    if is_json(bytes) {
        out.extend_from_slice(bytes);
    } else {
        out.extend_from_slice(quote(&String::from_utf8_lossy(bytes)).as_bytes());
    }
}

/// A read value: a string's JSON, a list as an array newest first, `null` when missing.
pub fn stored_json(v: Option<&Stored>) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        None => out.extend_from_slice(b"null"),
        Some(Stored::Str(b)) => push_json(&mut out, b),
        Some(Stored::List(items)) => {
            out.push(b'[');
            for (i, b) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json(&mut out, b);
            }
            out.push(b']');
        }
    }
    out
}

fn utf8(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// v1 replies, exactly the reference's bytes.
pub mod v1 {
    use super::*;

    pub const AUTHORIZED: &str = r#"{"status":"authorized"}"#;
    pub const INVALID_KEY: &str = r#"{"status":"invalid key"}"#;
    pub const UNAUTHORIZED: &str = r#"{"status":"unauthorized"}"#;
    pub const INVALID_ACTION: &str = r#"{"status":"invalid action"}"#;

    /// `{"status":"subscribed","feed":F}` and `unsubscribed`.
    pub fn ack(status: &str, feed: &str) -> String {
        format!(r#"{{"status":{},"feed":{}}}"#, quote(status), quote(feed))
    }

    /// `{"cache":K,"data":V}`.
    pub fn cache(key: &str, data: &[u8]) -> String {
        let mut out = format!(r#"{{"cache":{},"data":"#, quote(key)).into_bytes();
        out.extend_from_slice(data);
        out.push(b'}');
        utf8(out)
    }

    /// What the reference never answered (bad input, refused requests). It carries
    /// `status` like every acknowledgement, so the reference web app treats it as one.
    pub fn error(reason: &str) -> String {
        format!(r#"{{"status":"error","error":{}}}"#, quote(reason))
    }
}

/// v2 frames.
pub mod v2 {
    use super::*;

    fn with_id(mut head: String, id: Option<&Value>) -> String {
        if let Some(id) = id {
            head.push_str(r#","id":"#);
            head.push_str(&id.to_string());
        }
        head.push('}');
        head
    }

    pub fn welcome(session: u64, subject: &str, expires_at: Option<i64>) -> String {
        let exp = expires_at.map_or("null".to_string(), |e| e.to_string());
        format!(
            r#"{{"type":"welcome","version":2,"session":{session},"subject":{},"expires_at":{exp}}}"#,
            quote(subject)
        )
    }

    pub fn ack(kind: &str, topic: &str, id: Option<&Value>) -> String {
        with_id(
            format!(r#"{{"type":{},"topic":{}"#, quote(kind), quote(topic)),
            id,
        )
    }

    pub fn pong(now_ms: i64, id: Option<&Value>) -> String {
        with_id(format!(r#"{{"type":"pong","time":{now_ms}"#), id)
    }

    pub fn error(code: &str, message: &str, topic: Option<&str>, id: Option<&Value>) -> String {
        let mut head = format!(
            r#"{{"type":"error","code":{},"message":{}"#,
            quote(code),
            quote(message)
        );
        if let Some(t) = topic {
            head.push_str(r#","topic":"#);
            head.push_str(&quote(t));
        }
        with_id(head, id)
    }

    /// Reply to `get`.
    pub fn data(topic: &str, data: &[u8], id: Option<&Value>) -> String {
        let mut head = format!(r#"{{"type":"data","topic":{}"#, quote(topic));
        if let Some(id) = id {
            head.push_str(r#","id":"#);
            head.push_str(&id.to_string());
        }
        let mut out = head.into_bytes();
        out.extend_from_slice(br#","data":"#);
        out.extend_from_slice(data);
        out.push(b'}');
        utf8(out)
    }

    /// The cached value a subscription starts from; `seq` is that of the last update it
    /// includes, so the first live update carries `seq + 1`.
    pub fn snapshot(topic: &str, seq: u64, data: &[u8]) -> String {
        let mut out = format!(
            r#"{{"type":"snapshot","topic":{},"seq":{seq},"data":"#,
            quote(topic)
        )
        .into_bytes();
        out.extend_from_slice(data);
        out.push(b'}');
        utf8(out)
    }

    /// A live update, built once per message and shared by every v2 subscriber.
    pub fn update(
        topic: &str,
        pattern: Option<&str>,
        seq: u64,
        received_at: Option<i64>,
        payload: &[u8],
    ) -> String {
        let mut out = format!(r#"{{"type":"update","topic":{}"#, quote(topic));
        if let Some(p) = pattern {
            out.push_str(r#","pattern":"#);
            out.push_str(&quote(p));
        }
        let at = received_at.map_or("null".to_string(), |t| t.to_string());
        out.push_str(&format!(r#","seq":{seq},"received_at":{at},"data":"#));
        let mut out = out.into_bytes();
        push_json(&mut out, payload);
        out.push(b'}');
        utf8(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn v1_requests() {
        let p = |s: &str| parse_v1(s).map(|p| p.request).map_err(|r| r.error);
        assert_eq!(
            p(r#"{"action":"auth","api_key":"k"}"#),
            Ok(Request::Auth { token: "k".into() })
        );
        assert_eq!(
            p(r#"{"action":"subscribe","feed":"quote:AAPL"}"#),
            Ok(Request::Subscribe {
                topic: "quote:AAPL".into(),
                limit: DEFAULT_SNAPSHOT_LIMIT
            })
        );
        assert_eq!(
            p(r#"{"action":"get","cache":"news:feed:latest","limit":"25"}"#),
            Ok(Request::Get {
                topic: "news:feed:latest".into(),
                limit: 25
            })
        );
        for (l, want) in [("0", ALL), ("-3", ALL), ("2.9", 2), ("null", ALL)] {
            let f = format!(r#"{{"action":"get","cache":"k","limit":{l}}}"#);
            assert_eq!(
                p(&f),
                Ok(Request::Get {
                    topic: "k".into(),
                    limit: want
                })
            );
        }
        assert_eq!(
            p(r#"{"action":"get","cache":"k","limit":"ten"}"#),
            Err(ProtocolError::BadLimit)
        );
        assert_eq!(
            p(r#"{"action":"subscribe","feed":""}"#),
            Err(ProtocolError::MissingField("feed"))
        );
        assert_eq!(p(r#"{"action":"dance"}"#), Ok(Request::Unknown));
        assert_eq!(p(r#"{"feed":"x"}"#), Ok(Request::Unknown));
        assert_eq!(p("[1]"), Err(ProtocolError::NotObject));
        assert!(matches!(p("{nope"), Err(ProtocolError::NotJson(_))));
        assert_eq!(
            p(r#"{"action":"subscribe","feed":"quote:?"}"#),
            Err(ProtocolError::BadTopic)
        );
    }

    #[test]
    fn v2_requests_keep_their_id() {
        let p = parse_v2(r#"{"type":"subscribe","topic":"quote:*","id":7,"limit":5}"#).unwrap();
        assert_eq!(p.id, Some(serde_json::json!(7)));
        assert_eq!(
            p.request,
            Request::Subscribe {
                topic: "quote:*".into(),
                limit: 5
            }
        );
        assert_eq!(
            parse_v2(r#"{"type":"ping"}"#).unwrap().request,
            Request::Ping
        );
        assert_eq!(
            parse_v2(r#"{"action":"get","cache":"k"}"#).unwrap().request,
            Request::Unknown
        );
    }

    #[test]
    fn v1_reply_bytes() {
        assert_eq!(
            v1::ack("subscribed", "quote:AAPL"),
            r#"{"status":"subscribed","feed":"quote:AAPL"}"#
        );
        assert_eq!(
            v1::cache(
                "k",
                &stored_json(Some(&Stored::List(vec![
                    Bytes::from_static(br#"{"a":2}"#),
                    Bytes::from_static(br#"{"a":1}"#)
                ])))
            ),
            r#"{"cache":"k","data":[{"a":2},{"a":1}]}"#
        );
        assert_eq!(
            v1::cache("k", &stored_json(None)),
            r#"{"cache":"k","data":null}"#
        );
        assert_eq!(
            v1::cache(
                "k",
                &stored_json(Some(&Stored::Str(Bytes::from_static(b"not json"))))
            ),
            r#"{"cache":"k","data":"not json"}"#
        );
    }

    #[test]
    fn v2_frames() {
        assert_eq!(
            v2::update("quote:A", Some("quote:*"), 3, Some(17), br#"{"p":1}"#),
            r#"{"type":"update","topic":"quote:A","pattern":"quote:*","seq":3,"received_at":17,"data":{"p":1}}"#
        );
        assert_eq!(
            v2::error("forbidden", "no", Some("t"), Some(&serde_json::json!("x"))),
            r#"{"type":"error","code":"forbidden","message":"no","topic":"t","id":"x"}"#
        );
        let s: Value = serde_json::from_str(&v2::snapshot("t", 0, b"null")).unwrap();
        assert_eq!(s["seq"], 0);
    }

    #[test]
    fn a_refusal_keeps_the_requests_id_and_topic() {
        let r = parse_v2(r#"{"type":"subscribe","topic":"quote:A[B]","id":"r1"}"#).unwrap_err();
        assert_eq!(r.error, ProtocolError::BadTopic);
        assert_eq!(r.id, Some(Value::from("r1")));
        assert_eq!(r.topic.as_deref(), Some("quote:A[B]"));
        let r = parse_v1(r#"{"action":"get","cache":"k","limit":[]}"#).unwrap_err();
        assert_eq!(
            (r.error, r.topic.as_deref()),
            (ProtocolError::BadLimit, Some("k"))
        );
        assert_eq!(parse_v2("[]").unwrap_err().error, ProtocolError::NotObject);
    }
}
