//! The fallback engine: a Spark job for tables too big for the in-memory fast track.
//!
//! [`SparkEngine`] implements [`publisher::engine::Engine`] (path `fallback`). A run:
//!
//! 1. **stage** — the resolved spec becomes a [`JobDescription`] (JSON: typed identifiers and
//!    literals, never SQL), written with the Spark program [`PROGRAM`]
//!    (`spark/tablecast_job.py`) into `staging_dir/<job-id>/`;
//! 2. **submit** — a [`Submitter`] starts it: [`SparkSubmit`] runs `spark-submit` in its own
//!    process group, [`OozieSubmitter`] starts a workflow through Oozie's REST API;
//! 3. **run** — [`supervise`] polls with backoff, enforces `timeout_s` (kill: SIGTERM then
//!    SIGKILL to the process group, or an Oozie kill) and quotes the driver log on failure;
//! 4. **read staged output** — the job's Parquet part files, globally sorted, are streamed in
//!    order as batches of the engine output contract (keys, then outputs, in the spec's types).
//!
//! Errors are [`publisher::Error::Engine`] with engine `spark` and a message that starts with
//! the step (`stage:`, `submit:`, `run:`, `timeout:`, `read staged output …:`). A submission
//! that could not start (no `spark-submit`, Oozie down) says "submission refused" and is
//! transient. Staging is removed after the stream ends, fails or is dropped.
//!
//! The program's semantics match the fast track's byte for byte after canonical encoding; the
//! choices (ANSI off for wrapping integer sums, truncating decimal `avg`, nulls last, UTC) are
//! documented at the top of `spark/tablecast_job.py`.

mod config;
mod engine;
mod job;
mod oozie;
mod output;
mod spark_submit;
mod submit;

#[cfg(test)]
mod tests;

// The tests' shared helpers name this crate `fallback`, as the integration tests do.
#[cfg(test)]
extern crate self as fallback;

pub use config::{ReadVia, SparkConfig, SubmitterKind};
pub use engine::{PROGRAM, SparkEngine};
pub use job::{Input, JobDescription};
pub use oozie::OozieSubmitter;
pub use spark_submit::SparkSubmit;
pub use submit::{JobStatus, StagedJob, Submitter, supervise};
