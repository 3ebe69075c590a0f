//! `tickwire-listener`: the listener node. Parses flags/env and calls
//! [`tickwire::actors::listener::run`]; `tickwire-listener --help` documents every setting.

use std::process::ExitCode;

use clap::Parser;
use tickwire::actors::listener::ListenerArgs;
use tickwire::config::init_logging;

/// Holds the one Massive WebSocket per asset class and routes its events into RabbitMQ.
#[derive(Parser)]
#[command(name = "tickwire-listener", version)]
struct Cli {
    #[command(flatten)]
    args: ListenerArgs,
}

fn main() -> ExitCode {
    if let Some(code) = tickwire::admin::healthcheck_command("SERVER_PORT", 4200) {
        return code;
    }
    let cli = Cli::parse();
    init_logging(&cli.args.common.log_level);
    tickwire::config::exit_code(tickwire::actors::listener::run(cli.args))
}
