//! Wiring: concrete catalogs, engines and edges for the publisher, from the configuration.

use std::sync::Arc;

use anyhow::{Context, Result};
use dashboard_api::control::ControlPlane;
use dashboard_api::store::{ApiRow, Store};
use publisher::publish::Publisher;
use publisher::snapshot::SnapshotStore;
use publisher::spec::ApiSpec;

use crate::config::Config;

pub async fn publisher(config: &Config, metastore: &str) -> Result<Publisher> {
    let catalog = publisher::catalog::open(metastore, &config.catalog).await?;
    Ok(publisher_over(config, catalog))
}

/// A publisher reading through `catalog`.
fn publisher_over(config: &Config, catalog: Arc<dyn publisher::catalog::Catalog>) -> Publisher {
    let fallback: Option<Arc<dyn publisher::engine::Engine>> = match fallback::SparkEngine::new(
        config.fallback.clone(),
    ) {
        Ok(engine) => Some(Arc::new(engine)),
        Err(e) => {
            tracing::warn!(error = %e, "the Spark fallback is not available; tripped guards will fail the job");
            None
        }
    };
    Publisher {
        catalog,
        fasttrack: Arc::new(fasttrack::FastTrack::default()),
        fallback,
        limits: config.guards.clone(),
        config: config.publish.clone(),
        snapshots: Some(Arc::new(SnapshotStore::new(config.snapshot_dir()))),
    }
}

pub async fn edge(address: &str, config: &Config) -> Result<Arc<edge_cache::RedisEdge>> {
    let edge = edge_cache::RedisEdge::connect_with(address, config.edge.options())
        .await
        .with_context(|| format!("connecting to edge {address}"))?;
    Ok(Arc::new(edge))
}

/// What the dashboard's job runner needs, built from the configuration: publishers per catalog,
/// one Redis connection per edge (kept, since an edge holds per-process staging state), and one
/// catalog per metastore URI, kept so that validating, planning and browsing reuse its
/// connections (the metastore client pools them and reconnects one that broke).
pub struct AppStack {
    config: Config,
    edges: tokio::sync::Mutex<std::collections::HashMap<String, Arc<edge_cache::RedisEdge>>>,
    catalogs:
        tokio::sync::Mutex<std::collections::HashMap<String, Arc<dyn publisher::catalog::Catalog>>>,
}

impl AppStack {
    pub fn new(config: Config) -> Self {
        AppStack {
            config,
            edges: Default::default(),
            catalogs: Default::default(),
        }
    }

    async fn redis_edge(&self, url: &str) -> publisher::Result<Arc<edge_cache::RedisEdge>> {
        let mut edges = self.edges.lock().await;
        if let Some(e) = edges.get(url) {
            return Ok(Arc::clone(e));
        }
        let edge = Arc::new(
            edge_cache::RedisEdge::lazy(url, self.config.edge.options())
                .map_err(edge_contract::EdgeError::from)?,
        );
        edges.insert(url.to_string(), Arc::clone(&edge));
        Ok(edge)
    }
}

#[async_trait::async_trait]
impl dashboard_api::Stack for AppStack {
    async fn publisher(&self, catalog_uri: &str) -> publisher::Result<Publisher> {
        let catalog = self.catalog(catalog_uri).await?;
        Ok(publisher_over(&self.config, catalog))
    }

    async fn catalog(
        &self,
        catalog_uri: &str,
    ) -> publisher::Result<Arc<dyn publisher::catalog::Catalog>> {
        let mut catalogs = self.catalogs.lock().await;
        if let Some(c) = catalogs.get(catalog_uri) {
            return Ok(Arc::clone(c));
        }
        let opened = publisher::catalog::open(catalog_uri, &self.config.catalog).await?;
        catalogs.insert(catalog_uri.to_string(), Arc::clone(&opened));
        Ok(opened)
    }

    async fn edge(&self, url: &str) -> publisher::Result<Arc<dyn publisher::sink::EdgeSink>> {
        Ok(self.redis_edge(url).await?)
    }

    fn publish_config(&self) -> publisher::publish::PublishConfig {
        self.config.publish.clone()
    }
}

/// The control plane over the state directory's store (the one `tablecast serve` uses), for a
/// CLI command. Imports, once, the token files earlier CLIs kept in the state directory.
pub async fn control(config: &Config) -> Result<ControlPlane> {
    let dashboard = crate::commands::serve::dashboard_config(config);
    let store = Store::open(&dashboard.database_url())
        .await
        .with_context(|| {
            format!(
                "opening the control-plane store {}",
                dashboard.database_url()
            )
        })?;
    crate::tokens::import_legacy(&store, &config.tokens_dir()).await?;
    Ok(ControlPlane::new(
        store,
        Arc::new(AppStack::new(config.clone())),
        Arc::new(SnapshotStore::new(config.snapshot_dir())),
        config.publish.clone(),
    ))
}

/// Records a spec published from the CLI as the API's definition in the store, so that the
/// dashboard lists it (owner `cli`). Its catalog and edge group are the dashboard's ones with
/// the same URI and edges, else the URI and `cli`. Publishing never un-protects an API: the
/// store's protection stays on even if the spec file says otherwise.
pub async fn register_api(
    store: &Store,
    dashboard: &dashboard_api::ServerConfig,
    spec: &ApiSpec,
    catalog_uri: &str,
    edges: &[String],
) -> Result<()> {
    let catalog = dashboard
        .catalogs
        .iter()
        .find(|c| c.uri == catalog_uri)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| catalog_uri.to_string());
    let mut wanted: Vec<&String> = edges.iter().collect();
    wanted.sort();
    let group = dashboard
        .edge_groups
        .iter()
        .find(|(_, urls)| {
            let mut urls: Vec<&String> = urls.iter().collect();
            urls.sort();
            urls == wanted
        })
        .map(|(name, _)| name.clone())
        .unwrap_or_else(|| "cli".to_string());
    match store.api(&spec.name).await {
        Ok(existing) => {
            let mut spec = spec.clone();
            spec.protected |= existing.protected;
            if spec != existing.spec || catalog != existing.catalog {
                store
                    .update_api(
                        &spec.name,
                        &dashboard_api::store::ApiUpdate {
                            spec: &spec,
                            catalog: &catalog,
                            edge_group: &existing.edge_group,
                            editors: &existing.editors,
                            ceilings: &existing.ceilings,
                        },
                        "cli",
                    )
                    .await?;
            }
        }
        Err(dashboard_api::Error::NotFound { .. }) => {
            store
                .create_api(&ApiRow::new(spec.clone(), &catalog, "cli", &group))
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
