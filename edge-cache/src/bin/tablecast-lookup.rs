//! `tablecast-lookup`: the lookup service alone, for edge nodes. It serves the same routes as
//! `tablecast edge serve` from the same configuration file (`[lookup]` and `[log]`; other
//! sections are left to the binaries that own them), but links only Redis, HTTP and the edge
//! contract: no metastore client, Parquet reader or query engine on a node that faces the
//! network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use edge_cache::LookupConfig;
use edge_contract::settings::{Layered, LogConfig};
use serde::Deserialize;

/// Answer `GET /v1/{api}/{key}` from one edge Redis.
#[derive(Parser)]
#[command(name = "tablecast-lookup", version)]
struct Cli {
    /// Configuration file (default: ./tablecast.toml if present; TABLECAST_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The edge's Redis, overriding `[lookup] redis_url`.
    #[arg(long)]
    redis: Option<String>,
    /// Where to listen, overriding `[lookup] listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// The sections of `tablecast.toml` this binary reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Settings {
    lookup: LookupConfig,
    log: LogConfig,
}

fn load(cli: &Cli) -> Result<Settings, String> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let layered = Layered::load(cli.config.as_deref(), &env).map_err(|e| e.to_string())?;
    let mut settings: Settings = toml::Value::Table(layered.table.clone())
        .try_into()
        .map_err(|e| format!("{}: {e}", layered.origin()))?;
    if let Some(redis) = &cli.redis {
        settings.lookup.redis_url = redis.clone();
    }
    if let Some(listen) = cli.listen {
        settings.lookup.listen = listen;
    }
    Ok(settings)
}

fn init_tracing(log: &LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match load(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(edge_cache::serve(
        settings.lookup,
        edge_cache::shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
