//! Test support: a small Parquet table; a `Stack` over the real pieces (directory catalog, fast
//! track, edge-cache's `RedisEdge` on redis-servers started here, with a fault-injection test
//! double layered over it) and a lookup service per edge; and an in-process dashboard on a free
//! loopback port, driven through its REST API with reqwest.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashboard_api::{NamedCatalog, ServerConfig, Stack};
use fixtures::poll;
use futures::StreamExt;
use publisher::canonical::{Checksum, Entry};
use publisher::sink::{
    Access, EdgeError, EdgeResult, EdgeSink, EdgeVersions, Fence, SwitchMode, VersionManifest,
};
use serde_json::{Value, json};

pub const ADMIN: &str = "admin-token-for-tests-0123456789";

/// `shop.sales`, partitioned by `dt`: 7 rows over 2 partitions, with nulls and unicode.
pub fn write_table(root: &Path) {
    fixtures::write_sales_table(root, "shop");
}

pub use fixtures::top_products_spec;

/// [`top_products_spec`], readable only with a read token.
pub fn protected_top_products_spec(name: &str) -> Value {
    let mut spec = top_products_spec(name);
    spec["protected"] = json!(true);
    spec
}

// ---------------------------------------------------------------------------------------------
// Real edges: redis-server processes, the edge-cache crate's RedisEdge, and its lookup service.

pub use fixtures::redis::RedisServer;

/// Injected faults.
#[derive(Default)]
pub struct Faults {
    /// The next N writes fail with a transient edge error.
    pub transient_writes: AtomicU32,
    /// Every write fails with a permanent (non-transient) error.
    pub permanent_writes: AtomicBool,
    /// Every write waits this long first.
    pub write_delay_ms: AtomicU64,
    /// Writes never return (a hung edge) while set.
    pub hang_writes: AtomicBool,
    /// Retiring a deleted API fails as if the edge were unreachable while set.
    pub unreachable_for_retire: AtomicBool,
}

impl Faults {
    pub fn fail_next_writes(&self, n: u32) {
        self.transient_writes.store(n, Ordering::SeqCst);
    }

    pub fn fail_every_write(&self, on: bool) {
        self.permanent_writes.store(on, Ordering::SeqCst);
    }

    pub fn delay_writes(&self, ms: u64) {
        self.write_delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn hang_writes(&self, on: bool) {
        self.hang_writes.store(on, Ordering::SeqCst);
    }

    pub fn fail_retire(&self, on: bool) {
        self.unreachable_for_retire.store(on, Ordering::SeqCst);
    }
}

/// A TEST DOUBLE layer for fault injection: a real `RedisEdge` whose writes can be made to
/// fail (transiently N times, or permanently), to be slow, or to hang. Everything else is
/// the real edge.
pub struct FaultyEdge {
    pub redis: Arc<edge_cache::RedisEdge>,
    pub faults: Faults,
    /// Every access set applied to this edge, shared with the stack.
    pushes: Arc<Mutex<Vec<Push>>>,
}

impl FaultyEdge {
    fn injected(&self, step: &str, message: &str, transient: bool) -> EdgeError {
        EdgeError {
            edge: self.address().to_string(),
            step: step.into(),
            message: message.into(),
            transient,
        }
    }
}

#[async_trait]
impl EdgeSink for FaultyEdge {
    fn address(&self) -> &str {
        EdgeSink::address(self.redis.as_ref())
    }

    async fn versions(&self, api: &str) -> EdgeResult<EdgeVersions> {
        EdgeSink::versions(self.redis.as_ref(), api).await
    }

    async fn holds(&self, api: &str, version: u64) -> EdgeResult<bool> {
        EdgeSink::holds(self.redis.as_ref(), api, version).await
    }

    async fn begin(&self, manifest: &VersionManifest) -> EdgeResult<()> {
        EdgeSink::begin(self.redis.as_ref(), manifest).await
    }

    async fn write(&self, api: &str, version: u64, entries: &[Entry]) -> EdgeResult<()> {
        let delay = self.faults.write_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        while self.faults.hang_writes.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.faults.permanent_writes.load(Ordering::Relaxed) {
            return Err(self.injected("write", "injected permanent fault", false));
        }
        if self
            .faults
            .transient_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(self.injected("write", "injected transient fault: connection reset", true));
        }
        EdgeSink::write(self.redis.as_ref(), api, version, entries).await
    }

    async fn seal(&self, manifest: &VersionManifest) -> EdgeResult<Checksum> {
        EdgeSink::seal(self.redis.as_ref(), manifest).await
    }

    async fn switch(
        &self,
        api: &str,
        version: u64,
        fence: Fence,
        mode: SwitchMode,
    ) -> EdgeResult<Option<u64>> {
        EdgeSink::switch(self.redis.as_ref(), api, version, fence, mode).await
    }

    async fn set_access(&self, api: &str, access: &Access) -> EdgeResult<()> {
        self.pushes.lock().unwrap().push((
            self.address().to_string(),
            api.to_string(),
            access.token_hashes.clone(),
            access.protected,
        ));
        EdgeSink::set_access(self.redis.as_ref(), api, access).await
    }

    async fn discard(&self, api: &str, version: u64) -> EdgeResult<()> {
        EdgeSink::discard(self.redis.as_ref(), api, version).await
    }

    async fn gc(&self, api: &str, keep: usize) -> EdgeResult<u64> {
        EdgeSink::gc(self.redis.as_ref(), api, keep).await
    }

    async fn retire(&self, api: &str, access: &Access) -> EdgeResult<u64> {
        if self.faults.unreachable_for_retire.load(Ordering::SeqCst) {
            return Err(self.injected("retire", "injected fault: connection refused", true));
        }
        EdgeSink::retire(self.redis.as_ref(), api, access).await
    }
}

// ---------------------------------------------------------------------------------------------
// The stack: real directory catalog, fast track, Redis edges (with a fault-injection layer),
// and a lookup service in front of each edge.

/// One access set applied to an edge: (url, api, hashes, protected).
pub type Push = (String, String, Vec<String>, bool);

pub struct TestStack {
    pub urls: Vec<String>,
    /// Base URLs of the lookup services, one per edge.
    pub lookups: Vec<String>,
    edges: HashMap<String, Arc<FaultyEdge>>,
    /// Every access set applied to an edge: (url, api, hashes, protected).
    pub pushes: Arc<Mutex<Vec<Push>>>,
    lookup_tasks: Vec<tokio::task::JoinHandle<()>>,
    _redis: Vec<RedisServer>,
    /// Tells the control plane that each edge's lookup service is the *next* edge's: a canary
    /// then probes a service that does not serve what it switched. Read when a server starts.
    pub mispoint_lookups: AtomicBool,
}

impl Drop for TestStack {
    fn drop(&mut self) {
        for t in &self.lookup_tasks {
            t.abort();
        }
    }
}

impl TestStack {
    /// Two edges: two redis-servers, each with a lookup service.
    pub async fn new() -> Arc<Self> {
        let redis = vec![RedisServer::start(), RedisServer::start()];
        let mut edges = HashMap::new();
        let mut urls = Vec::new();
        let mut lookups = Vec::new();
        let mut lookup_tasks = Vec::new();
        let pushes = Arc::new(Mutex::new(Vec::new()));
        for r in &redis {
            let options = edge_cache::EdgeOptions {
                retire_grace: Duration::from_millis(50),
                ..Default::default()
            };
            let edge = Arc::new(
                edge_cache::RedisEdge::connect_with(&r.url(), options)
                    .await
                    .unwrap(),
            );
            edges.insert(
                r.url(),
                Arc::new(FaultyEdge {
                    redis: Arc::clone(&edge),
                    faults: Faults::default(),
                    pushes: Arc::clone(&pushes),
                }),
            );
            urls.push(r.url());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            lookups.push(format!("http://{}", listener.local_addr().unwrap()));
            let config = edge_cache::LookupConfig {
                redis_url: r.url(),
                version_cache_ms: 10,
                memory_sample_ms: 300,
                ..Default::default()
            };
            let state = edge_cache::LookupState::new(config).unwrap();
            lookup_tasks.push(tokio::spawn(async move {
                let _ = edge_cache::serve_on(listener, state, std::future::pending()).await;
            }));
        }
        Arc::new(TestStack {
            urls,
            lookups,
            edges,
            pushes,
            lookup_tasks,
            _redis: redis,
            mispoint_lookups: AtomicBool::new(false),
        })
    }

    pub fn edge(&self, i: usize) -> Arc<FaultyEdge> {
        Arc::clone(&self.edges[&self.urls[i]])
    }

    pub async fn serving(&self, i: usize, api: &str) -> Option<u64> {
        self.edge(i).redis.serving(api).await.unwrap()
    }

    /// What each edge serves of `api`, in edge order.
    pub async fn serving_all(&self, api: &str) -> Vec<Option<u64>> {
        let mut serving = Vec::new();
        for i in 0..self.urls.len() {
            serving.push(self.serving(i, api).await);
        }
        serving
    }

    /// `GET /v1/{api}/{key}` on edge `i`'s lookup service: (status, body, served version).
    pub async fn lookup(
        &self,
        i: usize,
        api: &str,
        key: &str,
        token: Option<&str>,
    ) -> (u16, String, Option<u64>) {
        let mut req = reqwest::Client::new().get(format!("{}/v1/{api}/{key}", self.lookups[i]));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let version = resp
            .headers()
            .get("x-tablecast-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (status, resp.text().await.unwrap(), version)
    }

    /// Polls a lookup until it answers `status` (the lookup service caches versions briefly).
    pub async fn lookup_until(
        &self,
        i: usize,
        api: &str,
        key: &str,
        token: Option<&str>,
        status: u16,
    ) -> (String, Option<u64>) {
        poll::until(
            Duration::from_secs(5),
            Duration::from_millis(20),
            async || match self.lookup(i, api, key, token).await {
                (s, body, version) if s == status => Ok((body, version)),
                (s, body, _) => Err(format!(
                    "lookup {api}/{key} on edge {i}: {s} {body}, expected {status}"
                )),
            },
        )
        .await
    }
}

#[async_trait]
impl Stack for TestStack {
    async fn publisher(
        &self,
        catalog_uri: &str,
    ) -> publisher::Result<publisher::publish::Publisher> {
        let catalog = publisher::catalog::open(catalog_uri, &Default::default()).await?;
        Ok(publisher::publish::Publisher {
            catalog,
            fasttrack: Arc::new(fasttrack::FastTrack::default()),
            fallback: None,
            limits: Default::default(),
            config: publisher::publish::PublishConfig {
                lease_ttl_ms: 3_000,
                ..Default::default()
            },
            snapshots: None,
        })
    }

    /// Edge i's lookup service is `lookups[i]` (canary probes go there).
    fn publish_config(&self) -> publisher::publish::PublishConfig {
        let shift = usize::from(self.mispoint_lookups.load(Ordering::SeqCst));
        publisher::publish::PublishConfig {
            lookups: self
                .urls
                .iter()
                .enumerate()
                .map(|(i, url)| {
                    (
                        url.clone(),
                        self.lookups[(i + shift) % self.lookups.len()].clone(),
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    async fn edge(&self, url: &str) -> publisher::Result<Arc<dyn EdgeSink>> {
        match self.edges.get(url) {
            Some(e) => Ok(Arc::clone(e) as Arc<dyn EdgeSink>),
            None => Err(EdgeError {
                edge: url.into(),
                step: "connect".into(),
                message: "no such test edge".into(),
                transient: false,
            }
            .into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test.

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub db: PathBuf,
    pub stack: Arc<TestStack>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<dashboard_api::Result<()>>>,
}

/// A temp dir with the fixture table.
pub fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_table(&dir.path().join("warehouse"));
    dir
}

pub fn config(dir: &Path, stack: &TestStack) -> ServerConfig {
    let catalog_uri = url::Url::from_file_path(dir.join("warehouse"))
        .unwrap()
        .to_string();
    ServerConfig {
        state_dir: dir.to_path_buf(),
        admin_token: Some(ADMIN.into()),
        runners: 2,
        lease_ms: 2_000,
        max_attempts: 4,
        backoff_base_ms: 50,
        backoff_max_ms: 400,
        poll_ms: 50,
        shutdown_grace_ms: 0,
        catalogs: vec![NamedCatalog {
            name: "local".into(),
            uri: catalog_uri,
        }],
        edge_groups: BTreeMap::from([("default".to_string(), stack.urls.clone())]),
        lookup_base_urls: BTreeMap::from([("default".to_string(), stack.lookups[0].clone())]),
        preview_rows: 5,
        ..Default::default()
    }
}

impl TestServer {
    /// Queues a publish of `api` whose writes to the first edge hang: the job stays
    /// `running` (in its push) until `hang_writes(false)`. Returns the job id.
    pub async fn publish_stuck_in_push(&self, api: &str) -> String {
        self.stack.edge(0).faults.hang_writes(true);
        let id = self.publish(api).await;
        self.wait_job_state(&id, "running").await;
        id
    }

    /// A dashboard that also has the generated fixture tables (scale 1) as catalog
    /// `fixtures`; returns it with the tables' definitions.
    pub async fn boot_over_generated_fixtures(
        dir: &Path,
    ) -> (TestServer, Vec<fixtures::GeneratedTable>) {
        let out = dir.join("fixtures");
        let tables = fixtures::generate(&fixtures::GenerateOptions {
            out: out.clone(),
            scale: 1,
            seed: fixtures::DEFAULT_SEED,
        })
        .unwrap();
        let uri = url::Url::from_file_path(&out).unwrap().to_string();
        let server = TestServer::boot_with(dir, |c| {
            c.catalogs.push(NamedCatalog {
                name: "fixtures".into(),
                uri,
            })
        })
        .await;
        (server, tables)
    }

    /// A dashboard with default test settings over a new stack, in a new workspace (kept
    /// until the returned folder is dropped).
    pub async fn fresh() -> (tempfile::TempDir, TestServer) {
        let dir = workspace();
        let server = TestServer::boot(dir.path()).await;
        (dir, server)
    }

    /// A fresh dashboard (as [`TestServer::fresh`]) on which an API of `spec` is created.
    pub async fn fresh_with_api(spec: Value) -> (tempfile::TempDir, TestServer) {
        let (dir, server) = TestServer::fresh().await;
        server.create_api(spec).await;
        (dir, server)
    }

    /// A dashboard with default test settings over a new stack.
    pub async fn boot(dir: &Path) -> TestServer {
        Self::boot_with(dir, |_| {}).await
    }

    pub async fn boot_with(dir: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let stack = TestStack::new().await;
        let mut cfg = config(dir, &stack);
        tweak(&mut cfg);
        TestServer::start(cfg, stack).await
    }

    pub async fn start(config: ServerConfig, stack: Arc<TestStack>) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let db = config.state_dir.join("dashboard.db");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let dyn_stack: Arc<dyn Stack> = stack.clone();
        let handle = tokio::spawn(dashboard_api::serve_on(
            listener,
            config,
            dyn_stack,
            async move {
                let _ = rx.await;
            },
        ));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let server = TestServer {
            base,
            client,
            db,
            stack,
            shutdown: Some(tx),
            handle: Some(handle),
        };
        // Wait until it answers.
        for _ in 0..200 {
            if let Ok(r) = server
                .client
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                && r.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the dashboard did not come up");
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .expect("graceful shutdown in time")
                .unwrap()
                .unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A GET without a token, as a browser would make it: the whole response.
    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(ADMIN), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(ADMIN), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(ADMIN), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, Some(ADMIN), None)
            .await
    }

    pub async fn create_api(&self, spec: Value) -> Value {
        let (status, body) = self.post("/api/apis", json!({"spec": spec})).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Queues a publish; returns the job id.
    pub async fn publish(&self, api: &str) -> String {
        let (status, body) = self
            .post(&format!("/api/apis/{api}/publish"), json!({}))
            .await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Polls a job until it is final.
    pub async fn wait_job(&self, id: &str) -> Value {
        poll::until(
            Duration::from_secs(60),
            Duration::from_millis(50),
            async || {
                let (status, job) = self.get(&format!("/api/jobs/{id}")).await;
                assert_eq!(status, 200, "{job}");
                if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
                    Ok(job)
                } else {
                    Err(format!("job {id} did not finish: {job}"))
                }
            },
        )
        .await
    }

    /// Publishes `api` and waits for the job; panics unless it succeeded; returns the job.
    pub async fn publish_ok(&self, api: &str) -> Value {
        let job = self.wait_job(&self.publish(api).await).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        job
    }

    /// Creates a token (`/api/users/tokens` for an analyst, `/api/apis/{name}/tokens` for a
    /// read token) named `name` with the admin token; panics unless 201; returns the reply
    /// (with the secret in `token`).
    pub async fn create_token(&self, route: &str, name: &str) -> Value {
        let (status, created) = self.post(route, json!({ "name": name })).await;
        assert_eq!(status, 201, "creating token {name} at {route}: {created}");
        created
    }

    /// Polls a job until it reaches `state`.
    pub async fn wait_job_state(&self, id: &str, state: &str) -> Value {
        poll::until(
            Duration::from_secs(30),
            Duration::from_millis(10),
            async || {
                let (_, job) = self.get(&format!("/api/jobs/{id}")).await;
                if job["state"] == state {
                    Ok(job)
                } else {
                    Err(format!("job {id} never reached {state}: {job}"))
                }
            },
        )
        .await
    }

    /// Follows a job's event stream to its end; returns the events' data.
    pub async fn follow(&self, id: &str) -> Vec<Value> {
        let resp = self
            .client
            .get(self.url(&format!("/api/jobs/{id}/events")))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(chunk) = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .expect("event stream ended in time")
        {
            buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    events.push(serde_json::from_str(&data.join("\n")).unwrap());
                }
            }
        }
        events
    }
}

/// Opens the dashboard's SQLite database directly (to check what is at rest, or to simulate a
/// crashed runner).
pub async fn open_db(path: &Path) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", path.display());
    sqlx::SqlitePool::connect(&url).await.unwrap()
}
