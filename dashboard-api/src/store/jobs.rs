//! The `jobs` and `job_events` tables: the durable queue (claims are leases) and each job's
//! event log.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Publish,
    Rollback,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Publish => "publish",
            JobKind::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl FromStr for JobState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        JobState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::BadRequest(format!("unknown job state {s:?}: expected queued, running, succeeded, failed or cancelled")))
    }
}

/// What a job runs, fixed when it is queued: later edits of the API do not change it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ApiSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_group: Option<String>,
    #[serde(default)]
    pub route: publisher::publish::Route,
    /// Rollback target; none means the version before the serving one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    /// What queued it when not a person: `table_change` or `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Stop as `unchanged` when the source fingerprint equals the serving version's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub if_changed: bool,
    /// Commit even if quality gates fail: the owner's "publish anyway".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub api: String,
    pub kind: JobKind,
    pub state: JobState,
    pub revision: Option<i64>,
    pub params: JobParams,
    pub author: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub not_before: i64,
    pub error: Option<Value>,
    pub report: Option<Value>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl JobRow {
    /// A job to queue now: no attempt made yet, due at once.
    pub fn queued(
        api: &str,
        kind: JobKind,
        revision: Option<i64>,
        params: JobParams,
        author: &str,
        max_attempts: i64,
    ) -> JobRow {
        let now = now_ms();
        JobRow {
            id: new_id(),
            api: api.to_string(),
            kind,
            state: JobState::Queued,
            revision,
            params,
            author: author.to_string(),
            attempts: 0,
            max_attempts,
            lease_owner: None,
            lease_expires_at: None,
            not_before: now,
            error: None,
            report: None,
            created_at: now,
            started_at: None,
            finished_at: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub event: Value,
    pub at: i64,
}

const JOB_COLUMNS: &str = "id, api, kind, state, revision, params, author, attempts, max_attempts, lease_owner, \
     lease_expires_at, not_before, error, report, created_at, started_at, finished_at";

fn job_row(row: &AnyRow) -> Result<JobRow> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    Ok(JobRow {
        id: row.try_get("id")?,
        api: row.try_get("api")?,
        kind: if kind == "rollback" {
            JobKind::Rollback
        } else {
            JobKind::Publish
        },
        state: state.parse()?,
        revision: row.try_get("revision")?,
        params: json_col(row, "params")?,
        author: row.try_get("author")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        not_before: row.try_get("not_before")?,
        error: opt_json_col(row, "error")?,
        report: opt_json_col(row, "report")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Settles a job: its final state, with what it produced.
pub struct Outcome<'a> {
    pub state: JobState,
    pub report: Option<&'a Value>,
    pub error: Option<&'a Value>,
}

impl Store {
    // ---- jobs ----

    pub async fn enqueue(&self, job: &JobRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO jobs (id, api, kind, state, revision, params, author, attempts, max_attempts, not_before, created_at) \
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, 0, $7, $8, $9)",
        )
        .bind(&job.id)
        .bind(&job.api)
        .bind(job.kind.as_str())
        .bind(job.revision)
        .bind(to_json(&job.params))
        .bind(&job.author)
        .bind(job.max_attempts)
        .bind(job.not_before)
        .bind(job.created_at)
        .execute(&self.pool)
        .await?;
        self.announce_jobs(&self.pool).await
    }

    pub async fn job(&self, id: &str) -> Result<JobRow> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::not_found("job", id))?;
        job_row(&row)
    }

    /// Newest first.
    pub async fn jobs(
        &self,
        api: Option<&str>,
        state: Option<JobState>,
        limit: i64,
    ) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1 IS NULL OR api = $1) AND ($2 IS NULL OR state = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(api)
        .bind(state.map(JobState::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_row).collect()
    }

    /// Atomically claims the oldest due job whose API has no running job and no older queued
    /// job, for `owner` until `lease_until`. Its start time is never before the end of the API's
    /// previous job: `now` is read before the write lock is had, and a job finishing meanwhile
    /// may record a later time. The partial unique index makes a concurrent second claim for the
    /// same API fail instead of running two jobs of one API. On PostgreSQL the candidate row is
    /// locked with `SKIP LOCKED`, so that claimers on several instances take different jobs
    /// instead of queueing behind one row.
    pub async fn claim(&self, owner: &str, lease_ms: i64) -> Result<Option<JobRow>> {
        let now = now_ms();
        let skip_locked = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let claimed = sqlx::query(&format!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1, \
                 started_at = (SELECT CASE WHEN max(f.finished_at) > $3 THEN max(f.finished_at) ELSE $3 END FROM jobs f WHERE f.api = jobs.api) \
             WHERE id = ( \
                 SELECT j.id FROM jobs j \
                 WHERE j.state = 'queued' AND j.not_before <= $3 \
                   AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.api = j.api AND r.state = 'running') \
                   AND j.id = (SELECT e.id FROM jobs e WHERE e.api = j.api AND e.state = 'queued' \
                       ORDER BY e.created_at, e.id LIMIT 1) \
                 ORDER BY j.created_at, j.id LIMIT 1{skip_locked}) \
               AND state = 'queued' \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .fetch_optional(&self.pool)
        .await;
        match claimed {
            Ok(row) => row.as_ref().map(job_row).transpose(),
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Extends the lease; false when the job is no longer this owner's (re-queued or cancelled).
    pub async fn renew(&self, id: &str, owner: &str, lease_ms: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'")
            .bind(now_ms() + lease_ms)
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Running jobs whose lease expired (their runner died or hung): re-queued to start over,
    /// or failed when they have used all their attempts; each with its event, in the same
    /// transaction. Returns the (job, event seq) pairs, re-queued then failed.
    pub async fn reap_expired(&self) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>)> {
        let now = now_ms();
        let ids = |rows: Vec<AnyRow>| {
            rows.iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<Vec<String>, _>>()
        };
        let mut tx = self.atomic().await?;
        let requeued = sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, not_before = $1 \
             WHERE state = 'running' AND lease_expires_at < $1 AND attempts < max_attempts RETURNING id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let error = serde_json::json!({
            "step": "runner",
            "message": "the runner stopped renewing its lease (crashed or hung) and no attempts are left",
            "transient": true,
        });
        let failed = sqlx::query(
            "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL, finished_at = $1, error = $2 \
             WHERE state = 'running' AND lease_expires_at < $1 RETURNING id, attempts",
        )
        .bind(now)
        .bind(to_json(&error))
        .fetch_all(&mut *tx)
        .await?;
        let attempts: Vec<i64> = failed
            .iter()
            .map(|r| r.try_get("attempts"))
            .collect::<Result<_, _>>()?;
        let (requeued, failed) = (ids(requeued)?, ids(failed)?);
        let mut out = (Vec::new(), Vec::new());
        for id in requeued {
            let event = serde_json::json!({"event": "lease_expired", "requeued": true});
            let seq = self.insert_event(&mut tx, &id, &event, now).await?;
            out.0.push((id, seq));
        }
        for (id, attempts) in failed.into_iter().zip(attempts) {
            let event = serde_json::json!({"event": "finished", "state": "failed", "attempts": attempts, "error": error});
            let seq = self.insert_event(&mut tx, &id, &event, now).await?;
            out.1.push((id, seq));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Puts a job back in the queue, due at `not_before`, keeping what the attempt produced.
    pub async fn retry_later(
        &self,
        id: &str,
        owner: &str,
        not_before: i64,
        error: &Value,
        report: Option<&Value>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, not_before = $1, error = $2, report = $3 \
             WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
        )
        .bind(not_before)
        .bind(to_json(error))
        .bind(report.map(to_json))
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a job back on shutdown without counting the interrupted attempt.
    pub async fn release(&self, id: &str, owner: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, not_before = $1, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
             WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(now_ms())
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Settles a running job of `owner` and appends the final event, in one transaction.
    /// False if the job was not (any more) this owner's.
    pub async fn finish(
        &self,
        id: &str,
        owner: &str,
        outcome: Outcome<'_>,
        final_event: &Value,
    ) -> Result<Option<i64>> {
        let now = now_ms();
        let mut tx = self.atomic().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, report = $2, error = $3, finished_at = $4, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
        )
        .bind(outcome.state.as_str())
        .bind(outcome.report.map(to_json))
        .bind(outcome.error.map(to_json))
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let seq = self.insert_event(&mut tx, id, final_event, now).await?;
        // What this job held back (a later job of its API) may run now, on any instance.
        self.announce_jobs(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(seq))
    }

    /// Cancels a queued or running job; a running one is stopped by its runner at the next
    /// lease renewal. Returns the job as it was, or `None` if it had already finished.
    pub async fn cancel(&self, id: &str, by: &str) -> Result<Option<(JobRow, i64)>> {
        let now = now_ms();
        let before = self.job(id).await?;
        if before.state.is_final() {
            return Ok(None);
        }
        let error = serde_json::json!({"step": "cancel", "message": format!("cancelled by {by}"), "transient": false});
        let mut tx = self.atomic().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1, lease_owner = NULL, lease_expires_at = NULL, error = $2 \
             WHERE id = $3 AND state IN ('queued', 'running')",
        )
        .bind(now)
        .bind(to_json(&error))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let event = serde_json::json!({"event": "finished", "state": "cancelled", "error": error});
        let seq = self.insert_event(&mut tx, id, &event, now).await?;
        tx.commit().await?;
        Ok(Some((before, seq)))
    }

    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }

    // ---- events ----

    /// Appends an event in the caller's transaction: the next sequence number of the job's
    /// log. On PostgreSQL appends to one job are serialized by a per-job advisory lock (two
    /// instances may write one job's log: its runner, and a cancel), and every instance's
    /// event streams hear of it at commit (`NOTIFY`).
    async fn insert_event(
        &self,
        conn: &mut AnyConnection,
        job: &str,
        event: &Value,
        at: i64,
    ) -> Result<i64> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 AS locked FROM pg_advisory_xact_lock($1, hashtext($2))")
                .bind(cluster::EVENTS_LOCK)
                .bind(job)
                .fetch_one(&mut *conn)
                .await?;
        }
        let row = sqlx::query(
            "INSERT INTO job_events (job_id, seq, event, at) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = $1), $2, $3) RETURNING seq",
        )
        .bind(job)
        .bind(to_json(event))
        .bind(at)
        .fetch_one(&mut *conn)
        .await?;
        let seq: i64 = row.try_get("seq")?;
        if self.backend == Backend::Postgres {
            cluster::notify(&mut *conn, cluster::EVENTS_CHANNEL, &format!("{job} {seq}")).await?;
        }
        Ok(seq)
    }

    /// Appends an event to a job's log; returns its sequence number.
    pub async fn append_event(&self, job: &str, event: &Value) -> Result<i64> {
        let mut attempt = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            match self.insert_event(&mut tx, job, event, now_ms()).await {
                Ok(seq) => {
                    tx.commit().await?;
                    return Ok(seq);
                }
                // SQLite: another connection took the number between the read and the insert.
                Err(Error::Store(e)) if is_unique_violation(&e) && attempt < 5 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn events_after(&self, job: &str, after: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT seq, event, at FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(job)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    seq: r.try_get("seq")?,
                    event: json_col(r, "event")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }
}
