//! `tablecast`: one binary, one subcommand per job. Commands are thin: they parse flags, load
//! the configuration, wire the crates together (see `stack`) and print.

mod commands;
mod config;
mod stack;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "tablecast",
    version,
    about = "Publish warehouse tables as low-latency lookup APIs"
)]
struct Cli {
    /// Configuration file (default: ./tablecast.toml if present; TABLECAST_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate fixture tables, or register them in a Hive metastore.
    #[command(subcommand)]
    Fixtures(commands::fixtures::FixturesCommand),
    /// List the tables of a catalog with location, format, partitions, files, bytes and rows.
    Tables(commands::tables::TablesArgs),
    /// Print the guard report, the chosen path and the engine's plan; reads no data.
    Plan(commands::plan::PlanArgs),
    /// Compute an API into a canonical JSONL file without publishing.
    Run(commands::run::RunArgs),
    /// Compute an API and publish it as a new version on every edge, atomically.
    Publish(commands::publish::PublishArgs),
    /// List the versions each edge keeps of an API.
    Versions(commands::versions::VersionsArgs),
    /// Serve a kept older version again, on every edge.
    Rollback(commands::versions::RollbackArgs),
    /// Bring every edge of an API (or of all APIs) to what the control plane's store says:
    /// the serving version (refilling an empty edge from its snapshot) and who may read it.
    Reconcile(commands::versions::ReconcileArgs),
    /// Access tokens of protected APIs.
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// The analysts' dashboard: REST API, UI and the durable job runner.
    Serve(commands::serve::ServeArgs),
    /// Start a local stack on loopback, publish the sample APIs and print where to look.
    Demo(commands::demo::DemoArgs),
    /// Edge node: the lookup service, and refilling a Redis with what it must serve.
    #[command(subcommand)]
    Edge(commands::edge::EdgeCommand),
}

/// glibc's malloc gives memory back to the kernel whenever the top of its heap is free, and a
/// query's batches are freed and allocated again all the time: each time, the kernel faults the
/// pages in and zeroes them again (16 % of `run product_stats` in `clear_page_erms`). 64 MB of
/// slack kept at the top of each heap stops the churn: `run product_stats` 1.13-1.17x,
/// `recent_activity` 1.05-1.09x; peak RSS of the scale-100 publish unchanged (bench/history.md).
fn keep_malloc_slack() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

fn main() -> ExitCode {
    keep_malloc_slack();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Fixtures(c) => commands::fixtures::run(c, &config).await,
            Command::Tables(a) => commands::tables::run(a, &config).await,
            Command::Plan(a) => commands::plan::run(a, &config).await,
            Command::Run(a) => commands::run::run(a, &config).await,
            Command::Publish(a) => commands::publish::run(a, &config).await,
            Command::Versions(a) => commands::versions::versions(a, &config).await,
            Command::Rollback(a) => commands::versions::rollback(a, &config).await,
            Command::Reconcile(a) => commands::versions::reconcile(a, &config).await,
            Command::Token(c) => commands::token::run(c, &config).await,
            Command::Edge(c) => commands::edge::run(c, &config).await,
            Command::Demo(a) => commands::demo::run(a, &config).await,
            Command::Serve(a) => commands::serve::run(a, &config).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}
