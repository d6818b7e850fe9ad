//! Prometheus metrics of the lookup service, in its own registry.

use std::time::Instant;

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub hits: IntCounterVec,
    pub misses: IntCounterVec,
    pub redis_errors: IntCounter,
    pub served_version: IntGaugeVec,
    /// Seconds since the data time of the version each API serves.
    pub data_age: GaugeVec,
    /// Connections and requests refused by the HTTP limits, by limit.
    pub refused: IntCounterVec,
    /// Lookups refused by a quota, by API and token id (`anonymous` without a token).
    pub throttled: IntCounterVec,
    /// Keys per batch request, by API.
    pub batch_keys: HistogramVec,
    /// Response body bytes of successful lookups, by API.
    pub response_bytes: IntCounterVec,
    /// Estimated Redis memory of each API's serving version (sampled).
    pub api_memory: IntGaugeVec,
    /// The edge Redis's `used_memory` and `maxmemory` (0: no limit).
    pub redis_memory: IntGaugeVec,
    /// Near cache answers by result (hit, miss) and entries evicted for room.
    pub near_cache: IntCounterVec,
    /// Keys answered from the near cache, by API.
    pub near_hits: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tablecast_lookup_requests_total",
                "Lookup requests by API, kind (get|batch) and HTTP status",
            ),
            &["api", "kind", "status"],
        )
        .expect("metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tablecast_lookup_duration_seconds",
                "Server time of lookup requests",
            )
            .buckets(edge_contract::LATENCY_BUCKETS.to_vec()),
            &["api", "kind"],
        )
        .expect("metric");
        let hits = IntCounterVec::new(
            Opts::new("tablecast_lookup_hits_total", "Keys found"),
            &["api"],
        )
        .expect("metric");
        let misses = IntCounterVec::new(
            Opts::new("tablecast_lookup_misses_total", "Keys not found"),
            &["api"],
        )
        .expect("metric");
        let redis_errors = IntCounter::new(
            "tablecast_lookup_redis_errors_total",
            "Redis calls that failed or timed out",
        )
        .expect("metric");
        let served_version = IntGaugeVec::new(
            Opts::new(
                "tablecast_lookup_served_version",
                "The version each API serves",
            ),
            &["api"],
        )
        .expect("metric");
        let data_age = GaugeVec::new(
            Opts::new(
                "tablecast_api_data_age_seconds",
                "Seconds since the data time of the version each API serves",
            ),
            &["api"],
        )
        .expect("metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "tablecast_lookup_refused_total",
                "Connections and requests refused by the HTTP limits (connections|in_flight)",
            ),
            &["limit"],
        )
        .expect("metric");
        let throttled = IntCounterVec::new(
            Opts::new(
                "tablecast_lookup_throttled_total",
                "Lookups refused by a quota, by API and token id (never the token)",
            ),
            &["api", "token"],
        )
        .expect("metric");
        let batch_keys = HistogramVec::new(
            HistogramOpts::new("tablecast_lookup_batch_keys", "Keys per batch request").buckets(
                vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
            ),
            &["api"],
        )
        .expect("metric");
        let response_bytes = IntCounterVec::new(
            Opts::new(
                "tablecast_lookup_response_bytes_total",
                "Response body bytes of successful lookups",
            ),
            &["api"],
        )
        .expect("metric");
        let api_memory = IntGaugeVec::new(
            Opts::new(
                "tablecast_edge_api_memory_bytes",
                "Estimated Redis memory of the version each API serves (MEMORY USAGE of sampled buckets)",
            ),
            &["api", "version"],
        )
        .expect("metric");
        let redis_memory = IntGaugeVec::new(
            Opts::new(
                "tablecast_edge_redis_memory_bytes",
                "The edge Redis's memory: kind used (used_memory) or max (maxmemory, 0: no limit)",
            ),
            &["kind"],
        )
        .expect("metric");
        let near_cache = IntCounterVec::new(
            Opts::new(
                "tablecast_lookup_near_cache_total",
                "Near cache lookups by result: hit, miss, and evicted entries",
            ),
            &["result"],
        )
        .expect("metric");
        let near_hits = IntCounterVec::new(
            Opts::new(
                "tablecast_lookup_near_hits_total",
                "Keys answered from the near cache, by API",
            ),
            &["api"],
        )
        .expect("metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(near_cache.clone()),
            Box::new(near_hits.clone()),
            Box::new(batch_keys.clone()),
            Box::new(response_bytes.clone()),
            Box::new(api_memory.clone()),
            Box::new(redis_memory.clone()),
            Box::new(refused.clone()),
            Box::new(throttled.clone()),
            Box::new(latency.clone()),
            Box::new(hits.clone()),
            Box::new(misses.clone()),
            Box::new(redis_errors.clone()),
            Box::new(served_version.clone()),
            Box::new(data_age.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics {
            registry,
            requests,
            latency,
            hits,
            misses,
            redis_errors,
            served_version,
            data_age,
            refused,
            throttled,
            batch_keys,
            response_bytes,
            api_memory,
            redis_memory,
            near_cache,
            near_hits,
        }
    }

    /// The counters of one API's answered lookups, resolved once (see [`ApiMetrics`]).
    pub fn for_api(&self, api: &str) -> ApiMetrics {
        let kinds = [Kind::Get, Kind::Batch];
        ApiMetrics {
            answered: kinds.map(|k| self.requests.with_label_values(&[api, k.label(), "200"])),
            latency: kinds.map(|k| self.latency.with_label_values(&[api, k.label()])),
            hits: self.hits.with_label_values(&[api]),
            misses: self.misses.with_label_values(&[api]),
            near_hits: self.near_hits.with_label_values(&[api]),
            response_bytes: self.response_bytes.with_label_values(&[api]),
        }
    }

    /// Counts a refusal of the HTTP limits.
    pub fn refusal(&self) -> http_serve::OnRefusal {
        let refused = self.refused.clone();
        std::sync::Arc::new(move |r| refused.with_label_values(&[r.label()]).inc())
    }

    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

/// The kind of a lookup request, as labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Get,
    Batch,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Get => "get",
            Kind::Batch => "batch",
        }
    }
}

/// One API's metrics for answered lookups (status 200), resolved once per cached view so that
/// an answer counts itself without hashing a label or taking the metric families' locks (both
/// showed in the lookup's profile). Other statuses are rare and go through the families.
pub struct ApiMetrics {
    answered: [IntCounter; 2],
    latency: [Histogram; 2],
    hits: IntCounter,
    misses: IntCounter,
    pub near_hits: IntCounter,
    response_bytes: IntCounter,
}

impl ApiMetrics {
    /// An answer of `kind` that started at `started`: `hits` keys found, `misses` not, a body
    /// of `bytes`.
    pub fn answered(&self, kind: Kind, started: Instant, hits: u64, misses: u64, bytes: usize) {
        let i = kind as usize;
        self.answered[i].inc();
        self.latency[i].observe(started.elapsed().as_secs_f64());
        if hits > 0 {
            self.hits.inc_by(hits);
        }
        if misses > 0 {
            self.misses.inc_by(misses);
        }
        self.response_bytes.inc_by(bytes as u64);
    }

    /// A single key that is not in the serving version (answered 404, counted as such by the
    /// request families).
    pub fn missed(&self) {
        self.misses.inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
