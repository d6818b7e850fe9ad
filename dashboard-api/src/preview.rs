//! A bounded preview of a table: the first rows of the first row group of its first data file,
//! read with the Parquet reader (never the whole table), cells written by the same canonical
//! writers that encode API values.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use publisher::canonical::{write_date, write_decimal, write_f64, write_timestamp_micros};
use publisher::catalog::{StorageFormat, TableMeta};
use publisher::files::{self, DataFile};
use publisher::schema::{is_scalar_type, normalize_arrow};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Record batches of one file, read with its format's reader.
type BatchStream = std::pin::Pin<
    Box<
        dyn futures::Stream<Item = std::result::Result<arrow::array::RecordBatch, publisher::Error>>
            + Send,
    >,
>;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// The file the rows come from.
    pub file: String,
    /// Column names: the file's columns, then partition keys.
    pub columns: Vec<String>,
    /// Rows of canonical JSON cells (nested values as display strings).
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<Value>>,
    /// Rows in the first row group (the preview shows at most `limit` of them).
    pub row_group_rows: u64,
    pub limit: usize,
}

/// The first data file of a table: of the first non-empty partition among the first 50.
pub async fn first_file(table: &TableMeta) -> Result<Option<DataFile>> {
    if table.partition_keys.is_empty() {
        return Ok(files::list(&table.location, &[]).await?.into_iter().next());
    }
    for p in table.partitions.iter().take(50) {
        if let Some(f) = files::list(&p.location, &p.values)
            .await?
            .into_iter()
            .next()
        {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// Reads at most `limit` rows of the first row group (Parquet) or stripe (ORC) of the table's
/// first file.
pub async fn preview(table: &TableMeta, limit: usize) -> Result<Option<Preview>> {
    if !table.format.is_columnar() {
        return Err(Error::BadRequest(format!(
            "{} is stored as {}; previews read Parquet and ORC only",
            table.name,
            table.format.label()
        )));
    }
    let Some(file) = first_file(table).await? else {
        return Ok(None);
    };
    let url = file.url.clone();
    let err = move |message: String| publisher::Error::FileRead {
        path: url.clone(),
        message,
    };
    let (schema, row_group_rows, mut stream): (_, u64, BatchStream) = match table.format {
        StorageFormat::Orc => {
            let builder =
                orc_rust::ArrowReaderBuilder::try_new_async(files::StoreChunks::open(&file)?)
                    .await
                    .map_err(|e| err(e.to_string()))?;
            let first_stripe = builder
                .file_metadata()
                .stripe_metadatas()
                .first()
                .map_or(0, |s| s.number_of_rows());
            let schema = builder.schema();
            let stream = builder
                .with_batch_size(limit.max(1))
                .build_async()
                .map_err(move |e| err(e.to_string()));
            (schema, first_stripe, Box::pin(stream))
        }
        _ => {
            let reader = files::StoreReader::open(&file)?;
            let builder = ParquetRecordBatchStreamBuilder::new(reader)
                .await
                .map_err(|e| err(e.to_string()))?;
            let meta = builder.metadata().clone();
            let schema = builder.schema().clone();
            if meta.num_row_groups() == 0 {
                (schema, 0, Box::pin(futures::stream::empty()))
            } else {
                let stream = builder
                    .with_row_groups(vec![0])
                    .with_limit(limit)
                    .with_batch_size(limit.max(1))
                    .build()
                    .map_err(|e| err(e.to_string()))?
                    .map_err(move |e| err(e.to_string()));
                let rows = meta.row_group(0).num_rows().max(0) as u64;
                (schema, rows, Box::pin(stream))
            }
        }
    };
    let mut columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().to_ascii_lowercase())
        .collect();
    columns.extend(table.partition_keys.iter().map(|k| k.name.clone()));
    let mut preview = Preview {
        file: file.url.clone(),
        columns,
        rows: Vec::new(),
        row_group_rows,
        limit,
    };
    while preview.rows.len() < limit {
        let Some(batch) = stream.try_next().await? else {
            break;
        };
        let cells: Vec<Vec<Value>> = batch.columns().iter().map(column_cells).collect();
        for row in 0..batch.num_rows().min(limit - preview.rows.len()) {
            let mut out: Vec<Value> = cells.iter().map(|c| c[row].clone()).collect();
            out.extend(
                file.partition_values
                    .iter()
                    .map(|v| Value::String(v.clone())),
            );
            preview.rows.push(out);
        }
    }
    Ok(Some(preview))
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// One column's cells as canonical JSON values.
pub fn column_cells(array: &ArrayRef) -> Vec<Value> {
    let n = array.len();
    if !is_scalar_type(array.data_type()) {
        return match ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()) {
            Ok(f) => (0..n)
                .map(|i| {
                    if array.is_null(i) {
                        Value::Null
                    } else {
                        Value::String(f.value(i).to_string())
                    }
                })
                .collect(),
            Err(_) => vec![Value::Null; n],
        };
    }
    let target = match normalize_arrow(array.data_type()) {
        DataType::Timestamp(..) => DataType::Timestamp(TimeUnit::Microsecond, None),
        t => t,
    };
    let converted = match array.data_type() {
        DataType::Timestamp(u, Some(_)) => {
            cast(array, &DataType::Timestamp(*u, None)).and_then(|a| cast(&a, &target))
        }
        t if *t == target => Ok(Arc::clone(array)),
        _ => cast(array, &target),
    };
    let Ok(a) = converted else {
        return vec![Value::Null; n];
    };
    let mut buf = Vec::new();
    (0..n)
        .map(|i| {
            if a.is_null(i) {
                return Value::Null;
            }
            buf.clear();
            match a.data_type() {
                DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
                DataType::Int8 => {
                    Value::from(a.as_primitive::<arrow::datatypes::Int8Type>().value(i))
                }
                DataType::Int16 => {
                    Value::from(a.as_primitive::<arrow::datatypes::Int16Type>().value(i))
                }
                DataType::Int32 => {
                    Value::from(a.as_primitive::<arrow::datatypes::Int32Type>().value(i))
                }
                DataType::Int64 => {
                    Value::from(a.as_primitive::<arrow::datatypes::Int64Type>().value(i))
                }
                DataType::UInt8 => {
                    Value::from(a.as_primitive::<arrow::datatypes::UInt8Type>().value(i))
                }
                DataType::UInt16 => {
                    Value::from(a.as_primitive::<arrow::datatypes::UInt16Type>().value(i))
                }
                DataType::UInt32 => {
                    Value::from(a.as_primitive::<arrow::datatypes::UInt32Type>().value(i))
                }
                DataType::UInt64 => {
                    Value::from(a.as_primitive::<arrow::datatypes::UInt64Type>().value(i))
                }
                DataType::Float32 => {
                    write_f64(
                        &mut buf,
                        f64::from(a.as_primitive::<arrow::datatypes::Float32Type>().value(i)),
                    );
                    parse(&buf)
                }
                DataType::Float64 => {
                    write_f64(
                        &mut buf,
                        a.as_primitive::<arrow::datatypes::Float64Type>().value(i),
                    );
                    parse(&buf)
                }
                DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
                DataType::Decimal128(_, s) => {
                    write_decimal(
                        &mut buf,
                        a.as_primitive::<arrow::datatypes::Decimal128Type>()
                            .value(i),
                        *s,
                    );
                    Value::String(String::from_utf8_lossy(&buf).into_owned())
                }
                DataType::Date32 => {
                    write_date(
                        &mut buf,
                        a.as_primitive::<arrow::datatypes::Date32Type>().value(i),
                    );
                    Value::String(String::from_utf8_lossy(&buf).into_owned())
                }
                DataType::Timestamp(..) => {
                    write_timestamp_micros(
                        &mut buf,
                        a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                            .value(i),
                    );
                    Value::String(String::from_utf8_lossy(&buf).into_owned())
                }
                _ => Value::Null,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };

    #[test]
    fn cells_are_canonical() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(7), None]));
        assert_eq!(column_cells(&ints), vec![Value::from(7), Value::Null]);
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![0.1, 3.0]));
        assert_eq!(
            serde_json::to_string(&column_cells(&floats)).unwrap(),
            "[0.1,3.0]"
        );
        let dec: ArrayRef = Arc::new(
            Decimal128Array::from(vec![12345])
                .with_precision_and_scale(12, 2)
                .unwrap(),
        );
        assert_eq!(column_cells(&dec), vec![Value::from("123.45")]);
        let ts: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![1_000_000]).with_timezone("+02:00"));
        assert_eq!(column_cells(&ts), vec![Value::from("1970-01-01T00:00:01Z")]);
        let s: ArrayRef = Arc::new(StringArray::from(vec!["日本 \"q\""]));
        assert_eq!(column_cells(&s), vec![Value::from("日本 \"q\"")]);
    }

    #[tokio::test]
    async fn previews_an_orc_table_from_its_first_stripe() {
        use publisher::catalog::Catalog;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("shop/orders/dt=2026-11-01");
        std::fs::create_dir_all(&dir).unwrap();
        let batch = arrow::array::RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("item", Arc::new(StringArray::from(vec!["a", "b", "c"]))),
        ])
        .unwrap();
        let file = std::fs::File::create(dir.join("part-0.orc")).unwrap();
        let mut writer = orc_rust::ArrowWriterBuilder::new(file, batch.schema())
            .try_build()
            .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let catalog =
            publisher::catalog::DirectoryCatalog::open(root.path().to_path_buf()).unwrap();
        let table = catalog
            .table(&publisher::schema::TableName::new("shop", "orders"))
            .await
            .unwrap();
        assert_eq!(table.format, StorageFormat::Orc);
        let p = preview(&table, 2).await.unwrap().unwrap();
        assert_eq!(p.columns, ["id", "item", "dt"]);
        assert_eq!(p.row_group_rows, 3);
        assert_eq!(
            serde_json::to_string(&p.rows).unwrap(),
            r#"[[1,"a","2026-11-01"],[2,"b","2026-11-01"]]"#
        );
    }
}
