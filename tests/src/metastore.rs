//! A real Hive metastore (Hive 2.3 from pyspark's jars, Derby in a temporary state folder),
//! started once per test binary: it takes 10–20 s to come up, so all tests share it and keep
//! out of each other's way by using their own database names.
//!
//! The launch recipe is `metastore_exec` in `scripts/lib.sh`, the same that `scripts/metastore`
//! uses by hand. `TABLECAST_TEST_METASTORE=thrift://host:port` makes tests use a running one
//! instead (e.g. from `scripts/metastore`), which saves the start-up while iterating.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use publisher::catalog::{Catalog, CatalogConfig, HiveCatalog};

use crate::net::{free_port, loopback};
use crate::process::ChildProcess;

/// Java start-up plus Derby schema creation, with room for a loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Metastore {
    addr: SocketAddr,
    state: PathBuf,
    warehouse: PathBuf,
    started_in: Duration,
    /// `None` for an external metastore. Never dropped (it lives in a static): the process dies
    /// with the test binary through its parent-death signal.
    process: Option<Mutex<ChildProcess>>,
}

impl Metastore {
    /// The metastore of this test binary, started on first use. Panics (in every test that asks)
    /// with the reason and the server's log tail if it cannot start.
    pub fn shared() -> &'static Metastore {
        static SHARED: OnceLock<std::result::Result<Metastore, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            // On a thread of its own: the start checks the server with an async client, and the
            // caller may already be inside a Tokio runtime.
            std::thread::spawn(|| Metastore::start().map_err(|e| format!("{e:#}")))
                .join()
                .unwrap_or_else(|_| Err("the metastore start panicked".into()))
        });
        match shared {
            Ok(m) => m,
            Err(e) => panic!("the shared Hive metastore is unavailable: {e}"),
        }
    }

    fn start() -> Result<Metastore> {
        if let Ok(uri) = std::env::var("TABLECAST_TEST_METASTORE") {
            return Metastore::external(&uri);
        }
        let base = std::env::temp_dir().join("tablecast-e2e");
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        remove_stale_state(&base);
        let started = Instant::now();
        let mut last_error = None;
        // A second attempt covers a port taken between choosing and binding it.
        for attempt in 1..=2 {
            let state = base.join(format!("metastore-{}-{attempt}", std::process::id()));
            let _ = std::fs::remove_dir_all(&state);
            std::fs::create_dir_all(&state)
                .with_context(|| format!("creating {}", state.display()))?;
            let port = free_port();
            let mut command = Command::new("bash");
            command
                .arg("-c")
                .arg(r#". "$0" && metastore_exec "$1" "$2""#)
                .arg(crate::lib_sh())
                .arg(&state)
                .arg(port.to_string())
                .env("TABLECAST_VENV", crate::venv())
                .env(
                    "HIVE_LOG_LEVEL",
                    std::env::var("HIVE_LOG_LEVEL").unwrap_or_else(|_| "WARN".into()),
                );
            let mut process =
                ChildProcess::spawn("hive metastore", command, &state.join("metastore.log"))?;
            let addr = loopback(port);
            let outcome = process
                .wait_for_port(addr, START_TIMEOUT)
                .and_then(|_| check_answers(addr, START_TIMEOUT.saturating_sub(started.elapsed())));
            match outcome {
                Ok(()) => {
                    let started_in = started.elapsed();
                    eprintln!(
                        "hive metastore thrift://{addr} ready in {:.1} s (state {})",
                        started_in.as_secs_f64(),
                        state.display()
                    );
                    return Ok(Metastore {
                        addr,
                        warehouse: state.join("warehouse"),
                        state,
                        started_in,
                        process: Some(Mutex::new(process)),
                    });
                }
                Err(e) => {
                    let exited = !process.is_running();
                    process.kill();
                    if !exited {
                        return Err(
                            e.context(format!("metastore log {}", process.log_path().display()))
                        );
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("metastore did not start")))
    }

    fn external(uri: &str) -> Result<Metastore> {
        let address = uri.strip_prefix("thrift://").with_context(|| {
            format!("TABLECAST_TEST_METASTORE={uri}: expected thrift://host:port")
        })?;
        let addr = address
            .to_socket_addrs()
            .with_context(|| format!("resolving {address}"))?
            .next()
            .with_context(|| format!("{address} resolves to nothing"))?;
        check_answers(addr, Duration::from_secs(10))?;
        let state = std::env::temp_dir()
            .join("tablecast-e2e")
            .join(format!("external-{}", std::process::id()));
        std::fs::create_dir_all(state.join("warehouse"))?;
        Ok(Metastore {
            addr,
            warehouse: state.join("warehouse"),
            state,
            started_in: Duration::ZERO,
            process: None,
        })
    }

    /// `thrift://127.0.0.1:PORT`
    pub fn uri(&self) -> String {
        format!("thrift://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, as `HiveCatalog::connect` and `fixtures::metastore::register` take it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The metastore's default warehouse folder (`hive.metastore.warehouse.dir`).
    pub fn warehouse(&self) -> &Path {
        &self.warehouse
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// How long the start took (zero for an external metastore).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    pub fn log_tail(&self, lines: usize) -> String {
        match &self.process {
            Some(p) => p.lock().unwrap_or_else(|e| e.into_inner()).log_tail(lines),
            None => String::from("(external metastore: no log)"),
        }
    }

    /// A catalog client on this metastore.
    pub async fn catalog(&self) -> HiveCatalog {
        HiveCatalog::connect(&self.address(), &CatalogConfig::default())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connecting to the shared metastore: {e}\n{}",
                    self.log_tail(30)
                )
            })
    }
}

/// Waits until the metastore answers a Thrift call (listening precedes being able to answer).
fn check_answers(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = async {
                let catalog =
                    HiveCatalog::connect(&addr.to_string(), &CatalogConfig::default()).await?;
                catalog.databases().await
            };
            match attempt.await {
                Ok(dbs) if dbs.iter().any(|d| d == "default") => return Ok(()),
                Ok(dbs) => bail!("metastore at {addr} lists databases {dbs:?}, without `default`"),
                Err(e) if Instant::now() > deadline => {
                    bail!("metastore at {addr} does not answer: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
}

/// Removes the state of metastores and PostgreSQL servers whose test binary is gone (a shared
/// one lives in a static, which is never dropped).
pub(crate) fn remove_stale_state(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("metastore-")
            .or_else(|| name.strip_prefix("external-"))
            .or_else(|| name.strip_prefix("postgres-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok());
        let Some(pid) = pid else { continue };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
