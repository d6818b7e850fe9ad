//! Tables as Spark writes them into a real metastore, read back by Tablecast:
//!
//! - datasource tables (`saveAsTable`): properties, placeholder Hive columns, `path` locations and
//!   `spark.sql.statistics.*` must all be understood;
//! - the same partitioned data as a Hive-format ORC table, a Hive-format Parquet table (INT96
//!   timestamps, Spark's default) and a datasource Parquet table (micros), each with `ANALYZE
//!   TABLE`, a null partition value (`__HIVE_DEFAULT_PARTITION__`), several files per writer task
//!   (`maxRecordsPerFile`), and `_SUCCESS` and `.crc` files beside the data: `tables`, `plan`,
//!   `run --path fasttrack` and `run --path fallback` answer each spec exactly as Spark SQL does
//!   over the metastore table (the oracle's SQL, fixtures/golden/oracle.py, run by Spark).
//!
//! Spark runs once per test binary from the pyspark venv against the shared metastore (a
//! `local[1]` job, ~25 s on 2 cores). `TABLECAST_SKIP_SPARK=1` skips these tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use publisher::catalog::{Catalog, StorageFormat};
use publisher::files;
use publisher::schema::TableName;
use tablecast_e2e::{
    ChildProcess, Metastore, repo_root, run_tablecast, tablecast_command, unique_db, venv_command,
    walk,
};

const SCRIPT: &str = r#"
import os
import sys
from pyspark.sql import SparkSession, functions as F
import tomllib
uri, warehouse, db, specs, answers, oracle_dir, outside = sys.argv[1:8]
sys.path.insert(0, oracle_dir)
import oracle
spark = (SparkSession.builder.master("local[1]").appName("tablecast-e2e-spark-tables")
    .config("spark.hadoop.hive.metastore.uris", uri)
    .config("spark.sql.warehouse.dir", warehouse)
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "1")
    .config("spark.sql.session.timeZone", "UTC")
    # Several files per writer task, as large jobs leave them.
    .config("spark.sql.files.maxRecordsPerFile", "7")
    .config("hive.exec.dynamic.partition.mode", "nonstrict")
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

# The same partitioned data three ways; one day in ten has no date (a null partition value).
sales = spark.range(0, 80).select(
    F.col("id").alias("product_id"),
    (F.col("id") % 3).cast("string").alias("network"),
    (F.col("id") % 7).alias("referrals"),
    (F.col("id") * 1.25).cast("decimal(12,2)").alias("revenue"),
    F.timestamp_seconds(F.col("id") * 3607 + F.lit(1793491200)).alias("ts"),
    F.when(F.col("id") % 10 == 0, F.lit(None).cast("string"))
     .otherwise(F.concat(F.lit("2026-11-0"), (F.col("id") % 4 + 1).cast("string"))).alias("dt"))
sales.createOrReplaceTempView("sales")
columns = "product_id BIGINT, network STRING, referrals BIGINT, revenue DECIMAL(12,2), ts TIMESTAMP"
for fmt in ["ORC", "PARQUET"]:
    t = f"{db}.hive_{fmt.lower()}"
    spark.sql(f"CREATE TABLE {t} ({columns}) PARTITIONED BY (dt STRING) STORED AS {fmt}")
    spark.sql(f"INSERT INTO {t} PARTITION (dt) SELECT * FROM sales")
    spark.sql(f"ANALYZE TABLE {t} COMPUTE STATISTICS")
# Hive-format Parquet above has INT96 timestamps (Spark's default); this one has micros.
spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
sales.write.format("parquet").partitionBy("dt").saveAsTable(f"{db}.ds_parquet")
spark.sql(f"ANALYZE TABLE {db}.ds_parquet COMPUTE STATISTICS")

# A partition whose folder lies outside the table's, as loads that stage data elsewhere add them.
t = f"{db}.hive_outside"
spark.sql(f"CREATE TABLE {t} ({columns}) PARTITIONED BY (dt STRING) STORED AS PARQUET")
spark.sql(f"INSERT INTO {t} PARTITION (dt) SELECT * FROM sales WHERE dt = '2026-11-01'")
sales.where("dt = '2026-11-02'").drop("dt").write.parquet(f"{outside}/day2")
spark.sql(f"ALTER TABLE {t} ADD PARTITION (dt = '2026-11-02') LOCATION '{outside}/day2'")

# Spark SQL's own answer to every spec, through the metastore table.
for name in sorted(os.listdir(specs)):
    with open(os.path.join(specs, name), "rb") as f:
        spec = tomllib.load(f)
    source = ".".join(oracle.spark_q(part) for part in spec["table"].split("."))
    sql, names, nkeys = oracle.build_sql(spec, source, oracle.spark_q)
    out = os.path.join(answers, spec["name"] + ".jsonl")
    oracle.write_jsonl(spec, spark.sql(sql).collect(), names, nkeys, out)
spark.stop()
"#;

/// The tables Spark wrote, once per test binary, and its answers to [`SPECS`].
struct SparkTables {
    db: String,
    warehouse: PathBuf,
    specs: PathBuf,
    answers: PathBuf,
    _dir: tempfile::TempDir,
}

/// The tables the answers are compared on: one per way Spark writes a table.
const SALES_TABLES: [&str; 3] = ["hive_orc", "hive_parquet", "ds_parquet"];

/// Two specs per table: an object per day (the null partition as a null key), and a ranked
/// list per network (a per-key limit over an aggregate).
fn write_specs(dir: &Path, db: &str) {
    for table in SALES_TABLES {
        let by_day = format!(
            r#"name = "{table}_by_day"
table = "{db}.{table}"
key = ["dt"]
shape = "object"
values = [
  {{ agg = "count", as = "rows" }},
  {{ agg = "sum", column = "referrals", as = "referrals" }},
  {{ agg = "sum", column = "revenue", as = "revenue" }},
  {{ agg = "count_distinct", column = "network", as = "networks" }},
  {{ agg = "max", column = "ts", as = "last_seen" }},
]
"#
        );
        let top = format!(
            r#"name = "{table}_top"
table = "{db}.{table}"
key = ["network"]
group_by = ["product_id"]
limit = 3
values = [
  {{ column = "product_id" }},
  {{ agg = "sum", column = "referrals", as = "referrals" }},
  {{ agg = "max", column = "ts", as = "ts" }},
]
order_by = [{{ field = "referrals", dir = "desc" }}]
"#
        );
        std::fs::write(dir.join(format!("{table}_by_day.toml")), by_day).unwrap();
        std::fs::write(dir.join(format!("{table}_top.toml")), top).unwrap();
    }
    let outside = format!(
        r#"name = "hive_outside_by_day"
table = "{db}.hive_outside"
key = ["dt"]
shape = "object"
values = [{{ agg = "count", as = "rows" }}, {{ agg = "sum", column = "revenue", as = "revenue" }}]
"#
    );
    std::fs::write(dir.join("hive_outside_by_day.toml"), outside).unwrap();
}

fn spark_tables() -> Option<&'static SparkTables> {
    if std::env::var_os("TABLECAST_SKIP_SPARK").is_some() {
        eprintln!("skipped: TABLECAST_SKIP_SPARK is set");
        return None;
    }
    static TABLES: OnceLock<SparkTables> = OnceLock::new();
    Some(TABLES.get_or_init(|| {
        let metastore = Metastore::shared();
        let dir = tempfile::Builder::new()
            .prefix("tablecast-spark-")
            .tempdir()
            .unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (warehouse, specs, answers) =
            (root.join("wh"), root.join("specs"), root.join("answers"));
        let outside = root.join("staging");
        for d in [&warehouse, &specs, &answers] {
            std::fs::create_dir_all(d).unwrap();
        }
        let db = unique_db("spark");
        write_specs(&specs, &db);

        let mut command = venv_command("python");
        command
            .arg("-c")
            .arg(SCRIPT)
            .arg(metastore.uri())
            .arg(format!("file://{}", warehouse.display()))
            .arg(&db)
            .arg(&specs)
            .arg(&answers)
            .arg(repo_root().join("fixtures/golden"))
            .arg(format!("file://{}", outside.display()))
            // Python's datetimes from Spark are local times: UTC, like the canonical encoding.
            .env("TZ", "UTC");
        command.current_dir(&root);
        let started = Instant::now();
        let mut spark = ChildProcess::spawn("pyspark", command, &root.join("spark.log")).unwrap();
        spark
            .wait_success(Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!(
            "spark wrote the tables and its answers in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        SparkTables {
            db,
            warehouse,
            specs,
            answers,
            _dir: dir,
        }
    }))
}

#[tokio::test]
async fn tables_written_by_spark_are_understood() {
    let Some(spark) = spark_tables() else {
        return;
    };
    let metastore = Metastore::shared();
    let (db, warehouse) = (&spark.db, &spark.warehouse);

    let catalog = metastore.catalog().await;
    assert_eq!(
        catalog.tables(db).await.unwrap(),
        [
            "csv_table",
            "ds_parquet",
            "hive_orc",
            "hive_outside",
            "hive_parquet",
            "ntz",
            "referrals"
        ]
    );

    // A Hive-compatible partitioned datasource table, statistics from ANALYZE.
    let t = catalog
        .table(&TableName::new(db, "referrals"))
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
    let t = catalog.table(&TableName::new(db, "ntz")).await.unwrap();
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
        .table(&TableName::new(db, "csv_table"))
        .await
        .unwrap();
    eprintln!("csv_table: {t:#?}");
    assert!(
        matches!(t.format, StorageFormat::Other { .. }),
        "{:?}",
        t.format
    );
}

/// `tablecast run` of every spec on one path in one invocation (one Spark session on the
/// fallback); returns each spec's output by name.
fn run_specs(spark: &SparkTables, uri: &str, path: &str) -> Vec<(String, Vec<u8>)> {
    let out = spark.answers.parent().unwrap().join(format!("out-{path}"));
    let state = spark
        .answers
        .parent()
        .unwrap()
        .join(format!("state-{path}"));
    let mut names: Vec<String> = std::fs::read_dir(&spark.specs)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .replace(".toml", "")
        })
        .collect();
    names.sort();
    let mut command = tablecast_command();
    command
        .env("TABLECAST_STATE_DIR", &state)
        .args(["run", "--metastore", uri, "--path", path, "--out"])
        .arg(&out);
    for name in &names {
        command
            .arg("--spec")
            .arg(spark.specs.join(format!("{name}.toml")));
    }
    let result = command.output().unwrap();
    assert!(
        result.status.success(),
        "run --path {path}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    names
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(out.join(format!("{name}.jsonl"))).unwrap();
            (name, bytes)
        })
        .collect()
}

#[tokio::test]
async fn hive_and_spark_written_tables_answer_like_spark_sql_on_both_paths() {
    let Some(spark) = spark_tables() else {
        return;
    };
    let uri = Metastore::shared().uri();

    // What the writers left beside the data: markers and checksums, which readers skip.
    for table in SALES_TABLES {
        let dir = spark.warehouse.join(format!("{}.db/{table}", spark.db));
        let names: Vec<String> = walk(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "_SUCCESS"), "{table}: {names:?}");
        assert!(
            names.iter().any(|n| n.ends_with(".crc")),
            "{table}: {names:?}"
        );
        assert!(
            dir.join("dt=__HIVE_DEFAULT_PARTITION__").is_dir(),
            "{table}: no null partition"
        );
    }

    // `tables`: format and row count (from `ANALYZE TABLE`, whichever keys the writer used).
    let listed = run_tablecast(["tables", "--metastore", &uri]);
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout);
    for (table, format) in [
        ("hive_orc", "orc"),
        ("hive_parquet", "parquet"),
        ("ds_parquet", "parquet"),
    ] {
        let line = listed
            .lines()
            .find(|l| l.starts_with(&format!("{}.{table} ", spark.db)))
            .unwrap_or_else(|| panic!("{table} not listed:\n{listed}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], format, "{line}");
        assert_eq!(cells[2], "5", "partitions, the null one included: {line}");
        assert_eq!(cells[6], "80", "rows: {line}");
    }

    // `plan`: every table goes to the fast track, its row count from statistics.
    for table in SALES_TABLES {
        let spec = spark.specs.join(format!("{table}_by_day.toml"));
        let plan = run_tablecast([
            "plan",
            "--metastore",
            &uri,
            "--spec",
            spec.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&plan.stdout);
        assert!(plan.status.success(), "{table}: {text}");
        assert!(text.contains("path: fasttrack"), "{table}: {text}");
        assert!(
            text.contains("rows from catalog statistics"),
            "{table}: {text}"
        );
    }

    // The partition added with a location of its own is read from there.
    let outside = Metastore::shared()
        .catalog()
        .await
        .table(&TableName::new(&spark.db, "hive_outside"))
        .await
        .unwrap();
    let day2 = outside
        .partitions
        .iter()
        .find(|p| p.values == ["2026-11-02"])
        .unwrap();
    assert!(
        !day2.location.starts_with(&outside.location) && day2.location.ends_with("/staging/day2"),
        "{} is under {}",
        day2.location,
        outside.location
    );

    let fasttrack = run_specs(spark, &uri, "fasttrack");
    let fallback = run_specs(spark, &uri, "fallback");
    assert_eq!(fasttrack.len(), 2 * SALES_TABLES.len() + 1);
    for ((name, fast), (_, slow)) in fasttrack.iter().zip(&fallback) {
        let spark_sql = std::fs::read(spark.answers.join(format!("{name}.jsonl"))).unwrap();
        assert!(!spark_sql.is_empty(), "{name}: Spark SQL answered nothing");
        assert_eq!(
            String::from_utf8_lossy(fast),
            String::from_utf8_lossy(&spark_sql),
            "{name}: the fast track differs from Spark SQL"
        );
        assert_eq!(
            fast, slow,
            "{name}: the fallback differs from the fast track"
        );
    }
    // The null partition is a null key, and every table gives the same answer.
    let by_day = &fasttrack
        .iter()
        .find(|(n, _)| n == "hive_orc_by_day")
        .unwrap()
        .1;
    assert!(
        String::from_utf8_lossy(by_day).contains(r#"{"key":[null],"#),
        "{}",
        String::from_utf8_lossy(by_day)
    );
    for suffix in ["by_day", "top"] {
        let answers: Vec<&Vec<u8>> = fasttrack
            .iter()
            .filter(|(n, _)| n.ends_with(suffix) && !n.starts_with("hive_outside"))
            .map(|(_, b)| b)
            .collect();
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{suffix}");
    }
}
