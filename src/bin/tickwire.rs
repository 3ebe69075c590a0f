//! `tickwire`: embedded mode, everything in one process with a simulated market.
//!
//! simulator -> listener -> router -> processor pool -> in-memory store -> WDS, plus the
//! control plane and dashboard, with no RabbitMQ or Redis. With `MASSIVE_API_KEY` set it
//! connects to real Massive instead of the simulator.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use tickwire::config::init_logging_with;
use tickwire::embedded::{self, EmbeddedArgs};
use tickwire::scp::users::Bootstrap;

/// tickwire in embedded mode: one process, one command, a simulated market.
#[derive(Parser)]
#[command(name = "tickwire", version)]
struct Cli {
    #[command(flatten)]
    args: EmbeddedArgs,
}

fn main() -> ExitCode {
    if let Some(code) = tickwire::admin::healthcheck_command("TICKWIRE_PORT", 8000) {
        return code;
    }
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    embedded::fast_market_defaults(&mut cli.args, &matches);
    init_logging_with(
        &cli.args.sim.common.log_level,
        tickwire::actors::sim::LOG_DIRECTIVES,
    );
    let ip = cli.args.bind;
    let bind =
        |port: u16| TcpListener::bind((ip, port)).map_err(|e| format!("binding {ip}:{port}: {e}"));
    let result = bind(cli.args.sim.port)
        .and_then(|sim| Ok((sim, bind(cli.args.http_port)?)))
        .and_then(|(sim_http, http)| {
            actix_web::rt::System::new().block_on(async move {
                let users_file = cli.args.scp.users_file();
                let e = embedded::start(cli.args, sim_http, http).map_err(|e| e.to_string())?;
                match &e.sim {
                    Some(s) => log::info!(
                        "simulated market at {} (key `demo`), 60 market seconds per second",
                        s.ws_url("stocks"),
                    ),
                    None => log::info!("connected to Massive"),
                }
                let login = match &e.bootstrap {
                    Bootstrap::Generated { username, password } => {
                        format!("log in as `{username}` with password `{password}` (shown once)")
                    }
                    Bootstrap::FromEnv(user) => {
                        format!("log in as `{user}` with SCP_ADMIN_PASSWORD")
                    }
                    Bootstrap::Existing => format!(
                        "log in with a user from {} (its admin's password was printed on \
                         the first run)",
                        users_file.display()
                    ),
                };
                let host = if ip.is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    ip.to_string()
                };
                log::info!("dashboard: http://{host}:{}/ : {login}", e.http.port);
                tickwire::admin::shutdown_signal()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            })
        });
    tickwire::config::exit_code(result)
}
