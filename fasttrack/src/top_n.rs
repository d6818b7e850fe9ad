//! Per-key top N as an aggregate: `top_n(v0, v1, …)` grouped by the key keeps, per group, the N
//! best rows in a sorted array of at most N, so memory is O(keys × N) and no row is ever sorted
//! with all the others (the window plan it replaces sorted the whole input by key and order).
//!
//! Rows are compared in Arrow's row format, whose byte order is the sort order: the arguments are
//! encoded in comparison order (the spec's `order_by`, then every other output ascending, nulls
//! last, as [`publisher::spec::ResolvedSpec::order`] resolves it), so a comparison is a `memcmp`
//! and the same bytes decode back into the output columns. Every output takes part in the
//! comparison, so two rows that compare equal are equal and the answer does not depend on which
//! one was seen first: byte-identical to a full sort with `row_number()`, and to Spark.
//!
//! The result of a group is a list of structs (`__v0`, `__v1`, …) in rank order; the plan
//! unnests it, which keeps a key's rows together and in order.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// The aggregate: `limit` rows per group, compared by `order` (argument index and direction,
/// most significant first; every argument exactly once).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TopN {
    limit: usize,
    order: Vec<(usize, SortOptions)>,
    /// The fields of each kept row, in argument order.
    fields: Fields,
    signature: Signature,
}

impl TopN {
    /// `fields` name and type the arguments; `order` must list each argument once.
    pub fn udaf(limit: usize, fields: Fields, order: Vec<(usize, SortOptions)>) -> AggregateUDF {
        debug_assert_eq!(order.len(), fields.len());
        let types = fields.iter().map(|f| f.data_type().clone()).collect();
        AggregateUDF::from(TopN {
            limit,
            order,
            fields,
            signature: Signature::exact(types, Volatility::Immutable),
        })
    }

    fn list_type(&self) -> DataType {
        DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(self.fields.clone()),
            true,
        )))
    }

    fn groups(&self) -> Result<TopNGroups> {
        let sort_fields = self
            .order
            .iter()
            .map(|(i, options)| {
                SortField::new_with_options(self.fields[*i].data_type().clone(), *options)
            })
            .collect();
        Ok(TopNGroups {
            limit: self.limit,
            order: self.order.clone(),
            fields: self.fields.clone(),
            converter: RowConverter::new(sort_fields)?,
            arena: Arena::default(),
            garbage: 0,
            groups: Vec::new(),
            slots: 0,
        })
    }
}

impl AggregateUDFImpl for TopN {
    fn name(&self) -> &str {
        "top_n"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.list_type())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[top]", args.name),
            self.list_type(),
            true,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup(self.groups()?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(self.groups()?))
    }
}

/// Where a kept row's bytes are in the arena.
#[derive(Clone, Copy)]
struct Slot {
    chunk: u32,
    start: u32,
    len: u32,
}

/// Row bytes in chunks of 1 MiB: growing never copies what is already stored.
#[derive(Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
    len: usize,
}

impl Arena {
    const CHUNK: usize = 1 << 20;

    fn push(&mut self, row: &[u8]) -> Slot {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= row.len());
        if !fits {
            self.chunks
                .push(Vec::with_capacity(Self::CHUNK.max(row.len())));
        }
        let chunk = self.chunks.len() - 1;
        let last = &mut self.chunks[chunk];
        let start = last.len();
        last.extend_from_slice(row);
        self.len += row.len();
        Slot {
            chunk: chunk as u32,
            start: start as u32,
            len: row.len() as u32,
        }
    }

    fn get(&self, slot: &Slot) -> &[u8] {
        let start = slot.start as usize;
        &self.chunks[slot.chunk as usize][start..start + slot.len as usize]
    }

    fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }
}

/// The kept rows of every group, each group's sorted best first.
///
/// Rows live in one arena (a row per allocation cost more in `malloc`, and in its locks between
/// the partitions' threads, than the comparisons); a row that drops out leaves its bytes behind
/// until the arena is compacted.
struct TopNGroups {
    limit: usize,
    order: Vec<(usize, SortOptions)>,
    fields: Fields,
    converter: RowConverter,
    /// Encoded rows (Arrow row format, in `order`).
    arena: Arena,
    /// Bytes of the arena no group refers to any more.
    garbage: usize,
    /// At most `limit` slots per group.
    groups: Vec<Vec<Slot>>,
    /// Slots held in all groups (DataFusion asks for the size after every batch: counting
    /// them then would cost a pass over every group).
    slots: usize,
}

impl TopNGroups {
    /// Row order. Most comparisons are decided in the first eight bytes (the first sort column's
    /// encoding), so those are compared as one big-endian integer before calling `memcmp`.
    fn less_or_equal(a: &[u8], b: &[u8]) -> bool {
        if let (Some(x), Some(y)) = (a.first_chunk::<8>(), b.first_chunk::<8>()) {
            let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
            if x != y {
                return x < y;
            }
        }
        a <= b
    }

    fn bytes(&self, slot: Slot) -> &[u8] {
        self.arena.get(&slot)
    }

    /// Offers one encoded row to a group: kept if the group has room or the row beats its worst.
    fn offer(&mut self, group: usize, row: &[u8]) {
        let (arena, kept) = (&self.arena, &mut self.groups[group]);
        let bytes = |s: &Slot| arena.get(s);
        if kept.len() == self.limit {
            match kept.last() {
                Some(worst) if !Self::less_or_equal(bytes(worst), row) => {}
                _ => return,
            }
            if let Some(dropped) = kept.pop() {
                self.garbage += dropped.len as usize;
                self.slots -= 1;
            }
        }
        let at = kept.partition_point(|k| Self::less_or_equal(bytes(k), row));
        if kept.capacity() == 0 {
            kept.reserve_exact(self.limit.min(4));
        }
        let slot = self.arena.push(row);
        self.groups[group].insert(at, slot);
        self.slots += 1;
    }

    /// Copies the live rows into a fresh arena once most of it is garbage.
    fn compact(&mut self) {
        if self.garbage < Arena::CHUNK || self.garbage * 2 < self.arena.len {
            return;
        }
        let mut arena = Arena::default();
        for slot in self.groups.iter_mut().flatten() {
            *slot = arena.push(self.arena.get(slot));
        }
        self.arena = arena;
        self.garbage = 0;
    }

    /// Offers every row of `columns` (in argument order) to the group `group_of(row)`.
    fn offer_all(
        &mut self,
        columns: &[ArrayRef],
        mut group_of: impl FnMut(usize) -> Option<usize>,
    ) -> Result<()> {
        let in_order: Vec<ArrayRef> = self
            .order
            .iter()
            .map(|(i, _)| Arc::clone(&columns[*i]))
            .collect();
        let rows = self.converter.convert_columns(&in_order)?;
        for (r, row) in rows.iter().enumerate() {
            if let Some(group) = group_of(r) {
                self.offer(group, row.as_ref());
            }
        }
        self.compact();
        Ok(())
    }

    /// The kept rows of the emitted groups as a list (one entry per group) of structs.
    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        let parser = self.converter.parser();
        let decoded = self.converter.convert_rows(
            groups
                .iter()
                .flatten()
                .map(|slot| parser.parse(self.bytes(*slot))),
        )?;
        self.garbage += groups
            .iter()
            .flatten()
            .map(|s| s.len as usize)
            .sum::<usize>();
        self.slots -= groups.iter().map(Vec::len).sum::<usize>();
        if self.groups.is_empty() {
            self.arena = Arena::default();
            self.garbage = 0;
        } else {
            self.compact();
        }
        // Back from comparison order to argument order.
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.fields.len()];
        for ((argument, _), column) in self.order.iter().zip(decoded) {
            columns[*argument] = Some(column);
        }
        let columns = columns
            .into_iter()
            .map(|c| c.expect("every argument is in the order"))
            .collect();
        let rows = StructArray::try_new(self.fields.clone(), columns, None)?;
        let item = Arc::new(Field::new_list_field(
            DataType::Struct(self.fields.clone()),
            true,
        ));
        let offsets = OffsetBuffer::from_lengths(groups.iter().map(Vec::len));
        Ok(Arc::new(ListArray::try_new(
            item,
            offsets,
            Arc::new(rows),
            None,
        )?))
    }

    /// Offers the rows of partial results (lists of structs) to their groups.
    fn merge(&mut self, states: &[ArrayRef], group_indices: &[usize]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        let rows = lists.values().as_struct();
        let mut owner = Vec::with_capacity(rows.len());
        for (r, group) in group_indices.iter().enumerate() {
            if lists.is_valid(r) {
                owner.extend(std::iter::repeat_n(*group, lists.value_length(r) as usize));
            }
        }
        let start = lists.value_offsets()[0] as usize;
        let end = *lists.value_offsets().last().unwrap_or(&0) as usize;
        let columns: Vec<ArrayRef> = rows
            .columns()
            .iter()
            .map(|c| c.slice(start, end - start))
            .collect();
        self.offer_all(&columns, |r| owner.get(r).copied())
    }

    fn memory(&self) -> usize {
        self.arena.capacity()
            + self.groups.capacity() * std::mem::size_of::<Vec<Slot>>()
            + self.slots * std::mem::size_of::<Slot>()
            + self.converter.size()
    }
}

impl GroupsAccumulator for TopNGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        self.offer_all(values, |r| {
            let passes = opt_filter.is_none_or(|f| f.is_valid(r) && f.value(r));
            passes.then(|| group_indices[r])
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        self.merge(values, group_indices)
    }

    /// Each input row as a one-row partial result, for when DataFusion skips the partial
    /// aggregation (too many groups for it to pay off).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let passes = |r: usize| opt_filter.is_none_or(|f| f.is_valid(r) && f.value(r));
        let lengths = (0..values[0].len()).map(|r| usize::from(passes(r)));
        let mut rows: ArrayRef = Arc::new(StructArray::try_new(
            self.fields.clone(),
            values.to_vec(),
            None,
        )?);
        if let Some(filter) = opt_filter {
            rows = datafusion::arrow::compute::filter(&rows, filter)?;
        }
        let item = Arc::new(Field::new_list_field(
            DataType::Struct(self.fields.clone()),
            true,
        ));
        Ok(vec![Arc::new(ListArray::try_new(
            item,
            OffsetBuffer::from_lengths(lengths),
            rows,
            None,
        )?)])
    }

    fn size(&self) -> usize {
        self.memory()
    }
}

/// The same aggregate over one group, for plans that do not group by the key (DataFusion asks
/// for both forms).
struct OneGroup(TopNGroups);

impl std::fmt::Debug for OneGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TopN(limit {})", self.0.limit)
    }
}

impl Accumulator for OneGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.groups.resize_with(1, Vec::new);
        self.0.offer_all(values, |_| Some(0))
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.groups.resize_with(1, Vec::new);
        ScalarValue::try_from_array(&self.0.emit(EmitTo::All)?, 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.groups.resize_with(1, Vec::new);
        let groups = vec![0; states[0].len()];
        self.0.merge(states, &groups)
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.0.memory()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    fn fields() -> Fields {
        Fields::from(vec![
            Field::new("__v0", DataType::Int64, true),
            Field::new("__v1", DataType::Utf8, true),
        ])
    }

    /// By `__v0` descending (nulls last), then `__v1` ascending.
    fn order() -> Vec<(usize, SortOptions)> {
        vec![
            (
                0,
                SortOptions {
                    descending: true,
                    nulls_first: false,
                },
            ),
            (
                1,
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            ),
        ]
    }

    fn groups(limit: usize) -> TopNGroups {
        TopN {
            limit,
            order: order(),
            fields: fields(),
            signature: Signature::any(2, Volatility::Immutable),
        }
        .groups()
        .unwrap()
    }

    fn batch(n: Vec<Option<i64>>, s: Vec<&str>) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from(n)) as ArrayRef,
            Arc::new(StringArray::from(s)),
        ]
    }

    fn rows(list: &ArrayRef, group: usize) -> Vec<(Option<i64>, String)> {
        let list = list.as_list::<i32>();
        let item = list.value(group);
        let rows = item.as_struct();
        let n = rows
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let s = rows.column(1).as_string::<i32>();
        (0..rows.len())
            .map(|i| (n.is_valid(i).then(|| n.value(i)), s.value(i).to_string()))
            .collect()
    }

    #[test]
    fn keeps_the_best_rows_per_group_in_order_with_ties_broken_by_every_field() {
        let mut acc = groups(3);
        let values = batch(
            vec![Some(1), Some(5), None, Some(5), Some(3), Some(9), Some(5)],
            vec!["a", "c", "z", "b", "x", "only", "a"],
        );
        acc.update_batch(&values, &[0, 0, 0, 0, 0, 1, 0], None, 2)
            .unwrap();
        let out = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(
            rows(&out, 0),
            [
                (Some(5), "a".into()),
                (Some(5), "b".into()),
                (Some(5), "c".into())
            ]
        );
        assert_eq!(rows(&out, 1), [(Some(9), "only".into())]);
        assert_eq!(acc.arena.len, 0, "everything emitted, nothing kept");
    }

    #[test]
    fn merging_partial_results_equals_one_pass() {
        let values = batch(
            vec![Some(4), None, Some(7), Some(2), Some(7), Some(1)],
            vec!["d", "n", "g", "b", "f", "a"],
        );
        let mut whole = groups(2);
        whole
            .update_batch(&values, &[0, 0, 0, 0, 0, 0], None, 1)
            .unwrap();
        let expected = rows(&whole.evaluate(EmitTo::All).unwrap(), 0);

        let (mut left, mut right) = (groups(2), groups(2));
        left.update_batch(
            &[values[0].slice(0, 3), values[1].slice(0, 3)],
            &[0; 3],
            None,
            1,
        )
        .unwrap();
        right
            .update_batch(
                &[values[0].slice(3, 3), values[1].slice(3, 3)],
                &[0; 3],
                None,
                1,
            )
            .unwrap();
        let mut last = groups(2);
        for partial in [&mut left, &mut right] {
            let state = partial.state(EmitTo::All).unwrap();
            last.merge_batch(&state, &[0], 1).unwrap();
        }
        assert_eq!(rows(&last.evaluate(EmitTo::All).unwrap(), 0), expected);
        assert_eq!(expected, [(Some(7), "f".into()), (Some(7), "g".into())]);
    }

    #[test]
    fn nulls_rank_last_and_filtered_rows_are_skipped() {
        let mut acc = groups(5);
        let values = batch(vec![None, Some(1), Some(2)], vec!["n", "one", "two"]);
        let filter = BooleanArray::from(vec![true, true, false]);
        acc.update_batch(&values, &[0, 0, 0], Some(&filter), 1)
            .unwrap();
        assert_eq!(
            rows(&acc.evaluate(EmitTo::All).unwrap(), 0),
            [(Some(1), "one".into()), (None, "n".into())]
        );
    }
}
