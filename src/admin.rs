//! Admin HTTP building block served by every node: `/health`, `/ready`, `/stats`, `/metrics`.
//!
//! - `/health`: liveness, in the reference's body shape (`service`, `status`, `status_code`,
//!   `container_image`, `image_version`) so existing smoke tests and exporters keep working.
//! - `/ready`: honest readiness. Each component registers a [`ReadinessCheck`]; the route
//!   answers 503 and names every failing check. No check may claim OK without looking.
//! - `/stats`: JSON from the live registry: per-actor mailbox depth, messages in/out, errors,
//!   and every other counter of the node.
//! - `/metrics`: the same registry in Prometheus text format.
//!
//! Routes that change state (added by each node) check [`AdminState::authorize`].
//!
//! Every binary also answers `<binary> healthcheck` ([`healthcheck_command`]): it asks its
//! own `/ready` on loopback and exits 0 or 1, so a container's `HEALTHCHECK` needs no shell
//! and no HTTP tool in the image.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::metrics::Registry;

/// One readiness condition, evaluated on every `/ready` call.
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &str;
    /// `Err(reason)` when the node should not receive traffic.
    fn check(&self) -> Result<(), String>;
}

/// A readiness check from a closure.
pub struct FnCheck<F> {
    name: String,
    f: F,
}

impl<F: Fn() -> Result<(), String> + Send + Sync> FnCheck<F> {
    pub fn new(name: impl Into<String>, f: F) -> Arc<Self> {
        Arc::new(FnCheck {
            name: name.into(),
            f,
        })
    }
}

/// A check that passes while `up()` holds and otherwise fails with `reason`.
pub fn check_that(
    name: impl Into<String>,
    up: impl Fn() -> bool + Send + Sync + 'static,
    reason: &'static str,
) -> Arc<dyn ReadinessCheck> {
    FnCheck::new(name, move || if up() { Ok(()) } else { Err(reason.into()) })
}

impl<F: Fn() -> Result<(), String> + Send + Sync> ReadinessCheck for FnCheck<F> {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> Result<(), String> {
        (self.f)()
    }
}

/// Node-specific facts for `/stats` (connection state, subscriptions, ...), asked on each call.
pub type InfoFn =
    Arc<dyn Fn() -> futures_util::future::LocalBoxFuture<'static, serde_json::Value> + Send + Sync>;

/// Node-specific `/health` fields and whether the node is healthy (false answers 503 with
/// `status: "Unhealthy"`, `status_code: 0`), asked on each call.
pub type HealthFn = Arc<
    dyn Fn() -> futures_util::future::LocalBoxFuture<
            'static,
            (bool, serde_json::Map<String, serde_json::Value>),
        > + Send
        + Sync,
>;

/// What the admin routes need from their node.
pub struct AdminState {
    pub service: String,
    pub container_image: String,
    pub image_version: String,
    pub admin_token: String,
    pub registry: Arc<Registry>,
    pub checks: Vec<Arc<dyn ReadinessCheck>>,
    pub info: Option<InfoFn>,
    pub health: Option<HealthFn>,
    pub started: Instant,
    /// `/stats` and `/metrics` want the admin token: set on the nodes that face clients
    /// (WDS, control plane), whose port a browser or anyone on its network can reach.
    pub protected_stats: bool,
}

impl AdminState {
    pub fn new(service: &str, registry: Arc<Registry>) -> Self {
        AdminState {
            service: service.to_string(),
            container_image: "Unknown".into(),
            image_version: "Unknown".into(),
            admin_token: String::new(),
            registry,
            checks: Vec::new(),
            info: None,
            health: None,
            started: Instant::now(),
            protected_stats: false,
        }
    }

    /// `/stats` and `/metrics` only with the admin token (scrape with a bearer token).
    pub fn protect_stats(mut self) -> Self {
        self.protected_stats = true;
        self
    }

    pub fn with_identity(mut self, image: &str, version: &str, admin_token: &str) -> Self {
        self.container_image = image.to_string();
        self.image_version = version.to_string();
        self.admin_token = admin_token.to_string();
        self
    }

    pub fn with_health(mut self, health: HealthFn) -> Self {
        self.health = Some(health);
        self
    }

    pub fn with_info(mut self, info: InfoFn) -> Self {
        self.info = Some(info);
        self
    }

    pub fn with_check(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// `Ok` when the request carries `Authorization: Bearer <admin token>`. With no token
    /// configured, state-changing routes are refused outright rather than left open.
    pub fn authorize(&self, req: &HttpRequest) -> Result<(), AdminAuthError> {
        if self.admin_token.is_empty() {
            return Err(AdminAuthError::Disabled);
        }
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if crate::token::constant_time_eq(given.as_bytes(), self.admin_token.as_bytes()) {
            Ok(())
        } else {
            Err(AdminAuthError::BadToken)
        }
    }
}

/// Why a state-changing admin request was refused; renders as a JSON error response.
#[derive(Debug, thiserror::Error)]
pub enum AdminAuthError {
    #[error("admin routes are disabled: set ADMIN_TOKEN")]
    Disabled,
    #[error("admin token required")]
    BadToken,
}

impl ResponseError for AdminAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminAuthError::Disabled => StatusCode::FORBIDDEN,
            AdminAuthError::BadToken => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(json!({"status": "ERROR", "error": self.to_string()}))
    }
}

async fn health(state: web::Data<AdminState>) -> HttpResponse {
    let (healthy, extra) = match &state.health {
        Some(f) => f().await,
        None => (true, serde_json::Map::new()),
    };
    let mut body = json!({
        "service": state.service,
        "status": if healthy { "OK" } else { "Unhealthy" },
        // The reference left this at 1 when unhealthy; exporters read it, so it tells the truth.
        "status_code": i32::from(healthy),
        "container_image": state.container_image,
        "image_version": state.image_version,
        "uptime_seconds": state.started.elapsed().as_secs(),
    });
    if let Some(obj) = body.as_object_mut() {
        obj.extend(extra);
    }
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn ready(state: web::Data<AdminState>) -> HttpResponse {
    let mut checks = serde_json::Map::new();
    let mut ok = true;
    for c in &state.checks {
        match c.check() {
            Ok(()) => {
                checks.insert(c.name().to_string(), json!("ok"));
            }
            Err(reason) => {
                ok = false;
                checks.insert(c.name().to_string(), json!(reason));
            }
        }
    }
    let body = json!({"service": state.service, "ready": ok, "checks": checks});
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn stats(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if state.protected_stats {
        if let Err(e) = state.authorize(&req) {
            return actix_web::ResponseError::error_response(&e);
        }
    }
    let node = match &state.info {
        Some(f) => f().await,
        None => serde_json::Value::Null,
    };
    HttpResponse::Ok().json(json!({
        "service": state.service,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "node": node,
        "actors": state.registry.actors(),
        "counters": state.registry.snapshot(),
        "lost": state.registry.losses(),
    }))
}

async fn metrics(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if state.protected_stats {
        if let Err(e) = state.authorize(&req) {
            return actix_web::ResponseError::error_response(&e);
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.registry.render_prometheus())
}

/// A node's HTTP server: admin routes plus whatever the node adds, one worker, signals left
/// to the node's `run` (so a node shuts down its actors before the server).
pub struct NodeHttp {
    pub port: u16,
    handle: actix_web::dev::ServerHandle,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl NodeHttp {
    /// Serves on `http` an app set up by `configure` (app data and routes).
    pub fn serve(
        http: std::net::TcpListener,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ) -> std::io::Result<Self> {
        Self::serve_with_workers(http, 1, configure)
    }

    /// [`NodeHttp::serve`] on `workers` threads (client-facing servers).
    pub fn serve_with_workers(
        http: std::net::TcpListener,
        workers: usize,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ) -> std::io::Result<Self> {
        Self::serve_clients(http, workers, None, configure)
    }

    /// [`NodeHttp::serve_with_workers`] where every connection also gets a write deadline:
    /// data the client leaves unread (or unacknowledged) for `write_timeout` makes the kernel
    /// drop the connection (TCP_USER_TIMEOUT, which also bounds zero-window probing). That
    /// holds even when the code that would close a slow client cannot run: an actor behind a
    /// full socket is not polled.
    pub fn serve_clients(
        http: std::net::TcpListener,
        workers: usize,
        write_timeout: Option<std::time::Duration>,
        configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ) -> std::io::Result<Self> {
        let port = http.local_addr()?.port();
        let server =
            actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
                .on_connect(move |conn, _| {
                    let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
                        return;
                    };
                    // Pushed frames go out at once: without it a small frame can wait for the
                    // client's delayed ACK (Nagle), tens of milliseconds.
                    let _ = tcp.set_nodelay(true);
                    if let Some(t) = write_timeout {
                        // Best effort: a platform without the option keeps the app's limits.
                        let _ = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(t));
                    }
                })
                .workers(workers.max(1))
                // Idle client sockets are the WDS's normal state; no backlog limit of its own.
                .max_connections(1 << 20)
                .backlog(4096)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(http)?
                .run();
        let handle = server.handle();
        let join = actix_web::rt::spawn(server);
        Ok(NodeHttp { port, handle, join })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn wait(self) -> std::io::Result<()> {
        self.join.await.unwrap_or(Ok(()))
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// Stops accepting, lets open connections finish (at most the one-second shutdown
    /// timeout), then stops.
    pub async fn stop_gracefully(&self) {
        self.handle.stop(true).await;
    }
}

/// Resolves on SIGINT or SIGTERM: what every node's `run` waits for before stopping its actors.
/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what container runtimes and systemd send).
pub async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    log::info!("shutting down");
    Ok(())
}

/// A distributed node's whole `run`: binds `addr`, starts the node on it, waits for SIGINT
/// or SIGTERM, then stops the node (its actors before its HTTP server).
pub fn run_node<N, E, F>(
    addr: (std::net::IpAddr, u16),
    start: impl FnOnce(std::net::TcpListener) -> Result<N, E>,
    stop: impl FnOnce(N) -> F,
) -> Result<(), E>
where
    E: From<std::io::Error>,
    F: std::future::Future<Output = ()>,
{
    let http = std::net::TcpListener::bind(addr)?;
    actix_web::rt::System::new().block_on(async move {
        let node = start(http)?;
        shutdown_signal().await?;
        stop(node).await;
        Ok(())
    })
}

/// Mounts the four admin routes. The caller registers `web::Data<AdminState>` on the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/ready", web::get().to(ready))
        .route("/stats", web::get().to(stats))
        .route("/metrics", web::get().to(metrics));
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test, App};

    #[actix_web::test]
    async fn ready_names_failing_checks_and_stats_reads_registry() {
        let registry = Registry::new();
        registry.counter("tickwire_test_total", "t", &[]).add(7);
        let state = AdminState::new("Test", registry)
            .with_check(FnCheck::new("always", || Ok(())))
            .with_check(FnCheck::new("broker", || Err("not connected".into())));
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(state))
                .configure(configure),
        )
        .await;

        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/ready").to_request()).await;
        assert_eq!(resp.status(), 503);
        let body: serde_json::Value = test::read_body_json(resp).await;
        assert_eq!(body["checks"]["broker"], "not connected");

        let body: serde_json::Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get().uri("/stats").to_request(),
        )
        .await;
        assert_eq!(body["counters"]["tickwire_test_total"], 7);

        let body =
            test::call_and_read_body(&app, test::TestRequest::get().uri("/metrics").to_request())
                .await;
        assert!(String::from_utf8_lossy(&body).contains("tickwire_test_total 7"));

        let body: serde_json::Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get().uri("/health").to_request(),
        )
        .await;
        assert_eq!(body["status_code"], 1);
        assert_eq!(body["image_version"], "Unknown");
    }

    #[actix_web::test]
    async fn admin_token_is_required_and_empty_disables() {
        let req = test::TestRequest::default()
            .insert_header(("Authorization", "Bearer s3cret"))
            .to_http_request();
        let open = AdminState::new("T", Registry::new());
        assert!(matches!(
            open.authorize(&req),
            Err(AdminAuthError::Disabled)
        ));
        let guarded = AdminState::new("T", Registry::new()).with_identity("i", "v", "s3cret");
        assert!(guarded.authorize(&req).is_ok());
        let wrong = test::TestRequest::default()
            .insert_header(("Authorization", "Bearer nope"))
            .to_http_request();
        assert_eq!(
            guarded.authorize(&wrong).unwrap_err().status_code(),
            StatusCode::UNAUTHORIZED
        );
    }
}

/// `<binary> healthcheck`: when it is the command line, asks the node's own `/ready` on
/// 127.0.0.1 at the port in `port_env` (the port the node itself reads) or `default_port`,
/// and returns the exit code (0: ready; 1: not ready or not answering). None for any other
/// command line: the binary starts as usual.
pub fn healthcheck_command(port_env: &str, default_port: u16) -> Option<std::process::ExitCode> {
    if std::env::args().nth(1).as_deref() != Some("healthcheck") || std::env::args().count() != 2 {
        return None;
    }
    let port = std::env::var(port_env)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default_port);
    Some(match ready_on(port, std::time::Duration::from_secs(3)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("not ready: {why}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// GET `/ready` on 127.0.0.1:`port` (plain HTTP/1.0, std only: this runs before any runtime);
/// Ok on a 200 answer within `timeout`.
pub fn ready_on(port: u16, timeout: std::time::Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| e.to_string())?;
    // The status line is all we need; bounded read.
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() {
        match s.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e.to_string()),
        }
        if head[..n].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    match line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(code) => Err(format!("/ready answered {code}")),
        None => Err("no HTTP answer".into()),
    }
}

#[cfg(test)]
mod healthcheck_tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// A one-shot HTTP server answering `status`.
    fn answer_once(status: &'static str) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            if let Ok((mut c, _)) = l.accept() {
                let mut buf = [0u8; 256];
                let _ = c.read(&mut buf);
                let _ = c.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                );
            }
        });
        port
    }

    #[test]
    fn ready_only_on_a_200() {
        let t = Duration::from_secs(5);
        assert_eq!(ready_on(answer_once("200 OK"), t), Ok(()));
        assert_eq!(
            ready_on(answer_once("503 Service Unavailable"), t),
            Err("/ready answered 503".into())
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        assert!(ready_on(closed, t).is_err(), "nothing listening");
    }
}
