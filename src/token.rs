//! Access tokens: signed by the control plane, verified by the widget data service.
//!
//! A token is a compact JWT (`header.claims.signature`, HS256) so that standard tools can
//! read it, but only the one algorithm is accepted: the header is checked byte for byte
//! against the few it may be, which rules out `alg: none` and algorithm confusion. The
//! header names the key (`kid`, a digest of the secret, never the secret), so that a WDS can
//! hold the current secret and the previous one while the control plane moves to a new one
//! ([`Keys`]). The claims name the issuer (`iss`: the control plane) and the audience (`aud`:
//! the WDS), the user (`sub`), their roles, the topic patterns they may read (Redis globs
//! with `*` only) and an expiry. The signature is compared in constant time
//! (`hmac::Mac::verify_slice`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::glob_match;

/// `{"alg":"HS256","typ":"JWT"}`, base64url: the header of a token without a key id (made
/// before key ids); accepted for the current and the previous key.
const LEGACY_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Who issues tokens and who they are for.
pub const ISSUER: &str = "tickwire-scp";
pub const AUDIENCE: &str = "tickwire-wds";

/// The key id of `secret`: 16 hex digits of a digest, which names the key without telling
/// anything about it.
pub fn kid(secret: &[u8]) -> String {
    hex(&derive_key(secret, "tickwire token key id")[..8])
}

/// The base64url header of a token signed with `secret`.
fn header(secret: &[u8]) -> String {
    let h = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, kid(secret));
    URL_SAFE_NO_PAD.encode(h)
}

/// The secrets a verifier accepts: the current one, and the previous one while the control
/// plane moves to a new secret (rotation: docs/operations.md).
#[derive(Clone)]
pub struct Keys {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl Keys {
    pub fn new(current: &[u8]) -> Self {
        Keys {
            current: current.to_vec(),
            previous: None,
        }
    }

    /// Also accept tokens signed with `previous` (ignored when empty).
    pub fn with_previous(mut self, previous: &[u8]) -> Self {
        self.previous = (!previous.is_empty()).then(|| previous.to_vec());
        self
    }

    /// The secret a token with base64url header `header` was signed with, if one of ours.
    fn for_header(&self, h: &str) -> Option<&[u8]> {
        let keys = std::iter::once(&self.current).chain(self.previous.as_ref());
        let mut legacy = None;
        for k in keys {
            if h == header(k) {
                return Some(k);
            }
            if h == LEGACY_HEADER && legacy.is_none() {
                legacy = Some(k.as_slice());
            }
        }
        legacy
    }
}

/// The topics a WDS serves and the control plane grants by default: the client-facing keys of reference-system.md §4 and
/// nothing else (no control keys, no internal state, no `*`), whoever asks.
pub const DEFAULT_TOPICS: &str = "scanners:*,quote:*,daily_range:*,daily_range_hod_alert,\
daily_range_lod_alert,stocks:*,unknown,tta:*,news:*";

/// A comma list of topic patterns.
pub fn topic_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Topic patterns the holder may subscribe to and read (`*` matches anything).
    #[serde(default)]
    pub topics: Vec<String>,
    /// Issued at, epoch seconds.
    #[serde(default)]
    pub iat: i64,
    /// Issued at, epoch milliseconds (0 in a token without it): lets a revocation tell a
    /// token issued a moment after it, in the same second, from one issued before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub iat_ms: i64,
    /// Expiry, epoch seconds.
    pub exp: i64,
    /// The control-plane browser session the token was issued to (a digest of its id, see
    /// `scp::sessions::token_sid`), so that a logout can revoke exactly that session's
    /// tokens ([`crate::revocation`]). Empty for tokens made outside a browser session.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    /// Who issued the token ([`ISSUER`]).
    #[serde(default)]
    pub iss: String,
    /// Who the token is for ([`AUDIENCE`]): a token minted for anything else is refused.
    #[serde(default)]
    pub aud: String,
}

impl Claims {
    /// A token for `sub` valid for `ttl_secs` from `now`.
    pub fn new(sub: &str, roles: &[&str], topics: &[&str], now: i64, ttl_secs: i64) -> Self {
        Claims {
            sub: sub.to_string(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            iat: now,
            iat_ms: 0,
            exp: now + ttl_secs,
            sid: String::new(),
            iss: ISSUER.to_string(),
            aud: AUDIENCE.to_string(),
        }
    }

    /// The same claims issued at `ms` (epoch milliseconds); `iat` and `exp` move with it.
    pub fn issued_at_ms(mut self, ms: i64) -> Self {
        let ttl = self.exp - self.iat;
        self.iat = ms.div_euclid(1000);
        self.exp = self.iat + ttl;
        self.iat_ms = ms;
        self
    }

    /// The same claims, issued to browser session `sid`.
    pub fn for_session(mut self, sid: &str) -> Self {
        self.sid = sid.to_string();
        self
    }

    /// Whether `topic` (an exact channel, or a pattern using `*`) lies inside one of the
    /// granted patterns. A requested pattern is matched as text against each grant, so a
    /// grant's `*` may cover the request's `*` but a literal grant never covers a wildcard.
    pub fn allows(&self, topic: &str) -> bool {
        self.topics
            .iter()
            .any(|p| glob_match(p.as_bytes(), topic.as_bytes()))
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token missing")]
    Missing,
    #[error("token malformed")]
    Malformed,
    #[error("token signature invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
    /// Valid, but the control plane has revoked it (a logout, a password change).
    #[error("token revoked")]
    Revoked,
    #[error("no token secret configured")]
    NoSecret,
    /// Issued by someone else, or for someone else (`iss`, `aud`).
    #[error("token is not for this service")]
    WrongAudience,
}

fn mac(secret: &[u8]) -> Result<Hmac<Sha256>, TokenError> {
    if secret.is_empty() {
        return Err(TokenError::NoSecret);
    }
    Hmac::<Sha256>::new_from_slice(secret).map_err(|_| TokenError::NoSecret)
}

/// Signs `claims` with `secret` (its key id in the header).
pub fn sign(claims: &Claims, secret: &[u8]) -> Result<String, TokenError> {
    let body = serde_json::to_vec(claims).map_err(|_| TokenError::Malformed)?;
    let signing_input = format!("{}.{}", header(secret), URL_SAFE_NO_PAD.encode(body));
    let mut m = mac(secret)?;
    m.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    Ok(format!("{signing_input}.{sig}"))
}

/// Checks `token` against the one key `secret`: [`verify_with`].
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<Claims, TokenError> {
    verify_with(token, &Keys::new(secret), now)
}

/// Checks `token`'s header (one of the keys', byte for byte), signature, issuer, audience and
/// expiry at `now` (epoch seconds), and returns its claims.
pub fn verify_with(token: &str, keys: &Keys, now: i64) -> Result<Claims, TokenError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if keys.current.is_empty() {
        return Err(TokenError::NoSecret);
    }
    let (signing_input, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, body) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
    // Not one of our headers: an HS256 header names a key we do not hold (another secret);
    // anything else (`alg: none`, another algorithm, junk) is malformed.
    let secret = keys.for_header(header).ok_or_else(|| {
        let hs256 = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
            .is_some_and(|h| h["alg"] == "HS256");
        if hs256 {
            TokenError::BadSignature
        } else {
            TokenError::Malformed
        }
    })?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret)?;
    m.update(signing_input.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)?;
    if claims.iss != ISSUER || claims.aud != AUDIENCE {
        return Err(TokenError::WrongAudience);
    }
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// A key of its own for `purpose`, derived from a shared secret (HMAC-SHA256 of the purpose
/// under the secret): one secret can key several MACs without one MAC forging another.
pub fn derive_key(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(purpose.as_bytes());
    m.finalize().into_bytes().into()
}

/// The MAC of `parts` (each length-prefixed, so no two lists of parts collide) under `key`,
/// as hex.
pub fn seal(key: &[u8; 32], parts: &[&[u8]]) -> String {
    hex(&sealed(key, parts))
}

fn sealed(key: &[u8; 32], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// Whether `mac` (hex) is the MAC of `parts` under `key`; compared in constant time.
pub fn unseal(key: &[u8; 32], parts: &[&[u8]], mac: &str) -> bool {
    constant_time_eq(seal(key, parts).as_bytes(), mac.as_bytes())
}

/// The shortest secret accepted (token secret, admin token): an HS256 token is offline
/// crackable when its secret is short, and every user sees one.
pub const MIN_SECRET_BYTES: usize = 32;

/// A secret too short to be trusted, named by its setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting} is {len} bytes; it must be at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)")]
pub struct WeakSecret {
    pub setting: &'static str,
    pub len: usize,
}

/// Refuses a set secret shorter than [`MIN_SECRET_BYTES`]; an empty one is the caller's to
/// allow (it switches a feature off) or refuse.
pub fn check_secret(setting: &'static str, value: &str) -> Result<(), WeakSecret> {
    match value.len() {
        0 => Ok(()),
        len if len < MIN_SECRET_BYTES => Err(WeakSecret { setting, len }),
        _ => Ok(()),
    }
}

/// Equality whose time depends only on the lengths, not on where the inputs differ: for
/// secrets a client presents (admin token, CSRF token).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `N` bytes from the OS's random source: secrets, salts, session ids.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    use std::io::Read;
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

/// 32 random bytes as 64 hex characters.
pub fn random_hex() -> std::io::Result<String> {
    Ok(hex(&random_bytes::<32>()?))
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";

    #[test]
    fn round_trip_and_refusals() {
        let c = Claims::new("ann", &["viewer"], &["quote:*", "scanners:*"], 1000, 60);
        let t = sign(&c, SECRET).unwrap();
        assert_eq!(verify(&t, SECRET, 1001), Ok(c.clone()));
        assert_eq!(verify(&t, SECRET, 1060), Err(TokenError::Expired));
        assert_eq!(verify(&t, b"other", 1001), Err(TokenError::BadSignature));
        assert_eq!(verify("", SECRET, 1001), Err(TokenError::Missing));
        assert_eq!(verify("a.b", SECRET, 1001), Err(TokenError::Malformed));
        // Claims swapped under a valid signature: refused.
        let other = sign(&Claims::new("eve", &["admin"], &["*"], 1000, 60), SECRET).unwrap();
        let forged = format!(
            "{}.{}.{}",
            header(SECRET),
            other.split('.').nth(1).unwrap(),
            t.rsplit('.').next().unwrap()
        );
        assert_eq!(verify(&forged, SECRET, 1001), Err(TokenError::BadSignature));
        // alg:none and other headers are refused before the signature is looked at.
        let none = format!("eyJhbGciOiJub25lIn0.{}.", other.split('.').nth(1).unwrap());
        assert_eq!(verify(&none, SECRET, 1001), Err(TokenError::Malformed));
        assert_eq!(sign(&c, b""), Err(TokenError::NoSecret));
    }

    #[test]
    fn the_previous_key_is_accepted_while_rotating_and_the_audience_is_checked() {
        let (old, new) = (b"old-secret".as_slice(), b"new-secret".as_slice());
        let c = Claims::new("ann", &["viewer"], &["quote:*"], 1000, 60);
        let (by_old, by_new) = (sign(&c, old).unwrap(), sign(&c, new).unwrap());
        let rotating = Keys::new(new).with_previous(old);
        assert_eq!(verify_with(&by_new, &rotating, 1001), Ok(c.clone()));
        assert_eq!(verify_with(&by_old, &rotating, 1001), Ok(c.clone()));
        let done = Keys::new(new);
        assert_eq!(
            verify_with(&by_old, &done, 1001),
            Err(TokenError::BadSignature)
        );
        // The key id names the key, not the secret.
        assert_eq!(kid(new).len(), 16);
        assert_ne!(kid(new), kid(old));
        // A legacy token (no key id) still verifies with either key.
        let body = by_new.split('.').nth(1).unwrap();
        let mut m = mac(new).unwrap();
        m.update(format!("{LEGACY_HEADER}.{body}").as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        let legacy = format!("{LEGACY_HEADER}.{body}.{sig}");
        assert_eq!(verify_with(&legacy, &rotating, 1001), Ok(c.clone()));
        // Minted for another audience, or by another issuer: refused.
        let mut other = c.clone();
        other.aud = "somebody-else".into();
        let t = sign(&other, new).unwrap();
        assert_eq!(verify_with(&t, &done, 1001), Err(TokenError::WrongAudience));
        let mut other = c;
        other.iss = String::new();
        let t = sign(&other, new).unwrap();
        assert_eq!(verify_with(&t, &done, 1001), Err(TokenError::WrongAudience));
    }

    #[test]
    fn topic_grants() {
        let c = Claims::new("ann", &[], &["quote:*", "scanners:top_volume"], 0, 60);
        assert!(c.allows("quote:AAPL"));
        assert!(c.allows("quote:*"));
        assert!(c.allows("scanners:top_volume"));
        assert!(!c.allows("scanners:top_gainers"));
        assert!(!c.allows("scanners:*"));
        assert!(!c.allows("*"));
        assert!(Claims::new("root", &[], &["*"], 0, 60).allows("*"));
    }
}
