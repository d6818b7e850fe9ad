//! Where tables are described: the Hive metastore (Thrift) or a directory of Parquet files.
//!
//! Both implementations answer the same questions in the same terms ([`TableMeta`]) and pass the
//! same contract tests, so nothing downstream knows which one it talks to.

mod directory;
mod hive;
mod registration;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use directory::DirectoryCatalog;
pub use hive::HiveCatalog;
pub use registration::{HiveStorage, PartitionRegistration, TableRegistration};

use crate::error::{Error, Result};
use crate::schema::{Column, TableName};

#[async_trait]
pub trait Catalog: Send + Sync {
    /// The URI this catalog was opened with, for messages and reports.
    fn uri(&self) -> &str;
    async fn databases(&self) -> Result<Vec<String>>;
    async fn tables(&self, db: &str) -> Result<Vec<String>>;
    /// Describes one table; the error names the missing database or table.
    async fn table(&self, name: &TableName) -> Result<TableMeta>;
}

/// What a publish needs to know about a table before reading any of it.
#[derive(Debug, Clone, Serialize)]
pub struct TableMeta {
    pub name: TableName,
    /// URL of the table's root: `file:///…` or `hdfs://…`.
    pub location: String,
    pub format: StorageFormat,
    /// Data columns, in table order, without the partition keys.
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    /// Known partitions; empty for an unpartitioned table.
    pub partitions: Vec<Partition>,
    pub stats: TableStats,
    /// Table parameters as the catalog keeps them (empty for the directory catalog).
    pub parameters: BTreeMap<String, String>,
}

impl TableMeta {
    /// Data columns followed by partition keys: the schema a query sees.
    pub fn all_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().chain(self.partition_keys.iter())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.all_columns()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn is_partition_key(&self, name: &str) -> bool {
        self.partition_keys
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StorageFormat {
    Parquet,
    Orc,
    /// Anything else (text, Avro, JSON, sequence files…): readable only by the fallback.
    Other {
        input_format: String,
        serde: String,
    },
}

impl StorageFormat {
    /// Recognizes Parquet and ORC by input format, serde class or Spark provider, as Hive
    /// (`OrcInputFormat`, `ParquetHiveSerDe`) and Spark (`provider = orc`) register them.
    pub fn from_hive(input_format: &str, serde_lib: &str, provider: Option<&str>) -> Self {
        let parquet = |s: &str| s.to_ascii_lowercase().contains("parquet");
        // A package `orc` or a class `Orc…` (`org.apache.hadoop.hive.ql.io.orc.OrcSerde`); a bare
        // substring would take `ForceInputFormat` for ORC.
        let orc = |s: &str| {
            s.split('.')
                .any(|part| part.eq_ignore_ascii_case("orc") || part.starts_with("Orc"))
        };
        let any = |test: &dyn Fn(&str) -> bool| {
            test(input_format) || test(serde_lib) || provider.is_some_and(test)
        };
        if any(&parquet) {
            StorageFormat::Parquet
        } else if any(&orc) {
            StorageFormat::Orc
        } else {
            StorageFormat::Other {
                input_format: input_format.into(),
                serde: serde_lib.into(),
            }
        }
    }

    /// Whether the fast track (and footers, previews) can read files of this format.
    pub fn is_columnar(&self) -> bool {
        matches!(self, StorageFormat::Parquet | StorageFormat::Orc)
    }

    pub fn label(&self) -> &str {
        match self {
            StorageFormat::Parquet => "parquet",
            StorageFormat::Orc => "orc",
            StorageFormat::Other { input_format, .. } => {
                input_format.rsplit('.').next().unwrap_or(input_format)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Values in the order of [`TableMeta::partition_keys`].
    pub values: Vec<String>,
    pub location: String,
    /// Row count from the partition's statistics, when the catalog keeps one.
    pub num_rows: Option<u64>,
}

/// Statistics as the catalog records them; absent values are measured from files instead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableStats {
    pub num_rows: Option<u64>,
    pub total_size: Option<u64>,
    pub num_files: Option<u64>,
}

/// Connection settings for the metastore; the directory catalog needs none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    pub connect_timeout_ms: u64,
    pub call_timeout_ms: u64,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            connect_timeout_ms: 3_000,
            call_timeout_ms: 10_000,
        }
    }
}

impl CatalogConfig {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
}

/// Opens `thrift://host:port` (Hive metastore) or `file:///path` (directory catalog).
pub async fn open(uri: &str, config: &CatalogConfig) -> Result<Arc<dyn Catalog>> {
    if let Some(addr) = uri.strip_prefix("thrift://") {
        Ok(Arc::new(
            HiveCatalog::connect(addr.trim_end_matches('/'), config).await?,
        ))
    } else if uri.starts_with("file:") {
        let url = url::Url::parse(uri).map_err(|_| Error::BadCatalogUri(uri.into()))?;
        let path = url
            .to_file_path()
            .map_err(|_| Error::BadCatalogUri(uri.into()))?;
        Ok(Arc::new(DirectoryCatalog::open(path)?))
    } else {
        Err(Error::BadCatalogUri(uri.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::StorageFormat;

    #[test]
    fn formats_are_recognized_as_hive_and_spark_register_them() {
        let cases = [
            (
                "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat",
                "org.apache.hadoop.hive.ql.io.orc.OrcSerde",
                None,
                "orc",
            ),
            (
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                None,
                "parquet",
            ),
            // A datasource table: Spark's provider decides, the Hive classes are placeholders.
            (
                "org.apache.hadoop.mapred.SequenceFileInputFormat",
                "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                Some("orc"),
                "orc",
            ),
            (
                "org.apache.hadoop.mapred.TextInputFormat",
                "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                None,
                "TextInputFormat",
            ),
            // `orc` inside a word is not ORC.
            (
                "com.example.ForceInputFormat",
                "com.example.ForceSerde",
                None,
                "ForceInputFormat",
            ),
        ];
        for (input, serde, provider, label) in cases {
            let format = StorageFormat::from_hive(input, serde, provider);
            assert_eq!(format.label(), label, "{input} {serde} {provider:?}");
            assert_eq!(format.is_columnar(), label == "orc" || label == "parquet");
        }
    }
}
