//! The versioned writer over a real redis-server: stage, seal, commit, lookups through the
//! router, verification failures, discard, GC, rollback, leases, tokens.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use common::*;
use edge_cache::{EdgeOptions, LookupConfig, LookupState, RedisEdge, router};
use edge_contract::canonical::Entry;
use edge_contract::keypath::KeyType;
use edge_contract::sink::{Access, EdgeSink, Fence, SwitchMode};
use redis::AsyncCommands;

fn options() -> EdgeOptions {
    EdgeOptions {
        retire_grace: Duration::ZERO,
        ..EdgeOptions::default()
    }
}

async fn edge(redis: &RedisServer) -> Arc<RedisEdge> {
    Arc::new(
        RedisEdge::connect_with(&redis.url(), options())
            .await
            .unwrap(),
    )
}

fn service(edge: &Arc<RedisEdge>) -> axum::Router {
    router(LookupState::with_edge(
        edge.clone(),
        LookupConfig {
            version_cache_ms: 10,
            ..LookupConfig::default()
        },
    ))
}

/// The status of `GET /v1/top_global` with `token`.
async fn global_status(app: &axum::Router, token: &str) -> axum::http::StatusCode {
    get_with_token(app, "/v1/top_global", token).await.status
}

#[tokio::test]
async fn every_key_round_trips_through_the_url() {
    let redis = RedisServer::start();
    let edge = edge(&redis).await;
    let entries = publish_composite(&edge, "referrals", 1, 10_000).await;
    let app = service(&edge);

    for e in &entries {
        let path = key_path("referrals", &e.key);
        let r = get(&app, &path).await;
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.body, e.value, "{path}");
        assert_eq!(r.version, Some(1));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
    }
    // The hostile ones, spelled out: `a%2Fb` is one segment, `~empty`/`~null` are special.
    let r = get(&app, "/v1/referrals/a%2Fb/-4998").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["i"], 2);
    assert_eq!(get(&app, "/v1/referrals/~empty/-5000").await.json()["i"], 0);
    assert_eq!(get(&app, "/v1/referrals/~null/-4990").await.json()["i"], 10);
    assert_eq!(
        get(&app, "/v1/referrals/%7Enull/-4988").await.json()["i"],
        12
    );

    // 404: unknown key, unknown API; 400: bad keys, naming the segment.
    let r = get(&app, "/v1/referrals/nobody/1").await;
    assert_eq!(r.outcome(), (404, "not_found".into()));
    let r = get(&app, "/v1/nope/x").await;
    assert_eq!(r.outcome(), (404, "unknown_api".into()));
    let r = get(&app, "/v1/referrals/user1/05").await;
    assert_eq!(r.outcome(), (400, "bad_key".into()));
    let msg = r.error_message();
    assert!(
        msg.contains("segment 2") && msg.contains("rank") && msg.contains("05"),
        "{msg}"
    );
    let r = get(&app, "/v1/referrals/a/b/c").await;
    assert_eq!(r.outcome(), (400, "bad_key".into()));
    assert!(r.error_message().contains("expected 2"));
    let r = get(&app, "/v1/referrals/user1/").await;
    assert_eq!(r.status, 400);
    let r = get(&app, "/v1/referrals/%zz/1").await;
    assert_eq!(r.status, 400);

    // Batch: found, missing, hostile, in order, one version.
    let body = r#"{"keys": [["a/b", -4998], ["nobody", 1], [null, -4990], ["", -5000]]}"#;
    let r = post(&app, "/v1/referrals/_batch", body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.version, Some(1));
    let j = r.json();
    assert_eq!(j["version"], 1);
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["key"], serde_json::json!(["a/b", -4998]));
    assert_eq!(results[0]["value"]["i"], 2);
    assert!(results[1]["value"].is_null());
    assert_eq!(results[2]["value"]["i"], 10);
    assert_eq!(results[3]["value"]["i"], 0);
    let r = post(
        &app,
        "/v1/referrals/_batch",
        r#"{"keys": [["x", "not-an-int"]]}"#,
    )
    .await;
    assert_eq!(r.outcome(), (400, "bad_key".into()));
    assert!(r.error_message().contains("keys[0]"));
    let r = post(&app, "/v1/referrals/_batch", "not json").await;
    assert_eq!(r.outcome(), (400, "bad_request".into()));
    let many = format!(r#"{{"keys": [{}]}}"#, vec![r#"["a",1]"#; 1001].join(","));
    let r = post(&app, "/v1/referrals/_batch", &many).await;
    assert_eq!(r.outcome(), (413, "too_large".into()));
    let huge = format!(r#"{{"keys": [["{}", 1]]}}"#, "x".repeat(2 << 20));
    assert_eq!(post(&app, "/v1/referrals/_batch", &huge).await.status, 413);
    // A GET of a key that happens to be `_batch` is a lookup, not the batch route.
    assert_eq!(get(&app, "/v1/referrals/_batch/1").await.status, 404);
    // Methods and paths that are not lookups, each named in the error.
    let put = Request::put("/v1/referrals/a/1")
        .body(Body::empty())
        .unwrap();
    let r = call(&app, put).await;
    assert_eq!(r.outcome(), (405, "method_not_allowed".into()));
    assert!(r.error_message().contains("PUT"), "{}", r.error_message());
    let r = post(&app, "/v1/referrals/a/1", "{}").await;
    assert_eq!(r.outcome(), (405, "method_not_allowed".into()));
    let r = get(&app, "/v2/referrals/a/1").await;
    assert_eq!(r.outcome(), (404, "not_found".into()));
    assert!(r.error_message().contains("/v2/referrals/a/1"));
    let head = Request::head(key_path("referrals", br#"["a/b",-4998]"#))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, head).await.status, 200);

    assert_eq!(get(&app, "/healthz").await.status, 200);
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["apis"], serde_json::json!(["referrals"]));
    let metrics = String::from_utf8(get(&app, "/metrics").await.body).unwrap();
    assert!(
        metrics.contains(
            r#"tablecast_lookup_requests_total{api="referrals",kind="get",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("tablecast_lookup_hits_total"));
    assert!(metrics.contains("tablecast_lookup_duration_seconds_bucket"));
}

#[tokio::test]
async fn keyless_api_and_tokens() {
    let redis = RedisServer::start();
    let edge = edge(&redis).await;
    let app = service(&edge);
    assert_eq!(get(&app, "/readyz").await.status, 503);

    let entries = vec![Entry {
        key: b"[]".to_vec(),
        value: br#"[{"product":"a","referrals":3}]"#.to_vec(),
    }];
    let m = manifest("top_global", 1, &(vec![], vec![]), checksum(&entries));
    let access = |revision: u64, protected: bool, tokens: &[&str]| Access {
        revision,
        protected,
        token_hashes: tokens.iter().map(|t| sha256_hex(t)).collect(),
        limits: Vec::new(),
    };
    edge.set_access("top_global", &access(1, true, &["s3cret"]))
        .await
        .unwrap();
    publish(&edge, &m, &entries).await;

    let r = get(&app, "/v1/top_global").await;
    assert_eq!(r.outcome(), (401, "missing_token".into()));
    let r = get_with_token(&app, "/v1/top_global", "wrong").await;
    assert_eq!(r.outcome(), (403, "forbidden".into()));
    let r = get_with_token(&app, "/v1/top_global", "s3cret").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, entries[0].value);
    let r = call(
        &app,
        axum::http::Request::post("/v1/top_global/_batch")
            .header("authorization", "Bearer s3cret")
            .body(axum::body::Body::from(r#"{"keys": [[]]}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["results"][0]["key"], serde_json::json!([]));
    assert_eq!(r.json()["results"][0]["value"][0]["referrals"], 3);
    assert_eq!(
        get_with_token(&app, "/v1/top_global/extra", "s3cret")
            .await
            .status,
        400
    );

    // Another API's token opens nothing here.
    let m_other = manifest("top_other", 1, &(vec![], vec![]), checksum(&entries));
    edge.set_access("top_other", &access(1, true, &["other-secret"]))
        .await
        .unwrap();
    publish(&edge, &m_other, &entries).await;
    assert_eq!(
        get_with_token(&app, "/v1/top_other", "other-secret")
            .await
            .status,
        200
    );
    let r = get_with_token(&app, "/v1/top_global", "other-secret").await;
    assert_eq!(r.outcome(), (403, "forbidden".into()));
    let r = get_with_token(&app, "/v1/top_other", "s3cret").await;
    assert_eq!(r.outcome(), (403, "forbidden".into()));

    // Tokens change in place, no republish: the old one is revoked, a new one works.
    edge.set_access("top_global", &access(2, true, &["n3w"]))
        .await
        .unwrap();
    eventually("token revocation", Duration::from_secs(2), || async {
        global_status(&app, "s3cret").await == 403
    })
    .await;
    assert_eq!(global_status(&app, "n3w").await, 200);
    // An older access revision arriving late (a slow writer) changes nothing, and a new
    // version does not touch access at all.
    edge.set_access("top_global", &access(1, true, &["s3cret"]))
        .await
        .unwrap();
    let mut m2 = m.clone();
    m2.version = 2;
    publish(&edge, &m2, &entries).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(global_status(&app, "s3cret").await, 403);
    assert_eq!(global_status(&app, "n3w").await, 200);
    // Public when unprotected, whatever tokens exist.
    edge.set_access("top_global", &access(3, false, &["n3w"]))
        .await
        .unwrap();
    eventually("public API", Duration::from_secs(2), || async {
        get(&app, "/v1/top_global").await.status == 200
    })
    .await;
    assert!(
        edge.set_access(
            "top_global",
            &Access {
                revision: 4,
                protected: true,
                token_hashes: vec!["nothex".into()],
                limits: Vec::new(),
            }
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn seal_fails_on_a_missing_entry_and_nothing_switches() {
    let redis = RedisServer::start();
    let edge = edge(&redis).await;
    let v1 = publish_composite(&edge, "api", 1, 3000).await;

    let v2 = composite_entries(3000, 2);
    let m2 = composite_manifest("api", 2, &v2);
    begin_and_write(&edge, &m2, &v2, 1000).await;
    // Behind the writer's back, one field disappears.
    let mut conn = redis_client(&redis).await;
    let victim = &v2[1234].key;
    let keys = all_keys(&mut conn).await;
    let removed: i64 = {
        let mut n = 0;
        for k in keys.iter().filter(|k| k.starts_with("tc:{api:v2:")) {
            n += conn.hdel::<_, _, i64>(k, &victim[..]).await.unwrap();
        }
        n
    };
    assert_eq!(removed, 1, "the field is in exactly one bucket");

    let err = error_text(edge.seal(&m2)).await;
    assert!(
        err.contains(&redis.url()) && err.contains("seal") && err.contains("2999"),
        "{err}"
    );
    let err = error_text(edge.commit("api", 2)).await;
    assert!(err.contains("not sealed"), "{err}");
    assert_eq!(edge.serving("api").await.unwrap(), Some(1));
    // Through the sink trait, the error names the edge and step, and is not worth a retry.
    let err = EdgeSink::seal(edge.as_ref(), &m2).await.unwrap_err();
    assert_eq!(
        (err.edge.as_str(), err.step.as_str(), err.transient),
        (redis.url().as_str(), "seal", false)
    );
    // A writer that acknowledges a different checksum than the version's is refused too.
    let mut wrong = m2.clone();
    wrong.checksum.sum ^= 1;
    assert!(error_text(edge.seal(&wrong)).await.contains("acknowledged"));
    let app = service(&edge);
    assert_eq!(
        get(&app, &key_path("api", &v1[5].key)).await.version,
        Some(1)
    );
}

#[tokio::test]
async fn discard_and_gc_leave_no_keys_of_dropped_versions() {
    let redis = RedisServer::start();
    let edge = edge(&redis).await;
    let mut conn = redis_client(&redis).await;

    // A staged version discarded leaves nothing behind.
    stage_composite(&edge, "api", 1, 5000).await;
    assert!(
        all_keys(&mut conn)
            .await
            .iter()
            .any(|k| k.starts_with("tc:{api:v1:"))
    );
    edge.discard("api", 1).await.unwrap();
    let left: Vec<String> = all_keys(&mut conn)
        .await
        .into_iter()
        .filter(|k| k.contains("v1"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Five versions, gc(2) after each: two kept, nothing else of the older ones.
    for v in 2..=6 {
        publish_composite(&edge, "api", v, 2000).await;
        edge.gc("api", 2).await.unwrap();
    }
    let versions = edge.versions("api").await.unwrap();
    assert_eq!(versions.serving, Some(6));
    assert_eq!(
        versions.kept.iter().map(|m| m.version).collect::<Vec<_>>(),
        vec![6, 5]
    );
    assert_eq!(versions.highest, 6);
    let keys = all_keys(&mut conn).await;
    for v in 1..=4 {
        let of_v: Vec<&String> = keys
            .iter()
            .filter(|k| k.contains(&format!(":v{v}:")) || k.contains(&format!(":v{v}}}")))
            .collect();
        assert!(of_v.is_empty(), "v{v} left {of_v:?}");
    }
    assert!(keys.iter().any(|k| k.starts_with("tc:{api:v5:")));
    assert!(keys.iter().any(|k| k.starts_with("tc:{api:v6:")));
    // The serving version is never dropped, and cannot be discarded.
    assert_eq!(edge.gc("api", 0).await.unwrap(), 1);
    assert_eq!(edge.versions("api").await.unwrap().kept.len(), 1);
    assert!(error_text(edge.discard("api", 6)).await.contains("serving"));

    // Stale staging: a sealed version older than the serving one goes with the next gc.
    stage_composite(&edge, "api", 7, 100).await;
    publish_composite(&edge, "api", 8, 100).await;
    edge.gc("api", 1).await.unwrap();
    let keys = all_keys(&mut conn).await;
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(":v7:") || k.contains(":v7}")),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(":v6:") || k.contains(":v6}")),
        "{keys:?}"
    );

    // The retire grace keeps a version that just stopped serving, whatever `keep` says.
    let graceful = RedisEdge::connect_with(
        &redis.url(),
        EdgeOptions {
            retire_grace: Duration::from_secs(60),
            ..options()
        },
    )
    .await
    .unwrap();
    publish_composite(&graceful, "api", 9, 100).await;
    assert_eq!(graceful.gc("api", 1).await.unwrap(), 0);
    assert_eq!(graceful.versions("api").await.unwrap().kept.len(), 2);
}

#[tokio::test]
async fn rollback_commits_a_kept_version_only() {
    let redis = RedisServer::start();
    let edge = edge(&redis).await;
    let app = service(&edge);
    for v in 1..=3 {
        publish_composite(&edge, "api", v, 500).await;
        edge.gc("api", 2).await.unwrap();
    }
    let key = composite_entries(500, 0)[7].key.clone();
    assert_eq!(get(&app, &key_path("api", &key)).await.json()["v"], 3);

    // Roll back to 2 (kept): readers switch back.
    assert_eq!(edge.commit("api", 2).await.unwrap(), Some(3));
    eventually("rollback to v2", Duration::from_secs(2), || async {
        get(&app, &key_path("api", &key)).await.version == Some(2)
    })
    .await;
    assert_eq!(get(&app, &key_path("api", &key)).await.json()["v"], 2);
    let versions = edge.versions("api").await.unwrap();
    assert_eq!(versions.serving, Some(2));
    assert_eq!(versions.highest, 3);
    // 1 was dropped: refused, and nothing moves.
    let err = error_text(edge.commit("api", 1)).await;
    assert!(err.contains("commit") && err.contains("version 1"), "{err}");
    // A version never staged cannot be committed; a committed one cannot be begun again.
    assert!(edge.commit("api", 42).await.is_err());
    let m3 = manifest("api", 3, &composite_types(), Default::default());
    let err = error_text(edge.begin(&m3)).await;
    assert!(err.contains("already committed"), "{err}");
    assert_eq!(edge.serving("api").await.unwrap(), Some(2));
    // Roll forward again.
    edge.commit("api", 3).await.unwrap();
    assert_eq!(edge.serving("api").await.unwrap(), Some(3));
}

/// The commit script's two refusals: a fence older than one already seen (an operation that
/// lost its lease while another switched), and, for a publish, a version older than the serving
/// one. An explicit switch with a current fence may go back (rollback).
#[tokio::test]
async fn switches_are_fenced_and_a_publish_never_goes_backwards() {
    let redis = RedisServer::start();
    let edge = edge(&redis).await;
    for v in 1..=3 {
        stage_composite(&edge, "api", v, 100).await;
    }
    assert_eq!(
        edge.switch("api", 2, Fence(5), SwitchMode::Forward)
            .await
            .unwrap(),
        None
    );
    // A stale fence is refused, whatever the version.
    let err = error_text(edge.switch("api", 3, Fence(4), SwitchMode::Forward)).await;
    assert!(
        err.contains("stale fence 4") && err.contains(&redis.url()),
        "{err}"
    );
    assert_eq!(edge.serving("api").await.unwrap(), Some(2));
    // A publish (forward) to an older version is refused even with a newer fence.
    let err = error_text(edge.switch("api", 1, Fence(6), SwitchMode::Forward)).await;
    assert!(err.contains("older than the serving version 2"), "{err}");
    // The same version again is a no-op that succeeds (a retried commit).
    assert_eq!(
        edge.switch("api", 2, Fence(6), SwitchMode::Forward)
            .await
            .unwrap(),
        Some(2)
    );
    // Explicitly (rollback), going back is allowed with a current fence...
    edge.switch("api", 3, Fence(6), SwitchMode::Forward)
        .await
        .unwrap();
    assert_eq!(
        edge.switch("api", 2, Fence(7), SwitchMode::Explicit)
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(edge.fence("api").await.unwrap(), Fence(7));
    // ...and the operation that held fence 6 can no longer switch anything.
    assert!(
        edge.switch("api", 3, Fence(6), SwitchMode::Explicit)
            .await
            .is_err()
    );
    assert_eq!(edge.serving("api").await.unwrap(), Some(2));
    assert!(edge.holds("api", 1).await.unwrap() && !edge.holds("api", 9).await.unwrap());
}

#[tokio::test]
async fn duplicate_keys_and_protocol_misuse_are_refused() {
    let redis = RedisServer::start();
    let edge = edge(&redis).await;
    let types = (vec![KeyType::Int], vec!["id".to_string()]);
    let entries = vec![
        Entry {
            key: b"[1]".to_vec(),
            value: b"1".to_vec(),
        },
        Entry {
            key: b"[1]".to_vec(),
            value: b"2".to_vec(),
        },
    ];
    let m = manifest("dup", 1, &types, checksum(&entries));
    let mut staging = m.clone();
    staging.checksum = Default::default();
    let err = error_text(edge.write("dup", 1, &entries)).await;
    assert!(err.contains("not begun"), "{err}");
    edge.begin(&staging).await.unwrap();
    edge.write("dup", 1, &entries).await.unwrap();
    let err = error_text(edge.seal(&m)).await;
    assert!(err.contains("duplicate"), "{err}");
    assert!(
        edge.begin(&manifest("bad name", 1, &types, Default::default()))
            .await
            .is_err()
    );
    assert!(RedisEdge::connect("http://localhost").await.is_err());
    let err = error_text(RedisEdge::connect(&format!(
        "redis://127.0.0.1:{}",
        free_port()
    )))
    .await;
    assert!(err.contains("127.0.0.1") && err.contains("ping"), "{err}");
    // begin again clears the leftovers of the same version.
    edge.begin(&staging).await.unwrap();
    let ok = vec![entries[0].clone()];
    edge.write("dup", 1, &ok).await.unwrap();
    let m = manifest("dup", 1, &types, checksum(&ok));
    edge.seal(&m).await.unwrap();
    let err = error_text(edge.write("dup", 1, &ok)).await;
    assert!(err.contains("sealed"), "{err}");
    edge.commit("dup", 1).await.unwrap();
    // A different process (no local tracking) seals by reading the version back.
    let other = RedisEdge::connect_with(&redis.url(), options())
        .await
        .unwrap();
    let entries2 = vec![Entry {
        key: b"[2]".to_vec(),
        value: b"2".to_vec(),
    }];
    let m2 = manifest("dup", 2, &types, checksum(&entries2));
    edge.begin(&m2).await.unwrap();
    edge.write("dup", 2, &entries2).await.unwrap();
    assert_eq!(other.seal(&m2).await.unwrap(), m2.checksum);
    let mut wrong = m2.clone();
    wrong.checksum.sum ^= 1;
    let err = error_text(other.seal(&wrong)).await;
    assert!(err.contains("read back"), "{err}");
}

#[tokio::test]
async fn a_versions_memory_is_estimated_from_its_buckets() {
    let redis = RedisServer::start();
    let edge = edge(&redis).await;
    publish_composite(&edge, "mem", 1, 5).await;
    publish_composite(&edge, "big", 1, 20_000).await;
    let small = edge.manifest("mem", 1).await.unwrap().unwrap();
    let measured = edge.version_memory("mem", 1, &small, 8).await.unwrap();
    assert!(measured > 0, "5 entries take memory");
    let big = edge.manifest("big", 1).await.unwrap().unwrap();
    let estimated = edge.version_memory("big", 1, &big, 8).await.unwrap();
    let (used, max) = edge.memory_info().await.unwrap();
    assert_eq!(max, 0, "a test Redis has no limit");
    assert!(
        estimated > measured * 100 && estimated < used,
        "20 000 entries: {estimated} bytes estimated, {used} used in all"
    );
}
