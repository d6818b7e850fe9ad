//! Tables as Spark writes them into a real metastore (`saveAsTable`, `ANALYZE TABLE`), read back
//! through `HiveCatalog`: datasource properties, placeholder Hive columns, `path` locations and
//! `spark.sql.statistics.*` must all be understood. Spark runs from the pyspark venv against the
//! shared metastore (a `local[1]` job, ~25 s on 2 cores). `TABLECAST_SKIP_SPARK=1` skips it.

use std::time::{Duration, Instant};

use publisher::catalog::{Catalog, StorageFormat};
use publisher::files;
use publisher::schema::TableName;
use tablecast_e2e::{ChildProcess, Metastore, unique_db, venv_command};

const SCRIPT: &str = r#"
import sys
from pyspark.sql import SparkSession, functions as F
uri, warehouse, db = sys.argv[1:4]
spark = (SparkSession.builder.master("local[1]").appName("tablecast-e2e-spark-tables")
    .config("spark.hadoop.hive.metastore.uris", uri)
    .config("spark.sql.warehouse.dir", warehouse)
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "1")
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1")
    .enableHiveSupport().getOrCreate())
spark.sparkContext.setLogLevel("WARN")
spark.sql(f"CREATE DATABASE {db} LOCATION '{warehouse}/{db}.db'")
df = spark.range(0, 30).select(
    F.col("id").alias("product_id"),
    (F.col("id") % 3).cast("string").alias("network"),
    (F.col("id") * 1.25).cast("decimal(12,2)").alias("amount"),
    F.timestamp_seconds(F.col("id") * 60 + 1793491200).alias("ts"),
    F.concat(F.lit("2026-11-0"), (F.col("id") % 3 + 1).cast("string")).alias("dt"))
df.write.format("parquet").partitionBy("dt").saveAsTable(f"{db}.referrals")
spark.sql(f"ANALYZE TABLE {db}.referrals COMPUTE STATISTICS")
# timestamp_ntz has no Hive type: Spark stores a placeholder schema and keeps the real one in
# table properties.
df.select("product_id", F.col("ts").cast("timestamp_ntz").alias("local_ts")) \
  .write.format("parquet").saveAsTable(f"{db}.ntz")
spark.sql(f"ANALYZE TABLE {db}.ntz COMPUTE STATISTICS")
df.select("product_id", "network").write.format("csv").saveAsTable(f"{db}.csv_table")
spark.stop()
"#;

#[tokio::test]
async fn tables_written_by_spark_are_understood() {
    if std::env::var_os("TABLECAST_SKIP_SPARK").is_some() {
        eprintln!("skipped: TABLECAST_SKIP_SPARK is set");
        return;
    }
    let metastore = Metastore::shared();
    let dir = tempfile::Builder::new()
        .prefix("tablecast-spark-")
        .tempdir()
        .unwrap();
    let warehouse = std::fs::canonicalize(dir.path()).unwrap();
    let db = unique_db("spark");

    let mut command = venv_command("python");
    command
        .arg("-c")
        .arg(SCRIPT)
        .arg(metastore.uri())
        .arg(format!("file://{}", warehouse.display()))
        .arg(&db);
    command.current_dir(&warehouse);
    let started = Instant::now();
    let mut spark = ChildProcess::spawn("pyspark", command, &warehouse.join("spark.log")).unwrap();
    spark
        .wait_success(Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "spark wrote the tables in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let catalog = metastore.catalog().await;
    assert_eq!(
        catalog.tables(&db).await.unwrap(),
        ["csv_table", "ntz", "referrals"]
    );

    // A Hive-compatible partitioned datasource table, statistics from ANALYZE.
    let t = catalog
        .table(&TableName::new(&db, "referrals"))
        .await
        .unwrap();
    eprintln!("referrals: {t:#?}");
    assert_eq!(t.format, StorageFormat::Parquet);
    assert_eq!(
        t.location,
        format!("file://{}/{db}.db/referrals", warehouse.display())
    );
    let spelled = publisher::schema::spelled(&t.columns);
    assert_eq!(
        spelled,
        [
            ("product_id", "bigint"),
            ("network", "string"),
            ("amount", "decimal(12,2)"),
            ("ts", "timestamp")
        ]
    );
    assert_eq!(
        t.partition_keys
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["dt"]
    );
    assert_eq!(t.partitions.len(), 3, "{:?}", t.partitions);
    assert_eq!(t.stats.num_rows, Some(30), "{:?}", t.parameters);
    let (listed, _) = files::list_table(&t, |_| true).await.unwrap();
    assert_eq!(files::footer_rows(&listed).await.unwrap(), 30);

    // Placeholder Hive columns: the schema comes from the properties, the location from `path`.
    let t = catalog.table(&TableName::new(&db, "ntz")).await.unwrap();
    eprintln!("ntz: {t:#?}");
    assert_eq!(t.format, StorageFormat::Parquet);
    let spelled = publisher::schema::spelled(&t.columns);
    assert_eq!(
        spelled,
        [("product_id", "bigint"), ("local_ts", "timestamp")]
    );
    assert_eq!(
        t.location,
        format!("file://{}/{db}.db/ntz", warehouse.display())
    );
    assert_eq!(t.stats.num_rows, Some(30), "{:?}", t.parameters);
    let (listed, _) = files::list_table(&t, |_| true).await.unwrap();
    assert_eq!(files::footer_rows(&listed).await.unwrap(), 30);

    // Not Parquet: described, with a format only the fallback reads.
    let t = catalog
        .table(&TableName::new(&db, "csv_table"))
        .await
        .unwrap();
    eprintln!("csv_table: {t:#?}");
    assert!(
        matches!(t.format, StorageFormat::Other { .. }),
        "{:?}",
        t.format
    );
}
