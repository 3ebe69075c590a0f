//! `tickwire-wds` wiring: flags, the hub on Redis pub/sub, the read store, the session routes
//! and the admin routes on one HTTP server; and [`start_embedded`], the same service on the
//! memory store for `tickwire`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::{web, HttpResponse};

use super::relay::keys::KeySource;
use super::relay::{self, RelaySettings, RelayState};
use super::session;
use super::status;
use crate::actors::store::cache_writer::{CacheWriter, CacheWriterConfig, CacheWriterError};
use crate::actors::store::memory_store::{MemoryStore, Subscribe};
use crate::actors::store::metrics::CacheWriterFigures;
use crate::actors::wds::hub::{Hub, HubConfig};
use crate::actors::wds::metrics::{
    HubFigures, RelayFigures, RevocationFigures, SessionFigures, WdsFigures,
};
use crate::actors::wds::{Auth, Limits, WdsState};
use crate::admin::{self, NodeHttp};
use crate::config::node_id;
use crate::config::CommonArgs;
use crate::metrics::Registry;
use crate::revocation::{self, RevocationList};
use crate::store::Store;

/// Session settings shared by `tickwire-wds` and embedded mode.
#[derive(clap::Args, Debug, Clone)]
pub struct WdsSettings {
    /// Require a token signed by the control plane. Only `false` given explicitly turns
    /// authentication off.
    #[arg(long = "auth-enabled", id = "wds_auth_enabled", env = "AUTH_ENABLED", default_value = "true",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub auth_enabled: bool,

    /// Shared secret the control plane signs tokens with (HS256).
    #[arg(
        long = "token-secret",
        id = "wds_token_secret",
        env = "WDS_TOKEN_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub token_secret: String,

    /// The token secret before the current one, accepted too while the control plane moves
    /// to the new one (docs/operations.md, rotation); empty when not rotating.
    #[arg(
        long = "token-secret-previous",
        id = "wds_token_secret_previous",
        env = "WDS_TOKEN_SECRET_PREVIOUS",
        default_value = "",
        hide_env_values = true
    )]
    pub token_secret_previous: String,

    /// Topic patterns this node serves at all, tokens aside (comma list, `*` wildcard).
    #[arg(long = "wds-allowed-topics", id = "wds_allowed_topics", env = "WDS_ALLOWED_TOPICS",
          default_value = crate::token::DEFAULT_TOPICS)]
    pub allowed_topics: String,

    /// Largest client frame (bytes).
    #[arg(
        long = "wds-max-frame-bytes",
        id = "wds_max_frame_bytes",
        env = "WDS_MAX_FRAME_BYTES",
        default_value_t = 16384
    )]
    pub max_frame_bytes: usize,

    /// Topics per session.
    #[arg(
        long = "wds-max-topics",
        id = "wds_max_topics",
        env = "WDS_MAX_TOPICS",
        default_value_t = 200
    )]
    pub max_topics: usize,

    /// Requests per second per session.
    #[arg(
        long = "wds-max-msgs-per-sec",
        id = "wds_max_msgs_per_sec",
        env = "WDS_MAX_MSGS_PER_SEC",
        default_value_t = 50
    )]
    pub max_msgs_per_sec: u32,

    /// Open sessions per node.
    #[arg(
        long = "wds-max-sessions",
        id = "wds_max_sessions",
        env = "WDS_MAX_SESSIONS",
        default_value_t = 200_000
    )]
    pub max_sessions: usize,

    /// Seconds to authenticate when the handshake carried no token.
    #[arg(
        long = "wds-handshake-timeout-secs",
        id = "wds_handshake_timeout_secs",
        env = "WDS_HANDSHAKE_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub handshake_timeout_secs: u64,

    /// Violations tolerated before the socket is closed.
    #[arg(
        long = "wds-max-violations",
        id = "wds_max_violations",
        env = "WDS_MAX_VIOLATIONS",
        default_value_t = 10
    )]
    pub max_violations: u32,

    /// Frames waiting per client before newer ones are dropped.
    #[arg(
        long = "wds-outbox-frames",
        id = "wds_outbox_frames",
        env = "WDS_OUTBOX_FRAMES",
        default_value_t = 2048
    )]
    pub outbox_frames: usize,

    /// Seconds a client may stay over its outbox limit before it is closed.
    #[arg(
        long = "wds-slow-grace-secs",
        id = "wds_slow_grace_secs",
        env = "WDS_SLOW_CLIENT_GRACE_SECS",
        default_value_t = 5
    )]
    pub slow_grace_secs: u64,

    /// Sockets one client address may hold (behind a load balancer, list it in
    /// WDS_TRUSTED_PROXIES so that its clients count one by one).
    #[arg(
        long = "wds-max-sessions-per-address",
        id = "wds_max_sessions_per_address",
        env = "WDS_MAX_SESSIONS_PER_ADDRESS",
        default_value_t = 1000
    )]
    pub max_sessions_per_address: usize,

    /// Sockets one client address may hold that have not authenticated yet.
    #[arg(
        long = "wds-max-unauthenticated-per-address",
        id = "wds_max_unauthenticated_per_address",
        env = "WDS_MAX_UNAUTHENTICATED_PER_ADDRESS",
        default_value_t = 50
    )]
    pub max_unauthenticated_per_address: usize,

    /// Proxies whose `X-Forwarded-For` names the client (comma list of addresses or
    /// networks); from anyone else the header is ignored.
    #[arg(
        long = "wds-trusted-proxies",
        id = "wds_trusted_proxies",
        env = "WDS_TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: crate::clients::TrustedProxies,

    /// Seconds a client may leave the server's writes unread before the kernel drops the
    /// connection (TCP_USER_TIMEOUT): bounds a reader that stopped even when its session
    /// cannot run.
    #[arg(
        long = "wds-write-timeout-secs",
        id = "wds_write_timeout_secs",
        env = "WDS_WRITE_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub write_timeout_secs: u64,

    /// Seconds between WebSocket pings.
    #[arg(
        long = "wds-heartbeat-secs",
        id = "wds_heartbeat_secs",
        env = "WDS_HEARTBEAT_SECS",
        default_value_t = 20
    )]
    pub heartbeat_secs: u64,

    /// Seconds of client silence (no frame, no pong) before the socket is closed.
    #[arg(
        long = "wds-idle-timeout-secs",
        id = "wds_idle_timeout_secs",
        env = "WDS_IDLE_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub idle_timeout_secs: u64,
}

impl WdsSettings {
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes.max(256),
            max_topics: self.max_topics.max(1),
            max_msgs_per_sec: self.max_msgs_per_sec.max(1),
            max_sessions: self.max_sessions.max(1),
            handshake_timeout: Duration::from_secs(self.handshake_timeout_secs.max(1)),
            max_violations: self.max_violations,
            max_per_address: self.max_sessions_per_address,
            max_unauthenticated_per_address: self.max_unauthenticated_per_address,
            outbox_frames: self.outbox_frames.max(1),
            slow_grace: Duration::from_secs(self.slow_grace_secs),
            heartbeat: Duration::from_secs(self.heartbeat_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(2)),
        }
    }

    fn auth(&self) -> Result<Auth, WdsError> {
        if self.auth_enabled && self.token_secret.is_empty() {
            return Err(WdsError::Config(
                "authentication is on but WDS_TOKEN_SECRET is empty (set it to the control \
                 plane's secret, or AUTH_ENABLED=false to run without authentication)"
                    .into(),
            ));
        }
        crate::token::check_secret("WDS_TOKEN_SECRET", &self.token_secret)?;
        crate::token::check_secret("WDS_TOKEN_SECRET_PREVIOUS", &self.token_secret_previous)?;
        if !self.auth_enabled {
            log::warn!("WDS authentication is OFF (AUTH_ENABLED=false): anyone can subscribe");
        }
        Ok(Auth {
            required: self.auth_enabled,
            keys: crate::token::Keys::new(self.token_secret.as_bytes())
                .with_previous(self.token_secret_previous.as_bytes()),
        })
    }
}

/// `tickwire-wds` flags.
#[derive(clap::Parser, Debug, Clone)]
pub struct WdsArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// HTTP port (WebSocket and admin).
    #[arg(long, env = "SERVER_PORT", default_value_t = 4202)]
    pub port: u16,

    #[command(flatten)]
    pub node_registry: crate::config::NodeRegistryArgs,

    /// HTTP worker threads; 0 = one per CPU.
    #[arg(long, env = "WDS_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Redis for client-facing results and pub/sub.
    #[command(flatten)]
    pub wdc: crate::config::WdcArgs,

    /// Prefix of every client-facing key and channel; clients name topics without it.
    #[arg(long, env = "WDC_KEY_PREFIX", default_value = "")]
    pub results_prefix: String,

    /// How often to read the control plane's token revocations from the node registry's
    /// Redis (ms): a logout ends its sockets within about this long.
    #[arg(long, env = "WDS_REVOCATION_POLL_MS", default_value_t = 1000)]
    pub revocation_poll_ms: u64,

    #[command(flatten)]
    pub settings: WdsSettings,

    #[command(flatten)]
    pub relay: RelaySettings,

    /// RabbitMQ, where the relay's frames come from (the listener's `tickwire.relay`
    /// exchange).
    #[arg(
        long = "rabbitmq-url",
        env = "RABBITMQ_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub rabbitmq_url: String,

    /// The listeners' queue prefix (the relay exchange is named under it).
    #[arg(long = "queue-prefix", env = "QUEUE_PREFIX", default_value = "")]
    pub queue_prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WdsError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] CacheWriterError),
    #[error(transparent)]
    WeakSecret(#[from] crate::token::WeakSecret),
}

/// The WDS state and hub over a given store.
fn wds_state(
    settings: &WdsSettings,
    hub: Addr<Hub>,
    store: Store,
    results_prefix: &str,
    figures: WdsFigures,
) -> Result<web::Data<WdsState>, WdsError> {
    let state = web::Data::new(WdsState {
        hub,
        store,
        auth: settings.auth()?,
        limits: settings.limits(),
        results_prefix: results_prefix.to_string(),
        allowed: crate::token::topic_list(&settings.allowed_topics),
        figures,
        addresses: crate::actors::wds::admission::AddressBook::new(
            settings.max_sessions_per_address,
            settings.max_unauthenticated_per_address,
        ),
        trusted_proxies: settings.trusted_proxies.clone(),
        revoked: RevocationList::new(),
        sessions: Default::default(),
        stopping: Default::default(),
    });
    WdsState::watch_revocations(&state.clone().into_inner());
    Ok(state)
}

/// The node registry's Redis, where the control plane leaves what every WDS must know
/// (token revocations, relay keys); why not, when it cannot be had.
fn registry_pool(args: &WdsArgs) -> Result<deadpool_redis::Pool, String> {
    let url = &args.node_registry.registry_url;
    if url.is_empty() {
        return Err("NODE_REGISTRY_URL is empty".to_string());
    }
    crate::redis_pool::open(url).map_err(|e| e.to_string())
}

/// Reads the control plane's revocations from the node registry's Redis into the node's
/// list. Without a registry the control plane has nowhere to put them: say so.
fn watch_registry_revocations(args: &WdsArgs, state: &WdsState, registry: &Registry) {
    let pool = match registry_pool(args) {
        Ok(p) => p,
        Err(e) => {
            log::warn!(
                "token revocation off ({e}): a logout ends WDS access only when its token expires"
            );
            return;
        }
    };
    let every = Duration::from_millis(args.revocation_poll_ms.max(50));
    revocation::watch_redis(
        &state.revoked,
        pool,
        revocation::redis_key(&args.node_registry.registry_prefix),
        every,
        RevocationFigures::register(registry, &[]).into(),
    );
}

/// The relay of a distributed node: frames from its own RabbitMQ queue, keys from the node
/// registry's Redis (where the control plane publishes them), and what its clients hold
/// written there. Without a registry no key is known, so the relay is off (said once).
fn start_relay(args: &WdsArgs, id: &str, figures: RelayFigures) -> Option<web::Data<RelayState>> {
    if !args.relay.enabled {
        return None;
    }
    let pool = match registry_pool(args) {
        Ok(p) => p,
        Err(e) => {
            log::warn!("Massive relay off: its keys come from the node registry ({e})");
            return None;
        }
    };
    let prefix = &args.node_registry.registry_prefix;
    let keys = KeySource::Redis {
        pool: pool.clone(),
        key: crate::relay::keys_key(prefix),
    };
    let state = relay::start(&args.relay, keys, figures.clone());
    // For a listener that widens its subscription to what relay clients hold.
    let wants = relay::wants::WantsWriter::new(pool, prefix, id, figures.clone()).start();
    state.hub.do_send(relay::hub::WantsTo(wants.recipient()));
    let feed = relay::feed::FeedConfig {
        url: args.rabbitmq_url.clone(),
        queue_prefix: args.queue_prefix.clone(),
        node_id: id.to_string(),
    };
    relay::feed::start(feed, state.hub.clone().recipient(), figures);
    Some(state)
}

/// The WDS on the memory store (embedded mode): mount [`session::configure`] with the
/// returned state on the embedded HTTP server.
pub fn start_embedded(
    settings: &WdsSettings,
    store: Store,
    store_addr: &Addr<MemoryStore>,
    registry: &Registry,
) -> Result<web::Data<WdsState>, WdsError> {
    let hub_figures = HubFigures::register(registry, &[]);
    let hub = Hub::new(
        HubConfig {
            results_prefix: String::new(),
            node_id: node_id("tickwire"),
            redis_url: None,
        },
        store.clone(),
        hub_figures.clone(),
    )
    .start();
    store_addr.do_send(Subscribe {
        pattern: "*".into(),
        to: hub.clone().recipient(),
    });
    let figures = WdsFigures {
        sessions: SessionFigures::register(registry, &[]),
        hub: hub_figures,
        relay: RelayFigures::register(registry, &[]),
        store: None,
    };
    wds_state(settings, hub, store, "", figures)
}

/// A running `tickwire-wds`.
pub struct WdsNode {
    pub port: u16,
    pub registry: Arc<Registry>,
    state: web::Data<WdsState>,
    relay: Option<web::Data<RelayState>>,
    http: NodeHttp,
    registrar: Option<Addr<crate::actors::registrar::Registrar>>,
}

impl WdsNode {
    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn wait(self) -> std::io::Result<()> {
        self.http.wait().await
    }

    /// Leaves the registry, refuses new sessions and fails `/ready`, and closes every
    /// session with 1001 `server shutting down` (so that clients reconnect at once,
    /// elsewhere). The HTTP server still answers: [`WdsNode::stop`] ends it.
    pub async fn drain(&self) {
        crate::actors::registrar::deregister(&self.registrar).await;
        if let Some(r) = &self.relay {
            r.hub.do_send(relay::hub::GoingAway);
        }
        self.state.going_away(GOING_AWAY_WAIT).await;
    }

    /// [`WdsNode::drain`], then stops serving.
    pub async fn stop(&self) {
        self.drain().await;
        // Graceful, so that the close frames just queued reach the clients.
        self.http.stop_gracefully().await;
    }
}

/// Longest wait for the sessions to close when the node stops.
const GOING_AWAY_WAIT: Duration = Duration::from_secs(5);

/// Starts a distributed WDS node serving on `http`.
pub fn start(args: WdsArgs, http: TcpListener) -> Result<WdsNode, WdsError> {
    args.common.check_secrets()?;
    let registry = Registry::new();
    let id = node_id("wds");
    let port = http.local_addr()?.port();
    let (_, store) =
        CacheWriter::start_store(CacheWriterConfig::new(&args.wdc.url, "wdc"), &registry)?;
    let figures = WdsFigures {
        sessions: SessionFigures::register(&registry, &[]),
        hub: HubFigures::register(&registry, &[]),
        relay: RelayFigures::register(&registry, &[]),
        store: Some(CacheWriterFigures::for_store(&registry, "wdc").1),
    };
    let hub = Hub::new(
        HubConfig {
            results_prefix: args.results_prefix.clone(),
            node_id: id.clone(),
            redis_url: Some(args.wdc.url.clone()),
        },
        store.clone(),
        figures.hub.clone(),
    )
    .start();
    let relay_figures = figures.relay.clone();
    let state = wds_state(&args.settings, hub, store, &args.results_prefix, figures)?;
    watch_registry_revocations(&args, &state, &registry);
    let relay = start_relay(&args, &id, relay_figures);
    // The client-facing port: /stats and /metrics want the admin token.
    let admin = status::admin_state(&args.common, &registry, &state).protect_stats();
    let admin_data = web::Data::new(admin);
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.workers
    };
    let wds = state.clone();
    let relay_data = relay.clone();
    let write_timeout = Some(Duration::from_secs(args.settings.write_timeout_secs.max(1)));
    let http = NodeHttp::serve_clients(http, workers, write_timeout, move |cfg| {
        cfg.app_data(admin_data.clone())
            .app_data(wds.clone())
            .configure(admin::configure)
            .configure(session::configure)
            .configure(|cfg| {
                if let Some(r) = &relay_data {
                    cfg.app_data(r.clone()).configure(relay::session::configure);
                }
            })
            .route(
                "/",
                web::get().to(|| async {
                    HttpResponse::TemporaryRedirect()
                        .insert_header(("location", "/health"))
                        .finish()
                }),
            );
    })?;
    log::info!(
        "widget data service on port {port}: ws://HOST:{port}/ws (v1), /ws/v2; auth {}",
        if args.settings.auth_enabled {
            "on"
        } else {
            "OFF"
        }
    );
    let registrar = crate::actors::registrar::start(
        &args.node_registry,
        &id,
        "wds",
        port,
        &args.common.admin_token,
        &registry,
    );
    Ok(WdsNode {
        port,
        registry,
        state,
        relay,
        http,
        registrar,
    })
}

/// `tickwire-wds` main: serve until SIGINT/SIGTERM.
pub fn run(args: WdsArgs) -> Result<(), WdsError> {
    let addr = (args.common.server_ip, args.port);
    crate::admin::run_node(
        addr,
        |http| start(args, http),
        |node| async move { node.stop().await },
    )
}
