//! `tickwire-bench`: throughput figures for docs/benchmarks.md. Logic lives in
//! [`tickwire::bench`]; this binary parses flags and prints JSON lines.

use clap::{Parser, Subcommand};
use tickwire::bench;

#[derive(Parser)]
#[command(
    name = "tickwire-bench",
    version,
    about = "tickwire throughput benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Frame parsing, full and route-only, over synthetic-market frames.
    Parse {
        #[arg(long, default_value_t = 500_000)]
        events: usize,
        #[arg(long, default_value_t = 100)]
        per_frame: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// The processor's analyzers alone: decode + apply per event type (no queue, no Redis).
    Analyzers {
        #[arg(long, default_value_t = 2000)]
        tickers: usize,
        /// Simulated seconds of regular session.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// The synthetic market's generation + encoding ceiling (no network).
    Market {
        #[arg(long, default_value_t = 1_000_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// The simulator end to end with one WebSocket client.
    Sim {
        #[arg(long, default_value_t = 100_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 100)]
        batch_size: u32,
    },
    /// The widget data service (separate process): N v2 clients on one topic, a Redis
    /// publisher at `rate` msg/s; deliveries/s, publish-to-client latency, memory per
    /// connection. `--rate 0`: idle connections only. Needs `cargo build --release --bins`.
    Wds {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 1)]
        topics: usize,
        #[arg(long, default_value_t = 250.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 200)]
        payload_bytes: usize,
        #[arg(long, default_value_t = 500)]
        connect_concurrency: usize,
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/1")]
        redis_url: String,
    },
    /// The Massive relay of a WDS (separate process) fed through RabbitMQ as the listener
    /// feeds it: `full` clients on `T.*,Q.*`, `narrow` clients on 10 symbols each;
    /// deliveries/s, receive-to-client latency, CPU per delivery, memory per client. Needs
    /// `cargo build --release --bins`, RabbitMQ and Redis.
    Relay {
        #[arg(long, default_value_t = 100)]
        full: usize,
        #[arg(long, default_value_t = 0)]
        narrow: usize,
        #[arg(long, default_value_t = 10_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 20)]
        events_per_frame: usize,
        #[arg(
            long,
            env = "RABBITMQ_URL",
            default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
        )]
        amqp_url: String,
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/0")]
        redis_url: String,
    },
    /// The listener node (separate process) routing into RabbitMQ from the simulator
    /// (separate process); needs `cargo build --release --bins` and RabbitMQ.
    Listener {
        #[arg(long, default_value_t = 1_000_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 100)]
        events_per_frame: u32,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 1)]
        shards: u16,
        #[arg(
            long,
            env = "RABBITMQ_URL",
            default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
        )]
        rabbitmq_url: String,
        /// Replay one pre-encoded second of market (looped) instead of generating live.
        #[arg(long)]
        replay: bool,
    },
    /// One results pipeline (MULTI/EXEC of SETEX + PUBLISH per value): wall time per write
    /// against Redis's own execution time per write.
    RedisPipeline {
        #[arg(long, default_value_t = 2000)]
        writes: usize,
        #[arg(long, default_value_t = 600)]
        value_bytes: usize,
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// Send through redis-rs, as the writer did before its own RESP connection (to compare).
        #[arg(long)]
        redis_rs: bool,
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/0")]
        redis_url: String,
    },
    /// Enriching every ticker from a cold cache: REST calls by endpoint and seconds until
    /// every ticker is answered, with the bulk warm-up (`--bulk true`) or one call per value.
    Warmup {
        #[arg(long, default_value_t = 2000)]
        tickers: usize,
        #[arg(long, default_value = "true", action = clap::ArgAction::Set,
              value_parser = clap::builder::BoolishValueParser::new())]
        bulk: bool,
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/0")]
        redis_url: String,
    },
    /// RabbitMQ -> processor -> Redis: drain throughput, round trips, hop latency at a rate.
    Processor {
        /// Events queued (A.* + T.* + Q.*) before the processor drains them.
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
        /// Live rate for the latency phase (events/s).
        #[arg(long, default_value_t = 10_000.0)]
        rate: f64,
        /// Length of the latency phase.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Channels the listener subscribes to in both phases.
        #[arg(long, default_value = "A.*,T.*,Q.*")]
        subscriptions: String,
        #[arg(
            long,
            env = "RABBITMQ_URL",
            default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
        )]
        rabbitmq_url: String,
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/0")]
        redis_url: String,
    },
}

fn print<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string(v).unwrap_or_default());
}

/// Runs an async measurement in its own actix System; prints its figures or fails the process.
fn run_async<T: serde::Serialize>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, String>>,
) {
    match actix_web::rt::System::new().block_on(fut) {
        Ok(r) => print(&r),
        Err(e) => {
            eprintln!("tickwire-bench {what}: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    tickwire::config::init_logging_with("warn", tickwire::actors::sim::LOG_DIRECTIVES);
    match Cli::parse().cmd {
        Cmd::Parse {
            events,
            per_frame,
            rounds,
        } => {
            let corpus = bench::parse_corpus(events, per_frame);
            for t in bench::bench_parse(&corpus, rounds) {
                print(&t);
            }
        }
        Cmd::Analyzers {
            tickers,
            seconds,
            rounds,
        } => {
            for c in bench::analyzers::run(tickers, seconds, rounds) {
                print(&c);
            }
        }
        Cmd::Market { rate, seconds } => print(&bench::bench_market(rate, seconds)),
        Cmd::Listener {
            rate,
            events_per_frame,
            seconds,
            shards,
            rabbitmq_url,
            replay,
        } => {
            let b = bench::listener::ListenerBench {
                rate,
                events_per_frame,
                seconds,
                shards,
                rabbitmq_url,
                replay,
            };
            run_async("listener", bench::listener::run(b));
        }
        Cmd::RedisPipeline {
            writes,
            value_bytes,
            rounds,
            redis_rs,
            redis_url,
        } => run_async("redis-pipeline", async move {
            bench::redis::run(&redis_url, writes, value_bytes, rounds, redis_rs).await
        }),
        Cmd::Warmup {
            tickers,
            bulk,
            redis_url,
        } => run_async("warmup", async move {
            bench::warmup::run(tickers, bulk, &redis_url).await
        }),
        Cmd::Processor {
            events,
            rate,
            seconds,
            subscriptions,
            rabbitmq_url,
            redis_url,
        } => {
            let b = bench::processor::ProcessorBench {
                events,
                rate,
                seconds,
                subscriptions,
                rabbitmq_url,
                redis_url,
            };
            run_async("processor", bench::processor::run(b));
        }
        Cmd::Wds {
            clients,
            topics,
            rate,
            seconds,
            payload_bytes,
            connect_concurrency,
            redis_url,
        } => {
            let b = bench::wds::WdsBench {
                clients,
                topics,
                rate,
                seconds,
                payload_bytes,
                redis_url,
                connect_concurrency,
            };
            run_async("wds", bench::wds::run(b));
        }
        Cmd::Relay {
            full,
            narrow,
            rate,
            seconds,
            events_per_frame,
            amqp_url,
            redis_url,
        } => {
            let b = bench::relay::RelayBench {
                full,
                narrow,
                rate,
                seconds,
                events_per_frame,
                amqp_url,
                redis_url,
            };
            run_async("relay", bench::relay::run(b));
        }
        Cmd::Sim {
            rate,
            seconds,
            batch_size,
        } => {
            run_async("sim", bench::bench_sim(rate, seconds, batch_size));
        }
    }
}
