//! The publish state machine: plan, guard, run (re-routing on a mid-run trip), push to every
//! edge, verify, snapshot, commit, collect garbage. Every failure names its step (and edge), and
//! before the commit step nothing is visible to readers: a failure discards the staged version
//! everywhere and the serving version stays as it was.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::join_all;
use serde::{Deserialize, Serialize};

use crate::canonical::{Checksum, Entry, EntryEncoder};
use crate::catalog::{Catalog, StorageFormat, TableMeta};
use crate::engine::{Engine, EngineJob, EnginePath};
use crate::error::{Error, Result};
use crate::files;
use crate::guards::{
    self, GuardLimits, GuardOutcome, Inspection, OUTPUT_BYTES, OUTPUT_KEYS, RowSource,
};
use crate::keypath::KeyType;
use crate::report::{Attempt, EdgeResult, PublishError, PublishReport, Step};
use crate::sink::{EdgeSink, VersionManifest};
use crate::snapshot::SnapshotStore;
use crate::spec::{self, ApiSpec, ResolvedSpec};

/// Which engine to use: follow the guards, or force one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    #[default]
    Auto,
    Fasttrack,
    Fallback,
}

impl std::str::FromStr for Route {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Route::Auto),
            "fasttrack" => Ok(Route::Fasttrack),
            "fallback" => Ok(Route::Fallback),
            other => Err(Error::Config(format!(
                "unknown path {other:?}: expected auto, fasttrack or fallback"
            ))),
        }
    }
}

/// Publishing settings (the `[publish]` section of the configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// Committed versions kept on each edge (and on disk) for instant rollback.
    pub keep_versions: usize,
    /// Entries per pipelined write to an edge.
    pub push_batch: usize,
    /// How long a publish lease outlives a crashed publisher.
    pub lease_ttl_ms: u64,
    /// How long a publish waits for another publish of the same API to finish.
    pub lease_wait_ms: u64,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            keep_versions: 2,
            push_batch: 2000,
            lease_ttl_ms: 30_000,
            lease_wait_ms: 120_000,
        }
    }
}

/// The outcome of planning: everything measured before any row is read.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    #[serde(skip)]
    pub table: TableMeta,
    pub spec: ResolvedSpec,
    pub inspection: Inspection,
    pub limits: GuardLimits,
    pub guards: Vec<GuardOutcome>,
    pub path: EnginePath,
    pub reason: String,
}

impl Plan {
    pub fn job(&self, catalog_uri: &str) -> EngineJob {
        EngineJob {
            spec: self.spec.clone(),
            table: self.table.clone(),
            files: self.inspection.files.clone(),
            limits: self.limits.clone(),
            catalog_uri: catalog_uri.to_string(),
        }
    }

    pub fn manifest(
        &self,
        version: u64,
        path: EnginePath,
        checksum: Checksum,
        tokens: &Tokens,
    ) -> VersionManifest {
        VersionManifest {
            api: self.spec.name().to_string(),
            version,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            key_types: self
                .spec
                .keys
                .iter()
                .map(|k| KeyType::of(&k.data_type))
                .collect(),
            key_names: self.spec.keys.iter().map(|k| k.name.clone()).collect(),
            checksum,
            path: path.to_string(),
            token_hashes: tokens.hashes.clone(),
            protected: tokens.protected,
        }
    }
}

/// Who may read the API, pushed to edges with each version.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub protected: bool,
    pub hashes: Vec<String>,
}

/// Receives a run's entries; `reset` forgets them when a trip re-routes the run.
#[async_trait]
pub trait EntrySink: Send {
    async fn accept(&mut self, entries: &[Entry]) -> Result<()>;
    async fn reset(&mut self) -> Result<()>;
}

/// Progress of a publish, as it happens, for bars, logs and the dashboard's event stream.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    StepStarted {
        step: Step,
    },
    StepFinished {
        step: Step,
        ms: u64,
    },
    Guards {
        guards: Vec<GuardOutcome>,
        path: EnginePath,
        reason: String,
    },
    Rerouted {
        from: EnginePath,
        to: EnginePath,
        reason: String,
    },
    Rows {
        rows_in: u64,
        keys_out: u64,
        bytes_out: u64,
    },
    EdgeSealed {
        edge: String,
        keys: u64,
    },
    Committed {
        version: u64,
    },
    Failed {
        step: Step,
        message: String,
    },
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

pub struct Publisher {
    pub catalog: Arc<dyn Catalog>,
    pub fasttrack: Arc<dyn Engine>,
    pub fallback: Option<Arc<dyn Engine>>,
    pub limits: GuardLimits,
    pub config: PublishConfig,
    pub snapshots: Option<Arc<SnapshotStore>>,
}

/// What one engine run produced.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub path: Option<EnginePath>,
    pub attempts: Vec<Attempt>,
    pub rows_in: u64,
    pub checksum: Checksum,
    pub output_guards: Vec<GuardOutcome>,
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

impl Publisher {
    /// Reads metadata, validates, lists files and measures every pre-run guard.
    pub async fn plan(&self, spec: &ApiSpec, route: Route) -> Result<Plan> {
        let table_name = spec.table_name().map_err(|e| Error::SpecInvalid {
            api: spec.name.clone(),
            problems: vec![spec::SpecProblem {
                field: "table".into(),
                message: e.to_string(),
            }],
        })?;
        let table = self.catalog.table(&table_name).await?;
        let resolved = spec::validate(spec, &table)?;
        let limits = self.limits.with_overrides(&spec.limits);
        let inspection = inspect(&table, &resolved).await?;
        let mut guards = guards::evaluate(&table, &resolved, &inspection, &limits);
        guards.extend(guards::runtime_guards(&limits));
        let tripped = guards.iter().find(|g| g.tripped);
        let (path, reason) = match (route, tripped) {
            (Route::Fasttrack, _) => (
                EnginePath::Fasttrack,
                "fast track forced (--path fasttrack)".to_string(),
            ),
            (Route::Fallback, _) => (
                EnginePath::Fallback,
                "fallback forced (--path fallback)".to_string(),
            ),
            (Route::Auto, Some(g)) => (
                EnginePath::Fallback,
                format!(
                    "guard {} tripped: {} > {} ({})",
                    g.name, g.measured, g.limit, g.detail
                ),
            ),
            (Route::Auto, None) => (
                EnginePath::Fasttrack,
                "all guards within limits".to_string(),
            ),
        };
        if path == EnginePath::Fasttrack && table.format != StorageFormat::Parquet {
            return Err(Error::Engine {
                engine: "fasttrack".into(),
                message: format!(
                    "{} is stored as {}, which only the fallback reads",
                    table.name,
                    table.format.label()
                ),
            });
        }
        Ok(Plan {
            table,
            spec: resolved,
            inspection,
            limits,
            guards,
            path,
            reason,
        })
    }

    fn engine(&self, path: EnginePath) -> Result<&Arc<dyn Engine>> {
        match path {
            EnginePath::Fasttrack => Ok(&self.fasttrack),
            EnginePath::Fallback => self
                .fallback
                .as_ref()
                .ok_or_else(|| Error::Config("no fallback engine is configured".into())),
        }
    }

    /// Runs the plan's engine into `sink`; a memory or output trip on the fast track (in auto
    /// mode) resets the sink and re-runs on the fallback.
    pub async fn run(
        &self,
        plan: &Plan,
        route: Route,
        sink: &mut dyn EntrySink,
        progress: &ProgressFn,
    ) -> Result<RunStats> {
        let mut stats = RunStats::default();
        let mut path = plan.path;
        let read_columns: Vec<(String, arrow::datatypes::DataType)> = plan
            .spec
            .columns
            .iter()
            .filter(|c| !plan.table.is_partition_key(c))
            .filter_map(|c| Some((c.clone(), plan.table.column(c)?.data_type.clone()?)))
            .collect();
        loop {
            files::verify_files(&plan.inspection.files, &read_columns).await?;
            let started = Instant::now();
            let outcome = self.run_once(plan, path, sink, progress).await;
            let (rows_in, peak, result) = outcome;
            let mut attempt = Attempt {
                path: path.to_string(),
                ms: ms(started),
                rows_in,
                peak_memory_bytes: peak,
                abandoned: None,
            };
            match result {
                Ok((checksum, output_guards)) => {
                    stats.attempts.push(attempt);
                    stats.path = Some(path);
                    stats.rows_in = rows_in;
                    stats.checksum = checksum;
                    stats.output_guards = output_guards;
                    return Ok(stats);
                }
                Err(e) => {
                    let reroute = route == Route::Auto
                        && path == EnginePath::Fasttrack
                        && self.fallback.is_some();
                    match e.tripped_guard() {
                        Some(g) if reroute => {
                            let reason = format!(
                                "guard {} tripped during the run: {} > {}",
                                g.name, g.measured, g.limit
                            );
                            attempt.abandoned = Some(reason.clone());
                            stats.attempts.push(attempt);
                            stats.output_guards.push(g.clone());
                            progress(Progress::Rerouted {
                                from: path,
                                to: EnginePath::Fallback,
                                reason,
                            });
                            sink.reset().await?;
                            path = EnginePath::Fallback;
                        }
                        _ => {
                            attempt.abandoned = Some(e.to_string());
                            stats.attempts.push(attempt);
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    async fn run_once(
        &self,
        plan: &Plan,
        path: EnginePath,
        sink: &mut dyn EntrySink,
        progress: &ProgressFn,
    ) -> (u64, u64, Result<(Checksum, Vec<GuardOutcome>)>) {
        let engine = match self.engine(path) {
            Ok(e) => e,
            Err(e) => return (0, 0, Err(e)),
        };
        let job = plan.job(self.catalog.uri());
        let run = match engine.execute(&job).await {
            Ok(run) => run,
            Err(e) => return (0, 0, Err(e)),
        };
        let mut batches = run.batches;
        let mut encoder = EntryEncoder::new(&plan.spec);
        let mut checksum = Checksum::default();
        let mut pending: Vec<Entry> = Vec::with_capacity(self.config.push_batch);
        let limits = &plan.limits;
        let mut last_report = Instant::now();
        // Entries of `pending` already added to the checksum.
        let mut counted = 0;
        let result: Result<()> = async {
            loop {
                let done = match batches.next().await {
                    Some(batch) => {
                        encoder.push(&batch?, &mut pending)?;
                        false
                    }
                    None => {
                        encoder.finish(&mut pending)?;
                        true
                    }
                };
                for e in &pending[counted..] {
                    checksum.add(&e.key, &e.value);
                }
                counted = pending.len();
                if checksum.keys > limits.max_output_keys {
                    return Err(Error::GuardTripped(GuardOutcome::new(
                        OUTPUT_KEYS,
                        checksum.keys,
                        limits.max_output_keys,
                        "keys produced",
                    )));
                }
                if checksum.bytes > limits.max_output_bytes {
                    return Err(Error::GuardTripped(GuardOutcome::new(
                        OUTPUT_BYTES,
                        checksum.bytes,
                        limits.max_output_bytes,
                        "bytes of encoded values",
                    )));
                }
                if done || pending.len() >= self.config.push_batch {
                    sink.accept(&pending).await?;
                    pending.clear();
                    counted = 0;
                }
                if done || last_report.elapsed() > Duration::from_millis(250) {
                    last_report = Instant::now();
                    progress(Progress::Rows {
                        rows_in: run.progress.rows_in(),
                        keys_out: checksum.keys,
                        bytes_out: checksum.bytes,
                    });
                }
                if done {
                    return Ok(());
                }
            }
        }
        .await;
        // Dropping the stream cancels the engine and frees its memory before any re-route.
        drop(batches);
        let rows = run.progress.rows_in();
        let peak = run.progress.peak_memory();
        let output_guards = vec![
            GuardOutcome::new(
                guards::MEMORY_POOL,
                peak,
                limits.memory_pool_bytes,
                "peak bytes reserved in the engine's pool",
            ),
            GuardOutcome::new(
                OUTPUT_KEYS,
                checksum.keys,
                limits.max_output_keys,
                "keys produced",
            ),
            GuardOutcome::new(
                OUTPUT_BYTES,
                checksum.bytes,
                limits.max_output_bytes,
                "bytes of encoded values",
            ),
        ];
        (rows, peak, result.map(|()| (checksum, output_guards)))
    }

    /// Publishes one API to every edge, atomically: see the module doc.
    pub async fn publish(
        &self,
        spec: &ApiSpec,
        route: Route,
        edges: &[Arc<dyn EdgeSink>],
        tokens: &Tokens,
        progress: ProgressFn,
    ) -> PublishReport {
        let started = Instant::now();
        let mut report = PublishReport::new(&spec.name, &spec.table);
        let holder = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        );
        let mut state = PushState {
            edges: edges.to_vec(),
            version: None,
            leased: Vec::new(),
        };
        let result = self
            .publish_steps(
                spec,
                route,
                &mut state,
                tokens,
                &holder,
                &progress,
                &mut report,
            )
            .await;
        if let Err((step, edge, e)) = result {
            progress(Progress::Failed {
                step,
                message: e.to_string(),
            });
            if let Some(v) = state.version.filter(|_| !report.committed) {
                // Nothing was switched: drop the staged keys everywhere, best effort.
                join_all(state.edges.iter().map(|edge| edge.discard(&spec.name, v))).await;
            }
            report.error = Some(PublishError {
                step,
                message: e.to_string(),
                edge,
                transient: e.is_transient(),
            });
        }
        join_all(
            state
                .leased
                .iter()
                .map(|edge| edge.release_lease(&spec.name, &holder)),
        )
        .await;
        report.total_ms = ms(started);
        report
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish_steps(
        &self,
        spec: &ApiSpec,
        route: Route,
        state: &mut PushState,
        tokens: &Tokens,
        holder: &str,
        progress: &ProgressFn,
        report: &mut PublishReport,
    ) -> std::result::Result<(), (Step, Option<String>, Error)> {
        let fail = |step: Step| move |e: Error| (step, None, e);
        if state.edges.is_empty() {
            return Err((
                Step::Plan,
                None,
                Error::Config("no edge to publish to (give at least one --edge)".into()),
            ));
        }

        let t = Instant::now();
        progress(Progress::StepStarted { step: Step::Plan });
        let plan = self.plan(spec, route).await.map_err(fail(Step::Plan))?;
        report.timings_ms.insert("plan".into(), ms(t));
        report.guards = plan.guards.clone();
        report.route_reason = plan.reason.clone();
        progress(Progress::Guards {
            guards: plan.guards.clone(),
            path: plan.path,
            reason: plan.reason.clone(),
        });

        // One publish per API at a time, across CLIs and dashboards: a lease on every edge.
        let t = Instant::now();
        let deadline = Instant::now() + Duration::from_millis(self.config.lease_wait_ms);
        for edge in &state.edges {
            loop {
                let got = edge
                    .acquire_lease(&spec.name, holder, self.config.lease_ttl_ms)
                    .await
                    .map_err(|e| (Step::Push, Some(edge.address().to_string()), e))?;
                if got {
                    state.leased.push(Arc::clone(edge));
                    break;
                }
                if Instant::now() > deadline {
                    return Err((
                        Step::Push,
                        Some(edge.address().to_string()),
                        Error::Edge {
                            edge: edge.address().into(),
                            step: "lease".into(),
                            message: format!(
                                "another publish of `{}` held the lease for over {} ms",
                                spec.name, self.config.lease_wait_ms
                            ),
                        },
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let _renewer = LeaseRenewer::start(
            state.leased.clone(),
            spec.name.clone(),
            holder.to_string(),
            self.config.lease_ttl_ms,
        );

        let versions = join_all(state.edges.iter().map(|e| e.versions(&spec.name))).await;
        let mut highest = 0;
        for (edge, v) in state.edges.iter().zip(versions) {
            let v = v.map_err(|e| (Step::Push, Some(edge.address().to_string()), e))?;
            highest = highest.max(v.highest).max(v.serving.unwrap_or(0));
            if report.previous_version.is_none() {
                report.previous_version = v.serving;
            }
        }
        let version = highest + 1;
        report.version = Some(version);
        let staging = plan.manifest(version, plan.path, Checksum::default(), tokens);
        for edge in &state.edges {
            edge.begin(&staging)
                .await
                .map_err(|e| (Step::Push, Some(edge.address().to_string()), e))?;
        }
        state.version = Some(version);

        progress(Progress::StepStarted { step: Step::Engine });
        let t_engine = Instant::now();
        let snapshot = match &self.snapshots {
            Some(store) => Some(store.writer(&staging).map_err(fail(Step::Snapshot))?),
            None => None,
        };
        let mut sink = EdgeFanout {
            edges: &state.edges,
            api: &spec.name,
            version,
            snapshots: self.snapshots.as_deref(),
            snapshot,
            staging: &staging,
            push_ms: 0,
            failed_edge: None,
        };
        let run = self.run(&plan, route, &mut sink, progress).await;
        let push_ms = sink.push_ms;
        let failed_edge = sink.failed_edge.take();
        let snapshot = sink.snapshot.take();
        let run = run.map_err(|e| {
            let step = if failed_edge.is_some() {
                Step::Push
            } else if matches!(e, Error::Snapshot { .. }) {
                Step::Snapshot
            } else {
                Step::Engine
            };
            (step, failed_edge.clone(), e)
        })?;
        report
            .timings_ms
            .insert("engine_and_push".into(), ms(t_engine));
        report.timings_ms.insert("push".into(), push_ms);
        report
            .timings_ms
            .insert("lease_and_stage".into(), ms(t).saturating_sub(ms(t_engine)));
        report.attempts = run.attempts.clone();
        report.path = run.path.map(|p| p.to_string());
        report.rows_in = run.rows_in;
        report.keys_out = run.checksum.keys;
        report.bytes_out = run.checksum.bytes;
        report.checksum = Some(run.checksum.hex());
        for g in &run.output_guards {
            if let Some(slot) = report.guards.iter_mut().find(|x| x.name == g.name) {
                *slot = g.clone();
            }
        }
        progress(Progress::StepFinished {
            step: Step::Engine,
            ms: ms(t_engine),
        });

        let path = run.path.unwrap_or(plan.path);
        let manifest = plan.manifest(version, path, run.checksum, tokens);
        let t = Instant::now();
        progress(Progress::StepStarted { step: Step::Verify });
        let sealed = join_all(state.edges.iter().map(|e| e.seal(&manifest))).await;
        for (edge, s) in state.edges.iter().zip(sealed) {
            let s = s.map_err(|e| (Step::Verify, Some(edge.address().to_string()), e))?;
            progress(Progress::EdgeSealed {
                edge: edge.address().to_string(),
                keys: s.keys,
            });
            report.edges.push(EdgeResult {
                edge: edge.address().to_string(),
                keys: s.keys,
                bytes: s.bytes,
                checksum: s.hex(),
                push_ms,
                committed: false,
                error: None,
            });
        }
        report.timings_ms.insert("verify".into(), ms(t));

        if let Some(w) = snapshot {
            let t = Instant::now();
            w.finish(&manifest).map_err(fail(Step::Snapshot))?;
            report.timings_ms.insert("snapshot".into(), ms(t));
        }

        let t = Instant::now();
        progress(Progress::StepStarted { step: Step::Commit });
        let mut committed: Vec<usize> = Vec::new();
        for (i, edge) in state.edges.iter().enumerate() {
            if let Err(e) = edge.commit(&spec.name, version).await {
                // Switch the edges that already moved back to what they served before.
                if let Some(previous) = report.previous_version {
                    for j in &committed {
                        let _ = state.edges[*j].commit(&spec.name, previous).await;
                    }
                }
                return Err((Step::Commit, Some(edge.address().to_string()), e));
            }
            committed.push(i);
            report.edges[i].committed = true;
        }
        report.committed = true;
        report.timings_ms.insert("commit".into(), ms(t));
        progress(Progress::Committed { version });

        let t = Instant::now();
        for edge in &state.edges {
            if let Err(e) = edge.gc(&spec.name, self.config.keep_versions).await {
                tracing::warn!(edge = edge.address(), error = %e, "garbage collection failed; old versions stay until the next publish");
            }
        }
        if let Some(store) = &self.snapshots
            && let Err(e) = store.prune(&spec.name, self.config.keep_versions)
        {
            tracing::warn!(error = %e, "pruning snapshots failed");
        }
        report.timings_ms.insert("gc".into(), ms(t));
        Ok(())
    }
}

struct PushState {
    edges: Vec<Arc<dyn EdgeSink>>,
    version: Option<u64>,
    leased: Vec<Arc<dyn EdgeSink>>,
}

/// Writes each batch of entries to every edge at once, and to the snapshot.
struct EdgeFanout<'a> {
    edges: &'a [Arc<dyn EdgeSink>],
    api: &'a str,
    version: u64,
    snapshots: Option<&'a SnapshotStore>,
    snapshot: Option<crate::snapshot::SnapshotWriter>,
    staging: &'a VersionManifest,
    push_ms: u64,
    failed_edge: Option<String>,
}

#[async_trait]
impl EntrySink for EdgeFanout<'_> {
    async fn accept(&mut self, entries: &[Entry]) -> Result<()> {
        let t = Instant::now();
        if let Some(s) = &mut self.snapshot {
            s.write(entries)?;
        }
        let results = join_all(
            self.edges
                .iter()
                .map(|e| e.write(self.api, self.version, entries)),
        )
        .await;
        self.push_ms += ms(t);
        for (edge, r) in self.edges.iter().zip(results) {
            if let Err(e) = r {
                self.failed_edge = Some(edge.address().to_string());
                return Err(e);
            }
        }
        Ok(())
    }

    async fn reset(&mut self) -> Result<()> {
        for edge in self.edges {
            edge.discard(self.api, self.version).await?;
            edge.begin(self.staging).await?;
        }
        // Dropping the old writer removes its temporary file; the new attempt starts afresh.
        self.snapshot = None;
        if let Some(store) = self.snapshots {
            self.snapshot = Some(store.writer(self.staging)?);
        }
        Ok(())
    }
}

/// Renews the publish lease on every edge while the publish runs; stops when dropped.
struct LeaseRenewer(tokio::task::JoinHandle<()>);

impl LeaseRenewer {
    fn start(edges: Vec<Arc<dyn EdgeSink>>, api: String, holder: String, ttl_ms: u64) -> Self {
        LeaseRenewer(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(ttl_ms / 3)).await;
                for e in &edges {
                    if let Err(err) = e.acquire_lease(&api, &holder, ttl_ms).await {
                        tracing::warn!(edge = e.address(), error = %err, "renewing the publish lease failed");
                    }
                }
            }
        }))
    }
}

impl Drop for LeaseRenewer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// Lists the files the spec touches (after partition pruning) and counts their rows: from
/// catalog statistics when they describe exactly the selected data, else from Parquet footers.
pub async fn inspect(table: &TableMeta, spec: &ResolvedSpec) -> Result<Inspection> {
    let (files, partitions_selected) =
        files::list_table(table, |values| spec.keeps_partition(table, values)).await?;
    let pruned = partitions_selected < table.partitions.len();
    let partition_rows: Option<u64> = table
        .partitions
        .iter()
        .filter(|p| spec.keeps_partition(table, &p.values))
        .map(|p| p.num_rows)
        .sum();
    let (rows, rows_source) = match (table.stats.num_rows, pruned, partition_rows) {
        (Some(n), false, _) => (n, RowSource::Statistics),
        (_, true, Some(n)) if !table.partitions.is_empty() => (n, RowSource::Statistics),
        _ if table.format == StorageFormat::Parquet => {
            (files::footer_rows(&files).await?, RowSource::ParquetFooters)
        }
        _ => (0, RowSource::Unknown),
    };
    Ok(Inspection {
        files,
        partitions_total: table.partitions.len(),
        partitions_selected,
        rows,
        rows_source,
    })
}
