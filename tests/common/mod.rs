//! Shared helpers for integration tests: an in-process simulator on port 0 and a WebSocket
//! client that waits on conditions (with a generous deadline), never on sleeps.

#![allow(dead_code)]

use std::net::TcpListener;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tickwire::actors::sim::{SimArgs, SimServer};

pub mod proxy;
pub mod rabbit;
pub mod redis;

/// Upper bound for any single wait: generous, so a loaded CI machine never flakes. Reaching
/// it is a failure, not a timing assertion.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Simulator defaults for tests: fast auth timeout off, market open, modest rate.
pub fn sim_args() -> SimArgs {
    let mut a = SimArgs::defaults();
    a.port = 0;
    a.workers = 1;
    a.start_time = "10:00:00".into();
    a.rate = 5000.0;
    // The day begins at the start: no morning played (the tests about it ask for one).
    a.history_rate = 0.0;
    a.api_keys = tickwire::actors::sim::auth::parse_key_specs(
        "demo,second,stocksonly:stocks,fxonly:forex,nonoi::NOI",
    )
    .expect("key specs");
    a
}

#[derive(clap::Parser)]
struct ListenerCli {
    #[command(flatten)]
    a: tickwire::actors::listener::ListenerArgs,
}

/// Listener flags pointing at the simulator on `sim_port` and the local RabbitMQ, plus `extra`.
pub fn listener_args(
    sim_port: u16,
    key: &str,
    qprefix: &str,
    shards: &str,
    extra: &[&str],
) -> tickwire::actors::listener::ListenerArgs {
    let (feed, rest, amqp) = (
        format!("127.0.0.1:{sim_port}"),
        format!("http://127.0.0.1:{sim_port}"),
        rabbit::rabbit_url(),
    );
    let mut argv = vec![
        "tickwire-listener",
        "--massive-api-key",
        key,
        "--massive-feed",
        &feed,
        "--massive-secure",
        "false",
        "--massive-rest-url",
        &rest,
        "--rabbitmq-url",
        &amqp,
        "--queue-prefix",
        qprefix,
        "--shards",
        shards,
    ];
    argv.extend_from_slice(extra);
    <ListenerCli as clap::Parser>::parse_from(argv).a
}

/// A fresh, empty directory under the system temp dir for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tickwire-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Embedded-mode settings for tests: the test simulator, users and layouts in a temp dir.
pub fn embedded_args(name: &str) -> tickwire::embedded::EmbeddedArgs {
    use clap::Parser;
    let mut a = tickwire::embedded::EmbeddedArgs::try_parse_from(["tickwire"]).expect("defaults");
    a.sim = sim_args();
    a.scp.data_dir = temp_dir(name);
    a
}

pub fn start_sim(args: SimArgs) -> SimServer {
    tickwire::config::init_logging_with("warn", tickwire::actors::sim::LOG_DIRECTIVES);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    tickwire::actors::sim::start(args, listener, false).expect("simulator starts")
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A close frame with this code arrived.
    Closed(Option<u16>),
    /// The TCP stream ended without a close frame.
    Aborted,
}

pub struct Client {
    framed: Framed<BoxedSocket, Codec>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (_, framed) = awc::Client::new()
            .ws(url)
            .max_frame_size(2 * 1024 * 1024)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("WebSocket connect to {url}: {e}"));
        Client { framed }
    }

    /// Connects with extra handshake headers; the HTTP status when the server refuses.
    pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
        let mut req = awc::Client::new().ws(url).max_frame_size(2 * 1024 * 1024);
        for (k, v) in headers {
            req = req.set_header(*k, *v);
        }
        match req.connect().await {
            Ok((_, framed)) => Ok(Client { framed }),
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
            Err(e) => panic!("WebSocket connect to {url}: {e}"),
        }
    }

    /// The next text frame as text (skipping pings and pongs); panics on close.
    pub async fn next_text(&mut self) -> String {
        String::from_utf8(self.next_text_raw().await.to_vec()).expect("UTF-8 text frame")
    }

    /// The next text frame as JSON.
    pub async fn next_json(&mut self) -> Value {
        let t = self.next_text().await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t}"))
    }

    /// Reads until the connection ends; the close code and reason when a close frame came.
    pub async fn close_reason(&mut self) -> Option<(u16, String)> {
        loop {
            match self.next_frame().await {
                Some(Frame::Close(r)) => {
                    return r.map(|r| (u16::from(r.code), r.description.unwrap_or_default()))
                }
                Some(_) => continue,
                None => return None,
            }
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.framed
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn ping(&mut self, payload: &'static [u8]) {
        self.framed
            .send(Message::Ping(bytes::Bytes::from_static(payload)))
            .await
            .expect("ping");
    }

    /// The next frame, or None when the connection ended.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        match tokio::time::timeout(DEADLINE, self.framed.next()).await {
            Ok(Some(Ok(f))) => Some(f),
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("no frame within {DEADLINE:?}"),
        }
    }

    /// The next text frame's raw bytes (skipping pongs); panics on close.
    pub async fn next_text_raw(&mut self) -> bytes::Bytes {
        loop {
            match self.next_frame().await {
                Some(Frame::Text(b)) => return b,
                Some(Frame::Pong(_)) | Some(Frame::Ping(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next text frame as a JSON array.
    pub async fn next_array(&mut self) -> Vec<Value> {
        let raw = self.next_text_raw().await;
        let v: Value = serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {raw:?}"));
        v.as_array()
            .cloned()
            .unwrap_or_else(|| panic!("frame is not an array: {v}"))
    }

    /// Reads status messages until `count` have arrived (data frames in between are skipped).
    pub async fn statuses(&mut self, count: usize) -> Vec<(String, String)> {
        let start = std::time::Instant::now();
        let mut out = Vec::new();
        while out.len() < count {
            assert!(
                start.elapsed() < DEADLINE,
                "only {out:?} of {count} statuses within {DEADLINE:?}"
            );
            for e in self.next_array().await {
                if e["ev"] == "status" {
                    out.push((
                        e["status"].as_str().unwrap_or("").to_string(),
                        e["message"].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
        }
        out
    }

    pub async fn expect_status(&mut self, status: &str, message: &str) {
        let got = self.statuses(1).await;
        assert_eq!(got[0], (status.to_string(), message.to_string()));
    }

    /// Connects, reads `connected`, authenticates with `key` and reads `auth_success`.
    pub async fn authed(url: &str, key: &str) -> Client {
        let mut c = Client::connect(url).await;
        c.expect_status("connected", "Connected Successfully").await;
        c.send(&format!(r#"{{"action":"auth","params":"{key}"}}"#))
            .await;
        c.expect_status("auth_success", "authenticated").await;
        c
    }

    /// Reads until the connection ends; says how.
    pub async fn until_end(&mut self) -> Ended {
        loop {
            match self.next_frame().await {
                Some(Frame::Close(reason)) => {
                    return Ended::Closed(reason.map(|r| u16::from(r.code)))
                }
                Some(_) => continue,
                None => return Ended::Aborted,
            }
        }
    }

    /// Data events (non-status) from the next frames until at least `n` have arrived.
    pub async fn data_events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            out.extend(
                self.next_array()
                    .await
                    .into_iter()
                    .filter(|e| e["ev"] != "status"),
            );
        }
        out
    }
}

/// Polls `f` until it is true (a condition wait, bounded by [`DEADLINE`]).
pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls an async condition until true (bounded by [`DEADLINE`]).
pub async fn wait_until_async<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !f().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET a simulator URL: (status, JSON body).
pub async fn get_json(url: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = awc::Client::new().get(url);
    if let Some(k) = bearer {
        req = req.insert_header(("Authorization", format!("Bearer {k}")));
    }
    let mut resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let body = resp.body().limit(64 * 1024 * 1024).await.expect("body");
    let json =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e})"));
    (resp.status().as_u16(), json)
}

/// Listener settings for tests: fast backoff, no market-status polling, connect at once.
pub fn listener_config(
    url: String,
    key: &str,
    subs: &str,
) -> tickwire::actors::listener::connection::ListenerConfig {
    tickwire::actors::listener::connection::ListenerConfig {
        url,
        api_key: key.into(),
        market: tickwire::massive::Market::Stocks,
        subscriptions: tickwire::config::parse_subscriptions(subs)
            .expect("subscriptions")
            .0,
        ping_every: Duration::from_secs(1),
        dead_after: Duration::from_secs(30),
        max_connections_cooldown: tickwire::actors::listener::connection::MAX_CONNECTIONS_COOLDOWN,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        start_idle: false,
        rest_url: None,
        closed_poll: Duration::from_millis(100),
        max_frame_bytes: tickwire::actors::listener::connection::MAX_FRAME_BYTES,
        widen: None,
    }
}

/// A listener metric of the `stocks` market.
pub fn stocks_metric(r: &tickwire::metrics::Registry, name: &str) -> Option<i64> {
    r.value(name, &[("market", "stocks")])
}

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A node's `/stats`, or None while it does not answer.
pub async fn try_stats(port: u16) -> Option<Value> {
    let url = format!("http://127.0.0.1:{port}/stats");
    let mut resp = awc::Client::new().get(url).send().await.ok()?;
    let body = resp.body().limit(1 << 22).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// A `tickwire-listener` process on the simulator at `sim_port`, admin HTTP on `admin_port`,
/// publishing to the local RabbitMQ under `qprefix` (one shard), its lease in `redis`; `env`
/// adds or overrides settings (say `LEASE_TTL_MS`).
pub fn listener_process(
    sim_port: u16,
    admin_port: u16,
    qprefix: &str,
    redis: &str,
    env: &[(&str, &str)],
) -> Proc {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tickwire-listener"))
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", admin_port.to_string())
        .env("MASSIVE_API_KEY", "demo")
        .env("MASSIVE_FEED", format!("127.0.0.1:{sim_port}"))
        .env("MASSIVE_SECURE", "false")
        .env("MASSIVE_REST_URL", format!("http://127.0.0.1:{sim_port}"))
        .env("MASSIVE_SUBSCRIPTIONS", "A.*")
        .env("RABBITMQ_URL", rabbit::rabbit_url())
        .env("QUEUE_PREFIX", qprefix)
        .env("QUEUE_SHARDS", "1")
        .env("MDC_REDIS_URL", redis)
        .env("NODE_REGISTRY_URL", "")
        .env("LEASE_TTL_MS", "1500")
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tickwire-listener");
    Proc(child)
}

/// Whether the listener with admin port `port` holds the stocks lease (`None`: not answering).
pub async fn lease_held(port: u16) -> Option<bool> {
    let v = try_stats(port).await?;
    Some(v["counters"]["tickwire_lease_held{market=\"stocks\"}"] == 1)
}

/// Processor node settings for tests: port 0, the given broker and prefixes, the shared
/// Redis for results and state, short shard leases, enrichment off.
pub fn processor_args(
    rabbitmq_url: &str,
    queue_prefix: &str,
    key_prefix: &str,
    shards: u16,
) -> tickwire::actors::processor::ProcessorArgs {
    let mut a = <tickwire::actors::processor::ProcessorArgs as clap::Parser>::try_parse_from([
        "tickwire-processor",
    ])
    .expect("defaults");
    a.port = 0;
    a.broker.rabbitmq_url = rabbitmq_url.to_string();
    a.queue_prefix = queue_prefix.to_string();
    a.shards = shards;
    a.mdc_redis_url = redis::redis_url();
    a.wdc.url = redis::redis_url();
    a.shard_lease_ttl_ms = 1500;
    a.pipeline.results_prefix = format!("{key_prefix}wdc:");
    a.pipeline.state_prefix = format!("{key_prefix}mdc:");
    a.pipeline.enrichment = false;
    a
}

/// Widget data service settings for tests: the given Redis and results prefix, this token
/// secret and admin token, every topic allowed (tests use their own topic names), 2 workers.
pub fn wds_args(
    redis: &str,
    results_prefix: &str,
    token_secret: &str,
    admin_token: &str,
) -> tickwire::actors::wds::node::WdsArgs {
    let mut a =
        <tickwire::actors::wds::node::WdsArgs as clap::Parser>::try_parse_from(["tickwire-wds"])
            .expect("defaults");
    a.wdc.url = redis.to_string();
    a.results_prefix = results_prefix.to_string();
    a.settings.token_secret = token_secret.to_string();
    a.common.admin_token = admin_token.to_string();
    a.settings.allowed_topics = "*".into();
    a.workers = 2;
    a
}

/// A widget data service node on port 0, once its `/ready` says 200.
pub async fn start_wds(
    args: tickwire::actors::wds::node::WdsArgs,
) -> tickwire::actors::wds::node::WdsNode {
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let node = tickwire::actors::wds::node::start(args, http).expect("WDS starts");
    let ready = node.url("/ready");
    wait_until_async("the WDS is ready", || {
        let u = ready.clone();
        async move { get_json(&u, None).await.0 == 200 }
    })
    .await;
    node
}

/// A processor node on port 0.
pub fn start_processor(
    args: tickwire::actors::processor::ProcessorArgs,
) -> tickwire::actors::processor::ProcessorNode {
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    tickwire::actors::processor::start(args, http).expect("processor node starts")
}
