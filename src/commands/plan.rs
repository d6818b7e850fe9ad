use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use publisher::publish::Route;
use publisher::spec::ApiSpec;
use serde::Serialize;

use crate::config::Config;

#[derive(Args)]
pub struct PlanArgs {
    #[arg(long)]
    spec: PathBuf,
    #[arg(long)]
    metastore: Option<String>,
    /// auto (follow the guards), fasttrack or fallback.
    #[arg(long, default_value = "auto")]
    path: Route,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PlanReport<'a> {
    api: &'a str,
    table: String,
    path: String,
    reason: &'a str,
    guards: &'a [publisher::guards::GuardOutcome],
    files: usize,
    bytes: u64,
    partitions_selected: usize,
    partitions_total: usize,
    /// Storage listings and file footers this plan cost (the whole process: one plan).
    listings: u64,
    footers_read: u64,
    engine_plan: String,
}

pub async fn run(args: PlanArgs, config: &Config) -> Result<ExitCode> {
    let spec = ApiSpec::from_path(&args.spec)?;
    let uri = config.metastore(args.metastore.as_deref())?;
    let publisher = crate::stack::publisher(config, uri).await?;
    let plan = publisher.plan(&spec, args.path).await?;
    let engine_plan = match plan.path {
        publisher::engine::EnginePath::Fasttrack => {
            publisher.fasttrack.explain(&plan.job(uri)).await?
        }
        publisher::engine::EnginePath::Fallback => match &publisher.fallback {
            Some(f) => f.explain(&plan.job(uri)).await?,
            None => "no fallback engine configured".into(),
        },
    };
    let report = PlanReport {
        api: plan.spec.name(),
        table: plan.table.name.to_string(),
        path: plan.path.to_string(),
        reason: &plan.reason,
        guards: &plan.guards,
        files: plan.inspection.files.len(),
        bytes: plan.inspection.bytes(),
        partitions_selected: plan.inspection.partitions_selected,
        partitions_total: plan.inspection.partitions_total,
        listings: publisher::files::listings_made(),
        footers_read: publisher::files::footers_read(),
        engine_plan,
    };
    if args.json {
        super::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("API {} over {}", report.api, report.table);
    println!("path: {} ({})", report.path, report.reason);
    println!(
        "reads {} files, {} in {} of {} partitions (planning listed {} folders, read {} footers)",
        report.files,
        super::human_bytes(report.bytes),
        report.partitions_selected,
        report.partitions_total,
        report.listings,
        report.footers_read
    );
    println!(
        "\n{:<16} {:>16} {:>16}  {:<8} detail",
        "guard", "measured", "limit", "state"
    );
    for g in report.guards {
        let state = if g.tripped { "TRIPPED" } else { "ok" };
        println!(
            "{:<16} {:>16} {:>16}  {:<8} {}",
            g.name, g.measured, g.limit, state, g.detail
        );
    }
    println!("\n{}", report.engine_plan);
    Ok(ExitCode::SUCCESS)
}
