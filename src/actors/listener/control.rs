//! The listener node's control routes, behind the admin token:
//!
//! | Route | Effect |
//! |---|---|
//! | `POST /control/start` | connect (clears an `auth_failed` state); no-op when already running |
//! | `POST /control/stop` | close the connection and stay idle |
//! | `POST /control/restart` | reconnect now |
//! | `PUT /control/subscriptions` | body: JSON array or comma list; reconnects when changed |
//! | `PUT /control/feed?feed=HOST` | feed host; reconnects when changed |
//! | `PUT /control/market?to=crypto[&market=stocks]` | move a connection to another market |
//!
//! Several markets per process: `?market=` picks one connection, without it a route applies
//! to all. All are idempotent; a bad value is refused with 400 and the reason, nothing
//! changes. With a lease, start and restart are refused (409) on a standby.

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use std::sync::Arc;

use super::connection::{Control, Describe, Listener, ListenerHealth, Reconfigure};
use super::metrics::{ConnectionFigures, LeaseView};
use crate::admin::AdminState;
use crate::config::parse_subscriptions;
use crate::massive::control::Topic;
use crate::massive::Market;

/// One market's connection: its listener, health and (with a lease) who holds the lease.
#[derive(Clone)]
pub struct MarketLink {
    pub market: Market,
    pub listener: Addr<Listener>,
    pub health: Arc<ListenerHealth>,
    pub connection: ConnectionFigures,
    /// With a lease: whether this replica holds it, and who does.
    pub lease: Option<LeaseView>,
}

impl MarketLink {
    /// Whether this replica may connect: it holds the lease, or there is none.
    pub fn lease_held(&self) -> bool {
        self.lease.as_ref().is_none_or(LeaseView::held)
    }
}

/// The listener control routes (`/control/*`); the app holds a [`ControlState`].
pub fn configure_control(cfg: &mut web::ServiceConfig) {
    cfg.route("/control/subscriptions", web::put().to(set_subscriptions))
        .route("/control/feed", web::put().to(set_feed))
        .route("/control/market", web::put().to(set_market))
        .route("/control/{cmd}", web::post().to(control));
}

/// What the control routes act on: the node's listeners, one per market.
pub struct ControlState {
    links: Vec<MarketLink>,
    admin: web::Data<AdminState>,
    secure: bool,
    /// With a lease, only the holder may connect: start/restart on a standby is refused.
    lease: bool,
    /// Feed hosts `PUT /control/feed` accepts ([`crate::config::feed_allowed`]).
    allowed_feeds: Vec<String>,
}

impl ControlState {
    /// Control of a single listener with no lease (embedded mode).
    pub fn single(
        link: MarketLink,
        admin: web::Data<AdminState>,
        secure: bool,
        allowed_feeds: Vec<String>,
    ) -> Self {
        Self::new(vec![link], admin, secure, allowed_feeds)
    }

    /// Control of a node's listeners; with leases, start/restart go to holders only.
    pub fn new(
        links: Vec<MarketLink>,
        admin: web::Data<AdminState>,
        secure: bool,
        allowed_feeds: Vec<String>,
    ) -> Self {
        let lease = links.iter().any(|l| l.lease.is_some());
        ControlState {
            links,
            admin,
            secure,
            lease,
            allowed_feeds,
        }
    }

    /// The links a request addresses: `?market=` or, without it, all of them.
    fn targets(&self, req: &HttpRequest) -> Result<Vec<MarketLink>, String> {
        let q =
            web::Query::<MarketParam>::from_query(req.query_string()).map_err(|e| e.to_string())?;
        match q.market.as_deref() {
            None => Ok(self.links.clone()),
            Some(m) => {
                let m: Market = m
                    .parse()
                    .map_err(|e: crate::massive::MarketError| e.to_string())?;
                let found: Vec<MarketLink> = self
                    .links
                    .iter()
                    .filter(|l| l.market == m)
                    .cloned()
                    .collect();
                if found.is_empty() {
                    Err(format!("this node does not run /{m}"))
                } else {
                    Ok(found)
                }
            }
        }
    }

    fn lease_held(&self, market: Market) -> bool {
        self.links
            .iter()
            .filter(|l| l.market == market)
            .all(MarketLink::lease_held)
    }
}

#[derive(Deserialize)]
struct FeedParam {
    feed: Option<String>,
}

#[derive(Deserialize)]
struct MarketParam {
    market: Option<String>,
}

fn bad(reason: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"status": "ERROR", "error": reason.into()}))
}

fn ok() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "OK"}))
}

async fn control(
    req: HttpRequest,
    s: web::Data<ControlState>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Err(e) = s.admin.authorize(&req) {
        return actix_web::ResponseError::error_response(&e);
    }
    let cmd = match path.as_str() {
        "start" => Control::Start,
        "stop" => Control::Stop,
        "restart" => Control::Restart,
        other => {
            return bad(format!(
                "unknown control {other:?}: use start, stop or restart"
            ))
        }
    };
    let targets = match s.targets(&req) {
        Ok(t) => t,
        Err(reason) => return bad(reason),
    };
    if s.lease && cmd != Control::Stop {
        if let Some(l) = targets.iter().find(|l| !s.lease_held(l.market)) {
            return HttpResponse::Conflict().json(json!({"status": "ERROR",
                "error": format!("standby on /{}: another replica holds the Massive connection lease", l.market)}));
        }
    }
    for l in targets {
        l.listener.do_send(cmd);
    }
    ok()
}

/// Parses a subscriptions body and checks every channel exists on `market`.
pub fn validate_subscriptions(body: &str, market: Market) -> Result<Vec<Topic>, String> {
    let subs = parse_subscriptions(body)?.0;
    if let Some(t) = subs.iter().find(|t| !market.knows_channel(&t.channel)) {
        return Err(format!(
            "channel {:?} does not exist on /{market}",
            t.channel
        ));
    }
    Ok(subs)
}

/// Splits `body`'s topics over `markets` by channel; every topic must fit one of them and
/// every market must keep at least one topic.
pub fn split_subscriptions(
    body: &str,
    markets: &[Market],
) -> Result<Vec<(Market, Vec<Topic>)>, String> {
    let subs = parse_subscriptions(body)?.0;
    if let Some(t) = subs
        .iter()
        .find(|t| !markets.iter().any(|m| m.knows_channel(&t.channel)))
    {
        let names: Vec<&str> = markets.iter().map(|m| m.path()).collect();
        return Err(format!(
            "channel {:?} does not exist on /{}",
            t.channel,
            names.join(", /")
        ));
    }
    markets
        .iter()
        .map(|m| {
            let mine: Vec<Topic> = subs
                .iter()
                .filter(|t| m.knows_channel(&t.channel))
                .cloned()
                .collect();
            if mine.is_empty() {
                Err(format!("no subscription fits /{m}"))
            } else {
                Ok((*m, mine))
            }
        })
        .collect()
}

async fn set_subscriptions(
    req: HttpRequest,
    s: web::Data<ControlState>,
    body: String,
) -> HttpResponse {
    if let Err(e) = s.admin.authorize(&req) {
        return actix_web::ResponseError::error_response(&e);
    }
    let targets = match s.targets(&req) {
        Ok(t) => t,
        Err(reason) => return bad(reason),
    };
    let markets: Vec<Market> = targets.iter().map(|l| l.market).collect();
    match split_subscriptions(&body, &markets) {
        Ok(per_market) => {
            for (m, subs) in per_market {
                for l in targets.iter().filter(|l| l.market == m) {
                    l.listener.do_send(Reconfigure {
                        subscriptions: Some(subs.clone()),
                        ..Reconfigure::default()
                    });
                }
            }
            ok()
        }
        Err(e) => bad(e),
    }
}

async fn set_feed(
    req: HttpRequest,
    s: web::Data<ControlState>,
    q: web::Query<FeedParam>,
) -> HttpResponse {
    if let Err(e) = s.admin.authorize(&req) {
        return actix_web::ResponseError::error_response(&e);
    }
    let Some(feed) = q
        .feed
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty() && !f.contains('/'))
    else {
        return bad("feed must be a host[:port], e.g. socket.massive.com");
    };
    let allowed: Vec<&str> = s.allowed_feeds.iter().map(String::as_str).collect();
    if !crate::config::feed_allowed(feed, &allowed) {
        return bad(format!(
            "feed {feed} is not allowed (MASSIVE_FEED_ALLOWLIST: {})",
            allowed.join(", ")
        ));
    }
    let targets = match s.targets(&req) {
        Ok(t) => t,
        Err(reason) => return bad(reason),
    };
    let scheme = if s.secure { "wss" } else { "ws" };
    for l in targets {
        let url = format!("{scheme}://{feed}/{}", l.market);
        l.listener.do_send(Reconfigure {
            url: Some(url),
            ..Reconfigure::default()
        });
    }
    ok()
}

/// `PUT /control/market?to=MARKET` (or `?market=` on a single-market node): moves one
/// connection to another market; its subscriptions must fit the new market.
async fn set_market(req: HttpRequest, s: web::Data<ControlState>) -> HttpResponse {
    if let Err(e) = s.admin.authorize(&req) {
        return actix_web::ResponseError::error_response(&e);
    }
    #[derive(Deserialize)]
    struct Q {
        market: Option<String>,
        to: Option<String>,
    }
    let Ok(q) = web::Query::<Q>::from_query(req.query_string()) else {
        return bad("bad query");
    };
    // Reference form: ?market=NEW on a node with one connection.
    let (from, to) = match (&q.to, &q.market, s.links.len()) {
        (Some(to), from, _) => (from.clone(), to.clone()),
        (None, Some(to), 1) => (None, to.clone()),
        (None, _, _) => {
            return bad(
                "name the new market: ?to=MARKET (and ?market=CURRENT on a multi-market node)",
            )
        }
    };
    let to: Market = match to.parse() {
        Ok(m) => m,
        Err(e) => return bad(format!("{e}")),
    };
    let link = match from {
        Some(f) => match f
            .parse::<Market>()
            .ok()
            .and_then(|f| s.links.iter().find(|l| l.market == f))
        {
            Some(l) => l.clone(),
            None => return bad(format!("this node does not run /{f}")),
        },
        None if s.links.len() == 1 => s.links[0].clone(),
        None => return bad("this node runs several markets: say which with ?market=CURRENT"),
    };
    let desc = match link.listener.send(Describe).await {
        Ok(d) => d,
        Err(e) => {
            return HttpResponse::ServiceUnavailable()
                .json(json!({"status":"ERROR","error": e.to_string()}))
        }
    };
    let subs: Vec<String> = desc["subscriptions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Err(e) = validate_subscriptions(&subs.join(","), to) {
        return bad(format!(
            "current subscriptions do not fit /{to}: {e}; change them first"
        ));
    }
    let url = desc["feed"].as_str().unwrap_or("");
    let base = url.rsplit_once("://").map_or(url, |(_, rest)| rest);
    let host = base.split('/').next().unwrap_or(base);
    let scheme = if s.secure { "wss" } else { "ws" };
    link.listener.do_send(Reconfigure {
        url: Some(format!("{scheme}://{host}/{to}")),
        market: Some(to),
        ..Reconfigure::default()
    });
    ok()
}
