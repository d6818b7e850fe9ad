//! [`SparkEngine`]: the [`Engine`] of the fallback path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use publisher::Error;
use publisher::engine::{Engine, EngineJob, EnginePath, EngineProgress, EngineRun};
use publisher::spec::ResolvedSpec;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use crate::config::{SparkConfig, SubmitterKind};
use crate::job::JobDescription;
use crate::oozie::OozieSubmitter;
use crate::output::{Conformer, list_parts, read_part, read_stats};
use crate::spark_submit::SparkSubmit;
use crate::submit::{JobHandle, Outcome, StagedJob, Submitter, Supervision, supervise};

/// The Spark program, shipped in the crate and written beside each job description.
pub const PROGRAM: &str = include_str!("../spark/tablecast_job.py");

/// The engine name in errors: `engine spark: <step>: …`.
pub const ENGINE: &str = "spark";

fn engine_error(message: impl Into<String>) -> Error {
    Error::Engine {
        engine: ENGINE.into(),
        message: message.into(),
        transient: false,
    }
}

/// Computes an API with a Spark job (spark-submit or Oozie) and streams its staged output.
///
/// `execute` stages the job (description, program), submits it and returns at once; the
/// returned stream supervises the job (poll with backoff, timeout, kill) and then yields the
/// staged Parquet part files in order, conformed to the spec's types. Dropping the stream kills
/// a running job. The job's staging folder is removed when the stream ends, fails or is
/// dropped; only the driver log stays (`staging_dir/logs`, the newest `keep_logs`).
pub struct SparkEngine {
    config: Arc<SparkConfig>,
    submitter: Arc<dyn Submitter>,
}

impl std::fmt::Debug for SparkEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparkEngine")
            .field("submitter", &self.submitter.kind())
            .field("config", &self.config)
            .finish()
    }
}

impl SparkEngine {
    /// An engine with the submitter the config names.
    pub fn new(config: SparkConfig) -> Result<Self, Error> {
        config.validate().map_err(Error::Config)?;
        let config = Arc::new(config);
        let submitter: Arc<dyn Submitter> = match config.submitter {
            SubmitterKind::SparkSubmit => Arc::new(SparkSubmit::new(Arc::clone(&config))),
            SubmitterKind::Oozie => {
                Arc::new(OozieSubmitter::new(Arc::clone(&config)).map_err(Error::Config)?)
            }
        };
        Ok(SparkEngine { config, submitter })
    }

    /// An engine with any submitter (tests, other schedulers).
    pub fn with_submitter(
        config: SparkConfig,
        submitter: Arc<dyn Submitter>,
    ) -> Result<Self, Error> {
        config.validate().map_err(Error::Config)?;
        Ok(SparkEngine {
            config: Arc::new(config),
            submitter,
        })
    }

    pub fn config(&self) -> &SparkConfig {
        &self.config
    }

    pub fn submitter(&self) -> &Arc<dyn Submitter> {
        &self.submitter
    }

    /// The job description `execute` would stage for `job` under `job_id`.
    pub fn job_description(&self, job: &EngineJob, job_id: &str) -> Result<JobDescription, Error> {
        let output = format!("{}/{job_id}/out", self.config.output_root());
        JobDescription::build(job, job_id, self.config.read_via, &output)
            .map_err(|e| engine_error(format!("describe job: {e}")))
    }

    fn paths(&self, job_id: &str, description: &JobDescription, app_name: String) -> StagedJob {
        let local_dir = self.config.staging_dir.join(job_id);
        let remote_dir = format!("{}/{job_id}", self.config.output_root());
        let mut job_conf = Vec::new();
        if let Some(uri) = description.metastore() {
            job_conf.push((
                "spark.sql.catalogImplementation".to_string(),
                "hive".to_string(),
            ));
            job_conf.push((
                "spark.hadoop.hive.metastore.uris".to_string(),
                uri.to_string(),
            ));
        }
        StagedJob {
            id: job_id.to_string(),
            app_name,
            job_json: local_dir.join("job.json"),
            more_job_jsons: Vec::new(),
            program: local_dir.join("tablecast_job.py"),
            local_dir,
            remote_job_json: format!("{remote_dir}/job.json"),
            remote_program: format!("{remote_dir}/tablecast_job.py"),
            output: description.output.path.clone(),
            remote_dir,
            log: self
                .config
                .staging_dir
                .join("logs")
                .join(format!("{job_id}.log")),
            job_conf,
        }
    }

    /// Writes the description and the program (locally, and beside the output when that is
    /// elsewhere). On failure nothing is left behind.
    async fn stage(&self, job: &EngineJob) -> Result<(StagedJob, crate::job::Input), Error> {
        let job_id = new_job_id(job.spec.name());
        let description = self.job_description(job, &job_id)?;
        let staged = self.paths(
            &job_id,
            &description,
            format!("tablecast-{}", job.spec.name()),
        );
        let result = async {
            let json = description.to_json();
            let dir = &staged.local_dir;
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            std::fs::write(&staged.job_json, &json)
                .map_err(|e| format!("writing {}: {e}", staged.job_json.display()))?;
            std::fs::write(&staged.program, PROGRAM)
                .map_err(|e| format!("writing {}: {e}", staged.program.display()))?;
            if self.submitter.needs_remote_staging() && !is_local_dir(&staged.remote_dir, dir) {
                put(&staged.remote_job_json, json.into_bytes()).await?;
                put(&staged.remote_program, PROGRAM.as_bytes().to_vec()).await?;
            }
            prune_logs(&self.config.staging_dir.join("logs"), self.config.keep_logs);
            Ok::<(), String>(())
        }
        .await;
        match result {
            Ok(()) => Ok((staged, description.input)),
            Err(e) => {
                cleanup(&staged).await;
                Err(engine_error(format!(
                    "stage: {e} (staging_dir {})",
                    self.config.staging_dir.display()
                )))
            }
        }
    }

    fn supervision(&self) -> Supervision {
        Supervision {
            timeout: self.config.timeout(),
            poll_interval: self.config.poll_interval(),
            max_poll_interval: self.config.max_poll_interval(),
            log_lines: self.config.log_tail_lines,
            max_poll_errors: 5,
        }
    }
}

fn new_job_id(api: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let api: String = api
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    format!("tc-{api}-{millis}-{}-{n}", std::process::id())
}

fn is_local_dir(url: &str, dir: &Path) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.to_file_path().ok())
        .is_some_and(|p| p == dir)
}

async fn put(url: &str, bytes: Vec<u8>) -> Result<(), String> {
    let located = publisher::files::locate(url).map_err(|e| e.to_string())?;
    located
        .store
        .put(&located.path, bytes.into())
        .await
        .map_err(|e| format!("writing {url}: {e}"))?;
    Ok(())
}

/// Keeps the newest `keep` driver logs.
fn prune_logs(dir: &Path, keep: usize) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<(SystemTime, PathBuf)> = read
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if logs.len() <= keep {
        return;
    }
    logs.sort();
    for (_, path) in &logs[..logs.len() - keep] {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes the job's local folder and its folder beside the output (with the staged files).
async fn cleanup(staged: &StagedJob) {
    cleanup_local(staged);
    if !staged.remote_dir.starts_with("file:")
        && let Err(e) = delete_remote(&staged.remote_dir).await
    {
        tracing::warn!(job = %staged.id, error = %e, "removing staged output failed");
    }
}

/// The synchronous part of [`cleanup`]: everything on local disk.
fn cleanup_local(staged: &StagedJob) {
    let mut dirs = vec![staged.local_dir.clone()];
    if let Some(p) = url::Url::parse(&staged.remote_dir)
        .ok()
        .and_then(|u| u.to_file_path().ok())
    {
        dirs.push(p);
    }
    for dir in dirs {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(job = %staged.id, dir = %dir.display(), error = %e, "removing staging folder failed")
            }
        }
    }
}

async fn delete_remote(url: &str) -> Result<(), String> {
    let located = publisher::files::locate(url).map_err(|e| e.to_string())?;
    let paths: Vec<_> = located
        .store
        .list(Some(&located.path))
        .map(|m| m.map(|m| m.location))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    for p in paths {
        located.store.delete(&p).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Owns a run's job and the staging of its jobs until they are released; dropped early (the
/// streams dropped, the task aborted, a panic) it kills the job and removes the local staging
/// synchronously.
struct RunGuard {
    submitter: Arc<dyn Submitter>,
    handle: Option<JobHandle>,
    staged: Vec<StagedJob>,
}

impl RunGuard {
    /// The job has ended: nothing to kill any more.
    fn job_ended(&mut self) {
        if let Some(h) = self.handle.take() {
            self.submitter.release(&h);
        }
    }

    /// Removes one job's staging (its output has been read).
    async fn clean(&mut self, staged: &StagedJob) {
        self.staged.retain(|s| s.id != staged.id);
        cleanup(staged).await;
    }

    async fn finish(mut self) {
        self.job_ended();
        for staged in std::mem::take(&mut self.staged) {
            cleanup(&staged).await;
        }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.submitter.kill_now(&h);
            self.submitter.release(&h);
        }
        for staged in std::mem::take(&mut self.staged) {
            cleanup_local(&staged);
            if !staged.remote_dir.starts_with("file:")
                && let Ok(rt) = tokio::runtime::Handle::try_current()
            {
                rt.spawn(async move {
                    let _ = delete_remote(&staged.remote_dir).await;
                });
            }
        }
    }
}

type BatchResult = Result<RecordBatch, Error>;

/// One submission (one Spark application) and the jobs it computes, in order: one job, or a
/// batch run in one session.
struct Run {
    submitter: Arc<dyn Submitter>,
    handle: JobHandle,
    supervision: Supervision,
    started: Instant,
    jobs: Vec<RunJob>,
}

/// One job of a submission: where its output lands and who reads it.
struct RunJob {
    staged: StagedJob,
    spec: ResolvedSpec,
    progress: Arc<EngineProgress>,
    /// The files the job reads (files input), counted from their footers while Spark runs.
    files: Option<Vec<publisher::files::DataFile>>,
    tx: mpsc::Sender<BatchResult>,
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The program's own error line (`tablecast-job: ERROR job=… step=…`), when the excerpt has one.
fn job_error_line(excerpt: &str) -> Option<&str> {
    excerpt
        .lines()
        .find(|l| l.starts_with("tablecast-job: ERROR"))
}

impl Run {
    /// Supervises the submission; then streams each job's output, in order, to its reader. A
    /// failure of the submission is every job's error (its message names the failing job).
    async fn drive(self) {
        let Run {
            submitter,
            handle,
            supervision,
            started,
            jobs,
        } = self;
        // rows_in: the listed files' footers (exact, metadata only), counted while Spark runs;
        // for a metastore read, the count the job observed on its input.
        let footer_rows: Vec<Option<AbortOnDropHandle<_>>> = jobs
            .iter()
            .map(|job| {
                job.files.clone().map(|files| {
                    AbortOnDropHandle::new(tokio::spawn(async move {
                        publisher::files::footer_rows(&files).await
                    }))
                })
            })
            .collect();
        let mut guard = RunGuard {
            submitter: Arc::clone(&submitter),
            handle: Some(handle.clone()),
            staged: jobs.iter().map(|j| j.staged.clone()).collect(),
        };
        // Cancelled once every reader has gone.
        let all_readers_gone = async {
            futures::future::join_all(jobs.iter().map(|j| j.tx.closed())).await;
        };
        let outcome = supervise(
            submitter.as_ref(),
            &handle,
            &supervision,
            started,
            all_readers_gone,
        )
        .await;
        let what = match jobs.as_slice() {
            [one] => format!("job {}", one.staged.id),
            many => format!("batch of {} jobs", many.len()),
        };
        let failure = match failure_of(outcome, &submitter, &handle, &supervision, &jobs[0].staged)
        {
            Ok(()) => {
                tracing::info!(job = %handle.id, %what, elapsed = %secs(started.elapsed()), "spark job succeeded");
                None
            }
            Err(None) => {
                tracing::info!(job = %handle.id, %what, "spark job cancelled: its streams were dropped");
                guard.finish().await;
                return;
            }
            Err(Some(message)) => Some(message),
        };
        if let Some(message) = failure {
            guard.finish().await;
            for job in &jobs {
                let _ = job.tx.send(Err(engine_error(message.clone()))).await;
            }
            return;
        }
        guard.job_ended();

        for (job, footer_rows) in jobs.into_iter().zip(footer_rows) {
            let counted = match footer_rows {
                Some(task) => task.await.ok().and_then(|r| r.ok()),
                None => None,
            };
            if let Some(rows) = match counted {
                Some(rows) => Some(rows),
                None => read_stats(&job.staged.output).await,
            } {
                job.progress.add_rows(rows);
            }
            let result = stream_output(&job.staged.output, &job.spec, &job.tx).await;
            // Before the reader sees the end of its stream: its staging is gone by then.
            guard.clean(&job.staged).await;
            match result {
                Ok((rows, parts)) => {
                    tracing::info!(job = %job.staged.id, rows, parts, total = %secs(started.elapsed()), "staged output read")
                }
                Err(ReadError::Closed) => {}
                Err(ReadError::Failed(e)) => {
                    let _ = job
                        .tx
                        .send(Err(engine_error(format!(
                            "read staged output {}: {e}",
                            job.staged.output
                        ))))
                        .await;
                }
            }
        }
        guard.finish().await;
    }
}

/// What went wrong with a submission, as the run's error message; `Err(None)` when it was
/// cancelled (its readers went away).
fn failure_of(
    outcome: Outcome,
    submitter: &Arc<dyn Submitter>,
    handle: &JobHandle,
    supervision: &Supervision,
    first: &StagedJob,
) -> Result<(), Option<String>> {
    // The local driver log, when the submitter wrote one (spark-submit does; Oozie keeps its own).
    let log = || {
        if first.log.exists() {
            format!(", driver log {}", first.log.display())
        } else {
            String::new()
        }
    };
    let message = match outcome {
        Outcome::Succeeded { .. } => return Ok(()),
        Outcome::Cancelled => return Err(None),
        Outcome::Failed {
            message,
            excerpt,
            elapsed,
        } => {
            let cause = job_error_line(&excerpt)
                .map(|l| format!(" ({l})"))
                .unwrap_or_default();
            format!(
                "run: {message} after {}{cause}; {} job {}{}; last lines:\n{excerpt}",
                secs(elapsed),
                submitter.kind(),
                handle.id,
                log()
            )
        }
        Outcome::TimedOut {
            excerpt,
            elapsed,
            kill_error,
        } => format!(
            "timeout: no result after {} (timeout_s = {}); the job was killed{}; {} job {}{}; last lines:\n{excerpt}",
            secs(elapsed),
            supervision.timeout.as_secs(),
            kill_error
                .map(|e| format!(" (kill: {e})"))
                .unwrap_or_default(),
            submitter.kind(),
            handle.id,
            log()
        ),
        Outcome::Lost {
            message,
            excerpt,
            elapsed,
        } => format!(
            "run: lost track of the job after {}: {message}; it was killed; {} job {}{}; last lines:\n{excerpt}",
            secs(elapsed),
            submitter.kind(),
            handle.id,
            log()
        ),
    };
    Err(Some(message))
}

enum ReadError {
    Closed,
    Failed(String),
}

/// Streams the part files in order; returns (rows, part files).
async fn stream_output(
    output: &str,
    spec: &ResolvedSpec,
    tx: &mpsc::Sender<BatchResult>,
) -> Result<(u64, usize), ReadError> {
    let mut conformer = Conformer::new(spec).map_err(ReadError::Failed)?;
    let parts = list_parts(output).await.map_err(ReadError::Failed)?;
    for part in &parts {
        let mut batches = Box::pin(read_part(part).await.map_err(ReadError::Failed)?);
        while let Some(batch) = batches.next().await {
            let batch = conformer
                .conform(&batch.map_err(ReadError::Failed)?)
                .map_err(|e| ReadError::Failed(format!("{}: {e}", part.url)))?;
            if batch.num_rows() == 0 {
                continue;
            }
            tx.send(Ok(batch)).await.map_err(|_| ReadError::Closed)?;
        }
    }
    Ok((conformer.rows(), parts.len()))
}

#[async_trait]
impl Engine for SparkEngine {
    fn path(&self) -> EnginePath {
        EnginePath::Fallback
    }

    async fn explain(&self, job: &EngineJob) -> Result<String, Error> {
        let job_id = "<job-id>";
        let description = self.job_description(job, job_id)?;
        let staged = self.paths(
            job_id,
            &description,
            format!("tablecast-{}", job.spec.name()),
        );
        Ok(format!(
            "Spark job via {} (timeout {} s)\n\nsubmission:\n{}\n\njob description ({}):\n{}\n",
            self.submitter.kind(),
            self.config.timeout_s,
            self.submitter.describe(&staged),
            staged.job_json.display(),
            description.to_json()
        ))
    }

    async fn execute(&self, job: &EngineJob) -> Result<EngineRun, Error> {
        let mut runs = self.submit(std::slice::from_ref(job)).await?;
        runs.pop()
            .ok_or_else(|| engine_error("submit: no run was started"))
    }

    /// One Spark session for all the jobs when the submitter takes batches (spark-submit with
    /// the driver here) and they read through the same catalog settings; otherwise one
    /// submission each (a cluster runs them side by side).
    async fn execute_all(&self, jobs: &[EngineJob]) -> Result<Vec<EngineRun>, Error> {
        let batchable = jobs.len() > 1 && self.submitter.runs_batches();
        if batchable {
            return self.submit(jobs).await;
        }
        let mut runs = Vec::with_capacity(jobs.len());
        for job in jobs {
            runs.push(self.execute(job).await?);
        }
        Ok(runs)
    }
}

impl SparkEngine {
    /// Stages every job, submits them as one application (the program runs them in order in
    /// one session) and returns one run per job, to be read in order.
    async fn submit(&self, jobs: &[EngineJob]) -> Result<Vec<EngineRun>, Error> {
        let started = Instant::now();
        let mut staged: Vec<(StagedJob, crate::job::Input)> = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.stage(job).await {
                Ok(s) => staged.push(s),
                Err(e) => {
                    for (s, _) in &staged {
                        cleanup(s).await;
                    }
                    return Err(e);
                }
            }
        }
        let Some(((first, _), rest)) = staged.split_first() else {
            return Ok(Vec::new());
        };
        if let Some((other, _)) = rest.iter().find(|(s, _)| s.job_conf != first.job_conf) {
            for (s, _) in &staged {
                cleanup(s).await;
            }
            return Err(engine_error(format!(
                "submit: jobs {} and {} read through different catalogs; one Spark session \
                 reads through one",
                first.id, other.id
            )));
        }
        let mut submission = first.clone();
        submission.more_job_jsons = rest.iter().map(|(s, _)| s.job_json.clone()).collect();
        if !rest.is_empty() {
            submission.app_name = format!("tablecast-batch-{}", staged.len());
        }
        let handle = match self.submitter.submit(&submission).await {
            Ok(h) => h,
            Err(e) => {
                for (s, _) in &staged {
                    cleanup(s).await;
                }
                let what = if e.refused {
                    "submission refused: "
                } else {
                    ""
                };
                return Err(Error::Engine {
                    engine: ENGINE.into(),
                    // Nothing ran: a refused submission (no spark-submit, Oozie down) may
                    // succeed later.
                    transient: e.refused,
                    message: format!(
                        "submit: {what}{} ({} job {})",
                        e.message,
                        self.submitter.kind(),
                        submission.id
                    ),
                });
            }
        };
        let mut runs = Vec::with_capacity(jobs.len());
        let mut run_jobs = Vec::with_capacity(jobs.len());
        for (job, (staged, input)) in jobs.iter().zip(staged) {
            let progress = Arc::new(EngineProgress::default());
            let (tx, rx) = mpsc::channel::<BatchResult>(2);
            run_jobs.push(RunJob {
                staged,
                spec: job.spec.clone(),
                progress: Arc::clone(&progress),
                files: matches!(input, crate::job::Input::Files { .. }).then(|| job.files.clone()),
                tx,
            });
            let batches = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            runs.push(EngineRun::single(Box::pin(batches), progress));
        }
        tokio::spawn(
            Run {
                submitter: Arc::clone(&self.submitter),
                handle,
                supervision: self.supervision(),
                started,
                jobs: run_jobs,
            }
            .drive(),
        );
        Ok(runs)
    }
}
