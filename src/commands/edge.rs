use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Subcommand;
use publisher::snapshot::SnapshotStore;

use crate::config::Config;

#[derive(Subcommand)]
pub enum EdgeCommand {
    /// Run the lookup HTTP service in front of one Redis.
    Serve {
        #[arg(long)]
        redis: Option<String>,
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Refill an edge's Redis with an API's last committed snapshot.
    Rehydrate {
        #[arg(long)]
        api: String,
        #[arg(long)]
        redis: String,
    },
}

pub async fn run(command: EdgeCommand, config: &Config) -> Result<ExitCode> {
    match command {
        EdgeCommand::Serve { redis, listen } => {
            let mut lookup = config.lookup.clone();
            if let Some(r) = redis {
                lookup.redis_url = r;
            }
            if let Some(l) = listen {
                lookup.listen = l;
            }
            if lookup.snapshot_dir.is_none() {
                lookup.snapshot_dir = Some(config.snapshot_dir());
            }
            edge_cache::serve(lookup, shutdown_signal()).await?;
        }
        EdgeCommand::Rehydrate { api, redis } => {
            let edge = crate::stack::edge(&redis, config).await?;
            let snapshots = Arc::new(SnapshotStore::new(config.snapshot_dir()));
            let outcome = edge_cache::rehydrate(&edge, &snapshots, &api).await?;
            println!("{api} on {redis}: {outcome:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or Ctrl-C: servers then drain and stop.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
