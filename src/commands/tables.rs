use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::config::Config;

#[derive(Args)]
pub struct TablesArgs {
    /// thrift://host:port or file:///path
    #[arg(long)]
    metastore: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct TableRow {
    table: String,
    location: String,
    format: String,
    partitions: usize,
    files: u64,
    bytes: u64,
    rows: Option<u64>,
}

pub async fn run(args: TablesArgs, config: &Config) -> Result<ExitCode> {
    let uri = config.metastore(args.metastore.as_deref())?;
    let catalog = publisher::catalog::open(uri, &config.catalog).await?;
    let mut rows = Vec::new();
    for db in catalog.databases().await? {
        for t in catalog.tables(&db).await? {
            let meta = catalog
                .table(&publisher::schema::TableName::new(&db, &t))
                .await?;
            // Files and bytes as they are on storage now, not as statistics remember them.
            let (files, _) = publisher::files::list_table(&meta, |_| true).await?;
            rows.push(TableRow {
                table: meta.name.to_string(),
                location: meta.location.clone(),
                format: meta.format.label().to_string(),
                partitions: meta.partitions.len(),
                files: files.len() as u64,
                bytes: files.iter().map(|f| f.size).sum(),
                rows: meta.stats.num_rows,
            });
        }
    }
    if args.json {
        super::print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<8} {:>10} {:>6} {:>10} {:>12}  location",
        "table", "format", "partitions", "files", "bytes", "rows"
    );
    for r in rows {
        println!(
            "{:<28} {:<8} {:>10} {:>6} {:>10} {:>12}  {}",
            r.table,
            r.format,
            r.partitions,
            r.files,
            super::human_bytes(r.bytes),
            r.rows.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
            r.location
        );
    }
    Ok(ExitCode::SUCCESS)
}
