//! API lifecycle in-process, over the directory catalog and real redis-servers: a table change
//! publishes by itself (once), a latest-partition API follows the newest `dt`, a thin partition
//! fails the key-count gate until its owner publishes anyway, schedules fire at their instants
//! (clock injected), an API past its freshness objective is stale in metrics and views, and a
//! canary promotes when its edge answers right and goes back when it does not.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use dashboard_api::store::ApiRow;
use fixtures::poll;
use fixtures::sales::write_sales_partition;
use serde_json::{Value, json};

/// `fb`, `tw` and a null network in a third day: fb sums to 10, tw to 2.
const DAY_3: &[fixtures::sales::SalesRow] = &[
    (1, Some("fb"), 6, 100, 8_000_000),
    (2, Some("fb"), 4, 100, 8_100_000),
    (5, Some("tw"), 2, 100, 8_200_000),
    (6, None, 1, 100, 8_300_000),
];

fn referrals_by_network_of_the_latest_day(name: &str) -> Value {
    json!({
        "name": name,
        "table": "shop.sales",
        "key": ["network"],
        "values": [{"agg": "sum", "column": "referrals", "as": "referrals"}],
        "shape": "object",
        "latest_partitions": 1,
        "refresh": {"on_table_change": true, "settle_s": 1},
    })
}

async fn versions(server: &TestServer, api: &str) -> Vec<Value> {
    let (status, body) = server.get(&format!("/api/apis/{api}/versions")).await;
    assert_eq!(status, 200, "{body}");
    body["history"].as_array().cloned().unwrap_or_default()
}

fn committed(versions: &[Value]) -> usize {
    versions
        .iter()
        .filter(|v| v["state"] == "committed")
        .count()
}

async fn boot_watching(dir: &Path) -> TestServer {
    TestServer::boot_with(dir, |c| {
        c.triggers.watch_ms = 100;
        c.triggers.settle_ms = 5_000;
    })
    .await
}

#[tokio::test]
async fn a_new_partition_publishes_the_latest_day_once_and_a_quiet_table_nothing() {
    let dir = workspace();
    let server = boot_watching(dir.path()).await;
    server
        .create_api(referrals_by_network_of_the_latest_day("latest"))
        .await;
    let job = server.publish_ok("latest").await;
    assert_eq!(job["report"]["latest_partitions"], json!(["2026-11-02"]));
    // Only 2026-11-02: fb 4 + 9.
    let (body, v1) = server
        .stack
        .lookup_until(0, "latest", "fb", None, 200)
        .await;
    assert_eq!(v1, Some(1));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["referrals"],
        13
    );

    // Quiet table: rounds pass, nothing new (a first look at a serving API may fire, and
    // ends `unchanged`).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(committed(&versions(&server, "latest").await), 1);

    let landed = Instant::now();
    write_sales_partition(&dir.path().join("warehouse"), "shop", "2026-11-03", DAY_3);
    let (body, v2) = poll::until(
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || match server.stack.lookup(0, "latest", "fb", None).await {
            (200, body, Some(v)) if v > 1 => Ok((body, v)),
            other => Err(format!("still {other:?}")),
        },
    )
    .await;
    let latency = landed.elapsed();
    println!(
        "partition landed → new version serving: {} ms (watch 100 ms, settle 1 s)",
        latency.as_millis()
    );
    assert!(
        latency >= Duration::from_secs(1),
        "published before settling"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["referrals"],
        10
    );
    let (status, _, _) = server.stack.lookup(0, "latest", "日本", None).await;
    assert_eq!(status, 404, "the older day is not read any more");

    // Several more rounds: still exactly one new version.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let all = versions(&server, "latest").await;
    assert_eq!(committed(&all), 2, "{all:?}");
    assert_eq!(server.stack.serving(0, "latest").await, Some(v2));
    let (_, api) = server.get("/api/apis/latest").await;
    assert_eq!(api["triggers"]["last_trigger"], "table_change", "{api}");
    assert_eq!(
        api["freshness"]["data_time"], "2026-11-03T00:00:00Z",
        "{api}"
    );
    let (_, jobs) = server.get("/api/jobs?api=latest").await;
    let triggered: Vec<&Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["author"] == "trigger:table_change")
        .collect();
    assert!(!triggered.is_empty(), "{jobs}");
    for j in &triggered {
        assert_eq!(j["state"], "succeeded", "{j}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_thin_partition_fails_the_key_count_gate_until_its_owner_publishes_anyway() {
    let dir = workspace();
    let server = TestServer::boot(dir.path()).await;
    let mut spec = referrals_by_network_of_the_latest_day("gated");
    spec["key"] = json!(["product_id"]);
    spec["refresh"] = json!({});
    server.create_api(spec).await;
    let first = server.publish_ok("gated").await;
    assert_eq!(first["report"]["keys_out"], 4);

    // The next day lands with one product of the usual four.
    write_sales_partition(
        &dir.path().join("warehouse"),
        "shop",
        "2026-11-03",
        &[(1, Some("fb"), 1, 1, 9_000_000)],
    );
    let job = server.wait_job(&server.publish("gated").await).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["step"], "gates", "{job}");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains("key_change"), "{message}");
    assert!(message.contains("4 → 1"), "{message}");
    let gate = job["report"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "key_change")
        .unwrap()
        .clone();
    assert_eq!(
        (gate["measured"].as_f64(), gate["passed"].as_bool()),
        (Some(75.0), Some(false))
    );
    assert_eq!(server.stack.serving_all("gated").await, [Some(1), Some(1)]);
    let (_, api) = server.get("/api/apis/gated").await;
    assert_eq!(
        api["last_job"]["error"]["step"], "gates",
        "the API page says why"
    );

    // Publish anyway: the owner's call, recorded.
    let (status, queued) = server
        .post("/api/apis/gated/publish", json!({"force": true}))
        .await;
    assert_eq!(status, 202, "{queued}");
    let forced = server.wait_job(queued["id"].as_str().unwrap()).await;
    assert_eq!(forced["state"], "succeeded", "{forced}");
    assert_eq!(forced["report"]["forced"], true);
    let serving = forced["report"]["version"].as_u64();
    assert_eq!(server.stack.serving_all("gated").await, [serving, serving]);
    let all = versions(&server, "gated").await;
    let v = all
        .iter()
        .find(|v| v["version"].as_u64() == serving)
        .unwrap();
    assert_eq!(v["forced"], true, "{v}");
    assert!(
        all.iter().any(|v| v["state"] == "discarded"),
        "the gated version was discarded: {all:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_triggered_publish_of_an_unchanged_source_makes_no_version() {
    let (_dir, server) = TestServer::fresh_with_api(top_products_spec("same")).await;
    server.publish_ok("same").await;
    let (status, queued) = server
        .post("/api/apis/same/publish", json!({"if_changed": true}))
        .await;
    assert_eq!(status, 202, "{queued}");
    let job = server.wait_job(queued["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["report"]["unchanged"], true, "{job}");
    assert_eq!(job["report"]["previous_version"], 1);
    assert_eq!(committed(&versions(&server, "same").await), 1);
    // A person's publish computes regardless.
    let again = server.publish_ok("same").await;
    assert_eq!(again["report"]["version"], 2);
    server.stop().await;
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn a_schedule_fires_at_its_instants_and_nowhere_between() {
    let dir = workspace();
    let stack = TestStack::new().await;
    let mut config = common::config(dir.path(), &stack);
    config.triggers.schedule_tick_ms = 0;
    config.triggers.watch_ms = 0;
    let stack: std::sync::Arc<dyn dashboard_api::Stack> = stack;
    let state = dashboard_api::AppState::new(config, stack).await.unwrap();
    let mut spec: publisher::spec::ApiSpec =
        serde_json::from_value(top_products_spec("nightly")).unwrap();
    spec.refresh.schedule = Some("30 4 * * *".into());
    spec.refresh.timezone = Some("Europe/Prague".into());
    state
        .store
        .create_api(&ApiRow::new(spec, "local", "admin", "default"))
        .await
        .unwrap();
    let fire = async |now: &str| {
        dashboard_api::triggers::fire_schedules(&state, at(now))
            .await
            .unwrap()
            .len()
    };
    // 04:30 in Prague is 03:30 UTC in December.
    let mut fired = Vec::new();
    for now in [
        "2026-12-04T01:00:00Z",
        "2026-12-04T03:29:59Z",
        "2026-12-04T03:30:00Z",
        "2026-12-04T03:30:01Z",
        "2026-12-04T20:00:00Z",
        "2026-12-05T03:29:00Z",
        "2026-12-05T03:30:02Z",
    ] {
        fired.push(fire(now).await);
    }
    assert_eq!(fired, [0, 0, 1, 0, 0, 0, 1]);
    let t = state.store.trigger_state("nightly").await.unwrap().unwrap();
    assert_eq!(
        t.next_at,
        Some(at("2026-12-06T03:30:00Z").timestamp_millis())
    );
    assert_eq!(t.last_trigger.as_deref(), Some("schedule"));
    let jobs = state.store.jobs(Some("nightly"), None, 10).await.unwrap();
    assert_eq!(
        jobs.len(),
        1,
        "the second firing found the first job still queued"
    );
    assert_eq!(jobs[0].author, "trigger:schedule");
    assert!(jobs[0].params.if_changed);
}

#[tokio::test]
async fn an_api_older_than_its_objective_is_stale_in_metrics_and_views() {
    let (_dir, server) = TestServer::fresh().await;
    let mut spec = top_products_spec("old");
    spec["refresh"] = json!({"freshness_objective_h": 26});
    server.create_api(spec).await;
    server.create_api(top_products_spec("no_objective")).await;
    server.publish_ok("old").await;
    server.publish_ok("no_objective").await;

    // The fixture's newest day is 2026-11-02: weeks old, past 26 h.
    let (_, api) = server.get("/api/apis/old").await;
    assert_eq!(api["freshness"]["stale"], true, "{api}");
    assert_eq!(api["freshness"]["data_time"], "2026-11-02T00:00:00Z");
    assert!(api["freshness"]["age_s"].as_f64().unwrap() > 26.0 * 3600.0);
    let (_, list) = server.get("/api/apis").await;
    let fresh_flags: Vec<(String, Value)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["freshness"]["stale"].clone(),
            )
        })
        .collect();
    assert_eq!(
        fresh_flags,
        [
            ("no_objective".to_string(), json!(false)),
            ("old".to_string(), json!(true))
        ]
    );
    let metrics = server.get_raw("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tablecast_api_stale{api=\"old\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("tablecast_api_stale{api=\"no_objective\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tablecast_api_data_age_seconds{api=\"no_objective\"}"),
        "{metrics}"
    );
    server.stop().await;
}

/// A protected API with a canary: day 3 lands, then a publish.
async fn canary_publish(server: &TestServer, dir: &Path) -> Value {
    let mut spec = referrals_by_network_of_the_latest_day("canaried");
    spec["refresh"] = json!({});
    spec["protected"] = json!(true);
    spec["canary"] = json!({"soak_s": 1, "sample_keys": 5});
    server.create_api(spec).await;
    let first = server.publish_ok("canaried").await;
    assert!(
        first["report"]["canary"]["note"]
            .as_str()
            .unwrap()
            .contains("no canary"),
        "a first publish has nothing to protect: {first}"
    );
    write_sales_partition(&dir.join("warehouse"), "shop", "2026-11-03", DAY_3);
    server.wait_job(&server.publish("canaried").await).await
}

#[tokio::test]
async fn a_healthy_canary_promotes_after_its_soak() {
    let dir = workspace();
    let server = TestServer::boot(dir.path()).await;
    let job = canary_publish(&server, dir.path()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let canary = &job["report"]["canary"];
    assert_eq!(canary["edge"], server.stack.urls[0].as_str(), "{canary}");
    assert_eq!(
        canary["lookup"],
        server.stack.lookups[0].as_str(),
        "{canary}"
    );
    // fb, tw and the null network, probed at least twice over a 1 s soak.
    assert!(canary["probes"].as_u64().unwrap() >= 6, "{canary}");
    assert_eq!(canary["mismatches"], 0, "{canary}");
    assert!(canary["soak_ms"].as_u64().unwrap() >= 1000, "{canary}");
    assert_eq!(
        server.stack.serving_all("canaried").await,
        [Some(2), Some(2)]
    );
    // The probe token was revoked; the API's own tokens are untouched (it has none).
    let (_, tokens) = server.get("/api/apis/canaried/tokens").await;
    let tokens = tokens.as_array().unwrap();
    assert!(
        tokens.iter().all(|t| !t["revoked_at"].is_null()),
        "{tokens:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_canary_probed_through_the_wrong_lookup_service_goes_back_and_nothing_is_promoted() {
    let dir = workspace();
    let stack = TestStack::new().await;
    stack
        .mispoint_lookups
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let server = TestServer::start(common::config(dir.path(), &stack), stack).await;
    let job = canary_publish(&server, dir.path()).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["step"], "canary", "{job}");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&server.stack.urls[0]),
        "names the canary edge: {message}"
    );
    assert!(
        message.contains("still answers from version 1"),
        "{message}"
    );
    // Edge 1 never moved; the canary edge went back.
    assert_eq!(
        server.stack.serving_all("canaried").await,
        [Some(1), Some(1)]
    );
    let all = versions(&server, "canaried").await;
    assert_eq!(committed(&all), 1, "{all:?}");
    assert!(
        all.iter()
            .any(|v| v["version"] == 2 && v["state"] == "discarded"),
        "{all:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_change_publishes_only_once_its_success_marker_lands() {
    let dir = workspace();
    let server = boot_watching(dir.path()).await;
    let mut spec = referrals_by_network_of_the_latest_day("marked");
    spec["refresh"]["require_success_marker"] = json!(true);
    server.create_api(spec).await;
    server.publish_ok("marked").await;
    let (status, plan) = server.post("/api/apis/marked/plan", json!({})).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["latest_partitions"], json!(["2026-11-02"]), "{plan}");
    assert_eq!(
        plan["unchanged"], true,
        "the serving version read the same: {plan}"
    );

    let warehouse = dir.path().join("warehouse");
    write_sales_partition(&warehouse, "shop", "2026-11-03", DAY_3);
    // Settled (1 s) and watched (every 100 ms) well past: no marker, no publish.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(committed(&versions(&server, "marked").await), 1);
    let (_, plan) = server.post("/api/apis/marked/plan", json!({})).await;
    assert_eq!(plan["latest_partitions"], json!(["2026-11-03"]), "{plan}");
    assert_eq!(plan["unchanged"], false, "{plan}");

    std::fs::write(warehouse.join("shop/sales/dt=2026-11-03/_SUCCESS"), b"").unwrap();
    poll::until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || match server.stack.serving(0, "marked").await {
            Some(2) => Ok(()),
            other => Err(format!("serving {other:?}")),
        },
    )
    .await;
    server.stop().await;
}
