//! The control plane over real processes: one store decides what every edge serves and who may
//! read it, whichever side (CLI or `tablecast serve`) acts; edges converge to it after an empty
//! restart, a failed switch or a killed server; a publisher that lost its lease cannot commit.
//! The catalog is the fixtures' directory (no JVM); edges are real redis-servers, one of them
//! behind a [`FreezeProxy`] where a test needs a switch to fail at an exact moment.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tablecast_e2e::dashboard::{ADMIN_TOKEN, sample_spec_json};
use tablecast_e2e::freeze::COMMIT_MARKER;
use tablecast_e2e::lookup::{answer, answer_until, flushall, serving};
use tablecast_e2e::{
    ChildProcess, Dashboard, DashboardSettings, Deployment, FreezeProxy, assert_answers_golden,
};

const API: &str = "top_products_by_network";
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

fn log(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(format!("{name}.log"))
}

/// Two edges, the second reached through a [`FreezeProxy`] (to make its writes or switch hang
/// at will): the deployment, edge 1's URL, edge 2's own URL, the proxy.
fn two_edges_second_behind_a_proxy() -> (Deployment, String, String, FreezeProxy) {
    let deployment = Deployment::start(2);
    let first = deployment.edges[0].url();
    let second_direct = deployment.edges[1].url();
    let proxy = FreezeProxy::start(tablecast_e2e::loopback(deployment.edges[1].port()));
    (deployment, first, second_direct, proxy)
}

/// Runs a command to its end; returns whether it exited 0, its stdout and its stderr.
fn run(mut c: Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_ok(c: Command) -> String {
    let (ok, stdout, stderr) = run(c);
    assert!(ok, "{stdout}\n{stderr}");
    stdout
}

fn cli(deployment: &Deployment, args: &[&str]) -> Command {
    let mut c = deployment.command();
    c.args(args);
    c
}

/// `tablecast publish --json` of a sample spec to the given edges; (exit 0, report).
fn publish_to(
    deployment: &Deployment,
    spec: &str,
    edges: &[String],
    env: &[(&str, &str)],
) -> (bool, Value) {
    let path = fixtures::specs_dir().join(format!("{spec}.toml"));
    let mut c = deployment.command();
    c.args(["publish", "--json", "--spec"])
        .arg(path)
        .args(["--metastore", &deployment.catalog()]);
    for e in edges {
        c.args(["--edge", e]);
    }
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "report of {spec}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

/// Polls an edge's serving pointer until it is `want`; panics after 15 s.
async fn serving_until(redis_url: &str, api: &str, want: Option<u64>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = serving(redis_url, api).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{redis_url} serves {got:?} of {api}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After an edge's Redis is emptied, its lookup service answers 503 `refilling` with
/// `Retry-After` (never 404, never a wrong 200) until something refills it.
async fn assert_refilling(url: &str, token: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, retry, code) = answer(url, token).await;
        assert_ne!(status, 404, "{url} answered 404 for a key that exists");
        if status == 503 {
            assert_eq!((code.as_str(), retry.as_deref()), ("refilling", Some("1")));
            return;
        }
        assert!(Instant::now() < deadline, "{url} still answers {status}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Protection and tokens come from the store, not from a version: an API protected (by a token
/// made after its publish) stays protected after its edge comes back empty and is refilled, the
/// token still works, and a revoked token stays revoked through the next refill.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_protection_survive_an_empty_edge() {
    let deployment = Deployment::start(1);
    let edge = deployment.edges[0].url();
    let (ok, report) = deployment.publish(API);
    assert!(ok, "{report}");
    let logs = tempfile::tempdir().unwrap();
    let (_lookup, base) = deployment.lookup_service(0, &log(&logs, "lookup"));
    let url = format!("{base}/v1/{API}/facebook");
    answer_until(&url, None, 200, Some("1")).await;

    let token = run_ok(cli(&deployment, &["token", "create", "--api", API]))
        .trim()
        .to_string();
    answer_until(&url, None, 401, None).await;
    answer_until(&url, Some(&token), 200, None).await;

    flushall(&edge).await;
    assert_refilling(&url, Some(&token)).await;
    let out = run_ok(cli(&deployment, &["reconcile", "--api", API]));
    assert!(
        out.contains("refilled") && out.contains("converged"),
        "{out}"
    );
    answer_until(&url, None, 401, None).await;
    answer_until(&url, Some(&token), 200, Some("1")).await;

    let listed = run_ok(cli(&deployment, &["token", "list", "--api", API]));
    let id = listed.split_whitespace().next().unwrap().to_string();
    run_ok(cli(
        &deployment,
        &["token", "revoke", "--api", API, "--id", &id],
    ));
    answer_until(&url, Some(&token), 403, None).await;
    flushall(&edge).await;
    assert_refilling(&url, Some(&token)).await;
    run_ok(cli(
        &deployment,
        &["edge", "rehydrate", "--api", API, "--redis", &edge],
    ));
    answer_until(&url, Some(&token), 403, None).await;
    answer_until(&url, None, 401, None).await;
}

/// Rehydrate refills the version the store says serves — after a rollback, the older one — not
/// the newest snapshot.
#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_api_refills_with_the_version_it_serves() {
    let deployment = Deployment::start(1);
    let edge = deployment.edges[0].url();
    for v in 1..=2 {
        let (ok, report) = deployment.publish(API);
        assert!(ok && report["version"] == v, "{report}");
    }
    run_ok(cli(&deployment, &["rollback", "--api", API, "--to", "1"]));
    assert_eq!(serving(&edge, API).await, Some(1));

    flushall(&edge).await;
    assert_eq!(serving(&edge, API).await, None);
    let out = run_ok(cli(
        &deployment,
        &["edge", "rehydrate", "--api", API, "--redis", &edge],
    ));
    assert!(out.contains("serving v1"), "{out}");
    assert_eq!(serving(&edge, API).await, Some(1));
    let logs = tempfile::tempdir().unwrap();
    let (_lookup, base) = deployment.lookup_service(0, &log(&logs, "lookup"));
    assert_eq!(assert_answers_golden(&base, API, 1).await, ["1"]);
}

fn dashboard_settings(deployment: &Deployment, edges: &[String]) -> DashboardSettings {
    DashboardSettings::new(deployment.state.path(), &deployment.catalog(), edges)
        .with_fast_takeover()
        .with("TABLECAST_DASHBOARD__RECONCILE_MS", 500)
}

/// Creates a sample API through the REST API, protected or not.
async fn create_api(dash: &Dashboard, spec: &str, protected: bool) {
    let mut body = sample_spec_json(spec);
    body["protected"] = json!(protected);
    let (status, created) = dash.post("/api/apis", Some(&json!({ "spec": body }))).await;
    assert_eq!(status, 201, "{created}");
}

async fn set_protected(dash: &Dashboard, spec: &str, protected: bool) {
    let mut body = sample_spec_json(spec);
    body["protected"] = json!(protected);
    let (status, updated) = dash
        .request(
            reqwest::Method::PUT,
            &format!("/api/apis/{spec}"),
            Some(ADMIN_TOKEN),
            Some(&json!({ "spec": body })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
}

/// One edge, and a dashboard over it on which the sample API is created.
struct OneEdge {
    deployment: Deployment,
    /// The edge's Redis URL.
    edge: String,
    logs: tempfile::TempDir,
    dash: Dashboard,
}

impl OneEdge {
    /// Starts the edge and the dashboard (with the settings `tweak` makes of the usual ones), and
    /// creates the sample API, protected or not.
    async fn start(
        tweak: impl FnOnce(DashboardSettings) -> DashboardSettings,
        protected: bool,
    ) -> OneEdge {
        let deployment = Deployment::start(1);
        let edge = deployment.edges[0].url();
        let logs = tempfile::tempdir().unwrap();
        let settings = tweak(dashboard_settings(&deployment, std::slice::from_ref(&edge)));
        let dash = Dashboard::start(&settings, &log(&logs, "serve"));
        create_api(&dash, API, protected).await;
        OneEdge {
            deployment,
            edge,
            logs,
            dash,
        }
    }

    /// `tablecast edge serve` over the edge: the process and its base URL.
    fn lookup_service(&self) -> (ChildProcess, String) {
        self.deployment
            .lookup_service(0, &log(&self.logs, "lookup"))
    }
}

async fn publish_job(dash: &Dashboard, api: &str) -> Value {
    let job = dash.publish(api).await;
    let view = dash.wait_job(&job, JOB_TIMEOUT).await;
    assert_eq!(view["state"], "succeeded", "{view}\n{}", dash.log_tail(30));
    view
}

/// A dashboard job queued while the API was public fails once (its edge is down) and waits to
/// retry; meanwhile the API is protected. The retry commits with the protection of the
/// moment, not of when the job was queued.
#[tokio::test(flavor = "multi_thread")]
async fn a_retried_dashboard_job_commits_the_protection_set_meanwhile() {
    let mut one = OneEdge::start(
        |s| {
            s.with("TABLECAST_DASHBOARD__BACKOFF_BASE_MS", 2000)
                .with("TABLECAST_EDGE__CONNECT_TIMEOUT_MS", 300)
        },
        false,
    )
    .await;
    let dash = &one.dash;

    one.deployment.edges[0].kill();
    let job = dash.publish(API).await;
    let retry = dash.wait_event(&job, "retry_scheduled", JOB_TIMEOUT).await;
    assert_eq!(retry["attempt"], 1, "{retry}");
    set_protected(dash, API, true).await;
    one.deployment.edges[0].restart();
    let view = dash.wait_job(&job, JOB_TIMEOUT).await;
    assert_eq!(view["state"], "succeeded", "{view}\n{}", dash.log_tail(30));
    assert!(view["attempts"].as_i64().unwrap() >= 2, "{view}");

    let (_lookup, base) = one.lookup_service();
    let url = format!("{base}/v1/{API}/facebook");
    answer_until(&url, None, 401, None).await;
    // A token made now opens it.
    let token = dash.create_token(API, "checkout").await;
    answer_until(&url, Some(&token), 200, None).await;
}

/// The CLI and the dashboard share one store: tokens made on one side survive publishes from
/// the other, and the API stays protected.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_survive_publishes_from_the_other_side() {
    let one = OneEdge::start(|s| s, true).await;
    let (deployment, dash) = (&one.deployment, &one.dash);
    publish_job(dash, API).await;
    let t1 = dash.create_token(API, "dashboard-side").await;
    let (_lookup, base) = one.lookup_service();
    let url = format!("{base}/v1/{API}/facebook");
    answer_until(&url, Some(&t1), 200, Some("1")).await;

    // A CLI publish of the same API (its spec file says nothing of protection).
    let (ok, report) = deployment.publish(API);
    assert!(ok && report["version"] == 2, "{report}");
    answer_until(&url, Some(&t1), 200, Some("2")).await;
    answer_until(&url, None, 401, None).await;

    // A CLI token, then a dashboard publish.
    let t2 = run_ok(cli(deployment, &["token", "create", "--api", API]))
        .trim()
        .to_string();
    answer_until(&url, Some(&t2), 200, Some("2")).await;
    publish_job(dash, API).await;
    answer_until(&url, Some(&t2), 200, Some("3")).await;
    answer_until(&url, Some(&t1), 200, Some("3")).await;
    answer_until(&url, None, 401, None).await;

    // The dashboard lists the CLI's token beside its own.
    let tokens = dash.get(&format!("/api/apis/{API}/tokens")).await;
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens}");
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child process we own.
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill {pid} {sig}"
    );
}

/// A publisher paused past its lease's TTL (SIGSTOP, as a long GC pause or a frozen VM) while
/// another publish commits a newer version: when it resumes it learns it lost the lease and
/// stops before its commit, saying so; serving never goes backwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_that_lost_its_lease_stops_before_commit() {
    let deployment = Deployment::start(2);
    let direct: Vec<String> = deployment.edges.iter().map(|e| e.url()).collect();
    let env = [("TABLECAST_PUBLISH__LEASE_TTL_MS", "1500")];
    let (ok, report) = publish_to(&deployment, API, &direct, &env);
    assert!(ok && report["version"] == 1, "{report}");

    // Publisher A reaches edge 1 through a proxy that holds back its first write, so that it is
    // certainly mid-push, lease held, when it is paused.
    let proxy = FreezeProxy::start(tablecast_e2e::loopback(deployment.edges[1].port()));
    proxy.freeze_on(b"HSET");
    let spec = fixtures::specs_dir().join(format!("{API}.toml"));
    let logs = tempfile::tempdir().unwrap();
    let stdout = log(&logs, "a-report");
    let mut a = deployment.command();
    a.args(["publish", "--json", "--spec"])
        .arg(&spec)
        .args(["--metastore", &deployment.catalog()])
        .args(["--edge", &direct[0], "--edge", &proxy.url()])
        .envs(env)
        .env("TABLECAST_EDGE__RESPONSE_TIMEOUT_MS", "3000")
        .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(log(&logs, "a")).unwrap()));
    let mut a = tablecast_e2e::spawn_tied(a).unwrap();
    let a_log = || std::fs::read_to_string(log(&logs, "a")).unwrap_or_default();
    assert!(
        proxy.wait_frozen(Duration::from_secs(30)),
        "A never wrote: {}",
        a_log()
    );
    signal(a.id(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2500));

    // B takes the expired lease and commits the next version.
    let (ok, report) = publish_to(&deployment, API, &direct, &env);
    assert!(ok && report["version"] == 3, "{report}");
    for e in &direct {
        assert_eq!(serving(e, API).await, Some(3));
    }

    signal(a.id(), libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = a.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "A did not finish: {}", a_log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        !status.success(),
        "A committed after losing its lease: {}",
        a_log()
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&stdout).unwrap()).unwrap();
    assert_eq!(report["committed"], false, "{report}");
    assert_eq!(report["version"], 2, "{report}");
    assert_eq!(report["error"]["step"], "lease", "{report}");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("lost the lease"), "{message}");
    proxy.thaw_dropping();
    for e in &direct {
        assert_eq!(serving(e, API).await, Some(3), "{e} went backwards");
    }
}

/// Edge 1 switches, edge 2's switch never arrives (held by the proxy): the publish fails at the
/// commit naming edge 2, edge 1 serves the new version, edge 2 does not. After that edge's
/// Redis died and came back empty (first publish), or once it answers again (second publish),
/// `tablecast reconcile` brings both to the same version.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_second_edge_commit_converges() {
    let (mut deployment, first, second_direct, proxy) = two_edges_second_behind_a_proxy();
    let edges = [first.clone(), proxy.url()];
    let env = [("TABLECAST_EDGE__RESPONSE_TIMEOUT_MS", "1000")];

    // A first publish.
    proxy.freeze_on(COMMIT_MARKER);
    let (ok, report) = publish_to(&deployment, API, &edges, &env);
    assert!(!ok, "{report}");
    assert_eq!(report["error"]["step"], "commit", "{report}");
    assert_eq!(report["error"]["edge"], proxy.url(), "{report}");
    assert_eq!(serving(&first, API).await, Some(1));
    assert_eq!(serving(&second_direct, API).await, None);
    // Edge 2's Redis dies and comes back empty; reconcile refills it from the snapshot.
    deployment.edges[1].restart();
    proxy.thaw_dropping();
    let out = run_ok(cli(&deployment, &["reconcile", "--api", API]));
    assert!(out.contains("refilled"), "{out}");
    assert_eq!(serving(&first, API).await, Some(1));
    assert_eq!(serving(&second_direct, API).await, Some(1));
    let logs = tempfile::tempdir().unwrap();
    let (_lookup, base) = deployment.lookup_service(1, &log(&logs, "lookup"));
    assert_eq!(assert_answers_golden(&base, API, 1).await, ["1"]);

    // A second publish fails the same way; the edge answers again: forward, it holds v2.
    proxy.freeze_on(COMMIT_MARKER);
    let (ok, report) = publish_to(&deployment, API, &edges, &env);
    assert!(!ok && report["version"] == 2, "{report}");
    assert_eq!(serving(&first, API).await, Some(2));
    assert_eq!(serving(&second_direct, API).await, Some(1));
    proxy.thaw_dropping();
    let out = run_ok(cli(&deployment, &["reconcile", "--api", API]));
    assert!(
        out.contains("switched") && out.contains("converged"),
        "{out}"
    );
    assert_eq!(serving(&second_direct, API).await, Some(2));
    answer_until(&format!("{base}/v1/{API}/facebook"), None, 200, Some("2")).await;
    assert_eq!(assert_answers_golden(&base, API, 1).await, ["2"]);
}

/// `tablecast serve` SIGKILLed after edge 1 switched and while edge 2's switch is in flight:
/// restarted, it converges both edges to one version within its reconcile interval (and the
/// re-claimed job may publish a further one on top: never a mix, never backwards).
#[tokio::test(flavor = "multi_thread")]
async fn serve_killed_between_two_edge_commits_converges_on_restart() {
    let (deployment, first, second_direct, proxy) = two_edges_second_behind_a_proxy();
    let logs = tempfile::tempdir().unwrap();
    let settings = dashboard_settings(&deployment, &[first.clone(), proxy.url()]);
    let mut dash = Dashboard::start(&settings, &log(&logs, "serve-1"));
    create_api(&dash, API, false).await;
    proxy.freeze_on(COMMIT_MARKER);
    dash.publish(API).await;
    assert!(
        proxy.wait_frozen(JOB_TIMEOUT),
        "the switch never came: {}",
        dash.log_tail(30)
    );
    serving_until(&first, API, Some(1)).await;
    dash.kill();
    proxy.thaw_dropping();
    assert_eq!(serving(&second_direct, API).await, None);

    let started = Instant::now();
    let dash = Dashboard::start(&settings, &log(&logs, "serve-2"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let converged = loop {
        let (a, b) = (
            serving(&first, API).await,
            serving(&second_direct, API).await,
        );
        if let Some(v) = a
            && a == b
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "edges serve {a:?} and {b:?}\n{}",
            dash.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "both edges serve v{converged} {} ms after the restart",
        started.elapsed().as_millis()
    );
    assert!(converged >= 1);
    let view = dash.get(&format!("/api/apis/{API}/versions")).await;
    assert!(view["desired"].as_u64().unwrap() >= converged, "{view}");
}

/// A dashboard job cancelled while edge 2's switch hangs: cancelling never interrupts the
/// commit phase, which ends by itself (the switch fails when the wire is cut, and the commit
/// converges at once: edge 2 holds the version). Both edges serve the same version.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_cancelled_during_its_commit_still_converges() {
    let (deployment, first, second_direct, proxy) = two_edges_second_behind_a_proxy();
    let logs = tempfile::tempdir().unwrap();
    // No periodic convergence here: only the commit phase itself can bring edge 2 along.
    let settings = dashboard_settings(&deployment, &[first.clone(), proxy.url()])
        .with("TABLECAST_DASHBOARD__RECONCILE_MS", 0);
    let dash = Dashboard::start(&settings, &log(&logs, "serve"));
    create_api(&dash, API, false).await;
    proxy.freeze_on(COMMIT_MARKER);
    let job = dash.publish(API).await;
    assert!(
        proxy.wait_frozen(JOB_TIMEOUT),
        "the switch never came: {}",
        dash.log_tail(30)
    );
    let (status, cancelled) = dash.post(&format!("/api/jobs/{job}/cancel"), None).await;
    assert_eq!(status, 200, "{cancelled}");
    let view = dash.wait_job(&job, JOB_TIMEOUT).await;
    assert_eq!(view["state"], "cancelled", "{view}");
    serving_until(&first, API, Some(1)).await;
    proxy.thaw_dropping();
    serving_until(&second_direct, API, Some(1)).await;
    let versions = dash.get(&format!("/api/apis/{API}/versions")).await;
    assert_eq!(versions["desired"], 1, "{versions}");
}

/// An orchestrator's call: `tablecast publish --via URL --wait` queues the publish on a running
/// `tablecast serve` and exits with the job's outcome (0 only when committed).
#[tokio::test(flavor = "multi_thread")]
async fn publish_via_a_dashboard_exits_with_the_job_outcome() {
    let mut one = OneEdge::start(|s| s.with("TABLECAST_DASHBOARD__MAX_ATTEMPTS", 1), false).await;
    let dash = &one.dash;
    let spec = fixtures::specs_dir().join(format!("{API}.toml"));
    let state_dir = one.deployment.state.path().to_path_buf();
    let via = || {
        let mut c = tablecast_e2e::tablecast_command();
        c.env("TABLECAST_STATE_DIR", &state_dir)
            .args(["publish", "--json", "--spec"])
            .arg(&spec)
            .args(["--via", &dash.base, "--wait"])
            .env("TABLECAST_TOKEN", ADMIN_TOKEN);
        c
    };

    let (ok, stdout, stderr) = run(via());
    assert!(ok, "{stdout}\n{stderr}");
    let job: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["report"]["version"], 1, "{job}");
    assert_eq!(serving(&one.edge, API).await, Some(1));

    let mut no_token = via();
    no_token.env_remove("TABLECAST_TOKEN");
    let (ok, _, stderr) = run(no_token);
    assert!(!ok && stderr.contains("TABLECAST_TOKEN"), "{stderr}");

    // The edge is down and the job may not retry: the command fails with the job.
    one.deployment.edges[0].kill();
    let (ok, stdout, stderr) = run(via());
    assert!(!ok, "{stdout}\n{stderr}");
    let job: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(job["state"], "failed", "{job}");
    one.deployment.edges[0].restart();
}
