//! `deploy/` for operators who run Prometheus and Grafana: the scrape config and the alert rules
//! pass `promtool check`, the rules pass their own `promtool test rules` cases, and every
//! metric the rules and the Grafana dashboard name is one the services register.
//!
//! promtool comes from `TABLECAST_PROMTOOL` (scripts/test sets it, unpacking Debian's
//! `prometheus` package into the cache when no `promtool` is on PATH) or PATH.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use tablecast_e2e::repo_root;

fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("TABLECAST_PROMTOOL") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("promtool"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "promtool not found: run the tests through scripts/test (it fetches promtool), put \
             promtool on PATH, or point TABLECAST_PROMTOOL at it"
        )
    })
}

fn run_promtool(args: &[&str]) {
    let deploy = repo_root().join("deploy");
    let out = Command::new(promtool())
        .args(args)
        .current_dir(&deploy)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_scrape_config_and_alert_rules_pass_promtool() {
    run_promtool(&["check", "config", "prometheus.yml"]);
    run_promtool(&["check", "rules", "alerts.yml"]);
    run_promtool(&["test", "rules", "alerts_test.yml"]);
}

/// Every `tablecast_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("tablecast_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Not a word inside another (e.g. a job label `tablecast-lookup` has no underscore).
        let before = rest[..i].chars().last();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The names the services register: string literals passed to a metric constructor
/// (`Opts::new("…"`, `HistogramOpts::new("…"`, `IntCounter::new("…"`…) in their sources.
fn registered(dirs: &[&Path]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for part in source.split("::new(").skip(1) {
                let part = part.trim_start();
                if let Some(literal) = part.strip_prefix("\"tablecast_") {
                    let end = literal.find('"').unwrap();
                    names.insert(format!("tablecast_{}", &literal[..end]));
                }
            }
        }
    }
    names
}

#[test]
fn every_metric_the_rules_and_the_dashboard_name_is_exported() {
    let root = repo_root();
    let exported = registered(&[
        &root.join("edge-cache/src/lookup"),
        &root.join("dashboard-api/src"),
    ]);
    // Histograms are scraped as `_bucket`, `_sum` and `_count` series.
    let is_exported = |name: &str| {
        exported.contains(name)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s).is_some_and(|n| exported.contains(n)))
    };
    assert!(
        exported.contains("tablecast_lookup_requests_total") && exported.len() > 15,
        "the scan found the services' metrics: {exported:?}"
    );
    for file in ["deploy/alerts.yml", "deploy/grafana/tablecast.json"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let named = metric_names(&text);
        assert!(named.len() >= 5, "{file} names metrics: {named:?}");
        let unknown: Vec<&String> = named.iter().filter(|n| !is_exported(n)).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics no service exports: {unknown:?} (exported: {exported:?})"
        );
    }
    // The dashboard JSON is valid JSON with panels.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/tablecast.json")).unwrap(),
    )
    .unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 10);
}
