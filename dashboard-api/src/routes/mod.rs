//! HTTP handlers. Each returns [`crate::Error`] on failure, mapped to a status once, there.

pub mod apis;
pub mod catalogs;
pub mod jobs;
pub mod tokens;
pub mod ui;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{Error, FieldError};

/// Parses a JSON body; an empty body is `T::default()` when `T` allows it (`optional`).
/// Unknown or missing fields are reported by field.
pub(crate) fn parse_body<T: DeserializeOwned + Default>(
    body: &[u8],
    optional: bool,
) -> Result<T, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if optional {
            Ok(T::default())
        } else {
            Err(Error::BadRequest("a JSON body is required".into()))
        };
    }
    serde_json::from_slice(body).map_err(|e| json_error("", &e))
}

/// A serde error as a field error: `missing field `x`` → field `x` (under `prefix`).
pub(crate) fn json_error(prefix: &str, e: &serde_json::Error) -> Error {
    let text = e.to_string();
    let named = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|p| {
            text.split_once(p)
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(f, _)| f.to_string())
        });
    let field = match (named, prefix.is_empty()) {
        (Some(f), true) => f,
        (Some(f), false) => format!("{prefix}.{f}"),
        (None, true) => "body".to_string(),
        (None, false) => prefix.to_string(),
    };
    let message = if e.is_syntax() || e.is_eof() {
        format!("malformed JSON: {text}")
    } else {
        text
    };
    Error::Invalid {
        message: format!("{field}: {message}"),
        fields: vec![FieldError { field, message }],
    }
}

pub async fn api_method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Error {
    Error::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

pub async fn api_not_found() -> Error {
    Error::NotFound {
        what: "route",
        name: "no such API route (see /api/openapi.json)".into(),
    }
}

/// Readiness: whether the store answers, which database it is, and this instance's place in the
/// cluster (its name, whether it coordinates triggers and reconciles).
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Up"), (status = 503, description = "The store is unreachable")))]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let database = state.store.backend().as_str();
    let cluster =
        serde_json::json!({"instance": state.instance, "coordinator": state.coordinator.is_held()});
    match state.store.ping().await {
        Ok(_) => axum::Json(serde_json::json!({"status": "ok", "database": database, "cluster": cluster}))
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable", "database": database, "error": e.to_string(), "cluster": cluster})),
        )
            .into_response(),
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, Error> {
    let text = state.metrics.render(&state.store).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
