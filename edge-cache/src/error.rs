//! The crate's error: every message names the edge (as the operator wrote its address) and the
//! step that failed, so a publish report or a log line is actionable as it stands.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis refused, failed or could not be reached.
    #[error("edge {edge}: {step}: {source}")]
    Redis {
        edge: String,
        step: &'static str,
        #[source]
        source: redis::RedisError,
    },
    /// The edge answered, but the protocol was not followed or a verification failed.
    #[error("edge {edge}: {step}: {message}")]
    Edge {
        edge: String,
        step: &'static str,
        message: String,
    },
    #[error(
        "invalid edge address {0:?}: expected redis://host:port[/db] or redis+cluster://host:port[,host:port...]"
    )]
    BadAddress(String),
    #[error("lookup service: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn edge(edge: &str, step: &'static str, message: impl Into<String>) -> Self {
        Error::Edge {
            edge: edge.to_string(),
            step,
            message: message.into(),
        }
    }

    /// True when Redis itself is down or silent (worth a retry; a 503 for a lookup).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || source.is_timeout()
                    || source.is_unrecoverable_error()
            }
            _ => false,
        }
    }

    /// The step the error happened in, for reports.
    pub fn step(&self) -> &str {
        match self {
            Error::Redis { step, .. } | Error::Edge { step, .. } => step,
            Error::BadAddress(_) => "connect",
            Error::Io { .. } => "listen",
            Error::Config(_) => "config",
        }
    }
}

impl From<Error> for edge_contract::EdgeError {
    /// The kind is decided here, once, from what actually failed: Redis down or silent is
    /// transient; an edge that answered and refused a step is not.
    fn from(e: Error) -> Self {
        let transient = e.is_unavailable();
        let step = e.step().to_string();
        let (edge, message) = match e {
            Error::Redis { edge, source, .. } => (edge, source.to_string()),
            Error::Edge { edge, message, .. } => (edge, message),
            Error::BadAddress(ref address) => (address.clone(), e.to_string()),
            Error::Io { .. } | Error::Config(_) => ("lookup service".into(), e.to_string()),
        };
        edge_contract::EdgeError {
            edge,
            step,
            message,
            transient,
        }
    }
}
