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
    /// One key's encoded entry (key and value); checked while the value grows, so a key-less
    /// list over a big table trips here instead of being buffered whole.
    pub max_entry_bytes: u64,
}

impl Default for GuardLimits {
    fn default() -> Self {
        GuardLimits {
            max_rows: 50_000_000,
            max_columns: 500,
            max_row_width_bytes: 16 * 1024,
            // Within the bytes limit, thousands of files means small files: each costs a footer
            // read and an open, and Spark compacts them better than the in-memory engine reads them.
            max_files: 5_000,
            max_bytes: 8 << 30,
            max_partitions: 10_000,
            memory_pool_bytes: 2 << 30,
            max_output_keys: 20_000_000,
            max_output_bytes: 4 << 30,
            max_entry_bytes: 16 << 20,
        }
    }
}

/// The limits' names, in the order `named` lists them: the keys of `[guards]` and of a
/// spec's `[limits]`.
const LIMIT_NAMES: [&str; 10] = [
    "max_rows",
    "max_columns",
    "max_row_width_bytes",
    "max_files",
    "max_bytes",
    "max_partitions",
    "memory_pool_bytes",
    "max_output_keys",
    "max_output_bytes",
    "max_entry_bytes",
];

fn with_names<T: Copy>(values: [T; 10]) -> [(&'static str, T); 10] {
    std::array::from_fn(|i| (LIMIT_NAMES[i], values[i]))
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_entry_bytes: Option<u64>,
}

impl LimitOverrides {
    pub fn is_empty(&self) -> bool {
        *self == LimitOverrides::default()
    }

    /// Each override with its limit's name, in the order of [`GuardLimits::named`].
    pub fn named(&self) -> [(&'static str, Option<u64>); 10] {
        with_names([
            self.max_rows,
            self.max_columns,
            self.max_row_width_bytes,
            self.max_files,
            self.max_bytes,
            self.max_partitions,
            self.memory_pool_bytes,
            self.max_output_keys,
            self.max_output_bytes,
            self.max_entry_bytes,
        ])
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
            max_entry_bytes: o.max_entry_bytes.unwrap_or(self.max_entry_bytes),
        }
    }

    /// Each limit with its name (the spec's `limits` key and the config key).
    pub fn named(&self) -> [(&'static str, u64); 10] {
        with_names([
            self.max_rows,
            self.max_columns,
            self.max_row_width_bytes,
            self.max_files,
            self.max_bytes,
            self.max_partitions,
            self.memory_pool_bytes,
            self.max_output_keys,
            self.max_output_bytes,
            self.max_entry_bytes,
        ])
    }
}

/// The most a spec's `limits` may ask for, per limit: set by the administrator for a server
/// that many analysts share (`[dashboard.ceilings]`), so that no spec can, say, give the
/// in-memory engine more memory than the machine has. An administrator may grant one API
/// more ([`Ceilings::with_grants`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ceilings(pub GuardLimits);

impl Default for Ceilings {
    /// Four times the default limits, except the memory pool (twice: it is real memory of the
    /// server process) and the entry size (64 MiB: an entry is one Redis value and one answer).
    fn default() -> Self {
        let d = GuardLimits::default();
        Ceilings(GuardLimits {
            max_rows: d.max_rows * 4,
            max_columns: d.max_columns * 4,
            max_row_width_bytes: d.max_row_width_bytes * 4,
            max_files: d.max_files * 4,
            max_bytes: d.max_bytes * 4,
            max_partitions: d.max_partitions * 4,
            memory_pool_bytes: d.memory_pool_bytes * 2,
            max_output_keys: d.max_output_keys * 4,
            max_output_bytes: d.max_output_bytes * 4,
            max_entry_bytes: 64 << 20,
        })
    }
}

impl Ceilings {
    /// These ceilings with an API's grants in place of the server-wide ones.
    pub fn with_grants(&self, grants: &LimitOverrides) -> Ceilings {
        Ceilings(self.0.with_overrides(grants))
    }

    /// A problem for every limit the spec asks above its ceiling, naming both.
    pub fn check(&self, asked: &LimitOverrides) -> Vec<crate::spec::SpecProblem> {
        asked
            .named()
            .into_iter()
            .zip(self.0.named())
            .filter_map(|((name, asked), (_, ceiling))| {
                let asked = asked.filter(|a| *a > ceiling)?;
                Some(crate::spec::SpecProblem {
                    field: format!("limits.{name}"),
                    message: format!(
                        "{asked} is over the ceiling of {ceiling} for {name}; an administrator \
                         may grant this API more"
                    ),
                })
            })
            .collect()
    }
}

/// One breaker's reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardOutcome {
    pub name: String,
    pub measured: u64,
    pub limit: u64,
    pub tripped: bool,
    /// What was measured, in words (`rows from file footers`, `format orc`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl GuardOutcome {
    pub fn new(name: &str, measured: u64, limit: u64, detail: impl Into<String>) -> Self {
        GuardOutcome {
            name: name.into(),
            measured,
            limit,
            tripped: measured > limit,
            detail: detail.into(),
        }
    }
}

pub const MEMORY_POOL: &str = "memory_pool";
pub const OUTPUT_KEYS: &str = "output_keys";
pub const OUTPUT_BYTES: &str = "output_bytes";
pub const ENTRY_BYTES: &str = "entry_bytes";

/// Where the row count came from: catalog statistics when they cover the selected data, else
/// the files' footers, Parquet or ORC (cheap: a few KB per file). Never a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowSource {
    Statistics,
    Footers,
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
pub fn evaluate(
    table: &TableMeta,
    spec: &ResolvedSpec,
    found: &Inspection,
    limits: &GuardLimits,
) -> Vec<GuardOutcome> {
    let format = match &table.format {
        StorageFormat::Parquet | StorageFormat::Orc => {
            GuardOutcome::new("format", 0, 0, table.format.label())
        }
        other => GuardOutcome::new(
            "format",
            1,
            0,
            format!("{} is not readable in memory", other.label()),
        ),
    };
    let rows_detail = match found.rows_source {
        RowSource::Statistics => "rows from catalog statistics",
        RowSource::Footers => "rows from file footers",
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
        GuardOutcome::new(
            "column_count",
            column_count,
            limits.max_columns,
            "columns in the table",
        ),
        GuardOutcome::new(
            "row_width",
            width,
            limits.max_row_width_bytes,
            format!(
                "estimated bytes per row over {} used columns",
                spec.columns.len()
            ),
        ),
        GuardOutcome::new(
            "file_count",
            found.files.len() as u64,
            limits.max_files,
            "data files to read",
        ),
        GuardOutcome::new(
            "total_bytes",
            found.bytes(),
            limits.max_bytes,
            "bytes of data files to read",
        ),
        GuardOutcome::new(
            "partition_count",
            found.partitions_selected as u64,
            limits.max_partitions,
            format!(
                "{} of {} partitions selected",
                found.partitions_selected, found.partitions_total
            ),
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

/// What a run has measured so far against the breakers that can only be read while it runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunMeasures {
    pub peak_memory: u64,
    pub keys: u64,
    pub bytes: u64,
    pub largest_entry: u64,
}

/// The breakers that can only be read while the engine runs, at what `measured` says (all zero
/// before the run).
pub fn runtime_guards(limits: &GuardLimits, measured: RunMeasures) -> Vec<GuardOutcome> {
    vec![
        GuardOutcome::new(
            MEMORY_POOL,
            measured.peak_memory,
            limits.memory_pool_bytes,
            "peak bytes reserved in the engine's pool",
        ),
        GuardOutcome::new(
            OUTPUT_KEYS,
            measured.keys,
            limits.max_output_keys,
            "keys produced",
        ),
        GuardOutcome::new(
            OUTPUT_BYTES,
            measured.bytes,
            limits.max_output_bytes,
            "bytes of encoded values",
        ),
        GuardOutcome::new(
            ENTRY_BYTES,
            measured.largest_entry,
            limits.max_entry_bytes,
            "bytes of the largest key's entry",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Partition, TableStats};
    use crate::schema::Column;
    use crate::spec::{ApiSpec, validate};

    fn table(format: StorageFormat) -> TableMeta {
        TableMeta {
            name: "social.referrals".parse().unwrap(),
            location: "file:///w".into(),
            format,
            columns: vec![
                Column::from_hive("product_id", "bigint"),
                Column::from_hive("network", "string"),
            ],
            partition_keys: vec![Column::from_hive("dt", "string")],
            partitions: (1..=3)
                .map(|d| Partition {
                    values: vec![format!("2026-11-0{d}")],
                    location: format!("file:///w/dt=2026-11-0{d}"),
                    num_rows: None,
                })
                .collect(),
            stats: TableStats::default(),
            parameters: Default::default(),
        }
    }

    fn inspection(rows: u64, files: u64, bytes_each: u64) -> Inspection {
        Inspection {
            files: (0..files)
                .map(|i| DataFile {
                    url: format!("file:///w/{i}"),
                    size: bytes_each,
                    partition_values: vec![],
                    modified_ms: None,
                })
                .collect(),
            partitions_total: 3,
            partitions_selected: 2,
            rows,
            rows_source: RowSource::Footers,
        }
    }

    fn spec(t: &TableMeta) -> ResolvedSpec {
        let s = ApiSpec::from_toml("name = \"a\"\ntable = \"social.referrals\"\nkey = [\"network\"]\n[[values]]\ncolumn = \"product_id\"\n").unwrap();
        validate(&s, t).unwrap()
    }

    fn by_name<'a>(g: &'a [GuardOutcome], name: &str) -> &'a GuardOutcome {
        g.iter().find(|g| g.name == name).unwrap()
    }

    #[test]
    fn every_guard_trips_only_above_its_limit() {
        let t = table(StorageFormat::Parquet);
        let s = spec(&t);
        let limits = GuardLimits {
            max_rows: 100,
            max_columns: 3,
            max_row_width_bytes: 40,
            max_files: 10,
            max_bytes: 1000,
            max_partitions: 2,
            ..GuardLimits::default()
        };
        // At the limits: nothing trips.
        let at = evaluate(&t, &s, &inspection(100, 10, 100), &limits);
        assert!(at.iter().all(|g| !g.tripped), "{at:?}");
        assert_eq!(by_name(&at, "row_width").measured, 8 + 32);
        assert_eq!(by_name(&at, "column_count").measured, 3);

        // One above each: each trips, by name, with its measurement.
        let over = evaluate(&t, &s, &inspection(101, 11, 100), &limits);
        for name in ["row_count", "file_count", "total_bytes"] {
            assert!(by_name(&over, name).tripped, "{name}");
        }
        let tight = GuardLimits {
            max_columns: 2,
            max_row_width_bytes: 39,
            max_partitions: 1,
            ..limits.clone()
        };
        let g = evaluate(&t, &s, &inspection(1, 1, 1), &tight);
        for name in ["column_count", "row_width", "partition_count"] {
            assert!(by_name(&g, name).tripped, "{name}");
        }
        assert_eq!(
            by_name(&g, "partition_count").detail,
            "2 of 3 partitions selected"
        );
    }

    #[test]
    fn non_parquet_and_unknown_sizes_trip() {
        let t = table(StorageFormat::from_hive(
            "org.apache.hadoop.mapred.TextInputFormat",
            "LazySimpleSerDe",
            None,
        ));
        let s = spec(&t);
        let g = evaluate(&t, &s, &inspection(1, 1, 1), &GuardLimits::default());
        let format = by_name(&g, "format");
        assert!(
            format.tripped && format.detail.contains("TextInputFormat"),
            "{format:?}"
        );

        let mut unknown = inspection(0, 1, 1);
        unknown.rows_source = RowSource::Unknown;
        let g = evaluate(&t, &s, &unknown, &GuardLimits::default());
        assert!(by_name(&g, "row_count").tripped);
    }

    #[test]
    fn per_api_overrides_replace_only_what_they_name() {
        let base = GuardLimits::default();
        let o = LimitOverrides {
            max_rows: Some(5),
            ..Default::default()
        };
        let l = base.with_overrides(&o);
        assert_eq!(l.max_rows, 5);
        assert_eq!(l.max_files, base.max_files);
        let runtime = runtime_guards(&l, RunMeasures::default());
        assert_eq!(
            runtime.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            [MEMORY_POOL, OUTPUT_KEYS, OUTPUT_BYTES, ENTRY_BYTES]
        );
        assert!(runtime.iter().all(|g| !g.tripped));
    }

    #[test]
    fn a_limit_above_its_ceiling_is_named_with_the_ceiling_unless_granted() {
        let ceilings = Ceilings::default();
        let asked = LimitOverrides {
            memory_pool_bytes: Some(1 << 62),
            max_rows: Some(10),
            ..Default::default()
        };
        let problems = ceilings.check(&asked);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "limits.memory_pool_bytes");
        assert!(
            problems[0].message.contains(&(1u64 << 62).to_string())
                && problems[0].message.contains(&(4u64 << 30).to_string()),
            "{}",
            problems[0]
        );
        let granted = ceilings.with_grants(&LimitOverrides {
            memory_pool_bytes: Some(1 << 62),
            ..Default::default()
        });
        assert!(granted.check(&asked).is_empty());
    }
}
