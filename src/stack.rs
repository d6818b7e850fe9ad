//! Wiring: concrete catalogs, engines and edges for the publisher, from the configuration.

use std::sync::Arc;

use anyhow::{Context, Result};
use publisher::publish::Publisher;
use publisher::snapshot::SnapshotStore;

use crate::config::Config;

pub async fn publisher(config: &Config, metastore: &str) -> Result<Publisher> {
    let catalog = publisher::catalog::open(metastore, &config.catalog).await?;
    let fallback: Option<Arc<dyn publisher::engine::Engine>> = match fallback::SparkEngine::new(
        config.fallback.clone(),
    ) {
        Ok(engine) => Some(Arc::new(engine)),
        Err(e) => {
            tracing::warn!(error = %e, "the Spark fallback is not available; tripped guards will fail the job");
            None
        }
    };
    Ok(Publisher {
        catalog,
        fasttrack: Arc::new(fasttrack::FastTrack::default()),
        fallback,
        limits: config.guards.clone(),
        config: config.publish.clone(),
        snapshots: Some(Arc::new(SnapshotStore::new(config.snapshot_dir()))),
    })
}

pub async fn edge(address: &str, config: &Config) -> Result<Arc<edge_cache::RedisEdge>> {
    let edge = edge_cache::RedisEdge::connect_with(address, config.edge.options())
        .await
        .with_context(|| format!("connecting to edge {address}"))?;
    Ok(Arc::new(edge))
}

/// What the dashboard's job runner needs, built from the configuration: publishers per catalog,
/// one Redis connection per edge (kept, since an edge holds per-process staging state).
pub struct AppStack {
    config: Config,
    edges: tokio::sync::Mutex<std::collections::HashMap<String, Arc<edge_cache::RedisEdge>>>,
}

impl AppStack {
    pub fn new(config: Config) -> Self {
        AppStack {
            config,
            edges: Default::default(),
        }
    }

    async fn redis_edge(&self, url: &str) -> publisher::Result<Arc<edge_cache::RedisEdge>> {
        let mut edges = self.edges.lock().await;
        if let Some(e) = edges.get(url) {
            return Ok(Arc::clone(e));
        }
        let edge = Arc::new(edge_cache::RedisEdge::lazy(
            url,
            self.config.edge.options(),
        )?);
        edges.insert(url.to_string(), Arc::clone(&edge));
        Ok(edge)
    }
}

#[async_trait::async_trait]
impl dashboard_api::Stack for AppStack {
    async fn publisher(&self, catalog_uri: &str) -> publisher::Result<Publisher> {
        publisher(&self.config, catalog_uri).await.map_err(|e| {
            match e.downcast::<publisher::Error>() {
                Ok(e) => e,
                Err(e) => publisher::Error::Config(format!("{e:#}")),
            }
        })
    }

    async fn edge(&self, url: &str) -> publisher::Result<Arc<dyn publisher::sink::EdgeSink>> {
        Ok(self.redis_edge(url).await?)
    }

    fn publish_config(&self) -> publisher::publish::PublishConfig {
        self.config.publish.clone()
    }

    async fn push_tokens(
        &self,
        url: &str,
        api: &str,
        hashes: &[String],
        protected: bool,
    ) -> publisher::Result<()> {
        Ok(self
            .redis_edge(url)
            .await?
            .set_token_hashes(api, hashes, protected)
            .await?)
    }
}
