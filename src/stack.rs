//! Wiring: concrete catalogs, engines and edges for the publisher, from the configuration.

use std::sync::Arc;

use anyhow::{Context, Result};
use publisher::publish::Publisher;
use publisher::snapshot::SnapshotStore;

use crate::config::Config;

pub async fn publisher(config: &Config, metastore: &str) -> Result<Publisher> {
    let catalog = publisher::catalog::open(metastore, &config.catalog).await?;
    let fallback: Option<Arc<dyn publisher::engine::Engine>> = match fallback::SparkEngine::new(config.fallback.clone()) {
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

pub async fn edge(address: &str) -> Result<Arc<edge_cache::RedisEdge>> {
    let edge = edge_cache::RedisEdge::connect(address).await.with_context(|| format!("connecting to edge {address}"))?;
    Ok(Arc::new(edge))
}
