use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use crate::config::Config;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `[dashboard] listen`).
    #[arg(long)]
    listen: Option<String>,
}

/// The dashboard: REST API, UI and the durable job runner.
pub async fn run(args: ServeArgs, config: &Config) -> Result<ExitCode> {
    let mut dashboard = dashboard_config(config);
    if let Some(l) = args.listen {
        dashboard.listen = l;
    }
    let stack = Arc::new(crate::stack::AppStack::new(config.clone()));
    dashboard_api::serve(dashboard, stack, edge_cache::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The `[dashboard]` section completed from the top-level settings it shares: the state
/// directory, the default catalog and the default edges.
pub fn dashboard_config(config: &Config) -> dashboard_api::ServerConfig {
    let mut d = config.dashboard.clone();
    if d.state_dir.as_os_str().is_empty()
        || d.state_dir == dashboard_api::ServerConfig::default().state_dir
    {
        d.state_dir = config.state_dir.clone();
    }
    if d.catalogs.is_empty()
        && let Some(uri) = &config.metastore
    {
        d.catalogs.push(dashboard_api::config::NamedCatalog {
            name: "default".into(),
            uri: uri.clone(),
        });
    }
    let group = d
        .edge_groups
        .entry(dashboard_api::config::DEFAULT_EDGE_GROUP.to_string())
        .or_default();
    if group.is_empty() {
        group.extend(config.edges.iter().cloned());
    }
    d
}
