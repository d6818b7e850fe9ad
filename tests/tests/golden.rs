//! `tablecast run` over the fixture tables equals the golden answers (computed independently with
//! DuckDB, see fixtures/golden/oracle.py) byte for byte, through the directory catalog and
//! through a real Hive metastore; `tablecast plan` reports every guard and the route.

use std::path::PathBuf;

use tablecast_e2e::{
    Metastore, load_fixtures, orc_fixtures, run_tablecast, shared_fixtures, tablecast_command,
};

fn spec_path(name: &str) -> PathBuf {
    fixtures::specs_dir().join(format!("{name}.toml"))
}

fn assert_matches_golden(catalog: &str, spec: &str, path: &str) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join(format!("{spec}.jsonl"));
    let result = run_tablecast([
        "run",
        "--spec",
        spec_path(spec).to_str().unwrap(),
        "--metastore",
        catalog,
        "--out",
        out.to_str().unwrap(),
        "--path",
        path,
    ]);
    assert!(
        result.status.success(),
        "{spec} via {catalog}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let ours = std::fs::read(&out).unwrap();
    let golden = std::fs::read(fixtures::golden_dir().join(format!("{spec}.jsonl"))).unwrap();
    if ours != golden {
        let first_diff = ours
            .split(|b| *b == b'\n')
            .zip(golden.split(|b| *b == b'\n'))
            .find(|(a, b)| a != b);
        panic!(
            "{spec} via {catalog} differs from its golden file; first differing line:\n ours:   {}\n golden: {}",
            first_diff
                .map(|d| String::from_utf8_lossy(d.0).to_string())
                .unwrap_or_default(),
            first_diff
                .map(|d| String::from_utf8_lossy(d.1).to_string())
                .unwrap_or_default()
        );
    }
}

#[test]
fn fast_track_matches_golden_answers_over_the_directory_catalog() {
    let catalog = format!("file://{}", shared_fixtures().display());
    for spec in fixtures::SAMPLE_SPECS {
        assert_matches_golden(&catalog, spec, "fasttrack");
    }
}

/// The same tables written as ORC (by pyarrow's ORC writer) give the same answers, byte for
/// byte: footers give the rows and schema, the ORC scan the values.
#[test]
fn fast_track_reads_orc_copies_of_the_fixtures_like_their_golden_answers() {
    let catalog = format!("file://{}", orc_fixtures().display());
    let tables = run_tablecast(["tables", "--metastore", &catalog, "--json"]);
    assert!(tables.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&tables.stdout).unwrap();
    for t in listed.as_array().unwrap() {
        assert_eq!(t["format"], "orc", "{t}");
    }
    let referrals = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "social.referrals")
        .unwrap();
    assert_eq!(referrals["rows"], 100_000, "{referrals}");

    let plan = plan_json(&catalog, "top_products_by_network", &[]);
    assert_eq!(plan["path"], "fasttrack", "{plan}");
    assert_eq!(fixtures::named(&plan["guards"], "format")["detail"], "orc");

    for spec in fixtures::SAMPLE_SPECS {
        assert_matches_golden(&catalog, spec, "fasttrack");
    }
}

#[test]
fn fast_track_matches_golden_answers_over_a_real_metastore() {
    let metastore = Metastore::shared();
    load_fixtures(metastore, shared_fixtures());

    let tables = run_tablecast(["tables", "--metastore", &metastore.uri(), "--json"]);
    assert!(
        tables.status.success(),
        "{}",
        String::from_utf8_lossy(&tables.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&tables.stdout).unwrap();
    let find = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {listed}"))
    };
    assert_eq!(find("social.referrals")["rows"], 100_000);
    assert_eq!(find("social.referrals")["partitions"], 7);
    assert_eq!(find("activity.user_activity")["rows"], 100_000);

    for spec in fixtures::SAMPLE_SPECS {
        assert_matches_golden(&metastore.uri(), spec, "auto");
    }

    // The same plan through the metastore: row counts from its statistics, same guards and route.
    let plan = plan_json(&metastore.uri(), "top_products_by_network", &[]);
    assert_eq!(plan["path"], "fasttrack");
    let rows = fixtures::named(&plan["guards"], "row_count");
    assert_eq!(rows["measured"], 100_000);
    assert_eq!(plan["files"], 14);
    assert_limit_routes_to_fallback(
        &metastore.uri(),
        "recent_activity",
        ("TABLECAST_GUARDS__MAX_FILES", "2"),
        "guard file_count tripped: 3 > 2",
    );
}

fn plan_json(catalog: &str, spec: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let mut command = tablecast_command();
    command.args([
        "plan",
        "--json",
        "--spec",
        spec_path(spec).to_str().unwrap(),
        "--metastore",
        catalog,
    ]);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "plan {spec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `tablecast plan` of a sample spec with one guard limit set in the environment: the plan
/// routes to the fallback, for a reason that starts with `reason`.
fn assert_limit_routes_to_fallback(catalog: &str, spec: &str, limit: (&str, &str), reason: &str) {
    let plan = plan_json(catalog, spec, &[limit]);
    assert_eq!(plan["path"], "fallback");
    assert!(
        plan["reason"].as_str().unwrap().starts_with(reason),
        "{plan}"
    );
}

#[test]
fn plan_reports_every_guard_and_the_route_without_reading_rows() {
    let catalog = format!("file://{}", shared_fixtures().display());
    let plan = plan_json(&catalog, "top_products_by_network", &[]);
    assert_eq!(plan["path"], "fasttrack");
    assert_eq!(plan["reason"], "all guards within limits");
    let names: Vec<&str> = fixtures::pluck_str(&plan["guards"], "name");
    assert_eq!(
        names,
        [
            "format",
            "row_count",
            "column_count",
            "row_width",
            "file_count",
            "total_bytes",
            "partition_count",
            "memory_pool",
            "output_keys",
            "output_bytes",
            "entry_bytes"
        ]
    );
    let rows = fixtures::named(&plan["guards"], "row_count");
    assert_eq!(rows["measured"], 100_000);
    assert_eq!(plan["files"], 14);
    assert!(
        plan["engine_plan"]
            .as_str()
            .unwrap()
            .contains("physical plan"),
        "{plan}"
    );

    // A limit from the environment trips the row guard and routes to the fallback.
    assert_limit_routes_to_fallback(
        &catalog,
        "top_products_by_network",
        ("TABLECAST_GUARDS__MAX_ROWS", "1000"),
        "guard row_count tripped: 100000 > 1000",
    );
}

#[test]
fn plan_names_validation_problems_and_missing_tables() {
    let catalog = format!("file://{}", shared_fixtures().display());
    let dir = tempfile::tempdir().unwrap();
    // `tablecast plan` of a spec given as TOML: fails, returns its stderr.
    let plan_failure = |toml: &str| {
        let spec = dir.path().join("bad.toml");
        std::fs::write(&spec, toml).unwrap();
        let out = run_tablecast([
            "plan",
            "--spec",
            spec.to_str().unwrap(),
            "--metastore",
            &catalog,
        ]);
        assert!(!out.status.success(), "{toml}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = plan_failure(
        "name = \"bad\"\ntable = \"qa.awkward\"\nkey = [\"k\"]\n[[values]]\ncolumn = \"tags\"\n[[values]]\ncolumn = \"nope\"\n",
    );
    assert!(
        err.contains("values[0].column: column `tags` has nested type array<string>"),
        "{err}"
    );
    assert!(
        err.contains("values[1].column: unknown column `nope`"),
        "{err}"
    );
    let err = plan_failure("name = \"bad\"\ntable = \"qa.missing\"\n[[values]]\ncolumn = \"k\"\n");
    assert!(err.contains("qa.missing"), "{err}");
}
