//! Prometheus metrics of the dashboard: jobs by state and queue depth (read from the store at
//! scrape time, so they are right across restarts and several instances), job attempt
//! durations and outcomes, and HTTP requests.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::freshness::Freshness;
use crate::store::{JobState, Store};

pub struct Metrics {
    registry: Registry,
    jobs: IntGaugeVec,
    queue_depth: IntGauge,
    job_duration: HistogramVec,
    attempts: IntCounterVec,
    refused: IntCounterVec,
    pub(crate) table_watch_checks: IntCounter,
    pub(crate) trigger_firings: IntCounterVec,
    data_age: GaugeVec,
    stale: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let jobs = IntGaugeVec::new(
            Opts::new("tablecast_dashboard_jobs", "Jobs in the store by state (the whole store: every instance of a cluster reports the same)"),
            &["state"],
        )
        .expect("metric");
        let queue_depth = IntGauge::new(
            "tablecast_dashboard_queue_depth",
            "Jobs waiting to run (queued, including those in backoff)",
        )
        .expect("metric");
        let job_duration = HistogramVec::new(
            HistogramOpts::new(
                "tablecast_dashboard_job_duration_seconds",
                "Duration of one job attempt",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
            ]),
            &["kind", "outcome"],
        )
        .expect("metric");
        let attempts = IntCounterVec::new(
            Opts::new("tablecast_dashboard_job_attempts_total", "Job attempts by kind and outcome (succeeded, failed, retried, cancelled, abandoned)"),
            &["kind", "outcome"],
        )
        .expect("metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "tablecast_dashboard_refused_total",
                "Connections and requests refused by the HTTP limits (connections|in_flight)",
            ),
            &["limit"],
        )
        .expect("metric");
        let table_watch_checks = IntCounter::new(
            "tablecast_table_watch_checks_total",
            "Table descriptions made by the table watcher (one per watched table per round)",
        )
        .expect("metric");
        let trigger_firings = IntCounterVec::new(
            Opts::new(
                "tablecast_trigger_firings_total",
                "Trigger firings by API and trigger (table_change, schedule)",
            ),
            &["api", "trigger"],
        )
        .expect("metric");
        let data_age = GaugeVec::new(
            Opts::new(
                "tablecast_api_data_age_seconds",
                "Age of the serving version's data (its data time, else its publish time)",
            ),
            &["api"],
        )
        .expect("metric");
        let stale = IntGaugeVec::new(
            Opts::new(
                "tablecast_api_stale",
                "1 when the serving data is older than the API's freshness objective",
            ),
            &["api"],
        )
        .expect("metric");
        for c in [
            Box::new(jobs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(table_watch_checks.clone()),
            Box::new(trigger_firings.clone()),
            Box::new(data_age.clone()),
            Box::new(stale.clone()),
            Box::new(refused.clone()),
            Box::new(queue_depth.clone()),
            Box::new(job_duration.clone()),
            Box::new(attempts.clone()),
        ] {
            registry.register(c).expect("metrics register once");
        }
        Metrics {
            registry,
            jobs,
            queue_depth,
            job_duration,
            attempts,
            refused,
            table_watch_checks,
            trigger_firings,
            data_age,
            stale,
        }
    }

    /// Counts a refusal of the HTTP limits.
    pub fn refusal(&self) -> http_serve::OnRefusal {
        let refused = self.refused.clone();
        std::sync::Arc::new(move |r| refused.with_label_values(&[r.label()]).inc())
    }

    /// Records the end of one attempt.
    pub fn attempt(&self, kind: &str, outcome: &str, seconds: f64) {
        self.job_duration
            .with_label_values(&[kind, outcome])
            .observe(seconds);
        self.attempts.with_label_values(&[kind, outcome]).inc();
    }

    /// The text exposition, with job gauges refreshed from the store.
    pub async fn render(&self, store: &Store) -> crate::Result<String> {
        let counts = store.job_counts().await?;
        for state in JobState::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n);
            self.jobs.with_label_values(&[state.as_str()]).set(n);
            if state == JobState::Queued {
                self.queue_depth.set(n);
            }
        }
        // Read whole each scrape, so a deleted API's series go.
        self.data_age.reset();
        self.stale.reset();
        for (api, f) in Freshness::of_all(store, chrono::Utc::now()).await? {
            if let Some(age) = f.age_s {
                self.data_age.with_label_values(&[api.as_str()]).set(age);
            }
            if f.objective_h.is_some() {
                self.stale
                    .with_label_values(&[api.as_str()])
                    .set(i64::from(f.stale));
            }
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| crate::Error::Internal(e.to_string()))?;
        String::from_utf8(out).map_err(|e| crate::Error::Internal(e.to_string()))
    }
}
