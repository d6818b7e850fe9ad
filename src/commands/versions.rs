use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

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
    let recorded;
    let addresses = if args.edges.is_empty() && config.edges.is_empty() {
        let control = crate::stack::control(config).await?;
        recorded = control
            .store()
            .api_state(&args.api)
            .await?
            .map(|s| s.edges)
            .unwrap_or_default();
        if recorded.is_empty() {
            bail!(
                "{} was never published; give --edge redis://host:port",
                args.api
            );
        }
        &recorded[..]
    } else {
        config.edges(&args.edges)?
    };
    for address in addresses {
        let edge = crate::stack::edge(address, config).await?;
        let mut v = edge.versions(&args.api).await?;
        // A compressed version's dictionary is tens of KB of hex that says nothing to a reader.
        for m in &mut v.kept {
            if let Some(c) = &mut m.compression {
                c.dictionary = format!("({} bytes)", c.dictionary.len() / 2);
            }
        }
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

/// Switches every edge back to a kept version, through the control plane (under the API's
/// lease, fenced, converged if an edge fails). Instant: the version's keys are still there.
pub async fn rollback(args: RollbackArgs, config: &Config) -> Result<ExitCode> {
    let control = crate::stack::control(config).await?;
    let edges = if args.edges.is_empty() {
        None
    } else {
        Some(&args.edges[..])
    };
    let report = control.rollback(&args.api, args.to, edges).await?;
    for e in &report.edges {
        eprintln!("{e}");
    }
    if !report.committed {
        bail!(
            "{} could not be switched to version {} on every edge; `tablecast reconcile --api {}` converges them once the edges answer",
            args.api,
            report.to,
            args.api
        );
    }
    println!(
        "{} now serves version {} (was {}) on {} edge(s)",
        args.api,
        report.to,
        report
            .from
            .map(|v| v.to_string())
            .unwrap_or_else(|| "nothing".into()),
        report.edges.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ReconcileArgs {
    /// One API (default: every API the store knows).
    #[arg(long)]
    api: Option<String>,
    #[arg(long)]
    json: bool,
}

/// Converges edges to the store; exits non-zero unless every edge converged.
pub async fn reconcile(args: ReconcileArgs, config: &Config) -> Result<ExitCode> {
    let control = crate::stack::control(config).await?;
    let apis = match args.api {
        Some(api) => vec![api],
        None => control
            .store()
            .api_states()
            .await?
            .into_iter()
            .map(|s| s.api)
            .collect(),
    };
    let mut reports = Vec::with_capacity(apis.len());
    for api in &apis {
        reports.push(
            control
                .converge(api)
                .await
                .with_context(|| format!("converging {api}"))?,
        );
    }
    if args.json {
        super::print_json(&reports)?;
    } else {
        print_convergence(&reports);
    }
    Ok(if reports.iter().all(|r| r.converged) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn print_convergence(reports: &[dashboard_api::control::ConvergeReport]) {
    for r in reports {
        println!(
            "{}: serving {} — {}",
            r.api,
            r.serving
                .map(|v| format!("v{v}"))
                .unwrap_or_else(|| "nothing".into()),
            if r.converged {
                "converged"
            } else {
                "NOT converged"
            }
        );
        for e in &r.edges {
            println!("  {e}");
        }
    }
}
