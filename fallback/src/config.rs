//! `SparkConfig`: the `[fallback]` section of `tablecast.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the Spark job reaches a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitterKind {
    /// Run `spark-submit` as a child process (local mode, YARN client or cluster mode).
    #[default]
    SparkSubmit,
    /// Start a workflow on an Oozie server (REST API v2) whose Spark action runs the job.
    Oozie,
}

/// Where the Spark job reads the table from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadVia {
    /// The listed files when the table is Parquet (exactly what the guards measured and what the
    /// fast track reads); the metastore table otherwise (`thrift://` catalogs only).
    #[default]
    Auto,
    /// Always the listed Parquet files, partition values added as columns.
    Files,
    /// Always `spark.read.table("db.table")` through the Hive metastore.
    Catalog,
}

/// Settings of the fallback engine. Every field has a default, so `[fallback]` may be empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SparkConfig {
    pub submitter: SubmitterKind,
    pub read_via: ReadVia,

    /// The `spark-submit` executable. Default: `$HOME/.cache/tablecast/venv/bin/spark-submit`.
    pub spark_submit: PathBuf,
    /// `SPARK_HOME` for `spark-submit`; unset, the `pyspark` package of the venv is found
    /// through `PATH`, which always gets the directory of `spark_submit` prepended.
    pub spark_home: Option<PathBuf>,
    /// Python for driver and workers (`PYSPARK_PYTHON`). Default: the `python3` beside
    /// `spark_submit` when it exists.
    pub python: Option<PathBuf>,
    pub master: String,
    /// `client` or `cluster`; unset, spark-submit's own default (client).
    pub deploy_mode: Option<String>,
    /// YARN queue (`--queue`).
    pub queue: Option<String>,
    pub driver_memory: Option<String>,
    pub executor_memory: Option<String>,
    pub executor_cores: Option<u32>,
    pub num_executors: Option<u32>,
    /// Extra `--conf key=value` pairs (Oozie: appended to the action's spark options).
    pub conf: BTreeMap<String, String>,
    /// Extra environment of `spark-submit` (e.g. `HADOOP_CONF_DIR`, `JAVA_HOME`).
    pub env: BTreeMap<String, String>,
    /// Driver log level (`spark.log.level`), so that the log excerpt in errors is readable.
    pub log_level: String,

    /// Local folder for job descriptions, the job program and driver logs. Default:
    /// `$TMPDIR/tablecast-fallback`.
    pub staging_dir: PathBuf,
    /// URL under which Spark writes its staged output (`hdfs://…` for a cluster). Default: the
    /// local `staging_dir`. With Oozie the job description and program are written here too.
    pub output_dir: Option<String>,
    /// Driver logs kept in `staging_dir/logs` (older ones are deleted).
    pub keep_logs: usize,
    /// Lines of the driver log quoted in errors.
    pub log_tail_lines: usize,

    /// The Spark job's budget, from submission to its end (reading the staged output is paced
    /// by the consumer and not included). On expiry the job is killed.
    pub timeout_s: u64,
    /// First poll interval; doubles up to `max_poll_interval_ms`.
    pub poll_interval_ms: u64,
    pub max_poll_interval_ms: u64,
    /// After SIGTERM (or an Oozie kill), how long to wait before SIGKILL.
    pub kill_grace_ms: u64,

    /// Oozie base URL, e.g. `http://oozie:11000/oozie`.
    pub oozie_url: Option<String>,
    /// `oozie.wf.application.path`: the deployed workflow (see `oozie/workflow.xml`).
    pub workflow_path: Option<String>,
    /// `user.name` of Oozie submissions.
    pub user: String,
    /// Extra Oozie job properties (`nameNode`, `jobTracker`, `queueName`, …).
    pub oozie_properties: BTreeMap<String, String>,
    /// Per HTTP request to Oozie.
    pub request_timeout_ms: u64,
}

impl Default for SparkConfig {
    fn default() -> Self {
        let venv_submit = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/tablecast/venv/bin/spark-submit"))
            .unwrap_or_else(|| PathBuf::from("spark-submit"));
        SparkConfig {
            submitter: SubmitterKind::SparkSubmit,
            read_via: ReadVia::Auto,
            spark_submit: venv_submit,
            spark_home: None,
            python: None,
            master: "local[2]".into(),
            deploy_mode: None,
            queue: None,
            driver_memory: None,
            executor_memory: None,
            executor_cores: None,
            num_executors: None,
            conf: BTreeMap::new(),
            env: BTreeMap::new(),
            log_level: "WARN".into(),
            staging_dir: std::env::temp_dir().join("tablecast-fallback"),
            output_dir: None,
            keep_logs: 50,
            log_tail_lines: 30,
            timeout_s: 3600,
            poll_interval_ms: 250,
            max_poll_interval_ms: 5000,
            kill_grace_ms: 10_000,
            oozie_url: None,
            workflow_path: None,
            user: "tablecast".into(),
            oozie_properties: BTreeMap::new(),
            request_timeout_ms: 10_000,
        }
    }
}

impl SparkConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }
    pub fn max_poll_interval(&self) -> Duration {
        Duration::from_millis(self.max_poll_interval_ms.max(self.poll_interval_ms).max(10))
    }
    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// The Python interpreter for PySpark: configured, or the `python3` beside `spark_submit`.
    pub fn python(&self) -> Option<PathBuf> {
        self.python.clone().or_else(|| {
            let candidate = self.spark_submit.parent()?.join("python3");
            candidate.is_file().then_some(candidate)
        })
    }

    /// The URL Spark writes staged output under (no trailing slash).
    pub fn output_root(&self) -> String {
        match &self.output_dir {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => url::Url::from_directory_path(&self.staging_dir)
                .map(|u| u.to_string().trim_end_matches('/').to_string())
                .unwrap_or_else(|_| format!("file://{}", self.staging_dir.display())),
        }
    }

    /// Checks what serde cannot: values that must be present together or well-formed.
    pub fn validate(&self) -> Result<(), String> {
        if self.submitter == SubmitterKind::Oozie {
            if self.oozie_url.as_deref().is_none_or(str::is_empty) {
                return Err("fallback.submitter = \"oozie\" needs fallback.oozie_url".into());
            }
            if self.workflow_path.as_deref().is_none_or(str::is_empty) {
                return Err("fallback.submitter = \"oozie\" needs fallback.workflow_path".into());
            }
            if let Some(u) = &self.oozie_url {
                url::Url::parse(u).map_err(|e| format!("fallback.oozie_url {u:?}: {e}"))?;
            }
        }
        if let Some(m) = &self.deploy_mode
            && m != "client"
            && m != "cluster"
        {
            return Err(format!(
                "fallback.deploy_mode must be \"client\" or \"cluster\", not {m:?}"
            ));
        }
        if self.timeout_s == 0 {
            return Err("fallback.timeout_s must be at least 1".into());
        }
        if !self.staging_dir.is_absolute() {
            return Err(format!(
                "fallback.staging_dir {} must be an absolute path",
                self.staging_dir.display()
            ));
        }
        Ok(())
    }
}
