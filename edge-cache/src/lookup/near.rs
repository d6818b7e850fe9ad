//! The near cache: entries of serving versions kept in process, so that a repeated key costs no
//! Redis round trip. A sealed version never changes, so `(version, key) → value` needs no
//! invalidation: only the serving pointer moves, and the view (refreshed every
//! `version_cache_ms`) decides which version a request reads. A version is named by its view's
//! `near_id`, a number never reused in this process, which the view keeps while the API serves
//! the same version (same number and checksum: an API deleted and created again starts over at
//! version 1, with another checksum). Not-found answers are kept too, once the version was
//! confirmed still serving. Bounded by bytes (`near_cache_mb`); quick_cache's S3-FIFO-like policy
//! evicts. A lookup allocates nothing (the key is probed borrowed), and a short key is stored in
//! the entry itself, so that comparing it follows no pointer.

use bytes::Bytes;
use prometheus::{IntCounter, IntCounterVec};
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Equivalent, Lifecycle, Weighter};
use smallvec::SmallVec;

/// A stored entry's key: the version's `near_id` and the canonical key. [`Probe`] is the same
/// key borrowed; both hash their fields in the same order and the same way.
#[derive(Clone, PartialEq, Eq, Hash)]
struct NearKey {
    near_id: u64,
    key: SmallVec<[u8; 24]>,
}

#[derive(Hash)]
struct Probe<'a> {
    near_id: u64,
    key: &'a [u8],
}

impl Equivalent<NearKey> for Probe<'_> {
    fn equivalent(&self, k: &NearKey) -> bool {
        self.near_id == k.near_id && self.key == &*k.key
    }
}

/// An entry's weight: its key, value and a fixed overhead, in bytes.
#[derive(Clone)]
struct Bytesize;

impl Weighter<NearKey, Option<Bytes>> for Bytesize {
    fn weight(&self, k: &NearKey, v: &Option<Bytes>) -> u64 {
        (96 + k.key.len() + v.as_ref().map_or(0, Bytes::len)) as u64
    }
}

/// Counts evictions (`tablecast_lookup_near_cache_total{result="evicted"}`).
#[derive(Clone)]
struct Evictions(IntCounter);

impl Lifecycle<NearKey, Option<Bytes>> for Evictions {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _: &mut (), _: NearKey, _: Option<Bytes>) {
        self.0.inc();
    }
}

type Entries = Cache<NearKey, Option<Bytes>, Bytesize, DefaultHashBuilder, Evictions>;

pub struct NearCache {
    cache: Option<Entries>,
    /// `tablecast_lookup_near_cache_total{result=hit|miss}`, resolved once.
    hits: IntCounter,
    misses: IntCounter,
}

impl NearCache {
    /// A cache of at most `max_mb` MB of entries (keys, values and a fixed overhead each);
    /// 0 turns it off.
    pub fn new(max_mb: u64, counts: IntCounterVec) -> NearCache {
        let cache = (max_mb > 0).then(|| {
            let bytes = max_mb << 20;
            // An estimate for the table's first size (entries are typically a few hundred bytes).
            let items = (bytes / 512).clamp(1024, 1 << 22) as usize;
            let evicted = Evictions(counts.with_label_values(&["evicted"]));
            Cache::with(
                items,
                bytes,
                Bytesize,
                DefaultHashBuilder::default(),
                evicted,
            )
        });
        NearCache {
            cache,
            hits: counts.with_label_values(&["hit"]),
            misses: counts.with_label_values(&["miss"]),
        }
    }

    /// The cached answer for `key` in the version a view names `near_id`:
    /// `Some(Some(value))`, `Some(None)` (known absent) or `None` (ask Redis).
    pub fn get(&self, near_id: u64, key: &[u8]) -> Option<Option<Bytes>> {
        let cache = self.cache.as_ref()?;
        let found = cache.get(&Probe { near_id, key });
        if found.is_some() {
            self.hits.inc();
        } else {
            self.misses.inc();
        }
        found
    }

    pub fn insert(&self, near_id: u64, key: &[u8], value: Option<Bytes>) {
        if let Some(cache) = &self.cache {
            let key = NearKey {
                near_id,
                key: SmallVec::from_slice(key),
            };
            cache.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A borrowed probe must find what an owned key stored: same hash, and equivalent; short
    /// keys (stored inline) and long ones alike.
    #[test]
    fn a_probe_hashes_and_compares_as_the_stored_key() {
        let hasher = DefaultHashBuilder::default();
        for key in [&b"k1"[..], &[7u8; 100][..]] {
            let stored = NearKey {
                near_id: 3,
                key: SmallVec::from_slice(key),
            };
            let probe = Probe { near_id: 3, key };
            assert_eq!(hasher.hash_one(&stored), hasher.hash_one(&probe));
            assert!(probe.equivalent(&stored));
            let other = Probe { near_id: 4, key };
            assert!(!other.equivalent(&stored));
        }
    }

    #[test]
    fn entries_are_bounded_by_bytes_and_evictions_counted() {
        let counts = IntCounterVec::new(prometheus::Opts::new("n", "n"), &["result"]).unwrap();
        let near = NearCache::new(1, counts.clone());
        let of = 1;
        let value = Bytes::from(vec![b'x'; 1000]);
        for i in 0..5_000u32 {
            near.insert(of, &i.to_be_bytes(), Some(value.clone()));
        }
        assert_eq!(near.get(of, &4_999u32.to_be_bytes()), Some(Some(value)));
        assert_eq!(near.get(of, &7_000u32.to_be_bytes()), None);
        let evicted = counts.with_label_values(&["evicted"]).get();
        assert!(
            evicted >= 3_900,
            "5 000 entries of ~1.1 KB in 1 MB: {evicted} evicted"
        );
        assert_eq!(counts.with_label_values(&["hit"]).get(), 1);
        assert_eq!(counts.with_label_values(&["miss"]).get(), 1);
    }
}
