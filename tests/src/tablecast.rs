//! The built `tablecast` binary, for tests that run it as a user would.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

/// `$TABLECAST_BIN`, else `tablecast` in the target folder this test binary was built into
/// (`<target>/<profile>/deps/<test>` → `<target>/<profile>/tablecast`). `cargo build` (or
/// `scripts/test`) builds it; `cargo test -p tablecast-e2e` alone does not.
pub fn tablecast_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("TABLECAST_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("locating the test binary");
    let mut dir = exe
        .parent()
        .expect("test binary has a folder")
        .to_path_buf();
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir.pop();
    }
    dir.join("tablecast")
}

/// A `Command` for the binary with a clean configuration: no `tablecast.toml` from the current
/// folder (it runs in a temporary one unless the caller changes it) and no inherited
/// `TABLECAST_*` settings apart from those the caller sets.
pub fn tablecast_command() -> Command {
    let bin = tablecast_bin();
    assert!(
        bin.is_file(),
        "{} does not exist: build it first (`cargo build --bin tablecast`) or set TABLECAST_BIN",
        bin.display()
    );
    let mut command = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TABLECAST_") {
            command.env_remove(key);
        }
    }
    command.current_dir(std::env::temp_dir());
    command
}

/// Runs `tablecast ARGS…` to completion and returns its output (whatever the exit code).
pub fn run_tablecast<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = tablecast_command();
    command.args(args);
    command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

/// `tablecast fixtures generate --out DIR` (scale 1, default seed); panics with its stderr.
pub fn generate_fixtures(out: &std::path::Path) {
    let result = run_tablecast([
        "fixtures".as_ref(),
        "generate".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        result.status.success(),
        "fixtures generate: {}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// Scale-1 fixtures, generated once per test binary.
pub fn shared_fixtures() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("tablecast-fixtures-")
            .tempdir()
            .expect("temp dir");
        generate_fixtures(dir.path());
        dir
    })
    .path()
}

/// ORC copies of [`shared_fixtures`] (fixtures/to_orc.py in the venv), made once per test binary.
pub fn orc_fixtures() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("tablecast-orc-fixtures-")
            .tempdir()
            .expect("temp dir");
        let out = crate::venv_command("python")
            .arg(crate::repo_root().join("fixtures/to_orc.py"))
            .arg(shared_fixtures())
            .arg(dir.path())
            .output()
            .expect("running fixtures/to_orc.py");
        assert!(
            out.status.success(),
            "fixtures/to_orc.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}

/// `tablecast fixtures load`: registers a warehouse's tables in a metastore (idempotent); panics
/// with its stderr and the metastore's log tail.
pub fn load_fixtures(metastore: &crate::Metastore, warehouse: &std::path::Path) {
    let uri = metastore.uri();
    let result = run_tablecast([
        "fixtures".as_ref(),
        "load".as_ref(),
        "--metastore".as_ref(),
        uri.as_ref(),
        "--warehouse".as_ref(),
        warehouse.as_os_str(),
    ]);
    assert!(
        result.status.success(),
        "fixtures load: {}\n{}",
        String::from_utf8_lossy(&result.stderr),
        metastore.log_tail(20)
    );
}
