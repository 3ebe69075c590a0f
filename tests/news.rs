//! The news path (issue 24) against real services: the news listener against the
//! simulator's Finlight stream (a 429 waited out, a wrong key, a takeover, a cut link), the
//! processor node filing articles from RabbitMQ into Redis (lists, caps, TTLs, a repeat that
//! replaces), and embedded mode's news reaching a WDS client.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Context, Handler};
use bytes::Bytes;
use deadpool_redis::redis::AsyncCommands;
use serde_json::Value;

use common::proxy::Proxy;
use common::*;
use tickwire::actors::listener::connection::Control;
use tickwire::actors::listener::metrics::{NewsFigures, NewsPublisherFigures};
use tickwire::actors::listener::news::{self, NewsListenerConfig};
use tickwire::actors::listener::news_publisher::{NewsPublisher, NewsPublisherConfig};
use tickwire::metrics::{ActorMetrics, Registry};
use tickwire::queue::NewsArticle;
use tickwire::recipient::CountedRecipient;

/// Collects the articles a news listener passes on (boilerplate test actor).
struct Collector(Arc<Mutex<Vec<NewsArticle>>>);
impl Actor for Collector {
    type Context = Context<Self>;
}
impl Handler<NewsArticle> for Collector {
    type Result = ();
    fn handle(&mut self, m: NewsArticle, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(m);
    }
}

fn collector(r: &Registry) -> (CountedRecipient<NewsArticle>, Arc<Mutex<Vec<NewsArticle>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let addr = Collector(got.clone()).start();
    (
        CountedRecipient::of(&addr, ActorMetrics::new(r, "collector")),
        got,
    )
}

fn news_sim(reject: u32) -> tickwire::actors::sim::SimServer {
    let mut a = sim_args();
    a.news_per_sec = 50.0;
    a.finlight_reject = reject;
    a.finlight_keys = vec!["demo".into(), "other".into()];
    start_sim(a)
}

fn config(url: &str, key: &str) -> NewsListenerConfig {
    let mut c = NewsListenerConfig::new(url, key);
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(200);
    c.rate_limited_wait = Duration::from_millis(100);
    c
}

fn value(r: &Registry, name: &str, labels: &[(&str, &str)]) -> i64 {
    r.value(name, labels).unwrap_or(0)
}

#[actix_web::test]
async fn the_listener_waits_out_a_429_then_passes_articles_on_unchanged() {
    let sim = news_sim(1);
    let r = Registry::new();
    let (out, got) = collector(&r);
    let (listener, health) = news::start(
        config(&sim.ws_url("finlight"), "demo"),
        out,
        NewsFigures::register(&r, &[]),
    );
    let g = got.clone();
    wait_until("articles arrive", || g.lock().unwrap().len() >= 3).await;
    assert_eq!(
        value(
            &r,
            "tickwire_news_handshakes_total",
            &[("result", "rate_limited")]
        ),
        1
    );
    assert_eq!(
        value(
            &sim.registry,
            "tickwire_sim_news_handshakes_total",
            &[("result", "rate_limited")]
        ),
        1
    );
    assert!(health
        .authenticated
        .load(std::sync::atomic::Ordering::Relaxed));
    for a in got.lock().unwrap().iter() {
        let v: Value = serde_json::from_slice(&a.article).expect("an article object");
        assert!(v["link"].is_string() && v["companies"].is_array(), "{v}");
        assert!(a.received_at_ms > 0);
    }
    listener.do_send(Control::Stop);
    sim.stop().await;
}

#[actix_web::test]
async fn a_wrong_key_is_fatal_not_a_retry_storm() {
    let sim = news_sim(0);
    let r = Registry::new();
    let (out, _) = collector(&r);
    let (_listener, health) = news::start(
        config(&sim.ws_url("finlight"), "wrong"),
        out,
        NewsFigures::register(&r, &[]),
    );
    let h = health.clone();
    wait_until("the key is refused", || {
        h.fatal.load(std::sync::atomic::Ordering::Relaxed)
    })
    .await;
    assert_eq!(
        value(
            &sim.registry,
            "tickwire_sim_news_handshakes_total",
            &[("result", "unknown_key")]
        ),
        1,
        "one attempt, no retries"
    );
    assert_eq!(
        value(
            &r,
            "tickwire_news_handshakes_total",
            &[("result", "refused")]
        ),
        1
    );
    sim.stop().await;
}

#[actix_web::test]
async fn a_takeover_preempts_the_older_listener_which_cools_down() {
    let sim = news_sim(0);
    let (ra, rb) = (Registry::new(), Registry::new());
    let (out_a, _) = collector(&ra);
    let mut ca = config(&sim.ws_url("finlight"), "demo");
    ca.preempted_cooldown = Duration::from_secs(3600);
    let (a, health_a) = news::start(ca, out_a, NewsFigures::register(&ra, &[]));
    let h = health_a.clone();
    wait_until("A is admitted", || {
        h.authenticated.load(std::sync::atomic::Ordering::Relaxed)
    })
    .await;

    let (out_b, got_b) = collector(&rb);
    let mut cb = config(&sim.ws_url("finlight"), "demo");
    cb.takeover = true;
    let (b, _) = news::start(cb, out_b, NewsFigures::register(&rb, &[]));
    let g = got_b.clone();
    wait_until("B streams", || !g.lock().unwrap().is_empty()).await;
    let ra2 = ra.clone();
    wait_until("A was preempted", || {
        value(&ra2, "tickwire_news_preempted_total", &[]) == 1
    })
    .await;
    wait_until("A's socket is closed", || {
        !health_a
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
    })
    .await;
    // A waits out its cooldown instead of taking the key back.
    assert_eq!(value(&ra, "tickwire_news_connects_total", &[]), 1);
    assert_eq!(
        value(&sim.registry, "tickwire_sim_news_preempted_total", &[]),
        1
    );
    a.do_send(Control::Stop);
    b.do_send(Control::Stop);
    sim.stop().await;
}

#[actix_web::test]
async fn a_cut_link_is_reconnected() {
    let sim = news_sim(0);
    let proxy = Proxy::start_to(&format!("127.0.0.1:{}", sim.port)).await;
    let r = Registry::new();
    let (out, got) = collector(&r);
    let url = format!("ws://127.0.0.1:{}/finlight", proxy.port);
    let (listener, _) = news::start(config(&url, "demo"), out, NewsFigures::register(&r, &[]));
    let g = got.clone();
    wait_until("articles arrive", || !g.lock().unwrap().is_empty()).await;
    proxy.cut();
    let r2 = r.clone();
    wait_until("the listener notices", || {
        value(&r2, "tickwire_news_reconnects_total", &[]) >= 1
    })
    .await;
    proxy.restore();
    let r2 = r.clone();
    wait_until("it connects again", || {
        value(&r2, "tickwire_news_connects_total", &[]) >= 2
    })
    .await;
    let n = got.lock().unwrap().len();
    let g = got.clone();
    wait_until("articles arrive again", || g.lock().unwrap().len() > n).await;
    listener.do_send(Control::Stop);
    sim.stop().await;
}

fn article(link: &str, title: &str, tickers: &[&str]) -> Bytes {
    let companies: Vec<Value> = tickers
        .iter()
        .map(|t| {
            serde_json::json!({"companyId": 1, "name": t, "ticker": t,
                "primaryListing": {"ticker": t, "exchangeCode": "XNAS", "exchangeCountry": "US"}})
        })
        .collect();
    Bytes::from(
        serde_json::json!({"link": link, "title": title, "source": "s", "language": "en",
            "publishDate": "2026-12-07T15:00:00Z", "companies": companies})
        .to_string(),
    )
}

/// Distributed: the news publisher puts articles on RabbitMQ's `news` queue and a processor
/// node files them in Redis: the feed and per-ticker lists with their caps and TTLs, a
/// repeated link replacing its listed copy, an article without a link counted and skipped.
#[actix_web::test]
async fn the_processor_files_queued_news_in_redis() {
    let qp = common::rabbit::unique_prefix("news");
    let kp = common::redis::unique_prefix("news");
    let mut pargs = processor_args(&common::rabbit::rabbit_url(), &qp, &kp, 1);
    pargs.pipeline.news_ticker_cap = 2;
    let processor = start_processor(pargs);

    let r = Registry::new();
    let figures = NewsPublisherFigures::register(&r, &[]);
    let publisher = NewsPublisher::new(
        NewsPublisherConfig {
            url: common::rabbit::rabbit_url(),
            queue_prefix: qp.clone(),
            message_ttl_ms: tickwire::queue::topology::NEWS_TTL_MS,
            buffer: 100,
        },
        figures,
    )
    .start();
    let send = |a: Bytes| {
        publisher.do_send(NewsArticle {
            article: a,
            received_at_ms: 1,
        })
    };
    send(article("https://x/1", "One", &["AAPL"]));
    send(article("https://x/2", "Two", &["AAPL", "MSFT"]));
    send(article("https://x/3", "Three", &["AAPL"]));
    send(Bytes::from_static(br#"{"title":"no link"}"#));
    send(article("https://x/2", "Two, updated", &["AAPL", "MSFT"]));

    let p = processor.registry.clone();
    wait_until("five consumed", || {
        p.value("tickwire_news_consumed_total", &[]).unwrap_or(0) == 5
    })
    .await;
    let mut conn = common::redis::connection().await;
    let titles = |items: Vec<String>| -> Vec<String> {
        items
            .iter()
            .map(|i| {
                serde_json::from_str::<Value>(i).expect("json")["title"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    // The writer sends in order: once the update is listed, everything before it is too.
    let feed_key = format!("{kp}wdc:news:feed:latest");
    let k = feed_key.clone();
    wait_until_async("the update is listed", || {
        let k = k.clone();
        async move {
            let mut c = common::redis::connection().await;
            let feed: Vec<String> = c.lrange(&k, 0, -1).await.unwrap_or_default();
            feed.first().is_some_and(|f| f.contains("updated"))
        }
    })
    .await;
    let feed: Vec<String> = conn.lrange(&feed_key, 0, -1).await.expect("LRANGE");
    assert_eq!(
        titles(feed),
        ["Two, updated", "Three", "One"],
        "replaced, not repeated"
    );
    let aapl: Vec<String> = conn
        .lrange(format!("{kp}wdc:news:ticker:AAPL"), 0, -1)
        .await
        .expect("LRANGE");
    assert_eq!(titles(aapl), ["Two, updated", "Three"], "capped at 2");
    let msft: Vec<String> = conn
        .lrange(format!("{kp}wdc:news:ticker:MSFT"), 0, -1)
        .await
        .expect("LRANGE");
    assert_eq!(titles(msft), ["Two, updated"]);
    let ttl: i64 = conn.ttl(&feed_key).await.expect("TTL");
    assert!(ttl > 172_000 && ttl <= 172_800, "feed TTL {ttl}");
    let ttl: i64 = conn
        .ttl(format!("{kp}wdc:news:ticker:MSFT"))
        .await
        .expect("TTL");
    assert!(ttl > 604_000 && ttl <= 604_800, "ticker TTL {ttl}");
    assert_eq!(
        p.value("tickwire_news_skipped_total", &[("reason", "no_link")]),
        Some(1)
    );
    assert_eq!(
        p.value("tickwire_news_filed_total", &[("kind", "replaced")]),
        Some(1)
    );
    processor.stop().await;
    let (_c, ch) = common::rabbit::channel().await;
    common::rabbit::delete_pipeline(&ch, &qp, 1).await;
    common::rabbit::delete_queues(&ch, &[format!("{qp}news")]).await;
    common::redis::cleanup(&kp).await;
}

#[actix_web::test]
async fn embedded_mode_shows_the_simulator_s_news() {
    let mut a = embedded_args("news_embedded");
    a.sim.news_per_sec = 20.0;
    let sim_http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let e = tickwire::embedded::start(a, sim_http, http).expect("embedded starts");
    let store = e.store.clone();
    let read_feed = || {
        let store = store.clone();
        async move {
            match store.read("news:feed:latest", 10).await {
                Ok(Some(tickwire::store::Stored::List(items))) => items,
                _ => Vec::new(),
            }
        }
    };
    wait_until_async("news is filed", || async { read_feed().await.len() >= 3 }).await;
    let feed = read_feed().await;
    let newest: Value = serde_json::from_slice(&feed[0]).expect("article");
    let ticker = newest["companies"][0]["ticker"]
        .as_str()
        .expect("a ticker")
        .to_string();
    let listed = store
        .read(&format!("news:ticker:{ticker}"), 10)
        .await
        .expect("read");
    assert!(
        matches!(listed, Some(tickwire::store::Stored::List(ref l)) if !l.is_empty()),
        "{ticker} has its list"
    );
    if let Some(sim) = e.sim {
        sim.stop().await;
    }
}

/// Distributed, end to end with real processes: a `tickwire-listener` with a Finlight key
/// takes the news lease and publishes the simulator's articles; a processor node files them
/// in Redis.
#[actix_web::test]
async fn a_listener_node_with_a_finlight_key_feeds_the_processor() {
    let sim = news_sim(0);
    let qp = common::rabbit::unique_prefix("news-node");
    let kp = common::redis::unique_prefix("news-node");
    let admin = free_port();
    let finlight = format!("ws://127.0.0.1:{}/finlight", sim.port);
    let listener = listener_process(
        sim.port,
        admin,
        &qp,
        &common::redis::redis_url(),
        &[
            ("FINLIGHT_API_KEY", "demo"),
            ("FINLIGHT_WSS_URL", &finlight),
            ("REDIS_KEY_PREFIX", &kp),
        ],
    );
    let processor = start_processor(processor_args(&common::rabbit::rabbit_url(), &qp, &kp, 1));
    wait_until_async(
        "the news lease is held and the connection streams",
        || async move {
            try_stats(admin).await.is_some_and(|v| {
                v["counters"]["tickwire_lease_held{market=\"news\"}"] == 1
                    && v["node"]["news"]["state"] == "streaming"
            })
        },
    )
    .await;
    let key = format!("{kp}wdc:news:feed:latest");
    wait_until_async("articles are filed in Redis", || {
        let key = key.clone();
        async move {
            let mut c = common::redis::connection().await;
            let n: i64 = c.llen(&key).await.unwrap_or(0);
            n >= 3
        }
    })
    .await;
    drop(listener);
    processor.stop().await;
    let (_c, ch) = common::rabbit::channel().await;
    common::rabbit::delete_pipeline(&ch, &qp, 1).await;
    common::rabbit::delete_queues(&ch, &[format!("{qp}news")]).await;
    common::redis::cleanup(&kp).await;
    sim.stop().await;
}

/// The simulator's news stream bounds what a client may leave unread: a client that sends
/// its parameters and then never reads is cut off and counted.
#[actix_web::test]
async fn a_news_client_that_never_reads_is_cut_off() {
    let mut a = sim_args();
    a.news_per_sec = 2000.0;
    a.client_buffer_bytes = 64 * 1024;
    let sim = start_sim(a);
    let mut c = Client::try_connect(&sim.ws_url("finlight"), &[("x-api-key", "demo")])
        .await
        .expect("admitted at the handshake");
    c.send("{}").await;
    let r = sim.registry.clone();
    wait_until("the reader that never reads is cut off", || {
        r.value("tickwire_sim_news_slow_consumer_kills_total", &[]) == Some(1)
    })
    .await;
    drop(c);
    sim.stop().await;
}
