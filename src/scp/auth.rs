//! Login, logout, sessions, WDS tokens and layouts: the routes of a logged-in user.
//!
//! Every other route goes through [`require`]: a live session (401 otherwise), the role it
//! needs (403), and for state-changing requests the session's CSRF token in `X-CSRF-Token`
//! plus a same-origin `Origin` when the browser sends one (403). The cookie is HttpOnly and
//! SameSite=Strict, and `Secure` per `SCP_COOKIE_SECURE`.
//!
//! Login takes an HTML form (redirects back to the login page with a generic error) or JSON
//! (answers JSON): wrong user and wrong password get the same answer, and failures are rate
//! limited per client address and per username.

use std::net::IpAddr;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::layouts::Layouts;
use super::sessions::Session;
use super::users::ADMIN;
use super::{CookieSecure, PasswordCheck, ScpError, ScpState};
use crate::revocation::Revocation;
use crate::token::{self, constant_time_eq, Claims};

pub const SESSION_COOKIE: &str = "tw_session";
const GENERIC_LOGIN_ERROR: &str = "invalid username or password";

/// What a route needs from the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any logged-in user, read only.
    Viewer,
    /// Any logged-in user, changing something: CSRF checked.
    ViewerWrite,
    /// The admin role (control routes), CSRF checked on writes.
    Admin,
    AdminWrite,
}

/// Whether an `Origin` header, when present, names this very host: a cross-site form or
/// script is refused even before the CSRF token is looked at.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = req.connection_info().host().to_string();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

/// The caller's live session, if any; an error when the session store cannot be read.
pub async fn current(req: &HttpRequest, state: &ScpState) -> Result<Option<Session>, ScpError> {
    let Some(id) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    let touched = state.sessions.touch(&id).await;
    let Some(mut s) = touched.map_err(|e| state.store_failed(e))? else {
        return Ok(None);
    };
    // From the id itself: a session stored before `sid` was has none.
    s.sid = super::sessions::token_sid(&id);
    // The users file has the last word: a user removed from it is logged out, a session
    // opened with a password the user no longer has ends (with its WDS tokens), and a
    // changed role applies from this request on.
    let (why, revoke) = match state.user_now(&s.username) {
        // The reload revokes a removed user's tokens.
        None => ("is no longer a user", false),
        Some((_, pw)) if !s.pw.is_empty() && s.pw != pw => ("has another password", true),
        Some((roles, _)) => {
            s.roles = roles;
            return Ok(Some(s));
        }
    };
    let removed = state.sessions.end(&id, &s.username).await;
    removed.map_err(|e| state.store_failed(e))?;
    log::info!("{} {why}: session ended", s.username);
    if revoke {
        let ttl = state.settings.token_ttl();
        let r = Revocation::session_now(&s.username, &s.sid, ttl);
        state.revoke(r).await;
    }
    Ok(None)
}

/// Whether the caller's cookie names a session that was ended on purpose (a logout, a
/// password change, a changed user), not one that expired or never was: the 401 then says
/// so, whichever reaches the dashboard first, this or the WDS's `token_revoked`.
pub async fn signed_out(req: &HttpRequest, state: &ScpState) -> Result<bool, ScpError> {
    let Some(id) = req.cookie(SESSION_COOKIE) else {
        return Ok(false);
    };
    let ended = state.sessions.was_ended(id.value()).await;
    ended.map_err(|e| state.store_failed(e))
}

/// The caller's session when it may do what `need` says; counts every refusal.
pub async fn require(req: &HttpRequest, state: &ScpState, need: Need) -> Result<Session, ScpError> {
    let s = current(req, state).await?;
    let gone = if s.is_none() {
        signed_out(req, state).await?
    } else {
        false
    };
    let result = (|| {
        let s = s.ok_or(if gone {
            ScpError::SignedOut
        } else {
            ScpError::Unauthenticated
        })?;
        if matches!(need, Need::Admin | Need::AdminWrite) && !s.has_role(ADMIN) {
            return Err(ScpError::Forbidden(ADMIN));
        }
        if matches!(need, Need::ViewerWrite | Need::AdminWrite) {
            let given = req
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same_origin(req) || !constant_time_eq(given.as_bytes(), s.csrf.as_bytes()) {
                return Err(ScpError::Csrf);
            }
        }
        Ok(s)
    })();
    if result.is_err() {
        state.metrics.denied.inc();
    }
    result
}

/// The caller of a route programs may call too (`/api/control/*`, `/api/token`): an API key
/// (`Authorization: Bearer twk_…`) with the scope it needs (`write`: a change), acting as its
/// owner as the users file has them now, with no CSRF token (no cookie rides along); else a
/// browser session as [`require`] checks it. A bearer call's session id is the key's, so the
/// WDS tokens it gets end when the key is deleted.
pub async fn require_api(
    req: &HttpRequest,
    state: &ScpState,
    need: Need,
    write: bool,
) -> Result<Session, ScpError> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(key) = bearer else {
        return require(req, state, need).await;
    };
    let result = (|| {
        let k = state
            .keys
            .find(key.trim())
            .ok_or(ScpError::Unauthenticated)?;
        let (roles, _) = state.user_now(&k.user).ok_or(ScpError::Unauthenticated)?;
        if !k.allows_api(write) {
            return Err(ScpError::Forbidden(if write {
                "api:write"
            } else {
                "api:read"
            }));
        }
        let s = Session {
            username: k.user.clone(),
            roles,
            csrf: String::new(),
            pw: String::new(),
            sid: format!("key-{}", k.id),
        };
        if matches!(need, Need::Admin | Need::AdminWrite) && !s.has_role(ADMIN) {
            return Err(ScpError::Forbidden(ADMIN));
        }
        Ok(s)
    })();
    match &result {
        Ok(_) => state.metrics.key_calls.inc(),
        Err(_) => state.metrics.denied.inc(),
    }
    result
}

fn secure(req: &HttpRequest, state: &ScpState) -> bool {
    match state.settings.cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => req.connection_info().scheme() == "https",
    }
}

fn session_cookie<'a>(req: &HttpRequest, state: &ScpState, id: String) -> Cookie<'a> {
    Cookie::build(SESSION_COOKIE, id)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(req, state))
        .max_age(actix_web::cookie::time::Duration::seconds(
            state.settings.session_lifetime_secs as i64,
        ))
        .finish()
}

/// A local path to return to after login; anything else (other hosts, `//host`) is `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

/// The client's address: the peer's, or what a trusted proxy says it is.
fn client_address(req: &HttpRequest, state: &ScpState) -> IpAddr {
    crate::clients::client_of(req, &state.settings.trusted_proxies)
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    req: HttpRequest,
    state: web::Data<ScpState>,
    body: web::Bytes,
) -> Result<HttpResponse, ScpError> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed: Result<LoginBody, String> = if json {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())
    };
    let b = parsed
        .map_err(|e| ScpError::BadRequest(format!("expected username and password fields: {e}")))?;
    if !same_origin(&req) {
        state.metrics.denied.inc();
        return Err(ScpError::Csrf);
    }
    let next = safe_next(b.next.as_deref());
    let ip = client_address(&req, &state);
    let login_page = |error: &str| to_login(&next, Some(error));
    let st = state.clone();
    let (name, pass) = (b.username.clone(), b.password);
    let checked = state
        .guarded_check(ip, &b.username, move || st.verify_user(&name, &pass))
        .await?;
    let user = match checked {
        PasswordCheck::Right(user) => user,
        PasswordCheck::Wrong => {
            log::info!("failed login for {:?} from {ip}", b.username);
            return if json {
                Ok(HttpResponse::Unauthorized()
                    .json(json!({"status": "ERROR", "error": GENERIC_LOGIN_ERROR})))
            } else {
                Ok(login_page("invalid"))
            };
        }
        PasswordCheck::Limited(wait) => {
            log::warn!("login rate limit hit for {:?} from {ip}", b.username);
            return if json {
                Err(ScpError::RateLimited(wait))
            } else {
                Ok(login_page("limited"))
            };
        }
        PasswordCheck::Busy => {
            return if json {
                Err(ScpError::Busy)
            } else {
                Ok(login_page("busy"))
            };
        }
    };
    let pw = super::users::fingerprint(&user.password_hash);
    let created = state
        .sessions
        .create(&user.username, &user.roles, &pw)
        .await;
    let (id, csrf) = created.map_err(|e| state.store_failed(e))?;
    state.metrics.logins.inc();
    log::info!("{} logged in from {ip}", user.username);
    let cookie = session_cookie(&req, &state, id);
    Ok(if json {
        HttpResponse::Ok().cookie(cookie).json(json!({
            "status": "OK", "user": user.username, "roles": user.roles, "csrf": csrf,
        }))
    } else {
        HttpResponse::SeeOther()
            .cookie(cookie)
            .insert_header((header::LOCATION, next))
            .finish()
    })
}

async fn logout(req: HttpRequest, state: web::Data<ScpState>) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::ViewerWrite).await?;
    if let Some(id) = req.cookie(SESSION_COOKIE) {
        // Ended on purpose: the session's other tabs are told they were signed out.
        let removed = state.sessions.end(id.value(), &s.username).await;
        removed.map_err(|e| state.store_failed(e))?;
    }
    state.metrics.logouts.inc();
    log::info!("{} logged out", s.username);
    // The session's WDS sockets end too, not when their token expires.
    let ttl = state.settings.token_ttl();
    state
        .revoke(Revocation::session_now(&s.username, &s.sid, ttl))
        .await;
    let mut gone = session_cookie(&req, &state, String::new());
    gone.make_removal();
    Ok(HttpResponse::Ok()
        .cookie(gone)
        .json(json!({"status": "OK"})))
}

#[derive(Deserialize)]
struct PasswordBody {
    current: String,
    new: String,
}

/// The caller changes their own password. The current one is checked, off the async workers
/// and counted against the same allowance as logins, so this is no side door for guessing.
/// The user's other sessions end: whoever else knew the old password is logged out.
async fn change_password(
    req: HttpRequest,
    state: web::Data<ScpState>,
    body: web::Bytes,
) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::ViewerWrite).await?;
    let b: PasswordBody = serde_json::from_slice(&body)
        .map_err(|e| ScpError::BadRequest(format!("expected current and new fields: {e}")))?;
    super::users::check_password(&b.new).map_err(|e| ScpError::BadRequest(e.to_string()))?;
    let ip = client_address(&req, &state);
    let (st, user) = (state.clone(), s.username.clone());
    let checked = state
        .guarded_check(ip, &s.username, move || {
            st.verify_user(&user, &b.current)
                .map(|_| super::users::hash_password(&b.new))
        })
        .await?;
    let hash = match checked {
        PasswordCheck::Right(hash) => hash,
        PasswordCheck::Wrong => {
            log::info!("{} gave a wrong current password from {ip}", s.username);
            return Err(ScpError::WrongPassword);
        }
        PasswordCheck::Limited(wait) => return Err(ScpError::RateLimited(wait)),
        PasswordCheck::Busy => return Err(ScpError::Busy),
    };
    let hash = hash.map_err(|e| ScpError::Internal(e.to_string()))?;
    // This session moves to the new password before the file has it, so that no replica
    // reading the new file ends it ([`super::sessions`]); back again if the file says no.
    let id = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let id = id.unwrap_or_default();
    let moved = state
        .sessions
        .rebind(&id, &super::users::fingerprint(&hash))
        .await;
    moved.map_err(|e| state.store_failed(e))?;
    if let Err(e) = state.set_password_hash(&s.username, hash) {
        let _ = state.sessions.rebind(&id, &s.pw).await;
        return Err(e);
    }
    let ended = state.sessions.end_others(&s.username, &id).await;
    let ended = ended.map_err(|e| state.store_failed(e))?;
    let ttl = state.settings.token_ttl();
    let others = Revocation::user_now(&s.username, Some(&s.sid), ttl);
    state.revoke(others).await;
    state.metrics.password_changes.inc();
    log::info!(
        "{} changed their password; {ended} other sessions ended",
        s.username
    );
    Ok(HttpResponse::Ok().json(json!({"status": "OK"})))
}

/// A WDS token for the session's user: their roles, the configured topics, the short TTL.
pub fn issue_token(state: &ScpState, s: &Session) -> Result<(String, i64), ScpError> {
    let topics = crate::token::topic_list(&state.settings.token_topics);
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let roles: Vec<&str> = s.roles.iter().map(String::as_str).collect();
    let ttl = state.settings.token_ttl();
    // In milliseconds too, so that a revocation a moment before, in the same second, does
    // not cover it.
    let claims = Claims::new(&s.username, &roles, &topics, 0, ttl)
        .issued_at_ms(token::now_ms())
        .for_session(&s.sid);
    let t =
        token::sign(&claims, &state.token_secret).map_err(|e| ScpError::Internal(e.to_string()))?;
    state.metrics.tokens.inc();
    Ok((t, claims.exp))
}

async fn session(req: HttpRequest, state: web::Data<ScpState>) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::Viewer).await?;
    Ok(HttpResponse::Ok().json(json!({"user": s.username, "roles": s.roles, "csrf": s.csrf})))
}

async fn new_token(req: HttpRequest, state: web::Data<ScpState>) -> Result<HttpResponse, ScpError> {
    // A program with an API key may ask too: a token is a read.
    let s = require_api(&req, &state, Need::ViewerWrite, false).await?;
    let (t, exp) = issue_token(&state, &s)?;
    Ok(HttpResponse::Ok().json(json!({"token": t, "expires_at": exp})))
}

async fn get_layouts(
    req: HttpRequest,
    state: web::Data<ScpState>,
) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::Viewer).await?;
    Ok(HttpResponse::Ok().json(state.layouts.load(&s.username)?))
}

async fn put_layouts(
    req: HttpRequest,
    state: web::Data<ScpState>,
    body: web::Bytes,
) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::ViewerWrite).await?;
    let layouts = Layouts::parse(&body)?;
    state.layouts.save(&s.username, &layouts)?;
    Ok(HttpResponse::Ok().json(layouts))
}

async fn export_layouts(
    req: HttpRequest,
    state: web::Data<ScpState>,
) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::Viewer).await?;
    let doc = state
        .layouts
        .load(&s.username)?
        .export(chrono::Utc::now().timestamp_millis());
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"tickwire-layouts.json\"",
        ))
        .json(doc))
}

async fn import_layouts(
    req: HttpRequest,
    state: web::Data<ScpState>,
    body: web::Bytes,
) -> Result<HttpResponse, ScpError> {
    let s = require(&req, &state, Need::ViewerWrite).await?;
    let mut layouts = state.layouts.load(&s.username)?;
    let n = layouts.import(&body)?;
    state.layouts.save(&s.username, &layouts)?;
    log::info!("{} imported {n} layouts", s.username);
    Ok(HttpResponse::Ok().json(layouts))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/api/session", web::get().to(session))
        .route("/api/token", web::post().to(new_token))
        .route("/api/password", web::post().to(change_password))
        .route("/api/layouts", web::get().to(get_layouts))
        .route("/api/layouts", web::put().to(put_layouts))
        .route("/api/layouts/export", web::get().to(export_layouts))
        .route("/api/layouts/import", web::post().to(import_layouts));
}

/// A redirect to the login page, back to `next` afterwards, with an error to show.
pub(super) fn to_login(next: &str, error: Option<&str>) -> HttpResponse {
    let mut q = vec![("next", next)];
    if let Some(e) = error {
        q.push(("error", e));
    }
    let q = serde_urlencoded::to_string(q).unwrap_or_default();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/login?{q}")))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/ops")), "/ops");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
