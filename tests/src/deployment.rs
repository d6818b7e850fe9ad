//! A small Tablecast deployment for end-to-end tests: scale-1 fixtures in a directory catalog,
//! a state directory, N edges (one redis-server each), and the `tablecast` binary to publish,
//! rehydrate and serve lookups, as an operator would run it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{ChildProcess, Redis, free_port, loopback, tablecast_command};

pub struct Deployment {
    pub warehouse: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub edges: Vec<Redis>,
}

impl Deployment {
    /// Generates the scale-1 fixtures and starts `edges` redis-servers.
    pub fn start(edges: usize) -> Deployment {
        let warehouse = tempfile::tempdir().unwrap();
        crate::generate_fixtures(warehouse.path());
        Deployment {
            warehouse,
            state: tempfile::tempdir().unwrap(),
            edges: (0..edges).map(|_| Redis::start()).collect(),
        }
    }

    /// The fixtures as a directory catalog URI.
    pub fn catalog(&self) -> String {
        format!("file://{}", self.warehouse.path().display())
    }

    /// `tablecast` with this deployment's state directory.
    pub fn command(&self) -> Command {
        let mut c = tablecast_command();
        c.env("TABLECAST_STATE_DIR", self.state.path());
        c
    }

    /// `tablecast publish --json` of a sample spec to every edge, not yet run.
    pub fn publish_command(&self, spec: &str) -> Command {
        let spec_path = fixtures::specs_dir().join(format!("{spec}.toml"));
        let mut c = self.command();
        c.args(["publish", "--json", "--spec", spec_path.to_str().unwrap()]);
        c.args(["--metastore", &self.catalog()]);
        for e in &self.edges {
            c.args(["--edge", &e.url()]);
        }
        c
    }

    /// Publishes a sample spec with extra environment (e.g. guard limits); returns whether it
    /// exited 0 and its JSON report.
    pub fn publish_with(&self, spec: &str, env: &[(&str, &str)]) -> (bool, serde_json::Value) {
        let mut c = self.publish_command(spec);
        c.envs(env.iter().copied());
        let out = c.output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "report of {spec}: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), report)
    }

    pub fn publish(&self, spec: &str) -> (bool, serde_json::Value) {
        self.publish_with(spec, &[])
    }

    /// `tablecast edge rehydrate` of one API into one edge; panics with its stderr on failure.
    pub fn rehydrate(&self, api: &str, edge: usize) {
        let mut c = self.command();
        c.args([
            "edge",
            "rehydrate",
            "--api",
            api,
            "--redis",
            &self.edges[edge].url(),
        ]);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `tablecast edge serve` over one edge; returns it and its base URL.
    pub fn lookup_service(&self, edge: usize, log: &Path) -> (ChildProcess, String) {
        let port = free_port();
        let mut c = self.command();
        c.args([
            "edge",
            "serve",
            "--redis",
            &self.edges[edge].url(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]);
        let mut child = ChildProcess::spawn("lookup", c, log).unwrap();
        child
            .wait_for_port(loopback(port), Duration::from_secs(20))
            .unwrap();
        (child, format!("http://127.0.0.1:{port}"))
    }
}

/// A sample spec's golden answer as (key JSON, exact value bytes) pairs.
pub fn golden(spec: &str) -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(fixtures::golden_dir().join(format!("{spec}.jsonl"))).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            // The value's exact bytes: everything after `"value":` up to the final `}`.
            let start = line.find(",\"value\":").unwrap() + ",\"value\":".len();
            (
                v["key"].to_string(),
                line[start..line.len() - 1].to_string(),
            )
        })
        .collect()
}

/// The lookup URL of a key (its canonical JSON array) under the URL rule of design.md.
pub fn lookup_url(base: &str, api: &str, key_json: &str) -> String {
    let path = publisher::keypath::encode_key(key_json.as_bytes()).unwrap();
    if path.is_empty() {
        format!("{base}/v1/{api}")
    } else {
        format!("{base}/v1/{api}/{path}")
    }
}

/// GETs `every`-th golden key of a sample API (all of the small ones) and compares the exact
/// bytes; returns the versions the answers carried.
pub async fn assert_answers_golden(base: &str, spec: &str, every: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let entries = golden(spec);
    let step = if entries.len() > 100 { every.max(1) } else { 1 };
    let mut versions = Vec::new();
    for (key, value) in entries.iter().step_by(step) {
        let url = lookup_url(base, spec, key);
        let resp = http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let version = resp.headers()["x-tablecast-version"]
            .to_str()
            .unwrap()
            .to_string();
        if !versions.contains(&version) {
            versions.push(version);
        }
        assert_eq!(resp.text().await.unwrap(), *value, "{url}");
    }
    versions
}
