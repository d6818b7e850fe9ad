//! A version on a 3-master Redis Cluster: its buckets spread over every master, and the whole
//! protocol (begin, write, seal, commit, lookups, batch, gc, discard) works across slots.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use edge_cache::{EdgeOptions, LookupConfig, LookupState, RedisEdge, router};

async fn cluster_ok(node: &RedisServer) -> bool {
    let mut c = redis_client(node).await;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut c)
        .await
        .unwrap();
    info.contains("cluster_state:ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_spreads_over_every_master_and_serves() {
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "2000",
    ];
    let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_with(&args)).collect();
    let mut create = Command::new("redis-cli");
    create.arg("--cluster").arg("create");
    for n in &nodes {
        create.arg(format!("127.0.0.1:{}", n.port()));
    }
    let out = create
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in &nodes {
        eventually("cluster_state:ok", Duration::from_secs(20), || {
            cluster_ok(n)
        })
        .await;
    }

    let address = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
        nodes[0].port(),
        nodes[1].port()
    );
    let options = EdgeOptions {
        retire_grace: Duration::ZERO,
        ..EdgeOptions::default()
    };
    let edge = Arc::new(RedisEdge::connect_with(&address, options).await.unwrap());
    assert!(edge.is_cluster());
    let types = composite_types();
    let entries = composite_entries(20_000, 1);
    let m = manifest("spread", 1, &types, checksum(&entries));
    publish(&edge, &m, &entries).await;

    // Every master holds buckets of the version.
    for n in &nodes {
        let mut c = redis_client(n).await;
        let keys = all_keys(&mut c).await;
        let buckets = keys
            .iter()
            .filter(|k| k.starts_with("tc:{spread:v1:b"))
            .count();
        eprintln!(
            "node {}: {} keys, {buckets} buckets of v1",
            n.port(),
            keys.len()
        );
        assert!(
            buckets > 0,
            "node {} holds no bucket of the version",
            n.port()
        );
    }

    let app = router(LookupState::with_edge(
        edge.clone(),
        LookupConfig::default(),
    ));
    for e in entries.iter().step_by(53) {
        let r = get(&app, &key_path("spread", &e.key)).await;
        assert_eq!(
            (r.status.as_u16(), r.version),
            (200, Some(1)),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.body, e.value);
    }
    let keys: Vec<String> = entries
        .iter()
        .step_by(41)
        .map(|e| String::from_utf8(e.key.clone()).unwrap())
        .collect();
    let r = post(
        &app,
        "/v1/spread/_batch",
        &format!(r#"{{"keys": [{}]}}"#, keys.join(",")),
    )
    .await;
    assert_eq!(r.status, 200);
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), keys.len());
    assert!(results.iter().all(|x| x["value"]["v"] == 1));

    // Seal catches a field deleted on whichever master holds it.
    let v2 = composite_entries(20_000, 2);
    let m2 = manifest("spread", 2, &types, checksum(&v2));
    begin_and_write(&edge, &m2, &v2, 3000).await;
    let mut removed = 0i64;
    for n in &nodes {
        let mut c = redis_client(n).await;
        for k in all_keys(&mut c)
            .await
            .iter()
            .filter(|k| k.starts_with("tc:{spread:v2:"))
        {
            removed += redis::cmd("HDEL")
                .arg(k)
                .arg(&v2[77].key[..])
                .query_async::<i64>(&mut c)
                .await
                .unwrap();
        }
    }
    assert_eq!(removed, 1);
    let err = error_text(edge.seal(&m2)).await;
    assert!(err.contains("incomplete"), "{err}");
    edge.discard("spread", 2).await.unwrap();

    for v in 3..=4 {
        publish_composite(&edge, "spread", v, 5000).await;
        edge.gc("spread", 1).await.unwrap();
    }
    for n in &nodes {
        let mut c = redis_client(n).await;
        let left: Vec<String> = all_keys(&mut c)
            .await
            .into_iter()
            .filter(|k| {
                ["v1", "v2", "v3"]
                    .iter()
                    .any(|v| k.contains(&format!(":{v}:")) || k.contains(&format!(":{v}}}")))
            })
            .collect();
        assert!(left.is_empty(), "node {} kept {left:?}", n.port());
    }
    assert_eq!(edge.versions("spread").await.unwrap().serving, Some(4));
}
