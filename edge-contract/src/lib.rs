//! What the publisher and the edges agree on, and nothing else: the bytes of an entry
//! ([`canonical`]), how a URL names a key ([`keypath`]), what a version is and how an edge is
//! driven ([`sink`]); and how every binary reads the configuration file ([`settings`]).
//!
//! It is its own crate so that an edge node's lookup service links this and Redis, not the
//! publisher's metastore client, Parquet reader and engines.

pub mod canonical;
pub mod compression;
pub mod keypath;
pub mod settings;
pub mod sink;

pub use sink::{EdgeError, EdgeResult, TokenLimit};

/// Upper bounds (seconds) of the lookup services' latency histogram buckets
/// (`tablecast_lookup_duration_seconds`), which the dashboard reads back into quantiles.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.065, 0.1, 0.25, 0.5,
    1.0,
];

/// API names appear in URLs and cache keys.
pub fn is_api_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
