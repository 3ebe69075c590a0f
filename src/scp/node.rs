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

    /// Massive REST base URL (the Price Chart's history).
    #[arg(
        long = "massive-rest-url",
        env = "MASSIVE_REST_URL",
        default_value = "https://api.massive.com"
    )]
    pub rest_url: String,

    /// Massive API key for the chart history (empty: charts show live bars only).
    #[command(flatten)]
    pub key: crate::config::ApiKeyArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum ScpNodeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Users(#[from] super::users::UsersError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    WeakSecret(#[from] crate::token::WeakSecret),
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

/// What `tickwire-scp add-user` (replacing a user: a password reset) and `remove-user` do
/// beyond the users file, where the browser sessions live in the node registry's Redis: end
/// every session of the user and revoke their WDS tokens at once, so that whoever held the
/// old password is out now, not at their next request or when a token expires. With sessions
/// in an SCP's memory this process cannot reach them: the running SCP ends them (and revokes
/// the tokens) when it reads the changed file. Gives up after 5 s.
pub fn end_user_access(args: &ScpArgs, username: &str) -> Result<String, String> {
    let url = &args.node_registry.registry_url;
    if url.is_empty() || args.settings.sessions == super::SessionsIn::Memory {
        return Ok(
            "sessions are in the SCP's memory: it ends them when it reads the changed file".into(),
        );
    }
    let pool = crate::redis_pool::open(url).map_err(|e| e.to_string())?;
    let prefix = &args.node_registry.registry_prefix;
    let settings = &args.settings;
    let sessions = super::sessions::Sessions::in_redis(
        pool.clone(),
        super::sessions::redis_prefix(prefix),
        settings.session_idle(),
        settings.session_lifetime(),
        super::sessions::redis_key(args.token_secret.as_bytes()),
        crate::metrics::Counter::default(),
    );
    let revoker = crate::revocation::Revoker::Redis {
        pool,
        key: crate::revocation::redis_key(prefix),
    };
    let ttl = settings.token_ttl();
    let work = async {
        let ended = sessions
            .end_others(username, "")
            .await
            .map_err(|e| e.to_string())?;
        let all = crate::revocation::Revocation::user_now(username, None, ttl);
        revoker.revoke(all).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(format!(
            "{ended} browser sessions ended and WDS tokens revoked"
        ))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(5), work)
            .await
            .map_err(|_| format!("no answer from {url} within 5 s"))?
    })
}

/// How often the session store is probed for `/ready`.
const STORE_PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a probe may take before the store counts as not answering.
const STORE_PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Probes the session store every second for as long as the state lives; the result is
/// `/ready`'s `session_store` check. A control plane whose store does not answer cannot log
/// anyone in (every login is 503), so it is not ready: a container or pod started before
/// Redis answers (its name not yet resolvable, say) gets no logins until it does. Failures
/// are counted (`tickwire_scp_session_store_errors_total`) and logged when the state changes.
fn watch_session_store(scp: &web::Data<ScpState>) -> Arc<std::sync::Mutex<Result<(), String>>> {
    let status = Arc::new(std::sync::Mutex::new(Err("not probed yet".to_string())));
    let shared = status.clone();
    let state = Arc::downgrade(&scp.clone().into_inner());
    actix::spawn(async move {
        let mut was_up = None;
        loop {
            let Some(state) = state.upgrade() else {
                return;
            };
            let now = match actix::clock::timeout(STORE_PROBE_WAIT, state.sessions.probe()).await {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(_) => Err(format!(
                    "session store: no answer within {STORE_PROBE_WAIT:?}"
                )),
            };
            if let Err(e) = &now {
                state.metrics.session_store_errors.inc();
                if was_up != Some(false) {
                    log::warn!("not ready: {e}");
                }
            } else if was_up == Some(false) {
                log::info!("the session store answers again");
            }
            was_up = Some(now.is_ok());
            *shared.lock().unwrap_or_else(|p| p.into_inner()) = now;
            drop(state);
            actix::clock::sleep(STORE_PROBE_EVERY).await;
        }
    });
    status
}

/// Starts the control plane on `http`.
pub fn start(args: ScpArgs, http: TcpListener) -> Result<ScpNode, ScpNodeError> {
    if args.token_secret.is_empty() {
        return Err(ScpNodeError::Config(
            "WDS_TOKEN_SECRET is required: the secret the WDS nodes verify tokens with".into(),
        ));
    }
    crate::token::check_secret("WDS_TOKEN_SECRET", &args.token_secret)?;
    args.common.check_secrets()?;
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
            pool: crate::redis_pool::open(&args.node_registry.registry_url)
                .map_err(|e| ScpNodeError::Config(e.to_string()))?,
            prefix: args.node_registry.registry_prefix.clone(),
            key: crate::nodes::registry_key(&args.common.admin_token),
            rejected: registry.counter(
                "tickwire_scp_registry_rejected_total",
                "Node registry entries ignored: not signed with this cluster's key",
                &[],
            ),
        }
    };
    let (mut state, boot) = ScpState::new(
        args.settings.clone(),
        &args.token_secret,
        directory,
        &args.common.admin_token,
        &registry,
    )?;
    let key = args.key.resolve();
    if key.is_empty() {
        log::warn!("no Massive API key: the Price Chart shows live bars only, no history");
    }
    state
        .bars
        .set_source((!key.is_empty()).then(|| super::bars::BarsSource {
            rest_url: args.rest_url.clone(),
            api_key: key,
        }));
    log_bootstrap(&boot, &args.settings);
    log::info!("browser sessions kept in {}", state.sessions.store_name());
    let scp = web::Data::new(state);
    // Every WDS's relay reads the relay keys from the node registry.
    if let Directory::Redis { pool, prefix, .. } = &scp.directory {
        super::keys::publish_to_redis(scp.clone(), pool.clone(), prefix);
    }
    let store = watch_session_store(&scp);
    // The client-facing port: /stats and /metrics want the admin token.
    let admin_data = web::Data::new(
        admin_state(&args.common, &registry, &scp)
            .protect_stats()
            .with_check(admin::FnCheck::new("session_store", move || {
                store.lock().unwrap_or_else(|p| p.into_inner()).clone()
            })),
    );
    let http = NodeHttp::serve_with_workers(http, 2, move |cfg| {
        cfg.app_data(admin_data.clone())
            .app_data(scp.clone())
            .configure(admin::configure)
            .configure(super::configure);
    })?;
    let id = crate::config::node_id("scp");
    let registrar = registrar::start(
        &args.node_registry,
        &id,
        "scp",
        port,
        &args.common.admin_token,
        &registry,
    );
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
