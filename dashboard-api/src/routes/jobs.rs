//! Jobs: list, read, cancel, and follow live (Server-Sent Events).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::User;
use crate::error::{Error, Result};
use crate::store::{JobKind, JobRow, JobState, rfc3339};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub api: String,
    pub kind: JobKind,
    pub state: JobState,
    /// The API revision the job runs.
    pub revision: Option<i64>,
    pub author: String,
    /// `auto`, `fasttrack` or `fallback` (publishes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The requested rollback target (rollbacks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    pub attempts: i64,
    pub max_attempts: i64,
    /// When a queued job may run (later than now during a retry's backoff).
    pub not_before: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<String>,
    /// The last attempt's error: `{step, message, transient, edge?}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    /// The last attempt's report (a publish report, or a rollback's `{from, to, edges, committed}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub report: Option<Value>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub events_url: String,
}

impl From<JobRow> for JobView {
    fn from(j: JobRow) -> Self {
        JobView {
            events_url: format!("/api/jobs/{}/events", j.id),
            route: (j.kind == JobKind::Publish)
                .then(|| {
                    serde_json::to_value(j.params.route)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                })
                .flatten(),
            to: j.params.to,
            id: j.id,
            api: j.api,
            kind: j.kind,
            state: j.state,
            revision: j.revision,
            author: j.author,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            not_before: rfc3339(j.not_before),
            lease_owner: j.lease_owner,
            lease_expires_at: j.lease_expires_at.map(rfc3339),
            error: j.error,
            report: j.report,
            created_at: rfc3339(j.created_at),
            started_at: j.started_at.map(rfc3339),
            finished_at: j.finished_at.map(rfc3339),
        }
    }
}

/// Jobs, newest first (`?api=`, `?state=`, `?limit=` up to 500, default 100).
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", security(("bearer" = [])),
    params(("api" = Option<String>, Query, description = "Only this API's jobs"),
        ("state" = Option<String>, Query, description = "queued, running, succeeded, failed or cancelled"),
        ("limit" = Option<i64>, Query, description = "At most this many (default 100, max 500)")),
    responses((status = 200, body = [JobView]), (status = 400, body = crate::error::ErrorBody)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<JobView>>> {
    let job_state = q.get("state").map(|s| s.parse::<JobState>()).transpose()?;
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| Error::invalid("limit", format!("{l:?} is not a number")))?
            .clamp(1, 500),
        None => 100,
    };
    let jobs = state
        .store
        .jobs(q.get("api").map(String::as_str), job_state, limit)
        .await?;
    Ok(Json(jobs.into_iter().map(JobView::from).collect()))
}

/// One job, with its last error and report.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs", security(("bearer" = [])), params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>> {
    Ok(Json(state.store.job(&id).await?.into()))
}

/// Cancels a queued or running job (a running one stops at its next lease renewal; whatever it
/// staged on the edges is never committed). 409 if it already finished.
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs", security(("bearer" = [])), params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn cancel_job(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    Path(id): Path<String>,
) -> Result<Json<JobView>> {
    let job = state.store.job(&id).await?;
    match state.store.api(&job.api).await {
        Ok(api) => user.require_change(&api, "cancel jobs of")?,
        Err(Error::NotFound { .. }) => user.require_admin()?,
        Err(e) => return Err(e),
    }
    match state.store.cancel(&id, &user.name).await? {
        Some((_, seq)) => {
            state.signal(&id, seq);
            tracing::info!(job = %id, "job cancelled");
            Ok(Json(state.store.job(&id).await?.into()))
        }
        None => Err(Error::Conflict(format!("job {id} has already finished"))),
    }
}

/// The job's events as Server-Sent Events: the stored ones first (after `Last-Event-ID` or
/// `?after=N`), then live ones, until the `finished` event, which carries the final state and
/// report. Each event's `id` is its sequence number and its data a JSON object whose `event`
/// field names it (`queued`, `attempt_started`, `step_started`, `guards`, `rows`, `committed`,
/// `retry_scheduled`, `finished`, …).
#[utoipa::path(get, path = "/api/jobs/{id}/events", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path, description = "Job id"), ("after" = Option<i64>, Query, description = "Replay events after this sequence number")),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // Subscribe before reading the store, so that nothing falls between replay and live.
    let rx = state.signals.subscribe();
    state.store.job(&id).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("after").map(String::as_str))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let follow = Follow {
        state,
        job: id,
        last: after,
        rx,
        done: false,
        saw_final_state: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        let events = f.next_events().await?;
        Some((events, f))
    })
    .flat_map(futures::stream::iter);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Follow {
    state: AppState,
    job: String,
    last: i64,
    rx: tokio::sync::broadcast::Receiver<crate::JobSignal>,
    done: bool,
    /// The job was seen final with nothing more to send: one more read, then the stream ends.
    saw_final_state: bool,
}

impl Follow {
    /// The next events to send, waiting for them; `None` ends the stream.
    async fn next_events(&mut self) -> Option<Vec<Result<Event, Infallible>>> {
        if self.done {
            return None;
        }
        loop {
            match self.state.store.events_after(&self.job, self.last).await {
                Ok(rows) if !rows.is_empty() => {
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        self.last = row.seq;
                        let finished =
                            row.event.get("event").and_then(Value::as_str) == Some("finished");
                        out.push(Ok(Event::default()
                            .id(row.seq.to_string())
                            .data(row.event.to_string())));
                        if finished {
                            self.done = true;
                            break;
                        }
                    }
                    return Some(out);
                }
                Ok(_) => {
                    // A finished job whose final event is missing (an old or interrupted record):
                    // end with one built from the job itself. The job may have finished since
                    // the read above, with events this stream has not sent yet (its final event
                    // is stored with its final state): those are read first, next round.
                    if let Ok(job) = self.state.store.job(&self.job).await
                        && job.state.is_final()
                    {
                        if !self.saw_final_state {
                            self.saw_final_state = true;
                            continue;
                        }
                        self.done = true;
                        let event = json!({"event": "finished", "state": job.state, "attempts": job.attempts, "report": job.report, "error": job.error});
                        return Some(vec![Ok(Event::default().data(event.to_string()))]);
                    }
                }
                Err(e) => {
                    self.done = true;
                    let event = json!({"event": "stream_error", "message": e.to_string()});
                    return Some(vec![Ok(Event::default().data(event.to_string()))]);
                }
            }
            // Wait for news of this job (or poll again in a second: another instance may run it).
            let tick = tokio::time::sleep(Duration::from_secs(1));
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    signal = self.rx.recv() => match signal {
                        Ok(s) if s.job != self.job => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return None,
                    },
                    () = &mut tick => break,
                    () = self.state.shutdown.cancelled() => return None,
                }
            }
        }
    }
}
