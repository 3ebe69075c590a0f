//! The control plane (SCP): login, short-lived WDS tokens, the dashboard, and runtime control.
//!
//! - [`users`]: the users file (argon2id hashes, roles viewer/admin, admin bootstrap).
//! - [`sessions`]: browser sessions (cookie + CSRF token) and the login rate limiter, in
//!   memory or in Redis.
//! - [`auth`]: login, logout, the session and token routes, and the checks every route uses.
//! - [`layouts`]: dashboard layouts saved per user, with the reference's export format.
//! - [`control`]: the node registry and the control API over the nodes' admin routes.
//! - [`pages`]: the dashboard's pages and static assets, embedded in the binary.
//! - [`node`]: `tickwire-scp`'s settings and wiring.
//!
//! The same [`ScpState`] and [`configure`] serve the distributed SCP and embedded mode; only
//! the node directory differs (Redis registry vs. the one in-process node).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde_json::json;

pub mod auth;
pub mod bars;
pub mod control;
pub mod keys;
pub mod layouts;
pub mod login_guard;
pub mod node;
pub mod pages;
pub mod sessions;
pub mod users;

use crate::clients::TrustedProxies;
use crate::metrics::{Counter, Registry};
use crate::revocation::{Revocation, Revoker};
use control::Directory;
use layouts::LayoutStore;
use login_guard::{Allowance, LoginLimiter, PasswordGate, Reserved};
use sessions::Sessions;
use users::{Bootstrap, Users};

/// When the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CookieSecure {
    /// When the request came over HTTPS (directly or per `X-Forwarded-Proto`/`Forwarded`).
    Auto,
    Always,
    Never,
}

/// Where browser sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionsIn {
    /// Redis when the node registry is configured (`NODE_REGISTRY_URL`), else memory.
    Auto,
    /// This process: a restart logs everyone out; several replicas need sticky sessions.
    Memory,
    /// The node registry's Redis: sessions survive restarts and every replica sees them.
    Redis,
}

/// Control-plane settings shared by `tickwire-scp` and embedded mode.
#[derive(clap::Args, Debug, Clone)]
pub struct ScpSettings {
    /// Directory of the users file (`users.json`) and the saved layouts (`layouts/`).
    #[arg(
        long = "scp-data-dir",
        env = "SCP_DATA_DIR",
        default_value = ".tickwire"
    )]
    pub data_dir: PathBuf,

    /// Username of the admin created on a first run (no users file yet).
    #[arg(
        long = "scp-admin-user",
        env = "SCP_ADMIN_USER",
        default_value = "admin"
    )]
    pub admin_user: String,

    /// Password of that admin; empty: a random one, printed once.
    #[arg(
        long = "scp-admin-password",
        env = "SCP_ADMIN_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub admin_password: String,

    /// Session idle timeout (seconds): a session unused this long needs a new login.
    #[arg(
        long = "scp-session-idle-secs",
        env = "SCP_SESSION_IDLE_SECS",
        default_value_t = 3600
    )]
    pub session_idle_secs: u64,

    /// Session lifetime (seconds), however active.
    #[arg(
        long = "scp-session-lifetime-secs",
        env = "SCP_SESSION_LIFETIME_SECS",
        default_value_t = 43_200
    )]
    pub session_lifetime_secs: u64,

    /// Where browser sessions and the login-failure counts live: `memory`, `redis` (the node
    /// registry's Redis), or `auto` (redis when `NODE_REGISTRY_URL` is set).
    #[arg(long = "scp-sessions", env = "SCP_SESSIONS", value_enum, default_value_t = SessionsIn::Auto)]
    pub sessions: SessionsIn,

    /// When the session cookie is marked `Secure`.
    #[arg(long = "scp-cookie-secure", env = "SCP_COOKIE_SECURE", value_enum, default_value_t = CookieSecure::Auto)]
    pub cookie_secure: CookieSecure,

    /// Failed password checks allowed per client address and username within the window.
    #[arg(
        long = "scp-login-max-failures",
        env = "SCP_LOGIN_MAX_FAILURES",
        default_value_t = 5
    )]
    pub login_max_failures: usize,

    /// Failed password checks allowed per client address, whatever the username, within the
    /// window. No limit is per username alone: guesses never lock the real user out.
    #[arg(
        long = "scp-login-max-failures-per-address",
        env = "SCP_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 50
    )]
    pub login_max_failures_per_address: usize,

    /// Password checks (argon2id, 19 MiB each) running at once; more are refused at once with
    /// 503 and no hashing. 0: one per core.
    #[arg(
        long = "scp-login-concurrency",
        env = "SCP_LOGIN_CONCURRENCY",
        default_value_t = 0
    )]
    pub login_concurrency: usize,

    /// Proxies whose `X-Forwarded-For` names the client (comma list of addresses or
    /// networks, e.g. `10.0.0.0/8`); from anyone else the header is ignored.
    #[arg(
        long = "scp-trusted-proxies",
        env = "SCP_TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: TrustedProxies,

    /// Login rate-limit window (seconds).
    #[arg(
        long = "scp-login-window-secs",
        env = "SCP_LOGIN_WINDOW_SECS",
        default_value_t = 300
    )]
    pub login_window_secs: u64,

    /// Lifetime of a WDS token (seconds); the dashboard renews it before it runs out.
    #[arg(
        long = "scp-token-ttl-secs",
        env = "SCP_TOKEN_TTL_SECS",
        default_value_t = 300
    )]
    pub token_ttl_secs: u64,

    /// Topic patterns granted in WDS tokens (comma list).
    #[arg(long = "scp-token-topics", env = "SCP_TOKEN_TOPICS", default_value = crate::token::DEFAULT_TOPICS)]
    pub token_topics: String,

    /// WDS URL the browser connects to (v2, e.g. `wss://wds.example.com/ws/v2`); empty: the
    /// page's own host at `/ws/v2` (embedded mode, or WDS behind the same proxy).
    #[arg(long = "scp-wds-url", env = "SCP_WDS_URL", default_value = "")]
    pub wds_url: String,

    /// Seconds the Price Chart's intraday history (today's minute bars from Massive REST) is
    /// cached per ticker; daily bars ten times as long.
    #[arg(
        long = "scp-chart-cache-secs",
        env = "SCP_CHART_CACHE_SECS",
        default_value_t = 15
    )]
    pub chart_cache_secs: u64,

    /// Chart history requests each user may make per minute (past it: 429).
    #[arg(
        long = "scp-chart-requests-per-min",
        env = "SCP_CHART_REQUESTS_PER_MIN",
        default_value_t = 60
    )]
    pub chart_requests_per_min: u32,
}

impl ScpSettings {
    /// The users file: `users.json` in the data directory.
    pub fn users_file(&self) -> PathBuf {
        self.data_dir.join("users.json")
    }

    /// How long an unused browser session lives.
    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_secs.max(1))
    }

    /// How long a browser session lives at most.
    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_lifetime_secs.max(1))
    }

    /// Lifetime of the WDS tokens this node issues (seconds).
    pub fn token_ttl(&self) -> i64 {
        self.token_ttl_secs.max(1) as i64
    }
}

/// Why an SCP request failed; every one renders as `{"status":"ERROR","error":…}`.
#[derive(Debug, thiserror::Error)]
pub enum ScpError {
    #[error("login required")]
    Unauthenticated,
    /// The session was ended on purpose: a logout, a password change, a changed user.
    #[error(
        "signed out: the session was ended by a logout, a password change or a change to the user"
    )]
    SignedOut,
    #[error("this needs the {0} role")]
    Forbidden(&'static str),
    #[error("missing or wrong CSRF token")]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("too many failed logins; try again in {0} s")]
    RateLimited(u64),
    #[error("too many password checks at once; try again in a second")]
    Busy,
    #[error("too many requests; try again in {0} s")]
    TooManyRequests(u64),
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("no such node: {0}")]
    NoNode(String),
    #[error("{0}")]
    NotFound(String),
    #[error("node unreachable: {0}")]
    Upstream(String),
    #[error("{0}")]
    Unavailable(sessions::SessionError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ResponseError for ScpError {
    fn status_code(&self) -> StatusCode {
        match self {
            ScpError::Unauthenticated | ScpError::SignedOut => StatusCode::UNAUTHORIZED,
            ScpError::Forbidden(_) | ScpError::Csrf | ScpError::WrongPassword => {
                StatusCode::FORBIDDEN
            }
            ScpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ScpError::RateLimited(_) | ScpError::TooManyRequests(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ScpError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ScpError::NoNode(_) | ScpError::NotFound(_) => StatusCode::NOT_FOUND,
            ScpError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ScpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ScpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        if let ScpError::RateLimited(secs) | ScpError::TooManyRequests(secs) = self {
            r.insert_header(("retry-after", secs.to_string()));
        }
        if let ScpError::Busy = self {
            r.insert_header(("retry-after", "1"));
        }
        if let ScpError::SignedOut = self {
            // The dashboard's login page says why (`/login?error=revoked`).
            return r
                .json(json!({"status": "ERROR", "error": self.to_string(), "reason": "revoked"}));
        }
        r.json(json!({"status": "ERROR", "error": self.to_string()}))
    }
}

impl From<layouts::LayoutError> for ScpError {
    fn from(e: layouts::LayoutError) -> Self {
        match e {
            layouts::LayoutError::Invalid(m) => ScpError::BadRequest(m),
            layouts::LayoutError::Io(e) => ScpError::Internal(e.to_string()),
        }
    }
}

/// Counters of the control plane.
/// What a guarded password check found.
pub enum PasswordCheck<T> {
    Right(T),
    Wrong,
    /// The address (or the address and username) used up its allowance: seconds to wait.
    Limited(u64),
    /// Every hashing slot is taken: try again in a second.
    Busy,
}

pub struct ScpMetrics {
    pub logins: Counter,
    pub login_failures: Counter,
    pub login_limited: Counter,
    pub login_busy: Counter,
    pub password_checks: Counter,
    pub logouts: Counter,
    pub tokens: Counter,
    pub denied: Counter,
    pub control_calls: Counter,
    pub control_errors: Counter,
    pub users_reloaded: Counter,
    pub users_reload_errors: Counter,
    pub session_store_errors: Counter,
    pub password_changes: Counter,
    pub revocations: Counter,
    pub revocation_errors: Counter,
    pub key_calls: Counter,
    pub relay_key_errors: Counter,
}

impl ScpMetrics {
    fn new(r: &Registry) -> Self {
        ScpMetrics {
            logins: r.counter("tickwire_scp_logins_total", "Successful logins", &[]),
            login_failures: r.counter(
                "tickwire_scp_login_failures_total",
                "Logins refused: unknown user or wrong password",
                &[],
            ),
            login_limited: r.counter(
                "tickwire_scp_login_rate_limited_total",
                "Logins refused by the rate limit",
                &[],
            ),
            login_busy: r.counter(
                "tickwire_scp_login_busy_total",
                "Password checks refused at once because every hashing slot was taken",
                &[],
            ),
            password_checks: r.counter(
                "tickwire_scp_password_checks_total",
                "Password hashes checked (logins and password changes)",
                &[],
            ),
            logouts: r.counter("tickwire_scp_logouts_total", "Logouts", &[]),
            users_reloaded: r.counter(
                "tickwire_scp_users_reloaded_total",
                "Times the users file was read again after it changed",
                &[],
            ),
            users_reload_errors: r.counter(
                "tickwire_scp_users_reload_errors_total",
                "Changed users files that could not be read (the last good users stay)",
                &[],
            ),
            password_changes: r.counter(
                "tickwire_scp_password_changes_total",
                "Users who changed their own password",
                &[],
            ),
            revocations: r.counter(
                "tickwire_scp_revocations_total",
                "WDS token revocations recorded (logouts, password changes, changed users)",
                &[],
            ),
            revocation_errors: r.counter(
                "tickwire_scp_revocation_errors_total",
                "Revocations that could not be recorded (their tokens run until they expire)",
                &[],
            ),
            relay_key_errors: r.counter(
                "tickwire_scp_relay_key_errors_total",
                "Failed writes of the relay keys to the node registry (retried)",
                &[],
            ),
            key_calls: r.counter(
                "tickwire_scp_api_key_calls_total",
                "API calls made with an API key (Authorization: Bearer) and allowed",
                &[],
            ),
            session_store_errors: r.counter(
                "tickwire_scp_session_store_errors_total",
                "Requests answered 503 because the session store (Redis) failed",
                &[],
            ),
            tokens: r.counter("tickwire_scp_tokens_issued_total", "WDS tokens issued", &[]),
            denied: r.counter(
                "tickwire_scp_denied_total",
                "Requests refused: no session, missing role or bad CSRF token",
                &[],
            ),
            control_calls: r.counter(
                "tickwire_scp_control_calls_total",
                "Calls to node admin routes",
                &[],
            ),
            control_errors: r.counter(
                "tickwire_scp_control_errors_total",
                "Node admin calls that failed (unreachable or timed out)",
                &[],
            ),
        }
    }
}

/// Everything the SCP routes share.
pub struct ScpState {
    pub settings: ScpSettings,
    /// Read again when the file changes (see [`ScpState::user_now`]).
    users: RwLock<Users>,
    /// Shared with the tasks a users file reload starts.
    pub sessions: Arc<Sessions>,
    pub limiter: LoginLimiter,
    /// Bounds the password checks hashing at once.
    pub gate: PasswordGate,
    pub layouts: LayoutStore,
    /// Signs WDS tokens; the WDS verifies with the same secret.
    pub token_secret: Vec<u8>,
    pub directory: Directory,
    /// Bearer token for the nodes' admin routes.
    pub admin_token: String,
    pub metrics: ScpMetrics,
    /// Where WDS token revocations go: the registry's Redis, or (embedded) the WDS's own
    /// list; none with neither.
    pub revoker: Option<Arc<Revoker>>,
    /// Chart history (`/api/bars`); its REST source is set by the node's wiring.
    pub bars: bars::Bars,
    /// The users' API and relay keys.
    pub keys: keys::KeyStore,
}

impl ScpState {
    /// Opens the users file (bootstrapping the admin on a first run) and sets up the rest.
    pub fn new(
        settings: ScpSettings,
        token_secret: &str,
        directory: Directory,
        admin_token: &str,
        registry: &Registry,
    ) -> Result<(ScpState, Bootstrap), users::UsersError> {
        let (users, boot) = Users::open(
            &settings.users_file(),
            &settings.admin_user,
            &settings.admin_password,
        )?;
        let (idle, lifetime) = (settings.session_idle(), settings.session_lifetime());
        let window = Duration::from_secs(settings.login_window_secs.max(1));
        let (sessions, limiter) = match (&directory, settings.sessions) {
            (Directory::Redis { pool, prefix, .. }, SessionsIn::Auto | SessionsIn::Redis) => (
                Sessions::in_redis(
                    pool.clone(),
                    sessions::redis_prefix(prefix),
                    idle,
                    lifetime,
                    sessions::redis_key(token_secret.as_bytes()),
                    registry.counter(
                        "tickwire_scp_sessions_rejected_total",
                        "Session entries in Redis refused: unreadable or not signed with this cluster's key",
                        &[],
                    ),
                ),
                LoginLimiter::in_redis(pool.clone(), login_guard::redis_prefix(prefix), window),
            ),
            // `redis` without a registry is refused before this (node::start, embedded).
            _ => (
                Sessions::in_memory(idle, lifetime),
                LoginLimiter::in_memory(window),
            ),
        };
        let revoker = match &directory {
            Directory::Redis { pool, prefix, .. } => Some(Arc::new(Revoker::Redis {
                pool: pool.clone(),
                key: crate::revocation::redis_key(prefix),
            })),
            Directory::Static(_) => None,
        };
        let state = ScpState {
            revoker,
            sessions: Arc::new(sessions),
            limiter,
            gate: PasswordGate::new(settings.login_concurrency),
            layouts: LayoutStore::new(settings.data_dir.join("layouts")),
            users: RwLock::new(users),
            token_secret: token_secret.as_bytes().to_vec(),
            directory,
            admin_token: admin_token.to_string(),
            metrics: ScpMetrics::new(registry),
            keys: keys::KeyStore::open(settings.data_dir.join("relay-keys.json"))
                .map_err(|e| users::UsersError::Keys(e.to_string()))?,
            bars: bars::Bars::new(
                None,
                Duration::from_secs(settings.chart_cache_secs.max(1)),
                settings.chart_requests_per_min,
                registry,
            ),
            settings,
        };
        Ok((state, boot))
    }

    // Users are replaced whole by a reload; a panic elsewhere cannot leave them half made.
    fn read_users(&self) -> RwLockReadGuard<'_, Users> {
        self.users.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_users(&self) -> RwLockWriteGuard<'_, Users> {
        self.users.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the users file again if it changed on disk since it was last read: one `stat`
    /// per call. So `add-user`, a removed user or a changed role applies at that user's
    /// next login or request, with no restart.
    fn refresh_users(&self) {
        if !self.read_users().changed_on_disk() {
            return;
        }
        let mut users = self.write_users();
        if !users.changed_on_disk() {
            return; // another request just read it
        }
        let before = users_by_name(&users);
        match users.reload() {
            Ok(()) => {
                self.metrics.users_reloaded.inc();
                log::info!("users file changed: {} users now", users.len());
                let after = users_by_name(&users);
                drop(users);
                self.users_changed(before, after);
            }
            Err(e) => {
                self.metrics.users_reload_errors.inc();
                log::warn!(
                    "users file changed but cannot be read, keeping the last good users: {e}"
                );
            }
        }
    }

    /// The user's roles and password fingerprint as the users file has them now; `None` for
    /// no such user.
    pub fn user_now(&self, username: &str) -> Option<(Vec<String>, String)> {
        self.refresh_users();
        let users = self.read_users();
        let u = users.get(username)?;
        Some((u.roles.clone(), users::fingerprint(&u.password_hash)))
    }

    /// The user when `password` is theirs (argon2: call it off the async workers). The hash
    /// check runs after the lock is released, so a reload never waits on a login.
    pub fn verify_user(&self, username: &str, password: &str) -> Option<users::User> {
        self.refresh_users();
        let check = self.read_users().login_check(username);
        check.verify(password)
    }

    /// Sets `username`'s password hash (computed beforehand, off the async workers).
    pub fn set_password_hash(&self, username: &str, hash: String) -> Result<(), ScpError> {
        self.refresh_users();
        let mut users = self.write_users();
        users
            .set_password_hash(username, hash)
            .map_err(|e| ScpError::Internal(e.to_string()))
    }

    /// The allowances a password check for `username` from `client` draws on: the pair's and
    /// the address's (login_guard explains why none is per username).
    fn allowances(&self, client: IpAddr, username: &str) -> Vec<Allowance> {
        vec![
            (
                format!("pair:{client}|{username}"),
                self.settings.login_max_failures,
            ),
            (
                format!("ip:{client}"),
                self.settings.login_max_failures_per_address,
            ),
        ]
    }

    /// Runs `check` (argon2: off the async workers) for `username` from `client` behind the
    /// login guard: a free hashing slot (else [`PasswordCheck::Busy`], no hashing) and an
    /// allowance reserved atomically before the hash (else [`PasswordCheck::Limited`]).
    /// `check` answers `Some` for the right password, which takes its attempt back.
    pub async fn guarded_check<T: Send + 'static>(
        &self,
        client: IpAddr,
        username: &str,
        check: impl FnOnce() -> Option<T> + Send + 'static,
    ) -> Result<PasswordCheck<T>, ScpError> {
        let Some(permit) = self.gate.try_enter() else {
            self.metrics.login_busy.inc();
            return Ok(PasswordCheck::Busy);
        };
        let allowances = self.allowances(client, username);
        let reserved = self.limiter.reserve(&allowances).await;
        let id = match reserved.map_err(|e| self.store_failed(e))? {
            Reserved::Limited(wait) => {
                self.metrics.login_limited.inc();
                return Ok(PasswordCheck::Limited(wait));
            }
            Reserved::Yes(id) => id,
        };
        self.metrics.password_checks.inc();
        let checked = actix_web::web::block(move || {
            let _slot = permit;
            check()
        })
        .await
        .map_err(|e| ScpError::Internal(e.to_string()))?;
        let Some(v) = checked else {
            self.metrics.login_failures.inc();
            return Ok(PasswordCheck::Wrong);
        };
        let keys: Vec<&str> = allowances.iter().map(|(k, _)| k.as_str()).collect();
        let released = self.limiter.release(&id, &keys, keys[0]).await;
        released.map_err(|e| self.store_failed(e))?;
        Ok(PasswordCheck::Right(v))
    }

    /// What a reloaded users file means for the users it changed:
    /// - another password (`tickwire-scp add-user`, `POST /api/password` on a replica, or an
    ///   edit by hand): every session opened with the old one ends, with its WDS tokens. The
    ///   session that changed it through the API was moved to the new one first, and stays.
    /// - removed or given other roles: no WDS token issued before counts (their sockets end,
    ///   and their next token says what is true now).
    fn users_changed(&self, before: HashMap<String, UserFacts>, after: HashMap<String, UserFacts>) {
        for (name, was) in before {
            let is = after.get(&name);
            if let Some(is) = is.filter(|is| is.password_hash != was.password_hash) {
                self.end_outdated_later(&name, users::fingerprint(&is.password_hash));
            }
            if is.is_none_or(|is| is.roles != was.roles) {
                let ttl = self.settings.token_ttl();
                self.revoke_later(Revocation::user_now(&name, None, ttl));
            }
            if is.is_none() {
                // A removed user's programs are out too.
                match self.keys.delete_user(&name) {
                    Ok(0) => {}
                    Ok(n) => log::info!("{name} removed: their {n} API keys deleted"),
                    Err(e) => log::warn!("{name} removed, but their API keys stay on disk: {e}"),
                }
            }
        }
    }

    /// Records `r` for every WDS. A failure is logged and counted but fails nothing: the
    /// logout or password change still happens, and the tokens end when they expire.
    pub async fn revoke(&self, r: Revocation) {
        if let Some(revoker) = &self.revoker {
            let m = &self.metrics;
            record_revocation(revoker, r, &m.revocations, &m.revocation_errors).await;
        }
    }

    /// [`ScpState::revoke`] from code that cannot wait (the users file reload runs in sync
    /// code, on a worker or off it): spawned on the current runtime.
    fn revoke_later(&self, r: Revocation) {
        let Some(revoker) = self.revoker.clone() else {
            return;
        };
        let (ok, errors) = (
            self.metrics.revocations.clone(),
            self.metrics.revocation_errors.clone(),
        );
        let sub = r.sub.clone();
        if !spawn(async move { record_revocation(&revoker, r, &ok, &errors).await }) {
            self.metrics.revocation_errors.inc();
            log::warn!("could not revoke {sub}'s WDS tokens: no runtime");
        }
    }

    /// `name` has the password of fingerprint `pw` now: their sessions opened with another
    /// one end (in Redis, on every replica), and so do those sessions' WDS tokens. Spawned,
    /// like [`ScpState::revoke_later`]; a request that comes first is stopped by
    /// [`auth::current`], which compares the fingerprints itself.
    fn end_outdated_later(&self, name: &str, pw: String) {
        let (sessions, revoker) = (self.sessions.clone(), self.revoker.clone());
        let m = &self.metrics;
        let (ok, errors, store_errors) = (
            m.revocations.clone(),
            m.revocation_errors.clone(),
            m.session_store_errors.clone(),
        );
        let (name, ttl) = (name.to_string(), self.settings.token_ttl());
        let task = async move {
            let out = match sessions.end_outdated(&name, &pw).await {
                Ok(out) => out,
                Err(e) => {
                    store_errors.inc();
                    log::warn!("{name} has another password, but their sessions stay: {e}");
                    return;
                }
            };
            if out.ended.is_empty() {
                return; // none, or another replica ended them
            }
            log::info!(
                "{name} has another password: {} sessions ended",
                out.ended.len()
            );
            let Some(revoker) = revoker else {
                return;
            };
            // One entry where it can say it all; one per ended session otherwise.
            let entries = match out.kept.as_slice() {
                [] => vec![Revocation::user_now(&name, None, ttl)],
                [keep] => vec![Revocation::user_now(&name, Some(keep), ttl)],
                _ => out
                    .ended
                    .iter()
                    .filter(|sid| !sid.is_empty()) // stored before sids were
                    .map(|sid| Revocation::session_now(&name, sid, ttl))
                    .collect(),
            };
            for r in entries {
                record_revocation(&revoker, r, &ok, &errors).await;
            }
        };
        if !spawn(task) {
            self.metrics.session_store_errors.inc();
            log::warn!("could not end the outdated sessions: no runtime");
        }
    }

    /// A session store failure as the request's answer (503), logged and counted.
    pub fn store_failed(&self, e: sessions::SessionError) -> ScpError {
        self.metrics.session_store_errors.inc();
        log::warn!("{e}");
        ScpError::Unavailable(e)
    }

    pub fn user_count(&self) -> usize {
        self.read_users().len()
    }
}

/// What a reload compares of each user.
struct UserFacts {
    password_hash: String,
    roles: Vec<String>,
}

fn users_by_name(users: &Users) -> HashMap<String, UserFacts> {
    users
        .list()
        .map(|u| {
            let facts = UserFacts {
                password_hash: u.password_hash.clone(),
                roles: u.roles.clone(),
            };
            (u.username.clone(), facts)
        })
        .collect()
}

/// Spawns `task` on the current runtime; false when there is none.
fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(task);
            true
        }
        Err(_) => false,
    }
}

async fn record_revocation(revoker: &Revoker, r: Revocation, ok: &Counter, errors: &Counter) {
    let sub = r.sub.clone();
    match revoker.revoke(r).await {
        Ok(()) => ok.inc(),
        Err(e) => {
            errors.inc();
            log::warn!("could not revoke {sub}'s WDS tokens (they run until they expire): {e}");
        }
    }
}

/// Logs what a first run did about the admin: the generated password is shown this once.
pub fn log_bootstrap(boot: &Bootstrap, settings: &ScpSettings) {
    let file = settings.users_file();
    match boot {
        Bootstrap::Existing => {}
        Bootstrap::FromEnv(user) => log::info!(
            "created admin user `{user}` with the password from SCP_ADMIN_PASSWORD ({})",
            file.display()
        ),
        Bootstrap::Generated { username, password } => log::warn!(
            "first run: created admin user `{username}` with password `{password}`. It is shown \
             only this once; only its hash is kept in {}",
            file.display()
        ),
    }
}

/// Mounts every SCP route; the app holds `web::Data<ScpState>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(layouts::MAX_BYTES + 1024))
        .configure(pages::configure)
        .configure(auth::configure)
        .configure(bars::configure)
        .configure(keys::configure)
        .configure(control::configure);
}
