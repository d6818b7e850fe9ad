//! ORC files as a DataFusion table: each partition of the scan streams a share of the files
//! through `orc-rust`'s async reader, projected to the columns the spec reads and cast to the
//! catalog's types, so that the rest of the plan cannot tell ORC from Parquet.
//!
//! `datafusion-orc` 0.10 would register ORC as a listing format, but it depends on DataFusion
//! with its default features, which would turn them all on for the whole workspace (compression
//! codecs, crypto and regex functions: a longer build), and its opener does not adapt a file's
//! types or column names to the table's; a reader of a few dozen lines over `orc-rust` (the
//! crate it wraps) is the smaller dependency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::{StreamExt, TryStreamExt};
use orc_rust::ArrowReaderBuilder;
use orc_rust::projection::ProjectionMask;
use publisher::files::{DataFile, StoreChunks};

/// A table over ORC files: `schema` is what the plan reads (data columns only, catalog types);
/// `positions[i]` is the table position of `schema`'s field `i`, for files whose columns are
/// named `_col0, _col1, …` (as Hive before 2.0 wrote them) and so match by position only.
pub fn table(
    schema: SchemaRef,
    positions: Vec<usize>,
    files: &[DataFile],
    partitions: usize,
) -> Result<StreamingTable> {
    let shares = partitions.clamp(1, files.len().max(1));
    let mut streams: Vec<Vec<DataFile>> = vec![Vec::new(); shares];
    for (i, file) in files.iter().enumerate() {
        streams[i % shares].push(file.clone());
    }
    let positions = Arc::new(positions);
    let streams = streams
        .into_iter()
        .map(|files| {
            Arc::new(OrcFiles {
                schema: schema.clone(),
                positions: positions.clone(),
                files,
            }) as Arc<dyn PartitionStream>
        })
        .collect();
    StreamingTable::try_new(schema, streams)
}

/// Rows read from ORC files in one session: a streaming table keeps no scan metrics of its
/// own, so the reader counts into this session extension for the progress report.
#[derive(Debug, Default)]
pub struct ScannedRows(AtomicU64);

impl ScannedRows {
    pub fn of(ctx: &TaskContext) -> u64 {
        ctx.session_config()
            .get_extension::<ScannedRows>()
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct OrcFiles {
    schema: SchemaRef,
    positions: Arc<Vec<usize>>,
    files: Vec<DataFile>,
}

impl PartitionStream for OrcFiles {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let positions = self.positions.clone();
        let batch_size = ctx.session_config().batch_size();
        let counter = ctx.session_config().get_extension::<ScannedRows>();
        let batches = futures::stream::iter(self.files.clone())
            .then(move |file| read(file, schema.clone(), positions.clone(), batch_size))
            .try_flatten()
            .inspect_ok(move |batch| {
                if let Some(c) = &counter {
                    c.0.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                }
            });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// Opens one file and streams its batches in `schema`'s shape.
async fn read(
    file: DataFile,
    schema: SchemaRef,
    positions: Arc<Vec<usize>>,
    batch_size: usize,
) -> Result<impl futures::Stream<Item = Result<RecordBatch>>> {
    let url = file.url.clone();
    let fail = move |e: &dyn std::fmt::Display| {
        DataFusionError::Execution(format!("reading ORC file {url}: {e}"))
    };
    let chunks = StoreChunks::open(&file).map_err(|e| fail(&e))?;
    let builder = ArrowReaderBuilder::try_new_async(chunks)
        .await
        .map_err(|e| fail(&e))?;
    let root = builder.file_metadata().root_data_type();
    let names: Vec<String> = root
        .children()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let positional = !names.is_empty() && names.iter().all(|n| is_positional(n));
    // The file column each field of `schema` reads, if the file has it (a column added to the
    // table after the file was written reads as NULL, as in Hive).
    let sources: Vec<Option<String>> = schema
        .fields()
        .iter()
        .zip(positions.iter())
        .map(|(field, position)| {
            if positional {
                names.get(*position).cloned()
            } else {
                names
                    .iter()
                    .find(|n| n.eq_ignore_ascii_case(field.name()))
                    .cloned()
            }
        })
        .collect();
    let wanted: Vec<&str> = sources.iter().flatten().map(String::as_str).collect();
    let mask = ProjectionMask::named_roots(root, &wanted);
    let fail_batch = fail.clone();
    let batches = builder
        .with_batch_size(batch_size)
        .with_projection(mask)
        .build_async()
        .map_err(move |e| fail_batch(&e))
        .map(move |batch| conform(&batch?, &schema, &sources).map_err(|e| fail(&e)));
    Ok(batches)
}

fn is_positional(name: &str) -> bool {
    name.strip_prefix("_col")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// One batch as the file gave it, in `schema`'s column order and types.
fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
    sources: &[Option<String>],
) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(sources)
        .map(|(field, source)| {
            match source
                .as_deref()
                .and_then(|name| batch.column_by_name(name))
            {
                Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
                Some(column) => cast(column, field.data_type()).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "column `{}` is {} in the file, not readable as {}: {e}",
                        field.name(),
                        column.data_type(),
                        field.data_type()
                    ))
                }),
                None => Ok(new_null_array(field.data_type(), batch.num_rows())),
            }
        })
        .collect::<Result<_>>()?;
    // The row count is explicit: a spec may read no data column at all (`count(*)` by a
    // partition key), and a batch of no columns still has rows.
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_positional_names_are_recognized() {
        assert!(is_positional("_col0"));
        assert!(is_positional("_col12"));
        assert!(!is_positional("_col"));
        assert!(!is_positional("_colour"));
        assert!(!is_positional("col0"));
    }
}
