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
