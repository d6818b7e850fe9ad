//! Refilling an edge from the snapshots of committed versions (`{dir}/{api}/v{N}.snap|json`),
//! as when its Redis came back empty: begin, write, seal (count and checksum), commit — the
//! same protocol as a publish, under the same per-API lease, and never over a serving version.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use publisher::canonical::Entry;
use publisher::snapshot::SnapshotStore;
use serde::Serialize;

use crate::edge::RedisEdge;
use crate::error::{Error, Result};

/// Entries per write while refilling.
const BATCH: usize = 2000;
const LEASE_TTL_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RehydrateOutcome {
    /// The newest snapshot now serves.
    Refilled { version: u64, keys: u64, ms: u64 },
    /// The edge already serves a version of the API; nothing was written.
    AlreadyServing { version: u64 },
    /// No snapshot of the API in the store.
    NoSnapshot,
    /// Another holder (a publish) has the API's lease on this edge.
    Busy,
}

fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "rehydrate-{host}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    )
}

/// Refills `api` on `edge` from the newest snapshot in `snapshots`, unless the edge serves it.
pub async fn rehydrate(
    edge: &RedisEdge,
    snapshots: &Arc<SnapshotStore>,
    api: &str,
) -> Result<RehydrateOutcome> {
    let store = Arc::clone(snapshots);
    let name = api.to_string();
    let latest = tokio::task::spawn_blocking(move || store.latest(&name))
        .await
        .map_err(|e| Error::edge(edge.address(), "rehydrate", e.to_string()))?
        .map_err(Error::Snapshot)?;
    let Some(manifest) = latest else {
        return Ok(RehydrateOutcome::NoSnapshot);
    };
    if let Some(v) = edge.serving(api).await? {
        return Ok(RehydrateOutcome::AlreadyServing { version: v });
    }
    let holder = holder();
    if !edge.acquire_lease(api, &holder, LEASE_TTL_MS).await? {
        return Ok(RehydrateOutcome::Busy);
    }
    let result = refill(edge, snapshots, &manifest, &holder).await;
    if result.is_err()
        && let Err(e) = edge.discard(api, manifest.version).await
    {
        tracing::warn!(edge = edge.address(), api, error = %e, "discarding a failed rehydrate");
    }
    if let Err(e) = edge.release_lease(api, &holder).await {
        tracing::warn!(edge = edge.address(), api, error = %e, "releasing the rehydrate lease");
    }
    result
}

async fn refill(
    edge: &RedisEdge,
    snapshots: &Arc<SnapshotStore>,
    manifest: &publisher::sink::VersionManifest,
    holder: &str,
) -> Result<RehydrateOutcome> {
    let started = Instant::now();
    let api = manifest.api.clone();
    let version = manifest.version;
    edge.begin(manifest).await?;

    // The snapshot is read (and decompressed) on a blocking thread, a bounded queue ahead.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Entry>>(4);
    let store = Arc::clone(snapshots);
    let reader_api = api.clone();
    let reader = tokio::task::spawn_blocking(move || {
        store.read(&reader_api, version, BATCH, |batch| {
            tx.blocking_send(batch.to_vec())
                .map_err(|_| publisher::Error::Cancelled {
                    step: "rehydrate".into(),
                })
        })
    });
    let mut last_renew = Instant::now();
    let mut written = Ok(());
    while let Some(batch) = rx.recv().await {
        if let Err(e) = edge.write(&api, version, &batch).await {
            written = Err(e);
            break;
        }
        if last_renew.elapsed() > Duration::from_millis(LEASE_TTL_MS / 3) {
            edge.acquire_lease(&api, holder, LEASE_TTL_MS).await?;
            last_renew = Instant::now();
        }
    }
    drop(rx);
    let read = reader
        .await
        .map_err(|e| Error::edge(edge.address(), "rehydrate", e.to_string()))?;
    written?;
    let read = read.map_err(Error::Snapshot)?;
    if read != manifest.checksum {
        return Err(Error::edge(
            edge.address(),
            "rehydrate",
            format!(
                "snapshot of `{api}` v{version} does not match its manifest's checksum ({} keys read, {} expected)",
                read.keys, manifest.checksum.keys
            ),
        ));
    }
    edge.seal(manifest).await?;
    edge.commit_if_unserved(&api, version).await?;
    let ms = started.elapsed().as_millis() as u64;
    Ok(RehydrateOutcome::Refilled {
        version,
        keys: manifest.checksum.keys,
        ms,
    })
}

/// APIs with at least one snapshot under `dir` (sub-directories holding a `v{N}.json`).
pub fn snapshot_apis(dir: &Path) -> Result<Vec<String>> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Io {
                context: format!("listing snapshots in {}", dir.display()),
                source: e,
            });
        }
    };
    let mut apis = Vec::new();
    for entry in read.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !publisher::spec::is_api_name(&name) || !entry.path().is_dir() {
            continue;
        }
        let has_manifest = std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| {
                f.file_name()
                    .to_str()
                    .and_then(|n| {
                        n.strip_prefix('v')?
                            .strip_suffix(".json")?
                            .parse::<u64>()
                            .ok()
                    })
                    .is_some()
            });
        if has_manifest {
            apis.push(name);
        }
    }
    apis.sort();
    Ok(apis)
}

/// APIs that have a snapshot under `dir` but no serving version on `edge`.
pub async fn missing_apis(edge: &RedisEdge, dir: &Path) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for api in snapshot_apis(dir)? {
        if edge.serving(&api).await?.is_none() {
            missing.push(api);
        }
    }
    Ok(missing)
}

/// Refills every API that `dir` has a snapshot of and `edge` does not serve; one failure does
/// not stop the others.
pub async fn rehydrate_missing(
    edge: &RedisEdge,
    dir: &Path,
) -> Result<Vec<(String, Result<RehydrateOutcome>)>> {
    let store = Arc::new(SnapshotStore::new(dir));
    let mut out = Vec::new();
    for api in missing_apis(edge, dir).await? {
        let outcome = rehydrate(edge, &store, &api).await;
        out.push((api, outcome));
    }
    Ok(out)
}
