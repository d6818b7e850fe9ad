//! The job description: what the Spark program computes, as one JSON document.
//!
//! Built from an [`EngineJob`]; serialized to `job.json` next to the program, which receives its
//! path as its only argument. Identifiers are the spec's validated names, types are Spark type
//! names from a fixed list, and literals are typed values: the program never evaluates text.

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use publisher::engine::EngineJob;
use publisher::spec::{AggFn, FilterOp, Literal, Shape, Source};
use serde::Serialize;

use crate::config::ReadVia;

/// Version of the job JSON that `spark/tablecast_job.py` reads.
pub const JOB_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobDescription {
    /// Always [`JOB_FORMAT`].
    pub format: u32,
    pub job_id: String,
    pub api: String,
    /// `db.table`.
    pub table: String,
    pub input: Input,
    /// Every table column the job reads, with its catalog type.
    pub columns: Vec<ColumnDesc>,
    pub filters: Vec<FilterDesc>,
    pub keys: Vec<TypedName>,
    /// Grouping columns (keys, then `group_by`) when the spec aggregates.
    pub grouping: Option<Vec<String>>,
    pub outputs: Vec<OutputDesc>,
    /// Row order within a key, complete (ties already broken by every output).
    pub order: Vec<OrderDesc>,
    pub limit: Option<u64>,
    pub shape: Shape,
    pub output: OutputTarget,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// `spark.read.table("db.table")` through the metastore at `catalog`.
    Catalog {
        catalog: String,
        db: String,
        table: String,
    },
    /// The listed files, one group per partition (one group in all when no partition column is
    /// used); `partition_keys` are the partition columns the job uses, added as literals.
    Files {
        format: String,
        partition_keys: Vec<PartitionKeyDesc>,
        groups: Vec<FileGroup>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionKeyDesc {
    /// Position in the table's partition keys (and in each group's `partition_values`).
    pub index: usize,
    pub name: String,
    #[serde(rename = "type")]
    pub spark_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileGroup {
    pub partition_values: Vec<String>,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDesc {
    pub name: String,
    #[serde(rename = "type")]
    pub spark_type: String,
    pub partition_key: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypedName {
    pub name: String,
    #[serde(rename = "type")]
    pub spark_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterDesc {
    pub column: String,
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `is_null`, `not_null`.
    pub op: FilterOp,
    pub literals: Vec<LiteralDesc>,
}

/// A typed literal. Doubles travel as strings (`"NaN"`, `"inf"` are valid), decimals as their
/// exact text with precision and scale, dates as days and timestamps as microseconds since the
/// epoch (UTC).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiteralDesc {
    Boolean {
        value: bool,
    },
    Bigint {
        value: i64,
    },
    Double {
        value: String,
    },
    String {
        value: String,
    },
    Decimal {
        value: String,
        precision: u8,
        scale: i8,
    },
    Date {
        value: i32,
    },
    Timestamp {
        value: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputDesc {
    pub name: String,
    pub source: SourceDesc,
    /// The Spark type the output is cast to (the spec's type; see [`spark_type`]).
    #[serde(rename = "type")]
    pub spark_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SourceDesc {
    Column { column: String },
    Aggregate { agg: AggFn, column: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OrderDesc {
    /// Index into `outputs`.
    pub output: usize,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputTarget {
    /// Directory URL the job writes its Parquet part files into; it must not exist yet.
    pub path: String,
    pub format: String,
}

/// The Spark SQL type for an Arrow type, or `None` when Spark cannot hold it. Unsigned integers
/// widen (as Spark reads them from Parquet); the reader casts back to the spec's exact type.
pub fn spark_type(t: &DataType) -> Option<String> {
    use DataType::*;
    Some(match t {
        Boolean => "boolean".into(),
        Int8 => "tinyint".into(),
        Int16 | UInt8 => "smallint".into(),
        Int32 | UInt16 => "int".into(),
        Int64 | UInt32 => "bigint".into(),
        UInt64 => "decimal(20,0)".into(),
        Float32 => "float".into(),
        Float64 => "double".into(),
        Utf8 | LargeUtf8 | Utf8View => "string".into(),
        Decimal128(p, s) if *s >= 0 && *p >= 1 && *p <= 38 && (*s as u8) <= *p => {
            format!("decimal({p},{s})")
        }
        Date32 => "date".into(),
        Timestamp(_, _) => "timestamp".into(),
        Dictionary(_, v) => return spark_type(v),
        _ => return None,
    })
}

fn literal(l: &Literal) -> LiteralDesc {
    match l {
        Literal::Bool(b) => LiteralDesc::Boolean { value: *b },
        Literal::Int(i) => LiteralDesc::Bigint { value: *i },
        Literal::Float(f) => LiteralDesc::Double {
            value: format!("{f:?}"),
        },
        Literal::Str(s) => LiteralDesc::String { value: s.clone() },
        Literal::Decimal {
            unscaled,
            precision,
            scale,
        } => {
            let mut text = Vec::new();
            publisher::canonical::write_decimal(&mut text, *unscaled, *scale);
            LiteralDesc::Decimal {
                value: String::from_utf8(text).expect("decimal text is ASCII"),
                precision: *precision,
                scale: *scale,
            }
        }
        Literal::Date(d) => LiteralDesc::Date { value: *d },
        Literal::Timestamp(t) => LiteralDesc::Timestamp { value: *t },
    }
}

/// Whether the job reads the metastore table rather than the listed files.
pub fn reads_catalog(job: &EngineJob, via: ReadVia) -> bool {
    let thrift = job.catalog_uri.starts_with("thrift://");
    match via {
        ReadVia::Files => false,
        ReadVia::Catalog => thrift,
        ReadVia::Auto => thrift && !job.table.format.is_columnar(),
    }
}

impl JobDescription {
    /// Describes `job`; `output` is the directory URL the program writes to. Fails, naming the
    /// column, on a type Spark cannot hold.
    pub fn build(
        job: &EngineJob,
        job_id: &str,
        via: ReadVia,
        output: &str,
    ) -> Result<Self, String> {
        let spec = &job.spec;
        let table = &job.table;
        let type_of = |t: &DataType, what: &str| {
            spark_type(t).ok_or_else(|| format!("{what}: type {t} has no Spark equivalent"))
        };

        let mut columns = Vec::new();
        for c in &spec.columns {
            let column = table
                .column(c)
                .ok_or_else(|| format!("column `{c}` is not in table {}", spec.table))?;
            let t = column
                .data_type
                .as_ref()
                .ok_or_else(|| format!("column `{c}` has unsupported type {}", column.hive_type))?;
            columns.push(ColumnDesc {
                name: c.clone(),
                spark_type: type_of(t, &format!("column `{c}`"))?,
                partition_key: table.is_partition_key(c),
            });
        }

        let catalog_read = reads_catalog(job, via);
        if !catalog_read && !table.format.is_columnar() {
            return Err(format!(
                "table {} is stored as {}: Spark reads it only through the metastore (a thrift:// catalog with read_via = \"auto\" or \"catalog\")",
                spec.table,
                table.format.label()
            ));
        }
        let input = if catalog_read {
            Input::Catalog {
                catalog: job.catalog_uri.clone(),
                db: spec.table.db.clone(),
                table: spec.table.table.clone(),
            }
        } else {
            let partition_keys: Vec<PartitionKeyDesc> = table
                .partition_keys
                .iter()
                .enumerate()
                .filter(|(_, k)| spec.columns.contains(&k.name))
                .map(|(index, k)| {
                    let t = k.data_type.clone().unwrap_or(DataType::Utf8);
                    Ok(PartitionKeyDesc {
                        index,
                        name: k.name.clone(),
                        spark_type: type_of(&t, &format!("partition key `{}`", k.name))?,
                    })
                })
                .collect::<Result<_, String>>()?;
            let mut groups: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
            for f in &job.files {
                let values = if partition_keys.is_empty() {
                    vec![]
                } else {
                    f.partition_values.clone()
                };
                groups.entry(values).or_default().push(f.url.clone());
            }
            Input::Files {
                format: table.format.label().to_string(),
                partition_keys,
                groups: groups
                    .into_iter()
                    .map(|(partition_values, files)| FileGroup {
                        partition_values,
                        files,
                    })
                    .collect(),
            }
        };

        let filters = spec
            .filters
            .iter()
            .map(|f| FilterDesc {
                column: f.column.clone(),
                op: f.op,
                literals: f.literals.iter().map(literal).collect(),
            })
            .collect();
        let keys = spec
            .keys
            .iter()
            .map(|k| {
                Ok(TypedName {
                    name: k.name.clone(),
                    spark_type: type_of(&k.data_type, &format!("key `{}`", k.name))?,
                })
            })
            .collect::<Result<_, String>>()?;
        let outputs = spec
            .outputs
            .iter()
            .map(|o| {
                let source = match &o.source {
                    Source::Column(c) => SourceDesc::Column { column: c.clone() },
                    Source::Aggregate { func, column } => SourceDesc::Aggregate {
                        agg: *func,
                        column: column.clone(),
                    },
                };
                Ok(OutputDesc {
                    name: o.name.clone(),
                    source,
                    spark_type: type_of(&o.data_type, &format!("output `{}`", o.name))?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(JobDescription {
            format: JOB_FORMAT,
            job_id: job_id.to_string(),
            api: spec.name().to_string(),
            table: spec.table.to_string(),
            input,
            columns,
            filters,
            keys,
            grouping: spec.grouping.clone(),
            outputs,
            order: spec
                .order
                .iter()
                .map(|s| OrderDesc {
                    output: s.output,
                    descending: s.descending,
                })
                .collect(),
            limit: spec.limit(),
            shape: spec.shape(),
            output: OutputTarget {
                path: output.to_string(),
                format: "parquet".into(),
            },
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a job description always serializes")
    }

    /// Whether the program needs Hive support (the metastore) in its session.
    pub fn metastore(&self) -> Option<&str> {
        match &self.input {
            Input::Catalog { catalog, .. } => Some(catalog),
            Input::Files { .. } => None,
        }
    }
}
