//! The `[lookup]` section of the configuration.

use super::*;

/// The `[lookup]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LookupConfig {
    /// `redis://host:port[/db]`, or `redis+cluster://host:port[,host:port...]`.
    pub redis_url: String,
    pub listen: SocketAddr,
    /// How long the serving version of an API is cached in process (10 to 2000).
    pub version_cache_ms: u64,
    /// A request's deadline for the calls it makes to Redis (and for reading a batch's body):
    /// past it a lookup answers 503 `timeout`. An answer from memory needs none.
    pub request_timeout_ms: u64,
    pub max_batch_keys: usize,
    pub max_body_bytes: usize,
    /// Deadline of one Redis reply (the connection's response timeout).
    pub redis_timeout_ms: u64,
    /// Requests per second (and burst) each public API takes without a token, in this process;
    /// 0: no limit. Tokens get their own quota from the control plane.
    pub anonymous_per_second: u32,
    pub anonymous_burst: u32,
    /// Header-read and idle timeouts, connection and in-flight caps (`[lookup.limits]`).
    pub limits: http_serve::HttpLimits,
    /// How often the Redis memory each API's serving version takes is estimated (sampling a
    /// few of its buckets with MEMORY USAGE, off the request path); 0: never.
    pub memory_sample_ms: u64,
    /// The near cache: entries of serving versions kept in this process, in MB (0: off).
    pub near_cache_mb: u64,
    /// Threads that serve connections, each on its own single-threaded runtime (0: one per
    /// core); a connection stays on one thread from accept to close.
    pub connection_threads: usize,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            redis_url: "redis://127.0.0.1:6379".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            version_cache_ms: 100,
            request_timeout_ms: 1000,
            max_batch_keys: 1000,
            max_body_bytes: 1 << 20,
            redis_timeout_ms: 500,
            anonymous_per_second: 0,
            anonymous_burst: 0,
            limits: http_serve::HttpLimits::default(),
            memory_sample_ms: 60_000,
            near_cache_mb: 64,
            connection_threads: 0,
        }
    }
}

impl LookupConfig {
    pub(super) fn version_ttl(&self) -> Duration {
        Duration::from_millis(self.version_cache_ms.clamp(10, MAX_VERSION_CACHE_MS))
    }
}
