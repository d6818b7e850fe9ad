//! The lookup HTTP service of an edge node.
//!
//! - `GET /v1/{api}/{seg}/{seg}...` (composite keys as further segments; `GET /v1/{api}` for a
//!   key-less API): the stored value bytes as they are, `content-type: application/json`,
//!   `x-tablecast-version: N`. Segments are taken from the raw path, still percent-encoded, so
//!   `a%2Fb` is one segment and `a/b` two; they decode with [`publisher::keypath::decode_key`].
//! - `POST /v1/{api}/_batch` with `{"keys": [[k1, ...], ...]}` (JSON values, at most
//!   `max_batch_keys`): one pipelined round trip; `{"version":N,"results":[{"key":[...],"value":...|null}]}`.
//! - `GET /healthz` (the process is up), `GET /readyz` (Redis answers and serves at least one
//!   API), `GET /metrics` (Prometheus text).
//!
//! Errors are `{"error":{"code","message"}}` from one place ([`LookupError`]): 400 `bad_key` /
//! `bad_request`, 401 `missing_token`, 403 `forbidden`, 404 `unknown_api` / `not_found`,
//! 413 `too_large`, 503 `unavailable` / `timeout` / `not_ready` / `refilling` (with `Retry-After`).
//!
//! This service never writes to its Redis. An API it has served that disappears from Redis (the
//! server restarted empty) answers 503 `refilling`, never 404, until the control plane's
//! reconcile refills the edge with the version the control plane's store says it serves.
//!
//! The serving version of each API (with its manifest and token set) is cached in process and
//! refreshed in the background every `version_cache_ms`, so a lookup costs one Redis round trip
//! (the HGET). A request resolves the version once and reads only that version's bucket: no
//! answer mixes versions. Redis down gives 503s; the connection recovers by itself.

pub mod metrics;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use publisher::keypath::{KeyError, KeyType, decode_key, encode_key};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::conn::Timeouts;
use crate::edge::{EdgeOptions, RedisEdge, Resolved};
use crate::error::{Error, Result};
use metrics::Metrics;

/// The version cache never holds a version longer than this (the edges' retire grace, 10 s by
/// default, must exceed it).
pub const MAX_VERSION_CACHE_MS: u64 = 2000;
/// A cached API nobody asked for in this long stops being refreshed.
const IDLE_VIEW: Duration = Duration::from_secs(120);
pub const VERSION_HEADER: &str = "x-tablecast-version";

/// The `[lookup]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LookupConfig {
    /// `redis://host:port[/db]`, or `redis+cluster://host:port[,host:port...]`.
    pub redis_url: String,
    pub listen: SocketAddr,
    /// How long the serving version of an API is cached in process (10 to 2000).
    pub version_cache_ms: u64,
    /// Whole-request deadline; past it a lookup answers 503 `timeout`.
    pub request_timeout_ms: u64,
    pub max_batch_keys: usize,
    pub max_body_bytes: usize,
    /// Deadline of one Redis reply (the connection's response timeout).
    pub redis_timeout_ms: u64,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            redis_url: "redis://127.0.0.1:6379".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            version_cache_ms: 100,
            request_timeout_ms: 1000,
            max_batch_keys: 1000,
            max_body_bytes: 1 << 20,
            redis_timeout_ms: 500,
        }
    }
}

impl LookupConfig {
    fn version_ttl(&self) -> Duration {
        Duration::from_millis(self.version_cache_ms.clamp(10, MAX_VERSION_CACHE_MS))
    }
}

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
            LookupError::Unavailable(_)
            | LookupError::Timeout(_)
            | LookupError::NotReady(_)
            | LookupError::Refilling(_) => StatusCode::SERVICE_UNAVAILABLE,
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
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// An API's serving state as cached in process.
struct View {
    resolved: Resolved,
    requires_token: bool,
    digests: Vec<[u8; 32]>,
    fetched: Instant,
    /// Refreshes are numbered when they start; an older one never replaces a newer one.
    generation: u64,
    last_used_ms: AtomicU64,
}

impl View {
    fn new(resolved: Resolved, generation: u64, now_ms: u64) -> View {
        let digests = resolved
            .token_hashes
            .iter()
            .filter_map(|h| hex::decode(h).ok())
            .filter_map(|d| <[u8; 32]>::try_from(d).ok())
            .collect();
        let requires_token = resolved.protected;
        View {
            resolved,
            requires_token,
            digests,
            fetched: Instant::now(),
            generation,
            last_used_ms: AtomicU64::new(now_ms),
        }
    }

    fn key_types(&self) -> &[KeyType] {
        &self.resolved.manifest.manifest.key_types
    }
}

struct Inner {
    edge: Arc<RedisEdge>,
    config: LookupConfig,
    views: RwLock<HashMap<String, Arc<View>>>,
    /// APIs this process has served: one missing from Redis now is being refilled, not unknown.
    served: RwLock<HashSet<String>>,
    generation: AtomicU64,
    metrics: Metrics,
    started: Instant,
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
        LookupState {
            inner: Arc::new(Inner {
                edge,
                config,
                views: RwLock::new(HashMap::new()),
                served: RwLock::new(HashSet::new()),
                generation: AtomicU64::new(0),
                metrics: Metrics::new(),
                started: Instant::now(),
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
        self.inner.metrics.render()
    }

    fn now_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64
    }

    fn cached(&self, api: &str) -> Option<Arc<View>> {
        self.inner
            .views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(api)
            .cloned()
    }

    fn label<'a>(&self, api: &'a str) -> &'a str {
        if self
            .inner
            .views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(api)
        {
            api
        } else {
            "_unknown"
        }
    }

    fn unavailable(&self, e: Error) -> LookupError {
        self.inner.metrics.redis_errors.inc();
        LookupError::Unavailable(e.to_string())
    }

    /// Re-reads an API's serving state from Redis into the cache.
    async fn refresh(&self, api: &str) -> Result<Option<Arc<View>>> {
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let known = self.cached(api);
        let resolved = self
            .inner
            .edge
            .resolve(api, known.as_ref().map(|v| &v.resolved))
            .await?;
        let now = self.now_ms();
        let mut views = self.inner.views.write().unwrap_or_else(|e| e.into_inner());
        let current = views.get(api).cloned();
        if let Some(cur) = &current
            && cur.generation > generation
        {
            return Ok(Some(cur.clone()));
        }
        match resolved {
            None => {
                if views.remove(api).is_some() {
                    let _ = self
                        .inner
                        .metrics
                        .served_version
                        .remove_label_values(&[api]);
                }
                Ok(None)
            }
            Some(r) => {
                let view = Arc::new(View::new(r, generation, now));
                if let Some(cur) = &current {
                    view.last_used_ms
                        .store(cur.last_used_ms.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                self.inner
                    .metrics
                    .served_version
                    .with_label_values(&[api])
                    .set(view.resolved.version as i64);
                views.insert(api.to_string(), view.clone());
                if current.is_none() {
                    self.inner
                        .served
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(api.to_string());
                }
                Ok(Some(view))
            }
        }
    }

    /// The serving state of `api`: from the cache while fresh, else from Redis.
    async fn view(&self, api: &str) -> Result<Arc<View>, LookupError> {
        let unknown = || LookupError::UnknownApi(format!("no API `{api}` is served by this edge"));
        if !publisher::spec::is_api_name(api) {
            return Err(unknown());
        }
        // The refresher keeps views within one TTL; a view older than a few means it is stuck
        // (Redis down) and the request must ask Redis itself.
        let max_age = self.inner.config.version_ttl() * 4;
        if let Some(v) = self.cached(api)
            && v.fetched.elapsed() < max_age
        {
            v.last_used_ms.store(self.now_ms(), Ordering::Relaxed);
            return Ok(v);
        }
        match self.refresh(api).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) if self.has_served(api) => Err(LookupError::Refilling(format!(
                "API `{api}` is missing from this edge's Redis and is being refilled; retry shortly"
            ))),
            Ok(None) => Err(unknown()),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    fn has_served(&self, api: &str) -> bool {
        self.inner
            .served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(api)
    }

    /// Starts the version refresher.
    pub fn start_background(&self) -> Background {
        let me = self.clone();
        Background(vec![tokio::spawn(async move { me.refresh_loop().await })])
    }

    async fn refresh_loop(self) {
        let ttl = self.inner.config.version_ttl();
        loop {
            tokio::time::sleep(ttl).await;
            let now = self.now_ms();
            let apis: Vec<(String, u64)> = self
                .inner
                .views
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.last_used_ms.load(Ordering::Relaxed)))
                .collect();
            for (api, last_used) in apis {
                if now.saturating_sub(last_used) > IDLE_VIEW.as_millis() as u64 {
                    self.inner
                        .views
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&api);
                    let _ = self
                        .inner
                        .metrics
                        .served_version
                        .remove_label_values(&[&api]);
                    continue;
                }
                if let Err(e) = self.refresh(&api).await {
                    self.inner.metrics.redis_errors.inc();
                    tracing::debug!(api, error = %e, "refreshing the serving version failed");
                }
            }
        }
    }

    fn authorize(&self, api: &str, view: &View, headers: &HeaderMap) -> Result<(), LookupError> {
        if !view.requires_token {
            return Ok(());
        }
        let missing = || {
            LookupError::MissingToken(format!(
                "API `{api}` requires a token: Authorization: Bearer <token>"
            ))
        };
        let header = headers.get(AUTHORIZATION).ok_or_else(missing)?;
        let header = header.to_str().map_err(|_| missing())?;
        let (scheme, token) = header.trim().split_once(' ').ok_or_else(missing)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(missing());
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut allowed = subtle::Choice::from(0);
        for d in &view.digests {
            allowed |= d.ct_eq(&digest);
        }
        if bool::from(allowed) {
            Ok(())
        } else {
            Err(LookupError::Forbidden(format!(
                "this token may not read API `{api}`"
            )))
        }
    }

    fn observe(&self, api: &str, kind: &str, status: StatusCode, started: Instant) {
        let label = self.label(api);
        let m = &self.inner.metrics;
        m.requests
            .with_label_values(&[label, kind, status.as_str()])
            .inc();
        m.latency
            .with_label_values(&[label, kind])
            .observe(started.elapsed().as_secs_f64());
    }

    fn count(&self, api: &str, hits: u64, misses: u64) {
        let m = &self.inner.metrics;
        if hits > 0 {
            m.hits.with_label_values(&[api]).inc_by(hits);
        }
        if misses > 0 {
            m.misses.with_label_values(&[api]).inc_by(misses);
        }
    }

    async fn with_deadline<T>(
        &self,
        f: impl Future<Output = Result<T, LookupError>>,
    ) -> Result<T, LookupError> {
        let limit = Duration::from_millis(self.inner.config.request_timeout_ms.max(1));
        match tokio::time::timeout(limit, f).await {
            Ok(r) => r,
            Err(_) => {
                self.inner.metrics.redis_errors.inc();
                Err(LookupError::Timeout(format!(
                    "no answer from {} within {} ms",
                    self.inner.edge.address(),
                    limit.as_millis()
                )))
            }
        }
    }

    /// After a miss: is the cached version still what the edge serves? A Redis that came back
    /// empty would otherwise turn every key into a 404 until the cache expires. Returns the
    /// newer view when the serving version moved; an error when the API is gone (refilling).
    async fn recheck_after_miss(
        &self,
        api: &str,
        view: &Arc<View>,
    ) -> Result<Option<Arc<View>>, LookupError> {
        match self.refresh(api).await {
            Ok(Some(v)) if v.resolved.version != view.resolved.version => Ok(Some(v)),
            Ok(Some(_)) => Ok(None),
            Ok(None) => Err(LookupError::Refilling(format!(
                "API `{api}` is missing from this edge's Redis and is being refilled; retry shortly"
            ))),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    async fn get_entry(
        &self,
        api: &str,
        segments: &[&str],
        headers: &HeaderMap,
    ) -> Result<Response, LookupError> {
        let mut view = self.view(api).await?;
        let mut rechecked = false;
        let (key, value) = loop {
            self.authorize(api, &view, headers)?;
            let key = decode_key(segments, view.key_types())
                .map_err(|e| LookupError::BadKey(describe_key_error(&e, segments, &view)))?;
            let r = &view.resolved;
            let value = self
                .inner
                .edge
                .get(api, r.version, r.manifest.buckets, &key)
                .await
                .map_err(|e| self.unavailable(e))?;
            if value.is_some() || rechecked {
                break (key, value);
            }
            rechecked = true;
            match self.recheck_after_miss(api, &view).await? {
                Some(newer) => view = newer,
                None => break (key, None),
            }
        };
        let r = &view.resolved;
        let Some(value) = value else {
            self.count(api, 0, 1);
            return Err(LookupError::NotFound(format!(
                "no entry for key {} in API `{api}` (version {})",
                String::from_utf8_lossy(&key),
                r.version
            )));
        };
        self.count(api, 1, 0);
        Ok(json_response(Body::from(value), r.version))
    }

    async fn get_batch(
        &self,
        api: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, LookupError> {
        let view = self.view(api).await?;
        self.authorize(api, &view, headers)?;
        let max_body = self.inner.config.max_body_bytes;
        let too_large =
            || LookupError::TooLarge(format!("the request body is over {max_body} bytes"));
        if headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > max_body)
        {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(body, max_body)
            .await
            .map_err(|_| too_large())?;
        #[derive(Deserialize)]
        struct BatchRequest {
            keys: Vec<Vec<serde_json::Value>>,
        }
        let request: BatchRequest = serde_json::from_slice(&bytes).map_err(|e| {
            LookupError::BadRequest(format!("body: expected {{\"keys\": [[...], ...]}}: {e}"))
        })?;
        let max_keys = self.inner.config.max_batch_keys;
        if request.keys.len() > max_keys {
            return Err(LookupError::TooLarge(format!(
                "{} keys in one batch; at most {max_keys}",
                request.keys.len()
            )));
        }
        let mut view = view;
        let mut rechecked = false;
        let (keys, values) = loop {
            let mut keys = Vec::with_capacity(request.keys.len());
            for (i, key) in request.keys.iter().enumerate() {
                keys.push(canonical_key(i, key, &view)?);
            }
            let r = &view.resolved;
            let values = self
                .inner
                .edge
                .get_many(api, r.version, r.manifest.buckets, &keys)
                .await
                .map_err(|e| self.unavailable(e))?;
            if rechecked || values.iter().all(Option::is_some) {
                break (keys, values);
            }
            rechecked = true;
            match self.recheck_after_miss(api, &view).await? {
                Some(newer) => {
                    self.authorize(api, &newer, headers)?;
                    view = newer;
                }
                None => break (keys, values),
            }
        };
        let r = &view.resolved;
        let size: usize = keys.iter().map(Vec::len).sum::<usize>()
            + values.iter().flatten().map(|v| v.len()).sum::<usize>();
        let mut out = Vec::with_capacity(size + 32 * keys.len() + 32);
        out.extend_from_slice(b"{\"version\":");
        out.extend_from_slice(r.version.to_string().as_bytes());
        out.extend_from_slice(b",\"results\":[");
        let (mut hits, mut misses) = (0, 0);
        for (i, (k, v)) in keys.iter().zip(&values).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"key\":");
            out.extend_from_slice(k);
            out.extend_from_slice(b",\"value\":");
            match v {
                Some(v) => {
                    hits += 1;
                    out.extend_from_slice(v);
                }
                None => {
                    misses += 1;
                    out.extend_from_slice(b"null");
                }
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        self.count(api, hits, misses);
        Ok(json_response(Body::from(out), r.version))
    }

    async fn readiness(&self) -> Result<Vec<String>, LookupError> {
        let edge = &self.inner.edge;
        edge.ping().await.map_err(|e| self.unavailable(e))?;
        let apis = edge.apis().await.map_err(|e| self.unavailable(e))?;
        let mut serving = Vec::new();
        for api in apis.iter().take(100) {
            if edge
                .serving(api)
                .await
                .map_err(|e| self.unavailable(e))?
                .is_some()
            {
                serving.push(api.clone());
            }
        }
        if serving.is_empty() {
            return Err(LookupError::NotReady(format!(
                "{} answers but serves no API yet",
                edge.address()
            )));
        }
        Ok(serving)
    }
}

fn json_response(body: Body, version: u64) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(VERSION_HEADER, HeaderValue::from(version));
    response
}

fn describe_key_error(e: &KeyError, segments: &[&str], view: &View) -> String {
    let names = &view.resolved.manifest.manifest.key_names;
    match e {
        KeyError::Arity { expected, got } => {
            format!(
                "expected {expected} key segment(s) ({}), got {got}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        }
        KeyError::Segment { index, message } => {
            let name = names.get(*index).map(String::as_str).unwrap_or("?");
            let raw = segments.get(*index).copied().unwrap_or("");
            format!("key segment {} (`{name}`, {raw:?}): {message}", index + 1)
        }
    }
}

/// A batch key (JSON values) to canonical key JSON, by the same rules as URL segments.
fn canonical_key(
    index: usize,
    key: &[serde_json::Value],
    view: &View,
) -> Result<Vec<u8>, LookupError> {
    let bad = |m: String| LookupError::BadKey(format!("keys[{index}]: {m}"));
    if let Some(j) = key.iter().position(|v| v.is_array() || v.is_object()) {
        return Err(bad(format!("element {j} is not a scalar")));
    }
    let json = serde_json::to_vec(key).map_err(|e| bad(e.to_string()))?;
    let path = encode_key(&json).ok_or_else(|| bad("not an array of scalars".into()))?;
    let segments: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    decode_key(&segments, view.key_types())
        .map_err(|e| bad(describe_key_error(&e, &segments, view)))
}

/// `/v1/{api}/{seg}...` into the API name and the raw (still percent-encoded) key segments.
fn split_path(path: &str) -> (&str, Vec<&str>) {
    let rest = path.strip_prefix("/v1/").unwrap_or("");
    let mut parts = rest.split('/');
    let api = parts.next().unwrap_or("");
    (api, parts.collect())
}

async fn lookup_get(State(state): State<LookupState>, uri: Uri, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let (api, segments) = split_path(uri.path());
    let result = state
        .with_deadline(state.get_entry(api, &segments, &headers))
        .await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    state.observe(api, "get", response.status(), started);
    response
}

async fn lookup_post(
    State(state): State<LookupState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let (api, segments) = split_path(uri.path());
    let response = if segments != ["_batch"] {
        LookupError::MethodNotAllowed(format!("POST is only for /v1/{api}/_batch")).into_response()
    } else {
        let result = state
            .with_deadline(state.get_batch(api, &headers, body))
            .await;
        result.unwrap_or_else(IntoResponse::into_response)
    };
    state.observe(api, "batch", response.status(), started);
    response
}

async fn healthz() -> Response {
    ([(CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#).into_response()
}

async fn readyz(State(state): State<LookupState>) -> Response {
    match state.with_deadline(state.readiness()).await {
        Ok(apis) => {
            let body = serde_json::json!({ "status": "ready", "apis": apis });
            ([(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn metrics_handler(State(state): State<LookupState>) -> Response {
    (
        [(CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        state.metrics_text(),
    )
        .into_response()
}

async fn no_route(method: Method, uri: Uri) -> Response {
    LookupError::NotFound(format!("no route for {method} {}", uri.path())).into_response()
}

/// The lookup service's routes over `state` (no background tasks: see
/// [`LookupState::start_background`]).
pub fn router(state: LookupState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route("/v1/{api}", get(lookup_get).post(lookup_post))
        .route("/v1/{api}/{*rest}", get(lookup_get).post(lookup_post))
        .fallback(no_route)
        .with_state(state)
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
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
