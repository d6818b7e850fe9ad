//! The job queue under several instances, on both store backends: `INSTANCES` store handles on
//! one database (each with its own connection pool, as separate `tablecast serve` processes
//! have) run `RUNNERS` claimers each, which drain `APIS × PER_API` queued jobs: claim, then
//! finish at once with a final event, as a runner does around a job. Same work, same start-up
//! on both sides: SQLite in a temporary file against PostgreSQL on a loopback server started
//! here (as `nobody` when run as root).
//!
//! Prints one JSON object per backend: jobs/s through the whole queue, the latency of a
//! successful claim and of a finish (p50, p99) and how many claims found nothing to take.
//!
//!   cargo bench -p tablecast-e2e --bench job_queue [-- --jobs N]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashboard_api::store::{JobKind, JobParams, JobRow, JobState, Outcome, Store};
use serde_json::json;
use tablecast_e2e::Postgres;

const INSTANCES: usize = 3;
const RUNNERS: usize = 2;
const APIS: usize = 100;

struct Drained {
    jobs: usize,
    seconds: f64,
    claim_us: Vec<u64>,
    finish_us: Vec<u64>,
    empty_claims: usize,
}

async fn drain(url: &str, per_api: usize) -> anyhow::Result<Drained> {
    let first = Store::open(url).await?;
    for _ in 0..per_api {
        for a in 0..APIS {
            let job = JobRow::queued(
                &format!("api_{a}"),
                JobKind::Publish,
                Some(1),
                JobParams::default(),
                "bench",
                3,
            );
            first.enqueue(&job).await?;
        }
    }
    let total = APIS * per_api;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut stores = vec![first];
    for _ in 1..INSTANCES {
        stores.push(Store::open(url).await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, store) in stores.iter().enumerate() {
        for r in 0..RUNNERS {
            let (store, done) = (store.clone(), Arc::clone(&done));
            let owner = format!("bench-{i}-r{r}");
            tasks.spawn(async move {
                let mut claim_us = Vec::new();
                let mut finish_us = Vec::new();
                let mut empty = 0;
                let event = json!({"event": "finished", "state": "succeeded"});
                while done.load(std::sync::atomic::Ordering::Acquire) < total {
                    let t = Instant::now();
                    match store.claim(&owner, 30_000).await? {
                        Some(job) => {
                            claim_us.push(t.elapsed().as_micros() as u64);
                            let outcome = Outcome {
                                state: JobState::Succeeded,
                                report: None,
                                error: None,
                            };
                            let t = Instant::now();
                            store.finish(&job.id, &owner, outcome, &event).await?;
                            finish_us.push(t.elapsed().as_micros() as u64);
                            done.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        }
                        None => {
                            empty += 1;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                anyhow::Ok((claim_us, finish_us, empty))
            });
        }
    }
    let mut claim_us = Vec::new();
    let mut finish_us = Vec::new();
    let mut empty_claims = 0;
    while let Some(joined) = tasks.join_next().await {
        let (claims, finishes, empty) = joined??;
        claim_us.extend(claims);
        finish_us.extend(finishes);
        empty_claims += empty;
    }
    let seconds = started.elapsed().as_secs_f64();
    let counts = stores[0].job_counts().await?;
    let succeeded = counts
        .iter()
        .find(|(s, _)| s == "succeeded")
        .map_or(0, |(_, n)| *n as usize);
    anyhow::ensure!(
        succeeded == total,
        "{succeeded} of {total} jobs succeeded: {counts:?}"
    );
    claim_us.sort_unstable();
    finish_us.sort_unstable();
    Ok(Drained {
        jobs: total,
        seconds,
        claim_us,
        finish_us,
        empty_claims,
    })
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let per_api = args
        .iter()
        .position(|a| a == "--jobs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(10, |n| n.div_ceil(APIS));
    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}", dir.path().join("queue.db").display());
    let postgres = Postgres::start()?;
    let pg = postgres.try_create_database("queue")?;
    for (backend, url) in [("sqlite", sqlite.as_str()), ("postgres", pg.as_str())] {
        let d = drain(url, per_api).await?;
        println!(
            "{}",
            json!({
                "bench": "job_queue",
                "backend": backend,
                "instances": INSTANCES,
                "runners_per_instance": RUNNERS,
                "jobs": d.jobs,
                "seconds": (d.seconds * 1000.0).round() / 1000.0,
                "jobs_per_s": (d.jobs as f64 / d.seconds).round(),
                "claim_ms_p50": quantile(&d.claim_us, 0.5),
                "claim_ms_p99": quantile(&d.claim_us, 0.99),
                "finish_ms_p50": quantile(&d.finish_us, 0.5),
                "finish_ms_p99": quantile(&d.finish_us, 0.99),
                "empty_claims": d.empty_claims,
            })
        );
    }
    Ok(())
}
