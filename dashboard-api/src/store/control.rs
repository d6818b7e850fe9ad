//! The control plane's tables: per API, the desired state (`api_state`: what every edge must
//! serve, the edges, the operation lease and its fence, the access revision) and the life of
//! each version (`api_versions`). Only [`crate::control`] changes them; routes read them.

use publisher::quality::OutputProfile;
use publisher::sink::{Access, Fence, VersionManifest};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Store, now_ms, rfc3339, to_json};
use crate::error::{Error, Result};

/// What the store says an API's edges must look like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiState {
    pub api: String,
    /// The version every edge must serve.
    pub serving: Option<u64>,
    /// What served before, the way back when `serving` cannot be had on every edge.
    pub previous: Option<u64>,
    /// `serving` was decided but some edge may not serve it yet.
    pub converging: bool,
    pub edges: Vec<String>,
    pub access_revision: u64,
    /// The API was deleted: its edges must drop everything of it.
    pub retiring: bool,
}

/// A held operation lease on one API. Every edge switch made under it carries its fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub api: String,
    pub holder: String,
    pub fence: Fence,
}

/// A version's place in its life: staged → sealed → committed → retired, or discarded when it
/// never committed (its staging failed, or its commit was abandoned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    Staged,
    Sealed,
    Committed,
    Retired,
    Discarded,
}

impl VersionState {
    const ALL: [VersionState; 5] = [
        VersionState::Staged,
        VersionState::Sealed,
        VersionState::Committed,
        VersionState::Retired,
        VersionState::Discarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Staged => "staged",
            VersionState::Sealed => "sealed",
            VersionState::Committed => "committed",
            VersionState::Retired => "retired",
            VersionState::Discarded => "discarded",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Error::Internal(format!("stored version state {s:?} is unknown")))
    }
}

/// One version as the store records it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionRow {
    pub version: u64,
    pub state: VersionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub keys: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Whether a snapshot can refill an edge with this version.
    pub has_snapshot: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// What it was computed from (see `publisher::fingerprint::source`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The newest data it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_time: Option<String>,
    /// It failed its quality gates and its owner published it anyway.
    pub forced: bool,
    #[serde(skip)]
    pub profile: Option<OutputProfile>,
    #[serde(skip)]
    pub snapshot: Option<VersionManifest>,
}

fn state_row(row: &AnyRow) -> Result<ApiState> {
    let edges: String = row.try_get("edges")?;
    Ok(ApiState {
        api: row.try_get("api")?,
        serving: row.try_get::<Option<i64>, _>("serving")?.map(|v| v as u64),
        previous: row.try_get::<Option<i64>, _>("previous")?.map(|v| v as u64),
        converging: super::flag(row, "converging")?,
        edges: serde_json::from_str(&edges)
            .map_err(|e| Error::Internal(format!("stored edges are not a JSON list: {e}")))?,
        access_revision: row.try_get::<i64, _>("access_revision")? as u64,
        retiring: super::flag(row, "retiring")?,
    })
}

fn version_row(row: &AnyRow) -> Result<VersionRow> {
    let snapshot: Option<String> = row.try_get("snapshot")?;
    let snapshot: Option<VersionManifest> = snapshot
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| Error::Internal(format!("stored snapshot manifest is unreadable: {e}")))?;
    let state: String = row.try_get("state")?;
    let profile: Option<String> = row.try_get("profile")?;
    let profile = profile
        .map(|p| serde_json::from_str(&p))
        .transpose()
        .map_err(|e| Error::Internal(format!("stored output profile is unreadable: {e}")))?;
    Ok(VersionRow {
        version: row.try_get::<i64, _>("version")? as u64,
        state: VersionState::parse(&state)?,
        path: row.try_get("path")?,
        keys: row.try_get::<Option<i64>, _>("keys")?.unwrap_or(0) as u64,
        bytes: row.try_get::<Option<i64>, _>("bytes")?.unwrap_or(0) as u64,
        checksum: row.try_get("checksum")?,
        has_snapshot: snapshot.is_some(),
        committed_at: row.try_get::<Option<i64>, _>("committed_at")?.map(rfc3339),
        job_id: row.try_get("job_id")?,
        fingerprint: row.try_get("fingerprint")?,
        data_time: row.try_get("data_time")?,
        forced: super::flag(row, "forced")?,
        profile,
        snapshot,
    })
}

/// Creates the API's state row if missing.
async fn ensure_state(conn: &mut AnyConnection, api: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_state (api, updated_at) VALUES ($1, $2) ON CONFLICT (api) DO NOTHING",
    )
    .bind(api)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a change of who may read the API, in the caller's transaction, so that the change and
/// its revision are one fact.
pub(super) async fn bump_access(conn: &mut AnyConnection, api: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_state (api, access_revision, updated_at) VALUES ($1, 1, $2) \
         ON CONFLICT (api) DO UPDATE SET access_revision = api_state.access_revision + 1, updated_at = $2",
    )
    .bind(api)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The API was deleted, in the caller's transaction: nothing may serve any more, its version
/// history goes, and its edges must retire it.
pub(super) async fn mark_retiring(conn: &mut AnyConnection, api: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE api_state SET serving = NULL, previous = NULL, converging = TRUE, retiring = TRUE, updated_at = $1 \
         WHERE api = $2",
    )
    .bind(now)
    .bind(api)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM api_versions WHERE api = $1")
        .bind(api)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Every edge has retired the deleted API, under the lease: the state starts over (no
    /// edges, version numbers from 1), keeping the fence and the access revision.
    pub async fn retired(&self, lease: &Lease) -> Result<()> {
        let done = sqlx::query(
            "UPDATE api_state SET retiring = FALSE, converging = FALSE, edges = '[]', next_version = 1, updated_at = $1 \
             WHERE api = $2 AND retiring AND lease_holder = $3 AND fence = $4",
        )
        .bind(now_ms())
        .bind(&lease.api)
        .bind(&lease.holder)
        .bind(lease.fence.0 as i64)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(lease_lost(lease));
        }
        Ok(())
    }

    pub async fn api_state(&self, api: &str) -> Result<Option<ApiState>> {
        let row = sqlx::query("SELECT * FROM api_state WHERE api = $1")
            .bind(api)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(state_row).transpose()
    }

    /// Every API the control plane has state for, by name.
    pub async fn api_states(&self) -> Result<Vec<ApiState>> {
        let rows = sqlx::query("SELECT * FROM api_state ORDER BY api")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(state_row).collect()
    }

    /// Who may read the API now, read in one transaction: the revision, the protection flag and
    /// the live tokens' hashes. An API deleted from the dashboard (state, no definition) is
    /// locked: protected, with no tokens.
    pub async fn access(&self, api: &str) -> Result<Access> {
        let mut tx = self.write().await?;
        let revision: Option<i64> =
            sqlx::query("SELECT access_revision FROM api_state WHERE api = $1")
                .bind(api)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("access_revision"))
                .transpose()?;
        let protected: Option<bool> = sqlx::query("SELECT protected FROM apis WHERE name = $1")
            .bind(api)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| super::flag(&r, "protected"))
            .transpose()?;
        let protected = protected.unwrap_or(revision.is_some());
        let rows = if protected {
            sqlx::query("SELECT id, hash, rate_per_second, burst FROM tokens WHERE api = $1 AND kind = 'api' AND revoked_at IS NULL ORDER BY hash")
                .bind(api)
                .fetch_all(&mut *tx)
                .await?
        } else {
            Vec::new()
        };
        let mut token_hashes = Vec::with_capacity(rows.len());
        let mut limits = Vec::new();
        for row in &rows {
            let hash: String = row.try_get("hash")?;
            if let Some(q) = super::tokens::quota_of(row)? {
                limits.push(edge_contract::TokenLimit {
                    token_hash: hash.clone(),
                    token_id: row.try_get("id")?,
                    per_second: q.per_second,
                    burst: q.burst,
                });
            }
            token_hashes.push(hash);
        }
        tx.commit().await?;
        Ok(Access {
            revision: revision.unwrap_or(0) as u64,
            protected,
            token_hashes,
            limits,
        })
    }

    /// Protects the API (or makes it public) without a new definition revision.
    pub async fn set_protected(&self, api: &str, protected: bool) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let done = sqlx::query("UPDATE apis SET protected = $1, updated_at = $2 WHERE name = $3")
            .bind(protected)
            .bind(now)
            .bind(api)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("API", api));
        }
        bump_access(&mut tx, api, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the API's operation lease for `holder` (or extends it, if `holder` has it) unless
    /// someone else holds an unexpired one. Every acquisition gets a new, higher fence.
    pub async fn try_lease(&self, api: &str, holder: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        ensure_state(&mut tx, api, now).await?;
        let row = sqlx::query(
            "UPDATE api_state SET lease_holder = $1, lease_expires_at = $2, fence = fence + 1, updated_at = $3 \
             WHERE api = $4 AND (lease_holder IS NULL OR lease_expires_at < $3 OR lease_holder = $1) \
             RETURNING fence",
        )
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .bind(api)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|r| {
            Ok(Lease {
                api: api.to_string(),
                holder: holder.to_string(),
                fence: Fence(r.try_get::<i64, _>("fence")? as u64),
            })
        })
        .transpose()
    }

    /// Extends a held lease; false when it was lost (expired and taken by another operation).
    pub async fn renew_lease(&self, lease: &Lease, ttl_ms: i64) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE api_state SET lease_expires_at = $1 \
             WHERE api = $2 AND lease_holder = $3 AND fence = $4 AND lease_expires_at >= $5",
        )
        .bind(now + ttl_ms)
        .bind(&lease.api)
        .bind(&lease.holder)
        .bind(lease.fence.0 as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn release_lease(&self, lease: &Lease) -> Result<()> {
        sqlx::query(
            "UPDATE api_state SET lease_holder = NULL, lease_expires_at = NULL \
             WHERE api = $1 AND lease_holder = $2 AND fence = $3",
        )
        .bind(&lease.api)
        .bind(&lease.holder)
        .bind(lease.fence.0 as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Hands out the API's next version number (at least `at_least`, so that numbers edges
    /// have seen are never reused) and records it as staged. Fenced: false-y error if the lease
    /// was lost.
    pub async fn allocate_version(
        &self,
        lease: &Lease,
        at_least: u64,
        job: Option<&str>,
    ) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE api_state SET next_version = (CASE WHEN next_version > $1 THEN next_version ELSE $1 END) + 1, updated_at = $2 \
             WHERE api = $3 AND lease_holder = $4 AND fence = $5 AND lease_expires_at >= $2 \
             RETURNING next_version - 1 AS version",
        )
        .bind(at_least as i64)
        .bind(now)
        .bind(&lease.api)
        .bind(&lease.holder)
        .bind(lease.fence.0 as i64)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| lease_lost(lease))?;
        let version: i64 = row.try_get("version")?;
        sqlx::query(
            "INSERT INTO api_versions (api, version, state, job_id, created_at, updated_at) VALUES ($1, $2, 'staged', $3, $4, $4) \
             ON CONFLICT (api, version) DO UPDATE SET state = 'staged', job_id = $3, updated_at = $4",
        )
        .bind(&lease.api)
        .bind(version)
        .bind(job)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(version as u64)
    }

    /// Records a version sealed on every edge, with its snapshot's manifest when one was written.
    /// Records a version sealed on every edge, with what it was computed from (`fingerprint`)
    /// and what its output looked like (`profile`), which the next publish compares against.
    pub async fn seal_version(
        &self,
        manifest: &VersionManifest,
        snapshot: bool,
        fingerprint: &str,
        profile: Option<&OutputProfile>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE api_versions SET state = 'sealed', path = $1, keys = $2, bytes = $3, checksum = $4, snapshot = $5, updated_at = $6, \
             fingerprint = $9, profile = $10, data_time = $11 \
             WHERE api = $7 AND version = $8",
        )
        .bind(&manifest.path)
        .bind(manifest.checksum.keys as i64)
        .bind(manifest.checksum.bytes as i64)
        .bind(manifest.checksum.hex())
        .bind(snapshot.then(|| to_json(manifest)))
        .bind(now_ms())
        .bind(&manifest.api)
        .bind(manifest.version as i64)
        .bind(fingerprint)
        .bind(profile.map(to_json))
        .bind(&manifest.data_time)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that a sealed version failed its gates and is committed anyway, by its owner.
    pub async fn mark_forced(&self, api: &str, version: u64) -> Result<()> {
        sqlx::query("UPDATE api_versions SET forced = TRUE WHERE api = $1 AND version = $2")
            .bind(api)
            .bind(version as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The version every edge must serve, as recorded.
    pub async fn serving_version(&self, api: &str) -> Result<Option<VersionRow>> {
        let row = sqlx::query(
            "SELECT v.* FROM api_versions v JOIN api_state s ON s.api = v.api AND s.serving = v.version \
             WHERE v.api = $1",
        )
        .bind(api)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_row).transpose()
    }

    /// Every API's serving version, by API.
    pub async fn serving_versions(&self) -> Result<Vec<(String, VersionRow)>> {
        let rows = sqlx::query(
            "SELECT v.* FROM api_versions v JOIN api_state s ON s.api = v.api AND s.serving = v.version \
             ORDER BY v.api",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("api")?, version_row(r)?)))
            .collect()
    }

    /// A version that will never serve: its staging failed or was abandoned.
    pub async fn discard_version(&self, api: &str, version: u64) -> Result<()> {
        sqlx::query(
            "UPDATE api_versions SET state = 'discarded', updated_at = $1 \
             WHERE api = $2 AND version = $3 AND state IN ('staged', 'sealed')",
        )
        .bind(now_ms())
        .bind(api)
        .bind(version as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records, under the lease, that every edge must now serve `target` (from `edges`), before
    /// the first edge switches. False when the lease was lost: the operation must stop.
    pub async fn intend(&self, lease: &Lease, target: u64, edges: &[String]) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE api_state SET \
                 previous = CASE WHEN serving IS NOT NULL AND serving <> $1 THEN serving ELSE previous END, \
                 serving = $1, converging = TRUE, edges = $2, updated_at = $3 \
             WHERE api = $4 AND lease_holder = $5 AND fence = $6 AND lease_expires_at >= $3",
        )
        .bind(target as i64)
        .bind(to_json(&edges))
        .bind(now)
        .bind(&lease.api)
        .bind(&lease.holder)
        .bind(lease.fence.0 as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every edge serves `target`: the convergence is over and the version is committed.
    pub async fn converged(&self, lease: &Lease, target: u64) -> Result<()> {
        let now = now_ms();
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE api_state SET converging = FALSE, updated_at = $1 \
             WHERE api = $2 AND serving = $3 AND fence = $4",
        )
        .bind(now)
        .bind(&lease.api)
        .bind(target as i64)
        .bind(lease.fence.0 as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE api_versions SET state = 'committed', committed_at = COALESCE(committed_at, $1), updated_at = $1 \
             WHERE api = $2 AND version = $3",
        )
        .bind(now)
        .bind(&lease.api)
        .bind(target as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Committed versions other than the serving one beyond the newest `keep` are retired (the
    /// edges' GC drops them by the same rule).
    pub async fn retire_beyond(&self, api: &str, keep: usize) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE api_versions SET state = 'retired', updated_at = $1 \
             WHERE api = $2 AND state = 'committed' \
               AND version <> COALESCE((SELECT serving FROM api_state WHERE api = $2), -1) \
               AND version NOT IN (SELECT version FROM api_versions WHERE api = $2 AND state = 'committed' ORDER BY version DESC LIMIT $3)",
        )
        .bind(now)
        .bind(api)
        .bind(keep.max(1) as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn version(&self, api: &str, version: u64) -> Result<Option<VersionRow>> {
        let row = sqlx::query("SELECT * FROM api_versions WHERE api = $1 AND version = $2")
            .bind(api)
            .bind(version as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(version_row).transpose()
    }

    /// The API's versions, newest first (at most 100).
    pub async fn versions(&self, api: &str) -> Result<Vec<VersionRow>> {
        let rows = sqlx::query(
            "SELECT * FROM api_versions WHERE api = $1 ORDER BY version DESC LIMIT 100",
        )
        .bind(api)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_row).collect()
    }
}

fn lease_lost(lease: &Lease) -> Error {
    Error::Conflict(format!(
        "the lease on `{}` (fence {}) was lost to another operation",
        lease.api, lease.fence.0
    ))
}
