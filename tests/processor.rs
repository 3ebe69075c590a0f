//! Processor integration tests: simulator -> listener -> RabbitMQ -> processor nodes -> Redis,
//! and embedded mode into the memory store. Real RabbitMQ and Redis, unique prefixes.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use common::rabbit::{delete_pipeline_queues, rabbit_url};
use common::redis::{cleanup, connection as redis_conn, redis_url, PrivateRedis};
use common::*;
use deadpool_redis::redis;
use futures_util::StreamExt;
use serde_json::Value;
use tickwire::actors::listener::connection as listener;
use tickwire::actors::listener::publisher::PublisherConfig;
use tickwire::actors::processor::enricher::Answers;
use tickwire::actors::processor::{ProcessorArgs, ProcessorNode};
use tickwire::embedded;
use tickwire::metrics::Registry;
use tickwire::store::Stored;

/// The admin token of the nodes these tests start.
const ADMIN: &str = "processor-test-admin-token-32-bytes";

const SHARDS: u16 = 4;

async fn get(conn: &mut deadpool_redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut **conn)
        .await
        .unwrap_or(None)
}

async fn int(conn: &mut deadpool_redis::Connection, cmd: &str, key: &str) -> i64 {
    redis::cmd(cmd)
        .arg(key)
        .query_async(&mut **conn)
        .await
        .unwrap_or(-3)
}

fn processor_args(queue_prefix: &str, key_prefix: &str) -> ProcessorArgs {
    let mut a = common::processor_args(&rabbit_url(), queue_prefix, key_prefix, SHARDS);
    a.pipeline.enrichment = true;
    a.pipeline.alert_cap = 5;
    a.pipeline.threads = 2;
    a
}

fn start_node(args: ProcessorArgs) -> ProcessorNode {
    start_processor(args)
}

/// The listener half: simulator -> listener -> RabbitMQ.
fn start_listener(
    sim_url: String,
    prefix: &str,
    registry: &std::sync::Arc<Registry>,
) -> actix::Addr<tickwire::actors::listener::connection::Listener> {
    start_listener_with_key(sim_url, prefix, registry, "demo")
}

/// The same with another key: one connection per key, as Massive allows.
fn start_listener_with_key(
    sim_url: String,
    prefix: &str,
    registry: &std::sync::Arc<Registry>,
    key: &str,
) -> actix::Addr<tickwire::actors::listener::connection::Listener> {
    let publisher = PublisherConfig::new(&rabbit_url(), prefix, SHARDS, 5000);
    let cfg = listener_config(sim_url, key, "A.*,T.*,Q.*,LULD.*");
    listener::start_publishing(cfg, publisher, registry).0
}

/// For the tests of how a node copes with its broker: unique queue and key prefixes, a
/// small market (40 tickers, 500 events/s) and the node's settings, enrichment off.
fn small_market(
    test: &str,
) -> (
    String,
    String,
    tickwire::actors::sim::SimServer,
    ProcessorArgs,
) {
    let qp = common::rabbit::unique_prefix(test);
    let kp = common::redis::unique_prefix(test);
    let mut sim = sim_args();
    sim.tickers = 40;
    sim.rate = 500.0;
    let sim = start_sim(sim);
    let mut args = processor_args(&qp, &kp);
    args.pipeline.enrichment = false;
    (qp, kp, sim, args)
}

fn held(n: &ProcessorNode) -> i64 {
    n.registry.value("tickwire_shards_held", &[]).unwrap_or(0)
}

#[actix_web::test]
async fn pipeline_through_rabbitmq_to_redis_shared_by_two_nodes() {
    let qp = common::rabbit::unique_prefix("proc");
    let kp = common::redis::unique_prefix("proc");
    let wdc = format!("{kp}wdc:");
    let mut sim = sim_args();
    sim.tickers = 60;
    sim.rate = 3000.0;
    let sim = start_sim(sim);
    let mut args = processor_args(&qp, &kp);
    args.pipeline.rest_url = sim.http_url("");
    args.pipeline.key.api_key = "demo".into();
    args.pipeline.top_trades = true;
    args.common.admin_token = ADMIN.into();
    let a = start_node(args.clone());
    let b = start_node(args.clone());
    wait_until("two nodes share the four shards", || {
        held(&a) == 2 && held(&b) == 2
    })
    .await;

    // Someone publishes on the quote channels.
    let client = redis::Client::open(redis_url()).expect("client");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .psubscribe(format!("{wdc}quote:*"))
        .await
        .expect("psubscribe");
    // The receive times of published values, announced for the widget data service.
    let mut timing = client.get_async_pubsub().await.expect("pubsub");
    timing
        .subscribe(tickwire::store::timing_channel(&wdc))
        .await
        .expect("subscribe");
    let registry = Registry::new();
    let listener = start_listener(sim.ws_url("stocks"), &qp, &registry);
    let msg = tokio::time::timeout(DEADLINE, pubsub.on_message().next())
        .await
        .expect("a quote is published")
        .expect("message");
    let channel = msg.get_channel_name().to_string();
    let payload: Value = serde_json::from_slice(msg.get_payload_bytes()).expect("JSON quote");
    let sym = payload["symbol"].as_str().expect("symbol").to_string();
    assert_eq!(channel, format!("{wdc}quote:{sym}"));
    assert_eq!(payload.as_object().unwrap().len(), 26);

    let mut conn = redis_conn().await;
    // The same bytes are cached, with the reference's TTL.
    let ttl = int(&mut conn, "TTL", &channel).await;
    assert!(ttl > 345_000 && ttl <= 345_600, "quote TTL {ttl}");
    let range: Value = serde_json::from_str(
        &get(&mut conn, &format!("{wdc}daily_range:{sym}"))
            .await
            .expect("daily range"),
    )
    .unwrap();
    assert_eq!(range.as_object().unwrap().len(), 32);
    // Alerts: capped lists with a refreshed TTL.
    let hod = format!("{wdc}daily_range_hod_alert");
    wait_until_async("the HOD list fills to its cap", || {
        let hod = hod.clone();
        async move { int(&mut redis_conn().await, "LLEN", &hod).await == 5 }
    })
    .await;
    let ttl = int(&mut conn, "TTL", &hod).await;
    assert!(ttl > 28_000 && ttl <= 28_800, "alert list TTL {ttl}");
    // Raw routes: quotes on.
    wait_until_async("a raw quote", || async {
        redis::cmd("KEYS")
            .arg(format!("{wdc}stocks:quotes:*"))
            .query_async::<Vec<String>>(&mut *redis_conn().await)
            .await
            .map(|k| !k.is_empty())
            .unwrap_or(false)
    })
    .await;
    // Receive times announced before the values: [[channel, epoch ms], ...].
    let msg = tokio::time::timeout(DEADLINE, timing.on_message().next())
        .await
        .expect("a timing announcement")
        .expect("message");
    let stamps: Vec<(String, i64)> =
        serde_json::from_slice(msg.get_payload_bytes()).expect("timing JSON");
    assert!(stamps
        .iter()
        .all(|(c, t)| c.starts_with(&wdc) && *t > 1_700_000_000_000));
    // Top-trades widgets in Redis, cached 60 s.
    let tta = format!("{wdc}tta:all_symbols:widget");
    wait_until_async("the top-trades widget", || {
        let tta = tta.clone();
        async move { get(&mut redis_conn().await, &tta).await.is_some() }
    })
    .await;
    let ttl = int(&mut conn, "TTL", &tta).await;
    assert!(ttl > 0 && ttl <= 60, "tta TTL {ttl}");
    // Enrichment from the simulator's REST reaches the quotes.
    wait_until_async("an enriched quote", || {
        let key = format!("{wdc}quote:{sym}");
        async move {
            let q: Value =
                serde_json::from_str(&get(&mut redis_conn().await, &key).await.unwrap_or_default())
                    .unwrap_or_default();
            q["avg_volume"].as_f64().unwrap_or(0.0) > 0.0
                && q["free_float"].as_f64().unwrap_or(0.0) > 0.0
        }
    })
    .await;

    // Bad input: a message that is not an envelope is rejected, counted, and harmless.
    let (_c, ch) = common::rabbit::channel().await;
    let q = tickwire::queue::topology::queue_name(&qp, tickwire::queue::QueueKind::Trades, 0);
    ch.basic_publish(
        "".into(),
        q.as_str().into(),
        Default::default(),
        b"{not json",
        Default::default(),
    )
    .await
    .expect("publish");
    wait_until("the bad message is rejected", || {
        a.registry
            .value("tickwire_consumer_rejected_total", &[])
            .unwrap_or(0)
            + b.registry
                .value("tickwire_consumer_rejected_total", &[])
                .unwrap_or(0)
            == 1
    })
    .await;

    // Stop the feed; once every shard is quiet, the published board is exactly the quotes'.
    listener.do_send(tickwire::actors::listener::connection::Control::Stop);
    let board_key = format!("{wdc}scanners:top_volume");
    wait_until_async("top volume matches the quotes", || {
        let (wdc, board_key) = (wdc.clone(), board_key.clone());
        async move {
            let mut conn = redis_conn().await;
            let Some(board) = get(&mut conn, &board_key).await else {
                return false;
            };
            let board: Vec<Value> = serde_json::from_str(&board).unwrap_or_default();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{wdc}quote:*"))
                .query_async(&mut *conn)
                .await
                .unwrap_or_default();
            let mut expected: Vec<(i64, String)> = Vec::new();
            for k in keys {
                let q: Value = serde_json::from_str(&get(&mut conn, &k).await.unwrap_or_default())
                    .unwrap_or_default();
                expected.push((
                    -(q["accumulated_volume"].as_f64().unwrap_or(0.0) as i64),
                    q["symbol"].as_str().unwrap_or("").to_string(),
                ));
            }
            expected.sort();
            let got: Vec<(i64, String)> = board
                .iter()
                .map(|r| {
                    (
                        -(r["accumulated_volume"].as_f64().unwrap_or(0.0) as i64),
                        r["symbol"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let ranks_ok = board
                .iter()
                .enumerate()
                .all(|(i, r)| r["rank"] == (i as i64 + 1));
            !got.is_empty() && got == expected && ranks_ok
        }
    })
    .await;
    let gappers: Vec<Value> = serde_json::from_str(
        &get(&mut conn, &format!("{wdc}scanners:top_gappers"))
            .await
            .unwrap_or("[]".into()),
    )
    .unwrap();
    assert!(
        gappers
            .iter()
            .all(|r| r["pct_change"].as_f64().unwrap() > 0.0),
        "positive movers only"
    );

    // Node A leaves: B takes all four shards and rehydrates A's from their checkpoints.
    // Symbols B has taken from checkpoints, over all its shards.
    let rehydrated = |n: &ProcessorNode| -> i64 {
        (0..SHARDS)
            .map(|s| {
                n.registry
                    .value(
                        "tickwire_processor_rehydrated_symbols_total",
                        &[("shard", &s.to_string())],
                    )
                    .unwrap_or(0)
            })
            .sum()
    };
    let rehydrated_before = rehydrated(&b);
    a.stop().await;
    wait_until("B holds every shard", || held(&b) == 4).await;
    // Rehydration runs when the consumer takes a shard, just after the lease: wait for it.
    wait_until("B rehydrates A's shards from their checkpoints", || {
        rehydrated(&b) > rehydrated_before
    })
    .await;
    let (status, stats) = get_json(&b.url("/stats"), None).await;
    assert_eq!(status, 200);
    assert_eq!(stats["node"]["pool_size"], 4);
    assert_eq!(
        stats["node"]["shards_held"].as_array().map(Vec::len),
        Some(4)
    );
    wait_until("B is elected leaderboard publisher", || {
        b.registry.value("tickwire_boards_leader", &[]) == Some(1)
    })
    .await;

    // The pool size at run time: capped, B hands shards over; uncapped, it takes them back.
    let put_pool = |body: &'static str, token: &'static str| {
        let url = b.url("/control/pool");
        async move {
            let resp = awc::Client::new()
                .put(url)
                .insert_header(("authorization", format!("Bearer {token}")))
                .send_body(body)
                .await
                .expect("PUT /control/pool");
            resp.status().as_u16()
        }
    };
    assert_eq!(put_pool(r#"{"max_shards":1}"#, "wrong").await, 401);
    assert_eq!(put_pool(r#"{"max_shards":"one"}"#, ADMIN).await, 400);
    assert_eq!(put_pool(r#"{"max_shards":1}"#, ADMIN).await, 200);
    wait_until("B keeps one shard", || held(&b) == 1).await;
    assert_eq!(
        get_json(&b.url("/stats"), None).await.1["node"]["max_shards"],
        1
    );
    assert_eq!(put_pool(r#"{"max_shards":null}"#, ADMIN).await, 200);
    wait_until("B takes every shard again", || held(&b) == 4).await;

    b.stop().await;
    sim.stop().await;
    delete_pipeline_queues(&qp, SHARDS).await;
    cleanup(&kp).await;
}

#[actix_web::test]
async fn embedded_mode_fills_the_memory_store() {
    let mut args = embedded_args("fills_memory_store");
    args.sim.tickers = 40;
    args.pipeline.alert_cap = 3;
    args.pipeline.top_trades = true;
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let wds = TcpListener::bind("127.0.0.1:0").expect("bind");
    let e = embedded::start(args, http, wds).expect("embedded starts");
    let store = e.store.clone();
    let mut board: Vec<Value> = Vec::new();
    wait_until_async("top volume in the memory store", || {
        let store = store.clone();
        async move { matches!(store.read("scanners:top_volume", 1).await, Ok(Some(Stored::Str(b))) if b.len() > 2) }
    })
    .await;
    if let Ok(Some(Stored::Str(b))) = store.read("scanners:top_volume", 1).await {
        board = serde_json::from_slice(&b).expect("board JSON");
    }
    let sym = board[0]["symbol"].as_str().expect("symbol").to_string();
    assert_eq!(board[0]["rank"], 1);
    for key in [format!("quote:{sym}"), format!("daily_range:{sym}")] {
        let got = e
            .store_addr
            .send(tickwire::store::Read {
                key: key.clone(),
                limit: 1,
            })
            .await
            .unwrap()
            .unwrap();
        let (Stored::Str(_), Some(ttl)) = got.expect(&key) else {
            panic!("{key} is a string with a TTL")
        };
        assert!(ttl <= Duration::from_secs(345_600) && ttl > Duration::from_secs(345_000));
    }
    wait_until_async("alerts capped at 3", || {
        let store = store.clone();
        async move { matches!(store.read("daily_range_hod_alert", 100).await, Ok(Some(Stored::List(l))) if l.len() == 3) }
    })
    .await;
    wait_until_async("top trades widget", || {
        let store = store.clone();
        async move { matches!(store.read("tta:all_symbols:widget", 1).await, Ok(Some(_))) }
    })
    .await;
    let mut by_shard = BTreeMap::new();
    for s in 0..SHARDS {
        by_shard.insert(
            s,
            e.registry.value(
                "tickwire_processor_events_total",
                &[("shard", &s.to_string())],
            ),
        );
    }
    assert!(
        by_shard.values().all(|v| v.unwrap_or(0) > 0),
        "every shard works: {by_shard:?}"
    );
    if let Some(sim) = e.sim {
        sim.stop().await;
    }
}

#[actix_web::test]
async fn cache_writer_recovers_after_a_redis_restart() {
    let mut server = PrivateRedis::start();
    let url = server.url();
    let registry = Registry::new();
    let (_, store) = tickwire::actors::store::cache_writer::CacheWriter::start_store(
        tickwire::actors::store::cache_writer::CacheWriterConfig::new(&url, "results"),
        &registry,
    )
    .expect("writer");
    let connected =
        || registry.value("tickwire_cache_connected", &[("store", "results")]) == Some(1);
    wait_until("the writer reaches Redis", connected).await;
    let write = |v: &str| {
        store.write.do_send(tickwire::store::Write(vec![
            tickwire::store::CacheWrite::value(
                "k".into(),
                bytes::Bytes::from(v.to_string()),
                60,
                0,
            ),
        ]))
    };
    let value_is = |want: &'static str| {
        let s = store.clone();
        async move {
            let got = s
                .get(vec!["k".into()])
                .await
                .ok()
                .and_then(|mut v| v.pop().flatten());
            got.as_deref() == Some(want.as_bytes())
        }
    };
    write("before");
    wait_until_async("written", || value_is("before")).await;
    server.kill();
    wait_until("the outage is noticed", || !connected()).await;
    write("lost");
    server.restart();
    wait_until("the writer reconnects", connected).await;
    write("after");
    wait_until_async("writes resume", || value_is("after")).await;
}

/// The writer's own connection honours the URL (password, database), and a command that
/// fails inside a pipeline is counted while the rest of the pipeline still lands.
#[actix_web::test]
async fn cache_writer_authenticates_selects_its_database_and_counts_failed_commands() {
    let server = PrivateRedis::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/2", server.port);
    let registry = Registry::new();
    let (_, store) = tickwire::actors::store::cache_writer::CacheWriter::start_store(
        tickwire::actors::store::cache_writer::CacheWriterConfig::new(&url, "results"),
        &registry,
    )
    .expect("writer");
    let counter = |name: &str| registry.value(name, &[("store", "results")]).unwrap_or(0);
    wait_until("the writer reaches Redis", || {
        counter("tickwire_cache_connected") == 1
    })
    .await;
    let pool = tickwire::redis_pool::open(&url).expect("pool");
    let mut conn = pool.get().await.expect("authenticated connection");
    // A string where the next pipeline pushes onto a list: LPUSH and LTRIM fail WRONGTYPE.
    let _: () = redis::cmd("SET")
        .arg("alerts")
        .arg("not a list")
        .query_async(&mut *conn)
        .await
        .expect("SET");
    let value = |k: &str, v: &str| {
        tickwire::store::CacheWrite::value(k.into(), bytes::Bytes::from(v.to_string()), 60, 0)
    };
    let push = tickwire::store::CacheWrite::push(
        "alerts".into(),
        bytes::Bytes::from_static(b"{}"),
        10,
        60,
        0,
    );
    store.write.do_send(tickwire::store::Write(vec![
        value("first", "1"),
        push,
        value("last", "2"),
    ]));
    wait_until("the failed commands are counted", || {
        counter("tickwire_cache_errors_total") == 2
    })
    .await;
    assert_eq!(get(&mut conn, "first").await.as_deref(), Some("1"));
    assert_eq!(get(&mut conn, "last").await.as_deref(), Some("2"));
    assert_eq!(
        get(&mut conn, "alerts").await.as_deref(),
        Some("not a list")
    );
    // Database 2, as the URL says, not the default 0.
    let _: () = redis::cmd("SELECT")
        .arg(0)
        .query_async(&mut *conn)
        .await
        .expect("SELECT 0");
    assert_eq!(get(&mut conn, "first").await, None);
    let _: () = redis::cmd("SELECT")
        .arg(2)
        .query_async(&mut *conn)
        .await
        .expect("SELECT 2");
    assert_eq!(counter("tickwire_cache_writes_total"), 3);
    assert_eq!(counter("tickwire_cache_connected"), 1);
}

/// The per-ticker path under a rate limit (the bulk warm-up and back-fills off, so that
/// every call is a ticker's): 429s are retried after the simulator's `Retry-After` (the rest
/// of the key's minute), and the calls inside the allowance enrich their quotes while
/// processing goes on.
#[actix_web::test]
async fn enrichment_under_429_retries_without_harm() {
    let mut args = embedded_args("enrichment_429");
    args.sim.tickers = 30;
    // 30 tickers need about 90 REST calls; the key allows 20 a minute.
    args.sim.rest_rate_limit = 20;
    args.pipeline.enrich_bulk = false;
    args.pipeline.backfill = false;
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let wds = TcpListener::bind("127.0.0.1:0").expect("bind");
    let e = embedded::start(args, http, wds).expect("embedded starts");
    let r = e.registry.clone();
    let v = |name: &str| r.value(name, &[]).unwrap_or(0);
    wait_until("429s are retried", || {
        v("tickwire_enrich_rest_retries_total") > 0
    })
    .await;
    assert!(
        e.sim
            .as_ref()
            .and_then(|s| s
                .registry
                .value("tickwire_sim_rest_requests_total", &[("status", "429")]))
            .unwrap_or(0)
            > 0,
        "the simulator refused calls past the limit"
    );
    // The calls inside the allowance still enriched their quotes, and processing went on.
    let store = e.store.clone();
    wait_until_async("an enriched row on the volume board", || {
        let store = store.clone();
        async move {
            let Ok(Some(Stored::Str(b))) = store.read("scanners:top_volume", 1).await else {
                return false;
            };
            let rows: Vec<Value> = serde_json::from_slice(&b).unwrap_or_default();
            rows.iter()
                .any(|q| q["avg_volume"].as_f64().unwrap_or(0.0) > 0.0)
        }
    })
    .await;
    if let Some(sim) = e.sim {
        sim.stop().await;
    }
}

/// Consumers on a processor node's queue, read off the broker (None if the queue is gone).
async fn consumers_on(ch: &lapin::Channel, queue: &str) -> Option<u32> {
    ch.queue_declare(
        queue.into(),
        lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        Default::default(),
    )
    .await
    .ok()
    .map(|q| q.consumer_count())
}

#[actix_web::test]
async fn one_lost_queue_is_consumed_again_without_touching_the_others() {
    use tickwire::queue::topology::queue_name;
    use tickwire::queue::QueueKind;
    let (qp, kp, sim, args) = small_market("proc-queue");
    let node = start_node(args);
    let r = node.registry.clone();
    let all = i64::from(SHARDS) * QueueKind::ALL.len() as i64;
    let queues = || r.value("tickwire_consumer_queues", &[]).unwrap_or(0);
    wait_until("every queue is consumed", || queues() == all).await;
    let registry = Registry::new();
    let listener = start_listener(sim.ws_url("stocks"), &qp, &registry);
    let messages = || {
        r.value("tickwire_consumer_messages_total", &[])
            .unwrap_or(0)
    };
    wait_until("messages are consumed", || messages() > 0).await;

    // The broker cancels one consumer: its queue is deleted under it.
    let (_conn, ch) = common::rabbit::channel().await;
    let quotes0 = queue_name(&qp, QueueKind::Quotes, 0);
    ch.queue_delete(quotes0.as_str().into(), Default::default())
        .await
        .expect("delete the queue");
    let restarts = || {
        r.value("tickwire_consumer_queue_restarts_total", &[])
            .unwrap_or(0)
    };
    wait_until("the lost queue is noticed", || restarts() >= 1).await;
    wait_until("every queue is consumed again", || queues() == all).await;
    // Back on the broker (re-declared) with its consumer; no new connection was made.
    wait_until_async("the queue has its consumer again", || {
        let (ch, q) = (ch.clone(), quotes0.clone());
        async move { consumers_on(&ch, &q).await == Some(1) }
    })
    .await;
    assert_eq!(r.value("tickwire_consumer_connects_total", &[]), Some(1));
    for kind in QueueKind::ALL {
        for shard in 0..SHARDS {
            let q = queue_name(&qp, kind, shard);
            assert_eq!(consumers_on(&ch, &q).await, Some(1), "{q}");
        }
    }
    // Quotes of shard 0 flow again.
    let before = messages();
    wait_until("messages flow after the restart", || {
        messages() > before + 50
    })
    .await;

    listener.do_send(listener::Control::Stop);
    node.stop().await;
    sim.stop().await;
    delete_pipeline_queues(&qp, SHARDS).await;
    cleanup(&kp).await;
}

/// Broker loss: the node's consumers go down with the link, `/ready` says why, connecting is
/// retried while the broker is away, and once it is back every queue is consumed again and
/// results reach Redis again.
#[actix_web::test]
async fn a_processor_node_consumes_again_after_losing_the_broker() {
    use tickwire::queue::QueueKind;
    let (qp, kp, sim, mut args) = small_market("proc-broker");
    let proxy = common::proxy::Proxy::start().await;
    args.broker.rabbitmq_url = proxy.url();
    let node = start_node(args);
    let r = node.registry.clone();
    let all = i64::from(SHARDS) * QueueKind::ALL.len() as i64;
    let value = move |name: &str| r.value(name, &[]).unwrap_or(0);
    let v = value.clone();
    wait_until("every queue is consumed", || {
        v("tickwire_consumer_queues") == all
    })
    .await;
    // The listener publishes straight to the broker: only the processor loses it.
    let registry = Registry::new();
    let listener = start_listener(sim.ws_url("stocks"), &qp, &registry);
    let v = value.clone();
    wait_until("messages are consumed", || {
        v("tickwire_consumer_messages_total") > 0
    })
    .await;
    let ready = format!("http://127.0.0.1:{}/ready", node.port);
    assert_eq!(get_json(&ready, None).await.0, 200);

    proxy.cut();
    let v = value.clone();
    wait_until("the loss is noticed", || {
        v("tickwire_consumer_connected") == 0 && v("tickwire_consumer_queues") == 0
    })
    .await;
    let (status, body) = get_json(&ready, None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["broker"], "RabbitMQ not connected", "{body}");
    let v = value.clone();
    wait_until("connecting is retried while the broker is away", || {
        v("tickwire_consumer_connect_errors_total") >= 1
    })
    .await;

    proxy.restore();
    let v = value.clone();
    wait_until("every queue is consumed again", || {
        v("tickwire_consumer_connected") == 1 && v("tickwire_consumer_queues") == all
    })
    .await;
    assert!(value("tickwire_consumer_connects_total") >= 2);
    let before = value("tickwire_consumer_messages_total");
    let v = value.clone();
    wait_until("messages flow again", || {
        v("tickwire_consumer_messages_total") > before + 50
    })
    .await;
    // And their results land: the quotes, deleted once written, are written again.
    let quotes = format!("{kp}wdc:quote:*");
    let keys = || {
        let quotes = quotes.clone();
        async move {
            let mut c = redis_conn().await;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&quotes)
                .query_async(&mut *c)
                .await
                .unwrap_or_default();
            keys
        }
    };
    wait_until_async("quotes are written", || async { !keys().await.is_empty() }).await;
    let written = keys().await;
    let mut c = redis_conn().await;
    let _: () = redis::cmd("DEL")
        .arg(&written)
        .query_async(&mut *c)
        .await
        .expect("delete the quotes");
    wait_until_async("quotes written after the reconnect", || async {
        !keys().await.is_empty()
    })
    .await;
    assert_eq!(get_json(&ready, None).await.0, 200);

    listener.do_send(listener::Control::Stop);
    node.stop().await;
    sim.stop().await;
    delete_pipeline_queues(&qp, SHARDS).await;
    cleanup(&kp).await;
}

/// REST calls seen by [`slow_rest_proxy`], by path and query (the key stripped).
type Calls = std::sync::Arc<std::sync::Mutex<BTreeMap<String, u32>>>;

/// A REST front for the simulator that counts every call and answers slowly, so that two
/// nodes asking for the same ticker really overlap.
fn slow_rest_proxy(upstream: String, delay: Duration) -> (String, Calls) {
    rest_proxy(upstream, delay, 0)
}

/// [`slow_rest_proxy`] that also answers its first `refuse` calls with 429 and
/// `Retry-After: 1`, as Massive's rate limit does.
fn rest_proxy(upstream: String, delay: Duration, refuse: u32) -> (String, Calls) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let calls: Calls = Default::default();
    let seen = calls.clone();
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        let (seen, upstream, refused) = (seen.clone(), upstream.clone(), refused.clone());
        App::new().default_service(web::to(move |req: HttpRequest| {
            let (seen, upstream, refused) = (seen.clone(), upstream.clone(), refused.clone());
            async move {
                let pq = req.uri().path_and_query().map_or("", |p| p.as_str());
                // The key travels in a header, never in the URL (where logs would keep it).
                assert!(!pq.contains("apiKey"), "API key in a URL: {pq}");
                *seen.lock().unwrap().entry(pq.to_string()).or_default() += 1;
                if refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < refuse {
                    return HttpResponse::TooManyRequests()
                        .insert_header(("Retry-After", "1"))
                        .body("{\"status\":\"ERROR\"}");
                }
                tokio::time::sleep(delay).await;
                let mut upstream_req = awc::Client::new().get(format!("{upstream}{pq}"));
                if let Some(auth) = req.headers().get("authorization") {
                    upstream_req = upstream_req.insert_header(("authorization", auth.clone()));
                }
                let mut resp = upstream_req.send().await.expect("the simulator answers");
                let body = resp.body().await.expect("body");
                let mut out = HttpResponse::build(resp.status());
                if let Some(ct) = resp.headers().get("content-type") {
                    out.insert_header(("content-type", ct.clone()));
                }
                out.body(body)
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    (url, calls)
}

#[actix_web::test]
async fn two_nodes_enriching_the_same_tickers_call_rest_once_per_value() {
    use actix::Actor;
    use tickwire::actors::processor::enricher::{Enrich, Enricher, EnricherConfig};
    use tickwire::actors::processor::metrics::EnricherFigures;
    use tickwire::actors::store::cache_writer::{CacheWriter, CacheWriterConfig};
    let kp = common::redis::unique_prefix("enrich-lock");
    let sim = start_sim(sim_args());
    let (rest, calls) = slow_rest_proxy(sim.http_url(""), Duration::from_millis(150));
    let day = chrono::Utc::now().date_naive();
    // Known tickers and one the market does not have (negative cache).
    let tickers = ["NVDA", "META", "TSLA", "AAPL", "MSFT", "ZZZQX"];
    let mut nodes = Vec::new();
    for holder in ["node-a", "node-b"] {
        let registry = Registry::new();
        let (_, state) =
            CacheWriter::start_store(CacheWriterConfig::new(&redis_url(), "state"), &registry)
                .expect("state store");
        let enricher = Enricher::new(
            EnricherConfig {
                rest_url: rest.clone(),
                api_key: "demo".into(),
                prefix: kp.clone(),
                concurrency: 4,
                holder: holder.into(),
                lock_ttl: Duration::from_secs(30),
                retries: 2,
                failure_memo: Duration::from_secs(60),
                // The per-ticker path is what this test is about.
                bulk: false,
            },
            state,
            EnricherFigures::register(&registry, &[]),
        )
        .start();
        let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reply = Answers(answers.clone()).start().recipient();
        nodes.push((enricher, answers, reply, registry));
    }
    // Both nodes ask for every ticker at the same moment.
    for sym in tickers {
        for (enricher, _, reply, _) in &nodes {
            enricher.do_send(Enrich {
                symbol: sym.into(),
                day,
                reply: reply.clone(),
            });
        }
    }
    wait_until("both nodes have every answer", || {
        nodes
            .iter()
            .all(|(_, a, _, _)| a.lock().unwrap().len() == tickers.len())
    })
    .await;

    // Every REST value was fetched by one node only: three per ticker in all.
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3 * tickers.len(), "{calls:#?}");
    assert!(calls.values().all(|n| *n == 1), "{calls:#?}");
    let total = |counter: &str| -> i64 { nodes.iter().map(|(_, _, _, r)| r.total(counter)).sum() };
    assert_eq!(
        total("tickwire_enrich_rest_calls_total"),
        3 * tickers.len() as i64
    );
    // The node that waited took the holder's values from the cache.
    let hits = total("tickwire_enrich_cache_hits_total");
    assert_eq!(hits, tickers.len() as i64);
    // Both nodes hold the same answers, and the unknown ticker is a (cached) "no data".
    let by_symbol = |i: usize| -> BTreeMap<String, String> {
        nodes[i]
            .1
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.symbol.clone(), format!("{:?}", e.enrichment)))
            .collect()
    };
    assert_eq!(by_symbol(0), by_symbol(1));
    let a = by_symbol(0);
    assert!(a.values().all(|e| e.starts_with("Some(")), "{a:#?}");
    assert!(a["NVDA"].contains("prev_day: Some"), "{}", a["NVDA"]);
    assert!(a["ZZZQX"].contains("prev_day: None"), "{}", a["ZZZQX"]);
    sim.stop().await;
    cleanup(&kp).await;
}

fn enricher(
    rest: &str,
    prefix: &str,
    bulk: bool,
) -> (
    actix::Addr<tickwire::actors::processor::enricher::Enricher>,
    std::sync::Arc<Registry>,
) {
    use actix::Actor;
    use tickwire::actors::processor::enricher::{Enricher, EnricherConfig};
    use tickwire::actors::processor::metrics::EnricherFigures;
    use tickwire::actors::store::cache_writer::{CacheWriter, CacheWriterConfig};
    let registry = Registry::new();
    let (_, state) =
        CacheWriter::start_store(CacheWriterConfig::new(&redis_url(), "state"), &registry)
            .expect("state store");
    let e = Enricher::new(
        EnricherConfig {
            rest_url: rest.to_string(),
            api_key: "demo".into(),
            prefix: prefix.to_string(),
            concurrency: 8,
            holder: "node".into(),
            lock_ttl: Duration::from_secs(30),
            retries: 3,
            failure_memo: Duration::from_secs(60),
            bulk,
        },
        state,
        EnricherFigures::register(&registry, &[]),
    )
    .start();
    (e, registry)
}

/// Asks `enricher` for every ticker and waits for every answer, keyed by ticker.
async fn enrich_all(
    enricher: &actix::Addr<tickwire::actors::processor::enricher::Enricher>,
    tickers: &[String],
) -> BTreeMap<String, String> {
    use actix::Actor;
    use tickwire::actors::processor::enricher::Enrich;
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reply = Answers(answers.clone()).start().recipient();
    let day = chrono::Utc::now().date_naive();
    for sym in tickers {
        enricher.do_send(Enrich {
            symbol: sym.clone(),
            day,
            reply: reply.clone(),
        });
    }
    let a = answers.clone();
    wait_until("every ticker is answered", || {
        a.lock().unwrap().len() == tickers.len()
    })
    .await;
    let got = answers.lock().unwrap();
    got.iter()
        .map(|e| (e.symbol.clone(), format!("{:?}", e.enrichment)))
        .collect()
}

/// A ticker whose calls keep being refused (429, `Retry-After: 1`) is given up after its
/// retries: answered "unknown" and counted as failed, not retried forever.
#[actix_web::test]
async fn a_ticker_refused_past_its_retries_is_given_up() {
    let kp = common::redis::unique_prefix("enrich-give-up");
    let sim = start_sim(sim_args());
    let (rest, calls) = rest_proxy(sim.http_url(""), Duration::ZERO, u32::MAX);
    let (each, r) = enricher(&rest, &kp, false);
    let answers = enrich_all(&each, &["AAPL".to_string()]).await;
    assert_eq!(answers["AAPL"], "None", "given up");
    assert_eq!(r.value("tickwire_enrich_failures_total", &[]), Some(1));
    // The first value's call and its three retries, then nothing more.
    assert_eq!(calls.lock().unwrap().values().sum::<u32>(), 4);
    sim.stop().await;
    cleanup(&kp).await;
}

/// Issue 25: enriching 2,000 tickers from a cold cache costs the REST API at most 100 calls
/// (the full-market snapshot, 30 grouped-daily sessions, the float list), not three per
/// ticker, and gives the same values as the per-ticker calls; a 429 is waited out.
#[actix_web::test]
async fn a_cold_warm_up_of_2000_tickers_costs_under_100_calls() {
    let kp = common::redis::unique_prefix("warm-up");
    let mut args = sim_args();
    args.tickers = 2000;
    args.rate = 100.0;
    let sim = start_sim(args);
    let (rest, calls) = rest_proxy(sim.http_url(""), Duration::ZERO, 1);
    let (bulk, r) = enricher(&rest, &kp, true);
    let (_, body) = get_json(
        &sim.http_url("/v2/snapshot/locale/us/markets/stocks/tickers?include_otc=true&apiKey=demo"),
        None,
    )
    .await;
    let tickers: Vec<String> = body["tickers"]
        .as_array()
        .expect("the snapshot lists tickers")
        .iter()
        .filter_map(|t| t["ticker"].as_str().map(str::to_string))
        .collect();
    assert_eq!(tickers.len(), 2000);
    let answers = enrich_all(&bulk, &tickers).await;
    assert!(
        answers.values().all(|e| e.starts_with("Some(")),
        "every ticker enriched"
    );

    let total: u32 = calls.lock().unwrap().values().sum();
    assert!(
        total <= 100,
        "{total} REST calls: {:#?}",
        calls.lock().unwrap()
    );
    let sim_calls = sim
        .registry
        .total("tickwire_sim_rest_endpoint_requests_total");
    assert!(sim_calls <= 100, "the simulator counted {sim_calls}");
    for per_ticker in ["snapshot", "range", "float"] {
        assert_eq!(
            r.value(
                "tickwire_enrich_rest_calls_total",
                &[("endpoint", per_ticker)]
            ),
            Some(0),
            "no per-ticker {per_ticker} call"
        );
    }
    assert_eq!(
        r.value("tickwire_enrich_warmed_tickers_total", &[]),
        Some(2000)
    );
    // The refused call was retried after its Retry-After.
    assert!(r.value("tickwire_enrich_rest_retries_total", &[]) >= Some(1));

    // The same figures as three calls per ticker give, for a sample.
    let sample: Vec<String> = tickers.iter().step_by(100).cloned().collect();
    let kp2 = common::redis::unique_prefix("warm-up-each");
    let (each, r2) = enricher(&sim.http_url(""), &kp2, false);
    let one_by_one = enrich_all(&each, &sample).await;
    for sym in &sample {
        assert_eq!(answers[sym], one_by_one[sym], "{sym}");
    }
    assert_eq!(
        r2.total("tickwire_enrich_rest_calls_total"),
        3 * sample.len() as i64
    );
    sim.stop().await;
    cleanup(&kp).await;
    cleanup(&kp2).await;
}

/// Holidays and early closes ahead (issue 25): the processor's market-status actor reads
/// `/v1/marketstatus/upcoming` at start and hands the processors a calendar that has them,
/// before the day comes.
#[actix_web::test]
async fn upcoming_holidays_reach_the_trading_calendar() {
    use actix::{Actor, Context, Handler};
    use tickwire::actors::processor::market_status::MarketStatus;
    use tickwire::actors::processor::metrics::MarketStatusFigures;
    use tickwire::actors::processor::shard::CalendarUpdate;
    use tickwire::analyzers::calendar::{parse_days, DayKind, TradingCalendar};
    struct Calendars(std::sync::Arc<std::sync::Mutex<Vec<TradingCalendar>>>);
    impl Actor for Calendars {
        type Context = Context<Self>;
    }
    impl Handler<CalendarUpdate> for Calendars {
        type Result = ();
        fn handle(&mut self, m: CalendarUpdate, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(m.0);
        }
    }
    let mut a = sim_args();
    let start = tickwire::clock::parse_start(&a.start_time, chrono::Utc::now()).expect("start");
    let today = tickwire::clock::to_et(start).date();
    let (holiday, early) = (
        today + chrono::Duration::days(10),
        today + chrono::Duration::days(3),
    );
    let mut c = TradingCalendar::default();
    c.prime(parse_days(&format!("{holiday},{early}/early")).expect("days"));
    a.holidays = tickwire::actors::sim::config::Holidays(std::sync::Arc::new(c));
    let sim = start_sim(a);
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let to = Calendars(got.clone()).start().recipient();
    let registry = Registry::new();
    let _status = MarketStatus::new(
        &sim.http_url(""),
        "demo",
        Duration::from_secs(3600),
        to,
        MarketStatusFigures::register(&registry, &[]),
    )
    .start();
    let g = got.clone();
    wait_until("a calendar with the holidays ahead", || {
        g.lock().unwrap().iter().any(|c| {
            c.kind(holiday) == Some(DayKind::Holiday) && c.kind(early) == Some(DayKind::EarlyClose)
        })
    })
    .await;
    assert_eq!(
        sim.registry.value(
            "tickwire_sim_rest_endpoint_requests_total",
            &[("endpoint", "market_status_upcoming")]
        ),
        Some(1)
    );
    sim.stop().await;
}

/// The alerts whose price does not beat the true extreme of their session so far, the truth
/// being the simulator's minute bars of the alert's symbol that ended before the alert's bar.
async fn false_alerts(sim: &tickwire::actors::sim::SimServer, alerts: &[Value]) -> Vec<String> {
    use tickwire::analyzers::calendar::TradingCalendar;
    let calendar = TradingCalendar::default();
    let mut bars: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for al in alerts {
        let sym = al["symbol"].as_str().expect("symbol").to_string();
        let start = al["start_timestamp"].as_f64().expect("start") as i64;
        if !bars.contains_key(&sym) {
            let day = tickwire::clock::to_et(tickwire::clock::ms_to_utc(start)).date();
            let (_, body) = get_json(
                &sim.http_url(&format!(
                    "/v2/aggs/ticker/{sym}/range/1/minute/{day}/{day}?apiKey=demo&limit=50000"
                )),
                None,
            )
            .await;
            bars.insert(
                sym.clone(),
                body["results"].as_array().cloned().unwrap_or_default(),
            );
        }
        let session = al["session"].as_str().unwrap_or("");
        let earlier = bars[&sym].iter().filter(|b| {
            let t = b["t"].as_i64().unwrap_or(i64::MAX);
            t + 60_000 <= start && calendar.session(t).as_str() == session
        });
        let price = al["price"].as_f64().expect("price");
        let high = al["direction"] == "high";
        let beaten = earlier
            .map(|b| b[if high { "h" } else { "l" }].as_f64().unwrap_or(f64::NAN))
            .fold(None, |acc: Option<f64>, x| {
                Some(acc.map_or(x, |a| if high { a.max(x) } else { a.min(x) }))
            });
        if let Some(extreme) = beaten {
            let beats = if high {
                price > extreme
            } else {
                price < extreme
            };
            if !beats {
                wrong.push(format!(
                    "{sym} {session} {} {price} vs the day's {extreme}",
                    al["direction"]
                ));
            }
        }
    }
    wrong
}

/// The same with a processor node (RabbitMQ, Redis) on a simulated day since 04:00 started
/// at 11:00: no alert that does not beat the session so far.
#[actix_web::test]
async fn a_processor_node_started_at_11_raises_no_false_alerts() {
    let qp = common::rabbit::unique_prefix("cold-node");
    let kp = common::redis::unique_prefix("cold-node");
    let mut a = sim_args();
    a.start_time = "11:00:00".into();
    a.history_rate = 30.0;
    a.late_trade_ratio = 0.0;
    a.tickers = 50;
    let sim = start_sim(a);
    let mut args = processor_args(&qp, &kp);
    args.pipeline.alert_cap = 1000;
    args.pipeline.rest_url = sim.http_url("");
    args.pipeline.key.api_key = "demo".into();
    args.pipeline.backfill = true;
    let node = start_node(args);
    let registry = Registry::new();
    let l = start_listener(sim.ws_url("stocks"), &qp, &registry);
    let lists = [
        format!("{kp}wdc:daily_range_hod_alert"),
        format!("{kp}wdc:daily_range_lod_alert"),
    ];
    let read = || {
        let lists = lists.clone();
        async move {
            let mut c = redis_conn().await;
            let mut all: Vec<String> = Vec::new();
            for l in &lists {
                let items: Vec<String> = redis::cmd("LRANGE")
                    .arg(l)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut *c)
                    .await
                    .unwrap_or_default();
                all.extend(items);
            }
            all
        }
    };
    wait_until_async("alerts are raised", || async { read().await.len() >= 30 }).await;
    let alerts: Vec<Value> = read()
        .await
        .iter()
        .map(|a| serde_json::from_str(a).expect("alert JSON"))
        .collect();
    let wrong = false_alerts(&sim, &alerts).await;
    assert!(
        wrong.is_empty(),
        "{} of {} alerts are false: {wrong:#?}",
        wrong.len(),
        alerts.len()
    );
    assert!(node.registry.total("tickwire_processor_backfills_total") > 0);
    l.do_send(listener::Control::Stop);
    node.stop().await;
    sim.stop().await;
    delete_pipeline_queues(&qp, SHARDS).await;
    cleanup(&kp).await;
}

/// Runs embedded mode started at 11:00 on a simulated day that began at 04:00 until it has
/// raised `want` HOD/LOD alerts, and answers (alerts, alerts whose price does not beat the
/// true extreme of its session so far), the truth being the simulator's minute bars.
async fn alerts_after_a_cold_start(backfill: bool, want: usize) -> (usize, Vec<String>) {
    let mut a = embedded_args(if backfill {
        "backfill-on"
    } else {
        "backfill-off"
    });
    a.sim.start_time = "11:00:00".into();
    a.sim.history_rate = 30.0;
    a.sim.late_trade_ratio = 0.0; // every trade reaches the processor in a second bar
    a.sim.tickers = 50;
    a.pipeline.backfill = backfill;
    let sim_http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").expect("bind");
    let e = embedded::start(a, sim_http, http).expect("embedded starts");
    let store = e.store.clone();
    let read = |key: &'static str| {
        let store = store.clone();
        async move {
            match store.read(key, tickwire::store::ALL).await {
                Ok(Some(Stored::List(items))) => items,
                _ => Vec::new(),
            }
        }
    };
    wait_until_async("alerts are raised", || async {
        read("daily_range_hod_alert").await.len() + read("daily_range_lod_alert").await.len()
            >= want
    })
    .await;
    let mut alerts: Vec<Value> = Vec::new();
    for key in ["daily_range_hod_alert", "daily_range_lod_alert"] {
        for item in read(key).await {
            alerts.push(serde_json::from_slice(&item).expect("alert JSON"));
        }
    }
    if backfill {
        // The boards' seeds reach embedded mode's shards too (the same enricher and shards;
        // tests/processor.rs compares the boards on processor nodes).
        let r = e.registry.clone();
        wait_until("the day's board seeds are read", || {
            r.value("tickwire_enrich_seeds", &[]).unwrap_or(0) > 0
        })
        .await;
    }
    let sim = e.sim.expect("the built-in simulator");
    let wrong = false_alerts(&sim, &alerts).await;
    sim.stop().await;
    (alerts.len(), wrong)
}

/// Issue 25: a processor started mid-session (embedded mode at 11:00 on a day that began at
/// 04:00) raises no HOD/LOD alert that does not beat the true session extreme so far: each
/// symbol's morning comes from the day's minute bars before it may alert. Without the
/// back-fill the same run raises such false alerts (so the check can see them).
#[actix_web::test]
async fn a_cold_start_at_11_raises_no_false_alerts() {
    let (n, wrong) = alerts_after_a_cold_start(true, 30).await;
    assert!(
        wrong.is_empty(),
        "{} of {n} alerts are false: {wrong:#?}",
        wrong.len()
    );
    let (n, wrong) = alerts_after_a_cold_start(false, 30).await;
    assert!(
        !wrong.is_empty(),
        "without back-fill, {n} alerts and none false: the check saw nothing"
    );
}

/// The simulator's market time (ET) from its market status.
async fn sim_time(sim: &tickwire::actors::sim::SimServer) -> chrono::NaiveTime {
    let (_, body) = get_json(&sim.http_url("/v1/marketstatus/now?apiKey=demo"), None).await;
    let at = body["serverTime"].as_str().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| tickwire::clock::to_et(t.with_timezone(&chrono::Utc)).time())
        .unwrap_or_default()
}

/// A node's three boards, each row reduced to what it ranks on: rank, symbol, volume, change
/// and change since open (the other fields describe the symbol's last bar, a second bar live
/// and the snapshot's minute for a symbol known from the snapshot).
async fn ranked_boards(kp: &str) -> Vec<Vec<(i64, String, f64, f64, f64)>> {
    let mut c = redis_conn().await;
    let mut out = Vec::new();
    for board in [
        "scanners:top_volume",
        "scanners:top_gappers",
        "scanners:top_gainers",
    ] {
        let json: Option<String> = redis::cmd("GET")
            .arg(format!("{kp}wdc:{board}"))
            .query_async(&mut *c)
            .await
            .unwrap_or_default();
        let rows: Vec<Value> = json
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        let f = |r: &Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        out.push(
            rows.iter()
                .map(|r| {
                    (
                        r["rank"].as_i64().unwrap_or(0),
                        r["symbol"].as_str().unwrap_or_default().to_string(),
                        f(r, "accumulated_volume"),
                        f(r, "pct_change"),
                        f(r, "pct_change_since_open"),
                    )
                })
                .collect(),
        );
    }
    out
}

/// Issue 25: the boards of a processor started mid-session equal those of a processor that
/// ran all day. One simulated day, 04:00 to 20:00 ET at 3,000 times real time, feeds
/// processor A from 04:00 and processor B (back-fill, bulk warm-up) from 11:00; once the day
/// is over, B ranks the symbols it never saw trade from the day's snapshot, and both boards
/// hold the same symbols, in the same order, with the same volume and changes (and those of
/// a processor started at 11:00 without the warm-up, the control, do not).
#[actix_web::test]
async fn boards_after_a_start_at_11_equal_a_processor_that_ran_all_day() {
    let mut a = sim_args();
    a.start_time = "04:00:00".into();
    a.speed = 3000.0;
    a.tickers = 300;
    // Few enough trades after 11:00 that some tickers stay quiet (the boards' hard case).
    a.rate = 1000.0;
    a.late_trade_ratio = 0.0;
    let sim = start_sim(a);
    // Two programs streaming at once: two Massive keys (one connection each).
    let node = |name: &str, key: &str, bulk: bool| {
        let (qp, kp) = (
            common::rabbit::unique_prefix(name),
            common::redis::unique_prefix(name),
        );
        let mut args = processor_args(&qp, &kp);
        args.pipeline.rest_url = sim.http_url("");
        args.pipeline.key.api_key = "demo".into();
        args.pipeline.backfill = true;
        args.pipeline.enrich_bulk = bulk;
        let registry = Registry::new();
        let listener = start_listener_with_key(sim.ws_url("stocks"), &qp, &registry, key);
        (qp, kp, start_node(args), listener)
    };
    let all_day = node("all-day", "demo", true);
    wait_until_async("the simulated day reaches 11:00", || async {
        sim_time(&sim).await >= chrono::NaiveTime::from_hms_opt(11, 0, 0).unwrap()
    })
    .await;
    let late = node("from-11", "second", true);
    // The control: started at 11:00 too, without the bulk warm-up (so without seeds).
    let control = node("from-11-no-seeds", "stocksonly", false);
    let after_close = chrono::NaiveTime::from_hms_opt(20, 0, 1).unwrap();
    wait_until_async("the simulated day ends", || async {
        sim_time(&sim).await >= after_close
    })
    .await;
    let (qa, ka, na, la) = all_day;
    let (qb, kb, nb, lb) = late;
    let start = std::time::Instant::now();
    let last = loop {
        let last = (ranked_boards(&ka).await, ranked_boards(&kb).await);
        if last.0 == last.1 && last.0.iter().all(|b| !b.is_empty()) {
            break last;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the boards differ: all day {:#?}\nfrom 11:00 {:#?}",
            last.0,
            last.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seeded = nb.registry.total("tickwire_processor_seeded_symbols_total");
    assert!(seeded > 0, "no symbol came from the snapshot");
    let (qc, kc, nc, lc) = control;
    assert_ne!(
        ranked_boards(&kc).await,
        last.0,
        "without the snapshot the boards are the same too: the check saw nothing"
    );
    eprintln!(
        "boards equal ({} volume rows); {seeded} symbols from the snapshot",
        last.0[0].len()
    );
    for (q, k, n, l) in [(qa, ka, na, la), (qb, kb, nb, lb), (qc, kc, nc, lc)] {
        l.do_send(listener::Control::Stop);
        n.stop().await;
        delete_pipeline_queues(&q, SHARDS).await;
        cleanup(&k).await;
    }
    sim.stop().await;
}

/// Messages that expire in their queue (no processor took them within the TTL) are
/// dead-lettered by the broker and counted by the next processor, by queue, in messages and
/// in events: the one loss RabbitMQ causes is never silent.
#[actix_web::test]
async fn messages_that_expire_unconsumed_are_counted_by_queue() {
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
    use lapin::BasicProperties;
    use tickwire::queue::envelope;
    use tickwire::queue::topology::{declare_topology, expired_name, queue_name};
    use tickwire::queue::QueueKind;
    const TTL_MS: u32 = 200;
    const MESSAGES: u64 = 7;
    const EVENTS_EACH: u64 = 3;
    let qp = common::rabbit::unique_prefix("proc-expired");
    let kp = common::redis::unique_prefix("proc-expired");
    let (_conn, ch) = common::rabbit::channel().await;
    declare_topology(&ch, &qp, SHARDS, TTL_MS)
        .await
        .expect("declare the topology");

    // No processor runs: these quotes expire in `quotes.2`.
    let quote = bytes::Bytes::from_static(
        br#"{"ev":"Q","sym":"AAPL","bp":1.0,"bs":1,"ap":1.1,"as":1,"t":1700000000000}"#,
    );
    let events = vec![quote; EVENTS_EACH as usize];
    let queue = queue_name(&qp, QueueKind::Quotes, 2);
    for _ in 0..MESSAGES {
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            &envelope::encode(1_700_000_000_000, "stocks", &events),
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("published");
    }
    let dead = expired_name(&qp);
    wait_until_async("the broker dead-letters every expired message", || {
        let (ch, q) = (ch.clone(), dead.clone());
        async move {
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            ch.queue_declare(q.as_str().into(), passive, Default::default())
                .await
                .is_ok_and(|q| u64::from(q.message_count()) == MESSAGES)
        }
    })
    .await;

    // A processor on the same topology counts them.
    let mut args = processor_args(&qp, &kp);
    args.broker.message_ttl_ms = TTL_MS;
    args.pipeline.enrichment = false;
    let node = start_node(args);
    let r = node.registry.clone();
    let expired = |name: &str, queue: &str| r.value(name, &[("queue", queue)]).unwrap_or(0);
    wait_until("the expired quotes are counted", || {
        expired("tickwire_consumer_expired_messages_total", "quotes") == MESSAGES as i64
    })
    .await;
    assert_eq!(
        expired("tickwire_consumer_expired_events_total", "quotes"),
        (MESSAGES * EVENTS_EACH) as i64
    );
    for other in ["trades", "aggregate", "luld", "fmv"] {
        assert_eq!(
            expired("tickwire_consumer_expired_messages_total", other),
            0
        );
    }
    assert_eq!(
        r.value("tickwire_consumer_dead_lettered_other_total", &[]),
        Some(0)
    );
    // The same figures on the node's own /metrics.
    let mut resp = awc::Client::new()
        .get(format!("http://127.0.0.1:{}/metrics", node.port))
        .insert_header(("authorization", format!("Bearer {ADMIN}")))
        .send()
        .await
        .expect("GET /metrics");
    let metrics = String::from_utf8_lossy(&resp.body().await.expect("body")).into_owned();
    assert!(
        metrics.contains(&format!(
            "tickwire_consumer_expired_messages_total{{queue=\"quotes\"}} {MESSAGES}"
        )),
        "{metrics}"
    );

    node.stop().await;
    common::rabbit::delete_pipeline(&ch, &qp, SHARDS).await;
    cleanup(&kp).await;
}
