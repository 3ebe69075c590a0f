//! `tickwire-sim`: the Massive-compatible simulator (WebSocket + REST) on one port.
//!
//! Parses flags/env, binds the port and runs [`tickwire::sim::start`]; all logic is in the
//! library. `tickwire-sim --help` documents every setting.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use tickwire::config::init_logging_with;
use tickwire::sim::SimArgs;

/// Massive-compatible market simulator: a seeded synthetic US-equities market (or a capture
/// replay) over Massive's WebSocket protocol and REST hydration endpoints.
#[derive(Parser)]
#[command(name = "tickwire-sim", version)]
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
