//! The edge interface: what the publisher needs from one edge cache to stage, verify, commit
//! and roll back a version. `edge-cache` implements it on Redis; the two-phase protocol across
//! several edges lives in [`crate::publish`], so it is the same whatever the cache.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::canonical::{Checksum, Entry};
use crate::error::Result;

/// What an edge keeps about one version, written with it and read back by lookups.
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
    /// SHA-256 hex digests of the tokens allowed to read the API; empty means public.
    #[serde(default)]
    pub token_hashes: Vec<String>,
    #[serde(default)]
    pub protected: bool,
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

#[async_trait]
pub trait EdgeSink: Send + Sync {
    /// The edge's address as the operator wrote it, for reports and errors.
    fn address(&self) -> &str;

    async fn versions(&self, api: &str) -> Result<EdgeVersions>;

    /// Takes or renews the per-API publish lease on this edge for `holder`; false if another
    /// holder has it. The lease outlives a crashed holder by at most `ttl_ms`.
    async fn acquire_lease(&self, api: &str, holder: &str, ttl_ms: u64) -> Result<bool>;
    async fn release_lease(&self, api: &str, holder: &str) -> Result<()>;

    /// Clears any leftover staging of `version` and prepares to receive it.
    async fn begin(&self, manifest: &VersionManifest) -> Result<()>;

    /// Writes a batch of entries of the staged version (pipelined; bounded by the batch).
    async fn write(&self, api: &str, version: u64, entries: &[Entry]) -> Result<()>;

    /// Verifies the edge holds the complete version (count and checksum) and marks it sealed.
    async fn seal(&self, manifest: &VersionManifest) -> Result<Checksum>;

    /// Switches readers to `version`, atomically on this edge.
    async fn commit(&self, api: &str, version: u64) -> Result<()>;

    /// Removes a staged, never-committed version.
    async fn discard(&self, api: &str, version: u64) -> Result<()>;

    /// Drops committed versions beyond the newest `keep`, and stale staging, without blocking.
    async fn gc(&self, api: &str, keep: usize) -> Result<u64>;
}
