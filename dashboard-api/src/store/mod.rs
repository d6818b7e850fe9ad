//! The durable store: APIs and their revisions, jobs and their events, tokens, and the control
//! plane's desired state and versions ([`control`]), through sqlx's runtime query API on either
//! backend its URL names: SQLite (`sqlite://…`, the embedded default: one `tablecast serve` and
//! the CLI on one file) or PostgreSQL (`postgres://…`: any number of `tablecast serve` instances
//! sharing the work, see [`cluster`]). Both run the same SQL, with the few differences named
//! where they are (the write lock, the claim, notifications); each backend has its own
//! migrations folder with the same schema. Times are milliseconds since the epoch in BIGINT
//! columns and documents are JSON text.

use std::str::FromStr;
use std::time::Duration;

use publisher::spec::ApiSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Row};

use crate::error::{Error, Result};

mod apis;
mod cluster;
mod control;
mod jobs;
mod tokens;
mod triggers;

pub use apis::{ApiRow, ApiUpdate, RevisionRow};
pub use cluster::{Leader, Listener, Notice};
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

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Backend> {
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(Error::Config(format!(
                "database_url {:?}: expected sqlite://… or postgres://…",
                redact(url)
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Kept for the PostgreSQL listener, which needs a connection of its own.
    url: String,
}
fn json_col<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Internal(format!("stored {col} is not valid JSON: {e}")))
}

fn opt_json_col(row: &AnyRow, col: &str) -> Result<Option<Value>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| Error::Internal(format!("stored {col} is not valid JSON: {e}")))
    })
    .transpose()
}

/// A BOOLEAN column: PostgreSQL's boolean, or SQLite's 0/1 (which the `Any` driver hands over as
/// an integer).
fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    match row.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(col)? != 0),
    }
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
    /// Opens the database its URL names (creating a SQLite file if needed) and applies the
    /// migrations. Several processes may open one database at once; migrations run once.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                prepare_sqlite(url).await?;
                AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Every connection: wait for the write lock instead of failing, and
                            // enforce references (SQLite's defaults are neither).
                            sqlx::query("PRAGMA busy_timeout = 10000")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA foreign_keys = ON")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|e| Error::Config(format!("connecting to {}: {e}", redact(url))))?,
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store {
            pool,
            backend,
            url: url.to_string(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Row locks for a read that a later write of the same transaction depends on. SQLite has
    /// none and needs none: its write transactions hold the whole database.
    fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// A transaction that holds the store's write lock from its start, so that write
    /// transactions run one at a time, as their read-then-write steps assume. SQLite: `BEGIN
    /// IMMEDIATE` (a deferred transaction takes its snapshot at its first statement and fails
    /// with SQLITE_BUSY, which no busy timeout waits out, when another connection commits before
    /// it gets to write). PostgreSQL: a transaction-scoped advisory lock, cluster-wide. Single
    /// statements (claims, renewals) do not take it: each is atomic on its own.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT 1 AS locked FROM pg_advisory_xact_lock($1, 0)")
                    .bind(cluster::WRITE_LOCK)
                    .fetch_one(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// A transaction for writes that need only be atomic together, each guarded by its own
    /// condition (a job's owner and state): no cluster-wide lock on PostgreSQL, where concurrent
    /// ones wait on the rows they share and then re-check their conditions. SQLite still starts
    /// it with `BEGIN IMMEDIATE`, for the reason [`Store::write`] gives.
    async fn atomic(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => Ok(self.pool.begin().await?),
        }
    }

    /// Whether the database answers (health checks); the pool itself stays inside the store.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1 AS one").fetch_one(&self.pool).await?;
        Ok(())
    }
}

/// Creates the SQLite file (and its folder) if missing and switches it to WAL, which the file
/// keeps: readers then never wait for the writer.
async fn prepare_sqlite(url: &str) -> Result<()> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("database_url {url:?}: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10));
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
    let conn = options.connect().await?;
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_its_backend_and_messages_hide_its_password() {
        assert_eq!(Backend::of("sqlite:///tmp/x.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(
            Backend::of("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        let refused = Backend::of("mysql://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("expected sqlite://… or postgres://…"),
            "{refused}"
        );
        assert!(!refused.contains("secret"), "{refused}");
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
    }

    /// A database made before PostgreSQL support (migrations 0001–0005, BOOLEAN flags) opens,
    /// is upgraded, and keeps its rows and flags.
    #[tokio::test]
    async fn an_older_sqlite_database_is_upgraded_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        prepare_sqlite(&url).await.unwrap();
        let mut old = sqlx::migrate!("./migrations/sqlite");
        old.migrations = std::borrow::Cow::Owned(
            old.migrations
                .iter()
                .filter(|m| m.version <= 5)
                .cloned()
                .collect(),
        );
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        old.run(&pool).await.unwrap();
        let spec = publisher::spec::ApiSpec::from_toml(
            "name = \"old\"\ntable = \"db.t\"\nkey = [\"k\"]\n[[values]]\ncolumn = \"v\"\n",
        )
        .unwrap();
        sqlx::query(
            "INSERT INTO apis (name, spec, catalog, owner, protected, edge_group, revision, created_at, updated_at) \
             VALUES ('old', $1, 'default', 'ana', TRUE, 'default', 3, 1, 2)",
        )
        .bind(to_json(&spec))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO api_state (api, serving, converging, retiring, updated_at) VALUES ('old', 7, TRUE, FALSE, 2)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;

        let store = Store::open(&url).await.unwrap();
        let api = store.api("old").await.unwrap();
        assert!(api.protected);
        assert_eq!((api.revision, api.owner.as_str()), (3, "ana"));
        let state = store.api_state("old").await.unwrap().unwrap();
        assert_eq!(
            (state.serving, state.converging, state.retiring),
            (Some(7), true, false)
        );
        assert!(store.lead("coordinator", "me", 1000).await.unwrap());
    }
}
