use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use publisher::publish::{Progress, ProgressFn, Route};
use publisher::report::PublishReport;
use publisher::spec::ApiSpec;

use crate::config::Config;
use dashboard_api::control::PublishOptions;

#[derive(Args)]
pub struct PublishArgs {
    #[arg(long)]
    spec: PathBuf,
    #[arg(long)]
    metastore: Option<String>,
    /// An edge Redis, `redis://host:port` (repeat for several edges).
    #[arg(long = "edge")]
    edges: Vec<String>,
    /// auto (follow the guards), fasttrack or fallback.
    #[arg(long, default_value = "auto")]
    path: Route,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Publish only if the source changed since the serving version (exit 0, "unchanged",
    /// otherwise): for orchestrators that call on every run.
    #[arg(long)]
    if_changed: bool,
    /// Commit even if the quality gates fail (recorded with the version).
    #[arg(long)]
    force: bool,
    /// Queue the publish on a running `tablecast serve` at this URL instead of running it here
    /// (for orchestrators: Airflow, Oozie, cron). The API is the one the spec names, as the
    /// dashboard stores it.
    #[arg(long, value_name = "DASHBOARD_URL")]
    via: Option<String>,
    /// With --via: wait for the job and exit with its outcome (0 only when committed).
    #[arg(long, requires = "via")]
    wait: bool,
    /// With --via: the dashboard token (an analyst's, or the admin's).
    #[arg(long, env = "TABLECAST_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub async fn run(args: PublishArgs, config: &Config) -> Result<ExitCode> {
    let spec = ApiSpec::from_path(&args.spec)?;
    let options = PublishOptions {
        route: args.path,
        skip_unchanged: args.if_changed,
        force: args.force,
    };
    if let Some(url) = &args.via {
        let token = args
            .token
            .as_deref()
            .context("--via needs a dashboard token: set TABLECAST_TOKEN (or --token)")?;
        return super::orchestrate::publish_via(
            url, token, &spec.name, options, args.wait, args.json,
        )
        .await;
    }
    let uri = config.metastore(args.metastore.as_deref())?;
    let publisher = crate::stack::publisher(config, uri).await?;
    // Edges connect lazily: one that is down fails the publish at the push, named in the report.
    let edges = config.edges(&args.edges)?.to_vec();
    let control = crate::stack::control(config).await?;
    crate::stack::register_api(
        control.store(),
        &super::serve::dashboard_config(config),
        &spec,
        uri,
        &edges,
    )
    .await?;

    let bar = if !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Some(bar)
    } else {
        None
    };
    let progress: ProgressFn = {
        let bar = bar.clone();
        Arc::new(move |p: Progress| {
            tracing::debug!(?p, "progress");
            let Some(bar) = &bar else { return };
            match p {
                Progress::StepStarted { step } => bar.set_message(format!("{step}…")),
                Progress::Guards { path, reason, .. } => {
                    bar.println(format!("path: {path} ({reason})"))
                }
                Progress::Rerouted { to, reason, .. } => {
                    bar.println(format!("re-routed to {to}: {reason}"))
                }
                Progress::Rows {
                    rows_in,
                    keys_out,
                    bytes_out,
                } => bar.set_message(format!(
                    "engine: {rows_in} rows in, {keys_out} keys, {} out",
                    super::human_bytes(bytes_out)
                )),
                Progress::EdgeSealed { edge, keys } => {
                    bar.println(format!("edge {edge}: {keys} keys verified"))
                }
                Progress::Committed { version } => {
                    bar.println(format!("committed version {version}"))
                }
                Progress::StepFinished { .. } | Progress::Failed { .. } => {}
            }
        })
    };
    let report = control
        .publish(&publisher, &spec, options, &edges, None, progress)
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        super::print_json(&report)?;
    } else {
        print_summary(&report);
    }
    Ok(if report.committed || report.unchanged {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_summary(r: &PublishReport) {
    if r.unchanged {
        println!(
            "{} unchanged since version {}: nothing published (fingerprint {})",
            r.api,
            r.previous_version.unwrap_or_default(),
            r.fingerprint.as_deref().unwrap_or("-")
        );
        return;
    }
    match (&r.error, r.version) {
        (None, Some(v)) => println!(
            "published {} version {v} (previously {})",
            r.api,
            r.previous_version
                .map(|p| p.to_string())
                .unwrap_or_else(|| "none".into())
        ),
        _ => println!("publish of {} FAILED", r.api),
    }
    if let Some(path) = &r.path {
        println!("path: {path} ({})", r.route_reason);
    }
    for a in &r.attempts {
        println!(
            "  attempt {}: {} ms, {} rows, peak pool {}{}",
            a.path,
            a.ms,
            a.rows_in,
            super::human_bytes(a.peak_memory_bytes),
            a.abandoned
                .as_deref()
                .map(|s| format!(" — abandoned: {s}"))
                .unwrap_or_default()
        );
    }
    println!(
        "rows in {}, keys out {}, {} out, checksum {}",
        r.rows_in,
        r.keys_out,
        super::human_bytes(r.bytes_out),
        r.checksum.as_deref().unwrap_or("-")
    );
    for e in &r.edges {
        println!(
            "  edge {}: {} keys, {}, {}",
            e.edge,
            e.keys,
            super::human_bytes(e.bytes),
            if e.committed {
                "committed"
            } else {
                "not committed"
            }
        );
    }
    let timings: Vec<String> = r
        .timings_ms
        .iter()
        .map(|(k, v)| format!("{k} {v} ms"))
        .collect();
    for g in &r.gates {
        println!("  gate {g}: {}", if g.passed { "passed" } else { "FAILED" });
    }
    if r.forced {
        println!("  gates failed: published anyway (--force)");
    }
    println!("timings: {}; total {} ms", timings.join(", "), r.total_ms);
    if let Some(e) = &r.error {
        println!(
            "error at step {}{}: {}",
            e.step,
            e.edge
                .as_deref()
                .map(|x| format!(" (edge {x})"))
                .unwrap_or_default(),
            e.message
        );
    }
}
