//! Write throughput of the edge writer, next to redis-benchmark on the same server:
//! `cargo test -p edge-cache --test bench -- --ignored --nocapture`

mod common;

use std::time::Instant;

use common::*;
use edge_cache::RedisEdge;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn write_throughput() {
    let redis = RedisServer::start();
    let edge = RedisEdge::connect(&redis.url()).await.unwrap();
    let types = composite_types();
    let mut version = 0;
    for (n, batch) in [
        (10_000, 2000),
        (100_000, 2000),
        (100_000, 5000),
        (100_000, 1000),
    ] {
        let data = entries(n);
        version += 1;
        let m = manifest("bench", version, &types, checksum(&data));
        let mut staging = m.clone();
        staging.checksum = Checksum::default();
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
        let t = Instant::now();
        edge.gc("bench", 1).await.unwrap();
        let gc = t.elapsed();
        let bytes: usize = data.iter().map(|e| e.key.len() + e.value.len()).sum();
        eprintln!(
            "{n} entries ({} B avg), batches of {batch}: write {:.0} ms = {:.0} entries/s; seal {:.1} ms; gc of the previous {:.1} ms",
            bytes / n,
            write.as_secs_f64() * 1000.0,
            n as f64 / write.as_secs_f64(),
            seal.as_secs_f64() * 1000.0,
            gc.as_secs_f64() * 1000.0,
        );
    }
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-p",
            &redis.port.to_string(),
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
    eprintln!(
        "redis-benchmark: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}
