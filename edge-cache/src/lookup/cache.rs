//! The in-process cache of each API's serving state (version, manifest, access): refreshed in
//! the background, re-read on a miss, and aware of APIs this process has served.

use super::metrics::ApiMetrics;
use super::*;

/// An API's serving state as cached in process.
pub(super) struct View {
    pub(super) resolved: Resolved,
    pub(super) requires_token: bool,
    pub(super) digests: Vec<[u8; 32]>,
    pub(super) fetched: Instant,
    /// Refreshes are numbered when they start; an older one never replaces a newer one.
    pub(super) generation: u64,
    pub(super) last_used_ms: AtomicU64,
    /// Names this version in the near cache: kept from the view this one replaces when both
    /// serve the same version, else new.
    pub(super) near_id: u64,
    pub(super) metrics: ApiMetrics,
    /// The headers of every answer from this version, built once: parsing names and
    /// validating values per answer showed in the lookup's profile.
    pub(super) answer_headers: Vec<(HeaderName, HeaderValue)>,
}

impl View {
    pub(super) fn new(
        resolved: Resolved,
        generation: u64,
        now_ms: u64,
        near_id: u64,
        metrics: ApiMetrics,
    ) -> View {
        let digests = resolved
            .token_hashes
            .iter()
            .filter_map(|h| hex::decode(h).ok())
            .filter_map(|d| <[u8; 32]>::try_from(d).ok())
            .collect();
        let requires_token = resolved.protected;
        let answer_headers = answer_headers(&resolved);
        View {
            resolved,
            requires_token,
            digests,
            fetched: Instant::now(),
            generation,
            last_used_ms: AtomicU64::new(now_ms),
            near_id,
            metrics,
            answer_headers,
        }
    }

    pub(super) fn key_types(&self) -> &[KeyType] {
        &self.resolved.manifest.manifest.key_types
    }
}

/// Content type, serving version, when it was published and how new its data is (when known).
fn answer_headers(served: &Resolved) -> Vec<(HeaderName, HeaderValue)> {
    let manifest = &served.manifest.manifest;
    let mut headers = vec![
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (
            HeaderName::from_static(VERSION_HEADER),
            HeaderValue::from(served.version),
        ),
    ];
    if let Ok(v) = HeaderValue::from_str(&manifest.created_at) {
        headers.push((HeaderName::from_static(PUBLISHED_AT_HEADER), v));
    }
    if let Some(v) = manifest
        .data_time
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.push((HeaderName::from_static(DATA_TIME_HEADER), v));
    }
    headers
}

impl LookupState {
    pub(super) fn cached(&self, api: &str) -> Option<Arc<View>> {
        self.inner
            .views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(api)
            .cloned()
    }

    pub(super) fn label<'a>(&self, api: &'a str) -> &'a str {
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

    pub(super) fn unavailable(&self, e: Error) -> LookupError {
        self.inner.metrics.redis_errors.inc();
        LookupError::Unavailable(e.to_string())
    }

    /// Re-reads an API's serving state from Redis into the cache.
    pub(super) async fn refresh(&self, api: &str) -> Result<Option<Arc<View>>> {
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
                    self.forget_metrics(api);
                }
                Ok(None)
            }
            Some(r) => {
                let same_version = current.as_ref().filter(|cur| {
                    let (a, b) = (&cur.resolved, &r);
                    a.version == b.version
                        && a.manifest.manifest.checksum.sum == b.manifest.manifest.checksum.sum
                });
                let near_id = match same_version {
                    Some(cur) => cur.near_id,
                    None => self.inner.near_ids.fetch_add(1, Ordering::Relaxed) + 1,
                };
                let metrics = self.inner.metrics.for_api(api);
                let view = Arc::new(View::new(r, generation, now, near_id, metrics));
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

    /// The serving state of `api`: from the cache while fresh, else from Redis (within the
    /// request's deadline).
    pub(super) async fn view(
        &self,
        api: &str,
        deadline: Deadline,
    ) -> Result<Arc<View>, LookupError> {
        let unknown = || LookupError::UnknownApi(format!("no API `{api}` is served by this edge"));
        if !edge_contract::is_api_name(api) {
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
        self.within(deadline, self.view_from_redis(api)).await
    }

    async fn view_from_redis(&self, api: &str) -> Result<Arc<View>, LookupError> {
        let unknown = || LookupError::UnknownApi(format!("no API `{api}` is served by this edge"));
        match self.refresh(api).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) if self.has_served(api) => match self.inner.edge.is_retired(api).await {
                Ok(true) => {
                    self.forget(api);
                    Err(LookupError::UnknownApi(format!("API `{api}` was deleted")))
                }
                Ok(false) => Err(LookupError::Refilling(format!(
                    "API `{api}` is missing from this edge's Redis and is being refilled; retry shortly"
                ))),
                Err(e) => Err(self.unavailable(e)),
            },
            Ok(None) => Err(unknown()),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    /// Drops what this process knew of a deleted API.
    fn forget(&self, api: &str) {
        self.inner
            .served
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(api);
        self.inner
            .views
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(api);
        self.forget_metrics(api);
    }

    /// Drops an API's per-API gauges (it is no longer cached here).
    fn forget_metrics(&self, api: &str) {
        let _ = self
            .inner
            .metrics
            .served_version
            .remove_label_values(&[api]);
        let _ = self.inner.metrics.data_age.remove_label_values(&[api]);
    }

    pub(super) fn has_served(&self, api: &str) -> bool {
        self.inner
            .served
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(api)
    }

    /// Starts the version refresher.
    pub fn start_background(&self) -> Background {
        let me = self.clone();
        let mut tasks = vec![tokio::spawn(async move { me.refresh_loop().await })];
        if self.inner.config.redis_url.starts_with("redis://") {
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.change_listener().await }));
        }
        if self.inner.config.memory_sample_ms > 0 {
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.memory_loop().await }));
        }
        Background(tasks)
    }

    /// Listens on `tc:changes` and refreshes an API this process serves as soon as a script
    /// says it changed: a new version is served within a round trip of its commit, not at the
    /// next version check (which stays, as the fallback for a lost subscription). A cluster
    /// URL has no listener: its checks alone bound the delay.
    pub(super) async fn change_listener(self) {
        use futures::StreamExt;
        loop {
            let subscribed = async {
                let client = redis::Client::open(self.inner.config.redis_url.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(crate::layout::CHANGES).await?;
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let Ok(key) = message.get_payload::<String>() else {
                        continue;
                    };
                    let Some(api) = crate::layout::api_of(&key) else {
                        continue;
                    };
                    if self.cached(api).is_some()
                        && let Err(e) = self.refresh(api).await
                    {
                        tracing::debug!(api, error = %e, "refreshing after a change failed");
                    }
                }
                Ok::<(), redis::RedisError>(())
            }
            .await;
            if let Err(e) = subscribed {
                tracing::debug!(error = %e, "listening for API changes failed; resubscribing");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Every `memory_sample_ms`: the Redis memory of each API's serving version (a few sampled
    /// buckets, scaled) and the server's used and max memory, as gauges. Off the request path.
    pub(super) async fn memory_loop(self) {
        let every = Duration::from_millis(self.inner.config.memory_sample_ms.max(100));
        loop {
            if let Err(e) = self.sample_memory().await {
                tracing::debug!(error = %e, "sampling edge memory failed; next round retries");
            }
            tokio::time::sleep(every).await;
        }
    }

    pub(super) async fn sample_memory(&self) -> crate::Result<()> {
        const SAMPLED_BUCKETS: u32 = 8;
        let edge = &self.inner.edge;
        let m = &self.inner.metrics;
        let (used, max) = edge.memory_info().await?;
        m.redis_memory.with_label_values(&["used"]).set(used as i64);
        m.redis_memory.with_label_values(&["max"]).set(max as i64);
        let mut sampled = Vec::new();
        for api in edge.apis().await? {
            let Some(version) = edge.serving(&api).await? else {
                continue;
            };
            let Some(manifest) = edge.manifest(&api, version).await? else {
                continue;
            };
            let bytes = edge
                .version_memory(&api, version, &manifest, SAMPLED_BUCKETS)
                .await?;
            sampled.push((api, version.to_string(), bytes));
        }
        // Replaced at once (no await between), so a scrape never sees a half-filled set.
        m.api_memory.reset();
        for (api, version, bytes) in sampled {
            m.api_memory
                .with_label_values(&[api.as_str(), version.as_str()])
                .set(bytes as i64);
        }
        Ok(())
    }

    pub(super) async fn refresh_loop(self) {
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
                    self.forget_metrics(&api);
                    continue;
                }
                if let Err(e) = self.refresh(&api).await {
                    self.inner.metrics.redis_errors.inc();
                    tracing::debug!(api, error = %e, "refreshing the serving version failed");
                }
            }
        }
    }
}
