//! Massive REST, the one way every node asks it a JSON question: the key in an
//! `Authorization: Bearer` header (never in a URL, so never in a log), a failing status an
//! error that names it. Used by the listener (market status), the processors (market status)
//! and the control plane (chart history); the enricher adds retries and `Retry-After` on top
//! of its own calls.

/// GET `url` with `key`; the JSON answer, at most `limit` bytes.
pub async fn get_json(
    client: awc::Client,
    url: String,
    key: String,
    limit: usize,
) -> Result<serde_json::Value, String> {
    let mut resp = client
        .get(url)
        .insert_header(("Authorization", format!("Bearer {key}")))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    resp.json().limit(limit).await.map_err(|e| e.to_string())
}

/// awc's default JSON limit, for answers that are not long lists.
pub const SMALL: usize = 2 * 1024 * 1024;
