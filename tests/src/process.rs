//! Child processes that cannot outlive the test binary.
//!
//! Every child is started by one long-lived spawner thread with `PR_SET_PDEATHSIG = SIGKILL`
//! (the kernel ties the signal to the *thread* that forked, so forking from a short-lived test
//! thread would kill a shared server when the first test ends) and in a process group of its own,
//! which [`ChildProcess`] kills on drop — also when a test panics. A process kept in a `static`
//! (the shared metastore) is never dropped; the death signal ends it when the binary exits.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("e2e-spawner".into())
            .spawn(move || {
                // The sender lives in a static: this loop, and so the thread, lasts as long as
                // the process, which is what PR_SET_PDEATHSIG needs.
                while let Ok((mut command, reply)) = rx.recv() {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("starting the e2e spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `command` so that it dies with this process (SIGKILL on parent death) and leads its
/// own process group.
pub fn spawn_tied(mut command: Command) -> io::Result<Child> {
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe functions
    // (prctl, getppid) without allocating.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited before the child started"));
            }
            Ok(())
        });
    }
    command.process_group(0);
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, tx))
        .map_err(|_| io::Error::other("e2e spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("e2e spawner thread is gone"))?
}

/// A running server or tool: output goes to a log file, whose tail every error message carries.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl ChildProcess {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log {}", log.display()))?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let program = command.get_program().to_string_lossy().into_owned();
        let child = spawn_tied(command).with_context(|| format!("starting {name} ({program})"))?;
        Ok(ChildProcess {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            exited: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log (at most 64 KiB are read).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// `None` while running, the exit status once it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// Waits until `addr` accepts TCP connections; fails early if the process exits, and on
    /// timeout, with the log tail either way.
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            if crate::net::port_is_open(addr) {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.exit_status() {
                bail!(
                    "{} exited ({status}) before listening on {addr}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(40)
                );
            }
            if started.elapsed() > timeout {
                return Err(self.failure(format!(
                    "did not listen on {addr} within {} s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `<name> <what>; log <path>:` and the log's tail, for a failure to report.
    fn failure(&self, what: String) -> anyhow::Error {
        anyhow::anyhow!(
            "{} {what}; log {}:\n{}",
            self.name,
            self.log.display(),
            self.log_tail(40)
        )
    }

    /// Waits for the process to exit by itself; on timeout kills it and fails with the log tail.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return Ok(status);
            }
            if started.elapsed() > timeout {
                self.kill();
                return Err(self.failure(format!("did not finish within {} s", timeout.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit successfully; fails with the log tail otherwise.
    pub fn wait_success(&mut self, timeout: Duration) -> Result<()> {
        let status = self.wait_timeout(timeout)?;
        if !status.success() {
            bail!(
                "{} failed ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                self.log_tail(40)
            );
        }
        Ok(())
    }

    /// Kills the whole process group (SIGKILL) and reaps the child.
    pub fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exited.get_or_insert(status);
        }
    }

    /// SIGTERM to the group, up to `grace` for it to exit, then SIGKILL.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.is_running() {
            self.signal_group(libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
        self.exited
    }

    fn signal_group(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain syscall; the group is the child's own (process_group(0) at spawn).
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a file, or a note that it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let read = || -> io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let all: Vec<&str> = text.lines().collect();
        Ok(all[all.len().saturating_sub(lines)..].join("\n"))
    };
    read().unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}
