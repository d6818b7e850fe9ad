//! This instance's place among the `tablecast serve` instances sharing one database.
//!
//! Jobs need nothing from here: any instance's runners claim them from the store (leases,
//! `SKIP LOCKED`), and a dead instance's jobs are re-queued by any instance's reaper. What must
//! happen once per cluster — trigger firings and the reconcile loop — runs on the instance that
//! holds the *coordinator* role, a lease in the store renewed every third of
//! `coordinator_ttl_ms`; when its holder dies, another instance takes it after the TTL. (On
//! SQLite, one server per database file, the role is always this instance's.) News from the
//! other instances (a job queued, an event appended) arrives through the store's listener and
//! wakes runners and event streams here as local news does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::AppState;
use crate::store::{Backend, Notice};

/// The role whose holder runs triggers and the reconcile loop.
pub const COORDINATOR: &str = "coordinator";

/// A name for this process, unique in the cluster: `host-pid-random`.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Whether this instance holds the coordinator role now.
#[derive(Clone, Default)]
pub struct Coordinator(Arc<AtomicBool>);

impl Coordinator {
    pub fn is_held(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, held: bool) -> bool {
        self.0.swap(held, Ordering::AcqRel)
    }
}

/// Takes part in the cluster: tries for the coordinator role once before returning (so that
/// a lone instance coordinates from its first tick), then keeps renewing or contending for it,
/// and forwards the cluster's notices, until shutdown. The role is given up on shutdown.
pub async fn join(state: &AppState) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if state.store.backend() == Backend::Sqlite {
        state.coordinator.set(true);
        return tasks;
    }
    contend(state).await;
    let leader = state.clone();
    tasks.push(tokio::spawn(async move {
        let every = Duration::from_millis(leader.config.coordinator_ttl_ms / 3);
        loop {
            tokio::select! {
                () = leader.shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => contend(&leader).await,
            }
        }
        if leader.coordinator.set(false)
            && let Err(e) = leader
                .store
                .resign(COORDINATOR, &leader.instance)
                .await
        {
            tracing::warn!(error = %e, "giving up the coordinator role failed; it expires by itself");
        }
    }));
    let listener = state.clone();
    tasks.push(tokio::spawn(async move { forward_notices(listener).await }));
    tasks
}

async fn contend(state: &AppState) {
    let ttl = state.config.coordinator_ttl_ms as i64;
    let held = match state.store.lead(COORDINATOR, &state.instance, ttl).await {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(error = %e, "renewing the coordinator role failed; standing down until it succeeds");
            false
        }
    };
    if state.coordinator.set(held) != held {
        tracing::info!(
            instance = %state.instance,
            held,
            "coordinator role {}",
            if held { "taken" } else { "lost" }
        );
    }
}

/// Hands the cluster's notices to this instance's runners and event streams, reconnecting
/// after a failure (both also poll, so a notice lost meanwhile only delays).
async fn forward_notices(state: AppState) {
    loop {
        let mut listener = match state.store.listen().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "listening to the store failed; retrying");
                tokio::select! {
                    () = state.shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let notice = tokio::select! {
                () = state.shutdown.cancelled() => return,
                n = listener.recv() => n,
            };
            match notice {
                Ok(Notice::Jobs) => state.wake.notify_waiters(),
                Ok(Notice::Event { job, seq }) => state.signal(&job, seq),
                Err(e) => {
                    tracing::warn!(error = %e, "the store's listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}
