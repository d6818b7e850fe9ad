//! One contract, two catalogs: the directory catalog over a Parquet warehouse and the Hive
//! metastore (a real one, shared by this binary) after registering the same warehouse must
//! describe the tables identically. Then the ways a metastore fails: down, silent, odd tables.
//!
//! Every test writes its warehouse into a database of its own, so tests run in parallel against
//! the one metastore without seeing each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, TimeUnit};
use fixtures::metastore::{HiveStorage, TableRegistration, ensure_database, register, register_table};
use publisher::Error;
use publisher::catalog::{self, Catalog, CatalogConfig, HiveCatalog, StorageFormat, TableStats};
use publisher::files::{self, DataFile};
use publisher::schema::{Column, TableName};
use tablecast_e2e::sample::{self, SampleWarehouse};
use tablecast_e2e::{Metastore, StalledListener, free_port, unique_db};

/// `file:///…`, spelled as the catalogs spell locations.
fn url(path: &Path) -> String {
    url::Url::from_file_path(path).expect("absolute path").to_string()
}

/// Every file under `dir` that readers must see (no markers), as sorted URLs.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(url(&e.path()));
            }
        }
    }
    out
}

fn warehouse(db_prefix: &str) -> (tempfile::TempDir, SampleWarehouse) {
    let dir = tempfile::Builder::new().prefix("tablecast-contract-").tempdir().unwrap();
    let root: PathBuf = std::fs::canonicalize(dir.path()).unwrap();
    let w = sample::write_warehouse(&root, &unique_db(db_prefix)).unwrap();
    (dir, w)
}

/// The contract: what any catalog must say about the sample warehouse.
async fn assert_contract(catalog: &dyn Catalog, w: &SampleWarehouse) {
    let who = catalog.uri().to_string();
    let db = w.db.as_str();

    let dbs = catalog.databases().await.unwrap();
    assert!(dbs.iter().any(|d| d == db), "{who}: databases {dbs:?} lack {db}");
    assert_eq!(catalog.tables(db).await.unwrap(), ["referrals", "users"], "{who}");

    // A partitioned table.
    let t = catalog.table(&TableName::new(db, "referrals")).await.unwrap();
    assert_eq!(t.name.to_string(), format!("{db}.referrals"));
    assert_eq!(t.format, StorageFormat::Parquet, "{who}");
    let table_dir = w.root.join(db).join("referrals");
    assert_eq!(t.location, url(&table_dir), "{who}");
    let spelled: Vec<(&str, &str)> = t.columns.iter().map(|c| (c.name.as_str(), c.hive_type.as_str())).collect();
    assert_eq!(
        spelled,
        [("product_id", "bigint"), ("network", "string"), ("amount", "decimal(12,2)"), ("ts", "timestamp")],
        "{who}"
    );
    assert_eq!(t.columns[0].data_type, Some(DataType::Int64), "{who}");
    assert_eq!(t.columns[1].data_type, Some(DataType::Utf8), "{who}");
    assert_eq!(t.columns[2].data_type, Some(DataType::Decimal128(12, 2)), "{who}");
    assert!(
        matches!(t.columns[3].data_type, Some(DataType::Timestamp(TimeUnit::Microsecond, _))),
        "{who}: {:?}",
        t.columns[3].data_type
    );
    assert!(t.columns.iter().all(Column::is_scalar));
    let keys: Vec<(&str, &str)> = t.partition_keys.iter().map(|c| (c.name.as_str(), c.hive_type.as_str())).collect();
    assert_eq!(keys, [("dt", "string")], "{who}");
    assert!(t.is_partition_key("DT") && t.column("dt").is_some() && t.column("amount").is_some());

    assert_eq!(t.partitions.len(), sample::REFERRALS_DAYS, "{who}");
    let values: Vec<Vec<String>> = t.partitions.iter().map(|p| p.values.clone()).collect();
    let expected_values: Vec<Vec<String>> = w.days.iter().map(|d| vec![d.clone()]).collect();
    assert_eq!(values, expected_values, "{who}");
    for p in &t.partitions {
        assert_eq!(p.location, url(&table_dir.join(format!("dt={}", p.values[0]))), "{who}");
    }

    let (listed, partitions) = files::list_table(&t, |_| true).await.unwrap();
    assert_eq!(partitions, sample::REFERRALS_DAYS);
    let listed_urls: BTreeSet<String> = listed.iter().map(|f| f.url.clone()).collect();
    assert_eq!(listed_urls, files_under(&table_dir), "{who}: listing differs from the files on disk");
    assert_eq!(listed.len(), sample::REFERRALS_DAYS * sample::REFERRALS_FILES_PER_DAY);
    let first_day = w.days[0].clone();
    let (one_day, n) = files::list_table(&t, |v| v[0] == first_day).await.unwrap();
    assert_eq!((one_day.len(), n), (sample::REFERRALS_FILES_PER_DAY, 1), "{who}");
    assert!(one_day.iter().all(|f| f.partition_values == [first_day.clone()]));

    assert_eq!(t.stats.num_rows, Some(w.rows("referrals")), "{who}");
    assert_eq!(t.stats.num_files, Some(listed.len() as u64), "{who}");
    assert_eq!(t.stats.total_size, Some(listed.iter().map(|f| f.size).sum()), "{who}");
    assert_eq!(files::footer_rows(&listed).await.unwrap(), w.rows("referrals"));

    // An unpartitioned table, with a `_SUCCESS` marker beside its file.
    let u = catalog.table(&TableName::new(db, "users")).await.unwrap();
    assert!(u.partition_keys.is_empty() && u.partitions.is_empty(), "{who}");
    assert_eq!(u.location, url(&w.root.join(db).join("users")), "{who}");
    let (listed, _) = files::list_table(&u, |_| true).await.unwrap();
    assert_eq!(listed.len(), 1, "{who}: {listed:?}");
    assert_eq!(u.stats.num_rows, Some(w.rows("users")), "{who}");
    assert_eq!(u.columns.iter().map(|c| c.hive_type.as_str()).collect::<Vec<_>>(), ["bigint", "string"]);

    // Missing things are named.
    let missing_db = format!("{db}_missing");
    let err = catalog.tables(&missing_db).await.unwrap_err();
    assert!(matches!(&err, Error::DatabaseNotFound(n, _) if *n == missing_db), "{who}: {err:?}");
    assert!(err.to_string().contains(&missing_db), "{err}");
    let err = catalog.table(&TableName::new(&missing_db, "referrals")).await.unwrap_err();
    assert!(matches!(&err, Error::DatabaseNotFound(n, _) if *n == missing_db), "{who}: {err:?}");
    let err = catalog.table(&TableName::new(db, "no_such_table")).await.unwrap_err();
    assert!(matches!(&err, Error::TableNotFound(..)), "{who}: {err:?}");
    assert!(err.to_string().contains(&format!("{db}.no_such_table")), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn directory_catalog_meets_the_contract() {
    let (_dir, w) = warehouse("dircat");
    let catalog = catalog::open(&url(&w.root), &CatalogConfig::default()).await.unwrap();
    assert_contract(catalog.as_ref(), &w).await;
}

#[tokio::test]
async fn hive_catalog_meets_the_contract_after_register() {
    let metastore = Metastore::shared();
    let (_dir, w) = warehouse("hivecat");
    let expected = vec![format!("{}.referrals", w.db), format!("{}.users", w.db)];

    let started = Instant::now();
    assert_eq!(register(&metastore.address(), &w.root).await.unwrap(), expected);
    eprintln!("registered in {} ms", started.elapsed().as_millis());
    // Registering again replaces the tables rather than adding to them.
    assert_eq!(register(&metastore.address(), &w.root).await.unwrap(), expected);

    let catalog = catalog::open(&metastore.uri(), &CatalogConfig::default()).await.unwrap();
    assert_eq!(catalog.uri(), metastore.uri());
    assert_contract(catalog.as_ref(), &w).await;

    let t = catalog.table(&TableName::new(&w.db, "referrals")).await.unwrap();
    assert_eq!(t.parameters.get("EXTERNAL").map(String::as_str), Some("TRUE"), "{:?}", t.parameters);
    let per_partition = sample::REFERRALS_FILES_PER_DAY * sample::REFERRALS_ROWS_PER_FILE;
    assert!(t.partitions.iter().all(|p| p.num_rows == Some(per_partition as u64)), "{:?}", t.partitions);
}

#[tokio::test]
async fn a_metastore_that_is_down_fails_within_the_connect_timeout() {
    let address = format!("127.0.0.1:{}", free_port());
    let config = CatalogConfig { connect_timeout_ms: 1_000, call_timeout_ms: 1_000 };
    let started = Instant::now();
    let err = HiveCatalog::connect(&address, &config).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1_500), "{:?}", started.elapsed());
    assert!(matches!(&err, Error::MetastoreUnreachable { address: a, .. } if *a == address), "{err:?}");
    assert!(err.to_string().contains(&address) && err.is_transient(), "{err}");

    let err = catalog::open(&format!("thrift://{address}"), &config).await.err().expect("open fails");
    assert!(err.to_string().contains(&address), "{err}");

    // A name that does not resolve is just as unreachable, and named.
    let started = Instant::now();
    let err = HiveCatalog::connect("no-such-host.invalid:9083", &config).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1_500), "{:?}", started.elapsed());
    assert!(err.to_string().contains("no-such-host.invalid:9083"), "{err}");

    for bad in ["localhost", "localhost:port", ":9083"] {
        let err = HiveCatalog::connect(bad, &config).await.unwrap_err();
        assert!(matches!(err, Error::BadCatalogUri(_)), "{bad}: {err:?}");
    }
}

#[tokio::test]
async fn localhost_is_a_valid_metastore_host() {
    let metastore = Metastore::shared();
    let address = format!("localhost:{}", metastore.addr().port());
    let catalog = HiveCatalog::connect(&address, &CatalogConfig::default()).await.unwrap();
    assert!(catalog.databases().await.unwrap().contains(&"default".to_string()));
}

#[tokio::test]
async fn a_stalled_metastore_fails_within_the_call_timeout() {
    let stalled = StalledListener::start();
    let config = CatalogConfig { connect_timeout_ms: 1_000, call_timeout_ms: 1_000 };
    let catalog = catalog::open(&stalled.thrift_uri(), &config).await.expect("it accepts TCP");
    let calls: [(&str, std::pin::Pin<Box<dyn std::future::Future<Output = publisher::Result<()>> + Send + '_>>); 3] = [
        ("get_all_databases", Box::pin(async { catalog.databases().await.map(drop) })),
        ("get_database", Box::pin(async { catalog.tables("default").await.map(drop) })),
        ("get_table", Box::pin(async { catalog.table(&TableName::new("default", "t")).await.map(drop) })),
    ];
    for (call, future) in calls {
        let started = Instant::now();
        let err = future.await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2_500), "{call}: {elapsed:?}");
        match &err {
            Error::MetastoreTimeout { address, call: c, timeout_ms } => {
                assert_eq!((address.as_str(), c.as_str(), *timeout_ms), (stalled.address().as_str(), call, 1_000));
            }
            other => panic!("{call}: expected a timeout, got {other:?}"),
        }
        assert!(err.to_string().contains(&stalled.address()) && err.is_transient(), "{err}");
    }
}

#[tokio::test]
async fn a_text_table_is_reported_as_another_format() {
    let metastore = Metastore::shared();
    let catalog = metastore.catalog().await;
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(root.join("data.txt"), "a\u{1}1\nb\u{1}2\n").unwrap();
    let db = unique_db("text");
    ensure_database(&catalog, &db, &url(&root)).await.unwrap();
    let name = TableName::new(&db, "lines");
    let registration = TableRegistration {
        name: name.clone(),
        location: url(&root),
        storage: HiveStorage::text(),
        columns: vec![Column::from_hive("k", "string"), Column::from_hive("v", "bigint")],
        partition_keys: vec![],
        partitions: vec![],
        stats: TableStats { num_rows: Some(2), total_size: Some(8), num_files: Some(1) },
        parameters: BTreeMap::new(),
        serde_parameters: BTreeMap::new(),
    };
    register_table(&catalog, &registration).await.unwrap();

    let t = catalog.table(&name).await.expect("a text table is described, not refused");
    assert_eq!(
        t.format,
        StorageFormat::Other {
            input_format: "org.apache.hadoop.mapred.TextInputFormat".into(),
            serde: "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into()
        }
    );
    assert_eq!(t.format.label(), "TextInputFormat");
    assert_eq!(t.stats, TableStats { num_rows: Some(2), total_size: Some(8), num_files: Some(1) });
    assert_eq!(catalog.tables(&db).await.unwrap(), ["lines"]);
}

/// A table as Spark's `saveAsTable` leaves it when Hive cannot hold its schema: placeholder
/// Hive columns, the real schema split over properties, the location in the `path` serde
/// parameter, statistics only under `spark.sql.statistics.*`.
#[tokio::test]
async fn a_spark_datasource_table_is_read_from_its_properties() {
    let metastore = Metastore::shared();
    let catalog = metastore.catalog().await;
    let (_dir, w) = warehouse("spark");
    let placeholder = w.root.join("placeholder");
    std::fs::create_dir_all(&placeholder).unwrap();
    ensure_database(&catalog, &w.db, &url(&w.root.join(&w.db))).await.unwrap();

    let schema = r#"{"type":"struct","fields":[{"name":"user_id","type":"long","nullable":true,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}},{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}}]}"#;
    let (a, b) = schema.split_at(schema.len() / 2);
    let parameters: BTreeMap<String, String> = [
        ("spark.sql.sources.provider", "parquet"),
        ("spark.sql.sources.schema.numParts", "2"),
        ("spark.sql.sources.schema.part.0", a),
        ("spark.sql.sources.schema.part.1", b),
        ("spark.sql.statistics.numRows", "100"),
        ("spark.sql.statistics.totalSize", "4321"),
        ("spark.sql.create.version", "4.0.1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let users_dir = w.root.join(&w.db).join("users");
    let name = TableName::new(&w.db, "spark_users");
    let registration = TableRegistration {
        name: name.clone(),
        location: url(&placeholder),
        storage: HiveStorage {
            input_format: "org.apache.hadoop.mapred.SequenceFileInputFormat".into(),
            output_format: "org.apache.hadoop.hive.ql.io.HiveSequenceFileOutputFormat".into(),
            serde: "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into(),
        },
        columns: vec![Column::from_hive("col", "array<string>")],
        partition_keys: vec![],
        partitions: vec![],
        stats: TableStats::default(),
        parameters,
        serde_parameters: [("path".to_string(), url(&users_dir))].into_iter().collect(),
    };
    register_table(&catalog, &registration).await.unwrap();

    let t = catalog.table(&name).await.unwrap();
    assert_eq!(t.format, StorageFormat::Parquet);
    assert_eq!(t.location, url(&users_dir));
    let spelled: Vec<(&str, &str)> = t.columns.iter().map(|c| (c.name.as_str(), c.hive_type.as_str())).collect();
    assert_eq!(spelled, [("user_id", "bigint"), ("name", "string"), ("tags", "array<string>")]);
    assert!(!t.columns[2].is_scalar());
    // Spark's statistics, not the metastore's measurement of the placeholder folder.
    assert_eq!(t.stats, TableStats { num_rows: Some(100), total_size: Some(4321), num_files: None });
    let (listed, _) = files::list_table(&t, |_| true).await.unwrap();
    assert_eq!(files::footer_rows(&listed).await.unwrap(), w.rows("users"));
}

#[tokio::test]
async fn a_truncated_parquet_file_is_named() {
    let (_dir, w) = warehouse("truncated");
    let path = w.root.join(&w.db).join("users").join("part-00000.parquet");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    let file = DataFile { url: url(&path), size: (bytes.len() / 2) as u64, partition_values: vec![] };
    let err = files::read_footer(&file).await.unwrap_err();
    assert!(matches!(&err, Error::ParquetFile { path: p, .. } if p.ends_with("users/part-00000.parquet")), "{err:?}");
    assert!(err.to_string().contains("part-00000.parquet"), "{err}");

    // The directory catalog reads footers to describe a table: the same error reaches its caller.
    let catalog = catalog::open(&url(&w.root), &CatalogConfig::default()).await.unwrap();
    let err = catalog.table(&TableName::new(&w.db, "users")).await.unwrap_err();
    assert!(err.to_string().contains("users/part-00000.parquet"), "{err}");
}
