//! Finlight's news WebSocket protocol, as the official clients speak it (PyPI
//! `finlight-client` 2.4.0): the contract between the simulator, which serves it, the news
//! listener, which reads it, and the news processor, which reads the articles the listener
//! passes on (unchanged bytes, as the reference system queued them).
//!
//! - Handshake: `GET wss://wss.finlight.me` (enhanced articles) or `…/raw`, headers
//!   `x-api-key`, `x-client-version`, and `x-takeover: true` to replace this key's other
//!   connection. A wrong key is refused with 401; too many attempts with 429.
//! - The client then sends its [`StreamParams`] as one JSON object with a `clientNonce`.
//! - The server answers with [`ServerMessage`]s: `admit`, `sendArticle`, `pong` (to the
//!   client's `{"action":"ping","t":<ms>}`), `preempted`, `admin_kick`, `error`.
//!
//! Parsing is tolerant: unknown actions and fields are kept apart, never an error, and an
//! article's bytes are kept as they came so nothing is re-encoded on its way to the cache.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Finlight's WebSocket endpoint (enhanced articles; `/raw` appended for raw ones).
pub const WSS_URL: &str = "wss://wss.finlight.me";

/// Header carrying the API key on the handshake.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Header asking the server to replace this key's other connection.
pub const TAKEOVER_HEADER: &str = "x-takeover";
/// Header naming the client and its version.
pub const CLIENT_VERSION_HEADER: &str = "x-client-version";

/// What the client asks for, sent once after the handshake (field names as Finlight's).
/// Every field is optional; unset ones are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StreamParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_sources: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_in_sources: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tickers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_entities: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_empty_content: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countries: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_updates: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_nonce: Option<String>,
}

/// One message from the server. Articles stay raw (`data`), to be passed on unchanged.
#[derive(Debug)]
pub enum ServerMessage<'a> {
    Admit {
        lease_id: Option<String>,
        server_now: Option<i64>,
        client_nonce: Option<String>,
    },
    SendArticle {
        data: &'a RawValue,
    },
    Pong {
        t: Option<i64>,
    },
    Preempted {
        reason: Option<String>,
        new_lease_id: Option<String>,
    },
    AdminKick {
        /// Milliseconds to wait before connecting again (the client's default: 15 minutes).
        retry_after: Option<u64>,
    },
    Error {
        /// `data` or `error`, as text.
        message: String,
    },
    /// An action this version does not know: counted and skipped by the listener.
    Unknown,
}

/// Every field any server message has; read in one pass, then sorted by `action`. (A serde
/// tagged enum would buffer the article and lose its original bytes.)
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    action: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    lease_id: Option<String>,
    #[serde(default)]
    server_now: Option<i64>,
    #[serde(default)]
    client_nonce: Option<String>,
    #[serde(default)]
    t: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    new_lease_id: Option<String>,
    #[serde(default)]
    retry_after: Option<u64>,
}

/// Why a server message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("not a Finlight message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("sendArticle without data")]
    NoArticle,
}

/// Reads one server message (tolerant: an unknown action is [`ServerMessage::Unknown`]).
pub fn parse_server_message(text: &str) -> Result<ServerMessage<'_>, WireError> {
    let w: Wire<'_> = serde_json::from_str(text)?;
    Ok(match w.action.as_str() {
        "admit" => ServerMessage::Admit {
            lease_id: w.lease_id,
            server_now: w.server_now,
            client_nonce: w.client_nonce,
        },
        "sendArticle" => ServerMessage::SendArticle {
            data: w.data.ok_or(WireError::NoArticle)?,
        },
        "pong" => ServerMessage::Pong { t: w.t },
        "preempted" => ServerMessage::Preempted {
            reason: w.reason,
            new_lease_id: w.new_lease_id,
        },
        "admin_kick" => ServerMessage::AdminKick {
            retry_after: w.retry_after,
        },
        "error" => ServerMessage::Error {
            message: match w
                .data
                .map(|d| d.get().to_string())
                .or(w.error.map(|e| e.to_string()))
            {
                Some(m) => m,
                None => "unknown error".into(),
            },
        },
        _ => ServerMessage::Unknown,
    })
}

/// The client's keep-alive: `{"action":"ping","t":<epoch ms>}`.
pub fn ping(t_ms: i64) -> String {
    format!(r#"{{"action":"ping","t":{t_ms}}}"#)
}

/// A company an enhanced article is tagged with (only what tickwire reads; the rest of the
/// article stays in its original bytes).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Company {
    pub ticker: Option<String>,
    pub exchange: Option<String>,
    pub name: Option<String>,
    pub primary_listing: Option<Listing>,
}

/// Where a company's shares trade (`exchangeCode` is a MIC such as `XNAS`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Listing {
    pub ticker: Option<String>,
    pub exchange_code: Option<String>,
}

/// The fields of an article the news processor reads: identity, text for ticker search,
/// and tagged companies. Everything is optional here; the processor decides what it needs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArticleFields {
    pub link: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub is_update: Option<bool>,
    pub companies: Option<Vec<Company>>,
}

impl ArticleFields {
    /// Reads the fields from an article's JSON object.
    pub fn parse(article: &[u8]) -> Result<Self, WireError> {
        Ok(serde_json::from_slice(article)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_read_tolerantly() {
        let m = parse_server_message(
            r#"{"action":"admit","leaseId":"L1","serverNow":1700000000000,"clientNonce":"n","x":1}"#,
        )
        .expect("admit");
        assert!(matches!(
            m,
            ServerMessage::Admit { lease_id: Some(ref l), client_nonce: Some(ref n), .. } if l == "L1" && n == "n"
        ));
        let m = parse_server_message(r#"{"action":"sendArticle","data":{"link":"u","title":"t"}}"#)
            .expect("article");
        let ServerMessage::SendArticle { data } = m else {
            panic!("not an article: {m:?}")
        };
        assert_eq!(data.get(), r#"{"link":"u","title":"t"}"#, "bytes kept");
        assert!(matches!(
            parse_server_message(r#"{"action":"admin_kick","retryAfter":5000}"#).unwrap(),
            ServerMessage::AdminKick {
                retry_after: Some(5000)
            }
        ));
        assert!(matches!(
            parse_server_message(r#"{"action":"preempted","reason":"takeover","newLeaseId":"L2"}"#)
                .unwrap(),
            ServerMessage::Preempted { .. }
        ));
        assert!(matches!(
            parse_server_message(r#"{"action":"somethingNew","a":[1]}"#).unwrap(),
            ServerMessage::Unknown
        ));
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"action":"sendArticle"}"#,
            "{\"action\":",
        ] {
            assert!(parse_server_message(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_leave_unset_fields_out() {
        let p = StreamParams {
            tickers: Some(vec!["AAPL".into()]),
            include_entities: Some(true),
            client_nonce: Some("n".into()),
            ..Default::default()
        };
        let s = serde_json::to_string(&p).expect("json");
        assert_eq!(
            s,
            r#"{"tickers":["AAPL"],"includeEntities":true,"clientNonce":"n"}"#
        );
        let back: StreamParams = serde_json::from_str(&s).expect("back");
        assert_eq!(back, p);
        // What the Python client sends (pydantic dumps every field, nulls included).
        let py: StreamParams = serde_json::from_str(
            r#"{"query":null,"sources":null,"language":"en","extended":false,"tickers":null,"includeUpdates":false,"clientNonce":"x"}"#,
        )
        .expect("python params");
        assert_eq!(py.language.as_deref(), Some("en"));
        assert_eq!(py.tickers, None);
    }

    #[test]
    fn article_fields_ignore_what_they_do_not_need() {
        let a = ArticleFields::parse(
            br#"{"link":"https://x","title":"T","isUpdate":true,"sentiment":"positive",
            "companies":[{"companyId":1,"name":"Apple","ticker":"AAPL",
            "primaryListing":{"ticker":"AAPL","exchangeCode":"XNAS","exchangeCountry":"US"}}]}"#,
        )
        .expect("article");
        assert_eq!(a.link.as_deref(), Some("https://x"));
        assert_eq!(a.is_update, Some(true));
        let c = &a.companies.expect("companies")[0];
        assert_eq!(
            c.primary_listing
                .as_ref()
                .and_then(|l| l.exchange_code.as_deref()),
            Some("XNAS")
        );
        assert!(ArticleFields::parse(b"[1]").is_err());
        assert_eq!(
            ArticleFields::parse(b"{}").expect("empty"),
            ArticleFields::default()
        );
    }
}
