//! The Oozie submitter against a STUB Oozie server (axum, in this file) that follows the
//! documented REST API v2: `POST /oozie/v2/jobs?action=start` with a `<configuration>` body,
//! `GET /oozie/v2/job/{id}?show=info|log`, `PUT /oozie/v2/job/{id}?action=kill`. No Spark runs:
//! on success the stub plays the cluster and writes the staged Parquet output itself.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::*;
use fallback::{JobStatus, OozieSubmitter, SparkConfig, SparkEngine, Submitter, SubmitterKind};

#[derive(Clone, Copy, PartialEq)]
enum Scenario {
    /// RUNNING for two polls, then SUCCEEDED, with the output written at submission.
    Succeed,
    /// RUNNING once, then FAILED with an action error.
    Fail,
    /// RUNNING until killed.
    Hang,
    /// Every submission answered 503.
    Unavailable,
}

struct Stub {
    scenario: Scenario,
    /// Properties of each submission, in order.
    submissions: Vec<HashMap<String, String>>,
    polls: HashMap<String, usize>,
    killed: Vec<String>,
    status: HashMap<String, String>,
}

type Shared = Arc<Mutex<Stub>>;

/// Parses `<property><name>…</name><value>…</value></property>` pairs.
fn properties(xml: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for prop in xml.split("<property>").skip(1) {
        let field = |tag: &str| {
            let start = prop.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
            let end = prop.find(&format!("</{tag}>")).unwrap();
            quick_xml::escape::unescape(&prop[start..end])
                .unwrap()
                .to_string()
        };
        out.insert(field("name"), field("value"));
    }
    out
}

fn url_path(url: &str) -> PathBuf {
    url::Url::parse(url).unwrap().to_file_path().unwrap()
}

/// Plays the cluster: reads the job description it was given and writes the sorted output of
/// `count(*) by network` in two part files, as Spark would (types, names, markers).
fn run_cluster_job(props: &HashMap<String, String>) {
    let job: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(url_path(&props["tablecastJobJson"])).unwrap(),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(url_path(&props["tablecastProgram"]))
            .unwrap()
            .contains("def main(argv)")
    );
    let out = url_path(job["output"]["path"].as_str().unwrap());
    assert_eq!(job["output"]["path"], props["tablecastOutput"].as_str());
    std::fs::create_dir_all(&out).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("__k0", DataType::Utf8, true),
        Field::new("__v0", DataType::Int64, true),
    ]));
    // Written out of name order on purpose: the reader orders part files itself.
    type Part<'a> = (&'a str, Vec<Option<&'a str>>, Vec<i64>);
    let parts: [Part; 2] = [
        (
            "part-00001-stub-c000.snappy.parquet",
            vec![Some("日本"), None],
            vec![2, 1],
        ),
        (
            "part-00000-stub-c000.snappy.parquet",
            vec![Some("a/b"), Some("twitter")],
            vec![3, 5],
        ),
    ];
    for (name, keys, counts) in parts {
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(Int64Array::from(counts)),
            ],
        )
        .unwrap();
        fixtures::write_parquet(&out.join(name), &[batch]).unwrap();
    }
    std::fs::write(out.join("_SUCCESS"), b"").unwrap();
    std::fs::write(out.join("_tablecast_stats.json"), br#"{"rows_in": 200}"#).unwrap();
}

async fn submit(
    State(stub): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    let mut s = stub.lock().unwrap();
    if s.scenario == Scenario::Unavailable {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                ("oozie-error-code", "E0000"),
                ("oozie-error-message", "server in safe mode"),
            ],
            "",
        )
            .into_response();
    }
    if q.get("action").map(String::as_str) != Some("start") {
        return (StatusCode::BAD_REQUEST, "action=start expected").into_response();
    }
    let props = properties(&body);
    let id = format!("{:07}-200101000000000-oozie-oozi-W", s.submissions.len());
    if s.scenario == Scenario::Succeed {
        run_cluster_job(&props);
    }
    s.submissions.push(props);
    s.status.insert(id.clone(), "RUNNING".into());
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "id": id })),
    )
        .into_response()
}

async fn job_info(
    State(stub): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = stub.lock().unwrap();
    let scenario = s.scenario;
    let Some(status) = s.status.get(&id).cloned() else {
        return (StatusCode::NOT_FOUND, [("oozie-error-code", "E0604")], "").into_response();
    };
    if q.get("show").map(String::as_str) == Some("log") {
        return "2001-01-01 INFO ActionStartXCommand - Start action [spark]\n2001-01-01 WARN SparkMain - exit code [2]\n".into_response();
    }
    let polls = {
        let n = s.polls.entry(id.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let status = match (scenario, status.as_str()) {
        (_, "KILLED") => "KILLED".to_string(),
        (Scenario::Succeed, _) if polls > 2 => "SUCCEEDED".into(),
        (Scenario::Fail, _) if polls > 1 => "FAILED".into(),
        (_, s) => s.to_string(),
    };
    s.status.insert(id.clone(), status.clone());
    let actions = if status == "FAILED" {
        serde_json::json!([
            { "name": ":start:", "status": "OK", "errorCode": null, "errorMessage": null },
            { "name": "spark", "status": "ERROR", "errorCode": "JA018",
              "errorMessage": "Main class [org.apache.oozie.action.hadoop.SparkMain], exit code [2]" },
        ])
    } else {
        serde_json::json!([{ "name": "spark", "status": "RUNNING", "errorCode": null, "errorMessage": null }])
    };
    axum::Json(serde_json::json!({
        "id": id, "appName": "tablecast", "status": status, "user": "analyst",
        "consoleUrl": format!("http://stub/oozie?job={id}"), "actions": actions,
    }))
    .into_response()
}

async fn job_action(
    State(stub): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = stub.lock().unwrap();
    if q.get("action").map(String::as_str) != Some("kill") || !s.status.contains_key(&id) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    s.killed.push(id.clone());
    s.status.insert(id, "KILLED".into());
    StatusCode::OK.into_response()
}

async fn oozie_stub(scenario: Scenario) -> (SocketAddr, Shared) {
    let stub = Arc::new(Mutex::new(Stub {
        scenario,
        submissions: vec![],
        polls: HashMap::new(),
        killed: vec![],
        status: HashMap::new(),
    }));
    let app = Router::new()
        .route("/oozie/v2/jobs", post(submit))
        .route("/oozie/v2/job/{id}", get(job_info).put(job_action))
        .with_state(Arc::clone(&stub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, stub)
}

fn oozie_config(addr: SocketAddr, staging: &std::path::Path) -> SparkConfig {
    SparkConfig {
        submitter: SubmitterKind::Oozie,
        oozie_url: Some(format!("http://{addr}/oozie/")),
        workflow_path: Some("hdfs://nn:8020/apps/tablecast".into()),
        user: "analyst".into(),
        staging_dir: staging.to_path_buf(),
        poll_interval_ms: 20,
        max_poll_interval_ms: 100,
        kill_grace_ms: 1000,
        timeout_s: 30,
        oozie_properties: [("nameNode".to_string(), "hdfs://nn:8020".to_string())].into(),
        ..SparkConfig::default()
    }
}

const COUNT_BY_NETWORK: &str = r#"
    name = "per_network"
    table = "social.sales"
    key = ["network"]
    shape = "object"
    values = [{ agg = "count", as = "n" }]
"#;

async fn encoded(
    engine: &SparkEngine,
    job: &publisher::engine::EngineJob,
) -> (publisher::Result<Vec<String>>, u64) {
    let run = match publisher::engine::Engine::execute(engine, job).await {
        Ok(run) => run,
        Err(e) => return (Err(e), 0),
    };
    let progress = Arc::clone(&run.progress);
    let mut encoder = publisher::canonical::EntryEncoder::new(&job.spec);
    let mut entries = Vec::new();
    let mut batches = run.into_stream();
    while let Some(b) = futures::StreamExt::next(&mut batches).await {
        match b {
            Ok(b) => encoder.push(&b, &mut entries).unwrap(),
            Err(e) => return (Err(e), progress.rows_in()),
        }
    }
    encoder.finish(&mut entries).unwrap();
    let lines = entries.iter().map(ToString::to_string).collect();
    (Ok(lines), progress.rows_in())
}

fn message(e: publisher::Error) -> String {
    match e {
        publisher::Error::Engine {
            engine, message, ..
        } if engine == "spark" => message,
        other => panic!("not a spark engine error: {other}"),
    }
}

#[tokio::test]
async fn oozie_stub_submit_poll_success_reads_the_staged_output() {
    let (addr, stub) = oozie_stub(Scenario::Succeed).await;
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let staging = tempfile::tempdir().unwrap();
    let engine = SparkEngine::new(oozie_config(addr, staging.path())).unwrap();
    let job = job(data.path(), COUNT_BY_NETWORK).await;

    let plan = publisher::engine::Engine::explain(&engine, &job)
        .await
        .unwrap();
    assert!(
        plan.contains("Spark job via oozie")
            && plan.contains("/oozie/v2/jobs?action=start&user.name=analyst"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "<name>oozie.wf.application.path</name><value>hdfs://nn:8020/apps/tablecast</value>"
        ),
        "{plan}"
    );

    let (lines, rows_in) = encoded(&engine, &job).await;
    assert_eq!(
        lines.unwrap(),
        vec![
            r#"["a/b"] {"n":3}"#,
            r#"["twitter"] {"n":5}"#,
            r#"["日本"] {"n":2}"#,
            r#"[null] {"n":1}"#
        ]
    );
    assert_eq!(rows_in, 200, "rows_in comes from the job's statistics file");
    assert!(
        staged_leftovers(staging.path()).is_empty(),
        "{:?}",
        staged_leftovers(staging.path())
    );

    let s = stub.lock().unwrap();
    assert_eq!(s.submissions.len(), 1);
    let props = &s.submissions[0];
    assert_eq!(props["user.name"], "analyst");
    assert_eq!(
        props["oozie.wf.application.path"],
        "hdfs://nn:8020/apps/tablecast"
    );
    assert_eq!(props["nameNode"], "hdfs://nn:8020");
    assert!(props["tablecastJobJson"].ends_with("/job.json"));
    assert!(props["tablecastOutput"].ends_with("/out"));
    assert!(props["tablecastSparkOpts"].contains("--conf spark.log.level=WARN"));
    assert!(
        *s.polls.values().next().unwrap() >= 3,
        "polled until SUCCEEDED"
    );
    assert!(s.killed.is_empty());
}

#[tokio::test]
async fn oozie_stub_failure_surfaces_the_action_error_message() {
    let (addr, stub) = oozie_stub(Scenario::Fail).await;
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let staging = tempfile::tempdir().unwrap();
    let engine = SparkEngine::new(oozie_config(addr, staging.path())).unwrap();
    let (result, _) = encoded(&engine, &job(data.path(), COUNT_BY_NETWORK).await).await;
    let m = message(result.unwrap_err());
    assert!(m.starts_with("run: oozie workflow FAILED: action `spark` ERROR: Main class [org.apache.oozie.action.hadoop.SparkMain], exit code [2] [JA018]"), "{m}");
    assert!(
        m.contains("oozie job 0000000-200101000000000-oozie-oozi-W"),
        "{m}"
    );
    assert!(
        m.contains("WARN SparkMain - exit code [2]"),
        "the job log is quoted: {m}"
    );
    assert!(staged_leftovers(staging.path()).is_empty());
    assert!(
        stub.lock().unwrap().killed.is_empty(),
        "a failed job needs no kill"
    );
}

#[tokio::test]
async fn oozie_stub_kill_on_timeout() {
    let (addr, stub) = oozie_stub(Scenario::Hang).await;
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let staging = tempfile::tempdir().unwrap();
    let config = SparkConfig {
        timeout_s: 1,
        ..oozie_config(addr, staging.path())
    };
    let engine = SparkEngine::new(config).unwrap();
    let started = Instant::now();
    let (result, _) = encoded(&engine, &job(data.path(), COUNT_BY_NETWORK).await).await;
    let m = message(result.unwrap_err());
    assert!(m.starts_with("timeout: no result after 1."), "{m}");
    assert!(
        m.contains("the job was killed") && m.contains("oozie workflow KILLED"),
        "{m}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let s = stub.lock().unwrap();
    assert_eq!(
        s.killed,
        vec!["0000000-200101000000000-oozie-oozi-W".to_string()]
    );
    assert!(staged_leftovers(staging.path()).is_empty());
}

#[tokio::test]
async fn oozie_stub_dropping_the_stream_kills_the_workflow() {
    let (addr, stub) = oozie_stub(Scenario::Hang).await;
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let staging = tempfile::tempdir().unwrap();
    let engine = SparkEngine::new(oozie_config(addr, staging.path())).unwrap();
    let run =
        publisher::engine::Engine::execute(&engine, &job(data.path(), COUNT_BY_NETWORK).await)
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(run);
    let until = Instant::now() + Duration::from_secs(5);
    while (stub.lock().unwrap().killed.is_empty() || !staged_leftovers(staging.path()).is_empty())
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stub.lock().unwrap().killed.len(), 1);
    assert!(staged_leftovers(staging.path()).is_empty());
}

#[tokio::test]
async fn oozie_stub_unavailable_is_a_transient_submission_refusal() {
    let (addr, _stub) = oozie_stub(Scenario::Unavailable).await;
    let data = tempfile::tempdir().unwrap();
    write_sales(data.path());
    let staging = tempfile::tempdir().unwrap();
    let engine = SparkEngine::new(oozie_config(addr, staging.path())).unwrap();
    let err =
        publisher::engine::Engine::execute(&engine, &job(data.path(), COUNT_BY_NETWORK).await)
            .await
            .err()
            .unwrap();
    assert!(err.is_transient(), "{err}");
    let m = message(err);
    assert!(m.starts_with("submit: submission refused: POST"), "{m}");
    assert!(
        m.contains("503") && m.contains("E0000: server in safe mode"),
        "{m}"
    );
    assert!(staged_leftovers(staging.path()).is_empty());

    // Nobody listening at all: refused too.
    let dead = SparkConfig {
        oozie_url: Some("http://127.0.0.1:9/oozie".into()),
        ..oozie_config(addr, staging.path())
    };
    let err = publisher::engine::Engine::execute(
        &SparkEngine::new(dead).unwrap(),
        &job(data.path(), COUNT_BY_NETWORK).await,
    )
    .await
    .err()
    .unwrap();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn oozie_stub_submitter_protocol_step_by_step() {
    let (addr, stub) = oozie_stub(Scenario::Fail).await;
    let staging = tempfile::tempdir().unwrap();
    let submitter = OozieSubmitter::new(Arc::new(oozie_config(addr, staging.path()))).unwrap();
    let staged = fallback::StagedJob {
        id: "tc-x-1".into(),
        app_name: "tablecast-x".into(),
        local_dir: staging.path().join("tc-x-1"),
        job_json: staging.path().join("tc-x-1/job.json"),
        more_job_jsons: Vec::new(),
        program: staging.path().join("tc-x-1/tablecast_job.py"),
        remote_dir: "hdfs://nn:8020/tmp/tc-x-1".into(),
        remote_job_json: "hdfs://nn:8020/tmp/tc-x-1/job.json".into(),
        remote_program: "hdfs://nn:8020/tmp/tc-x-1/tablecast_job.py".into(),
        output: "hdfs://nn:8020/tmp/tc-x-1/out".into(),
        log: staging.path().join("logs/tc-x-1.log"),
        job_conf: vec![(
            "spark.hadoop.hive.metastore.uris".into(),
            "thrift://hms:9083".into(),
        )],
    };
    let xml = submitter.configuration_xml(&staged);
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<configuration>"),
        "{xml}"
    );
    let handle = submitter.submit(&staged).await.unwrap();
    assert_eq!(submitter.poll(&handle).await.unwrap(), JobStatus::Running);
    match submitter.poll(&handle).await.unwrap() {
        JobStatus::Failed(m) => assert!(
            m.contains("exit code [2]") && m.contains("console: http://stub/oozie"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    let props = &stub.lock().unwrap().submissions[0];
    assert_eq!(
        props["tablecastSparkOpts"],
        "--conf spark.log.level=WARN --conf spark.hadoop.hive.metastore.uris=thrift://hms:9083"
    );
    assert_eq!(
        props["tablecastJobJson"],
        "hdfs://nn:8020/tmp/tc-x-1/job.json"
    );
}
