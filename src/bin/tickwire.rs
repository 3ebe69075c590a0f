//! `tickwire`: embedded mode, everything in one process with a simulated market.
//!
//! Until the pipeline stages land (listener, processors, widget data service, control
//! plane), embedded mode runs the built-in simulator so that one command gives a live
//! Massive-compatible market on this machine.

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
    let banner = |s: &tickwire::sim::SimServer| {
        log::info!(
            "embedded mode: simulated market at {} (key `demo`); stats at {}",
            s.ws_url("stocks"),
            s.http_url("/stats")
        );
    };
    tickwire::config::exit_code(tickwire::sim::run(cli.sim, banner))
}
