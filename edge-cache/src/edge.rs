//! [`RedisEdge`]: one edge cache (a Redis, or a Redis Cluster) as the publisher sees it —
//! versioned writes beside the serving version, verify, atomic commit, rollback, GC, fencing,
//! token sets — and the few reads the lookup service needs.
//!
//! The protocol, per API, on one edge (key names in [`crate::layout`]):
//! - `begin(v)`: refuses a committed `v`; clears leftovers of `v`; records the bucket count.
//! - `write(v, entries)`: one HSET per bucket touched, all in one pipeline (one pipeline per
//!   slot on a cluster); only what Redis acknowledged is added to the version's checksum.
//! - `seal(manifest)`: the acknowledged checksum must equal the manifest's, and the buckets must
//!   hold exactly `manifest.checksum.keys` fields (sum of HLEN); then the manifest is stored.
//! - `switch(v, fence, mode)`: one Lua script switches `current` to a sealed (or kept) version
//!   and records the one it replaces as retired; it refuses a fence older than the newest it has
//!   seen (an operation that lost its lease) and, for a publish, a version older than the
//!   serving one. Which version an edge should serve is decided by the control plane, not here.
//! - `set_access(access)`: replaces the token set and protection flag unless the edge holds a
//!   newer access revision; versions carry no tokens.
//! - `gc(keep)`: drops committed versions beyond the newest `keep` (never the serving one, never
//!   one that stopped serving less than [`EdgeOptions::retire_grace`] ago) and stale staging:
//!   metadata first, then the buckets with UNLINK, a slice at a time.
//!
//! Readers resolve `current` once per request and read only that version's buckets, so they
//! never see a mix; the previous version stays readable at least for the retire grace.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use edge_contract::canonical::{Checksum, Entry};
use edge_contract::sink::{
    Access, EdgeResult, EdgeSink, EdgeVersions, Fence, SwitchMode, VersionManifest,
};
use redis::{Cmd, RedisError, Value};

use crate::conn::{Address, Conn, Grouped, Timeouts, value};
use crate::error::{Error, Result};
use crate::layout::{self, LAYOUT, StageRecord, StoredManifest};

#[derive(Debug, Clone)]
pub struct EdgeOptions {
    pub timeouts: Timeouts,
    /// Buckets of a version whose size is unknown at `begin` (no hint in the staging manifest's
    /// `checksum.keys` and no previous version to go by).
    pub default_buckets: u32,
    /// A version that stopped serving stays at least this long whatever `keep` says, so that a
    /// lookup that resolved it just before a switch still finds its data. Must exceed the lookup
    /// services' version cache (their `version_cache_ms`, capped at 2 s).
    pub retire_grace: Duration,
    /// A staged version newer than the serving one, never committed, is collected after this.
    pub stale_staging: Duration,
    /// Keys per UNLINK pipeline when dropping a version.
    pub delete_slice: usize,
    /// Read every entry back at seal and recompute the checksum (slow; for tests and audits).
    pub deep_verify: bool,
    /// Entries per pipeline inside one `write`; a write's pipelines are in flight together, so
    /// Redis works on one while the next is encoded.
    pub write_chunk: usize,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        EdgeOptions {
            timeouts: Timeouts::default(),
            default_buckets: 256,
            retire_grace: Duration::from_secs(10),
            stale_staging: Duration::from_secs(3600),
            delete_slice: 256,
            deep_verify: false,
            write_chunk: 2000,
        }
    }
}

/// The `[edge]` section of the configuration: how publishers and operators' commands talk to
/// edge Redis servers. Plain numbers (milliseconds) for TOML and environment overrides.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    pub connect_timeout_ms: u64,
    /// Deadline of one Redis reply.
    pub response_timeout_ms: u64,
    /// See [`EdgeOptions::retire_grace`].
    pub retire_grace_ms: u64,
    /// See [`EdgeOptions::stale_staging`]: how long the staged keys of a crashed publish may
    /// stay before GC collects them.
    pub stale_staging_ms: u64,
    pub delete_slice: usize,
    pub deep_verify: bool,
    pub write_chunk: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        let o = EdgeOptions::default();
        EdgeConfig {
            connect_timeout_ms: o.timeouts.connect.as_millis() as u64,
            response_timeout_ms: o.timeouts.response.as_millis() as u64,
            retire_grace_ms: o.retire_grace.as_millis() as u64,
            stale_staging_ms: o.stale_staging.as_millis() as u64,
            delete_slice: o.delete_slice,
            deep_verify: o.deep_verify,
            write_chunk: o.write_chunk,
        }
    }
}

impl EdgeConfig {
    pub fn options(&self) -> EdgeOptions {
        EdgeOptions {
            timeouts: Timeouts {
                connect: Duration::from_millis(self.connect_timeout_ms),
                response: Duration::from_millis(self.response_timeout_ms),
            },
            retire_grace: Duration::from_millis(self.retire_grace_ms),
            stale_staging: Duration::from_millis(self.stale_staging_ms),
            delete_slice: self.delete_slice.max(1),
            deep_verify: self.deep_verify,
            write_chunk: self.write_chunk.max(1),
            ..EdgeOptions::default()
        }
    }
}

/// What this process wrote of a staged version.
#[derive(Debug, Clone, Copy)]
struct Tracker {
    buckets: u32,
    acked: Checksum,
    /// New fields Redis reported (HSET replies): less than `acked.keys` means duplicate keys.
    added: u64,
    sealed: bool,
}

/// The serving state of an API, as a lookup needs it.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub version: u64,
    pub manifest: std::sync::Arc<StoredManifest>,
    /// The decompressor of a compressed version's values (its manifest's dictionary).
    pub decoder: Option<std::sync::Arc<edge_contract::compression::Decoder>>,
    /// Whether a token is required, and which (SHA-256 hex), from the API's current token set.
    pub protected: bool,
    pub token_hashes: Vec<String>,
    /// Quotas of the tokens that have one, by token hash (SHA-256 hex).
    pub limits: HashMap<String, TokenRate>,
}

/// A token's quota as an edge stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRate {
    pub token_id: String,
    pub per_second: u32,
    pub burst: u32,
}

pub struct RedisEdge {
    address: String,
    conn: Conn,
    options: EdgeOptions,
    staging: Mutex<HashMap<(String, u64), Tracker>>,
}

impl std::fmt::Debug for RedisEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEdge")
            .field("address", &self.address)
            .field("cluster", &self.conn.is_cluster())
            .finish()
    }
}

fn check_api(edge: &str, step: &'static str, api: &str) -> Result<()> {
    if edge_contract::is_api_name(api) {
        Ok(())
    } else {
        Err(Error::edge(
            edge,
            step,
            format!("invalid API name {api:?} (expected [A-Za-z0-9_-], 1 to 64 characters)"),
        ))
    }
}

fn cmd(name: &str) -> Cmd {
    redis::cmd(name)
}

fn eval(script: &str, keys: &[&str], args: &[String]) -> Cmd {
    let mut c = cmd("EVAL");
    c.arg(script).arg(keys.len()).arg(keys).arg(args);
    c
}

/// Lua replies `{'ok', x}` or `{'err', message}`.
fn script_reply(edge: &str, step: &'static str, v: Value) -> Result<Value> {
    let bad = || Error::edge(edge, step, "unexpected script reply");
    let Value::Array(mut items) = v else {
        return Err(bad());
    };
    if items.len() != 2 {
        return Err(bad());
    }
    let payload = items.pop().ok_or_else(bad)?;
    let status: String = value(items.pop().ok_or_else(bad)?).map_err(|_| bad())?;
    if status == "ok" {
        Ok(payload)
    } else {
        let message: String = value(payload).unwrap_or_else(|_| "script failed".into());
        Err(Error::edge(edge, step, message))
    }
}

/// The Lua scripts of the protocol, one file each under `scripts/`.
const BEGIN: &str = include_str!("scripts/begin.lua");
const COMMIT: &str = include_str!("scripts/commit.lua");
const DROP_META: &str = include_str!("scripts/drop_meta.lua");
const SET_ACCESS: &str = include_str!("scripts/set_access.lua");
const RETIRE: &str = include_str!("scripts/retire.lua");

impl RedisEdge {
    /// Connects to `address` (see [`crate::conn`] for the forms) and checks it answers.
    pub async fn connect(address: &str) -> Result<RedisEdge> {
        Self::connect_with(address, EdgeOptions::default()).await
    }

    pub async fn connect_with(address: &str, options: EdgeOptions) -> Result<RedisEdge> {
        let edge = Self::lazy(address, options)?;
        edge.ping().await?;
        Ok(edge)
    }

    /// Connects without sending anything: for a service that must start while Redis is down.
    pub fn lazy(address: &str, options: EdgeOptions) -> Result<RedisEdge> {
        let parsed = Address::parse(address)?;
        let conn = Conn::open_lazy(&parsed, options.timeouts).map_err(|source| Error::Redis {
            edge: address.to_string(),
            step: "connect",
            source,
        })?;
        Ok(RedisEdge {
            address: address.to_string(),
            conn,
            options,
            staging: Mutex::new(HashMap::new()),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn options(&self) -> &EdgeOptions {
        &self.options
    }

    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    fn redis_err(&self, step: &'static str) -> impl Fn(RedisError) -> Error + '_ {
        move |source| Error::Redis {
            edge: self.address.clone(),
            step,
            source,
        }
    }

    fn err(&self, step: &'static str, message: impl Into<String>) -> Error {
        Error::edge(&self.address, step, message)
    }

    async fn query<T: redis::FromRedisValue>(&self, step: &'static str, c: &Cmd) -> Result<T> {
        self.conn.query(c).await.map_err(self.redis_err(step))
    }

    async fn script(&self, step: &'static str, c: &Cmd) -> Result<Value> {
        let v: Value = self.query(step, c).await?;
        script_reply(&self.address, step, v)
    }

    pub async fn ping(&self) -> Result<()> {
        let _: String = self.query("ping", &cmd("PING")).await?;
        Ok(())
    }

    /// APIs this edge has ever committed (a hint: the serving pointer is the truth).
    pub async fn apis(&self) -> Result<Vec<String>> {
        let mut apis: Vec<String> = self
            .query("apis", cmd("SMEMBERS").arg(layout::APIS))
            .await?;
        apis.sort();
        Ok(apis)
    }

    pub async fn serving(&self, api: &str) -> Result<Option<u64>> {
        check_api(&self.address, "versions", api)?;
        self.query("versions", cmd("GET").arg(layout::current(api)))
            .await
    }

    /// Estimated memory of a version: the bytes per entry of up to `samples` non-empty buckets
    /// (MEMORY USAGE over HLEN, buckets probed evenly spread), times the version's keys. Cheap
    /// enough to run every minute off the request path; exact for a version of few buckets.
    pub async fn version_memory(
        &self,
        api: &str,
        version: u64,
        manifest: &StoredManifest,
        samples: u32,
    ) -> Result<u64> {
        check_api(&self.address, "memory", api)?;
        let buckets = manifest.buckets.max(1);
        let keys = manifest.manifest.checksum.keys;
        let stride = (buckets / samples.max(1)).max(1);
        let (mut bytes, mut fields, mut found) = (0u64, 0u64, 0u32);
        for j in 0..buckets.min(samples.max(1) * 16) {
            if found >= samples {
                break;
            }
            let key = layout::bucket(api, version, (j * stride + j / samples.max(1)) % buckets);
            let (len, used): (u64, Option<u64>) = self
                .conn
                .pipe(
                    redis::pipe()
                        .cmd("HLEN")
                        .arg(&key)
                        .cmd("MEMORY")
                        .arg("USAGE")
                        .arg(&key)
                        .arg("SAMPLES")
                        .arg(0),
                )
                .await
                .map_err(self.redis_err("memory"))?;
            if len > 0 {
                fields += len;
                bytes += used.unwrap_or(0);
                found += 1;
            }
        }
        Ok((bytes * keys).checked_div(fields).unwrap_or(0))
    }

    /// The Redis server's `used_memory` and `maxmemory` (0: no limit), from INFO memory.
    pub async fn memory_info(&self) -> Result<(u64, u64)> {
        let info: String = self.query("memory", cmd("INFO").arg("memory")).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((field("used_memory"), field("maxmemory")))
    }

    /// The stored manifest of a sealed version.
    pub async fn manifest(&self, api: &str, version: u64) -> Result<Option<StoredManifest>> {
        check_api(&self.address, "versions", api)?;
        let raw: Option<Vec<u8>> = self
            .query("versions", cmd("GET").arg(layout::manifest(api, version)))
            .await?;
        raw.map(|r| self.parse_manifest(api, version, &r))
            .transpose()
    }

    fn parse_manifest(&self, api: &str, version: u64, raw: &[u8]) -> Result<StoredManifest> {
        serde_json::from_slice(raw).map_err(|e| {
            self.err(
                "versions",
                format!("manifest of `{api}` v{version} is unreadable: {e}"),
            )
        })
    }

    async fn stage_record(
        &self,
        step: &'static str,
        api: &str,
        version: u64,
    ) -> Result<Option<StageRecord>> {
        let fields: HashMap<String, String> = self
            .query(step, cmd("HGETALL").arg(layout::stage(api, version)))
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let num = |k: &str| fields.get(k).and_then(|v| v.parse::<i64>().ok());
        match (num("buckets"), num("started_ms")) {
            (Some(b), Some(s)) if b > 0 && (b as u64).is_power_of_two() => Ok(Some(StageRecord {
                buckets: b as u32,
                started_ms: s,
                layout: num("layout").unwrap_or(1) as u32,
            })),
            _ => Err(self.err(
                step,
                format!("staging record of `{api}` v{version} is unreadable"),
            )),
        }
    }

    fn tracker(&self, api: &str, version: u64) -> Option<Tracker> {
        self.staging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(api.to_string(), version))
            .copied()
    }

    fn set_tracker(&self, api: &str, version: u64, t: Option<Tracker>) {
        let mut map = self.staging.lock().unwrap_or_else(|e| e.into_inner());
        match t {
            Some(t) => map.insert((api.to_string(), version), t),
            None => map.remove(&(api.to_string(), version)),
        };
    }

    /// How many buckets a new version gets: from the size hint, else the previous version.
    async fn choose_buckets(&self, manifest: &VersionManifest) -> Result<u32> {
        if manifest.checksum.keys > 0 {
            return Ok(layout::buckets_for(manifest.checksum.keys));
        }
        if let Some(v) = self.serving(&manifest.api).await?
            && let Some(m) = self.manifest(&manifest.api, v).await?
        {
            // Leave room to grow: a quarter more than the serving version.
            return Ok(layout::buckets_for(
                m.manifest.checksum.keys + m.manifest.checksum.keys / 4,
            ));
        }
        Ok(self
            .options
            .default_buckets
            .clamp(layout::MIN_BUCKETS, layout::MAX_BUCKETS)
            .next_power_of_two())
    }

    /// Sends `command bucket` for every bucket of a version, `slice` buckets per round trip, and
    /// hands each reply to `each` in bucket order. Yields between slices so that a long walk
    /// (GC of a big version) never starves the other tasks on this connection.
    async fn for_each_bucket(
        &self,
        step: &'static str,
        (api, version, buckets): (&str, u64, u32),
        (command, slice): (&str, u32),
        mut each: impl FnMut(Value) -> Result<()>,
    ) -> Result<()> {
        let slice = slice.max(1);
        let mut start = 0;
        while start < buckets {
            let end = (start + slice).min(buckets);
            let mut cmds = Grouped::with_capacity((end - start) as usize);
            for b in start..end {
                cmds.push(
                    u64::from(b),
                    cmd(command).arg(layout::bucket(api, version, b)).clone(),
                );
            }
            for reply in self
                .conn
                .grouped(cmds)
                .await
                .map_err(self.redis_err(step))?
            {
                each(reply)?;
            }
            start = end;
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    /// UNLINKs every bucket of a version, `delete_slice` keys per round trip.
    async fn unlink_buckets(
        &self,
        step: &'static str,
        api: &str,
        version: u64,
        buckets: u32,
    ) -> Result<()> {
        let slice = self.options.delete_slice as u32;
        self.for_each_bucket(step, (api, version, buckets), ("UNLINK", slice), |_| Ok(()))
            .await
    }

    /// Removes a version's metadata (refused for the serving one), then its data.
    async fn drop_version(&self, step: &'static str, api: &str, version: u64) -> Result<()> {
        let stage = self.stage_record(step, api, version).await?;
        let manifest = self.manifest(api, version).await.unwrap_or(None);
        let tracked = self.tracker(api, version);
        let buckets = [
            stage.map(|s| s.buckets),
            manifest.map(|m| m.buckets),
            tracked.map(|t| t.buckets),
        ]
        .into_iter()
        .flatten()
        .max();
        let keys = [
            layout::current(api),
            layout::versions(api),
            layout::staged(api),
            layout::retired(api),
            layout::stage(api, version),
            layout::manifest(api, version),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.script(step, &eval(DROP_META, &keys, &[version.to_string()]))
            .await?;
        self.set_tracker(api, version, None);
        if let Some(b) = buckets {
            self.unlink_buckets(step, api, version, b).await?;
        }
        Ok(())
    }

    pub async fn versions(&self, api: &str) -> Result<EdgeVersions> {
        check_api(&self.address, "versions", api)?;
        let mut p = redis::pipe();
        p.cmd("GET").arg(layout::current(api));
        p.cmd("ZRANGE").arg(layout::versions(api)).arg(0).arg(-1);
        p.cmd("GET").arg(layout::highest(api));
        let (serving, mut kept, highest): (Option<u64>, Vec<u64>, Option<u64>) = self
            .conn
            .pipe(&p)
            .await
            .map_err(self.redis_err("versions"))?;
        kept.sort_unstable_by(|a, b| b.cmp(a));
        let mut manifests = Vec::with_capacity(kept.len());
        if !kept.is_empty() {
            let mut p = redis::pipe();
            for v in &kept {
                p.cmd("GET").arg(layout::manifest(api, *v));
            }
            let raws: Vec<Option<Vec<u8>>> = self
                .conn
                .pipe(&p)
                .await
                .map_err(self.redis_err("versions"))?;
            for (v, raw) in kept.iter().zip(raws) {
                if let Some(raw) = raw {
                    manifests.push(self.parse_manifest(api, *v, &raw)?.manifest);
                }
            }
        }
        let highest = highest
            .unwrap_or(0)
            .max(serving.unwrap_or(0))
            .max(kept.first().copied().unwrap_or(0));
        Ok(EdgeVersions {
            serving,
            kept: manifests,
            highest,
        })
    }

    pub async fn begin(&self, manifest: &VersionManifest) -> Result<()> {
        let api = &manifest.api;
        let version = manifest.version;
        check_api(&self.address, "begin", api)?;
        if version == 0 {
            return Err(self.err("begin", "versions start at 1"));
        }
        // Leftovers of an earlier attempt at this version go first (refused if it serves).
        let committed: Option<f64> = self
            .query(
                "begin",
                cmd("ZSCORE").arg(layout::versions(api)).arg(version),
            )
            .await?;
        if committed.is_some() || self.serving(api).await? == Some(version) {
            return Err(self.err(
                "begin",
                format!("version {version} of `{api}` is already committed here"),
            ));
        }
        let leftover = self.stage_record("begin", api, version).await?.is_some()
            || self.manifest(api, version).await?.is_some()
            || self.tracker(api, version).is_some();
        if leftover {
            tracing::info!(edge = %self.address, api, version, "clearing leftover staging");
            self.drop_version("begin", api, version).await?;
        }
        let buckets = self.choose_buckets(manifest).await?;
        let keys = [
            layout::current(api),
            layout::versions(api),
            layout::staged(api),
            layout::highest(api),
            layout::stage(api, version),
            layout::manifest(api, version),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.script(
            "begin",
            &eval(
                BEGIN,
                &keys,
                &[version.to_string(), buckets.to_string(), LAYOUT.to_string()],
            ),
        )
        .await?;
        self.set_tracker(
            api,
            version,
            Some(Tracker {
                buckets,
                acked: Checksum::default(),
                added: 0,
                sealed: false,
            }),
        );
        Ok(())
    }

    pub async fn write(&self, api: &str, version: u64, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let Some(tracker) = self.tracker(api, version) else {
            return Err(self.err(
                "write",
                format!("version {version} of `{api}` was not begun by this writer"),
            ));
        };
        if tracker.sealed {
            return Err(self.err(
                "write",
                format!("version {version} of `{api}` is sealed; it cannot change"),
            ));
        }
        let mut order: Vec<(u32, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (layout::bucket_of(&e.key, tracker.buckets), i))
            .collect();
        order.sort_unstable();
        let chunk = self.options.write_chunk.max(1);
        let mut chunks: Vec<Grouped> = Vec::new();
        let mut cmds = Grouped::default();
        let mut in_chunk = 0;
        let mut i = 0;
        while i < order.len() {
            let b = order[i].0;
            let mut c = cmd("HSET");
            c.arg(layout::bucket(api, version, b));
            while i < order.len() && order[i].0 == b && in_chunk < chunk {
                let e = &entries[order[i].1];
                c.arg(&e.key[..]).arg(&e.value[..]);
                i += 1;
                in_chunk += 1;
            }
            cmds.push(u64::from(b), c);
            if in_chunk >= chunk {
                chunks.push(std::mem::take(&mut cmds));
                in_chunk = 0;
            }
        }
        if !cmds.is_empty() {
            chunks.push(cmds);
        }
        let send = futures::future::try_join_all(chunks.into_iter().map(|c| self.conn.grouped(c)));
        let checksum = async {
            let mut sum = Checksum::default();
            for e in entries {
                sum.add(&e.key, &e.value);
            }
            sum
        };
        let (replies, sum) = futures::join!(send, checksum);
        let replies: Vec<Value> = replies
            .map_err(self.redis_err("write"))?
            .into_iter()
            .flatten()
            .collect();
        let mut added = 0u64;
        for r in replies {
            added += value::<u64>(r).map_err(self.redis_err("write"))?;
        }
        let mut map = self.staging.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&(api.to_string(), version)) {
            Some(t) if !t.sealed => {
                t.acked.merge(&sum);
                t.added += added;
                Ok(())
            }
            _ => Err(self.err(
                "write",
                format!("version {version} of `{api}` was discarded or sealed while writing"),
            )),
        }
    }

    /// Reads every entry of a version back and checksums it.
    pub async fn read_back(&self, api: &str, version: u64, buckets: u32) -> Result<Checksum> {
        let mut sum = Checksum::default();
        self.for_each_bucket("seal", (api, version, buckets), ("HGETALL", 64), |reply| {
            let fields: HashMap<Vec<u8>, Vec<u8>> = value(reply).map_err(self.redis_err("seal"))?;
            fields.iter().for_each(|(k, v)| sum.add(k, v));
            Ok(())
        })
        .await?;
        Ok(sum)
    }

    pub async fn seal(&self, manifest: &VersionManifest) -> Result<Checksum> {
        let api = &manifest.api;
        let version = manifest.version;
        check_api(&self.address, "seal", api)?;
        let Some(stage) = self.stage_record("seal", api, version).await? else {
            return Err(self.err(
                "seal",
                format!("version {version} of `{api}` was not begun here (or was discarded)"),
            ));
        };
        let expected = manifest.checksum;
        let tracker = self.tracker(api, version);
        if let Some(t) = tracker {
            if t.acked != expected {
                return Err(self.err(
                    "seal",
                    format!(
                        "version {version} of `{api}`: Redis acknowledged {} keys / {} bytes / sum {}, the version has {} keys / {} bytes / sum {}",
                        t.acked.keys, t.acked.bytes, t.acked.hex(), expected.keys, expected.bytes, expected.hex()
                    ),
                ));
            }
            if t.added != t.acked.keys {
                return Err(self.err(
                    "seal",
                    format!("version {version} of `{api}`: {} keys written but only {} distinct (duplicate keys)", t.acked.keys, t.added),
                ));
            }
        }
        // What the edge holds now, whatever happened behind the writer's back.
        let mut held = 0u64;
        self.for_each_bucket(
            "seal",
            (api, version, stage.buckets),
            ("HLEN", 1024),
            |reply| {
                held += value::<u64>(reply).map_err(self.redis_err("seal"))?;
                Ok(())
            },
        )
        .await?;
        if held != expected.keys {
            return Err(self.err(
                "seal",
                format!("version {version} of `{api}` is incomplete: the edge holds {held} keys, the version has {}", expected.keys),
            ));
        }
        let checksum = if self.options.deep_verify || tracker.is_none() {
            let read = self.read_back(api, version, stage.buckets).await?;
            if read != expected {
                return Err(self.err(
                    "seal",
                    format!(
                        "version {version} of `{api}`: the entries read back (sum {}, {} bytes) differ from the version's (sum {}, {} bytes)",
                        read.hex(), read.bytes, expected.hex(), expected.bytes
                    ),
                ));
            }
            read
        } else {
            expected
        };
        let stored = StoredManifest {
            manifest: manifest.clone(),
            buckets: stage.buckets,
            layout: stage.layout,
        };
        let json = serde_json::to_vec(&stored).map_err(|e| self.err("seal", e.to_string()))?;
        // Only a version still staged may be sealed (not one discarded meanwhile).
        let staged: Option<f64> = self
            .query("seal", cmd("ZSCORE").arg(layout::staged(api)).arg(version))
            .await?;
        if staged.is_none() {
            return Err(self.err(
                "seal",
                format!("version {version} of `{api}` is no longer staged here"),
            ));
        }
        let _: () = self
            .query(
                "seal",
                cmd("SET").arg(layout::manifest(api, version)).arg(json),
            )
            .await?;
        if let Some(mut t) = tracker {
            t.sealed = true;
            self.set_tracker(api, version, Some(t));
        }
        Ok(checksum)
    }

    /// Switches readers to `version` (sealed here, or kept): see `scripts/commit.lua` for what
    /// the fence and the mode refuse. Returns the version served before, if any.
    pub async fn switch(
        &self,
        api: &str,
        version: u64,
        fence: Fence,
        mode: SwitchMode,
    ) -> Result<Option<u64>> {
        check_api(&self.address, "commit", api)?;
        let _: i64 = self
            .query("commit", cmd("SADD").arg(layout::APIS).arg(api))
            .await?;
        let keys = [
            layout::current(api),
            layout::versions(api),
            layout::staged(api),
            layout::retired(api),
            layout::manifest(api, version),
            layout::fence(api),
            layout::auth(api),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let args = [
            version.to_string(),
            fence.0.to_string(),
            mode.as_str().to_string(),
        ];
        let prev = self.script("commit", &eval(COMMIT, &keys, &args)).await?;
        let prev: String = value(prev).map_err(self.redis_err("commit"))?;
        self.set_tracker(api, version, None);
        Ok(prev.parse().ok())
    }

    /// An unfenced explicit switch, for tools and tests that drive one edge by hand.
    pub async fn commit(&self, api: &str, version: u64) -> Result<Option<u64>> {
        let fence = self.fence(api).await?;
        self.switch(api, version, fence, SwitchMode::Explicit).await
    }

    /// The newest fence a switch of the API carried here.
    pub async fn fence(&self, api: &str) -> Result<Fence> {
        check_api(&self.address, "commit", api)?;
        let seen: Option<u64> = self
            .query("commit", cmd("GET").arg(layout::fence(api)))
            .await?;
        Ok(Fence(seen.unwrap_or(0)))
    }

    /// Whether `version` is sealed here (its manifest is stored) and so can serve.
    pub async fn holds(&self, api: &str, version: u64) -> Result<bool> {
        check_api(&self.address, "versions", api)?;
        let n: i64 = self
            .query(
                "versions",
                cmd("EXISTS").arg(layout::manifest(api, version)),
            )
            .await?;
        Ok(n == 1)
    }

    /// Removes a version that is not serving: staged, sealed, or committed and rolled back.
    pub async fn discard(&self, api: &str, version: u64) -> Result<()> {
        check_api(&self.address, "discard", api)?;
        self.drop_version("discard", api, version).await
    }

    /// Drops committed versions beyond the newest `keep` (at least 1; never the serving one;
    /// never one retired less than the grace ago) and stale staging. Returns versions dropped.
    pub async fn gc(&self, api: &str, keep: usize) -> Result<u64> {
        check_api(&self.address, "gc", api)?;
        let keep = keep.max(1);
        let mut p = redis::pipe();
        p.cmd("GET").arg(layout::current(api));
        p.cmd("ZRANGE").arg(layout::versions(api)).arg(0).arg(-1);
        p.cmd("ZRANGE")
            .arg(layout::staged(api))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        p.cmd("ZRANGE")
            .arg(layout::retired(api))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        p.cmd("TIME");
        type GcView = (
            Option<u64>,
            Vec<u64>,
            Vec<(u64, f64)>,
            Vec<(u64, f64)>,
            (i64, i64),
        );
        let (serving, mut committed, staged, retired, (s, us)): GcView =
            self.conn.pipe(&p).await.map_err(self.redis_err("gc"))?;
        let now = (s * 1000 + us / 1000) as f64;
        let grace = self.options.retire_grace.as_millis() as f64;
        let retired: HashMap<u64, f64> = retired.into_iter().collect();
        committed.sort_unstable_by(|a, b| b.cmp(a));
        let mut drop: Vec<u64> = committed
            .iter()
            .skip(keep)
            .copied()
            .filter(|v| Some(*v) != serving)
            .filter(|v| retired.get(v).is_none_or(|at| now - at >= grace))
            .collect();
        let stale = self.options.stale_staging.as_millis() as f64;
        for (v, started) in staged {
            if self.tracker(api, v).is_some_and(|t| !t.sealed) {
                continue; // this process is writing it
            }
            let behind = serving.is_some_and(|s| v < s);
            if behind || now - started >= stale {
                drop.push(v);
            }
        }
        let mut dropped = 0;
        for v in drop {
            self.drop_version("gc", api, v).await?;
            tracing::debug!(edge = %self.address, api, version = v, "dropped version");
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Replaces who may read the API in place (no republish), unless this edge already holds a
    /// newer access revision: SHA-256 hex digests of the tokens that may read it. `protected`
    /// with no hashes locks everyone out; not protected makes it public.
    pub async fn set_access(&self, api: &str, access: &Access) -> Result<()> {
        check_api(&self.address, "access", api)?;
        let digest = |h: &str| {
            let h = h.trim().to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(self.err("access", format!("{h:?} is not a SHA-256 hex digest")));
            }
            Ok(h)
        };
        let hashes: Vec<String> = if access.protected {
            access
                .token_hashes
                .iter()
                .map(|h| digest(h))
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        let mut args = vec![
            access.revision.to_string(),
            u8::from(access.protected).to_string(),
            hashes.len().to_string(),
        ];
        args.extend(hashes);
        for l in &access.limits {
            if l.token_id.contains(' ') || l.per_second == 0 {
                return Err(self.err(
                    "access",
                    format!(
                        "limit of token {:?}: an id without spaces and a rate above 0",
                        l.token_id
                    ),
                ));
            }
            args.push(digest(&l.token_hash)?);
            args.push(format!(
                "{} {} {}",
                l.token_id,
                l.per_second,
                l.burst.max(1)
            ));
        }
        let (tokens, auth, limits) = (layout::tokens(api), layout::auth(api), layout::limits(api));
        self.script(
            "access",
            &eval(SET_ACCESS, &[&tokens, &auth, &limits], &args),
        )
        .await?;
        Ok(())
    }

    /// Drops everything of a deleted API: `access` (the store's lock: protected, no tokens)
    /// first, then the serving pointer and version counter, then every version with its keys
    /// (UNLINK, in slices). The fence, the access record and a tombstone stay, so that lookups
    /// answer that the API is gone and no older operation's commit or access set revives it.
    /// Safe to repeat after a failure part-way. Returns the versions dropped.
    pub async fn retire(&self, api: &str, access: &Access) -> Result<u64> {
        check_api(&self.address, "retire", api)?;
        self.set_access(api, access).await?;
        let keys = [
            layout::current(api),
            layout::versions(api),
            layout::staged(api),
            layout::retired(api),
            layout::highest(api),
            layout::auth(api),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let listed = self.script("retire", &eval(RETIRE, &keys, &[])).await?;
        let mut versions: Vec<u64> = value(listed).map_err(self.redis_err("retire"))?;
        versions.sort_unstable();
        versions.dedup();
        for v in &versions {
            self.drop_version("retire", api, *v).await?;
        }
        let _: i64 = self
            .query("retire", cmd("SREM").arg(layout::APIS).arg(api))
            .await?;
        tracing::info!(edge = %self.address, api, versions = versions.len(), "API retired");
        Ok(versions.len() as u64)
    }

    /// Whether the API was deleted here (retired, and not published again since).
    pub async fn is_retired(&self, api: &str) -> Result<bool> {
        check_api(&self.address, "lookup", api)?;
        let deleted: Option<String> = self
            .query("lookup", cmd("HGET").arg(layout::auth(api)).arg("deleted"))
            .await?;
        Ok(deleted.is_some())
    }

    /// The serving version of an API with its manifest and token set; `known` avoids
    /// re-reading a manifest already held (versions never change once sealed).
    pub async fn resolve(&self, api: &str, known: Option<&Resolved>) -> Result<Option<Resolved>> {
        check_api(&self.address, "lookup", api)?;
        let mut p = redis::pipe();
        p.cmd("GET").arg(layout::current(api));
        p.cmd("SMEMBERS").arg(layout::tokens(api));
        p.cmd("HGET").arg(layout::auth(api)).arg("protected");
        p.cmd("HGETALL").arg(layout::limits(api));
        type Read = (
            Option<u64>,
            Vec<String>,
            Option<String>,
            HashMap<String, String>,
        );
        let (version, token_hashes, protected, limits): Read =
            self.conn.pipe(&p).await.map_err(self.redis_err("lookup"))?;
        let Some(version) = version else {
            return Ok(None);
        };
        let (manifest, decoder) = match known {
            Some(k) if k.version == version => (k.manifest.clone(), k.decoder.clone()),
            _ => match self.manifest(api, version).await? {
                Some(m) => {
                    let decoder = match &m.manifest.compression {
                        Some(c) => Some(std::sync::Arc::new(
                            edge_contract::compression::Decoder::new(c).map_err(|message| {
                                self.err(
                                    "lookup",
                                    format!("version {version} of `{api}`: {message}"),
                                )
                            })?,
                        )),
                        None => None,
                    };
                    (std::sync::Arc::new(m), decoder)
                }
                None => return Ok(None),
            },
        };
        // No access record while a version serves: someone removed it; nobody may read.
        let protected = protected.is_none_or(|p| p == "1");
        let limits = limits
            .into_iter()
            .filter_map(|(hash, v)| {
                let mut parts = v.split(' ');
                let limit = TokenRate {
                    token_id: parts.next()?.to_string(),
                    per_second: parts.next()?.parse().ok()?,
                    burst: parts.next()?.parse().ok()?,
                };
                Some((hash, limit))
            })
            .collect();
        Ok(Some(Resolved {
            version,
            manifest,
            decoder,
            protected,
            token_hashes,
            limits,
        }))
    }

    /// One entry of a version: one HGET, one round trip.
    pub async fn get(
        &self,
        api: &str,
        version: u64,
        buckets: u32,
        key: &[u8],
    ) -> Result<Option<Bytes>> {
        let b = layout::bucket_of(key, buckets);
        self.query(
            "lookup",
            cmd("HGET").arg(layout::bucket(api, version, b)).arg(key),
        )
        .await
    }

    /// Many entries of a version in one pipelined round trip (one per slot on a cluster).
    pub async fn get_many(
        &self,
        api: &str,
        version: u64,
        buckets: u32,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Bytes>>> {
        let mut cmds = Grouped::with_capacity(keys.len());
        for k in keys {
            let b = layout::bucket_of(k, buckets);
            cmds.push(
                u64::from(b),
                cmd("HGET")
                    .arg(layout::bucket(api, version, b))
                    .arg(&k[..])
                    .clone(),
            );
        }
        let replies = self
            .conn
            .grouped(cmds)
            .await
            .map_err(self.redis_err("lookup"))?;
        replies
            .into_iter()
            .map(|r| value(r).map_err(self.redis_err("lookup")))
            .collect()
    }
}

#[async_trait]
impl EdgeSink for RedisEdge {
    fn address(&self) -> &str {
        &self.address
    }

    async fn versions(&self, api: &str) -> EdgeResult<EdgeVersions> {
        Ok(RedisEdge::versions(self, api).await?)
    }

    async fn holds(&self, api: &str, version: u64) -> EdgeResult<bool> {
        Ok(RedisEdge::holds(self, api, version).await?)
    }

    async fn begin(&self, manifest: &VersionManifest) -> EdgeResult<()> {
        Ok(RedisEdge::begin(self, manifest).await?)
    }

    async fn write(&self, api: &str, version: u64, entries: &[Entry]) -> EdgeResult<()> {
        Ok(RedisEdge::write(self, api, version, entries).await?)
    }

    async fn seal(&self, manifest: &VersionManifest) -> EdgeResult<Checksum> {
        Ok(RedisEdge::seal(self, manifest).await?)
    }

    async fn switch(
        &self,
        api: &str,
        version: u64,
        fence: Fence,
        mode: SwitchMode,
    ) -> EdgeResult<Option<u64>> {
        Ok(RedisEdge::switch(self, api, version, fence, mode).await?)
    }

    async fn set_access(&self, api: &str, access: &Access) -> EdgeResult<()> {
        Ok(RedisEdge::set_access(self, api, access).await?)
    }

    async fn discard(&self, api: &str, version: u64) -> EdgeResult<()> {
        Ok(RedisEdge::discard(self, api, version).await?)
    }

    async fn gc(&self, api: &str, keep: usize) -> EdgeResult<u64> {
        Ok(RedisEdge::gc(self, api, keep).await?)
    }

    async fn retire(&self, api: &str, access: &Access) -> EdgeResult<u64> {
        Ok(RedisEdge::retire(self, api, access).await?)
    }
}
