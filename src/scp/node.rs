//! `tickwire-scp`: the control-plane node's settings and wiring.
//!
//! One HTTP server: the login and dashboard pages, the session, token, layout and control
//! APIs ([`super::configure`]), and the admin routes every node has. It finds the other nodes
//! in the Redis node registry and registers itself there too (role `scp`).

use std::net::TcpListener;
use std::sync::Arc;

use actix::Addr;
use actix_web::web;
use clap::Parser;
use serde_json::json;

use super::control::Directory;
use super::{log_bootstrap, ScpSettings, ScpState};
use crate::actors::registrar;
use crate::admin::{self, AdminState, NodeHttp};
use crate::config::{CommonArgs, NodeRegistryArgs};
use crate::metrics::Registry;

/// `tickwire-scp` settings.
#[derive(Parser, Debug, Clone)]
pub struct ScpArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// HTTP port (pages, APIs, admin routes).
    #[arg(long, env = "SERVER_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Secret shared with the WDS nodes to sign their tokens (required).
    #[arg(
        long = "token-secret",
        env = "WDS_TOKEN_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub token_secret: String,

    #[command(flatten)]
    pub node_registry: NodeRegistryArgs,

    #[command(flatten)]
    pub settings: ScpSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ScpNodeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Users(#[from] super::users::UsersError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A running control plane.
pub struct ScpNode {
    pub port: u16,
    pub registry: Arc<Registry>,
    http: NodeHttp,
    registrar: Option<Addr<crate::actors::registrar::Registrar>>,
}

impl ScpNode {
    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    pub async fn stop(&self) {
        crate::actors::registrar::deregister(&self.registrar).await;
        self.http.stop().await;
    }
}

/// The admin routes' state for a node serving the SCP: `/stats` adds its session count.
pub fn admin_state(
    common: &CommonArgs,
    registry: &Arc<Registry>,
    scp: &web::Data<ScpState>,
) -> AdminState {
    let scp = scp.clone();
    AdminState::new("Service Control Plane", registry.clone())
        .with_identity(
            &common.container_image,
            &common.image_version,
            &common.admin_token,
        )
        .with_info(Arc::new(move || {
            let scp = scp.clone();
            Box::pin(async move {
                // A store that cannot be read shows as null, not as zero sessions.
                let sessions = scp.sessions.count().await.ok();
                json!({
                    "browser_sessions": sessions,
                    "sessions_store": scp.sessions.store_name(),
                    "users": scp.user_count(),
                })
            })
        }))
}

/// Starts the control plane on `http`.
pub fn start(args: ScpArgs, http: TcpListener) -> Result<ScpNode, ScpNodeError> {
    if args.token_secret.is_empty() {
        return Err(ScpNodeError::Config(
            "WDS_TOKEN_SECRET is required: the secret the WDS nodes verify tokens with".into(),
        ));
    }
    if args.common.admin_token.is_empty() {
        log::warn!("ADMIN_TOKEN is empty: the nodes will refuse every control call");
    }
    if args.settings.sessions == super::SessionsIn::Redis
        && args.node_registry.registry_url.is_empty()
    {
        return Err(ScpNodeError::Config(
            "SCP_SESSIONS=redis keeps sessions in the node registry's Redis: set NODE_REGISTRY_URL"
                .into(),
        ));
    }
    let registry = Registry::new();
    let port = http.local_addr()?.port();
    let directory = if args.node_registry.registry_url.is_empty() {
        Directory::Static(Vec::new())
    } else {
        Directory::Redis {
            pool: crate::actors::cache_writer::redis_pool(&args.node_registry.registry_url)
                .map_err(|e| ScpNodeError::Config(e.to_string()))?,
            prefix: args.node_registry.registry_prefix.clone(),
        }
    };
    let (state, boot) = ScpState::new(
        args.settings.clone(),
        &args.token_secret,
        directory,
        &args.common.admin_token,
        &registry,
    )?;
    log_bootstrap(&boot, &args.settings);
    log::info!("browser sessions kept in {}", state.sessions.store_name());
    let scp = web::Data::new(state);
    let admin_data = web::Data::new(admin_state(&args.common, &registry, &scp));
    let http = NodeHttp::serve_with_workers(http, 2, move |cfg| {
        cfg.app_data(admin_data.clone())
            .app_data(scp.clone())
            .configure(admin::configure)
            .configure(super::configure);
    })?;
    let id = crate::config::node_id("scp");
    let registrar = registrar::start(&args.node_registry, &id, "scp", port, &registry);
    log::info!("control plane on port {port}: dashboard at http://HOST:{port}/");
    Ok(ScpNode {
        port,
        registry,
        http,
        registrar,
    })
}

/// `tickwire-scp` main: serve until SIGINT/SIGTERM.
pub fn run(args: ScpArgs) -> Result<(), ScpNodeError> {
    let addr = (args.common.server_ip, args.port);
    crate::admin::run_node(
        addr,
        |http| start(args, http),
        |node| async move { node.stop().await },
    )
}
