//! Configuration shared by every node: clap argument groups, each flag backed by an env var.
//!
//! Env names follow the reference system wherever the concept is the same (`SERVER_PORT`,
//! `LOG_LEVEL`, `MASSIVE_*`, `RABBITMQ_URL`, `MARKET_DATA_MESSAGE_TTL`, ...), so existing
//! deployment manifests keep working. `docs/configuration.md` lists every one with its default.

use std::net::IpAddr;

use clap::Args;

use crate::massive::control::Topic;
use crate::massive::Market;

/// Flags every node has: where its HTTP server listens, logging, build identity, admin token.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Address the node's HTTP server binds to.
    #[arg(long = "server-ip", env = "SERVER_IP", default_value = "0.0.0.0")]
    pub server_ip: IpAddr,

    /// Log level (error, warn, info, debug, trace); RUST_LOG, when set, overrides it.
    #[arg(long = "log-level", env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Image name reported by /health (reference contract).
    #[arg(
        long = "container-image",
        env = "CONTAINER_IMAGE",
        default_value = "Unknown"
    )]
    pub container_image: String,

    /// Image version reported by /health; smoke tests poll for it.
    #[arg(
        long = "image-version",
        env = "IMAGE_VERSION",
        default_value = "Unknown"
    )]
    pub image_version: String,

    /// Bearer token required by admin routes that change state. Empty disables those routes.
    #[arg(
        long = "admin-token",
        env = "ADMIN_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub admin_token: String,
}

impl CommonArgs {
    /// Refuses an admin token too short to be trusted (empty: the admin routes are off).
    pub fn check_secrets(&self) -> Result<(), crate::token::WeakSecret> {
        crate::token::check_secret("ADMIN_TOKEN", &self.admin_token)
    }
}

/// Where a distributed node announces itself for the control plane (node registry).
#[derive(Debug, Clone, Args)]
pub struct NodeRegistryArgs {
    /// Redis holding the node registry; empty: do not register.
    #[arg(
        long = "node-registry-url",
        env = "NODE_REGISTRY_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub registry_url: String,

    /// Prefix of the registry keys (`{prefix}nodes:{id}`).
    #[arg(
        long = "node-registry-prefix",
        env = "NODE_REGISTRY_PREFIX",
        default_value = "tickwire:"
    )]
    pub registry_prefix: String,

    /// Admin URL the control plane uses for this node; empty: `http://{hostname}:{port}`.
    #[arg(long = "node-admin-url", env = "NODE_ADMIN_URL", default_value = "")]
    pub admin_url: String,

    /// Seconds between heartbeats; a node missing three is dropped from the registry.
    #[arg(
        long = "node-heartbeat-secs",
        env = "NODE_HEARTBEAT_SECS",
        default_value_t = 5
    )]
    pub heartbeat_secs: u64,
}

/// This machine's host name (containers: the container's), for node ids and default URLs;
/// `fallback` when it cannot be read.
pub fn hostname_or(fallback: &str) -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback.into())
}

/// A node's identity in leases and registries: host, process and a sequence (several nodes
/// may share a process in tests and embedded mode; the sequence keeps them apart).
pub fn node_id(role: &str) -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{n}", hostname_or(role), std::process::id())
}

/// How to reach Massive (or the simulator).
/// The Massive API key (listener, processor REST, embedded mode).
#[derive(Debug, Clone, Args)]
pub struct ApiKeyArgs {
    /// Massive API key; falls back to POLYGON_API_KEY. In embedded mode, empty starts the
    /// built-in simulator and set connects to real Massive.
    #[arg(
        long = "massive-api-key",
        env = "MASSIVE_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub api_key: String,
}

impl ApiKeyArgs {
    /// The key from its flag (`MASSIVE_API_KEY`), else the reference's fallback
    /// `POLYGON_API_KEY`; empty when neither is set.
    pub fn resolve(&self) -> String {
        if self.api_key.is_empty() {
            std::env::var("POLYGON_API_KEY").unwrap_or_default()
        } else {
            self.api_key.clone()
        }
    }
}

/// The Redis holding client-facing results and their pub/sub (processors write it, the
/// widget data service reads it).
#[derive(Debug, Clone, Args)]
pub struct WdcArgs {
    #[arg(
        long = "wdc-redis-url",
        env = "WDC_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/1"
    )]
    pub url: String,
}

#[derive(Debug, Clone, Args)]
pub struct MassiveArgs {
    #[command(flatten)]
    pub key: ApiKeyArgs,

    /// Feed host: socket.massive.com, delayed.massive.com, ... or HOST:PORT of a simulator.
    #[arg(
        long = "massive-feed",
        env = "MASSIVE_FEED",
        default_value = "socket.massive.com"
    )]
    pub feed: String,

    /// Market path(s): stocks, options, forex, crypto, indices, futures[/venue]; a comma list
    /// (stocks,crypto) runs one connection per market.
    #[arg(long = "massive-market", env = "MASSIVE_MARKET", default_value = "stocks", value_parser = parse_markets)]
    pub markets: Markets,

    /// Topics as a JSON array (["A.*","T.AAPL"]) or a comma list (A.*,T.AAPL).
    #[arg(long = "massive-subscriptions", env = "MASSIVE_SUBSCRIPTIONS", default_value = "A.*",
          value_parser = parse_subscriptions)]
    pub subscriptions: Subscriptions,

    /// Use wss:// and https:// (false for a local simulator).
    #[arg(long = "massive-secure", env = "MASSIVE_SECURE", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub secure: bool,

    /// Feed hosts `PUT /control/feed` may point a listener at (comma list of HOST or
    /// HOST:PORT), besides `MASSIVE_FEED` itself: the listener sends its API key to whatever
    /// it connects to, so an admin token must not be enough to send it anywhere.
    #[arg(long = "massive-feed-allowlist", env = "MASSIVE_FEED_ALLOWLIST",
          default_value = MASSIVE_FEEDS)]
    pub feed_allowlist: String,
}

/// Massive's feed hosts (massive.md §1), and the Polygon names they still answer to.
pub const MASSIVE_FEEDS: &str = "socket.massive.com,delayed.massive.com,business.massive.com,\
delayed-business.massive.com,polyfeed.massive.com,polyfeedplus.massive.com,nasdaqfeed.massive.com,\
starterfeed.massive.com,socket.polygon.io,delayed.polygon.io";

/// Whether `feed` (HOST or HOST:PORT) is one of `allowed` (entries HOST, matching any port,
/// or HOST:PORT), case aside.
pub fn feed_allowed(feed: &str, allowed: &[&str]) -> bool {
    let feed = feed.trim().to_ascii_lowercase();
    let host = feed.rsplit_once(':').map_or(feed.as_str(), |(h, _)| h);
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        !a.is_empty() && (a == feed || (!a.contains(':') && a == host))
    })
}

impl MassiveArgs {
    /// The hosts `PUT /control/feed` accepts: the allowlist and the configured feed.
    pub fn allowed_feeds(&self) -> Vec<String> {
        self.feed_allowlist
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .chain(std::iter::once(self.feed.trim_end_matches('/').to_string()))
            .collect()
    }

    /// `ws[s]://<feed>/<market>`.
    pub fn ws_url(&self, market: Market) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!(
            "{scheme}://{}/{}",
            self.feed.trim_end_matches('/'),
            market.path()
        )
    }

    /// The topics that belong to `market` (those whose channel it carries).
    pub fn subscriptions_for(&self, market: Market) -> Vec<Topic> {
        self.subscriptions
            .0
            .iter()
            .filter(|t| market.knows_channel(&t.channel))
            .cloned()
            .collect()
    }
}

/// One or more market paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markets(pub Vec<Market>);

/// Parses `MASSIVE_MARKET`: one market path or a comma list, without repeats.
pub fn parse_markets(s: &str) -> Result<Markets, String> {
    let mut out: Vec<Market> = Vec::new();
    for m in s.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let m: Market = m
            .parse()
            .map_err(|e: crate::massive::MarketError| e.to_string())?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("no market given".into());
    }
    Ok(Markets(out))
}

/// RabbitMQ settings.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// AMQP URL of the broker.
    #[arg(
        long = "rabbitmq-url",
        env = "RABBITMQ_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub rabbitmq_url: String,

    /// Queue message TTL in milliseconds (x-message-ttl): freshness over durability.
    #[arg(
        long = "message-ttl",
        env = "MARKET_DATA_MESSAGE_TTL",
        default_value_t = 5000
    )]
    pub message_ttl_ms: u32,

    /// The `news` queue's message TTL in milliseconds (15 minutes: an article stays news
    /// longer than a quote stays a quote). Listener and processor must agree.
    #[arg(
        long = "news-message-ttl",
        env = "NEWS_MESSAGE_TTL",
        default_value_t = crate::queue::topology::NEWS_TTL_MS
    )]
    pub news_message_ttl_ms: u32,
}

/// A parsed subscription list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriptions(pub Vec<Topic>);

/// Parses `MASSIVE_SUBSCRIPTIONS`: a JSON array of strings or a comma-separated list.
pub fn parse_subscriptions(s: &str) -> Result<Subscriptions, String> {
    let trimmed = s.trim();
    let items: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| format!("subscriptions JSON array: {e}"))?
    } else {
        trimmed.split(',').map(str::to_string).collect()
    };
    let mut topics = Vec::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        let topic = Topic::parse(item).ok_or_else(|| {
            format!("subscription {item:?} is not CHANNEL.SYMBOL (e.g. A.* or T.AAPL)")
        })?;
        topics.push(topic);
    }
    if topics.is_empty() {
        return Err("no subscriptions given".to_string());
    }
    Ok(Subscriptions(topics))
}

/// A binary's exit status from its node's result: the error is logged, then exit code 1.
pub fn exit_code<E: std::fmt::Display>(result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Starts env_logger at `level` unless RUST_LOG says otherwise. lapin and other tracing-based
/// crates reach it through tracing's `log` feature. Safe to call more than once (tests).
pub fn init_logging(level: &str) {
    init_logging_with(level, &[]);
}

/// Like [`init_logging`], with extra `target=level` directives after the level (RUST_LOG still
/// wins). The simulator uses it to silence actix-http's error line for the connections it
/// aborts on purpose; it counts those itself.
pub fn init_logging_with(level: &str, directives: &[&str]) {
    let mut filter = level.to_ascii_lowercase();
    for d in directives {
        filter.push(',');
        filter.push_str(d);
    }
    let env = env_logger::Env::default().default_filter_or(filter);
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_allowed_feeds_pass() {
        let allowed = ["socket.massive.com", "127.0.0.1:4199"];
        assert!(super::feed_allowed("socket.massive.com", &allowed));
        assert!(super::feed_allowed("SOCKET.massive.com:443", &allowed));
        assert!(super::feed_allowed("127.0.0.1:4199", &allowed));
        assert!(!super::feed_allowed("127.0.0.1:4200", &allowed));
        assert!(!super::feed_allowed("evil.example", &allowed));
        assert!(!super::feed_allowed(
            "socket.massive.com.evil.example",
            &allowed
        ));
        assert!(!super::feed_allowed("", &allowed));
    }

    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        m: MassiveArgs,
    }

    #[test]
    fn subscriptions_accept_json_and_comma_lists() {
        let a = parse_subscriptions(r#"["A.*","T.BRK.A"]"#).unwrap();
        let b = parse_subscriptions("A.*, T.BRK.A").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0[1].symbol, "BRK.A");
        assert!(parse_subscriptions("[1]").is_err());
        assert!(parse_subscriptions("AAPL")
            .unwrap_err()
            .contains("CHANNEL.SYMBOL"));
        assert!(parse_subscriptions(" ").is_err());
    }

    #[test]
    fn massive_url_from_flags() {
        let t = T::parse_from([
            "x",
            "--massive-feed",
            "127.0.0.1:9000",
            "--massive-secure",
            "false",
            "--massive-market",
            "Stocks",
        ]);
        assert_eq!(t.m.ws_url(t.m.markets.0[0]), "ws://127.0.0.1:9000/stocks");
        let t = T::parse_from(["x"]);
        assert_eq!(
            t.m.ws_url(Market::Stocks),
            "wss://socket.massive.com/stocks"
        );
        assert_eq!(t.m.subscriptions.0.len(), 1);
        let t = T::parse_from([
            "x",
            "--massive-market",
            "stocks, crypto,stocks",
            "--massive-subscriptions",
            "A.*,XT.*,T.AAPL",
        ]);
        assert_eq!(t.m.markets.0, vec![Market::Stocks, Market::Crypto]);
        assert_eq!(t.m.subscriptions_for(Market::Stocks).len(), 2);
        assert_eq!(t.m.subscriptions_for(Market::Crypto)[0].to_string(), "XT.*");
        assert!(parse_markets("stocks,bonds").is_err());
    }
}
