//! Tablecast's core, free of any query engine, cache or HTTP framework.
//!
//! A publish turns one [`spec::ApiSpec`] into a new version on every edge:
//!
//! 1. **inspect** — the [`catalog::Catalog`] (Hive metastore over Thrift, or a directory of
//!    Parquet files) describes the table; [`files`] lists the data files the spec touches.
//! 2. **guard** — [`guards`] measures rows, schema, files and bytes *before any row is read*
//!    and picks the path: the in-memory fast track or the cluster fallback.
//! 3. **run** — an [`engine::Engine`] streams typed Arrow batches, clustered by key;
//!    [`canonical`] encodes them once, in one place, into canonical JSON entries.
//! 4. **push and seal** — [`publish`] writes the entries beside the serving version on every
//!    [`sink::EdgeSink`] and verifies count and checksum everywhere. Switching edges to it is
//!    the control plane's (`dashboard_api::control`), the only code that changes what edges
//!    serve.
//!
//! Engines and sinks are traits here and live in their own crates, so that this crate can be
//! reasoned about (and tested) without DataFusion, Spark or Redis.

pub mod canonical;
pub mod catalog;
pub mod engine;
pub mod error;
pub mod files;
pub mod fingerprint;
pub mod freshness;
pub mod guards;
pub mod publish;
pub mod quality;
pub mod refresh;
pub mod report;
pub mod schema;
pub mod snapshot;
pub mod spec;

/// The contract with the edges, owned by `edge-contract` and re-exported under the paths the
/// publisher has always used.
pub use edge_contract::{keypath, sink};
pub use error::{Error, ErrorKind, Result};
