//! The control plane: the one module that changes what edges serve.
//!
//! The store ([`crate::store`], `api_state` and `api_versions`) holds the desired state of every
//! API: the version all its edges must serve, the way back, its edges, who may read it (an
//! access revision over the protection flag and the live token hashes) and the life of each
//! version. Edges converge to the store, never the other way round. Every operation that
//! touches an API's edges — publish, rollback, convergence (which also refills an edge whose
//! Redis came back empty) — holds the API's lease from the store; each acquisition carries a
//! new fencing token, and every edge switch carries it so that an edge refuses a switch from
//! an operation that lost its lease meanwhile.
//!
//! A version's life: `staged` (number handed out, being written) → `sealed` (complete and
//! verified on every edge, snapshot written) → `committed` (every edge serves it, or served it:
//! kept for rollback) → `retired` (dropped beyond the kept ones); `discarded` when it never
//! committed. Committing is: record the intent (`serving`, `converging`) under the lease,
//! apply the current access to every edge, switch every edge (in parallel), and once all serve
//! it mark the convergence done. If an edge fails part-way, [`ControlPlane::converge`] brings
//! every edge to the same version: forward when the edge holds the version or a snapshot can
//! refill it, back to the previous version otherwise. It runs at the start of every operation
//! on the API, right after a partial commit, and periodically in `tablecast serve`.
//!
//! Access (protection and tokens) is never part of a version: every change bumps the API's
//! access revision in the same transaction, and [`ControlPlane::apply_access`] pushes the
//! store's current set; an edge keeps the newest revision it was sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use publisher::canonical::Entry;
use publisher::publish::{
    Progress, ProgressFn, PublishConfig, Publisher, Route, Staged, StepError,
};
use publisher::report::{CanaryReport, PublishReport, Step};
use publisher::sink::{Access, EdgeSink, SwitchMode, VersionManifest};
use publisher::snapshot::SnapshotStore;
use publisher::spec::ApiSpec;
use serde::Serialize;

use crate::Stack;
use crate::store::{Lease, Store};

/// How long one edge may take to accept an access change before it is reported as failed.
const ACCESS_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct ControlPlane {
    store: Store,
    stack: Arc<dyn Stack>,
    snapshots: Arc<SnapshotStore>,
    config: PublishConfig,
}

/// How a publish is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOptions {
    pub route: Route,
    /// Stop after planning, reporting `unchanged`, when the source fingerprint equals the
    /// serving version's (what triggers ask for; a person's publish always computes).
    pub skip_unchanged: bool,
    /// Commit even when quality gates fail (the owner's "publish anyway"); recorded.
    pub force: bool,
}

impl From<Route> for PublishOptions {
    fn from(route: Route) -> Self {
        PublishOptions {
            route,
            ..Default::default()
        }
    }
}

/// What one operation did on one edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EdgeOutcome {
    pub edge: String,
    /// The version the edge served before, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// The version it serves now, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<u64>,
    /// `in_place`, `switched`, `refilled`, `access` or `failed`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl std::fmt::Display for EdgeOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "edge {}: {}", self.edge, self.action)?;
        match &self.error {
            Some(e) => write!(f, " — {e}"),
            None => Ok(()),
        }
    }
}

impl EdgeOutcome {
    fn failed(edge: &str, before: Option<u64>, error: impl ToString) -> Self {
        EdgeOutcome {
            edge: edge.to_string(),
            before,
            serving: before,
            action: "failed".into(),
            error: Some(error.to_string()),
        }
    }
}

/// The result of bringing an API's edges to the store's desired state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConvergeReport {
    pub api: String,
    /// The version every edge must serve (after going back, if it had to).
    pub serving: Option<u64>,
    /// Every edge serves it, with the current access.
    pub converged: bool,
    pub edges: Vec<EdgeOutcome>,
}

/// The result of a rollback.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RollbackReport {
    pub api: String,
    pub from: Option<u64>,
    pub to: u64,
    pub committed: bool,
    pub edges: Vec<EdgeOutcome>,
    pub total_ms: u64,
}

/// A held lease, renewed in the background while the operation runs. Dropped without
/// [`LeaseGuard::release`] (the operation was cancelled before its commit phase), it is
/// released in the background; if even that cannot run, it expires after its TTL.
struct LeaseGuard {
    lease: Lease,
    store: Store,
    renewer: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
    released: bool,
}

impl LeaseGuard {
    async fn release(mut self) {
        self.renewer.abort();
        self.released = true;
        if let Err(e) = self.store.release_lease(&self.lease).await {
            tracing::warn!(api = %self.lease.api, error = %e, "releasing the lease failed; it expires by itself");
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        if !self.released
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (store, lease) = (self.store.clone(), self.lease.clone());
            runtime.spawn(async move { store.release_lease(&lease).await });
        }
    }
}

fn ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

fn store_err(e: crate::Error) -> publisher::Error {
    match e {
        crate::Error::Publisher(e) => e,
        e => publisher::Error::Store(e.to_string()),
    }
}

fn lease_lost(lease: &Lease) -> publisher::Error {
    publisher::Error::Lease {
        api: lease.api.clone(),
        message: format!(
            "lost the lease (fence {}) to a newer operation: stopped before commit",
            lease.fence.0
        ),
        transient: false,
    }
}

fn holder(purpose: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{purpose}-{host}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    )
}

impl ControlPlane {
    pub fn new(
        store: Store,
        stack: Arc<dyn Stack>,
        snapshots: Arc<SnapshotStore>,
        config: PublishConfig,
    ) -> Self {
        ControlPlane {
            store,
            stack,
            snapshots,
            config,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn connect(&self, edges: &[String]) -> publisher::Result<Vec<Arc<dyn EdgeSink>>> {
        let mut sinks = Vec::with_capacity(edges.len());
        for url in edges {
            sinks.push(self.stack.edge(url).await?);
        }
        Ok(sinks)
    }

    /// Takes the API's lease, waiting up to `lease_wait_ms` for another operation to finish.
    async fn acquire(&self, api: &str, purpose: &str) -> publisher::Result<LeaseGuard> {
        let holder = holder(purpose);
        let deadline = Instant::now() + Duration::from_millis(self.config.lease_wait_ms);
        loop {
            if let Some(guard) = self.try_acquire_as(api, &holder).await? {
                return Ok(guard);
            }
            if Instant::now() > deadline {
                return Err(publisher::Error::Lease {
                    api: api.to_string(),
                    message: format!(
                        "another operation held it for over {} ms",
                        self.config.lease_wait_ms
                    ),
                    transient: true,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Takes the lease only if it is free now.
    async fn try_acquire(&self, api: &str, purpose: &str) -> publisher::Result<Option<LeaseGuard>> {
        self.try_acquire_as(api, &holder(purpose)).await
    }

    async fn try_acquire_as(
        &self,
        api: &str,
        holder: &str,
    ) -> publisher::Result<Option<LeaseGuard>> {
        let ttl = self.config.lease_ttl_ms.max(100) as i64;
        Ok(self
            .store
            .try_lease(api, holder, ttl)
            .await
            .map_err(store_err)?
            .map(|lease| self.guard(lease)))
    }

    fn guard(&self, lease: Lease) -> LeaseGuard {
        let ttl = self.config.lease_ttl_ms.max(100);
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (store, lease, lost) = (self.store.clone(), lease.clone(), Arc::clone(&lost));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(ttl / 3)).await;
                    match store.renew_lease(&lease, ttl as i64).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(api = %lease.api, fence = lease.fence.0, "the lease was lost to another operation; this one will stop before its commit");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(api = %lease.api, error = %e, "renewing the lease failed; retrying")
                        }
                    }
                }
            })
        };
        LeaseGuard {
            lease,
            store: self.store.clone(),
            renewer,
            lost,
            released: false,
        }
    }

    // ---- publish ----

    /// Publishes one API to `edges`: plan, lease, converge what an earlier operation left, stage
    /// a new version everywhere (see [`Publisher::stage`]), then commit it on every edge. The
    /// report's `committed` is true only when every edge serves the new version.
    pub async fn publish(
        &self,
        publisher: &Publisher,
        spec: &ApiSpec,
        options: PublishOptions,
        edges: &[String],
        job: Option<&str>,
        progress: ProgressFn,
    ) -> PublishReport {
        let started = Instant::now();
        let mut report = PublishReport::new(&spec.name, &spec.table);
        let result = self
            .publish_steps(publisher, spec, options, edges, job, &progress, &mut report)
            .await;
        if let Err(e) = result {
            progress(Progress::Failed {
                step: e.step,
                message: e.source.to_string(),
            });
            report.error = Some(e.to_report());
        }
        report.total_ms = ms(started);
        report
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish_steps(
        &self,
        publisher: &Publisher,
        spec: &ApiSpec,
        options: PublishOptions,
        edges: &[String],
        job: Option<&str>,
        progress: &ProgressFn,
        report: &mut PublishReport,
    ) -> Result<(), StepError> {
        let route = options.route;
        if edges.is_empty() {
            return Err(StepError::new(
                Step::Plan,
                publisher::Error::Config(
                    "no edge to publish to (give at least one --edge, or configure the API's edge group)".into(),
                ),
            ));
        }
        let sinks = self
            .connect(edges)
            .await
            .map_err(|e| StepError::new(Step::Push, e))?;

        let t = Instant::now();
        progress(Progress::StepStarted { step: Step::Plan });
        let plan = publisher
            .plan(spec, route)
            .await
            .map_err(|e| StepError::new(Step::Plan, e))?;
        report.timings_ms.insert("plan".into(), ms(t));
        report.guards = plan.guards.clone();
        report.route_reason = plan.reason.clone();
        progress(Progress::Guards {
            guards: plan.guards.clone(),
            path: plan.path,
            reason: plan.reason.clone(),
        });
        report.fingerprint = Some(plan.fingerprint.clone());
        report.data_time = plan.data_time.clone();
        report.latest_partitions = plan.latest_partitions.clone();
        if options.skip_unchanged {
            let serving = self
                .store
                .serving_version(&spec.name)
                .await
                .map_err(|e| StepError::new(Step::Plan, store_err(e)))?;
            if let Some(v) = serving.filter(|v| v.fingerprint.as_ref() == Some(&plan.fingerprint)) {
                tracing::info!(api = %spec.name, version = v.version, "source unchanged since the serving version: nothing to publish");
                report.previous_version = Some(v.version);
                report.unchanged = true;
                return Ok(());
            }
        }

        let t = Instant::now();
        progress(Progress::StepStarted { step: Step::Lease });
        let guard = self
            .acquire(&spec.name, "publish")
            .await
            .map_err(|e| StepError::new(Step::Lease, e))?;
        // Whatever an earlier operation left half-done is settled first.
        if let Err(e) = self.converge_leased(&guard.lease).await {
            tracing::warn!(api = %spec.name, error = %e, "converging before the publish failed; publishing anyway");
        }
        report.timings_ms.insert("lease".into(), ms(t));

        let staged = self
            .stage(
                publisher, &plan, route, &sinks, &guard, job, progress, report,
            )
            .await;
        let Staged { manifest, sample } = match staged {
            Ok(s) => s,
            Err(e) => {
                guard.release().await;
                return Err(e);
            }
        };
        if let Err(e) = self
            .judge(spec, &manifest, &sinks, options.force, report)
            .await
        {
            guard.release().await;
            return Err(e);
        }
        if let Some(canary) = &spec.canary {
            let probed = self
                .canary(
                    canary, spec, &guard, &manifest, &sample, &sinks, edges, report,
                )
                .await;
            if let Err(e) = probed {
                self.abandon(&manifest.api, manifest.version, &sinks).await;
                guard.release().await;
                return Err(e);
            }
        }

        // The commit phase runs to its end even if this future is dropped (a cancelled job):
        // an interrupted switch is what leaves edges disagreeing.
        let me = self.clone();
        let addresses = edges.to_vec();
        let progress = Arc::clone(progress);
        let keep = self.config.keep_versions;
        let commit = tokio::spawn(async move {
            let t = Instant::now();
            let outcome = me
                .commit_new(&guard, &manifest, &sinks, &addresses, &progress)
                .await;
            let commit_ms = ms(t);
            let t = Instant::now();
            if outcome.1.is_ok() {
                me.collect_garbage(&manifest.api, &sinks, keep).await;
            }
            guard.release().await;
            (outcome, commit_ms, ms(t))
        });
        let ((outcomes, result), commit_ms, gc_ms) = commit.await.map_err(|e| {
            StepError::new(
                Step::Commit,
                publisher::Error::Store(format!("the commit task failed: {e}")),
            )
        })?;
        report.timings_ms.insert("commit".into(), commit_ms);
        report.timings_ms.insert("gc".into(), gc_ms);
        for o in &outcomes {
            if let Some(r) = report.edges.iter_mut().find(|r| r.edge == o.edge) {
                r.committed = o.serving == report.version;
                r.error = o.error.clone();
            }
        }
        result?;
        report.committed = true;
        Ok(())
    }

    /// Lease held: numbers the new version, stages it on every edge and records it sealed.
    #[allow(clippy::too_many_arguments)]
    async fn stage(
        &self,
        publisher: &Publisher,
        plan: &publisher::publish::Plan,
        route: Route,
        sinks: &[Arc<dyn EdgeSink>],
        guard: &LeaseGuard,
        job: Option<&str>,
        progress: &ProgressFn,
        report: &mut PublishReport,
    ) -> Result<Staged, StepError> {
        let api = plan.spec.name();
        let state = self
            .store
            .api_state(api)
            .await
            .map_err(|e| StepError::new(Step::Lease, store_err(e)))?;
        report.previous_version = state.and_then(|s| s.serving);
        // Never reuse a number an edge has seen (edges published before the store knew them).
        let mut highest = 0;
        for (sink, v) in sinks
            .iter()
            .zip(join_all(sinks.iter().map(|s| s.versions(api))).await)
        {
            let v = v.map_err(|e| StepError::at_edge(Step::Push, sink.as_ref(), e))?;
            highest = highest.max(v.highest).max(v.serving.unwrap_or(0));
        }
        let version = self
            .store
            .allocate_version(&guard.lease, highest + 1, job)
            .await
            .map_err(|e| match e {
                crate::Error::Conflict(_) => StepError::new(Step::Lease, lease_lost(&guard.lease)),
                e => StepError::new(Step::Lease, store_err(e)),
            })?;
        report.version = Some(version);
        let staged = publisher
            .stage(plan, route, sinks, version, progress, report)
            .await;
        let staged = match staged {
            Ok(m) => m,
            Err(e) => {
                if let Err(err) = self.store.discard_version(api, version).await {
                    tracing::warn!(api, version, error = %err, "recording a discarded version failed");
                }
                // A newer operation took over while this one was stalled: that is the cause
                // (its GC may well have dropped this staging, failing the step seen here).
                if guard.lost.load(Ordering::SeqCst) {
                    tracing::warn!(api, version, step = %e.step, error = %e.source, "staging failed after the lease was lost");
                    return Err(StepError::new(Step::Lease, lease_lost(&guard.lease)));
                }
                return Err(e);
            }
        };
        self.store
            .seal_version(
                &staged.manifest,
                publisher.snapshots.is_some(),
                &plan.fingerprint,
                report.profile.as_ref(),
            )
            .await
            .map_err(|e| StepError::new(Step::Snapshot, store_err(e)))?;
        Ok(staged)
    }

    /// Lease held, version sealed and judged: the canary. The API's first edge serves the new
    /// version alone while its lookup service is probed with the sampled entries for `soak_s`;
    /// past `max_mismatch_pct` differing answers it goes back to the serving version and the
    /// publish fails. The store's desired state is not touched until the promotion (the
    /// ordinary commit), so a crash mid-canary converges the canary edge back.
    #[allow(clippy::too_many_arguments)]
    async fn canary(
        &self,
        canary: &publisher::quality::Canary,
        spec: &ApiSpec,
        guard: &LeaseGuard,
        manifest: &VersionManifest,
        sample: &[Entry],
        sinks: &[Arc<dyn EdgeSink>],
        edges: &[String],
        report: &mut PublishReport,
    ) -> Result<(), StepError> {
        let (api, version) = (manifest.api.as_str(), manifest.version);
        let started = Instant::now();
        let edge = edges[0].clone();
        let mut outcome = CanaryReport {
            edge: edge.clone(),
            lookup: String::new(),
            probes: 0,
            mismatches: 0,
            soak_ms: 0,
            note: None,
            examples: Vec::new(),
        };
        let (Some(previous), false) = (report.previous_version, sample.is_empty()) else {
            outcome.note = Some("nothing serves yet (or nothing to probe): no canary".into());
            report.canary = Some(outcome);
            return Ok(());
        };
        let fail = |message: String| StepError {
            step: Step::Canary,
            edge: Some(edge.clone()),
            source: publisher::Error::Canary {
                api: api.to_string(),
                version,
                edge: edge.clone(),
                message,
            },
        };
        let Some(lookup) = self.config.lookups.get(&edge).cloned() else {
            return Err(fail(format!(
                "no lookup service is configured in front of it ([publish.lookups] \"{edge}\" = \"http://…\")"
            )));
        };
        outcome.lookup.clone_from(&lookup);
        // A protected API is probed with a read token made for this canary, revoked after it.
        let probe_token = if spec.protected {
            Some(
                self.probe_token(api, version)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
            )
        } else {
            None
        };
        let token = probe_token.as_ref().map(|(_, secret)| secret.as_str());
        let sink = &sinks[0];
        let result: Result<(), StepError> = async {
            let access = self.store.access(api).await.map_err(|e| fail(e.to_string()))?;
            sink.set_access(api, &access)
                .await
                .map_err(|e| fail(e.to_string()))?;
            sink.switch(api, version, guard.lease.fence, SwitchMode::Forward)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| fail(e.to_string()))?;
            // The lookup service notices the switch within its version cache's life.
            let pickup = Instant::now();
            loop {
                let r = crate::canary::probe(&http, &lookup, api, version, &sample[..1], token).await;
                if r.served == Some(version) {
                    break;
                }
                if pickup.elapsed() > crate::canary::PICKUP {
                    outcome.examples = r.examples;
                    return Err(fail(format!(
                        "its lookup service {lookup} still answers from version {} {} s after the switch: is it in front of this edge?",
                        r.served.map_or("?".into(), |v| v.to_string()),
                        crate::canary::PICKUP.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let soak = Duration::from_secs(canary.soak_s);
            let soaking = Instant::now();
            loop {
                let r = crate::canary::probe(&http, &lookup, api, version, sample, token).await;
                outcome.probes += r.probes;
                outcome.mismatches += r.mismatches;
                for e in r.examples {
                    if outcome.examples.len() < 3 {
                        outcome.examples.push(e);
                    }
                }
                let left = soak.saturating_sub(soaking.elapsed());
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(Duration::from_secs(1))).await;
            }
            let pct = outcome.mismatches as f64 * 100.0 / outcome.probes.max(1) as f64;
            if pct > canary.max_mismatch_pct {
                return Err(fail(format!(
                    "{} of {} probes ({pct:.1} %) differed from the computed output (at most {} % allowed): {}",
                    outcome.mismatches,
                    outcome.probes,
                    canary.max_mismatch_pct,
                    outcome.examples.join("; ")
                )));
            }
            Ok(())
        }
        .await;
        if let Some((id, _)) = &probe_token
            && let Err(e) = self.store.revoke_token(id).await
        {
            tracing::warn!(api, token = %id, error = %e, "revoking the canary's probe token failed");
        }
        if result.is_err() {
            // Back to what serves everywhere else, with the store's access.
            if let Err(e) = sink
                .switch(api, previous, guard.lease.fence, SwitchMode::Explicit)
                .await
            {
                tracing::warn!(edge = %edge, api, error = %e, "switching the canary back failed; convergence brings it back");
            }
            match self.store.access(api).await {
                Ok(access) => {
                    if let Err(e) = sink.set_access(api, &access).await {
                        tracing::warn!(edge = %edge, api, error = %e, "re-applying access after the canary failed");
                    }
                }
                Err(e) => tracing::warn!(api, error = %e, "reading access after the canary failed"),
            }
        }
        outcome.soak_ms = ms(started);
        outcome.note = result.as_ref().err().map(|e| e.source.to_string());
        report.canary = Some(outcome);
        result
    }

    /// A read token of `api` for a canary's probes: (its id, its secret).
    async fn probe_token(&self, api: &str, version: u64) -> crate::Result<(String, String)> {
        let secret = crate::auth::generate_token("tca_");
        let row = crate::store::TokenRow {
            id: format!("tok_{}", crate::store::new_id()),
            api: Some(api.to_string()),
            kind: crate::store::TokenKind::Api,
            name: format!("canary probe of v{version}"),
            created_by: "control-plane".into(),
            created_at: crate::store::now_ms(),
            revoked_at: None,
            quota: None,
        };
        self.store
            .create_token(&row, &crate::auth::hash_token(&secret))
            .await?;
        Ok((row.id, secret))
    }

    /// Lease held, version sealed: the quality gates against the serving version. A failure
    /// discards the version (the serving one stays) unless `force`, which is recorded.
    async fn judge(
        &self,
        spec: &ApiSpec,
        manifest: &VersionManifest,
        sinks: &[Arc<dyn EdgeSink>],
        force: bool,
        report: &mut PublishReport,
    ) -> Result<(), StepError> {
        let (api, version) = (manifest.api.as_str(), manifest.version);
        let serving = self
            .store
            .serving_version(api)
            .await
            .map_err(|e| StepError::new(Step::Gates, store_err(e)))?;
        let new = report.profile.clone().unwrap_or_default();
        report.gates = publisher::quality::evaluate(
            &new,
            serving.as_ref().and_then(|v| v.profile.as_ref()),
            &self.config.gates,
            &spec.gates,
        );
        let failed: Vec<String> = report
            .gates
            .iter()
            .filter(|g| !g.passed)
            .map(|g| g.to_string())
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        if force {
            tracing::warn!(api, version, failed = ?failed, "quality gates failed; published anyway as asked");
            report.forced = true;
            if let Err(e) = self.store.mark_forced(api, version).await {
                tracing::warn!(api, version, error = %e, "recording a forced version failed");
            }
            return Ok(());
        }
        self.abandon(api, version, sinks).await;
        Err(StepError::new(
            Step::Gates,
            publisher::Error::QualityGate {
                api: api.to_string(),
                version,
                failed,
            },
        ))
    }

    /// Switches every edge to a freshly sealed version; on a partial failure converges at once
    /// (forward where the version is held, back otherwise) and reports the failed edge.
    async fn commit_new(
        &self,
        guard: &LeaseGuard,
        manifest: &VersionManifest,
        sinks: &[Arc<dyn EdgeSink>],
        addresses: &[String],
        progress: &ProgressFn,
    ) -> (Vec<EdgeOutcome>, Result<(), StepError>) {
        let (api, version) = (manifest.api.as_str(), manifest.version);
        progress(Progress::StepStarted { step: Step::Commit });
        if guard.lost.load(Ordering::SeqCst) {
            self.abandon(api, version, sinks).await;
            return (
                Vec::new(),
                Err(StepError::new(Step::Commit, lease_lost(&guard.lease))),
            );
        }
        let outcomes = match self
            .switch_all(&guard.lease, version, sinks, addresses, SwitchMode::Forward)
            .await
        {
            Ok(o) => o,
            Err(e) => {
                self.abandon(api, version, sinks).await;
                return (Vec::new(), Err(StepError::new(Step::Commit, e)));
            }
        };
        if let Some(failed) = outcomes.iter().find(|o| o.serving != Some(version)) {
            let message = format!(
                "switching to version {version} failed: {}; the control plane converges every edge to one version (now, and when the edge returns)",
                failed.error.as_deref().unwrap_or("unknown error")
            );
            let edge = failed.edge.clone();
            let outcomes = match self.converge_leased(&guard.lease).await {
                Ok(report) => report.edges,
                Err(e) => {
                    tracing::warn!(api, error = %e, "converging after a partial commit failed");
                    outcomes
                }
            };
            let error = StepError {
                step: Step::Commit,
                edge: Some(edge.clone()),
                source: edge_contract::EdgeError {
                    edge,
                    step: "commit".into(),
                    message,
                    // The next attempt converges this one's edges first, then publishes.
                    transient: true,
                }
                .into(),
            };
            return (outcomes, Err(error));
        }
        if let Err(e) = self.store.converged(&guard.lease, version).await {
            tracing::warn!(api, version, error = %e, "recording the convergence failed; the next reconcile does");
        }
        progress(Progress::Committed { version });
        (outcomes, Ok(()))
    }

    /// A sealed version that will never serve: dropped from the edges and recorded discarded.
    async fn abandon(&self, api: &str, version: u64, sinks: &[Arc<dyn EdgeSink>]) {
        for (sink, r) in sinks
            .iter()
            .zip(join_all(sinks.iter().map(|s| s.discard(api, version))).await)
        {
            if let Err(e) = r {
                tracing::warn!(edge = sink.address(), api, version, error = %e, "discarding an abandoned version; GC collects it later");
            }
        }
        if let Err(e) = self.store.discard_version(api, version).await {
            tracing::warn!(api, version, error = %e, "recording a discarded version failed");
        }
    }

    /// Records the intent (fenced: refused if the lease was lost), applies the current access
    /// everywhere, then switches every edge at once.
    async fn switch_all(
        &self,
        lease: &Lease,
        target: u64,
        sinks: &[Arc<dyn EdgeSink>],
        addresses: &[String],
        mode: SwitchMode,
    ) -> publisher::Result<Vec<EdgeOutcome>> {
        let api = lease.api.as_str();
        if !self
            .store
            .intend(lease, target, addresses)
            .await
            .map_err(store_err)?
        {
            return Err(lease_lost(lease));
        }
        let access = self.store.access(api).await.map_err(store_err)?;
        let switched = join_all(sinks.iter().map(|sink| {
            let access = &access;
            async move {
                sink.set_access(api, access).await?;
                sink.switch(api, target, lease.fence, mode).await
            }
        }))
        .await;
        Ok(sinks
            .iter()
            .zip(switched)
            .map(|(sink, r)| match r {
                Ok(before) => EdgeOutcome {
                    edge: sink.address().to_string(),
                    before,
                    serving: Some(target),
                    action: if before == Some(target) {
                        "in_place".into()
                    } else {
                        "switched".into()
                    },
                    error: None,
                },
                Err(e) => EdgeOutcome::failed(sink.address(), None, e),
            })
            .collect())
    }

    async fn collect_garbage(&self, api: &str, sinks: &[Arc<dyn EdgeSink>], keep: usize) {
        for sink in sinks {
            if let Err(e) = sink.gc(api, keep).await {
                tracing::warn!(edge = sink.address(), api, error = %e, "garbage collection failed; old versions stay until the next publish");
            }
        }
        if let Err(e) = self.snapshots.prune(api, keep) {
            tracing::warn!(api, error = %e, "pruning snapshots failed");
        }
        if let Err(e) = self.store.retire_beyond(api, keep).await {
            tracing::warn!(api, error = %e, "recording retired versions failed");
        }
    }

    // ---- rollback ----

    /// Switches every edge of the API back (or forward) to a version they all keep: `to`, or
    /// the newest kept one older than the serving version. `edges` defaults to the API's.
    pub async fn rollback(
        &self,
        api: &str,
        to: Option<u64>,
        edges: Option<&[String]>,
    ) -> crate::Result<RollbackReport> {
        let started = Instant::now();
        let guard = self.acquire(api, "rollback").await?;
        let result = self.rollback_leased(&guard, to, edges, started).await;
        guard.release().await;
        result
    }

    async fn rollback_leased(
        &self,
        guard: &LeaseGuard,
        to: Option<u64>,
        edges: Option<&[String]>,
        started: Instant,
    ) -> crate::Result<RollbackReport> {
        let api = guard.lease.api.as_str();
        if let Err(e) = self.converge_leased(&guard.lease).await {
            tracing::warn!(api, error = %e, "converging before the rollback failed");
        }
        let state = self.store.api_state(api).await?.unwrap_or_default();
        let addresses = match edges {
            Some(e) if !e.is_empty() => e.to_vec(),
            _ => state.edges.clone(),
        };
        if addresses.is_empty() {
            return Err(crate::Error::Conflict(format!(
                "`{api}` has not been published to any edge"
            )));
        }
        let from = state.serving;
        let sinks = self.connect(&addresses).await?;
        let mut kept = Vec::with_capacity(sinks.len());
        for sink in &sinks {
            let v = sink.versions(api).await?;
            kept.push(v.kept.iter().map(|m| m.version).collect::<Vec<u64>>());
        }
        let everywhere = |v: u64| kept.iter().all(|k| k.contains(&v));
        let target = match to {
            Some(v) => v,
            None => {
                let from = from.ok_or_else(|| {
                    crate::Error::Conflict(format!("`{api}` serves nothing to roll back from"))
                })?;
                let mut older: Vec<u64> = kept
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|v| *v < from)
                    .collect();
                older.sort_unstable();
                older
                    .into_iter()
                    .rev()
                    .find(|v| everywhere(*v))
                    .ok_or_else(|| {
                        crate::Error::Conflict(format!(
                            "no version of `{api}` older than {from} is kept on every edge"
                        ))
                    })?
            }
        };
        if !everywhere(target) {
            let listing: Vec<String> = addresses
                .iter()
                .zip(&kept)
                .map(|(a, k)| format!("{a}: {k:?}"))
                .collect();
            return Err(crate::Error::Conflict(format!(
                "version {target} of `{api}` is not kept on every edge (kept: {})",
                listing.join("; ")
            )));
        }
        // As for a publish, the switch is not interrupted by a dropped caller.
        let me = self.clone();
        let lease = guard.lease.clone();
        let switched = tokio::spawn(async move {
            let outcomes = me
                .switch_all(&lease, target, &sinks, &addresses, SwitchMode::Explicit)
                .await?;
            if outcomes.iter().all(|o| o.serving == Some(target)) {
                me.store
                    .converged(&lease, target)
                    .await
                    .map_err(store_err)?;
                Ok(outcomes)
            } else {
                Ok(me
                    .converge_leased(&lease)
                    .await
                    .map(|r| r.edges)
                    .unwrap_or(outcomes))
            }
        })
        .await
        .map_err(|e| crate::Error::Internal(format!("the rollback task failed: {e}")))?;
        let outcomes: Vec<EdgeOutcome> = switched.map_err(crate::Error::Publisher)?;
        let committed = outcomes.iter().all(|o| o.serving == Some(target));
        Ok(RollbackReport {
            api: api.to_string(),
            from,
            to: target,
            committed,
            edges: outcomes,
            total_ms: ms(started),
        })
    }

    // ---- deletion ----

    /// Deletes an API, under its lease (refused while another operation holds it): the store
    /// forgets its definition, tokens and version history and marks it retiring (queued jobs
    /// are cancelled, and the delete is refused while one runs), then every edge drops it
    /// ([`EdgeSink::retire`]). If an edge fails, the API stays retiring: convergence retries,
    /// and the name cannot be created again until every edge has dropped it. Returns the
    /// cancelled jobs and each edge's outcome.
    pub async fn delete(&self, api: &str) -> crate::Result<(Vec<String>, Vec<EdgeOutcome>)> {
        let Some(guard) = self.try_acquire(api, "delete").await? else {
            return Err(crate::Error::Conflict(format!(
                "another operation on `{api}` (a publish, rollback or convergence) holds its \
                 lease; delete it when that ends"
            )));
        };
        let result = async {
            let cancelled = self.store.delete_api(api).await?;
            let outcomes = self.retire_leased(&guard.lease).await?;
            Ok((cancelled, outcomes))
        }
        .await;
        guard.release().await;
        result
    }

    /// Lease held, API retiring: every recorded edge drops it; once all have, its snapshots
    /// go and its state starts over.
    async fn retire_leased(&self, lease: &Lease) -> crate::Result<Vec<EdgeOutcome>> {
        let api = lease.api.as_str();
        let Some(state) = self.store.api_state(api).await?.filter(|s| s.retiring) else {
            return Ok(Vec::new());
        };
        let access = self.store.access(api).await?;
        let sinks = self.connect(&state.edges).await?;
        let outcomes: Vec<EdgeOutcome> = join_all(sinks.iter().map(|sink| {
            let access = &access;
            async move {
                match sink.retire(api, access).await {
                    Ok(_) => EdgeOutcome {
                        edge: sink.address().to_string(),
                        before: None,
                        serving: None,
                        action: "retired".into(),
                        error: None,
                    },
                    Err(e) => {
                        tracing::warn!(edge = sink.address(), api, error = %e, "retiring a deleted API failed; convergence retries");
                        EdgeOutcome::failed(sink.address(), None, e)
                    }
                }
            }
        }))
        .await;
        if outcomes.iter().all(|o| o.error.is_none()) {
            self.snapshots.remove_api(api)?;
            self.store.retired(lease).await?;
            tracing::info!(
                api,
                edges = outcomes.len(),
                "deleted API retired from every edge"
            );
        }
        Ok(outcomes)
    }

    // ---- convergence ----

    /// Brings every edge of the API to the store's desired state, waiting for the lease.
    pub async fn converge(&self, api: &str) -> crate::Result<ConvergeReport> {
        let guard = self.acquire(api, "converge").await?;
        let result = self.converge_leased(&guard.lease).await;
        guard.release().await;
        result
    }

    /// One round over every API the store knows, as `tablecast serve` runs it periodically:
    /// access is re-applied (edges skip a revision they hold), and an API whose edges disagree
    /// with the store is converged if its lease is free (else the operation holding it does).
    pub async fn converge_all(&self) -> crate::Result<Vec<ConvergeReport>> {
        let states = self.store.api_states().await?;
        // A few APIs at a time, so that one with an unreachable edge (connect timeouts) does
        // not hold up the round for the others.
        let reports: Vec<Option<ConvergeReport>> = futures::stream::iter(states)
            .map(|state| async move {
                match self.converge_if_diverged(&state).await {
                    Ok(report) => report,
                    Err(e) => {
                        tracing::warn!(api = %state.api, error = %e, "converging failed");
                        None
                    }
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        Ok(reports.into_iter().flatten().collect())
    }

    /// Re-applies access on every edge of one API, and converges it if an edge disagrees with
    /// the store and the lease is free.
    async fn converge_if_diverged(
        &self,
        state: &crate::store::ApiState,
    ) -> crate::Result<Option<ConvergeReport>> {
        let diverged = state.retiring || self.diverges(state).await?;
        if !diverged {
            return Ok(None);
        }
        let Some(guard) = self.try_acquire(&state.api, "converge").await? else {
            return Ok(None);
        };
        let report = self.converge_leased(&guard.lease).await;
        guard.release().await;
        let report = report?;
        if report.converged {
            tracing::info!(api = %report.api, serving = ?report.serving, "edges converged");
        } else {
            tracing::warn!(api = %report.api, serving = ?report.serving, edges = ?report.edges, "edges not converged yet");
        }
        Ok(Some(report))
    }

    /// Re-applies access on every edge of a serving API; true if an edge does not serve what
    /// the store says (or cannot be asked), or the last operation left it converging.
    async fn diverges(&self, state: &crate::store::ApiState) -> crate::Result<bool> {
        let Some(serving) = state.serving else {
            return Ok(false);
        };
        let sinks = self.connect(&state.edges).await?;
        let access = self.store.access(&state.api).await?;
        let mut diverged = state.converging;
        for sink in &sinks {
            let agrees = async {
                sink.set_access(&state.api, &access).await?;
                Ok::<_, publisher::Error>(sink.versions(&state.api).await?.serving == Some(serving))
            };
            diverged |= !matches!(agrees.await, Ok(true));
        }
        Ok(diverged)
    }

    /// Lease held: every edge to the store's serving version, forward (switch to a held
    /// version, or refill it from its snapshot) or, when a reachable edge can have it neither
    /// way, back to the previous version.
    async fn converge_leased(&self, lease: &Lease) -> crate::Result<ConvergeReport> {
        let api = lease.api.as_str();
        let Some(state) = self.store.api_state(api).await? else {
            return Ok(ConvergeReport {
                api: api.to_string(),
                serving: None,
                converged: true,
                edges: Vec::new(),
            });
        };
        if state.retiring {
            let edges = self.retire_leased(lease).await?;
            return Ok(ConvergeReport {
                api: api.to_string(),
                serving: None,
                converged: edges.iter().all(|o| o.error.is_none()),
                edges,
            });
        }
        let Some(mut target) = state.serving else {
            return Ok(ConvergeReport {
                api: api.to_string(),
                serving: None,
                converged: true,
                edges: Vec::new(),
            });
        };
        let sinks = self.connect(&state.edges).await?;
        let access = self.store.access(api).await?;
        let mut outcomes = Vec::with_capacity(sinks.len());
        let mut cannot = false;
        for sink in &sinks {
            let outcome = self.bring(sink.as_ref(), lease, target, &access).await;
            cannot |= outcome.action == "missing";
            outcomes.push(outcome);
        }
        if cannot && let Some(previous) = state.previous {
            // Forward is impossible on an edge that answers: go back, if every edge that
            // answers can have the previous version.
            let mut all = true;
            for (sink, o) in sinks.iter().zip(&outcomes) {
                if o.action != "failed" && !self.can_have(sink.as_ref(), api, previous).await {
                    all = false;
                }
            }
            if all && self.store.intend(lease, previous, &state.edges).await? {
                tracing::warn!(
                    api,
                    from = target,
                    to = previous,
                    "version cannot be had on every edge: going back"
                );
                target = previous;
                outcomes.clear();
                for sink in &sinks {
                    outcomes.push(self.bring(sink.as_ref(), lease, target, &access).await);
                }
            }
        }
        let converged = outcomes.iter().all(|o| o.serving == Some(target));
        if converged {
            self.store.converged(lease, target).await?;
        }
        Ok(ConvergeReport {
            api: api.to_string(),
            serving: Some(target),
            converged,
            edges: outcomes,
        })
    }

    /// Whether an edge holds `version` or a snapshot can refill it there.
    async fn can_have(&self, sink: &dyn EdgeSink, api: &str, version: u64) -> bool {
        matches!(sink.holds(api, version).await, Ok(true))
            || matches!(self.snapshot_of(api, version).await, Ok(Some(_)))
    }

    /// The snapshot's manifest of a version, if the store recorded one and it is on disk.
    async fn snapshot_of(&self, api: &str, version: u64) -> crate::Result<Option<VersionManifest>> {
        let Some(recorded) = self
            .store
            .version(api, version)
            .await?
            .and_then(|v| v.snapshot)
        else {
            return Ok(None);
        };
        Ok(match self.snapshots.manifest(api, version) {
            Ok(on_disk) if on_disk.checksum == recorded.checksum => Some(on_disk),
            _ => None,
        })
    }

    /// One edge to `target` with `access`: `in_place`, `switched`, `refilled`, `missing` (the
    /// edge answers but holds neither the version nor can a snapshot refill it) or `failed`.
    async fn bring(
        &self,
        sink: &dyn EdgeSink,
        lease: &Lease,
        target: u64,
        access: &Access,
    ) -> EdgeOutcome {
        let api = lease.api.as_str();
        let edge = sink.address();
        let before = match sink.versions(api).await {
            Ok(v) => v.serving,
            Err(e) => return EdgeOutcome::failed(edge, None, e),
        };
        if let Err(e) = sink.set_access(api, access).await {
            return EdgeOutcome::failed(edge, before, e);
        }
        if before == Some(target) {
            return EdgeOutcome {
                edge: edge.to_string(),
                before,
                serving: before,
                action: "in_place".into(),
                error: None,
            };
        }
        let mut action = "switched";
        match sink.holds(api, target).await {
            Ok(true) => {}
            Ok(false) => match self.snapshot_of(api, target).await {
                Ok(Some(manifest)) => {
                    if let Err(e) =
                        publisher::snapshot::refill(sink, &self.snapshots, &manifest).await
                    {
                        return EdgeOutcome::failed(edge, before, e);
                    }
                    action = "refilled";
                }
                Ok(None) => {
                    return EdgeOutcome {
                        action: "missing".into(),
                        ..EdgeOutcome::failed(
                            edge,
                            before,
                            format!(
                                "holds no version {target} of `{api}` and no snapshot of it exists"
                            ),
                        )
                    };
                }
                Err(e) => return EdgeOutcome::failed(edge, before, e),
            },
            Err(e) => return EdgeOutcome::failed(edge, before, e),
        }
        match sink
            .switch(api, target, lease.fence, SwitchMode::Explicit)
            .await
        {
            Ok(_) => {
                tracing::info!(edge, api, version = target, action, "edge converged");
                EdgeOutcome {
                    edge: edge.to_string(),
                    before,
                    serving: Some(target),
                    action: action.into(),
                    error: None,
                }
            }
            Err(e) => EdgeOutcome::failed(edge, before, e),
        }
    }

    // ---- access ----

    /// Pushes the store's current access of the API to each of its edges (each with a time
    /// limit). A failed push is reported, not fatal: the edge gets the set at the next
    /// convergence, and never an older one.
    pub async fn apply_access(&self, api: &str) -> crate::Result<Vec<EdgeOutcome>> {
        let Some(state) = self.store.api_state(api).await? else {
            return Ok(Vec::new());
        };
        let access = self.store.access(api).await?;
        let sinks = self.connect(&state.edges).await?;
        Ok(join_all(sinks.iter().map(|sink| {
            let access = &access;
            async move {
                let pushed = tokio::time::timeout(ACCESS_TIMEOUT, sink.set_access(api, access)).await;
                let error = match pushed {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!("timed out after {} s", ACCESS_TIMEOUT.as_secs())),
                };
                if let Some(e) = &error {
                    tracing::warn!(edge = sink.address(), api, error = %e, "applying access failed; the next convergence retries");
                }
                EdgeOutcome {
                    edge: sink.address().to_string(),
                    before: None,
                    serving: None,
                    action: if error.is_some() { "failed" } else { "access" }.into(),
                    error,
                }
            }
        }))
        .await)
    }
}
