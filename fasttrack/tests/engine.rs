//! The fast track over a small hand-made table, with answers worked out by hand.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use fasttrack::FastTrack;
use futures::StreamExt;
use publisher::canonical::{Entry, EntryEncoder};
use publisher::catalog::{Catalog, DirectoryCatalog};
use publisher::engine::BatchStream;
use publisher::guards::GuardLimits;
use publisher::publish::{Plan, PublishConfig, Publisher, Route};
use publisher::spec::ApiSpec;

/// A folder holding social.sales: two partitions, nulls, ties, unicode.
fn sales_table() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_sales_table(dir.path(), "social");
    dir
}

async fn publisher_over(root: &Path, limits: GuardLimits) -> Publisher {
    let catalog: Arc<dyn Catalog> = Arc::new(DirectoryCatalog::open(root.to_path_buf()).unwrap());
    Publisher {
        catalog,
        fasttrack: Arc::new(FastTrack::default()),
        fallback: None,
        limits,
        config: PublishConfig::default(),
        snapshots: None,
    }
}

/// A publisher over `root` and its plan of `spec` (TOML) on `route`.
async fn planned(root: &Path, spec: &str, route: Route) -> (Publisher, Plan) {
    let p = publisher_over(root, GuardLimits::default()).await;
    let plan = p
        .plan(&ApiSpec::from_toml(spec).unwrap(), route)
        .await
        .unwrap();
    (p, plan)
}

struct Collect(Vec<Entry>);

#[async_trait::async_trait]
impl publisher::publish::EntrySink for Collect {
    async fn accept(&mut self, entries: Vec<Entry>) -> publisher::Result<()> {
        self.0.extend(entries);
        Ok(())
    }
    async fn reset(&mut self) -> publisher::Result<()> {
        self.0.clear();
        Ok(())
    }
}

/// Runs `plan` on `route` into a sink that collects what it accepts: the run's outcome, and
/// the entries.
async fn run_collecting(
    p: &Publisher,
    plan: &Plan,
    route: Route,
) -> (publisher::Result<publisher::publish::RunStats>, Vec<Entry>) {
    let mut sink = Collect(Vec::new());
    let progress: publisher::publish::ProgressFn = Arc::new(|_| {});
    let outcome = p.run(plan, route, &mut sink, &progress).await;
    (outcome, sink.0)
}

/// The fast track's answer to `spec` (TOML) over the table folder `root`: its entries, sorted.
async fn answer(root: &Path, spec: &str) -> Vec<String> {
    let (p, plan) = planned(root, spec, Route::Fasttrack).await;
    let (outcome, entries) = run_collecting(&p, &plan, Route::Fasttrack).await;
    outcome.unwrap();
    let mut lines: Vec<String> = entries.iter().map(ToString::to_string).collect();
    lines.sort();
    lines
}

/// The fast track's output for `plan`, its partitions one after the other.
async fn fast_track_batches(p: &Publisher, plan: &Plan) -> BatchStream {
    p.fasttrack
        .execute(&plan.job("file:///"))
        .await
        .unwrap()
        .into_stream()
}

/// Runs `plan` on the automatic route, which must fail; returns the error's text.
async fn run_error(p: &Publisher, plan: &Plan) -> String {
    let (outcome, _) = run_collecting(p, plan, Route::Auto).await;
    outcome.expect_err("the run must fail").to_string()
}

#[tokio::test]
async fn top_n_per_key_with_ties_broken_by_the_other_fields() {
    let dir = sales_table();
    let spec = r#"
        name = "top"
        table = "social.sales"
        key = ["network"]
        group_by = ["product_id"]
        limit = 2
        [[values]]
        column = "product_id"
        [[values]]
        agg = "sum"
        column = "referrals"
        as = "referrals"
        [[order_by]]
        field = "referrals"
        dir = "desc"
    "#;
    // fb: p1 = 5+4 = 9, p2 = 7, p3 = 9 → 9 (p1), 9 (p3): tie broken by product_id ascending.
    assert_eq!(
        answer(dir.path(), spec).await,
        vec![
            r#"["fb"] [{"product_id":1,"referrals":9},{"product_id":3,"referrals":9}]"#,
            r#"["tw"] [{"product_id":3,"referrals":1}]"#,
            r#"["日本"] [{"product_id":2,"referrals":3}]"#,
            r#"[null] [{"product_id":4,"referrals":2}]"#,
        ]
    );
}

#[tokio::test]
async fn object_aggregates_with_decimals_timestamps_and_partition_columns() {
    let dir = sales_table();
    let spec = r#"
        name = "stats"
        table = "social.sales"
        key = ["product_id"]
        shape = "object"
        [[values]]
        agg = "count"
        as = "rows"
        [[values]]
        agg = "sum"
        column = "revenue"
        as = "revenue"
        [[values]]
        agg = "count_distinct"
        column = "network"
        as = "networks"
        [[values]]
        agg = "max"
        column = "ts"
        as = "last_seen"
        [[values]]
        agg = "min"
        column = "dt"
        as = "first_day"
        [[filter]]
        column = "referrals"
        op = ">="
        value = 2
    "#;
    assert_eq!(
        answer(dir.path(), spec).await,
        vec![
            r#"[1] {"rows":2,"revenue":"1.51","networks":1,"last_seen":"1970-01-01T00:00:04.5Z","first_day":"2026-11-01"}"#,
            r#"[2] {"rows":2,"revenue":"123.50","networks":2,"last_seen":"1970-01-01T00:00:07Z","first_day":"2026-11-01"}"#,
            r#"[3] {"rows":1,"revenue":"0.00","networks":1,"last_seen":"1970-01-01T00:00:05Z","first_day":"2026-11-02"}"#,
            r#"[4] {"rows":1,"revenue":"9.99","networks":0,"last_seen":"1970-01-01T00:00:06Z","first_day":"2026-11-02"}"#,
        ]
    );
}

#[tokio::test]
async fn keyless_list_and_partition_pruning() {
    let dir = sales_table();
    let spec = r#"
        name = "recent"
        table = "social.sales"
        limit = 2
        [[values]]
        column = "ts"
        [[values]]
        column = "network"
        [[order_by]]
        field = "ts"
        dir = "desc"
        [[filter]]
        column = "dt"
        op = "="
        value = "2026-11-01"
    "#;
    let (_, plan) = planned(dir.path(), spec, Route::Auto).await;
    assert_eq!(
        (
            plan.inspection.partitions_selected,
            plan.inspection.files.len(),
            plan.inspection.rows
        ),
        (1, 1, 3)
    );
    assert_eq!(
        answer(dir.path(), spec).await,
        vec![
            r#"[] [{"ts":"1970-01-01T00:00:03Z","network":"tw"},{"ts":"1970-01-01T00:00:02Z","network":"fb"}]"#
        ]
    );
}

/// A folder holding a big social.sales: 200k distinct rows, sorting them needs a few MB.
fn big_table() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("network", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]));
    let n = 200_000i64;
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(
                (0..n)
                    .map(|i| format!("network-{}", i % 1000))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMicrosecondArray::from(
                (0..n).map(|i| i * 7919 % n).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let file = root.path().join("social/sales/part-0.parquet");
    fixtures::write_parquet(&file, &[batch]).unwrap();
    root
}

/// Both ways a list keeps its rows in memory trip the guard: the sort of every row, and the
/// per-key top N (`limit`), which buffers a key's rows until it has seen them all.
#[tokio::test]
async fn a_small_pool_trips_the_memory_guard_cleanly() {
    let dir = big_table();
    let limits = GuardLimits {
        memory_pool_bytes: 256 * 1024,
        ..GuardLimits::default()
    };
    let p = publisher_over(dir.path(), limits).await;
    let all = r#"
        name = "all"
        table = "social.sales"
        key = ["network"]
        [[values]]
        column = "ts"
        [[order_by]]
        field = "ts"
    "#;
    let latest = all.replace("\"all\"", "\"latest\"").replace(
        "key = [\"network\"]",
        "key = [\"network\"]\n        limit = 150",
    );
    for spec in [all.to_string(), latest] {
        let spec = ApiSpec::from_toml(&spec).unwrap();
        let plan = p.plan(&spec, Route::Auto).await.unwrap();
        let mut batches = fast_track_batches(&p, &plan).await;
        let mut tripped = None;
        while let Some(batch) = batches.next().await {
            if let Err(e) = batch {
                tripped = Some(e);
                break;
            }
        }
        let e = tripped.unwrap_or_else(|| panic!("{}: the pool must be exceeded", spec.name));
        let guard = e
            .tripped_guard()
            .unwrap_or_else(|| panic!("{}: not a guard trip: {e}", spec.name));
        assert_eq!(guard.name, "memory_pool");
        assert_eq!(guard.limit, 256 * 1024);
        assert!(guard.tripped && guard.measured > 256 * 1024);
        // Without a fallback to re-route to, the run reports the trip as its error.
        let err = run_error(&p, &plan).await;
        assert!(err.contains("memory_pool"), "{}: {err}", spec.name);
    }
}

/// A key-less list over the big table (200 000 rows, ~9 MB of JSON in one value): the entry
/// guard trips while the value grows, at the row that crosses the limit, so the encoder never
/// holds much more than the limit; the output guard trips the same way over many keys.
#[tokio::test]
async fn output_guards_trip_while_encoding_not_after_the_value_is_whole() {
    let dir = big_table();
    let keyless = r#"
        name = "everything"
        table = "social.sales"
        key = []
        [[values]]
        column = "network"
        [[values]]
        column = "ts"
    "#;
    let cases = [
        (
            keyless,
            "entry_bytes",
            GuardLimits {
                max_entry_bytes: 1 << 20,
                ..GuardLimits::default()
            },
        ),
        (
            "name = \"per_row\"\ntable = \"social.sales\"\nkey = [\"ts\"]\n[[values]]\ncolumn = \"network\"\n",
            "output_bytes",
            GuardLimits {
                max_output_bytes: 1 << 20,
                ..GuardLimits::default()
            },
        ),
    ];
    for (spec, guard, limits) in cases {
        let limit = match guard {
            "entry_bytes" => limits.max_entry_bytes,
            _ => limits.max_output_bytes,
        };
        let p = publisher_over(dir.path(), limits.clone()).await;
        let plan = p
            .plan(&ApiSpec::from_toml(spec).unwrap(), Route::Fasttrack)
            .await
            .unwrap();
        let mut batches = fast_track_batches(&p, &plan).await;
        let mut encoder = EntryEncoder::new(&plan.spec).bounded(&limits);
        let mut out = Vec::new();
        let mut tripped = None;
        while let Some(batch) = batches.next().await {
            if let Err(e) = encoder.push(&batch.unwrap(), &mut out) {
                tripped = Some(e);
                break;
            }
        }
        let e = tripped.unwrap_or_else(|| panic!("{guard} must trip"));
        let g = e
            .tripped_guard()
            .unwrap_or_else(|| panic!("not a guard trip: {e}"));
        assert_eq!((g.name.as_str(), g.limit), (guard, limit), "{e}");
        // Tripped at the crossing row: over the limit by less than one row's JSON.
        assert!(g.measured > limit && g.measured < limit + 200, "{g:?}");
        // Through a run: the trip is the error (no fallback to re-route to here); what was
        // pushed before it is staged only, and discarded by the publish.
        let err = run_error(&p, &plan).await;
        assert!(err.contains(guard), "{err}");
    }
}

#[tokio::test]
async fn encoder_sees_the_engine_contract() {
    // Engine output columns are keys then values; the encoder refuses anything else.
    let dir = sales_table();
    let p = publisher_over(dir.path(), GuardLimits::default()).await;
    let spec = ApiSpec::from_toml("name = \"n\"\ntable = \"social.sales\"\nkey = [\"network\"]\n[[values]]\ncolumn = \"ts\"\n").unwrap();
    let plan = p.plan(&spec, Route::Fasttrack).await.unwrap();
    let mut batches = fast_track_batches(&p, &plan).await;
    let batch = batches.next().await.unwrap().unwrap();
    assert_eq!(batch.num_columns(), 2);
    let mut enc = EntryEncoder::new(&plan.spec);
    let mut out = Vec::new();
    enc.push(&batch, &mut out).unwrap();
    let explained = p.fasttrack.explain(&plan.job("file:///")).await.unwrap();
    assert!(explained.contains("physical plan"), "{explained}");
}

const PER_NETWORK: &str = r#"
    name = "per_network"
    table = "social.sales"
    key = ["network"]
    shape = "object"
    [[values]]
    agg = "sum"
    column = "referrals"
    as = "referrals"
"#;

/// As [`run_error`], and nothing reached the sink before the failure.
async fn run_to_error(p: &Publisher, plan: &Plan) -> String {
    let (outcome, entries) = run_collecting(p, plan, Route::Auto).await;
    let err = outcome.expect_err("the run must fail");
    assert!(entries.is_empty(), "entries reached the sink before: {err}");
    err.to_string()
}

/// A file listed at planning time and deleted before the engine reads it: the run fails naming
/// the file, with nothing returned.
#[tokio::test]
async fn a_file_deleted_after_planning_is_named() {
    let dir = sales_table();
    let (p, plan) = planned(dir.path(), PER_NETWORK, Route::Auto).await;
    let gone = dir.path().join("social/sales/dt=2026-11-02/part-0.parquet");
    std::fs::remove_file(&gone).unwrap();
    let err = run_to_error(&p, &plan).await;
    assert!(
        err.contains("dt=2026-11-02/part-0.parquet"),
        "the error names the missing file: {err}"
    );
}

/// A file rewritten after planning with a column type that drifted from the catalog's (a string
/// where the table says bigint): the run refuses it naming the file, rather than reading it
/// against the schema the plan checked.
#[tokio::test]
async fn a_file_rewritten_with_a_drifted_schema_after_planning_is_refused_naming_it() {
    let dir = sales_table();
    let (p, plan) = planned(dir.path(), PER_NETWORK, Route::Auto).await;
    // Rewrite one partition with `referrals` as text, after the plan fixed the table's schema.
    write_drifted_partition(dir.path());
    let err = run_to_error(&p, &plan).await;
    assert!(
        err.contains("dt=2026-11-02/part-0.parquet") && err.contains("changed since"),
        "the error names the file: {err}"
    );
}

/// Rewrites the 2026-11-02 partition with `referrals` as text instead of bigint.
fn write_drifted_partition(root: &Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("product_id", DataType::Int64, true),
        Field::new("network", DataType::Utf8, true),
        Field::new("referrals", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["fb"])),
            Arc::new(StringArray::from(vec!["many"])),
        ],
    )
    .unwrap();
    let path = root.join("social/sales/dt=2026-11-02/part-0.parquet");
    fixtures::write_parquet(&path, &[batch]).unwrap();
}

/// A table whose files disagree with its schema before anyone plans (a column's type altered in
/// the catalog, or a partition rewritten with another type): the run refuses, naming the file and
/// the column, before the engine reads a row.
#[tokio::test]
async fn schema_drift_between_files_and_table_names_the_file_and_column() {
    let dir = sales_table();
    write_drifted_partition(dir.path());
    let p = publisher_over(dir.path(), GuardLimits::default()).await;
    let err = match p
        .plan(&ApiSpec::from_toml(PER_NETWORK).unwrap(), Route::Auto)
        .await
    {
        // The directory catalog may already refuse to describe such a table.
        Err(e) => e.to_string(),
        Ok(plan) => run_to_error(&p, &plan).await,
    };
    assert!(
        err.contains("referrals") && err.contains("part-0.parquet"),
        "the error names the column and the file: {err}"
    );
}

/// Every partition's entries, encoded on their own as the publisher does.
async fn entries_by_partition(engine: &FastTrack, plan: &Plan) -> Vec<Vec<Entry>> {
    use publisher::engine::Engine;
    let run = engine.execute(&plan.job("file:///")).await.unwrap();
    let mut all = Vec::new();
    for mut batches in run.partitions {
        let mut encoder = EntryEncoder::new(&plan.spec);
        let mut entries = Vec::new();
        while let Some(batch) = batches.next().await {
            encoder.push(&batch.unwrap(), &mut entries).unwrap();
        }
        encoder.finish(&mut entries).unwrap();
        all.push(entries);
    }
    all
}

/// With more than one partition the fast track hands over its output split by key, so that each
/// part is encoded on its own core: every key is whole in exactly one part, and together the
/// parts are the answer of a run in one partition. A limit without keys stays in one part.
#[tokio::test]
async fn a_run_split_by_key_gives_each_key_wholly_to_one_partition() {
    let dir = sales_table();
    let split = FastTrack::new(fasttrack::FastTrackConfig {
        target_partitions: 4,
        ..Default::default()
    });
    let whole = FastTrack::new(fasttrack::FastTrackConfig {
        target_partitions: 1,
        ..Default::default()
    });
    let recent_per_network = r#"
        name = "recent"
        table = "social.sales"
        key = ["network"]
        limit = 2
        [[values]]
        column = "ts"
        [[values]]
        column = "product_id"
        [[order_by]]
        field = "ts"
        dir = "desc"
    "#;
    // The rows per key are kept by the crate's own operator, not a window over a full sort.
    let (_, plan) = planned(dir.path(), recent_per_network, Route::Fasttrack).await;
    let explained = publisher::engine::Engine::explain(&split, &plan.job("file:///"))
        .await
        .unwrap();
    assert!(
        explained.contains(
            "TopRowsExec: keys=1, limit=2, order=[__v0 DESC NULLS LAST, __v1 ASC NULLS LAST]"
        ) && !explained.contains("WindowAggExec"),
        "{explained}"
    );
    for spec in [recent_per_network, PER_NETWORK] {
        let (_, plan) = planned(dir.path(), spec, Route::Fasttrack).await;
        let parts = entries_by_partition(&split, &plan).await;
        assert!(parts.len() > 1, "one partition for {spec}");
        let mut seen = std::collections::HashSet::new();
        for entry in parts.iter().flatten() {
            assert!(seen.insert(&entry.key), "a key in two partitions: {entry}");
        }
        let mut joined: Vec<String> = parts.iter().flatten().map(ToString::to_string).collect();
        joined.sort();
        let one = entries_by_partition(&whole, &plan).await;
        assert_eq!(one.len(), 1);
        let mut one: Vec<String> = one.iter().flatten().map(ToString::to_string).collect();
        one.sort();
        assert!(!one.is_empty());
        assert_eq!(joined, one, "{spec}");
    }
    let top_overall = r#"
        name = "top"
        table = "social.sales"
        limit = 2
        [[values]]
        column = "product_id"
        [[order_by]]
        field = "product_id"
    "#;
    let (_, plan) = planned(dir.path(), top_overall, Route::Fasttrack).await;
    let parts = entries_by_partition(&split, &plan).await;
    assert_eq!(parts.len(), 1, "a limit over all rows is one partition");
}
