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
    assert_eq!(login_from("127.0.0.1", http, "admin", ADMIN_PASSWORD, None).await, 429);
    // ...and the admin, elsewhere, is not.
    assert_eq!(login_from("127.0.0.2", http, "admin", ADMIN_PASSWORD, None).await, 200);
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
