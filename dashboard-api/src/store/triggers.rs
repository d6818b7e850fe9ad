//! The `table_watch` and `api_triggers` tables: what the table watcher last saw of each watched
//! table, and per API what its triggers did last and will do next. Only [`crate::triggers`]
//! writes them.

use super::*;

/// The watcher's last look at one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRow {
    pub signature: String,
    /// When the signature last changed: settling counts from here.
    pub changed_at: i64,
    pub checked_at: i64,
}

/// One API's trigger state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerRow {
    pub api: String,
    /// The table signature its last table-change firing answered (or its baseline).
    pub seen_signature: Option<String>,
    /// The schedule `next_at` was computed for (`cron@zone`).
    pub schedule: Option<String>,
    pub next_at: Option<i64>,
    pub last_fired_at: Option<i64>,
    pub last_trigger: Option<String>,
    pub last_job: Option<String>,
}

fn trigger_row(row: &AnyRow) -> Result<TriggerRow> {
    Ok(TriggerRow {
        api: row.try_get("api")?,
        seen_signature: row.try_get("seen_signature")?,
        schedule: row.try_get("schedule")?,
        next_at: row.try_get("next_at")?,
        last_fired_at: row.try_get("last_fired_at")?,
        last_trigger: row.try_get("last_trigger")?,
        last_job: row.try_get("last_job")?,
    })
}

impl Store {
    /// Records a look at a table; returns the row as it now stands. A new signature restarts
    /// the settling clock; the same one only moves `checked_at`.
    pub async fn observe_table(
        &self,
        catalog: &str,
        table: &str,
        signature: &str,
        now: i64,
    ) -> Result<WatchRow> {
        let row = sqlx::query(
            "INSERT INTO table_watch (catalog, table_name, signature, changed_at, checked_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (catalog, table_name) DO UPDATE SET \
               changed_at = CASE WHEN table_watch.signature = excluded.signature THEN table_watch.changed_at ELSE excluded.changed_at END, \
               signature = excluded.signature, checked_at = excluded.checked_at \
             RETURNING signature, changed_at, checked_at",
        )
        .bind(catalog)
        .bind(table)
        .bind(signature)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(WatchRow {
            signature: row.try_get("signature")?,
            changed_at: row.try_get("changed_at")?,
            checked_at: row.try_get("checked_at")?,
        })
    }

    pub async fn trigger_state(&self, api: &str) -> Result<Option<TriggerRow>> {
        let row = sqlx::query("SELECT * FROM api_triggers WHERE api = $1")
            .bind(api)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(trigger_row).transpose()
    }

    pub async fn trigger_states(&self) -> Result<Vec<TriggerRow>> {
        let rows = sqlx::query("SELECT * FROM api_triggers ORDER BY api")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(trigger_row).collect()
    }

    /// Writes an API's trigger state whole.
    pub async fn save_trigger_state(&self, t: &TriggerRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_triggers (api, seen_signature, schedule, next_at, last_fired_at, last_trigger, last_job) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (api) DO UPDATE SET seen_signature = $2, schedule = $3, next_at = $4, \
               last_fired_at = $5, last_trigger = $6, last_job = $7",
        )
        .bind(&t.api)
        .bind(&t.seen_signature)
        .bind(&t.schedule)
        .bind(t.next_at)
        .bind(t.last_fired_at)
        .bind(&t.last_trigger)
        .bind(&t.last_job)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims a due schedule firing: moves the API's `next_at` from `due` (the instant that came)
    /// to `next`, only if it is still `due`. False when another instance claimed it first, so
    /// that an instant fires once however many instances see it due.
    pub async fn claim_firing(&self, api: &str, due: i64, next: Option<i64>) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_triggers SET next_at = $1 WHERE api = $2 AND next_at = $3")
                .bind(next)
                .bind(api)
                .bind(due)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether the API has a publish queued (a firing then adds nothing: that job reads the
    /// table as it is when it starts; a running one may have read it before the change).
    pub async fn publish_pending(&self, api: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE api = $1 AND kind = 'publish' AND state = 'queued') AS pending",
        )
        .bind(api)
        .fetch_one(&self.pool)
        .await?;
        flag(&row, "pending")
    }
}
