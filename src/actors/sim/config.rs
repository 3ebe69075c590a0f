//! `tickwire-sim` configuration: every flag has an env var (`SIM_*`, plus the common ones).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::auth::{parse_key_specs, KeySpecs};
use crate::config::CommonArgs;

/// How the simulator ends a connection it is done with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CloseMode {
    /// Drop the TCP connection without a WebSocket close frame.
    Abort,
    /// Send a close frame (code 1000 after auth failures, 1008 after eviction), then close.
    Close,
}

/// What happens to a client whose outbound buffer overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlowConsumerMode {
    /// Drop the connection with no close frame (what Massive does in practice).
    Abort,
    /// Send a `slow_consumer` status, then close code 1008.
    Status,
}

/// Whether subscription acks go one per frame or together in one array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AckMode {
    Batched,
    Single,
}

/// What a malformed-frame fault looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MalformedMode {
    /// One element with a wrong-typed field inside an otherwise valid array.
    Element,
    /// A frame whose JSON is cut short.
    Truncated,
}

/// Every setting of the simulator.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// TCP port for WebSocket, REST and admin routes (0 picks a free one).
    #[arg(long, env = "SERVER_PORT", default_value_t = 4199)]
    pub port: u16,

    /// HTTP worker threads.
    #[arg(long, env = "SIM_WORKERS", default_value_t = 2)]
    pub workers: usize,

    /// Accepted API keys, comma separated. Each is KEY[:MARKETS[:DENIED]]: MARKETS and DENIED
    /// are `+`-separated market paths and channel prefixes; an empty MARKETS means all markets.
    /// Example: `demo,stocksonly:stocks,nonoi:stocks+options:NOI+FMV`.
    #[arg(long = "api-keys", env = "SIM_API_KEYS", default_value = "demo", value_parser = parse_key_specs,
          hide_env_values = true)]
    pub api_keys: KeySpecs,

    /// Seed of the synthetic market: the same seed gives the same tickers and stream.
    #[arg(long, env = "SIM_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Number of tickers in the synthetic market.
    #[arg(long, env = "SIM_TICKERS", default_value_t = 500)]
    pub tickers: usize,

    /// Trades + quotes per simulated second of the day before the start (from 04:00 ET):
    /// the day's history, played quietly at start so that REST minute bars
    /// (`/v2/aggs/ticker/{T}/range/1/minute/…`) cover the day so far and the stream continues
    /// from it. 0: the day begins at the start.
    #[arg(
        long = "history-rate",
        env = "SIM_HISTORY_RATE",
        default_value_t = 20.0
    )]
    pub history_rate: f64,

    /// Trades + quotes per wall-clock second in the regular session (up to millions).
    #[arg(long, env = "SIM_RATE", default_value_t = 2000.0)]
    pub rate: f64,

    /// Share of generated events that are trades; the rest are NBBO quotes.
    #[arg(long, env = "SIM_TRADE_RATIO", default_value_t = 0.25)]
    pub trade_ratio: f64,

    /// Share of trades that arrive late and re-send a corrected AM bar.
    #[arg(long, env = "SIM_LATE_TRADE_RATIO", default_value_t = 0.002)]
    pub late_trade_ratio: f64,

    /// One FMV event per this many trades (0 = none).
    #[arg(long, env = "SIM_FMV_EVERY", default_value_t = 20)]
    pub fmv_every: u32,

    /// Simulated start: `now`, RFC 3339, or HH:MM[:SS] ET on the latest trading day.
    #[arg(long, env = "SIM_START_TIME", default_value = "09:29:00")]
    pub start_time: String,

    /// Simulated seconds per wall second (60 runs an hour a minute).
    #[arg(long, env = "SIM_SPEED", default_value_t = 1.0)]
    pub speed: f64,

    /// Maximum events per data frame (1-500).
    #[arg(long, env = "SIM_BATCH_SIZE", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=500))]
    pub batch_size: u32,

    /// Feed tick = frame flush interval in milliseconds (1-10).
    #[arg(long, env = "SIM_FLUSH_INTERVAL_MS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=10))]
    pub flush_interval_ms: u64,

    /// Maximum bytes of one data frame (below 1,000,000, as Massive's frames are).
    #[arg(long, env = "SIM_MAX_FRAME_BYTES", default_value_t = 999_000,
          value_parser = clap::value_parser!(u32).range(1024..1_000_000))]
    pub max_frame_bytes: u32,

    /// Milliseconds a new connection has to send `auth` before `auth_timeout`.
    #[arg(long, env = "SIM_AUTH_TIMEOUT_MS", default_value_t = 10_000)]
    pub auth_timeout_ms: u64,

    /// How to end a connection after `auth_failed` / `auth_timeout`.
    #[arg(long, env = "SIM_AUTH_FAILURE_CLOSE", value_enum, default_value_t = CloseMode::Close)]
    pub auth_failure_close: CloseMode,

    /// Finlight API keys the news stream (`/finlight`, `/finlight/raw`) accepts, comma
    /// separated; any other key is refused at the handshake with 401.
    #[arg(
        long = "finlight-keys",
        env = "SIM_FINLIGHT_API_KEYS",
        default_value = "demo",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub finlight_keys: Vec<String>,

    /// News articles per second (wall clock) on the news stream; 0 for none.
    #[arg(long = "news-per-sec", env = "SIM_NEWS_PER_SEC", default_value_t = 1.0)]
    pub news_per_sec: f64,

    /// Refuse this many news handshakes with 429 (`Retry-After: 1`) before admitting any
    /// (fault injection for clients' retry logic).
    #[arg(
        long = "finlight-reject",
        env = "SIM_FINLIGHT_REJECT_429",
        default_value_t = 0
    )]
    pub finlight_reject: u32,

    /// Connections allowed per (API key, market); the oldest is evicted past it.
    #[arg(long, env = "SIM_MAX_CONNECTIONS", default_value_t = 1)]
    pub max_connections: usize,

    /// How to end an evicted connection after its `max_connections` status.
    #[arg(long, env = "SIM_EVICTION_CLOSE", value_enum, default_value_t = CloseMode::Close)]
    pub eviction_close: CloseMode,

    /// Bytes a client may have waiting in its outbound buffer before it is killed.
    #[arg(long, env = "SIM_CLIENT_BUFFER_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub client_buffer_bytes: usize,

    /// How a slow consumer is killed.
    #[arg(long, env = "SIM_SLOW_CONSUMER", value_enum, default_value_t = SlowConsumerMode::Abort)]
    pub slow_consumer: SlowConsumerMode,

    /// Subscription acks batched in one frame or one per frame.
    #[arg(long, env = "SIM_ACK_MODE", value_enum, default_value_t = AckMode::Batched)]
    pub ack_mode: AckMode,

    /// Explicit options `Q` contracts allowed per connection.
    #[arg(long, env = "SIM_OPTIONS_QUOTE_LIMIT", default_value_t = 1000)]
    pub options_quote_limit: usize,

    /// Fault: abort every connection after this many seconds of being connected (0 = off).
    #[arg(long, env = "SIM_DROP_EVERY_SECS", default_value_t = 0)]
    pub drop_every_secs: u64,

    /// Fault: make every Nth data frame of a connection malformed (0 = off).
    #[arg(long, env = "SIM_MALFORMED_EVERY", default_value_t = 0)]
    pub malformed_every: u64,

    /// What the malformed-frame fault sends.
    #[arg(long, env = "SIM_MALFORMED_MODE", value_enum, default_value_t = MalformedMode::Element)]
    pub malformed_mode: MalformedMode,

    /// Fault: every Nth data frame gains an unknown `ev` and an unknown field (0 = off).
    #[arg(long, env = "SIM_UNKNOWN_EVERY", default_value_t = 0)]
    pub unknown_every: u64,

    /// Fault: send every Nth data frame as a text frame split into continuation frames (as
    /// Massive may), 0 = off.
    #[arg(long, env = "SIM_FRAGMENT_EVERY", default_value_t = 0)]
    pub fragment_every: u64,

    /// Fault: send a binary frame after every Nth data frame (Massive sends none), 0 = off.
    #[arg(long, env = "SIM_BINARY_EVERY", default_value_t = 0)]
    pub binary_every: u64,

    /// Fault: every this many seconds the feed stalls (holds its data), 0 = off.
    #[arg(long, env = "SIM_STALL_EVERY_SECS", default_value_t = 0)]
    pub stall_every_secs: u64,

    /// How long a stall lasts; the held data then arrives in one burst.
    #[arg(long, env = "SIM_STALL_MS", default_value_t = 2000)]
    pub stall_ms: u64,

    /// Replay this capture (JSON lines, see docs/simulator.md) instead of the synthetic stream.
    #[arg(long, env = "SIM_REPLAY")]
    pub replay: Option<PathBuf>,

    /// Replay speed: 1 = as captured, 10 = ten times faster, 0 = as fast as possible.
    #[arg(long, env = "SIM_REPLAY_SPEED", default_value_t = 1.0)]
    pub replay_speed: f64,

    /// Start the capture again when it ends.
    #[arg(long, env = "SIM_REPLAY_LOOP", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub replay_loop: bool,

    /// REST requests per minute per key before 429 (0 = unlimited, like paid plans).
    #[arg(long, env = "SIM_REST_RATE_LIMIT", default_value_t = 0)]
    pub rest_rate_limit: u32,

    /// Market holidays and early closes, comma separated: `YYYY-MM-DD` (closed) or
    /// `YYYY-MM-DD/early` (regular session ends 13:00 ET). Market status says so on the day
    /// and `/v1/marketstatus/upcoming` lists them ahead (the synthetic stream does not stop).
    #[arg(long, env = "SIM_HOLIDAYS", default_value = "", value_parser = parse_holidays)]
    pub holidays: Holidays,
}

/// The simulator's holidays and early closes, as a trading calendar.
#[derive(Debug, Clone, Default)]
pub struct Holidays(pub std::sync::Arc<crate::analyzers::calendar::TradingCalendar>);

fn parse_holidays(s: &str) -> Result<Holidays, String> {
    let mut c = crate::analyzers::calendar::TradingCalendar::default();
    c.prime(crate::analyzers::calendar::parse_days(s)?);
    Ok(Holidays(std::sync::Arc::new(c)))
}

impl SimArgs {
    /// Defaults for tests and the embedded mode (as if no flag or env var were given).
    pub fn defaults() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: SimArgs,
        }
        // Parse an empty command line with the environment ignored: tests must not depend
        // on the developer's shell.
        let mut cmd = <P as clap::CommandFactory>::command();
        for arg in cmd
            .get_arguments()
            .map(|a| a.get_id().clone())
            .collect::<Vec<_>>()
        {
            cmd = cmd.mut_arg(arg, |a| a.env(None::<&str>));
        }
        let matches = cmd.get_matches_from(["tickwire-sim"]);
        <P as clap::FromArgMatches>::from_arg_matches(&matches)
            .map(|p| p.a)
            .unwrap_or_else(|e| e.exit())
    }
}
