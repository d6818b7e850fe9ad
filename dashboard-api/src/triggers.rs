//! Triggers: APIs that publish themselves when their table changes or on a schedule.
//!
//! *Table change.* One look per watched table per `watch_ms`, however many APIs read it: the
//! table's description from its catalog (for the metastore, `get_table` and `get_partitions`),
//! reduced to a signature ([`publisher::fingerprint::table_signature`]). A new signature
//! restarts the table's settling clock; once it has held for an API's settle time (and, if the
//! API asks, the newest partition holds a `_SUCCESS` marker), the API fires. An API seen for
//! the first time fires only if it already serves, and only to catch a change made before it
//! was watched.
//!
//! *Schedule.* A cron expression in a time zone; the next firing is kept in the store, so a
//! restart neither loses nor repeats one (a firing missed while down happens at start-up).
//!
//! A firing queues an ordinary publish job (author `trigger:…`) that asks the control plane to
//! stop as `unchanged` when the source fingerprint equals the serving version's, so a
//! signature that moved without the data moving (statistics, DDL time) costs one plan and
//! makes no version. No firing is queued while the API has a publish queued: that job reads
//! the table as it is when it starts (a running one may have read it before the change, so it
//! does not count). Every function takes `now`, so tests drive the clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use publisher::catalog::TableMeta;
use publisher::schema::TableName;
use serde::Serialize;

use crate::AppState;
use crate::error::{Error, Result};
use crate::store::{ApiRow, JobKind, JobParams, TriggerRow};

pub const TABLE_CHANGE: &str = "table_change";
pub const SCHEDULE: &str = "schedule";

/// Trigger settings (`[dashboard.triggers]`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TriggerConfig {
    /// How often each watched table is described (0: no table watching).
    pub watch_ms: u64,
    /// Quiet time after a table change before it publishes, for APIs that do not set one.
    pub settle_ms: u64,
    /// How often schedules are checked (0: no schedules).
    pub schedule_tick_ms: u64,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            watch_ms: 30_000,
            settle_ms: 60_000,
            schedule_tick_ms: 1_000,
        }
    }
}

/// One firing: the API, what fired, and the job it queued (none when one was already pending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Firing {
    pub api: String,
    pub trigger: &'static str,
    pub job: Option<String>,
}

/// What one round of table watching did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WatchRound {
    /// Tables described (one catalog call set each).
    pub tables: usize,
    pub fired: Vec<Firing>,
}

/// Describes every watched table once and fires the APIs whose table settled on a change.
pub async fn watch_tables(state: &AppState, now: DateTime<Utc>) -> Result<WatchRound> {
    let mut by_table: BTreeMap<(String, String), Vec<ApiRow>> = BTreeMap::new();
    for api in state.store.apis().await? {
        if api.spec.refresh.on_table_change {
            by_table
                .entry((api.catalog.clone(), api.spec.table.clone()))
                .or_default()
                .push(api);
        }
    }
    let mut round = WatchRound::default();
    if by_table.is_empty() {
        return Ok(round);
    }
    let mut states = TriggerStates::load(state).await?;
    for ((catalog, table), apis) in by_table {
        let meta = match describe(state, &catalog, &table).await {
            Ok(meta) => meta,
            Err(e) => {
                tracing::warn!(%catalog, %table, error = %e, "watching a table failed; next round retries");
                continue;
            }
        };
        round.tables += 1;
        state.metrics.table_watch_checks.inc();
        let signature = publisher::fingerprint::table_signature(&meta);
        let watch = state
            .store
            .observe_table(&catalog, &table, &signature, now.timestamp_millis())
            .await?;
        for api in &apis {
            let mut t = states.take(&api.name);
            if t.seen_signature.as_deref() == Some(signature.as_str()) {
                continue;
            }
            if t.seen_signature.is_none() && state.store.serving_version(&api.name).await?.is_none()
            {
                // Never published: watching starts from here.
                t.seen_signature = Some(signature.clone());
                state.store.save_trigger_state(&t).await?;
                continue;
            }
            let settle_ms = api
                .spec
                .refresh
                .settle_s
                .map_or(state.config.triggers.settle_ms, |s| s * 1000);
            if now.timestamp_millis() - watch.changed_at < settle_ms as i64 {
                continue;
            }
            if api.spec.refresh.require_success_marker && !success_marker(&meta).await {
                tracing::debug!(api = %api.name, %table, "changed, waiting for a _SUCCESS marker");
                continue;
            }
            t.seen_signature = Some(signature.clone());
            round
                .fired
                .push(fire(state, api, TABLE_CHANGE, &mut t, now).await?);
        }
    }
    Ok(round)
}

/// Fires every API whose schedule is due, and (re)computes next firings.
pub async fn fire_schedules(state: &AppState, now: DateTime<Utc>) -> Result<Vec<Firing>> {
    let mut fired = Vec::new();
    // One read of every trigger state per tick, not one per API.
    let mut states = TriggerStates::load(state).await?;
    for api in state.store.apis().await? {
        let refresh = &api.spec.refresh;
        let key = refresh
            .schedule
            .as_ref()
            .map(|s| format!("{s}@{}", refresh.timezone.as_deref().unwrap_or("UTC")));
        let mut t = states.take(&api.name);
        if key.is_none() {
            if t.schedule.is_some() {
                t.schedule = None;
                t.next_at = None;
                state.store.save_trigger_state(&t).await?;
            }
            continue;
        }
        let due = match t.next_at {
            Some(at) if t.schedule == key => at <= now.timestamp_millis(),
            // New or edited schedule: its next instant from now.
            _ => false,
        };
        let next = refresh.next_firing(now).map(|at| at.timestamp_millis());
        if due {
            let instant = t.next_at.unwrap_or_default();
            if !state.store.claim_firing(&api.name, instant, next).await? {
                tracing::debug!(api = %api.name, instant, "schedule fired by another instance");
                continue;
            }
            tracing::info!(api = %api.name, instant, instance = %state.instance, "schedule instant claimed");
            t.next_at = next;
            fired.push(fire(state, &api, SCHEDULE, &mut t, now).await?);
            continue;
        } else if t.schedule == key && t.next_at.is_some() {
            continue;
        }
        t.schedule = key;
        t.next_at = next;
        state.store.save_trigger_state(&t).await?;
    }
    Ok(fired)
}

/// Queues a triggered publish (unless one is pending) and records the firing in `t` and the store.
async fn fire(
    state: &AppState,
    api: &ApiRow,
    trigger: &'static str,
    t: &mut TriggerRow,
    now: DateTime<Utc>,
) -> Result<Firing> {
    let job = if state.store.publish_pending(&api.name).await? {
        None
    } else {
        let params = JobParams {
            spec: Some(api.spec.clone()),
            catalog: Some(api.catalog.clone()),
            edge_group: Some(api.edge_group.clone()),
            trigger: Some(trigger.to_string()),
            if_changed: true,
            ..Default::default()
        };
        let author = format!("trigger:{trigger}");
        Some(
            crate::runner::enqueue(state, api, JobKind::Publish, params, &author)
                .await?
                .id,
        )
    };
    tracing::info!(api = %api.name, trigger, job = ?job, "trigger fired");
    state
        .metrics
        .trigger_firings
        .with_label_values(&[api.name.as_str(), trigger])
        .inc();
    t.last_fired_at = Some(now.timestamp_millis());
    t.last_trigger = Some(trigger.to_string());
    if job.is_some() {
        t.last_job.clone_from(&job);
    }
    state.store.save_trigger_state(t).await?;
    Ok(Firing {
        api: api.name.clone(),
        trigger,
        job,
    })
}

/// Every API's trigger state, read at once.
struct TriggerStates(std::collections::HashMap<String, TriggerRow>);

impl TriggerStates {
    async fn load(state: &AppState) -> Result<TriggerStates> {
        Ok(TriggerStates(
            state
                .store
                .trigger_states()
                .await?
                .into_iter()
                .map(|t| (t.api.clone(), t))
                .collect(),
        ))
    }

    /// An API's state (a fresh one if it has none yet).
    fn take(&mut self, api: &str) -> TriggerRow {
        self.0.remove(api).unwrap_or_else(|| TriggerRow {
            api: api.to_string(),
            ..Default::default()
        })
    }
}

async fn describe(state: &AppState, catalog: &str, table: &str) -> Result<TableMeta> {
    let uri = &state
        .config
        .catalog(catalog)
        .ok_or_else(|| Error::invalid("catalog", format!("catalog `{catalog}` is not configured")))?
        .uri;
    let name: TableName = table.parse()?;
    Ok(state.stack.catalog(uri).await?.table(&name).await?)
}

/// Whether the table's newest partition (its root, unpartitioned) holds a `_SUCCESS` file.
async fn success_marker(meta: &TableMeta) -> bool {
    let newest = meta
        .partitions
        .iter()
        .max_by(|a, b| a.values.cmp(&b.values))
        .map_or(meta.location.as_str(), |p| p.location.as_str());
    publisher::files::has_success_marker(newest)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(location = newest, error = %e, "looking for _SUCCESS failed");
            false
        })
}

/// Runs schedules every `schedule_tick_ms` and table watching every `watch_ms` until shutdown,
/// while this instance is the cluster's coordinator (schedule firings are also claimed one by
/// one in the store, so that an instant fires once even across a change of coordinator).
pub fn start(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let cfg = state.config.triggers.clone();
        let tick = std::time::Duration::from_millis(
            [cfg.schedule_tick_ms, cfg.watch_ms]
                .into_iter()
                .filter(|&ms| ms > 0)
                .min()
                .unwrap_or(0)
                .max(50),
        );
        if cfg.watch_ms == 0 && cfg.schedule_tick_ms == 0 {
            return;
        }
        let mut last_watch: Option<std::time::Instant> = None;
        loop {
            let now = Utc::now();
            // Only the cluster's coordinator fires; the others look again next tick.
            if state.coordinator.is_held() {
                if cfg.schedule_tick_ms > 0
                    && let Err(e) = fire_schedules(&state, now).await
                {
                    tracing::warn!(error = %e, "firing schedules failed; next tick retries");
                }
                let watch_due =
                    last_watch.is_none_or(|at| at.elapsed().as_millis() as u64 >= cfg.watch_ms);
                if cfg.watch_ms > 0 && watch_due {
                    last_watch = Some(std::time::Instant::now());
                    if let Err(e) = watch_tables(&state, now).await {
                        tracing::warn!(error = %e, "watching tables failed; next round retries");
                    }
                }
            }
            tokio::select! {
                () = state.shutdown.cancelled() => break,
                () = tokio::time::sleep(tick) => {}
            }
        }
    })
}
