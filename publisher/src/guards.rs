//! Circuit breakers: measurements taken before any row is read (and during the in-memory run)
//! against configured limits. A trip is not an error; it is a routing decision, reported with
//! the number that caused it.

use serde::{Deserialize, Serialize};

use crate::catalog::{StorageFormat, TableMeta};
use crate::files::DataFile;
use crate::schema::estimated_width;
use crate::spec::ResolvedSpec;

/// Limits for the fast track. Defaults fit a 2-core, few-GiB machine; config and each API's
/// `[limits]` table may change them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardLimits {
    pub max_rows: u64,
    pub max_columns: u64,
    pub max_row_width_bytes: u64,
    pub max_files: u64,
    pub max_bytes: u64,
    pub max_partitions: u64,
    /// Size of the engine's memory pool; exceeding it during the run trips `memory_pool`.
    pub memory_pool_bytes: u64,
    pub max_output_keys: u64,
    pub max_output_bytes: u64,
}

impl Default for GuardLimits {
    fn default() -> Self {
        GuardLimits {
            max_rows: 50_000_000,
            max_columns: 500,
            max_row_width_bytes: 16 * 1024,
            max_files: 20_000,
            max_bytes: 8 << 30,
            max_partitions: 10_000,
            memory_pool_bytes: 2 << 30,
            max_output_keys: 20_000_000,
            max_output_bytes: 4 << 30,
        }
    }
}

/// Per-API overrides of [`GuardLimits`]; absent fields keep the configured value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_columns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_row_width_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_partitions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_pool_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_keys: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
}

impl LimitOverrides {
    pub fn is_empty(&self) -> bool {
        *self == LimitOverrides::default()
    }
}

impl GuardLimits {
    pub fn with_overrides(&self, o: &LimitOverrides) -> GuardLimits {
        GuardLimits {
            max_rows: o.max_rows.unwrap_or(self.max_rows),
            max_columns: o.max_columns.unwrap_or(self.max_columns),
            max_row_width_bytes: o.max_row_width_bytes.unwrap_or(self.max_row_width_bytes),
            max_files: o.max_files.unwrap_or(self.max_files),
            max_bytes: o.max_bytes.unwrap_or(self.max_bytes),
            max_partitions: o.max_partitions.unwrap_or(self.max_partitions),
            memory_pool_bytes: o.memory_pool_bytes.unwrap_or(self.memory_pool_bytes),
            max_output_keys: o.max_output_keys.unwrap_or(self.max_output_keys),
            max_output_bytes: o.max_output_bytes.unwrap_or(self.max_output_bytes),
        }
    }
}

/// One breaker's reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardOutcome {
    pub name: String,
    pub measured: u64,
    pub limit: u64,
    pub tripped: bool,
    /// What was measured, in words (`rows from parquet footers`, `format orc`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl GuardOutcome {
    pub fn new(name: &str, measured: u64, limit: u64, detail: impl Into<String>) -> Self {
        GuardOutcome { name: name.into(), measured, limit, tripped: measured > limit, detail: detail.into() }
    }
}

pub const MEMORY_POOL: &str = "memory_pool";
pub const OUTPUT_KEYS: &str = "output_keys";
pub const OUTPUT_BYTES: &str = "output_bytes";

/// Where the row count came from: catalog statistics when they cover the selected data, else
/// Parquet footers (cheap: a few KB per file). Never a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowSource {
    Statistics,
    ParquetFooters,
    Unknown,
}

/// What inspection found about the data a spec touches.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub files: Vec<DataFile>,
    pub partitions_total: usize,
    pub partitions_selected: usize,
    pub rows: u64,
    pub rows_source: RowSource,
}

impl Inspection {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Runs every pre-run breaker. The order is the order of the report.
pub fn evaluate(table: &TableMeta, spec: &ResolvedSpec, found: &Inspection, limits: &GuardLimits) -> Vec<GuardOutcome> {
    let format = match &table.format {
        StorageFormat::Parquet => GuardOutcome::new("format", 0, 0, "parquet"),
        other => GuardOutcome::new("format", 1, 0, format!("{} is not readable in memory", other.label())),
    };
    let rows_detail = match found.rows_source {
        RowSource::Statistics => "rows from catalog statistics",
        RowSource::ParquetFooters => "rows from parquet footers",
        RowSource::Unknown => "row count unknown",
    };
    let column_count = table.all_columns().count() as u64;
    let width: u64 = spec
        .columns
        .iter()
        .filter_map(|c| table.column(c))
        .filter_map(|c| c.data_type.as_ref())
        .map(estimated_width)
        .sum();
    let mut outcomes = vec![
        format,
        GuardOutcome::new("row_count", found.rows, limits.max_rows, rows_detail),
        GuardOutcome::new("column_count", column_count, limits.max_columns, "columns in the table"),
        GuardOutcome::new("row_width", width, limits.max_row_width_bytes, format!("estimated bytes per row over {} used columns", spec.columns.len())),
        GuardOutcome::new("file_count", found.files.len() as u64, limits.max_files, "data files to read"),
        GuardOutcome::new("total_bytes", found.bytes(), limits.max_bytes, "bytes of data files to read"),
        GuardOutcome::new(
            "partition_count",
            found.partitions_selected as u64,
            limits.max_partitions,
            format!("{} of {} partitions selected", found.partitions_selected, found.partitions_total),
        ),
    ];
    if found.rows_source == RowSource::Unknown {
        // Unknown size is not small: only the fallback can take it safely.
        let rows = &mut outcomes[1];
        rows.tripped = true;
        rows.measured = u64::MAX;
    }
    outcomes
}

/// The breakers that can only be read while the engine runs, with nothing measured yet.
pub fn runtime_guards(limits: &GuardLimits) -> Vec<GuardOutcome> {
    vec![
        GuardOutcome::new(MEMORY_POOL, 0, limits.memory_pool_bytes, "peak bytes reserved in the engine's pool"),
        GuardOutcome::new(OUTPUT_KEYS, 0, limits.max_output_keys, "keys produced"),
        GuardOutcome::new(OUTPUT_BYTES, 0, limits.max_output_bytes, "bytes of encoded values"),
    ]
}
