//! Where things live in Redis. Every name is built here, so the layout is documented and
//! changed in one place.
//!
//! Per API (all under the hash tag `{api}`, so they share one cluster slot and a Lua script or
//! a pipeline may touch them together):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `tc:{api}:current` | string | the serving version number |
//! | `tc:{api}:versions` | zset | committed versions still kept (member = score = version) |
//! | `tc:{api}:staged` | zset | versions begun but not committed (score = start time, ms) |
//! | `tc:{api}:retired` | zset | versions that stopped serving (score = when, ms), for the GC grace |
//! | `tc:{api}:highest` | string | the highest version number ever begun here |
//! | `tc:{api}:v{N}:stage` | string | JSON [`StageRecord`]: bucket count of a version being written |
//! | `tc:{api}:v{N}:manifest` | string | JSON [`StoredManifest`], written by seal: the version is complete |
//! | `tc:{api}:tokens` | set | SHA-256 hex of the tokens that may read the API |
//! | `tc:{api}:auth` | hash | `protected` (0/1), `revision` (the control plane's access revision), `deleted` (set when the API was retired) |
//! | `tc:{api}:limits` | hash | token hash → `id per_second burst`, for tokens with a quota |
//! | `tc:{api}:fence` | string | the newest fencing token a switch carried here |
//!
//! Data, one hash per bucket, each bucket its own hash tag so a version spreads over every master
//! of a cluster: `tc:{api:v{N}:b{K}}`, field = canonical key JSON, value = canonical value JSON.
//! The bucket of a key is `xxh3(key) mod buckets` (`buckets` a power of two, fixed per version at
//! `begin` and stored in the manifest), so a lookup reads exactly one Redis key.
//!
//! Global: `tc:apis`, a set of the API names this Redis has ever committed (for readiness and
//! listing; tiny); and the pub/sub channel `tc:changes`, on which the commit, access and retire
//! scripts publish the name of a key of the API they changed (`tc:{api}:…`), so that lookup
//! services refresh it at once instead of at their next version check.

use edge_contract::sink::VersionManifest;
use serde::{Deserialize, Serialize};

/// The version of this layout, stored in each manifest.
pub const LAYOUT: u32 = 1;

/// Fields per bucket the bucket count aims for.
pub const TARGET_FIELDS_PER_BUCKET: u64 = 1000;
pub const MIN_BUCKETS: u32 = 16;
pub const MAX_BUCKETS: u32 = 65536;

pub const APIS: &str = "tc:apis";
/// The pub/sub channel of API changes (see the module docs).
pub const CHANGES: &str = "tc:changes";

/// The API a per-API key belongs to: `tc:{api}:…` → `api`.
pub fn api_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("tc:{")?;
    let end = rest.find('}')?;
    rest[..end].split(':').next().filter(|a| !a.is_empty())
}

pub fn current(api: &str) -> String {
    format!("tc:{{{api}}}:current")
}
pub fn versions(api: &str) -> String {
    format!("tc:{{{api}}}:versions")
}
pub fn staged(api: &str) -> String {
    format!("tc:{{{api}}}:staged")
}
pub fn retired(api: &str) -> String {
    format!("tc:{{{api}}}:retired")
}
pub fn highest(api: &str) -> String {
    format!("tc:{{{api}}}:highest")
}
pub fn stage(api: &str, version: u64) -> String {
    format!("tc:{{{api}}}:v{version}:stage")
}
pub fn manifest(api: &str, version: u64) -> String {
    format!("tc:{{{api}}}:v{version}:manifest")
}
pub fn tokens(api: &str) -> String {
    format!("tc:{{{api}}}:tokens")
}
pub fn auth(api: &str) -> String {
    format!("tc:{{{api}}}:auth")
}
pub fn limits(api: &str) -> String {
    format!("tc:{{{api}}}:limits")
}
pub fn fence(api: &str) -> String {
    format!("tc:{{{api}}}:fence")
}
/// The hash of one bucket of a version.
pub fn bucket(api: &str, version: u64, bucket: u32) -> String {
    format!("tc:{{{api}:v{version}:b{bucket}}}")
}
/// A `SCAN MATCH` pattern for every bucket of a version (tests and orphan sweeps).
pub fn bucket_pattern(api: &str, version: u64) -> String {
    format!("tc:{{{api}:v{version}:b*")
}

/// The bucket of a canonical key JSON. Fixed forever for a layout: readers and writers of a
/// version must agree. `buckets` is a power of two.
pub fn bucket_of(key: &[u8], buckets: u32) -> u32 {
    debug_assert!(buckets.is_power_of_two());
    (edge_contract::canonical::entry_hash(key, &[]) & u64::from(buckets - 1)) as u32
}

/// Bucket count for about `keys` entries: ~1000 fields per hash, a power of two, at least 16 (so
/// that even a small version spreads over the masters of a cluster).
pub fn buckets_for(keys: u64) -> u32 {
    let wanted = keys.div_ceil(TARGET_FIELDS_PER_BUCKET).max(1);
    let pow = wanted
        .checked_next_power_of_two()
        .unwrap_or(u64::from(MAX_BUCKETS));
    pow.clamp(u64::from(MIN_BUCKETS), u64::from(MAX_BUCKETS)) as u32
}

/// What `begin` records about a version being written, so that any process can discard it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    pub buckets: u32,
    pub started_ms: i64,
    pub layout: u32,
}

/// The manifest as an edge stores it: the publisher's manifest plus the edge's layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredManifest {
    #[serde(flatten)]
    pub manifest: VersionManifest,
    pub buckets: u32,
    pub layout: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags() {
        assert_eq!(current("demo"), "tc:{demo}:current");
        assert_eq!(bucket("demo", 7, 12), "tc:{demo:v7:b12}");
        assert_eq!(manifest("demo", 7), "tc:{demo}:v7:manifest");
        assert_eq!(bucket_pattern("demo", 7), "tc:{demo:v7:b*");
    }

    #[test]
    fn bucket_counts() {
        assert_eq!(buckets_for(0), 16);
        assert_eq!(buckets_for(10), 16);
        assert_eq!(buckets_for(16_001), 32);
        assert_eq!(buckets_for(5_000_000), 8192);
        assert_eq!(buckets_for(u64::MAX), MAX_BUCKETS);
        for b in [16u32, 1024] {
            let k = bucket_of(br#"["a"]"#, b);
            assert!(k < b);
            assert_eq!(k, bucket_of(br#"["a"]"#, b));
        }
    }
}
