//! The simulator's REST hydration endpoints: auth and error bodies as Massive sends them, and
//! values that agree with the WebSocket stream.

mod common;

use chrono::{Duration, NaiveDate};
use common::*;
use serde_json::Value;

const SNAP: &str = "/v2/snapshot/locale/us/markets/stocks/tickers";

#[actix_web::test]
async fn keys_are_checked_with_massive_error_bodies() {
    let mut a = sim_args();
    a.rest_rate_limit = 3;
    let sim = start_sim(a);
    let (s, b) = get_json(&sim.http_url("/v1/marketstatus/now"), None).await;
    assert_eq!(
        (s, b["status"].as_str(), b["error"].as_str()),
        (401, Some("ERROR"), Some("API Key was not provided"))
    );
    assert!(b["request_id"].is_string());
    let (s, b) = get_json(&sim.http_url("/v1/marketstatus/now?apiKey=nope"), None).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("Unknown API Key")));
    let (s, b) = get_json(&sim.http_url("/v1/marketstatus/now"), Some("fxonly")).await;
    assert_eq!((s, b["status"].as_str()), (403, Some("NOT_AUTHORIZED")));
    assert_eq!(b["message"], "You are not entitled to this data. Please upgrade your plan at https://massive.com/pricing");
    // Bearer and query key both work; the fourth call in a minute is rate limited.
    assert_eq!(
        get_json(&sim.http_url("/v1/marketstatus/now"), Some("demo"))
            .await
            .0,
        200
    );
    assert_eq!(
        get_json(&sim.http_url("/v1/marketstatus/now?apiKey=demo"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        get_json(&sim.http_url("/v1/marketstatus/now?apiKey=demo"), None)
            .await
            .0,
        200
    );
    let (s, b) = get_json(&sim.http_url("/v1/marketstatus/now?apiKey=demo"), None).await;
    assert_eq!(s, 429);
    assert!(b["error"]
        .as_str()
        .unwrap()
        .contains("exceeded the maximum requests per minute"));
    // Another key has its own budget.
    assert_eq!(
        get_json(&sim.http_url("/v1/marketstatus/now?apiKey=second"), None)
            .await
            .0,
        200
    );
    let metrics = awc::Client::new()
        .get(sim.http_url("/metrics"))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("tickwire_sim_rest_requests_total{status=\"429\"} 1"),
        "{metrics}"
    );
    sim.stop().await;
}

#[actix_web::test]
async fn market_status_follows_the_clock_across_the_open() {
    let mut a = sim_args();
    a.start_time = "09:29:58".into();
    let sim = start_sim(a);
    let url = sim.http_url("/v1/marketstatus/now?apiKey=demo");
    let (_, first) = get_json(&url, None).await;
    assert_eq!(first["market"], "extended-hours");
    assert_eq!(first["earlyHours"], true);
    assert!(first["serverTime"].as_str().unwrap().contains("T09:29:5"));
    // Wait (bounded) for the 09:30 ET open.
    let start = std::time::Instant::now();
    loop {
        let (_, b) = get_json(&url, None).await;
        if b["market"] == "open" {
            assert_eq!(b["exchanges"]["nasdaq"], "open");
            break;
        }
        assert!(start.elapsed() < DEADLINE, "market never opened: {b}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    sim.stop().await;
}

#[actix_web::test]
async fn snapshot_last_trade_is_the_latest_streamed_trade() {
    let sim = start_sim(sim_args());
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"T.AAPL"}"#).await;
    c.statuses(1).await;
    c.data_events(1).await;
    let (s, snap) = get_json(&sim.http_url(&format!("{SNAP}/AAPL?apiKey=demo")), None).await;
    assert_eq!(s, 200);
    let t = &snap["ticker"];
    assert_eq!(t["ticker"], "AAPL");
    let last = &t["lastTrade"];
    // The trade the snapshot reports was streamed: find it by id on the socket.
    loop {
        let found = c
            .data_events(1)
            .await
            .into_iter()
            .find(|e| e["i"] == last["i"]);
        if let Some(trade) = found {
            assert_eq!(trade["p"], last["p"]);
            assert_eq!(
                trade["t"].as_i64().unwrap() * 1_000_000,
                last["t"].as_i64().unwrap(),
                "REST t is ns"
            );
            break;
        }
    }
    let prev_c = t["prevDay"]["c"].as_f64().unwrap();
    let change = last["p"].as_f64().unwrap() - prev_c;
    assert!((t["todaysChange"].as_f64().unwrap() - change).abs() < 1e-3);
    for block in ["day", "prevDay", "lastQuote", "min"] {
        assert!(t[block].is_object(), "{block} in {t}");
    }
    let (s, b) = get_json(
        &sim.http_url(&format!("{SNAP}/NOTATICKER?apiKey=demo")),
        None,
    )
    .await;
    assert_eq!((s, b["status"].as_str()), (404, Some("NOT_FOUND")));
    sim.stop().await;
}

#[actix_web::test]
async fn whole_market_snapshot_grouped_daily_and_ranges_agree() {
    let sim = start_sim(sim_args());
    let (_, all) = get_json(
        &sim.http_url(&format!("{SNAP}?apiKey=demo&include_otc=true")),
        None,
    )
    .await;
    assert_eq!(all["count"], 500);
    let (_, some) = get_json(
        &sim.http_url(&format!("{SNAP}?apiKey=demo&tickers=AAPL,MSFT,NOPE")),
        None,
    )
    .await;
    assert_eq!(some["count"], 2);
    let aapl = all["tickers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ticker"] == "AAPL")
        .unwrap()
        .clone();

    // prevDay in the snapshot == the previous trading day's grouped bar == /prev.
    let (_, status) = get_json(&sim.http_url("/v1/marketstatus/now?apiKey=demo"), None).await;
    let today =
        NaiveDate::parse_from_str(&status["serverTime"].as_str().unwrap()[..10], "%Y-%m-%d")
            .unwrap();
    let prev_day = tickwire::clock::previous_trading_day(today);
    let (_, grouped) = get_json(
        &sim.http_url(&format!(
            "/v2/aggs/grouped/locale/us/market/stocks/{prev_day}?apiKey=demo"
        )),
        None,
    )
    .await;
    let bar = grouped["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["T"] == "AAPL")
        .unwrap()
        .clone();
    assert_eq!(bar["c"], aapl["prevDay"]["c"]);
    assert_eq!(bar["v"], aapl["prevDay"]["v"]);
    assert!(grouped["resultsCount"].as_u64().unwrap() <= 500);
    let (_, prev) = get_json(&sim.http_url("/v2/aggs/ticker/AAPL/prev?apiKey=demo"), None).await;
    assert_eq!(prev["results"][0]["c"], aapl["prevDay"]["c"]);

    // 42 calendar days back: about 30 sessions, ascending, then descending with a limit.
    let from = today - Duration::days(42);
    let url =
        format!("/v2/aggs/ticker/AAPL/range/1/day/{from}/{prev_day}?apiKey=demo&adjusted=true");
    let (_, range) = get_json(&sim.http_url(&url), None).await;
    let results = range["results"].as_array().unwrap();
    assert!(
        results.len() >= 28 && results.len() <= 31,
        "{}",
        results.len()
    );
    let ts: Vec<i64> = results.iter().map(|r| r["t"].as_i64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(results.last().unwrap()["c"], aapl["prevDay"]["c"]);
    let (_, desc) = get_json(&sim.http_url(&format!("{url}&sort=desc&limit=5")), None).await;
    assert_eq!(desc["resultsCount"], 5);
    assert_eq!(desc["results"][0]["t"], results.last().unwrap()["t"]);
    let (s, _) = get_json(
        &sim.http_url(&format!(
            "/v2/aggs/ticker/AAPL/range/1/day/notadate/{prev_day}?apiKey=demo"
        )),
        None,
    )
    .await;
    assert_eq!(s, 400);
    sim.stop().await;
}

#[actix_web::test]
async fn reference_float_and_ratios() {
    let sim = start_sim(sim_args());
    let (_, d) = get_json(
        &sim.http_url("/v3/reference/tickers/MSFT?apiKey=demo"),
        None,
    )
    .await;
    let r = &d["results"];
    assert_eq!(r["ticker"], "MSFT");
    assert!(r["share_class_shares_outstanding"].as_f64().unwrap() > 0.0);
    let (_, f) = get_json(
        &sim.http_url("/stocks/vX/float?ticker=MSFT&apiKey=demo"),
        None,
    )
    .await;
    let ff = f["results"][0]["free_float"].as_f64().unwrap();
    assert!(ff > 0.0 && ff <= r["share_class_shares_outstanding"].as_f64().unwrap());
    let (_, ratios) = get_json(
        &sim.http_url("/stocks/financials/v1/ratios?ticker=MSFT&apiKey=demo"),
        None,
    )
    .await;
    assert!(ratios["results"][0]["average_volume"].as_f64().unwrap() > 0.0);
    // Without a ticker: every float, a page at a time, `next_url` to the next page, which
    // names this host and carries on where the page ended; the last page has none.
    let (s, page) = get_json(
        &sim.http_url("/stocks/vX/float?limit=300&apiKey=demo"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(page["results"].as_array().unwrap().len(), 300);
    let next = page["next_url"].as_str().expect("a next page");
    assert!(
        next.starts_with(&sim.http_url("/stocks/vX/float?cursor=300")),
        "{next}"
    );
    let (_, last) = get_json(&format!("{next}&apiKey=demo"), None).await;
    assert_eq!(
        last["results"].as_array().unwrap().len(),
        200,
        "500 tickers in all"
    );
    assert!(last.get("next_url").is_none());
    assert_ne!(page["results"][0]["ticker"], last["results"][0]["ticker"]);
    let (s, _) = get_json(&sim.http_url("/stocks/vX/float?cursor=x&apiKey=demo"), None).await;
    assert_eq!(s, 400);
    sim.stop().await;
}

#[actix_web::test]
async fn admin_routes_report_real_counters() {
    let sim = start_sim(sim_args());
    let mut c = Client::authed(&sim.ws_url("stocks"), "demo").await;
    c.send(r#"{"action":"subscribe","params":"Q.*"}"#).await;
    c.statuses(1).await;
    c.data_events(50).await;
    let (s, ready) = get_json(&sim.http_url("/ready"), None).await;
    assert_eq!((s, &ready["ready"]), (200, &Value::Bool(true)));
    let (_, stats) = get_json(&sim.http_url("/stats"), None).await;
    assert!(
        stats["actors"]["sim_feed"]["messages_out"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert!(
        stats["actors"]["sim_session"]["messages_in"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert!(
        stats["counters"]["tickwire_sim_events_sent_total"]
            .as_i64()
            .unwrap()
            >= 50
    );
    assert_eq!(stats["counters"]["tickwire_sim_connections"], 1);
    let (s, health) = get_json(&sim.http_url("/health"), None).await;
    assert_eq!((s, &health["status"]), (200, &Value::from("OK")));
    sim.stop().await;
}

/// Issue 25: started at 11:00 with a history, the simulator's REST minute bars cover the day
/// from 04:00 ET, and the snapshot's day range holds them (the stream continues from them).
#[actix_web::test]
async fn minute_bars_cover_the_day_before_the_start() {
    let mut a = sim_args();
    a.start_time = "11:00:00".into();
    a.history_rate = 20.0;
    let sim = start_sim(a);
    let start = tickwire::clock::parse_start("11:00:00", chrono::Utc::now()).expect("start");
    let day = tickwire::clock::to_et(start).date();
    let (status, body) = get_json(
        &sim.http_url(&format!(
            "/v2/aggs/ticker/AAPL/range/1/minute/{day}/{day}?apiKey=demo&limit=50000"
        )),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bars = body["results"].as_array().expect("results");
    assert!(bars.len() > 30, "{} minute bars", bars.len());
    let t = |b: &Value| b["t"].as_i64().expect("t");
    let four = tickwire::clock::from_et(day.and_hms_opt(4, 0, 0).unwrap()).timestamp_millis();
    assert!(
        t(&bars[0]) >= four && t(&bars[0]) < four + 3_600_000,
        "from the morning"
    );
    assert!(bars
        .iter()
        .any(|b| t(b) < start.timestamp_millis() - 3_600_000));
    // The snapshot's day is the regular session's (as Massive's): it holds the regular
    // minute bars, and the whole day's volume.
    let open = tickwire::clock::from_et(day.and_hms_opt(9, 30, 0).unwrap()).timestamp_millis();
    let regular = || bars.iter().filter(|b| t(b) >= open);
    let high = regular()
        .filter_map(|b| b["h"].as_f64())
        .fold(f64::MIN, f64::max);
    let volume: f64 = bars.iter().filter_map(|b| b["v"].as_f64()).sum();
    let (_, snap) = get_json(&sim.http_url(&format!("{SNAP}/AAPL?apiKey=demo")), None).await;
    let day_high = snap["ticker"]["day"]["h"].as_f64().expect("day high");
    assert!(high <= day_high, "{high} > the day's {day_high}");
    let day_open = snap["ticker"]["day"]["o"].as_f64().expect("day open");
    assert_eq!(
        Some(day_open),
        regular().next().and_then(|b| b["o"].as_f64())
    );
    assert!(snap["ticker"]["day"]["v"].as_f64().expect("day volume") >= volume);
    // Epoch-ms bounds select a window; other spans are refused.
    let (_, window) = get_json(
        &sim.http_url(&format!(
            "/v2/aggs/ticker/AAPL/range/1/minute/{four}/{}?apiKey=demo",
            four + 600_000
        )),
        None,
    )
    .await;
    let w = window["results"].as_array().expect("results");
    assert!(w.iter().all(|b| t(b) >= four && t(b) <= four + 600_000));
    let (status, _) = get_json(
        &sim.http_url(&format!(
            "/v2/aggs/ticker/AAPL/range/5/minute/{day}/{day}?apiKey=demo"
        )),
        None,
    )
    .await;
    assert_eq!(status, 400);
    sim.stop().await;
}
