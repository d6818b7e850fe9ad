//! Quality gates: a freshly computed version is compared with the one serving before it may
//! serve. A partition that landed with 5 % of its usual rows, or with a column gone null, is
//! computed, pushed and sealed like any other; the gates are what stop it at the commit.
//!
//! Each version carries an [`OutputProfile`] (keys, rows, and per value field its nulls and
//! numeric range), measured while encoding and stored with the version, so the next publish
//! compares against the serving version without reading it back.

use arrow::array::{Array, Float64Array};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::{OutputField, ResolvedSpec, SpecProblem};

/// What a version's output looked like, measured while it was encoded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputProfile {
    pub keys: u64,
    /// Rows the engine produced (a list-shaped key has several).
    pub rows: u64,
    pub fields: Vec<FieldProfile>,
}

/// One value field's nulls and, for a numeric field, its smallest and largest value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldProfile {
    pub name: String,
    pub nulls: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip)]
    numeric: bool,
}

impl OutputProfile {
    pub fn new(spec: &ResolvedSpec) -> Self {
        OutputProfile {
            keys: 0,
            rows: 0,
            fields: spec
                .outputs
                .iter()
                .map(|o| FieldProfile {
                    name: o.name.clone(),
                    numeric: is_numeric(&o.data_type),
                    ..FieldProfile::default()
                })
                .collect(),
        }
    }

    /// Adds one engine batch (key columns first, then the value fields in spec order).
    pub fn observe(&mut self, batch: &RecordBatch, key_columns: usize) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        for (i, field) in self.fields.iter_mut().enumerate() {
            let Some(column) = batch.columns().get(key_columns + i) else {
                continue;
            };
            field.nulls += column.null_count() as u64;
            if !field.numeric || column.null_count() == column.len() {
                continue;
            }
            let as_f64 =
                arrow::compute::cast(column, &DataType::Float64).map_err(|e| Error::Encoding {
                    column: field.name.clone(),
                    message: format!("measuring its range: {e}"),
                })?;
            let values = as_f64
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast to Float64 yields a Float64Array");
            field.min = combine_bound(field.min, arrow::compute::min(values), f64::min);
            field.max = combine_bound(field.max, arrow::compute::max(values), f64::max);
        }
        Ok(())
    }

    /// Adds the profile of another part of the same output (a partition of the run).
    pub fn merge(&mut self, other: &OutputProfile) {
        self.keys += other.keys;
        self.rows += other.rows;
        for (field, theirs) in self.fields.iter_mut().zip(&other.fields) {
            field.nulls += theirs.nulls;
            field.min = combine_bound(field.min, theirs.min, f64::min);
            field.max = combine_bound(field.max, theirs.max, f64::max);
        }
    }

    /// The share of rows whose `field` is null, in percent.
    pub fn null_pct(&self, field: &str) -> Option<f64> {
        let f = self.fields.iter().find(|f| f.name == field)?;
        Some(if self.rows == 0 {
            0.0
        } else {
            f.nulls as f64 * 100.0 / self.rows as f64
        })
    }

    fn field(&self, name: &str) -> Option<&FieldProfile> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Combines two optional bounds with `pick` (min or max); a missing bound is no bound.
fn combine_bound(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..))
}

/// The gates every API has unless it says otherwise (`[publish.gates]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateLimits {
    /// The key count may change by at most this many percent of the serving version's.
    pub max_key_change_pct: f64,
    /// Per value field, the share of null rows may grow by at most this many points.
    pub max_null_increase_pts: f64,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            max_key_change_pct: 50.0,
            max_null_increase_pts: 20.0,
        }
    }
}

/// One API's gates (the `[gates]` section of a spec): looser or tighter limits, and bounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_key_change_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_null_increase_pts: Option<f64>,
    /// Numeric bounds every value of a field must keep.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<Bound>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    /// An output field's name.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl GateOverrides {
    pub fn is_empty(&self) -> bool {
        *self == GateOverrides::default()
    }

    /// Problems with the gates themselves, against the spec's output fields.
    pub fn check(&self, outputs: &[OutputField]) -> Vec<SpecProblem> {
        let mut problems = Vec::new();
        let mut problem =
            |field: String, message: String| problems.push(SpecProblem { field, message });
        for (name, value) in [
            ("max_key_change_pct", self.max_key_change_pct),
            ("max_null_increase_pts", self.max_null_increase_pts),
        ] {
            if value.is_some_and(|v| v.is_nan() || v < 0.0) {
                problem(
                    format!("gates.{name}"),
                    "must be a number of at least 0".into(),
                );
            }
        }
        for (i, b) in self.bounds.iter().enumerate() {
            let at = format!("gates.bounds[{i}]");
            match outputs.iter().find(|o| o.name == b.field) {
                None => problem(
                    format!("{at}.field"),
                    format!("`{}` is not an output field of this API", b.field),
                ),
                Some(o) if !is_numeric(&o.data_type) => problem(
                    format!("{at}.field"),
                    format!("`{}` is not numeric: bounds apply to numbers", b.field),
                ),
                Some(_) => {}
            }
            match (b.min, b.max) {
                (None, None) => problem(at, "give min, max or both".into()),
                (Some(lo), Some(hi)) if lo > hi => {
                    problem(at, format!("min {lo} is greater than max {hi}"))
                }
                _ => {}
            }
        }
        problems
    }
}

/// A canary commit (the `[canary]` section of a spec): the new version serves first on one
/// edge (the first of the API's edges), whose lookup service is probed with a sample of the
/// computed entries for `soak_s`; only if at most `max_mismatch_pct` of the probes differ does
/// every edge switch. Otherwise the canary edge goes back and the version is discarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Canary {
    pub soak_s: u64,
    pub sample_keys: usize,
    pub max_mismatch_pct: f64,
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            soak_s: 30,
            sample_keys: 20,
            max_mismatch_pct: 0.0,
        }
    }
}

impl Canary {
    pub fn check(&self) -> Vec<SpecProblem> {
        let mut problems = Vec::new();
        if self.sample_keys == 0 || self.sample_keys > 1000 {
            problems.push(SpecProblem {
                field: "canary.sample_keys".into(),
                message: format!("{} must be 1 to 1000", self.sample_keys),
            });
        }
        if self.max_mismatch_pct.is_nan() || !(0.0..=100.0).contains(&self.max_mismatch_pct) {
            problems.push(SpecProblem {
                field: "canary.max_mismatch_pct".into(),
                message: "must be a percentage from 0 to 100".into(),
            });
        }
        if self.soak_s > 86_400 {
            problems.push(SpecProblem {
                field: "canary.soak_s".into(),
                message: "at most a day (86400 s)".into(),
            });
        }
        problems
    }
}

/// The entries with the smallest hashes: a sample that is the same for the same output
/// whatever the engine's batch order, kept while encoding.
#[derive(Debug, Default)]
pub struct EntrySample {
    size: usize,
    heap: std::collections::BinaryHeap<(u64, Vec<u8>, Vec<u8>)>,
}

impl EntrySample {
    pub fn new(size: usize) -> Self {
        EntrySample {
            size,
            heap: Default::default(),
        }
    }

    pub fn offer(&mut self, key: &[u8], value: &[u8]) {
        if self.size == 0 {
            return;
        }
        let h = edge_contract::canonical::entry_hash(key, value);
        if self.heap.len() < self.size {
            self.heap.push((h, key.to_vec(), value.to_vec()));
        } else if self.heap.peek().is_some_and(|top| h < top.0) {
            self.heap.pop();
            self.heap.push((h, key.to_vec(), value.to_vec()));
        }
    }

    pub fn into_entries(self) -> Vec<crate::canonical::Entry> {
        let mut v: Vec<_> = self.heap.into_vec();
        v.sort();
        v.into_iter()
            .map(|(_, key, value)| crate::canonical::Entry { key, value })
            .collect()
    }
}

/// One gate's verdict, shown in the report like a guard: measured against its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    pub name: String,
    pub measured: f64,
    pub limit: f64,
    pub passed: bool,
    pub detail: String,
}

impl std::fmt::Display for GateOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (measured {}, limit {})",
            self.name,
            self.detail,
            round(self.measured),
            round(self.limit)
        )
    }
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Judges a new version against the serving one (none for a first publish: only the
/// absolute gates apply).
pub fn evaluate(
    new: &OutputProfile,
    serving: Option<&OutputProfile>,
    limits: &GateLimits,
    overrides: &GateOverrides,
) -> Vec<GateOutcome> {
    let mut out = vec![GateOutcome {
        name: "non_empty".into(),
        measured: new.keys as f64,
        limit: 1.0,
        passed: new.keys >= 1,
        detail: "keys in the new version (at least 1)".into(),
    }];
    let key_limit = overrides
        .max_key_change_pct
        .unwrap_or(limits.max_key_change_pct);
    let null_limit = overrides
        .max_null_increase_pts
        .unwrap_or(limits.max_null_increase_pts);
    if let Some(old) = serving.filter(|o| o.keys > 0) {
        let change = (new.keys as f64 - old.keys as f64).abs() * 100.0 / old.keys as f64;
        out.push(GateOutcome {
            name: "key_change".into(),
            measured: change,
            limit: key_limit,
            passed: change <= key_limit,
            detail: format!("% change of the key count: {} → {}", old.keys, new.keys),
        });
        for field in &new.fields {
            let (Some(before), Some(now)) = (old.null_pct(&field.name), new.null_pct(&field.name))
            else {
                continue;
            };
            let increase = now - before;
            out.push(GateOutcome {
                name: format!("null_increase:{}", field.name),
                measured: increase,
                limit: null_limit,
                passed: increase <= null_limit,
                detail: format!(
                    "points more null rows in `{}`: {:.2} % → {:.2} %",
                    field.name, before, now
                ),
            });
        }
    }
    for b in &overrides.bounds {
        let field = new.field(&b.field);
        if let Some(lo) = b.min {
            let measured = field.and_then(|f| f.min);
            out.push(GateOutcome {
                name: format!("min:{}", b.field),
                measured: measured.unwrap_or(lo),
                limit: lo,
                passed: measured.is_none_or(|m| m >= lo),
                detail: format!("smallest `{}` (at least {lo})", b.field),
            });
        }
        if let Some(hi) = b.max {
            let measured = field.and_then(|f| f.max);
            out.push(GateOutcome {
                name: format!("max:{}", b.field),
                measured: measured.unwrap_or(hi),
                limit: hi,
                passed: measured.is_none_or(|m| m <= hi),
                detail: format!("largest `{}` (at most {hi})", b.field),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field: name, nulls, and (min, max) when numeric.
    type Field<'a> = (&'a str, u64, Option<(f64, f64)>);

    fn profile(keys: u64, rows: u64, fields: &[Field]) -> OutputProfile {
        OutputProfile {
            keys,
            rows,
            fields: fields
                .iter()
                .map(|(name, nulls, range)| FieldProfile {
                    name: name.to_string(),
                    nulls: *nulls,
                    min: range.map(|r| r.0),
                    max: range.map(|r| r.1),
                    numeric: range.is_some(),
                })
                .collect(),
        }
    }

    fn failed(outcomes: &[GateOutcome]) -> Vec<&str> {
        outcomes
            .iter()
            .filter(|g| !g.passed)
            .map(|g| g.name.as_str())
            .collect()
    }

    #[test]
    fn a_first_publish_faces_only_the_absolute_gates() {
        let limits = GateLimits::default();
        let none = GateOverrides::default();
        let empty = profile(0, 0, &[("n", 0, None)]);
        assert_eq!(
            failed(&evaluate(&empty, None, &limits, &none)),
            ["non_empty"]
        );
        let some = profile(10, 10, &[("n", 0, None)]);
        let outcomes = evaluate(&some, None, &limits, &none);
        assert_eq!(outcomes.len(), 1);
        assert!(outcomes[0].passed);
    }

    #[test]
    fn key_count_and_null_rate_are_judged_against_the_serving_version() {
        let limits = GateLimits::default();
        let none = GateOverrides::default();
        let serving = profile(1000, 2000, &[("n", 100, Some((0.0, 9.0)))]);
        // 5 % of the usual keys: a 95 % drop.
        let thin = profile(50, 100, &[("n", 5, Some((0.0, 9.0)))]);
        let outcomes = evaluate(&thin, Some(&serving), &limits, &none);
        assert_eq!(failed(&outcomes), ["key_change"]);
        let g = outcomes.iter().find(|g| g.name == "key_change").unwrap();
        assert_eq!((g.measured, g.limit), (95.0, 50.0));
        assert!(g.to_string().contains("1000 → 50"), "{g}");

        // 5 % nulls before, 40 % now: +35 points.
        let nully = profile(1000, 2000, &[("n", 800, Some((0.0, 9.0)))]);
        assert_eq!(
            failed(&evaluate(&nully, Some(&serving), &limits, &none)),
            ["null_increase:n"]
        );
        // Looser per-API limits let both through.
        let loose = GateOverrides {
            max_key_change_pct: Some(100.0),
            max_null_increase_pts: Some(50.0),
            bounds: vec![],
        };
        assert!(failed(&evaluate(&thin, Some(&serving), &limits, &loose)).is_empty());
        assert!(failed(&evaluate(&nully, Some(&serving), &limits, &loose)).is_empty());
    }

    #[test]
    fn bounds_hold_every_value_of_a_numeric_field() {
        let limits = GateLimits::default();
        let bounds = GateOverrides {
            bounds: vec![Bound {
                field: "n".into(),
                min: Some(0.0),
                max: Some(100.0),
            }],
            ..Default::default()
        };
        let ok = profile(3, 3, &[("n", 0, Some((0.0, 100.0)))]);
        assert!(failed(&evaluate(&ok, None, &limits, &bounds)).is_empty());
        let negative = profile(3, 3, &[("n", 0, Some((-1.0, 5.0)))]);
        assert_eq!(
            failed(&evaluate(&negative, None, &limits, &bounds)),
            ["min:n"]
        );
        // All null: nothing out of bounds.
        let nulls = profile(3, 3, &[("n", 3, None)]);
        assert!(failed(&evaluate(&nulls, None, &limits, &bounds)).is_empty());
    }
}
