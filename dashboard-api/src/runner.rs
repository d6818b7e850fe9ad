//! The supervised job runner.
//!
//! Jobs are rows in the store. `runners` tasks claim them with one atomic `UPDATE`: the oldest
//! due job of an API with no running job and no older queued job (so jobs of one API run one at
//! a time and in order, while different APIs run in parallel). A claim is a lease, renewed every
//! third of `lease_ms` while the job runs; a reaper re-queues running jobs whose lease expired
//! (their runner crashed or hung), at start-up and periodically. A re-run starts over: the
//! control plane makes that safe (it first converges what the dead attempt left, then stages a
//! new version; orphan staging is collected by the edges' GC). What edges serve is changed only
//! through [`crate::control`].
//!
//! Supervision: a transient failure (`PublishReport.error.transient`, or a transient publisher
//! error while setting up) is retried with exponential backoff until `max_attempts`; anything
//! else fails the job at once. Progress events go to the job's event log in the store and are
//! announced to live streams.

use std::sync::Arc;
use std::time::{Duration, Instant};

use publisher::publish::{Progress, ProgressFn};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::AppState;
use crate::control::PublishOptions;
use crate::error::{Error, Result};
use crate::store::{ApiRow, JobKind, JobParams, JobRow, JobState, Outcome, now_ms, rfc3339};

/// Queues a job for `api`; runners pick it up in the API's order. Refused when the API's edge
/// group has no edges.
pub async fn enqueue(
    state: &AppState,
    api: &ApiRow,
    kind: JobKind,
    params: JobParams,
    author: &str,
) -> Result<JobRow> {
    let urls = state.config.edge_groups.get(&api.edge_group);
    if urls.is_none_or(|u| u.is_empty()) {
        return Err(Error::invalid(
            "edge_group",
            format!("edge group `{}` has no edges configured", api.edge_group),
        ));
    }
    let job = JobRow::queued(
        &api.name,
        kind,
        Some(api.revision),
        params,
        author,
        i64::from(state.config.max_attempts),
    );
    state.store.enqueue(&job).await?;
    let _ = state
        .emit(&job.id, &serde_json::json!({"event": "queued", "kind": kind.as_str(), "api": api.name, "revision": api.revision, "author": author}))
        .await;
    state.wake.notify_waiters();
    tracing::info!(job = %job.id, api = %api.name, kind = kind.as_str(), "job queued");
    Ok(job)
}

/// The running runner and reaper tasks.
pub struct Runners {
    tasks: Vec<JoinHandle<()>>,
}

impl Runners {
    /// Waits for every task to stop (after [`AppState::shutdown`] is cancelled).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Re-queues expired jobs once, then starts `config.runners` runners and the periodic reaper.
pub async fn start(state: AppState) -> Runners {
    reap(&state).await;
    let mut tasks = Vec::new();
    for i in 0..state.config.runners {
        let state = state.clone();
        let owner = format!("{}-r{i}", state.instance);
        tasks.push(tokio::spawn(async move { run_loop(state, owner).await }));
    }
    let reaper = state.clone();
    tasks.push(tokio::spawn(async move {
        let every = Duration::from_millis((reaper.config.lease_ms / 2).clamp(50, 10_000));
        loop {
            tokio::select! {
                () = reaper.shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => reap(&reaper).await,
            }
        }
    }));
    Runners { tasks }
}

async fn reap(state: &AppState) {
    match state.store.reap_expired().await {
        Ok((requeued, failed)) => {
            for (id, seq) in &requeued {
                tracing::warn!(job = %id, "lease expired: the job's runner died or hung; re-queued to start over");
                state.signal(id, *seq);
            }
            for (id, seq) in &failed {
                tracing::error!(job = %id, "lease expired and no attempts are left: job failed");
                state.signal(id, *seq);
            }
            if !requeued.is_empty() {
                state.wake.notify_waiters();
            }
        }
        Err(e) => tracing::warn!(error = %e, "reaping expired job leases failed"),
    }
}

async fn run_loop(state: AppState, owner: String) {
    let poll = Duration::from_millis(state.config.poll_ms.max(10));
    let lease_ms = state.config.lease().as_millis() as i64;
    loop {
        if state.shutdown.is_cancelled() {
            break;
        }
        // Register for wake-ups before looking, so a job queued in between is not missed.
        let woken = state.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match state.store.claim(&owner, lease_ms).await {
            Ok(Some(job)) => {
                run_claimed(&state, &owner, job).await;
                // Whatever this job held back (a later job of the same API) may run now.
                state.wake.notify_waiters();
            }
            Ok(None) => {
                tokio::select! {
                    () = &mut woken => {}
                    () = tokio::time::sleep(poll) => {}
                    () = state.shutdown.cancelled() => break,
                }
            }
            Err(e) => {
                tracing::warn!(runner = %owner, error = %e, "claiming a job failed");
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = state.shutdown.cancelled() => break,
                }
            }
        }
    }
}

/// What one attempt produced.
struct Attempt {
    report: Option<Value>,
    result: Result<(), Failure>,
}

struct Failure {
    error: Value,
    transient: bool,
}

impl Failure {
    fn setup(e: &publisher::Error) -> Self {
        Failure {
            error: json!({"step": "setup", "message": e.to_string(), "transient": e.is_transient()}),
            transient: e.is_transient(),
        }
    }
    fn permanent(step: &str, message: impl Into<String>) -> Self {
        Failure {
            error: json!({"step": step, "message": message.into(), "transient": false}),
            transient: false,
        }
    }
}

enum Ended {
    Done(Attempt),
    /// The lease was lost: the job was cancelled or re-queued by a reaper.
    LostLease,
    /// Shutdown came and the grace period ran out.
    Abandoned,
}

async fn run_claimed(state: &AppState, owner: &str, job: JobRow) {
    let started = Instant::now();
    let kind = job.kind.as_str();
    tracing::info!(job = %job.id, api = %job.api, kind, attempt = job.attempts, runner = %owner, "job started");
    let _ = state
        .emit(&job.id, &json!({"event": "attempt_started", "attempt": job.attempts, "max_attempts": job.max_attempts, "runner": owner}))
        .await;

    // Progress callbacks are synchronous: they queue events for a writer task, which stores
    // them in order and announces them.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let writer = {
        let state = state.clone();
        let id = job.id.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if let Err(e) = state.emit(&id, &event).await {
                    tracing::warn!(job = %id, error = %e, "storing a progress event failed");
                }
            }
        })
    };
    let progress: ProgressFn = Arc::new(move |p: Progress| {
        let _ = tx.send(
            serde_json::to_value(&p)
                .unwrap_or_else(|e| json!({"event": "unencodable", "message": e.to_string()})),
        );
    });

    let ended = supervise(state, owner, &job, progress).await;
    let _ = writer.await;

    let seconds = started.elapsed().as_secs_f64();
    match ended {
        Ended::LostLease => {
            tracing::warn!(job = %job.id, "job lost its lease (cancelled or re-queued): stopped");
            state.metrics.attempt(kind, "cancelled", seconds);
        }
        Ended::Abandoned => {
            tracing::warn!(job = %job.id, "shutting down: job abandoned and handed back to the queue");
            state.metrics.attempt(kind, "abandoned", seconds);
            match state.store.release(&job.id, owner).await {
                Ok(_) => {
                    let _ = state.emit(&job.id, &json!({"event": "abandoned", "reason": "dashboard shutting down; the job will start over"})).await;
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, error = %e, "handing the job back failed; its lease will expire")
                }
            }
        }
        Ended::Done(attempt) => settle(state, owner, &job, attempt, seconds).await,
    }
}

/// Runs the attempt while renewing the lease; stops it if the lease is lost, or if shutdown
/// comes and the grace period passes.
async fn supervise(state: &AppState, owner: &str, job: &JobRow, progress: ProgressFn) -> Ended {
    let lease_ms = state.config.lease().as_millis() as i64;
    let work = execute(state, job, progress);
    tokio::pin!(work);
    let mut renew = tokio::time::interval(Duration::from_millis((lease_ms / 3).max(10) as u64));
    renew.tick().await;
    let grace = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(grace);
    let mut grace_started = false;
    loop {
        tokio::select! {
            attempt = &mut work => return Ended::Done(attempt),
            _ = renew.tick() => match state.store.renew(&job.id, owner, lease_ms).await {
                Ok(true) => {}
                Ok(false) => return Ended::LostLease,
                Err(e) => tracing::warn!(job = %job.id, error = %e, "renewing the job lease failed; retrying"),
            },
            () = state.shutdown.cancelled(), if !grace_started => {
                grace_started = true;
                let deadline = tokio::time::Instant::now() + Duration::from_millis(state.config.shutdown_grace_ms);
                grace.as_mut().reset(deadline);
            }
            () = &mut grace, if grace_started => return Ended::Abandoned,
        }
    }
}

async fn settle(state: &AppState, owner: &str, job: &JobRow, attempt: Attempt, seconds: f64) {
    let kind = job.kind.as_str();
    let report = attempt.report;
    match attempt.result {
        Ok(()) => {
            let event = json!({"event": "finished", "state": "succeeded", "attempts": job.attempts, "report": report});
            let outcome = Outcome {
                state: JobState::Succeeded,
                report: report.as_ref(),
                error: None,
            };
            finish(state, owner, job, outcome, &event).await;
            state.metrics.attempt(kind, "succeeded", seconds);
            tracing::info!(job = %job.id, api = %job.api, kind, "job succeeded");
        }
        Err(failure) if failure.transient && job.attempts < job.max_attempts => {
            let delay = state.config.backoff(job.attempts as u32);
            let due = now_ms() + delay.as_millis() as i64;
            match state
                .store
                .retry_later(&job.id, owner, due, &failure.error, report.as_ref())
                .await
            {
                Ok(true) => {
                    let event = json!({
                        "event": "retry_scheduled",
                        "attempt": job.attempts,
                        "max_attempts": job.max_attempts,
                        "error": failure.error,
                        "delay_ms": delay.as_millis() as u64,
                        "retry_at": rfc3339(due),
                    });
                    let _ = state.emit(&job.id, &event).await;
                    tracing::warn!(job = %job.id, api = %job.api, attempt = job.attempts, delay_ms = delay.as_millis() as u64, error = %failure.error, "transient failure: retrying later");
                    let waker = state.wake.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        waker.notify_waiters();
                    });
                }
                Ok(false) => {
                    tracing::warn!(job = %job.id, "job was taken from this runner before it could be re-queued")
                }
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "re-queueing failed; the lease will expire and the job re-run")
                }
            }
            state.metrics.attempt(kind, "retried", seconds);
        }
        Err(failure) => {
            let event = json!({"event": "finished", "state": "failed", "attempts": job.attempts, "report": report, "error": failure.error});
            let outcome = Outcome {
                state: JobState::Failed,
                report: report.as_ref(),
                error: Some(&failure.error),
            };
            finish(state, owner, job, outcome, &event).await;
            state.metrics.attempt(kind, "failed", seconds);
            tracing::error!(job = %job.id, api = %job.api, kind, attempts = job.attempts, error = %failure.error, "job failed");
        }
    }
}

async fn finish(state: &AppState, owner: &str, job: &JobRow, outcome: Outcome<'_>, event: &Value) {
    match state.store.finish(&job.id, owner, outcome, event).await {
        Ok(Some(seq)) => state.signal(&job.id, seq),
        Ok(None) => {
            tracing::warn!(job = %job.id, "job was taken from this runner (cancelled?) before it finished")
        }
        Err(e) => {
            tracing::error!(job = %job.id, error = %e, "storing the job's outcome failed; the lease will expire and the job re-run")
        }
    }
}

async fn execute(state: &AppState, job: &JobRow, progress: ProgressFn) -> Attempt {
    let edges = match edges_for(state, job).await {
        Ok(e) => e,
        Err(f) => {
            return Attempt {
                report: None,
                result: Err(f),
            };
        }
    };
    match job.kind {
        JobKind::Publish => publish(state, job, &edges, progress).await,
        JobKind::Rollback => rollback(state, job, &edges, progress).await,
    }
}

/// The edge addresses of the job's edge group; for an API published from the CLI to edges no
/// group names, the edges the control plane recorded for it.
async fn edges_for(state: &AppState, job: &JobRow) -> Result<Vec<String>, Failure> {
    let group = match &job.params.edge_group {
        Some(g) => g.clone(),
        None => state
            .store
            .api(&job.api)
            .await
            .map(|a| a.edge_group)
            .map_err(|e| Failure::permanent("setup", e.to_string()))?,
    };
    if let Some(urls) = state
        .config
        .edge_groups
        .get(&group)
        .filter(|u| !u.is_empty())
    {
        return Ok(urls.clone());
    }
    let recorded = state
        .store
        .api_state(&job.api)
        .await
        .map_err(|e| Failure::permanent("setup", e.to_string()))?
        .map(|s| s.edges)
        .unwrap_or_default();
    if recorded.is_empty() {
        return Err(Failure::permanent(
            "setup",
            format!("edge group `{group}` has no edges: configure edge_groups"),
        ));
    }
    Ok(recorded)
}

async fn publish(
    state: &AppState,
    job: &JobRow,
    edges: &[String],
    progress: ProgressFn,
) -> Attempt {
    let fail = |f: Failure| Attempt {
        report: None,
        result: Err(f),
    };
    let Some(spec) = &job.params.spec else {
        return fail(Failure::permanent("setup", "the job carries no spec"));
    };
    let catalog_name = job.params.catalog.clone().unwrap_or_default();
    let Some(catalog) = state.config.catalog(&catalog_name) else {
        return fail(Failure::permanent(
            "setup",
            format!("catalog `{catalog_name}` is not configured"),
        ));
    };
    let publisher = match state.stack.publisher(&catalog.uri).await {
        Ok(p) => p,
        Err(e) => return fail(Failure::setup(&e)),
    };
    // Who may read the API is read from the store at commit time, not fixed with the job.
    let report = state
        .control
        .publish(
            &publisher,
            spec,
            PublishOptions {
                route: job.params.route,
                skip_unchanged: job.params.if_changed,
                force: job.params.force,
            },
            edges,
            Some(&job.id),
            progress,
        )
        .await;
    let value = serde_json::to_value(&report).ok();
    let result = match (&report.error, report.committed) {
        (None, true) => Ok(()),
        (None, false) if report.unchanged => Ok(()),
        (Some(e), _) => Err(Failure {
            error: serde_json::to_value(e).unwrap_or(Value::Null),
            transient: e.transient,
        }),
        _ => Err(Failure::permanent(
            "commit",
            "the publish ended without committing a version",
        )),
    };
    Attempt {
        report: value,
        result,
    }
}

/// Switches every edge to an older kept version through the control plane (the same lease as
/// a publish; being a job, also the same per-API order in the queue).
async fn rollback(
    state: &AppState,
    job: &JobRow,
    edges: &[String],
    progress: ProgressFn,
) -> Attempt {
    progress(Progress::StepStarted {
        step: publisher::report::Step::Commit,
    });
    match state
        .control
        .rollback(&job.api, job.params.to, Some(edges))
        .await
    {
        Ok(report) => {
            let value = serde_json::to_value(&report).ok();
            if report.committed {
                progress(Progress::Committed { version: report.to });
                Attempt {
                    report: value,
                    result: Ok(()),
                }
            } else {
                let failed = report.edges.iter().find(|o| o.serving != Some(report.to));
                let message = format!(
                    "not every edge switched to version {}: {}",
                    report.to,
                    failed
                        .and_then(|o| o.error.as_deref())
                        .unwrap_or("unknown error")
                );
                progress(Progress::Failed {
                    step: publisher::report::Step::Commit,
                    message: message.clone(),
                });
                Attempt {
                    report: value,
                    result: Err(Failure {
                        error: json!({"step": "commit", "edge": failed.map(|o| o.edge.clone()), "message": message, "transient": true}),
                        transient: true,
                    }),
                }
            }
        }
        Err(e) => {
            let transient = match &e {
                crate::Error::Publisher(p) => p.is_transient(),
                crate::Error::Store(_) => true,
                _ => false,
            };
            progress(Progress::Failed {
                step: publisher::report::Step::Commit,
                message: e.to_string(),
            });
            Attempt {
                report: None,
                result: Err(Failure {
                    error: json!({"step": "rollback", "message": e.to_string(), "transient": transient}),
                    transient,
                }),
            }
        }
    }
}
