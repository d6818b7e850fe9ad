//! Loopback ports: finding free ones, waiting for listeners, and a listener that never answers.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

pub use fixtures::redis::free_port;

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

pub fn port_is_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}

/// Polls a TCP connect to `addr` until it succeeds or `timeout` passes.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if port_is_open(addr) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("nothing listens on {addr} after {} ms", timeout.as_millis());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP listener that accepts connections and never reads or answers: a server that hangs.
/// Connections stay open until the listener is dropped.
pub struct StalledListener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StalledListener {
    /// A Hive catalog connected to this listener (TCP works, no call is ever answered), with
    /// a 1 s connect timeout and `call_timeout_ms` per call.
    pub async fn catalog(
        &self,
        call_timeout_ms: u64,
    ) -> std::sync::Arc<dyn publisher::catalog::Catalog> {
        let config = publisher::catalog::CatalogConfig {
            connect_timeout_ms: 1_000,
            call_timeout_ms,
        };
        publisher::catalog::open(&self.thrift_uri(), &config)
            .await
            .expect("the stalled listener accepts TCP")
    }

    pub fn start() -> Self {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a loopback port");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("stalled-listener".into())
            .spawn(move || {
                let mut held = Vec::new();
                for stream in listener.incoming() {
                    if stop_flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(s) = stream {
                        held.push(s);
                    }
                }
            })
            .expect("starting the stalled listener thread");
        StalledListener {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, as catalogs and clients take it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn thrift_uri(&self) -> String {
        format!("thrift://{}", self.addr)
    }
}

impl Drop for StalledListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)); // wakes accept()
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
