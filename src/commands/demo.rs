//! `tablecast demo`: the whole system on loopback, from nothing, in one command. Fixture tables
//! in a directory catalog (or a given metastore), two edge Redis servers with a lookup service
//! each, the sample APIs published to both; then it prints where to look and stays up until
//! Ctrl-C, when it stops everything it started.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use fixtures::redis::RedisServer;
use publisher::publish::Route;
use publisher::spec::ApiSpec;

use crate::config::Config;

#[derive(Args)]
pub struct DemoArgs {
    /// Use a real Hive metastore (the fixtures are registered in it) instead of a directory catalog.
    #[arg(long)]
    metastore: Option<String>,
    /// Fixture scale (1 = 100k rows per table).
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// Where the demo keeps its fixtures and snapshots (default: `<state_dir>/demo`).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// The four sample APIs the demo publishes, and a key to try for each.
const SAMPLES: &[(&str, &str)] = &[
    ("top_products_by_network", "facebook"),
    ("top_products", ""),
    ("recent_activity", "42"),
    ("product_stats", "7"),
];

pub async fn run(args: DemoArgs, config: &Config) -> Result<ExitCode> {
    let started = Instant::now();
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| config.state_dir.join("demo"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir)?;
    let warehouse = dir.join(format!("warehouse-scale-{}", args.scale));

    eprintln!(
        "• fixture tables (scale {}) in {}",
        args.scale,
        warehouse.display()
    );
    let marker = warehouse.join(".complete");
    if !marker.exists() {
        let (out, scale) = (warehouse.clone(), args.scale);
        tokio::task::spawn_blocking(move || {
            fixtures::generate(&fixtures::GenerateOptions {
                out,
                scale,
                seed: fixtures::DEFAULT_SEED,
            })
        })
        .await??;
        std::fs::write(&marker, b"")?;
    }
    let catalog = match &args.metastore {
        Some(uri) => {
            let addr = uri
                .strip_prefix("thrift://")
                .context("--metastore must be thrift://host:port")?;
            fixtures::metastore::register(addr, &warehouse).await?;
            uri.clone()
        }
        None => format!("file://{}", warehouse.display()),
    };

    let mut demo_config = config.clone();
    demo_config.state_dir = dir.join("state");
    let mut redis = Vec::new();
    let mut lookups = Vec::new();
    for i in 0..2 {
        let server = tokio::task::spawn_blocking(|| RedisServer::try_start(&[])).await??;
        eprintln!(
            "• edge {i}: redis-server on {} (log {})",
            server.url(),
            server.log().display()
        );
        let mut lookup = demo_config.lookup.clone();
        lookup.redis_url = server.url();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let state = edge_cache::LookupState::new(lookup)?;
        lookups.push((
            addr,
            tokio::spawn(edge_cache::serve_on(
                listener,
                state,
                edge_cache::shutdown_signal(),
            )),
        ));
        redis.push(server);
    }

    let edges: Vec<String> = redis.iter().map(|r| r.url()).collect();
    let mut dashboard = super::serve::dashboard_config(&demo_config);
    dashboard.catalogs = vec![dashboard_api::config::NamedCatalog {
        name: "demo".into(),
        uri: catalog.clone(),
    }];
    dashboard.edge_groups = [(
        dashboard_api::config::DEFAULT_EDGE_GROUP.to_string(),
        edges.clone(),
    )]
    .into();
    dashboard.lookup_base_urls = [(
        dashboard_api::config::DEFAULT_EDGE_GROUP.to_string(),
        format!("http://{}", lookups[0].0),
    )]
    .into();

    // Published through the control plane and recorded in its store, so that the dashboard
    // lists every API the edges serve, with its versions and tokens.
    let publisher = crate::stack::publisher(&demo_config, &catalog).await?;
    let control = crate::stack::control(&demo_config).await?;
    for (api, _) in SAMPLES {
        let spec = ApiSpec::from_path(&fixtures::specs_dir().join(format!("{api}.toml")))?;
        crate::stack::register_api(control.store(), &dashboard, &spec, &catalog, &edges).await?;
        let report = control
            .publish(
                &publisher,
                &spec,
                Route::Auto.into(),
                &edges,
                None,
                Arc::new(|_| {}),
            )
            .await;
        match (&report.error, report.version) {
            (None, Some(v)) => eprintln!(
                "• published {api} v{v}: {} keys via {} in {} ms",
                report.keys_out,
                report.path.as_deref().unwrap_or("?"),
                report.total_ms
            ),
            (Some(e), _) => bail!("publishing {api} failed at step {}: {}", e.step, e.message),
            _ => bail!("publishing {api} did not commit"),
        }
    }

    let admin_token = dashboard.admin_token.clone().unwrap_or_else(|| {
        let mut secret = [0u8; 18];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        format!("demo-{}", hex::encode(secret))
    });
    dashboard.admin_token = Some(admin_token.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let dashboard_addr = listener.local_addr()?;
    let stack = Arc::new(crate::stack::AppStack::new(demo_config.clone()));
    let dashboard_task = tokio::spawn(dashboard_api::serve_on(
        listener,
        dashboard,
        stack,
        edge_cache::shutdown_signal(),
    ));

    println!(
        "\nTablecast demo is up ({} s). Catalog: {catalog}",
        started.elapsed().as_secs()
    );
    println!("dashboard: http://{dashboard_addr}  (sign in with the admin token {admin_token})");
    for (i, (addr, _)) in lookups.iter().enumerate() {
        println!("edge {i} lookup service: http://{addr}  (metrics: http://{addr}/metrics)");
    }
    let (first, _) = &lookups[0];
    println!("\nTry:");
    for (api, key) in SAMPLES {
        let path = if key.is_empty() {
            format!("/v1/{api}")
        } else {
            format!("/v1/{api}/{key}")
        };
        println!("  curl -s http://{first}{path}");
    }
    println!(
        "  curl -s -X POST http://{first}/v1/recent_activity/_batch -d '{{\"keys\":[[1],[2]]}}'"
    );
    println!("\nCtrl-C stops everything.");
    edge_cache::shutdown_signal().await;
    eprintln!("stopping…");
    for (_, task) in lookups {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), dashboard_task).await;
    drop(redis);
    Ok(ExitCode::SUCCESS)
}
