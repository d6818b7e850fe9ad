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
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::spec::{ResolvedSpec, Shape};

/// One key's answer: the key as a canonical JSON array, the value as canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// `key value`, both as their canonical JSON: how logs and test failures show an entry.
impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            String::from_utf8_lossy(&self.key),
            String::from_utf8_lossy(&self.value)
        )
    }
}

impl Entry {
    /// The line `tablecast run` writes: `{"key":[…],"value":…}`.
    pub fn to_jsonl(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"key\":");
        out.extend_from_slice(&self.key);
        out.extend_from_slice(b",\"value\":");
        out.extend_from_slice(&self.value);
        out.extend_from_slice(b"}\n");
    }
}

/// Order-independent digest of a set of entries: count, bytes and the wrapping sum of each
/// entry's xxh3. Computed while writing, recomputed by a verifier in any order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checksum {
    pub keys: u64,
    pub bytes: u64,
    pub sum: u64,
}

impl Checksum {
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        self.keys += 1;
        self.bytes += (key.len() + value.len()) as u64;
        self.sum = self.sum.wrapping_add(entry_hash(key, value));
    }

    pub fn merge(&mut self, other: &Checksum) {
        self.keys += other.keys;
        self.bytes += other.bytes;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.sum)
    }
}

/// xxh3-64 of the key length, key and value: stable across versions and platforms.
pub fn entry_hash(key: &[u8], value: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    h.digest()
}

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
        }
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

/// Shortest round-trip form (`ryu`, as `serde_json` prints floats); NaN and infinities are `null`.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// A JSON string, escaped exactly as `serde_json` does (`"`, `\`, control characters).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `1234.50` for 123450 at scale 2; negative scales multiply out.
pub fn write_decimal(out: &mut Vec<u8>, unscaled: i128, scale: i8) {
    let mut ints = itoa::Buffer::new();
    if scale <= 0 {
        out.extend_from_slice(ints.format(unscaled).as_bytes());
        out.extend(std::iter::repeat_n(
            b'0',
            if unscaled == 0 { 0 } else { (-scale) as usize },
        ));
        return;
    }
    if unscaled < 0 {
        out.push(b'-');
    }
    let digits = ints.format(unscaled.unsigned_abs()).as_bytes();
    let scale = scale as usize;
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
}

/// Civil date from days since the epoch (Howard Hinnant's algorithm), for any i32.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn write_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut ints = itoa::Buffer::new();
    let s = ints.format(v).as_bytes();
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(s.len())));
    out.extend_from_slice(s);
}

fn write_year(out: &mut Vec<u8>, y: i64) {
    if y < 0 {
        out.push(b'-');
    }
    write_padded(out, y.unsigned_abs(), 4);
}

pub fn write_date(out: &mut Vec<u8>, days: i32) {
    let (y, m, d) = civil_from_days(i64::from(days));
    write_year(out, y);
    out.push(b'-');
    write_padded(out, u64::from(m), 2);
    out.push(b'-');
    write_padded(out, u64::from(d), 2);
}

/// `2026-11-01T08:30:00Z`, `…:00.25Z`: a fraction only when non-zero, trailing zeros trimmed.
pub fn write_timestamp_micros(out: &mut Vec<u8>, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    write_year(out, y);
    out.push(b'-');
    write_padded(out, u64::from(m), 2);
    out.push(b'-');
    write_padded(out, u64::from(d), 2);
    out.push(b'T');
    write_padded(out, sod / 3600, 2);
    out.push(b':');
    write_padded(out, sod / 60 % 60, 2);
    out.push(b':');
    write_padded(out, sod % 60, 2);
    if frac != 0 {
        out.push(b'.');
        let mut digits = Vec::with_capacity(6);
        write_padded(&mut digits, frac, 6);
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        out.extend_from_slice(&digits);
    }
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_escape_like_serde_json() {
        for v in [
            "plain",
            "quote\"back\\slash",
            "tab\tnl\ncr\r",
            "\u{1}\u{1f}",
            "日本語 🦀",
            "",
            "/%?#",
        ] {
            assert_eq!(s(|o| write_str(o, v)), serde_json::to_string(v).unwrap());
        }
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(s(|o| write_decimal(o, 123450, 2)), "1234.50");
        assert_eq!(s(|o| write_decimal(o, -5, 2)), "-0.05");
        assert_eq!(s(|o| write_decimal(o, 0, 2)), "0.00");
        assert_eq!(s(|o| write_decimal(o, 7, 0)), "7");
        assert_eq!(s(|o| write_decimal(o, 7, -2)), "700");
        assert_eq!(
            s(|o| write_decimal(o, i128::MAX, 10)),
            "17014118346046923173168730371.5884105727"
        );
    }

    #[test]
    fn floats_are_shortest_round_trip() {
        assert_eq!(s(|o| write_f64(o, 0.1)), "0.1");
        assert_eq!(s(|o| write_f64(o, 3.0)), "3.0");
        assert_eq!(s(|o| write_f64(o, 1e300)), "1e300");
        assert_eq!(s(|o| write_f64(o, 5e-324)), "5e-324");
        assert_eq!(s(|o| write_f64(o, f64::NAN)), "null");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(s(|o| write_timestamp_micros(o, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            s(|o| write_timestamp_micros(o, 1_761_985_800_250_000)),
            "2025-11-01T08:30:00.25Z"
        );
        assert_eq!(
            s(|o| write_timestamp_micros(o, -1)),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(s(|o| write_date(o, 20_393)), "2025-11-01");
        // Cross-check against chrono over a spread of instants.
        for micros in [
            1i64,
            86_399_999_999,
            951_782_400_000_000,
            -62_135_596_800_000_000,
            253_402_300_799_000_000,
        ] {
            let t = chrono::DateTime::from_timestamp_micros(micros).unwrap();
            let expected = t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            let ours = s(|o| write_timestamp_micros(o, micros));
            // chrono prints fractions in groups of 3 digits; ours trims every trailing zero.
            let trimmed = expected
                .trim_end_matches('Z')
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
                + "Z";
            let expected_trimmed = if expected.contains('.') {
                trimmed
            } else {
                expected
            };
            assert_eq!(ours, expected_trimmed);
        }
    }

    #[test]
    fn checksum_is_order_independent() {
        let mut a = Checksum::default();
        a.add(b"[1]", b"{}");
        a.add(b"[2]", b"[]");
        let mut b = Checksum::default();
        b.add(b"[2]", b"[]");
        b.add(b"[1]", b"{}");
        assert_eq!(a, b);
        assert_eq!(a.keys, 2);
    }
}
