//! The processing pipeline both modes share: one processor per shard (spread over a few
//! threads), the enricher, the market-status poller, the elected leaderboard publisher and the
//! news processor,
//! over a results store and a state store given as [`Store`] handles (Redis writers in the
//! processor node, the memory store in embedded mode).

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};

use super::board_publisher::{BoardPublisher, BoardPublisherConfig};
use super::enricher::{Enricher, EnricherConfig, EnricherHandle};
use super::market_status::MarketStatus;
use super::metrics::{
    BoardFigures, EnricherFigures, MarketStatusFigures, NewsFigures, PoolFigures, ShardFigures,
};
use super::news::NewsProcessor;
use super::pool::ProcessorPool;
use super::shard::{ProcessorConfig, RestAccess, ShardHandle};
use crate::analyzers::news::NewsConfig;
use crate::analyzers::raw_routes::RawRoutes;
use crate::analyzers::shard::ShardConfig;
use crate::metrics::Registry;
use crate::queue::{EventBatch, NewsArticle};
use crate::recipient::CountedRecipient;
use crate::store::Store;

/// Settings of the processing pipeline (both modes).
#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Threads (arbiters) the processors are spread over; 0 = one per CPU.
    #[arg(long, env = "PROCESSOR_THREADS", default_value_t = 0)]
    pub threads: usize,

    /// Raw routes: comma list of quotes, luld, agg, trades, unknown (or none); the
    /// dashboard's chart reads `agg`.
    #[arg(
        long,
        env = "PROCESSOR_RAW_ROUTES",
        default_value = "quotes,luld,agg,unknown"
    )]
    pub raw_routes: RawRoutes,

    /// Top-trades statistics (tta:*:widget).
    #[arg(long, env = "PROCESSOR_TOP_TRADES", default_value = "false",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub top_trades: bool,

    /// HOD/LOD alerts kept per list.
    #[arg(long, env = "DRA_CACHE_LIST_MAX", default_value_t = 1000)]
    pub alert_cap: usize,

    /// Prefix of every client-facing key and channel (empty: the reference's names).
    #[arg(long, env = "WDC_KEY_PREFIX", default_value = "")]
    pub results_prefix: String,

    /// Prefix of internal keys (checkpoints, leases, enrichment cache).
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "tickwire:")]
    pub state_prefix: String,

    /// Seconds between checkpoints of a shard's state (when it changed).
    #[arg(long, env = "PROCESSOR_CHECKPOINT_SECS", default_value_t = 1)]
    pub checkpoint_secs: u64,

    /// REST enrichment (previous day, average volume, free float).
    #[arg(long, env = "PROCESSOR_ENRICHMENT", default_value = "true",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub enrichment: bool,

    /// Back-fill each symbol's session highs and lows so far from the day's minute bars
    /// (Massive REST) before it may raise a HOD/LOD alert; its alerts are held until then.
    /// Off without an API key.
    #[arg(long = "backfill", env = "PROCESSOR_BACKFILL", default_value = "true",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub backfill: bool,

    /// Warm the enrichment cache for the whole market once a day (full-market snapshot,
    /// grouped daily bars, the float list: about 33 calls) before any per-ticker call.
    #[arg(long = "enrich-bulk", env = "ENRICH_BULK", default_value = "true",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub enrich_bulk: bool,

    /// Tickers enriched at once per node.
    #[arg(long, env = "ENRICH_CONCURRENCY", default_value_t = 8)]
    pub enrich_concurrency: usize,

    /// Massive REST base URL (enrichment and market status).
    #[arg(
        long,
        env = "MASSIVE_REST_URL",
        default_value = "https://api.massive.com"
    )]
    pub rest_url: String,

    /// Massive API key for REST.
    #[command(flatten)]
    pub key: crate::config::ApiKeyArgs,

    /// Seconds between market status polls (trading calendar); 0 turns polling off.
    #[arg(long, env = "MARKET_STATUS_POLL_SECS", default_value_t = 30)]
    pub status_poll_secs: u64,

    /// Articles kept in `news:feed:latest`.
    #[arg(long, env = "NEWS_FEED_LIST_MAX", default_value_t = 10_000)]
    pub news_feed_cap: usize,

    /// Seconds `news:feed:latest` lives after its last article.
    #[arg(long, env = "NEWS_FEED_CACHE_TTL", default_value_t = 172_800)]
    pub news_feed_ttl_secs: u64,

    /// Articles kept per `news:ticker:{T}`.
    #[arg(long, env = "NEWS_TICKER_LIST_MAX", default_value_t = 100)]
    pub news_ticker_cap: usize,

    /// Seconds a `news:ticker:{T}` list lives after its last article.
    #[arg(long, env = "NEWS_TICKER_CACHE_TTL", default_value_t = 604_800)]
    pub news_ticker_ttl_secs: u64,
}

/// The running pipeline.
pub struct Pipeline {
    pub pool: Addr<ProcessorPool>,
    /// Every shard's processor, in shard order.
    pub shards: Vec<ShardHandle>,
    pool_figures: PoolFigures,
    pub boards: Addr<BoardPublisher>,
    pub board_figures: BoardFigures,
    /// Files news articles (from the news queue, or embedded mode's news listener).
    pub news: Addr<NewsProcessor>,
    pub news_figures: NewsFigures,
}

impl Pipeline {
    /// Where a router sends batches in embedded mode: the pool, which routes them by shard.
    pub fn input(&self) -> CountedRecipient<EventBatch> {
        CountedRecipient::of(&self.pool, self.pool_figures.actor.clone())
    }

    /// Where news articles go: the news processor.
    pub fn news_input(&self) -> CountedRecipient<NewsArticle> {
        CountedRecipient::of(&self.news, self.news_figures.actor.clone())
    }

    /// Each shard's figures, in shard order.
    pub fn shard_figures(&self, registry: &Registry) -> Vec<ShardFigures> {
        (0..self.shards.len() as u16)
            .map(|s| ShardFigures::for_shard(registry, s).1)
            .collect()
    }
}

impl PipelineArgs {
    fn enricher(&self, api_key: &str, holder: &str) -> EnricherConfig {
        EnricherConfig {
            rest_url: self.rest_url.clone(),
            api_key: api_key.to_string(),
            prefix: self.state_prefix.clone(),
            concurrency: self.enrich_concurrency.max(1),
            holder: holder.to_string(),
            lock_ttl: Duration::from_secs(30),
            retries: 3,
            failure_memo: Duration::from_secs(60),
            bulk: self.enrich_bulk,
        }
    }

    fn shard(&self, shard: u16, shards: u16) -> ProcessorConfig {
        ProcessorConfig {
            shard,
            shards,
            analyzers: ShardConfig {
                results_prefix: self.results_prefix.clone(),
                raw: self.raw_routes,
                top_trades: self.top_trades,
                alert_cap: self.alert_cap.max(1),
                backfill: self.backfill,
            },
            state_prefix: self.state_prefix.clone(),
            checkpoint_every: Duration::from_secs(self.checkpoint_secs.max(1)),
            rest: None,
        }
    }

    fn boards(&self, shards: u16, holder: &str) -> BoardPublisherConfig {
        BoardPublisherConfig {
            shards,
            state_prefix: self.state_prefix.clone(),
            results_prefix: self.results_prefix.clone(),
            holder: holder.to_string(),
            every: Duration::from_secs(1),
            top_trades: self.top_trades,
        }
    }

    fn news(&self) -> NewsConfig {
        NewsConfig {
            results_prefix: self.results_prefix.clone(),
            feed_cap: self.news_feed_cap.max(1),
            feed_ttl_secs: self.news_feed_ttl_secs,
            ticker_cap: self.news_ticker_cap.max(1),
            ticker_ttl_secs: self.news_ticker_ttl_secs,
        }
    }

    fn threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// Starts processors for `shards` shards plus the enricher, market status and the
/// leaderboard publisher, on the given stores.
pub fn start_pipeline(
    args: &PipelineArgs,
    shards: u16,
    holder: &str,
    results_store: &Store,
    state_store: &Store,
    registry: &Arc<Registry>,
) -> Pipeline {
    let shards = shards.max(1);
    let api_key = args.key.resolve();
    if args.enrichment && api_key.is_empty() {
        log::warn!("no Massive API key: REST enrichment is off");
    }
    let enricher = (args.enrichment && !api_key.is_empty()).then(|| {
        let f = EnricherFigures::register(registry, &[]);
        let e = Enricher::new(
            args.enricher(&api_key, holder),
            state_store.clone(),
            f.clone(),
        );
        EnricherHandle::of(&e.start(), f.actor)
    });
    // Back-fills need REST: without a key the symbols alert from their first bar, as before.
    let rest = (args.backfill && !api_key.is_empty()).then(|| RestAccess {
        url: args.rest_url.clone(),
        api_key: api_key.clone(),
    });
    let configs = (0..shards)
        .map(|s| {
            let mut c = args.shard(s, shards);
            c.analyzers.backfill = rest.is_some();
            c.rest = rest.clone();
            c
        })
        .collect();
    let pool = ProcessorPool::new(
        configs,
        args.threads(),
        results_store,
        state_store,
        enricher,
        registry,
    );
    let (shard_handles, pool_figures) = (pool.shards(), pool.figures());
    let pool = pool.start();
    if args.status_poll_secs > 0 && !api_key.is_empty() {
        let every = Duration::from_secs(args.status_poll_secs);
        let f = MarketStatusFigures::register(registry, &[]);
        MarketStatus::new(&args.rest_url, &api_key, every, pool.clone().recipient(), f).start();
    }
    let board_figures = BoardFigures::register(registry, &[]);
    let boards = BoardPublisher::new(
        args.boards(shards, holder),
        results_store.clone(),
        state_store.clone(),
        board_figures.clone(),
    )
    .start();
    let news_figures = NewsFigures::register(registry, &[]);
    let news = NewsProcessor::new(args.news(), results_store.clone(), news_figures.clone()).start();
    Pipeline {
        pool,
        shards: shard_handles,
        pool_figures,
        boards,
        board_figures,
        news,
        news_figures,
    }
}
