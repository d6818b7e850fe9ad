//! The edge interface: what the control plane needs from one edge cache to stage, verify, commit
//! and roll back a version and to set who may read an API. `edge-cache` implements it on Redis;
//! the protocol across several edges (lease, intent, switch, converge) lives in one place, the
//! dashboard's control plane, so it is the same whatever the cache.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::canonical::{Checksum, Entry};

/// Why an edge failed a step. `transient` is decided by the edge code that saw the failure:
/// its Redis down or silent (a retry may succeed), not an edge that answered and refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("edge {edge}: {step}: {message}")]
pub struct EdgeError {
    /// The edge's address as the operator wrote it.
    pub edge: String,
    pub step: String,
    pub message: String,
    pub transient: bool,
}

pub type EdgeResult<T> = std::result::Result<T, EdgeError>;

/// What an edge keeps about one version, written with it and read back by lookups. Who may read
/// the API is not part of a version: see [`Access`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionManifest {
    pub api: String,
    pub version: u64,
    /// RFC 3339 time the version was staged.
    pub created_at: String,
    /// How lookups turn URL segments into key JSON: one type per key column.
    pub key_types: Vec<crate::keypath::KeyType>,
    pub key_names: Vec<String>,
    pub checksum: Checksum,
    /// `fasttrack` or `fallback`.
    pub path: String,
    /// How new the data behind the version is (RFC 3339; the publisher's `freshness` module).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_time: Option<String>,
    /// How the version's values are stored, when compressed (see [`crate::compression`]); the
    /// checksum is then of the stored bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<crate::compression::Compression>,
}

/// One edge's view of an API's versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeVersions {
    /// The version readers see now.
    pub serving: Option<u64>,
    /// Committed versions still kept for rollback, newest first (the serving one included).
    pub kept: Vec<VersionManifest>,
    /// The highest version number ever staged here, committed or not.
    pub highest: u64,
}

/// Who may read an API, as the control plane's store says. `revision` grows with every change
/// of the store's access state, and an edge ignores a set older than the one it holds, so two
/// writers racing can only ever leave the newer set behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub revision: u64,
    /// A token is required (with no hashes, nobody can read).
    pub protected: bool,
    /// SHA-256 hex digests of the live tokens (ignored unless `protected`).
    pub token_hashes: Vec<String>,
    /// Rates of the tokens that have one (each lookup process enforces them on its own).
    #[serde(default)]
    pub limits: Vec<TokenLimit>,
}

/// A read token's quota: `per_second` requests on average, `burst` at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLimit {
    /// SHA-256 hex digest of the token (never the token).
    pub token_hash: String,
    /// The token's id, for metrics and messages.
    pub token_id: String,
    pub per_second: u32,
    pub burst: u32,
}

/// The lease's fencing token: every commit carries the one of the operation that makes it, and
/// an edge refuses a commit with a token older than the newest it has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fence(pub u64);

/// What a switch of the serving pointer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchMode {
    /// A publish: only to a version newer than the serving one.
    Forward,
    /// A rollback or a convergence decided by the control plane: any sealed or kept version.
    Explicit,
}

impl SwitchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchMode::Forward => "forward",
            SwitchMode::Explicit => "explicit",
        }
    }
}

#[async_trait]
pub trait EdgeSink: Send + Sync {
    /// The edge's address as the operator wrote it, for reports and errors.
    fn address(&self) -> &str;

    async fn versions(&self, api: &str) -> EdgeResult<EdgeVersions>;

    /// Whether the edge holds `version` complete: sealed here (committed or not) and not dropped.
    async fn holds(&self, api: &str, version: u64) -> EdgeResult<bool>;

    /// Clears any leftover staging of `version` and prepares to receive it.
    async fn begin(&self, manifest: &VersionManifest) -> EdgeResult<()>;

    /// Writes a batch of entries of the staged version (pipelined; bounded by the batch).
    async fn write(&self, api: &str, version: u64, entries: &[Entry]) -> EdgeResult<()>;

    /// Verifies the edge holds the complete version (count and checksum) and marks it sealed.
    async fn seal(&self, manifest: &VersionManifest) -> EdgeResult<Checksum>;

    /// Switches readers to `version`, atomically on this edge, unless `fence` is older than one
    /// already seen here or `mode` forbids it. Returns the version served before.
    async fn switch(
        &self,
        api: &str,
        version: u64,
        fence: Fence,
        mode: SwitchMode,
    ) -> EdgeResult<Option<u64>>;

    /// Replaces who may read the API, unless the edge holds a newer access revision.
    async fn set_access(&self, api: &str, access: &Access) -> EdgeResult<()>;

    /// Removes a staged, never-committed version.
    async fn discard(&self, api: &str, version: u64) -> EdgeResult<()>;

    /// Drops committed versions beyond the newest `keep`, and stale staging, without blocking.
    async fn gc(&self, api: &str, keep: usize) -> EdgeResult<u64>;

    /// Drops everything of a deleted API (every version and its keys, the serving pointer),
    /// after setting `access` (a lock); lookups then answer that it is gone. Repeatable.
    /// Returns the versions dropped.
    async fn retire(&self, api: &str, access: &Access) -> EdgeResult<u64>;
}
