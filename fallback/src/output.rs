//! Reading the staged output back: the part files in order, each batch conformed to the spec's
//! exact types, the key clustering checked on the way.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{SortOptions, cast};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use arrow::row::{OwnedRow, RowConverter, SortField};
use futures::{Stream, TryStreamExt};
use object_store::ObjectStoreExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use publisher::files::{DataFile, StoreReader, list, locate};
use publisher::spec::ResolvedSpec;

/// Rows per batch read from staged files.
const BATCH_ROWS: usize = 8192;

/// The file the job writes its statistics to, beside the part files.
pub const STATS_FILE: &str = "_tablecast_stats.json";

/// The part files of a staged output, in the order Spark wrote its sorted partitions
/// (`part-00000…`, `part-00001…`, numerically, so that more than 99999 parts still sort).
pub async fn list_parts(output: &str) -> Result<Vec<DataFile>, String> {
    let mut files = list(output, &[]).await.map_err(|e| e.to_string())?;
    let part_number = |f: &DataFile| -> (u64, String) {
        let name = f.url.rsplit('/').next().unwrap_or(&f.url).to_string();
        let n = name
            .strip_prefix("part-")
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok())
            .unwrap_or(u64::MAX);
        (n, name)
    };
    files.sort_by_cached_key(part_number);
    Ok(files)
}

/// `rows_in` from the job's statistics file, when it wrote one.
pub async fn read_stats(output: &str) -> Option<u64> {
    let located = locate(&format!("{}/{STATS_FILE}", output.trim_end_matches('/'))).ok()?;
    let bytes = located
        .store
        .get(&located.path)
        .await
        .ok()?
        .bytes()
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("rows_in")?.as_u64()
}

/// The batches of one part file.
pub async fn read_part(
    file: &DataFile,
) -> Result<impl Stream<Item = Result<RecordBatch, String>> + use<>, String> {
    let reader = StoreReader::open(file).map_err(|e| e.to_string())?;
    let stream = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| format!("{}: {e}", file.url))?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| format!("{}: {e}", file.url))?;
    let url = file.url.clone();
    Ok(stream.map_err(move |e| format!("{url}: {e}")))
}

/// Casts staged batches to the spec's types (keys, then outputs) and checks that keys arrive
/// clustered in ascending order, nulls last, across batches and files.
pub struct Conformer {
    schema: SchemaRef,
    keys: usize,
    converter: Option<RowConverter>,
    last_key: Option<OwnedRow>,
    rows: u64,
}

impl Conformer {
    pub fn new(spec: &ResolvedSpec) -> Result<Self, String> {
        let fields: Vec<Field> = spec
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| Field::new(format!("__k{i}"), k.data_type.clone(), true))
            .chain(
                spec.outputs
                    .iter()
                    .enumerate()
                    .map(|(i, o)| Field::new(format!("__v{i}"), o.data_type.clone(), true)),
            )
            .collect();
        let converter = if spec.keys.is_empty() {
            None
        } else {
            let sort = spec
                .keys
                .iter()
                .map(|k| {
                    SortField::new_with_options(
                        k.data_type.clone(),
                        SortOptions {
                            descending: false,
                            nulls_first: false,
                        },
                    )
                })
                .collect();
            Some(RowConverter::new(sort).map_err(|e| format!("key comparator: {e}"))?)
        };
        Ok(Conformer {
            schema: Arc::new(Schema::new(fields)),
            keys: spec.keys.len(),
            converter,
            last_key: None,
            rows: 0,
        })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn conform(&mut self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let expected = self.schema.fields().len();
        if batch.num_columns() != expected {
            return Err(format!(
                "staged output has {} columns, expected {expected} (keys then outputs)",
                batch.num_columns()
            ));
        }
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(array, field)| {
                conform_array(array, field.data_type()).map_err(|e| {
                    format!(
                        "column {} ({}) to {}: {e}",
                        field.name(),
                        array.data_type(),
                        field.data_type()
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let out =
            RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| e.to_string())?;
        if let Some(converter) = &self.converter {
            let rows = converter
                .convert_columns(&out.columns()[..self.keys])
                .map_err(|e| e.to_string())?;
            for i in 0..rows.num_rows() {
                let out_of_order = match i {
                    0 => self
                        .last_key
                        .as_ref()
                        .is_some_and(|last| rows.row(0) < last.row()),
                    _ => rows.row(i) < rows.row(i - 1),
                };
                if out_of_order {
                    return Err(format!(
                        "staged output is not ordered by key at row {} (a key sorts before the previous one)",
                        self.rows + i as u64
                    ));
                }
            }
            if rows.num_rows() > 0 {
                self.last_key = Some(rows.row(rows.num_rows() - 1).owned());
            }
        }
        self.rows += out.num_rows() as u64;
        Ok(out)
    }
}

/// Casts one column; timestamps only change unit and zone label (Spark writes UTC instants).
fn conform_array(
    array: &ArrayRef,
    target: &DataType,
) -> Result<ArrayRef, arrow::error::ArrowError> {
    if array.data_type() == target {
        return Ok(Arc::clone(array));
    }
    match (array.data_type(), target) {
        (
            DataType::Timestamp(unit, zone),
            DataType::Timestamp(TimeUnit::Microsecond, target_zone),
        ) => {
            let micros = if *unit == TimeUnit::Microsecond {
                Arc::clone(array)
            } else {
                cast(
                    array,
                    &DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
                )?
            };
            Ok(Arc::new(
                micros
                    .as_primitive::<TimestampMicrosecondType>()
                    .clone()
                    .with_timezone_opt(target_zone.clone()),
            ))
        }
        _ => cast(array, target),
    }
}
