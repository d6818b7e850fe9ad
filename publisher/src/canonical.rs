//! Canonical JSON, written once, from Arrow arrays.
//!
//! Whatever engine produced a batch, the bytes an edge serves come from here: fields in spec
//! order, integers as integers, DECIMAL as a string with the type's scale, floats in shortest
//! round-trip form (non-finite as `null`), dates `YYYY-MM-DD`, timestamps RFC 3339 UTC with `Z`
//! and a fraction only when non-zero, NULL as `null`. Strings are escaped as `serde_json` does.
//!
//! Cells are written straight into byte buffers; no `serde_json::Value` per cell.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, StringArray, StringViewArray,
    TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use crate::guards::{ENTRY_BYTES, GuardLimits, GuardOutcome, OUTPUT_BYTES};
use crate::spec::{ResolvedSpec, Shape};

pub use edge_contract::canonical::{
    Checksum, Entry, entry_hash, write_date, write_decimal, write_f64, write_jsonl_line, write_str,
    write_timestamp_micros,
};

/// Groups engine batches into entries. Rows must arrive clustered by key (the engine contract);
/// a key seen again after another key is an engine bug and is reported, never merged silently.
pub struct EntryEncoder {
    key_types: Vec<DataType>,
    value_types: Vec<DataType>,
    /// `"name":` for each output field, pre-escaped.
    field_prefixes: Vec<Vec<u8>>,
    field_names: Vec<String>,
    key_names: Vec<String>,
    shape: Shape,
    limit: Option<u64>,
    current_key: Option<Vec<u8>>,
    current_value: Vec<u8>,
    current_rows: u64,
    scratch_key: Vec<u8>,
    emitted_keyless: bool,
    /// Output guards, checked as each value grows (see [`EntryEncoder::bounded`]).
    max_entry_bytes: u64,
    max_output_bytes: u64,
    /// Bytes of the entries closed so far, and of the largest one.
    closed_bytes: u64,
    largest_entry: u64,
}

impl EntryEncoder {
    pub fn new(spec: &ResolvedSpec) -> Self {
        let field_prefixes = spec
            .outputs
            .iter()
            .map(|f| {
                let mut p = Vec::new();
                write_str(&mut p, &f.name);
                p.push(b':');
                p
            })
            .collect();
        EntryEncoder {
            key_types: spec.keys.iter().map(|k| k.data_type.clone()).collect(),
            value_types: spec.outputs.iter().map(|f| f.data_type.clone()).collect(),
            field_prefixes,
            field_names: spec.outputs.iter().map(|f| f.name.clone()).collect(),
            key_names: spec.keys.iter().map(|k| k.name.clone()).collect(),
            shape: spec.shape(),
            limit: spec.limit(),
            current_key: None,
            current_value: Vec::new(),
            current_rows: 0,
            scratch_key: Vec::new(),
            emitted_keyless: false,
            max_entry_bytes: u64::MAX,
            max_output_bytes: u64::MAX,
            closed_bytes: 0,
            largest_entry: 0,
        }
    }

    /// Trips `entry_bytes` when one key's entry grows past `max_entry_bytes`, and
    /// `output_bytes` when all entries together pass `max_output_bytes`, at the row that
    /// crosses the limit: the encoder never holds more than a limit's worth of one value.
    pub fn bounded(mut self, limits: &GuardLimits) -> Self {
        self.max_entry_bytes = limits.max_entry_bytes;
        self.max_output_bytes = limits.max_output_bytes;
        self
    }

    /// Bytes of the largest entry closed so far (key and value).
    pub fn largest_entry(&self) -> u64 {
        self.largest_entry
    }

    fn check_size(&self) -> Result<()> {
        let key = self.current_key.as_ref().map_or(0, Vec::len);
        let entry = (key + self.current_value.len()) as u64;
        if entry > self.max_entry_bytes {
            return Err(Error::GuardTripped(GuardOutcome::new(
                ENTRY_BYTES,
                entry,
                self.max_entry_bytes,
                format!(
                    "bytes of the entry of key {} so far",
                    String::from_utf8_lossy(self.current_key.as_deref().unwrap_or_default())
                ),
            )));
        }
        if self.closed_bytes + entry > self.max_output_bytes {
            return Err(Error::GuardTripped(GuardOutcome::new(
                OUTPUT_BYTES,
                self.closed_bytes + entry,
                self.max_output_bytes,
                "bytes of encoded entries so far",
            )));
        }
        Ok(())
    }

    /// Encodes one batch; entries completed by it are appended to `out` (the last key of the
    /// batch stays open until the next batch or [`finish`](Self::finish)).
    pub fn push(&mut self, batch: &RecordBatch, out: &mut Vec<Entry>) -> Result<()> {
        let nk = self.key_types.len();
        let expected = nk + self.value_types.len();
        if batch.num_columns() != expected {
            return Err(Error::Encoding {
                column: "*".into(),
                message: format!(
                    "engine produced {} columns, expected {expected} (keys then values)",
                    batch.num_columns()
                ),
            });
        }
        let keys: Vec<Cells> = (0..nk)
            .map(|i| Cells::new(batch.column(i), &self.key_types[i], &self.key_names[i]))
            .collect::<Result<_>>()?;
        let values: Vec<Cells> = (0..self.value_types.len())
            .map(|i| {
                Cells::new(
                    batch.column(nk + i),
                    &self.value_types[i],
                    &self.field_names[i],
                )
            })
            .collect::<Result<_>>()?;

        for row in 0..batch.num_rows() {
            self.scratch_key.clear();
            self.scratch_key.push(b'[');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    self.scratch_key.push(b',');
                }
                k.write(row, &mut self.scratch_key);
            }
            self.scratch_key.push(b']');

            if self.current_key.as_deref() != Some(&self.scratch_key[..]) {
                self.close_key(out)?;
                self.current_key = Some(self.scratch_key.clone());
            }
            if self.limit.is_some_and(|l| self.current_rows >= l) {
                return Err(Error::Encoding {
                    column: "*".into(),
                    message: format!(
                        "engine returned more than limit = {} rows for key {}",
                        self.limit.unwrap_or(0),
                        String::from_utf8_lossy(&self.scratch_key)
                    ),
                });
            }
            if self.shape == Shape::Object && self.current_rows == 1 {
                return Err(Error::Encoding {
                    column: "*".into(),
                    message: format!(
                        "shape = object but key {} has several rows",
                        String::from_utf8_lossy(&self.scratch_key)
                    ),
                });
            }
            let v = &mut self.current_value;
            if self.shape == Shape::List {
                v.push(if self.current_rows == 0 { b'[' } else { b',' });
            }
            v.push(b'{');
            for (i, cells) in values.iter().enumerate() {
                if i > 0 {
                    v.push(b',');
                }
                v.extend_from_slice(&self.field_prefixes[i]);
                cells.write(row, v);
            }
            v.push(b'}');
            self.current_rows += 1;
            self.check_size()?;
        }
        Ok(())
    }

    fn close_key(&mut self, out: &mut Vec<Entry>) -> Result<()> {
        let Some(key) = self.current_key.take() else {
            return Ok(());
        };
        if self.shape == Shape::List {
            self.current_value.push(b']');
        }
        if key == b"[]" {
            self.emitted_keyless = true;
        }
        let bytes = (key.len() + self.current_value.len()) as u64;
        self.closed_bytes += bytes;
        self.largest_entry = self.largest_entry.max(bytes);
        out.push(Entry {
            key,
            value: std::mem::take(&mut self.current_value),
        });
        self.current_rows = 0;
        Ok(())
    }

    /// Closes the last key. A key-less list API with no rows still answers: an empty list.
    pub fn finish(&mut self, out: &mut Vec<Entry>) -> Result<()> {
        self.close_key(out)?;
        if self.key_types.is_empty() && !self.emitted_keyless && self.shape == Shape::List {
            out.push(Entry {
                key: b"[]".to_vec(),
                value: b"[]".to_vec(),
            });
            self.emitted_keyless = true;
        }
        Ok(())
    }
}

/// A column cast to its canonical type, ready to write cells.
enum Cells {
    Bool(BooleanArray),
    I8(Int8Array),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    U8(UInt8Array),
    U16(UInt16Array),
    U32(UInt32Array),
    U64(UInt64Array),
    F32(Float32Array),
    F64(Float64Array),
    Str(StringArray),
    /// Strings an engine kept as views (the fast track groups and partitions on them), written
    /// without converting the column.
    StrView(StringViewArray),
    Decimal(Decimal128Array, i8),
    Date(Date32Array),
    Timestamp(TimestampMicrosecondArray),
}

impl Cells {
    fn new(array: &ArrayRef, target: &DataType, column: &str) -> Result<Self> {
        let target = match target {
            // All timestamps are served as UTC instants at microsecond precision.
            DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, None),
            t => t.clone(),
        };
        if let (DataType::Utf8View, DataType::Utf8) = (array.data_type(), &target) {
            return Ok(Cells::StrView(array.as_string_view().clone()));
        }
        let array: ArrayRef = match (array.data_type(), &target) {
            (DataType::Timestamp(u, Some(_)), DataType::Timestamp(..)) => {
                // Drop the zone: the values are already UTC.
                cast(array, &DataType::Timestamp(*u, None)).and_then(|a| cast(&a, &target))
            }
            (from, to) if from == to => Ok(Arc::clone(array)),
            _ => cast(array, &target),
        }
        .map_err(|e| Error::Encoding {
            column: column.into(),
            message: format!("cannot convert {} to {target}: {e}", array.data_type()),
        })?;
        Ok(match &target {
            DataType::Boolean => Cells::Bool(array.as_boolean().clone()),
            DataType::Int8 => Cells::I8(array.as_primitive().clone()),
            DataType::Int16 => Cells::I16(array.as_primitive().clone()),
            DataType::Int32 => Cells::I32(array.as_primitive().clone()),
            DataType::Int64 => Cells::I64(array.as_primitive().clone()),
            DataType::UInt8 => Cells::U8(array.as_primitive().clone()),
            DataType::UInt16 => Cells::U16(array.as_primitive().clone()),
            DataType::UInt32 => Cells::U32(array.as_primitive().clone()),
            DataType::UInt64 => Cells::U64(array.as_primitive().clone()),
            DataType::Float32 => Cells::F32(array.as_primitive().clone()),
            DataType::Float64 => Cells::F64(array.as_primitive().clone()),
            DataType::Utf8 => Cells::Str(array.as_string::<i32>().clone()),
            DataType::Decimal128(_, s) => Cells::Decimal(array.as_primitive().clone(), *s),
            DataType::Date32 => Cells::Date(array.as_primitive().clone()),
            DataType::Timestamp(..) => Cells::Timestamp(array.as_primitive().clone()),
            other => {
                return Err(Error::Encoding {
                    column: column.into(),
                    message: format!("type {other} cannot be served"),
                });
            }
        })
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Cells::Bool(a) => a.is_null(row),
            Cells::I8(a) => a.is_null(row),
            Cells::I16(a) => a.is_null(row),
            Cells::I32(a) => a.is_null(row),
            Cells::I64(a) => a.is_null(row),
            Cells::U8(a) => a.is_null(row),
            Cells::U16(a) => a.is_null(row),
            Cells::U32(a) => a.is_null(row),
            Cells::U64(a) => a.is_null(row),
            Cells::F32(a) => a.is_null(row),
            Cells::F64(a) => a.is_null(row),
            Cells::Str(a) => a.is_null(row),
            Cells::StrView(a) => a.is_null(row),
            Cells::Decimal(a, _) => a.is_null(row),
            Cells::Date(a) => a.is_null(row),
            Cells::Timestamp(a) => a.is_null(row),
        }
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) {
        if self.is_null(row) {
            out.extend_from_slice(b"null");
            return;
        }
        let mut ints = itoa::Buffer::new();
        match self {
            Cells::Bool(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            Cells::I8(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Cells::I16(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Cells::I32(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Cells::I64(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Cells::U8(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Cells::U16(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Cells::U32(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Cells::U64(a) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
            Cells::F32(a) => write_f64(out, f64::from(a.value(row))),
            Cells::F64(a) => write_f64(out, a.value(row)),
            Cells::Str(a) => write_str(out, a.value(row)),
            Cells::StrView(a) => write_str(out, a.value(row)),
            Cells::Decimal(a, scale) => {
                out.push(b'"');
                write_decimal(out, a.value(row), *scale);
                out.push(b'"');
            }
            Cells::Date(a) => {
                out.push(b'"');
                write_date(out, a.value(row));
                out.push(b'"');
            }
            Cells::Timestamp(a) => {
                out.push(b'"');
                write_timestamp_micros(out, a.value(row));
                out.push(b'"');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast track hands over string keys as views; they must be written exactly as the
    /// same strings in a plain string column (escapes, long and short values, nulls).
    #[test]
    fn string_views_are_written_as_strings() {
        let texts = [
            Some("a"),
            None,
            Some("quote \" and \\ and é"),
            Some(&"long ".repeat(9)[..]),
        ];
        let plain: ArrayRef = Arc::new(StringArray::from(texts.to_vec()));
        let views: ArrayRef = Arc::new(StringViewArray::from(texts.to_vec()));
        let write_all = |array: &ArrayRef| {
            let cells = Cells::new(array, &DataType::Utf8, "c").unwrap();
            let mut out = Vec::new();
            for row in 0..texts.len() {
                cells.write(row, &mut out);
                out.push(b'|');
            }
            String::from_utf8(out).unwrap()
        };
        assert!(matches!(
            Cells::new(&views, &DataType::Utf8, "c").unwrap(),
            Cells::StrView(_)
        ));
        assert_eq!(write_all(&views), write_all(&plain));
        assert!(write_all(&plain).starts_with(r#""a"|null|"quote \" and \\ and é"|"long"#));
    }
}
