//! `tickwire-processor`: consumes the listener's shard queues, runs the analyzers and writes
//! results to Redis. Several nodes share the shards; see docs/operations.md.

use std::process::ExitCode;

use clap::Parser;
use tickwire::actors::processor::{run, ProcessorArgs};
use tickwire::config::init_logging;

/// tickwire processor node.
#[derive(Parser)]
#[command(name = "tickwire-processor", version)]
struct Cli {
    #[command(flatten)]
    args: ProcessorArgs,
}

fn main() -> ExitCode {
    if let Some(code) = tickwire::admin::healthcheck_command("SERVER_PORT", 4201) {
        return code;
    }
    let cli = Cli::parse();
    init_logging(&cli.args.common.log_level);
    tickwire::config::exit_code(run(cli.args))
}
