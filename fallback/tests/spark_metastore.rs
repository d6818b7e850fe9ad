//! The fallback engine reading through a real Hive metastore (`read_via = "catalog"`):
//! `spark.read.table` with Hive support and `spark.hadoop.hive.metastore.uris`.
//!
//! Uses `TABLECAST_TEST_METASTORE=thrift://host:port` when set; otherwise starts one with
//! `scripts/metastore` (Hive 2.3 from the venv's pyspark jars, ~20 s) on a free port and a
//! temporary state, and stops it at the end.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::reference::*;
use common::*;
use fallback::{Input, ReadVia, SparkConfig, SparkEngine};
use publisher::catalog::CatalogConfig;

/// A metastore this test started; stopped on drop.
struct Started {
    pid: Option<i32>,
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // SAFETY: signals the metastore process this test started (its pid file).
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

fn start_metastore(state: &Path) -> (String, Started) {
    if let Ok(uri) = std::env::var("TABLECAST_TEST_METASTORE") {
        return (uri, Started { pid: None });
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/metastore");
    let out = Command::new(&script)
        .args([
            "--port",
            &port.to_string(),
            "--state",
            state.to_str().unwrap(),
            "--background",
        ])
        .output()
        .unwrap();
    let pid = std::fs::read_to_string(state.join("metastore.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    let started = Started { pid };
    assert!(
        out.status.success(),
        "scripts/metastore failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(state.join("metastore.log")).unwrap_or_default()
    );
    let uri = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(uri.starts_with("thrift://"), "{uri}");
    (uri, started)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_reads_a_metastore_table_byte_for_byte() {
    if !spark_available() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let warehouse = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let (uri, _metastore) = start_metastore(state.path());
    eprintln!(
        "metastore {uri} ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // A fresh database name per run, so a shared metastore is left alone.
    let db = format!("fallback{}", std::process::id());
    write_sales(warehouse.path());
    std::fs::rename(warehouse.path().join("social"), warehouse.path().join(&db)).unwrap();
    let registered =
        fixtures::metastore::register(uri.trim_start_matches("thrift://"), warehouse.path())
            .await
            .unwrap();
    assert!(
        registered.contains(&format!("{db}.sales")),
        "{registered:?}"
    );

    let catalog = publisher::catalog::open(&uri, &CatalogConfig::default())
        .await
        .unwrap();
    let spec = RECENT.replace("social.sales", &format!("{db}.sales"));
    let job = job_from(catalog.as_ref(), &spec).await;
    assert!(job.catalog_uri.starts_with("thrift://"));

    let engine = SparkEngine::new(SparkConfig {
        read_via: ReadVia::Catalog,
        ..spark_config(staging.path())
    })
    .unwrap();
    let description = engine.job_description(&job, "tc-check").unwrap();
    assert!(
        matches!(&description.input, Input::Catalog { table, .. } if table == "sales"),
        "{:?}",
        description.input
    );
    let plan = publisher::engine::Engine::explain(&engine, &job)
        .await
        .unwrap();
    assert!(
        plan.contains("spark.sql.catalogImplementation=hive")
            && plan.contains(&format!("spark.hadoop.hive.metastore.uris={uri}")),
        "{plan}"
    );

    let started = Instant::now();
    let (got, rows_in) = run_counted(&engine, &job).await.unwrap();
    eprintln!(
        "recent via the metastore: spark job + read took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(got, expect_recent(&rows()));
    assert_eq!(rows_in, 200, "rows_in as the job observed it on its input");
    assert!(staged_leftovers(staging.path()).is_empty());
}
