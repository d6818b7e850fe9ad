//! Jobs through the REST API: publish with live progress, versions, rollback, serialization of
//! one API's jobs, retries of transient faults, immediate failure of permanent ones, and
//! recovery of jobs whose runner died (expired lease).

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, TestStack, config, open_db, top_products_spec, workspace};
use serde_json::{Value, json};

fn event_names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn publishes_follows_progress_rolls_back_and_publishes_again() {
    let (_dir, server) = TestServer::fresh_with_api(top_products_spec("top")).await;
    let stack = server.stack.clone();

    // Publish: 202 with the job; follow its events to the end.
    let resp = server
        .client
        .post(server.url("/api/apis/top/publish"))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let job: Value = resp.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/api/jobs/{id}"));
    assert_eq!(job["kind"], "publish");
    assert_eq!(job["revision"], 1);

    let events = server.follow(&id).await;
    let names = event_names(&events);
    assert_eq!(names.first(), Some(&"queued"), "{names:?}");
    assert!(names.contains(&"attempt_started"), "{names:?}");
    assert!(names.contains(&"step_started"), "{names:?}");
    assert!(names.contains(&"guards"), "{names:?}");
    assert!(names.contains(&"rows"), "{names:?}");
    assert!(names.contains(&"edge_sealed"), "{names:?}");
    assert!(names.contains(&"committed"), "{names:?}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "finished");
    assert_eq!(last["state"], "succeeded");
    let report = &last["report"];
    assert_eq!(report["committed"], true, "{report}");
    assert_eq!(report["version"], 1);
    assert_eq!(report["path"], "fasttrack");
    assert_eq!(report["keys_out"], 4);
    assert_eq!(report["edges"].as_array().unwrap().len(), 2);

    let job = server.wait_job(&id).await;
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["report"]["version"], 1);
    // The edges serve it (values as the fast track encodes them).
    for i in 0..2 {
        assert_eq!(stack.serving(i, "top").await, Some(1));
        let (status, body, version) = stack.lookup(i, "top", "tw", None).await;
        assert_eq!(
            (status, body.as_str(), version),
            (200, r#"[{"product_id":3,"referrals":1}]"#, Some(1))
        );
    }
    // The API's "try it" link is a lookup service of its edge group.
    let (_, api) = server.get("/api/apis/top").await;
    assert_eq!(api["last_job"]["id"], id.as_str());
    let resp = reqwest::get(format!("{}fb", api["lookup_url"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"[{"product_id":1,"referrals":9},{"product_id":3,"referrals":9}]"#
    );
    // Replaying a finished job's events gives the same stream; Last-Event-ID resumes.
    assert_eq!(server.follow(&id).await, events);
    let resp = server
        .client
        .get(server.url(&format!("/api/jobs/{id}/events")))
        .bearer_auth(common::ADMIN)
        .header("Last-Event-ID", (events.len() - 1).to_string())
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert_eq!(text.matches("data:").count(), 1, "{text}");
    assert!(text.contains("\"finished\""), "{text}");

    // Second publish, with a changed spec: version 2.
    let mut spec = top_products_spec("top");
    spec["limit"] = json!(1);
    let (status, _) = server.put("/api/apis/top", json!({"spec": spec})).await;
    assert_eq!(status, 200);
    let id2 = server.publish("top").await;
    let job2 = server.wait_job(&id2).await;
    assert_eq!(job2["state"], "succeeded", "{job2}");
    assert_eq!(job2["report"]["version"], 2);
    assert_eq!(job2["report"]["previous_version"], 1);
    assert_eq!(job2["revision"], 2);
    let (body, _) = stack.lookup_until(0, "top", "fb", None, 200).await;
    assert_eq!(body, r#"[{"product_id":1,"referrals":9}]"#);

    // Versions: from the edges and from the store.
    let (status, v) = server.get("/api/apis/top/versions").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["serving"], 2);
    assert_eq!(v["edges"].as_array().unwrap().len(), 2);
    let kept: Vec<u64> = fixtures::pluck_u64(&v["edges"][0]["kept"], "version");
    assert_eq!(kept, vec![2, 1]);
    assert_eq!(v["edges"][0]["kept"][0]["keys"], 4);
    let history: Vec<u64> = fixtures::pluck_u64(&v["history"], "version");
    assert_eq!(history, vec![2, 1]);
    assert_eq!(v["history"][0]["job_id"], id2.as_str());
    assert_eq!(v["history"][0]["path"], "fasttrack");

    // Roll back (to the previous version by default): a job, followed to its end.
    let (status, rb) = server.post("/api/apis/top/rollback", json!({})).await;
    assert_eq!(status, 202, "{rb}");
    assert_eq!(rb["kind"], "rollback");
    let events = server.follow(rb["id"].as_str().unwrap()).await;
    let last = events.last().unwrap();
    assert_eq!(last["state"], "succeeded", "{events:?}");
    assert_eq!(last["report"]["from"], 2);
    assert_eq!(last["report"]["to"], 1);
    assert_eq!(last["report"]["committed"], true);
    for i in 0..2 {
        assert_eq!(stack.serving(i, "top").await, Some(1));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, body, version) = stack.lookup(i, "top", "fb", None).await;
            if version == Some(1) {
                assert_eq!(
                    (status, body.as_str()),
                    (
                        200,
                        r#"[{"product_id":1,"referrals":9},{"product_id":3,"referrals":9}]"#
                    )
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "edge {i} still serves {version:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (_, v) = server.get("/api/apis/top/versions").await;
    assert_eq!(v["serving"], 1);

    // A version that is not kept: the rollback fails at once, naming it.
    let (_, rb) = server
        .post("/api/apis/top/rollback", json!({"to": 9}))
        .await;
    let job = server.wait_job(rb["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["attempts"], 1);
    assert!(
        job["error"]["message"]
            .as_str()
            .unwrap()
            .contains("version 9"),
        "{job}"
    );

    // Publishing again after a rollback: versions keep growing.
    let id3 = server.publish("top").await;
    let job3 = server.wait_job(&id3).await;
    assert_eq!(job3["state"], "succeeded", "{job3}");
    assert_eq!(job3["report"]["version"], 3);
    assert_eq!(job3["report"]["previous_version"], 1);
    assert_eq!(stack.serving(1, "top").await, Some(3));

    // Roll back to an explicit version (2: the edges keep the newest two, 3 and 2).
    let (_, rb) = server
        .post("/api/apis/top/rollback", json!({"to": 2}))
        .await;
    let job = server.wait_job(rb["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(stack.serving(0, "top").await, Some(2));

    // The job list, newest first, filterable.
    let (status, jobs) = server.get("/api/jobs?api=top&state=succeeded").await;
    assert_eq!(status, 200);
    assert_eq!(jobs.as_array().unwrap().len(), 5, "{jobs}");
    assert_eq!(jobs[0]["kind"], "rollback");
    let (status, e) = server.get("/api/jobs?state=bogus").await;
    assert_eq!(status, 400, "{e}");

    // Metrics count the jobs.
    let text = server.get_raw("/metrics").await.text().await.unwrap();
    assert!(
        text.contains("tablecast_dashboard_jobs{state=\"succeeded\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("tablecast_dashboard_jobs{state=\"failed\"} 1"),
        "{text}"
    );
    assert!(text.contains("tablecast_dashboard_job_duration_seconds_count{kind=\"publish\",outcome=\"succeeded\"} 3"), "{text}");

    server.stop().await;
}

#[tokio::test]
async fn two_publishes_of_one_api_run_one_after_the_other() {
    let dir = workspace();
    let server = TestServer::boot_with(dir.path(), |c| c.runners = 3).await;
    server.create_api(top_products_spec("top")).await;
    server.create_api(top_products_spec("other")).await;
    for i in 0..2 {
        server.stack.edge(i).faults.delay_writes(300);
    }

    let (a, b, c) = tokio::join!(
        server.publish("top"),
        server.publish("top"),
        server.publish("other")
    );
    let (ja, jb, jc) = tokio::join!(
        server.wait_job(&a),
        server.wait_job(&b),
        server.wait_job(&c)
    );
    for j in [&ja, &jb, &jc] {
        assert_eq!(j["state"], "succeeded", "{j}");
    }
    let mut versions = [
        ja["report"]["version"].as_u64().unwrap(),
        jb["report"]["version"].as_u64().unwrap(),
    ];
    versions.sort();
    assert_eq!(versions, [1, 2]);

    // Intervals of the two `top` jobs do not overlap; the `other` job ran alongside.
    let t =
        |j: &Value, f: &str| chrono::DateTime::parse_from_rfc3339(j[f].as_str().unwrap()).unwrap();
    let (first, second) = if t(&ja, "started_at") < t(&jb, "started_at") {
        (&ja, &jb)
    } else {
        (&jb, &ja)
    };
    assert!(
        t(second, "started_at") >= t(first, "finished_at"),
        "overlap: {first} {second}"
    );
    assert!(
        t(&jc, "started_at") < t(first, "finished_at")
            || t(&jc, "started_at") < t(second, "finished_at"),
        "different APIs run in parallel"
    );

    // While the first runs, the second is visibly queued.
    let id = server.publish("top").await;
    let id2 = server.publish("top").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, j1) = server.get(&format!("/api/jobs/{id}")).await;
        if j1["state"] == "running" {
            let (_, j2) = server.get(&format!("/api/jobs/{id2}")).await;
            assert_eq!(j2["state"], "queued", "{j2}");
            break;
        }
        assert!(Instant::now() < deadline, "{j1}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.wait_job(&id2).await["report"]["version"], 4);
    server.stop().await;
}

#[tokio::test]
async fn transient_faults_are_retried_with_backoff_and_permanent_ones_fail_at_once() {
    let (_dir, server) = TestServer::fresh_with_api(top_products_spec("top")).await;
    let stack = server.stack.clone();

    // Two transient write failures, then success: three attempts.
    stack.edge(1).faults.fail_next_writes(2);
    let id = server.publish("top").await;
    let events = server.follow(&id).await;
    let names = event_names(&events);
    assert_eq!(
        names.iter().filter(|n| **n == "retry_scheduled").count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "attempt_started").count(),
        3,
        "{names:?}"
    );
    let retry = events
        .iter()
        .find(|e| e["event"] == "retry_scheduled")
        .unwrap();
    assert_eq!(retry["error"]["transient"], true);
    assert_eq!(retry["error"]["step"], "push");
    assert_eq!(retry["error"]["edge"], stack.urls[1].as_str());
    assert_eq!(retry["delay_ms"], 50);
    let delays: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "retry_scheduled")
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, vec![50, 100], "exponential backoff");
    assert_eq!(events.last().unwrap()["state"], "succeeded");
    let job = server.wait_job(&id).await;
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["attempts"], 3);
    assert_eq!(
        job["report"]["version"], 3,
        "each attempt staged a new version; the third committed"
    );
    assert_eq!(stack.serving(0, "top").await, Some(3));

    // A transient fault that does not go away: failed after max_attempts (4).
    stack.edge(0).faults.fail_next_writes(100);
    let id = server.publish("top").await;
    let job = server.wait_job(&id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempts"], 4);
    assert_eq!(job["error"]["transient"], true);
    stack.edge(0).faults.fail_next_writes(0);

    // A permanent fault: failed at the first attempt, with the error naming the step.
    stack.edge(0).faults.fail_every_write(true);
    let id = server.publish("top").await;
    let events = server.follow(&id).await;
    let last = events.last().unwrap();
    assert_eq!(last["state"], "failed", "{events:?}");
    assert_eq!(last["error"]["transient"], false);
    assert_eq!(last["error"]["step"], "push");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("injected permanent fault")
    );
    assert!(!event_names(&events).contains(&"retry_scheduled"));
    let job = server.wait_job(&id).await;
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["report"]["committed"], false);
    // Nothing partial is served: the edges still serve the last good version.
    assert_eq!(stack.serving(0, "top").await, Some(3));
    assert_eq!(stack.serving(1, "top").await, Some(3));

    let text = server.get_raw("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(
            "tablecast_dashboard_job_attempts_total{kind=\"publish\",outcome=\"retried\"} 5"
        ),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_job_whose_runner_died_is_reclaimed_after_its_lease_expires() {
    let dir = workspace();
    let stack = TestStack::new().await;

    // A dashboard without runners queues the job.
    let mut cfg = config(dir.path(), &stack);
    cfg.runners = 0;
    let server = TestServer::start(cfg, stack.clone()).await;
    server.create_api(top_products_spec("top")).await;
    let id = server.publish("top").await;
    let job = server.wait_job_state(&id, "queued").await;
    assert_eq!(job["attempts"], 0);
    server.stop().await;

    // Simulate a runner that claimed it and died: running, leased by a ghost, lease expiring soon.
    let db = open_db(&dir.path().join("dashboard.db")).await;
    let expires = chrono::Utc::now().timestamp_millis() + 1500;
    sqlx::query("UPDATE jobs SET state = 'running', lease_owner = 'ghost', lease_expires_at = $1, attempts = 1 WHERE id = $2")
        .bind(expires)
        .bind(&id)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    // A live dashboard leaves it alone while the lease holds, then re-claims and completes it.
    let mut cfg = config(dir.path(), &stack);
    cfg.lease_ms = 400;
    let server = TestServer::start(cfg, stack).await;
    let (_, job) = server.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(job["lease_owner"], "ghost");
    let events = server.follow(&id).await;
    let names = event_names(&events);
    assert!(names.contains(&"lease_expired"), "{names:?}");
    assert_eq!(events.last().unwrap()["state"], "succeeded", "{events:?}");
    let job = server.wait_job(&id).await;
    assert_eq!(job["attempts"], 2);
    assert_eq!(job["report"]["version"], 1);
    assert!(job.get("lease_owner").is_none(), "{job}");
    assert_eq!(server.stack.serving(0, "top").await, Some(1));
    server.stop().await;
}

#[tokio::test]
async fn shutdown_hands_a_running_job_back_and_the_next_start_finishes_it() {
    let dir = workspace();
    let stack = TestStack::new().await;
    let server = TestServer::start(config(dir.path(), &stack), stack.clone()).await;
    server.create_api(top_products_spec("top")).await;
    let id = server.publish_stuck_in_push("top").await;
    // An SSE follower does not hold up the shutdown.
    let follower = {
        let client = server.client.clone();
        let url = server.url(&format!("/api/jobs/{id}/events"));
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(common::ADMIN)
                .send()
                .await
                .unwrap()
                .text()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the event stream ended with the server");

    let db = open_db(&dir.path().join("dashboard.db")).await;
    let (state, attempts): (String, i64) =
        sqlx::query_as("SELECT state, attempts FROM jobs WHERE id = $1")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), attempts),
        ("queued", 0),
        "handed back without using an attempt"
    );
    db.close().await;

    stack.edge(0).faults.hang_writes(false);
    let server = TestServer::start(config(dir.path(), &stack), stack.clone()).await;
    let job = server.wait_job(&id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["report"]["version"], 2,
        "the abandoned attempt's version 1 was never committed"
    );
    server.stop().await;
}

#[tokio::test]
async fn cancelling_a_queued_or_running_job() {
    let (_dir, server) = TestServer::fresh_with_api(top_products_spec("top")).await;
    let stack = server.stack.clone();
    let running = server.publish_stuck_in_push("top").await;
    let queued = server.publish("top").await;

    for job in [&queued, &running] {
        let (status, j) = server
            .post(&format!("/api/jobs/{job}/cancel"), json!({}))
            .await;
        assert_eq!(
            (status, j["state"].as_str()),
            (200, Some("cancelled")),
            "{j}"
        );
    }
    let events = server.follow(&running).await;
    assert_eq!(events.last().unwrap()["state"], "cancelled");
    let (status, _) = server
        .post(&format!("/api/jobs/{running}/cancel"), json!({}))
        .await;
    assert_eq!(status, 409);
    stack.edge(0).faults.hang_writes(false);

    // The API is free again: the next publish runs and commits.
    let id = server.publish("top").await;
    let job = server.wait_job(&id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        stack.serving(1, "top").await,
        job["report"]["version"].as_u64()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_sample_spec_over_the_generated_fixtures_serves_the_golden_answers() {
    let dir = workspace();
    let (server, _) = TestServer::boot_over_generated_fixtures(dir.path()).await;

    let spec = publisher::spec::ApiSpec::from_path(
        &fixtures::specs_dir().join("top_products_by_network.toml"),
    )
    .unwrap();
    let (status, api) = server
        .post("/api/apis", json!({"spec": spec, "catalog": "fixtures"}))
        .await;
    assert_eq!(status, 201, "{api}");
    let job = server.publish_ok("top_products_by_network").await;
    assert_eq!(job["report"]["path"], "fasttrack");

    let golden =
        std::fs::read_to_string(fixtures::golden_dir().join("top_products_by_network.jsonl"))
            .unwrap();
    assert_eq!(job["report"]["keys_out"], golden.lines().count());
    for line in golden.lines() {
        let parsed: Value = serde_json::from_str(line).unwrap();
        let network = parsed["key"][0].as_str().unwrap();
        let value = &line[line.find(",\"value\":").unwrap() + 9..line.len() - 1];
        for i in 0..2 {
            let (status, body, _) = server
                .stack
                .lookup(i, "top_products_by_network", network, None)
                .await;
            assert_eq!(status, 200, "{network}: {body}");
            assert_eq!(
                body, value,
                "{network} on edge {i}: byte-identical to the golden answer"
            );
        }
    }
    server.stop().await;
}
