//! One accept loop for Tablecast's HTTP services. The lookup service faces the open network
//! and the dashboard many analysts, so neither may let a slow or greedy client hold sockets
//! or workers: `axum::serve` runs hyper without a timer (no header timeout at all) and with
//! no cap on connections. Here:
//!
//! - a client must send each request's whole header within `header_read_timeout_ms`, and an
//!   idle keep-alive connection is closed when its next request does not arrive within it
//!   (hyper's header-read timer also runs while a connection waits for its next request);
//! - at most `max_connections` connections are served; one more is answered `503` with
//!   `Retry-After` and closed at once;
//! - at most `max_in_flight` requests run at once ([`InFlight`]); the service answers the
//!   others `503` in its own error format;
//! - on shutdown the listener closes, connections finish their request in flight and close,
//!   bounded by a grace period.
//!
//! [`Threads::Pinned`] serves each connection on one thread of its own pool, from accept to
//! close: a single-threaded runtime per thread, so a request's socket readiness, its handler and
//! its answer never wake another thread. On the shared work-stealing runtime a quarter of a
//! lookup's CPU went to waking workers and switching to them (bench/history.md).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits of one HTTP service (a section of its configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// A request's whole header must arrive within this; an idle keep-alive connection waits
    /// this long for its next request.
    pub header_read_timeout_ms: u64,
    /// Connections served at once; one more gets `503` with `Retry-After` and is closed.
    pub max_connections: usize,
    /// Requests handled at once over all connections; more get `503` with `Retry-After`.
    pub max_in_flight: usize,
    /// On shutdown, how long connections may take to finish their request in flight.
    pub shutdown_grace_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout_ms: 5_000,
            max_connections: 2_048,
            max_in_flight: 512,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// What a service is told when a limit refuses work, for its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A connection past `max_connections`.
    Connections,
    /// A request past `max_in_flight`.
    InFlight,
}

impl Refusal {
    /// The limit's name, as metrics label it.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Connections => "connections",
            Refusal::InFlight => "in_flight",
        }
    }
}

/// Called on every refusal (a service counts them in its metrics).
pub type OnRefusal = Arc<dyn Fn(Refusal) + Send + Sync>;

/// The requests-in-flight cap: a handler (or a middleware before them all) holds a permit
/// while it runs.
#[derive(Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    on_refusal: OnRefusal,
}

impl InFlight {
    pub fn new(limits: &HttpLimits, on_refusal: OnRefusal) -> Self {
        InFlight {
            permits: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            on_refusal,
        }
    }

    /// A permit, or `None` when `max_in_flight` requests already run (counted as a refusal).
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok();
        if permit.is_none() {
            (self.on_refusal)(Refusal::InFlight);
        }
        permit
    }
}

/// The answer to a connection past the cap, written on the socket before it is closed. The
/// body has the shape of both services' errors.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 83\r\n\r\n\
{\"error\":{\"code\":\"overloaded\",\"message\":\"too many connections; retry in a second\"}}";

/// Where a service's connections run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// On the caller's runtime, whose workers share (and steal) tasks.
    Shared,
    /// On this many threads of their own (0: one per core), each a single-threaded runtime; a
    /// connection goes to the thread serving the fewest and stays there. Handlers may use what
    /// the caller's runtime owns (a Redis connection, a pool): its I/O keeps running there.
    Pinned(usize),
}

thread_local! {
    static PINNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the caller runs on a thread of [`Threads::Pinned`]: a service may keep per-thread
/// state there (a connection of its own), which lives as long as the thread and its service.
pub fn on_pinned_thread() -> bool {
    PINNED.with(std::cell::Cell::get)
}

/// The threads of [`Threads::Pinned`]: each runs a current-thread runtime until stopped.
struct ConnectionPool {
    workers: Vec<Worker>,
    stop: tokio::sync::watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

struct Worker {
    runtime: tokio::runtime::Handle,
    /// Connections open on this thread.
    open: Arc<AtomicUsize>,
}

impl ConnectionPool {
    fn start(threads: usize) -> std::io::Result<ConnectionPool> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut pool = ConnectionPool {
            workers: Vec::with_capacity(threads),
            stop,
            threads: Vec::with_capacity(threads),
        };
        for i in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let mut stopped = stopped.clone();
            let thread = std::thread::Builder::new()
                .name(format!("http-conn-{i}"))
                .spawn(move || {
                    PINNED.with(|p| p.set(true));
                    runtime.block_on(async {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                })?;
            pool.workers.push(Worker {
                runtime: handle,
                open: Arc::new(AtomicUsize::new(0)),
            });
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// The worker serving the fewest connections.
    fn least_busy(&self) -> &Worker {
        self.workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
            .expect("a pool has at least one thread")
    }
}

impl Drop for ConnectionPool {
    /// Stops the threads (their connections with them) and waits for them.
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// What a connection receives: a request whose body is still arriving.
pub use hyper::body::Incoming;
/// The trait of what [`serve`] serves ([`App`]).
pub use hyper::service::Service;

/// An axum router as a hyper service.
pub type RouterService = TowerToHyperService<axum::Router>;

/// An axum router as [`serve`] takes it.
pub fn router_service(app: axum::Router) -> RouterService {
    TowerToHyperService::new(app)
}

/// What [`serve`] serves: a hyper service, cloned for each connection (an axum router through
/// [`router_service`], or a service that dispatches its hot paths itself).
pub trait App:
    hyper::service::Service<
        hyper::Request<Incoming>,
        Response = hyper::Response<axum::body::Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<axum::body::Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: impl App,
    limits: &HttpLimits,
    threads: Threads,
    on_refusal: OnRefusal,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let pool = match threads {
        Threads::Shared => None,
        Threads::Pinned(n) => Some(ConnectionPool::start(n)?),
    };
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms.max(1)))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(limits.header_read_timeout_ms.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            on_refusal(Refusal::Connections);
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            builder: builder.clone(),
            service: app.clone(),
            graceful: graceful.watcher(),
            peer,
            permit,
        };
        let Some(pool) = &pool else {
            tokio::spawn(connection.serve(stream));
            continue;
        };
        // The socket moves to the worker's own reactor: registered there, woken there.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "handing a connection to its thread failed");
                continue;
            }
        };
        let worker = pool.least_busy();
        let open = Arc::clone(&worker.open);
        open.fetch_add(1, Ordering::Relaxed);
        worker.runtime.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => connection.serve(stream).await,
                Err(e) => tracing::warn!(%peer, error = %e, "registering a connection failed"),
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = limits.shutdown_grace_ms,
            "connections still open after the shutdown grace; closing them"
        );
    }
    Ok(())
}

/// One accepted connection, before it is served.
struct Connection<S> {
    builder: auto::Builder<TokioExecutor>,
    service: S,
    graceful: Watcher,
    peer: std::net::SocketAddr,
    /// Held until the connection closes (`max_connections`).
    permit: OwnedSemaphorePermit,
}

impl<S: App> Connection<S> {
    async fn serve(self, stream: TcpStream) {
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), self.service);
        if let Err(e) = self.graceful.watch(connection.into_owned()).await {
            tracing::debug!(peer = %self.peer, error = %e, "connection ended");
        }
        drop(self.permit);
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(OVERLOADED).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request on an open connection: the body of the answer.
    async fn get(stream: &mut TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.ends_with(b"!") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(answer).unwrap();
        text.split_once("\r\n\r\n").unwrap().1.to_string()
    }

    #[tokio::test]
    async fn pinned_connections_stay_on_their_own_thread_and_spread_over_the_pool() {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                assert!(on_pinned_thread());
                format!("{}!", std::thread::current().name().unwrap_or("?"))
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let limits = HttpLimits::default();
            let on_refusal: OnRefusal = Arc::new(|_| {});
            serve(
                listener,
                router_service(app),
                &limits,
                Threads::Pinned(2),
                on_refusal,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        });
        let mut first = TcpStream::connect(addr).await.unwrap();
        let a = get(&mut first).await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        let b = get(&mut second).await;
        assert!(
            a.starts_with("http-conn-") && b.starts_with("http-conn-"),
            "{a} {b}"
        );
        assert_ne!(a, b, "the second open connection goes to the idle thread");
        for _ in 0..5 {
            assert_eq!(
                get(&mut first).await,
                a,
                "a connection never changes thread"
            );
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn the_refusal_says_its_own_length() {
        let text = std::str::from_utf8(OVERLOADED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(body.starts_with('{') && body.ends_with('}'));
    }
}
