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

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
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

/// Serves `app` on `listener` with `limits` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: &HttpLimits,
    on_refusal: OnRefusal,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
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
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
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
