//! The API spec: what an analyst defines on the dashboard or in a TOML/JSON file, and its
//! validation against a table's schema into a [`ResolvedSpec`] that engines execute.
//!
//! Validation reports every problem at once, each with the field it concerns, so a form can show
//! them next to their inputs. Identifiers that pass are plain `[A-Za-z_][A-Za-z0-9_]*` names and
//! literals are typed values: no engine ever sees SQL text built from user strings.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use arrow::datatypes::DataType;
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::catalog::TableMeta;
use crate::error::{Error, Result};
use crate::guards::LimitOverrides;
use crate::quality::{Canary, GateOverrides};
use crate::refresh::Refresh;
use crate::schema::{TableName, is_identifier, is_scalar_type, normalize_arrow};
pub use edge_contract::canonical::parse_decimal;
pub use edge_contract::is_api_name;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// The API's name, as it appears in URLs: `[A-Za-z0-9_-]`, 1 to 64 characters.
    pub name: String,
    /// `db.table`.
    pub table: String,
    /// Key columns; none means one global entry.
    #[serde(default)]
    pub key: Vec<String>,
    pub values: Vec<ValueSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<OrderBy>,
    /// Rows per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default)]
    pub shape: Shape,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter: Vec<Filter>,
    /// Protected APIs answer only requests that carry one of the API's tokens.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// Per-API overrides of the configured guard limits.
    #[serde(default, skip_serializing_if = "LimitOverrides::is_empty")]
    pub limits: LimitOverrides,
    /// Read only the newest N partitions, ordered by the first partition key's values (the
    /// last `dt`, or the last N): resolved at plan time into a filter the plan shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_partitions: Option<u32>,
    /// When the API publishes itself, and how old its data may grow.
    #[serde(default, skip_serializing_if = "Refresh::is_empty")]
    pub refresh: Refresh,
    /// Quality gates against the serving version, beyond the server's defaults.
    #[serde(default, skip_serializing_if = "GateOverrides::is_empty")]
    pub gates: GateOverrides,
    /// Commit to one edge first and probe it before every edge switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
}

/// A value field: a plain column, or an aggregate over a column with an output name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agg: Option<AggFn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFn {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    CountDistinct,
}

impl AggFn {
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::Sum => "sum",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::Avg => "avg",
            AggFn::CountDistinct => "count_distinct",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderBy {
    /// An output field's name.
    pub field: String,
    #[serde(default)]
    pub dir: Direction,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// One object per key.
    Object,
    /// An array of objects per key.
    #[default]
    List,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub column: String,
    pub op: FilterOp,
    /// A literal (an array for `in`; absent for `is_null` / `not_null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterOp {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    NotEq,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    LtEq,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    GtEq,
    #[serde(rename = "in")]
    In,
    #[serde(rename = "is_null")]
    IsNull,
    #[serde(rename = "not_null")]
    NotNull,
}

impl ApiSpec {
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::SpecSyntax(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::SpecSyntax(e.to_string()))
    }

    /// Reads a `.toml` or `.json` spec file.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading spec {}", path.display()), e))?;
        let parsed = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Self::from_json(&text),
            _ => Self::from_toml(&text),
        };
        parsed.map_err(|e| Error::SpecSyntax(format!("{}: {e}", path.display())))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a spec always serializes to TOML")
    }

    pub fn table_name(&self) -> Result<TableName> {
        self.table.parse()
    }

    fn is_aggregating(&self) -> bool {
        !self.group_by.is_empty() || self.values.iter().any(|v| v.agg.is_some())
    }
}

/// One validation problem, tied to the field it concerns (`values[2].column`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecProblem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A spec checked against its table: every name resolved, every type known.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedSpec {
    pub spec: ApiSpec,
    pub table: TableName,
    pub keys: Vec<Field>,
    /// Output fields in spec order.
    pub outputs: Vec<OutputField>,
    /// Grouping columns (keys first, then `group_by`) when the spec aggregates.
    pub grouping: Option<Vec<String>>,
    /// Row order within a key: the spec's `order_by`, then every other output field ascending.
    /// Nulls always sort last.
    pub order: Vec<SortField>,
    pub filters: Vec<ResolvedFilter>,
    /// Every table column the spec reads, for projection.
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    pub name: String,
    #[serde(serialize_with = "serialize_type")]
    pub data_type: DataType,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputField {
    pub name: String,
    pub source: Source,
    #[serde(serialize_with = "serialize_type")]
    pub data_type: DataType,
}

fn serialize_type<S: serde::Serializer>(
    t: &DataType,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::schema::arrow_to_hive(t))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Column(String),
    Aggregate { func: AggFn, column: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SortField {
    /// Index into [`ResolvedSpec::outputs`].
    pub output: usize,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedFilter {
    pub column: String,
    pub op: FilterOp,
    /// One literal, several for `in`, none for the null tests.
    pub literals: Vec<Literal>,
    pub is_partition_key: bool,
}

/// A typed literal, converted to the filtered column's type during validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Decimal {
        unscaled: i128,
        precision: u8,
        scale: i8,
    },
    /// Days since the epoch.
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
}

impl ResolvedSpec {
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    pub fn shape(&self) -> Shape {
        self.spec.shape
    }
    pub fn limit(&self) -> Option<u64> {
        self.spec.limit
    }

    /// Whether a partition with these values (in partition-key order) can hold matching rows.
    /// Only filters on partition keys decide; partition values are compared as the strings they
    /// are in paths, or as numbers when the literal is a number.
    pub fn keeps_partition(&self, table: &TableMeta, values: &[String]) -> bool {
        self.filters.iter().filter(|f| f.is_partition_key).all(|f| {
            let Some(i) = table.partition_keys.iter().position(|k| k.name == f.column) else {
                return true;
            };
            let Some(value) = values.get(i) else {
                return true;
            };
            partition_value_matches(value, f)
        })
    }
}

/// Hive writes a null partition value as this placeholder.
pub const HIVE_NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

fn partition_value_matches(value: &str, filter: &ResolvedFilter) -> bool {
    use std::cmp::Ordering;
    let is_null = value == HIVE_NULL_PARTITION;
    let cmp = |lit: &Literal| -> Option<Ordering> {
        match lit {
            Literal::Str(s) => Some(value.cmp(s.as_str())),
            Literal::Int(i) => value.parse::<i64>().ok().map(|v| v.cmp(i)),
            Literal::Date(d) => NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .map(|v| days_since_epoch(v).cmp(d)),
            // Anything else: keep the partition and let the engine filter rows.
            _ => None,
        }
    };
    match filter.op {
        FilterOp::IsNull => is_null,
        FilterOp::NotNull => !is_null,
        _ if is_null => false,
        FilterOp::In => filter
            .literals
            .iter()
            .any(|l| cmp(l).is_none_or(|o| o.is_eq())),
        op => {
            let Some(o) = filter.literals.first().and_then(cmp) else {
                return true;
            };
            match op {
                FilterOp::Eq => o.is_eq(),
                FilterOp::NotEq => o.is_ne(),
                FilterOp::Lt => o.is_lt(),
                FilterOp::LtEq => o.is_le(),
                FilterOp::Gt => o.is_gt(),
                FilterOp::GtEq => o.is_ge(),
                _ => true,
            }
        }
    }
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

/// The type an aggregate produces; both engines cast their results to it, so that the canonical
/// encoding never depends on an engine's own type rules. `Err` says why the input type is wrong.
pub fn aggregate_type(
    func: AggFn,
    input: Option<&DataType>,
) -> std::result::Result<DataType, String> {
    use DataType::*;
    let Some(t) = input else {
        return match func {
            AggFn::Count => Ok(Int64),
            _ => Err(format!("{} needs a column", func.name())),
        };
    };
    let numeric = t.is_integer() || t.is_floating() || matches!(t, Decimal128(..));
    match func {
        AggFn::Count | AggFn::CountDistinct => Ok(Int64),
        AggFn::Sum | AggFn::Avg if !numeric => Err(format!(
            "{} needs a numeric column, not {}",
            func.name(),
            crate::schema::arrow_to_hive(t)
        )),
        AggFn::Sum => Ok(match t {
            Decimal128(p, s) => Decimal128((*p + 10).min(38), *s),
            t if t.is_floating() => Float64,
            _ => Int64,
        }),
        AggFn::Avg => Ok(match t {
            Decimal128(p, s) => Decimal128((*p + 4).min(38), (*s + 4).min(38)),
            _ => Float64,
        }),
        AggFn::Min | AggFn::Max if matches!(t, Boolean) => Err(format!(
            "{} is not defined for boolean columns",
            func.name()
        )),
        AggFn::Min | AggFn::Max => Ok(normalize_arrow(t)),
    }
}

/// Checks a spec against its table and resolves it; every problem is reported at once.
pub fn validate(spec: &ApiSpec, table: &TableMeta) -> Result<ResolvedSpec> {
    let mut v = Validator {
        table,
        problems: Vec::new(),
    };
    let resolved = v.resolve(spec);
    if v.problems.is_empty() {
        Ok(resolved)
    } else {
        Err(Error::SpecInvalid {
            api: spec.name.clone(),
            problems: v.problems,
        })
    }
}

/// Checks what can be checked without a table (names, shape rules); used by forms before a
/// table is chosen and by property tests.
pub fn check_syntax(spec: &ApiSpec) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    if !is_api_name(&spec.name) {
        problems.push(SpecProblem {
            field: "name".into(),
            message: format!(
                "{:?} must be 1 to 64 characters of A-Z a-z 0-9 _ -",
                spec.name
            ),
        });
    }
    if let Err(e) = spec.table_name() {
        problems.push(SpecProblem {
            field: "table".into(),
            message: e.to_string(),
        });
    }
    if spec.latest_partitions == Some(0) {
        problems.push(SpecProblem {
            field: "latest_partitions".into(),
            message: "must be at least 1 (leave it out to read every partition)".into(),
        });
    }
    problems.extend(spec.refresh.check());
    if let Some(c) = &spec.canary {
        problems.extend(c.check());
    }
    problems
}

/// The spec with its `latest_partitions` made concrete for `table`: a filter `first key in
/// (newest values)` over the partitions its other filters keep, and those values (newest
/// first). Values order as numbers when they all are, else as strings (ISO dates sort right);
/// Hive's null partition never counts. Unchanged, with no values, when the spec reads all.
pub fn with_latest_partitions(
    spec: &ApiSpec,
    table: &TableMeta,
    resolved: &ResolvedSpec,
) -> Result<(ApiSpec, Vec<String>)> {
    let Some(n) = spec.latest_partitions else {
        return Ok((spec.clone(), Vec::new()));
    };
    let invalid = |message: String| Error::SpecInvalid {
        api: spec.name.clone(),
        problems: vec![SpecProblem {
            field: "latest_partitions".into(),
            message,
        }],
    };
    let Some(first) = table.partition_keys.first() else {
        return Err(invalid(format!("{} is not partitioned", table.name)));
    };
    let mut values: Vec<&str> = table
        .partitions
        .iter()
        .filter(|p| resolved.keeps_partition(table, &p.values))
        .filter_map(|p| p.values.first().map(String::as_str))
        .filter(|v| *v != HIVE_NULL_PARTITION)
        .collect();
    if values.iter().all(|v| v.parse::<f64>().is_ok()) {
        values.sort_by(|a, b| a.parse::<f64>().unwrap().total_cmp(&b.parse().unwrap()));
    } else {
        values.sort_unstable();
    }
    values.dedup();
    let newest: Vec<String> = values
        .iter()
        .rev()
        .take(n as usize)
        .map(|v| v.to_string())
        .collect();
    if newest.is_empty() {
        return Err(invalid(format!(
            "{} has no partition to read (of {} listed, none passes the filters)",
            table.name,
            table.partitions.len()
        )));
    }
    let mut concrete = spec.clone();
    concrete.filter.push(Filter {
        column: first.name.clone(),
        op: FilterOp::In,
        value: Some(serde_json::Value::from(newest.clone())),
    });
    Ok((concrete, newest))
}

struct Validator<'a> {
    table: &'a TableMeta,
    problems: Vec<SpecProblem>,
}

impl Validator<'_> {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(SpecProblem {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Resolves a column name to its scalar type, reporting unknown, unreadable and nested columns.
    fn scalar_column(&mut self, field: &str, name: &str) -> Option<DataType> {
        let Some(col) = self.table.column(name) else {
            self.problem(
                field,
                format!("unknown column `{name}` in {}", self.table.name),
            );
            return None;
        };
        match &col.data_type {
            Some(t) if is_scalar_type(t) => Some(normalize_arrow(t)),
            Some(_) => {
                self.problem(
                    field,
                    format!(
                        "column `{name}` has nested type {} which cannot be served",
                        col.hive_type
                    ),
                );
                None
            }
            None => {
                self.problem(
                    field,
                    format!("column `{name}` has unsupported type {}", col.hive_type),
                );
                None
            }
        }
    }

    /// Checks the whole spec against the table, collecting every problem rather than stopping
    /// at the first, so the dashboard can mark each field at once.
    fn resolve(&mut self, spec: &ApiSpec) -> ResolvedSpec {
        self.problems.extend(check_syntax(spec));
        let table = self.resolve_table(spec);
        let keys = self.resolve_keys(spec);
        let group_by = self.resolve_group_by(spec);
        let outputs = self.resolve_outputs(spec);
        let order = self.resolve_order(spec, &outputs);
        self.check_limit_and_shape(spec);
        let filters = self.resolve_filters(spec);
        self.problems.extend(spec.gates.check(&outputs));
        if spec.latest_partitions.is_some() && self.table.partition_keys.is_empty() {
            self.problem(
                "latest_partitions",
                format!("{} is not partitioned", self.table.name),
            );
        }
        let columns = columns_read(&keys, &group_by, &outputs, &filters);
        let grouping = spec.is_aggregating().then(|| {
            let mut g: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
            for c in &group_by {
                if !g.contains(c) {
                    g.push(c.clone());
                }
            }
            g
        });
        ResolvedSpec {
            spec: spec.clone(),
            table,
            keys,
            outputs,
            grouping,
            order,
            filters,
            columns,
        }
    }

    fn resolve_table(&mut self, spec: &ApiSpec) -> TableName {
        let table = spec
            .table_name()
            .unwrap_or_else(|_| self.table.name.clone());
        if table != self.table.name {
            self.problem(
                "table",
                format!(
                    "spec names {table} but the catalog described {}",
                    self.table.name
                ),
            );
        }

        table
    }

    fn resolve_keys(&mut self, spec: &ApiSpec) -> Vec<Field> {
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        for (i, name) in spec.key.iter().enumerate() {
            let field = format!("key[{i}]");
            if !seen.insert(name.to_ascii_lowercase()) {
                self.problem(&field, format!("key column `{name}` is listed twice"));
            }
            if let Some(t) = self.scalar_column(&field, name) {
                keys.push(Field {
                    name: name.to_ascii_lowercase(),
                    data_type: t,
                });
            }
        }

        keys
    }

    fn resolve_group_by(&mut self, spec: &ApiSpec) -> Vec<String> {
        let mut group_by = Vec::new();
        for (i, name) in spec.group_by.iter().enumerate() {
            if self
                .scalar_column(&format!("group_by[{i}]"), name)
                .is_some()
            {
                group_by.push(name.to_ascii_lowercase());
            }
        }
        group_by
    }

    fn resolve_outputs(&mut self, spec: &ApiSpec) -> Vec<OutputField> {
        if spec.values.is_empty() {
            self.problem("values", "at least one value is needed");
        }
        let mut outputs = Vec::new();
        let mut output_names = HashSet::new();
        for (i, value) in spec.values.iter().enumerate() {
            outputs.extend(self.resolve_output(spec, i, value, &mut output_names));
        }
        outputs
    }

    /// One value: its output name, and where it comes from (a column or an aggregate).
    fn resolve_output(
        &mut self,
        spec: &ApiSpec,
        i: usize,
        value: &ValueSpec,
        output_names: &mut HashSet<String>,
    ) -> Option<OutputField> {
        let aggregating = spec.is_aggregating();
        let grouped = |name: &str| {
            spec.key
                .iter()
                .chain(spec.group_by.iter())
                .any(|g| g.eq_ignore_ascii_case(name))
        };
        let field = format!("values[{i}]");
        let name = match (&value.alias, value.agg, &value.column) {
            (Some(alias), _, _) => alias.clone(),
            (None, None, Some(column)) => column.to_ascii_lowercase(),
            (None, Some(func), _) => {
                self.problem(
                    format!("{field}.as"),
                    format!("the {} aggregate needs an output name (`as`)", func.name()),
                );
                return None;
            }
            (None, None, None) => {
                self.problem(&field, "a value needs a `column`, or an `agg` with `as`");
                return None;
            }
        };
        if !is_identifier(&name) {
            self.problem(
                format!("{field}.as"),
                format!(
                    "output name {name:?} must be a letter or _ followed by letters, digits or _"
                ),
            );
        } else if !output_names.insert(name.clone()) {
            self.problem(
                format!("{field}.as"),
                format!("output name `{name}` is used twice"),
            );
        }
        let column_type = match &value.column {
            Some(c) => self.scalar_column(&format!("{field}.column"), c),
            None => None,
        };
        let resolved = match value.agg {
            None => {
                let Some(column) = &value.column else {
                    return None;
                };
                if aggregating && !grouped(column) {
                    self.problem(
                        format!("{field}.column"),
                        format!("value column `{column}` is neither grouped (key or group_by) nor aggregated"),
                    );
                }
                column_type.map(|t| (Source::Column(column.to_ascii_lowercase()), t))
            }
            Some(func) => {
                if value.column.is_some() && column_type.is_none() {
                    return None; // already reported
                }
                match aggregate_type(func, column_type.as_ref()) {
                    Ok(t) => Some((
                        Source::Aggregate {
                            func,
                            column: value.column.as_ref().map(|c| c.to_ascii_lowercase()),
                        },
                        t,
                    )),
                    Err(message) => {
                        let column = value.column.as_deref().unwrap_or("");
                        self.problem(
                            format!("{field}.agg"),
                            format!("{message} (column `{column}`)"),
                        );
                        None
                    }
                }
            }
        };
        resolved.map(|(source, data_type)| OutputField {
            name,
            source,
            data_type,
        })
    }

    /// The order within a key: the spec's fields, then (for determinism) the remaining output
    /// fields in spec order, ascending, as tie-breakers.
    fn resolve_order(&mut self, spec: &ApiSpec, outputs: &[OutputField]) -> Vec<SortField> {
        let mut order = Vec::new();
        for (i, o) in spec.order_by.iter().enumerate() {
            match outputs
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(&o.field))
            {
                Some(p) if order.iter().any(|s: &SortField| s.output == p) => {
                    self.problem(
                        format!("order_by[{i}].field"),
                        format!("`{}` is ordered by twice", o.field),
                    );
                }
                Some(p) => order.push(SortField {
                    output: p,
                    descending: o.dir == Direction::Desc,
                }),
                None => self.problem(
                    format!("order_by[{i}].field"),
                    format!(
                        "`{}` is not an output field (order by one of: {})",
                        o.field,
                        outputs
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        for p in 0..outputs.len() {
            if !order.iter().any(|s| s.output == p) {
                order.push(SortField {
                    output: p,
                    descending: false,
                });
            }
        }

        order
    }

    fn check_limit_and_shape(&mut self, spec: &ApiSpec) {
        let aggregating = spec.is_aggregating();
        match spec.limit {
            Some(0) => self.problem("limit", "limit must be at least 1"),
            Some(n) if n > 1_000_000 => self.problem(
                "limit",
                format!("limit {n} is above the maximum of 1000000 rows per key"),
            ),
            _ => {}
        }
        if spec.shape == Shape::Object {
            let one_row_per_key = spec.limit == Some(1)
                || (aggregating
                    && spec
                        .group_by
                        .iter()
                        .all(|g| spec.key.iter().any(|k| k.eq_ignore_ascii_case(g))));
            if !one_row_per_key {
                self.problem(
                    "shape",
                    "shape = object but the spec can yield several rows per key: aggregate grouped by the key only, set limit = 1, or use shape = list",
                );
            }
        }
    }

    fn resolve_filters(&mut self, spec: &ApiSpec) -> Vec<ResolvedFilter> {
        let mut filters = Vec::new();
        for (i, f) in spec.filter.iter().enumerate() {
            let field = format!("filter[{i}]");
            let Some(t) = self.scalar_column(&format!("{field}.column"), &f.column) else {
                continue;
            };
            let literals = match (f.op, &f.value) {
                (FilterOp::IsNull | FilterOp::NotNull, None) => Ok(vec![]),
                (FilterOp::IsNull | FilterOp::NotNull, Some(_)) => {
                    Err("takes no value".to_string())
                }
                (FilterOp::In, Some(serde_json::Value::Array(items)))
                    if !items.is_empty() && items.len() <= 1000 =>
                {
                    items.iter().map(|v| literal(v, &t)).collect()
                }
                (FilterOp::In, _) => Err("`in` needs an array of 1 to 1000 values".to_string()),
                (_, Some(v)) => literal(v, &t).map(|l| vec![l]),
                (_, None) => Err("needs a value".to_string()),
            };
            match literals {
                Ok(literals) => filters.push(ResolvedFilter {
                    column: f.column.to_ascii_lowercase(),
                    op: f.op,
                    literals,
                    is_partition_key: self.table.is_partition_key(&f.column),
                }),
                Err(message) => self.problem(
                    format!("{field}.value"),
                    format!("column `{}`: {message}", f.column),
                ),
            }
        }

        filters
    }
}

/// Every column the engine must read, each once, in first-use order.
fn columns_read(
    keys: &[Field],
    group_by: &[String],
    outputs: &[OutputField],
    filters: &[ResolvedFilter],
) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    let mut use_column = |c: &str| {
        let c = c.to_ascii_lowercase();
        if !columns.contains(&c) {
            columns.push(c);
        }
    };
    keys.iter().for_each(|k| use_column(&k.name));
    group_by.iter().for_each(|g| use_column(g));
    for o in outputs {
        match &o.source {
            Source::Column(c)
            | Source::Aggregate {
                column: Some(c), ..
            } => use_column(c),
            Source::Aggregate { column: None, .. } => {}
        }
    }
    filters.iter().for_each(|f| use_column(&f.column));

    columns
}

/// Converts a JSON/TOML literal to the column's type; strings are never reinterpreted as code.
fn literal(value: &serde_json::Value, t: &DataType) -> std::result::Result<Literal, String> {
    use serde_json::Value as J;
    let expected = crate::schema::arrow_to_hive(t);
    let wrong = || format!("{value} is not a {expected} literal");
    match t {
        DataType::Boolean => value.as_bool().map(Literal::Bool).ok_or_else(wrong),
        t if t.is_integer() => match value {
            J::Number(n) => n.as_i64().map(Literal::Int).ok_or_else(wrong),
            J::String(s) => s.trim().parse().map(Literal::Int).map_err(|_| wrong()),
            _ => Err(wrong()),
        },
        t if t.is_floating() => match value {
            J::Number(n) => n.as_f64().map(Literal::Float).ok_or_else(wrong),
            J::String(s) => s.trim().parse().map(Literal::Float).map_err(|_| wrong()),
            _ => Err(wrong()),
        },
        DataType::Decimal128(p, s) => {
            let text = match value {
                J::Number(n) => n.to_string(),
                J::String(s) => s.trim().to_string(),
                _ => return Err(wrong()),
            };
            parse_decimal(&text, *p, *s).map(|unscaled| Literal::Decimal {
                unscaled,
                precision: *p,
                scale: *s,
            })
        }
        DataType::Utf8 => value
            .as_str()
            .map(|s| Literal::Str(s.to_string()))
            .ok_or_else(wrong),
        DataType::Date32 => value
            .as_str()
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map(|d| Literal::Date(days_since_epoch(d)))
            .ok_or_else(|| format!("{value} is not a date (YYYY-MM-DD)")),
        DataType::Timestamp(_, _) => value
            .as_str()
            .and_then(parse_timestamp_micros)
            .map(Literal::Timestamp)
            .ok_or_else(|| {
                format!("{value} is not a timestamp (RFC 3339, or YYYY-MM-DD HH:MM:SS in UTC)")
            }),
        _ => Err(format!("filters on {expected} columns are not supported")),
    }
}

fn parse_timestamp_micros(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .map(|t| t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests;
