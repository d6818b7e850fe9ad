//! Write throughput of the edge writer, next to redis-benchmark on the same server:
//! `cargo test -p edge-cache --test bench -- --ignored --nocapture`

mod common;

use std::time::Instant;

use common::*;
use edge_cache::{EdgeOptions, RedisEdge};
use publisher::canonical::{Checksum, Entry};

fn entries(n: usize) -> Vec<Entry> {
    // ~100 bytes an entry: a 20-byte key, an 80-byte value.
    (0..n)
        .map(|i| Entry {
            key: format!("[\"user{i:012}\"]").into_bytes(),
            value: format!(r#"{{"i":{i:010},"name":"{}"}}"#, "x".repeat(56)).into_bytes(),
        })
        .collect()
}

fn redis_benchmark(port: u16) -> f64 {
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "hset",
            "-P",
            "64",
            "-q",
            "-n",
            "200000",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The last line: `HSET: 523560.22 requests per second, ...` (after \r progress lines).
    let last = text.rsplit('\r').next().unwrap_or("");
    last.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn write_throughput() {
    let redis = RedisServer::start();
    let types = composite_types();
    let mut version = 0;
    let data = entries(100_000);
    let sum = checksum(&data);
    let mut best: std::collections::BTreeMap<String, f64> = Default::default();
    for round in 0..3 {
        let rb = redis_benchmark(redis.port);
        eprintln!("round {round}: redis-benchmark -t hset -P 64: {rb:.0} requests/s");
        let e = best.entry("redis-benchmark hset -P 64".into()).or_default();
        *e = e.max(rb);
        for chunk in [500, 100_000] {
            let options = EdgeOptions {
                write_chunk: chunk,
                retire_grace: std::time::Duration::ZERO,
                ..EdgeOptions::default()
            };
            let edge = RedisEdge::connect_with(&redis.url(), options)
                .await
                .unwrap();
            for batch in [2000, 5000] {
                version += 1;
                let m = manifest("bench", version, &types, sum);
                let mut staging = m.clone();
                staging.checksum = Checksum::default();
                staging.checksum.keys = 100_000; // size hint: ~1000 fields a bucket
                edge.begin(&staging).await.unwrap();
                let t = Instant::now();
                for b in data.chunks(batch) {
                    edge.write("bench", version, b).await.unwrap();
                }
                let write = t.elapsed();
                let t = Instant::now();
                edge.seal(&m).await.unwrap();
                let seal = t.elapsed();
                edge.commit("bench", version).await.unwrap();
                edge.gc("bench", 1).await.unwrap();
                let rate = 100_000.0 / write.as_secs_f64();
                eprintln!(
                    "round {round}: 100000 entries of ~102 B, write batches of {batch}, pipelines of {chunk}: {:.0} ms = {rate:.0} entries/s; seal {:.1} ms",
                    write.as_secs_f64() * 1000.0,
                    seal.as_secs_f64() * 1000.0
                );
                let e = best
                    .entry(format!("write: batches of {batch}, pipelines of {chunk}"))
                    .or_default();
                *e = e.max(rate);
            }
        }
    }
    for (k, v) in &best {
        eprintln!("best {k}: {v:.0}/s");
    }
}
