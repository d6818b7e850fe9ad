//! Per-key top N over raw rows, as a physical operator: each partition (hashed by key, so no key
//! is in two) buffers its rows, numbers each row's key with DataFusion's group table, places the
//! rows of a key next to each other by a counting sort on that number, and sorts only within a
//! key, where a key has a handful of rows. No row is compared with another key's rows, which is
//! what the full sort under `row_number()` spent its time on (bench/history.md).
//!
//! Rows are compared in Arrow's row format over the order columns, whose bytes sort as the
//! order does. The order names every output (as [`publisher::spec::ResolvedSpec::order`]
//! resolves it), so rows that compare equal are equal: the answer does not depend on which was
//! seen first, and is byte-identical to the sort's and to Spark's.
//!
//! Memory stays O(keys × N) however many rows a key has: whenever the buffer holds more than
//! [`COMPACT_FACTOR`] times the rows it could keep, it is cut down to each key's best N. The
//! buffer is reserved from the run's pool, so a table too large for it trips the memory guard.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::{SortOptions, interleave_record_batch};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

/// The buffer is cut down to each key's best rows once it holds this many times as many rows as
/// it could keep: the cut costs a pass over the buffer, so it must free most of it to pay.
const COMPACT_FACTOR: usize = 4;

/// Below this many buffered rows the buffer is never cut: a cut would save little memory.
const COMPACT_MIN_ROWS: usize = 1 << 20;

/// Keeps the `limit` best rows of each key. The input's first `keys` columns are the key; it
/// must be hash-partitioned on them. `order` names input columns, most significant first.
#[derive(Debug)]
pub struct TopRowsExec {
    input: Arc<dyn ExecutionPlan>,
    keys: usize,
    order: Vec<(usize, SortOptions)>,
    limit: usize,
    properties: Arc<PlanProperties>,
}

impl TopRowsExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        keys: usize,
        order: Vec<(usize, SortOptions)>,
        limit: usize,
    ) -> Self {
        // Same partitioning as the input (each key wholly in one partition); no order across
        // keys to promise, so none is claimed.
        let properties = PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            input.output_partitioning().clone(),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        TopRowsExec {
            input,
            keys,
            order,
            limit,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for TopRowsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let order: Vec<String> = self
            .order
            .iter()
            .map(|(i, o)| format!("{} {}", self.input.schema().field(*i).name(), o))
            .collect();
        write!(
            f,
            "TopRowsExec: keys={}, limit={}, order=[{}]",
            self.keys,
            self.limit,
            order.join(", ")
        )
    }
}

impl ExecutionPlan for TopRowsExec {
    fn name(&self) -> &str {
        "TopRowsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children).map_err(|c| {
            DataFusionError::Internal(format!("TopRowsExec takes one input, not {}", c.len()))
        })?;
        Ok(Arc::new(TopRowsExec::new(
            input,
            self.keys,
            self.order.clone(),
            self.limit,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.schema();
        let mut input = self.input.execute(partition, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new(format!("TopRowsExec[{partition}]"))
            .register(context.memory_pool());
        let mut buffer = Buffer::new(&schema, self.keys, &self.order, self.limit, reservation)?;
        let batch_size = context.session_config().batch_size();
        let answer = async move {
            while let Some(batch) = input.next().await {
                buffer.push(batch?)?;
            }
            Ok::<_, DataFusionError>(futures::stream::iter(buffer.finish(batch_size)?))
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(answer).try_flatten(),
        )))
    }
}

/// One partition's rows so far, each numbered by its key's group. Only the key columns are kept
/// as they came: the order names every other column, so a row's encoding for comparison holds
/// its values too, and the answer is decoded from it (half the memory of keeping both).
struct Buffer {
    limit: usize,
    /// See [`COMPACT_MIN_ROWS`].
    compact_min_rows: usize,
    groups: Box<dyn GroupValues>,
    rows: Stored,
    /// The group of each buffered row, batch after batch.
    group_of_row: Vec<u32>,
    /// Scratch of `GroupValues::intern`.
    interned: Vec<usize>,
    reservation: MemoryReservation,
}

/// The buffered rows: their keys, and the rest in row format.
struct Stored {
    schema: SchemaRef,
    keys: usize,
    /// Input columns in order significance; together with the keys, every column once.
    order_columns: Vec<usize>,
    converter: RowConverter,
    key_columns: Vec<RecordBatch>,
    /// The order columns of `key_columns[i]`'s rows, in row format.
    encoded: Vec<Rows>,
}

impl Stored {
    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let order: Vec<_> = self
            .order_columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        self.encoded.push(self.converter.convert_columns(&order)?);
        self.key_columns
            .push(batch.project(&(0..self.keys).collect::<Vec<_>>())?);
        Ok(())
    }

    /// The rows at `slots`, in that order, as a batch of the input's schema.
    fn gather(&self, slots: &[Slot]) -> Result<RecordBatch> {
        let at: Vec<(usize, usize)> = slots
            .iter()
            .map(|s| (s.batch as usize, s.row as usize))
            .collect();
        let key_batches: Vec<&RecordBatch> = self.key_columns.iter().collect();
        let keys = interleave_record_batch(&key_batches, &at)?;
        let values = self.converter.convert_rows(
            slots
                .iter()
                .map(|s| self.encoded[s.batch as usize].row(s.row as usize)),
        )?;
        let mut columns: Vec<Option<ArrayRef>> = keys.columns().iter().cloned().map(Some).collect();
        columns.resize(self.schema.fields().len(), None);
        for (column, values) in self.order_columns.iter().zip(values) {
            columns[*column] = Some(values);
        }
        let columns = columns
            .into_iter()
            .map(|c| c.expect("a column is a key or in the order (`Buffer::new` checks)"))
            .collect();
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    fn clear(&mut self) {
        self.key_columns.clear();
        self.encoded.clear();
    }

    fn size(&self) -> usize {
        self.key_columns
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum::<usize>()
            + self.encoded.iter().map(Rows::size).sum::<usize>()
    }
}

impl Buffer {
    fn new(
        schema: &SchemaRef,
        keys: usize,
        order: &[(usize, SortOptions)],
        limit: usize,
        reservation: MemoryReservation,
    ) -> Result<Self> {
        let mut covered: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
        covered.sort_unstable();
        if !covered.into_iter().eq(keys..schema.fields().len()) {
            return Err(DataFusionError::Internal(format!(
                "TopRowsExec: the order {order:?} must name every column after the {keys} keys once"
            )));
        }
        let key_schema = Arc::new(Schema::new(schema.fields()[..keys].to_vec()));
        let sort_fields = order
            .iter()
            .map(|(i, o)| SortField::new_with_options(schema.field(*i).data_type().clone(), *o))
            .collect();
        Ok(Buffer {
            limit,
            compact_min_rows: COMPACT_MIN_ROWS,
            groups: new_group_values(key_schema, &GroupOrdering::None)?,
            rows: Stored {
                schema: Arc::clone(schema),
                keys,
                order_columns: order.iter().map(|(i, _)| *i).collect(),
                converter: RowConverter::new(sort_fields)?,
                key_columns: Vec::new(),
                encoded: Vec::new(),
            },
            group_of_row: Vec::new(),
            interned: Vec::new(),
            reservation,
        })
    }

    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.groups
            .intern(&batch.columns()[..self.rows.keys], &mut self.interned)?;
        self.group_of_row
            .extend(self.interned.iter().map(|&g| g as u32));
        self.rows.push(&batch)?;
        self.reservation.try_resize(self.size())?;

        let rows = self.group_of_row.len();
        if rows >= self.compact_min_rows && rows > COMPACT_FACTOR * self.limit * self.groups.len() {
            // The buffered rows cut down to each key's best.
            let best = self.best()?;
            let best = self.rows.gather(&best)?;
            self.rows.clear();
            self.group_of_row.clear();
            self.push(best)?;
        }
        Ok(())
    }

    /// The answer: each key's best rows, decoded a batch at a time as the consumer asks, so
    /// that the partition never holds its answer twice.
    fn finish(mut self, batch_size: usize) -> Result<Answer> {
        let kept = self.best()?;
        self.reservation
            .try_resize(self.rows.size() + kept.capacity() * size_of::<Slot>())?;
        Ok(Answer {
            rows: self.rows,
            kept,
            next: 0,
            batch_size,
            _reservation: self.reservation,
        })
    }

    /// Where each key's best `limit` rows are, a key's rows together and in order.
    fn best(&mut self) -> Result<Vec<Slot>> {
        let placement = self.group_of_row.len() * size_of::<Slot>();
        self.reservation.try_resize(self.size() + placement)?;
        // Where each buffered row goes: a counting sort by group, stable, so that every
        // group's rows form one run.
        let mut start = vec![0usize; self.groups.len() + 1];
        for &g in &self.group_of_row {
            start[g as usize + 1] += 1;
        }
        for g in 1..start.len() {
            start[g] += start[g - 1];
        }
        let mut next = start.clone();
        let mut placed = vec![Slot::default(); self.group_of_row.len()];
        let mut groups = self.group_of_row.iter();
        for (b, encoded) in self.rows.encoded.iter().enumerate() {
            for r in 0..encoded.num_rows() {
                let g = *groups.next().expect("a group for every buffered row") as usize;
                placed[next[g]] = Slot::new(encoded.row(r).as_ref(), b, r);
                next[g] += 1;
            }
        }
        // The groups are numbered; the rows say the rest.
        self.group_of_row = Vec::new();
        self.groups.clear_shrink(0);

        let encoded = &self.rows.encoded;
        let order = |a: &Slot, b: &Slot| {
            a.prefix.cmp(&b.prefix).then_with(|| {
                let row = |s: &Slot| encoded[s.batch as usize].row(s.row as usize);
                row(a).cmp(&row(b))
            })
        };
        // Each run sorted in place, and its best moved to the front of the placement.
        let mut kept = 0;
        for run in start.windows(2) {
            let rows = &mut placed[run[0]..run[1]];
            if rows.len() > self.limit {
                rows.select_nth_unstable_by(self.limit, order);
            }
            let n = rows.len().min(self.limit);
            rows[..n].sort_unstable_by(order);
            placed.copy_within(run[0]..run[0] + n, kept);
            kept += n;
        }
        placed.truncate(kept);
        Ok(placed)
    }

    fn size(&self) -> usize {
        self.groups.size() + self.rows.size() + self.group_of_row.capacity() * size_of::<u32>()
    }
}

/// A partition's answer, as an iterator of batches.
struct Answer {
    rows: Stored,
    /// The answer's rows, in order.
    kept: Vec<Slot>,
    next: usize,
    batch_size: usize,
    /// Held until the answer is dropped.
    _reservation: MemoryReservation,
}

impl Iterator for Answer {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let rows = self.kept.get(self.next..)?;
        if rows.is_empty() {
            return None;
        }
        let rows = &rows[..rows.len().min(self.batch_size)];
        self.next += rows.len();
        Some(self.rows.gather(rows))
    }
}

/// A buffered row where the counting sort placed it, with the first bytes of its encoding: most
/// comparisons end in the prefix, without reaching for the row. Zero-padded, so that a prefix
/// never orders rows against their encoding; equal prefixes compare the whole rows.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    prefix: u64,
    batch: u32,
    row: u32,
}

impl Slot {
    fn new(encoded: &[u8], batch: usize, row: usize) -> Self {
        let mut prefix = [0u8; 8];
        let n = encoded.len().min(8);
        prefix[..n].copy_from_slice(&encoded[..n]);
        Slot {
            prefix: u64::from_be_bytes(prefix),
            batch: batch as u32,
            row: row as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool, UnboundedMemoryPool};

    type Row = (Option<i64>, Option<i64>, String);

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("__k0", DataType::Int64, true),
            Field::new("__v0", DataType::Int64, true),
            Field::new("__v1", DataType::Utf8, false),
        ]))
    }

    fn batch(rows: &[Row]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
                Arc::new(rows.iter().map(|r| r.1).collect::<Int64Array>()),
                Arc::new(
                    rows.iter()
                        .map(|r| Some(r.2.as_str()))
                        .collect::<StringArray>(),
                ),
            ],
        )
        .unwrap()
    }

    /// `__v0` descending, then `__v1` ascending, nulls last: how a spec's order resolves.
    fn buffer(limit: usize, pool: &Arc<dyn MemoryPool>) -> Buffer {
        let descending = SortOptions {
            descending: true,
            nulls_first: false,
        };
        let ascending = SortOptions {
            descending: false,
            nulls_first: false,
        };
        let reservation = MemoryConsumer::new("test").register(pool);
        Buffer::new(
            &schema(),
            1,
            &[(1, descending), (2, ascending)],
            limit,
            reservation,
        )
        .unwrap()
    }

    fn rows(batch: &RecordBatch) -> Vec<Row> {
        let column = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
        };
        let names = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        (0..batch.num_rows())
            .map(|i| {
                let value = |a: &Int64Array| a.is_valid(i).then(|| a.value(i));
                (
                    value(column(0)),
                    value(column(1)),
                    names.value(i).to_string(),
                )
            })
            .collect()
    }

    /// The answer's rows, handed out two at a time.
    fn answer(buffer: Buffer) -> Vec<Row> {
        let batches: Vec<RecordBatch> = buffer.finish(2).unwrap().map(Result::unwrap).collect();
        assert!(batches.iter().all(|b| b.num_rows() <= 2));
        batches.iter().flat_map(rows).collect()
    }

    fn row(key: Option<i64>, value: Option<i64>, name: &str) -> Row {
        (key, value, name.to_string())
    }

    /// The answer a full sort gives: by key, then the order, the first `limit` of each key.
    fn sorted_answer(mut all: Vec<Row>, limit: usize) -> Vec<Row> {
        all.sort_by(|a, b| {
            let nulls_last_desc = |x: Option<i64>, y: Option<i64>| match (x, y) {
                (Some(x), Some(y)) => y.cmp(&x),
                (x, y) => x.is_none().cmp(&y.is_none()),
            };
            a.0.cmp(&b.0)
                .then(nulls_last_desc(a.1, b.1))
                .then(a.2.cmp(&b.2))
        });
        let mut kept: Vec<Row> = Vec::new();
        for r in all {
            let same_key = kept.iter().rev().take_while(|k| k.0 == r.0).count();
            if same_key < limit {
                kept.push(r);
            }
        }
        kept
    }

    /// Each key's rows together: as a sort by key would list them, keys in any order.
    fn by_key(answer: Vec<Row>) -> Vec<Row> {
        let mut keys: Vec<Option<i64>> = Vec::new();
        for r in &answer {
            if keys.last() != Some(&r.0) {
                assert!(!keys.contains(&r.0), "the rows of key {:?} are split", r.0);
                keys.push(r.0);
            }
        }
        keys.sort();
        keys.iter()
            .flat_map(|k| answer.iter().filter(move |r| r.0 == *k).cloned())
            .collect()
    }

    #[test]
    fn keeps_each_keys_best_rows_in_order_across_batches() {
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let mut buffer = buffer(2, &pool);
        buffer
            .push(batch(&[
                row(Some(1), Some(5), "a"),
                row(Some(2), None, "z"),
                row(None, Some(1), "n"),
            ]))
            .unwrap();
        buffer.push(batch(&[])).unwrap();
        buffer
            .push(batch(&[
                row(Some(1), Some(7), "b"),
                row(Some(2), Some(3), "y"),
                row(Some(1), Some(7), "a"),
            ]))
            .unwrap();
        buffer
            .push(batch(&[
                row(Some(2), None, "a"),
                row(Some(1), Some(9), "c"),
            ]))
            .unwrap();
        // Key 1: 9, then the tie at 7 broken by name; key 2: 3, then the nulls (last), by name.
        assert_eq!(
            answer(buffer),
            vec![
                row(Some(1), Some(9), "c"),
                row(Some(1), Some(7), "a"),
                row(Some(2), Some(3), "y"),
                row(Some(2), None, "a"),
                row(None, Some(1), "n"),
            ]
        );
    }

    #[test]
    fn an_empty_partition_answers_nothing() {
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        assert_eq!(buffer(3, &pool).finish(2).unwrap().count(), 0);
    }

    /// Many rows per key: the buffer is cut down as it goes, stays bounded, and the answer is
    /// still the full sort's.
    #[test]
    fn cutting_the_buffer_down_keeps_it_bounded_and_the_answer_the_same() {
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let (limit, keys, batch_rows) = (3, 40, 100);
        let mut buffer = buffer(limit, &pool);
        buffer.compact_min_rows = 64;
        let mut all = Vec::new();
        let mut seed = 7u64;
        for _ in 0..50 {
            let rows: Vec<Row> = (0..batch_rows)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let draw = seed >> 33;
                    let value = (!draw.is_multiple_of(17)).then_some((draw / 17 % 50) as i64);
                    row(Some((draw % keys) as i64), value, &format!("n{}", draw % 5))
                })
                .collect();
            all.extend(rows.iter().cloned());
            buffer.push(batch(&rows)).unwrap();
            let bound = (COMPACT_FACTOR * limit * keys as usize).max(64) + batch_rows;
            assert!(
                buffer.group_of_row.len() <= bound,
                "{} rows buffered",
                buffer.group_of_row.len()
            );
        }
        assert_eq!(by_key(answer(buffer)), sorted_answer(all, limit));
    }

    #[test]
    fn a_partition_larger_than_its_pool_fails_as_resources_exhausted() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(4 << 10));
        let mut buffer = buffer(3, &pool);
        let rows: Vec<Row> = (0..1000).map(|i| row(Some(i % 10), Some(i), "x")).collect();
        let error = buffer.push(batch(&rows)).unwrap_err();
        assert!(
            matches!(
                error.find_root(),
                datafusion::error::DataFusionError::ResourcesExhausted(_)
            ),
            "{error}"
        );
    }
}
