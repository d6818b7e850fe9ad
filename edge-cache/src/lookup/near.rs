//! The near cache: entries of serving versions kept in process, so that a repeated key costs no
//! Redis round trip. A sealed version never changes, so `(api, version, checksum, key) → value`
//! needs no invalidation: only the serving pointer moves, and the view (refreshed every
//! `version_cache_ms`) decides which version a request reads. The checksum tells apart two
//! versions with the same number (an API deleted and created again starts over at 1).
//! Not-found answers are kept too, once the version was confirmed still serving. Bounded by
//! bytes (`near_cache_mb`), least recently used first out (moka's TinyLFU).

use bytes::Bytes;
use moka::sync::Cache;
use prometheus::IntCounterVec;

/// Which entry: the API, its version and the version's checksum, the canonical key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NearKey {
    api: Box<str>,
    version: u64,
    checksum: u64,
    key: Vec<u8>,
}

impl NearKey {
    pub fn new(api: &str, version: u64, checksum: u64, key: &[u8]) -> NearKey {
        NearKey {
            api: api.into(),
            version,
            checksum,
            key: key.to_vec(),
        }
    }
}

pub struct NearCache {
    cache: Option<Cache<NearKey, Option<Bytes>>>,
    /// `tablecast_lookup_near_cache_total{result=hit|miss|evicted}`.
    counts: IntCounterVec,
    /// `tablecast_lookup_near_hits_total{api}`.
    hits_by_api: IntCounterVec,
}

impl NearCache {
    /// A cache of at most `max_mb` MB of entries (keys, values and a fixed overhead each);
    /// 0 turns it off.
    pub fn new(max_mb: u64, counts: IntCounterVec, hits_by_api: IntCounterVec) -> NearCache {
        let cache = (max_mb > 0).then(|| {
            let evicted = counts.with_label_values(&["evicted"]);
            Cache::builder()
                .max_capacity(max_mb << 20)
                .weigher(|k: &NearKey, v: &Option<Bytes>| {
                    let bytes = 96 + k.api.len() + k.key.len() + v.as_ref().map_or(0, Bytes::len);
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .eviction_listener(move |_k, _v, cause| {
                    if cause.was_evicted() {
                        evicted.inc();
                    }
                })
                .build()
        });
        NearCache {
            cache,
            counts,
            hits_by_api,
        }
    }

    /// The cached answer: `Some(Some(value))`, `Some(None)` (known absent) or `None` (ask Redis).
    pub fn get(&self, key: &NearKey) -> Option<Option<Bytes>> {
        let cache = self.cache.as_ref()?;
        let found = cache.get(key);
        if found.is_some() {
            self.hits_by_api.with_label_values(&[&*key.api]).inc();
        }
        self.counts
            .with_label_values(&[if found.is_some() { "hit" } else { "miss" }])
            .inc();
        found
    }

    pub fn insert(&self, key: NearKey, value: Option<Bytes>) {
        if let Some(cache) = &self.cache {
            cache.insert(key, value);
        }
    }
}
