//! The publish's data path: plan, guard, run (re-routing on a mid-run trip), push to every
//! edge, verify, snapshot: [`Publisher::stage`] leaves a sealed version beside the serving one
//! on every edge, and nothing of it is visible to readers. Every failure names its step (and
//! edge) and discards the staged version everywhere.
//!
//! Deciding what edges serve — the lease, the version number, the commit, convergence and
//! garbage collection — is not done here: the control plane (`dashboard_api::control`) owns it,
//! and calls [`Publisher::plan`] and [`Publisher::stage`] under its lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use tokio_util::task::AbortOnDropHandle;

use crate::canonical::{Checksum, Entry, EntryEncoder};
use crate::catalog::{Catalog, TableMeta};
use crate::engine::{BatchStream, Engine, EngineJob, EnginePath, EngineRun};
use crate::error::{Error, Result};
use crate::files;
use crate::guards::{self, GuardLimits, GuardOutcome, Inspection, RowSource, RunMeasures};
use crate::keypath::KeyType;
use crate::quality::{EntrySample, OutputProfile};
use crate::report::{Attempt, CompressionReport, EdgeResult, PublishError, PublishReport, Step};
use crate::sink::{EdgeSink, VersionManifest};
use crate::snapshot::SnapshotStore;
use crate::spec::{self, ApiSpec, ResolvedSpec};
use edge_contract::compression::{Compression, CompressionConfig, Encoder, Trainer};

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
    /// How long an operation's lease on an API outlives a crashed holder; renewed every third.
    pub lease_ttl_ms: u64,
    /// How long an operation waits for another one on the same API to finish.
    pub lease_wait_ms: u64,
    /// Quality gates every API has unless its spec says otherwise.
    pub gates: crate::quality::GateLimits,
    /// The lookup service in front of each edge (edge Redis URL → base URL), which canary
    /// commits probe.
    pub lookups: std::collections::BTreeMap<String, String>,
    /// Values stored zstd-compressed with a dictionary trained per version, when it pays.
    pub compression: CompressionConfig,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            keep_versions: 2,
            push_batch: 2000,
            lease_ttl_ms: 30_000,
            lease_wait_ms: 120_000,
            gates: Default::default(),
            lookups: Default::default(),
            compression: Default::default(),
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
    /// The data time of the files selected (see [`crate::freshness`]).
    pub data_time: Option<String>,
    /// The partition values `latest_partitions` chose, newest first (empty: not asked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latest_partitions: Vec<String>,
    /// What the version is computed from (see [`crate::fingerprint::source`]).
    pub fingerprint: String,
}

impl Plan {
    /// The non-partition columns the engine reads, with their types: what the listed files
    /// are checked for before a run.
    fn read_columns(&self) -> Vec<(String, arrow::datatypes::DataType)> {
        self.spec
            .columns
            .iter()
            .filter(|c| !self.table.is_partition_key(c))
            .filter_map(|c| Some((c.clone(), self.table.column(c)?.data_type.clone()?)))
            .collect()
    }

    pub fn job(&self, catalog_uri: &str) -> EngineJob {
        EngineJob {
            spec: self.spec.clone(),
            table: self.table.clone(),
            files: self.inspection.files.clone(),
            limits: self.limits.clone(),
            catalog_uri: catalog_uri.to_string(),
        }
    }

    pub fn manifest(&self, version: u64, path: EnginePath, checksum: Checksum) -> VersionManifest {
        VersionManifest {
            api: self.spec.name().to_string(),
            version,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            key_types: self
                .spec
                .keys
                .iter()
                .map(|k| key_type(&k.data_type))
                .collect(),
            key_names: self.spec.keys.iter().map(|k| k.name.clone()).collect(),
            checksum,
            path: path.to_string(),
            data_time: self.data_time.clone(),
            compression: None,
        }
    }
}

/// A failed step of a publish: which step, which edge (if one), and why.
#[derive(Debug, thiserror::Error)]
#[error("{step}{}: {source}", edge.as_deref().map(|e| format!(" (edge {e})")).unwrap_or_default())]
pub struct StepError {
    pub step: Step,
    pub edge: Option<String>,
    #[source]
    pub source: Error,
}

impl StepError {
    pub fn new(step: Step, source: Error) -> Self {
        StepError {
            step,
            edge: None,
            source,
        }
    }

    pub fn at_edge(step: Step, edge: &dyn EdgeSink, source: impl Into<Error>) -> Self {
        StepError {
            step,
            edge: Some(edge.address().to_string()),
            source: source.into(),
        }
    }

    /// The error as a publish report states it.
    pub fn to_report(&self) -> PublishError {
        PublishError {
            step: self.step,
            message: self.source.to_string(),
            edge: self.edge.clone(),
            transient: self.source.is_transient(),
        }
    }
}

/// Receives a run's entries; `reset` forgets them when a trip re-routes the run.
#[async_trait]
pub trait EntrySink: Send {
    async fn accept(&mut self, entries: Vec<Entry>) -> Result<()>;
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
    pub profile: OutputProfile,
    /// Entries kept for a canary's probes (none unless the spec asks for a canary).
    pub sample: Vec<Entry>,
}

/// What encoding a run's output measured.
struct Encoded {
    checksum: Checksum,
    output_guards: Vec<GuardOutcome>,
    profile: OutputProfile,
    sample: Vec<Entry>,
}

/// A version sealed on every edge: its manifest, and the entries sampled for a canary.
#[derive(Debug, Clone)]
pub struct Staged {
    pub manifest: VersionManifest,
    pub sample: Vec<Entry>,
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
        let (concrete, latest_partitions) = spec::with_latest_partitions(spec, &table, &resolved)?;
        let resolved = if latest_partitions.is_empty() {
            resolved
        } else {
            spec::validate(&concrete, &table)?
        };
        let limits = self.limits.with_overrides(&spec.limits);
        let inspection = inspect(&table, &resolved).await?;
        let mut guards = guards::evaluate(&table, &resolved, &inspection, &limits);
        guards.extend(guards::runtime_guards(&limits, RunMeasures::default()));
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
        if path == EnginePath::Fasttrack && !table.format.is_columnar() {
            return Err(Error::Engine {
                engine: "fasttrack".into(),
                message: format!(
                    "{} is stored as {}, which only the fallback reads",
                    table.name,
                    table.format.label()
                ),
                transient: false,
            });
        }
        let data_time = crate::freshness::data_time(&table, &inspection.files);
        let fingerprint = crate::fingerprint::source(&resolved, &table, &inspection.files);
        Ok(Plan {
            table,
            spec: resolved,
            data_time,
            latest_partitions,
            fingerprint,
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
        let read_columns = plan.read_columns();
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
                Ok(encoded) => {
                    stats.attempts.push(attempt);
                    stats.path = Some(path);
                    stats.rows_in = rows_in;
                    stats.checksum = encoded.checksum;
                    stats.output_guards = encoded.output_guards;
                    stats.profile = encoded.profile;
                    stats.sample = encoded.sample;
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

    /// Runs several plans on one path (no re-route), each into its sink, starting them together
    /// so that an engine may share its start-up (the Spark engine: one session for all). Stops
    /// at the first failure, naming its API; the runs after it are cancelled.
    pub async fn run_all(
        &self,
        plans: &[Plan],
        path: EnginePath,
        sinks: &mut [&mut dyn EntrySink],
        progress: &ProgressFn,
    ) -> Result<Vec<RunStats>> {
        assert_eq!(plans.len(), sinks.len(), "one sink per plan");
        for plan in plans {
            files::verify_files(&plan.inspection.files, &plan.read_columns()).await?;
        }
        let jobs: Vec<EngineJob> = plans.iter().map(|p| p.job(self.catalog.uri())).collect();
        let started = Instant::now();
        let runs = self.engine(path)?.execute_all(&jobs).await?;
        let mut all = Vec::with_capacity(plans.len());
        for ((plan, run), sink) in plans.iter().zip(runs).zip(sinks.iter_mut()) {
            let (rows_in, peak, result) = self.encode(plan, run, &mut **sink, progress).await;
            let Encoded {
                checksum,
                output_guards,
                profile,
                sample,
            } = result?;
            all.push(RunStats {
                path: Some(path),
                attempts: vec![Attempt {
                    path: path.to_string(),
                    ms: ms(started),
                    rows_in,
                    peak_memory_bytes: peak,
                    abandoned: None,
                }],
                rows_in,
                checksum,
                output_guards,
                profile,
                sample,
            });
        }
        Ok(all)
    }

    async fn run_once(
        &self,
        plan: &Plan,
        path: EnginePath,
        sink: &mut dyn EntrySink,
        progress: &ProgressFn,
    ) -> (u64, u64, Result<Encoded>) {
        let engine = match self.engine(path) {
            Ok(e) => e,
            Err(e) => return (0, 0, Err(e)),
        };
        let job = plan.job(self.catalog.uri());
        match engine.execute(&job).await {
            Ok(run) => self.encode(plan, run, sink, progress).await,
            Err(e) => (0, 0, Err(e)),
        }
    }

    /// Encodes a started run of the plan into `sink`, checking the output guards and profiling
    /// the output as it goes; returns the rows read, the engine's peak memory and what encoding
    /// measured.
    ///
    /// Each of the run's partitions is encoded by its own task, so on its own core; this task
    /// takes their entries as they come (no key is in two partitions, and nothing downstream
    /// depends on the order of entries: the checksum and the sample do not), and is the one
    /// writer to the sink.
    async fn encode(
        &self,
        plan: &Plan,
        run: EngineRun,
        sink: &mut dyn EntrySink,
        progress: &ProgressFn,
    ) -> (u64, u64, Result<Encoded>) {
        let EngineRun {
            partitions,
            progress: engine,
        } = run;
        let limits = &plan.limits;
        let (tx, mut entries) = tokio::sync::mpsc::channel(2 * partitions.len());
        let mut workers: Vec<AbortOnDropHandle<_>> = partitions
            .into_iter()
            .map(|batches| {
                let partition = PartitionEncoder {
                    encoder: EntryEncoder::new(&plan.spec).bounded(limits),
                    profile: OutputProfile::new(&plan.spec),
                    key_columns: plan.spec.keys.len(),
                    chunk: self.config.push_batch,
                };
                AbortOnDropHandle::new(tokio::spawn(partition.run(batches, tx.clone())))
            })
            .collect();
        drop(tx);

        let mut profile = OutputProfile::new(&plan.spec);
        let mut sample =
            EntrySample::new(plan.spec.spec.canary.as_ref().map_or(0, |c| c.sample_keys));
        let mut checksum = Checksum::default();
        let mut largest_entry = 0;
        let mut last_report = Instant::now();
        let rows = |checksum: &Checksum| Progress::Rows {
            rows_in: engine.rows_in(),
            keys_out: checksum.keys,
            bytes_out: checksum.bytes,
        };
        let result: Result<()> = async {
            // The channel closes when every partition is done.
            while let Some(chunk) = entries.recv().await {
                let chunk: Vec<Entry> = chunk?;
                for e in &chunk {
                    checksum.add(&e.key, &e.value);
                    sample.offer(&e.key, &e.value);
                }
                // Keys and bytes of all partitions together (each partition's encoder keeps
                // its own share under the byte limit).
                let so_far = RunMeasures {
                    keys: checksum.keys,
                    bytes: checksum.bytes,
                    ..RunMeasures::default()
                };
                if let Some(g) = guards::runtime_guards(limits, so_far)
                    .into_iter()
                    .find(|g| g.tripped)
                {
                    return Err(Error::GuardTripped(g));
                }
                sink.accept(chunk).await?;
                if last_report.elapsed() > Duration::from_millis(250) {
                    last_report = Instant::now();
                    progress(rows(&checksum));
                }
            }
            for worker in &mut workers {
                let done = worker.await.map_err(|e| Error::Engine {
                    engine: "encoder".into(),
                    message: format!("encoding a partition of the output failed: {e}"),
                    transient: false,
                })?;
                // A partition that failed sent its error before ending, and it was returned above.
                let Some((partition, largest)) = done else {
                    continue;
                };
                profile.merge(&partition);
                largest_entry = largest_entry.max(largest);
            }
            progress(rows(&checksum));
            Ok(())
        }
        .await;
        // Dropping the workers cancels the engine and frees its memory before any re-route.
        drop(workers);
        let rows_in = engine.rows_in();
        let peak = engine.peak_memory();
        let output_guards = guards::runtime_guards(
            limits,
            RunMeasures {
                peak_memory: peak,
                keys: checksum.keys,
                bytes: checksum.bytes,
                largest_entry,
            },
        );
        profile.keys = checksum.keys;
        (
            rows_in,
            peak,
            result.map(|()| Encoded {
                checksum,
                output_guards,
                profile,
                sample: sample.into_entries(),
            }),
        )
    }

    /// Stages `version` of the plan's API on every edge: begin, run the engine into all of them
    /// (and into the snapshot), seal each (count and checksum), finish the snapshot. Returns the
    /// sealed version's manifest (with the canary's sample of entries); on failure the staged
    /// version is discarded everywhere. Fills the report's engine, push and verify parts as it
    /// goes.
    pub async fn stage(
        &self,
        plan: &Plan,
        route: Route,
        edges: &[Arc<dyn EdgeSink>],
        version: u64,
        progress: &ProgressFn,
        report: &mut PublishReport,
    ) -> std::result::Result<Staged, StepError> {
        let staged = self
            .stage_steps(plan, route, edges, version, progress, report)
            .await;
        if staged.is_err() {
            let api = plan.spec.name();
            for (edge, r) in edges
                .iter()
                .zip(join_all(edges.iter().map(|e| e.discard(api, version))).await)
            {
                if let Err(e) = r {
                    tracing::warn!(edge = edge.address(), api, version, error = %e, "discarding a failed staging; GC collects it later");
                }
            }
        }
        staged
    }

    async fn stage_steps(
        &self,
        plan: &Plan,
        route: Route,
        edges: &[Arc<dyn EdgeSink>],
        version: u64,
        progress: &ProgressFn,
        report: &mut PublishReport,
    ) -> std::result::Result<Staged, StepError> {
        let t = Instant::now();
        let staging = plan.manifest(version, plan.path, Checksum::default());
        for edge in edges {
            edge.begin(&staging)
                .await
                .map_err(|e| StepError::at_edge(Step::Push, edge.as_ref(), e))?;
        }
        report.timings_ms.insert("stage".into(), ms(t));

        progress(Progress::StepStarted { step: Step::Engine });
        let t_engine = Instant::now();
        let snapshot = match &self.snapshots {
            Some(store) => Some(
                store
                    .writer(&staging)
                    .map_err(|e| StepError::new(Step::Snapshot, e))?,
            ),
            None => None,
        };
        let mut sink = EdgeFanout {
            edges,
            api: plan.spec.name(),
            version,
            snapshots: self.snapshots.as_deref(),
            snapshot,
            staging: &staging,
            push_ms: 0,
            failed_edge: None,
            compression: &self.config.compression,
            batch: self.config.push_batch,
            values: Values::Sampling(Vec::new(), 0),
            pending: Vec::new(),
            stored: Checksum::default(),
            raw_bytes: 0,
            stored_value_bytes: 0,
        };
        let mut run = self.run(plan, route, &mut sink, progress).await;
        if run.is_ok()
            && let Err(e) = sink.finish().await
        {
            run = Err(e);
        }
        let push_ms = sink.push_ms;
        let (stored, compression) = (sink.stored, sink.compression());
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
            StepError {
                step,
                edge: failed_edge.clone(),
                source: e,
            }
        })?;
        report
            .timings_ms
            .insert("engine_and_push".into(), ms(t_engine));
        report.timings_ms.insert("push".into(), push_ms);
        report.attempts = run.attempts.clone();
        report.path = run.path.map(|p| p.to_string());
        report.rows_in = run.rows_in;
        report.keys_out = run.checksum.keys;
        report.bytes_out = run.checksum.bytes;
        report.checksum = Some(run.checksum.hex());
        report.profile = Some(run.profile.clone());
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
        // Edges and the snapshot hold the stored bytes: the manifest's checksum is theirs.
        let mut manifest = plan.manifest(version, path, stored);
        report.compression = compression.as_ref().map(|c| CompressionReport {
            raw_bytes: c.raw_bytes,
            stored_bytes: c.stored_bytes,
        });
        manifest.compression = compression;
        let t = Instant::now();
        progress(Progress::StepStarted { step: Step::Verify });
        let sealed = join_all(edges.iter().map(|e| e.seal(&manifest))).await;
        for (edge, s) in edges.iter().zip(sealed) {
            let s = s.map_err(|e| StepError::at_edge(Step::Verify, edge.as_ref(), e))?;
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
            w.finish(&manifest)
                .map_err(|e| StepError::new(Step::Snapshot, e))?;
            report.timings_ms.insert("snapshot".into(), ms(t));
        }
        Ok(Staged {
            manifest,
            sample: run.sample,
        })
    }
}

/// Encodes one partition of a run into chunks of entries for [`Publisher::encode`].
struct PartitionEncoder {
    encoder: EntryEncoder,
    profile: OutputProfile,
    key_columns: usize,
    /// Entries per chunk sent.
    chunk: usize,
}

type Chunks = tokio::sync::mpsc::Sender<Result<Vec<Entry>>>;

impl PartitionEncoder {
    /// Sends the partition's entries in chunks, or its error, and returns its profile and
    /// largest entry when it completes (`None` after an error, or when nobody is listening).
    async fn run(mut self, mut batches: BatchStream, out: Chunks) -> Option<(OutputProfile, u64)> {
        let mut pending = Vec::with_capacity(self.chunk);
        // Whether the partition was read to its end (not abandoned by the receiver).
        let encoded: Result<bool> = async {
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                self.profile.observe(&batch, self.key_columns)?;
                self.encoder.push(&batch, &mut pending)?;
                if pending.len() >= self.chunk {
                    let full = std::mem::replace(&mut pending, Vec::with_capacity(self.chunk));
                    if out.send(Ok(full)).await.is_err() {
                        return Ok(false);
                    }
                }
            }
            self.encoder.finish(&mut pending)?;
            Ok(true)
        }
        .await;
        // The engine's work for this partition is over: free it before waiting on the sink.
        drop(batches);
        let sent = match encoded {
            Ok(false) => false,
            Ok(true) if pending.is_empty() => true,
            Ok(true) => out.send(Ok(pending)).await.is_ok(),
            Err(e) => {
                let _ = out.send(Err(e)).await;
                false
            }
        };
        sent.then(|| (self.profile, self.encoder.largest_entry()))
    }
}

/// Writes each batch of entries to every edge at once, and to the snapshot, compressing the
/// values when a dictionary trained on the version's first values pays (see
/// [`edge_contract::compression`]).
struct EdgeFanout<'a> {
    edges: &'a [Arc<dyn EdgeSink>],
    api: &'a str,
    version: u64,
    snapshots: Option<&'a SnapshotStore>,
    snapshot: Option<crate::snapshot::SnapshotWriter>,
    staging: &'a VersionManifest,
    push_ms: u64,
    failed_edge: Option<String>,
    compression: &'a CompressionConfig,
    /// Entries per write, for the buffered sample.
    batch: usize,
    values: Values,
    /// The last batch, as stored, not yet written (see [`EdgeFanout::forward`]).
    pending: Vec<Entry>,
    /// Of the entries as stored (compressed or not).
    stored: Checksum,
    /// Value bytes before compression, and as stored.
    raw_bytes: u64,
    stored_value_bytes: u64,
}

/// Where the fanout is with compression.
enum Values {
    /// Holding the first entries (and their value bytes) until the sample is complete.
    Sampling(Vec<Entry>, usize),
    Compressed(Arc<Encoder>),
    Raw,
}

impl EdgeFanout<'_> {
    /// Decides on compression from the buffered sample, then writes the sample.
    async fn decide(&mut self) -> Result<()> {
        let buffered = match &mut self.values {
            Values::Sampling(buffered, _) => std::mem::take(buffered),
            _ => return Ok(()),
        };
        self.values = Values::Raw;
        let sample: Vec<&[u8]> = buffered.iter().map(|e| e.value.as_slice()).collect();
        let lanes = std::thread::available_parallelism().map_or(1, |n| n.get());
        let trained = (Trainer {
            config: self.compression,
        })
        .train(&sample)
        .and_then(|encoder| {
            encoder
                .with_lanes(lanes, self.compression.level)
                .map_err(|e| format!("loading the dictionary: {e}"))
        });
        match trained {
            Ok(encoder) => {
                tracing::info!(
                    api = self.api,
                    version = self.version,
                    sample = sample.len(),
                    "values stored compressed with a trained dictionary"
                );
                self.values = Values::Compressed(Arc::new(encoder));
            }
            Err(why) => {
                tracing::info!(
                    api = self.api,
                    version = self.version,
                    sample = sample.len(),
                    why,
                    "values stored as they are"
                );
            }
        }
        let mut buffered = buffered.into_iter();
        loop {
            let chunk: Vec<Entry> = buffered.by_ref().take(self.batch.max(1)).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            self.forward(chunk).await?;
        }
    }

    /// Compresses `entries` while the batch before them is written, so that neither the
    /// compressing threads nor the edges wait for the other; the batch stays pending until
    /// the next one (or [`EdgeFanout::finish`]).
    async fn forward(&mut self, entries: Vec<Entry>) -> Result<()> {
        self.raw_bytes += entries.iter().map(|e| e.value.len() as u64).sum::<u64>();
        let encoder = match &self.values {
            Values::Compressed(encoder) => Some(Arc::clone(encoder)),
            _ => None,
        };
        let compress = async move {
            match encoder {
                Some(encoder) => compress_values(&encoder, entries).await,
                None => Ok(entries),
            }
        };
        let previous = std::mem::take(&mut self.pending);
        let (compressed, written) = futures::join!(compress, self.write(previous));
        written?;
        self.pending = compressed?;
        Ok(())
    }

    /// Writes entries as they are stored: to the snapshot and to every edge.
    async fn write(&mut self, stored: Vec<Entry>) -> Result<()> {
        if stored.is_empty() {
            return Ok(());
        }
        for e in &stored {
            self.stored.add(&e.key, &e.value);
            self.stored_value_bytes += e.value.len() as u64;
        }
        let t = Instant::now();
        if let Some(s) = &mut self.snapshot {
            s.write(&stored)?;
        }
        let results = join_all(
            self.edges
                .iter()
                .map(|e| e.write(self.api, self.version, &stored)),
        )
        .await;
        self.push_ms += ms(t);
        for (edge, r) in self.edges.iter().zip(results) {
            if let Err(e) = r {
                self.failed_edge = Some(edge.address().to_string());
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Writes what is still buffered (a version smaller than the sample) or pending.
    async fn finish(&mut self) -> Result<()> {
        self.decide().await?;
        let pending = std::mem::take(&mut self.pending);
        self.write(pending).await
    }

    fn compression(&self) -> Option<Compression> {
        match &self.values {
            Values::Compressed(encoder) => Some(Compression {
                codec: edge_contract::compression::CODEC.into(),
                dictionary: hex::encode(encoder.dictionary()),
                raw_bytes: self.raw_bytes,
                stored_bytes: self.stored_value_bytes,
            }),
            _ => None,
        }
    }
}

/// Below this many entries a batch is compressed where it is, not handed to other threads.
const ENTRIES_PER_LANE: usize = 256;

/// Compresses the values of `entries` on as many blocking threads as the encoder has lanes,
/// each lane a contiguous part, order kept. On the publishing task alone, compression was what
/// the engine's threads waited for (bench/history.md).
async fn compress_values(encoder: &Arc<Encoder>, mut entries: Vec<Entry>) -> Result<Vec<Entry>> {
    let compress = |encoder: &Encoder, lane: usize, part: &mut [Entry]| {
        part.iter_mut().try_for_each(|e| {
            e.value = encoder.compress(lane, &e.value)?;
            Ok(())
        })
    };
    let lanes = encoder.lanes().min(entries.len() / ENTRIES_PER_LANE);
    if lanes <= 1 {
        compress(encoder, 0, &mut entries).map_err(|e| Error::io("compressing values", e))?;
        return Ok(entries);
    }
    let per_lane = entries.len().div_ceil(lanes);
    let mut parts = Vec::with_capacity(lanes);
    while entries.len() > per_lane {
        parts.push(entries.split_off(entries.len() - per_lane));
    }
    parts.push(entries);
    parts.reverse();
    let compressed = join_all(parts.into_iter().enumerate().map(|(lane, mut part)| {
        let encoder = Arc::clone(encoder);
        tokio::task::spawn_blocking(move || {
            compress(&encoder, lane, &mut part)?;
            Ok::<_, std::io::Error>(part)
        })
    }))
    .await;
    let mut entries = Vec::new();
    for part in compressed {
        let part = part
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|part| part)
            .map_err(|e| Error::io("compressing values", e))?;
        entries.extend(part);
    }
    Ok(entries)
}

#[async_trait]
impl EntrySink for EdgeFanout<'_> {
    async fn accept(&mut self, entries: Vec<Entry>) -> Result<()> {
        if let Values::Sampling(buffered, bytes) = &mut self.values {
            *bytes += entries.iter().map(|e| e.value.len()).sum::<usize>();
            buffered.extend(entries);
            if *bytes >= self.compression.sample_bytes || !self.compression.enabled {
                self.decide().await?;
            }
            return Ok(());
        }
        self.forward(entries).await
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
        self.values = Values::Sampling(Vec::new(), 0);
        self.pending = Vec::new();
        self.stored = Checksum::default();
        self.raw_bytes = 0;
        self.stored_value_bytes = 0;
        Ok(())
    }
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
        _ if table.format.is_columnar() => (files::footer_rows(&files).await?, RowSource::Footers),
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

/// How lookups will read a key column of this Arrow type from a URL segment.
fn key_type(t: &arrow::datatypes::DataType) -> KeyType {
    use arrow::datatypes::DataType::*;
    match t {
        t if t.is_integer() => KeyType::Int,
        t if t.is_floating() => KeyType::Float,
        Boolean => KeyType::Bool,
        Decimal128(_, s) => KeyType::Decimal { scale: *s },
        Date32 => KeyType::Date,
        Timestamp(..) => KeyType::Timestamp,
        _ => KeyType::Str,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_contract::compression::{Compression, Decoder};

    /// Enough entries for every lane, each value told apart by its number: the parts come back
    /// in order, and every value decompresses to itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn values_compressed_on_several_lanes_keep_their_entries_and_order() {
        let config = CompressionConfig::default();
        let entries: Vec<Entry> = (0..3001)
            .map(|i| Entry {
                key: format!("[{i}]").into_bytes(),
                value: format!(
                    r#"[{{"ts":"2026-11-0{}T10:{:02}:00Z","action":"{}","item_id":{i}}}]"#,
                    i % 9 + 1,
                    i % 60,
                    ["view", "click", "purchase"][i % 3],
                )
                .into_bytes(),
            })
            .collect();
        let sample: Vec<&[u8]> = entries.iter().map(|e| e.value.as_slice()).collect();
        let encoder = Trainer { config: &config }
            .train(&sample)
            .unwrap()
            .with_lanes(3, config.level)
            .unwrap();
        let decoder = Decoder::new(&Compression {
            codec: edge_contract::compression::CODEC.into(),
            dictionary: hex::encode(encoder.dictionary()),
            raw_bytes: 0,
            stored_bytes: 0,
        })
        .unwrap();
        let compressed = compress_values(&Arc::new(encoder), entries.clone())
            .await
            .unwrap();
        assert_eq!(compressed.len(), entries.len());
        for (stored, original) in compressed.iter().zip(&entries) {
            assert_eq!(stored.key, original.key);
            assert_ne!(stored.value, original.value);
            assert_eq!(decoder.decompress(&stored.value).unwrap(), original.value);
        }
    }
}
