//! API lifecycle over the real Hive metastore:
//!
//! - The table watcher's cost: 1 000 APIs on 10 tables are 10 table descriptions per round,
//!   counted in Thrift calls on the metastore client (in-process watcher, real metastore).
//! - A real `tablecast serve` (real Redis, real lookup service): a `dt` partition added through
//!   the metastore publishes exactly one new version of a latest-partition API, which then
//!   serves only the new day; rounds without a change publish nothing; a seconds-granular
//!   schedule fires over the real process and its publish ends `unchanged`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashboard_api::store::ApiRow;
use dashboard_api::{NamedCatalog, ServerConfig, Stack};
use fixtures::metastore::{describe_folder, register};
use fixtures::poll;
use fixtures::sales::{SalesRow, write_sales_partition, write_sales_table};
use publisher::catalog::{DirectoryCatalog, HiveCatalog};
use publisher::schema::TableName;
use serde_json::{Value, json};
use tablecast_e2e::dashboard::lookup_service;
use tablecast_e2e::{Dashboard, DashboardSettings, Metastore, Redis, unique_db};

const DAY_3: &[SalesRow] = &[
    (1, Some("fb"), 6, 100, 8_000_000),
    (2, Some("fb"), 4, 100, 8_100_000),
    (5, Some("tw"), 2, 100, 8_200_000),
];

/// Publishers over one shared metastore client, so that its calls can be counted. Edges are
/// never reached: no runner runs here.
struct CountingStack {
    catalog: Arc<HiveCatalog>,
}

#[async_trait]
impl Stack for CountingStack {
    async fn publisher(&self, _uri: &str) -> publisher::Result<publisher::publish::Publisher> {
        Ok(publisher::publish::Publisher {
            catalog: self.catalog.clone(),
            fasttrack: Arc::new(fasttrack::FastTrack::default()),
            fallback: None,
            limits: Default::default(),
            config: Default::default(),
            snapshots: None,
        })
    }

    async fn edge(&self, url: &str) -> publisher::Result<Arc<dyn publisher::sink::EdgeSink>> {
        Err(publisher::Error::Config(format!(
            "{url}: this test reaches no edge"
        )))
    }
}

/// `{db}.sales` in `warehouse`, registered in the shared metastore.
async fn registered_sales(metastore: &Metastore, warehouse: &Path, db: &str) {
    write_sales_table(warehouse, db);
    register(&metastore.address(), warehouse)
        .await
        .unwrap_or_else(|e| panic!("registering {db}.sales: {e}\n{}", metastore.log_tail(30)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_apis_on_ten_tables_cost_ten_table_descriptions_per_round() {
    let metastore = Metastore::shared();
    let warehouse = tempfile::tempdir().unwrap();
    let dbs: Vec<String> = (0..10).map(|_| unique_db("watched")).collect();
    for db in &dbs {
        write_sales_table(warehouse.path(), db);
    }
    register(&metastore.address(), warehouse.path())
        .await
        .unwrap_or_else(|e| panic!("registering: {e}\n{}", metastore.log_tail(30)));

    let state_dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(metastore.catalog().await);
    let config = ServerConfig {
        state_dir: state_dir.path().to_path_buf(),
        admin_token: Some("lifecycle-admin-token-0123456789".into()),
        catalogs: vec![NamedCatalog {
            name: "hive".into(),
            uri: metastore.uri(),
        }],
        edge_groups: [(
            "default".to_string(),
            vec!["redis://127.0.0.1:1".to_string()],
        )]
        .into(),
        ..Default::default()
    };
    let stack: Arc<dyn Stack> = Arc::new(CountingStack {
        catalog: Arc::clone(&catalog),
    });
    let state = dashboard_api::AppState::new(config, stack).await.unwrap();
    let mut spec: publisher::spec::ApiSpec = serde_json::from_value(json!({
        "name": "x", "table": "x.sales", "key": ["network"],
        "values": [{"agg": "sum", "column": "referrals", "as": "referrals"}],
        "refresh": {"on_table_change": true}
    }))
    .unwrap();
    for i in 0..1000 {
        spec.name = format!("api_{i:04}");
        spec.table = format!("{}.sales", dbs[i % dbs.len()]);
        state
            .store
            .create_api(&ApiRow::new(spec.clone(), "hive", "admin", "default"))
            .await
            .unwrap();
    }

    for round in 1..=3 {
        let before = catalog.calls_made();
        let started = Instant::now();
        let done = dashboard_api::triggers::watch_tables(&state, chrono::Utc::now())
            .await
            .unwrap();
        let calls = catalog.calls_made() - before;
        println!(
            "round {round}: {} tables described with {calls} metastore calls for 1000 APIs in {} ms",
            done.tables,
            started.elapsed().as_millis()
        );
        assert_eq!(done.tables, 10);
        // get_table and get_partitions per table.
        assert_eq!(calls, 20, "round {round}");
        assert!(done.fired.is_empty(), "nothing changed, nothing serves");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_added_through_the_metastore_publishes_one_version_on_a_real_server() {
    let metastore = Metastore::shared();
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse");
    let db = unique_db("lifecycle");
    registered_sales(metastore, &warehouse, &db).await;

    let redis = Redis::start();
    let settings =
        DashboardSettings::new(&dir.path().join("state"), &metastore.uri(), &[redis.url()])
            .with("TABLECAST_DASHBOARD__TRIGGERS__WATCH_MS", 200)
            .with("TABLECAST_DASHBOARD__TRIGGERS__SETTLE_MS", 1000);
    let dashboard = Dashboard::start(&settings, &dir.path().join("serve.log"));
    let (_lookup, lookup) = lookup_service(
        &redis.url(),
        &dir.path().join("lookup-state"),
        &dir.path().join("lookup.log"),
    );

    let spec = json!({
        "name": "latest_day",
        "table": format!("{db}.sales"),
        "key": ["network"],
        "values": [{"agg": "sum", "column": "referrals", "as": "referrals"}],
        "shape": "object",
        "latest_partitions": 1,
        "refresh": {"on_table_change": true, "freshness_objective_h": 26},
    });
    let (status, body) = dashboard
        .post("/api/apis", Some(&json!({"spec": spec})))
        .await;
    assert_eq!(status, 201, "{body}");
    let mut nightly = spec.clone();
    nightly["name"] = json!("every_three_seconds");
    nightly["refresh"] = json!({"schedule": "*/3 * * * * *"});
    let (status, body) = dashboard
        .post("/api/apis", Some(&json!({"spec": nightly})))
        .await;
    assert_eq!(status, 201, "{body}");

    let job = dashboard
        .wait_job(
            &dashboard.publish("latest_day").await,
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let answer = |key: &'static str| {
        let url = format!("{lookup}/v1/latest_day/{key}");
        async move {
            let resp = reqwest::get(&url).await.unwrap();
            let version = resp
                .headers()
                .get("x-tablecast-version")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            (resp.status().as_u16(), version, resp.text().await.unwrap())
        }
    };
    let (status, v1, body) = answer("fb").await;
    assert_eq!((status, v1), (200, Some(1)), "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["referrals"],
        13
    );

    // The next day lands: its files, then its partition through the metastore.
    write_sales_partition(&warehouse, &db, "2026-11-03", DAY_3);
    let name = TableName::new(&db, "sales");
    let directory = DirectoryCatalog::open(warehouse.clone()).unwrap();
    let registration = describe_folder(&directory, &name).await.unwrap();
    let day_3: Vec<_> = registration
        .partitions
        .iter()
        .filter(|p| p.values == ["2026-11-03"])
        .cloned()
        .collect();
    let landed = Instant::now();
    metastore
        .catalog()
        .await
        .add_partitions(&registration, &day_3)
        .await
        .unwrap();
    let (v2, body) = poll::until(
        Duration::from_secs(60),
        Duration::from_millis(50),
        async || match answer("fb").await {
            (200, Some(v), body) if v > 1 => Ok((v, body)),
            other => Err(format!("still {other:?}\n{}", dashboard.log_tail(20))),
        },
    )
    .await;
    println!(
        "partition added through the metastore → new version serving: {} ms (watch 200 ms, settle 1 s)",
        landed.elapsed().as_millis()
    );
    assert_eq!(v2, 2);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["referrals"],
        10
    );
    assert_eq!(answer("日本").await.0, 404, "only the newest day is served");

    // More rounds, no change: still exactly the two versions.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let versions = dashboard.get("/api/apis/latest_day/versions").await;
    let committed: Vec<u64> = versions["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["state"] == "committed")
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert_eq!(committed, [2, 1], "{versions}");
    let api = dashboard.get("/api/apis/latest_day").await;
    assert_eq!(api["triggers"]["last_trigger"], "table_change", "{api}");
    assert_eq!(
        api["freshness"]["data_time"], "2026-11-03T00:00:00Z",
        "{api}"
    );
    assert_eq!(
        api["freshness"]["stale"], true,
        "2026-11-03 is weeks old: {api}"
    );

    // The schedule fired over the real process: its first publish computes, later ones find
    // the source unchanged.
    let jobs: Vec<Value> = poll::until(
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || {
            let jobs = dashboard.get("/api/jobs?api=every_three_seconds").await;
            let done: Vec<Value> = jobs
                .as_array()
                .unwrap()
                .iter()
                .filter(|j| j["author"] == "trigger:schedule" && j["state"] == "succeeded")
                .cloned()
                .collect();
            if done.len() >= 2 {
                Ok(done)
            } else {
                Err(format!("scheduled jobs so far: {jobs}"))
            }
        },
    )
    .await;
    assert!(
        jobs.iter().any(|j| j["report"]["unchanged"] == true),
        "{jobs:?}"
    );
    let metrics = reqwest::get(dashboard.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tablecast_api_stale{api=\"latest_day\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "tablecast_trigger_firings_total{api=\"every_three_seconds\",trigger=\"schedule\"}"
        ),
        "{metrics}"
    );
}
