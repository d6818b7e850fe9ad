//! The end-to-end harness: real servers on free loopback ports, stopped when their handle drops
//! (also on panic) and in any case when the test binary exits.
//!
//! - [`Metastore::shared`]: one real Hive metastore per test binary (10–20 s to start);
//! - [`Redis::start`]: one `redis-server` per simulated edge;
//! - [`Postgres::shared`]: one PostgreSQL server per test binary (about a second to start), a
//!   database per test ([`Postgres::create_database`]);
//! - [`tablecast_bin`] / [`run_tablecast`]: the built binary;
//! - [`ChildProcess`]: any other server (e.g. `tablecast edge serve`), with its log tail in errors;
//! - [`free_port`], [`wait_for_port`], [`StalledListener`] (accepts, never answers);
//! - [`Deployment`]: fixtures, state and N edges, driven through the binary;
//! - [`Dashboard`]: `tablecast serve` over the shared metastore, driven over its REST API;
//! - [`sample::write_warehouse`]: a small partitioned Parquet warehouse in a database of its own.
//!
//! Waits poll the port and are bounded; nothing sleeps blindly.

pub mod dashboard;
pub mod deployment;
pub mod freeze;
pub mod lookup;
pub mod metastore;
pub mod net;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod sample;
pub mod tablecast;

use std::path::PathBuf;

pub use dashboard::{Dashboard, DashboardSettings, Rest};
pub use deployment::{Deployment, assert_answers_golden, golden, lookup_url};
pub use freeze::FreezeProxy;
pub use metastore::Metastore;
pub use net::{StalledListener, free_port, loopback, wait_for_port};
pub use postgres::Postgres;
pub use process::{ChildProcess, spawn_tied};
pub use redis::Redis;
pub use tablecast::{
    generate_fixtures, load_fixtures, orc_fixtures, run_tablecast, shared_fixtures, tablecast_bin,
    tablecast_command,
};

/// The repository root (this crate is `<root>/tests`).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `scripts/lib.sh`, which holds the metastore launch recipe.
pub fn lib_sh() -> PathBuf {
    repo_root().join("scripts").join("lib.sh")
}

/// The Python venv with pyspark: `$TABLECAST_VENV`, else `$HOME/.cache/tablecast/venv`.
pub fn venv() -> PathBuf {
    if let Some(v) = std::env::var_os("TABLECAST_VENV") {
        return PathBuf::from(v);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache").join("tablecast").join("venv")
}

/// A command for a program of the venv (`python`, `spark-submit`…), with the venv's `bin` first
/// on `PATH` (spark-submit needs it to find `spark-class`).
pub fn venv_command(program: &str) -> std::process::Command {
    let bin = venv().join("bin");
    let mut path = std::ffi::OsString::from(&bin);
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    let mut command = std::process::Command::new(bin.join(program));
    command
        .env("PATH", path)
        .env("PYSPARK_PYTHON", bin.join("python"));
    command
}

/// A unique, identifier-safe name for a test's own database: `{prefix}_{pid}_{n}`.
pub fn unique_db(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every file under `dir`, recursively (panics on an unreadable folder: test tooling).
pub fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
