//! The web UI: one page and its static assets (plain HTML, CSS and JavaScript from `ui/`,
//! embedded in the binary), served with a strict Content-Security-Policy; and the "try it"
//! relay, through which the page calls an API's lookup service, which lives on another origin
//! and answers without CORS headers.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{Error, Result};
use crate::routes::parse_body;

/// Scripts and styles only from this origin, no inline code, no plugins, no framing; the page
/// talks to this origin only (lookups go through [`try_lookup`]).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct Asset {
    content_type: &'static str,
    body: &'static [u8],
}

/// One file of `ui/`, embedded in the binary: `asset!("name", "content type")`.
macro_rules! asset {
    ($file:literal, $content_type:expr) => {
        (
            $file,
            Asset {
                content_type: $content_type,
                body: include_bytes!(concat!("../../ui/", $file)),
            },
        )
    };
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// `/` is `index.html`; the rest are under `/ui/`.
static ASSETS: LazyLock<HashMap<&'static str, (Asset, String)>> = LazyLock::new(|| {
    let assets = [
        asset!("index.html", "text/html; charset=utf-8"),
        asset!("app.css", "text/css; charset=utf-8"),
        // uPlot 1.6.32 (MIT), vendored from npm unchanged: the traffic charts.
        asset!("uplot.css", "text/css; charset=utf-8"),
        asset!("uplot.esm.js", JAVASCRIPT),
        asset!("charts.js", JAVASCRIPT),
        asset!("page-traffic.js", JAVASCRIPT),
        asset!("favicon.svg", "image/svg+xml"),
        // The page's ES modules: `app.js` is the entry (router and boot), the rest it imports.
        asset!("app.js", JAVASCRIPT),
        asset!("dom.js", JAVASCRIPT),
        asset!("format.js", JAVASCRIPT),
        asset!("nav.js", JAVASCRIPT),
        asset!("api.js", JAVASCRIPT),
        asset!("chrome.js", JAVASCRIPT),
        asset!("spec.js", JAVASCRIPT),
        asset!("progress.js", JAVASCRIPT),
        asset!("api-form-model.js", JAVASCRIPT),
        asset!("page-login.js", JAVASCRIPT),
        asset!("page-tables.js", JAVASCRIPT),
        asset!("page-apis.js", JAVASCRIPT),
        asset!("page-api.js", JAVASCRIPT),
        asset!("page-api-form.js", JAVASCRIPT),
        asset!("page-jobs.js", JAVASCRIPT),
        asset!("page-tokens.js", JAVASCRIPT),
    ];
    assets
        .into_iter()
        .map(|(name, asset)| {
            let digest = Sha256::digest(asset.body);
            let etag = format!("\"{}\"", hex::encode(&digest[..12]));
            (name, (asset, etag))
        })
        .collect()
});

fn serve_asset(name: &str, request: &HeaderMap) -> Response {
    let Some((asset, etag)) = ASSETS.get(name) else {
        return Error::not_found("file", name).into_response();
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    // Revalidate every time: the ETag makes that a 304 until the binary changes.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The dashboard's single page.
pub async fn index(headers: HeaderMap) -> Response {
    serve_asset("index.html", &headers)
}

/// The page's scripts, styles and icon.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    if file == "index.html" {
        return Error::not_found("file", file).into_response();
    }
    serve_asset(&file, &headers)
}

/// A lookup to try through the dashboard.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TryInput {
    /// One value per key column, in the spec's order: its canonical text (`42`, `12.50`,
    /// `2026-11-01T08:30:00Z`, the string itself) or `null` for NULL. Encoded into the URL by
    /// the key URL rule.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub key: Vec<Value>,
    /// A read token of the API, sent as `Authorization: Bearer …` (protected APIs).
    #[serde(default)]
    pub token: Option<String>,
}

/// What the lookup service answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TryResult {
    /// The URL that was called (as a client would call it).
    pub url: String,
    /// The lookup service's HTTP status.
    pub status: u16,
    /// From sending the request to the end of the body, as measured by the dashboard.
    pub latency_ms: f64,
    /// The version that answered (`x-tablecast-version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The body: JSON when it is JSON, else text.
    #[schema(value_type = Object)]
    pub body: Value,
    /// Bytes of the body (its announced length when the relay cut it).
    pub bytes: usize,
    /// Set when the body was longer than the relay shows (1 MiB).
    pub truncated: bool,
}

const MAX_TRY_BODY: usize = 1 << 20;
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(TRY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
});

fn upstream_error(message: String) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({"error": {"code": "upstream", "message": message}})),
    )
        .into_response()
}

/// Calls `GET {lookup base}/v1/{api}/{key…}` on the lookup service configured for the API's
/// edge group and returns its status, version, latency and body. The key is encoded by the key
/// URL rule (`~null`, `~empty`, percent-encoding); only configured lookup services are called.
#[utoipa::path(post, path = "/api/apis/{name}/try", tag = "apis", security(("bearer" = [])),
    params(("name" = String, Path, description = "API name")), request_body = TryInput,
    responses((status = 200, body = TryResult), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody), (status = 502, body = crate::error::ErrorBody)))]
pub async fn try_lookup(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let input: TryInput = parse_body(&body, true)?;
    let api = state.store.api(&name).await?;
    let base = state
        .config
        .lookup_url(&api.edge_group, &api.name)
        .ok_or_else(|| {
            Error::invalid(
                "edge_group",
                format!(
                    "no lookup service is configured for edge group `{}` (dashboard.lookup_base_urls)",
                    api.edge_group
                ),
            )
        })?;
    let columns = &api.spec.key;
    if input.key.len() != columns.len() {
        return Err(Error::invalid(
            "key",
            format!(
                "{} has {} key column(s){}; got {} value(s)",
                api.name,
                columns.len(),
                if columns.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", columns.join(", "))
                },
                input.key.len()
            ),
        ));
    }
    let key_json = serde_json::to_vec(&input.key)
        .map_err(|e| Error::Internal(format!("encoding the key: {e}")))?;
    let path = publisher::keypath::encode_key(&key_json).ok_or_else(|| {
        Error::invalid(
            "key",
            "key values are strings, numbers, booleans or null (no arrays or objects)",
        )
    })?;
    let url = if path.is_empty() {
        base.trim_end_matches('/').to_string()
    } else {
        format!("{base}{path}")
    };

    let mut request = CLIENT.get(&url);
    if let Some(token) = input
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        request = request.bearer_auth(token);
    }
    let started = Instant::now();
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Ok(upstream_error(format!("calling {url}: {e}"))),
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let announced = response.content_length();
    // Read at most MAX_TRY_BODY + 1 bytes, chunk by chunk: a huge answer is cut while it
    // streams, never held whole.
    let mut response = response;
    let mut bytes: Vec<u8> = Vec::new();
    let mut truncated = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_TRY_BODY - bytes.len();
                if chunk.len() > room {
                    bytes.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Ok(upstream_error(format!("reading the answer of {url}: {e}"))),
        }
    }
    drop(response);
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;

    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let shown = &bytes[..];
    let body = match serde_json::from_slice::<Value>(shown) {
        Ok(v) if !truncated => v,
        _ => Value::String(String::from_utf8_lossy(shown).into_owned()),
    };
    Ok(Json(TryResult {
        url,
        status,
        latency_ms,
        version: header("x-tablecast-version").and_then(|v| v.parse().ok()),
        content_type: header("content-type").map(String::from),
        body,
        // The full size when the answer announced it, else what was read.
        bytes: announced.map_or(bytes.len(), |n| n as usize),
        truncated,
    })
    .into_response())
}
