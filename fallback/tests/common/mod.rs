//! Shared by the fallback tests: a small table written with arrow, engine jobs over it, the
//! canonical encoding of a run, and an independent reference computed in plain Rust.

#![allow(dead_code)]

pub mod reference;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use fallback::SparkConfig;
use futures::StreamExt;
use publisher::canonical::EntryEncoder;
use publisher::catalog::{Catalog, DirectoryCatalog};
use publisher::engine::{Engine, EngineJob};
use publisher::guards::GuardLimits;
use publisher::spec::ApiSpec;

/// 2025-11-01T00:00:00Z in microseconds.
pub const BASE_MICROS: i64 = 1_761_955_200_000_000;
pub const NETWORKS: [&str; 6] = ["twitter", "facebook", "réseau-ü \"q\"", "日本", "", "a/b"];

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub product_id: Option<i64>,
    pub network: Option<String>,
    pub referrals: Option<i64>,
    /// DECIMAL(12,2), unscaled.
    pub revenue: Option<i128>,
    pub ts: Option<i64>,
    /// The partition value (`dt=…` folder).
    pub dt: String,
}

/// 200 rows over two partitions, with NULLs in every column, ties, unicode and odd strings.
pub fn rows() -> Vec<Row> {
    (0..200i64)
        .map(|i| Row {
            product_id: (i % 41 != 7).then_some((i * 7) % 23),
            network: (i % 11 != 4).then(|| NETWORKS[(i % 6) as usize].to_string()),
            referrals: (i % 13 != 5).then_some((i * 37) % 50),
            revenue: (i % 17 != 3).then_some(i128::from((i * 1234) % 100_000) - 20_000),
            ts: (i % 19 != 11).then_some(
                BASE_MICROS + ((i * 7) % 60) * 3_600_000_000 + if i % 4 == 0 { 500_000 } else { 0 },
            ),
            dt: if i < 100 {
                "2025-11-01".into()
            } else {
                "2025-11-02".into()
            },
        })
        .collect()
}

/// Writes `social.sales` under `root`: `dt=2025-11-01` with naive timestamps (Parquet
/// TIMESTAMP without UTC adjustment), `dt=2025-11-02` with UTC-adjusted ones.
pub fn write_sales(root: &Path) {
    let all = rows();
    for (dt, zone) in [("2025-11-01", None), ("2025-11-02", Some("UTC"))] {
        let part: Vec<&Row> = all.iter().filter(|r| r.dt == dt).collect();
        let ts_type = DataType::Timestamp(TimeUnit::Microsecond, zone.map(Arc::from));
        let schema = Arc::new(Schema::new(vec![
            Field::new("product_id", DataType::Int64, true),
            Field::new("network", DataType::Utf8, true),
            Field::new("referrals", DataType::Int64, true),
            Field::new("revenue", DataType::Decimal128(12, 2), true),
            Field::new("ts", ts_type, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(
                    part.iter().map(|r| r.product_id).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    part.iter().map(|r| r.network.clone()).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    part.iter().map(|r| r.referrals).collect::<Vec<_>>(),
                )),
                Arc::new(
                    Decimal128Array::from(part.iter().map(|r| r.revenue).collect::<Vec<_>>())
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
                Arc::new(
                    TimestampMicrosecondArray::from(part.iter().map(|r| r.ts).collect::<Vec<_>>())
                        .with_timezone_opt(zone),
                ),
            ],
        )
        .unwrap();
        let file = root.join(format!("social/sales/dt={dt}/part-0.parquet"));
        fixtures::write_parquet(&file, &[batch]).unwrap();
    }
}

/// An engine job over `root/db/table` as the publisher would plan it (partitions pruned).
pub async fn job(root: &Path, spec_toml: &str) -> EngineJob {
    job_from(
        &DirectoryCatalog::open(root.to_path_buf()).unwrap(),
        spec_toml,
    )
    .await
}

/// An engine job over a table of any catalog (`catalog_uri` is the catalog's).
pub async fn job_from(catalog: &dyn Catalog, spec_toml: &str) -> EngineJob {
    let spec = ApiSpec::from_toml(spec_toml).unwrap();
    let table = catalog.table(&spec.table_name().unwrap()).await.unwrap();
    let resolved = publisher::spec::validate(&spec, &table).unwrap();
    let (files, _) = publisher::files::list_table(&table, |v| resolved.keeps_partition(&table, v))
        .await
        .unwrap();
    EngineJob {
        spec: resolved,
        table,
        files,
        limits: GuardLimits::default(),
        catalog_uri: catalog.uri().to_string(),
    }
}

/// A config for local Spark runs: staging under `staging`, UI off, few shuffle partitions.
pub fn spark_config(staging: &Path) -> SparkConfig {
    let mut c = SparkConfig {
        staging_dir: staging.to_path_buf(),
        timeout_s: 300,
        kill_grace_ms: 3000,
        ..SparkConfig::default()
    };
    c.conf.insert("spark.ui.enabled".into(), "false".into());
    // Several sorted part files even for tiny data: the reader must continue keys across them.
    c.conf
        .insert("spark.sql.shuffle.partitions".into(), "4".into());
    c.conf.insert(
        "spark.sql.adaptive.coalescePartitions.enabled".into(),
        "false".into(),
    );
    c.driver_memory = Some("1g".into());
    c
}

pub fn spark_available() -> bool {
    let ok = SparkConfig::default().spark_submit.is_file();
    if !ok {
        eprintln!(
            "SKIPPED: no spark-submit at {}",
            SparkConfig::default().spark_submit.display()
        );
    }
    ok
}

/// Runs `job` and encodes the stream: one `key value` line per entry, in stream order.
pub async fn run_encoded(engine: &dyn Engine, job: &EngineJob) -> publisher::Result<Vec<String>> {
    run_counted(engine, job).await.map(|(lines, _)| lines)
}

/// [`run_encoded`], with the run's `rows_in`.
pub async fn run_counted(
    engine: &dyn Engine,
    job: &EngineJob,
) -> publisher::Result<(Vec<String>, u64)> {
    let run = engine.execute(job).await?;
    let progress = Arc::clone(&run.progress);
    let mut batches = run.into_stream();
    let mut encoder = EntryEncoder::new(&job.spec);
    let mut entries = Vec::new();
    while let Some(batch) = batches.next().await {
        encoder.push(&batch?, &mut entries)?;
    }
    encoder.finish(&mut entries)?;
    let lines = entries.iter().map(ToString::to_string).collect();
    Ok((lines, progress.rows_in()))
}

/// Entries of the job folder under a staging dir (logs excluded): empty once cleaned.
pub fn staged_leftovers(staging: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(staging)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| !p.ends_with("logs"))
                .collect()
        })
        .unwrap_or_default()
}

// ---- the independent reference ------------------------------------------------------------

/// Ascending or descending, NULLs last either way.
pub fn cmp_nulls_last<T: Ord>(a: &Option<T>, b: &Option<T>, descending: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) if descending => y.cmp(x),
        (Some(x), Some(y)) => x.cmp(y),
    }
}

pub fn j_int(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "null".into())
}

pub fn j_str(v: &Option<String>) -> String {
    v.as_ref()
        .map(|s| serde_json::to_string(s).unwrap())
        .unwrap_or_else(|| "null".into())
}

pub fn j_f64(v: Option<f64>) -> String {
    v.map(|v| serde_json::to_string(&v).unwrap())
        .unwrap_or_else(|| "null".into())
}

/// A decimal as canonical JSON: a string with exactly `scale` decimals.
pub fn j_dec(v: Option<i128>, scale: u32) -> String {
    let Some(v) = v else { return "null".into() };
    let p = 10i128.pow(scale);
    let sign = if v < 0 { "-" } else { "" };
    let (i, f) = (v.abs() / p, v.abs() % p);
    format!("\"{sign}{i}.{f:0width$}\"", width = scale as usize)
}

/// RFC 3339 UTC, fraction only when non-zero and without trailing zeros.
pub fn j_ts(v: Option<i64>) -> String {
    let Some(v) = v else { return "null".into() };
    let t = chrono::DateTime::from_timestamp_micros(v).unwrap();
    let s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = v.rem_euclid(1_000_000);
    if frac == 0 {
        format!("\"{s}Z\"")
    } else {
        let f = format!("{frac:06}");
        format!("\"{s}.{}Z\"", f.trim_end_matches('0'))
    }
}
