//! Committed versions kept on local disk, so that an edge whose Redis comes back empty can be
//! refilled without re-running the engine.
//!
//! Layout: `{dir}/{api}/v{version}.snap` (zstd of length-prefixed key/value pairs) beside
//! `{dir}/{api}/v{version}.json` (the [`VersionManifest`]). Files are written under a temporary
//! name, synced, then renamed, so a reader never sees half a snapshot; a full disk fails the
//! write, and the publish, before any edge commits.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::canonical::{Checksum, Entry};
use crate::error::{Error, Result};
use crate::sink::VersionManifest;
use crate::spec::is_api_name;

pub struct SnapshotStore {
    dir: PathBuf,
}

/// zstd level of snapshot files: its fastest regular level. A snapshot is written while the
/// publish runs, on the cores the engine needs, and a compressed version's values are zstd
/// already: at level 3 `publish recent_activity` at 10 M rows took 0.7 s longer for a snapshot
/// 2 % smaller (bench/history.md).
const SNAPSHOT_LEVEL: i32 = 1;

fn snap_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Snapshot {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl SnapshotStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SnapshotStore { dir: dir.into() }
    }

    fn api_dir(&self, api: &str) -> Result<PathBuf> {
        // API names are validated, but a snapshot path is never built from an unchecked name.
        if !is_api_name(api) {
            return Err(snap_err(
                &self.dir,
                format!("refusing API name {api:?} in a snapshot path"),
            ));
        }
        Ok(self.dir.join(api))
    }

    pub fn writer(&self, manifest: &VersionManifest) -> Result<SnapshotWriter> {
        let dir = self.api_dir(&manifest.api)?;
        fs::create_dir_all(&dir).map_err(|e| snap_err(&dir, e))?;
        let final_path = dir.join(format!("v{}.snap", manifest.version));
        let tmp_path = dir.join(format!(".v{}.snap.tmp", manifest.version));
        let file = File::create(&tmp_path).map_err(|e| snap_err(&tmp_path, e))?;
        let encoder = zstd::Encoder::new(BufWriter::with_capacity(1 << 20, file), SNAPSHOT_LEVEL)
            .map_err(|e| snap_err(&tmp_path, e))?;
        Ok(SnapshotWriter {
            encoder: Some(encoder),
            tmp_path,
            final_path,
            checksum: Checksum::default(),
        })
    }

    /// The newest snapshot of an API, if any.
    pub fn latest(&self, api: &str) -> Result<Option<VersionManifest>> {
        let dir = self.api_dir(api)?;
        let Ok(read) = fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut versions: Vec<u64> = read
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        versions.sort_unstable();
        match versions.last() {
            Some(v) => self.manifest(api, *v).map(Some),
            None => Ok(None),
        }
    }

    pub fn manifest(&self, api: &str, version: u64) -> Result<VersionManifest> {
        let path = self.api_dir(api)?.join(format!("v{version}.json"));
        let text = fs::read_to_string(&path).map_err(|e| snap_err(&path, e))?;
        serde_json::from_str(&text).map_err(|e| snap_err(&path, e))
    }

    /// Streams a snapshot's entries in batches of about `batch` entries.
    pub fn read(
        &self,
        api: &str,
        version: u64,
        batch: usize,
        mut each: impl FnMut(&[Entry]) -> Result<()>,
    ) -> Result<Checksum> {
        let path = self.api_dir(api)?.join(format!("v{version}.snap"));
        let file = File::open(&path).map_err(|e| snap_err(&path, e))?;
        let mut reader = zstd::Decoder::with_buffer(BufReader::with_capacity(1 << 20, file))
            .map_err(|e| snap_err(&path, e))?;
        let mut checksum = Checksum::default();
        let mut entries = Vec::with_capacity(batch);
        let mut len = [0u8; 4];
        let read_exact =
            |r: &mut dyn Read, buf: &mut [u8]| r.read_exact(buf).map_err(|e| snap_err(&path, e));
        loop {
            match reader.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(snap_err(&path, e)),
            }
            let mut key = vec![0; u32::from_le_bytes(len) as usize];
            read_exact(&mut reader, &mut key)?;
            read_exact(&mut reader, &mut len)?;
            let mut value = vec![0; u32::from_le_bytes(len) as usize];
            read_exact(&mut reader, &mut value)?;
            checksum.add(&key, &value);
            entries.push(Entry { key, value });
            if entries.len() >= batch {
                each(&entries)?;
                entries.clear();
            }
        }
        if !entries.is_empty() {
            each(&entries)?;
        }
        Ok(checksum)
    }

    /// Keeps the newest `keep` snapshots of an API, and removes the temporary files of writers
    /// that died before finishing (a crashed publish). Called by the publisher that holds the
    /// API's lease, after its own snapshot is in place, so no live writer owns a `.tmp` here.
    pub fn prune(&self, api: &str, keep: usize) -> Result<()> {
        let dir = self.api_dir(api)?;
        let Ok(read) = fs::read_dir(&dir) else {
            return Ok(());
        };
        let names: Vec<String> = read
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        for stale in names.iter().filter(|n| n.ends_with(".tmp")) {
            let _ = fs::remove_file(dir.join(stale));
        }
        let mut versions: Vec<u64> = names
            .iter()
            .filter_map(|n| n.strip_prefix('v')?.strip_suffix(".json")?.parse().ok())
            .collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        for v in versions.into_iter().skip(keep) {
            for ext in ["snap", "json"] {
                let _ = fs::remove_file(dir.join(format!("v{v}.{ext}")));
            }
        }
        Ok(())
    }
}

impl SnapshotStore {
    /// Removes every snapshot of a deleted API (the API's lease is held: no writer is live).
    pub fn remove_api(&self, api: &str) -> Result<()> {
        let dir = self.api_dir(api)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(snap_err(&dir, e)),
        }
    }
}

pub struct SnapshotWriter {
    encoder: Option<zstd::Encoder<'static, BufWriter<File>>>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    checksum: Checksum,
}

impl SnapshotWriter {
    pub fn write(&mut self, entries: &[Entry]) -> Result<()> {
        let enc = self.encoder.as_mut().expect("write after finish");
        for e in entries {
            let r = enc
                .write_all(&(e.key.len() as u32).to_le_bytes())
                .and_then(|_| enc.write_all(&e.key))
                .and_then(|_| enc.write_all(&(e.value.len() as u32).to_le_bytes()))
                .and_then(|_| enc.write_all(&e.value));
            r.map_err(|err| snap_err(&self.tmp_path, err))?;
            self.checksum.add(&e.key, &e.value);
        }
        Ok(())
    }

    /// Syncs and renames into place; the manifest is written last, so it only names complete data.
    pub fn finish(mut self, manifest: &VersionManifest) -> Result<PathBuf> {
        let enc = self.encoder.take().expect("finish twice");
        let file = enc
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map_err(|e| snap_err(&self.tmp_path, e))?;
        file.sync_all().map_err(|e| snap_err(&self.tmp_path, e))?;
        if self.checksum != manifest.checksum {
            return Err(snap_err(
                &self.tmp_path,
                "written entries do not match the version's checksum",
            ));
        }
        fs::rename(&self.tmp_path, &self.final_path).map_err(|e| snap_err(&self.final_path, e))?;
        let manifest_path = self.final_path.with_extension("json");
        let tmp_manifest = self.final_path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(manifest).map_err(|e| snap_err(&manifest_path, e))?;
        let written = File::create(&tmp_manifest).and_then(|mut f| {
            f.write_all(&body)?;
            f.sync_all()
        });
        if let Err(e) = written {
            // Data without a manifest is never read; do not leave it behind either.
            let _ = fs::remove_file(&tmp_manifest);
            let _ = fs::remove_file(&self.final_path);
            return Err(snap_err(&tmp_manifest, e));
        }
        fs::rename(&tmp_manifest, &manifest_path).map_err(|e| snap_err(&manifest_path, e))?;
        Ok(self.final_path.clone())
    }
}

impl Drop for SnapshotWriter {
    /// Whatever ended the writer early (an error in `write` or `finish`, a re-route, a failed
    /// publish), its temporary file goes; after a successful `finish` it no longer exists.
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp_path);
    }
}

/// Entries per write while refilling an edge.
const REFILL_BATCH: usize = 2000;

/// Writes the snapshot of `manifest`'s version into one edge and seals it there (count and
/// checksum verified): the version is then held by the edge, ready to be switched to by the
/// control plane. The snapshot is read and decompressed on a blocking thread, a bounded queue
/// ahead of the writes. On failure the staging is discarded. Returns the keys written.
pub async fn refill(
    edge: &dyn crate::sink::EdgeSink,
    store: &std::sync::Arc<SnapshotStore>,
    manifest: &VersionManifest,
) -> Result<u64> {
    let result = refill_steps(edge, store, manifest).await;
    if result.is_err()
        && let Err(e) = edge.discard(&manifest.api, manifest.version).await
    {
        tracing::warn!(edge = edge.address(), api = %manifest.api, error = %e, "discarding a failed refill");
    }
    result
}

async fn refill_steps(
    edge: &dyn crate::sink::EdgeSink,
    store: &std::sync::Arc<SnapshotStore>,
    manifest: &VersionManifest,
) -> Result<u64> {
    let (api, version) = (manifest.api.clone(), manifest.version);
    edge.begin(manifest).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Entry>>(4);
    let reader_store = std::sync::Arc::clone(store);
    let reader_api = api.clone();
    let reader = tokio::task::spawn_blocking(move || {
        reader_store.read(&reader_api, version, REFILL_BATCH, |batch| {
            tx.blocking_send(batch.to_vec())
                .map_err(|_| Error::Cancelled {
                    step: "refill".into(),
                })
        })
    });
    let mut written = Ok(());
    while let Some(batch) = rx.recv().await {
        if let Err(e) = edge.write(&api, version, &batch).await {
            written = Err(e);
            break;
        }
    }
    drop(rx);
    let read = reader
        .await
        .map_err(|e| Error::io("reading a snapshot", std::io::Error::other(e.to_string())))?;
    written?;
    let read = read?;
    if read != manifest.checksum {
        return Err(Error::Snapshot {
            path: format!("{api}/v{version}.snap"),
            message: format!(
                "does not match its manifest ({} keys / sum {} read, {} keys / sum {} expected)",
                read.keys,
                read.hex(),
                manifest.checksum.keys,
                manifest.checksum.hex()
            ),
        });
    }
    edge.seal(manifest).await?;
    Ok(read.keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(version: u64, checksum: Checksum) -> VersionManifest {
        VersionManifest {
            api: "demo".into(),
            version,
            created_at: "2026-11-23T00:00:00Z".into(),
            key_types: vec![],
            key_names: vec![],
            checksum,
            path: "fasttrack".into(),
            data_time: None,
            compression: None,
        }
    }

    #[test]
    fn writes_reads_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path());
        let entries: Vec<Entry> = (0..1000)
            .map(|i| Entry {
                key: format!("[{i}]").into_bytes(),
                value: format!("{{\"v\":{i}}}").into_bytes(),
            })
            .collect();
        let mut sum = Checksum::default();
        entries.iter().for_each(|e| sum.add(&e.key, &e.value));
        for v in 1..=3 {
            let mut w = store.writer(&manifest(v, sum)).unwrap();
            w.write(&entries).unwrap();
            w.finish(&manifest(v, sum)).unwrap();
        }
        assert_eq!(store.latest("demo").unwrap().unwrap().version, 3);
        let mut seen = 0;
        let read = store.read("demo", 3, 128, |batch| {
            seen += batch.len();
            Ok(())
        });
        assert_eq!(read.unwrap(), sum);
        assert_eq!(seen, 1000);
        // A writer that died mid-way (a killed publish) left its temporary file.
        let crashed = dir.path().join("demo").join(".v4.snap.tmp");
        fs::write(&crashed, b"partial").unwrap();
        store.prune("demo", 2).unwrap();
        assert!(store.manifest("demo", 1).is_err());
        assert!(!crashed.exists());
        assert!(store.manifest("demo", 2).is_ok());
    }

    #[test]
    fn refuses_traversal_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path());
        let mut m = manifest(1, Checksum::default());
        m.api = "../etc".into();
        assert!(store.writer(&m).is_err());
        m.api = "demo".into();
        let mut w = store.writer(&m).unwrap();
        w.write(&[Entry {
            key: b"[1]".to_vec(),
            value: b"{}".to_vec(),
        }])
        .unwrap();
        // Checksum mismatch: nothing is renamed into place.
        assert!(w.finish(&m).is_err());
        assert!(store.latest("demo").unwrap().is_none());
        let left: Vec<_> = fs::read_dir(dir.path().join("demo")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
