//! Submitting a staged job and watching it: the [`Submitter`] trait, implemented by
//! [`SparkSubmit`](crate::SparkSubmit) and [`OozieSubmitter`](crate::OozieSubmitter), and the
//! supervision both share: poll with backoff, enforce the timeout, kill, quote the log.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// A job ready to submit: its description and program written, its output location chosen.
#[derive(Debug, Clone)]
pub struct StagedJob {
    pub id: String,
    /// Human-readable application name (`tablecast-<api>`).
    pub app_name: String,
    /// Local folder with `job.json` and `tablecast_job.py`; removed after the run.
    pub local_dir: PathBuf,
    pub job_json: PathBuf,
    /// Descriptions of further jobs the same application runs after this one, in one Spark
    /// session (a batch; spark-submit with the driver here only).
    pub more_job_jsons: Vec<PathBuf>,
    pub program: PathBuf,
    /// URL of the job's folder beside its output (equal to `local_dir` unless
    /// `output_dir` points elsewhere); removed after the run.
    pub remote_dir: String,
    /// URLs of copies of `job.json` and the program under `remote_dir` (for Oozie).
    pub remote_job_json: String,
    pub remote_program: String,
    /// Directory URL Spark writes the Parquet part files into.
    pub output: String,
    /// The driver log (spark-submit's stdout and stderr); kept after the run.
    pub log: PathBuf,
    /// `--conf` pairs the job itself needs (metastore access), before the configured ones.
    pub job_conf: Vec<(String, String)>,
}

/// A submitted job, as its submitter identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobHandle {
    /// The process id (spark-submit) or the Oozie workflow id.
    pub id: String,
    pub submitter: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Succeeded,
    /// Finished unsuccessfully; the message says how (exit code, signal, Oozie status and error).
    Failed(String),
}

/// Why a submission did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitError {
    /// The submitter could not be reached or started (missing binary, server down, 5xx):
    /// worth retrying. Otherwise the submission was rejected as malformed.
    pub refused: bool,
    pub message: String,
}

#[async_trait]
pub trait Submitter: Send + Sync {
    /// `spark-submit` or `oozie`, for messages.
    fn kind(&self) -> &'static str;

    /// Whether the job's description and program must also be written beside its output
    /// (`remote_job_json`, `remote_program`), because the job runs where the local staging
    /// folder is not visible.
    fn needs_remote_staging(&self) -> bool {
        false
    }

    /// Whether one submission may carry several jobs (`StagedJob::more_job_jsons`), run one
    /// after the other in one Spark session.
    fn runs_batches(&self) -> bool {
        false
    }

    /// What [`submit`](Self::submit) would do, for `tablecast plan` (command line or request).
    fn describe(&self, job: &StagedJob) -> String;

    async fn submit(&self, job: &StagedJob) -> Result<JobHandle, SubmitError>;

    /// The job's state now. An `Err` is a failure to ask (the job may still be running).
    async fn poll(&self, handle: &JobHandle) -> Result<JobStatus, String>;

    /// Stops the job and waits (within the configured grace) until it is gone.
    async fn kill(&self, handle: &JobHandle) -> Result<(), String>;

    /// The last `lines` lines of what the job logged, for error messages.
    async fn log_excerpt(&self, handle: &JobHandle, lines: usize) -> String;

    /// Waits up to `max` for the job to change state (a submitter that can be notified of
    /// completion returns early). The default just sleeps.
    async fn wait(&self, _handle: &JobHandle, max: Duration) {
        tokio::time::sleep(max).await;
    }

    /// Best-effort, non-blocking stop, for when the run is dropped without a chance to await.
    fn kill_now(&self, handle: &JobHandle);

    /// Forgets the job (after it finished or was killed).
    fn release(&self, _handle: &JobHandle) {}
}

/// Supervision settings, from [`SparkConfig`](crate::SparkConfig).
#[derive(Debug, Clone)]
pub struct Supervision {
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub max_poll_interval: Duration,
    pub log_lines: usize,
    /// Consecutive failed polls tolerated before the run is declared lost.
    pub max_poll_errors: u32,
}

/// How a supervised job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        elapsed: Duration,
    },
    Failed {
        message: String,
        excerpt: String,
        elapsed: Duration,
    },
    /// Killed after the timeout.
    TimedOut {
        excerpt: String,
        elapsed: Duration,
        kill_error: Option<String>,
    },
    /// The submitter stopped answering.
    Lost {
        message: String,
        excerpt: String,
        elapsed: Duration,
    },
    /// `cancelled` resolved first; the job was killed.
    Cancelled,
}

/// Watches `handle` until it finishes, the deadline passes (the job is killed) or `cancelled`
/// resolves (the job is killed). Polls start at `poll_interval` and double up to
/// `max_poll_interval`, never sleeping past the deadline.
pub async fn supervise(
    submitter: &dyn Submitter,
    handle: &JobHandle,
    config: &Supervision,
    started: Instant,
    cancelled: impl Future<Output = ()>,
) -> Outcome {
    tokio::pin!(cancelled);
    let deadline = started + config.timeout;
    let mut interval = config.poll_interval;
    let mut poll_errors = 0u32;
    loop {
        let status = tokio::select! {
            s = submitter.poll(handle) => s,
            () = &mut cancelled => {
                let _ = submitter.kill(handle).await;
                return Outcome::Cancelled;
            }
        };
        match status {
            Ok(JobStatus::Running) => poll_errors = 0,
            Ok(JobStatus::Succeeded) => {
                return Outcome::Succeeded {
                    elapsed: started.elapsed(),
                };
            }
            Ok(JobStatus::Failed(message)) => {
                let excerpt = submitter.log_excerpt(handle, config.log_lines).await;
                return Outcome::Failed {
                    message,
                    excerpt,
                    elapsed: started.elapsed(),
                };
            }
            Err(e) => {
                poll_errors += 1;
                tracing::warn!(job = %handle.id, error = %e, "polling {} failed ({poll_errors} in a row)", submitter.kind());
                if poll_errors > config.max_poll_errors {
                    let _ = submitter.kill(handle).await;
                    let excerpt = submitter.log_excerpt(handle, config.log_lines).await;
                    return Outcome::Lost {
                        message: format!(
                            "{poll_errors} polls of {} failed in a row, last: {e}",
                            submitter.kind()
                        ),
                        excerpt,
                        elapsed: started.elapsed(),
                    };
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let kill_error = submitter.kill(handle).await.err();
            let excerpt = submitter.log_excerpt(handle, config.log_lines).await;
            return Outcome::TimedOut {
                excerpt,
                elapsed: started.elapsed(),
                kill_error,
            };
        }
        let pause = interval.min(deadline - now);
        tokio::select! {
            () = submitter.wait(handle, pause) => {}
            () = &mut cancelled => {
                let _ = submitter.kill(handle).await;
                return Outcome::Cancelled;
            }
        }
        interval = (interval * 2).min(config.max_poll_interval);
    }
}

/// The last `lines` lines of `text`, with the program's own `tablecast-job: ERROR` line (which
/// names the failed step) put first when it scrolled out of the tail.
pub fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if let Some(error) = all[..start]
        .iter()
        .rev()
        .find(|l| l.starts_with("tablecast-job: ERROR"))
    {
        out.push_str(error);
        out.push_str("\n[…]\n");
    }
    out.push_str(&all[start..].join("\n"));
    out
}
