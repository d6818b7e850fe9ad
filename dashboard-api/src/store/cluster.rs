//! What several `tablecast serve` instances on one database need from it: roles only one of
//! them plays at a time (the `leaders` table, leases that expire when their holder dies), and
//! news of jobs and events from the other instances (PostgreSQL `LISTEN`/`NOTIFY`; on SQLite,
//! whose only writers are one server and the CLI, nothing is sent and readers poll).

use sqlx::postgres::PgListener;

use super::*;

/// Advisory lock keys (first half of PostgreSQL's two-key form): the store's write lock, and
/// the per-job lock of event appends.
pub(super) const WRITE_LOCK: i32 = 0x7443_0001;
pub(super) const EVENTS_LOCK: i32 = 0x7443_0002;

/// A job was queued or an API's job finished: idle runners should look again.
pub(super) const JOBS_CHANNEL: &str = "tablecast_jobs";
/// A job's log grew: payload `"<job> <seq>"`.
pub(super) const EVENTS_CHANNEL: &str = "tablecast_events";

/// Sends a notification, delivered when the surrounding transaction commits (at once outside
/// one).
pub(super) async fn notify<'c, E>(conn: E, channel: &str, payload: &str) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query("SELECT 1 AS sent FROM pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// News from any instance of the cluster, this one included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A job was queued, or one finished and may have unblocked its API's next.
    Jobs,
    /// An event was appended to a job's log.
    Event { job: String, seq: i64 },
}

/// A subscription to the cluster's notices (PostgreSQL only).
pub struct Listener {
    inner: PgListener,
}

impl Listener {
    /// The next notice. A dropped connection is re-established by the listener; notices sent
    /// meanwhile are lost, which readers cover by polling.
    pub async fn recv(&mut self) -> Result<Notice> {
        loop {
            let n = self.inner.recv().await?;
            match n.channel() {
                JOBS_CHANNEL => return Ok(Notice::Jobs),
                EVENTS_CHANNEL => {
                    if let Some((job, seq)) = n.payload().split_once(' ')
                        && let Ok(seq) = seq.parse()
                    {
                        return Ok(Notice::Event {
                            job: job.to_string(),
                            seq,
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

/// A role's current holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leader {
    pub role: String,
    pub holder: String,
    pub expires_at: i64,
}

impl Store {
    /// Listens to the cluster's notices; `None` on SQLite, which sends none.
    pub async fn listen(&self) -> Result<Option<Listener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut inner = PgListener::connect(&self.url).await?;
        inner.listen_all([JOBS_CHANNEL, EVENTS_CHANNEL]).await?;
        Ok(Some(Listener { inner }))
    }

    /// Tells every instance's runners to look for work (PostgreSQL; a no-op on SQLite).
    pub(super) async fn announce_jobs<'c, E>(&self, conn: E) -> Result<()>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        match self.backend {
            Backend::Postgres => notify(conn, JOBS_CHANNEL, "").await,
            Backend::Sqlite => Ok(()),
        }
    }

    /// Takes `role` for `holder` until `ttl_ms` from now, or extends it if `holder` has it;
    /// false while another holder's lease runs.
    pub async fn lead(&self, role: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO leaders (role, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leaders.holder = excluded.holder OR leaders.expires_at < $4 \
             RETURNING holder",
        )
        .bind(role)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Gives `role` up (on shutdown), so that another instance takes it at once.
    pub async fn resign(&self, role: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leaders WHERE role = $1 AND holder = $2")
            .bind(role)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every role's holder, expired or not.
    pub async fn leaders(&self) -> Result<Vec<Leader>> {
        let rows = sqlx::query("SELECT role, holder, expires_at FROM leaders ORDER BY role")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Leader {
                    role: r.try_get("role")?,
                    holder: r.try_get("holder")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }
}
