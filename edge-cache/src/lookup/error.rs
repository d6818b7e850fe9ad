//! Every error a lookup answers, mapped to a status and a code in one place.

use super::*;

/// Every error a lookup can answer, mapped to a status and a code in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("{0}")]
    BadKey(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MissingToken(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    UnknownApi(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    Refilling(String),
    /// `max_in_flight` requests already run.
    #[error("{0}")]
    Overloaded(String),
    /// The caller is over its quota; it may retry after this many seconds.
    #[error("{0}")]
    Throttled(String, u64),
}

impl LookupError {
    pub fn status(&self) -> StatusCode {
        match self {
            LookupError::BadKey(_) | LookupError::BadRequest(_) => StatusCode::BAD_REQUEST,
            LookupError::MissingToken(_) => StatusCode::UNAUTHORIZED,
            LookupError::Forbidden(_) => StatusCode::FORBIDDEN,
            LookupError::UnknownApi(_) | LookupError::NotFound(_) => StatusCode::NOT_FOUND,
            LookupError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            LookupError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            LookupError::Throttled(..) => StatusCode::TOO_MANY_REQUESTS,
            LookupError::Unavailable(_)
            | LookupError::Timeout(_)
            | LookupError::NotReady(_)
            | LookupError::Refilling(_)
            | LookupError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            LookupError::BadKey(_) => "bad_key",
            LookupError::BadRequest(_) => "bad_request",
            LookupError::MissingToken(_) => "missing_token",
            LookupError::Forbidden(_) => "forbidden",
            LookupError::UnknownApi(_) => "unknown_api",
            LookupError::NotFound(_) => "not_found",
            LookupError::MethodNotAllowed(_) => "method_not_allowed",
            LookupError::TooLarge(_) => "too_large",
            LookupError::Unavailable(_) => "unavailable",
            LookupError::Timeout(_) => "timeout",
            LookupError::NotReady(_) => "not_ready",
            LookupError::Refilling(_) => "refilling",
            LookupError::Overloaded(_) => "overloaded",
            LookupError::Throttled(..) => "throttled",
        }
    }
}

impl IntoResponse for LookupError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        let mut response = (
            self.status(),
            [(CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if matches!(self, LookupError::MissingToken(_)) {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tablecast\""),
            );
        }
        if let LookupError::Throttled(_, seconds) = &self
            && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(RETRY_AFTER, v);
        }
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
