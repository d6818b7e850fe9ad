//! One contract, two catalogs: the directory catalog over a Parquet warehouse and the Hive
//! metastore (a real one, shared by this binary) after registering the same warehouse must
//! describe the tables identically. It runs over the fixture warehouse (`fixtures::generate`,
//! databases `social`, `activity`, `qa`) and over a small sample warehouse in a database of its
//! own. Then the ways a metastore fails: down, silent, odd tables.
//!
//! Apart from the fixture databases, every test uses a database of its own, so tests run in
//! parallel against the one metastore without seeing each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, TimeUnit};
use fixtures::metastore::{HiveStorage, TableRegistration, register};
use publisher::Error;
use publisher::catalog::{self, Catalog, CatalogConfig, HiveCatalog, StorageFormat, TableStats};
use publisher::files::{self, DataFile};
use publisher::schema::{Column, TableName};
use tablecast_e2e::sample::{self, SampleWarehouse};
use tablecast_e2e::{Metastore, StalledListener, free_port, unique_db};

/// `file:///…`, spelled as the catalogs spell locations.
fn url(path: &Path) -> String {
    url::Url::from_file_path(path)
        .expect("absolute path")
        .to_string()
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
    let dir = tempfile::Builder::new()
        .prefix("tablecast-contract-")
        .tempdir()
        .unwrap();
    let root: PathBuf = std::fs::canonicalize(dir.path()).unwrap();
    let w = sample::write_warehouse(&root, &unique_db(db_prefix)).unwrap();
    (dir, w)
}

/// One table the contract checks, as its writer knows it.
#[derive(Debug, Clone)]
struct ExpectedTable {
    name: TableName,
    /// `(name, hive type)` of the data columns, in order.
    columns: Vec<(String, String)>,
    /// The `dt` values, sorted; empty when unpartitioned.
    days: Vec<String>,
    rows: u64,
    files: usize,
}

/// What a catalog over a warehouse must report.
#[derive(Debug, Clone)]
struct Expected {
    root: PathBuf,
    partitioned: ExpectedTable,
    unpartitioned: ExpectedTable,
    /// Every table of each database involved, sorted.
    tables: BTreeMap<String, Vec<String>>,
}

fn spelled(columns: &[Column]) -> Vec<(String, String)> {
    columns
        .iter()
        .map(|c| (c.name.clone(), c.hive_type.clone()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The fixture warehouse (scale 1, default seed), generated once per test binary, with a
/// `_SUCCESS` marker added beside `activity.user_activity`'s files.
fn generated() -> &'static Expected {
    static GENERATED: OnceLock<(tempfile::TempDir, Expected)> = OnceLock::new();
    &GENERATED
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("tablecast-fixtures-")
                .tempdir()
                .unwrap();
            let root = std::fs::canonicalize(dir.path()).unwrap();
            let options = fixtures::GenerateOptions {
                out: root.clone(),
                scale: 1,
                seed: fixtures::DEFAULT_SEED,
            };
            let generated = fixtures::generate(&options).unwrap();
            let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for t in &generated {
                tables
                    .entry(t.db.clone())
                    .or_default()
                    .push(t.table.clone());
            }
            tables.values_mut().for_each(|v| v.sort());
            let describe = |db: &str, table: &str, columns: &[(&str, &str)]| {
                let t = generated
                    .iter()
                    .find(|t| t.db == db && t.table == table)
                    .expect("generated table");
                let days: BTreeSet<String> = t
                    .files
                    .iter()
                    .flat_map(|f| f.partition_values.iter().map(|(_, v)| v.clone()))
                    .collect();
                ExpectedTable {
                    name: TableName::new(db, table),
                    columns: owned(columns),
                    days: days.into_iter().collect(),
                    rows: t.rows,
                    files: t.files.len(),
                }
            };
            let partitioned = describe(
                "social",
                "referrals",
                &[
                    ("product_id", "bigint"),
                    ("product_name", "string"),
                    ("network", "string"),
                    ("referrals", "bigint"),
                    ("revenue", "decimal(12,2)"),
                    ("ts", "timestamp"),
                ],
            );
            let unpartitioned = describe(
                "activity",
                "user_activity",
                &[
                    ("user_id", "bigint"),
                    ("ts", "timestamp"),
                    ("action", "string"),
                    ("item_id", "bigint"),
                    ("detail", "string"),
                ],
            );
            std::fs::write(root.join("activity/user_activity/_SUCCESS"), b"").unwrap();
            (
                dir,
                Expected {
                    root,
                    partitioned,
                    unpartitioned,
                    tables,
                },
            )
        })
        .1
}

fn sample_expected(w: &SampleWarehouse) -> Expected {
    let files = sample::REFERRALS_DAYS * sample::REFERRALS_FILES_PER_DAY;
    Expected {
        root: w.root.clone(),
        partitioned: ExpectedTable {
            name: TableName::new(&w.db, "referrals"),
            columns: owned(&[
                ("product_id", "bigint"),
                ("network", "string"),
                ("amount", "decimal(12,2)"),
                ("ts", "timestamp"),
            ]),
            days: w.days.clone(),
            rows: w.rows("referrals"),
            files,
        },
        unpartitioned: ExpectedTable {
            name: TableName::new(&w.db, "users"),
            columns: owned(&[("user_id", "bigint"), ("name", "string")]),
            days: vec![],
            rows: w.rows("users"),
            files: 1,
        },
        tables: [(
            w.db.clone(),
            vec!["referrals".to_string(), "users".to_string()],
        )]
        .into_iter()
        .collect(),
    }
}

/// The Arrow type each Hive spelling in the warehouses must map to.
fn assert_types(who: &str, columns: &[Column]) {
    for c in columns {
        let ok = match c.hive_type.as_str() {
            "bigint" => c.data_type == Some(DataType::Int64),
            "string" => c.data_type == Some(DataType::Utf8),
            "decimal(12,2)" => c.data_type == Some(DataType::Decimal128(12, 2)),
            "timestamp" => matches!(
                c.data_type,
                Some(DataType::Timestamp(TimeUnit::Microsecond, _))
            ),
            other => panic!("{who}: unexpected type {other} of {}", c.name),
        };
        assert!(
            ok,
            "{who}: column {} ({}) has Arrow type {:?}",
            c.name, c.hive_type, c.data_type
        );
        assert!(c.is_scalar());
    }
}

/// The contract: what any catalog must say about a warehouse.
async fn assert_contract(catalog: &dyn Catalog, e: &Expected) {
    let who = catalog.uri().to_string();

    let dbs = catalog.databases().await.unwrap();
    for (db, tables) in &e.tables {
        assert!(dbs.contains(db), "{who}: databases {dbs:?} lack {db}");
        assert_eq!(&catalog.tables(db).await.unwrap(), tables, "{who}");
    }

    // A partitioned table.
    let p = &e.partitioned;
    let t = catalog.table(&p.name).await.unwrap();
    assert_eq!(t.name, p.name);
    assert_eq!(t.format, StorageFormat::Parquet, "{who}");
    let table_dir = e.root.join(&p.name.db).join(&p.name.table);
    assert_eq!(t.location, url(&table_dir), "{who}");
    assert_eq!(spelled(&t.columns), p.columns, "{who}");
    assert_types(&who, &t.columns);
    assert_eq!(
        spelled(&t.partition_keys),
        owned(&[("dt", "string")]),
        "{who}"
    );
    assert!(t.is_partition_key("DT") && t.column("dt").is_some() && t.column("ts").is_some());

    assert_eq!(t.partitions.len(), 7, "{who}");
    let values: Vec<Vec<String>> = t.partitions.iter().map(|p| p.values.clone()).collect();
    let expected_values: Vec<Vec<String>> = p.days.iter().map(|d| vec![d.clone()]).collect();
    assert_eq!(values, expected_values, "{who}");
    for part in &t.partitions {
        assert_eq!(
            part.location,
            url(&table_dir.join(format!("dt={}", part.values[0]))),
            "{who}"
        );
    }

    let (listed, partitions) = files::list_table(&t, |_| true).await.unwrap();
    assert_eq!(partitions, 7);
    let listed_urls: BTreeSet<String> = listed.iter().map(|f| f.url.clone()).collect();
    assert_eq!(
        listed_urls,
        files_under(&table_dir),
        "{who}: listing differs from the files on disk"
    );
    assert_eq!(listed.len(), p.files, "{who}");
    let first_day = p.days[0].clone();
    let (one_day, n) = files::list_table(&t, |v| v[0] == first_day).await.unwrap();
    assert_eq!(n, 1, "{who}");
    assert!(
        !one_day.is_empty()
            && one_day
                .iter()
                .all(|f| f.partition_values == [first_day.clone()])
    );

    assert_eq!(t.stats.num_rows, Some(p.rows), "{who}");
    assert_eq!(t.stats.num_files, Some(listed.len() as u64), "{who}");
    assert_eq!(
        t.stats.total_size,
        Some(listed.iter().map(|f| f.size).sum()),
        "{who}"
    );
    assert_eq!(files::footer_rows(&listed).await.unwrap(), p.rows);

    // An unpartitioned table, with a `_SUCCESS` marker beside its files.
    let u = &e.unpartitioned;
    let t = catalog.table(&u.name).await.unwrap();
    assert!(
        t.partition_keys.is_empty() && t.partitions.is_empty(),
        "{who}"
    );
    let table_dir = e.root.join(&u.name.db).join(&u.name.table);
    assert!(table_dir.join("_SUCCESS").exists());
    assert_eq!(t.location, url(&table_dir), "{who}");
    assert_eq!(spelled(&t.columns), u.columns, "{who}");
    assert_types(&who, &t.columns);
    let (listed, _) = files::list_table(&t, |_| true).await.unwrap();
    assert_eq!(listed.len(), u.files, "{who}: {listed:?}");
    assert_eq!(t.stats.num_rows, Some(u.rows), "{who}");
    assert_eq!(t.stats.num_files, Some(u.files as u64), "{who}");

    // Missing things are named.
    let db = &p.name.db;
    let missing_db = format!("{db}_missing");
    let err = catalog.tables(&missing_db).await.unwrap_err();
    assert!(
        matches!(&err, Error::DatabaseNotFound(n, _) if *n == missing_db),
        "{who}: {err:?}"
    );
    assert!(err.to_string().contains(&missing_db), "{err}");
    let err = catalog
        .table(&TableName::new(&missing_db, "referrals"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DatabaseNotFound(n, _) if *n == missing_db),
        "{who}: {err:?}"
    );
    let err = catalog
        .table(&TableName::new(db, "no_such_table"))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::TableNotFound(..)), "{who}: {err:?}");
    assert!(
        err.to_string().contains(&format!("{db}.no_such_table")),
        "{err}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn directory_catalog_meets_the_contract_over_the_fixtures() {
    let e = generated();
    let catalog = catalog::open(&url(&e.root), &CatalogConfig::default())
        .await
        .unwrap();
    assert_contract(catalog.as_ref(), e).await;
}

#[tokio::test]
async fn hive_catalog_meets_the_contract_over_the_registered_fixtures() {
    let metastore = Metastore::shared();
    let e = generated();
    let started = Instant::now();
    let registered = register(&metastore.address(), &e.root).await.unwrap();
    eprintln!(
        "registered the fixtures in {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(
        registered,
        ["activity.user_activity", "qa.awkward", "social.referrals"]
    );

    let catalog = catalog::open(&metastore.uri(), &CatalogConfig::default())
        .await
        .unwrap();
    assert_eq!(catalog.uri(), metastore.uri());
    assert_contract(catalog.as_ref(), e).await;

    let t = catalog.table(&e.partitioned.name).await.unwrap();
    assert_eq!(
        t.parameters.get("EXTERNAL").map(String::as_str),
        Some("TRUE"),
        "{:?}",
        t.parameters
    );
    assert_eq!(
        t.partitions.iter().filter_map(|p| p.num_rows).sum::<u64>(),
        e.partitioned.rows,
        "{:?}",
        t.partitions
    );
    assert!(t.partitions.iter().all(|p| p.num_rows.is_some()));
    // Nested and wide-decimal columns are registered as Hive spells them.
    let awkward = catalog
        .table(&TableName::new("qa", "awkward"))
        .await
        .unwrap();
    let tags = awkward.column("tags").unwrap();
    assert_eq!(tags.hive_type, "array<string>");
    assert!(!tags.is_scalar());
    assert_eq!(
        awkward.column("d").unwrap().data_type,
        Some(DataType::Decimal128(38, 10))
    );
}

#[tokio::test]
async fn directory_catalog_meets_the_contract_over_a_sample() {
    let (_dir, w) = warehouse("dircat");
    let catalog = catalog::open(&url(&w.root), &CatalogConfig::default())
        .await
        .unwrap();
    assert_contract(catalog.as_ref(), &sample_expected(&w)).await;
}

#[tokio::test]
async fn hive_catalog_meets_the_contract_over_a_sample_and_register_is_idempotent() {
    let metastore = Metastore::shared();
    let (_dir, w) = warehouse("hivecat");
    let expected = vec![format!("{}.referrals", w.db), format!("{}.users", w.db)];
    assert_eq!(
        register(&metastore.address(), &w.root).await.unwrap(),
        expected
    );
    // Registering again replaces the tables rather than adding to them.
    assert_eq!(
        register(&metastore.address(), &w.root).await.unwrap(),
        expected
    );

    let catalog = catalog::open(&metastore.uri(), &CatalogConfig::default())
        .await
        .unwrap();
    assert_contract(catalog.as_ref(), &sample_expected(&w)).await;
    let t = catalog
        .table(&TableName::new(&w.db, "referrals"))
        .await
        .unwrap();
    let per_partition = (sample::REFERRALS_FILES_PER_DAY * sample::REFERRALS_ROWS_PER_FILE) as u64;
    assert!(
        t.partitions
            .iter()
            .all(|p| p.num_rows == Some(per_partition)),
        "{:?}",
        t.partitions
    );
}

#[tokio::test]
async fn a_metastore_that_is_down_fails_within_the_connect_timeout() {
    let address = format!("127.0.0.1:{}", free_port());
    let config = CatalogConfig {
        connect_timeout_ms: 1_000,
        call_timeout_ms: 1_000,
    };
    let started = Instant::now();
    let err = HiveCatalog::connect(&address, &config).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, Error::MetastoreUnreachable { address: a, .. } if *a == address),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&address) && err.is_transient(),
        "{err}"
    );

    let err = catalog::open(&format!("thrift://{address}"), &config)
        .await
        .err()
        .expect("open fails");
    assert!(err.to_string().contains(&address), "{err}");

    // A name that does not resolve is just as unreachable, and named.
    let started = Instant::now();
    let err = HiveCatalog::connect("no-such-host.invalid:9083", &config)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains("no-such-host.invalid:9083"),
        "{err}"
    );

    for bad in ["localhost", "localhost:port", ":9083"] {
        let err = HiveCatalog::connect(bad, &config).await.unwrap_err();
        assert!(matches!(err, Error::BadCatalogUri(_)), "{bad}: {err:?}");
    }
}

#[tokio::test]
async fn localhost_is_a_valid_metastore_host() {
    let metastore = Metastore::shared();
    let address = format!("localhost:{}", metastore.addr().port());
    let catalog = HiveCatalog::connect(&address, &CatalogConfig::default())
        .await
        .unwrap();
    assert!(
        catalog
            .databases()
            .await
            .unwrap()
            .contains(&"default".to_string())
    );
}

/// One catalog call, boxed so that several can be checked in a loop.
type CatalogCall<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = publisher::Result<()>> + Send + 'a>>;

#[tokio::test]
async fn a_stalled_metastore_fails_within_the_call_timeout() {
    let stalled = StalledListener::start();
    let catalog = stalled.catalog(1_000).await;
    let calls: [(&str, CatalogCall<'_>); 3] = [
        (
            "get_all_databases",
            Box::pin(async { catalog.databases().await.map(drop) }),
        ),
        (
            "get_database",
            Box::pin(async { catalog.tables("default").await.map(drop) }),
        ),
        (
            "get_table",
            Box::pin(async {
                catalog
                    .table(&TableName::new("default", "t"))
                    .await
                    .map(drop)
            }),
        ),
    ];
    for (call, future) in calls {
        let started = Instant::now();
        let err = future.await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2_500),
            "{call}: {elapsed:?}"
        );
        match &err {
            Error::MetastoreTimeout {
                address,
                call: c,
                timeout_ms,
            } => {
                assert_eq!(
                    (address.as_str(), c.as_str(), *timeout_ms),
                    (stalled.address().as_str(), call, 1_000)
                );
            }
            other => panic!("{call}: expected a timeout, got {other:?}"),
        }
        assert!(
            err.to_string().contains(&stalled.address()) && err.is_transient(),
            "{err}"
        );
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
    catalog.ensure_database(&db, &url(&root)).await.unwrap();
    let name = TableName::new(&db, "lines");
    let registration = TableRegistration {
        name: name.clone(),
        location: url(&root),
        storage: HiveStorage::text(),
        columns: vec![
            Column::from_hive("k", "string"),
            Column::from_hive("v", "bigint"),
        ],
        partition_keys: vec![],
        partitions: vec![],
        stats: TableStats {
            num_rows: Some(2),
            total_size: Some(8),
            num_files: Some(1),
        },
        parameters: BTreeMap::new(),
        serde_parameters: BTreeMap::new(),
    };
    catalog.register_table(&registration).await.unwrap();

    let t = catalog
        .table(&name)
        .await
        .expect("a text table is described, not refused");
    assert_eq!(
        t.format,
        StorageFormat::Other {
            input_format: "org.apache.hadoop.mapred.TextInputFormat".into(),
            serde: "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into()
        }
    );
    assert_eq!(t.format.label(), "TextInputFormat");
    assert_eq!(
        t.stats,
        TableStats {
            num_rows: Some(2),
            total_size: Some(8),
            num_files: Some(1)
        }
    );
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
    catalog
        .ensure_database(&w.db, &url(&w.root.join(&w.db)))
        .await
        .unwrap();

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
        serde_parameters: [("path".to_string(), url(&users_dir))]
            .into_iter()
            .collect(),
    };
    catalog.register_table(&registration).await.unwrap();

    let t = catalog.table(&name).await.unwrap();
    assert_eq!(t.format, StorageFormat::Parquet);
    assert_eq!(t.location, url(&users_dir));
    let spelled = publisher::schema::spelled(&t.columns);
    assert_eq!(
        spelled,
        [
            ("user_id", "bigint"),
            ("name", "string"),
            ("tags", "array<string>")
        ]
    );
    assert!(!t.columns[2].is_scalar());
    // Spark's statistics, not the metastore's measurement of the placeholder folder.
    assert_eq!(
        t.stats,
        TableStats {
            num_rows: Some(100),
            total_size: Some(4321),
            num_files: None
        }
    );
    let (listed, _) = files::list_table(&t, |_| true).await.unwrap();
    assert_eq!(files::footer_rows(&listed).await.unwrap(), w.rows("users"));
}

#[tokio::test]
async fn a_truncated_parquet_file_is_named() {
    let (_dir, w) = warehouse("truncated");
    let path = w.root.join(&w.db).join("users").join("part-00000.parquet");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    let file = DataFile {
        url: url(&path),
        size: (bytes.len() / 2) as u64,
        partition_values: vec![],
        modified_ms: None,
    };
    let err = files::read_footer(&file).await.unwrap_err();
    assert!(
        matches!(&err, Error::FileRead { path: p, .. } if p.ends_with("users/part-00000.parquet")),
        "{err:?}"
    );
    assert!(err.to_string().contains("part-00000.parquet"), "{err}");

    // The directory catalog reads footers to describe a table: the same error reaches its caller.
    let catalog = catalog::open(&url(&w.root), &CatalogConfig::default())
        .await
        .unwrap();
    let err = catalog
        .table(&TableName::new(&w.db, "users"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("users/part-00000.parquet"),
        "{err}"
    );
}

/// A Hive catalog keeps its metastore connection across calls (the dashboard keeps one
/// catalog per configured URI), and when the connection breaks the next call connects again.
#[tokio::test]
async fn a_catalog_reuses_its_connection_and_reconnects_after_a_break() {
    let metastore = Metastore::shared();
    let proxy = tablecast_e2e::FreezeProxy::start(metastore.addr());
    let catalog = catalog::open(
        &format!("thrift://{}", proxy.addr()),
        &CatalogConfig::default(),
    )
    .await
    .unwrap();
    // The first call opens the connection (the connect's reachability probe was another).
    catalog.databases().await.unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let before = proxy.connections_accepted();
    for _ in 0..5 {
        catalog.databases().await.unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let used = proxy.connections_accepted() - before;
    assert_eq!(used, 0, "five more calls opened {used} more connection(s)");
    proxy.thaw_dropping();
    let mut answered = false;
    for _ in 0..3 {
        if catalog.databases().await.is_ok() {
            answered = true;
            break;
        }
    }
    assert!(answered, "no call succeeded after the connection broke");
    assert!(
        proxy.connections_accepted() > before,
        "the call after the break did not connect again"
    );
}
