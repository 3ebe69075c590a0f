//! `tickwire-wds`: the widget data service. Browsers subscribe over WebSocket (`/ws` v1,
//! `/ws/v2`) to the results the processors publish in Redis; see docs/protocol.md.

use std::process::ExitCode;

use clap::Parser;
use tickwire::actors::wds::node::{run, WdsArgs};
use tickwire::config::init_logging;

/// tickwire widget data service node.
#[derive(Parser)]
#[command(name = "tickwire-wds", version)]
struct Cli {
    #[command(flatten)]
    args: WdsArgs,
}

fn main() -> ExitCode {
    if let Some(code) = tickwire::admin::healthcheck_command("SERVER_PORT", 4202) {
        return code;
    }
    let cli = Cli::parse();
    init_logging(&cli.args.common.log_level);
    tickwire::config::exit_code(run(cli.args))
}
