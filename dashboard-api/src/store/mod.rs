//! The durable store: APIs and their revisions, jobs and their events, tokens, and the control
//! plane's desired state and versions ([`control`]), in SQLite through sqlx's runtime query
//! API. Times are milliseconds since the epoch in BIGINT columns and documents are JSON text.
//! The CLI and `tablecast serve` open the same database.

use std::str::FromStr;
use std::time::Duration;

use publisher::spec::ApiSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};

use crate::error::{Error, Result};

mod apis;
mod control;
mod jobs;
mod tokens;
mod triggers;

pub use apis::{ApiRow, ApiUpdate, RevisionRow};
pub use control::{ApiState, Lease, VersionRow, VersionState};
pub use jobs::{EventRow, JobKind, JobParams, JobRow, JobState, Outcome};
pub use tokens::{Quota, TokenKind, TokenRow};
pub use triggers::{TriggerRow, WatchRow};

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Time-ordered ids: milliseconds, a per-process sequence (so that ids made in the same
/// millisecond keep their order), then randomness (so that processes do not collide), in hex.
pub fn new_id() -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xffff;
    format!("{:012x}{seq:04x}{:04x}", now_ms(), rand::random::<u16>())
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}
fn json_col<T: serde::de::DeserializeOwned>(row: &SqliteRow, col: &str) -> Result<T> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Internal(format!("stored {col} is not valid JSON: {e}")))
}

fn opt_json_col(row: &SqliteRow, col: &str) -> Result<Option<Value>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| Error::Internal(format!("stored {col} is not valid JSON: {e}")))
    })
    .transpose()
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("values serialize to JSON")
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Opens (creating if needed) the database and applies the migrations.
    pub async fn open(url: &str) -> Result<Store> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("database_url {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                context: format!("creating {}", dir.display()),
                source: e,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Whether the database answers (health checks); the pool itself stays inside the store.
    /// A transaction holding the write lock from its start (`BEGIN IMMEDIATE`). A deferred one
    /// takes its snapshot at its first statement and fails with SQLITE_BUSY, which no busy
    /// timeout waits out, when another connection commits before it gets to write.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
