//! The crate's one error type. Every message names what is wrong: the table, the column, the
//! file, the address or the step, so that a report or an HTTP body is actionable as it stands.

use crate::guards::GuardOutcome;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid table name {0:?}: expected `db.table`")]
    BadTableName(String),
    #[error("database `{0}` not found in catalog {1}")]
    DatabaseNotFound(String, String),
    #[error("table `{0}` not found in catalog {1}")]
    TableNotFound(String, String),
    #[error("catalog {uri}: {message}")]
    Catalog { uri: String, message: String },
    #[error("metastore at {address} did not answer within {timeout_ms} ms ({call})")]
    MetastoreTimeout {
        address: String,
        call: String,
        timeout_ms: u64,
    },
    #[error("metastore at {address} is unreachable: {message}")]
    MetastoreUnreachable { address: String, message: String },
    #[error("invalid catalog URI {0:?}: expected thrift://host:port or file:///path")]
    BadCatalogUri(String),
    #[error("listing files under {location}: {message}")]
    Listing { location: String, message: String },
    #[error("reading Parquet file {path}: {message}")]
    ParquetFile { path: String, message: String },
    #[error("spec: {0}")]
    SpecSyntax(String),
    #[error("spec `{api}` is invalid: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    SpecInvalid {
        api: String,
        problems: Vec<crate::spec::SpecProblem>,
    },
    #[error("guard `{}` tripped: measured {} > limit {}", .0.name, .0.measured, .0.limit)]
    GuardTripped(GuardOutcome),
    #[error("engine {engine}: {message}")]
    Engine { engine: String, message: String },
    #[error("encoding column `{column}`: {message}")]
    Encoding { column: String, message: String },
    #[error("edge {edge}: {step}: {message}")]
    Edge {
        edge: String,
        step: String,
        message: String,
    },
    #[error("snapshot {path}: {message}")]
    Snapshot { path: String, message: String },
    #[error("config: {0}")]
    Config(String),
    #[error("{step} cancelled")]
    Cancelled { step: String },
    /// The API's operation lease: busy past the wait (transient), or lost to a newer operation.
    #[error("lease on `{api}`: {message}")]
    Lease {
        api: String,
        message: String,
        transient: bool,
    },
    /// The control plane's store failed (locked, unreachable): worth a retry.
    #[error("control-plane store: {0}")]
    Store(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    /// Transient failures are worth retrying with backoff (a server down or silent); all others
    /// are bad input that a retry cannot fix.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::MetastoreTimeout { .. }
                | Error::MetastoreUnreachable { .. }
                | Error::Edge { .. }
                | Error::Store(_)
                | Error::Lease {
                    transient: true,
                    ..
                }
        ) || matches!(self, Error::Engine { message, .. } if message.contains("submission refused"))
    }

    /// A guard trip during a fast-track run: the in-memory attempt was abandoned cleanly and the
    /// job may be re-routed to the fallback.
    pub fn tripped_guard(&self) -> Option<&GuardOutcome> {
        match self {
            Error::GuardTripped(g) => Some(g),
            _ => None,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
