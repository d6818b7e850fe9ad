//! What the publisher and the edges agree on, and nothing else: the bytes of an entry
//! ([`canonical`]), how a URL names a key ([`keypath`]), what a version is and how an edge is
//! driven ([`sink`]); and how every binary reads the configuration file ([`settings`]).
//!
//! It is its own crate so that an edge node's lookup service links this and Redis, not the
//! publisher's metastore client, Parquet reader and engines.

pub mod canonical;
pub mod keypath;
pub mod settings;
pub mod sink;

pub use sink::{EdgeError, EdgeResult, TokenLimit};

/// API names appear in URLs and cache keys.
pub fn is_api_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
