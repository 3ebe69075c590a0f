//! `tickwire-sim`: the Massive-compatible simulator (WebSocket + REST) on one port.
//!
//! Parses flags/env and calls [`tickwire::actors::sim::run`]; all logic is in the library.
//! `tickwire-sim --help` documents every setting.

use std::process::ExitCode;

use clap::Parser;
use tickwire::actors::sim::SimArgs;
use tickwire::config::init_logging_with;

/// Massive-compatible market simulator: a seeded synthetic US-equities market (or a capture
/// replay) over Massive's WebSocket protocol and REST hydration endpoints.
#[derive(Parser)]
#[command(name = "tickwire-sim", version)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

fn main() -> ExitCode {
    if let Some(code) = tickwire::admin::healthcheck_command("SERVER_PORT", 4199) {
        return code;
    }
    let cli = Cli::parse();
    init_logging_with(
        &cli.sim.common.log_level,
        tickwire::actors::sim::LOG_DIRECTIVES,
    );
    tickwire::config::exit_code(tickwire::actors::sim::run(cli.sim, |_| {}))
}
