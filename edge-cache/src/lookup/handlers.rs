//! The HTTP handlers: single and batch lookups, health, readiness and metrics.

use super::metrics::Kind;
use super::*;
use bytes::Bytes;

/// When a request must be answered by: one bound for all the Redis calls of a request, however
/// many it needs.
#[derive(Clone, Copy)]
pub(super) struct Deadline(Instant);

impl LookupState {
    /// The response to a request that was not answered, counted by its status. (Answers count
    /// themselves, through their view's [`metrics::ApiMetrics`].)
    pub(super) fn refused(
        &self,
        api: &str,
        kind: Kind,
        error: LookupError,
        started: Instant,
    ) -> Response {
        let response = error.into_response();
        let label = self.label(api);
        let m = &self.inner.metrics;
        m.requests
            .with_label_values(&[label, kind.label(), response.status().as_str()])
            .inc();
        m.latency
            .with_label_values(&[label, kind.label()])
            .observe(started.elapsed().as_secs_f64());
        response
    }

    /// The connection a lookup reads entries through. On a pinned connection thread (see
    /// `http_serve::Threads`) it is that thread's own, so that a near-cache miss is sent, answered
    /// and woken on the thread that asked; the shared one's driver runs on the main runtime, and
    /// every miss would cross threads twice. Elsewhere the shared one.
    pub(super) fn reader(&self) -> Arc<RedisEdge> {
        thread_local! {
            /// The reader of the service this pinned thread serves, named by its state's address.
            static READER: std::cell::RefCell<Option<(usize, Arc<RedisEdge>)>> =
                const { std::cell::RefCell::new(None) };
        }
        let shared = &self.inner.edge;
        if !http_serve::on_pinned_thread() {
            return Arc::clone(shared);
        }
        let me = Arc::as_ptr(&self.inner) as usize;
        READER.with_borrow_mut(|reader| match reader {
            Some((of, edge)) if *of == me => Arc::clone(edge),
            _ => match RedisEdge::lazy(shared.address(), shared.options().clone()) {
                Ok(edge) => Arc::clone(&reader.insert((me, Arc::new(edge))).1),
                // Not expected: the shared edge was opened from the same address.
                Err(_) => Arc::clone(shared),
            },
        })
    }

    /// The deadline of a request that started at `started` (`request_timeout_ms`).
    pub(super) fn deadline(&self, started: Instant) -> Deadline {
        Deadline(started + Duration::from_millis(self.inner.config.request_timeout_ms.max(1)))
    }

    /// `f` (a call to Redis, or a read of the request body) bounded by the request's deadline.
    /// Only such calls are: every tokio timer takes the runtime's timer lock when it is
    /// dropped, a lock all workers share, and an answer from the near cache needs no timer.
    pub(super) async fn within<T>(
        &self,
        deadline: Deadline,
        f: impl Future<Output = Result<T, LookupError>>,
    ) -> Result<T, LookupError> {
        match tokio::time::timeout_at(deadline.0.into(), f).await {
            Ok(r) => r,
            Err(_) => {
                self.inner.metrics.redis_errors.inc();
                Err(LookupError::Timeout(format!(
                    "no answer from {} within {} ms",
                    self.inner.edge.address(),
                    self.inner.config.request_timeout_ms.max(1)
                )))
            }
        }
    }

    /// After a miss: is the cached version still what the edge serves? A Redis that came back
    /// empty would otherwise turn every key into a 404 until the cache expires. Returns the
    /// newer view when the serving version moved; an error when the API is gone (refilling).
    pub(super) async fn recheck_after_miss(
        &self,
        api: &str,
        view: &Arc<View>,
        deadline: Deadline,
    ) -> Result<Option<Arc<View>>, LookupError> {
        let refreshed = self
            .within(deadline, async {
                Ok::<_, LookupError>(self.refresh(api).await)
            })
            .await?;
        match refreshed {
            Ok(Some(v)) if v.resolved.version != view.resolved.version => Ok(Some(v)),
            Ok(Some(_)) => Ok(None),
            Ok(None) => Err(LookupError::Refilling(format!(
                "API `{api}` is missing from this edge's Redis and is being refilled; retry shortly"
            ))),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    pub(super) async fn get_entry(
        &self,
        api: &str,
        segments: &[&str],
        headers: &HeaderMap,
        started: Instant,
    ) -> Result<Response, LookupError> {
        let deadline = self.deadline(started);
        let mut view = self.view(api, deadline).await?;
        let caller = self.authorize(api, &view, headers)?;
        self.throttle(api, &view, caller)?;
        let mut rechecked = false;
        let (key, value) = loop {
            self.authorize(api, &view, headers)?;
            let key = decode_key(segments, view.key_types())
                .map_err(|e| LookupError::BadKey(describe_key_error(&e, segments, &view)))?;
            let r = &view.resolved;
            let near_id = view.near_id;
            if let Some(known) = self.inner.near.get(near_id, &key) {
                view.metrics.near_hits.inc();
                break (key, known);
            }
            let stored = self
                .within(deadline, async {
                    let edge = self.reader();
                    let stored = edge.get(api, r.version, r.manifest.buckets, &key).await;
                    stored.map_err(|e| self.unavailable(e))
                })
                .await?;
            let value = stored.map(|v| decode(api, r, v)).transpose()?;
            if value.is_some() {
                self.inner.near.insert(near_id, &key, value.clone());
                break (key, value);
            }
            if rechecked {
                break (key, None);
            }
            rechecked = true;
            match self.recheck_after_miss(api, &view, deadline).await? {
                Some(newer) => view = newer,
                None => {
                    // Still the serving version, and still present: the key is truly absent.
                    self.inner.near.insert(near_id, &key, None);
                    break (key, None);
                }
            }
        };
        let r = &view.resolved;
        let Some(value) = value else {
            view.metrics.missed();
            return Err(LookupError::NotFound(format!(
                "no entry for key {} in API `{api}` (version {})",
                String::from_utf8_lossy(&key),
                r.version
            )));
        };
        view.metrics.answered(Kind::Get, started, 1, 0, value.len());
        Ok(json_response(Body::from(value), &view))
    }

    pub(super) async fn get_batch(
        &self,
        api: &str,
        headers: &HeaderMap,
        body: Body,
        started: Instant,
    ) -> Result<Response, LookupError> {
        let deadline = self.deadline(started);
        let view = self.view(api, deadline).await?;
        let caller = self.authorize(api, &view, headers)?;
        self.throttle(api, &view, caller)?;
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
        let read = async {
            axum::body::to_bytes(body, max_body)
                .await
                .map_err(|_| too_large())
        };
        let bytes = self.within(deadline, read).await?;
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
        self.inner
            .metrics
            .batch_keys
            .with_label_values(&[api])
            .observe(request.keys.len() as f64);
        let mut view = view;
        let mut rechecked = false;
        let (keys, values) = loop {
            let mut keys = Vec::with_capacity(request.keys.len());
            for (i, key) in request.keys.iter().enumerate() {
                keys.push(canonical_key(i, key, &view)?);
            }
            let r = &view.resolved;
            let near_id = view.near_id;
            // Keys the near cache knows are answered from it; the rest in one round trip.
            let mut known: Vec<Option<Option<Bytes>>> = keys
                .iter()
                .map(|k| self.inner.near.get(near_id, k))
                .collect();
            let near_hits = known.iter().filter(|k| k.is_some()).count();
            view.metrics.near_hits.inc_by(near_hits as u64);
            let missing: Vec<usize> = (0..keys.len()).filter(|&i| known[i].is_none()).collect();
            if !missing.is_empty() {
                let asked: Vec<Vec<u8>> = missing.iter().map(|&i| keys[i].clone()).collect();
                let fetched = self
                    .within(deadline, async {
                        let edge = self.reader();
                        let fetched = edge.get_many(api, r.version, r.manifest.buckets, &asked);
                        fetched.await.map_err(|e| self.unavailable(e))
                    })
                    .await?;
                for (&i, stored) in missing.iter().zip(fetched) {
                    let value = stored.map(|v| decode(api, r, v)).transpose()?;
                    if value.is_some() {
                        self.inner.near.insert(near_id, &keys[i], value.clone());
                    }
                    known[i] = Some(value);
                }
            }
            let values: Vec<Option<Bytes>> = known.into_iter().map(Option::flatten).collect();
            if rechecked || values.iter().all(Option::is_some) {
                break (keys, values);
            }
            rechecked = true;
            match self.recheck_after_miss(api, &view, deadline).await? {
                Some(newer) => {
                    self.authorize(api, &newer, headers)?;
                    view = newer;
                }
                None => {
                    for (k, v) in keys.iter().zip(&values) {
                        if v.is_none() {
                            self.inner.near.insert(near_id, k, None);
                        }
                    }
                    break (keys, values);
                }
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
        view.metrics
            .answered(Kind::Batch, started, hits, misses, out.len());
        Ok(json_response(Body::from(out), &view))
    }

    pub(super) async fn readiness(&self) -> Result<Vec<String>, LookupError> {
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

/// A 200 with the serving version and its freshness: when it was published and how new its
/// data is (when known). The headers were built with the view.
pub(super) fn json_response(body: Body, view: &View) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.reserve(view.answer_headers.len() + 1);
    for (name, value) in &view.answer_headers {
        headers.insert(name.clone(), value.clone());
    }
    response
}

pub(super) fn describe_key_error(e: &KeyError, segments: &[&str], view: &View) -> String {
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
pub(super) fn canonical_key(
    index: usize,
    key: &[serde_json::Value],
    view: &View,
) -> Result<Vec<u8>, LookupError> {
    key_from_values(key, view.key_types()).map_err(|e| {
        let elements: Vec<String> = key.iter().map(|v| v.to_string()).collect();
        let elements: Vec<&str> = elements.iter().map(String::as_str).collect();
        LookupError::BadKey(format!(
            "keys[{index}]: {}",
            describe_key_error(&e, &elements, view)
        ))
    })
}

/// `/v1/{api}/{seg}...` into the API name and the raw (still percent-encoded) key segments.
pub(super) fn split_path(path: &str) -> (&str, Vec<&str>) {
    let rest = path.strip_prefix("/v1/").unwrap_or("");
    let mut parts = rest.split('/');
    let api = parts.next().unwrap_or("");
    (api, parts.collect())
}

/// Every request the routes do not name: `/v1/...` lookups by method, else 404. Lookups are
/// dispatched here rather than routed with path captures because they read their raw path
/// themselves ([`split_path`]): captures would have axum allocate them into every request's
/// extensions. They borrow the request's parts, where extractors would clone its headers.
pub(super) async fn lookups(state: LookupState, request: axum::extract::Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    if !path.starts_with("/v1/") {
        return no_route(&parts.method, path);
    }
    let (api, segments) = split_path(path);
    let headers = &parts.headers;
    let (kind, result) = match parts.method {
        Method::GET | Method::HEAD => (
            Kind::Get,
            state.get_entry(api, &segments, headers, started).await,
        ),
        Method::POST if segments == ["_batch"] => (
            Kind::Batch,
            state.get_batch(api, headers, body, started).await,
        ),
        Method::POST => (
            Kind::Batch,
            Err(LookupError::MethodNotAllowed(format!(
                "POST is only for /v1/{api}/_batch"
            ))),
        ),
        ref method => (
            Kind::Get,
            Err(LookupError::MethodNotAllowed(format!(
                "{method} is not a lookup: GET /v1/{{api}}/{{key}} or POST /v1/{{api}}/_batch"
            ))),
        ),
    };
    match result {
        Ok(answer) => answer,
        Err(e) => state.refused(api, kind, e, started),
    }
}

pub(super) async fn healthz() -> Response {
    ([(CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#).into_response()
}

pub(super) async fn readyz(State(state): State<LookupState>) -> Response {
    match state
        .within(state.deadline(Instant::now()), state.readiness())
        .await
    {
        Ok(apis) => {
            let body = serde_json::json!({ "status": "ready", "apis": apis });
            ([(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub(super) async fn metrics_handler(State(state): State<LookupState>) -> Response {
    (
        [(CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        state.metrics_text(),
    )
        .into_response()
}

fn no_route(method: &Method, path: &str) -> Response {
    LookupError::NotFound(format!("no route for {method} {path}")).into_response()
}

/// A value as stored, as the API answers it: decompressed when its version is compressed.
fn decode(api: &str, r: &Resolved, stored: Bytes) -> Result<Bytes, LookupError> {
    match &r.decoder {
        None => Ok(stored),
        Some(decoder) => decoder.decompress(&stored).map(Bytes::from).map_err(|e| {
            LookupError::Unavailable(format!(
                "a stored value of version {} of `{api}` does not decompress: {e}",
                r.version
            ))
        }),
    }
}
