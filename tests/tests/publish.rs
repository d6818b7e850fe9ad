//! Publish to two real edges with the `tablecast` binary, then answer every golden key over HTTP
//! from a real lookup service; an edge killed before a publish leaves every edge serving the old
//! version, and after a restart (empty) and a rehydrate, a retry commits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tablecast_e2e::{ChildProcess, Redis, free_port, loopback, run_tablecast, tablecast_command};

struct Stack {
    warehouse: tempfile::TempDir,
    state: tempfile::TempDir,
    edges: Vec<Redis>,
}

impl Stack {
    fn start() -> Stack {
        let warehouse = tempfile::tempdir().unwrap();
        let out = run_tablecast([
            "fixtures",
            "generate",
            "--out",
            warehouse.path().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Stack {
            warehouse,
            state: tempfile::tempdir().unwrap(),
            edges: vec![Redis::start(), Redis::start()],
        }
    }

    fn command(&self) -> Command {
        let mut c = tablecast_command();
        c.env("TABLECAST_STATE_DIR", self.state.path());
        c
    }

    fn publish(&self, spec: &str) -> (bool, serde_json::Value) {
        let spec_path = fixtures::specs_dir().join(format!("{spec}.toml"));
        let mut c = self.command();
        c.args(["publish", "--json", "--spec", spec_path.to_str().unwrap()]);
        c.args([
            "--metastore",
            &format!("file://{}", self.warehouse.path().display()),
        ]);
        for e in &self.edges {
            c.args(["--edge", &e.url()]);
        }
        let out = c.output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "report of {spec}: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), report)
    }

    fn lookup_service(&self, edge: usize, log: &Path) -> (ChildProcess, String) {
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

fn golden(spec: &str) -> Vec<(String, String)> {
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

fn log_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(format!("{name}.log"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_golden_key_answers_from_an_edge_and_a_dead_edge_changes_nothing() {
    let stack = Stack::start();
    for spec in fixtures::SAMPLE_SPECS {
        let (ok, report) = stack.publish(spec);
        assert!(ok, "{spec}: {report}");
        assert_eq!(report["committed"], true);
        assert_eq!(report["path"], "fasttrack");
        assert_eq!(report["edges"].as_array().unwrap().len(), 2);
        assert!(
            report["timings_ms"]["plan"].is_u64() && report["total_ms"].is_u64(),
            "{report}"
        );
    }

    let logs = tempfile::tempdir().unwrap();
    let (_lookup, base) = stack.lookup_service(0, &log_path(&logs, "lookup0"));
    let http = reqwest::Client::new();
    for spec in fixtures::SAMPLE_SPECS {
        let entries = golden(spec);
        // Every key of the small APIs, every 13th of the big ones.
        let step = if entries.len() > 100 { 13 } else { 1 };
        for (key, value) in entries.iter().step_by(step) {
            let path = publisher::keypath::encode_key(key.as_bytes()).unwrap();
            let url = if path.is_empty() {
                format!("{base}/v1/{spec}")
            } else {
                format!("{base}/v1/{spec}/{path}")
            };
            let resp = http.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            assert_eq!(resp.headers()["content-type"], "application/json");
            assert_eq!(resp.text().await.unwrap(), *value, "{url}");
        }
    }
    let missing = http
        .get(format!("{base}/v1/recent_activity/999999999"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Kill edge 1: the publish fails naming it, at the push, and edge 0 keeps serving v1.
    let mut stack = stack;
    stack.edges[1].kill();
    let (ok, report) = stack.publish("top_products_by_network");
    assert!(!ok, "{report}");
    assert_eq!(report["committed"], false);
    let error = &report["error"];
    assert_eq!(error["edge"], stack.edges[1].url(), "{report}");
    assert!(
        ["push", "verify"].contains(&error["step"].as_str().unwrap()),
        "{report}"
    );
    let resp = http
        .get(format!("{base}/v1/top_products_by_network/facebook"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-tablecast-version"], "1");

    // Restart it empty, refill it from the snapshot, and a retry commits v2 on both edges.
    stack.edges[1].restart();
    let mut c = stack.command();
    c.args([
        "edge",
        "rehydrate",
        "--api",
        "top_products_by_network",
        "--redis",
        &stack.edges[1].url(),
    ]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, report) = stack.publish("top_products_by_network");
    assert!(ok, "{report}");
    assert_eq!(report["previous_version"], 1);
    let version = report["version"].as_u64().unwrap();
    assert!(version >= 2, "{report}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let resp = http
            .get(format!("{base}/v1/top_products_by_network/facebook"))
            .send()
            .await
            .unwrap();
        if resp.headers()["x-tablecast-version"] == version.to_string().as_str() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "edge 0 never switched to v{version}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
