//! `tickwire-scp`: the control plane. Login, WDS tokens, the dashboard and the control API;
//! `tickwire-scp add-user NAME [--admin]` adds a user (password read from stdin),
//! `remove-user NAME` removes one, `list-users` lists them. A running SCP picks the change up
//! at the next request; the sessions and WDS tokens of a user given another password, or
//! removed, end at once when the sessions are in the node registry's Redis.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tickwire::config::init_logging;
use tickwire::scp::node::{end_user_access, run, ScpArgs};

/// tickwire control plane node.
#[derive(Parser)]
#[command(name = "tickwire-scp", version)]
struct Cli {
    #[command(flatten)]
    args: ScpArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Adds or replaces a user in the users file; the password is read from stdin.
    AddUser {
        username: String,
        /// Give the admin role (control API, operations page).
        #[arg(long)]
        admin: bool,
    },
    /// Removes a user from the users file; their sessions end at their next request. The
    /// last admin cannot be removed.
    RemoveUser { username: String },
    /// Lists the users and their roles.
    ListUsers,
}

/// Ends the sessions and tokens of a user with another password or removed; the users
/// file change stands either way, so a failure here is a warning.
fn end_access(args: &ScpArgs, username: &str) {
    match end_user_access(args, username) {
        Ok(done) => println!("{done}"),
        Err(e) => eprintln!(
            "warning: could not end {username}'s sessions ({e}); they end at their next \
             request if removed, and their WDS tokens when they expire"
        ),
    }
}

fn main() -> ExitCode {
    if let Some(code) = tickwire::admin::healthcheck_command("SERVER_PORT", 8000) {
        return code;
    }
    let cli = Cli::parse();
    init_logging(&cli.args.common.log_level);
    match cli.command {
        None => tickwire::config::exit_code(run(cli.args)),
        Some(Command::AddUser { username, admin }) => {
            let mut password = String::new();
            let result = std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    tickwire::scp::users::add_to_file(
                        &cli.args.settings,
                        &username,
                        password.trim_end_matches(['\r', '\n']),
                        if admin { "admin" } else { "viewer" },
                    )
                    .map_err(|e| e.to_string())
                });
            if let Ok(new_password) = result {
                println!("user {username} saved");
                if new_password {
                    end_access(&cli.args, &username);
                }
            }
            tickwire::config::exit_code(result.map(|_| ()))
        }
        Some(Command::RemoveUser { username }) => {
            let result = tickwire::scp::users::remove_from_file(&cli.args.settings, &username)
                .map_err(|e| e.to_string());
            if result.is_ok() {
                println!("user {username} removed");
                end_access(&cli.args, &username);
            }
            tickwire::config::exit_code(result)
        }
        Some(Command::ListUsers) => {
            let result = tickwire::scp::users::list_file(&cli.args.settings)
                .map(|users| {
                    for (name, roles) in users {
                        println!("{name}\t{}", roles.join(","));
                    }
                })
                .map_err(|e| e.to_string());
            tickwire::config::exit_code(result)
        }
    }
}
