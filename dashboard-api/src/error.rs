//! The crate's one error type and its one mapping onto HTTP: every handler returns
//! [`Error`], and [`Error::status`] / [`Error::code`] decide the response for all of them.
//! Bodies are `{"error": {"code", "message", "fields"?: [{"field", "message"}]}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem tied to an input field (`values[1].column`, `catalog`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl From<publisher::spec::SpecProblem> for FieldError {
    fn from(p: publisher::spec::SpecProblem) -> Self {
        FieldError {
            field: p.field,
            message: p.message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{what} `{name}` not found")]
    NotFound { what: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Input that parsed but is wrong, field by field.
    #[error("{message}")]
    Invalid {
        message: String,
        fields: Vec<FieldError>,
    },
    #[error(transparent)]
    Publisher(#[from] publisher::Error),
    #[error("database: {0}")]
    Store(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("config: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
    /// Too many requests in flight (`[dashboard.limits] max_in_flight`).
    #[error("{0}")]
    Overloaded(String),
    /// A request body over `[dashboard] max_body_bytes`.
    #[error("{0}")]
    TooLarge(String),
}

/// An edge's failure is the publisher's, and is answered as such.
impl From<edge_contract::EdgeError> for Error {
    fn from(e: edge_contract::EdgeError) -> Self {
        Error::Publisher(e.into())
    }
}

impl Error {
    pub fn not_found(what: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound {
            what,
            name: name.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        Error::Invalid {
            message: format!("{field}: {message}"),
            fields: vec![FieldError { field, message }],
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    /// The one mapping onto HTTP. A publisher error maps by its kind, which the code that made
    /// it decided; two kinds of bad input keep codes of their own.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use publisher::{Error as P, ErrorKind as K};
        match self {
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Error::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Error::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Error::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Error::Publisher(e) => match (e.kind(), e) {
                (K::NotFound, _) => (StatusCode::NOT_FOUND, "not_found"),
                (K::Transient, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                (K::Conflict, _) => (StatusCode::CONFLICT, "conflict"),
                (K::Invalid, P::GuardTripped(_)) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "guard_tripped")
                }
                (K::Invalid, P::Engine { .. }) => (StatusCode::UNPROCESSABLE_ENTITY, "engine"),
                (K::Invalid, _) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
                (K::Internal, _) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            Error::Store(_)
            | Error::Migrate(_)
            | Error::Config(_)
            | Error::Io { .. }
            | Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn fields(&self) -> Vec<FieldError> {
        match self {
            Error::Invalid { fields, .. } => fields.clone(),
            Error::Publisher(publisher::Error::SpecInvalid { problems, .. }) => {
                problems.iter().cloned().map(FieldError::from).collect()
            }
            Error::Publisher(publisher::Error::BadTableName(name)) => vec![FieldError {
                field: "table".into(),
                message: format!("{name:?} is not `db.table`"),
            }],
            _ => Vec::new(),
        }
    }

    /// The JSON body, also used for errors stored with jobs and sent in events.
    pub fn body(&self) -> ErrorBody {
        let fields = self.fields();
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
                fields: (!fields.is_empty()).then_some(fields),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mapping_for_everything() {
        assert_eq!(Error::not_found("api", "x").status(), StatusCode::NOT_FOUND);
        let e = Error::from(publisher::Error::SpecInvalid {
            api: "a".into(),
            problems: vec![publisher::spec::SpecProblem {
                field: "key[0]".into(),
                message: "unknown column".into(),
            }],
        });
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body().error.fields.unwrap()[0].field, "key[0]");
        let e = Error::from(publisher::Error::MetastoreUnreachable {
            address: "h:1".into(),
            message: "refused".into(),
        });
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        // Used to be 422 whatever its kind: a refused Spark submission is worth a retry.
        let e = Error::from(publisher::Error::Engine {
            engine: "spark".into(),
            message: "submit: submission refused: Oozie down".into(),
            transient: true,
        });
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        );
        // An edge that answered and refused a step is not "unavailable".
        let e = Error::from(edge_contract::EdgeError {
            edge: "redis://e:1".into(),
            step: "seal".into(),
            message: "incomplete".into(),
            transient: false,
        });
        assert_eq!((e.status(), e.code()), (StatusCode::CONFLICT, "conflict"));
    }
}
