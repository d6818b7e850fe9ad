//! Several `tablecast serve` instances on one PostgreSQL database (started by the harness, as a
//! non-root user, on a free loopback port), over the shared Hive metastore with the scale-1
//! fixtures and one real Redis edge:
//!
//! - three instances share 30 publishes of 10 APIs queued through all of them: each job commits
//!   exactly once, one job per API at a time, versions in queue order; jobs run on more than
//!   one instance; a job's progress streams live from instances that do not run it;
//! - the instance running a job is killed (SIGKILL) mid-push: another instance re-claims the job
//!   after its lease and commits; the edge serves one complete version with the golden answers;
//! - a schedule fires once per instant with three instances running, also across the death of
//!   the instance coordinating triggers (another takes the role over);
//! - `deploy/haproxy.cfg` as shipped (addresses replaced) in front of two instances: define,
//!   publish and follow through it; one instance dies and every request still gets an answer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tablecast_e2e::dashboard::{event_names, fixtures_metastore, lookup_service, sample_spec_json};
use tablecast_e2e::lookup::{assert_complete, bucket_versions, connect, pause_writes};
use tablecast_e2e::{Dashboard, DashboardSettings, Postgres, Redis, Rest, assert_answers_golden};

/// A scale-1 publish on a loaded 2-core machine, with room; longer when 30 share it.
const JOB_TIMEOUT: Duration = Duration::from_secs(180);

/// Three instances over one database, one edge and one shared state folder (snapshots).
struct Cluster {
    edge: Redis,
    instances: Vec<Dashboard>,
    logs: tempfile::TempDir,
    _state: tempfile::TempDir,
}

impl Cluster {
    fn start(n: usize, tune: impl Fn(DashboardSettings) -> DashboardSettings) -> Cluster {
        let metastore = fixtures_metastore();
        let database = Postgres::shared().create_database("ha");
        let edge = Redis::start();
        let state = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let settings = tune(
            DashboardSettings::new(state.path(), &metastore, &[edge.url()])
                .with_fast_takeover()
                .with("TABLECAST_DASHBOARD__DATABASE_URL", &database)
                .with("TABLECAST_DASHBOARD__COORDINATOR_TTL_MS", 2000),
        );
        let instances = (0..n)
            .map(|i| Dashboard::start(&settings, &logs.path().join(format!("serve-{i}.log"))))
            .collect();
        Cluster {
            edge,
            instances,
            logs,
            _state: state,
        }
    }

    fn log(&self, i: usize) -> PathBuf {
        self.logs.path().join(format!("serve-{i}.log"))
    }

    /// Each instance's name in the cluster, from its readiness answer.
    async fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for d in &self.instances {
            let health = d.get("/healthz").await;
            assert_eq!(health["database"], "postgres", "{health}");
            names.push(health["cluster"]["instance"].as_str().unwrap().to_string());
        }
        names
    }

    /// Creates an API of a sample spec under another name, through instance `via`.
    async fn create_api(&self, via: usize, sample: &str, name: &str, refresh: Option<Value>) {
        let mut spec = sample_spec_json(sample);
        spec["name"] = json!(name);
        if let Some(r) = refresh {
            spec["refresh"] = r;
        }
        let (status, body) = self.instances[via]
            .post("/api/apis", Some(&json!({ "spec": spec })))
            .await;
        assert_eq!(status, 201, "creating {name}: {body}");
    }
}

/// The instance (by index in `names`) a runner name (`{instance}-r{n}`) belongs to.
fn instance_of(names: &[String], runner: &str) -> usize {
    names
        .iter()
        .position(|n| {
            runner
                .strip_prefix(n.as_str())
                .is_some_and(|r| r.starts_with("-r"))
        })
        .unwrap_or_else(|| panic!("runner {runner} is none of {names:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_thirty_publishes_of_ten_apis_each_committed_once_in_order() {
    let cluster = Cluster::start(3, |s| s);
    let names = cluster.names().await;
    let apis: Vec<String> = (0..10).map(|i| format!("shared_{i}")).collect();
    for (i, api) in apis.iter().enumerate() {
        let sample = if i % 2 == 0 {
            "product_stats"
        } else {
            "top_products"
        };
        cluster.create_api(i % 3, sample, api, None).await;
    }

    // The first job, queued on instance 0, followed live from instances 1 and 2 at once.
    let first = cluster.instances[0].publish(&apis[0]).await;
    let (from_1, from_2) = tokio::join!(
        cluster.instances[1].follow(&first, JOB_TIMEOUT),
        cluster.instances[2].follow(&first, JOB_TIMEOUT),
    );
    assert_eq!(event_names(&from_1), event_names(&from_2));
    let streamed = event_names(&from_1);
    for name in [
        "queued",
        "attempt_started",
        "step_started",
        "committed",
        "finished",
    ] {
        assert!(streamed.contains(&name), "no {name} in {streamed:?}");
    }
    let runner = from_1
        .iter()
        .find(|e| e["event"] == "attempt_started")
        .and_then(|e| e["runner"].as_str())
        .unwrap();
    eprintln!(
        "job {first} ran on instance {}; streamed live from 1 and 2: {streamed:?}",
        instance_of(&names, runner)
    );

    // 29 more: three rounds over the ten APIs, each job queued through a different instance.
    let mut jobs: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    jobs.entry(&apis[0]).or_default().push(first);
    let queued = Instant::now();
    for round in 0..3 {
        for (i, api) in apis.iter().enumerate() {
            if round == 0 && i == 0 {
                continue;
            }
            let via = (i + round) % 3;
            jobs.entry(api)
                .or_default()
                .push(cluster.instances[via].publish(api).await);
        }
    }

    // Every job succeeds once, one job of an API at a time, versions in queue order; any
    // instance answers for any job.
    let mut ran_on = BTreeSet::new();
    for (k, (api, ids)) in jobs.iter().enumerate() {
        let mut previous_end = String::new();
        for (n, id) in ids.iter().enumerate() {
            let view = cluster.instances[(k + n) % 3]
                .wait_job(id, JOB_TIMEOUT)
                .await;
            assert_eq!(view["state"], "succeeded", "{api} job {id}: {view}");
            assert_eq!(view["attempts"], 1, "{view}");
            assert_eq!(
                view["report"]["version"].as_u64(),
                Some(n as u64 + 1),
                "{api}: job {n} committed out of order: {view}"
            );
            let started = view["started_at"].as_str().unwrap().to_string();
            assert!(
                started >= previous_end,
                "{api}: job {n} started {started} before the previous one ended {previous_end}"
            );
            previous_end = view["finished_at"].as_str().unwrap().to_string();
            let events = cluster.instances[(k + n + 1) % 3]
                .follow(id, JOB_TIMEOUT)
                .await;
            let names_seen = event_names(&events);
            let commits = names_seen.iter().filter(|n| **n == "committed").count();
            assert_eq!(commits, 1, "{api} job {id}: {names_seen:?}");
            let runner = events
                .iter()
                .find(|e| e["event"] == "attempt_started")
                .and_then(|e| e["runner"].as_str())
                .unwrap();
            ran_on.insert(instance_of(&names, runner));
        }
    }
    eprintln!(
        "30 publishes of 10 APIs over 3 instances: {:.1} s from the last queued, ran on instances {ran_on:?}",
        queued.elapsed().as_secs_f64()
    );
    assert!(
        ran_on.len() >= 2,
        "every job ran on one instance: {ran_on:?}"
    );

    // The edge serves each API's third version, complete.
    let mut edge = connect(&cluster.edge.url()).await;
    for api in &apis {
        assert_eq!(
            tablecast_e2e::lookup::serving(&cluster.edge.url(), api).await,
            Some(3),
            "{api}"
        );
        let sample = if api.ends_with(['0', '2', '4', '6', '8']) {
            "product_stats"
        } else {
            "top_products"
        };
        let expected = tablecast_e2e::golden(sample).len() as u64;
        let fields = tablecast_e2e::lookup::version_fields(&mut edge, api, 3).await;
        assert_eq!(fields, expected, "{api} v3 is not complete");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_instance_running_a_job_mid_push_hands_it_to_another() {
    const API: &str = "recent_activity";
    let mut cluster = Cluster::start(3, |s| s);
    let names = cluster.names().await;
    cluster.create_api(0, API, API, None).await;
    let first = cluster.instances[0].publish(API).await;
    let view = cluster.instances[1].wait_job(&first, JOB_TIMEOUT).await;
    assert_eq!(view["state"], "succeeded", "{view}");
    let old = view["report"]["version"].as_u64().unwrap();

    // Catch the next publish while its buckets land on the edge (writes paused there: the push
    // blocks before the commit), and find the instance running it.
    let mut watch = connect(&cluster.edge.url()).await;
    let job = cluster.instances[2].publish(API).await;
    let deadline = Instant::now() + JOB_TIMEOUT;
    let staged = loop {
        let newer = bucket_versions(&mut watch, API)
            .await
            .into_iter()
            .find(|v| *v > old);
        if let Some(v) = newer {
            pause_writes(&mut watch).await;
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no bucket of a new version appeared"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let running = cluster.instances[0].get(&format!("/api/jobs/{job}")).await;
    assert_eq!(
        running["state"], "running",
        "committed before the pause: {running}"
    );
    let victim = instance_of(&names, running["lease_owner"].as_str().unwrap());
    eprintln!("v{staged} caught mid-push on instance {victim}; killing it");
    cluster.instances[victim].kill();
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut watch)
        .await
        .unwrap();
    assert_eq!(
        tablecast_e2e::lookup::serving(&cluster.edge.url(), API).await,
        Some(old)
    );

    // A survivor re-claims it after the lease and commits.
    let survivor = (victim + 1) % 3;
    let view = cluster.instances[survivor]
        .wait_job(&job, JOB_TIMEOUT)
        .await;
    let events = cluster.instances[survivor].follow(&job, JOB_TIMEOUT).await;
    let seen = event_names(&events);
    assert_eq!(view["state"], "succeeded", "{view}\n{seen:?}");
    assert!(seen.contains(&"lease_expired"), "{seen:?}");
    assert_eq!(view["attempts"], 2, "{view}");
    let second_runner = events
        .iter()
        .filter(|e| e["event"] == "attempt_started")
        .filter_map(|e| e["runner"].as_str())
        .next_back()
        .unwrap();
    assert_ne!(instance_of(&names, second_runner), victim);
    let version = view["report"]["version"].as_u64().unwrap();
    assert!(version > staged, "{view}");

    // One complete version serves, with the golden answers.
    assert_eq!(
        tablecast_e2e::lookup::serving(&cluster.edge.url(), API).await,
        Some(version)
    );
    assert_complete(&mut watch, API, version).await;
    let (_lookup, base) = lookup_service(
        &cluster.edge.url(),
        cluster.logs.path(),
        &cluster.logs.path().join("lookup.log"),
    );
    assert_eq!(
        assert_answers_golden(&base, API, 7).await,
        [version.to_string()]
    );
}

/// The `instant=` of every "schedule instant claimed" line of a log, with ANSI colours removed.
fn claimed_instants(log: &std::path::Path) -> Vec<i64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|l| l.contains("schedule instant claimed"))
        .filter_map(|l| {
            let rest = &l[l.find("instant=")? + "instant=".len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_fires_once_per_instant_with_three_instances_and_across_a_coordinator_death() {
    const API: &str = "every_two_seconds";
    let mut cluster = Cluster::start(3, |s| {
        s.with("TABLECAST_DASHBOARD__TRIGGERS__SCHEDULE_TICK_MS", 200)
    });
    cluster
        .create_api(
            1,
            "product_stats",
            API,
            Some(json!({"schedule": "*/2 * * * * *"})),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(7)).await;

    // Kill the coordinator; another instance takes the role within its TTL and goes on.
    let mut coordinator = None;
    for (i, d) in cluster.instances.iter().enumerate() {
        if d.get("/healthz").await["cluster"]["coordinator"] == true {
            assert!(coordinator.is_none(), "two coordinators");
            coordinator = Some(i);
        }
    }
    let coordinator = coordinator.expect("a coordinator");
    cluster.instances[coordinator].kill();
    tokio::time::sleep(Duration::from_secs(9)).await;

    let mut by_instance = Vec::new();
    let mut all = Vec::new();
    for i in 0..3 {
        let instants = claimed_instants(&cluster.log(i));
        all.extend(instants.iter().copied());
        by_instance.push(instants);
    }
    eprintln!("instants claimed per instance: {by_instance:?}");
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "an instant fired twice: {by_instance:?}"
    );
    assert!(
        all.len() >= 5,
        "too few firings over 16 s of a 2 s schedule: {by_instance:?}"
    );
    for instant in &distinct {
        assert_eq!(
            instant % 2000,
            0,
            "not an instant of the schedule: {instant}"
        );
    }
    // The killed coordinator and a successor fired (a loaded machine may move the role once
    // more between survivors: still no instant twice).
    let firing_instances = by_instance.iter().filter(|v| !v.is_empty()).count();
    assert!(firing_instances >= 2, "{by_instance:?}");
    assert!(!by_instance[coordinator].is_empty());
}

/// `deploy/haproxy.cfg` as shipped, pointed at this test's instances and bound to `port`.
fn haproxy_config(instances: &[Dashboard], port: u16) -> String {
    let shipped = std::fs::read_to_string(tablecast_e2e::repo_root().join("deploy/haproxy.cfg"))
        .expect("deploy/haproxy.cfg");
    let mut config = shipped.replace("bind :8080", &format!("bind 127.0.0.1:{port}"));
    for (i, d) in instances.iter().enumerate() {
        let addr = d.base.trim_start_matches("http://");
        config = config.replace(&format!("dashboard-{}:8080", i + 1), addr);
    }
    assert!(!config.contains("dashboard-1:8080"), "{config}");
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_behind_the_example_haproxy_keep_answering_when_one_dies() {
    let haproxy = which("haproxy")
        .expect("haproxy is not installed: run the tests through scripts/test, which installs it");
    let mut cluster = Cluster::start(2, |s| s);
    let port = tablecast_e2e::free_port();
    let config = cluster.logs.path().join("haproxy.cfg");
    std::fs::write(&config, haproxy_config(&cluster.instances, port)).unwrap();
    let mut command = std::process::Command::new(haproxy);
    command.arg("-db").arg("-f").arg(&config);
    let mut lb = tablecast_e2e::ChildProcess::spawn(
        "haproxy",
        command,
        &cluster.logs.path().join("haproxy.log"),
    )
    .unwrap();
    lb.wait_for_port(tablecast_e2e::loopback(port), Duration::from_secs(20))
        .unwrap();
    let balancer = Rest::at(format!("http://127.0.0.1:{port}"));

    // Everything through the load balancer: define, publish, follow.
    let mut spec = sample_spec_json("product_stats");
    spec["name"] = json!("balanced");
    let (status, body) = balancer
        .post("/api/apis", Some(&json!({ "spec": spec })))
        .await;
    assert_eq!(status, 201, "{body}");
    let first = balancer.publish("balanced").await;
    let first = balancer.wait_job(&first, JOB_TIMEOUT).await;
    assert_eq!(first["state"], "succeeded", "{first}");

    // One instance dies: every request through the balancer still gets an answer, and a
    // publish through it commits on the survivor.
    cluster.instances[0].kill();
    for _ in 0..20 {
        let health = balancer.get("/healthz").await;
        assert_eq!(health["database"], "postgres", "{health}");
    }
    let second = balancer.publish("balanced").await;
    let second = balancer.wait_job(&second, JOB_TIMEOUT).await;
    assert_eq!(second["state"], "succeeded", "{second}");
    assert_eq!(second["report"]["version"], 2, "{second}");
    assert_eq!(
        tablecast_e2e::lookup::serving(&cluster.edge.url(), "balanced").await,
        Some(2)
    );
}

/// A program on PATH.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
