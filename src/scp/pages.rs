//! The dashboard's pages and static assets, compiled into the binary (no front-end build).
//!
//! Pages are plain HTML templates with one or two placeholders filled here; the page's
//! settings (user, CSRF token, WDS URL and a fresh WDS token) go into a `<meta>` attribute,
//! HTML-escaped, so the Content-Security-Policy can forbid inline scripts altogether. The
//! chart libraries are vendored under `assets/vendor/` with their licences: TradingView
//! Lightweight Charts 5.3.0 (Apache-2.0; the dashboard's Price Chart, its attribution logo
//! kept on the chart as the licence asks) and uPlot (MIT; the operations page).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::auth::{current, issue_token, signed_out, to_login};
use super::users::ADMIN;
use super::{ScpError, ScpState};

const LOGIN_HTML: &str = include_str!("assets/login.html");
const DASHBOARD_HTML: &str = include_str!("assets/dashboard.html");
const OPS_HTML: &str = include_str!("assets/ops.html");

/// (name, content type, body) of every static asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "tickwire.css",
        "text/css",
        include_str!("assets/tickwire.css"),
    ),
    (
        "wds-client.js",
        "text/javascript",
        include_str!("assets/wds-client.js"),
    ),
    (
        "common.js",
        "text/javascript",
        include_str!("assets/common.js"),
    ),
    (
        "dashboard.js",
        "text/javascript",
        include_str!("assets/dashboard.js"),
    ),
    ("ops.js", "text/javascript", include_str!("assets/ops.js")),
    (
        "uPlot.iife.min.js",
        "text/javascript",
        include_str!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "lightweight-charts.standalone.production.js",
        "text/javascript",
        include_str!("assets/vendor/lightweight-charts.standalone.production.js"),
    ),
    (
        "uPlot.min.css",
        "text/css",
        include_str!("assets/vendor/uPlot.min.css"),
    ),
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; \
    form-action 'self'; base-uri 'none'";

/// Escapes text for an HTML attribute or element body.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    error: Option<String>,
    next: Option<String>,
}

async fn login_page(req: HttpRequest, state: web::Data<ScpState>) -> HttpResponse {
    let q = web::Query::<LoginQuery>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or(LoginQuery {
            error: None,
            next: None,
        });
    let next = super::auth::safe_next(q.next.as_deref());
    // With the session store away, show the form: logging in will say what is wrong.
    if matches!(current(&req, &state).await, Ok(Some(_))) {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, next))
            .finish();
    }
    let error = match q.error.as_deref() {
        Some("invalid") => "Invalid username or password.",
        Some("limited") => "Too many failed attempts. Wait a few minutes and try again.",
        Some("busy") => "The server is busy checking passwords. Try again in a moment.",
        Some("expired") => "Your session has ended. Please log in again.",
        Some("revoked") => {
            "You were signed out: a logout in another tab, or your password or account was changed."
        }
        _ => "",
    };
    page(
        LOGIN_HTML
            .replace("{{error}}", &escape_html(error))
            .replace("{{next}}", &escape_html(&next)),
    )
}

/// The settings a page's script reads from `<meta name="tickwire-config">`.
fn config_json(state: &ScpState, s: &super::sessions::Session) -> Result<String, ScpError> {
    let (token, exp) = issue_token(state, s)?;
    Ok(json!({
        "user": s.username,
        "roles": s.roles,
        "csrf": s.csrf,
        "wdsUrl": state.settings.wds_url,
        "token": token,
        "tokenExpiresAt": exp,
        "version": env!("CARGO_PKG_VERSION"),
    })
    .to_string())
}

async fn dashboard(req: HttpRequest, state: web::Data<ScpState>) -> Result<HttpResponse, ScpError> {
    let Some(s) = current(&req, &state).await? else {
        let why = signed_out(&req, &state).await?.then_some("revoked");
        return Ok(to_login("/", why));
    };
    let cfg = config_json(&state, &s)?;
    Ok(page(
        DASHBOARD_HTML.replace("{{config}}", &escape_html(&cfg)),
    ))
}

async fn ops(req: HttpRequest, state: web::Data<ScpState>) -> Result<HttpResponse, ScpError> {
    let Some(s) = current(&req, &state).await? else {
        let why = signed_out(&req, &state).await?.then_some("revoked");
        return Ok(to_login("/ops", why));
    };
    if !s.has_role(ADMIN) {
        state.metrics.denied.inc();
        return Err(ScpError::Forbidden(ADMIN));
    }
    let cfg = config_json(&state, &s)?;
    Ok(page(OPS_HTML.replace("{{config}}", &escape_html(&cfg))))
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, ctype, body)) => HttpResponse::Ok()
            .content_type(format!("{ctype}; charset=utf-8"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(dashboard))
        .route("/ops", web::get().to(ops))
        .route("/login", web::get().to(login_page))
        .route("/assets/{name}", web::get().to(asset));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_for_attributes() {
        assert_eq!(
            escape_html(r#"{"a":"<b>&'"}"#),
            "{&quot;a&quot;:&quot;&lt;b&gt;&amp;&#39;&quot;}"
        );
    }
}
