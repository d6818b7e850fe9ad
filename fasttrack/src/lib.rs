//! The fast track: computes an API in memory with DataFusion, in seconds, inside a bounded pool.
//!
//! The plan is built with the DataFrame API from the [`ResolvedSpec`]: validated identifiers and
//! typed literals, never SQL text. It reads exactly the files the publisher listed (partition
//! pruning already applied), projects only the columns the spec uses, and honours the engine
//! output contract of [`publisher::engine`]: keys, then outputs, clustered by key and ordered
//! within it, nulls last.
//!
//! Memory is DataFusion's own pool, with spilling disabled: when the pool is exhausted the run
//! fails fast with a `memory_pool` guard trip (and frees everything by dropping the stream), so
//! the publisher can re-route to the fallback instead of the process meeting the OOM killer.

mod orc;
mod plan;
mod top_n;
mod top_rows;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, Partitioning, execute_stream,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use publisher::Error;
use publisher::engine::{BatchStream, Engine, EngineJob, EnginePath, EngineProgress, EngineRun};
use publisher::guards::{GuardOutcome, MEMORY_POOL};
use tokio_util::task::AbortOnDropHandle;

pub use plan::{Query, build_query};

/// Settings of the in-memory engine that are not guard limits.
#[derive(Debug, Clone)]
pub struct FastTrackConfig {
    /// Threads DataFusion partitions work over; defaults to the number of cores.
    pub target_partitions: usize,
    /// Rows per batch. 32 k rather than DataFusion's 8 k: a sort of raw rows (the per-key
    /// top N of `recent_activity`) merges four times fewer sorted runs, 1.12x faster at 1 M rows
    /// and ~1.09x at 10 M (bench/history.md), the other sample specs unchanged.
    pub batch_size: usize,
    /// A partition's rows buffered for a sort below this many bytes are sorted in one piece
    /// rather than batch by batch and then merged (DataFusion's default is 1 MB): 1.17x on the
    /// same sort at 1 M rows. Bounded, since the piece is a copy.
    pub sort_in_place_bytes: usize,
}

impl Default for FastTrackConfig {
    fn default() -> Self {
        FastTrackConfig {
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            batch_size: 32 << 10,
            sort_in_place_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct FastTrack {
    config: FastTrackConfig,
}

impl FastTrack {
    pub fn new(config: FastTrackConfig) -> Self {
        FastTrack { config }
    }

    /// A session whose pool is the job's memory limit and which cannot spill to disk.
    fn session(&self, job: &EngineJob) -> Result<(SessionContext, Arc<dyn MemoryPool>), Error> {
        let pool_bytes = usize::try_from(job.limits.memory_pool_bytes).unwrap_or(usize::MAX);
        let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
            GreedyMemoryPool::new(pool_bytes),
            5.try_into().expect("non-zero"),
        ));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::clone(&pool))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(|e| engine_error(&job.spec.table.to_string(), e))?;
        let config = SessionConfig::new()
            .with_target_partitions(self.config.target_partitions)
            .with_batch_size(self.config.batch_size)
            .with_information_schema(false)
            .set_usize(
                "datafusion.execution.sort_in_place_threshold_bytes",
                self.config.sort_in_place_bytes,
            )
            // Statistics serve joins and answers from metadata, neither of which a spec's plan
            // has; collecting them read every file's footer while planning (6-7 ms of a 50 ms
            // `run top_products` at 1 M rows; 1.5-2 ms without).
            .set_bool("datafusion.execution.collect_statistics", false)
            .with_extension(Arc::new(orc::ScannedRows::default()));
        Ok((SessionContext::new_with_config_rt(config, runtime), pool))
    }

    async fn physical_plan(
        &self,
        job: &EngineJob,
    ) -> Result<(SessionContext, Arc<dyn MemoryPool>, Arc<dyn ExecutionPlan>), Error> {
        let (ctx, pool) = self.session(job)?;
        let plan = build_query(&ctx, job)
            .await?
            .physical_plan()
            .await
            .map_err(|e| classify(e, job, 0))?;
        Ok((ctx, pool, plan))
    }
}

#[async_trait]
impl Engine for FastTrack {
    fn path(&self) -> EnginePath {
        EnginePath::Fasttrack
    }

    async fn explain(&self, job: &EngineJob) -> Result<String, Error> {
        let (ctx, _) = self.session(job)?;
        let query = build_query(&ctx, job).await?;
        let logical = query.dataframe.logical_plan().display_indent().to_string();
        let physical = query
            .physical_plan()
            .await
            .map_err(|e| classify(e, job, 0))?;
        let physical = datafusion::physical_plan::displayable(physical.as_ref())
            .indent(false)
            .to_string();
        Ok(format!(
            "logical plan:\n{logical}\nphysical plan:\n{physical}"
        ))
    }

    async fn execute(&self, job: &EngineJob) -> Result<EngineRun, Error> {
        let (ctx, pool, plan) = self.physical_plan(job).await?;
        let progress = Arc::new(EngineProgress::default());
        let task = ctx.task_ctx();
        let streams = match partitioned_by_key(&plan, job.spec.keys.len()) {
            Some(partitioned) => (0..partitioned.output_partitioning().partition_count())
                .map(|i| partitioned.execute(i, Arc::clone(&task)))
                .collect::<Result<Vec<_>, _>>(),
            None => execute_stream(Arc::clone(&plan), Arc::clone(&task)).map(|s| vec![s]),
        }
        .map_err(|e| classify(e, job, pool.reserved()))?;

        // Sample the pool while the query runs: its peak is the memory guard's measurement.
        let sampler = {
            let (pool, progress) = (Arc::clone(&pool), Arc::clone(&progress));
            tokio::spawn(async move {
                loop {
                    progress.observe_memory(pool.reserved() as u64);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        // What every partition's stream keeps alive until the last one is dropped.
        let running = Arc::new(Running {
            _sampler: AbortOnDropHandle::new(sampler),
            ctx,
            pool,
            plan,
            job: job.clone(),
            progress: Arc::clone(&progress),
        });
        let partitions = streams
            .into_iter()
            .map(|stream| {
                let running = Arc::clone(&running);
                let batches = stream.map(move |batch| running.observe(batch));
                Box::pin(batches) as BatchStream
            })
            .collect();
        Ok(EngineRun {
            partitions,
            progress,
        })
    }
}

struct Running {
    _sampler: AbortOnDropHandle<()>,
    ctx: SessionContext,
    pool: Arc<dyn MemoryPool>,
    plan: Arc<dyn ExecutionPlan>,
    job: EngineJob,
    progress: Arc<EngineProgress>,
}

impl Running {
    fn observe(&self, batch: Result<RecordBatch, DataFusionError>) -> Result<RecordBatch, Error> {
        self.progress.observe_memory(self.pool.reserved() as u64);
        match batch {
            Ok(b) => {
                self.progress.rows_in.store(
                    scanned_rows(self.plan.as_ref()) + orc::ScannedRows::of(&self.ctx.task_ctx()),
                    std::sync::atomic::Ordering::Relaxed,
                );
                Ok(b)
            }
            Err(e) => Err(classify(e, &self.job, self.progress.peak_memory() as usize)),
        }
    }
}

/// The part of the plan whose partitions can be read at once, when they split the output by
/// key: the plan itself when it has several partitions hashed on key columns, or the input of
/// its final merge (a sort-preserving merge or a coalesce, without a limit) when that input
/// is. Each partition is then clustered by key on its own, and no key is in two of them.
fn partitioned_by_key(
    plan: &Arc<dyn ExecutionPlan>,
    keys: usize,
) -> Option<Arc<dyn ExecutionPlan>> {
    let merges_all = |p: &Arc<dyn ExecutionPlan>| {
        p.downcast_ref::<SortPreservingMergeExec>()
            .is_some_and(|m| m.fetch().is_none())
            || p.downcast_ref::<CoalescePartitionsExec>()
                .is_some_and(|c| c.fetch().is_none())
    };
    let candidate = if plan.output_partitioning().partition_count() > 1 {
        Arc::clone(plan)
    } else if merges_all(plan) {
        Arc::clone(plan.children().first()?)
    } else {
        return None;
    };
    let &Partitioning::Hash(ref exprs, n) = candidate.output_partitioning() else {
        return None;
    };
    let on_keys = exprs.iter().all(|e| {
        e.downcast_ref::<Column>()
            .is_some_and(|c| c.index() < keys && c.name() == plan::key_col(c.index()))
    });
    (n > 1 && !exprs.is_empty() && on_keys).then_some(candidate)
}

/// Rows produced by the plan's leaves (the Parquet scans) so far; ORC scans count theirs in
/// [`orc::ScannedRows`].
fn scanned_rows(plan: &dyn ExecutionPlan) -> u64 {
    if plan.children().is_empty() {
        return plan.metrics().and_then(|m| m.output_rows()).unwrap_or(0) as u64;
    }
    plan.children()
        .iter()
        .map(|c| scanned_rows(c.as_ref()))
        .sum()
}

fn engine_error(table: &str, e: impl std::fmt::Display) -> Error {
    Error::Engine {
        engine: "fasttrack".into(),
        message: format!("{table}: {e}"),
        transient: false,
    }
}

/// A pool exhaustion is the memory breaker tripping (re-routable); anything else is an error
/// that names the table, and the file when DataFusion says which.
fn classify(e: DataFusionError, job: &EngineJob, peak: usize) -> Error {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(message) => Error::GuardTripped(GuardOutcome {
            name: MEMORY_POOL.into(),
            measured: (peak as u64).max(job.limits.memory_pool_bytes + 1),
            limit: job.limits.memory_pool_bytes,
            tripped: true,
            detail: format!("the in-memory run needed more than its pool: {message}"),
        }),
        root => engine_error(&job.spec.table.to_string(), root),
    }
}
