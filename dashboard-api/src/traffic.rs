//! Traffic: what every API's lookups are doing, for the dashboard's charts. `tablecast serve`
//! scrapes the `/metrics` of every configured lookup service every `scrape_ms` and keeps, per
//! API, a bounded in-memory history of per-interval points summed over the services: requests,
//! not-found answers, errors, bytes and the latency histogram's bucket counts. It keeps
//! `fine_points` points at the scrape resolution (default 1 h at 15 s) and `coarse_points` of
//! `coarse_every` merged (default 24 h at 5 min). Nothing is added to the lookup hot path:
//! lookups count into their Prometheus registry as before, this only reads it.
//!
//! Memory is bounded: at most `(fine_points + coarse_points) × size_of::<Point>()` per API
//! (96 bytes a point: 50 784 bytes with the defaults), for the APIs the store knows
//! ([`Traffic::memory_bytes`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use edge_contract::LATENCY_BUCKETS;
use serde::{Deserialize, Serialize};

/// The most of a `/metrics` answer read.
const MAX_METRICS_BYTES: usize = 16 << 20;

/// Latency bucket counts: one per bound, then `+Inf`.
pub const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// Traffic collection settings (`[dashboard.traffic]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrafficConfig {
    /// How often every lookup service is scraped (0: no collection).
    pub scrape_ms: u64,
    /// Points kept at the scrape resolution.
    pub fine_points: usize,
    /// Scrape intervals merged into one coarse point.
    pub coarse_every: usize,
    /// Coarse points kept.
    pub coarse_points: usize,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            scrape_ms: 15_000,
            fine_points: 240,
            coarse_every: 20,
            coarse_points: 288,
        }
    }
}

/// One interval of one API, summed over every lookup service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point {
    /// End of the interval, ms since the epoch.
    pub t_ms: i64,
    pub seconds: f32,
    pub requests: u32,
    pub not_found: u32,
    /// 5xx answers (Redis down, timeouts, overload).
    pub errors: u32,
    /// Keys the lookup services' near caches answered.
    pub near_hits: u32,
    pub bytes: u64,
    pub latency: [u32; BUCKETS],
}

impl Point {
    fn merge(&mut self, other: &Point) {
        self.t_ms = self.t_ms.max(other.t_ms);
        self.seconds += other.seconds;
        self.requests += other.requests;
        self.not_found += other.not_found;
        self.errors += other.errors;
        self.near_hits += other.near_hits;
        self.bytes += other.bytes;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
    }

    /// The `q` quantile of the interval's latency in ms, interpolated within its bucket as
    /// Prometheus's `histogram_quantile` does; none without requests.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut seen = 0.0;
        for (i, &count) in self.latency.iter().enumerate() {
            let next = seen + f64::from(count);
            if next >= rank && count > 0 {
                let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
                let Some(&upper) = LATENCY_BUCKETS.get(i) else {
                    // +Inf: the highest finite bound is all that can be said.
                    return Some(lower * 1000.0);
                };
                let within = (rank - seen) / f64::from(count);
                return Some((lower + (upper - lower) * within) * 1000.0);
            }
            seen = next;
        }
        None
    }
}

/// The counters of one API on one lookup service, as scraped (cumulative).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub requests: u64,
    pub not_found: u64,
    pub errors: u64,
    pub near_hits: u64,
    pub bytes: u64,
    pub latency: [u64; BUCKETS],
}

/// What one scrape of a lookup service said: per API its counters, version and memory, and
/// the edge Redis's memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub apis: BTreeMap<String, Counters>,
    pub versions: BTreeMap<String, u64>,
    pub memory: BTreeMap<String, u64>,
    pub redis_used: Option<u64>,
    pub redis_max: Option<u64>,
}

impl Scrape {
    /// Reads the lookup service's Prometheus text. Unknown lines are skipped.
    pub fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        // Which cumulative buckets each API's text had: a missing one equals the one below it.
        let mut present: HashMap<String, [bool; BUCKETS]> = HashMap::new();
        for line in text.lines() {
            let Some((name, labels, value)) = sample(line) else {
                continue;
            };
            let label = |k: &str| {
                labels
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.as_str())
            };
            let Some(api) = label("api") else {
                if name == "tablecast_edge_redis_memory_bytes" {
                    match label("kind") {
                        Some("used") => s.redis_used = Some(value as u64),
                        Some("max") => s.redis_max = Some(value as u64),
                        _ => {}
                    }
                }
                continue;
            };
            let api = api.to_string();
            match name {
                "tablecast_lookup_requests_total" => {
                    let c = s.apis.entry(api).or_default();
                    c.requests += value as u64;
                    match label("status") {
                        Some("404") => c.not_found += value as u64,
                        Some(st) if st.starts_with('5') => c.errors += value as u64,
                        _ => {}
                    }
                }
                "tablecast_lookup_duration_seconds_bucket" => {
                    let Some(le) = label("le") else { continue };
                    let i = if le == "+Inf" {
                        BUCKETS - 1
                    } else {
                        match le.parse::<f64>().ok().and_then(|b| {
                            LATENCY_BUCKETS.iter().position(|x| (x - b).abs() < 1e-12)
                        }) {
                            Some(i) => i,
                            None => continue,
                        }
                    };
                    present.entry(api.clone()).or_default()[i] = true;
                    s.apis.entry(api).or_default().latency[i] += value as u64;
                }
                "tablecast_lookup_near_hits_total" => {
                    s.apis.entry(api).or_default().near_hits += value as u64;
                }
                "tablecast_lookup_response_bytes_total" => {
                    s.apis.entry(api).or_default().bytes += value as u64;
                }
                "tablecast_lookup_served_version" => {
                    s.versions.insert(api, value as u64);
                }
                "tablecast_edge_api_memory_bytes" => {
                    *s.memory.entry(api).or_default() += value as u64;
                }
                _ => {}
            }
        }
        // Prometheus buckets are cumulative: make them per-bucket counts.
        for (api, c) in s.apis.iter_mut() {
            let seen = present.get(api).copied().unwrap_or_default();
            for (i, present) in seen.iter().enumerate().skip(1) {
                if !present {
                    c.latency[i] = c.latency[i - 1];
                }
            }
            for i in (1..BUCKETS).rev() {
                c.latency[i] = c.latency[i].saturating_sub(c.latency[i - 1]);
            }
        }
        s
    }
}

/// One exposition line: metric name, labels, value.
type Sample<'a> = (&'a str, Vec<(&'a str, String)>, f64);

/// `name{a="x",b="y"} value` → (name, labels, value).
fn sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head, Vec::new(), value));
    };
    let mut body = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    while !body.is_empty() {
        let (key, quoted) = body.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim(), value));
        body = quoted[end + 1..].trim_start_matches(',');
    }
    Some((name, labels, value))
}

/// One API's history.
#[derive(Debug, Default)]
struct Series {
    fine: VecDeque<Point>,
    coarse: VecDeque<Point>,
    pending: Point,
    pending_n: usize,
}

impl Series {
    /// The points of `1h` (fine) or `24h` (coarse).
    fn window(&self, window: &str) -> &VecDeque<Point> {
        if window == "24h" {
            &self.coarse
        } else {
            &self.fine
        }
    }
}

/// The points' sum (requests, latency buckets…) as one point.
fn total<'a>(points: impl IntoIterator<Item = &'a Point>) -> Point {
    let mut sum = Point::default();
    for p in points {
        sum.merge(p);
    }
    sum
}

/// What the API's lookup services said last.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct LookupNow {
    pub lookup: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_max_bytes: Option<u64>,
    /// Why the last scrape failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Default)]
struct State {
    series: HashMap<String, Series>,
    /// The previous scrape of each lookup service, for deltas.
    last: HashMap<String, (i64, Scrape)>,
    /// The last outcome of each lookup service.
    now: BTreeMap<String, Result<Scrape, String>>,
}

/// The collected history. One writer: the scrape loop ([`Traffic::record`]).
pub struct Traffic {
    config: TrafficConfig,
    sources: Vec<String>,
    state: Mutex<State>,
}

/// A chart-ready point.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChartPoint {
    /// RFC 3339 end of the interval.
    pub t: String,
    pub requests_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Share of answers that were 404, in percent.
    pub not_found_pct: f64,
    pub errors_per_s: f64,
    /// Keys per second the near caches answered (a batch counts each key).
    pub near_hits_per_s: f64,
    pub bytes_per_s: f64,
}

impl ChartPoint {
    fn of(p: &Point) -> ChartPoint {
        let s = f64::from(p.seconds.max(0.001));
        ChartPoint {
            t: crate::store::rfc3339(p.t_ms),
            requests_per_s: f64::from(p.requests) / s,
            p50_ms: p.quantile_ms(0.5),
            p99_ms: p.quantile_ms(0.99),
            not_found_pct: if p.requests == 0 {
                0.0
            } else {
                f64::from(p.not_found) * 100.0 / f64::from(p.requests)
            },
            errors_per_s: f64::from(p.errors) / s,
            near_hits_per_s: f64::from(p.near_hits) / s,
            bytes_per_s: p.bytes as f64 / s,
        }
    }
}

/// One API's traffic over a window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiTraffic {
    pub api: String,
    /// `1h` (scrape resolution) or `24h` (coarse).
    pub window: String,
    pub step_s: f64,
    pub points: Vec<ChartPoint>,
    /// Sums over the window.
    pub requests: u64,
    pub not_found: u64,
    pub errors: u64,
    /// Keys the near caches answered.
    pub near_hits: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Each lookup service's view of the API now.
    pub lookups: Vec<LookupNow>,
}

impl Traffic {
    pub fn new(config: TrafficConfig, sources: Vec<String>) -> Traffic {
        let mut sources = sources;
        sources.sort();
        sources.dedup();
        Traffic {
            config,
            sources,
            state: Mutex::new(State::default()),
        }
    }

    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one round: each source's scrape (or why it failed) at `now_ms`. Only APIs in
    /// `known` get a history; the others' counters are still remembered for deltas.
    pub fn record(
        &self,
        now_ms: i64,
        scrapes: Vec<(String, Result<Scrape, String>)>,
        known: &[String],
    ) {
        let mut st = self.lock();
        let mut round: HashMap<String, Point> = known
            .iter()
            .map(|a| {
                (
                    a.clone(),
                    Point {
                        t_ms: now_ms,
                        ..Point::default()
                    },
                )
            })
            .collect();
        let mut seconds = 0.0f32;
        for (source, scrape) in scrapes {
            if let Ok(now) = &scrape {
                if let Some((then_ms, before)) = st.last.get(&source) {
                    seconds = seconds.max(((now_ms - then_ms) as f32 / 1000.0).max(0.001));
                    for (api, c) in &now.apis {
                        let Some(point) = round.get_mut(api) else {
                            continue;
                        };
                        let b = before.apis.get(api).cloned().unwrap_or_default();
                        // A restarted lookup service starts from zero: its count is the delta.
                        let d = |now: u64, then: u64| if now >= then { now - then } else { now };
                        point.requests += d(c.requests, b.requests) as u32;
                        point.not_found += d(c.not_found, b.not_found) as u32;
                        point.errors += d(c.errors, b.errors) as u32;
                        point.near_hits += d(c.near_hits, b.near_hits) as u32;
                        point.bytes += d(c.bytes, b.bytes);
                        for i in 0..BUCKETS {
                            point.latency[i] += d(c.latency[i], b.latency[i]) as u32;
                        }
                    }
                }
                st.last.insert(source.clone(), (now_ms, now.clone()));
            }
            st.now.insert(source, scrape);
        }
        if seconds == 0.0 {
            // The first round only sets the baseline.
            return;
        }
        st.series.retain(|api, _| known.contains(api));
        let (fine_cap, coarse_cap, every) = (
            self.config.fine_points.max(1),
            self.config.coarse_points.max(1),
            self.config.coarse_every.max(1),
        );
        for (api, mut point) in round {
            point.seconds = seconds;
            let s = st.series.entry(api).or_default();
            s.fine.push_back(point);
            while s.fine.len() > fine_cap {
                s.fine.pop_front();
            }
            s.pending.merge(&point);
            s.pending_n += 1;
            if s.pending_n >= every {
                s.coarse.push_back(std::mem::take(&mut s.pending));
                s.pending_n = 0;
                while s.coarse.len() > coarse_cap {
                    s.coarse.pop_front();
                }
            }
        }
    }

    /// An API's chart over `1h` (fine points) or `24h` (coarse points).
    pub fn api(&self, api: &str, window: &str) -> ApiTraffic {
        let st = self.lock();
        let empty = Series::default();
        let points = st.series.get(api).unwrap_or(&empty).window(window);
        let sum = total(points);
        ApiTraffic {
            api: api.to_string(),
            window: if window == "24h" { "24h" } else { "1h" }.into(),
            step_s: self.step_s(window),
            points: points.iter().map(ChartPoint::of).collect(),
            requests: u64::from(sum.requests),
            not_found: u64::from(sum.not_found),
            errors: u64::from(sum.errors),
            near_hits: u64::from(sum.near_hits),
            p99_ms: sum.quantile_ms(0.99),
            lookups: st
                .now
                .iter()
                .map(|(lookup, scrape)| match scrape {
                    Ok(s) => LookupNow {
                        lookup: lookup.clone(),
                        version: s.versions.get(api).copied(),
                        memory_bytes: s.memory.get(api).copied(),
                        redis_used_bytes: s.redis_used,
                        redis_max_bytes: s.redis_max,
                        error: None,
                    },
                    Err(e) => LookupNow {
                        lookup: lookup.clone(),
                        error: Some(e.clone()),
                        ..Default::default()
                    },
                })
                .collect(),
        }
    }

    /// Seconds a point of `window` stands for.
    fn step_s(&self, window: &str) -> f64 {
        let scrapes = if window == "24h" {
            self.config.coarse_every as f64
        } else {
            1.0
        };
        self.config.scrape_ms as f64 * scrapes / 1000.0
    }

    /// An API's last hour summed into one point, and the seconds its points stand for (at
    /// least 1): what a ranking needs, without building a chart.
    pub fn last_hour(&self, api: &str) -> (Point, f64) {
        let st = self.lock();
        let Some(s) = st.series.get(api) else {
            return (Point::default(), 1.0);
        };
        let seconds = (s.fine.len() as f64 * self.step_s("1h")).max(1.0);
        (total(&s.fine), seconds)
    }

    /// The most memory the history can take for `apis` APIs.
    pub fn memory_bound(&self, apis: usize) -> usize {
        apis * (self.config.fine_points + self.config.coarse_points + 1)
            * std::mem::size_of::<Point>()
    }

    /// The memory the kept points take now.
    pub fn memory_bytes(&self) -> usize {
        let st = self.lock();
        st.series
            .values()
            .map(|s| (s.fine.len() + s.coarse.len() + 1) * std::mem::size_of::<Point>())
            .sum()
    }

    /// Scrapes every source once (in parallel, each within `timeout`).
    pub async fn scrape_all(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Vec<(String, Result<Scrape, String>)> {
        let scrapes = self.sources.iter().map(|base| async move {
            let url = format!("{}/metrics", base.trim_end_matches('/'));
            let got = async {
                let resp = http
                    .get(&url)
                    .timeout(timeout)
                    .send()
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("GET {url}: {}", resp.status()));
                }
                // A lookup service's text is a few hundred KB at most: a larger answer is not one.
                let mut resp = resp;
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
                    if body.len() + chunk.len() > MAX_METRICS_BYTES {
                        return Err(format!(
                            "GET {url}: over {MAX_METRICS_BYTES} bytes: not a lookup service's metrics"
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Scrape::parse(&String::from_utf8_lossy(&body)))
            }
            .await;
            (base.clone(), got)
        });
        futures::future::join_all(scrapes).await
    }
}

/// Scrapes every `scrape_ms` until shutdown.
pub fn start(state: crate::AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = state.config.traffic.scrape_ms;
        if every == 0 || state.traffic.sources().is_empty() {
            return;
        }
        let http = reqwest::Client::new();
        let every = Duration::from_millis(every.max(100));
        loop {
            let scrapes = state
                .traffic
                .scrape_all(&http, every.min(Duration::from_secs(5)))
                .await;
            match state.store.apis().await {
                Ok(apis) => {
                    let known: Vec<String> = apis.into_iter().map(|a| a.name).collect();
                    state
                        .traffic
                        .record(crate::store::now_ms(), scrapes, &known);
                }
                Err(e) => tracing::warn!(error = %e, "reading APIs for traffic failed"),
            }
            tokio::select! {
                () = state.shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP tablecast_lookup_requests_total Lookup requests
# TYPE tablecast_lookup_requests_total counter
tablecast_lookup_requests_total{api="a",kind="get",status="200"} 30
tablecast_lookup_requests_total{api="a",kind="get",status="404"} 10
tablecast_lookup_requests_total{api="a",kind="batch",status="503"} 2
tablecast_lookup_duration_seconds_bucket{api="a",kind="get",le="0.0001"} 0
tablecast_lookup_duration_seconds_bucket{api="a",kind="get",le="0.00025"} 0
tablecast_lookup_duration_seconds_bucket{api="a",kind="get",le="0.0005"} 20
tablecast_lookup_duration_seconds_bucket{api="a",kind="get",le="0.001"} 40
tablecast_lookup_duration_seconds_bucket{api="a",kind="get",le="+Inf"} 42
tablecast_lookup_response_bytes_total{api="a"} 1234
tablecast_lookup_served_version{api="a"} 3
tablecast_edge_api_memory_bytes{api="a",version="3"} 5000
tablecast_edge_redis_memory_bytes{kind="used"} 900000
tablecast_edge_redis_memory_bytes{kind="max"} 0
"#;

    #[test]
    fn parses_what_a_lookup_service_exports() {
        let s = Scrape::parse(TEXT);
        let a = &s.apis["a"];
        assert_eq!(
            (a.requests, a.not_found, a.errors, a.bytes),
            (42, 10, 2, 1234)
        );
        assert_eq!(a.latency[2], 20, "0.25–0.5 ms");
        assert_eq!(a.latency[3], 20, "0.5–1 ms");
        assert_eq!(a.latency[BUCKETS - 1], 2, "+Inf");
        assert_eq!(s.versions["a"], 3);
        assert_eq!(s.memory["a"], 5000);
        assert_eq!((s.redis_used, s.redis_max), (Some(900_000), Some(0)));
        let labels = sample(r#"x{a="q\"uote",b="2"} 1.5"#).unwrap();
        assert_eq!(
            labels.1,
            vec![("a", "q\"uote".to_string()), ("b", "2".into())]
        );
    }

    #[test]
    fn rounds_become_bounded_per_api_points() {
        let t = Traffic::new(
            TrafficConfig {
                scrape_ms: 1000,
                fine_points: 5,
                coarse_every: 2,
                coarse_points: 3,
            },
            vec!["http://l".into()],
        );
        let known = vec!["a".to_string()];
        let mut requests = 0;
        for round in 0..50 {
            let mut s = Scrape::default();
            requests += 7;
            s.apis.insert(
                "a".into(),
                Counters {
                    requests,
                    not_found: requests / 7,
                    latency: {
                        let mut l = [0; BUCKETS];
                        l[3] = requests;
                        l
                    },
                    ..Default::default()
                },
            );
            t.record(round * 1000, vec![("http://l".into(), Ok(s))], &known);
        }
        let a = t.api("a", "1h");
        assert_eq!(a.points.len(), 5, "fine points are capped");
        assert_eq!(a.requests, 35);
        assert!((a.points[0].requests_per_s - 7.0).abs() < 1e-9);
        assert!((a.points[0].not_found_pct - 100.0 / 7.0).abs() < 1e-9);
        // All in the 0.5–1 ms bucket.
        let p99 = a.points[0].p99_ms.unwrap();
        assert!((0.5..=1.0).contains(&p99), "{p99}");
        assert_eq!(
            t.api("a", "24h").points.len(),
            3,
            "coarse points are capped"
        );
        assert!(t.memory_bytes() <= t.memory_bound(1));
        // The bound the configuration documents: 96 bytes a point, 1 h + 24 h ≈ 50 KB per API.
        assert_eq!(std::mem::size_of::<Point>(), 96);
        let defaults = Traffic::new(TrafficConfig::default(), vec![]);
        assert_eq!(defaults.memory_bound(1), 50_784);
        // An API the store no longer knows is dropped.
        t.record(
            51_000,
            vec![("http://l".into(), Ok(Scrape::default()))],
            &[],
        );
        assert_eq!(t.memory_bytes(), 0);
    }
}
