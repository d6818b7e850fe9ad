//! The dashboard API: analysts browse catalogs, define lookup APIs over tables, plan and publish
//! them to edge caches, follow progress live, roll back, and manage tokens.
//!
//! - [`store`]: the durable store (SQLite through sqlx), shared with the CLI.
//! - [`control`]: the control plane, the one module that changes what edges serve.
//! - [`runner`]: the supervised job runner, a durable queue in the store with leases,
//!   one job per API at a time, retries with backoff for transient failures.
//! - [`routes`]: the REST API under `/api`, described by [`openapi::ApiDoc`].
//! - [`auth`]: bearer tokens (admin from the configuration, analysts' hashed in the store).
//!
//! Everything outside this crate that the dashboard needs (catalogs, engines, edges) comes
//! through the [`Stack`] trait, which the `tablecast` binary implements.

pub mod auth;
pub mod canary;
pub mod cluster;
pub mod config;
pub mod control;
pub mod error;
pub mod freshness;
pub mod metrics;
pub mod openapi;
pub mod preview;
pub mod routes;
pub mod runner;
pub mod store;
pub mod traffic;
pub mod triggers;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

pub use config::{NamedCatalog, ServerConfig};
pub use error::{Error, Result};

use crate::metrics::Metrics;
use crate::store::Store;

/// What the dashboard needs from the rest of Tablecast; the binary implements it.
#[async_trait]
pub trait Stack: Send + Sync + 'static {
    /// A publisher over the given catalog URI (thrift://… or file:///…).
    async fn publisher(
        &self,
        catalog_uri: &str,
    ) -> publisher::Result<publisher::publish::Publisher>;
    /// The catalog alone, for callers that read metadata only (browsing, the table watcher);
    /// a stack that keeps catalogs open overrides this to skip building a publisher.
    async fn catalog(
        &self,
        catalog_uri: &str,
    ) -> publisher::Result<Arc<dyn publisher::catalog::Catalog>> {
        Ok(self.publisher(catalog_uri).await?.catalog)
    }
    /// An edge sink for a Redis URL.
    async fn edge(&self, url: &str) -> publisher::Result<Arc<dyn publisher::sink::EdgeSink>>;
    /// Lease and version settings of publishes, which rollbacks follow too.
    fn publish_config(&self) -> publisher::publish::PublishConfig {
        publisher::publish::PublishConfig::default()
    }
}

/// A job's new event, announced to live event streams (which then read it from the store).
#[derive(Debug, Clone)]
pub struct JobSignal {
    pub job: String,
    pub seq: i64,
}

/// Everything a handler or runner needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: Store,
    pub stack: Arc<dyn Stack>,
    pub control: control::ControlPlane,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down: runners stop claiming, event streams end.
    pub shutdown: CancellationToken,
    pub(crate) signals: broadcast::Sender<JobSignal>,
    /// Wakes idle runners when a job is queued or an API's job finishes.
    pub(crate) wake: Arc<Notify>,
    pub(crate) admin_digest: [u8; 32],
    /// The requests-in-flight cap.
    pub(crate) in_flight: http_serve::InFlight,
    /// What every API's lookups are doing, scraped from the lookup services.
    pub traffic: Arc<traffic::Traffic>,
    /// This process's name in the cluster: job claims and roles are held under it.
    pub instance: String,
    /// Whether this instance runs the cluster's triggers and reconcile loop now.
    pub coordinator: cluster::Coordinator,
}

impl AppState {
    /// Checks the configuration, opens the store and applies its migrations.
    pub async fn new(config: ServerConfig, stack: Arc<dyn Stack>) -> Result<AppState> {
        config.check().map_err(Error::Config)?;
        let admin = config.admin_token.clone().unwrap_or_default();
        let store = Store::open(&config.database_url()).await?;
        let publish_config = stack.publish_config();
        let traffic = Arc::new(traffic::Traffic::new(
            config.traffic.clone(),
            config
                .lookup_base_urls
                .values()
                .chain(publish_config.lookups.values())
                .cloned()
                .collect(),
        ));
        let control = control::ControlPlane::new(
            store.clone(),
            Arc::clone(&stack),
            Arc::new(publisher::snapshot::SnapshotStore::new(
                config.snapshot_dir(),
            )),
            publish_config,
        );
        let (signals, _) = broadcast::channel(1024);
        let metrics = Arc::new(Metrics::new());
        let in_flight = http_serve::InFlight::new(&config.limits, metrics.refusal());
        Ok(AppState {
            config: Arc::new(config),
            store,
            stack,
            control,
            metrics,
            in_flight,
            traffic,
            shutdown: CancellationToken::new(),
            signals,
            wake: Arc::new(Notify::new()),
            instance: cluster::instance_id(),
            coordinator: Default::default(),
            admin_digest: Sha256::digest(admin.as_bytes()).into(),
        })
    }

    /// Appends an event to a job's log and tells live streams.
    pub(crate) async fn emit(&self, job: &str, event: &serde_json::Value) -> Result<i64> {
        let seq = self.store.append_event(job, event).await?;
        self.signal(job, seq);
        Ok(seq)
    }

    pub(crate) fn signal(&self, job: &str, seq: i64) {
        let _ = self.signals.send(JobSignal {
            job: job.to_string(),
            seq,
        });
    }
}

/// The HTTP routes: `/api/…` (bearer token required), `/healthz`, `/metrics`, and the web UI
/// at `/` (assets under `/ui/`).
pub fn router(state: AppState) -> Router {
    use routes::{apis, catalogs, jobs, tokens, ui};
    let api = Router::new()
        .route("/catalogs", get(catalogs::list_catalogs))
        .route(
            "/catalogs/{catalog}/databases",
            get(catalogs::list_databases),
        )
        .route(
            "/catalogs/{catalog}/databases/{db}/tables",
            get(catalogs::list_tables),
        )
        .route(
            "/catalogs/{catalog}/tables/{table}",
            get(catalogs::describe_table),
        )
        .route("/apis", get(apis::list_apis).post(apis::create_api))
        .route("/apis/_validate", post(apis::validate_api))
        .route(
            "/apis/{name}",
            get(apis::get_api)
                .put(apis::update_api)
                .delete(apis::delete_api),
        )
        .route("/apis/{name}/revisions", get(apis::list_revisions))
        .route("/apis/{name}/plan", post(apis::plan_api))
        .route("/apis/{name}/publish", post(apis::publish_api))
        .route("/apis/{name}/rollback", post(apis::rollback_api))
        .route("/apis/{name}/versions", get(apis::api_versions))
        .route("/apis/{name}/traffic", get(apis::api_traffic))
        .route("/traffic", get(apis::traffic_overview))
        .route("/apis/{name}/try", post(ui::try_lookup))
        .route(
            "/apis/{name}/tokens",
            get(tokens::list_api_tokens).post(tokens::create_api_token),
        )
        .route("/tokens/{id}", delete(tokens::revoke_token))
        .route(
            "/users/tokens",
            get(tokens::list_analyst_tokens).post(tokens::create_analyst_token),
        )
        .route("/me", get(tokens::me))
        .route("/jobs", get(jobs::list_jobs))
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/jobs/{id}/events", get(jobs::job_events))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(routes::api_not_found)
        .method_not_allowed_fallback(routes::api_method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_user,
        ));
    Router::new()
        .nest("/api", api)
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::asset))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admit_request,
        ))
        .with_state(state)
}

/// Every request first: at most `max_in_flight` run at once (503 `overloaded` past it), and a
/// body announced larger than `max_body_bytes` is refused (413 `too_large`) before it is read.
/// Event streams hold no permit once they have started: they would starve everything else.
async fn admit_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let max = state.config.max_body_bytes;
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > max) {
        return Error::TooLarge(format!(
            "the request body is over {max} bytes (max_body_bytes)"
        ))
        .into_response();
    }
    let Some(permit) = state.in_flight.try_enter() else {
        return Error::Overloaded(format!(
            "over {} requests in flight; retry shortly",
            state.config.limits.max_in_flight
        ))
        .into_response();
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

/// Binds `config.listen` and serves until `shutdown` completes; see [`serve_on`].
pub async fn serve(
    config: ServerConfig,
    stack: Arc<dyn Stack>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| Error::Io {
            context: format!("binding {}", config.listen),
            source: e,
        })?;
    serve_on(listener, config, stack, shutdown).await
}

/// Serves the dashboard on a bound listener with its job runners until `shutdown` completes,
/// then shuts down gracefully: no new jobs are claimed, event streams end, requests in flight
/// finish, and running jobs get `shutdown_grace_ms` to finish before they are handed back to
/// the queue.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    stack: Arc<dyn Stack>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let state = AppState::new(config, stack).await?;
    let addr = listener.local_addr().map_err(|e| Error::Io {
        context: "listener address".into(),
        source: e,
    })?;
    let membership = cluster::join(&state).await;
    let runners = runner::start(state.clone()).await;
    let converger = start_convergence(state.clone());
    let triggers = triggers::start(state.clone());
    let scraper = traffic::start(state.clone());
    tracing::info!(%addr, runners = state.config.runners, "dashboard listening");
    let token = state.shutdown.clone();
    let limits = state.config.limits.clone();
    let served = http_serve::serve(
        listener,
        http_serve::router_service(router(state.clone())),
        &limits,
        // Handlers wait on the store and the edges, not on sockets: the shared runtime.
        http_serve::Threads::Shared,
        state.metrics.refusal(),
        async move {
            tokio::select! {
                () = shutdown => {}
                () = token.cancelled() => {}
            }
            token.cancel();
        },
    )
    .await;
    state.shutdown.cancel();
    runners.join().await;
    for task in membership {
        let _ = task.await;
    }
    converger.abort();
    triggers.abort();
    scraper.abort();
    served.map_err(|e| Error::Io {
        context: "serving HTTP".into(),
        source: e,
    })
}

/// Converges every API's edges to the store every `reconcile_ms` (0: never), on the cluster's
/// coordinator: an edge that was unreachable, or came back empty, gets the version and access
/// the store says.
fn start_convergence(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if state.config.reconcile_ms == 0 {
            return;
        }
        let every = std::time::Duration::from_millis(state.config.reconcile_ms.max(50));
        loop {
            if state.coordinator.is_held()
                && let Err(e) = state.control.converge_all().await
            {
                tracing::warn!(error = %e, "converging edges failed; retrying next round");
            }
            tokio::select! {
                () = state.shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
    })
}
