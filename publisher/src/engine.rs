//! The engine interface. An engine turns a resolved spec over a table's files into Arrow batches
//! that the publisher encodes; it never encodes JSON itself, so all engines answer alike.
//!
//! Output contract, which every engine must honour exactly:
//! - columns: the key columns, then the output fields, by position (names are free), each of
//!   the type in [`ResolvedSpec`] or castable to it;
//! - rows clustered by key (ascending, nulls last), and within a key ordered by
//!   [`ResolvedSpec::order`] (nulls last), at most `limit` rows per key;
//! - the output may come as several partitions read at once (see [`EngineRun`]): each honours
//!   the contract on its own, and no key appears in two of them;
//! - on a memory or output breach, the stream ends with [`Error::GuardTripped`] and the engine
//!   has released what it held.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::catalog::TableMeta;
use crate::error::Result;
use crate::files::DataFile;
use crate::guards::GuardLimits;
use crate::spec::ResolvedSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnginePath {
    Fasttrack,
    Fallback,
}

impl EnginePath {
    pub fn as_str(self) -> &'static str {
        match self {
            EnginePath::Fasttrack => "fasttrack",
            EnginePath::Fallback => "fallback",
        }
    }
}

impl std::fmt::Display for EnginePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything an engine needs for one run.
#[derive(Debug, Clone)]
pub struct EngineJob {
    pub spec: ResolvedSpec,
    pub table: TableMeta,
    /// Exactly the files to read, after partition pruning.
    pub files: Vec<DataFile>,
    pub limits: GuardLimits,
    /// The catalog the table came from (`thrift://…` lets a cluster engine read through the
    /// metastore; `file://…` means "read the files").
    pub catalog_uri: String,
}

pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// Counters an engine updates while it runs, read for progress and for the report.
#[derive(Debug, Default)]
pub struct EngineProgress {
    pub rows_in: AtomicU64,
    pub peak_memory: AtomicU64,
}

impl EngineProgress {
    pub fn rows_in(&self) -> u64 {
        self.rows_in.load(Ordering::Relaxed)
    }
    pub fn peak_memory(&self) -> u64 {
        self.peak_memory.load(Ordering::Relaxed)
    }
    pub fn add_rows(&self, n: u64) {
        self.rows_in.fetch_add(n, Ordering::Relaxed);
    }
    pub fn observe_memory(&self, bytes: u64) {
        self.peak_memory.fetch_max(bytes, Ordering::Relaxed);
    }
}

/// A started computation.
///
/// Its output comes as partitions so that the publisher can encode each on its own core: an
/// engine whose work is already split by key (the fast track's hash-partitioned plans) would
/// otherwise merge it back into one stream only for one thread to encode it all.
pub struct EngineRun {
    /// Read concurrently; no key is in two of them. One when the engine cannot promise that.
    pub partitions: Vec<BatchStream>,
    pub progress: Arc<EngineProgress>,
}

impl EngineRun {
    pub fn single(batches: BatchStream, progress: Arc<EngineProgress>) -> Self {
        EngineRun {
            partitions: vec![batches],
            progress,
        }
    }

    /// The partitions one after the other: still one stream honouring the contract, since no
    /// key is in two partitions. For readers that do not need the speed.
    pub fn into_stream(self) -> BatchStream {
        Box::pin(futures::stream::iter(self.partitions).flatten())
    }
}

#[async_trait]
pub trait Engine: Send + Sync {
    fn path(&self) -> EnginePath;

    /// A human-readable plan, for `tablecast plan`; reads no data.
    async fn explain(&self, job: &EngineJob) -> Result<String>;

    /// Starts the computation. Dropping the returned stream cancels it and frees its resources.
    async fn execute(&self, job: &EngineJob) -> Result<EngineRun>;

    /// Starts several computations, returned in the same order; the caller reads them in that
    /// order. Engines that can share a start-up across jobs override it (the Spark engine runs
    /// them in one session); by default each job is started on its own.
    async fn execute_all(&self, jobs: &[EngineJob]) -> Result<Vec<EngineRun>> {
        let mut runs = Vec::with_capacity(jobs.len());
        for job in jobs {
            runs.push(self.execute(job).await?);
        }
        Ok(runs)
    }
}
