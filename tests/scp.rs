//! Control-plane integration tests: in-process `tickwire-scp` nodes on port 0.
//!
//! - Login, wrong password, the rate limit, cookie flags, CSRF, sessions that expire, logout,
//!   token claims and expiry, the dashboard page, layouts with bad bodies, export and import.
//! - The control API against real nodes (simulator, listener on RabbitMQ, WDS on Redis) that
//!   register in a per-test Redis registry: node list, stats, listener control, WDS session
//!   counts, stale nodes dropping out, and the role checks on every control route.

mod common;

use std::net::TcpListener;

use clap::Parser;
use serde_json::{json, Value};

use common::*;
use tickwire::scp::node::{self, ScpArgs, ScpNode};
use tickwire::token;

const SECRET: &str = "scp-test-secret-of-at-least-32-bytes";
const ADMIN_TOKEN: &str = "scp-test-admin-token-of-32-bytes-or-more";
const ADMIN_PW: &str = "admin-password-1";
const VIEWER_PW: &str = "viewer-password-1";

fn scp_args(name: &str, registry_url: &str, prefix: &str) -> ScpArgs {
    let mut a = ScpArgs::try_parse_from(["tickwire-scp"]).expect("defaults");
    a.token_secret = SECRET.into();
    a.common.admin_token = ADMIN_TOKEN.into();
    a.node_registry.registry_url = registry_url.into();
    a.node_registry.registry_prefix = prefix.into();
    a.node_registry.heartbeat_secs = 1;
    a.node_registry.admin_url = String::new();
    a.settings.data_dir = temp_dir(name);
    a.settings.admin_password = ADMIN_PW.into();
    a
}

/// Starts an SCP and adds a viewer to its users file first.
fn start_scp(a: ScpArgs) -> ScpNode {
    let (mut users, _) = tickwire::scp::users::Users::open(
        &a.settings.data_dir.join("users.json"),
        "admin",
        ADMIN_PW,
    )
    .expect("users file");
    users.add("viewer", VIEWER_PW, "viewer").expect("viewer");
    drop(users);
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    node::start(a, http).expect("SCP starts")
}

/// Polls `f` until it yields a value; reaching the deadline fails the test.
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A browser stand-in: keeps the session cookie and the CSRF token.
struct Web {
    base: String,
    cookie: Option<String>,
    csrf: String,
}

struct Reply {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: Value,
    text: String,
}

impl Web {
    fn new(node: &ScpNode) -> Web {
        Web::at(node.url(""))
    }

    fn at(base: String) -> Web {
        Web {
            base,
            cookie: None,
            csrf: String::new(),
        }
    }

    /// A browser at `base` that has logged in as `user`.
    async fn logged_in(base: String, user: &str, password: &str) -> Web {
        let mut web = Web::at(base);
        let r = web.login(user, password).await;
        assert_eq!(r.status, 200, "{user} logs in: {}", r.text);
        web
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let client = awc::Client::builder().disable_redirects().finish();
        let url = format!("{}{path}", self.base);
        let mut req = client.request(method.parse().expect("method"), &url);
        if let Some(c) = &self.cookie {
            req = req.insert_header(("cookie", c.clone()));
        }
        if !self.csrf.is_empty() {
            req = req.insert_header(("x-csrf-token", self.csrf.clone()));
        }
        for (k, v) in extra {
            req = req.insert_header((*k, *v));
        }
        let mut resp = match body {
            Some(b) => {
                req.insert_header(("content-type", "application/json"))
                    .send_body(b.to_string())
                    .await
            }
            None => req.send().await,
        }
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let bytes = resp.body().limit(1 << 24).await.expect("body");
        let text = String::from_utf8_lossy(&bytes).to_string();
        Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[]).await
    }

    async fn login(&mut self, user: &str, password: &str) -> Reply {
        let body = json!({"username": user, "password": password}).to_string();
        let r = self.send("POST", "/login", Some(&body), &[]).await;
        if r.status == 200 {
            let set = r.headers.get("set-cookie").expect("a session cookie");
            let cookie = set.to_str().expect("ascii");
            self.cookie = Some(cookie.split(';').next().unwrap_or_default().to_string());
            self.csrf = r.body["csrf"].as_str().unwrap_or_default().to_string();
        }
        r
    }
}

#[actix_web::test]
async fn login_sessions_tokens_layouts_and_csrf() {
    let scp = start_scp(scp_args("scp_login", "", "unused:"));
    let mut web = Web::new(&scp);

    // Anonymous: pages go to the login page, APIs answer 401.
    let r = web.get("/").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.headers.get("location").unwrap(), "/login?next=%2F");
    assert_eq!(web.get("/api/session").await.status, 401);
    let page = web.get("/login").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("name=\"password\""));

    // Wrong password and unknown user: the same generic answer.
    let wrong = web.login("admin", "nope-nope").await;
    let unknown = web.login("nobody", "nope-nope").await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body["error"], "invalid username or password");
    // A malformed body is a 400 with a reason.
    let bad = web.send("POST", "/login", Some("{\"user\":1}"), &[]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"].as_str().unwrap().contains("username"));

    // Login: HttpOnly, SameSite=Strict; Secure only over HTTPS (auto).
    let ok = web.login("admin", ADMIN_PW).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["roles"], json!(["viewer", "admin"]));
    let cookie = ok
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    let mut tls = Web::new(&scp);
    let body = json!({"username": "viewer", "password": VIEWER_PW}).to_string();
    let r = tls
        .send(
            "POST",
            "/login",
            Some(&body),
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert!(r
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Secure"));
    tls.cookie = None;

    assert_eq!(web.get("/api/session").await.body["user"], "admin");

    // CSRF: a token request without the header, or from another origin, is refused.
    let csrf = std::mem::take(&mut web.csrf);
    assert_eq!(web.send("POST", "/api/token", None, &[]).await.status, 403);
    web.csrf = csrf;
    let cross = web
        .send(
            "POST",
            "/api/token",
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, 403);

    // The token: the user's subject and roles, the configured topics, the short lifetime.
    let t = web.send("POST", "/api/token", None, &[]).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let tok = t.body["token"].as_str().unwrap();
    let now = token::now_secs();
    let claims = token::verify(tok, SECRET.as_bytes(), now).expect("valid token");
    assert_eq!(claims.sub, "admin");
    assert_eq!(claims.roles, vec!["viewer", "admin"]);
    assert_eq!(
        claims.topics,
        tickwire::token::topic_list(tickwire::token::DEFAULT_TOPICS)
    );
    assert_eq!(claims.exp - claims.iat, 300);
    assert!(matches!(
        token::verify(tok, SECRET.as_bytes(), claims.exp + 1),
        Err(token::TokenError::Expired)
    ));
    assert!(token::verify(tok, b"another secret", now).is_err());

    // The dashboard page carries a token in its (escaped) config, under a strict CSP.
    let page = web.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page
        .text
        .contains("name=\"tickwire-config\" content=\"{&quot;"));
    assert!(page.text.contains("&quot;user&quot;:&quot;admin&quot;"));
    assert!(page.text.contains("&quot;token&quot;:&quot;ey"));
    let csp = page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"));
    assert_eq!(web.get("/assets/dashboard.js").await.status, 200);
    assert_eq!(web.get("/assets/nope.js").await.status, 404);
    assert_eq!(web.get("/ops").await.status, 200);

    // Layouts: bad bodies get reasons; a saved layout exports and imports.
    let r = web
        .send("PUT", "/api/layouts", Some("{not json"), &[])
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]
        .as_str()
        .unwrap()
        .contains("not a layouts document"));
    let bad = json!({"savedLayouts": {"a": {"layout": [{"x": -1, "y": 0, "w": 1, "h": 1, "i": "w1", "type": "quote"}]}}});
    let r = web
        .send("PUT", "/api/layouts", Some(&bad.to_string()), &[])
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"].as_str().unwrap().contains("`x`"),
        "{}",
        r.text
    );
    let good = json!({"savedLayouts": {"main": {"layout": [{"x": 0, "y": 0, "w": 6, "h": 11, "i": "widget-1", "type": "quote", "linkColor": "red"}], "widgetCounter": 1}}, "defaultLayoutName": "main"});
    assert_eq!(
        web.send("PUT", "/api/layouts", Some(&good.to_string()), &[])
            .await
            .status,
        200
    );
    let export = web.get("/api/layouts/export").await;
    assert_eq!(export.body["version"], 1);
    assert_eq!(export.body["defaultLayout"], "main");
    let mut other = export.body.clone();
    other["layouts"] = json!({"second": {"layout": []}});
    let merged = web
        .send("POST", "/api/layouts/import", Some(&other.to_string()), &[])
        .await;
    assert_eq!(merged.status, 200, "{}", merged.text);
    let names: Vec<&String> = merged.body["savedLayouts"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(names, ["main", "second"]);
    let r = web
        .send(
            "POST",
            "/api/layouts/import",
            Some(r#"{"version":7,"layouts":{}}"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 400);

    // A viewer: the dashboard yes, the operations page and control routes no.
    let mut viewer = Web::new(&scp);
    assert_eq!(viewer.login("viewer", VIEWER_PW).await.status, 200);
    assert_eq!(viewer.get("/").await.status, 200);
    assert_eq!(viewer.get("/ops").await.status, 403);

    // Logout ends the session server-side.
    assert_eq!(web.send("POST", "/logout", None, &[]).await.status, 200);
    assert_eq!(web.get("/api/session").await.status, 401);
    assert_eq!(web.send("POST", "/api/token", None, &[]).await.status, 401);
    assert!(scp.registry.value("tickwire_scp_logins_total", &[]) >= Some(3));
    assert!(scp.registry.value("tickwire_scp_login_failures_total", &[]) >= Some(2));
    scp.stop().await;
}

#[actix_web::test]
async fn login_rate_limit_and_session_expiry() {
    let mut a = scp_args("scp_limits", "", "unused:");
    a.settings.login_max_failures = 3;
    let scp = start_scp(a);
    let mut web = Web::new(&scp);
    for _ in 0..3 {
        assert_eq!(web.login("admin", "wrong-password").await.status, 401);
    }
    // Over the allowance even the right password waits, with Retry-After.
    let r = web.login("admin", ADMIN_PW).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(
        scp.registry
            .value("tickwire_scp_login_rate_limited_total", &[]),
        Some(1)
    );
    // The form variant goes back to the login page with the reason.
    let form = awc::Client::builder()
        .disable_redirects()
        .finish()
        .post(scp.url("/login"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body("username=admin&password=x&next=%2F")
        .await
        .expect("form post");
    assert_eq!(form.status().as_u16(), 303);
    assert!(form
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("error=limited"));

    // The limit is this address's for this user: another user from the same address is not
    // limited (nor is this user from another address: tests/security.rs).
    assert_eq!(web.login("viewer", VIEWER_PW).await.status, 200);
    scp.stop().await;

    // A session past its lifetime has expired: back to the login page. (Idle expiry is the
    // unit test's: polling here would keep an idle clock running.)
    let mut a = scp_args("scp_expiry", "", "unused:");
    a.settings.session_lifetime_secs = 1;
    let scp = start_scp(a);
    let mut web = Web::new(&scp);
    assert_eq!(web.login("viewer", VIEWER_PW).await.status, 200);
    wait_until_async("the session expires", || {
        let w = &web;
        async move { w.get("/api/session").await.status == 401 }
    })
    .await;
    let r = web.get("/").await;
    assert_eq!(r.status, 303);
    assert!(r
        .headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("/login"));
    scp.stop().await;
}

/// `add-user`, a removed user and a changed role apply at the next request, with no
/// restart; a broken users file leaves the last good users in place.
#[actix_web::test]
async fn users_file_changes_apply_without_a_restart() {
    let a = scp_args("scp_users_reload", "", "unused:");
    let settings = a.settings.clone();
    let path = settings.data_dir.join("users.json");
    let scp = start_scp(a);
    let add_user = |name: &str, roles: &str| {
        tickwire::scp::users::add_to_file(&settings, name, "carol-password-1", roles)
            .expect("add-user")
    };
    let counter = |name: &str| scp.registry.value(name, &[]).unwrap_or(0);
    let mut carol = Web::new(&scp);
    assert_eq!(carol.login("carol", "carol-password-1").await.status, 401);

    // Added while the SCP runs, through what `tickwire-scp add-user` calls: logs in at once.
    add_user("carol", "admin");
    let r = carol.login("carol", "carol-password-1").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        carol.get("/api/session").await.body["roles"],
        json!(["viewer", "admin"])
    );
    assert_ne!(carol.get("/api/control/nodes").await.status, 403);

    // Demoted: the same session loses the admin role on its next request.
    add_user("carol", "viewer");
    assert_eq!(
        carol.get("/api/session").await.body["roles"],
        json!(["viewer"])
    );
    assert_eq!(carol.get("/api/control/nodes").await.status, 403);

    // Half an edit: the last good users stay, and the failure is counted.
    let good = std::fs::read(&path).expect("users file");
    std::fs::write(&path, b"{\"users\": [").expect("break the file");
    let mut viewer = Web::new(&scp);
    assert_eq!(viewer.login("viewer", VIEWER_PW).await.status, 200);
    assert_eq!(counter("tickwire_scp_users_reload_errors_total"), 1);

    // Removed from the file: the session ends and the password no longer works.
    let mut file: Value = serde_json::from_slice(&good).expect("json");
    file["users"]
        .as_array_mut()
        .expect("users")
        .retain(|u| u["username"] != "carol");
    std::fs::write(&path, serde_json::to_vec(&file).expect("json")).expect("write");
    assert_eq!(carol.get("/api/session").await.status, 401);
    assert_eq!(carol.login("carol", "carol-password-1").await.status, 401);
    assert_eq!(viewer.get("/api/session").await.status, 200);
    assert!(counter("tickwire_scp_users_reloaded_total") >= 3);
    scp.stop().await;
}

#[actix_web::test]
async fn control_api_over_registered_nodes() {
    let redis = common::redis::redis_url();
    common::rabbit::rabbit_url(); // fails clearly when RabbitMQ is down
    let prefix = common::redis::unique_prefix("scp_nodes");
    let qprefix = common::rabbit::unique_prefix("scp");
    let sim = start_sim(sim_args());

    // A listener node and a WDS node, both registering under this test's prefix.
    let lhttp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let lport = lhttp.local_addr().unwrap().port();
    let ladmin = format!("http://127.0.0.1:{lport}");
    let extra = [
        "--lease",
        "false",
        "--massive-subscriptions",
        "A.*",
        "--admin-token",
        ADMIN_TOKEN,
        "--node-registry-url",
        &redis,
        "--node-registry-prefix",
        &prefix,
        "--node-heartbeat-secs",
        "1",
        "--node-admin-url",
        &ladmin,
    ];
    let largs = listener_args(sim.port, "demo", &qprefix, "1", &extra);
    let listener = tickwire::actors::listener::start(largs, lhttp).expect("listener starts");

    let whttp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let wport = whttp.local_addr().unwrap().port();
    let mut wa =
        tickwire::actors::wds::node::WdsArgs::try_parse_from(["tickwire-wds"]).expect("defaults");
    wa.wdc.url = redis.clone();
    wa.results_prefix = format!("{prefix}wdc:");
    wa.settings.token_secret = SECRET.into();
    wa.common.admin_token = ADMIN_TOKEN.into();
    wa.node_registry.registry_url = redis.clone();
    wa.node_registry.registry_prefix = prefix.clone();
    wa.node_registry.heartbeat_secs = 1;
    wa.node_registry.admin_url = format!("http://127.0.0.1:{wport}");
    wa.workers = 1;
    let wds = tickwire::actors::wds::node::start(wa, whttp).expect("WDS starts");

    let mut sa = scp_args("scp_control", &redis, &prefix);
    sa.settings.token_topics = "*".into();
    let scp = start_scp(sa);
    let mut admin = Web::new(&scp);
    assert_eq!(admin.login("admin", ADMIN_PW).await.status, 200);
    let mut viewer = Web::new(&scp);
    assert_eq!(viewer.login("viewer", VIEWER_PW).await.status, 200);
    let anonymous = Web::new(&scp);

    // The registry lists every node with its role, version and admin URL.
    let nodes = until("listener, WDS and SCP registered", || {
        let a = &admin;
        async move {
            let n = a.get("/api/control/nodes").await.body["nodes"].clone();
            (n.as_array().map_or(0, Vec::len) == 3).then_some(n)
        }
    })
    .await;
    let id_of = |role: &str| {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["role"] == role)
            .unwrap_or_else(|| panic!("no {role} node in {nodes}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (lid, wid) = (id_of("listener"), id_of("wds"));
    id_of("scp");
    let lnode = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == lid.as_str())
        .unwrap();
    assert_eq!(lnode["admin_url"], ladmin);
    assert_eq!(lnode["version"], env!("CARGO_PKG_VERSION"));

    // Every control route: 401 without a session, 403 for a viewer (and no effect).
    let routes: Vec<(&str, String, Option<&str>)> = vec![
        ("GET", "/api/control/nodes".into(), None),
        ("GET", "/api/control/stats".into(), None),
        ("GET", "/api/control/wds".into(), None),
        ("GET", format!("/api/control/nodes/{lid}/stats"), None),
        (
            "POST",
            format!("/api/control/nodes/{lid}/listener/stop"),
            None,
        ),
        (
            "POST",
            format!("/api/control/nodes/{lid}/listener/start"),
            None,
        ),
        (
            "POST",
            format!("/api/control/nodes/{lid}/listener/restart"),
            None,
        ),
        (
            "PUT",
            format!("/api/control/nodes/{lid}/listener/subscriptions"),
            Some("[\"T.*\"]"),
        ),
        (
            "PUT",
            format!("/api/control/nodes/{lid}/listener/feed?feed=x.example"),
            None,
        ),
        (
            "PUT",
            format!("/api/control/nodes/{lid}/listener/market?to=crypto"),
            None,
        ),
        (
            "PUT",
            format!("/api/control/nodes/{lid}/pool"),
            Some("{\"max_shards\":1}"),
        ),
    ];
    for (method, path, body) in &routes {
        assert_eq!(
            anonymous.send(method, path, *body, &[]).await.status,
            401,
            "{method} {path}"
        );
        assert_eq!(
            viewer.send(method, path, *body, &[]).await.status,
            403,
            "{method} {path}"
        );
    }

    // Aggregated stats: every node answers through the SCP (awc + admin token).
    let stats = admin.get("/api/control/stats").await;
    assert_eq!(stats.status, 200);
    let all = stats.body["nodes"].as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|n| n["ok"] == true), "{}", stats.text);

    // Listener control: stop, then start again; the node's state follows.
    let stats_path = format!("/api/control/nodes/{lid}/stats");
    let listener_state = |want_streaming: bool| {
        let (a, p) = (&admin, &stats_path);
        async move {
            let s = a.get(p).await.body["node"]["stocks"]["state"].clone();
            ((s == "streaming") == want_streaming).then_some(s)
        }
    };
    until("the listener streams", || listener_state(true)).await;
    let r = admin
        .send(
            "POST",
            &format!("/api/control/nodes/{lid}/listener/stop"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    until("the listener stops", || listener_state(false)).await;
    let r = admin
        .send(
            "POST",
            &format!("/api/control/nodes/{lid}/listener/start"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    until("the listener streams again", || listener_state(true)).await;

    // Bad requests: the SCP's own reasons, and the node's passed through.
    let r = admin
        .send(
            "POST",
            &format!("/api/control/nodes/{lid}/listener/explode"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = admin
        .send(
            "PUT",
            &format!("/api/control/nodes/{lid}/listener/subscriptions"),
            Some("[\"XX.*\"]"),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.body["error"].as_str().unwrap().contains("XX"),
        "{}",
        r.text
    );
    let r = admin
        .send(
            "PUT",
            &format!("/api/control/nodes/{lid}/pool"),
            Some("{\"max_shards\":\"two\"}"),
            &[],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().contains("max_shards"));
    let r = admin
        .send(
            "PUT",
            &format!("/api/control/nodes/{lid}/pool"),
            Some("{\"max_shards\":1}"),
            &[],
        )
        .await;
    assert_eq!(
        r.status, 400,
        "pool size is a processor setting: {}",
        r.text
    );
    assert_eq!(admin.get("/api/control/nodes/nope/stats").await.status, 404);

    // WDS session counts: a client with an SCP-issued token shows up.
    let t = admin.send("POST", "/api/token", None, &[]).await;
    let tok = t.body["token"].as_str().unwrap().to_string();
    let mut ws = Client::connect(&format!("ws://127.0.0.1:{wport}/ws/v2?token={tok}")).await;
    assert_eq!(ws.next_json().await["type"], "welcome");
    let w = admin.get("/api/control/wds").await;
    assert_eq!(w.body["total_sessions"], 1, "{}", w.text);
    assert_eq!(w.body["nodes"][0]["id"], wid.as_str());

    // A stopped node leaves the registry at once.
    wds.stop().await;
    wait_until_async("the stopped WDS drops out", || {
        let a = &admin;
        async move {
            let n = a.get("/api/control/nodes").await.body["nodes"].clone();
            n.as_array().is_some_and(|n| n.len() == 2)
        }
    })
    .await;

    // A node that dies without deregistering drops out when its heartbeat TTL runs out. (Its
    // record is signed with the cluster's key, as a real node's is.)
    let mut ghost = tickwire::nodes::NodeRecord::new("ghost", "processor", "http://127.0.0.1:9");
    ghost.seal(&tickwire::nodes::registry_key(ADMIN_TOKEN).expect("a cluster key"));
    let key = tickwire::nodes::node_key(&prefix, "ghost");
    let mut conn = common::redis::connection().await;
    deadpool_redis::redis::cmd("SET")
        .arg(&key)
        .arg(serde_json::to_string(&ghost).unwrap())
        .arg("PX")
        .arg(1500)
        .query_async::<()>(&mut conn)
        .await
        .expect("SET");
    let listed = |want: bool| {
        let a = &admin;
        async move {
            let n = a.get("/api/control/nodes").await.body["nodes"].clone();
            let has = n
                .as_array()
                .is_some_and(|n| n.iter().any(|x| x["id"] == "ghost"));
            (has == want).then_some(())
        }
    };
    until("the ghost is listed", || listed(true)).await;
    // Its admin routes are unreachable: the stats say so instead of failing the whole call.
    let stats = admin.get("/api/control/stats").await;
    let g = stats.body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"]["id"] == "ghost")
        .cloned();
    if let Some(g) = g {
        assert_eq!(g["ok"], false);
    }
    until("the ghost's entry expires", || listed(false)).await;

    listener.stop().await;
    scp.stop().await;
    sim.stop().await;
    common::rabbit::delete_pipeline_queues(&qprefix, 1).await;
    common::redis::cleanup(&prefix).await;
}

/// The keys a test left under `prefix` in the shared Redis.
async fn keys_under(prefix: &str) -> Vec<String> {
    let mut conn = common::redis::connection().await;
    deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut *conn)
        .await
        .expect("KEYS")
}

/// With the node registry in Redis, sessions are kept there: two replicas share them, a
/// restart keeps them, logout on one ends them on the other, the lifetime still holds, no
/// session id is stored in clear, and a Redis outage answers 503 rather than "log in".
#[actix_web::test]
async fn sessions_in_redis_are_shared_by_replicas_and_survive_a_restart() {
    let prefix = common::redis::unique_prefix("scp-sessions");
    let redis = common::redis::redis_url();
    let a_args = scp_args("scp_sessions", &redis, &prefix);
    let a = start_scp(a_args.clone());
    let b = start_scp(a_args.clone());

    let mut on_a = Web::new(&a);
    assert_eq!(on_a.login("viewer", VIEWER_PW).await.status, 200);
    let cookie = on_a.cookie.clone().expect("cookie");
    let mut on_b = Web::new(&b);
    on_b.cookie = Some(cookie.clone());
    on_b.csrf = on_a.csrf.clone();
    let r = on_b.get("/api/session").await;
    assert_eq!(
        (r.status, r.body["user"].as_str()),
        (200, Some("viewer")),
        "{}",
        r.text
    );
    let (_, stats) = get_json(&a.url("/stats"), Some(ADMIN_TOKEN)).await;
    assert_eq!(stats["node"]["sessions_store"], "redis");
    assert_eq!(stats["node"]["browser_sessions"], 1);
    let id = cookie.split_once('=').expect("name=value").1.to_string();
    let keys = keys_under(&format!("{prefix}scp:sessions:")).await;
    assert!(
        !keys.is_empty() && keys.iter().all(|k| !k.contains(&id)),
        "{keys:?}"
    );

    // A restart of A keeps the session.
    a.stop().await;
    let a = start_scp(a_args.clone());
    let mut again = Web::new(&a);
    again.cookie = Some(cookie.clone());
    assert_eq!(again.get("/api/session").await.status, 200);

    // Logout on B ends it on A too (which is told it was signed out), and leaves nothing
    // behind but that note, keyed by the id's hash and gone after the idle timeout.
    assert_eq!(on_b.send("POST", "/logout", None, &[]).await.status, 200);
    let r = again.get("/api/session").await;
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (401, Some("revoked"))
    );
    let left = keys_under(&format!("{prefix}scp:sessions:")).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].contains("scp:sessions:ended:") && !left[0].contains(&id),
        "{left:?}"
    );
    let mut conn = common::redis::connection().await;
    let ttl: i64 = deadpool_redis::redis::cmd("TTL")
        .arg(&left[0])
        .query_async(&mut *conn)
        .await
        .expect("TTL");
    let idle = a_args.settings.session_idle_secs as i64;
    assert!((1..=idle).contains(&ttl), "TTL {ttl}, idle {idle}");
    a.stop().await;
    b.stop().await;

    // The absolute lifetime holds in Redis as in memory.
    let mut short = a_args.clone();
    short.settings.session_lifetime_secs = 1;
    let c = start_scp(short);
    let mut web = Web::new(&c);
    assert_eq!(web.login("viewer", VIEWER_PW).await.status, 200);
    wait_until_async("the session outlives its lifetime", || {
        let w = &web;
        async move { w.get("/api/session").await.status == 401 }
    })
    .await;
    c.stop().await;
    common::redis::cleanup(&prefix).await;

    // Redis away: 503 with the reason, counted; not a silent logout.
    let mut private = common::redis::PrivateRedis::start();
    let d = start_scp(scp_args("scp_sessions_outage", &private.url(), &prefix));
    let mut web = Web::new(&d);
    // Ready only once its session store answers (the private server may still be starting):
    // from then on a login works at the first try.
    let ready = d.url("/ready");
    let ready_is = |want: u16| {
        let u = ready.clone();
        async move {
            let (status, body) = get_json(&u, None).await;
            (status == want).then_some(body)
        }
    };
    until("the SCP is ready", || ready_is(200)).await;
    assert_eq!(web.login("viewer", VIEWER_PW).await.status, 200);
    private.kill();
    let r = web.get("/api/session").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("session store unavailable"), "{}", r.text);
    // ...and /ready says so, naming the store, until it answers again.
    let body = until("/ready reports the store", || ready_is(503)).await;
    assert!(
        body["checks"]["session_store"]
            .as_str()
            .is_some_and(|why| why.contains("session store")),
        "{body}"
    );
    private.restart();
    until("the SCP is ready again", || ready_is(200)).await;
    // The restarted server is empty (it keeps nothing on disk): a new login works.
    assert_eq!(web.login("viewer", VIEWER_PW).await.status, 200);
    assert!(
        d.registry
            .value("tickwire_scp_session_store_errors_total", &[])
            .unwrap_or(0)
            >= 2
    );
    d.stop().await;
}

/// With sessions in Redis the login allowance is shared too: failures on one replica count
/// on the other, so N replicas do not allow N times the attempts.
#[actix_web::test]
async fn login_failures_count_across_replicas_in_redis() {
    let prefix = common::redis::unique_prefix("scp-limiter");
    let mut args = scp_args("scp_limiter", &common::redis::redis_url(), &prefix);
    args.settings.login_max_failures = 3;
    let a = start_scp(args.clone());
    let b = start_scp(args);
    let (mut on_a, mut on_b) = (Web::new(&a), Web::new(&b));
    assert_eq!(on_a.login("viewer", "wrong-1").await.status, 401);
    assert_eq!(on_b.login("viewer", "wrong-2").await.status, 401);
    assert_eq!(on_a.login("viewer", "wrong-3").await.status, 401);
    let r = on_b.login("viewer", VIEWER_PW).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.headers.get("retry-after").is_some());
    let keys = keys_under(&format!("{prefix}scp:login_failures:")).await;
    assert!(
        !keys.is_empty() && keys.iter().all(|k| !k.contains("viewer")),
        "failure keys are hashed: {keys:?}"
    );
    a.stop().await;
    b.stop().await;
    common::redis::cleanup(&prefix).await;
}

/// `tickwire-scp remove-user` and `list-users` on the file a running SCP serves: the removed
/// user's session ends at its next request; the last admin stays.
#[actix_web::test]
async fn remove_user_ends_their_sessions_and_keeps_the_last_admin() {
    use tickwire::scp::users::{self, UsersError};
    let a = scp_args("scp_remove_user", "", "unused:");
    let settings = a.settings.clone();
    let scp = start_scp(a);
    let mut viewer = Web::new(&scp);
    assert_eq!(viewer.login("viewer", VIEWER_PW).await.status, 200);

    let listed = users::list_file(&settings).expect("list-users");
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["admin", "viewer"]);

    users::remove_from_file(&settings, "viewer").expect("remove-user");
    assert_eq!(viewer.get("/api/session").await.status, 401);
    assert_eq!(viewer.login("viewer", VIEWER_PW).await.status, 401);
    assert!(matches!(
        users::remove_from_file(&settings, "admin"),
        Err(UsersError::LastAdmin(_))
    ));
    assert!(matches!(
        users::remove_from_file(&settings, "viewer"),
        Err(UsersError::NoSuchUser(_))
    ));
    let mut admin = Web::new(&scp);
    assert_eq!(admin.login("admin", ADMIN_PW).await.status, 200);
    scp.stop().await;
}

/// `POST /api/password`: the current password is checked and limited like a login, the new
/// one must pass the rule, and afterwards only the new one logs in.
#[actix_web::test]
async fn users_change_their_own_password() {
    let mut a = scp_args("scp_password", "", "unused:");
    a.settings.login_max_failures = 3;
    let scp = start_scp(a);
    let mut web = Web::new(&scp);
    assert_eq!(web.login("viewer", VIEWER_PW).await.status, 200);
    let change = |current: &str, new: &str| json!({"current": current, "new": new}).to_string();

    let r = web
        .send(
            "POST",
            "/api/password",
            Some(&change(VIEWER_PW, "short")),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = web
        .send(
            "POST",
            "/api/password",
            Some(&change("not-it-at-all", "viewer-password-2")),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("the current password is wrong"))
    );
    // Without the CSRF token: refused before anything is checked.
    let mut no_csrf = Web::new(&scp);
    no_csrf.cookie = web.cookie.clone();
    let r = no_csrf
        .send(
            "POST",
            "/api/password",
            Some(&change(VIEWER_PW, "viewer-password-2")),
            &[],
        )
        .await;
    assert_eq!(r.status, 403);

    let r = web
        .send(
            "POST",
            "/api/password",
            Some(&change(VIEWER_PW, "viewer-password-2")),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        scp.registry
            .value("tickwire_scp_password_changes_total", &[]),
        Some(1)
    );
    assert_eq!(Web::new(&scp).login("viewer", VIEWER_PW).await.status, 401);
    assert_eq!(
        Web::new(&scp)
            .login("viewer", "viewer-password-2")
            .await
            .status,
        200
    );

    // Guessing the current password runs into the login allowance (3 failures per address
    // and username; the right login above cleared the pair's): then even the right one waits.
    let mut limited = false;
    for _ in 0..4 {
        let body = change("guess-guess-guess", "viewer-password-3");
        match web
            .send("POST", "/api/password", Some(&body), &[])
            .await
            .status
        {
            403 => continue,
            429 => {
                limited = true;
                break;
            }
            other => panic!("guessing the current password: HTTP {other}"),
        }
    }
    assert!(
        limited,
        "wrong current passwords past the allowance were not limited"
    );
    let body = change("viewer-password-2", "viewer-password-3");
    assert_eq!(
        web.send("POST", "/api/password", Some(&body), &[])
            .await
            .status,
        429
    );
    scp.stop().await;
}

/// A password change logs the user's other sessions out and keeps the one that made it, with
/// sessions in memory and in Redis alike.
#[actix_web::test]
async fn changing_the_password_ends_the_users_other_sessions() {
    let prefix = common::redis::unique_prefix("scp-password-others");
    for registry in [String::new(), common::redis::redis_url()] {
        let scp = start_scp(scp_args("scp_password_others", &registry, &prefix));
        let mut here = Web::new(&scp);
        let mut elsewhere = Web::new(&scp);
        let mut admin = Web::new(&scp);
        assert_eq!(here.login("viewer", VIEWER_PW).await.status, 200);
        assert_eq!(elsewhere.login("viewer", VIEWER_PW).await.status, 200);
        assert_eq!(admin.login("admin", ADMIN_PW).await.status, 200);
        let body = json!({"current": VIEWER_PW, "new": "viewer-password-9"}).to_string();
        let r = here.send("POST", "/api/password", Some(&body), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(here.get("/api/session").await.status, 200, "{registry}");
        // The other browser is told it was signed out, not that its session expired (its
        // dashboard may hear this before the WDS's token_revoked), on the API and on a page.
        let r = elsewhere.send("POST", "/api/token", None, &[]).await;
        assert_eq!(
            (r.status, r.body["reason"].as_str()),
            (401, Some("revoked")),
            "{registry}: {}",
            r.text
        );
        let page = elsewhere.get("/").await;
        let to = page.headers.get("location").and_then(|l| l.to_str().ok());
        assert_eq!(
            (page.status, to),
            (303, Some("/login?next=%2F&error=revoked")),
            "{registry}"
        );
        // A cookie that never was a session (or one that expired) says nothing of the kind.
        let mut stranger = Web::new(&scp);
        stranger.cookie = Some("tw_session=0123456789abcdef".into());
        let r = stranger.get("/api/session").await;
        assert_eq!((r.status, r.body.get("reason")), (401, None), "{registry}");
        // Other users' sessions are not touched.
        assert_eq!(admin.get("/api/session").await.status, 200, "{registry}");
        scp.stop().await;
    }
    common::redis::cleanup(&prefix).await;
}

/// A WDS on Redis that reads this registry's revocations every 100 ms; its port.
fn start_wds(redis: &str, prefix: &str) -> (tickwire::actors::wds::node::WdsNode, u16) {
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = http.local_addr().expect("port").port();
    let mut wa =
        tickwire::actors::wds::node::WdsArgs::try_parse_from(["tickwire-wds"]).expect("defaults");
    wa.wdc.url = redis.into();
    wa.results_prefix = format!("{prefix}wdc:");
    wa.settings.token_secret = SECRET.into();
    wa.common.admin_token = ADMIN_TOKEN.into();
    wa.node_registry.registry_url = redis.into();
    wa.node_registry.registry_prefix = prefix.into();
    wa.node_registry.admin_url = format!("http://127.0.0.1:{port}");
    wa.revocation_poll_ms = 100;
    wa.workers = 1;
    (
        tickwire::actors::wds::node::start(wa, http).expect("WDS starts"),
        port,
    )
}

/// The revocation tests' setup: a unique registry prefix in Redis, a WDS on it (and its
/// port), and settings for SCPs there whose tokens grant every topic.
fn with_wds(name: &str) -> (String, tickwire::actors::wds::node::WdsNode, u16, ScpArgs) {
    let redis = common::redis::redis_url();
    let prefix = common::redis::unique_prefix(name);
    let (wds, port) = start_wds(&redis, &prefix);
    let mut sa = scp_args(name, &redis, &prefix);
    sa.settings.token_topics = "*".into();
    (prefix, wds, port, sa)
}

impl Web {
    /// A WDS socket opened with a token this session gets from `POST /api/token`.
    async fn wds_socket(&self, port: u16) -> Client {
        let t = self.send("POST", "/api/token", None, &[]).await;
        assert_eq!(t.status, 200, "{}", t.text);
        let tok = t.body["token"].as_str().expect("a token");
        let mut ws = Client::connect(&format!("ws://127.0.0.1:{port}/ws/v2?token={tok}")).await;
        assert_eq!(ws.next_json().await["type"], "welcome");
        ws
    }
}

/// The socket is still served: it answers a ping.
async fn still_open(ws: &mut Client, who: &str) {
    ws.send(r#"{"type":"ping"}"#).await;
    loop {
        let v = ws.next_json().await;
        assert_ne!(v["type"], "error", "{who}: {v}");
        if v["type"] == "pong" {
            return;
        }
    }
}

/// The socket ends because its token was revoked.
async fn revoked(ws: &mut Client, who: &str) {
    loop {
        let v = ws.next_json().await;
        if v["type"] == "error" {
            assert_eq!(v["code"], "token_revoked", "{who}: {v}");
            break;
        }
    }
    assert_eq!(
        ws.close_reason().await,
        Some((1008, "token revoked".into())),
        "{who}"
    );
}

#[actix_web::test]
async fn logging_out_ends_the_sessions_wds_sockets_at_once() {
    let (prefix, wds, port, sa) = with_wds("scp_revoke");
    let settings = sa.settings.clone();
    let scp = start_scp(sa);

    // The viewer in three browsers, the admin in one, each with a WDS socket.
    let one = Web::logged_in(scp.url(""), "viewer", VIEWER_PW).await;
    let two = Web::logged_in(scp.url(""), "viewer", VIEWER_PW).await;
    let three = Web::logged_in(scp.url(""), "viewer", VIEWER_PW).await;
    let admin = Web::logged_in(scp.url(""), "admin", ADMIN_PW).await;
    let mut ws_one = one.wds_socket(port).await;
    let mut ws_two = two.wds_socket(port).await;
    let mut ws_three = three.wds_socket(port).await;
    let mut ws_admin = admin.wds_socket(port).await;

    // The token names its browser session by a digest, never by the cookie.
    let t = one.send("POST", "/api/token", None, &[]).await;
    let claims = token::verify(
        t.body["token"].as_str().expect("token"),
        SECRET.as_bytes(),
        token::now_secs(),
    )
    .expect("valid");
    let cookie = one.cookie.clone().unwrap_or_default();
    assert_eq!(claims.sid.len(), 32, "{claims:?}");
    assert!(!cookie.contains(&claims.sid), "{claims:?}");

    // A logout ends that browser's socket, long before its token would expire.
    assert_eq!(one.send("POST", "/logout", None, &[]).await.status, 200);
    revoked(&mut ws_one, "the browser that logged out").await;
    still_open(&mut ws_two, "the viewer's other browser").await;
    still_open(&mut ws_admin, "the admin").await;

    // A password change ends the user's other browsers' sockets, not its own.
    let body = json!({"current": VIEWER_PW, "new": "viewer-password-7"}).to_string();
    let r = two.send("POST", "/api/password", Some(&body), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    revoked(&mut ws_three, "another browser after a password change").await;
    still_open(&mut ws_two, "the browser that changed the password").await;

    // Removing the user from the users file (as `tickwire-scp remove-user` does) ends the
    // rest once the control plane reads the file again, at its next request.
    tickwire::scp::users::remove_from_file(&settings, "viewer").expect("remove viewer");
    assert_eq!(admin.get("/api/session").await.status, 200);
    revoked(&mut ws_two, "a removed user").await;
    still_open(&mut ws_admin, "the admin").await;

    // Counted once Redis has answered, which may come a moment after the WDS has acted.
    wait_until("three revocations counted", || {
        scp.registry.value("tickwire_scp_revocations_total", &[]) == Some(3)
    })
    .await;
    scp.stop().await;
    wds.stop().await;
    common::redis::cleanup(&prefix).await;
}

#[actix_web::test]
async fn in_embedded_mode_a_logout_ends_the_sessions_sockets_too() {
    let mut a = embedded_args("scp_revoke_embedded");
    a.sim.tickers = 20;
    a.wds.token_secret = SECRET.into();
    a.scp.admin_password = ADMIN_PW.into();
    let sim_http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let e = tickwire::embedded::start(a, sim_http, http).expect("embedded starts");
    let port = e.http.port;
    let base = format!("http://127.0.0.1:{port}");
    let gone = Web::logged_in(base.clone(), "admin", ADMIN_PW).await;
    let stays = Web::logged_in(base, "admin", ADMIN_PW).await;
    let mut ws_gone = gone.wds_socket(port).await;
    let mut ws_stays = stays.wds_socket(port).await;
    assert_eq!(gone.send("POST", "/logout", None, &[]).await.status, 200);
    revoked(&mut ws_gone, "the browser that logged out").await;
    still_open(&mut ws_stays, "the other browser").await;
    if let Some(sim) = e.sim {
        sim.stop().await;
    }
}

#[actix_web::test]
async fn a_password_reset_from_the_command_line_ends_sessions_and_sockets_at_once() {
    let (prefix, wds, port, sa) = with_wds("scp_reset");
    let cli = sa.clone();
    let scp = start_scp(sa);
    let mut viewer = Web::logged_in(scp.url(""), "viewer", VIEWER_PW).await;
    let admin = Web::logged_in(scp.url(""), "admin", ADMIN_PW).await;
    let mut ws_viewer = viewer.wds_socket(port).await;
    let mut ws_admin = admin.wds_socket(port).await;

    // What `echo new-password | tickwire-scp add-user viewer` does: the file, then the rest.
    let replaced = tickwire::scp::users::add_to_file(
        &cli.settings,
        "viewer",
        "viewer-password-reset",
        "viewer",
    )
    .expect("add-user");
    assert!(replaced, "an existing user with another password");
    let done = actix_web::web::block(move || node::end_user_access(&cli, "viewer"))
        .await
        .expect("join");
    assert_eq!(
        done.as_deref(),
        Ok("1 browser sessions ended and WDS tokens revoked")
    );
    assert_eq!(viewer.get("/api/session").await.status, 401);
    revoked(&mut ws_viewer, "the reset user's socket").await;
    assert_eq!(admin.get("/api/session").await.status, 200);
    still_open(&mut ws_admin, "the admin").await;
    assert_eq!(
        viewer.login("viewer", "viewer-password-reset").await.status,
        200
    );

    scp.stop().await;
    wds.stop().await;
    common::redis::cleanup(&prefix).await;
}

#[actix_web::test]
async fn a_new_password_from_the_command_line_ends_sessions_kept_in_memory_too() {
    let a = scp_args("scp_reset_memory", "", "unused:");
    let settings = a.settings.clone();
    let scp = start_scp(a);
    let mut viewer = Web::logged_in(scp.url(""), "viewer", VIEWER_PW).await;
    let admin = Web::logged_in(scp.url(""), "admin", ADMIN_PW).await;

    // Another password: the running SCP ends the user's sessions when it reads the file.
    let reset =
        tickwire::scp::users::add_to_file(&settings, "viewer", "viewer-password-new", "viewer")
            .expect("add-user");
    assert!(reset, "another password");
    assert_eq!(admin.get("/api/session").await.status, 200);
    assert_eq!(viewer.get("/api/session").await.status, 401);
    assert_eq!(
        viewer.login("viewer", "viewer-password-new").await.status,
        200
    );

    // The same password with other roles is a role change: the session stays.
    let reset = tickwire::scp::users::add_to_file(
        &settings,
        "viewer",
        "viewer-password-new",
        "viewer,admin",
    )
    .expect("add-user");
    assert!(!reset, "the same password");
    let r = viewer.get("/api/session").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["roles"], json!(["viewer", "admin"]));
    scp.stop().await;
}

/// A password edited into the users file with no command to end anything (by hand, or
/// `add-user` on a machine whose Redis the command cannot reach) still ends every session
/// opened with the old one, on every replica, with its WDS sockets; and a password changed
/// through the API on one replica keeps its own session when the other replica reads the
/// new file.
#[actix_web::test]
async fn a_password_changed_in_the_users_file_ends_the_old_sessions_on_every_replica() {
    let (prefix, wds, port, sa) = with_wds("scp_hand_edit");
    let settings = sa.settings.clone();
    let a = start_scp(sa.clone());
    let b = start_scp(sa);

    let on_a = Web::logged_in(a.url(""), "viewer", VIEWER_PW).await;
    let on_b = Web::logged_in(b.url(""), "viewer", VIEWER_PW).await;
    let admin = Web::logged_in(b.url(""), "admin", ADMIN_PW).await;
    let mut ws_a = on_a.wds_socket(port).await;
    let mut ws_b = on_b.wds_socket(port).await;
    let mut ws_admin = admin.wds_socket(port).await;

    // Another hash in the file, and nothing else: the first replica to read it ends both.
    let edited = "viewer-password-edited";
    let replaced =
        tickwire::scp::users::add_to_file(&settings, "viewer", edited, "viewer").expect("the edit");
    assert!(replaced, "another password");
    assert_eq!(admin.get("/api/session").await.status, 200);
    revoked(&mut ws_a, "the viewer's browser on A").await;
    revoked(&mut ws_b, "the viewer's browser on B").await;
    assert_eq!(on_a.get("/api/session").await.status, 401);
    assert_eq!(on_b.get("/api/session").await.status, 401);
    still_open(&mut ws_admin, "the admin").await;

    // Through the API on A: B reads the new file, and the session that changed it stays.
    let changer = Web::logged_in(a.url(""), "viewer", edited).await;
    let other = Web::logged_in(b.url(""), "viewer", edited).await;
    let mut ws_changer = changer.wds_socket(port).await;
    let mut ws_other = other.wds_socket(port).await;
    let body = json!({"current": edited, "new": "viewer-password-api"}).to_string();
    let r = changer
        .send("POST", "/api/password", Some(&body), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut changer_on_b = Web::at(b.url(""));
    changer_on_b.cookie = changer.cookie.clone();
    let r = changer_on_b.get("/api/session").await;
    assert_eq!(r.status, 200, "the changer's session on B: {}", r.text);
    assert_eq!(other.get("/api/session").await.status, 401);
    revoked(&mut ws_other, "the viewer's other browser").await;
    still_open(&mut ws_changer, "the browser that changed the password").await;

    a.stop().await;
    b.stop().await;
    wds.stop().await;
    common::redis::cleanup(&prefix).await;
}

/// Tokens and revocations carry milliseconds: logging in again in the very second of a
/// revocation that covers every earlier token of the user (here a password change in
/// another browser) gives a token the WDS takes. The scenario runs until the new token's
/// second is the revocation's, so the case is really exercised.
#[actix_web::test]
async fn a_login_in_the_second_of_a_revocation_gets_a_token_that_counts() {
    let (prefix, wds, port, sa) = with_wds("scp_same_second");
    let scp = start_scp(sa);
    let revoked_key = format!("{prefix}scp:revoked");
    let mut password = VIEWER_PW.to_string();
    let mut exercised = false;
    for attempt in 0..20 {
        let laptop = Web::logged_in(scp.url(""), "viewer", &password).await;
        // Start early in a second, so the change and the new login likely share it.
        wait_until("the start of a second", || {
            token::now_ms().rem_euclid(1000) < 200
        })
        .await;
        let new = format!("viewer-password-{attempt}");
        let body = json!({"current": password, "new": new}).to_string();
        let r = laptop.send("POST", "/api/password", Some(&body), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        password = new;
        let phone = Web::logged_in(scp.url(""), "viewer", &password).await;
        let t = phone.send("POST", "/api/token", None, &[]).await;
        let tok = t.body["token"].as_str().expect("a token").to_string();
        let claims = token::verify(&tok, SECRET.as_bytes(), token::now_secs()).expect("valid");
        assert!(claims.iat_ms > 0, "{claims:?}");
        // The WDS may read the revocation before or after the handshake: either way the
        // token counts, and the socket stays.
        let mut ws = Client::connect(&format!("ws://127.0.0.1:{port}/ws/v2?token={tok}")).await;
        assert_eq!(ws.next_json().await["type"], "welcome");
        let mut conn = common::redis::connection().await;
        let entries: Vec<String> = deadpool_redis::redis::cmd("ZRANGE")
            .arg(&revoked_key)
            .arg(0)
            .arg(-1)
            .query_async(&mut *conn)
            .await
            .expect("the revocations");
        let latest = entries
            .iter()
            .filter_map(|e| serde_json::from_str::<tickwire::revocation::Revocation>(e).ok())
            .map(|r| (r.before, r.before_ms))
            .max()
            .expect("the password change's revocation");
        assert!(latest.1 > 0, "in milliseconds too: {entries:?}");
        wait_until_async("the WDS has the revocation", || async {
            get_json(&format!("http://127.0.0.1:{port}/stats"), Some(ADMIN_TOKEN))
                .await
                .1["node"]["revocations"]
                .as_u64()
                .unwrap_or(0)
                > attempt
        })
        .await;
        still_open(&mut ws, "the phone's socket").await;
        if claims.iat == latest.0 {
            exercised = true;
            break;
        }
    }
    assert!(exercised, "no login fell in its revocation's second");
    scp.stop().await;
    wds.stop().await;
    common::redis::cleanup(&prefix).await;
}

/// Redis is not a root of trust (issue 19). A node record written straight into the
/// registry, pointing at an attacker's address, is ignored and counted: the control plane
/// never lists it and never sends it the admin token. The SCP's own record, signed with the
/// cluster's key, is listed.
#[actix_web::test]
async fn a_forged_node_record_gets_no_admin_token() {
    let prefix = common::redis::unique_prefix("scp-forged-node");
    let redis = common::redis::redis_url();
    // The attacker's "node": counts every request, and any that carries a bearer token.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let trap = actix_web::HttpServer::new(move || {
        let seen = seen.clone();
        actix_web::App::new().default_service(actix_web::web::to(
            move |req: actix_web::HttpRequest| {
                if req.headers().contains_key("authorization") {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                async { actix_web::HttpResponse::Ok().json(serde_json::json!({})) }
            },
        ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind");
    let trap_port = trap.addrs()[0].port();
    actix_web::rt::spawn(trap.run());
    let forged = serde_json::json!({
        "id": "evil", "role": "listener", "version": env!("CARGO_PKG_VERSION"),
        "admin_url": format!("http://127.0.0.1:{trap_port}"),
        "started_ms": 1, "heartbeat_ms": 1,
    });
    let mut conn = common::redis::connection().await;
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(format!("{prefix}nodes:evil"))
        .arg(forged.to_string())
        .query_async(&mut *conn)
        .await
        .expect("write the forged record");

    let scp = start_scp(scp_args("scp_forged_node", &redis, &prefix));
    let admin = Web::logged_in(scp.url(""), "admin", ADMIN_PW).await;
    let nodes = until("the SCP's own record is listed", || {
        let a = &admin;
        async move {
            let n = a.get("/api/control/nodes").await.body["nodes"].clone();
            (n.as_array()
                .is_some_and(|n| n.iter().any(|n| n["role"] == "scp")))
            .then_some(n)
        }
    })
    .await;
    assert!(
        nodes.as_array().unwrap().iter().all(|n| n["id"] != "evil"),
        "the forged record is listed: {nodes}"
    );
    assert_eq!(admin.get("/api/control/stats").await.status, 200);
    assert_eq!(admin.get("/api/control/nodes/evil/stats").await.status, 404);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the admin token went to the forged address"
    );
    assert!(
        scp.registry
            .value("tickwire_scp_registry_rejected_total", &[])
            >= Some(1)
    );
    scp.stop().await;
    common::redis::cleanup(&prefix).await;
}

/// A session written straight into Redis, under the key of an id the attacker made up, does
/// not log that id in: entries carry a MAC bound to their key under a key derived from the
/// token secret, and one that fails it is refused and counted.
#[actix_web::test]
async fn a_forged_session_in_redis_logs_nobody_in() {
    use sha2::{Digest, Sha256};
    let prefix = common::redis::unique_prefix("scp-forged-session");
    let scp = start_scp(scp_args(
        "scp_forged_session",
        &common::redis::redis_url(),
        &prefix,
    ));
    // A real session works (the entry format is what the forger copies).
    let real = Web::logged_in(scp.url(""), "admin", ADMIN_PW).await;
    assert_eq!(real.get("/api/session").await.status, 200);

    let made_up = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let hash = tickwire::token::hex(&Sha256::digest(made_up.as_bytes()));
    let forged = serde_json::json!({
        "username": "admin", "roles": ["admin"], "csrf": "x", "pw": "", "sid": "s",
        "created": tickwire::token::now_secs(),
    });
    let mut conn = common::redis::connection().await;
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(format!("{prefix}scp:sessions:{hash}"))
        .arg(forged.to_string())
        .query_async(&mut *conn)
        .await
        .expect("write the forged session");
    let mut attacker = Web::new(&scp);
    attacker.cookie = Some(format!("tw_session={made_up}"));
    assert_eq!(attacker.get("/api/session").await.status, 401);
    assert!(
        scp.registry
            .value("tickwire_scp_sessions_rejected_total", &[])
            >= Some(1)
    );
    scp.stop().await;
    common::redis::cleanup(&prefix).await;
}

/// Issue 26: the Price Chart's history. The control plane answers `/api/bars` from Massive's
/// aggregates (here the simulator's, started at 11:00 with its morning played), with its own
/// key: minute bars for intraday intervals rolled up on the clock, one REST call cached for
/// every interval, bad input refused, each user rate-limited with `Retry-After`, and nothing
/// without a session.
#[actix_web::test]
async fn chart_history_is_fetched_cached_rolled_up_and_limited() {
    let mut sa = sim_args();
    sa.start_time = "11:00:00".into();
    sa.history_rate = 20.0;
    let sim = start_sim(sa);
    let mut a = scp_args("scp_bars", "", "unused:");
    a.rest_url = sim.http_url("");
    a.key.api_key = "demo".into();
    a.settings.chart_requests_per_min = 5;
    let scp = start_scp(a);
    assert_eq!(
        Web::new(&scp)
            .get("/api/bars?ticker=AAPL&interval=1m")
            .await
            .status,
        401
    );
    let web = Web::logged_in(scp.url(""), "viewer", VIEWER_PW).await;
    let one = web.get("/api/bars?ticker=aapl&interval=1m").await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["ticker"], "AAPL");
    let minutes = one.body["bars"].as_array().expect("bars").clone();
    // 04:00 to 11:00 ET: hundreds of minutes, oldest first, [t, o, h, l, c, v].
    assert!(minutes.len() > 200, "{} minute bars", minutes.len());
    let t = |b: &Value| b[0].as_f64().expect("t");
    assert!(minutes.windows(2).all(|w| t(&w[0]) < t(&w[1])));
    let five = web.get("/api/bars?ticker=AAPL&interval=5m").await;
    assert_eq!(five.status, 200, "{}", five.text);
    let fives = five.body["bars"].as_array().expect("bars");
    assert!(fives.len() < minutes.len() && fives.len() * 5 >= minutes.len());
    // Each 5-minute candle holds its minutes: first open, highest high, summed volume.
    let first = &fives[1];
    let inside: Vec<&Value> = minutes
        .iter()
        .filter(|m| t(m) >= t(first) && t(m) < t(first) + 300.0)
        .collect();
    let f = |b: &Value, i: usize| b[i].as_f64().expect("number");
    assert_eq!(f(first, 1), f(inside[0], 1));
    let high = inside.iter().map(|m| f(m, 2)).fold(f64::MIN, f64::max);
    assert_eq!(f(first, 2), high);
    let v: f64 = inside.iter().map(|m| f(m, 5)).sum();
    assert!((f(first, 5) - v).abs() < 1e-6);
    assert_eq!(
        sim.registry.value(
            "tickwire_sim_rest_endpoint_requests_total",
            &[("endpoint", "range")]
        ),
        Some(1),
        "one REST call for every minute interval"
    );
    // One second: the simulator's last half hour of second bars, newer than any minute.
    let secs = web.get("/api/bars?ticker=AAPL&interval=1s").await;
    assert_eq!(secs.status, 200, "{}", secs.text);
    let secs = secs.body["bars"].as_array().expect("bars");
    assert!(!secs.is_empty() && t(&secs[secs.len() - 1]) >= t(&minutes[minutes.len() - 1]));
    // Bad input is refused before any call or allowance.
    for q in [
        "ticker=A/B&interval=1m",
        "ticker=AAPL&interval=2m",
        "ticker=&interval=1m",
    ] {
        assert_eq!(web.get(&format!("/api/bars?{q}")).await.status, 400, "{q}");
    }
    // The user's allowance (5 a minute): two more, then 429 with Retry-After.
    for _ in 0..2 {
        assert_eq!(
            web.get("/api/bars?ticker=AAPL&interval=15m").await.status,
            200
        );
    }
    let limited = web.get("/api/bars?ticker=AAPL&interval=1h").await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    for (outcome, n) in [
        ("cached", 3),
        ("fetched", 2),
        ("refused", 3),
        ("limited", 1),
    ] {
        assert_eq!(
            scp.registry
                .value("tickwire_scp_chart_requests_total", &[("outcome", outcome)]),
            Some(n),
            "{outcome}"
        );
    }
    scp.stop().await;
    sim.stop().await;
}

async fn new_key(web: &Web, body: Value) -> Reply {
    web.send("POST", "/api/relay-keys", Some(&body.to_string()), &[])
        .await
}

/// The status of `method path` called with API key `key` (no cookie, no CSRF token).
async fn with_key(web: &Web, method: &str, path: &str, key: &str) -> u16 {
    let auth = format!("Bearer {key}");
    web.send(method, path, None, &[("authorization", auth.as_str())])
        .await
        .status
}

/// Issue 23: API keys. A user creates keys (shown once, listed without the key, capped,
/// `api:*` for admins only); a key's owner calls `/api/control/*` and `/api/token` with
/// `Authorization: Bearer` and no CSRF token, within the key's scope and the owner's role;
/// nothing else takes a key; a deleted key, or a removed user's, stops at once.
#[actix_web::test]
async fn api_keys_act_for_their_owner_within_their_scopes() {
    let a = scp_args("scp_keys", "", "unused:");
    let settings = a.settings.clone();
    let scp = start_scp(a);
    let admin = Web::logged_in(scp.url(""), "admin", ADMIN_PW).await;
    let viewer = Web::logged_in(scp.url(""), "viewer", VIEWER_PW).await;
    // A relay key by default; the key once, then only its description.
    let r = new_key(&viewer, json!({"name": "my bot"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scopes"], json!(["relay"]));
    let relay_key = r.body["key"].as_str().expect("key").to_string();
    assert!(relay_key.starts_with("twk_"));
    let listed = viewer.get("/api/relay-keys").await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    assert!(!listed.text.contains(&relay_key) && listed.body[0].get("key").is_none());
    assert_eq!(
        new_key(&viewer, json!({"name": "x", "scopes": ["api:*"]}))
            .await
            .status,
        400,
        "api:* is for admins"
    );
    // Without the session's CSRF token, no key is made.
    let mut no_csrf = Web::logged_in(scp.url(""), "viewer", VIEWER_PW).await;
    no_csrf.csrf.clear();
    assert_eq!(new_key(&no_csrf, json!({"name": "y"})).await.status, 403);

    let bearer = |key: &str| format!("Bearer {key}");
    let anon = Web::new(&scp);
    let call = |method: &'static str, path: &'static str, key: String| {
        let anon = Web::new(&scp);
        async move { with_key(&anon, method, path, &key).await }
    };
    // A viewer's read key gets WDS tokens for its owner, tied to the key.
    let read = new_key(&viewer, json!({"name": "reader", "scopes": ["api:read"]})).await;
    let read_key = read.body["key"].as_str().expect("key").to_string();
    let t = anon
        .send(
            "POST",
            "/api/token",
            None,
            &[("authorization", bearer(&read_key).as_str())],
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let claims = token::verify(
        t.body["token"].as_str().unwrap(),
        SECRET.as_bytes(),
        chrono::Utc::now().timestamp(),
    )
    .expect("a valid token");
    assert_eq!(claims.sub, "viewer");
    assert_eq!(
        claims.sid,
        format!("key-{}", read.body["id"].as_str().unwrap())
    );
    // A relay-only key is no API key; a viewer's key no admin; layouts take no key.
    assert_eq!(call("POST", "/api/token", relay_key.clone()).await, 403);
    assert_eq!(
        call("GET", "/api/control/nodes", read_key.clone()).await,
        403
    );
    assert_eq!(call("GET", "/api/layouts", read_key.clone()).await, 401);
    assert_eq!(
        call("GET", "/api/control/nodes", "twk_forged".into()).await,
        401
    );

    // An admin's keys: reads with api:read, changes need api:write (past the scope check, a
    // change to a node that does not exist is 404).
    let admin_read = new_key(&admin, json!({"name": "dash", "scopes": ["api:read"]})).await;
    let admin_read = admin_read.body["key"].as_str().unwrap().to_string();
    let admin_all = new_key(&admin, json!({"name": "ops", "scopes": ["api:*"]})).await;
    assert_eq!(admin_all.status, 200, "{}", admin_all.text);
    let admin_all = admin_all.body["key"].as_str().unwrap().to_string();
    assert_eq!(
        call("GET", "/api/control/nodes", admin_read.clone()).await,
        200
    );
    assert_eq!(
        call("POST", "/api/control/nodes/none/listener/stop", admin_read).await,
        403
    );
    assert_eq!(
        call(
            "POST",
            "/api/control/nodes/none/listener/stop",
            admin_all.clone()
        )
        .await,
        404
    );

    // Deleted: refused at once.
    // By name: two keys made in the same millisecond list in either order.
    let listed = admin.get("/api/relay-keys").await.body;
    let id = listed
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["name"] == "ops"))
        .and_then(|k| k["id"].as_str())
        .expect("the ops key is listed")
        .to_string();
    let path = format!("/api/relay-keys/{id}");
    assert_eq!(admin.send("DELETE", &path, None, &[]).await.status, 200);
    assert_eq!(admin.send("DELETE", &path, None, &[]).await.status, 404);
    assert_eq!(call("GET", "/api/control/nodes", admin_all).await, 401);
    // A removed user's keys stop working and are gone.
    tickwire::scp::users::remove_from_file(&settings, "viewer").expect("remove the viewer");
    assert_eq!(call("POST", "/api/token", read_key.clone()).await, 401);
    let file = std::fs::read_to_string(settings.data_dir.join("relay-keys.json")).unwrap();
    assert!(!file.contains("\"viewer\""), "{file}");
    assert!(!file.contains(&read_key), "keys are kept hashed");
    scp.stop().await;
}
