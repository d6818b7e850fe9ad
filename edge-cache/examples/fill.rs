//! Fills an edge with a synthetic API of N keys through the real writer (begin, pipelined
//! writes, seal, commit), and prints the push rate as JSON. `scripts/bench` uses it for the push
//! rate (beside `redis-benchmark -t hset -P 64`) and to serve 1 k to 10 M keys for lookups.
//!
//! `cargo run --release -p edge-cache --example fill -- REDIS_URL API KEYS [VALUE_BYTES]`
//!
//! Keys are `[i]` (one integer column, so `GET /v1/API/i`), values `{"i":i,"pad":"x…"}` of about
//! VALUE_BYTES (default 80). Entries are made batch by batch: memory stays flat at 10 M keys.

use std::time::Instant;

use edge_cache::{EdgeOptions, RedisEdge};
use publisher::canonical::{Checksum, Entry};
use publisher::keypath::KeyType;
use publisher::sink::VersionManifest;

const BATCH: u64 = 10_000;

fn batch(start: u64, end: u64, pad: &str) -> Vec<Entry> {
    (start..end)
        .map(|i| Entry {
            key: format!("[{i}]").into_bytes(),
            value: format!(r#"{{"i":{i},"pad":"{pad}"}}"#).into_bytes(),
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, api, keys, rest @ ..] = &args[..] else {
        return Err("usage: fill REDIS_URL API KEYS [VALUE_BYTES]".into());
    };
    let keys: u64 = keys.parse()?;
    let value_bytes: usize = rest.first().map(|v| v.parse()).transpose()?.unwrap_or(80);
    let pad = "x".repeat(value_bytes.saturating_sub(20));

    let edge = RedisEdge::connect_with(url, EdgeOptions::default()).await?;
    let versions = edge.versions(api).await?;
    let version = versions.highest.max(versions.serving.unwrap_or(0)) + 1;
    let mut manifest = VersionManifest {
        api: api.clone(),
        version,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        key_types: vec![KeyType::Int],
        key_names: vec!["i".into()],
        checksum: Checksum {
            keys, // the size hint that fixes the bucket count
            ..Checksum::default()
        },
        path: "fasttrack".into(),
        data_time: None,
        compression: None,
    };
    edge.begin(&manifest).await?;

    let mut sum = Checksum::default();
    let mut write_s = 0.0;
    let mut start = 0;
    while start < keys {
        let end = (start + BATCH).min(keys);
        let entries = batch(start, end, &pad);
        entries.iter().for_each(|e| sum.add(&e.key, &e.value));
        let t = Instant::now();
        edge.write(api, version, &entries).await?;
        write_s += t.elapsed().as_secs_f64();
        start = end;
    }
    manifest.checksum = sum;
    let t = Instant::now();
    edge.seal(&manifest).await?;
    let seal_s = t.elapsed().as_secs_f64();
    edge.commit(api, version).await?;
    edge.gc(api, 1).await?;
    println!(
        "{}",
        serde_json::json!({
            "api": api,
            "version": version,
            "keys": keys,
            "bytes": sum.bytes,
            "write_s": write_s,
            "seal_s": seal_s,
            "keys_per_s": keys as f64 / write_s,
            "mb_per_s": sum.bytes as f64 / write_s / 1e6,
        })
    );
    Ok(())
}
