//! From a resolved spec to a DataFusion DataFrame, with identifiers and typed literals only.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::top_n::TopN;
use crate::top_rows::TopRowsExec;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::options::ParquetReadOptions;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, sum};
use datafusion::logical_expr::{SortExpr, cast, ident, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use datafusion::prelude::{DataFrame, Expr, SessionContext, in_list};
use publisher::Error;
use publisher::catalog::StorageFormat;
use publisher::engine::EngineJob;
use publisher::files::{DataFile, locate};
use publisher::spec::{
    AggFn, FilterOp, HIVE_NULL_PARTITION, Literal, ResolvedFilter, ResolvedSpec, Shape, Source,
};

fn plan_error(job: &EngineJob, e: impl std::fmt::Display) -> Error {
    Error::Engine {
        engine: "fasttrack".into(),
        message: format!("planning {}: {e}", job.spec.table),
        transient: false,
    }
}

/// Output column names: positional, and never equal to a table column, so a key that is also
/// a value, or an output named like a column, cannot collide.
pub(crate) fn key_col(i: usize) -> String {
    format!("__k{i}")
}
fn value_col(i: usize) -> String {
    format!("__v{i}")
}

/// A spec's query: the DataFrame DataFusion plans, and the per-key top N of raw rows, which runs
/// as this crate's own operator on top of DataFusion's physical plan (see `top_rows`).
pub struct Query {
    pub dataframe: DataFrame,
    top_rows: Option<TopRows>,
}

struct TopRows {
    keys: usize,
    /// Columns of the DataFrame's output, most significant first.
    order: Vec<(usize, SortOptions)>,
    limit: usize,
}

impl Query {
    pub async fn physical_plan(self) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let partitions = self
            .dataframe
            .task_ctx()
            .session_config()
            .target_partitions();
        let plan = self.dataframe.create_physical_plan().await?;
        let Some(top) = self.top_rows else {
            return Ok(plan);
        };
        let on = (0..top.keys)
            .map(|i| Arc::new(Column::new(&key_col(i), i)) as Arc<dyn PhysicalExpr>)
            .collect();
        let by_key = Arc::new(RepartitionExec::try_new(
            plan,
            Partitioning::Hash(on, partitions),
        )?);
        Ok(Arc::new(TopRowsExec::new(
            by_key, top.keys, top.order, top.limit,
        )))
    }
}

/// Builds the whole query: scan exactly `job.files`, filter, aggregate or project, keep at most
/// `limit` rows per key, order within keys.
pub async fn build_query(ctx: &SessionContext, job: &EngineJob) -> Result<Query, Error> {
    let spec = &job.spec;
    let err = |e: datafusion::error::DataFusionError| plan_error(job, e);
    let mut df = scan(ctx, job).await?;

    for f in &spec.filters {
        df = df.filter(filter_expr(f)).map_err(err)?;
    }

    // A string key read as a view stays one (the encoder writes views as strings): a cast
    // would hide from DataFusion that the output is partitioned by the key, and the publisher
    // then could not encode each partition on its own core.
    let keys: Vec<Expr> = spec
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| keep_views(&df, &k.name, &k.data_type).alias(key_col(i)))
        .collect();
    let mut outputs = Vec::with_capacity(spec.outputs.len());
    if let Some(grouping) = &spec.grouping {
        df = match two_phase_distinct(spec) {
            Some(distinct) => aggregate_two_phase(df, grouping, spec, distinct),
            None => {
                let aggregates = spec
                    .outputs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, o)| match &o.source {
                        Source::Aggregate { func, column } => {
                            Some(aggregate_expr(*func, column.as_deref()).alias(format!("__a{i}")))
                        }
                        Source::Column(_) => None,
                    })
                    .collect();
                df.aggregate(grouping.iter().map(ident).collect(), aggregates)
            }
        }
        .map_err(err)?;
        for (i, o) in spec.outputs.iter().enumerate() {
            let source = match &o.source {
                Source::Column(c) => ident(c),
                Source::Aggregate { .. } => ident(format!("__a{i}")),
            };
            outputs.push(cast(source, o.data_type.clone()).alias(value_col(i)));
        }
    } else {
        for (i, o) in spec.outputs.iter().enumerate() {
            let Source::Column(c) = &o.source else {
                return Err(plan_error(
                    job,
                    "an aggregate in a spec that does not aggregate",
                ));
            };
            outputs.push(cast(ident(c), o.data_type.clone()).alias(value_col(i)));
        }
    }
    df = df
        .select(keys.into_iter().chain(outputs).collect::<Vec<_>>())
        .map_err(err)?;

    let within_key: Vec<SortExpr> = spec
        .order
        .iter()
        .map(|s| ident(value_col(s.output)).sort(!s.descending, false))
        .collect();
    let key_order: Vec<SortExpr> = (0..spec.keys.len())
        .map(|i| ident(key_col(i)).sort(true, false))
        .collect();
    let partition: Vec<Expr> = (0..spec.keys.len()).map(|i| ident(key_col(i))).collect();
    let sort_options = |s: &publisher::spec::SortField| SortOptions {
        descending: s.descending,
        nulls_first: false,
    };

    let mut top_rows = None;
    match spec.limit() {
        Some(limit) if spec.keys.is_empty() => {
            df = df
                .sort(within_key)
                .map_err(err)?
                .limit(0, Some(limit as usize))
                .map_err(err)?;
        }
        // A resolved order names every output once, so rows that compare equal are equal and
        // neither way below depends on which of them it saw first.
        //
        // Over raw rows, where most keys keep most of their rows, each partition sorts each
        // key's rows alone (see `top_rows`), after DataFusion's plan.
        Some(limit) if spec.grouping.is_none() => {
            let keys = spec.keys.len();
            top_rows = Some(TopRows {
                keys,
                order: spec
                    .order
                    .iter()
                    .map(|s| (keys + s.output, sort_options(s)))
                    .collect(),
                limit: limit as usize,
            });
        }
        // Over aggregated rows the N best of each key are kept by an aggregate (see `top_n`):
        // no sort of the whole input, memory O(keys × N); unnesting keeps each key's rows
        // together, in rank.
        Some(limit) => {
            let fields: Fields = spec
                .outputs
                .iter()
                .enumerate()
                .map(|(i, o)| Field::new(value_col(i), o.data_type.clone(), true))
                .collect();
            let order = spec
                .order
                .iter()
                .map(|s| (s.output, sort_options(s)))
                .collect();
            let top = TopN::udaf(limit as usize, fields, order);
            let arguments = (0..spec.outputs.len())
                .map(|i| ident(value_col(i)))
                .collect();
            let unnested = (0..spec.keys.len())
                .map(|i| ident(key_col(i)))
                .chain(
                    (0..spec.outputs.len())
                        .map(|i| get_field(ident("__top"), value_col(i)).alias(value_col(i))),
                )
                .collect::<Vec<_>>();
            df = df
                .aggregate(partition, vec![top.call(arguments).alias("__top")])
                .map_err(err)?
                .unnest_columns(&["__top"])
                .map_err(err)?
                .select(unnested)
                .map_err(err)?;
        }
        // One row per key (validation guarantees it): nothing to cluster, and order within a
        // key is moot. Output order is not part of the engine contract (`run` sorts by key).
        None if spec.shape() == Shape::Object => {}
        None => {
            df = df
                .sort(key_order.into_iter().chain(within_key).collect())
                .map_err(err)?;
        }
    }
    let columns: Vec<Expr> = (0..spec.keys.len())
        .map(|i| ident(key_col(i)))
        .chain((0..spec.outputs.len()).map(|i| ident(value_col(i))))
        .collect();
    Ok(Query {
        dataframe: df.select(columns).map_err(err)?,
        top_rows,
    })
}

/// The column of the spec's COUNT(DISTINCT), when the aggregation can run in two phases:
/// exactly one distinct column, and every other aggregate decomposable (count, sum, min, max).
///
/// DataFusion keeps a hash set per group for COUNT(DISTINCT) next to other aggregates, which is
/// several times slower than grouping by (keys, column) first and counting the groups after,
/// the rewrite its own optimizer only makes when no other aggregate is present.
fn two_phase_distinct(spec: &ResolvedSpec) -> Option<&str> {
    let mut distinct = None;
    for o in &spec.outputs {
        match &o.source {
            Source::Aggregate {
                func: AggFn::CountDistinct,
                column: Some(c),
            } => match distinct {
                None => distinct = Some(c.as_str()),
                Some(d) if d == c => {}
                Some(_) => return None,
            },
            Source::Aggregate {
                func: AggFn::Avg, ..
            } => return None,
            _ => {}
        }
    }
    distinct
}

/// GROUP BY (grouping, distinct) with partial aggregates, then GROUP BY grouping combining them:
/// counts and sums are summed, minima and maxima taken again, and the distinct count is the
/// count of non-null distinct values among the first phase's groups.
fn aggregate_two_phase(
    df: DataFrame,
    grouping: &[String],
    spec: &ResolvedSpec,
    distinct: &str,
) -> datafusion::error::Result<DataFrame> {
    let mut inner_group: Vec<Expr> = grouping.iter().map(ident).collect();
    if !grouping.iter().any(|g| g == distinct) {
        inner_group.push(ident(distinct).alias("__d"));
    }
    let distinct_col = if grouping.iter().any(|g| g == distinct) {
        ident(distinct)
    } else {
        ident("__d")
    };
    let mut partial = Vec::new();
    let mut combined = Vec::new();
    for (i, o) in spec.outputs.iter().enumerate() {
        let Source::Aggregate { func, column } = &o.source else {
            continue;
        };
        let (name, out) = (format!("__p{i}"), format!("__a{i}"));
        let combine = match func {
            AggFn::CountDistinct => {
                combined.push(count(distinct_col.clone()).alias(out));
                continue;
            }
            AggFn::Count | AggFn::Sum => sum(ident(&name)),
            AggFn::Min => min(ident(&name)),
            AggFn::Max => max(ident(&name)),
            AggFn::Avg => unreachable!("two_phase_distinct refuses avg"),
        };
        partial.push(aggregate_expr(*func, column.as_deref()).alias(name));
        combined.push(combine.alias(out));
    }
    df.aggregate(inner_group, partial)?
        .aggregate(grouping.iter().map(ident).collect(), combined)
}

fn aggregate_expr(func: AggFn, column: Option<&str>) -> Expr {
    match (func, column) {
        (AggFn::Count, None) => count_all(),
        (AggFn::Count, Some(c)) => count(ident(c)),
        (AggFn::CountDistinct, Some(c)) => count_distinct(ident(c)),
        (AggFn::Sum, Some(c)) => sum(ident(c)),
        (AggFn::Min, Some(c)) => min(ident(c)),
        (AggFn::Max, Some(c)) => max(ident(c)),
        (AggFn::Avg, Some(c)) => avg(ident(c)),
        // Validation guarantees a column for every aggregate but count.
        (_, None) => count_all(),
    }
}

fn literal(l: &Literal) -> Expr {
    lit(match l {
        Literal::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Literal::Int(i) => ScalarValue::Int64(Some(*i)),
        Literal::Float(f) => ScalarValue::Float64(Some(*f)),
        Literal::Str(s) => ScalarValue::Utf8(Some(s.clone())),
        Literal::Decimal {
            unscaled,
            precision,
            scale,
        } => ScalarValue::Decimal128(Some(*unscaled), *precision, *scale),
        Literal::Date(d) => ScalarValue::Date32(Some(*d)),
        Literal::Timestamp(t) => ScalarValue::TimestampMicrosecond(Some(*t), None),
    })
}

fn filter_expr(f: &ResolvedFilter) -> Expr {
    let c = ident(&f.column);
    let first = || {
        f.literals
            .first()
            .map(literal)
            .unwrap_or_else(|| lit(ScalarValue::Null))
    };
    match f.op {
        FilterOp::Eq => c.eq(first()),
        FilterOp::NotEq => c.not_eq(first()),
        FilterOp::Lt => c.lt(first()),
        FilterOp::LtEq => c.lt_eq(first()),
        FilterOp::Gt => c.gt(first()),
        FilterOp::GtEq => c.gt_eq(first()),
        FilterOp::In => in_list(c, f.literals.iter().map(literal).collect(), false),
        FilterOp::IsNull => c.is_null(),
        FilterOp::NotNull => c.is_not_null(),
    }
}

/// Reads exactly the listed files, projected to the data columns the spec uses, typed as the
/// catalog says (DataFusion adapts each file's physical types to it). Partition columns, when
/// the spec uses them, come from the publisher's listing as literals per partition.
async fn scan(ctx: &SessionContext, job: &EngineJob) -> Result<DataFrame, Error> {
    let table = &job.table;
    let err = |e: datafusion::error::DataFusionError| plan_error(job, e);
    let spec: &ResolvedSpec = &job.spec;
    let data_fields: Vec<Field> = spec
        .columns
        .iter()
        .filter(|c| !table.is_partition_key(c))
        .map(|c| {
            let column = table
                .column(c)
                .ok_or_else(|| plan_error(job, format!("column `{c}` vanished from the table")))?;
            let t = column.data_type.clone().ok_or_else(|| {
                plan_error(
                    job,
                    format!("column `{c}` has unsupported type {}", column.hive_type),
                )
            })?;
            Ok(Field::new(c, t, true))
        })
        .collect::<Result<_, Error>>()?;
    let schema = Schema::new(data_fields);
    let used_partitions: Vec<(usize, &str)> = table
        .partition_keys
        .iter()
        .enumerate()
        .filter(|(_, k)| spec.columns.contains(&k.name))
        .map(|(i, k)| (i, k.name.as_str()))
        .collect();

    if job.files.is_empty() {
        // Nothing to read: an empty relation of the right schema, so that aggregates still answer.
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(
            used_partitions
                .iter()
                .map(|(_, name)| Field::new(*name, DataType::Utf8, true)),
        );
        let empty =
            datafusion::arrow::record_batch::RecordBatch::new_empty(Arc::new(Schema::new(fields)));
        return ctx.read_batch(empty).map_err(err);
    }
    register_stores(ctx, &job.files)?;

    let groups: BTreeMap<Vec<String>, Vec<&DataFile>> = if used_partitions.is_empty() {
        BTreeMap::from([(vec![], job.files.iter().collect())])
    } else {
        let mut g: BTreeMap<Vec<String>, Vec<&DataFile>> = BTreeMap::new();
        for f in &job.files {
            g.entry(f.partition_values.clone()).or_default().push(f);
        }
        g
    };
    let mut union: Option<DataFrame> = None;
    for (values, files) in groups {
        let mut df = match table.format {
            StorageFormat::Orc => {
                let files: Vec<DataFile> = files.into_iter().cloned().collect();
                let positions = schema
                    .fields()
                    .iter()
                    .map(|f| {
                        table
                            .columns
                            .iter()
                            .position(|c| c.name.eq_ignore_ascii_case(f.name()))
                            .unwrap_or(usize::MAX)
                    })
                    .collect();
                let partitions = ctx.copied_config().target_partitions();
                let orc =
                    crate::orc::table(Arc::new(schema.clone()), positions, &files, partitions)
                        .map_err(err)?;
                ctx.read_table(Arc::new(orc)).map_err(err)?
            }
            _ => {
                let urls: Vec<String> = files.iter().map(|f| f.url.clone()).collect();
                let read_as = with_view_types(&schema);
                let options = ParquetReadOptions::default()
                    .schema(&read_as)
                    .file_extension("");
                ctx.read_parquet(urls, options).await.map_err(err)?
            }
        };
        for (i, name) in &used_partitions {
            let value = values
                .get(*i)
                .filter(|v| v.as_str() != HIVE_NULL_PARTITION)
                .cloned();
            let t = table.partition_keys[*i]
                .data_type
                .clone()
                .unwrap_or(DataType::Utf8);
            df = df
                .with_column(name, cast(lit(ScalarValue::Utf8(value)), t))
                .map_err(err)?;
        }
        union = Some(match union {
            None => df,
            Some(u) => u.union(df).map_err(err)?,
        });
    }
    union.ok_or_else(|| plan_error(job, "no files"))
}

/// A key `column` cast to its output type `to`, except a string read as a view, which stays
/// one (the encoder writes views as strings). Values are cast: kept as views, the sort of raw
/// rows in `recent_activity` measured no faster (bench/history.md).
fn keep_views(df: &DataFrame, column: &str, to: &DataType) -> Expr {
    let is_view = df
        .schema()
        .field_with_unqualified_name(column)
        .is_ok_and(|f| f.data_type() == &DataType::Utf8View);
    if is_view && to == &DataType::Utf8 {
        ident(column)
    } else {
        cast(ident(column), to.clone())
    }
}

/// The scan's schema with strings read as views (`Utf8View`): a view of a dictionary-encoded
/// Parquet column points into the page's dictionary instead of copying each value, and grouping
/// or comparing views looks at an inline 12-byte prefix before following a pointer. Values are
/// cast to their output types and string keys are written from their views, so answers are the
/// same (`bench/history.md`: 1.07–1.10× on the sample specs that group by strings).
fn with_view_types(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => {
                f.as_ref().clone().with_data_type(DataType::Utf8View)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
}

/// Makes every store the files live in (local disk, an HDFS NameNode) known to DataFusion.
fn register_stores(ctx: &SessionContext, files: &[DataFile]) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::new();
    for f in files {
        let located = locate(&f.url)?;
        if located.base == "file://" || !seen.insert(located.base.clone()) {
            continue;
        }
        let url = url::Url::parse(&located.base).map_err(|e| Error::Listing {
            location: f.url.clone(),
            message: e.to_string(),
        })?;
        ctx.register_object_store(&url, located.store);
    }
    Ok(())
}
