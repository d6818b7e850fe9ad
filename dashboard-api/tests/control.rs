//! The control plane's convergence, in process over real redis-servers: an edge that serves
//! an older version but still holds the desired one is brought forward; an edge that can have
//! the desired version neither way (dropped there, no snapshot) makes every edge go back to the
//! previous version, and the store follows.

mod common;

use std::sync::Arc;

use common::*;
use dashboard_api::Stack;
use dashboard_api::control::ControlPlane;
use dashboard_api::store::Store;
use publisher::publish::PublishConfig;
use publisher::snapshot::SnapshotStore;

async fn control_plane(server: &TestServer, dir: &std::path::Path) -> ControlPlane {
    let store = Store::open(&format!("sqlite://{}", server.db.display()))
        .await
        .unwrap();
    let stack: Arc<dyn Stack> = server.stack.clone();
    ControlPlane::new(
        store,
        stack,
        Arc::new(SnapshotStore::new(dir.join("snapshots"))),
        PublishConfig {
            lease_ttl_ms: 3_000,
            ..Default::default()
        },
    )
}

/// A fresh dashboard with an API `api` (top products) published twice; after each publish,
/// both edges serve its version.
async fn published_twice(api: &str) -> (tempfile::TempDir, TestServer) {
    let (dir, server) = TestServer::fresh_with_api(top_products_spec(api)).await;
    for v in 1..=2 {
        server.publish_ok(api).await;
        assert_eq!(server.stack.serving_all(api).await, [Some(v); 2]);
    }
    (dir, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn edges_converge_forward_when_they_hold_the_version_and_back_when_they_cannot() {
    let (dir, server) = published_twice("conv").await;
    let stack = &server.stack;
    let control = control_plane(&server, dir.path()).await;
    let edge = stack.edge(1).redis.clone();

    // Edge 2 went back to v1 behind the control plane's back but still holds v2: forward.
    edge.commit("conv", 1).await.unwrap();
    let report = control.converge("conv").await.unwrap();
    assert!(report.converged, "{report:?}");
    assert_eq!(report.serving, Some(2));
    assert_eq!(report.edges[1].action, "switched", "{report:?}");
    assert_eq!(stack.serving(1, "conv").await, Some(2));

    // Edge 2 serves v1 and lost v2, and no snapshot can refill it: every edge goes back to v1.
    edge.commit("conv", 1).await.unwrap();
    edge.discard("conv", 2).await.unwrap();
    assert!(!edge.holds("conv", 2).await.unwrap());
    let report = control.converge("conv").await.unwrap();
    assert!(report.converged, "{report:?}");
    assert_eq!(report.serving, Some(1), "{report:?}");
    assert_eq!(stack.serving_all("conv").await, [Some(1); 2]);
    let state = control.store().api_state("conv").await.unwrap().unwrap();
    assert_eq!((state.serving, state.converging), (Some(1), false));

    // The next publish goes on from there, numbering after everything ever handed out.
    server.publish_ok("conv").await;
    assert_eq!(stack.serving_all("conv").await, [Some(3); 2]);
    server.stop().await;
}

/// A delete that one edge cannot take (unreachable) leaves the API retiring: the other edge
/// dropped it, the name cannot be created again (409 naming the edges) until convergence has
/// retired it there too; then it starts over from version 1.
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_an_edge_missed_is_finished_by_convergence_before_the_name_is_reused() {
    let (dir, server) = published_twice("gone").await;
    let stack = &server.stack;
    stack.edge(1).faults.fail_retire(true);
    let (status, deleted) = server.delete("/api/apis/gone").await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["retired"], false, "{deleted}");
    assert_eq!(deleted["edges"][1]["ok"], false, "{deleted}");
    assert_eq!(stack.serving(0, "gone").await, None);
    assert!(!stack.edge(0).redis.holds("gone", 2).await.unwrap());

    let (status, refused) = server
        .post(
            "/api/apis",
            serde_json::json!({ "spec": top_products_spec("gone") }),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains(&stack.urls[1]), "{message}");

    stack.edge(1).faults.fail_retire(false);
    let control = control_plane(&server, dir.path()).await;
    control.converge_all().await.unwrap();
    assert_eq!(stack.serving(1, "gone").await, None);
    assert!(!stack.edge(1).redis.holds("gone", 2).await.unwrap());
    let state = control.store().api_state("gone").await.unwrap().unwrap();
    assert!(!state.retiring && state.edges.is_empty(), "{state:?}");

    server.create_api(top_products_spec("gone")).await;
    let job = server.wait_job(&server.publish("gone").await).await;
    assert_eq!(job["report"]["version"], 1, "{job}");
    server.stop().await;
}
