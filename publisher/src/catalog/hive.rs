//! The Hive metastore over Thrift (unframed binary, as Hive 2.x/3.x serve it).
//!
//! Every call is bounded by [`CatalogConfig::call_timeout`], so a metastore that accepts
//! connections but never answers fails as promptly as one that is down. The metastore's own
//! exceptions become [`Error`]s in one place ([`HiveCatalog::convert`]), naming the missing
//! database or table.
//!
//! Tables written by Spark are read the way Spark reads them: the true schema of a datasource
//! table is the `spark.sql.sources.schema` property (its Hive columns may be a placeholder), its
//! location may be the `path` serde parameter, and its statistics may be kept only as
//! `spark.sql.statistics.*` parameters.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use hive_metastore::{FieldSchema, ThriftHiveMetastoreClient, ThriftHiveMetastoreClientBuilder};
use pilota::{AHashMap, FastStr};
use volo_thrift::{ClientError, MaybeException};

use super::{Catalog, CatalogConfig, Partition, StorageFormat, TableMeta, TableStats};
use crate::error::{Error, Result};
use crate::schema::{Column, TableName};

pub struct HiveCatalog {
    uri: String,
    /// The address as given (`host:port`), for messages.
    address: String,
    socket: SocketAddr,
    config: CatalogConfig,
    pub(super) client: ThriftHiveMetastoreClient,
    /// Metastore calls made, for the table watcher's cost (one description per table per poll).
    calls: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for HiveCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HiveCatalog")
            .field("uri", &self.uri)
            .field("socket", &self.socket)
            .finish()
    }
}

/// What a metastore exception says, reduced to what callers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExceptionKind {
    NoSuchObject,
    Other,
}

/// The exception unions of the generated client, one per method, all made of the same few
/// exception structs; this trait lets one function interpret all of them.
trait HmsException {
    fn kind_and_message(&self) -> (ExceptionKind, &'static str, String);
}

macro_rules! hms_exceptions {
    ($($union:ident { $($variant:ident : $ex:ident),+ })+) => {$(
        impl HmsException for hive_metastore::$union {
            fn kind_and_message(&self) -> (ExceptionKind, &'static str, String) {
                match self {$(
                    hive_metastore::$union::$variant(e) => (
                        hms_exceptions!(@kind $ex),
                        stringify!($ex),
                        e.message.as_deref().unwrap_or_default().to_string(),
                    ),
                )+}
            }
        }
    )+};
    (@kind NoSuchObjectException) => { ExceptionKind::NoSuchObject };
    (@kind $other:ident) => { ExceptionKind::Other };
}

hms_exceptions! {
    ThriftHiveMetastoreGetAllDatabasesException { O1: MetaException }
    ThriftHiveMetastoreGetAllTablesException { O1: MetaException }
    ThriftHiveMetastoreGetDatabaseException { O1: NoSuchObjectException, O2: MetaException }
    ThriftHiveMetastoreGetTableException { O1: MetaException, O2: NoSuchObjectException }
    ThriftHiveMetastoreGetPartitionsException { O1: NoSuchObjectException, O2: MetaException }
}

/// What a call is about, so that "no such object" can name it.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Database(&'a str),
    Table(&'a TableName),
    Nothing,
}

impl HiveCatalog {
    /// Resolves `host:port` (`localhost` allowed) and checks that something accepts TCP there
    /// within the connect timeout; calls are made later, each under the call timeout.
    pub async fn connect(address: &str, config: &CatalogConfig) -> Result<Self> {
        let uri = format!("thrift://{address}");
        if address
            .rsplit_once(':')
            .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            return Err(Error::BadCatalogUri(uri));
        }
        let unreachable = |message: String| Error::MetastoreUnreachable {
            address: address.to_string(),
            message,
        };
        let timeout = config.connect_timeout();
        let socket = tokio::time::timeout(timeout, first_reachable(address))
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no TCP connection within {} ms",
                    timeout.as_millis()
                ))
            })?
            .map_err(unreachable)?;
        let client = ThriftHiveMetastoreClientBuilder::new("hms")
            .make_codec(volo_thrift::codec::default::DefaultMakeCodec::buffered())
            .address(socket)
            .build();
        Ok(HiveCatalog {
            uri,
            address: address.to_string(),
            socket,
            config: config.clone(),
            client,
            calls: Default::default(),
        })
    }

    /// The address as given to [`HiveCatalog::connect`] (`host:port`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The resolved address that accepted the connection check.
    pub fn socket_addr(&self) -> SocketAddr {
        self.socket
    }

    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    /// How many metastore calls this client has made.
    pub fn calls_made(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs one metastore call under the call timeout. A silent metastore becomes
    /// [`Error::MetastoreTimeout`], a broken connection [`Error::MetastoreUnreachable`], both
    /// naming the address and the call; the metastore's own exceptions are returned as they are.
    pub async fn call<T, E>(
        &self,
        call: &str,
        request: impl Future<Output = std::result::Result<MaybeException<T, E>, ClientError>>,
    ) -> Result<MaybeException<T, E>> {
        let timeout = self.config.call_timeout();
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match tokio::time::timeout(timeout, request).await {
            Err(_) => Err(Error::MetastoreTimeout {
                address: self.address.clone(),
                call: call.to_string(),
                timeout_ms: duration_ms(timeout),
            }),
            Ok(Err(ClientError::Transport(e))) => Err(Error::MetastoreUnreachable {
                address: self.address.clone(),
                message: format!("{call}: {e}"),
            }),
            Ok(Err(e)) => Err(Error::Catalog {
                uri: self.uri.clone(),
                message: format!("{call}: {e}"),
            }),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// The one place where metastore exceptions become errors: "no such object" names the
    /// database or table the call was about; anything else keeps the metastore's message.
    fn convert<T, E: HmsException>(
        &self,
        call: &str,
        subject: Subject<'_>,
        answer: MaybeException<T, E>,
    ) -> Result<T> {
        let exception = match answer {
            MaybeException::Ok(value) => return Ok(value),
            MaybeException::Exception(e) => e,
        };
        let (kind, class, message) = exception.kind_and_message();
        match (kind, subject) {
            (ExceptionKind::NoSuchObject, Subject::Database(db)) => {
                Err(Error::DatabaseNotFound(db.to_string(), self.uri.clone()))
            }
            (ExceptionKind::NoSuchObject, Subject::Table(t)) => {
                Err(Error::TableNotFound(t.to_string(), self.uri.clone()))
            }
            _ => Err(Error::Catalog {
                uri: self.uri.clone(),
                message: format!("{call}: {class}: {message}"),
            }),
        }
    }

    async fn database_exists(&self, db: &str) -> Result<bool> {
        let answer = self
            .call("get_database", self.client.get_database(FastStr::new(db)))
            .await?;
        match self.convert("get_database", Subject::Database(db), answer) {
            Ok(_) => Ok(true),
            Err(Error::DatabaseNotFound(..)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Connects to each address `host:port` resolves to, in order; the first that accepts wins.
async fn first_reachable(address: &str) -> std::result::Result<SocketAddr, String> {
    let candidates: Vec<SocketAddr> = tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    let mut last = format!("{address} resolves to no address");
    for socket in candidates {
        match tokio::net::TcpStream::connect(socket).await {
            Ok(_) => return Ok(socket),
            Err(e) => last = format!("connecting to {socket}: {e}"),
        }
    }
    Err(last)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Catalog for HiveCatalog {
    fn uri(&self) -> &str {
        &self.uri
    }

    async fn databases(&self) -> Result<Vec<String>> {
        let answer = self
            .call("get_all_databases", self.client.get_all_databases())
            .await?;
        let mut names: Vec<String> = self
            .convert("get_all_databases", Subject::Nothing, answer)?
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn tables(&self, db: &str) -> Result<Vec<String>> {
        // Hive answers get_all_tables for an unknown database with an empty list.
        if !self.database_exists(db).await? {
            return Err(Error::DatabaseNotFound(db.to_string(), self.uri.clone()));
        }
        let answer = self
            .call(
                "get_all_tables",
                self.client.get_all_tables(FastStr::new(db)),
            )
            .await?;
        let mut names: Vec<String> = self
            .convert("get_all_tables", Subject::Database(db), answer)?
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn table(&self, name: &TableName) -> Result<TableMeta> {
        let (db, tbl) = (FastStr::new(&name.db), FastStr::new(&name.table));
        let answer = self
            .call("get_table", self.client.get_table(db.clone(), tbl.clone()))
            .await?;
        let table = match self.convert("get_table", Subject::Table(name), answer) {
            // Hive says "db.table table not found" either way; tell which one is missing.
            Err(Error::TableNotFound(..)) if !self.database_exists(&name.db).await? => {
                return Err(Error::DatabaseNotFound(name.db.clone(), self.uri.clone()));
            }
            other => other?,
        };
        let partition_keys: Vec<Column> = table
            .partition_keys
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(field_column)
            .collect();
        let partitions = if partition_keys.is_empty() {
            Vec::new()
        } else {
            let answer = self
                .call("get_partitions", self.client.get_partitions(db, tbl, -1))
                .await?;
            let mut partitions: Vec<Partition> = self
                .convert("get_partitions", Subject::Table(name), answer)?
                .into_iter()
                .map(|p| Partition {
                    values: p
                        .values
                        .unwrap_or_default()
                        .iter()
                        .map(|v| v.to_string())
                        .collect(),
                    location: normalize_location(
                        p.sd.as_ref()
                            .and_then(|sd| sd.location.as_deref())
                            .unwrap_or(""),
                    ),
                    num_rows: stat(p.parameters.as_ref(), &["numRows"]),
                })
                .collect();
            partitions.sort_by(|a, b| a.values.cmp(&b.values));
            partitions
        };
        describe(name, &self.uri, table, partition_keys, partitions)
    }
}

/// Builds the [`TableMeta`] of one table from what the metastore returned.
fn describe(
    name: &TableName,
    uri: &str,
    table: hive_metastore::Table,
    partition_keys: Vec<Column>,
    partitions: Vec<Partition>,
) -> Result<TableMeta> {
    let params = table.parameters.as_ref();
    let param = |key: &str| params.and_then(|p| p.get(key)).map(|v| v.as_str());
    let sd = table.sd.unwrap_or_default();
    let serde = sd.serde_info.unwrap_or_default();
    let provider = param("spark.sql.sources.provider");

    // A Spark datasource table keeps its real location in the `path` serde parameter; its
    // storage descriptor's location may be a placeholder or absent.
    let serde_path = serde
        .parameters
        .as_ref()
        .and_then(|p| p.get("path"))
        .filter(|p| !p.is_empty());
    let location = normalize_location(
        serde_path
            .or(sd.location.as_ref())
            .map(|s| s.as_str())
            .unwrap_or(""),
    );

    let format = StorageFormat::from_hive(
        sd.input_format.as_deref().unwrap_or(""),
        serde.serialization_lib.as_deref().unwrap_or(""),
        provider,
    );

    let columns = match spark_schema(params).map_err(|message| Error::Catalog {
        uri: uri.to_string(),
        message: format!("table {name}: unreadable spark.sql.sources.schema: {message}"),
    })? {
        Some(fields) => fields
            .into_iter()
            .filter(|c| {
                !partition_keys
                    .iter()
                    .any(|k| k.name.eq_ignore_ascii_case(&c.name))
            })
            .collect(),
        None => sd
            .cols
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(field_column)
            .collect(),
    };

    // Hive's own statistics describe the storage descriptor's location; when a Spark table
    // lives elsewhere (`path`), the metastore measured a placeholder folder.
    let hive_measured_data = serde_path.is_none()
        || sd
            .location
            .as_ref()
            .is_some_and(|l| normalize_location(l) == location);
    let hive = |key: &str| {
        if hive_measured_data {
            stat(params, &[key])
        } else {
            None
        }
    };
    let spark = |key: &str| stat(params, &[key]);
    // Spark keeps its tables' statistics up to date under its own keys; Hive's may be stale there.
    let spark_first = provider.is_some_and(|p| !p.eq_ignore_ascii_case("hive"));
    let pick = |hive_key: &str, spark_key: &str| {
        if spark_first {
            spark(spark_key).or_else(|| hive(hive_key))
        } else {
            hive(hive_key).or_else(|| spark(spark_key))
        }
    };
    let mut stats = TableStats {
        num_rows: pick("numRows", "spark.sql.statistics.numRows"),
        total_size: pick("totalSize", "spark.sql.statistics.totalSize"),
        num_files: hive("numFiles"),
    };
    // Hive leaves `numRows=0` on tables whose files were added behind its back; with bytes on
    // disk that zero is stale, not a fact.
    if stats.num_rows == Some(0) && stats.total_size.is_some_and(|s| s > 0) {
        stats.num_rows = None;
    }
    // Partitioned tables often carry their statistics only per partition.
    if stats.num_rows.is_none() && !partitions.is_empty() {
        stats.num_rows = partitions.iter().map(|p| p.num_rows).sum();
    }

    let parameters: BTreeMap<String, String> = params
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(TableMeta {
        name: name.clone(),
        location,
        format,
        columns,
        partition_keys,
        partitions,
        stats,
        parameters,
    })
}

fn field_column(f: &FieldSchema) -> Column {
    Column::from_hive(
        f.name.as_deref().unwrap_or(""),
        f.r#type.as_deref().unwrap_or(""),
    )
}

/// The first of `keys` present with a usable value; `-1` (Hive's "unknown") counts as absent.
fn stat(params: Option<&AHashMap<FastStr, FastStr>>, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| {
        params?
            .get(*k)?
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|v| u64::try_from(v).ok())
    })
}

/// Metastore locations as URLs: `file:/x` (how Hive writes local paths) and bare `/x` become
/// `file:///x`; `hdfs://…` and others are kept; a trailing `/` is dropped.
fn normalize_location(location: &str) -> String {
    let location = location.trim();
    let normalized = if let Some(rest) = location.strip_prefix("file:") {
        format!("file:///{}", rest.trim_start_matches('/'))
    } else if location.starts_with('/') {
        format!("file:///{}", location.trim_start_matches('/'))
    } else {
        location.to_string()
    };
    match normalized.strip_suffix('/') {
        Some(s) if !s.ends_with(':') && !s.ends_with("//") => s.to_string(),
        _ => normalized,
    }
}

/// The Spark schema of a datasource table, when its properties carry one (whole, or split over
/// `numParts` parts), as columns with Hive type spellings.
fn spark_schema(
    params: Option<&AHashMap<FastStr, FastStr>>,
) -> std::result::Result<Option<Vec<Column>>, String> {
    let Some(params) = params else {
        return Ok(None);
    };
    let json = if let Some(whole) = params.get("spark.sql.sources.schema") {
        whole.to_string()
    } else if let Some(n) = params.get("spark.sql.sources.schema.numParts") {
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("numParts {n:?} is not a number"))?;
        let mut json = String::new();
        for i in 0..n {
            let key = format!("spark.sql.sources.schema.part.{i}");
            json.push_str(
                params
                    .get(key.as_str())
                    .ok_or_else(|| format!("{key} is missing"))?,
            );
        }
        json
    } else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    let fields = value
        .get("fields")
        .and_then(|f| f.as_array())
        .ok_or("no `fields` array")?;
    fields
        .iter()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(|n| n.as_str())
                .ok_or("a field without a name")?;
            let hive = spark_type_to_hive(
                f.get("type")
                    .ok_or_else(|| format!("field {name} has no type"))?,
            )?;
            Ok(Column::from_hive(name, &hive))
        })
        .collect::<std::result::Result<Vec<_>, String>>()
        .map(Some)
}

/// Spells a Spark SQL type (its JSON form) the way Hive does.
fn spark_type_to_hive(t: &serde_json::Value) -> std::result::Result<String, String> {
    if let Some(simple) = t.as_str() {
        let hive = match simple {
            "long" => "bigint",
            "integer" => "int",
            "short" => "smallint",
            "byte" => "tinyint",
            "timestamp" | "timestamp_ntz" => "timestamp",
            "null" | "void" => "void",
            other => other, // string, double, float, boolean, date, binary, decimal(p,s), (var)char(n)
        };
        return Ok(hive.to_string());
    }
    let kind = t
        .get("type")
        .and_then(|k| k.as_str())
        .ok_or_else(|| format!("unknown Spark type {t}"))?;
    let inner = |key: &str| {
        t.get(key)
            .ok_or_else(|| format!("{kind} type without {key}"))
            .and_then(spark_type_to_hive)
    };
    match kind {
        "array" => Ok(format!("array<{}>", inner("elementType")?)),
        "map" => Ok(format!(
            "map<{},{}>",
            inner("keyType")?,
            inner("valueType")?
        )),
        "struct" => {
            let fields = t
                .get("fields")
                .and_then(|f| f.as_array())
                .ok_or("struct type without fields")?;
            let parts = fields
                .iter()
                .map(|f| {
                    let name = f
                        .get("name")
                        .and_then(|n| n.as_str())
                        .ok_or("a struct field without a name")?;
                    Ok(format!(
                        "{name}:{}",
                        spark_type_to_hive(f.get("type").ok_or("a struct field without a type")?)?
                    ))
                })
                .collect::<std::result::Result<Vec<String>, String>>()?;
            Ok(format!("struct<{}>", parts.join(",")))
        }
        "udt" => t
            .get("sqlType")
            .ok_or_else(|| "udt without sqlType".to_string())
            .and_then(spark_type_to_hive),
        other => Err(format!("unknown Spark type `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::DataType;

    use super::*;

    fn params(pairs: &[(&str, &str)]) -> AHashMap<FastStr, FastStr> {
        pairs
            .iter()
            .map(|(k, v)| (FastStr::new(*k), FastStr::new(*v)))
            .collect()
    }

    #[test]
    fn normalizes_locations() {
        assert_eq!(normalize_location("file:/tmp/w/db/t"), "file:///tmp/w/db/t");
        assert_eq!(
            normalize_location("file:///tmp/w/db/t/"),
            "file:///tmp/w/db/t"
        );
        assert_eq!(normalize_location("/tmp/w"), "file:///tmp/w");
        assert_eq!(
            normalize_location("hdfs://nn:8020/user/hive/warehouse/t"),
            "hdfs://nn:8020/user/hive/warehouse/t"
        );
        assert_eq!(normalize_location(""), "");
    }

    #[test]
    fn reads_statistics_with_spark_fallback() {
        let p = params(&[
            ("numRows", "-1"),
            ("spark.sql.statistics.numRows", "42"),
            ("totalSize", "1000"),
        ]);
        assert_eq!(
            stat(Some(&p), &["numRows", "spark.sql.statistics.numRows"]),
            Some(42)
        );
        assert_eq!(
            stat(Some(&p), &["totalSize", "spark.sql.statistics.totalSize"]),
            Some(1000)
        );
        assert_eq!(stat(Some(&p), &["numFiles"]), None);
        assert_eq!(stat(None, &["numFiles"]), None);
    }

    #[test]
    fn maps_spark_schema_split_over_parts() {
        let schema = r#"{"type":"struct","fields":[
            {"name":"user_id","type":"long","nullable":true,"metadata":{}},
            {"name":"Amount","type":"decimal(12,2)","nullable":true,"metadata":{}},
            {"name":"at","type":"timestamp","nullable":true,"metadata":{}},
            {"name":"n","type":"integer","nullable":true,"metadata":{}},
            {"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},
            {"name":"m","type":{"type":"map","keyType":"string","valueType":"double","valueContainsNull":true},"nullable":true,"metadata":{}},
            {"name":"s","type":{"type":"struct","fields":[{"name":"a","type":"boolean","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},
            {"name":"dt","type":"date","nullable":true,"metadata":{}}]}"#;
        let (a, b) = schema.split_at(100);
        let p = params(&[
            ("spark.sql.sources.schema.numParts", "2"),
            ("spark.sql.sources.schema.part.0", a),
            ("spark.sql.sources.schema.part.1", b),
        ]);
        let cols = spark_schema(Some(&p)).unwrap().unwrap();
        let spelled = crate::schema::spelled(&cols);
        assert_eq!(
            spelled,
            [
                ("user_id", "bigint"),
                ("amount", "decimal(12,2)"),
                ("at", "timestamp"),
                ("n", "int"),
                ("tags", "array<string>"),
                ("m", "map<string,double>"),
                ("s", "struct<a:boolean>"),
                ("dt", "date"),
            ]
        );
        assert_eq!(cols[0].data_type, Some(DataType::Int64));
        assert_eq!(cols[1].data_type, Some(DataType::Decimal128(12, 2)));

        let broken = params(&[
            ("spark.sql.sources.schema.numParts", "2"),
            ("spark.sql.sources.schema.part.0", a),
        ]);
        assert!(spark_schema(Some(&broken)).unwrap_err().contains("part.1"));
        assert_eq!(
            spark_schema(Some(&params(&[("numRows", "1")]))).unwrap(),
            None
        );
    }

    #[test]
    fn describes_a_spark_datasource_table() {
        use hive_metastore::{SerDeInfo, StorageDescriptor, Table};
        let schema = r#"{"type":"struct","fields":[{"name":"k","type":"string","nullable":true,"metadata":{}},
            {"name":"v","type":"long","nullable":true,"metadata":{}},{"name":"dt","type":"string","nullable":true,"metadata":{}}]}"#;
        let table = Table {
            sd: Some(StorageDescriptor {
                cols: Some(vec![FieldSchema {
                    name: Some("col".into()),
                    r#type: Some("array<string>".into()),
                    comment: None,
                }]),
                location: Some("file:/wh/db.db/t-__PLACEHOLDER__".into()),
                input_format: Some("org.apache.hadoop.mapred.SequenceFileInputFormat".into()),
                serde_info: Some(SerDeInfo {
                    serialization_lib: Some(
                        "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into(),
                    ),
                    parameters: Some(params(&[("path", "file:/data/t")])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            parameters: Some(params(&[
                ("spark.sql.sources.provider", "parquet"),
                ("spark.sql.sources.schema", schema),
                ("spark.sql.statistics.numRows", "7"),
                ("spark.sql.statistics.totalSize", "900"),
            ])),
            ..Default::default()
        };
        let name = TableName::new("db", "t");
        let table_with_hive_quick_stats = table.clone();
        let meta = describe(
            &name,
            "thrift://x:1",
            table,
            vec![Column::from_hive("dt", "string")],
            vec![],
        )
        .unwrap();
        assert_eq!(meta.location, "file:///data/t");
        assert_eq!(meta.format, StorageFormat::Parquet);
        assert_eq!(
            crate::schema::spelled(&meta.columns),
            [("k", "string"), ("v", "bigint")]
        );
        assert_eq!(
            meta.stats,
            TableStats {
                num_rows: Some(7),
                total_size: Some(900),
                num_files: None
            }
        );

        // Hive measured the placeholder folder: its zeros are not the table's.
        let mut table = table_with_hive_quick_stats;
        table
            .parameters
            .as_mut()
            .unwrap()
            .extend(params(&[("numFiles", "0"), ("totalSize", "0")]));
        let meta = describe(&name, "thrift://x:1", table, vec![], vec![]).unwrap();
        assert_eq!(
            meta.stats,
            TableStats {
                num_rows: Some(7),
                total_size: Some(900),
                num_files: None
            }
        );
        assert_eq!(meta.parameters["spark.sql.sources.provider"], "parquet");
    }

    #[test]
    fn sums_partition_rows_and_distrusts_stale_zero() {
        let table = hive_metastore::Table {
            parameters: Some(params(&[("numRows", "0"), ("totalSize", "5000")])),
            ..Default::default()
        };
        let part = |v: &str, rows| Partition {
            values: vec![v.into()],
            location: String::new(),
            num_rows: rows,
        };
        let name = TableName::new("db", "t");
        let keys = vec![Column::from_hive("dt", "string")];
        let meta = describe(
            &name,
            "u",
            table.clone(),
            keys.clone(),
            vec![part("1", Some(3)), part("2", Some(4))],
        )
        .unwrap();
        assert_eq!(meta.stats.num_rows, Some(7));
        let meta = describe(
            &name,
            "u",
            table,
            keys,
            vec![part("1", Some(3)), part("2", None)],
        )
        .unwrap();
        assert_eq!(meta.stats.num_rows, None);
    }
}
