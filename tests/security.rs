//! Trust boundaries, tried from outside as an attacker would (issue 19): each test fails
//! without the defence it names. Other client addresses are other loopback addresses
//! (127.0.0.2, 127.0.0.3), so nothing leaves the machine.

mod common;

use std::net::TcpStream;
use std::process::Command;

use common::*;

/// Embedded mode binds loopback unless told otherwise: the dashboard's port and the
/// simulator's (which takes the key `demo`) are not reachable at another address of the
/// machine. With a bind to every interface, 127.0.0.2 would connect.
#[actix_web::test]
async fn embedded_mode_listens_on_loopback_only() {
    let data = temp_dir("bind");
    let (http, sim) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .env_clear()
        .env("TICKWIRE_PORT", http.to_string())
        .env("SERVER_PORT", sim.to_string())
        .env("SCP_DATA_DIR", &data)
        .env("SCP_ADMIN_PASSWORD", "a-long-enough-password")
        .env("SIM_TICKERS", "20")
        .env("LOG_LEVEL", "warn")
        .spawn()
        .expect("start tickwire");
    let _proc = Proc(child);
    wait_until_async("tickwire answers /stats on 127.0.0.1", || async move {
        common::try_stats(http).await.is_some()
    })
    .await;
    wait_until("the simulator listens on 127.0.0.1", || {
        TcpStream::connect(("127.0.0.1", sim)).is_ok()
    })
    .await;
    for port in [http, sim] {
        assert!(
            TcpStream::connect(("127.0.0.2", port)).is_err(),
            "port {port} answers on 127.0.0.2: embedded mode must bind loopback by default"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
}

const LONG: &str = "a-secret-of-thirty-two-bytes-or-more";

/// A binary, its environment, and the setting it must name when it refuses to start.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

/// Runs `bin` with only `env` (and loopback, port 0) until it exits, and returns whether it
/// succeeded and what it wrote to stderr. One still running after a minute has accepted the
/// configuration: it is killed and reported as started.
fn run_briefly(bin: &str, env: &[(&str, &str)]) -> (Option<bool>, String) {
    use std::io::Read;
    let data = temp_dir("secrets");
    let mut child = Command::new(bin)
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("TICKWIRE_PORT", "0")
        .env("SCP_DATA_DIR", &data)
        .env("NODE_REGISTRY_URL", "")
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the binary");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(s) => break Some(s.success()),
            None if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let _ = std::fs::remove_dir_all(&data);
    (status, stderr)
}

/// Every node refuses to start with a token secret or an admin token shorter than 32 bytes,
/// naming the setting: an HS256 token (every user holds one) signed with a short secret can
/// be cracked offline and used to mint admin tokens.
#[test]
fn weak_secrets_are_refused_at_start() {
    let cases: &[Case] = &[
        (
            env!("CARGO_BIN_EXE_tickwire-wds"),
            &[("WDS_TOKEN_SECRET", "short")],
            "WDS_TOKEN_SECRET",
        ),
        (
            env!("CARGO_BIN_EXE_tickwire-wds"),
            &[("WDS_TOKEN_SECRET", LONG), ("ADMIN_TOKEN", "short")],
            "ADMIN_TOKEN",
        ),
        (
            env!("CARGO_BIN_EXE_tickwire-scp"),
            &[("WDS_TOKEN_SECRET", "short"), ("ADMIN_TOKEN", LONG)],
            "WDS_TOKEN_SECRET",
        ),
        (
            env!("CARGO_BIN_EXE_tickwire-scp"),
            &[("WDS_TOKEN_SECRET", LONG), ("ADMIN_TOKEN", "short")],
            "ADMIN_TOKEN",
        ),
        (
            env!("CARGO_BIN_EXE_tickwire-listener"),
            &[("MASSIVE_API_KEY", "demo"), ("ADMIN_TOKEN", "short")],
            "ADMIN_TOKEN",
        ),
        (
            env!("CARGO_BIN_EXE_tickwire-processor"),
            &[("ADMIN_TOKEN", "short")],
            "ADMIN_TOKEN",
        ),
        (
            env!("CARGO_BIN_EXE_tickwire-sim"),
            &[("ADMIN_TOKEN", "short")],
            "ADMIN_TOKEN",
        ),
        (
            env!("CARGO_BIN_EXE_tickwire"),
            &[("WDS_TOKEN_SECRET", "short")],
            "WDS_TOKEN_SECRET",
        ),
        (
            env!("CARGO_BIN_EXE_tickwire"),
            &[("ADMIN_TOKEN", "short")],
            "ADMIN_TOKEN",
        ),
    ];
    for (bin, env, setting) in cases {
        let (status, stderr) = run_briefly(bin, env);
        assert!(
            status == Some(false) && stderr.contains(setting) && stderr.contains("32"),
            "{bin} with {env:?} must refuse to start naming {setting}; it said: {stderr}"
        );
    }
}

/// The admin token and the CSRF token are compared in constant time; the comparison is
/// still an equality.
#[test]
fn constant_time_comparison_is_equality() {
    use tickwire::token::constant_time_eq;
    assert!(constant_time_eq(b"same-token", b"same-token"));
    assert!(!constant_time_eq(b"same-token", b"same-tokeN"));
    assert!(!constant_time_eq(b"same-token", b"same-token-longer"));
    assert!(!constant_time_eq(b"", b"x"));
    assert!(constant_time_eq(b"", b""));
}

/// One HTTP/1.1 request from the local address `from` (another loopback address stands for
/// another client machine); the response's status.
async fn request_from(
    from: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind the client address");
    let mut stream = socket
        .connect(format!("127.0.0.1:{port}").parse().expect("address"))
        .await
        .expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    let head = String::from_utf8_lossy(&out);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"))
}

async fn login_from(from: &str, port: u16, user: &str, password: &str, xff: Option<&str>) -> u16 {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    let headers: Vec<(&str, &str)> = xff.map(|x| ("X-Forwarded-For", x)).into_iter().collect();
    request_from(from, port, "POST", "/login", &headers, &body).await
}

/// Embedded `tickwire` with a known admin password, and its HTTP port.
async fn embedded(name: &str, env: &[(&str, &str)]) -> (Proc, u16, std::path::PathBuf) {
    let data = temp_dir(name);
    let (http, sim) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .env_clear()
        .env("TICKWIRE_PORT", http.to_string())
        .env("SERVER_PORT", sim.to_string())
        .env("SCP_DATA_DIR", &data)
        .env("SCP_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("SIM_TICKERS", "20")
        .env("LOG_LEVEL", "error")
        .envs(env.iter().copied())
        .spawn()
        .expect("start tickwire");
    let p = Proc(child);
    wait_until_async("tickwire answers /stats", || async move {
        common::try_stats(http).await.is_some()
    })
    .await;
    (p, http, data)
}

const ADMIN_PASSWORD: &str = "the-real-admin-password";

/// The peak resident memory of a process (kB), from /proc.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// 300 concurrent wrong-password logins from one address: memory stays bounded (argon2id
/// takes 19 MiB a hash; unguarded, this flood ran 55 of them at once to 1.1 GB), no more
/// hashes run than the address's allowance for the user (the allowance is reserved before
/// hashing), and afterwards the real admin logs in from another address: the flood locked
/// out its address, not the account.
#[actix_web::test]
async fn a_login_flood_is_bounded_and_locks_out_the_attacker_not_the_user() {
    let (proc_, http, data) = embedded("flood", &[]).await;
    let pid = proc_.0.id();
    let before = peak_rss_kb(pid);
    let attempts = (0..300).map(|_| login_from("127.0.0.1", http, "admin", "guess", None));
    let statuses = futures_util::future::join_all(attempts).await;
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "every guess is refused: {statuses:?}"
    );
    let stats = common::try_stats(http).await.expect("stats");
    let checks = stats["counters"]["tickwire_scp_password_checks_total"]
        .as_i64()
        .expect("password checks counted");
    assert!(
        (1..=5).contains(&checks),
        "{checks} passwords were hashed for one address and username; the allowance is 5"
    );
    let peak = peak_rss_kb(pid);
    assert!(
        peak < before + 200 * 1024,
        "peak RSS grew from {before} kB to {peak} kB under the flood"
    );
    // Whatever of the allowance the flood left (guesses refused as busy use none), a few
    // more guesses use it up: the attacker's address is then limited for admin...
    let mut status = 0;
    for _ in 0..6 {
        status = login_from("127.0.0.1", http, "admin", "guess", None).await;
        if status == 429 {
            break;
        }
    }
    assert_eq!(status, 429, "the attacker's address ran out of guesses");
    assert_eq!(
        login_from("127.0.0.1", http, "admin", ADMIN_PASSWORD, None).await,
        429
    );
    // ...and the admin, elsewhere, is not.
    assert_eq!(
        login_from("127.0.0.2", http, "admin", ADMIN_PASSWORD, None).await,
        200
    );
    drop(proc_);
    let _ = std::fs::remove_dir_all(&data);
}

/// Behind a proxy every request comes from the proxy: `X-Forwarded-For` names the client,
/// but only when the proxy is trusted (`SCP_TRUSTED_PROXIES`). One client's guesses then do
/// not limit another client behind the same proxy, and a client that is not a proxy cannot
/// spend someone else's allowance by naming their address.
#[actix_web::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let env = [
        ("SCP_TRUSTED_PROXIES", "127.0.0.1"),
        ("SCP_LOGIN_MAX_FAILURES", "3"),
    ];
    let (proc_, http, data) = embedded("proxies", &env).await;
    let attacker = Some("10.1.1.1");
    for _ in 0..3 {
        assert_eq!(
            login_from("127.0.0.1", http, "admin", "guess", attacker).await,
            401
        );
    }
    assert_eq!(
        login_from("127.0.0.1", http, "admin", "guess", attacker).await,
        429
    );
    // Another client behind the same proxy logs in.
    let user = Some("10.2.2.2");
    assert_eq!(
        login_from("127.0.0.1", http, "admin", ADMIN_PASSWORD, user).await,
        200
    );
    // A direct client naming 10.2.2.2 is counted as itself...
    for _ in 0..3 {
        assert_eq!(
            login_from("127.0.0.3", http, "admin", "guess", user).await,
            401
        );
    }
    assert_eq!(
        login_from("127.0.0.3", http, "admin", "guess", user).await,
        429
    );
    // ...so 10.2.2.2's allowance is untouched.
    assert_eq!(
        login_from("127.0.0.1", http, "admin", ADMIN_PASSWORD, user).await,
        200
    );
    drop(proc_);
    let _ = std::fs::remove_dir_all(&data);
}

const WDS_SECRET: &str = "security-test-wds-secret-32-bytes-long";

fn wds_token(ttl: i64) -> String {
    use tickwire::token::{self, Claims};
    let c = Claims::new("tester", &["viewer"], &["*"], token::now_secs(), ttl);
    token::sign(&c, WDS_SECRET.as_bytes()).expect("sign")
}

async fn start_wds(
    prefix: &str,
    tune: impl FnOnce(&mut tickwire::actors::wds::node::WdsArgs),
) -> tickwire::actors::wds::node::WdsNode {
    use clap::Parser;
    let mut a =
        tickwire::actors::wds::node::WdsArgs::try_parse_from(["tickwire-wds"]).expect("defaults");
    a.wdc.url = common::redis::redis_url();
    a.results_prefix = prefix.to_string();
    a.settings.token_secret = WDS_SECRET.to_string();
    a.settings.allowed_topics = "*".into();
    a.node_registry.registry_url = String::new();
    a.workers = 2;
    tune(&mut a);
    let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let node = tickwire::actors::wds::node::start(a, http).expect("WDS starts");
    let ready = node.url("/ready");
    wait_until_async("the WDS is ready", || {
        let u = ready.clone();
        async move { get_json(&u, None).await.0 == 200 }
    })
    .await;
    node
}

/// A WebSocket handshake to `path` from the local address `from`, with a receive buffer of
/// `rcvbuf` bytes: the HTTP status and, on 101, the open socket.
async fn ws_from(
    from: &str,
    port: u16,
    path: &str,
    rcvbuf: Option<u32>,
) -> (u16, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(n) = rcvbuf {
        socket.set_recv_buffer_size(n).expect("rcvbuf");
    }
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind the client address");
    let mut s = socket
        .connect(format!("127.0.0.1:{port}").parse().expect("address"))
        .await
        .expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.expect("read") == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, s)
}

/// A masked client text frame (zero mask key: the payload goes as it is).
fn client_text(payload: &str) -> Vec<u8> {
    let mut f = vec![0x81];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload.as_bytes());
    f
}

/// One client address cannot take a node's sockets for itself: past its share of
/// unauthenticated sockets, and past its share of all, its handshakes are refused (429,
/// counted), while another address still gets in; a closed socket gives its place back.
#[actix_web::test]
async fn sockets_are_capped_per_client_address() {
    let prefix = common::redis::unique_prefix("sec-per-address");
    let node = start_wds(&prefix, |a| {
        a.settings.max_unauthenticated_per_address = 2;
        a.settings.max_sessions_per_address = 4;
    })
    .await;
    let authed = format!("/ws/v2?token={}", wds_token(600));
    let mut held = Vec::new();
    for _ in 0..2 {
        let (status, s) = ws_from("127.0.0.2", node.port, "/ws/v2", None).await;
        assert_eq!(status, 101);
        held.push(s);
    }
    assert_eq!(ws_from("127.0.0.2", node.port, "/ws/v2", None).await.0, 429);
    assert_eq!(ws_from("127.0.0.3", node.port, "/ws/v2", None).await.0, 101);
    for _ in 0..2 {
        let (status, s) = ws_from("127.0.0.2", node.port, &authed, None).await;
        assert_eq!(status, 101);
        held.push(s);
    }
    assert_eq!(ws_from("127.0.0.2", node.port, &authed, None).await.0, 429);
    assert!(
        node.registry
            .value("tickwire_wds_refused_total", &[("reason", "address")])
            >= Some(2)
    );
    // A socket closed by its client gives its place back.
    drop(held.pop());
    wait_until_async("a place is free again", || {
        let path = authed.clone();
        let port = node.port;
        async move { ws_from("127.0.0.2", port, &path, None).await.0 == 101 }
    })
    .await;
    node.stop().await;
    common::redis::cleanup(&prefix).await;
}

/// A client that subscribes and then stops reading fills the socket, and its session, which
/// only runs while the socket takes writes, can no longer close it. The write deadline
/// (TCP_USER_TIMEOUT) makes the kernel drop the connection anyway, and the session ends.
#[actix_web::test]
async fn a_client_that_stops_reading_is_dropped_within_the_write_deadline() {
    use tokio::io::AsyncWriteExt;
    let prefix = common::redis::unique_prefix("sec-write-deadline");
    let node = start_wds(&prefix, |a| {
        a.settings.write_timeout_secs = 1;
        // Keep the application's own slow-client close out of the way.
        a.settings.slow_grace_secs = 3600;
    })
    .await;
    let path = format!("/ws/v2?token={}", wds_token(600));
    let (status, mut s) = ws_from("127.0.0.2", node.port, &path, Some(4096)).await;
    assert_eq!(status, 101);
    s.write_all(&client_text(r#"{"type":"subscribe","topic":"flood"}"#))
        .await
        .expect("subscribe");
    wait_until("the session is subscribed", || {
        node.registry.value("tickwire_wds_channels", &[]) == Some(1)
    })
    .await;
    // Publish far more than the socket buffers hold, and never read.
    let pool = tickwire::redis_pool::open(&common::redis::redis_url()).expect("pool");
    let mut conn = pool.get().await.expect("redis");
    let payload = format!("\"{}\"", "x".repeat(64 * 1024));
    let channel = format!("{prefix}flood");
    let sessions = || {
        node.registry
            .value("tickwire_wds_sessions", &[])
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while sessions() > 0 {
        let _: i64 = deadpool_redis::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&payload)
            .query_async(&mut conn)
            .await
            .expect("publish");
        assert!(
            start.elapsed() < DEADLINE,
            "the session of a client that stopped reading is still open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(s);
    node.stop().await;
    common::redis::cleanup(&prefix).await;
}

/// Rotating the token secret: a WDS given the new secret and the previous one accepts the
/// tokens the control plane signed with either (they name their key), so clients are not cut
/// off while the control plane moves over; without the previous one, old tokens are refused.
/// A token minted for another audience is refused whatever its signature.
#[actix_web::test]
async fn token_secrets_rotate_without_dropping_clients() {
    use tickwire::token::{self, Claims};
    const NEW: &str = "the-new-wds-token-secret-of-32-bytes";
    let sign = |secret: &str, aud: &str| {
        let mut c = Claims::new("tester", &["viewer"], &["*"], token::now_secs(), 600);
        c.aud = aud.to_string();
        token::sign(&c, secret.as_bytes()).expect("sign")
    };
    let (by_old, by_new) = (
        sign(WDS_SECRET, token::AUDIENCE),
        sign(NEW, token::AUDIENCE),
    );
    let prefix = common::redis::unique_prefix("sec-rotation");
    let rotating = start_wds(&prefix, |a| {
        a.settings.token_secret = NEW.into();
        a.settings.token_secret_previous = WDS_SECRET.into();
    })
    .await;
    for tok in [&by_old, &by_new] {
        let path = format!("/ws/v2?token={tok}");
        assert_eq!(
            ws_from("127.0.0.2", rotating.port, &path, None).await.0,
            101
        );
    }
    let elsewhere = sign(NEW, "some-other-service");
    let path = format!("/ws/v2?token={elsewhere}");
    assert_eq!(
        ws_from("127.0.0.2", rotating.port, &path, None).await.0,
        401
    );
    rotating.stop().await;

    let done = start_wds(&prefix, |a| a.settings.token_secret = NEW.into()).await;
    let path = format!("/ws/v2?token={by_old}");
    assert_eq!(ws_from("127.0.0.2", done.port, &path, None).await.0, 401);
    assert!(
        done.registry.value(
            "tickwire_wds_auth_failures_total",
            &[("reason", "bad_signature")]
        ) >= Some(1)
    );
    done.stop().await;
    common::redis::cleanup(&prefix).await;
}

/// The client-facing nodes keep their figures to operators: on the WDS's port (and the
/// control plane's) `/stats` and `/metrics` want the admin token, while `/health` and
/// `/ready` stay open for load balancers.
#[actix_web::test]
async fn client_facing_stats_want_the_admin_token() {
    let prefix = common::redis::unique_prefix("sec-stats");
    let node = start_wds(&prefix, |a| a.common.admin_token = LONG.into()).await;
    let status = |path: &str, token: Option<&str>| {
        let mut req = awc::Client::new().get(node.url(path));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        async move { req.send().await.expect("request").status().as_u16() }
    };
    for path in ["/stats", "/metrics"] {
        assert_eq!(status(path, None).await, 401, "{path} without the token");
        assert_eq!(
            status(path, Some("wrong")).await,
            401,
            "{path} with a wrong one"
        );
        assert_eq!(status(path, Some(LONG)).await, 200, "{path} with it");
    }
    for path in ["/health", "/ready"] {
        assert_eq!(status(path, None).await, 200, "{path}");
    }
    node.stop().await;
    common::redis::cleanup(&prefix).await;
}

/// The compose stack publishes only the client-facing nodes: nothing of the data plane
/// (RabbitMQ, Redis, the simulator, listener, processor) gets a host port, and every Redis
/// and RabbitMQ URL carries credentials (no `guest`).
#[test]
fn compose_publishes_no_data_plane_and_uses_credentials() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("deploy/compose.yaml")).expect("compose file");
    // Service name -> its lines (services are the two-space-indented keys under `services:`).
    let mut services: Vec<(String, Vec<&str>)> = Vec::new();
    let mut in_services = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            in_services = line.trim_end() == "services:";
            continue;
        }
        if !in_services {
            continue;
        }
        let indented_two = line.starts_with("  ") && !line.starts_with("   ");
        if indented_two && line.trim_end().ends_with(':') && !line.trim_start().starts_with('#') {
            services.push((line.trim().trim_end_matches(':').to_string(), Vec::new()));
        } else if let Some((_, lines)) = services.last_mut() {
            lines.push(line);
        }
    }
    // What each service publishes: the lines under its `ports:`.
    let published = |lines: &[&str]| -> Vec<String> {
        lines
            .iter()
            .skip_while(|l| l.trim() != "ports:")
            .skip(1)
            .take_while(|l| l.trim_start().starts_with("- "))
            .map(|l| l.trim().trim_start_matches("- ").to_string())
            .collect()
    };
    let mut names = Vec::new();
    for (name, lines) in &services {
        names.push(name.as_str());
        assert!(
            lines.iter().any(|l| l.trim() == "healthcheck:"),
            "{name} has no healthcheck"
        );
        for port in published(lines) {
            // The gateway is the one way in; operational tools listen on loopback only.
            assert!(
                name == "gateway" || port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond loopback"
            );
        }
    }
    for service in [
        "gateway",
        "wds",
        "scp",
        "listener",
        "processor",
        "rabbitmq",
        "redis",
        "sim",
    ] {
        assert!(
            names.contains(&service),
            "no service {service} in {names:?}"
        );
    }
    let gateway = &services
        .iter()
        .find(|(n, _)| n == "gateway")
        .expect("gateway")
        .1;
    assert_eq!(
        published(gateway).len(),
        1,
        "the gateway publishes one port"
    );
    assert!(
        text.contains("  dataplane:\n    internal: true"),
        "the data-plane network is internal"
    );
    for url in text
        .split_whitespace()
        .filter(|w| w.contains("redis://") || w.contains("amqp://"))
    {
        assert!(
            url.contains("${REDIS_PASSWORD") || url.contains("${RABBITMQ_PASSWORD"),
            "a URL without credentials: {url}"
        );
        assert!(!url.contains("guest"), "the guest account: {url}");
    }
}
