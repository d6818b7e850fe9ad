//! The harness itself works: servers start on free ports, answer, and stop.

use std::time::{Duration, Instant};

use publisher::catalog::{Catalog, CatalogConfig, HiveCatalog};
use tablecast_e2e::{Metastore, Redis, StalledListener, free_port, loopback, wait_for_port};

#[tokio::test]
async fn redis_answers_and_restarts_empty_on_the_same_port() {
    let mut redis = Redis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();

    let port = redis.port();
    redis.kill();
    assert!(!redis.is_running());
    assert!(
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_err(),
        "killed redis still answers"
    );

    redis.restart();
    assert_eq!(redis.port(), port);
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, None, "a restarted edge redis comes back empty");
}

#[test]
fn dropping_redis_frees_its_port() {
    let redis = Redis::start();
    let addr = loopback(redis.port());
    drop(redis);
    assert!(
        wait_for_port(addr, Duration::from_millis(300)).is_err(),
        "redis still listens after drop"
    );
}

#[test]
fn waiting_on_a_dead_port_is_bounded() {
    let addr = loopback(free_port());
    let started = Instant::now();
    let err = wait_for_port(addr, Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(err.contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn metastore_answers_get_all_databases() {
    let metastore = Metastore::shared();
    assert!(metastore.uri().starts_with("thrift://127.0.0.1:"));
    let catalog = HiveCatalog::connect(&metastore.address(), &CatalogConfig::default())
        .await
        .unwrap();
    let dbs = catalog.databases().await.unwrap();
    assert!(dbs.contains(&"default".to_string()), "{dbs:?}");
    eprintln!(
        "metastore started in {:.1} s",
        metastore.started_in().as_secs_f64()
    );
}

#[tokio::test]
async fn stalled_listener_accepts_and_never_answers() {
    let stalled = StalledListener::start();
    let catalog = stalled.catalog(500).await;
    let started = Instant::now();
    let err = catalog.databases().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains(&stalled.address()), "{err}");
}
