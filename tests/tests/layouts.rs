//! Partition layouts met in real warehouses, registered in the real metastore:
//!
//! - 10 000 files of about 1 KB: the files guard sends the table to Spark before anything reads
//!   a footer (the metastore's statistics give the rows), and planning lists the folder once;
//! - 5 000 partitions of which a filter keeps three: planning lists those three folders and no
//!   other (the other 4 997 do not even exist), and the fast track answers from them.
//!
//! Partitions whose folders lie outside the table's (`ALTER TABLE … ADD PARTITION … LOCATION`)
//! are covered where Spark writes them: `spark_tables.rs`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use publisher::catalog::{HiveStorage, PartitionRegistration, TableRegistration, TableStats};
use publisher::schema::{Column, TableName};
use tablecast_e2e::{Metastore, run_tablecast, unique_db};

fn url(path: &Path) -> String {
    url::Url::from_file_path(path).unwrap().to_string()
}

/// One Parquet file of `rows` rows (`id`, and a `note` of ~`note_bytes` bytes); returns its size.
fn write_parquet(path: &Path, first_id: i64, rows: usize, note_bytes: usize) -> u64 {
    let ids: Vec<i64> = (first_id..first_id + rows as i64).collect();
    let notes: Vec<String> = ids
        .iter()
        .map(|i| format!("{i:0>width$}", width = note_bytes))
        .collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("note", Arc::new(StringArray::from(notes)) as ArrayRef),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn columns() -> Vec<Column> {
    vec![
        Column::from_hive("id", "bigint"),
        Column::from_hive("note", "string"),
    ]
}

fn registration(name: TableName, location: String) -> TableRegistration {
    TableRegistration {
        name,
        location,
        storage: HiveStorage::parquet(),
        columns: columns(),
        partition_keys: vec![],
        partitions: vec![],
        stats: TableStats::default(),
        parameters: BTreeMap::new(),
        serde_parameters: BTreeMap::new(),
    }
}

fn plan_json(uri: &str, spec: &Path) -> serde_json::Value {
    let out = run_tablecast([
        "plan".as_ref(),
        "--json".as_ref(),
        "--metastore".as_ref(),
        OsStr::new(uri),
        "--spec".as_ref(),
        spec.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "plan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn ten_thousand_small_files_trip_the_files_guard_without_reading_footers() {
    let metastore = Metastore::shared();
    let catalog = metastore.catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let table_dir = root.join("small_files");
    std::fs::create_dir_all(&table_dir).unwrap();
    let started = Instant::now();
    let files = 10_000;
    let mut bytes = 0;
    for i in 0..files {
        bytes += write_parquet(&table_dir.join(format!("part-{i:05}.parquet")), i, 1, 400);
    }
    eprintln!(
        "wrote {files} files, {bytes} bytes (mean {} B) in {:.1} s",
        bytes / files as u64,
        started.elapsed().as_secs_f64()
    );
    assert!(
        (500..2048).contains(&(bytes / files as u64)),
        "about 1 KB a file"
    );

    let db = unique_db("layouts");
    catalog.ensure_database(&db, &url(&root)).await.unwrap();
    let name = TableName::new(&db, "small_files");
    let mut table = registration(name.clone(), url(&table_dir));
    table.stats = TableStats {
        num_rows: Some(files as u64),
        total_size: Some(bytes),
        num_files: Some(files as u64),
    };
    catalog.register_table(&table).await.unwrap();

    let spec = root.join("small.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"small\"\ntable = \"{db}.small_files\"\nkey = [\"id\"]\nshape = \"object\"\nvalues = [{{ agg = \"max\", column = \"note\", as = \"note\" }}]\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let plan = plan_json(&metastore.uri(), &spec);
    eprintln!(
        "planned 10 000 files in {:.2} s: {}",
        started.elapsed().as_secs_f64(),
        plan["reason"]
    );
    assert_eq!(plan["path"], "fallback", "{plan}");
    assert!(
        plan["reason"]
            .as_str()
            .unwrap()
            .starts_with("guard file_count tripped: 10000 > 5000"),
        "{plan}"
    );
    assert_eq!(plan["files"], 10_000);
    assert_eq!(plan["listings"], 1, "one listing of the table folder");
    assert_eq!(plan["footers_read"], 0, "rows came from the statistics");
}

#[tokio::test]
async fn a_filter_over_five_thousand_partitions_lists_only_what_it_keeps() {
    let metastore = Metastore::shared();
    let catalog = metastore.catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let table_dir = root.join("many_days");
    let kept = ["00100", "02500", "04999"];
    let mut partitions = Vec::new();
    for day in 0..5_000 {
        let value = format!("{day:05}");
        let folder = table_dir.join(format!("d={value}"));
        let mut stats = TableStats::default();
        if kept.contains(&value.as_str()) {
            // Only the kept partitions exist on disk: listing any other would find nothing and
            // the count below would still show it.
            std::fs::create_dir_all(&folder).unwrap();
            let size = write_parquet(&folder.join("part-0.parquet"), day * 10, 10, 8);
            stats = TableStats {
                num_rows: Some(10),
                total_size: Some(size),
                num_files: Some(1),
            };
        }
        partitions.push(PartitionRegistration {
            values: vec![value],
            location: url(&folder),
            stats,
        });
    }
    let db = unique_db("layouts");
    catalog.ensure_database(&db, &url(&root)).await.unwrap();
    let name = TableName::new(&db, "many_days");
    let mut table = registration(name.clone(), url(&table_dir));
    table.partition_keys = vec![Column::from_hive("d", "string")];
    table.partitions = partitions;
    let started = Instant::now();
    catalog.register_table(&table).await.unwrap();
    eprintln!(
        "registered 5 000 partitions in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let spec = root.join("days.toml");
    std::fs::write(
        &spec,
        format!(
            r#"name = "days"
table = "{db}.many_days"
key = ["d"]
shape = "object"
values = [{{ agg = "count", as = "rows" }}, {{ agg = "sum", column = "id", as = "ids" }}]
filter = [{{ column = "d", op = "in", value = ["00100", "02500", "04999"] }}]
"#
        ),
    )
    .unwrap();
    let started = Instant::now();
    let plan = plan_json(&metastore.uri(), &spec);
    eprintln!(
        "planned over 5 000 partitions in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(plan["partitions_total"], 5_000, "{plan}");
    assert_eq!(plan["partitions_selected"], 3, "{plan}");
    assert_eq!(plan["listings"], 3, "only the kept partitions are listed");
    assert_eq!(plan["files"], 3);
    assert_eq!(plan["path"], "fasttrack", "{plan}");

    let out = root.join("days.jsonl");
    let run = run_tablecast([
        "run".as_ref(),
        "--metastore".as_ref(),
        OsStr::new(&metastore.uri()),
        "--path".as_ref(),
        "fasttrack".as_ref(),
        "--spec".as_ref(),
        spec.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let sum = |day: i64| (day * 10..day * 10 + 10).sum::<i64>();
    let expected: String = [100, 2500, 4999]
        .iter()
        .map(|d| {
            format!(
                "{{\"key\":[\"{d:05}\"],\"value\":{{\"rows\":10,\"ids\":{}}}}}\n",
                sum(*d)
            )
        })
        .collect();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
}
