//! The analysts' dashboard (`tablecast serve`) as a real process over the shared Hive metastore
//! and real Redis edges, configured only through `TABLECAST_*` variables, driven over HTTP.
//!
//! - [`fixtures_metastore`]: scale-1 fixtures registered once per test binary in
//!   [`Metastore::shared`];
//! - [`Dashboard`]: one `tablecast serve` with a REST client holding the admin token, SSE
//!   following ([`Dashboard::follow`] to the end, [`Dashboard::wait_event`] to one event) and
//!   job polling ([`Dashboard::wait_job`]);
//! - [`DashboardSettings::publish_command`]: `tablecast publish` with the same configuration;
//! - [`lookup_service`]: `tablecast edge serve` in front of one Redis;
//! - [`sample_spec_json`]: a sample spec of `fixtures/specs` as the API's JSON model.
//!
//! Every wait has a deadline and fails with what it saw and the server's log tail.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{ChildProcess, Metastore, free_port, loopback, tablecast_command};

/// The admin token every test dashboard is started with (at least 16 characters).
pub const ADMIN_TOKEN: &str = "e2e-dashboard-admin-token-0123";

/// How long `tablecast serve` may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The shared metastore's URI, with the scale-1 fixtures (generated once per test binary into
/// a folder that lives as long as it) registered in it.
pub fn fixtures_metastore() -> String {
    static WAREHOUSE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let metastore = Metastore::shared();
    WAREHOUSE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("tablecast-dashboard-fixtures-")
            .tempdir()
            .expect("temp dir");
        crate::generate_fixtures(dir.path());
        crate::load_fixtures(metastore, dir.path());
        dir
    });
    metastore.uri()
}

/// A sample spec of `fixtures/specs` as the JSON model the REST API takes.
pub fn sample_spec_json(spec: &str) -> Value {
    let path = fixtures::specs_dir().join(format!("{spec}.toml"));
    let spec = publisher::spec::ApiSpec::from_path(&path)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    serde_json::to_value(spec).expect("a spec encodes as JSON")
}

/// How to start a dashboard; kept so that it can be started again on the same state.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    pub state_dir: PathBuf,
    /// `thrift://…` or `file://…`: the `default` catalog.
    pub metastore: String,
    /// The `default` edge group.
    pub edges: Vec<String>,
    /// More `TABLECAST_*` settings (short leases, backoffs…).
    pub env: Vec<(String, String)>,
}

impl DashboardSettings {
    pub fn new(state_dir: &Path, metastore: &str, edges: &[String]) -> Self {
        DashboardSettings {
            state_dir: state_dir.to_path_buf(),
            metastore: metastore.to_string(),
            edges: edges.to_vec(),
            env: Vec::new(),
        }
    }

    pub fn with(mut self, name: &str, value: impl ToString) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Short leases and backoffs, so that a dead runner's job and edge lease are taken over
    /// within seconds (the kill tests).
    pub fn with_fast_takeover(self) -> Self {
        self.with("TABLECAST_DASHBOARD__LEASE_MS", 2000)
            .with("TABLECAST_DASHBOARD__POLL_MS", 200)
            .with("TABLECAST_DASHBOARD__BACKOFF_BASE_MS", 500)
            .with("TABLECAST_DASHBOARD__BACKOFF_MAX_MS", 2000)
            .with("TABLECAST_PUBLISH__LEASE_TTL_MS", 3000)
    }

    /// `tablecast` with this configuration in its environment, for any subcommand.
    pub fn command(&self) -> std::process::Command {
        let mut c = tablecast_command();
        c.env("TABLECAST_STATE_DIR", &self.state_dir)
            .env("TABLECAST_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("TABLECAST_METASTORE", &self.metastore)
            .env(
                "TABLECAST_EDGES",
                serde_json::to_string(&self.edges).expect("edges encode"),
            );
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// `tablecast publish --json` of a sample spec with this configuration (same metastore,
    /// state folder and `[publish]` settings) to its edges, as an operator would run it beside
    /// the dashboard; not yet run.
    pub fn publish_command(&self, spec: &str) -> std::process::Command {
        let path = fixtures::specs_dir().join(format!("{spec}.toml"));
        let mut c = self.command();
        c.args(["publish", "--json", "--spec"])
            .arg(path)
            .args(["--metastore", &self.metastore]);
        for edge in &self.edges {
            c.args(["--edge", edge]);
        }
        c
    }
}

/// A running `tablecast serve`; its REST client ([`Rest`]) is reached through it.
pub struct Dashboard {
    pub process: ChildProcess,
    rest: Rest,
}

impl Dashboard {
    /// Starts `tablecast serve --listen 127.0.0.1:PORT` and waits until it listens.
    pub fn start(settings: &DashboardSettings, log: &Path) -> Dashboard {
        let port = free_port();
        let mut c = settings.command();
        c.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
        let mut process = ChildProcess::spawn("tablecast serve", c, log)
            .unwrap_or_else(|e| panic!("starting tablecast serve: {e:#}"));
        process
            .wait_for_port(loopback(port), START_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let mut rest = Rest::at(format!("http://127.0.0.1:{port}"));
        rest.log = Some(log.to_path_buf());
        Dashboard { process, rest }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

impl std::ops::Deref for Dashboard {
    type Target = Rest;
    fn deref(&self) -> &Rest {
        &self.rest
    }
}

/// A client of a dashboard's REST API holding the admin token: one `tablecast serve`, or a load
/// balancer in front of several. Failures carry the server's log tail when it is known.
pub struct Rest {
    pub base: String,
    http: reqwest::Client,
    log: Option<PathBuf>,
}

impl Rest {
    pub fn at(base: impl Into<String>) -> Rest {
        Rest {
            base: base.into(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
            log: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The last `lines` lines of the server's log (empty when it is not known).
    pub fn log_tail(&self, lines: usize) -> String {
        self.log
            .as_deref()
            .map(|log| crate::process::log_tail(log, lines))
            .unwrap_or_default()
    }

    /// A request with the admin token (or `token`, or none): status and JSON body (`null` when
    /// the body is empty, `{"text": …}` when it is not JSON).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_tail(30)));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text }))
        };
        (status, value)
    }

    /// GET with the admin token; panics unless 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self
            .request(reqwest::Method::GET, path, Some(ADMIN_TOKEN), None)
            .await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// POST with the admin token.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(ADMIN_TOKEN), body)
            .await
    }

    /// Creates an API from a sample spec (default catalog and edge group); panics unless 201.
    pub async fn create_sample_api(&self, spec: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/apis",
                Some(&json!({ "spec": sample_spec_json(spec) })),
            )
            .await;
        assert_eq!(status, 201, "creating {spec}: {body}");
        body
    }

    /// Creates a read token of `api` named `name`; panics unless 201; returns its secret.
    pub async fn create_token(&self, api: &str, name: &str) -> String {
        let (status, token) = self
            .post(
                &format!("/api/apis/{api}/tokens"),
                Some(&json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 201, "creating token {name} of {api}: {token}");
        token["token"].as_str().unwrap().to_string()
    }

    /// Queues a publish; panics unless 202; returns the job id.
    pub async fn publish(&self, api: &str) -> String {
        self.start_job(&format!("/api/apis/{api}/publish"), None)
            .await
    }

    /// Queues a rollback (to the previous kept version unless `to`); returns the job id.
    pub async fn rollback(&self, api: &str, to: Option<u64>) -> String {
        let body = to.map(|v| json!({ "to": v }));
        self.start_job(&format!("/api/apis/{api}/rollback"), body.as_ref())
            .await
    }

    async fn start_job(&self, path: &str, body: Option<&Value>) -> String {
        let (status, job) = self.post(path, body).await;
        assert_eq!(status, 202, "POST {path}: {job}");
        job["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no job id in {job}"))
            .to_string()
    }

    /// Follows `GET /api/jobs/{id}/events` (Server-Sent Events) until the stream ends after the
    /// `finished` event; returns every event's data. Panics past `timeout`.
    pub async fn follow(&self, job: &str, timeout: Duration) -> Vec<Value> {
        let events = self
            .stream_events(job, timeout, "end of its event stream", |_| false)
            .await;
        assert_eq!(
            events.last().map(|e| e["event"].clone()),
            Some(json!("finished")),
            "job {job}: the stream ended without a `finished` event: {}",
            Value::from(events.clone())
        );
        events
    }

    /// Follows the job's event stream until an event named `name` arrives (stored or live);
    /// returns it. Panics if the stream ends first, or past `timeout`.
    pub async fn wait_event(&self, job: &str, name: &str, timeout: Duration) -> Value {
        let events = self
            .stream_events(job, timeout, &format!("`{name}` event"), |e| {
                e["event"] == name
            })
            .await;
        match events.last() {
            Some(e) if e["event"] == name => e.clone(),
            _ => panic!(
                "job {job}: the stream ended without a `{name}` event: {}\n{}",
                Value::from(events),
                self.log_tail(30)
            ),
        }
    }

    /// The job's events in order until `stop` holds for one (included) or the stream ends;
    /// panics past `timeout`, saying it waited for `what`.
    async fn stream_events(
        &self,
        job: &str,
        timeout: Duration,
        what: &str,
        stop: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let path = format!("/api/jobs/{job}/events");
        let mut resp = self
            .http
            .get(self.url(&path))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(timeout)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "GET {path}");
        let content_type = resp.headers()["content-type"].to_str().unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let mut buf = String::new();
        let mut events: Vec<Value> = Vec::new();
        loop {
            let chunk = tokio::time::timeout_at(deadline, resp.chunk())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "job {job}: no {what} within {} s; events so far: {}\n{}",
                        timeout.as_secs(),
                        Value::from(events.clone()),
                        self.log_tail(30)
                    )
                })
                .unwrap_or_else(|e| panic!("reading {path}: {e}"));
            let Some(chunk) = chunk else { break };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|l| l.strip_prefix(' ').unwrap_or(l))
                    .collect();
                if !data.is_empty() {
                    let event: Value = serde_json::from_str(&data.join("\n"))
                        .unwrap_or_else(|e| panic!("event data {data:?}: {e}"));
                    let done = stop(&event);
                    events.push(event);
                    if done {
                        return events;
                    }
                }
            }
        }
        events
    }

    /// Polls `GET /api/jobs/{id}` until the job is succeeded, failed or cancelled.
    pub async fn wait_job(&self, job: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let view = self.get(&format!("/api/jobs/{job}")).await;
            if ["succeeded", "failed", "cancelled"].contains(&view["state"].as_str().unwrap_or(""))
            {
                return view;
            }
            assert!(
                started.elapsed() < timeout,
                "job {job} not finished within {} s: {view}\n{}",
                timeout.as_secs(),
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `tablecast edge serve` in front of one Redis (with an empty state folder of its own, so it
/// never refills anything); returns it and its base URL.
pub fn lookup_service(redis_url: &str, state_dir: &Path, log: &Path) -> (ChildProcess, String) {
    let port = free_port();
    let mut c = tablecast_command();
    c.env("TABLECAST_STATE_DIR", state_dir).args([
        "edge",
        "serve",
        "--redis",
        redis_url,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let mut child = ChildProcess::spawn("lookup", c, log).unwrap_or_else(|e| panic!("{e:#}"));
    child
        .wait_for_port(loopback(port), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e:#}"));
    (child, format!("http://127.0.0.1:{port}"))
}

/// The names of the events, in order.
pub fn event_names(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["event"].as_str()).collect()
}
