//! Memory stays bounded when an output guard trips: a key-less list over a table whose answer
//! is ~200 MB of JSON in one value, computed by Spark (so no engine pool bounds it in this
//! process), trips `output_bytes` while `tablecast run` encodes it, and the peak RSS of that
//! process stays under its pool + 200 MB. Before, the encoder buffered the whole value and
//! checked its size only once it was complete. Measured by the harness (the process's own
//! high-water mark, `VmHWM` in /proc, read until it exits; Spark's JVM is not counted), not by
//! timing.
//! `TABLECAST_SKIP_SPARK=1` skips it.

use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use tablecast_e2e::tablecast_command;

const POOL: u64 = 64 << 20;
const OUTPUT: u64 = 16 << 20;

/// `big.blobs`: 200 000 rows of ~1 KB strings (about 200 MB as JSON, little as Parquet).
fn write_blobs(root: &std::path::Path) {
    let schema = Arc::new(Schema::new(vec![Field::new("blob", DataType::Utf8, false)]));
    let rows: Vec<String> = (0..1000)
        .map(|i| format!("{i:04}{}", "x".repeat(1020)))
        .collect();
    let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(rows))]).unwrap();
    let dir = root.join("big/blobs");
    std::fs::create_dir_all(&dir).unwrap();
    fixtures::write_parquet(&dir.join("part-0.parquet"), &vec![batch; 200]).unwrap();
}

/// Runs `command` to its end, reading its resident-set high-water mark (`VmHWM`, which only
/// grows) every 10 ms; returns its output and the last mark read, in bytes.
fn run_measured(mut command: std::process::Command) -> (std::process::Output, u64) {
    use std::process::Stdio;
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let (exited, finished) = std::sync::mpsc::channel();
    let output = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = exited.send(());
        out
    });
    let mut peak = 0;
    while finished.try_recv().is_err() {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (output.join().unwrap().unwrap(), peak)
}

#[test]
fn a_keyless_list_over_a_big_table_trips_while_encoding_with_bounded_memory() {
    if std::env::var_os("TABLECAST_SKIP_SPARK").is_some() {
        eprintln!("skipped: TABLECAST_SKIP_SPARK is set");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse");
    write_blobs(&warehouse);
    let spec = dir.path().join("everything.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"everything\"\ntable = \"big.blobs\"\nkey = []\n\
             [[values]]\ncolumn = \"blob\"\n\
             [limits]\nmemory_pool_bytes = {POOL}\nmax_output_bytes = {OUTPUT}\n\
             max_entry_bytes = {}\n",
            4u64 << 30
        ),
    )
    .unwrap();
    let mut command = tablecast_command();
    command
        .env("TABLECAST_STATE_DIR", dir.path().join("state"))
        .args(["run", "--path", "fallback", "--spec"])
        .arg(&spec)
        .arg("--metastore")
        .arg(format!("file://{}", warehouse.display()))
        .arg("--out")
        .arg(dir.path().join("out.jsonl"));
    let (out, peak) = run_measured(command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run must trip: {stderr}");
    assert!(peak > 0, "no VmHWM was read");
    assert!(
        stderr.contains("output_bytes") && stderr.contains(&OUTPUT.to_string()),
        "{stderr}"
    );
    eprintln!("peak RSS of `tablecast run`: {} MB", peak >> 20);
    assert!(
        peak < POOL + (200 << 20),
        "peak RSS {} MB over the pool ({} MB) + 200 MB",
        peak >> 20,
        POOL >> 20
    );
}
