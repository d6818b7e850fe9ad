//! The dashboard over real processes: `tablecast serve` configured through `TABLECAST_*`
//! variables, the shared Hive metastore with the scale-1 fixtures, one redis-server per edge and
//! `tablecast edge serve` for lookups.
//!
//! - Through the REST API alone: browse, create the four sample APIs, plan, publish, follow the
//!   event stream to the end, look every golden key up on an edge, roll back, publish again.
//! - `tablecast serve` killed (SIGKILL) while a publish is pushing, before the commit, and
//!   started again on the same state: the job ends (completes, or fails cleanly), the edge serves
//!   exactly one complete version equal to the golden answers, and nothing staged remains.
//! - The edge's Redis down when a publish starts and back within the retry window: the job
//!   succeeds after retries.
//! - Two publishes of one API requested at once run one after the other; versions increase.
//! - A dashboard job and `tablecast publish` of the same API at once: the edge lease serializes
//!   them (freely started, and held at the door until both wait for it); versions increase in
//!   commit order and the edge serves the highest, with the golden answers.
//! - `tablecast serve` killed the moment the edge's pointer switches (after the commit, before
//!   the job is recorded as finished) and started again: one complete version, nothing staged.
//! - The job overhead: a publish through the dashboard (POST → final event) against
//!   `tablecast publish` of the same spec to the same edge (printed; run alone for clean numbers).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use tablecast_e2e::dashboard::{event_names, fixtures_metastore, lookup_service, sample_spec_json};
use tablecast_e2e::lookup::{assert_complete, bucket_versions, pause_writes, version_fields};
use tablecast_e2e::process::log_tail;
use tablecast_e2e::{
    ChildProcess, Dashboard, DashboardSettings, Redis, assert_answers_golden, golden, lookup_url,
    spawn_tied,
};

/// The four sample APIs over the two main fixture tables.
const FOUR: [&str; 4] = [
    "top_products_by_network",
    "top_products",
    "recent_activity",
    "product_stats",
];

/// A publish of a scale-1 sample, on a loaded 2-core machine, with room.
const JOB_TIMEOUT: Duration = Duration::from_secs(180);

async fn redis_conn(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

async fn serving(conn: &mut MultiplexedConnection, api: &str) -> Option<u64> {
    redis::cmd("GET")
        .arg(format!("tc:{{{api}}}:current"))
        .query_async(conn)
        .await
        .unwrap()
}

async fn zrange(conn: &mut MultiplexedConnection, key: &str) -> Vec<u64> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await
        .unwrap()
}

/// The version numbers of `/api/apis/{api}/versions`' history, newest first.
fn history(versions: &Value) -> Vec<u64> {
    fixtures::pluck_u64(&versions["history"], "version")
}

/// GC left no staged version, and buckets only of kept versions; returns the kept ones.
async fn assert_only_kept_versions_have_keys(
    conn: &mut MultiplexedConnection,
    api: &str,
) -> BTreeSet<u64> {
    let staged = zrange(conn, &format!("tc:{{{api}}}:staged")).await;
    assert!(staged.is_empty(), "still staged: {staged:?}");
    let kept: BTreeSet<u64> = zrange(conn, &format!("tc:{{{api}}}:versions"))
        .await
        .into_iter()
        .collect();
    let with_buckets = bucket_versions(conn, api).await;
    assert!(
        with_buckets.is_subset(&kept),
        "buckets of versions {with_buckets:?}, kept {kept:?}"
    );
    kept
}

/// The version a lookup service answers one key of an API with.
async fn answered_version(http: &reqwest::Client, base: &str, api: &str, key: &str) -> String {
    let url = lookup_url(base, api, key);
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.headers()["x-tablecast-version"]
        .to_str()
        .unwrap()
        .to_string()
}

/// Polls a lookup until it answers with `version` (the service caches the serving version
/// for up to 2 s).
async fn wait_answered_version(base: &str, api: &str, version: u64) {
    let http = reqwest::Client::new();
    let key = golden(api)[0].0.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = answered_version(&http, base, api, &key).await;
        if got == version.to_string() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{api} still answered with version {got}, not {version}, after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Follows a job to its end and checks that it succeeded; returns its events.
async fn follow_to_success(dash: &Dashboard, job: &str) -> Vec<Value> {
    let events = dash.follow(job, JOB_TIMEOUT).await;
    let last = events.last().unwrap();
    assert_eq!(
        last["state"],
        "succeeded",
        "job {job}: {last}\n{}",
        dash.log_tail(30)
    );
    events
}

/// Creates an API from a sample spec and publishes it, following the job to its success.
async fn create_and_publish(dash: &Dashboard, api: &str) {
    dash.create_sample_api(api).await;
    let job = dash.publish(api).await;
    follow_to_success(dash, &job).await;
}

/// What a test's dashboard runs over: the shared metastore with the scale-1 fixtures, one edge
/// (a redis-server), a state folder and a folder for the processes' logs.
struct Stack {
    metastore: String,
    edge: Redis,
    state: tempfile::TempDir,
    logs: tempfile::TempDir,
}

impl Stack {
    fn start() -> Stack {
        Stack {
            metastore: fixtures_metastore(),
            edge: Redis::start(),
            state: tempfile::tempdir().unwrap(),
            logs: tempfile::tempdir().unwrap(),
        }
    }

    /// The settings of a dashboard over this metastore, edge and state folder.
    fn settings(&self) -> DashboardSettings {
        DashboardSettings::new(self.state.path(), &self.metastore, &[self.edge.url()])
    }

    /// The log file of the process called `name`.
    fn log(&self, name: &str) -> PathBuf {
        self.logs.path().join(format!("{name}.log"))
    }

    /// A connection to the edge's Redis.
    async fn edge_conn(&self) -> MultiplexedConnection {
        redis_conn(&self.edge.url()).await
    }

    /// `tablecast edge serve` in front of the edge: the process and its base URL.
    fn lookup_service(&self) -> (ChildProcess, String) {
        lookup_service(&self.edge.url(), self.logs.path(), &self.log("lookup"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_api_alone_browses_defines_plans_publishes_rolls_back_and_publishes_again() {
    let stack = Stack::start();
    let dash = Dashboard::start(&stack.settings(), &stack.log("serve"));

    // No token, a wrong token: refused.
    for token in [None, Some("not-the-admin-token-at-all")] {
        let (status, body) = dash
            .request(reqwest::Method::GET, "/api/catalogs", token, None)
            .await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }

    // Browse: catalogs → databases → tables → one table with its schema.
    let catalogs = dash.get("/api/catalogs").await;
    assert_eq!(
        catalogs,
        json!([{"name": "default", "uri": stack.metastore}]),
        "{catalogs}"
    );
    let databases = dash.get("/api/catalogs/default/databases").await;
    for db in ["social", "activity"] {
        assert!(
            databases.as_array().unwrap().contains(&json!(db)),
            "{databases}"
        );
    }
    let tables = dash
        .get("/api/catalogs/default/databases/social/tables")
        .await;
    assert!(
        tables
            .as_array()
            .unwrap()
            .contains(&json!({"name": "referrals", "table": "social.referrals"})),
        "{tables}"
    );
    let table = dash
        .get("/api/catalogs/default/tables/social.referrals?preview=5")
        .await;
    let columns = fixtures::described_columns(&table);
    assert_eq!(
        columns,
        [
            ("product_id", "bigint", false),
            ("product_name", "string", false),
            ("network", "string", false),
            ("referrals", "bigint", false),
            ("revenue", "decimal(12,2)", false),
            ("ts", "timestamp", false),
            ("dt", "string", true),
        ],
        "{table}"
    );
    assert_eq!(table["name"], "social.referrals");
    assert_eq!(table["format"], "parquet", "{table}");
    assert_eq!(table["partition_keys"], json!(["dt"]));
    assert_eq!(table["partition_count"], 7, "{table}");
    assert_eq!(table["stats"]["rows"], 100_000, "{table}");
    assert_eq!(
        table["preview"]["rows"].as_array().map(Vec::len),
        Some(5),
        "{table}"
    );

    // Define: a spec naming a column the table lacks is refused by field; the four samples
    // are created from their JSON model.
    let mut bad = sample_spec_json("product_stats");
    bad["values"][1]["column"] = json!("no_such_column");
    let (status, body) = dash
        .post("/api/apis/_validate", Some(&json!({"spec": bad})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false, "{body}");
    assert!(
        body["problems"].to_string().contains("no_such_column"),
        "{body}"
    );
    for spec in FOUR {
        let api = dash.create_sample_api(spec).await;
        assert_eq!(api["name"], spec);
        assert_eq!(api["revision"], 1);
        assert_eq!(api["catalog"], "default");
        assert_eq!(api["edges"], json!([stack.edge.url()]));
        assert_eq!(api["spec"], sample_spec_json(spec), "{api}");
    }
    let listed = dash.get("/api/apis").await;
    assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");

    // Plan: guards and the route, nothing published.
    let (status, plan) = dash
        .post("/api/apis/top_products_by_network/plan", None)
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["table"], "social.referrals");
    assert_eq!(plan["path"], "fasttrack", "{plan}");
    assert_eq!(plan["rows"], 100_000, "{plan}");
    assert_eq!(plan["partitions_total"], 7, "{plan}");
    assert!(!plan["guards"].as_array().unwrap().is_empty(), "{plan}");
    let mut redis = stack.edge_conn().await;
    assert_eq!(serving(&mut redis, "top_products_by_network").await, None);

    // Publish each, following its event stream to the final event.
    for spec in FOUR {
        let job = dash.publish(spec).await;
        let events = follow_to_success(&dash, &job).await;
        let names = event_names(&events);
        assert_eq!(names.first(), Some(&"queued"), "{names:?}");
        for expected in [
            "attempt_started",
            "step_started",
            "guards",
            "rows",
            "edge_sealed",
            "committed",
        ] {
            assert!(
                names.contains(&expected),
                "{spec}: no {expected} in {names:?}"
            );
        }
        let report = &events.last().unwrap()["report"];
        assert_eq!(report["committed"], true, "{report}");
        assert_eq!(report["version"], 1, "{report}");
        assert_eq!(report["path"], "fasttrack", "{report}");
        assert_eq!(report["keys_out"], golden(spec).len(), "{report}");
        let view = dash.get(&format!("/api/jobs/{job}")).await;
        assert_eq!(view["state"], "succeeded", "{view}");
        assert_eq!(view["attempts"], 1, "{view}");
        assert_eq!(view["report"]["committed"], true, "{view}");
        assert_eq!(view["report"]["version"], 1, "{view}");
    }

    // Look the keys up on an edge: every key of the small APIs, every 13th of the big ones.
    let (_lookup, base) = stack.lookup_service();
    for spec in FOUR {
        assert_eq!(
            assert_answers_golden(&base, spec, 13).await,
            ["1"],
            "{spec}"
        );
    }

    // A second version, then roll back to the first: it is served again.
    const API: &str = "top_products_by_network";
    let job = dash.publish(API).await;
    let events = follow_to_success(&dash, &job).await;
    assert_eq!(events.last().unwrap()["report"]["version"], 2);
    wait_answered_version(&base, API, 2).await;
    let job = dash.rollback(API, None).await;
    let events = follow_to_success(&dash, &job).await;
    let report = &events.last().unwrap()["report"];
    assert_eq!(report["from"], 2, "{report}");
    assert_eq!(report["to"], 1, "{report}");
    assert_eq!(report["committed"], true, "{report}");
    let view = dash.get(&format!("/api/jobs/{job}")).await;
    assert_eq!(view["kind"], "rollback", "{view}");
    assert_eq!(view["state"], "succeeded", "{view}");
    assert_eq!(serving(&mut redis, API).await, Some(1));
    wait_answered_version(&base, API, 1).await;
    assert_eq!(assert_answers_golden(&base, API, 1).await, ["1"]);
    let versions = dash.get(&format!("/api/apis/{API}/versions")).await;
    assert_eq!(versions["serving"], 1, "{versions}");

    // Publish again: a version higher than any before.
    let job = dash.publish(API).await;
    let events = follow_to_success(&dash, &job).await;
    let report = &events.last().unwrap()["report"];
    assert_eq!(report["previous_version"], 1, "{report}");
    let v3 = report["version"].as_u64().unwrap();
    assert!(v3 > 2, "{report}");
    wait_answered_version(&base, API, v3).await;
    assert_eq!(assert_answers_golden(&base, API, 1).await, [v3.to_string()]);
    let versions = dash.get(&format!("/api/apis/{API}/versions")).await;
    assert_eq!(versions["serving"], v3, "{versions}");
    let history = history(&versions);
    assert_eq!(history, [v3, 2, 1], "{versions}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_serve_mid_publish_leaves_one_complete_version() {
    const API: &str = "recent_activity";
    let stack = Stack::start();
    let settings = stack.settings().with_fast_takeover();
    let mut dash = Dashboard::start(&settings, &stack.log("serve-1"));
    create_and_publish(&dash, API).await;
    let mut watch = stack.edge_conn().await;
    let mut old = serving(&mut watch, API).await.expect("a first version");

    // Start a publish and catch it while its buckets land on the edge: pause writes there (the
    // push blocks before the commit) and make sure the old version still serves. If the
    // publish committed before the pause, let it finish and try again.
    let mut attempt = 0;
    let (job, staged_version) = loop {
        attempt += 1;
        assert!(attempt <= 5, "never caught a publish mid-push in 5 tries");
        let job = dash.publish(API).await;
        let deadline = Instant::now() + JOB_TIMEOUT;
        let mut seen = None;
        while Instant::now() < deadline {
            let newer = bucket_versions(&mut watch, API)
                .await
                .into_iter()
                .filter(|v| *v > old)
                .max();
            if let Some(v) = newer {
                pause_writes(&mut watch).await;
                seen = Some(v);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let seen = seen.unwrap_or_else(|| {
            panic!(
                "no bucket of a new version appeared within {} s\n{}",
                JOB_TIMEOUT.as_secs(),
                dash.log_tail(30)
            )
        });
        if serving(&mut watch, API).await == Some(old) {
            break (job, seen);
        }
        eprintln!("attempt {attempt}: v{seen} committed before the pause; trying again");
        let _: () = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async(&mut watch)
            .await
            .unwrap();
        follow_to_success(&dash, &job).await;
        old = serving(&mut watch, API).await.unwrap();
    };
    let caught_keys = version_fields(&mut watch, API, staged_version).await;
    eprintln!(
        "caught v{staged_version} mid-push with {caught_keys} keys on the edge (of {}); old v{old} serving",
        golden(API).len()
    );
    let running = dash.get(&format!("/api/jobs/{job}")).await;
    assert_eq!(running["state"], "running", "{running}");

    // Crash the dashboard, let the edge go, and start the dashboard again on the same state.
    dash.kill();
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut watch)
        .await
        .unwrap();
    assert_eq!(serving(&mut watch, API).await, Some(old));
    let dash = Dashboard::start(&settings, &stack.log("serve-2"));
    let events = dash.follow(&job, JOB_TIMEOUT).await;
    let names = event_names(&events);
    let view = dash.get(&format!("/api/jobs/{job}")).await;
    eprintln!("job after the restart: {view}\nevents: {names:?}");
    assert!(
        names.contains(&"lease_expired"),
        "the restarted dashboard took the job over: {names:?}"
    );
    let kept_version = match view["state"].as_str().unwrap() {
        "succeeded" => {
            let v = view["report"]["version"].as_u64().unwrap();
            assert!(v > staged_version, "{view}");
            assert_eq!(view["report"]["committed"], true, "{view}");
            assert!(view["attempts"].as_u64().unwrap() >= 2, "{view}");
            v
        }
        "failed" => {
            // A clean failure names what went wrong, and nothing was switched; a later publish
            // then commits (and collects what the crash left).
            let message = view["error"]["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "{view}");
            assert_eq!(serving(&mut watch, API).await, Some(old));
            let again = dash.publish(API).await;
            let events = follow_to_success(&dash, &again).await;
            events.last().unwrap()["report"]["version"]
                .as_u64()
                .unwrap()
        }
        other => panic!("job ended {other}: {view}"),
    };

    // Exactly one complete version serves: the new one, with every key, sealed.
    assert_eq!(serving(&mut watch, API).await, Some(kept_version));
    assert_complete(&mut watch, API, kept_version).await;
    let (_lookup, base) = stack.lookup_service();
    assert_eq!(
        assert_answers_golden(&base, API, 7).await,
        [kept_version.to_string()]
    );

    // After GC nothing staged remains: no staged version, and buckets only of kept versions.
    let kept = assert_only_kept_versions_have_keys(&mut watch, API).await;
    assert!(kept.contains(&kept_version), "{kept:?}");
    assert!(!kept.contains(&staged_version), "{kept:?}");
    for suffix in ["stage", "manifest"] {
        let exists: bool = redis::cmd("EXISTS")
            .arg(format!("tc:{{{API}}}:v{staged_version}:{suffix}"))
            .query_async(&mut watch)
            .await
            .unwrap();
        assert!(!exists, "v{staged_version}:{suffix} is left");
    }

    // On disk: the kept version's snapshot is complete. The crashed attempt's partial snapshot
    // (`.v{N}.snap.tmp`) is not collected by anything yet (snapshot pruning only looks at
    // `v{N}.json`): reported, not asserted.
    let snapshots = stack.state.path().join("snapshots").join(API);
    let files: BTreeSet<String> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for ext in ["snap", "json"] {
        let name = format!("v{kept_version}.{ext}");
        assert!(files.contains(&name), "no {name} in {files:?}");
    }
    let leftover = format!(".v{staged_version}.snap.tmp");
    if files.contains(&leftover) {
        eprintln!("note: the crashed attempt's partial snapshot {leftover} stays in {snapshots:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_publishes_at_once_are_serialized_with_monotonic_versions() {
    const API: &str = "top_products";
    let stack = Stack::start();
    let settings = stack.settings().with("TABLECAST_DASHBOARD__RUNNERS", 4);
    let dash = Dashboard::start(&settings, &stack.log("serve"));
    dash.create_sample_api(API).await;

    let (a, b) = tokio::join!(dash.publish(API), dash.publish(API));
    let (ja, jb) = tokio::join!(
        dash.wait_job(&a, JOB_TIMEOUT),
        dash.wait_job(&b, JOB_TIMEOUT)
    );
    let mut jobs = [ja, jb];
    for j in &jobs {
        assert_eq!(j["state"], "succeeded", "{j}");
    }
    // In the order the runners claimed them. (Not by creation: two jobs created in the same
    // millisecond are ordered by a random id suffix, and the first may be claimed before the
    // second is even inserted.)
    jobs.sort_by_key(|j| j["started_at"].as_str().unwrap().to_string());
    let [first, second] = &jobs;
    assert!(
        second["started_at"].as_str().unwrap() >= first["finished_at"].as_str().unwrap(),
        "the second started before the first finished: {first}\n{second}"
    );
    let v1 = first["report"]["version"].as_u64().unwrap();
    let v2 = second["report"]["version"].as_u64().unwrap();
    assert_eq!((v1, v2), (1, 2), "{first}\n{second}");
    assert_eq!(second["report"]["previous_version"], v1);
    let mut conn = stack.edge_conn().await;
    assert_eq!(serving(&mut conn, API).await, Some(v2));
}

/// The edge's Redis is down when a publish starts: the attempts fail as transient and are
/// retried with backoff; Redis comes back (empty, on the same port) within the retry window and
/// the job succeeds on a later attempt, through the dashboard's cached edge connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_while_the_edge_is_down_succeeds_after_retries() {
    const API: &str = "top_products_by_network";
    let mut stack = Stack::start();
    let settings = stack
        .settings()
        .with("TABLECAST_DASHBOARD__BACKOFF_BASE_MS", 300)
        .with("TABLECAST_DASHBOARD__BACKOFF_MAX_MS", 1000)
        .with("TABLECAST_DASHBOARD__MAX_ATTEMPTS", 30);
    let dash = Dashboard::start(&settings, &stack.log("serve"));
    // A first version, so that the dashboard holds a connection to the edge already.
    create_and_publish(&dash, API).await;

    stack.edge.kill();
    let job = dash.publish(API).await;
    // Wait for a retry to be scheduled (the first attempt failed as transient).
    let deadline = Instant::now() + JOB_TIMEOUT;
    let failed_attempt = loop {
        let view = dash.get(&format!("/api/jobs/{job}")).await;
        if view["error"].is_object() {
            break view;
        }
        assert_ne!(
            view["state"], "succeeded",
            "published to a dead edge: {view}"
        );
        assert_ne!(view["state"], "failed", "{view}");
        assert!(Instant::now() < deadline, "no failed attempt: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        failed_attempt["error"]["transient"], true,
        "{failed_attempt}"
    );
    assert_ne!(failed_attempt["state"], "failed", "{failed_attempt}");
    stack.edge.restart();

    let events = follow_to_success(&dash, &job).await;
    let names = event_names(&events);
    assert!(names.contains(&"retry_scheduled"), "{names:?}");
    let view = dash.get(&format!("/api/jobs/{job}")).await;
    assert!(view["attempts"].as_u64().unwrap() >= 2, "{view}");
    eprintln!(
        "edge down: first error {}; succeeded on attempt {}",
        failed_attempt["error"], view["attempts"]
    );
    let report = &events.last().unwrap()["report"];
    assert_eq!(report["committed"], true, "{report}");
    // The restarted Redis is empty: the new version is the only one there.
    let version = report["version"].as_u64().unwrap();
    let mut conn = stack.edge_conn().await;
    assert_eq!(serving(&mut conn, API).await, Some(version));
    let (_lookup, base) = stack.lookup_service();
    assert_eq!(
        assert_answers_golden(&base, API, 1).await,
        [version.to_string()]
    );
}

/// `tablecast publish --json` running in the background: its stdout (the JSON report) and
/// stderr (logs, with the publisher's progress at debug level) in files of their own; killed if
/// still running when dropped.
struct CliPublish {
    child: std::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl CliPublish {
    fn spawn(settings: &DashboardSettings, api: &str, logs: &Path, name: &str) -> CliPublish {
        let stdout = logs.join(format!("{name}.json"));
        let stderr = logs.join(format!("{name}.log"));
        let mut c = settings.publish_command(api);
        // `progress p=Guards { … }` on stderr (with colour codes around `=`): the publish has
        // planned and goes for the lease next.
        c.env("TABLECAST_LOG__FILTER", "info,tablecast=debug")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap());
        let child = spawn_tied(c).unwrap_or_else(|e| panic!("starting tablecast publish: {e}"));
        CliPublish {
            child,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        log_tail(&self.stderr, 30)
    }

    /// Waits until its stderr contains `needle`; panics if it exits first, or past `timeout`.
    async fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            if text.contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "tablecast publish exited ({status}) before logging {needle:?}:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tablecast publish logged no {needle:?} within {} s:\n{}",
                timeout.as_secs(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for it to exit; returns whether it exited 0, and its report.
    async fn wait(&mut self, timeout: Duration) -> (bool, Value) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "tablecast publish did not finish within {} s:\n{}",
                    timeout.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let out = std::fs::read(&self.stdout).unwrap();
        let report = serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "the report of tablecast publish ({status}): {e}: {}\n{}",
                String::from_utf8_lossy(&out),
                self.log_tail()
            )
        });
        (status.success(), report)
    }
}

impl Drop for CliPublish {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One holder's tenure of an API's edge lease, as seen by polling it (ms since the watch began).
#[derive(Debug, Clone)]
struct Tenure {
    holder: String,
    from_ms: u64,
    to_ms: u64,
}

impl Tenure {
    /// The process id in a publisher's holder name (`{host}-{pid}-{micros}`).
    fn pid(&self) -> Option<u32> {
        self.holder.rsplit('-').nth(1)?.parse().ok()
    }
}

/// The control plane's store of a state directory, opened beside the processes that use it.
async fn state_db(state_dir: &Path) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", state_dir.join("dashboard.db").display());
    sqlx::SqlitePool::connect(&url).await.unwrap()
}

/// Polls the API's lease holder in the control plane's store every millisecond, recording who
/// held it.
struct LeaseWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Tenure>>,
}

impl LeaseWatch {
    async fn start(db: sqlx::SqlitePool, api: &str) -> LeaseWatch {
        let api = api.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let began = Instant::now();
            let mut tenures: Vec<Tenure> = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let holder = lease_holder(&db, &api).await;
                let now = began.elapsed().as_millis() as u64;
                if let Some(holder) = holder {
                    match tenures.last_mut() {
                        Some(t) if t.holder == holder => t.to_ms = now,
                        _ => tenures.push(Tenure {
                            holder,
                            from_ms: now,
                            to_ms: now,
                        }),
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tenures
        });
        LeaseWatch { stop, task }
    }

    async fn stop(self) -> Vec<Tenure> {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the lease watch did not stop within 10 s")
            .expect("the lease watch failed")
    }
}

/// The unexpired holder of the API's lease in the store, if any.
async fn lease_holder(db: &sqlx::SqlitePool, api: &str) -> Option<String> {
    let now = chrono_ms();
    sqlx::query_scalar::<_, Option<String>>(
        "SELECT lease_holder FROM api_state WHERE api = $1 AND lease_expires_at >= $2",
    )
    .bind(api)
    .bind(now)
    .fetch_optional(db)
    .await
    .unwrap()
    .flatten()
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One side of a race between the CLI and the dashboard.
struct Side {
    who: &'static str,
    pid: u32,
    report: Value,
}

impl Side {
    fn version(&self) -> u64 {
        self.report["version"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no version in {}", self.who, self.report))
    }

    /// From the lease request to the start of the engine: the wait for the lease, plus the
    /// version reading and `begin` (a few ms). The lease is re-tried every 100 ms, so 100 ms or
    /// more means the lease was held by another publish at least once.
    fn lease_and_stage_ms(&self) -> u64 {
        self.report["timings_ms"]["lease"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no lease timing in {}", self.who, self.report))
    }
}

/// The holder the test itself puts on the lease, to hold both publishes at the door.
const GATE: &str = "e2e-gate";

/// Starts a dashboard publish job and `tablecast publish` of the same spec to the same edge at
/// the same moment, and follows both to their end. With `gate`, the test holds the API's edge
/// lease itself until both have planned and wait for it, then lets go: both certainly contend.
/// Checks that both commit one after the other (the lease goes to one, then to the other; the
/// later one's version is the next one, on top of the earlier's); returns them in commit order
/// with the lease tenures seen.
async fn race_cli_and_dashboard(
    dash: &Dashboard,
    settings: &DashboardSettings,
    api: &str,
    logs: &Path,
    round: &str,
    gate: bool,
) -> ([Side; 2], Vec<Tenure>) {
    let edge = &settings.edges[0];
    let mut conn = redis_conn(edge).await;
    let db = state_db(&settings.state_dir).await;
    if gate {
        let taken = sqlx::query(
            "INSERT INTO api_state (api, lease_holder, lease_expires_at, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (api) DO UPDATE SET lease_holder = $2, lease_expires_at = $3 \
             WHERE api_state.lease_holder IS NULL OR api_state.lease_expires_at < $4",
        )
        .bind(api)
        .bind(GATE)
        .bind(chrono_ms() + JOB_TIMEOUT.as_millis() as i64)
        .bind(chrono_ms())
        .execute(&db)
        .await
        .unwrap();
        assert_eq!(
            taken.rows_affected(),
            1,
            "the lease was taken before the race"
        );
    }
    let watch = LeaseWatch::start(db.clone(), api).await;
    let started = Instant::now();
    let mut cli = CliPublish::spawn(settings, api, logs, &format!("cli-{round}"));
    let job = dash.publish(api).await;
    if gate {
        tokio::join!(
            dash.wait_event(&job, "guards", JOB_TIMEOUT),
            cli.wait_log("Guards {", JOB_TIMEOUT)
        );
        assert_eq!(
            lease_holder(&db, api).await.as_deref(),
            Some(GATE),
            "the gate was taken from the test"
        );
        eprintln!(
            "{round}: both planned and wait at the lease {} ms after the start; opening it",
            started.elapsed().as_millis()
        );
        sqlx::query(
            "UPDATE api_state SET lease_holder = NULL, lease_expires_at = NULL WHERE api = $1",
        )
        .bind(api)
        .execute(&db)
        .await
        .unwrap();
    }
    let (view, (cli_ok, cli_report)) =
        tokio::join!(dash.wait_job(&job, JOB_TIMEOUT), cli.wait(JOB_TIMEOUT));
    let wall = started.elapsed().as_millis();
    let tenures = watch.stop().await;
    assert_eq!(
        view["state"],
        "succeeded",
        "{round}: dashboard job {view}\n{}",
        dash.log_tail(30)
    );
    assert!(
        cli_ok && cli_report["committed"] == true,
        "{round}: tablecast publish {cli_report}\n{}",
        cli.log_tail()
    );
    let mut sides = [
        Side {
            who: "dashboard",
            pid: dash.process.pid(),
            report: view["report"].clone(),
        },
        Side {
            who: "cli",
            pid: cli.pid(),
            report: cli_report,
        },
    ];
    for side in &sides {
        assert_eq!(
            side.report["committed"], true,
            "{}: {}",
            side.who, side.report
        );
        assert_eq!(
            side.report["keys_out"],
            golden(api).len(),
            "{}: {}",
            side.who,
            side.report
        );
    }
    sides.sort_by_key(Side::version);
    let [first, second] = &sides;
    assert_ne!(first.version(), second.version(), "one version for both");

    // Serialized: each held the lease once, the earlier committer first, never at once; the
    // later one allocated its version after the earlier one's commit.
    let who = |t: &Tenure| match t.pid() {
        Some(pid) if pid == first.pid => first.who,
        Some(pid) if pid == second.pid => second.who,
        _ if t.holder == GATE => "gate",
        _ => "someone else",
    };
    let holders: Vec<&str> = tenures.iter().map(who).collect();
    let expected: &[&str] = if gate {
        &["gate", first.who, second.who]
    } else {
        &[first.who, second.who]
    };
    assert_eq!(holders, expected, "{round}: lease tenures {tenures:?}");
    assert_eq!(
        second.report["previous_version"],
        first.version(),
        "{round}: the later publish did not see the earlier one's commit: {}",
        second.report
    );
    assert_eq!(second.version(), first.version() + 1, "{}", second.report);
    assert_eq!(serving(&mut conn, api).await, Some(second.version()));

    // Did they truly overlap: was the later one waiting at the lease while the earlier held it?
    let held = &tenures[tenures.len() - 2];
    let held_ms = held.to_ms - held.from_ms;
    let waited = second.lease_and_stage_ms();
    if gate {
        // It asked before the gate opened and got the lease only after the earlier let go.
        assert!(
            waited + 5 >= held_ms,
            "{round}: {} waited {waited} ms at the lease, but {} held it for {held_ms} ms",
            second.who,
            first.who
        );
    }
    let handover_ms = tenures[tenures.len() - 1].from_ms - held.to_ms;
    let overlapped = waited >= 100;
    eprintln!(
        "{round}: {} committed v{} (publish {} ms, lease+stage {} ms), then {} v{} (publish {} ms, lease+stage {waited} ms); \
         {} held the lease {held_ms} ms, {} had it {handover_ms} ms later; {wall} ms in all; overlapped: {}",
        first.who,
        first.version(),
        first.report["total_ms"],
        first.lease_and_stage_ms(),
        second.who,
        second.version(),
        second.report["total_ms"],
        first.who,
        second.who,
        if gate {
            format!(
                "yes, both waited at the closed lease; {} then waited for {}",
                second.who, first.who
            )
        } else if overlapped {
            format!("yes, {} waited {waited} ms for the lease", second.who)
        } else {
            format!(
                "no, {} found the lease free ({waited} ms); serialized all the same",
                second.who
            )
        }
    );
    (sides, tenures)
}

/// The CLI and the dashboard publish one API to one edge at the same moment: the edge lease
/// (shared by both) serializes them. Both commit, with consecutive versions in commit order,
/// the later on top of the earlier; the edge serves the highest, with the golden answers. A
/// first race starts both freely (whether they met at the lease is printed); a second holds
/// the lease at the door until both wait for it, so that they certainly contend.
#[tokio::test(flavor = "multi_thread")]
async fn cli_and_dashboard_publishes_of_one_api_are_serialized() {
    // 4724 keys: a publish holds the lease long enough for the other side to arrive.
    const API: &str = "product_stats";
    let stack = Stack::start();
    let settings = stack.settings();
    let dash = Dashboard::start(&settings, &stack.log("serve"));
    dash.create_sample_api(API).await;

    let mut highest = 0;
    for (round, gate) in [("free race", false), ("gated race", true)] {
        let ([first, second], _) =
            race_cli_and_dashboard(&dash, &settings, API, stack.logs.path(), round, gate).await;
        assert_eq!(first.version(), highest + 1, "{round}: {}", first.report);
        highest = second.version();
    }

    let mut conn = stack.edge_conn().await;
    assert_eq!(serving(&mut conn, API).await, Some(highest));
    let staged = zrange(&mut conn, &format!("tc:{{{API}}}:staged")).await;
    assert!(staged.is_empty(), "still staged: {staged:?}");
    assert_eq!(
        lease_holder(&state_db(stack.state.path()).await, API).await,
        None,
        "the lease was not released"
    );
    assert_eq!(
        version_fields(&mut conn, API, highest).await,
        golden(API).len() as u64
    );
    let (_lookup, base) = stack.lookup_service();
    assert_eq!(
        assert_answers_golden(&base, API, 1).await,
        [highest.to_string()]
    );
}

/// `tablecast serve` SIGKILLed the moment the edge's `current` pointer moves to the new version:
/// after the commit, before the job is recorded as finished (if the job was faster than the
/// kill, that is printed and the try repeated, up to 3 times). Started again on the same state,
/// the job ends: re-run on top (a further version) or already finished. Either way the edge
/// serves exactly one complete version with the golden answers, nothing is staged, and versions
/// only went up.
#[tokio::test(flavor = "multi_thread")]
async fn killing_serve_after_the_commit_leaves_one_complete_version() {
    const API: &str = "product_stats";
    const TRIES: usize = 3;
    let stack = Stack::start();
    let settings = stack.settings().with_fast_takeover();
    let mut starts = 1;
    let mut dash = Dashboard::start(&settings, &stack.log("serve-1"));
    create_and_publish(&dash, API).await;
    let mut watch = stack.edge_conn().await;
    let mut old = serving(&mut watch, API).await.expect("a first version");
    let (_lookup, base) = stack.lookup_service();

    let mut landed_before_finish = false;
    for attempt in 1..=TRIES {
        let job = dash.publish(API).await;
        // Poll the pointer every millisecond; SIGKILL the moment it moves.
        let deadline = Instant::now() + JOB_TIMEOUT;
        let committed = loop {
            match serving(&mut watch, API).await {
                Some(v) if v != old => {
                    dash.kill();
                    break v;
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "v{old} still serves {} s after the publish was queued\n{}",
                JOB_TIMEOUT.as_secs(),
                dash.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert!(committed > old, "v{committed} after v{old}");
        let staged_at_kill = zrange(&mut watch, &format!("tc:{{{API}}}:staged")).await;

        starts += 1;
        dash = Dashboard::start(&settings, &stack.log(&format!("serve-{starts}")));
        let events = dash.follow(&job, JOB_TIMEOUT).await;
        let names = event_names(&events);
        let view = dash.get(&format!("/api/jobs/{job}")).await;
        assert_eq!(
            view["state"],
            "succeeded",
            "try {attempt}: {view}\nevents: {names:?}\n{}",
            dash.log_tail(30)
        );
        let reported = view["report"]["version"].as_u64().unwrap();
        let attempts = view["attempts"].as_u64().unwrap();
        let rerun = names.contains(&"lease_expired");
        if rerun {
            // The kill landed between the commit and the job's end: the restarted dashboard
            // took the job over and ran it again, on top of the version the dead one committed.
            assert!(reported > committed, "try {attempt}: {view}");
            assert!(attempts >= 2, "try {attempt}: {view}");
            eprintln!(
                "try {attempt}: killed serve after v{committed} was committed, before the job ended \
                 (staged at the kill: {staged_at_kill:?}); re-run committed v{reported} in {attempts} attempts; events: {names:?}"
            );
        } else {
            assert_eq!(
                reported, committed,
                "try {attempt}: {view}\nevents: {names:?}"
            );
            assert_eq!(attempts, 1, "try {attempt}: {view}");
            eprintln!(
                "try {attempt}: the job had already finished when the kill landed (v{committed}); \
                 staged at the kill: {staged_at_kill:?}"
            );
        }

        // Exactly one complete version serves: the job's, sealed, with every key, and nothing
        // was begun after it.
        assert_eq!(serving(&mut watch, API).await, Some(reported));
        let highest: Option<u64> = redis::cmd("GET")
            .arg(format!("tc:{{{API}}}:highest"))
            .query_async(&mut watch)
            .await
            .unwrap();
        assert_eq!(
            highest,
            Some(reported),
            "a version was begun after v{reported}"
        );
        eprintln!("try {attempt}: checking what the edge keeps");
        let kept = assert_only_kept_versions_have_keys(&mut watch, API).await;
        for v in [committed, reported] {
            if !kept.contains(&v) {
                assert_ne!(v, reported, "the serving v{v} is not kept: {kept:?}");
                continue;
            }
            assert_complete(&mut watch, API, v).await;
        }
        wait_answered_version(&base, API, reported).await;
        assert_eq!(
            assert_answers_golden(&base, API, 7).await,
            [reported.to_string()]
        );

        // The dashboard's view: the same serving version; its history (versions its jobs
        // recorded) newest first.
        let versions = dash.get(&format!("/api/apis/{API}/versions")).await;
        assert_eq!(versions["serving"], reported, "{versions}");
        let history = history(&versions);
        assert!(
            history.windows(2).all(|w| w[0] > w[1]),
            "history not newest first: {history:?}"
        );
        assert_eq!(history.first(), Some(&reported), "{versions}");
        eprintln!("try {attempt}: kept on the edge {kept:?}; dashboard history {history:?}");

        old = reported;
        if rerun {
            landed_before_finish = true;
            break;
        }
    }
    if !landed_before_finish {
        eprintln!(
            "note: in {TRIES} tries every job finished before the kill landed; the invariants held each time"
        );
    }
}

fn median(xs: &[u64]) -> u64 {
    let mut xs = xs.to_vec();
    xs.sort_unstable();
    xs[xs.len() / 2]
}

/// Wall and `total_ms` of repeated publishes by one path.
#[derive(Default)]
struct Timings {
    wall: Vec<u64>,
    total: Vec<u64>,
}

impl Timings {
    fn push(&mut self, (wall, total): (u64, u64)) {
        self.wall.push(wall);
        self.total.push(total);
    }

    /// Per run, what is not the publish itself: wall minus the publish's own `total_ms`.
    fn overhead(&self) -> Vec<u64> {
        self.wall
            .iter()
            .zip(&self.total)
            .map(|(w, t)| w.saturating_sub(*t))
            .collect()
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name}: wall {:?} ms (median {}), publish total_ms {:?} (median {}), wall - total {:?} (median {})",
            self.wall,
            median(&self.wall),
            self.total,
            median(&self.total),
            self.overhead(),
            median(&self.overhead())
        )
    }
}

/// The job overhead: wall time from `POST …/publish` to the final SSE event against the wall
/// time of `tablecast publish` (a process start, a metastore connection, the same publish) of the
/// same spec to the same edge, each with the publish's own `total_ms`, for a one-key API (fixed
/// costs) and a 4724-key one. `TABLECAST_TEST_OVERHEAD_RUNS` sets the runs per side (3); the
/// numbers are printed, and only mean something when this test runs alone.
#[tokio::test(flavor = "multi_thread")]
async fn job_overhead_against_tablecast_publish() {
    let runs: usize = std::env::var("TABLECAST_TEST_OVERHEAD_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let stack = Stack::start();
    let settings = stack.settings();
    let dash = Dashboard::start(&settings, &stack.log("serve"));
    let mut conn = stack.edge_conn().await;

    for api in ["top_products", "product_stats"] {
        dash.create_sample_api(api).await;
        let spec = fixtures::specs_dir().join(format!("{api}.toml"));
        let through_dashboard = || async {
            let started = Instant::now();
            let job = dash.publish(api).await;
            let events = follow_to_success(&dash, &job).await;
            let wall = started.elapsed().as_millis() as u64;
            let report = &events.last().unwrap()["report"];
            (wall, report["total_ms"].as_u64().unwrap())
        };
        let through_cli = || {
            let started = Instant::now();
            let mut c = settings.command();
            c.args(["publish", "--json", "--spec", spec.to_str().unwrap()])
                .args(["--metastore", &stack.metastore, "--edge", &stack.edge.url()]);
            let out = c.output().unwrap();
            let wall = started.elapsed().as_millis() as u64;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["committed"], true, "{report}");
            (wall, report["total_ms"].as_u64().unwrap())
        };

        // One warm-up each (page cache, first connections), then interleaved runs.
        through_dashboard().await;
        through_cli();
        let (mut by_dashboard, mut by_cli) = (Timings::default(), Timings::default());
        for _ in 0..runs {
            by_dashboard.push(through_dashboard().await);
            by_cli.push(through_cli());
        }
        eprintln!(
            "job overhead, {api} (keys: {}), {runs} runs each:\n  {}\n  {}\n  median wall, dashboard - CLI: {} ms",
            golden(api).len(),
            by_dashboard.line("dashboard job (POST → final SSE event)"),
            by_cli.line("tablecast publish (process)"),
            median(&by_dashboard.wall) as i64 - median(&by_cli.wall) as i64,
        );
        assert_eq!(serving(&mut conn, api).await, Some(2 * (runs as u64 + 1)));
    }
}
