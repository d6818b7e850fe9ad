//! Prometheus metrics of the lookup service, in its own registry.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
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
            .buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.065, 0.1,
                0.25, 0.5, 1.0,
            ]),
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
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
