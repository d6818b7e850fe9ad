//! The operations view in-process: lookups of known counts and statuses at real lookup services
//! (over real redis-servers) show up, exactly, in the dashboard's per-API traffic, with the
//! latency quantile inside the histogram bucket the services' own metrics put it in, each
//! service's served version and sampled edge memory, and the ranking of APIs by traffic.

mod common;

use std::time::Duration;

use common::*;
use dashboard_api::traffic::{BUCKETS, Scrape};
use edge_contract::LATENCY_BUCKETS;
use fixtures::poll;
use serde_json::Value;

#[tokio::test]
async fn lookups_of_known_counts_show_up_exactly_in_the_api_traffic() {
    let dir = workspace();
    let server = TestServer::boot_with(dir.path(), |c| c.traffic.scrape_ms = 200).await;
    server.create_api(top_products_spec("busy")).await;
    server.create_api(top_products_spec("idle")).await;
    server.publish_ok("busy").await;
    // A scrape has set the baseline before any lookup.
    poll::until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let (_, t) = server.get("/api/apis/busy/traffic").await;
            if t["lookups"].as_array().is_some_and(|l| l.len() == 2) {
                Ok(())
            } else {
                Err(format!("no scrape yet: {t}"))
            }
        },
    )
    .await;

    for _ in 0..30 {
        assert_eq!(server.stack.lookup(0, "busy", "fb", None).await.0, 200);
    }
    for i in 0..10 {
        assert_eq!(
            server
                .stack
                .lookup(0, "busy", &format!("nobody{i}"), None)
                .await
                .0,
            404
        );
    }
    for _ in 0..5 {
        assert_eq!(server.stack.lookup(1, "busy", "tw", None).await.0, 200);
    }

    let traffic: Value = poll::until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let (status, t) = server.get("/api/apis/busy/traffic").await;
            assert_eq!(status, 200, "{t}");
            if t["requests"] == 45 {
                Ok(t)
            } else {
                Err(format!("not all counted yet: {t}"))
            }
        },
    )
    .await;
    assert_eq!(traffic["not_found"], 10, "{traffic}");
    assert_eq!(traffic["errors"], 0, "{traffic}");
    // The near caches answered every repeat of a key: 29 of the 30 `fb`, 4 of the 5 `tw`
    // (each distinct 404 key was asked once).
    assert_eq!(traffic["near_hits"], 33, "{traffic}");
    assert_eq!(traffic["window"], "1h");
    let points = traffic["points"].as_array().unwrap();
    let per_point: f64 = points
        .iter()
        .map(|p| p["requests_per_s"].as_f64().unwrap() * traffic["step_s"].as_f64().unwrap())
        .sum();
    assert!(
        per_point > 40.0,
        "points add up to the requests: {per_point}"
    );

    // The p99 lies in the bucket the lookup services' own histograms put the 99th percentile in.
    let mut counts = [0u64; BUCKETS];
    for base in &server.stack.lookups {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for (i, c) in Scrape::parse(&text).apis["busy"].latency.iter().enumerate() {
            counts[i] += c;
        }
    }
    let total: u64 = counts.iter().sum();
    assert_eq!(total, 45);
    let (mut seen, mut bucket) = (0, 0);
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen as f64 >= 0.99 * total as f64 {
            bucket = i;
            break;
        }
    }
    let lower = if bucket == 0 {
        0.0
    } else {
        LATENCY_BUCKETS[bucket - 1] * 1000.0
    };
    let upper = LATENCY_BUCKETS
        .get(bucket)
        .map_or(f64::INFINITY, |b| b * 1000.0);
    let p99 = traffic["p99_ms"].as_f64().unwrap();
    assert!(
        lower <= p99 && p99 <= upper,
        "p99 {p99} ms outside [{lower}, {upper}]"
    );

    // Each lookup service's view: the version it serves and the edge memory it sampled.
    let now: Value = poll::until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let (_, t) = server.get("/api/apis/busy/traffic").await;
            let lookups = t["lookups"].as_array().unwrap().clone();
            if lookups
                .iter()
                .all(|l| l["version"] == 1 && l["memory_bytes"].as_u64().is_some_and(|m| m > 0))
            {
                Ok(t)
            } else {
                Err(format!("versions and memory not seen yet: {t}"))
            }
        },
    )
    .await;
    for l in now["lookups"].as_array().unwrap() {
        assert!(l["redis_used_bytes"].as_u64().unwrap() > 0, "{l}");
    }

    // The overview ranks the busy API first.
    let (_, ranks) = server.get("/api/traffic").await;
    let names: Vec<&str> = ranks
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["api"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["busy", "idle"], "{ranks}");
    assert!(ranks[0]["requests_per_s"].as_f64().unwrap() > 0.0);
    assert!((ranks[0]["not_found_pct"].as_f64().unwrap() - 100.0 * 10.0 / 45.0).abs() < 1e-9);

    let (status, body) = server.get("/api/apis/busy/traffic?window=week").await;
    assert_eq!(status, 422, "{body}");
    server.stop().await;
}
