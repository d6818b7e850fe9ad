//! [`OozieSubmitter`]: starts the Tablecast workflow on an Oozie server (REST API v2), polls
//! it and kills it.
//!
//! Protocol (Oozie Web Services API, v2):
//! - `POST {oozie}/v2/jobs?action=start` with an XML `<configuration>` body → `201 {"id": …}`;
//! - `GET {oozie}/v2/job/{id}?show=info` → JSON with `status` (`PREP`, `RUNNING`, `SUSPENDED`,
//!   `SUCCEEDED`, `KILLED`, `FAILED`) and `actions[]` with `status`, `errorCode`, `errorMessage`;
//! - `GET {oozie}/v2/job/{id}?show=log` → the job log as text;
//! - `PUT {oozie}/v2/job/{id}?action=kill`.
//!
//! Every request carries `user.name` (Oozie's simple authentication). The workflow deployed at
//! `workflow_path` (`fallback/oozie/workflow.xml` is one: deploy it with the cluster's `nameNode`
//! and `jobTracker` as properties) runs a Spark action with the job's properties.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;

use crate::config::SparkConfig;
use crate::spark_submit::spark_conf;
use crate::submit::{JobHandle, JobStatus, StagedJob, SubmitError, Submitter, tail_lines};

pub struct OozieSubmitter {
    config: Arc<SparkConfig>,
    base: String,
    client: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct JobInfo {
    status: String,
    #[serde(default)]
    actions: Vec<ActionInfo>,
    #[serde(default, rename = "consoleUrl")]
    console_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ActionInfo {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, rename = "errorCode")]
    error_code: Option<String>,
    #[serde(default, rename = "errorMessage")]
    error_message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Submitted {
    id: String,
}

impl OozieSubmitter {
    pub fn new(config: Arc<SparkConfig>) -> Result<Self, String> {
        let base = config
            .oozie_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or("the oozie submitter needs fallback.oozie_url")?
            .trim_end_matches('/')
            .to_string();
        url::Url::parse(&base).map_err(|e| format!("fallback.oozie_url {base:?}: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(OozieSubmitter {
            config,
            base,
            client,
        })
    }

    /// The job properties of a submission, in order.
    pub fn properties(&self, job: &StagedJob) -> Vec<(String, String)> {
        let c = &self.config;
        let mut spark_opts: Vec<String> = Vec::new();
        let mut opt = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                spark_opts.push(flag.into());
                spark_opts.push(v);
            }
        };
        opt("--queue", c.queue.clone());
        opt("--driver-memory", c.driver_memory.clone());
        opt("--executor-memory", c.executor_memory.clone());
        opt("--executor-cores", c.executor_cores.map(|n| n.to_string()));
        opt("--num-executors", c.num_executors.map(|n| n.to_string()));
        for (k, v) in spark_conf(c, job) {
            spark_opts.push("--conf".into());
            spark_opts.push(format!("{k}={v}"));
        }
        let mut props: Vec<(String, String)> = vec![
            ("user.name".into(), c.user.clone()),
            (
                "oozie.wf.application.path".into(),
                c.workflow_path.clone().unwrap_or_default(),
            ),
            ("oozie.use.system.libpath".into(), "true".into()),
            ("tablecastJobId".into(), job.id.clone()),
            ("tablecastAppName".into(), job.app_name.clone()),
            ("tablecastProgram".into(), job.remote_program.clone()),
            ("tablecastJobJson".into(), job.remote_job_json.clone()),
            ("tablecastOutput".into(), job.output.clone()),
            ("tablecastStaging".into(), job.remote_dir.clone()),
            ("tablecastMaster".into(), c.master.clone()),
            (
                "tablecastDeployMode".into(),
                c.deploy_mode.clone().unwrap_or_else(|| "cluster".into()),
            ),
            ("tablecastSparkOpts".into(), spark_opts.join(" ")),
        ];
        if let Some(q) = &c.queue {
            props.push(("queueName".into(), q.clone()));
        }
        for (k, v) in &c.oozie_properties {
            match props.iter_mut().find(|(name, _)| name == k) {
                Some(p) => p.1 = v.clone(),
                None => props.push((k.clone(), v.clone())),
            }
        }
        props
    }

    /// The `<configuration>` document of a submission.
    pub fn configuration_xml(&self, job: &StagedJob) -> String {
        use quick_xml::escape::escape;
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<configuration>\n");
        for (name, value) in self.properties(job) {
            xml.push_str(&format!(
                "  <property><name>{}</name><value>{}</value></property>\n",
                escape(name.as_str()),
                escape(value.as_str())
            ));
        }
        xml.push_str("</configuration>\n");
        xml
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url =
            url::Url::parse(&format!("{}{path}", self.base)).expect("base URL checked in new()");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            q.append_pair("user.name", &self.config.user);
        }
        url.to_string()
    }

    fn job_url(&self, id: &str, query: &[(&str, &str)]) -> String {
        let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        self.url(&format!("/v2/job/{id}"), query)
    }

    async fn info(&self, id: &str) -> Result<JobInfo, String> {
        let response = self
            .client
            .get(self.job_url(id, &[("show", "info")]))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "GET job info: HTTP {status}{}",
                oozie_error(&response)
            ));
        }
        response
            .json::<JobInfo>()
            .await
            .map_err(|e| format!("GET job info: unreadable answer: {e}"))
    }
}

/// Oozie explains errors in `oozie-error-code` / `oozie-error-message` headers.
fn oozie_error(response: &reqwest::Response) -> String {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    match (header("oozie-error-code"), header("oozie-error-message")) {
        (Some(code), Some(message)) => format!(" ({code}: {message})"),
        (None, Some(message)) => format!(" ({message})"),
        (Some(code), None) => format!(" ({code})"),
        (None, None) => String::new(),
    }
}

fn failure_message(info: &JobInfo) -> String {
    let errors: Vec<String> = info
        .actions
        .iter()
        .filter(|a| {
            a.error_message.as_deref().is_some_and(|m| !m.is_empty()) || a.error_code.is_some()
        })
        .map(|a| {
            format!(
                "action `{}` {}: {}{}",
                a.name.as_deref().unwrap_or("?"),
                a.status.as_deref().unwrap_or("?"),
                a.error_message.as_deref().unwrap_or(""),
                a.error_code
                    .as_deref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let mut message = format!("oozie workflow {}", info.status);
    if !errors.is_empty() {
        message.push_str(": ");
        message.push_str(&errors.join("; "));
    }
    if let Some(url) = &info.console_url {
        message.push_str(&format!(" (console: {url})"));
    }
    message
}

#[async_trait]
impl Submitter for OozieSubmitter {
    fn kind(&self) -> &'static str {
        "oozie"
    }

    fn needs_remote_staging(&self) -> bool {
        true
    }

    fn describe(&self, job: &StagedJob) -> String {
        format!(
            "POST {}\nContent-Type: application/xml;charset=UTF-8\n\n{}",
            self.url("/v2/jobs", &[("action", "start")]),
            self.configuration_xml(job)
        )
    }

    async fn submit(&self, job: &StagedJob) -> Result<JobHandle, SubmitError> {
        let url = self.url("/v2/jobs", &[("action", "start")]);
        let response = self
            .client
            .post(&url)
            .header("Content-Type", "application/xml;charset=UTF-8")
            .body(self.configuration_xml(job))
            .send()
            .await
            .map_err(|e| SubmitError {
                refused: true,
                message: format!("POST {}: {e}", self.base),
            })?;
        let status = response.status();
        if !status.is_success() {
            let detail = oozie_error(&response);
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(500).collect();
            return Err(SubmitError {
                refused: status.is_server_error() || status.as_u16() == 429,
                message: format!("POST {url}: HTTP {status}{detail} {body}")
                    .trim_end()
                    .to_string(),
            });
        }
        let submitted: Submitted = response.json().await.map_err(|e| SubmitError {
            refused: false,
            message: format!("POST {url}: unreadable answer: {e}"),
        })?;
        tracing::info!(job = %job.id, oozie_job = %submitted.id, "oozie workflow started");
        Ok(JobHandle {
            id: submitted.id,
            submitter: "oozie",
        })
    }

    async fn poll(&self, handle: &JobHandle) -> Result<JobStatus, String> {
        let info = self.info(&handle.id).await?;
        Ok(match info.status.as_str() {
            "SUCCEEDED" => JobStatus::Succeeded,
            "KILLED" | "FAILED" => JobStatus::Failed(failure_message(&info)),
            // PREP, RUNNING, SUSPENDED, PREPSUSPENDED…: not finished; the timeout bounds them.
            _ => JobStatus::Running,
        })
    }

    async fn kill(&self, handle: &JobHandle) -> Result<(), String> {
        let response = self
            .client
            .put(self.job_url(&handle.id, &[("action", "kill")]))
            .send()
            .await
            .map_err(|e| format!("PUT kill: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "PUT kill: HTTP {}{}",
                response.status(),
                oozie_error(&response)
            ));
        }
        // Wait (within the grace period) until Oozie reports the workflow ended.
        let until = Instant::now() + self.config.kill_grace();
        loop {
            match self.info(&handle.id).await {
                Ok(info)
                    if !matches!(
                        info.status.as_str(),
                        "RUNNING" | "PREP" | "SUSPENDED" | "PREPSUSPENDED"
                    ) =>
                {
                    return Ok(());
                }
                _ if Instant::now() >= until => {
                    return Err(format!(
                        "oozie job {} still not ended after kill",
                        handle.id
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn log_excerpt(&self, handle: &JobHandle, lines: usize) -> String {
        let mut out = String::new();
        if let Ok(info) = self.info(&handle.id).await {
            out.push_str(&failure_message(&info));
            out.push('\n');
        }
        match self
            .client
            .get(self.job_url(&handle.id, &[("show", "log")]))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let text = r.text().await.unwrap_or_default();
                out.push_str(&tail_lines(&text, lines));
            }
            Ok(r) => out.push_str(&format!("(job log: HTTP {})", r.status())),
            Err(e) => out.push_str(&format!("(job log: {e})")),
        }
        out
    }

    fn kill_now(&self, handle: &JobHandle) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let request = self
            .client
            .put(self.job_url(&handle.id, &[("action", "kill")]));
        let id = handle.id.clone();
        runtime.spawn(async move {
            if let Err(e) = request.send().await {
                tracing::warn!(oozie_job = %id, error = %e, "killing the dropped oozie job failed");
            }
        });
    }
}
