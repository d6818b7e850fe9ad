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
    #[error("reading data file {path}: {message}")]
    FileRead { path: String, message: String },
    #[error("spec: {0}")]
    SpecSyntax(String),
    #[error("spec `{api}` is invalid: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    SpecInvalid {
        api: String,
        problems: Vec<crate::spec::SpecProblem>,
    },
    #[error("guard `{}` tripped: measured {} > limit {}", .0.name, .0.measured, .0.limit)]
    GuardTripped(GuardOutcome),
    /// An engine failed; `transient` when it could not start for a reason a retry may fix
    /// (e.g. Spark's submission refused), set by the engine that made the error.
    /// The new version failed quality gates against the serving one; nothing was committed.
    #[error("version {version} of `{api}` failed its quality gates: {}; the serving version stays (its owner may publish anyway)", failed.join("; "))]
    QualityGate {
        api: String,
        version: u64,
        failed: Vec<String>,
    },
    /// The canary edge answered other than the computed output; it went back, nothing else moved.
    #[error(
        "canary of version {version} of `{api}` on {edge} failed: {message}; the canary edge went back and no other edge switched"
    )]
    Canary {
        api: String,
        version: u64,
        edge: String,
        message: String,
    },
    #[error("engine {engine}: {message}")]
    Engine {
        engine: String,
        message: String,
        transient: bool,
    },
    #[error("encoding column `{column}`: {message}")]
    Encoding { column: String, message: String },
    /// An edge failed; transient when its Redis was down or silent (set by the edge code
    /// that saw it), not when the edge answered and refused a step.
    #[error(transparent)]
    Edge(#[from] edge_contract::EdgeError),
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

/// What kind of failure an error is. Decided where the error is made (never from its text):
/// it alone decides whether a job retries and which HTTP status answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A server down or silent, a lease held by another operation: a retry may succeed.
    Transient,
    /// Bad input — spec, table, data files, configuration: a retry cannot fix it.
    Invalid,
    /// A database or table that does not exist.
    NotFound,
    /// Another party's state refused it: an edge refused a step, a newer operation took over.
    Conflict,
    /// Our own fault (local disk, a cancelled task).
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::MetastoreTimeout { .. }
            | Error::MetastoreUnreachable { .. }
            | Error::Store(_)
            | Error::Lease {
                transient: true, ..
            }
            | Error::Edge(edge_contract::EdgeError {
                transient: true, ..
            })
            | Error::Engine {
                transient: true, ..
            } => ErrorKind::Transient,
            Error::DatabaseNotFound(..) | Error::TableNotFound(..) => ErrorKind::NotFound,
            Error::Lease { .. } | Error::Edge(_) => ErrorKind::Conflict,
            Error::BadTableName(_)
            | Error::BadCatalogUri(_)
            | Error::Catalog { .. }
            | Error::Listing { .. }
            | Error::FileRead { .. }
            | Error::SpecSyntax(_)
            | Error::SpecInvalid { .. }
            | Error::GuardTripped(_)
            | Error::QualityGate { .. }
            | Error::Canary { .. }
            | Error::Engine { .. }
            | Error::Encoding { .. }
            | Error::Config(_) => ErrorKind::Invalid,
            Error::Snapshot { .. } | Error::Cancelled { .. } | Error::Io { .. } => {
                ErrorKind::Internal
            }
        }
    }

    /// Transient failures are worth retrying with backoff; all others are not.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
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

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(transient: bool) -> Error {
        Error::Edge(edge_contract::EdgeError {
            edge: "redis://e:1".into(),
            step: "seal".into(),
            message: "incomplete".into(),
            transient,
        })
    }

    /// The mappings that used to be wrong: every edge error was transient (a seal failure was
    /// retried as if Redis were down), and an engine error was transient only if its text said
    /// "submission refused".
    #[test]
    fn the_kind_is_what_the_producer_said_not_the_text() {
        assert_eq!(edge(false).kind(), ErrorKind::Conflict);
        assert_eq!(edge(true).kind(), ErrorKind::Transient);
        let engine = |message: &str, transient| Error::Engine {
            engine: "spark".into(),
            message: message.into(),
            transient,
        };
        assert_eq!(
            engine("submit: submission refused", false).kind(),
            ErrorKind::Invalid
        );
        assert_eq!(engine("could not start", true).kind(), ErrorKind::Transient);
        assert!(
            !Error::Lease {
                api: "a".into(),
                message: "lost".into(),
                transient: false
            }
            .is_transient()
        );
        assert_eq!(
            Error::TableNotFound("a.b".into(), "file:///w".into()).kind(),
            ErrorKind::NotFound
        );
    }
}
