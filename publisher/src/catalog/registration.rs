//! The metastore's write side: creating databases and (re)registering external tables with
//! their partitions and statistics, the way a warehouse team would. Fixture registration and
//! tests that need tables as Hive or Spark register them use it; publishing never writes.

use std::collections::BTreeMap;

use hive_metastore::{
    Database, FieldSchema, Partition as HivePartition, SerDeInfo, SkewedInfo, StorageDescriptor,
    Table, ThriftHiveMetastoreCreateDatabaseException, ThriftHiveMetastoreDropTableException,
    ThriftHiveMetastoreGetDatabaseException,
};
use pilota::{AHashMap, FastStr};
use volo_thrift::MaybeException;

use super::{Catalog, HiveCatalog, TableStats};
use crate::schema::{Column, TableName};
use crate::{Error, Result};

/// Input format, output format and serde of a Hive table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiveStorage {
    pub input_format: String,
    pub output_format: String,
    pub serde: String,
}

impl HiveStorage {
    pub fn parquet() -> Self {
        HiveStorage {
            input_format: "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat".into(),
            output_format: "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat".into(),
            serde: "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe".into(),
        }
    }

    /// Hive's default: delimited text.
    pub fn text() -> Self {
        HiveStorage {
            input_format: "org.apache.hadoop.mapred.TextInputFormat".into(),
            output_format: "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat".into(),
            serde: "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into(),
        }
    }
}

/// Statistics of one partition as registered (Hive's `numRows`, `totalSize`, `numFiles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub values: Vec<String>,
    /// URL of the partition folder (`file:///…`).
    pub location: String,
    pub stats: TableStats,
}

/// One external table to (re)create in the metastore.
#[derive(Debug, Clone)]
pub struct TableRegistration {
    pub name: TableName,
    /// URL of the table folder (`file:///…` or `hdfs://…`).
    pub location: String,
    pub storage: HiveStorage,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    pub partitions: Vec<PartitionRegistration>,
    pub stats: TableStats,
    /// Further table parameters (e.g. Spark's `spark.sql.sources.*`).
    pub parameters: BTreeMap<String, String>,
    /// Further serde parameters (e.g. the `path` of a Spark datasource table).
    pub serde_parameters: BTreeMap<String, String>,
}

impl HiveCatalog {
    /// Creates database `db` at `location` unless it exists.
    pub async fn ensure_database(&self, db: &str, location: &str) -> Result<()> {
        let (metastore, client) = (self, &self.client);
        match metastore
            .call("get_database", client.get_database(FastStr::new(db)))
            .await?
        {
            MaybeException::Ok(_) => return Ok(()),
            MaybeException::Exception(ThriftHiveMetastoreGetDatabaseException::O1(_)) => {} // no such database
            MaybeException::Exception(e) => return Err(failed(metastore, "get_database", db, e)),
        }
        let database = Database {
            name: Some(FastStr::new(db)),
            description: Some(FastStr::from_static_str("registered by tablecast fixtures")),
            location_uri: Some(FastStr::new(location)),
            parameters: Some(AHashMap::default()),
            ..Default::default()
        };
        match metastore
            .call("create_database", client.create_database(database))
            .await?
        {
            MaybeException::Ok(()) => Ok(()),
            // Someone else created it meanwhile: just as good.
            MaybeException::Exception(ThriftHiveMetastoreCreateDatabaseException::O1(_)) => Ok(()),
            MaybeException::Exception(e) => Err(failed(metastore, "create_database", db, e)),
        }
    }

    /// Drops `name` if it exists (never its data: the tables are external) and creates it as
    /// described, with its partitions. The database must exist.
    pub async fn register_table(&self, t: &TableRegistration) -> Result<()> {
        let (metastore, client) = (self, &self.client);
        let (db, table) = (FastStr::new(&t.name.db), FastStr::new(&t.name.table));
        match metastore
            .call(
                "drop_table",
                client.drop_table(db.clone(), table.clone(), false),
            )
            .await?
        {
            MaybeException::Ok(())
            | MaybeException::Exception(ThriftHiveMetastoreDropTableException::O1(_)) => {}
            MaybeException::Exception(e) => {
                return Err(failed(metastore, "drop_table", &t.name, e));
            }
        }

        let now = i32::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
        .unwrap_or(i32::MAX);
        let mut parameters = stats_parameters(&t.stats);
        parameters.insert("EXTERNAL".into(), "TRUE".into());
        for (k, v) in &t.parameters {
            parameters.insert(FastStr::new(k), FastStr::new(v));
        }
        let hive_table = Table {
            table_name: Some(table.clone()),
            db_name: Some(db.clone()),
            owner: Some(FastStr::from_static_str("tablecast")),
            create_time: Some(now),
            last_access_time: Some(0),
            retention: Some(0),
            sd: Some(storage_descriptor(t, &t.location)),
            partition_keys: Some(t.partition_keys.iter().map(field_schema).collect()),
            parameters: Some(parameters),
            table_type: Some(FastStr::from_static_str("EXTERNAL_TABLE")),
            ..Default::default()
        };
        match metastore
            .call("create_table", client.create_table(hive_table))
            .await?
        {
            MaybeException::Ok(()) => {}
            MaybeException::Exception(e) => {
                return Err(failed(metastore, "create_table", &t.name, e));
            }
        }

        self.add_partitions(t, &t.partitions).await
    }

    /// Adds `partitions` to the registered table `t` (as a warehouse's nightly load does with
    /// `ALTER TABLE … ADD PARTITION`).
    pub async fn add_partitions(
        &self,
        t: &TableRegistration,
        partitions: &[PartitionRegistration],
    ) -> Result<()> {
        let (metastore, client) = (self, &self.client);
        let (db, table) = (FastStr::new(&t.name.db), FastStr::new(&t.name.table));
        if partitions.is_empty() {
            return Ok(());
        }
        let now = i32::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
        .unwrap_or(i32::MAX);
        let partitions: Vec<HivePartition> = partitions
            .iter()
            .map(|p| HivePartition {
                values: Some(p.values.iter().map(FastStr::new).collect()),
                db_name: Some(db.clone()),
                table_name: Some(table.clone()),
                create_time: Some(now),
                last_access_time: Some(0),
                sd: Some(storage_descriptor(t, &p.location)),
                parameters: Some(stats_parameters(&p.stats)),
                ..Default::default()
            })
            .collect();
        // In batches: one Thrift message per hundred partitions keeps Derby's transactions small,
        // and each call well within the client's timeout (500 a call took over 10 s on a slow
        // machine, 2026-12-04).
        for batch in partitions.chunks(100) {
            match metastore
                .call("add_partitions", client.add_partitions(batch.to_vec()))
                .await?
            {
                MaybeException::Ok(_) => {}
                MaybeException::Exception(e) => {
                    return Err(failed(metastore, "add_partitions", &t.name, e));
                }
            }
        }
        Ok(())
    }
}

/// Hive's basic statistics parameters. With `numFiles` and `totalSize` present the metastore
/// keeps them rather than replacing them with its own quick listing.
fn stats_parameters(stats: &TableStats) -> AHashMap<FastStr, FastStr> {
    let mut params = AHashMap::default();
    for (key, value) in [
        ("numRows", stats.num_rows),
        ("totalSize", stats.total_size),
        ("numFiles", stats.num_files),
    ] {
        if let Some(v) = value {
            params.insert(FastStr::from_static_str(key), FastStr::new(v.to_string()));
        }
    }
    params
}

fn storage_descriptor(t: &TableRegistration, location: &str) -> StorageDescriptor {
    let mut serde_params = AHashMap::default();
    serde_params.insert(
        FastStr::from_static_str("serialization.format"),
        FastStr::from_static_str("1"),
    );
    for (k, v) in &t.serde_parameters {
        serde_params.insert(FastStr::new(k), FastStr::new(v));
    }
    StorageDescriptor {
        cols: Some(t.columns.iter().map(field_schema).collect()),
        location: Some(FastStr::new(location)),
        input_format: Some(FastStr::new(&t.storage.input_format)),
        output_format: Some(FastStr::new(&t.storage.output_format)),
        compressed: Some(false),
        num_buckets: Some(-1),
        serde_info: Some(SerDeInfo {
            name: None,
            serialization_lib: Some(FastStr::new(&t.storage.serde)),
            parameters: Some(serde_params),
        }),
        bucket_cols: Some(Vec::new()),
        sort_cols: Some(Vec::new()),
        parameters: Some(AHashMap::default()),
        skewed_info: Some(SkewedInfo {
            skewed_col_names: Some(Vec::new()),
            skewed_col_values: Some(Vec::new()),
            skewed_col_value_location_maps: Some(AHashMap::default()),
        }),
        stored_as_sub_directories: Some(false),
    }
}

fn field_schema(c: &Column) -> FieldSchema {
    FieldSchema {
        name: Some(FastStr::new(&c.name)),
        r#type: Some(FastStr::new(&c.hive_type)),
        comment: None,
    }
}

fn failed(
    metastore: &HiveCatalog,
    call: &str,
    subject: impl std::fmt::Display,
    exception: impl std::fmt::Debug,
) -> Error {
    Error::Catalog {
        uri: metastore.uri().to_string(),
        message: format!("{call} {subject}: {exception:?}"),
    }
}
