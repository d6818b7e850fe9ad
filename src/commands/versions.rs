use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use publisher::sink::EdgeSink;

use crate::config::Config;

#[derive(Args)]
pub struct VersionsArgs {
    #[arg(long)]
    api: String,
    #[arg(long = "edge")]
    edges: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RollbackArgs {
    #[arg(long)]
    api: String,
    #[arg(long = "edge")]
    edges: Vec<String>,
    /// The version to serve again; default: the newest kept version older than the serving one.
    #[arg(long)]
    to: Option<u64>,
}

pub async fn versions(args: VersionsArgs, config: &Config) -> Result<ExitCode> {
    let mut all = Vec::new();
    for address in config.edges(&args.edges)? {
        let edge = crate::stack::edge(address, config).await?;
        let v = edge.versions(&args.api).await?;
        all.push(serde_json::json!({ "edge": address, "serving": v.serving, "highest": v.highest, "kept": v.kept }));
        if !args.json {
            println!(
                "edge {address}: serving {}",
                v.serving
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "nothing".into())
            );
            for m in &v.kept {
                let mark = if Some(m.version) == v.serving {
                    "*"
                } else {
                    " "
                };
                println!(
                    "  {mark} v{:<6} {}  {:>9} keys  {:>10}  checksum {}  {}",
                    m.version,
                    m.created_at,
                    m.checksum.keys,
                    super::human_bytes(m.checksum.bytes),
                    m.checksum.hex(),
                    m.path
                );
            }
        }
    }
    if args.json {
        super::print_json(&all)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Switches every edge back to a kept version. Instant: the version's keys are still there.
pub async fn rollback(args: RollbackArgs, config: &Config) -> Result<ExitCode> {
    let addresses = config.edges(&args.edges)?;
    let mut edges = Vec::new();
    for a in addresses {
        edges.push(crate::stack::edge(a, config).await?);
    }
    let first = edges[0].versions(&args.api).await?;
    let serving = first
        .serving
        .with_context(|| format!("{} serves nothing on {}", args.api, addresses[0]))?;
    let target = match args.to {
        Some(v) => v,
        None => first
            .kept
            .iter()
            .map(|m| m.version)
            .filter(|v| *v < serving)
            .max()
            .with_context(|| {
                format!(
                    "no kept version of {} older than {serving} to roll back to",
                    args.api
                )
            })?,
    };
    // Check every edge keeps the target before switching any.
    for (edge, address) in edges.iter().zip(addresses) {
        let v = edge.versions(&args.api).await?;
        if !v.kept.iter().any(|m| m.version == target) {
            bail!(
                "edge {address} does not keep version {target} of {} (kept: {:?})",
                args.api,
                v.kept.iter().map(|m| m.version).collect::<Vec<_>>()
            );
        }
    }
    for (edge, address) in edges.iter().zip(addresses) {
        EdgeSink::commit(edge.as_ref(), &args.api, target)
            .await
            .with_context(|| format!("switching edge {address}"))?;
    }
    println!(
        "{} now serves version {target} (was {serving}) on {} edge(s)",
        args.api,
        edges.len()
    );
    Ok(ExitCode::SUCCESS)
}
