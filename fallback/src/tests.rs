//! Without Spark: the config section, the job description, staged-output reading and the
//! shared supervision loop — unit tests, so that the pieces they reach stay private.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::output::{Conformer, list_parts};
use crate::submit::{JobHandle, Outcome, SubmitError, Supervision, tail_lines};
use crate::{
    JobStatus, ReadVia, SparkConfig, SparkEngine, StagedJob, Submitter, SubmitterKind, supervise,
};
use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use common::*;

#[test]
fn config_section_parses_with_defaults_and_refuses_unknown_keys() {
    #[derive(serde::Deserialize)]
    struct App {
        fallback: SparkConfig,
    }
    let app: App = toml::from_str(
        r#"
        [fallback]
        submitter = "oozie"
        oozie_url = "http://oozie:11000/oozie"
        workflow_path = "hdfs://nn/apps/tablecast"
        master = "yarn"
        deploy_mode = "cluster"
        queue = "etl"
        driver_memory = "4g"
        executor_memory = "8g"
        timeout_s = 7200
        output_dir = "hdfs://nn/tmp/tablecast"
        read_via = "catalog"
        conf = { "spark.sql.shuffle.partitions" = "400" }
        oozie_properties = { nameNode = "hdfs://nn:8020", jobTracker = "rm:8032" }
        "#,
    )
    .unwrap();
    let c = app.fallback;
    assert_eq!(c.submitter, SubmitterKind::Oozie);
    assert_eq!(c.read_via, ReadVia::Catalog);
    assert_eq!(c.timeout_s, 7200);
    assert_eq!(c.poll_interval_ms, SparkConfig::default().poll_interval_ms);
    assert_eq!(c.output_root(), "hdfs://nn/tmp/tablecast");
    c.validate().unwrap();

    let empty: App = toml::from_str("[fallback]\n").unwrap();
    assert_eq!(empty.fallback, SparkConfig::default());
    assert_eq!(empty.fallback.master, "local[2]");
    assert!(
        empty
            .fallback
            .spark_submit
            .ends_with(".cache/tablecast/venv/bin/spark-submit")
    );

    let err = toml::from_str::<App>("[fallback]\nmastr = \"yarn\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("unknown field `mastr`"), "{err}");

    let bad = SparkConfig {
        submitter: SubmitterKind::Oozie,
        ..SparkConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("oozie_url"));
    assert!(SparkEngine::new(bad).is_err());
    let bad = SparkConfig {
        deploy_mode: Some("local".into()),
        ..SparkConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("deploy_mode"));
}

#[tokio::test]
async fn job_description_is_typed_json() {
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let spec = r#"
        name = "global_top"
        table = "social.sales"
        limit = 5
        values = [{ column = "product_id" }, { column = "dt" }, { agg = "avg", column = "revenue", as = "avg_rev" }]
        group_by = ["product_id", "dt"]
        order_by = [{ field = "avg_rev", dir = "desc" }]
        filter = [
            { column = "referrals", op = ">=", value = 10 },
            { column = "network", op = "in", value = ["twitter", "日本"] },
            { column = "ts", op = "<", value = "2025-11-03T00:00:00Z" },
            { column = "revenue", op = ">", value = "-50.5" },
            { column = "dt", op = "=", value = "2025-11-02" },
            { column = "network", op = "not_null" },
        ]
    "#;
    let job = job(data.path(), spec).await;
    let engine = SparkEngine::new(SparkConfig {
        staging_dir: data.path().join("staging"),
        ..SparkConfig::default()
    })
    .unwrap();
    let d = engine.job_description(&job, "tc-test-1").unwrap();
    let v: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["input"]["kind"], "files");
    assert_eq!(
        v["input"]["partition_keys"],
        serde_json::json!([{ "index": 0, "name": "dt", "type": "string" }])
    );
    let groups = v["input"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "the dt filter pruned one partition");
    assert_eq!(
        groups[0]["partition_values"],
        serde_json::json!(["2025-11-02"])
    );
    assert!(
        groups[0]["files"][0]
            .as_str()
            .unwrap()
            .starts_with("file:///")
    );
    assert_eq!(
        v["filters"],
        serde_json::json!([
            { "column": "referrals", "op": ">=", "literals": [{ "type": "bigint", "value": 10 }] },
            { "column": "network", "op": "in", "literals": [{ "type": "string", "value": "twitter" }, { "type": "string", "value": "日本" }] },
            { "column": "ts", "op": "<", "literals": [{ "type": "timestamp", "value": BASE_MICROS + 48 * 3_600_000_000 }] },
            { "column": "revenue", "op": ">", "literals": [{ "type": "decimal", "value": "-50.50", "precision": 12, "scale": 2 }] },
            { "column": "dt", "op": "=", "literals": [{ "type": "string", "value": "2025-11-02" }] },
            { "column": "network", "op": "not_null", "literals": [] },
        ])
    );
    assert_eq!(
        v["outputs"][2],
        serde_json::json!({ "name": "avg_rev", "source": { "agg": "avg", "column": "revenue" }, "type": "decimal(16,6)" })
    );
    assert_eq!(v["grouping"], serde_json::json!(["product_id", "dt"]));
    assert_eq!(
        v["order"][0],
        serde_json::json!({ "output": 2, "descending": true })
    );
    assert_eq!(v["keys"], serde_json::json!([]));
    assert!(
        v["output"]["path"]
            .as_str()
            .unwrap()
            .ends_with("/staging/tc-test-1/out")
    );
}

fn write_part(path: &std::path::Path, keys: Vec<Option<&str>>) {
    let schema = Arc::new(Schema::new(vec![Field::new("__k0", DataType::Utf8, true)]));
    let batch =
        RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(keys))]).unwrap();
    fixtures::write_parquet(path, &[batch]).unwrap();
}

#[tokio::test]
async fn part_files_are_read_in_numeric_order_without_markers() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "part-100000-u-c000.snappy.parquet",
        "part-99999-u-c000.snappy.parquet",
        "part-00002-u-c000.snappy.parquet",
    ] {
        write_part(&dir.path().join(name), vec![Some("x")]);
    }
    std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
    std::fs::write(
        dir.path().join(".part-00002-u-c000.snappy.parquet.crc"),
        b"crc",
    )
    .unwrap();
    let parts = list_parts(dir.path().to_str().unwrap()).await.unwrap();
    let names: Vec<&str> = parts
        .iter()
        .map(|p| p.url.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "part-00002-u-c000.snappy.parquet",
            "part-99999-u-c000.snappy.parquet",
            "part-100000-u-c000.snappy.parquet"
        ]
    );
}

#[tokio::test]
async fn conformer_casts_to_spec_types_and_catches_unclustered_keys() {
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let job = job(
        data.path(),
        r#"
        name = "x"
        table = "social.sales"
        key = ["network"]
        values = [{ column = "ts" }, { column = "referrals" }]
    "#,
    )
    .await;
    let mut c = Conformer::new(&job.spec).unwrap();
    // As Spark writes them: UTC-adjusted timestamps, a narrower integer.
    let staged = |keys: Vec<Option<&str>>| {
        let n = keys.len();
        let schema = Arc::new(Schema::new(vec![
            Field::new("__k0", DataType::Utf8, true),
            Field::new(
                "__v0",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("__v1", DataType::Int32, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(BASE_MICROS); n])
                        .with_timezone("UTC"),
                ),
                Arc::new(arrow::array::Int32Array::from(vec![Some(7); n])),
            ],
        )
        .unwrap()
    };
    let out = c
        .conform(&staged(vec![Some("a"), Some("a"), Some("b")]))
        .unwrap();
    assert_eq!(
        out.schema().field(1).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        out.column(1)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap()
            .value(0),
        BASE_MICROS
    );
    assert_eq!(
        out.column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0),
        7
    );
    // Continues in the next batch (file): fine; nulls sort last.
    c.conform(&staged(vec![Some("b"), Some("c"), None]))
        .unwrap();
    let err = c.conform(&staged(vec![Some("a")])).unwrap_err();
    assert!(err.contains("not ordered by key at row 6"), "{err}");
    let err = Conformer::new(&job.spec)
        .unwrap()
        .conform(&staged(vec![None, Some("a")]))
        .unwrap_err();
    assert!(err.contains("not ordered by key"), "{err}");
}

#[test]
fn log_tail_keeps_the_job_error_line() {
    let mut log: Vec<String> = vec!["tablecast-job: ERROR job=tc-a-1 step=write: boom".into()];
    log.extend((0..50).map(|i| format!("\tat frame{i}")));
    let tail = tail_lines(&log.join("\n"), 5);
    assert_eq!(
        tail,
        "tablecast-job: ERROR job=tc-a-1 step=write: boom\n[…]\n\tat frame45\n\tat frame46\n\tat frame47\n\tat frame48\n\tat frame49"
    );
    assert_eq!(tail_lines("a\nb", 30), "a\nb");
}

/// A submitter whose job runs forever (or whose polls fail), counting calls.
struct Forever {
    polls: AtomicUsize,
    kills: AtomicUsize,
    failing_polls: bool,
}

#[async_trait::async_trait]
impl Submitter for Forever {
    fn kind(&self) -> &'static str {
        "forever"
    }
    fn describe(&self, _: &StagedJob) -> String {
        String::new()
    }
    async fn submit(&self, _: &StagedJob) -> Result<JobHandle, SubmitError> {
        Ok(JobHandle {
            id: "1".into(),
            submitter: "forever",
        })
    }
    async fn poll(&self, _: &JobHandle) -> Result<JobStatus, String> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.failing_polls {
            Err("connection reset".into())
        } else {
            Ok(JobStatus::Running)
        }
    }
    async fn kill(&self, _: &JobHandle) -> Result<(), String> {
        self.kills.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn log_excerpt(&self, _: &JobHandle, _: usize) -> String {
        "last words".into()
    }
    fn kill_now(&self, _: &JobHandle) {}
}

#[tokio::test]
async fn supervision_backs_off_times_out_and_kills() {
    let s = Forever {
        polls: AtomicUsize::new(0),
        kills: AtomicUsize::new(0),
        failing_polls: false,
    };
    let h = JobHandle {
        id: "1".into(),
        submitter: "forever",
    };
    let config = Supervision {
        timeout: Duration::from_millis(700),
        poll_interval: Duration::from_millis(10),
        max_poll_interval: Duration::from_millis(160),
        log_lines: 30,
        max_poll_errors: 3,
    };
    let started = Instant::now();
    let outcome = supervise(&s, &h, &config, started, std::future::pending()).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(&outcome, Outcome::TimedOut { excerpt, .. } if excerpt == "last words"),
        "{outcome:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    // 10+20+40+80+160+160+160… ms: about 8 polls in 700 ms, not 70.
    let polls = s.polls.load(Ordering::SeqCst);
    assert!((5..=12).contains(&polls), "{polls} polls");
    assert_eq!(s.kills.load(Ordering::SeqCst), 1);

    // Cancellation kills at once.
    let outcome = supervise(
        &s,
        &h,
        &config,
        Instant::now(),
        tokio::time::sleep(Duration::from_millis(50)),
    )
    .await;
    assert_eq!(outcome, Outcome::Cancelled);
    assert_eq!(s.kills.load(Ordering::SeqCst), 2);

    // A submitter that stops answering: lost after max_poll_errors + 1 failed polls, killed.
    let s = Forever {
        polls: AtomicUsize::new(0),
        kills: AtomicUsize::new(0),
        failing_polls: true,
    };
    let outcome = supervise(&s, &h, &config, Instant::now(), std::future::pending()).await;
    assert!(
        matches!(&outcome, Outcome::Lost { message, .. } if message.contains("connection reset")),
        "{outcome:?}"
    );
    assert_eq!(s.polls.load(Ordering::SeqCst), 4);
    assert_eq!(s.kills.load(Ordering::SeqCst), 1);
}

/// A TEST DOUBLE submitter that takes batches and records what it was given; its job fails
/// at once with the program's error line for the second job.
#[derive(Default)]
struct RecordingBatches {
    submitted: std::sync::Mutex<Vec<StagedJob>>,
}

#[async_trait::async_trait]
impl Submitter for RecordingBatches {
    fn kind(&self) -> &'static str {
        "recording"
    }
    fn runs_batches(&self) -> bool {
        true
    }
    fn describe(&self, _: &StagedJob) -> String {
        String::new()
    }
    async fn submit(&self, job: &StagedJob) -> Result<JobHandle, SubmitError> {
        self.submitted.lock().unwrap().push(job.clone());
        Ok(JobHandle {
            id: "7".into(),
            submitter: "recording",
        })
    }
    async fn poll(&self, _: &JobHandle) -> Result<JobStatus, String> {
        Ok(JobStatus::Failed("exit status 2".into()))
    }
    async fn kill(&self, _: &JobHandle) -> Result<(), String> {
        Ok(())
    }
    async fn log_excerpt(&self, _: &JobHandle, _: usize) -> String {
        "tablecast-job: ERROR job=tc-second step=write: disk full".into()
    }
    fn kill_now(&self, _: &JobHandle) {}
}

/// Several jobs are staged apart and submitted once: the first job's description is the
/// argument, the others follow it (one Spark session); a failure of the application is every
/// run's error, naming the job and step the program reported; the staging is removed.
#[tokio::test]
async fn a_batch_is_one_submission_with_every_description_and_fails_as_one() {
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let submitter = std::sync::Arc::new(RecordingBatches::default());
    let engine = SparkEngine::with_submitter(
        SparkConfig {
            staging_dir: data.path().join("staging"),
            poll_interval_ms: 10,
            ..SparkConfig::default()
        },
        submitter.clone(),
    )
    .unwrap();
    let specs = [
        "name = \"first\"\ntable = \"social.sales\"\nkey = [\"network\"]\nvalues = [{ column = \"product_id\" }]\n",
        "name = \"second\"\ntable = \"social.sales\"\nvalues = [{ agg = \"count\", as = \"n\" }]\n",
    ];
    let mut jobs = Vec::new();
    for spec in specs {
        jobs.push(job(data.path(), spec).await);
    }
    let runs = publisher::engine::Engine::execute_all(&engine, &jobs)
        .await
        .unwrap();
    assert_eq!(runs.len(), 2);
    {
        let submitted = submitter.submitted.lock().unwrap();
        assert_eq!(submitted.len(), 1, "one application for the batch");
        let batch = &submitted[0];
        assert_eq!(batch.app_name, "tablecast-batch-2");
        assert_eq!(batch.more_job_jsons.len(), 1);
        for description in std::iter::once(&batch.job_json).chain(&batch.more_job_jsons) {
            let staged: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(description).unwrap()).unwrap();
            assert_eq!(staged["format"], 1, "{}", description.display());
        }
        let second = std::fs::read_to_string(&batch.more_job_jsons[0]).unwrap();
        assert!(second.contains("\"second\""), "{second}");
    }
    for run in runs {
        let error = futures::StreamExt::next(&mut run.into_stream())
            .await
            .expect("an item")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("job=tc-second step=write: disk full")
                && error.contains("recording job 7"),
            "{error}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(data.path().join("staging"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "logs")
        .collect();
    assert!(left.is_empty(), "staging left: {left:?}");
}
