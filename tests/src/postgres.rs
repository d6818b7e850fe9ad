//! A real PostgreSQL server (Debian's `postgresql` package) in a temporary data folder on a free
//! loopback port: [`Postgres::shared`], one per test binary, or [`Postgres::start`], one of a
//! test's own. Tests keep out of each other's way with a database each
//! ([`Postgres::create_database`]).
//!
//! The binaries come from `$TABLECAST_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else
//! `PATH`. `postgres` refuses to run as root: when the tests do, `initdb` and the server run as
//! `nobody`, in folders handed to that user. The server is started through
//! [`crate::spawn_tied`], whose parent-death signal is set after the switch of user (std changes
//! the credentials before `pre_exec` hooks run, and a change of credentials clears the signal),
//! so the server dies with the test binary; its backends follow their postmaster.
//!
//! Trust authentication, `fsync` off: a throwaway server for tests, never for data.

use std::ffi::CString;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::net::{free_port, loopback};
use crate::process::ChildProcess;

/// The superuser `initdb` creates; every URL connects as it.
pub const USER: &str = "tablecast";

/// initdb, the server's start and its first answer, with room for a loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// One `createdb` or `pg_isready` run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Postgres {
    port: u16,
    bin: PathBuf,
    /// The server's folder: `data/` (the cluster), the logs and the Unix socket.
    dir: PathBuf,
    started_in: Duration,
    /// Held while a client tool runs against the server (createdb runs one at a time).
    process: Mutex<ChildProcess>,
}

impl Postgres {
    /// The server of this test binary, started on first use. Panics (in every test that asks)
    /// with the reason and the server's log tail if it cannot start.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<std::result::Result<Postgres, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| Postgres::start().map_err(|e| format!("{e:#}")));
        match shared {
            Ok(p) => p,
            Err(e) => panic!("the shared PostgreSQL server is unavailable: {e}"),
        }
    }

    /// A server of the caller's own, stopped (and its folder removed) when dropped.
    pub fn start() -> Result<Postgres> {
        let bin = bin_dir()?;
        let base = std::env::temp_dir().join("tablecast-e2e");
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        crate::metastore::remove_stale_state(&base);
        let started = Instant::now();
        let dir = unique_dir(&base)?;
        let run_as = unprivileged_user()?;
        if let Some((uid, gid)) = run_as {
            // initdb creates `data/` in it, the server its socket and lock files.
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .with_context(|| format!("handing {} to uid {uid}", dir.display()))?;
        }
        let data = dir.join("data");

        let mut initdb = server_command(&bin, "initdb", &dir, run_as);
        initdb.arg("-D").arg(&data).args([
            "-U",
            USER,
            "--auth=trust",
            "-N",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        ChildProcess::spawn("initdb", initdb, &dir.join("initdb.log"))?
            .wait_success(START_TIMEOUT)
            .context("initdb failed")?;

        let mut last_error = None;
        // Further attempts cover a port taken between choosing and binding it.
        for _attempt in 1..=3 {
            let port = free_port();
            let mut server = server_command(&bin, "postgres", &dir, run_as);
            server
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
                .arg(&dir)
                .args([
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ]);
            let mut process = ChildProcess::spawn("postgres", server, &dir.join("postgres.log"))?;
            let addr = loopback(port);
            let remaining = START_TIMEOUT.saturating_sub(started.elapsed());
            let outcome = process
                .wait_for_port(addr, remaining)
                .and_then(|_| wait_ready(&bin, &dir, addr, &mut process, remaining));
            match outcome {
                Ok(()) => {
                    let started_in = started.elapsed();
                    eprintln!(
                        "postgres {} ready in {:.1} s (as {}, folder {})",
                        url_of(port, "postgres"),
                        started_in.as_secs_f64(),
                        if run_as.is_some() { "nobody" } else { "self" },
                        dir.display()
                    );
                    return Ok(Postgres {
                        port,
                        bin,
                        dir,
                        started_in,
                        process: Mutex::new(process),
                    });
                }
                Err(e) => {
                    let exited = !process.is_running();
                    process.kill();
                    if !exited {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("postgres did not start")))
    }

    /// A fresh, empty database named after `prefix` (see [`crate::unique_db`]); its URL.
    /// Panics with the reason (test tooling).
    pub fn create_database(&self, prefix: &str) -> String {
        self.try_create_database(prefix)
            .unwrap_or_else(|e| panic!("creating a database on {}: {e:#}", self.url("postgres")))
    }

    /// [`Postgres::create_database`], failing instead of panicking.
    pub fn try_create_database(&self, prefix: &str) -> Result<String> {
        let db = crate::unique_db(prefix);
        let mut server = self.process.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = server.exit_status() {
            bail!(
                "the server exited ({status}); log {}:\n{}",
                server.log_path().display(),
                server.log_tail(40)
            );
        }
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .arg(&db)
            .env("PGCONNECT_TIMEOUT", "10");
        ChildProcess::spawn("createdb", createdb, &self.dir.join("client.log"))?
            .wait_success(CLIENT_TIMEOUT)
            .with_context(|| format!("createdb {db}"))?;
        Ok(self.url(&db))
    }

    /// Runs one SQL command in database `db` with `psql` and returns what it printed, unaligned
    /// and without headers (`SELECT count(*) …` gives `3`); fails with psql's message on an
    /// error. Bounded by a connect timeout and a statement timeout.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let mut psql = Command::new(self.bin.join("psql"));
        psql.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            USER,
            "-d",
            db,
        ])
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGOPTIONS", "-c statement_timeout=30000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let output = crate::spawn_tied(psql)
            .context("starting psql")?
            .wait_with_output()
            .context("waiting for psql")?;
        if !output.status.success() {
            bail!(
                "psql -d {db} -c {sql:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// `postgres://tablecast@127.0.0.1:PORT/{db}`
    pub fn url(&self, db: &str) -> String {
        url_of(self.port, db)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// The folder holding the PostgreSQL binaries this server runs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The server's folder (`data/`, the logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id (the postmaster).
    pub fn pid(&self) -> u32 {
        self.process.lock().unwrap_or_else(|e| e.into_inner()).pid()
    }

    /// How long initdb and the start took together.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .log_tail(lines)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.process
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn url_of(port: u16, db: &str) -> String {
    format!("postgres://{USER}@127.0.0.1:{port}/{db}")
}

/// `<base>/postgres-<pid>-<n>`, new and empty (the pid lets a later run remove it once this
/// binary is gone: a shared server is never dropped).
fn unique_dir(base: &Path) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = base.join(format!(
        "postgres-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// A command for a server-side program (`initdb`, `postgres`), run as `run_as` when given, in
/// `dir` (the tests' working folder may not be readable by that user).
fn server_command(bin: &Path, program: &str, dir: &Path, run_as: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(bin.join(program));
    command
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env_remove("PGDATA");
    if let Some((uid, gid)) = run_as {
        // std sets the group, drops supplementary groups and sets the user in the child before
        // spawn_tied's pre_exec hook sets the parent-death signal.
        command.uid(uid).gid(gid).env("HOME", dir);
    }
    command
}

/// `None` unless running as root; then the uid and gid of `nobody`, whom the server runs as.
fn unprivileged_user() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("nobody").expect("no NUL");
    // SAFETY: getpwnam returns null or a pointer to static storage, read at once; the tests
    // call it only here (it is not reentrant, and a race would at worst read another entry).
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        bail!(
            "running as root, and postgres refuses to: no user `nobody` to run it as \
             (run the tests as another user)"
        );
    }
    // SAFETY: non-null, just returned by getpwnam.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some((uid, gid)))
}

/// Waits until the server answers (it listens before it accepts queries): `pg_isready` until it
/// says so; fails early if the server exits, and on timeout, with the log tail either way.
fn wait_ready(
    bin: &Path,
    dir: &Path,
    addr: SocketAddr,
    server: &mut ChildProcess,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let mut probe = Command::new(bin.join("pg_isready"));
        probe.args([
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "-U",
            USER,
            "-d",
            "postgres",
            "-t",
            "5",
        ]);
        let ready = ChildProcess::spawn("pg_isready", probe, &dir.join("client.log"))?
            .wait_timeout(CLIENT_TIMEOUT)?
            .success();
        if ready {
            return Ok(());
        }
        if let Some(status) = server.exit_status() {
            bail!(
                "postgres exited ({status}) before accepting connections on {addr}; log {}:\n{}",
                server.log_path().display(),
                server.log_tail(40)
            );
        }
        if started.elapsed() > timeout {
            bail!(
                "postgres did not accept connections on {addr} within {} s; log {}:\n{}",
                timeout.as_secs(),
                server.log_path().display(),
                server.log_tail(40)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The folder with `initdb`, `postgres`, `createdb`, `pg_isready` and `psql`: `$TABLECAST_PG_BIN`, else
/// the newest `/usr/lib/postgresql/<major>/bin` (Debian's packages, not on `PATH`), else the
/// folder of `postgres` on `PATH`.
pub fn bin_dir() -> Result<PathBuf> {
    const HINT: &str = "run scripts/test once, which installs the `postgresql` package, or set \
                        TABLECAST_PG_BIN to a folder with initdb, postgres, createdb and pg_isready";
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "createdb", "pg_isready", "psql"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    if let Some(dir) = std::env::var_os("TABLECAST_PG_BIN") {
        let dir = PathBuf::from(dir);
        if !has_all(&dir) {
            bail!(
                "TABLECAST_PG_BIN={} lacks initdb, postgres, createdb, pg_isready or psql; {HINT}",
                dir.display()
            );
        }
        return Ok(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_all(bin))
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("postgres"))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|dir| has_all(dir));
    on_path.ok_or_else(|| {
        anyhow!(
            "no PostgreSQL server binaries (none in /usr/lib/postgresql/*/bin, none on PATH={}); \
             {HINT}",
            std::env::var_os("PATH")
                .unwrap_or_default()
                .to_string_lossy()
        )
    })
}
