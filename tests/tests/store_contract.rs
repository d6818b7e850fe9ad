//! The store's contract (`dashboard_api::store::Store`), one suite run on every backend it
//! supports: SQLite in a temporary folder and PostgreSQL on a real server of this test binary
//! (`tablecast_e2e::Postgres`, a fresh database per test). `contract_suite!` generates a module
//! per backend with one test per contract function; the bodies exist once, below, and only
//! ever go through the store's public methods.
//!
//! What is covered: APIs and their revisions; the job queue (oldest due job first, per API in
//! queue order and one at a time, leases, retries, release, finish, cancel, reaping) also under
//! concurrent claimers on two connections pools; job events; tokens and quotas; the control
//! plane's leases, fences, versions and desired state; access sets; triggers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboard_api::Error;
use dashboard_api::store::{
    ApiRow, ApiUpdate, Backend, JobKind, JobParams, JobRow, JobState, Lease, Notice, Outcome,
    Quota, Store, TokenKind, TokenRow, TriggerRow, VersionState, new_id, now_ms,
};
use publisher::guards::LimitOverrides;
use publisher::quality::OutputProfile;
use publisher::sink::VersionManifest;
use publisher::spec::ApiSpec;
use serde_json::{Value, json};
use tablecast_e2e::Postgres;
use tokio::task::JoinSet;

/// `mod $backend { #[tokio::test] fn <each contract test>() }`, each on a fresh store that
/// `$open` makes.
macro_rules! contract_suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            contract_suite!(@tests $open;
                apis_are_created_read_listed_updated_and_deleted,
                api_names_are_unique,
                a_deleted_api_is_retired_before_its_name_is_reused,
                delete_cancels_queued_jobs_and_waits_for_a_running_one,
                a_delete_racing_a_claim_never_leaves_a_job_running,
                claim_takes_the_oldest_due_job,
                jobs_of_one_api_run_one_at_a_time_in_queue_order,
                renew_and_retry_later_need_the_owner,
                release_gives_a_job_back_without_counting_the_attempt,
                finish_settles_once_and_appends_the_final_event,
                cancel_settles_queued_and_running_jobs_once,
                expired_leases_are_requeued_then_failed,
                job_counts_and_lists_newest_first,
                concurrent_claimers_take_every_job_once_in_queue_order,
                event_seqs_count_from_one_per_job,
                concurrent_appends_get_distinct_consecutive_seqs,
                tokens_are_created_found_revoked_and_listed,
                token_changes_bump_the_access_revision,
                leases_refuse_a_second_holder_and_fence_every_acquisition,
                an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out,
                versions_are_allocated_once_and_never_reused,
                concurrent_allocations_get_distinct_versions,
                versions_are_sealed_intended_and_converged,
                retire_beyond_keeps_the_newest_and_the_serving_version,
                discarded_versions_never_serve,
                access_follows_protection_and_tokens,
                observe_table_moves_changed_at_only_on_a_new_signature,
                trigger_state_is_saved_whole,
                publish_pending_sees_only_queued_publishes,
                a_role_has_one_holder_until_it_expires_or_is_resigned,
                a_schedule_instant_is_claimed_once,
                other_instances_hear_of_jobs_and_events,
            );
        }
    };
    (@tests $open:path; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                super::$test($open().await).await;
            }
        )*
    };
}

contract_suite!(sqlite, crate::open_sqlite);
contract_suite!(postgres, crate::open_postgres);

// ---------------------------------------------------------------------------------------------
// Backends

/// A fresh store, its URL (a second `Store::open` of it is a second view of the same data) and
/// whatever must outlive the test (the SQLite file's folder).
struct Db {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    /// Another store on the same database, with a pool of its own (another process would).
    async fn reopen(&self) -> Store {
        Store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("opening {} a second time: {e}", self.url))
    }
}

async fn open_sqlite() -> Db {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = Store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    assert_eq!(store.backend(), Backend::Sqlite, "{url}");
    Db {
        store,
        url,
        _dir: Some(dir),
    }
}

async fn open_postgres() -> Db {
    // Starting the shared server and createdb block: off the runtime's workers.
    let url = tokio::task::spawn_blocking(|| Postgres::shared().create_database("store"))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let store = Store::open(&url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    assert_eq!(store.backend(), Backend::Postgres, "{url}");
    Db {
        store,
        url,
        _dir: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Builders

fn spec(name: &str) -> ApiSpec {
    spec_json(fixtures::top_products_spec(name))
}

fn spec_json(v: Value) -> ApiSpec {
    serde_json::from_value(v).expect("a valid spec")
}

fn api(name: &str, owner: &str) -> ApiRow {
    ApiRow::new(spec(name), "default", owner, "edges")
}

/// A queued publish of `api`, created `age_ms` ago, due now.
fn job(api: &str, age_ms: i64) -> JobRow {
    let created_at = now_ms() - age_ms;
    JobRow {
        id: new_id(),
        api: api.to_string(),
        kind: JobKind::Publish,
        state: JobState::Queued,
        revision: Some(1),
        params: JobParams {
            catalog: Some("default".into()),
            trigger: Some("test".into()),
            ..Default::default()
        },
        author: "alice".into(),
        attempts: 0,
        max_attempts: 3,
        lease_owner: None,
        lease_expires_at: None,
        not_before: created_at,
        error: None,
        report: None,
        created_at,
        started_at: None,
        finished_at: None,
    }
}

/// Enqueues `n` jobs of each API, interleaved (a1 b1 a2 b2 …), oldest first; their ids per API
/// in queue order.
async fn enqueue_interleaved(
    store: &Store,
    apis: &[&str],
    n: usize,
) -> BTreeMap<String, Vec<String>> {
    let total = (apis.len() * n) as i64;
    let mut queued: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut i = 0;
    for _ in 0..n {
        for a in apis {
            // Strictly increasing creation times: the queue order does not hang on id ties.
            let j = job(a, 60_000 + total - i);
            i += 1;
            store.enqueue(&j).await.unwrap();
            queued.entry(a.to_string()).or_default().push(j.id);
        }
    }
    queued
}

fn outcome(state: JobState, report: Option<&Value>) -> Outcome<'_> {
    Outcome {
        state,
        report,
        error: None,
    }
}

fn api_token(api: &str, name: &str, quota: Option<Quota>) -> TokenRow {
    TokenRow {
        id: new_id(),
        api: Some(api.to_string()),
        kind: TokenKind::Api,
        name: name.to_string(),
        created_by: "alice".into(),
        created_at: now_ms(),
        revoked_at: None,
        quota,
    }
}

fn analyst_token(name: &str) -> TokenRow {
    TokenRow {
        id: new_id(),
        api: None,
        kind: TokenKind::Analyst,
        name: name.to_string(),
        created_by: "admin".into(),
        created_at: now_ms(),
        revoked_at: None,
        quota: None,
    }
}

fn manifest(api: &str, version: u64, keys: u64) -> VersionManifest {
    serde_json::from_value(json!({
        "api": api,
        "version": version,
        "created_at": "2026-12-01T00:00:00.000Z",
        "key_types": ["str"],
        "key_names": ["network"],
        "checksum": {"keys": keys, "bytes": keys * 100, "sum": 0xfeed_0000_u64 + version},
        "path": "fasttrack",
        "data_time": "2026-11-30T00:00:00Z",
    }))
    .expect("a valid manifest")
}

async fn lease(store: &Store, api: &str, holder: &str) -> Lease {
    store
        .try_lease(api, holder, 60_000)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{holder} could not lease {api}"))
}

/// Allocates, seals, intends and converges a version under `lease`: it serves everywhere.
async fn commit_next(store: &Store, lease: &Lease, edges: &[String]) -> u64 {
    let v = store.allocate_version(lease, 0, None).await.unwrap();
    store
        .seal_version(&manifest(&lease.api, v, 10), true, &format!("fp{v}"), None)
        .await
        .unwrap();
    assert!(store.intend(lease, v, edges).await.unwrap());
    store.converged(lease, v).await.unwrap();
    v
}

async fn access_revision(store: &Store, api: &str) -> u64 {
    store
        .api_state(api)
        .await
        .unwrap()
        .map(|s| s.access_revision)
        .unwrap_or(0)
}

fn is_conflict<T: std::fmt::Debug>(r: &dashboard_api::Result<T>) -> bool {
    matches!(r, Err(Error::Conflict(_)))
}

fn is_not_found<T: std::fmt::Debug>(r: &dashboard_api::Result<T>) -> bool {
    matches!(r, Err(Error::NotFound { .. }))
}

// ---------------------------------------------------------------------------------------------
// APIs

async fn apis_are_created_read_listed_updated_and_deleted(db: Db) {
    let store = &db.store;
    store.ping().await.unwrap();
    assert!(store.apis().await.unwrap().is_empty());

    store.create_api(&api("beta", "bob")).await.unwrap();
    let alpha = api("alpha", "alice");
    store.create_api(&alpha).await.unwrap();

    let got = store.api("alpha").await.unwrap();
    assert_eq!(got.name, "alpha");
    assert_eq!(got.spec, alpha.spec);
    assert_eq!(
        (
            got.catalog.as_str(),
            got.owner.as_str(),
            got.edge_group.as_str()
        ),
        ("default", "alice", "edges")
    );
    assert_eq!((got.revision, got.protected), (1, false));
    assert!(got.editors.is_empty());
    assert_eq!(got.ceilings, LimitOverrides::default());
    assert_eq!(
        (got.created_at, got.updated_at),
        (alpha.created_at, alpha.created_at)
    );
    let names: Vec<String> = store
        .apis()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"], "listed by name");

    let revisions = store.revisions("alpha").await.unwrap();
    assert_eq!(revisions.len(), 1);
    assert_eq!(
        (revisions[0].revision, revisions[0].author.as_str()),
        (1, "alice")
    );

    // A new revision: the definition, who may change it and the grants, all at once.
    let mut edited = spec("alpha");
    edited.limit = Some(5);
    edited.protected = true;
    let editors = vec!["bob".to_string(), "carol".to_string()];
    let ceilings = LimitOverrides {
        memory_pool_bytes: Some(8 << 30),
        ..Default::default()
    };
    let update = ApiUpdate {
        spec: &edited,
        catalog: "other",
        edge_group: "west",
        editors: &editors,
        ceilings: &ceilings,
    };
    assert_eq!(store.update_api("alpha", &update, "bob").await.unwrap(), 2);
    let got = store.api("alpha").await.unwrap();
    assert_eq!(got.revision, 2);
    assert_eq!(got.spec, edited);
    assert!(got.protected, "protection follows the spec");
    assert_eq!(
        (got.catalog.as_str(), got.edge_group.as_str()),
        ("other", "west")
    );
    assert_eq!(got.editors, editors);
    assert_eq!(got.ceilings, ceilings);
    assert_eq!(got.owner, "alice", "an update does not change the owner");
    assert_eq!(got.created_at, alpha.created_at);
    assert!(got.updated_at >= alpha.created_at);

    let revisions = store.revisions("alpha").await.unwrap();
    let listed: Vec<(i64, &str)> = revisions
        .iter()
        .map(|r| (r.revision, r.author.as_str()))
        .collect();
    assert_eq!(listed, [(2, "bob"), (1, "alice")], "newest first");
    assert_eq!(revisions[0].spec, edited);
    assert_eq!(revisions[1].spec, alpha.spec);
    assert!(revisions[0].at >= revisions[1].at);
    assert_eq!(store.update_api("alpha", &update, "bob").await.unwrap(), 3);

    let missing = store.update_api("gamma", &update, "bob").await;
    assert!(is_not_found(&missing), "{missing:?}");
    assert!(is_not_found(&store.api("gamma").await));
    assert!(store.revisions("gamma").await.unwrap().is_empty());

    assert_eq!(
        store.delete_api("alpha").await.unwrap(),
        Vec::<String>::new()
    );
    assert!(is_not_found(&store.api("alpha").await));
    assert!(store.revisions("alpha").await.unwrap().is_empty());
    assert!(is_not_found(&store.delete_api("alpha").await));
    let names: Vec<String> = store
        .apis()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["beta"]);
}

async fn api_names_are_unique(db: Db) {
    let store = &db.store;
    store.create_api(&api("dup", "alice")).await.unwrap();
    let again = store.create_api(&api("dup", "mallory")).await;
    assert!(is_conflict(&again), "{again:?}");
    let got = store.api("dup").await.unwrap();
    assert_eq!((got.owner.as_str(), got.revision), ("alice", 1));
    assert_eq!(store.revisions("dup").await.unwrap().len(), 1);
    assert_eq!(store.apis().await.unwrap().len(), 1);
}

async fn a_deleted_api_is_retired_before_its_name_is_reused(db: Db) {
    let store = &db.store;
    store.create_api(&api("phoenix", "alice")).await.unwrap();
    let l = lease(store, "phoenix", "op").await;
    let edges = vec!["redis://a".to_string()];
    commit_next(store, &l, &edges).await;
    commit_next(store, &l, &edges).await;
    store.release_lease(&l).await.unwrap();
    store
        .save_trigger_state(&TriggerRow {
            api: "phoenix".into(),
            last_trigger: Some("schedule".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let before = store.api_state("phoenix").await.unwrap().unwrap();

    store.delete_api("phoenix").await.unwrap();
    let state = store.api_state("phoenix").await.unwrap().unwrap();
    assert!(state.retiring && state.converging, "{state:?}");
    assert_eq!((state.serving, state.previous), (None, None));
    assert_eq!(state.edges, edges, "the edges to retire it from stay known");
    assert!(state.access_revision > before.access_revision);
    assert!(store.versions("phoenix").await.unwrap().is_empty());
    assert!(store.trigger_state("phoenix").await.unwrap().is_none());

    // Not while its edges may still hold its keys.
    let early = store.create_api(&api("phoenix", "bob")).await;
    assert!(is_conflict(&early), "{early:?}");

    let l2 = lease(store, "phoenix", "reconcile").await;
    assert!(l2.fence > l.fence);
    store.retired(&l2).await.unwrap();
    let state = store.api_state("phoenix").await.unwrap().unwrap();
    assert!(!state.retiring && !state.converging, "{state:?}");
    assert!(state.edges.is_empty());
    // Stale: a lease that is not the holder's.
    assert!(is_conflict(&store.retired(&l).await));

    store.create_api(&api("phoenix", "bob")).await.unwrap();
    let reborn = store.api("phoenix").await.unwrap();
    assert_eq!((reborn.owner.as_str(), reborn.revision), ("bob", 1));
    assert_eq!(store.revisions("phoenix").await.unwrap().len(), 1);
    // Numbers start over; the fence and the access revision keep growing.
    assert_eq!(store.allocate_version(&l2, 0, None).await.unwrap(), 1);
    store.release_lease(&l2).await.unwrap();
    let l3 = lease(store, "phoenix", "op").await;
    assert!(l3.fence > l2.fence);
    assert!(access_revision(store, "phoenix").await > state.access_revision);
}

async fn delete_cancels_queued_jobs_and_waits_for_a_running_one(db: Db) {
    let store = &db.store;
    store.create_api(&api("busy", "alice")).await.unwrap();
    let t = api_token("busy", "reader", None);
    store.create_token(&t, "busy-hash").await.unwrap();
    let queued = enqueue_interleaved(store, &["busy"], 3).await;
    let ids = &queued["busy"];
    let running = store.claim("w", 60_000).await.unwrap().unwrap();
    assert_eq!(running.id, ids[0]);

    let refused = store.delete_api("busy").await;
    assert!(is_conflict(&refused), "{refused:?}");
    assert!(
        store.api("busy").await.is_ok(),
        "a refused delete changes nothing"
    );
    assert_eq!(store.tokens(Some("busy")).await.unwrap().len(), 1);
    assert_eq!(store.job(&ids[1]).await.unwrap().state, JobState::Queued);

    store
        .finish(
            &running.id,
            "w",
            outcome(JobState::Succeeded, None),
            &json!({"event": "finished"}),
        )
        .await
        .unwrap()
        .unwrap();
    let mut cancelled = store.delete_api("busy").await.unwrap();
    cancelled.sort();
    let mut expected = ids[1..].to_vec();
    expected.sort();
    assert_eq!(cancelled, expected);
    for id in &ids[1..] {
        let j = store.job(id).await.unwrap();
        assert_eq!(j.state, JobState::Cancelled);
        assert!(j.finished_at.is_some());
    }
    assert_eq!(store.job(&ids[0]).await.unwrap().state, JobState::Succeeded);
    assert!(
        store.tokens(Some("busy")).await.unwrap().is_empty(),
        "tokens go with it"
    );
    assert!(store.api_token_hashes("busy").await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The job queue

/// A claim from one instance and a delete from another at the same moment: either the claim
/// wins and the delete is refused, or the delete wins and cancels the job; never a running job
/// of a deleted API.
async fn a_delete_racing_a_claim_never_leaves_a_job_running(db: Db) {
    let other = db.reopen().await;
    for round in 0..20 {
        let name = format!("raced_{round}");
        db.store.create_api(&api(&name, "alice")).await.unwrap();
        let queued = job(&name, 0);
        db.store.enqueue(&queued).await.unwrap();
        let (claimer, deleter) = (db.store.clone(), other.clone());
        let (claimed, deleted) = tokio::join!(
            tokio::spawn(async move { claimer.claim("racer", 60_000).await.unwrap() }),
            tokio::spawn({
                let name = name.clone();
                async move { deleter.delete_api(&name).await }
            }),
        );
        let (claimed, deleted) = (claimed.unwrap(), deleted.unwrap());
        let state = db.store.job(&queued.id).await.unwrap().state;
        match deleted {
            Ok(cancelled) => {
                assert_eq!(cancelled, std::slice::from_ref(&queued.id), "round {round}");
                assert_eq!(state, JobState::Cancelled, "round {round}");
                assert!(claimed.is_none(), "round {round}: claimed a cancelled job");
            }
            Err(e) => {
                assert!(is_conflict(&Err::<(), _>(e)), "round {round}");
                assert_eq!(state, JobState::Running, "round {round}");
                assert_eq!(claimed.map(|j| j.id), Some(queued.id.clone()));
            }
        }
    }
}

async fn claim_takes_the_oldest_due_job(db: Db) {
    let store = &db.store;
    assert!(
        store.claim("w", 1_000).await.unwrap().is_none(),
        "empty queue"
    );
    let mut later = job("c", 30_000); // the oldest, but not due for an hour
    later.not_before = now_ms() + 3_600_000;
    store.enqueue(&later).await.unwrap();
    let b = job("b", 20_000);
    store.enqueue(&b).await.unwrap();
    let a = job("a", 10_000);
    store.enqueue(&a).await.unwrap();

    let queued = store.job(&b.id).await.unwrap();
    assert_eq!((queued.state, queued.attempts), (JobState::Queued, 0));
    assert_eq!(
        (queued.lease_owner.clone(), queued.started_at),
        (None, None)
    );
    assert_eq!(queued.params.trigger.as_deref(), Some("test"));
    assert_eq!((queued.revision, queued.max_attempts), (Some(1), 3));

    let before = now_ms();
    let first = store.claim("w1", 45_000).await.unwrap().unwrap();
    assert_eq!(first.id, b.id, "the oldest due job");
    assert_eq!(first.state, JobState::Running);
    assert_eq!(first.lease_owner.as_deref(), Some("w1"));
    assert_eq!(first.attempts, 1);
    let expires = first.lease_expires_at.unwrap();
    assert!(
        expires >= before + 45_000 && expires <= now_ms() + 45_000,
        "lease until {expires}"
    );
    assert!(first.started_at.unwrap() >= before);
    assert_eq!(first.params.catalog.as_deref(), Some("default"));

    let second = store.claim("w2", 45_000).await.unwrap().unwrap();
    assert_eq!(second.id, a.id);
    assert!(
        store.claim("w3", 45_000).await.unwrap().is_none(),
        "c is not due"
    );
    assert_eq!(store.job(&later.id).await.unwrap().state, JobState::Queued);
}

async fn jobs_of_one_api_run_one_at_a_time_in_queue_order(db: Db) {
    let store = &db.store;
    let mut queue = enqueue_interleaved(store, &["a"], 3).await;
    let b1 = job("b", 1_000);
    store.enqueue(&b1).await.unwrap();
    let a = queue.remove("a").unwrap();

    let first = store.claim("w", 60_000).await.unwrap().unwrap();
    assert_eq!(first.id, a[0]);
    // a's next job waits while a[0] runs: another API's job, then nothing.
    let other = store.claim("w", 60_000).await.unwrap().unwrap();
    assert_eq!(other.id, b1.id);
    assert!(store.claim("w", 60_000).await.unwrap().is_none());
    let running = store
        .jobs(Some("a"), Some(JobState::Running), 10)
        .await
        .unwrap();
    assert_eq!(running.len(), 1);

    let mut previous = first;
    for next_id in &a[1..] {
        store
            .finish(
                &previous.id,
                "w",
                outcome(JobState::Succeeded, None),
                &json!({"event": "done"}),
            )
            .await
            .unwrap()
            .unwrap();
        let finished_at = store.job(&previous.id).await.unwrap().finished_at.unwrap();
        let next = store.claim("w", 60_000).await.unwrap().unwrap();
        assert_eq!(&next.id, next_id, "queue order");
        assert!(
            next.started_at.unwrap() >= finished_at,
            "a job never starts before its API's previous one finished"
        );
        assert!(store.claim("w", 60_000).await.unwrap().is_none());
        previous = next;
    }
    // A failed job does not block its API either.
    store
        .finish(
            &previous.id,
            "w",
            outcome(JobState::Failed, None),
            &json!({"event": "failed"}),
        )
        .await
        .unwrap()
        .unwrap();
    let a4 = job("a", 0);
    store.enqueue(&a4).await.unwrap();
    assert_eq!(store.claim("w", 60_000).await.unwrap().unwrap().id, a4.id);
}

async fn renew_and_retry_later_need_the_owner(db: Db) {
    let store = &db.store;
    let queue = enqueue_interleaved(store, &["r"], 2).await;
    let (r1, r2) = (&queue["r"][0], &queue["r"][1]);
    let claimed = store.claim("w1", 1_000).await.unwrap().unwrap();
    assert_eq!(&claimed.id, r1);

    assert!(!store.renew(r1, "w2", 60_000).await.unwrap(), "not w2's");
    assert!(!store.renew("no-such-job", "w1", 60_000).await.unwrap());
    assert!(store.renew(r1, "w1", 60_000).await.unwrap());
    let renewed = store.job(r1).await.unwrap();
    assert!(renewed.lease_expires_at.unwrap() >= claimed.lease_expires_at.unwrap() + 50_000);

    let error = json!({"step": "push", "message": "edge down", "transient": true});
    let report = json!({"rows": 7});
    let not_before = now_ms() + 3_600_000;
    assert!(
        !store
            .retry_later(r1, "w2", not_before, &error, Some(&report))
            .await
            .unwrap()
    );
    assert!(
        store
            .retry_later(r1, "w1", not_before, &error, Some(&report))
            .await
            .unwrap()
    );
    let again = store.job(r1).await.unwrap();
    assert_eq!(again.state, JobState::Queued);
    assert_eq!((again.lease_owner, again.lease_expires_at), (None, None));
    assert_eq!(again.not_before, not_before);
    assert_eq!(again.attempts, 1, "the attempt counts");
    assert_eq!(again.error.as_ref(), Some(&error));
    assert_eq!(
        again.report.as_ref(),
        Some(&report),
        "what the attempt produced is kept"
    );
    assert!(
        !store.renew(r1, "w1", 60_000).await.unwrap(),
        "no longer running"
    );
    assert!(
        !store
            .retry_later(r1, "w1", not_before, &error, None)
            .await
            .unwrap()
    );

    // r1 waits for its time, and r2 waits behind it.
    assert!(store.claim("w1", 1_000).await.unwrap().is_none());
    assert_eq!(store.job(r2).await.unwrap().state, JobState::Queued);

    // Other APIs are not held up; a retry due soon is claimed again, as a second attempt.
    let other = job("r-other", 0);
    store.enqueue(&other).await.unwrap();
    let claimed = store.claim("w1", 60_000).await.unwrap().unwrap();
    assert_eq!(claimed.id, other.id);
    let soon = now_ms() + 100;
    assert!(
        store
            .retry_later(&other.id, "w1", soon, &error, None)
            .await
            .unwrap()
    );
    assert!(
        store.claim("w1", 60_000).await.unwrap().is_none(),
        "not yet due"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let retried = store.claim("w2", 60_000).await.unwrap().unwrap();
    assert_eq!(
        (retried.id.as_str(), retried.attempts),
        (other.id.as_str(), 2)
    );
    assert_eq!(retried.lease_owner.as_deref(), Some("w2"));
}

async fn release_gives_a_job_back_without_counting_the_attempt(db: Db) {
    let store = &db.store;
    let j = job("rel", 0);
    store.enqueue(&j).await.unwrap();
    let claimed = store.claim("w1", 60_000).await.unwrap().unwrap();
    assert_eq!(claimed.attempts, 1);
    assert!(!store.release(&j.id, "w2").await.unwrap(), "not w2's");
    assert!(store.release(&j.id, "w1").await.unwrap());
    let back = store.job(&j.id).await.unwrap();
    assert_eq!((back.state, back.attempts), (JobState::Queued, 0));
    assert_eq!(back.lease_owner, None);
    assert!(
        !store.release(&j.id, "w1").await.unwrap(),
        "not running any more"
    );

    let again = store.claim("w2", 60_000).await.unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), (j.id.as_str(), 1));
    assert_eq!(again.lease_owner.as_deref(), Some("w2"));
}

async fn finish_settles_once_and_appends_the_final_event(db: Db) {
    let store = &db.store;
    let j = job("fin", 0);
    store.enqueue(&j).await.unwrap();
    store.claim("w1", 60_000).await.unwrap().unwrap();
    assert_eq!(
        store
            .append_event(&j.id, &json!({"event": "started"}))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .append_event(&j.id, &json!({"event": "planned"}))
            .await
            .unwrap(),
        2
    );

    let report = json!({"version": 4, "keys": 12});
    let last = json!({"event": "finished", "state": "succeeded"});
    let wrong = store
        .finish(
            &j.id,
            "w2",
            outcome(JobState::Succeeded, Some(&report)),
            &last,
        )
        .await
        .unwrap();
    assert_eq!(wrong, None, "not w2's");
    assert_eq!(store.job(&j.id).await.unwrap().state, JobState::Running);
    assert_eq!(
        store.events_after(&j.id, 0).await.unwrap().len(),
        2,
        "no event for a refused finish"
    );

    let seq = store
        .finish(
            &j.id,
            "w1",
            outcome(JobState::Succeeded, Some(&report)),
            &last,
        )
        .await
        .unwrap();
    assert_eq!(seq, Some(3), "the final event's seq");
    let done = store.job(&j.id).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.report.as_ref(), Some(&report));
    assert_eq!(done.error, None);
    assert_eq!((done.lease_owner, done.lease_expires_at), (None, None));
    assert!(done.finished_at.unwrap() >= done.started_at.unwrap());
    let events = store.events_after(&j.id, 2).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].seq, &events[0].event), (3, &last));

    assert_eq!(
        store
            .finish(&j.id, "w1", outcome(JobState::Failed, None), &last)
            .await
            .unwrap(),
        None,
        "settled once"
    );
    assert!(!store.renew(&j.id, "w1", 60_000).await.unwrap());
    assert_eq!(store.job(&j.id).await.unwrap().state, JobState::Succeeded);

    // A failure keeps its error.
    let f = job("fin", 0);
    store.enqueue(&f).await.unwrap();
    store.claim("w1", 60_000).await.unwrap().unwrap();
    let error = json!({"step": "plan", "message": "no such table", "transient": false});
    let failed = Outcome {
        state: JobState::Failed,
        report: None,
        error: Some(&error),
    };
    assert_eq!(
        store
            .finish(&f.id, "w1", failed, &json!({"event": "finished"}))
            .await
            .unwrap(),
        Some(1)
    );
    let f = store.job(&f.id).await.unwrap();
    assert_eq!(
        (f.state, f.error.as_ref()),
        (JobState::Failed, Some(&error))
    );
}

async fn cancel_settles_queued_and_running_jobs_once(db: Db) {
    let store = &db.store;
    let running = job("run", 10);
    let queued = job("queue", 0);
    store.enqueue(&running).await.unwrap();
    store.enqueue(&queued).await.unwrap();
    assert_eq!(
        store.claim("w1", 60_000).await.unwrap().unwrap().id,
        running.id
    );

    let (before, seq) = store.cancel(&queued.id, "carol").await.unwrap().unwrap();
    assert_eq!(
        (before.id.as_str(), before.state),
        (queued.id.as_str(), JobState::Queued)
    );
    assert_eq!(seq, 1);
    let cancelled = store.job(&queued.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    let message = cancelled.error.as_ref().unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("carol"), "{message}");
    let events = store.events_after(&queued.id, 0).await.unwrap();
    assert_eq!(events[0].event["state"], "cancelled");

    store
        .append_event(&running.id, &json!({"event": "started"}))
        .await
        .unwrap();
    let (before, seq) = store.cancel(&running.id, "carol").await.unwrap().unwrap();
    assert_eq!(before.state, JobState::Running);
    assert_eq!(before.lease_owner.as_deref(), Some("w1"));
    assert_eq!(seq, 2);
    // Its runner finds out at the next renewal and cannot settle it any more.
    assert!(!store.renew(&running.id, "w1", 60_000).await.unwrap());
    let late = store
        .finish(
            &running.id,
            "w1",
            outcome(JobState::Succeeded, None),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(late, None);
    assert_eq!(
        store.job(&running.id).await.unwrap().state,
        JobState::Cancelled
    );

    assert!(
        store.cancel(&running.id, "carol").await.unwrap().is_none(),
        "already final"
    );
    assert!(store.cancel(&queued.id, "dave").await.unwrap().is_none());
    assert!(is_not_found(&store.cancel("no-such-job", "carol").await));
    // The API is free again.
    let next = job("run", 0);
    store.enqueue(&next).await.unwrap();
    assert_eq!(
        store.claim("w2", 60_000).await.unwrap().unwrap().id,
        next.id
    );
}

async fn expired_leases_are_requeued_then_failed(db: Db) {
    let store = &db.store;
    let mut j = job("flaky", 10);
    j.max_attempts = 2;
    store.enqueue(&j).await.unwrap();
    let healthy = job("healthy", 0);
    store.enqueue(&healthy).await.unwrap();
    assert_eq!(store.reap_expired().await.unwrap(), (vec![], vec![]));

    assert_eq!(store.claim("w1", 50).await.unwrap().unwrap().id, j.id);
    assert_eq!(
        store.claim("w2", 60_000).await.unwrap().unwrap().id,
        healthy.id
    );
    tokio::time::sleep(Duration::from_millis(250)).await;

    let (requeued, failed) = store.reap_expired().await.unwrap();
    assert_eq!(requeued, vec![(j.id.clone(), 1)]);
    assert!(failed.is_empty());
    let back = store.job(&j.id).await.unwrap();
    assert_eq!((back.state, back.attempts), (JobState::Queued, 1));
    assert_eq!((back.lease_owner, back.lease_expires_at), (None, None));
    let events = store.events_after(&j.id, 0).await.unwrap();
    assert_eq!(events[0].event["event"], "lease_expired");
    assert!(
        !store.renew(&j.id, "w1", 60_000).await.unwrap(),
        "w1 lost it"
    );
    let h = store.job(&healthy.id).await.unwrap();
    assert_eq!(
        h.state,
        JobState::Running,
        "an unexpired lease is left alone"
    );

    let second = store.claim("w3", 50).await.unwrap().unwrap();
    assert_eq!((second.id.as_str(), second.attempts), (j.id.as_str(), 2));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (requeued, failed) = store.reap_expired().await.unwrap();
    assert!(requeued.is_empty());
    assert_eq!(failed, vec![(j.id.clone(), 2)], "no attempts left");
    let dead = store.job(&j.id).await.unwrap();
    assert_eq!(dead.state, JobState::Failed);
    assert!(dead.finished_at.is_some());
    assert_eq!(dead.lease_owner, None);
    assert_eq!(dead.error.as_ref().unwrap()["step"], "runner");
    let events = store.events_after(&j.id, 1).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].event["event"].as_str(),
            events[0].event["state"].as_str()
        ),
        (Some("finished"), Some("failed"))
    );
    assert_eq!(store.reap_expired().await.unwrap(), (vec![], vec![]));
    assert!(
        store
            .finish(&j.id, "w3", outcome(JobState::Succeeded, None), &json!({}))
            .await
            .unwrap()
            .is_none()
    );
}

async fn job_counts_and_lists_newest_first(db: Db) {
    let store = &db.store;
    assert!(store.job_counts().await.unwrap().is_empty());
    let queue = enqueue_interleaved(store, &["x", "y"], 3).await;
    let (x, y) = (&queue["x"], &queue["y"]);
    // Oldest first: x0 y0 x1 y1 x2 y2.
    let run = store.claim("w", 60_000).await.unwrap().unwrap();
    assert_eq!(&run.id, &x[0]);
    let done = store.claim("w", 60_000).await.unwrap().unwrap();
    assert_eq!(&done.id, &y[0]);
    store
        .finish(
            &done.id,
            "w",
            outcome(JobState::Succeeded, None),
            &json!({}),
        )
        .await
        .unwrap()
        .unwrap();
    store.cancel(&y[2], "carol").await.unwrap().unwrap();

    let counts: HashMap<String, i64> = store.job_counts().await.unwrap().into_iter().collect();
    let expected: HashMap<String, i64> = [
        ("queued", 3),
        ("running", 1),
        ("succeeded", 1),
        ("cancelled", 1),
    ]
    .into_iter()
    .map(|(s, n)| (s.to_string(), n))
    .collect();
    assert_eq!(counts, expected);

    let ids = |rows: Vec<JobRow>| rows.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let all = ids(store.jobs(None, None, 100).await.unwrap());
    assert_eq!(
        all,
        [&y[2], &x[2], &y[1], &x[1], &y[0], &x[0]].map(String::as_str),
        "newest first"
    );
    assert_eq!(
        ids(store.jobs(None, None, 2).await.unwrap()),
        [&y[2], &x[2]].map(String::as_str)
    );
    assert_eq!(
        ids(store.jobs(Some("x"), None, 100).await.unwrap()),
        [&x[2], &x[1], &x[0]].map(String::as_str)
    );
    assert_eq!(
        ids(store.jobs(None, Some(JobState::Queued), 100).await.unwrap()),
        [&x[2], &y[1], &x[1]].map(String::as_str)
    );
    assert_eq!(
        ids(store
            .jobs(Some("y"), Some(JobState::Queued), 100)
            .await
            .unwrap()),
        [y[1].as_str()]
    );
    assert_eq!(
        ids(store
            .jobs(Some("x"), Some(JobState::Running), 100)
            .await
            .unwrap()),
        [x[0].as_str()]
    );
    assert!(store.jobs(Some("z"), None, 100).await.unwrap().is_empty());
    assert!(is_not_found(&store.job("no-such-job").await));
}

/// 8 workers on two pools of one database claim from 40 jobs over 10 APIs until all are done:
/// each job is claimed exactly once, each API's jobs in queue order, never two of one API at
/// once, and none starts before its predecessor finished.
async fn concurrent_claimers_take_every_job_once_in_queue_order(db: Db) {
    const WORKERS: usize = 8;
    let apis: Vec<String> = (0..10).map(|i| format!("api{i}")).collect();
    let names: Vec<&str> = apis.iter().map(String::as_str).collect();
    let queued = enqueue_interleaved(&db.store, &names, 4).await;
    let total: usize = queued.values().map(Vec::len).sum();
    assert_eq!(total, 40);
    let second = db.reopen().await;

    #[derive(Default)]
    struct Seen {
        running: HashMap<String, String>,
        order: BTreeMap<String, Vec<String>>,
        claims: Vec<String>,
        finished: usize,
        overlaps: Vec<String>,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut workers = JoinSet::new();
    for w in 0..WORKERS {
        let store = if w % 2 == 0 {
            db.store.clone()
        } else {
            second.clone()
        };
        let seen = seen.clone();
        workers.spawn(async move {
            let owner = format!("worker{w}");
            loop {
                if seen.lock().unwrap().finished == total {
                    return;
                }
                let Some(j) = store.claim(&owner, 60_000).await.unwrap() else {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                };
                {
                    let mut s = seen.lock().unwrap();
                    if let Some(other) = s.running.insert(j.api.clone(), j.id.clone()) {
                        let overlap = format!("{} and {other} of {} ran at once", j.id, j.api);
                        s.overlaps.push(overlap);
                    }
                    s.order.entry(j.api.clone()).or_default().push(j.id.clone());
                    s.claims.push(j.id.clone());
                }
                store
                    .append_event(&j.id, &json!({"event": "working", "by": owner}))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
                // Off the books before the store frees the API for its next job.
                seen.lock().unwrap().running.remove(&j.api);
                let seq = store
                    .finish(
                        &j.id,
                        &owner,
                        outcome(JobState::Succeeded, None),
                        &json!({"event": "finished"}),
                    )
                    .await
                    .unwrap();
                assert_eq!(seq, Some(2), "{} was {owner}'s", j.id);
                seen.lock().unwrap().finished += 1;
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(120), join_all(workers))
        .await
        .expect("the workers drained the queue within 120 s");

    {
        let s = seen.lock().unwrap();
        assert!(s.overlaps.is_empty(), "{:?}", s.overlaps);
        assert_eq!(s.claims.len(), total, "claims: {:?}", s.claims);
        let unique: HashSet<&String> = s.claims.iter().collect();
        assert_eq!(unique.len(), total, "a job was claimed twice");
        assert_eq!(s.order, queued, "each API's jobs in queue order");
    }

    for ids in queued.values() {
        let mut previous_finish = None;
        for id in ids {
            let j = db.store.job(id).await.unwrap();
            assert_eq!((j.state, j.attempts), (JobState::Succeeded, 1), "{id}");
            if let Some(f) = previous_finish {
                assert!(
                    j.started_at.unwrap() >= f,
                    "{id} started before its predecessor finished"
                );
            }
            previous_finish = j.finished_at;
        }
    }
    let counts: HashMap<String, i64> = db.store.job_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts.get("succeeded"), Some(&40), "{counts:?}");
    assert_eq!(counts.len(), 1, "{counts:?}");
}

/// Waits for every task, re-raising the first panic as soon as it happens (the others would
/// wait for the work of the one that died).
async fn join_all(mut tasks: JoinSet<()>) {
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events

async fn event_seqs_count_from_one_per_job(db: Db) {
    let store = &db.store;
    let (x, y) = (job("ev", 10), job("ev", 0));
    store.enqueue(&x).await.unwrap();
    store.enqueue(&y).await.unwrap();
    for n in 1..=3 {
        let seq = store
            .append_event(&x.id, &json!({"event": "step", "n": n}))
            .await
            .unwrap();
        assert_eq!(seq, n);
    }
    assert_eq!(
        store
            .append_event(&y.id, &json!({"event": "step", "n": 1}))
            .await
            .unwrap(),
        1
    );

    let before = now_ms();
    let all = store.events_after(&x.id, 0).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    for e in &all {
        assert_eq!(e.event, json!({"event": "step", "n": e.seq}));
        assert!(e.at <= before && e.at > before - 60_000);
    }
    let tail: Vec<i64> = store
        .events_after(&x.id, 2)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(tail, [3]);
    assert!(store.events_after(&x.id, 3).await.unwrap().is_empty());
    assert_eq!(store.events_after(&y.id, 0).await.unwrap().len(), 1);
    assert!(
        store
            .events_after("no-such-job", 0)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_appends_get_distinct_consecutive_seqs(db: Db) {
    const TASKS: usize = 6;
    const EACH: usize = 15;
    let j = job("chatty", 0);
    db.store.enqueue(&j).await.unwrap();
    let second = db.reopen().await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = if t % 2 == 0 {
            db.store.clone()
        } else {
            second.clone()
        };
        let id = j.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..EACH {
                let seq = store
                    .append_event(&id, &json!({"task": t, "n": n}))
                    .await
                    .unwrap_or_else(|e| panic!("task {t}, event {n}: {e}"));
                seqs.push(seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for (t, task) in tasks.into_iter().enumerate() {
        let seqs = task
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "task {t}'s seqs go up: {seqs:?}"
        );
        all.extend(seqs);
    }
    all.sort();
    let expected: Vec<i64> = (1..=(TASKS * EACH) as i64).collect();
    assert_eq!(all, expected, "distinct and consecutive");
    let stored = db.store.events_after(&j.id, 0).await.unwrap();
    assert_eq!(stored.len(), TASKS * EACH);
    // Each task's events are stored in the order it appended them.
    for t in 0..TASKS {
        let ns: Vec<u64> = stored
            .iter()
            .filter(|e| e.event["task"] == t)
            .map(|e| e.event["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, (0..EACH as u64).collect::<Vec<_>>());
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

async fn tokens_are_created_found_revoked_and_listed(db: Db) {
    let store = &db.store;
    store.create_api(&api("tok", "alice")).await.unwrap();
    let quota = Quota {
        per_second: 100,
        burst: 200,
    };
    let limited = api_token("tok", "batch-job", Some(quota));
    store.create_token(&limited, "hash-b").await.unwrap();
    let plain = api_token("tok", "dashboard", None);
    store.create_token(&plain, "hash-a").await.unwrap();
    let elsewhere = api_token("other", "x", None);
    store.create_token(&elsewhere, "hash-other").await.unwrap();
    let carol = analyst_token("carol");
    store.create_token(&carol, "hash-carol").await.unwrap();

    let got = store.token(&limited.id).await.unwrap();
    assert_eq!(got.api.as_deref(), Some("tok"));
    assert_eq!((got.kind, got.name.as_str()), (TokenKind::Api, "batch-job"));
    assert_eq!(
        (got.created_by.as_str(), got.created_at),
        ("alice", limited.created_at)
    );
    assert_eq!((got.revoked_at, got.quota), (None, Some(quota)));
    assert_eq!(store.token(&plain.id).await.unwrap().quota, None);
    assert!(is_not_found(&store.token("no-such-token").await));

    let listed: Vec<String> = store
        .tokens(Some("tok"))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        listed,
        [limited.id.as_str(), plain.id.as_str()],
        "by creation"
    );
    let analysts = store.tokens(None).await.unwrap();
    assert_eq!(analysts.len(), 1);
    assert_eq!(
        (analysts[0].kind, analysts[0].name.as_str()),
        (TokenKind::Analyst, "carol")
    );
    assert_eq!(
        store.api_token_hashes("tok").await.unwrap(),
        ["hash-a", "hash-b"],
        "sorted"
    );

    let (found, hash) = store.analyst_by_hash("hash-carol").await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), hash.as_str()),
        (carol.id.as_str(), "hash-carol")
    );
    assert!(
        store.analyst_by_hash("hash-a").await.unwrap().is_none(),
        "a read token signs nobody in"
    );
    assert!(store.analyst_by_hash("nope").await.unwrap().is_none());

    // A hash is one token's.
    let twin = api_token("tok", "twin", None);
    assert!(store.create_token(&twin, "hash-a").await.is_err());
    assert!(is_not_found(&store.token(&twin.id).await));

    assert!(store.revoke_token(&limited.id).await.unwrap());
    assert!(
        !store.revoke_token(&limited.id).await.unwrap(),
        "revoked already"
    );
    assert!(!store.revoke_token("no-such-token").await.unwrap());
    assert!(store.token(&limited.id).await.unwrap().revoked_at.is_some());
    assert_eq!(store.api_token_hashes("tok").await.unwrap(), ["hash-a"]);
    assert_eq!(
        store.tokens(Some("tok")).await.unwrap().len(),
        2,
        "revoked ones are listed"
    );

    assert!(store.revoke_token(&carol.id).await.unwrap());
    assert!(store.analyst_by_hash("hash-carol").await.unwrap().is_none());
    assert_eq!(store.tokens(None).await.unwrap().len(), 1);

    // Imported tokens (the CLI's old files): once per hash.
    store
        .import_api_token("tok", "imported", "hash-imported", 1_000, None)
        .await
        .unwrap();
    let revision = access_revision(store, "tok").await;
    store
        .import_api_token("tok", "imported-again", "hash-imported", 2_000, None)
        .await
        .unwrap();
    assert_eq!(
        access_revision(store, "tok").await,
        revision,
        "a known hash changes nothing"
    );
    store
        .import_api_token("tok", "old", "hash-old", 500, Some(900))
        .await
        .unwrap();
    let imported = store.token("imported").await.unwrap();
    assert_eq!(
        (imported.kind, imported.created_at, imported.revoked_at),
        (TokenKind::Api, 1_000, None)
    );
    assert!(is_not_found(&store.token("imported-again").await));
    assert_eq!(store.token("old").await.unwrap().revoked_at, Some(900));
    assert_eq!(
        store.api_token_hashes("tok").await.unwrap(),
        ["hash-a", "hash-imported"]
    );
}

async fn token_changes_bump_the_access_revision(db: Db) {
    let store = &db.store;
    store.create_api(&api("acc", "alice")).await.unwrap();
    let r0 = access_revision(store, "acc").await;
    assert!(r0 >= 1, "creating an API sets who may read it");
    let t = api_token("acc", "reader", None);
    store.create_token(&t, "acc-hash").await.unwrap();
    let r1 = access_revision(store, "acc").await;
    assert!(r1 > r0);
    store
        .create_token(&analyst_token("dave"), "dave-hash")
        .await
        .unwrap();
    assert_eq!(
        access_revision(store, "acc").await,
        r1,
        "analyst tokens are not the API's"
    );
    assert!(store.revoke_token(&t.id).await.unwrap());
    let r2 = access_revision(store, "acc").await;
    assert!(r2 > r1);
    assert!(!store.revoke_token(&t.id).await.unwrap());
    assert_eq!(
        access_revision(store, "acc").await,
        r2,
        "a no-op revoke changes nothing"
    );
    let s = spec("acc");
    let update = ApiUpdate {
        spec: &s,
        catalog: "default",
        edge_group: "edges",
        editors: &[],
        ceilings: &LimitOverrides::default(),
    };
    store.update_api("acc", &update, "alice").await.unwrap();
    assert!(
        access_revision(store, "acc").await > r2,
        "a new revision may change protection"
    );
}

// ---------------------------------------------------------------------------------------------
// The control plane's state

async fn leases_refuse_a_second_holder_and_fence_every_acquisition(db: Db) {
    let store = &db.store;
    assert_eq!(store.api_state("l").await.unwrap(), None);
    let first = lease(store, "l", "op1").await;
    assert_eq!((first.api.as_str(), first.holder.as_str()), ("l", "op1"));
    assert!(
        store.api_state("l").await.unwrap().is_some(),
        "a lease creates the state row"
    );
    assert_eq!(
        store.try_lease("l", "op2", 60_000).await.unwrap(),
        None,
        "held by op1"
    );

    // The holder takes it again: a new, higher fence, and the old one is stale.
    let again = lease(store, "l", "op1").await;
    assert!(again.fence > first.fence);
    assert!(
        !store.renew_lease(&first, 60_000).await.unwrap(),
        "stale fence"
    );
    assert!(store.renew_lease(&again, 60_000).await.unwrap());
    assert!(store.allocate_version(&first, 0, None).await.is_err());

    // Releasing with the stale lease does not release the live one.
    store.release_lease(&first).await.unwrap();
    assert_eq!(store.try_lease("l", "op2", 60_000).await.unwrap(), None);
    store.release_lease(&again).await.unwrap();
    assert!(
        !store.renew_lease(&again, 60_000).await.unwrap(),
        "released"
    );
    let other = lease(store, "l", "op2").await;
    assert!(other.fence > again.fence);
    assert!(store.renew_lease(&other, 60_000).await.unwrap());

    // Leases are per API.
    let elsewhere = lease(store, "m", "op1").await;
    assert_eq!(elsewhere.api, "m");
    let states: Vec<String> = store
        .api_states()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.api)
        .collect();
    assert_eq!(states, ["l", "m"]);
}

async fn an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out(db: Db) {
    let store = &db.store;
    let old = store.try_lease("e", "slow", 50).await.unwrap().unwrap();
    let v1 = store.allocate_version(&old, 0, None).await.unwrap();
    assert_eq!(v1, 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!store.renew_lease(&old, 60_000).await.unwrap(), "expired");

    let new = lease(store, "e", "fast").await;
    assert!(new.fence > old.fence);
    assert_eq!(new.holder, "fast");
    // Everything fenced refuses the old holder.
    let refused = store.allocate_version(&old, 0, None).await;
    assert!(is_conflict(&refused), "{refused:?}");
    assert!(
        !store
            .intend(&old, v1, &["redis://a".to_string()])
            .await
            .unwrap()
    );
    assert!(is_conflict(&store.retired(&old).await));
    let state = store.api_state("e").await.unwrap().unwrap();
    assert_eq!(
        (state.serving, state.converging),
        (None, false),
        "{state:?}"
    );
    assert_eq!(
        store.allocate_version(&new, 0, None).await.unwrap(),
        2,
        "v1 is not handed out again"
    );
    assert!(store.renew_lease(&new, 60_000).await.unwrap());
}

async fn versions_are_allocated_once_and_never_reused(db: Db) {
    let store = &db.store;
    let l = lease(store, "v", "op").await;
    assert_eq!(
        store.allocate_version(&l, 0, Some("job1")).await.unwrap(),
        1
    );
    assert_eq!(
        store.allocate_version(&l, 0, Some("job2")).await.unwrap(),
        2
    );
    // Edges have seen up to 9: the next number is at least 10.
    assert_eq!(store.allocate_version(&l, 10, None).await.unwrap(), 10);
    assert_eq!(store.allocate_version(&l, 0, None).await.unwrap(), 11);
    assert_eq!(
        store.allocate_version(&l, 5, None).await.unwrap(),
        12,
        "at_least never goes back"
    );

    let versions = store.versions("v").await.unwrap();
    let numbers: Vec<u64> = versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [12, 11, 10, 2, 1], "newest first");
    assert!(versions.iter().all(|v| v.state == VersionState::Staged));
    let v1 = store.version("v", 1).await.unwrap().unwrap();
    assert_eq!(v1.job_id.as_deref(), Some("job1"));
    assert_eq!(
        (v1.keys, v1.bytes, v1.has_snapshot, v1.forced),
        (0, 0, false, false)
    );
    assert_eq!(
        (v1.committed_at.clone(), v1.fingerprint.clone()),
        (None, None)
    );
    assert!(store.version("v", 3).await.unwrap().is_none());
    assert!(store.version("w", 1).await.unwrap().is_none());

    // A new lease (another operation) goes on from there.
    store.release_lease(&l).await.unwrap();
    let l2 = lease(store, "v", "op2").await;
    assert_eq!(store.allocate_version(&l2, 0, None).await.unwrap(), 13);
    assert!(store.versions("other").await.unwrap().is_empty());
}

async fn concurrent_allocations_get_distinct_versions(db: Db) {
    let l = lease(&db.store, "cv", "op").await;
    let second = db.reopen().await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = if t % 2 == 0 {
            db.store.clone()
        } else {
            second.clone()
        };
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..5 {
                got.push(store.allocate_version(&l, 0, None).await.unwrap());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(
            task.await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
        );
    }
    all.sort();
    assert_eq!(all, (1..=40).collect::<Vec<u64>>());
    assert_eq!(db.store.versions("cv").await.unwrap().len(), 40);
}

async fn versions_are_sealed_intended_and_converged(db: Db) {
    let store = &db.store;
    let l = lease(store, "s", "op").await;
    let edges = vec!["redis://a:6379".to_string(), "redis://b:6379".to_string()];
    let v1 = store.allocate_version(&l, 0, Some("job1")).await.unwrap();
    let profile = OutputProfile {
        keys: 10,
        rows: 20,
        fields: vec![],
    };
    let m1 = manifest("s", v1, 10);
    store
        .seal_version(&m1, true, "fp-one", Some(&profile))
        .await
        .unwrap();
    let sealed = store.version("s", v1).await.unwrap().unwrap();
    assert_eq!(sealed.state, VersionState::Sealed);
    assert_eq!((sealed.keys, sealed.bytes), (10, 1_000));
    assert_eq!(sealed.checksum.as_deref(), Some(m1.checksum.hex().as_str()));
    assert_eq!(sealed.path.as_deref(), Some("fasttrack"));
    assert_eq!(sealed.fingerprint.as_deref(), Some("fp-one"));
    assert_eq!(sealed.data_time.as_deref(), Some("2026-11-30T00:00:00Z"));
    assert!(sealed.has_snapshot);
    assert_eq!(sealed.snapshot.as_ref(), Some(&m1));
    assert_eq!(sealed.profile.as_ref(), Some(&profile));
    assert_eq!(sealed.committed_at, None);
    assert_eq!(
        store.serving_version("s").await.unwrap().map(|v| v.version),
        None
    );

    assert!(store.intend(&l, v1, &edges).await.unwrap());
    let state = store.api_state("s").await.unwrap().unwrap();
    assert_eq!(
        (state.serving, state.previous, state.converging),
        (Some(v1), None, true)
    );
    assert_eq!(state.edges, edges);
    assert!(!state.retiring);
    assert_eq!(
        store.serving_version("s").await.unwrap().unwrap().version,
        v1
    );
    store.converged(&l, v1).await.unwrap();
    let state = store.api_state("s").await.unwrap().unwrap();
    assert_eq!((state.serving, state.converging), (Some(v1), false));
    let committed = store.version("s", v1).await.unwrap().unwrap();
    assert_eq!(committed.state, VersionState::Committed);
    let committed_at = committed.committed_at.clone().expect("a commit time");

    // Without a snapshot; then the next one serves and the first is the way back.
    let v2 = store.allocate_version(&l, 0, None).await.unwrap();
    store
        .seal_version(&manifest("s", v2, 20), false, "fp-two", None)
        .await
        .unwrap();
    let two = store.version("s", v2).await.unwrap().unwrap();
    assert!(!two.has_snapshot && two.snapshot.is_none() && two.profile.is_none());
    assert!(store.intend(&l, v2, &edges[..1]).await.unwrap());
    let state = store.api_state("s").await.unwrap().unwrap();
    assert_eq!(
        (state.serving, state.previous, state.converging),
        (Some(v2), Some(v1), true)
    );
    assert_eq!(state.edges, &edges[..1]);
    // Intending the serving version again keeps the way back.
    assert!(store.intend(&l, v2, &edges[..1]).await.unwrap());
    assert_eq!(
        store.api_state("s").await.unwrap().unwrap().previous,
        Some(v1)
    );
    store.converged(&l, v2).await.unwrap();
    store.mark_forced("s", v2).await.unwrap();
    let serving = store.serving_version("s").await.unwrap().unwrap();
    assert_eq!(
        (serving.version, serving.state, serving.forced),
        (v2, VersionState::Committed, true)
    );

    // Converging again does not move the first commit time.
    store.converged(&l, v1).await.unwrap();
    assert_eq!(
        store.version("s", v1).await.unwrap().unwrap().committed_at,
        Some(committed_at)
    );

    let other = lease(store, "r", "op").await;
    commit_next(store, &other, &edges).await;
    let all: Vec<(String, u64)> = store
        .serving_versions()
        .await
        .unwrap()
        .into_iter()
        .map(|(api, v)| (api, v.version))
        .collect();
    assert_eq!(all, [("r".to_string(), 1), ("s".to_string(), v2)], "by API");
    let states: Vec<(String, Option<u64>)> = store
        .api_states()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.api, s.serving))
        .collect();
    assert_eq!(
        states,
        [("r".to_string(), Some(1)), ("s".to_string(), Some(v2))]
    );
}

async fn retire_beyond_keeps_the_newest_and_the_serving_version(db: Db) {
    let store = &db.store;
    let l = lease(store, "g", "op").await;
    let edges = vec!["redis://a".to_string()];
    for v in 1..=4 {
        assert_eq!(commit_next(store, &l, &edges).await, v);
    }
    // Back to v2 (a rollback): it serves, v4 stays the newest committed.
    assert!(store.intend(&l, 2, &edges).await.unwrap());
    store.converged(&l, 2).await.unwrap();
    let staged = store.allocate_version(&l, 0, None).await.unwrap();

    store.retire_beyond("g", 1).await.unwrap();
    let states: BTreeMap<u64, VersionState> = store
        .versions("g")
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.state))
        .collect();
    use VersionState::*;
    let expected: BTreeMap<u64, VersionState> = [
        (1, Retired),
        (2, Committed),
        (3, Retired),
        (4, Committed),
        (staged, Staged),
    ]
    .into();
    assert_eq!(states, expected);
    // Keeping zero keeps one.
    store.retire_beyond("g", 0).await.unwrap();
    assert_eq!(
        store.version("g", 4).await.unwrap().unwrap().state,
        Committed
    );
    assert_eq!(
        store.serving_version("g").await.unwrap().unwrap().version,
        2
    );
}

async fn discarded_versions_never_serve(db: Db) {
    let store = &db.store;
    let l = lease(store, "d", "op").await;
    let edges = vec!["redis://a".to_string()];
    let committed = commit_next(store, &l, &edges).await;
    let staged = store.allocate_version(&l, 0, None).await.unwrap();
    let sealed = store.allocate_version(&l, 0, None).await.unwrap();
    store
        .seal_version(&manifest("d", sealed, 3), true, "fp", None)
        .await
        .unwrap();

    for v in [staged, sealed, committed] {
        store.discard_version("d", v).await.unwrap();
    }
    let state = |v| async move { store.version("d", v).await.unwrap().unwrap().state };
    assert_eq!(state(staged).await, VersionState::Discarded);
    assert_eq!(state(sealed).await, VersionState::Discarded);
    assert_eq!(
        state(committed).await,
        VersionState::Committed,
        "a committed version stays"
    );
    store.discard_version("d", 99).await.unwrap();
    assert!(store.version("d", 99).await.unwrap().is_none());
    // Its number is not handed out again.
    assert_eq!(
        store.allocate_version(&l, 0, None).await.unwrap(),
        sealed + 1
    );
}

async fn access_follows_protection_and_tokens(db: Db) {
    let store = &db.store;
    let nobody = store.access("ghost").await.unwrap();
    assert_eq!((nobody.revision, nobody.protected), (0, false));
    assert!(nobody.token_hashes.is_empty() && nobody.limits.is_empty());

    store.create_api(&api("pub", "alice")).await.unwrap();
    let open = store.access("pub").await.unwrap();
    assert!(open.revision >= 1);
    assert!(!open.protected);
    let quota = Quota {
        per_second: 5,
        burst: 10,
    };
    let limited = api_token("pub", "limited", Some(quota));
    store.create_token(&limited, "hash-2").await.unwrap();
    store
        .create_token(&api_token("pub", "free", None), "hash-1")
        .await
        .unwrap();
    let still_open = store.access("pub").await.unwrap();
    assert_eq!(still_open.revision, open.revision + 2);
    assert!(!still_open.protected);
    assert!(
        still_open.token_hashes.is_empty(),
        "a public API needs no tokens"
    );

    store.set_protected("pub", true).await.unwrap();
    assert!(store.api("pub").await.unwrap().protected);
    let closed = store.access("pub").await.unwrap();
    assert_eq!(closed.revision, still_open.revision + 1);
    assert!(closed.protected);
    assert_eq!(closed.token_hashes, ["hash-1", "hash-2"]);
    assert_eq!(closed.limits.len(), 1);
    let limit = &closed.limits[0];
    assert_eq!(
        (limit.token_hash.as_str(), limit.token_id.as_str()),
        ("hash-2", limited.id.as_str())
    );
    assert_eq!((limit.per_second, limit.burst), (5, 10));
    assert_eq!(
        store.api("pub").await.unwrap().revision,
        1,
        "no new definition revision"
    );

    store.revoke_token(&limited.id).await.unwrap();
    let fewer = store.access("pub").await.unwrap();
    assert_eq!(fewer.revision, closed.revision + 1);
    assert_eq!(fewer.token_hashes, ["hash-1"]);
    assert!(fewer.limits.is_empty());

    store.set_protected("pub", false).await.unwrap();
    let reopened = store.access("pub").await.unwrap();
    assert_eq!(
        (reopened.revision, reopened.protected),
        (fewer.revision + 1, false)
    );
    assert!(is_not_found(&store.set_protected("ghost", true).await));

    // Deleted: locked, and its tokens are gone.
    store.delete_api("pub").await.unwrap();
    let locked = store.access("pub").await.unwrap();
    assert!(
        locked.protected && locked.token_hashes.is_empty(),
        "{locked:?}"
    );
    assert!(locked.revision > reopened.revision);
}

// ---------------------------------------------------------------------------------------------
// Triggers

async fn observe_table_moves_changed_at_only_on_a_new_signature(db: Db) {
    let store = &db.store;
    let w = store
        .observe_table("hive", "shop.sales", "sig1", 1_000)
        .await
        .unwrap();
    assert_eq!(
        (w.signature.as_str(), w.changed_at, w.checked_at),
        ("sig1", 1_000, 1_000)
    );
    let w = store
        .observe_table("hive", "shop.sales", "sig1", 2_000)
        .await
        .unwrap();
    assert_eq!(
        (w.signature.as_str(), w.changed_at, w.checked_at),
        ("sig1", 1_000, 2_000)
    );
    let w = store
        .observe_table("hive", "shop.sales", "sig2", 3_000)
        .await
        .unwrap();
    assert_eq!(
        (w.signature.as_str(), w.changed_at, w.checked_at),
        ("sig2", 3_000, 3_000)
    );
    let w = store
        .observe_table("hive", "shop.sales", "sig2", 4_000)
        .await
        .unwrap();
    assert_eq!((w.changed_at, w.checked_at), (3_000, 4_000));
    // Back to an older signature is a change too.
    let w = store
        .observe_table("hive", "shop.sales", "sig1", 5_000)
        .await
        .unwrap();
    assert_eq!((w.changed_at, w.checked_at), (5_000, 5_000));

    // One row per (catalog, table).
    let w = store
        .observe_table("hive", "shop.other", "sig1", 6_000)
        .await
        .unwrap();
    assert_eq!(w.changed_at, 6_000);
    let w = store
        .observe_table("lake", "shop.sales", "sig1", 7_000)
        .await
        .unwrap();
    assert_eq!(w.changed_at, 7_000);
    let w = store
        .observe_table("hive", "shop.sales", "sig1", 8_000)
        .await
        .unwrap();
    assert_eq!((w.changed_at, w.checked_at), (5_000, 8_000));
}

async fn trigger_state_is_saved_whole(db: Db) {
    let store = &db.store;
    assert_eq!(store.trigger_state("b").await.unwrap(), None);
    assert!(store.trigger_states().await.unwrap().is_empty());
    let full = TriggerRow {
        api: "b".into(),
        seen_signature: Some("sig".into()),
        schedule: Some("0 * * * *@UTC".into()),
        next_at: Some(1_700_000_000_000),
        last_fired_at: Some(1_699_999_000_000),
        last_trigger: Some("schedule".into()),
        last_job: Some("job-1".into()),
    };
    store.save_trigger_state(&full).await.unwrap();
    assert_eq!(
        store.trigger_state("b").await.unwrap().as_ref(),
        Some(&full)
    );
    let a = TriggerRow {
        api: "a".into(),
        seen_signature: Some("baseline".into()),
        ..Default::default()
    };
    store.save_trigger_state(&a).await.unwrap();
    let all = store.trigger_states().await.unwrap();
    assert_eq!(all, [a.clone(), full.clone()], "by API");

    // Whole: fields left out are cleared.
    let sparse = TriggerRow {
        api: "b".into(),
        next_at: Some(1_800_000_000_000),
        ..Default::default()
    };
    store.save_trigger_state(&sparse).await.unwrap();
    assert_eq!(store.trigger_state("b").await.unwrap(), Some(sparse));
    assert_eq!(store.trigger_state("a").await.unwrap(), Some(a));

    // A created API starts without trigger state; a deleted one leaves none.
    store.create_api(&api("a", "alice")).await.unwrap();
    assert_eq!(store.trigger_state("a").await.unwrap(), None);
    store.save_trigger_state(&full_for("a")).await.unwrap();
    store.delete_api("a").await.unwrap();
    assert_eq!(store.trigger_state("a").await.unwrap(), None);
}

fn full_for(api: &str) -> TriggerRow {
    TriggerRow {
        api: api.into(),
        seen_signature: Some("s".into()),
        last_trigger: Some("table_change".into()),
        ..Default::default()
    }
}

async fn publish_pending_sees_only_queued_publishes(db: Db) {
    let store = &db.store;
    assert!(!store.publish_pending("p").await.unwrap());
    let mut rollback = job("p", 30);
    rollback.kind = JobKind::Rollback;
    rollback.params.to = Some(1);
    store.enqueue(&rollback).await.unwrap();
    assert!(
        !store.publish_pending("p").await.unwrap(),
        "a rollback is no publish"
    );
    assert_eq!(
        store.job(&rollback.id).await.unwrap().kind,
        JobKind::Rollback
    );
    assert_eq!(store.job(&rollback.id).await.unwrap().params.to, Some(1));

    let publish = job("p", 20);
    store.enqueue(&publish).await.unwrap();
    assert!(store.publish_pending("p").await.unwrap());
    assert!(!store.publish_pending("q").await.unwrap(), "per API");

    // Running is not pending: a firing must queue another.
    assert_eq!(
        store.claim("w", 60_000).await.unwrap().unwrap().id,
        rollback.id
    );
    store
        .finish(
            &rollback.id,
            "w",
            outcome(JobState::Succeeded, None),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        store.claim("w", 60_000).await.unwrap().unwrap().id,
        publish.id
    );
    assert!(!store.publish_pending("p").await.unwrap());

    let next = job("p", 0);
    store.enqueue(&next).await.unwrap();
    assert!(store.publish_pending("p").await.unwrap());
    store.cancel(&next.id, "carol").await.unwrap().unwrap();
    assert!(!store.publish_pending("p").await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Several instances on one database

async fn a_role_has_one_holder_until_it_expires_or_is_resigned(db: Db) {
    let (a, b) = (&db.store, db.reopen().await);
    assert!(a.lead("coordinator", "a", 60_000).await.unwrap());
    assert!(!b.lead("coordinator", "b", 60_000).await.unwrap());
    assert!(a.lead("coordinator", "a", 60_000).await.unwrap(), "renewed");
    assert!(
        b.lead("other", "b", 60_000).await.unwrap(),
        "roles are separate"
    );
    let leaders = b.leaders().await.unwrap();
    let holders: Vec<(&str, &str)> = leaders
        .iter()
        .map(|l| (l.role.as_str(), l.holder.as_str()))
        .collect();
    assert_eq!(holders, [("coordinator", "a"), ("other", "b")]);

    b.resign("coordinator", "b").await.unwrap();
    assert!(
        !b.lead("coordinator", "b", 60_000).await.unwrap(),
        "only its holder resigns it"
    );
    a.resign("coordinator", "a").await.unwrap();
    assert!(
        b.lead("coordinator", "b", 100).await.unwrap(),
        "taken once resigned"
    );
    assert!(!a.lead("coordinator", "a", 100).await.unwrap());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        a.lead("coordinator", "a", 60_000).await.unwrap(),
        "taken once expired"
    );
    assert!(!b.lead("coordinator", "b", 60_000).await.unwrap());
}

async fn a_schedule_instant_is_claimed_once(db: Db) {
    let instant = now_ms() - 10;
    let row = TriggerRow {
        api: "nightly".into(),
        schedule: Some("0 4 * * *@UTC".into()),
        next_at: Some(instant),
        ..Default::default()
    };
    db.store.save_trigger_state(&row).await.unwrap();
    let other = db.reopen().await;
    let mut claims = JoinSet::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        claims.spawn(async move {
            store
                .claim_firing("nightly", instant, Some(instant + 86_400_000))
                .await
                .unwrap()
        });
    }
    let won = claims.join_all().await.into_iter().filter(|w| *w).count();
    assert_eq!(won, 1, "one claimer fires the instant");
    let t = db.store.trigger_state("nightly").await.unwrap().unwrap();
    assert_eq!(t.next_at, Some(instant + 86_400_000));
    assert!(
        !db.store
            .claim_firing("nightly", instant, Some(instant + 1))
            .await
            .unwrap(),
        "a claimed instant stays claimed"
    );
}

/// PostgreSQL tells every listener of queued jobs and appended events (SQLite, one server per
/// file, has no listener: its readers poll).
async fn other_instances_hear_of_jobs_and_events(db: Db) {
    let other = db.reopen().await;
    let Some(mut listener) = other.listen().await.unwrap() else {
        assert_eq!(db.store.backend(), Backend::Sqlite);
        return;
    };
    assert_eq!(db.store.backend(), Backend::Postgres);
    let queued = job("heard", 0);
    db.store.enqueue(&queued).await.unwrap();
    let seq = db
        .store
        .append_event(&queued.id, &json!({"event": "queued"}))
        .await
        .unwrap();
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let notice = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .expect("a notice within 10 s")
            .unwrap();
        heard.push(notice);
    }
    assert_eq!(
        heard,
        [
            Notice::Jobs,
            Notice::Event {
                job: queued.id.clone(),
                seq
            }
        ]
    );
}
