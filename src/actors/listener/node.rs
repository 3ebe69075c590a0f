//! The listener node's flags and wiring (`tickwire-listener`): the publisher, then per market
//! a supervised listener with its router and, with a lease, its lease keeper; with a Finlight
//! key the news listener and its publisher, leased the same way; then admin HTTP and the
//! control routes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::web;

use super::connection::{Control, Listener, ListenerConfig, Taps};
use super::control::{configure_control, ControlState, MarketLink};
use super::lease::{lease_key, LeaseConfig, LeaseKeeper, Release};
use super::metrics::{
    ConnectionFigures, LeaseFigures, LeaseView, ListenerFigures, NewsFigures, NewsPublisherFigures,
    PublisherFigures, RecorderFigures, RelayPublisherFigures, RouterFigures,
};
use super::news::{NewsArgs, NewsListener};
use super::news_publisher::{NewsPublisher, NewsPublisherConfig};
use super::publisher::{PublisherConfig, QueuePublisher};
use super::recorder::Recorder;
use super::relay_publisher::RelayPublisher;
use super::widen::WidenArgs;
use crate::admin::{AdminState, NodeHttp};
use crate::config::{BrokerArgs, CommonArgs, MassiveArgs};
use crate::massive::Market;
use crate::metrics::Registry;
use crate::recipient::CountedRecipient;

/// Every setting of `tickwire-listener`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenerArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Admin HTTP port.
    #[arg(long, env = "SERVER_PORT", default_value_t = 4200)]
    pub port: u16,

    #[command(flatten)]
    pub node_registry: crate::config::NodeRegistryArgs,

    #[command(flatten)]
    pub massive: MassiveArgs,

    #[command(flatten)]
    pub broker: BrokerArgs,

    /// Shard queues per queue type; a symbol always goes to the same shard.
    #[arg(long, env = "QUEUE_SHARDS", default_value_t = 4)]
    pub shards: u16,

    /// Prefix of every queue name.
    #[arg(long, env = "QUEUE_PREFIX", default_value = "")]
    pub queue_prefix: String,

    /// Batches held while RabbitMQ is slow or down; past it the oldest are dropped (counted).
    #[arg(long, env = "PUBLISH_BUFFER_BATCHES", default_value_t = 10_000)]
    pub publish_buffer: usize,

    /// Publishes in flight at once. Kept small so that a backlog waits in the publish buffer,
    /// where batches of one queue and shard can be merged, rather than inside the AMQP client.
    #[arg(long, env = "PUBLISH_MAX_IN_FLIGHT", default_value_t = 64)]
    pub publish_in_flight: usize,

    /// Under backpressure, merge waiting batches of one queue and shard into messages of up
    /// to this many events (0 = never; one message per frame, queue and shard).
    #[arg(long, env = "PUBLISH_COALESCE_MAX_EVENTS", default_value_t = 500)]
    pub publish_coalesce: usize,

    /// Wait for broker confirms on every publish (slower).
    #[arg(long, env = "MDQ_PUBLISHER_CONFIRMS", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub publisher_confirms: bool,

    /// Hand every frame on to the Massive relay of the WDS nodes (the `tickwire.relay`
    /// exchange; issue 23). Off: no relay exchange, nothing published twice.
    #[arg(long, env = "LISTENER_RELAY", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub relay: bool,

    /// Widening the upstream subscription to what relay clients ask for (off by default).
    #[command(flatten)]
    pub widen: WidenArgs,

    /// Redis for the connection lease (internal state store).
    #[arg(
        long,
        env = "MDC_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    pub redis_url: String,

    /// Decide the connected replica with a Redis lease (off: connect unconditionally).
    #[arg(long, env = "LISTENER_LEASE", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub lease: bool,

    /// Lease time-to-live; a standby takes over within about this long.
    #[arg(long, env = "LEASE_TTL_MS", default_value_t = 10_000)]
    pub lease_ttl_ms: u64,

    /// While Redis cannot be reached, the lease holder keeps its Massive connection this long
    /// past its lease TTL (it cannot tell an outage from losing the lease), then stops.
    #[arg(long, env = "LEASE_REDIS_GRACE_MS", default_value_t = 30_000)]
    pub lease_redis_grace_ms: u64,

    /// Prefix of Redis keys.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "tickwire:")]
    pub redis_prefix: String,

    /// Without a lease: connect at start (off waits for POST /control/start). With a lease, the
    /// lease decides.
    #[arg(long, env = "MDL_AUTO_START_ENABLED", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub auto_start: bool,

    /// Record every raw frame to FILE in the simulator's replay format.
    #[arg(long, env = "LISTENER_RECORD")]
    pub record: Option<PathBuf>,

    /// Massive REST base URL (market status while closed).
    #[arg(
        long = "massive-rest-url",
        env = "MASSIVE_REST_URL",
        default_value = "https://api.massive.com"
    )]
    pub rest_url: String,

    /// While the market is closed, poll market status instead of connecting.
    #[arg(long, env = "MASSIVE_POLL_WHEN_CLOSED", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub poll_when_closed: bool,

    /// Seconds between market-status checks while closed.
    #[arg(long, env = "MASSIVE_CLOSED_POLL_SECS", default_value_t = 60)]
    pub closed_poll_secs: u64,

    /// Frames larger than this many bytes are counted and skipped (Massive's stay below ~1 MB).
    #[arg(long, env = "MASSIVE_MAX_FRAME_BYTES", default_value_t = crate::actors::listener::connection::MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Seconds between pings to Massive.
    #[arg(long, env = "MASSIVE_PING_SECS", default_value_t = 25)]
    pub ping_secs: u64,

    /// Seconds of silence after which the connection is declared dead.
    #[arg(long, env = "MASSIVE_DEAD_AFTER_SECS", default_value_t = 60)]
    pub dead_after_secs: u64,

    /// The Finlight news connection (only with `FINLIGHT_API_KEY`).
    #[command(flatten)]
    pub news: NewsArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("MASSIVE_API_KEY (or POLYGON_API_KEY) is required")]
    NoApiKey,
    #[error("no topic in MASSIVE_SUBSCRIPTIONS belongs to /{0}")]
    NoSubscriptions(String),
    #[error("LISTENER_RELAY_WIDEN reads the relay clients' topics from the node registry: {0}")]
    Widen(String),
    #[error("cannot open the capture file: {0}")]
    Record(std::io::Error),
    #[error(transparent)]
    Lease(#[from] crate::actors::listener::lease::LeaseError),
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    WeakSecret(#[from] crate::token::WeakSecret),
}

/// A running listener node.
pub struct ListenerNode {
    pub port: u16,
    pub registry: Arc<Registry>,
    /// One per market.
    pub listeners: Vec<Addr<Listener>>,
    /// The Finlight listener, when `FINLIGHT_API_KEY` is set.
    pub news: Option<Addr<NewsListener>>,
    news_publisher: Option<NewsPublisherFigures>,
    /// One per market (and the news connection), with a lease.
    leases: Vec<Addr<LeaseKeeper>>,
    figures: ListenerFigures,
    http: NodeHttp,
    registrar: Option<Addr<crate::actors::registrar::Registrar>>,
}

/// How long a stopping listener waits for what it read to reach RabbitMQ.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

impl ListenerNode {
    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    pub async fn wait(self) -> std::io::Result<()> {
        self.http.wait().await
    }

    /// A clean stop: no new frames (every Massive connection closed), the leases handed back
    /// at once (a standby connects at its next poll, not after a TTL), and what was read put
    /// on RabbitMQ (at most [`STOP_GRACE`]; what is still waiting then is counted as lost).
    pub async fn stop(self) {
        crate::actors::registrar::deregister(&self.registrar).await;
        for l in &self.listeners {
            let _ = l.send(Control::Stop).await;
        }
        if let Some(n) = &self.news {
            let _ = n.send(Control::Stop).await;
        }
        for k in &self.leases {
            let _ = k.send(Release).await;
        }
        self.drain(STOP_GRACE).await;
        self.http.stop().await;
    }

    /// Waits until nothing read is left on its way to RabbitMQ, at most `grace`.
    async fn drain(&self, grace: Duration) {
        let (r, p) = (&self.figures.router, &self.figures.publisher);
        let waiting = || {
            let batches = p.buffered.get() + p.in_flight.get() + p.actor.mailbox_depth.get();
            (r.actor.mailbox_depth.get().max(0), batches.max(0))
        };
        let deadline = std::time::Instant::now() + grace;
        loop {
            let (frames, batches) = waiting();
            // Articles still waiting for RabbitMQ count as batches.
            let batches = batches
                + self.news_publisher.as_ref().map_or(0, |n| {
                    (n.buffered.get() + n.actor.mailbox_depth.get()).max(0)
                });
            if frames == 0 && batches == 0 {
                log::info!("stopped: everything read was published");
                return;
            }
            if std::time::Instant::now() >= deadline {
                p.stopped_unpublished(frames, batches);
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl ListenerArgs {
    fn publisher(&self) -> PublisherConfig {
        PublisherConfig {
            url: self.broker.rabbitmq_url.clone(),
            message_ttl_ms: self.broker.message_ttl_ms,
            shards: self.shards.max(1),
            queue_prefix: self.queue_prefix.clone(),
            buffer_batches: self.publish_buffer,
            max_in_flight: self.publish_in_flight.max(1),
            confirms: self.publisher_confirms,
            coalesce_max_events: self.publish_coalesce,
        }
    }

    fn connection(&self, market: Market, api_key: &str) -> ListenerConfig {
        ListenerConfig {
            url: self.massive.ws_url(market),
            api_key: api_key.to_string(),
            market,
            subscriptions: self.massive.subscriptions_for(market),
            ping_every: Duration::from_secs(self.ping_secs.max(1)),
            dead_after: Duration::from_secs(self.dead_after_secs.max(2)),
            max_connections_cooldown: super::connection::MAX_CONNECTIONS_COOLDOWN,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            start_idle: self.lease || !self.auto_start,
            rest_url: self.poll_when_closed.then(|| self.rest_url.clone()),
            closed_poll: Duration::from_secs(self.closed_poll_secs.max(1)),
            max_frame_bytes: self.max_frame_bytes.max(1024),
            widen: self.widen.config(),
        }
    }

    /// The lease of one connection: a market's (`stocks`), or the news one's.
    fn lease(&self, market: &str, api_key: &str) -> LeaseConfig {
        LeaseConfig {
            redis_url: self.redis_url.clone(),
            key: lease_key(&self.redis_prefix, api_key, market),
            holder: format!(
                "{}-{}",
                crate::config::hostname_or("listener"),
                std::process::id()
            ),
            ttl: Duration::from_millis(self.lease_ttl_ms.max(1000)),
            redis_grace: Duration::from_millis(self.lease_redis_grace_ms),
            market: market.to_string(),
        }
    }

    fn news_publisher(&self) -> NewsPublisherConfig {
        NewsPublisherConfig {
            url: self.broker.rabbitmq_url.clone(),
            queue_prefix: self.queue_prefix.clone(),
            message_ttl_ms: self.broker.news_message_ttl_ms,
            buffer: 10_000,
        }
    }
}

/// The lease name of the news connection (its figures' `market` label).
pub const NEWS_LEASE: &str = "news";

/// The Finlight listener and its publisher, with a lease like a market's, when a Finlight
/// key is set.
#[allow(clippy::type_complexity)]
fn start_news(
    args: &ListenerArgs,
    registry: &Arc<Registry>,
    leases: &mut Vec<Addr<LeaseKeeper>>,
) -> Result<(Option<Addr<NewsListener>>, Option<NewsPublisherFigures>), NodeError> {
    let key = args.news.api_key.clone();
    if key.is_empty() {
        return Ok((None, None));
    }
    let pf = NewsPublisherFigures::register(registry, &[]);
    let publisher = NewsPublisher::new(args.news_publisher(), pf.clone()).start();
    let mut cfg = args.news.config(&args.news.url, &key);
    cfg.start_idle = args.lease || !args.auto_start;
    let (listener, _) = super::news::start(
        cfg,
        CountedRecipient::of(&publisher, pf.actor.clone()),
        NewsFigures::register(registry, &[]),
    );
    if args.lease {
        let f = LeaseFigures::for_market(registry, NEWS_LEASE);
        let keeper = LeaseKeeper::new(
            args.lease(NEWS_LEASE, &key),
            listener.clone().recipient(),
            f,
        )?;
        leases.push(keeper.start());
    }
    log::info!("news listener: {}", args.news.url);
    Ok((Some(listener), Some(pf)))
}

/// Widening: every market's listener hears what the WDS nodes' relay clients hold, read from
/// the node registry's Redis (where each WDS writes its own).
fn watch_relay_wants(args: &ListenerArgs, links: &[MarketLink]) -> Result<(), NodeError> {
    if !args.relay {
        return Err(NodeError::Widen("LISTENER_RELAY is off".into()));
    }
    let url = &args.node_registry.registry_url;
    if url.is_empty() {
        return Err(NodeError::Widen("NODE_REGISTRY_URL is empty".into()));
    }
    let pool = crate::redis_pool::open(url).map_err(|e| NodeError::Widen(e.to_string()))?;
    let listeners = links
        .iter()
        .map(|l| {
            (
                l.market,
                l.listener.clone().recipient(),
                l.connection.clone(),
            )
        })
        .collect();
    super::widen::watch(pool, args.node_registry.registry_prefix.clone(), listeners);
    log::info!("widening the upstream subscription to what relay clients subscribe");
    Ok(())
}

/// Starts the node on `http` (port 0 in tests) inside the current actix System: the
/// publisher, then per market a supervised listener (with its router) and, with a lease,
/// its lease keeper; then admin HTTP and the control routes.
pub fn start(args: ListenerArgs, http: TcpListener) -> Result<ListenerNode, NodeError> {
    args.common.check_secrets()?;
    let api_key = args.massive.key.resolve();
    if api_key.is_empty() {
        return Err(NodeError::NoApiKey);
    }
    let markets = args.massive.markets.0.clone();
    if let Some(m) = markets
        .iter()
        .find(|m| args.massive.subscriptions_for(**m).is_empty())
    {
        return Err(NodeError::NoSubscriptions(m.path().to_string()));
    }
    let registry = Registry::new();
    let port = http.local_addr()?.port();

    let figures = ListenerFigures {
        publisher: PublisherFigures::register(&registry, &[]),
        router: RouterFigures::register(&registry, &[]),
    };
    let publisher = QueuePublisher::new(args.publisher(), figures.publisher.clone()).start();
    let publisher = CountedRecipient::of(&publisher, figures.publisher.actor.clone());
    let recorder = match &args.record {
        Some(path) => {
            let f = RecorderFigures::register(&registry, &[]);
            let r = Recorder::create(path, f.clone()).map_err(NodeError::Record)?;
            log::info!("recording raw frames to {}", path.display());
            Some(CountedRecipient::of(&r.start(), f.actor))
        }
        None => None,
    };
    let relay = args.relay.then(|| {
        let f = RelayPublisherFigures::register(&registry, &[]);
        let p = RelayPublisher::new(&args.broker.rabbitmq_url, &args.queue_prefix, f.clone());
        CountedRecipient::of(&p.start(), f.actor)
    });

    // One supervised listener (and lease) per market: one connection per (key, market).
    let mut links = Vec::new();
    let mut leases = Vec::new();
    for market in markets {
        let cfg = args.connection(market, &api_key);
        let taps = Taps {
            recorder: recorder.clone(),
            relay: relay.clone(),
        };
        let (listener, health) = super::connection::start_with(
            cfg,
            args.shards.max(1),
            publisher.clone(),
            taps,
            &registry,
        );
        let lease = if args.lease {
            let f = LeaseFigures::for_market(&registry, market.path());
            let keeper = LeaseKeeper::new(
                args.lease(market.path(), &api_key),
                listener.clone().recipient(),
                f.clone(),
            )?;
            let holder = keeper.holder_handle();
            leases.push(keeper.start());
            Some(LeaseView { figures: f, holder })
        } else {
            None
        };
        log::info!("listener for /{market}: {}", args.massive.ws_url(market));
        links.push(MarketLink {
            market,
            listener,
            health,
            connection: ConnectionFigures::for_market(&registry, market),
            lease,
        });
    }

    if args.widen.enabled {
        watch_relay_wants(&args, &links)?;
    }
    let (news, news_publisher) = start_news(&args, &registry, &mut leases)?;

    let admin = AdminState::new("Massive Data Listener", registry.clone()).with_identity(
        &args.common.container_image,
        &args.common.image_version,
        &args.common.admin_token,
    );
    let admin = web::Data::new(super::status::report(
        admin,
        figures.clone(),
        links.clone(),
        news.clone(),
        args.auto_start,
    ));
    let listeners = links.iter().map(|l| l.listener.clone()).collect();
    let feeds = args.massive.allowed_feeds();
    let control = ControlState::new(links, admin.clone(), args.massive.secure, feeds);
    let control = web::Data::new(control);
    let http = NodeHttp::serve(http, move |cfg| {
        cfg.app_data(admin.clone())
            .app_data(control.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .configure(crate::admin::configure)
            .configure(configure_control);
    })?;
    log::info!("listener node: admin on port {port}");
    let id = crate::config::node_id("listener");
    let registrar = crate::actors::registrar::start(
        &args.node_registry,
        &id,
        "listener",
        port,
        &args.common.admin_token,
        &registry,
    );
    Ok(ListenerNode {
        port,
        registry,
        listeners,
        news,
        news_publisher,
        leases,
        figures,
        http,
        registrar,
    })
}

/// Binds the port and runs until SIGINT/SIGTERM; what `tickwire-listener`'s main calls.
pub fn run(args: ListenerArgs) -> Result<(), NodeError> {
    let addr = (args.common.server_ip, args.port);
    crate::admin::run_node(
        addr,
        |http| start(args, http),
        |node| async move { node.stop().await },
    )
}
