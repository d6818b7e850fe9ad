//! A TEST DOUBLE for the network between a publisher and one edge: a TCP proxy in front of a
//! real redis-server that can be told to stop forwarding at an exact command (e.g. the edge
//! switch, whose script carries [`COMMIT_MARKER`]). Nothing is mocked behind it: the Redis is
//! real; only the wire can be frozen, which no real component lets a test time precisely.
//!
//! Once frozen, nothing a client sends is forwarded (on any connection) until
//! [`FreezeProxy::thaw_dropping`], which drops what was held back and closes every connection
//! (clients reconnect). Replies to commands forwarded before the freeze still flow.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first line of the edge's switch script (`edge-cache/src/scripts/commit.lua`).
pub const COMMIT_MARKER: &[u8] = b"-- tablecast:commit";

struct Shared {
    upstream: SocketAddr,
    marker: Mutex<Option<Vec<u8>>>,
    frozen: AtomicBool,
    connections: Mutex<Vec<TcpStream>>,
    accepted: std::sync::atomic::AtomicUsize,
}

pub struct FreezeProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FreezeProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> FreezeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            marker: Mutex::new(None),
            frozen: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
            accepted: std::sync::atomic::AtomicUsize::new(0),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                accepting.accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(accepting.upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                if let Ok(c) = client.try_clone() {
                    accepting.connections.lock().unwrap().push(c);
                }
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || forward_requests(client, server, &shared));
                std::thread::spawn(move || forward_replies(s2, c2));
            }
        });
        FreezeProxy { addr, shared }
    }

    /// Connections accepted so far (still open or not).
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Arms the proxy: the first client data containing `marker` is held back, and from then
    /// on everything clients send.
    pub fn freeze_on(&self, marker: &[u8]) {
        *self.shared.marker.lock().unwrap() = Some(marker.to_vec());
    }

    pub fn frozen(&self) -> bool {
        self.shared.frozen.load(Ordering::SeqCst)
    }

    /// Waits until the marker was seen; false after `timeout`.
    pub fn wait_frozen(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.frozen() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.frozen()
    }

    /// Drops what was held back, closes every connection and forwards normally again.
    pub fn thaw_dropping(&self) {
        *self.shared.marker.lock().unwrap() = None;
        for c in self.shared.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        self.shared.frozen.store(false, Ordering::SeqCst);
    }
}

fn forward_requests(mut client: TcpStream, mut server: TcpStream, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so that a marker split over two reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if shared.frozen.load(Ordering::SeqCst) {
            continue;
        }
        let marker = shared.marker.lock().unwrap().clone();
        if let Some(marker) = marker {
            let mut window = std::mem::take(&mut tail);
            window.extend_from_slice(chunk);
            if window.windows(marker.len()).any(|w| w == marker.as_slice()) {
                shared.frozen.store(true, Ordering::SeqCst);
                continue;
            }
            let keep = marker.len().saturating_sub(1).min(window.len());
            tail = window[window.len() - keep..].to_vec();
        }
        if server.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Both);
}

fn forward_replies(mut server: TcpStream, mut client: TcpStream) {
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = conn.try_clone().unwrap();
                    let _ = std::io::copy(&mut reader, &mut conn);
                });
            }
        });
        addr
    }

    fn round_trip(conn: &mut TcpStream, data: &[u8]) -> Option<Vec<u8>> {
        conn.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        conn.write_all(data).ok()?;
        let mut got = vec![0u8; data.len()];
        conn.read_exact(&mut got).ok()?;
        Some(got)
    }

    #[test]
    fn forwards_until_the_marker_then_holds_everything_until_thawed() {
        let proxy = FreezeProxy::start(echo_server());
        let mut conn = TcpStream::connect(proxy.addr()).unwrap();
        assert_eq!(
            round_trip(&mut conn, b"hello").as_deref(),
            Some(&b"hello"[..])
        );
        proxy.freeze_on(b"XYZ");
        // Split over two writes: still seen.
        assert_eq!(round_trip(&mut conn, b"abc").as_deref(), Some(&b"abc"[..]));
        assert_eq!(round_trip(&mut conn, b"..X"), Some(b"..X".to_vec()));
        assert_eq!(round_trip(&mut conn, b"YZ!"), None);
        assert!(proxy.frozen());
        let mut other = TcpStream::connect(proxy.addr()).unwrap();
        assert_eq!(
            round_trip(&mut other, b"later"),
            None,
            "frozen for everyone"
        );
        proxy.thaw_dropping();
        assert!(!proxy.frozen());
        let mut fresh = TcpStream::connect(proxy.addr()).unwrap();
        assert_eq!(
            round_trip(&mut fresh, b"again").as_deref(),
            Some(&b"again"[..])
        );
    }
}
