//! Publish to two real edges with the `tablecast` binary, then answer every golden key over HTTP
//! from a real lookup service; an edge killed before a publish leaves every edge serving the old
//! version, and after a restart (empty) and a rehydrate, a retry commits. An edge killed in the
//! middle of a push fails the publish naming it, leaves every edge on the old version with no
//! staged keys, and a retry after restart commits.

use std::path::PathBuf;
use std::time::Duration;

use tablecast_e2e::lookup::{answer_until, connect, pause_writes, scan_keys};
use tablecast_e2e::{Deployment, assert_answers_golden, walk};

fn log_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(format!("{name}.log"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_golden_key_answers_from_an_edge_and_a_dead_edge_changes_nothing() {
    let stack = Deployment::start(2);
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
        // Thousands of alike values are stored compressed; five are not worth a dictionary.
        let compression = &report["compression"];
        match *spec {
            "recent_activity" | "product_stats" => {
                let (raw, stored) = (
                    compression["raw_bytes"].as_u64().unwrap(),
                    compression["stored_bytes"].as_u64().unwrap(),
                );
                eprintln!("{spec}: values {raw} bytes raw, {stored} bytes stored");
                assert!(stored < raw, "{spec}: {report}");
            }
            "top_products_by_network" => assert!(compression.is_null(), "{report}"),
            _ => {}
        }
    }

    let logs = tempfile::tempdir().unwrap();
    let (_lookup, base) = stack.lookup_service(0, &log_path(&logs, "lookup0"));
    for spec in fixtures::SAMPLE_SPECS {
        // Every key of the small APIs, every 13th of the big ones.
        assert_eq!(
            assert_answers_golden(&base, spec, 13).await,
            ["1"],
            "{spec}"
        );
    }
    let http = reqwest::Client::new();
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
    // A compressed version refills the same way, and answers the same.
    stack.edges[1].restart();
    stack.rehydrate("top_products_by_network", 1);
    stack.rehydrate("recent_activity", 1);
    let (_lookup1, base1) = stack.lookup_service(1, &log_path(&logs, "lookup1"));
    assert_eq!(
        assert_answers_golden(&base1, "recent_activity", 13).await,
        ["1"]
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

async fn serving(conn: &mut redis::aio::MultiplexedConnection, api: &str) -> Option<u64> {
    redis::cmd("GET")
        .arg(format!("tc:{{{api}}}:current"))
        .query_async(conn)
        .await
        .unwrap()
}

/// How many of version `version`'s data buckets are still in a Redis.
async fn bucket_keys(
    conn: &mut redis::aio::MultiplexedConnection,
    api: &str,
    version: u64,
) -> usize {
    scan_keys(conn, &format!("tc:{{{api}:v{version}:b*"))
        .await
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edge_killed_mid_push_fails_the_publish_and_a_retry_after_restart_commits() {
    const API: &str = "recent_activity";
    let mut stack = Deployment::start(2);
    let (ok, report) = stack.publish(API);
    assert!(ok, "{report}");
    let v1 = report["version"].as_u64().unwrap();
    let mut watch = connect(&stack.edges[1].url()).await;
    let baseline: u64 = redis::cmd("DBSIZE").query_async(&mut watch).await.unwrap();

    // Start a publish and catch it while its data is landing on edge 1: as soon as bucket keys
    // of the new version appear, pause writes there (the push blocks mid-way), make sure nothing
    // was committed yet, and kill that redis-server.
    let mut attempts = 0;
    let (child, caught_at) = loop {
        attempts += 1;
        assert!(attempts <= 5, "never caught a publish mid-push in 5 tries");
        let mut command = stack.publish_command(API);
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = command.spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut caught = None;
        while std::time::Instant::now() < deadline {
            let size: u64 = redis::cmd("DBSIZE").query_async(&mut watch).await.unwrap();
            if size > baseline + 2 {
                pause_writes(&mut watch).await;
                caught = Some(size - baseline);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let caught = caught.expect("the publish never wrote to edge 1");
        if serving(&mut watch, API).await == Some(v1) {
            break (child, caught);
        }
        // Too late: it committed before the pause. Let it go and try again.
        let _: () = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async(&mut watch)
            .await
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    stack.edges[1].kill();
    let out = child.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(!out.status.success(), "{report}");
    assert_eq!(report["committed"], false, "{report}");
    assert_eq!(report["error"]["edge"], stack.edges[1].url(), "{report}");
    assert!(
        ["push", "verify"].contains(&report["error"]["step"].as_str().unwrap()),
        "killed with {caught_at} keys of the new version on edge 1: {report}"
    );
    let failed = report["version"].as_u64().unwrap();
    assert!(failed > v1, "{report}");

    // Edge 0 still serves v1 and holds nothing of the failed version.
    let mut edge0 = connect(&stack.edges[0].url()).await;
    assert_eq!(serving(&mut edge0, API).await, Some(v1));
    assert_eq!(bucket_keys(&mut edge0, API, failed).await, 0);
    let staged: Vec<u64> = redis::cmd("ZRANGE")
        .arg(format!("tc:{{{API}}}:staged"))
        .arg(0)
        .arg(-1)
        .query_async(&mut edge0)
        .await
        .unwrap();
    assert!(staged.is_empty(), "staged after the failure: {staged:?}");

    // Restart edge 1 (empty), refill it with v1 from the snapshot, and a retry commits on both.
    stack.edges[1].restart();
    stack.rehydrate(API, 1);
    let mut edge1 = connect(&stack.edges[1].url()).await;
    assert_eq!(serving(&mut edge1, API).await, Some(v1));
    let (ok, report) = stack.publish(API);
    assert!(ok, "{report}");
    let v = report["version"].as_u64().unwrap();
    assert!(v > failed, "{report}");
    for conn in [&mut edge0, &mut edge1] {
        assert_eq!(serving(conn, API).await, Some(v));
        assert_eq!(bucket_keys(conn, API, failed).await, 0);
    }
}

/// The snapshot directory runs out of space (a file size limit stands in for a full disk; the
/// write fails with EFBIG): the publish fails at the snapshot step before any edge commits, every
/// edge keeps serving the old version, and nothing of the failed version stays staged.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_snapshot_disk_fails_the_publish_before_any_edge_commits() {
    use std::os::unix::process::CommandExt;
    const API: &str = "recent_activity";
    let deployment = Deployment::start(2);
    let (ok, report) = deployment.publish(API);
    assert!(ok, "{report}");
    let v1 = report["version"].as_u64().unwrap();

    let mut command = deployment.publish_command(API);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            // Between the control plane's store (its database and WAL stay under ~0.3 MB here)
            // and the snapshot of recent_activity (~0.9 MB): only the snapshot hits it.
            let limit = libc::rlimit {
                rlim_cur: 600 * 1024,
                rlim_max: 600 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = command.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(!out.status.success(), "{report}");
    assert_eq!(report["committed"], false, "{report}");
    assert_eq!(report["error"]["step"], "snapshot", "{report}");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains(".snap"),
        "the error names the snapshot file: {report}"
    );
    let failed = report["version"].as_u64().unwrap();
    for edge in &deployment.edges {
        let mut conn = connect(&edge.url()).await;
        assert_eq!(serving(&mut conn, API).await, Some(v1));
        assert_eq!(bucket_keys(&mut conn, API, failed).await, 0);
    }
    // No partial snapshot is left behind, and the kept one still rehydrates.
    let dir = deployment.state.path().join("snapshots").join(API);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(&format!("v{failed}"))),
        "{names:?}"
    );
}

fn run_ok(mut command: std::process::Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The operator's CLI end to end: `versions` lists what each edge keeps, `rollback` switches
/// every edge back at once, `token create`/`revoke` protect an API in place (401 without a
/// token, 403 with a wrong one, 200 with its own; revoked tokens stop working), and the next
/// publish keeps the API protected with the same tokens.
#[tokio::test(flavor = "multi_thread")]
async fn versions_rollback_and_tokens_from_the_cli() {
    const API: &str = "top_products_by_network";
    let deployment = Deployment::start(2);
    for _ in 0..2 {
        let (ok, report) = deployment.publish(API);
        assert!(ok, "{report}");
    }
    let edges: Vec<String> = deployment.edges.iter().map(|e| e.url()).collect();
    let with_edges = |args: &[&str]| {
        let mut c = deployment.command();
        c.args(args);
        for e in &edges {
            c.args(["--edge", e]);
        }
        c
    };

    let listed: serde_json::Value =
        serde_json::from_str(&run_ok(with_edges(&["versions", "--api", API, "--json"]))).unwrap();
    for edge in listed.as_array().unwrap() {
        assert_eq!(edge["serving"], 2, "{listed}");
        let kept: Vec<u64> = fixtures::pluck_u64(&edge["kept"], "version");
        assert_eq!(kept, [2, 1], "{listed}");
    }

    let logs = tempfile::tempdir().unwrap();
    let (_lookup, base) = deployment.lookup_service(1, &logs.path().join("lookup.log"));
    let url = format!("{base}/v1/{API}/facebook");

    // The service caches the serving version and the token set for `version_cache_ms`, so
    // each switch is awaited (bounded), never slept on.
    run_ok(with_edges(&["rollback", "--api", API]));
    for e in &deployment.edges {
        assert_eq!(serving(&mut connect(&e.url()).await, API).await, Some(1));
    }
    assert_eq!(
        answer_until(&url, None, 200, Some("1")).await,
        (200, "1".into())
    );
    run_ok(with_edges(&["rollback", "--api", API, "--to", "2"]));
    answer_until(&url, None, 200, Some("2")).await;

    let plain = |args: &[&str]| {
        let mut c = deployment.command();
        c.args(args);
        c
    };
    // Protect it in place: no republish needed; the API's edges are the store's.
    let token = run_ok(plain(&["token", "create", "--api", API]))
        .trim()
        .to_string();
    assert!(token.len() >= 32, "{token:?}");
    answer_until(&url, None, 401, None).await;
    answer_until(&url, Some(&format!("{token}x")), 403, None).await;
    answer_until(&url, Some(&token), 200, None).await;

    // The next publish keeps the API protected and the token valid.
    let (ok, report) = deployment.publish(API);
    assert!(ok, "{report}");
    answer_until(&url, Some(&token), 200, Some("3")).await;
    answer_until(&url, None, 401, None).await;

    // Only hashes at rest.
    for file in walk(deployment.state.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the token appears in {}",
            file.display()
        );
    }

    let tokens = run_ok(plain(&["token", "list", "--api", API]));
    let id = tokens.split_whitespace().next().unwrap().to_string();
    run_ok(plain(&["token", "revoke", "--api", API, "--id", &id]));
    answer_until(&url, Some(&token), 403, None).await;
}
