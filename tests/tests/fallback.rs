//! The Spark fallback end to end through the `tablecast` binary: it answers every sample spec
//! byte for byte like the fast track (directory catalog reading the listed files, and the real
//! metastore with Spark reading the table through Hive); a spec whose guard trips publishes
//! through Spark; a memory trip in the middle of the fast-track run re-routes to Spark within
//! the same publish, and the version it commits is the one kept as a snapshot.
//!
//! Spark runs in local mode from the project's venv (about 10–20 s a job on 2 cores).
//! `TABLECAST_SKIP_SPARK=1` skips these tests.

use std::path::{Path, PathBuf};

use tablecast_e2e::{
    Deployment, Metastore, assert_answers_golden, load_fixtures, orc_fixtures, shared_fixtures,
    tablecast_command,
};

fn skip() -> bool {
    let skip = std::env::var_os("TABLECAST_SKIP_SPARK").is_some();
    if skip {
        eprintln!("skipped: TABLECAST_SKIP_SPARK is set");
    }
    skip
}

/// `tablecast run` of sample specs on one path, in one invocation (on the fallback: one Spark
/// session for all); returns each spec's output bytes, in order.
fn run(
    catalog: &str,
    specs: &[&str],
    path: &str,
    env: &[(&str, &str)],
    out_dir: &Path,
) -> Vec<Vec<u8>> {
    let out: PathBuf = out_dir.join(format!("{path}-{}", specs.len()));
    let mut command = tablecast_command();
    command
        .env("TABLECAST_STATE_DIR", out_dir.join("state"))
        .envs(env.iter().copied())
        .args(["run", "--metastore", catalog, "--path", path, "--out"])
        .arg(&out);
    for spec in specs {
        command
            .arg("--spec")
            .arg(fixtures::specs_dir().join(format!("{spec}.toml")));
    }
    let result = command.output().unwrap();
    assert!(
        result.status.success(),
        "{specs:?} on {path} via {catalog}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    match specs {
        [_] => vec![std::fs::read(&out).unwrap()],
        many => many
            .iter()
            .map(|spec| std::fs::read(out.join(format!("{spec}.jsonl"))).unwrap())
            .collect(),
    }
}

fn assert_same(spec: &str, catalog: &str, fasttrack: &[u8], fallback: &[u8]) {
    if fasttrack == fallback {
        return;
    }
    let lines = |b: &[u8]| -> Vec<String> {
        b.split(|c| *c == b'\n')
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    };
    let (a, b) = (lines(fasttrack), lines(fallback));
    let at = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    panic!(
        "{spec} via {catalog}: fallback differs from the fast track at line {} ({} vs {} lines)\n fasttrack: {}\n fallback:  {}",
        at + 1,
        a.len(),
        b.len(),
        a.get(at).map(String::as_str).unwrap_or("<end>"),
        b.get(at).map(String::as_str).unwrap_or("<end>"),
    );
}

/// Every sample spec, both engines, both catalogs: identical bytes, and equal to the golden file.
#[test]
fn fallback_and_fast_track_agree_byte_for_byte_on_every_catalog_and_format() {
    if skip() {
        return;
    }
    let metastore = Metastore::shared();
    load_fixtures(metastore, shared_fixtures());
    let directory = format!("file://{}", shared_fixtures().display());
    let orc_directory = format!("file://{}", orc_fixtures().display());
    let out = tempfile::tempdir().unwrap();
    // Through the directory catalogs (Parquet, and the same tables as ORC) Spark reads the listed
    // files; through the metastore it reads the table by name (`spark.read.table`), as it would
    // on a cluster.
    let catalogs: [(&str, &[(&str, &str)]); 3] = [
        (&directory, &[]),
        (&orc_directory, &[]),
        (
            &metastore.uri(),
            &[("TABLECAST_FALLBACK__READ_VIA", "catalog")],
        ),
    ];
    for (catalog, env) in catalogs {
        let specs = fixtures::SAMPLE_SPECS;
        let started = std::time::Instant::now();
        let fast: Vec<Vec<u8>> = specs
            .iter()
            .flat_map(|spec| run(catalog, &[*spec], "fasttrack", env, out.path()))
            .collect();
        let fast_s = started.elapsed().as_secs_f64();
        // Every spec through Spark in one application: one session for all.
        let started = std::time::Instant::now();
        let slow = run(catalog, specs, "fallback", env, out.path());
        eprintln!(
            "{} specs via {catalog}: fasttrack {fast_s:.1} s, fallback (one Spark session) {:.1} s",
            specs.len(),
            started.elapsed().as_secs_f64()
        );
        for ((spec, fast), slow) in specs.iter().zip(&fast).zip(&slow) {
            assert_same(spec, catalog, fast, slow);
            let golden =
                std::fs::read(fixtures::golden_dir().join(format!("{spec}.jsonl"))).unwrap();
            assert!(
                *fast == golden,
                "{spec} via {catalog} differs from its golden file"
            );
        }
    }
}

fn attempts(report: &serde_json::Value) -> Vec<(String, String)> {
    report["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts: {report}"))
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["abandoned"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tripped_guards_publish_through_spark_and_answer_like_the_fast_track() {
    if skip() {
        return;
    }
    let mut deployment = Deployment::start(2);
    let logs = tempfile::tempdir().unwrap();

    // A row limit below the table's rows: the plan routes to Spark before reading anything.
    let (ok, report) = deployment.publish_with(
        "top_products_by_network",
        &[("TABLECAST_GUARDS__MAX_ROWS", "1000")],
    );
    assert!(ok, "{report}");
    assert_eq!(report["path"], "fallback", "{report}");
    assert_eq!(attempts(&report).len(), 1, "{report}");
    let guard = fixtures::named(&report["guards"], "row_count");
    assert_eq!(guard["tripped"], true, "{report}");

    // A memory pool far below what the window over 100 k rows needs: the fast track starts, trips
    // `memory_pool` mid-run, and the same publish re-runs on Spark.
    let (ok, report) = deployment.publish_with(
        "recent_activity",
        &[("TABLECAST_GUARDS__MEMORY_POOL_BYTES", "262144")],
    );
    assert!(ok, "{report}");
    assert_eq!(report["path"], "fallback", "{report}");
    let tried = attempts(&report);
    assert_eq!(tried.len(), 2, "{report}");
    assert_eq!(tried[0].0, "fasttrack", "{report}");
    assert!(tried[0].1.contains("memory_pool"), "{report}");
    assert_eq!(tried[1].0, "fallback", "{report}");
    let version = report["version"].as_u64().unwrap();

    let (mut lookup, base) = deployment.lookup_service(0, &logs.path().join("lookup0.log"));
    for spec in ["top_products_by_network", "recent_activity"] {
        assert_eq!(assert_answers_golden(&base, spec, 7).await, ["1"], "{spec}");
    }
    lookup.kill();

    // The re-routed version was kept as a snapshot: an edge that comes back empty is refilled
    // with exactly it.
    deployment.edges[1].restart();
    deployment.rehydrate("recent_activity", 1);
    let (_lookup, base) = deployment.lookup_service(1, &logs.path().join("lookup1.log"));
    assert_eq!(
        assert_answers_golden(&base, "recent_activity", 7).await,
        [version.to_string()]
    );
}
