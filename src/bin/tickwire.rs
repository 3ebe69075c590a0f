//! `tickwire`: embedded mode, everything in one process with a simulated market.
//!
//! simulator -> listener -> router -> processor pool -> in-memory store, with no RabbitMQ or
//! Redis. With `MASSIVE_API_KEY` set it connects to real Massive instead of the simulator.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use tickwire::config::init_logging_with;
use tickwire::embedded::{self, EmbeddedArgs};

/// tickwire in embedded mode: one process, one command, a simulated market.
#[derive(Parser)]
#[command(name = "tickwire", version)]
struct Cli {
    #[command(flatten)]
    args: EmbeddedArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging_with(
        &cli.args.sim.common.log_level,
        tickwire::sim::LOG_DIRECTIVES,
    );
    let ip = cli.args.sim.common.server_ip;
    let bind =
        |port: u16| TcpListener::bind((ip, port)).map_err(|e| format!("binding {ip}:{port}: {e}"));
    let result = bind(cli.args.sim.port)
        .and_then(|sim| Ok((sim, bind(cli.args.wds_port)?)))
        .and_then(|(sim_http, wds_http)| {
            actix_web::rt::System::new().block_on(async move {
                let e = embedded::start(cli.args, sim_http, wds_http).map_err(|e| e.to_string())?;
                match &e.sim {
                    Some(s) => log::info!(
                        "embedded mode: simulated market at {} (key `demo`); pipeline running, \
                         results in memory; simulator stats at {}",
                        s.ws_url("stocks"),
                        s.http_url("/stats")
                    ),
                    None => log::info!("embedded mode: connected to Massive; results in memory"),
                }
                let wds = format!("ws://127.0.0.1:{}/ws/v2", e.http.port);
                match &e.dev_token {
                    Some(t) => log::info!(
                        "widget data service: {wds} (v1 at /ws); token for this run: {t}"
                    ),
                    None => log::info!("widget data service: {wds} (v1 at /ws)"),
                }
                tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
                log::info!("shutting down");
                Ok(())
            })
        });
    tickwire::config::exit_code(result)
}
