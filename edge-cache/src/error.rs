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
    #[error("snapshot: {0}")]
    Snapshot(#[source] publisher::Error),
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
            Error::Snapshot(_) => "snapshot",
            Error::Io { .. } => "listen",
            Error::Config(_) => "config",
        }
    }
}

impl From<Error> for publisher::Error {
    /// The kind is decided here, once, from what actually failed: Redis down or silent is
    /// transient; an edge that answered and refused a step is not.
    fn from(e: Error) -> Self {
        let transient = e.is_unavailable();
        match e {
            Error::Redis { edge, step, source } => publisher::Error::Edge {
                edge,
                step: step.to_string(),
                message: source.to_string(),
                transient,
            },
            Error::Edge {
                edge,
                step,
                message,
            } => publisher::Error::Edge {
                edge,
                step: step.to_string(),
                message,
                transient,
            },
            Error::BadAddress(a) => publisher::Error::Edge {
                edge: a.clone(),
                step: "connect".into(),
                message: Error::BadAddress(a).to_string(),
                transient,
            },
            Error::Snapshot(e) => e,
            Error::Io { context, source } => publisher::Error::Io { context, source },
            Error::Config(m) => publisher::Error::Config(m),
        }
    }
}
