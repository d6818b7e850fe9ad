//! Wiring: concrete catalogs, engines and edges for the publisher, from the configuration.

use std::sync::Arc;

use anyhow::Result;
use publisher::publish::Publisher;
use publisher::snapshot::SnapshotStore;

use crate::config::Config;

pub async fn publisher(config: &Config, metastore: &str) -> Result<Publisher> {
    let catalog = publisher::catalog::open(metastore, &config.catalog).await?;
    Ok(Publisher {
        catalog,
        fasttrack: Arc::new(fasttrack::FastTrack::default()),
        fallback: None,
        limits: config.guards.clone(),
        config: config.publish.clone(),
        snapshots: Some(Arc::new(SnapshotStore::new(config.snapshot_dir()))),
    })
}
