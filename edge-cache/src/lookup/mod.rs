//! The lookup HTTP service of an edge node.
//!
//! - `GET /v1/{api}/{seg}/{seg}...` (composite keys as further segments; `GET /v1/{api}` for a
//!   key-less API): the stored value bytes as they are, `content-type: application/json`,
//!   `x-tablecast-version: N`. Segments are taken from the raw path, still percent-encoded, so
//!   `a%2Fb` is one segment and `a/b` two; they decode with [`edge_contract::keypath::decode_key`].
//! - `POST /v1/{api}/_batch` with `{"keys": [[k1, ...], ...]}` (JSON values, at most
//!   `max_batch_keys`): one pipelined round trip; `{"version":N,"results":[{"key":[...],"value":...|null}]}`.
//! - `GET /healthz` (the process is up), `GET /readyz` (Redis answers and serves at least one
//!   API), `GET /metrics` (Prometheus text).
//!
//! Errors are `{"error":{"code","message"}}` from one place ([`LookupError`]): 400 `bad_key` /
//! `bad_request`, 401 `missing_token`, 403 `forbidden`, 404 `unknown_api` / `not_found`,
//! 405 `method_not_allowed`, 413 `too_large`, 503 `unavailable` / `timeout` / `not_ready` /
//! `refilling` (with `Retry-After`).
//!
//! This service never writes to its Redis. An API it has served that disappears from Redis (the
//! server restarted empty) answers 503 `refilling`, never 404, until the control plane's
//! reconcile refills the edge with the version the control plane's store says it serves.
//!
//! The serving version of each API (with its manifest and token set) is cached in process and
//! refreshed in the background every `version_cache_ms`, so a lookup costs one Redis round trip
//! (the HGET). A request resolves the version once and reads only that version's bucket: no
//! answer mixes versions. Redis down gives 503s; the connection recovers by itself.
//!
//! Files: [`config`] (the `[lookup]` section), [`error`] (errors and their one HTTP mapping),
//! `cache` (each API's serving state), `auth` (bearer tokens), `handlers` (the routes' work);
//! this file holds the shared state, the router and the server.

mod auth;
mod cache;
pub mod config;
pub mod error;
mod handlers;
pub mod metrics;
mod near;
mod quota;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edge_contract::keypath::{KeyError, KeyType, decode_key, key_from_values};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::conn::Timeouts;
use crate::edge::{EdgeOptions, RedisEdge, Resolved};
use crate::error::{Error, Result};
use metrics::Metrics;

use cache::View;
pub use config::LookupConfig;
pub use error::LookupError;
use handlers::*;

/// The version cache never holds a version longer than this (the edges' retire grace, 10 s by
/// default, must exceed it).
pub const MAX_VERSION_CACHE_MS: u64 = 2000;
/// A cached API nobody asked for in this long stops being refreshed.
const IDLE_VIEW: Duration = Duration::from_secs(120);
pub const VERSION_HEADER: &str = "x-tablecast-version";
/// When the serving version was published (RFC 3339).
pub const PUBLISHED_AT_HEADER: &str = "x-tablecast-published-at";
/// How new the data behind the serving version is (RFC 3339), when known.
pub const DATA_TIME_HEADER: &str = "x-tablecast-data-time";

struct Inner {
    edge: Arc<RedisEdge>,
    config: LookupConfig,
    views: RwLock<HashMap<String, Arc<View>>>,
    /// APIs this process has served: one missing from Redis now is being refilled, not unknown.
    served: RwLock<HashSet<String>>,
    generation: AtomicU64,
    /// The last `near_id` given to a view (see `near`).
    near_ids: AtomicU64,
    metrics: Metrics,
    started: Instant,
    in_flight: http_serve::InFlight,
    quotas: quota::Quotas,
    near: near::NearCache,
}

/// The lookup service's shared state; cheap to clone.
#[derive(Clone)]
pub struct LookupState {
    inner: Arc<Inner>,
}

/// Background tasks of a lookup service (the version refresher); dropping this
/// stops them.
pub struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

impl LookupState {
    /// Connects lazily to `config.redis_url`: the service starts even while Redis is down.
    pub fn new(config: LookupConfig) -> Result<LookupState> {
        let options = EdgeOptions {
            timeouts: Timeouts {
                connect: Duration::from_millis(config.redis_timeout_ms.max(50)),
                response: Duration::from_millis(config.redis_timeout_ms.max(10)),
            },
            ..EdgeOptions::default()
        };
        let edge = RedisEdge::lazy(&config.redis_url, options)?;
        Ok(Self::with_edge(Arc::new(edge), config))
    }

    pub fn with_edge(edge: Arc<RedisEdge>, config: LookupConfig) -> LookupState {
        let metrics = Metrics::new();
        let in_flight = http_serve::InFlight::new(&config.limits, metrics.refusal());
        let near = near::NearCache::new(config.near_cache_mb, metrics.near_cache.clone());
        LookupState {
            inner: Arc::new(Inner {
                edge,
                config,
                views: RwLock::new(HashMap::new()),
                served: RwLock::new(HashSet::new()),
                generation: AtomicU64::new(0),
                near_ids: AtomicU64::new(0),
                metrics,
                started: Instant::now(),
                in_flight,
                quotas: quota::Quotas::default(),
                near,
            }),
        }
    }

    pub fn edge(&self) -> &Arc<RedisEdge> {
        &self.inner.edge
    }

    pub fn config(&self) -> &LookupConfig {
        &self.inner.config
    }

    /// The Prometheus text of the service's metrics.
    pub fn metrics_text(&self) -> String {
        // Data age is computed when scraped, from the versions cached here: nothing on the
        // lookup path.
        let now = chrono::Utc::now();
        for (api, view) in self
            .inner
            .views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Some(t) = view
                .resolved
                .manifest
                .manifest
                .data_time
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            {
                let age = (now - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0;
                self.inner
                    .metrics
                    .data_age
                    .with_label_values(&[api])
                    .set(age.max(0.0));
            }
        }
        self.inner.metrics.render()
    }

    fn now_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }
}

/// The lookup service's routes over `state` (no background tasks: see
/// [`LookupState::start_background`]). The server puts [`LookupService`] in front of them.
pub fn router(state: LookupState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .fallback(|State(state), request| lookups(state, request))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_in_flight,
        ))
        .with_state(state)
}

/// At most `max_in_flight` requests run at once; the others get 503 `overloaded`.
async fn limit_in_flight(
    State(state): State<LookupState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(_permit) = state.inner.in_flight.try_enter() else {
        return state.overloaded();
    };
    next.run(request).await
}

impl LookupState {
    fn overloaded(&self) -> Response {
        LookupError::Overloaded(format!(
            "over {} requests in flight; retry shortly",
            self.inner.config.limits.max_in_flight
        ))
        .into_response()
    }
}

/// The lookup service as the server calls it: lookups (`/v1/...`) and `/healthz` go straight
/// to their handlers by path, the rest through [`router`]. axum's routing, its middleware and
/// the clone of its boxed routes per request cost about as much as a lookup's own work: a
/// `/healthz` answered here ran at 1.2x one through the router (bench/history.md). `/healthz`
/// takes the same way as a lookup so that it stays the HTTP ceiling the lookups are held to.
#[derive(Clone)]
pub struct LookupService {
    state: LookupState,
    router: http_serve::RouterService,
}

impl LookupService {
    pub fn new(state: LookupState) -> LookupService {
        LookupService {
            router: http_serve::router_service(router(state.clone())),
            state,
        }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl http_serve::Service<axum::http::Request<http_serve::Incoming>> for LookupService {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: axum::http::Request<http_serve::Incoming>) -> Answer {
        let path = request.uri().path();
        if !(path.starts_with("/v1/") || path == "/healthz") {
            return Box::pin(self.router.call(request));
        }
        let request = request.map(Body::new);
        let state = self.state.clone();
        Box::pin(async move {
            let Some(_permit) = state.inner.in_flight.try_enter() else {
                return Ok(state.overloaded());
            };
            if request.uri().path() == "/healthz" {
                return Ok(healthz().await);
            }
            Ok(lookups(state, request).await)
        })
    }
}

/// Resolves on SIGTERM or Ctrl-C: servers then drain and stop.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Binds `config.listen` and serves lookups until `shutdown` completes (then drains in-flight
/// requests). It never writes to Redis: refills are the control plane's.
pub async fn serve(
    config: LookupConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Io {
            context: format!("binding {}", config.listen),
            source,
        })?;
    let state = LookupState::new(config)?;
    serve_on(listener, state, shutdown).await
}

/// [`serve`] on a listener already bound (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: LookupState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr().map_err(|source| Error::Io {
        context: "listener address".into(),
        source,
    })?;
    tracing::info!(%addr, edge = state.edge().address(), "lookup service listening");
    let _background = state.start_background();
    let limits = state.inner.config.limits.clone();
    let on_refusal = state.inner.metrics.refusal();
    let threads = http_serve::Threads::Pinned(state.inner.config.connection_threads);
    http_serve::serve(
        listener,
        LookupService::new(state),
        &limits,
        threads,
        on_refusal,
        shutdown,
    )
    .await
    .map_err(|source| Error::Io {
        context: format!("serving on {addr}"),
        source,
    })?;
    tracing::info!(%addr, "lookup service stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_raw_paths() {
        assert_eq!(split_path("/v1/demo"), ("demo", vec![]));
        assert_eq!(split_path("/v1/demo/a%2Fb"), ("demo", vec!["a%2Fb"]));
        assert_eq!(split_path("/v1/demo/a/b"), ("demo", vec!["a", "b"]));
        assert_eq!(split_path("/v1/demo/"), ("demo", vec![""]));
    }

    #[test]
    fn config_defaults_and_toml_names() {
        let c: LookupConfig =
            serde_json::from_str(r#"{"redis_url":"redis://127.0.0.1:1","version_cache_ms":50}"#)
                .unwrap();
        assert_eq!(c.version_cache_ms, 50);
        assert_eq!(c.max_batch_keys, 1000);
        assert!(serde_json::from_str::<LookupConfig>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(
            LookupError::BadKey(String::new()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            LookupError::MissingToken(String::new()).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            LookupError::Forbidden(String::new()).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            LookupError::UnknownApi(String::new()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            LookupError::TooLarge(String::new()).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            LookupError::Unavailable(String::new()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
