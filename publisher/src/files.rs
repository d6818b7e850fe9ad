//! The data files behind a table, found by listing its storage (local or `hdfs://`), and what
//! their Parquet or ORC footers say. Nothing here reads a data page.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::ParquetMetaDataReader;
use serde::Serialize;
use url::Url;

use crate::catalog::{StorageFormat, TableMeta};
use crate::error::{Error, Result};

/// One data file: where it is, how big, and which partition it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataFile {
    /// Full URL: `file:///…/part-0.parquet` or `hdfs://nn:8020/…`.
    pub url: String,
    pub size: u64,
    /// Partition values in the order of the table's partition keys; empty if unpartitioned.
    pub partition_values: Vec<String>,
    /// Last modification time (ms since the epoch) as the storage reports it: part of the
    /// source fingerprint, so a file rewritten in place with the same size still counts as new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_ms: Option<i64>,
}

/// An object store rooted at a URL's scheme and authority, with the path inside it.
pub struct Located {
    pub store: Arc<dyn ObjectStore>,
    pub path: StorePath,
    /// `scheme://authority` of the store, to rebuild full URLs from store paths.
    pub base: String,
}

/// Resolves a `file:` or `hdfs:` URL (a bare absolute path counts as `file:`).
pub fn locate(location: &str) -> Result<Located> {
    let bad = |message: String| Error::Listing {
        location: location.to_string(),
        message,
    };
    let url = if location.starts_with('/') {
        Url::from_file_path(location).map_err(|_| bad("not an absolute path".into()))?
    } else {
        Url::parse(location).map_err(|e| bad(e.to_string()))?
    };
    match url.scheme() {
        "file" => {
            let fs_path = url
                .to_file_path()
                .map_err(|_| bad("not a local path".into()))?;
            let path = StorePath::from_absolute_path(&fs_path).map_err(|e| bad(e.to_string()))?;
            Ok(Located {
                store: Arc::new(LocalFileSystem::new()),
                path,
                base: "file://".into(),
            })
        }
        #[cfg(feature = "hdfs")]
        "hdfs" | "viewfs" => {
            let base = format!("{}://{}", url.scheme(), url.authority());
            let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
                .with_url(&base)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            let path = StorePath::from_url_path(url.path()).map_err(|e| bad(e.to_string()))?;
            Ok(Located {
                store: Arc::new(store),
                path,
                base,
            })
        }
        other => Err(bad(format!("unsupported storage scheme `{other}`"))),
    }
}

/// Hive and Spark leave markers and temporaries beside data files (`_SUCCESS`, `.crc`,
/// `_temporary/`); readers skip anything whose name starts with `_` or `.`.
fn is_data_file(relative: &str) -> bool {
    relative
        .split('/')
        .all(|part| !part.starts_with('_') && !part.starts_with('.'))
}

static LISTINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static FOOTERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Storage listings made by this process (one per [`list`]): a plan over 5 000 partitions
/// that a filter prunes to three should list three folders, and `tablecast plan` says so.
pub fn listings_made() -> u64 {
    LISTINGS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Footers read by this process (one per [`read_footer`]).
pub fn footers_read() -> u64 {
    FOOTERS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Lists the data files under one location, recursively, sorted by URL.
pub async fn list(location: &str, partition_values: &[String]) -> Result<Vec<DataFile>> {
    LISTINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let located = locate(location)?;
    let prefix = located.path.as_ref().to_string();
    let metas: Vec<_> = located
        .store
        .list(Some(&located.path))
        .try_collect()
        .await
        .map_err(|e| Error::Listing {
            location: location.to_string(),
            message: e.to_string(),
        })?;
    let mut files: Vec<DataFile> = metas
        .into_iter()
        .filter(|m| {
            let rel = m
                .location
                .as_ref()
                .strip_prefix(&prefix)
                .unwrap_or(m.location.as_ref());
            is_data_file(rel.trim_start_matches('/'))
        })
        .filter(|m| m.size > 0)
        .map(|m| DataFile {
            url: format!("{}/{}", located.base, m.location.as_ref()),
            size: m.size,
            partition_values: partition_values.to_vec(),
            modified_ms: Some(m.last_modified.timestamp_millis()),
        })
        .collect();
    files.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(files)
}

/// Whether a `_SUCCESS` marker (what Hive, Spark and MapReduce write when a job's output is
/// complete) exists directly under `location`.
pub async fn has_success_marker(location: &str) -> Result<bool> {
    let located = locate(location)?;
    match located
        .store
        .head(&located.path.clone().join("_SUCCESS"))
        .await
    {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(Error::Listing {
            location: location.to_string(),
            message: e.to_string(),
        }),
    }
}

/// Lists the files of the partitions that `keep` selects (all of an unpartitioned table).
pub async fn list_table(
    table: &TableMeta,
    keep: impl Fn(&[String]) -> bool,
) -> Result<(Vec<DataFile>, usize)> {
    if table.partition_keys.is_empty() {
        return Ok((list(&table.location, &[]).await?, 0));
    }
    let selected: Vec<_> = table
        .partitions
        .iter()
        .filter(|p| keep(&p.values))
        .collect();
    let listings =
        futures::future::try_join_all(selected.iter().map(|p| list(&p.location, &p.values)))
            .await?;
    Ok((listings.into_iter().flatten().collect(), selected.len()))
}

/// What a file's footer tells without reading data: its format, rows and Arrow schema.
#[derive(Debug, Clone)]
pub struct Footer {
    /// [`StorageFormat::Parquet`] or [`StorageFormat::Orc`]: the two the fast track reads.
    pub format: StorageFormat,
    pub rows: u64,
    pub schema: SchemaRef,
}

/// Reads one file's footer, recognizing Parquet (`PAR1` at the end) and ORC (a postscript
/// ending in `ORC` and its length byte) from the same 8-byte trailer; a truncated file or one
/// of any other format is an error naming the file.
pub async fn read_footer(file: &DataFile) -> Result<Footer> {
    FOOTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let err = |message: String| Error::FileRead {
        path: file.url.clone(),
        message,
    };
    if file.size < 12 {
        return Err(err(format!(
            "{} bytes is too short for a Parquet or ORC file",
            file.size
        )));
    }
    let located = locate(&file.url)?;
    let tail = located
        .store
        .get_range(&located.path, file.size - 8..file.size)
        .await
        .map_err(|e| err(e.to_string()))?;
    if &tail[4..] == b"PAR1" {
        return read_parquet_footer(file, &located, &tail).await;
    }
    if &tail[4..7] == b"ORC" {
        let mut chunks = StoreChunks::new(located.store, located.path, file.size);
        let meta = orc_rust::reader::metadata::read_metadata_async(&mut chunks)
            .await
            .map_err(|e| err(format!("ORC footer: {e}")))?;
        let schema = meta
            .root_data_type()
            .create_arrow_schema(&Default::default());
        return Ok(Footer {
            format: StorageFormat::Orc,
            rows: meta.number_of_rows(),
            schema: Arc::new(schema),
        });
    }
    Err(err(
        "neither Parquet nor ORC magic at the end: truncated, or another format".into(),
    ))
}

async fn read_parquet_footer(file: &DataFile, located: &Located, tail: &[u8]) -> Result<Footer> {
    let err = |message: String| Error::FileRead {
        path: file.url.clone(),
        message,
    };
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 12 > file.size {
        return Err(err(format!(
            "footer length {len} exceeds the file size {}: truncated",
            file.size
        )));
    }
    let start = file.size - 8 - len;
    let meta_bytes = located
        .store
        .get_range(&located.path, start..file.size - 8)
        .await
        .map_err(|e| err(e.to_string()))?;
    let meta =
        ParquetMetaDataReader::decode_metadata(&meta_bytes).map_err(|e| err(e.to_string()))?;
    let fm = meta.file_metadata();
    let schema = parquet_to_arrow_schema(fm.schema_descr(), fm.key_value_metadata())
        .map_err(|e| err(e.to_string()))?;
    let rows = u64::try_from(fm.num_rows())
        .map_err(|_| err(format!("negative row count {}", fm.num_rows())))?;
    Ok(Footer {
        format: StorageFormat::Parquet,
        rows,
        schema: Arc::new(schema),
    })
}

/// One file of an object store as Parquet's async reader wants it: ranged reads (several in one
/// call), and a length known from the listing (so no extra `HEAD`).
pub struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    size: u64,
}

impl StoreReader {
    /// The reader of a listed file.
    pub fn open(file: &DataFile) -> Result<Self> {
        let located = locate(&file.url)?;
        Ok(StoreReader {
            store: located.store,
            path: located.path,
            size: file.size,
        })
    }
}

fn parquet_store_error(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl parquet::arrow::async_reader::AsyncFileReader for StoreReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(parquet_store_error)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(parquet_store_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// One file of an object store as ORC's reader wants it: ranged reads, and a length known from
/// the listing (so no extra `HEAD`).
pub struct StoreChunks {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    size: u64,
}

impl StoreChunks {
    pub fn new(store: Arc<dyn ObjectStore>, path: StorePath, size: u64) -> Self {
        StoreChunks { store, path, size }
    }

    /// The reader of a listed file.
    pub fn open(file: &DataFile) -> Result<Self> {
        let located = locate(&file.url)?;
        Ok(StoreChunks::new(located.store, located.path, file.size))
    }
}

impl orc_rust::reader::AsyncChunkReader for StoreChunks {
    fn len(&mut self) -> BoxFuture<'_, std::io::Result<u64>> {
        let size = self.size;
        async move { Ok(size) }.boxed()
    }

    fn get_bytes(
        &mut self,
        offset_from_start: u64,
        length: u64,
    ) -> BoxFuture<'_, std::io::Result<bytes::Bytes>> {
        async move {
            self.store
                .get_range(&self.path, offset_from_start..offset_from_start + length)
                .await
                .map_err(std::io::Error::other)
        }
        .boxed()
    }
}

/// Checks that every planned file is still there with the size it was listed with, and that
/// each column the spec reads has, in the file, a type of the same kind as the table's, so that
/// an engine never reads a table that changed under the plan or a file that disagrees with the
/// catalog: a file deleted since planning would otherwise read as an empty listing (a silent
/// partial answer), and a drifted column fails deep in the engine as a cast error naming neither
/// the column nor the file. `columns` are the data columns the spec reads, with the table's
/// types. The error names the file (and the column).
pub async fn verify_files(files: &[DataFile], columns: &[(String, DataType)]) -> Result<()> {
    // Chunks joined eagerly rather than a lazy stream of closures: the future must stay `Send`
    // for every lifetime, since the dashboard's runner spawns publishes onto the runtime.
    for chunk in files.chunks(16) {
        let checks: Vec<_> = chunk.iter().map(|f| verify_one(f, columns)).collect();
        futures::future::try_join_all(checks).await?;
    }
    Ok(())
}

async fn verify_one(file: &DataFile, columns: &[(String, DataType)]) -> Result<()> {
    let err = |message: String| Error::FileRead {
        path: file.url.clone(),
        message,
    };
    let located = locate(&file.url)?;
    match located.store.head(&located.path).await {
        Ok(meta) if meta.size == file.size => {}
        Ok(meta) => {
            return Err(err(format!(
                "changed since the table was listed: {} bytes then, {} now",
                file.size, meta.size
            )));
        }
        Err(object_store::Error::NotFound { .. }) => {
            return Err(err("deleted since the table was listed".into()));
        }
        Err(e) => return Err(err(e.to_string())),
    }
    if columns.is_empty() {
        return Ok(());
    }
    let footer = read_footer(file).await?;
    for (name, table_type) in columns {
        // Hive matches columns by name, case-insensitively; a missing column reads as NULL.
        let Some(field) = footer
            .schema
            .fields()
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
        else {
            continue;
        };
        if type_kind(field.data_type()) != type_kind(table_type) {
            return Err(err(format!(
                "column `{name}` is {} in the file but {table_type} in the table (schema drift)",
                field.data_type()
            )));
        }
    }
    Ok(())
}

/// Types an engine may convert between without parsing text or losing the kind of value.
fn type_kind(t: &DataType) -> &'static str {
    use DataType::*;
    match t {
        t if t.is_integer() => "number",
        t if t.is_floating() => "number",
        Decimal128(..) | Decimal256(..) => "number",
        Utf8 | LargeUtf8 | Utf8View => "string",
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary",
        Boolean => "boolean",
        Date32 | Date64 => "date",
        Timestamp(..) => "timestamp",
        List(_) | LargeList(_) | ListView(_) | FixedSizeList(..) => "list",
        Struct(_) => "struct",
        Map(..) => "map",
        Dictionary(_, v) => type_kind(v),
        _ => "other",
    }
}

/// Sums the row counts of many footers, a few at a time.
pub async fn footer_rows(files: &[DataFile]) -> Result<u64> {
    Ok(footer_totals(files).await?.0)
}

/// The row count of many footers and the one format they share (`None` for no files); files
/// of two formats under one table are an error naming one of each.
pub async fn footer_totals(files: &[DataFile]) -> Result<(u64, Option<StorageFormat>)> {
    use futures::StreamExt;
    async fn footer_of(file: &DataFile) -> Result<(&DataFile, Footer)> {
        Ok((file, read_footer(file).await?))
    }
    let mut footers = futures::stream::iter(files.iter().map(footer_of)).buffered(16);
    let mut rows = 0u64;
    let mut first: Option<(&DataFile, StorageFormat)> = None;
    while let Some((file, footer)) = footers.try_next().await? {
        rows += footer.rows;
        match &first {
            None => first = Some((file, footer.format)),
            Some((one, format)) if *format != footer.format => {
                return Err(Error::FileRead {
                    path: file.url.clone(),
                    message: format!(
                        "{} in a table whose file {} is {}: one format per table",
                        footer.format.label(),
                        one.url,
                        format.label()
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok((rows, first.map(|(_, format)| format)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_markers_and_temporaries() {
        assert!(is_data_file("part-0.parquet"));
        assert!(is_data_file("dt=2026-11-01/part-0.parquet"));
        assert!(!is_data_file("_SUCCESS"));
        assert!(!is_data_file(".part-0.parquet.crc"));
        assert!(!is_data_file("_temporary/0/part-0.parquet"));
    }

    #[tokio::test]
    async fn lists_files_recursively_and_names_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dt=1")).unwrap();
        std::fs::write(dir.path().join("dt=1/a.parquet"), b"x").unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), b"x").unwrap();
        let files = list(dir.path().to_str().unwrap(), &[]).await.unwrap();
        assert_eq!(files.len(), 1);
        assert!(files[0].url.starts_with("file:///") && files[0].url.ends_with("dt=1/a.parquet"));
        assert_eq!(files[0].size, 1);

        let err = read_footer(&files[0]).await.unwrap_err().to_string();
        assert!(err.contains("a.parquet"), "{err}");
        let err = locate("s3://bucket/x").err().unwrap().to_string();
        assert!(err.contains("s3"), "{err}");
    }

    fn batch() -> arrow::record_batch::RecordBatch {
        use arrow::array::{Int64Array, StringArray};
        arrow::record_batch::RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as arrow::array::ArrayRef,
            ),
            ("name", Arc::new(StringArray::from(vec!["a", "b", "c"]))),
        ])
        .unwrap()
    }

    async fn listed(dir: &std::path::Path) -> Vec<DataFile> {
        list(dir.to_str().unwrap(), &[]).await.unwrap()
    }

    #[tokio::test]
    async fn orc_footers_give_rows_and_schema_and_formats_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let b = batch();
        let file = std::fs::File::create(dir.path().join("a.orc")).unwrap();
        let mut writer = orc_rust::ArrowWriterBuilder::new(file, b.schema())
            .try_build()
            .unwrap();
        writer.write(&b).unwrap();
        writer.close().unwrap();

        let files = listed(dir.path()).await;
        let footer = read_footer(&files[0]).await.unwrap();
        assert_eq!(footer.format, StorageFormat::Orc);
        assert_eq!(footer.rows, 3);
        let fields: Vec<(&str, &DataType)> = footer
            .schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type()))
            .collect();
        assert_eq!(
            fields,
            [("id", &DataType::Int64), ("name", &DataType::Utf8)]
        );
        assert_eq!(
            footer_totals(&files).await.unwrap(),
            (3, Some(StorageFormat::Orc))
        );

        // A Parquet file beside it: one format per table, and the error names both files.
        let file = std::fs::File::create(dir.path().join("b.parquet")).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, b.schema(), None).unwrap();
        writer.write(&b).unwrap();
        writer.close().unwrap();
        let files = listed(dir.path()).await;
        let err = footer_totals(&files).await.unwrap_err().to_string();
        assert!(
            err.contains("b.parquet") && err.contains("a.orc") && err.contains("one format"),
            "{err}"
        );

        // Neither format: named as such.
        std::fs::write(dir.path().join("c.csv"), b"id,name\n1,a\n2,b\n3,c\n").unwrap();
        let csv = listed(dir.path())
            .await
            .into_iter()
            .find(|f| f.url.ends_with("c.csv"))
            .unwrap();
        let err = read_footer(&csv).await.unwrap_err().to_string();
        assert!(
            err.contains("c.csv") && err.contains("neither Parquet nor ORC"),
            "{err}"
        );
    }
}
