//! The fallback engine against real Spark in local mode (`spark-submit` from the project venv):
//! four specs whose answers are computed independently below, then the failure paths.
//! Spark runs are serialized (2 cores); each takes ~15-25 s.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::reference::*;
use common::*;
use fallback::{SparkConfig, SparkEngine};
use futures::StreamExt;
use publisher::engine::Engine;

static SPARK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[test]
fn reference_answers_are_not_trivial() {
    // Guards the test data: NULL keys, ties and enough rows per key for the limits to matter.
    let rows = rows();
    let top = expect_top_products(&rows);
    assert!(top.iter().any(|l| l.starts_with("[null]")), "{top:?}");
    assert!(top.iter().any(|l| l.matches("product_id").count() == 3));
    let recent = expect_recent(&rows);
    assert!(recent.iter().any(|l| l.starts_with("[null]")));
    assert_eq!(expect_global_top(&rows)[0].matches("product_id").count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_answers_four_specs_byte_for_byte() {
    if !spark_available() {
        return;
    }
    let _spark = SPARK.lock().await;
    let data = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let engine = SparkEngine::new(spark_config(staging.path())).unwrap();
    let rows = rows();

    // (name, spec, answer, rows_in: global_top's `dt` filter prunes one partition)
    type Case<'a> = (&'a str, &'a str, Vec<String>, u64);
    let cases: [Case; 4] = [
        (
            "top_products",
            TOP_PRODUCTS,
            expect_top_products(&rows),
            200,
        ),
        ("recent", RECENT, expect_recent(&rows), 200),
        (
            "network_stats",
            NETWORK_STATS,
            expect_network_stats(&rows),
            200,
        ),
        ("global_top", GLOBAL_TOP, expect_global_top(&rows), 100),
    ];
    for (name, spec, expected, rows_in) in cases {
        let job = job(data.path(), spec).await;
        if name == "top_products" {
            let plan = engine.explain(&job).await.unwrap();
            eprintln!("{plan}");
            assert!(
                plan.contains("spark-submit")
                    && plan.contains("\"format\": 1")
                    && plan.contains("--master"),
                "{plan}"
            );
        }
        let started = Instant::now();
        let (got, counted) = run_counted(&engine, &job)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: spark job + read took {:.1} s, {} entries",
            started.elapsed().as_secs_f64(),
            got.len()
        );
        assert_eq!(
            got, expected,
            "{name}: Spark's answer differs from the reference"
        );
        assert_eq!(counted, rows_in, "{name}: rows_in");
        assert!(
            staged_leftovers(staging.path()).is_empty(),
            "{name}: staging not cleaned: {:?}",
            staged_leftovers(staging.path())
        );
    }
    // The driver logs stay, one per run.
    assert_eq!(
        std::fs::read_dir(staging.path().join("logs"))
            .unwrap()
            .count(),
        4
    );
}

/// Processes whose command line mentions `needle` (the job's staging path).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

async fn wait_for_process(needle: &str, within: Duration) -> i32 {
    let until = Instant::now() + within;
    loop {
        if let Some(pid) = processes_mentioning(needle).first() {
            return *pid;
        }
        assert!(
            Instant::now() < until,
            "no process mentioning {needle} appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until_gone(needle: &str, within: Duration) {
    let until = Instant::now() + within;
    while !processes_mentioning(needle).is_empty() {
        assert!(
            Instant::now() < until,
            "processes still running: {:?}",
            processes_mentioning(needle)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn engine_message(e: publisher::Error) -> String {
    match e {
        publisher::Error::Engine {
            engine, message, ..
        } => {
            assert_eq!(engine, "spark");
            message
        }
        other => panic!("not an engine error: {other}"),
    }
}

async fn expect_failure(engine: &SparkEngine, job: &publisher::engine::EngineJob) -> String {
    match run_encoded(engine, job).await {
        Ok(lines) => panic!("the run succeeded: {lines:?}"),
        Err(e) => engine_message(e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_failures_name_their_step_quote_the_log_and_clean_up() {
    if !spark_available() {
        return;
    }
    let _spark = SPARK.lock().await;
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let job = job(data.path(), RECENT).await;

    // 1. Spark cannot write its output: the job fails at its `write` step.
    let staging = tempfile::tempdir().unwrap();
    let config = SparkConfig {
        output_dir: Some("file:///proc/tablecast-denied".into()),
        ..spark_config(staging.path())
    };
    let started = Instant::now();
    let message = expect_failure(&SparkEngine::new(config).unwrap(), &job).await;
    eprintln!(
        "unwritable output ({:.1} s): {message}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        message.starts_with("run: spark-submit exited with status 2"),
        "{message}"
    );
    assert!(
        message.contains("tablecast-job: ERROR job=tc-") && message.contains(" step=write: "),
        "{message}"
    );
    assert!(message.contains("last lines:\n"), "{message}");
    assert!(staged_leftovers(staging.path()).is_empty());

    // 2. Timeout: a 1 s budget kills the whole process group.
    let staging = tempfile::tempdir().unwrap();
    let needle = staging.path().to_str().unwrap().to_string();
    let config = SparkConfig {
        timeout_s: 1,
        ..spark_config(staging.path())
    };
    let started = Instant::now();
    let message = expect_failure(&SparkEngine::new(config).unwrap(), &job).await;
    eprintln!(
        "timeout ({:.1} s): {message}",
        started.elapsed().as_secs_f64()
    );
    assert!(message.starts_with("timeout: no result after"), "{message}");
    assert!(
        message.contains("the job was killed") && message.contains("driver log"),
        "{message}"
    );
    assert!(message.contains("last lines:\n"), "{message}");
    wait_until_gone(&needle, Duration::from_secs(5)).await;
    assert!(staged_leftovers(staging.path()).is_empty());

    // 3. The driver's process group is killed from outside mid-run.
    let staging = tempfile::tempdir().unwrap();
    let needle = staging.path().to_str().unwrap().to_string();
    let engine = SparkEngine::new(spark_config(staging.path())).unwrap();
    let run = engine.execute(&job).await.unwrap();
    let pid = wait_for_process(&needle, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SAFETY: signals a process group this test's engine started.
    unsafe {
        let pgid = libc::getpgid(pid);
        assert!(pgid > 1);
        libc::kill(-pgid, libc::SIGKILL);
    }
    let results: Vec<_> = run.into_stream().collect().await;
    let message = match results.into_iter().find_map(|r| r.err()) {
        Some(e) => engine_message(e),
        None => panic!("a killed driver yielded no error"),
    };
    eprintln!("killed driver: {message}");
    assert!(
        message.starts_with("run: spark-submit was killed by signal 9 (SIGKILL)"),
        "{message}"
    );
    assert!(staged_leftovers(staging.path()).is_empty());

    // 4. Dropping the stream cancels the job: processes gone, staging removed.
    let staging = tempfile::tempdir().unwrap();
    let needle = staging.path().to_str().unwrap().to_string();
    let engine = SparkEngine::new(spark_config(staging.path())).unwrap();
    let run = engine.execute(&job).await.unwrap();
    wait_for_process(&needle, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(run);
    wait_until_gone(&needle, Duration::from_secs(15)).await;
    let until = Instant::now() + Duration::from_secs(5);
    while !staged_leftovers(staging.path()).is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(staged_leftovers(staging.path()).is_empty());
}

#[tokio::test]
async fn missing_spark_submit_is_a_transient_submission_refusal() {
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let staging = tempfile::tempdir().unwrap();
    let config = SparkConfig {
        spark_submit: "/nonexistent/bin/spark-submit".into(),
        ..spark_config(staging.path())
    };
    let err = SparkEngine::new(config)
        .unwrap()
        .execute(&job(data.path(), RECENT).await)
        .await
        .err()
        .expect("must fail");
    assert!(err.is_transient(), "{err}");
    let message = engine_message(err);
    assert!(
        message
            .starts_with("submit: submission refused: cannot start /nonexistent/bin/spark-submit"),
        "{message}"
    );
    assert!(staged_leftovers(staging.path()).is_empty());
}

#[tokio::test]
async fn unwritable_staging_dir_fails_at_stage() {
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let config = spark_config(Path::new("/proc/tablecast-staging"));
    let err = SparkEngine::new(config)
        .unwrap()
        .execute(&job(data.path(), RECENT).await)
        .await
        .err()
        .expect("must fail");
    assert!(!err.is_transient());
    let message = engine_message(err);
    assert!(
        message.starts_with("stage: creating /proc/tablecast-staging/tc-recent-"),
        "{message}"
    );
}
