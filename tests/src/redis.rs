//! One `redis-server` per simulated edge, on a free loopback port, persisting nothing.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::net::{free_port, loopback};
use crate::process::ChildProcess;

/// How long a fresh redis-server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    process: Option<ChildProcess>,
    starts: u32,
}

impl Redis {
    /// Starts a redis-server on a free port; panics with the server's log if it does not come up.
    pub fn start() -> Redis {
        Redis::try_start().unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn try_start() -> Result<Redis> {
        let dir = tempfile::Builder::new()
            .prefix("tablecast-redis-")
            .tempdir()
            .context("creating a redis dir")?;
        let mut redis = Redis {
            port: free_port(),
            dir,
            process: None,
            starts: 0,
        };
        redis.launch()?;
        Ok(redis)
    }

    fn launch(&mut self) -> Result<()> {
        self.starts += 1;
        let log = self.dir.path().join(format!("redis-{}.log", self.starts));
        let mut command = Command::new(redis_server());
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ])
            .arg("--dir")
            .arg(self.dir.path());
        let mut process =
            ChildProcess::spawn(&format!("redis-server :{}", self.port), command, &log)?;
        process.wait_for_port(loopback(self.port), START_TIMEOUT)?;
        self.process = Some(process);
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.is_running())
    }

    /// Kills the server (SIGKILL, like a crashed edge); its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Starts it again on the same port, empty (as an edge whose Redis came back after a crash).
    pub fn restart(&mut self) {
        self.kill();
        self.launch()
            .unwrap_or_else(|e| panic!("restarting redis on port {}: {e:#}", self.port));
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .as_ref()
            .map(|p| p.log_tail(lines))
            .unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `$TABLECAST_REDIS_SERVER` or `redis-server` from `PATH`.
fn redis_server() -> PathBuf {
    std::env::var_os("TABLECAST_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}
