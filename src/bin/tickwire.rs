//! `tickwire`: embedded mode, everything in one process with a simulated market.
//!
//! Until the pipeline stages land (listener, processors, widget data service, control
//! plane), embedded mode runs the built-in simulator so that one command gives a live
//! Massive-compatible market on this machine.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use tickwire::config::init_logging_with;
use tickwire::sim::SimArgs;

/// tickwire in embedded mode: one process, one command, a simulated market.
#[derive(Parser)]
#[command(name = "tickwire", version)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging_with(&cli.sim.common.log_level, tickwire::sim::LOG_DIRECTIVES);
    let addr = (cli.sim.common.server_ip, cli.sim.port);
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot bind {}:{}: {e}", addr.0, addr.1);
            return ExitCode::FAILURE;
        }
    };
    let result = actix_web::rt::System::new().block_on(async move {
        let server = tickwire::sim::start(cli.sim, listener, true)?;
        log::info!(
            "embedded mode: simulated market at {} (key `demo`); stats at {}",
            server.ws_url("stocks"),
            server.http_url("/stats")
        );
        server.wait().await?;
        Ok::<(), tickwire::sim::SimError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
