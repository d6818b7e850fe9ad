//! [`SparkSubmit`]: runs `spark-submit` as a supervised child process in its own process group.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::config::{SparkConfig, SubmitterKind};
use crate::submit::{JobHandle, JobStatus, StagedJob, SubmitError, Submitter, tail_lines};

/// How much of the end of a driver log is read for an excerpt.
const LOG_TAIL_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone)]
enum Exit {
    Status(ExitStatus),
    WaitFailed(String),
}

struct Proc {
    pgid: i32,
    exit: watch::Receiver<Option<Exit>>,
    log: std::path::PathBuf,
}

/// Submits with the `spark-submit` of [`SparkConfig`]. The child gets its own process group
/// (the JVM, the Python driver and its workers), so a timeout or a cancellation stops all of
/// it: SIGTERM to the group, then SIGKILL after the grace period.
pub struct SparkSubmit {
    config: Arc<SparkConfig>,
    procs: Mutex<HashMap<String, Proc>>,
}

impl SparkSubmit {
    pub fn new(config: Arc<SparkConfig>) -> Self {
        SparkSubmit {
            config,
            procs: Mutex::new(HashMap::new()),
        }
    }

    /// The arguments after `spark-submit`.
    pub fn arguments(&self, job: &StagedJob) -> Vec<String> {
        let c = &self.config;
        let mut args: Vec<String> = vec!["--master".into(), c.master.clone()];
        let mut opt = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(flag.into());
                args.push(v);
            }
        };
        opt("--deploy-mode", c.deploy_mode.clone());
        opt("--queue", c.queue.clone());
        opt("--driver-memory", c.driver_memory.clone());
        opt("--executor-memory", c.executor_memory.clone());
        opt("--executor-cores", c.executor_cores.map(|n| n.to_string()));
        opt("--num-executors", c.num_executors.map(|n| n.to_string()));
        opt("--name", Some(job.app_name.clone()));
        for (k, v) in spark_conf(c, job) {
            args.push("--conf".into());
            args.push(format!("{k}={v}"));
        }
        let cluster = c.deploy_mode.as_deref() == Some("cluster");
        if cluster {
            // The driver runs on the cluster: ship the description, refer to it by name.
            args.push("--files".into());
            args.push(job.job_json.display().to_string());
        }
        args.push(job.program.display().to_string());
        args.push(if cluster {
            "job.json".into()
        } else {
            job.job_json.display().to_string()
        });
        args.extend(job.more_job_jsons.iter().map(|j| j.display().to_string()));
        args
    }

    /// `PATH` with the directory of `spark_submit` first (a venv's `spark-submit` needs its
    /// siblings), `SPARK_HOME` and the Python interpreter when known, then the configured env.
    pub fn environment(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let mut env = Vec::new();
        let path = std::env::var("PATH").unwrap_or_default();
        match c
            .spark_submit
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(bin) => env.push(("PATH".into(), format!("{}:{path}", bin.display()))),
            None => env.push(("PATH".into(), path)),
        }
        if let Some(home) = &c.spark_home {
            env.push(("SPARK_HOME".into(), home.display().to_string()));
        }
        if let Some(python) = c.python() {
            env.push(("PYSPARK_PYTHON".into(), python.display().to_string()));
            env.push(("PYSPARK_DRIVER_PYTHON".into(), python.display().to_string()));
        }
        env.extend(c.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    fn proc_state(
        &self,
        handle: &JobHandle,
    ) -> Option<(i32, watch::Receiver<Option<Exit>>, std::path::PathBuf)> {
        let procs = self.procs.lock().expect("spark-submit process table");
        procs
            .get(&handle.id)
            .map(|p| (p.pgid, p.exit.clone(), p.log.clone()))
    }
}

/// Settings for `local[…]` masters (tests, small machines): no web UI to start, and a handful of
/// shuffle partitions instead of 200 tiny tasks. A configured value wins.
const LOCAL_DEFAULTS: [(&str, &str); 3] = [
    ("spark.ui.enabled", "false"),
    ("spark.sql.shuffle.partitions", "4"),
    ("spark.driver.host", "127.0.0.1"),
];

/// Every `--conf`: the log level, local-mode defaults, what the job needs (metastore access),
/// then the configured ones.
pub(crate) fn spark_conf(config: &SparkConfig, job: &StagedJob) -> Vec<(String, String)> {
    let mut conf = vec![("spark.log.level".to_string(), config.log_level.clone())];
    if config.submitter == SubmitterKind::SparkSubmit && config.master.starts_with("local") {
        conf.extend(
            LOCAL_DEFAULTS
                .iter()
                .filter(|(k, _)| !config.conf.contains_key(*k))
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
    }
    conf.extend(job.job_conf.iter().cloned());
    conf.extend(config.conf.iter().map(|(k, v)| (k.clone(), v.clone())));
    conf
}

/// Quotes a word for a shell command line shown to people (explain, logs).
pub(crate) fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,[]@+%".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn signal_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

fn describe_exit(exit: &Exit) -> JobStatus {
    match exit {
        Exit::Status(s) if s.success() => JobStatus::Succeeded,
        Exit::Status(s) => match (s.code(), s.signal()) {
            (Some(code), _) => JobStatus::Failed(format!("spark-submit exited with status {code}")),
            (None, Some(sig)) => JobStatus::Failed(format!(
                "spark-submit was killed by signal {sig}{}",
                signal_name(sig)
            )),
            _ => JobStatus::Failed(format!("spark-submit ended: {s}")),
        },
        Exit::WaitFailed(e) => JobStatus::Failed(format!("waiting for spark-submit failed: {e}")),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGSEGV => " (SIGSEGV)",
        _ => "",
    }
}

pub(crate) fn read_log_tail(path: &Path, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        let start = len.saturating_sub(LOG_TAIL_BYTES);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf).to_string();
        // Drop a partial first line when the read started mid-file.
        Ok(if start > 0 {
            text.split_once('\n')
                .map(|(_, r)| r.to_string())
                .unwrap_or(text)
        } else {
            text
        })
    };
    match read() {
        Ok(text) if text.trim().is_empty() => format!("(driver log {} is empty)", path.display()),
        Ok(text) => tail_lines(&text, lines),
        Err(e) => format!("(driver log {} unreadable: {e})", path.display()),
    }
}

#[async_trait]
impl Submitter for SparkSubmit {
    /// The driver runs here (client or local mode), so the program gets every description as
    /// an argument; in cluster mode the descriptions would have to be shipped under one name.
    fn runs_batches(&self) -> bool {
        self.config.deploy_mode.as_deref() != Some("cluster")
    }

    fn kind(&self) -> &'static str {
        "spark-submit"
    }

    fn describe(&self, job: &StagedJob) -> String {
        let mut words: Vec<String> = self
            .environment()
            .into_iter()
            .filter(|(k, _)| k != "PATH")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        words.push(self.config.spark_submit.display().to_string());
        words.extend(self.arguments(job));
        words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn submit(&self, job: &StagedJob) -> Result<JobHandle, SubmitError> {
        let refused = |message: String| SubmitError {
            refused: true,
            message,
        };
        if let Some(dir) = job.log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| refused(format!("creating log folder {}: {e}", dir.display())))?;
        }
        let log = std::fs::File::create(&job.log)
            .map_err(|e| refused(format!("creating driver log {}: {e}", job.log.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| refused(format!("driver log {}: {e}", job.log.display())))?;
        let mut command = tokio::process::Command::new(&self.config.spark_submit);
        command
            .args(self.arguments(job))
            .envs(self.environment())
            .current_dir(&job.local_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(false);
        let mut child = command.spawn().map_err(|e| {
            refused(format!(
                "cannot start {}: {e}",
                self.config.spark_submit.display()
            ))
        })?;
        let pid = child
            .id()
            .ok_or_else(|| refused("spark-submit exited before it could be watched".into()))?
            as i32;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(s) => Exit::Status(s),
                Err(e) => Exit::WaitFailed(e.to_string()),
            };
            let _ = tx.send(Some(exit));
        });
        tracing::info!(job = %job.id, pid, log = %job.log.display(), "spark-submit started");
        self.procs
            .lock()
            .expect("spark-submit process table")
            .insert(
                pid.to_string(),
                Proc {
                    pgid: pid,
                    exit: rx,
                    log: job.log.clone(),
                },
            );
        Ok(JobHandle {
            id: pid.to_string(),
            submitter: "spark-submit",
        })
    }

    async fn poll(&self, handle: &JobHandle) -> Result<JobStatus, String> {
        let (_, exit, _) = self
            .proc_state(handle)
            .ok_or_else(|| format!("no spark-submit process {}", handle.id))?;
        let status = exit
            .borrow()
            .as_ref()
            .map(describe_exit)
            .unwrap_or(JobStatus::Running);
        Ok(status)
    }

    async fn wait(&self, handle: &JobHandle, max: Duration) {
        match self.proc_state(handle) {
            Some((_, mut exit, _)) => {
                if exit.borrow().is_none() {
                    let _ = tokio::time::timeout(max, exit.changed()).await;
                }
            }
            None => tokio::time::sleep(max).await,
        }
    }

    async fn kill(&self, handle: &JobHandle) -> Result<(), String> {
        let (pgid, mut exit, _) = self
            .proc_state(handle)
            .ok_or_else(|| format!("no spark-submit process {}", handle.id))?;
        let ended = |exit: &watch::Receiver<Option<Exit>>| exit.borrow().is_some();
        if !ended(&exit) {
            signal_group(pgid, libc::SIGTERM);
            let _ = tokio::time::timeout(self.config.kill_grace(), exit.wait_for(Option::is_some))
                .await;
        }
        // Whatever survived the grace period (or outlived the JVM) goes now.
        signal_group(pgid, libc::SIGKILL);
        if !ended(&exit) {
            let _ =
                tokio::time::timeout(Duration::from_secs(10), exit.wait_for(Option::is_some)).await;
        }
        if ended(&exit) {
            Ok(())
        } else {
            Err(format!("process group {pgid} did not exit after SIGKILL"))
        }
    }

    async fn log_excerpt(&self, handle: &JobHandle, lines: usize) -> String {
        match self.proc_state(handle) {
            Some((_, _, log)) => tokio::task::spawn_blocking(move || read_log_tail(&log, lines))
                .await
                .unwrap_or_else(|e| format!("(reading the driver log failed: {e})")),
            None => String::new(),
        }
    }

    fn kill_now(&self, handle: &JobHandle) {
        if let Some((pgid, exit, _)) = self.proc_state(handle)
            && exit.borrow().is_none()
        {
            signal_group(pgid, libc::SIGKILL);
        }
    }

    fn release(&self, handle: &JobHandle) {
        self.procs
            .lock()
            .expect("spark-submit process table")
            .remove(&handle.id);
    }
}
