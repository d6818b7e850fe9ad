//! Reading what an edge serves: through a lookup service (bounded polling, since the service
//! caches the serving version for up to `version_cache_ms`) and straight from its Redis.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use crate::golden;

/// GETs `url` until it answers `status` (and, if given, from `version`), for at most 10 s;
/// returns the last status and version (error answers carry none). Panics past the deadline.
pub async fn answer_until(
    url: &str,
    token: Option<&str>,
    status: u16,
    version: Option<&str>,
) -> (u16, String) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut request = http.get(url);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let resp = request.send().await.unwrap();
        let got = (
            resp.status().as_u16(),
            resp.headers()
                .get("x-tablecast-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        );
        if got.0 == status && version.is_none_or(|v| got.1 == v) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{url} still answers {got:?}, expected {status} {version:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One GET: status, `x-tablecast-version`, `retry-after`, and the JSON error code if any.
pub async fn answer(url: &str, token: Option<&str>) -> (u16, String, Option<String>, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let resp = request.send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (status, version, retry) = (
        resp.status().as_u16(),
        header("x-tablecast-version").unwrap_or_default(),
        header("retry-after"),
    );
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, version, retry, code)
}

/// The version an edge's Redis serves for `api` (its `current` pointer).
pub async fn serving(redis_url: &str, api: &str) -> Option<u64> {
    redis::cmd("GET")
        .arg(format!("tc:{{{api}}}:current"))
        .query_async(&mut fixtures::redis::connect(redis_url).await)
        .await
        .unwrap()
}

/// Empties an edge's Redis, as a restart without persistence would.
pub async fn flushall(redis_url: &str) {
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut fixtures::redis::connect(redis_url).await)
        .await
        .unwrap();
}

/// Every data bucket key of an API, whatever its version.
pub async fn bucket_keys(conn: &mut MultiplexedConnection, api: &str) -> Vec<String> {
    scan_keys(conn, &format!("tc:{{{api}:v*")).await
}

/// The versions that have data buckets in the Redis (`tc:{api:vN:bK}`).
pub async fn bucket_versions(conn: &mut MultiplexedConnection, api: &str) -> BTreeSet<u64> {
    let prefix = format!("tc:{{{api}:v");
    bucket_keys(conn, api)
        .await
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix)?.split(':').next()?.parse().ok())
        .collect()
}

/// `version` of the API is sealed (its manifest is there) and holds every golden key.
pub async fn assert_complete(conn: &mut MultiplexedConnection, api: &str, version: u64) {
    let manifest: bool = redis::cmd("EXISTS")
        .arg(format!("tc:{{{api}}}:v{version}:manifest"))
        .query_async(conn)
        .await
        .unwrap();
    assert!(manifest, "v{version} has no manifest");
    assert_eq!(
        version_fields(conn, api, version).await,
        golden(api).len() as u64,
        "v{version} is not complete"
    );
}

/// Fields over every bucket of one version.
pub async fn version_fields(conn: &mut MultiplexedConnection, api: &str, version: u64) -> u64 {
    let prefix = format!("tc:{{{api}:v{version}:b");
    let mut total = 0;
    for key in bucket_keys(conn, api).await {
        if key.starts_with(&prefix) {
            let n: u64 = redis::cmd("HLEN")
                .arg(&key)
                .query_async(conn)
                .await
                .unwrap();
            total += n;
        }
    }
    total
}

pub use fixtures::redis::{connect, pause_writes, scan_keys};
