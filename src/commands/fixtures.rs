use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum FixturesCommand {
    /// Write the fixture tables as Hive-style Parquet under DIR/<db>/<table>/.
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// Every row count is multiplied by this.
        #[arg(long, default_value_t = 1)]
        scale: u32,
        #[arg(long, default_value_t = fixtures::DEFAULT_SEED)]
        seed: u64,
    },
    /// Register generated tables in a Hive metastore as external Parquet tables.
    Load {
        #[arg(long)]
        metastore: String,
        #[arg(long)]
        warehouse: PathBuf,
    },
}

pub async fn run(command: FixturesCommand, _config: &Config) -> Result<ExitCode> {
    match command {
        FixturesCommand::Generate { out, scale, seed } => {
            let started = std::time::Instant::now();
            let tables = tokio::task::spawn_blocking(move || {
                fixtures::generate(&fixtures::GenerateOptions { out, scale, seed })
            })
            .await??;
            for t in &tables {
                println!(
                    "{}.{}: {} rows in {} files at {}",
                    t.db,
                    t.table,
                    t.rows,
                    t.files.len(),
                    t.location.display()
                );
            }
            eprintln!("generated in {} ms", started.elapsed().as_millis());
        }
        FixturesCommand::Load {
            metastore,
            warehouse,
        } => {
            let addr = metastore
                .strip_prefix("thrift://")
                .context("--metastore must be thrift://host:port")?;
            let warehouse = std::fs::canonicalize(&warehouse)
                .with_context(|| format!("warehouse {}", warehouse.display()))?;
            for t in fixtures::metastore::register(addr, &warehouse).await? {
                println!("registered {t}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
