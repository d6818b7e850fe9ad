use anyhow::{Result, bail};
use clap::Subcommand;
use std::net::SocketAddr;
use std::process::ExitCode;

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
    /// Refill an edge's Redis with what the control plane's store says the API serves there
    /// (the serving version from its snapshot, and who may read it): a reconcile of the API.
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
            edge_cache::serve(lookup, edge_cache::shutdown_signal()).await?;
        }
        EdgeCommand::Rehydrate { api, redis } => {
            let control = crate::stack::control(config).await?;
            let state = control.store().api_state(&api).await?;
            if !state.is_some_and(|s| s.edges.contains(&redis)) {
                bail!("{api} is not published to {redis} (see `tablecast versions --api {api}`)");
            }
            let report = control.converge(&api).await?;
            super::versions::print_convergence(std::slice::from_ref(&report));
            if !report.converged {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
