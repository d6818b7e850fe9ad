//! A tiny private harness for edge-cache's tests: redis-server processes on free loopback
//! ports (killed on drop), version fixtures, and an HTTP helper over the router.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use edge_cache::RedisEdge;
use publisher::canonical::{Checksum, Entry, write_str};
use publisher::keypath::KeyType;
use publisher::sink::VersionManifest;
use tower::ServiceExt;

pub use fixtures::redis::{RedisServer, free_port};

/// A connection that waits long enough for `SAVE` and friends on a loaded machine.
pub async fn redis_client(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(20)));
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// Every key of a Redis (SCAN), sorted.
pub async fn all_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    fixtures::redis::scan_keys(conn, "*").await
}

/// Strings no URL should break.
pub const HOSTILE: &[Option<&str>] = &[
    Some(""),
    Some("a/b"),
    Some("100%"),
    Some("%2F"),
    Some("日本語 🦀"),
    None,
    Some("~null"),
    Some(".."),
    Some("sp ace?#&=+"),
    Some("tab\t\"quote\"\\"),
];

fn str_json(s: Option<&str>, out: &mut Vec<u8>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// `n` entries with composite keys `[str, int]` (hostile strings among them); each value
/// carries the version, so a reader can tell versions apart.
pub fn composite_entries(n: usize, version: u64) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let s = if i % 2 == 0 {
                HOSTILE[(i / 2) % HOSTILE.len()].map(str::to_string)
            } else {
                Some(format!("user{i}"))
            };
            let mut key = b"[".to_vec();
            str_json(s.as_deref(), &mut key);
            key.extend_from_slice(format!(",{}]", i as i64 - (n as i64 / 2)).as_bytes());
            let value =
                format!(r#"{{"v":{version},"i":{i},"pad":"{}"}}"#, "x".repeat(60)).into_bytes();
            Entry { key, value }
        })
        .collect()
}

pub fn composite_types() -> (Vec<KeyType>, Vec<String>) {
    (
        vec![KeyType::Str, KeyType::Int],
        vec!["network".into(), "rank".into()],
    )
}

pub fn checksum(entries: &[Entry]) -> Checksum {
    let mut c = Checksum::default();
    for e in entries {
        c.add(&e.key, &e.value);
    }
    c
}

pub fn manifest(
    api: &str,
    version: u64,
    types: &(Vec<KeyType>, Vec<String>),
    checksum: Checksum,
) -> VersionManifest {
    VersionManifest {
        api: api.into(),
        version,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        key_types: types.0.clone(),
        key_names: types.1.clone(),
        checksum,
        path: "fasttrack".into(),
        data_time: None,
        compression: None,
    }
}

/// The manifest of version `version` of `api` holding `entries`, keyed by [`composite_types`].
pub fn composite_manifest(api: &str, version: u64, entries: &[Entry]) -> VersionManifest {
    manifest(api, version, &composite_types(), checksum(entries))
}

/// begin (with no checksum yet), then write in batches of `batch`: the version is staged,
/// not sealed.
pub async fn begin_and_write(
    edge: &RedisEdge,
    m: &VersionManifest,
    entries: &[Entry],
    batch: usize,
) {
    let mut staging = m.clone();
    staging.checksum = Checksum::default();
    edge.begin(&staging).await.unwrap();
    for batch in entries.chunks(batch) {
        edge.write(&m.api, m.version, batch).await.unwrap();
    }
}

/// begin, write in batches, seal: the version is staged and verified, not yet serving.
pub async fn stage(edge: &RedisEdge, m: &VersionManifest, entries: &[Entry]) {
    begin_and_write(edge, m, entries, 2000).await;
    let sealed = edge.seal(m).await.unwrap();
    assert_eq!(sealed, m.checksum);
}

/// stage + commit.
pub async fn publish(edge: &RedisEdge, m: &VersionManifest, entries: &[Entry]) {
    stage(edge, m, entries).await;
    edge.commit(&m.api, m.version).await.unwrap();
}

/// Stages version `version` of `api`: `n` [`composite_entries`], which it returns.
pub async fn stage_composite(edge: &RedisEdge, api: &str, version: u64, n: usize) -> Vec<Entry> {
    let entries = composite_entries(n, version);
    stage(edge, &composite_manifest(api, version, &entries), &entries).await;
    entries
}

/// Publishes (stages and commits) version `version` of `api`: `n` [`composite_entries`], which
/// it returns.
pub async fn publish_composite(edge: &RedisEdge, api: &str, version: u64, n: usize) -> Vec<Entry> {
    let entries = composite_entries(n, version);
    publish(edge, &composite_manifest(api, version, &entries), &entries).await;
    entries
}

/// The text of the error of an operation that must fail.
pub async fn error_text<T: std::fmt::Debug, E: std::fmt::Display>(
    op: impl std::future::Future<Output = Result<T, E>>,
) -> String {
    op.await.unwrap_err().to_string()
}

pub struct Reply {
    pub status: StatusCode,
    pub version: Option<u64>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// Status and error code together, for one assertion.
    pub fn outcome(&self) -> (u16, String) {
        (self.status.as_u16(), self.error_code())
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The error's message; panics if there is none.
    pub fn error_message(&self) -> String {
        let json = self.json();
        json["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {json}"))
            .to_string()
    }
}

pub async fn call(router: &axum::Router, req: Request<Body>) -> Reply {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let version = resp
        .headers()
        .get("x-tablecast-version")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, retry_after) = (header("content-type"), header("retry-after"));
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        version,
        content_type,
        retry_after,
        body,
    }
}

pub async fn get(router: &axum::Router, path: &str) -> Reply {
    call(router, Request::get(path).body(Body::empty()).unwrap()).await
}

pub async fn get_with_token(router: &axum::Router, path: &str, token: &str) -> Reply {
    call(
        router,
        Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

pub async fn post(router: &axum::Router, path: &str, body: &str) -> Reply {
    call(
        router,
        Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

/// The URL path of an entry's key.
pub fn key_path(api: &str, key_json: &[u8]) -> String {
    let segs = publisher::keypath::encode_key(key_json).unwrap();
    if segs.is_empty() {
        format!("/v1/{api}")
    } else {
        format!("/v1/{api}/{segs}")
    }
}

pub fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Polls `f` until it is true (or panics after `timeout`).
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh redis-server holding version 1 of `api`, committed: `n` composite-key entries.
pub async fn published_api(
    api: &str,
    n: usize,
) -> (RedisServer, Arc<RedisEdge>, Vec<Entry>, VersionManifest) {
    let redis = RedisServer::start();
    let edge = Arc::new(RedisEdge::connect(&redis.url()).await.unwrap());
    let entries = composite_entries(n, 1);
    let m = composite_manifest(api, 1, &entries);
    publish(&edge, &m, &entries).await;
    (redis, edge, entries, m)
}
