//! The dashboard's HTTP limits over a real listener: slow clients are cut off at the header
//! timeout, connections and requests past their caps get 503 `overloaded` with
//! `Retry-After`, and a body over `max_body_bytes` is refused before it is read.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits(header_ms: u64, connections: usize, in_flight: usize) -> http_serve::HttpLimits {
    http_serve::HttpLimits {
        header_read_timeout_ms: header_ms,
        max_connections: connections,
        max_in_flight: in_flight,
        ..Default::default()
    }
}

fn address(server: &TestServer) -> String {
    server.url("").trim_start_matches("http://").to_string()
}

/// 200 connections that send one header byte and stall are all closed within the header
/// timeout (1 s; bounded at 10 s), while requests on fresh connections are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_closed_at_the_header_timeout() {
    let dir = workspace();
    let server = TestServer::boot_with(dir.path(), |c| c.limits = limits(1_000, 1_024, 64)).await;
    let started = Instant::now();
    let addr = address(&server).parse().unwrap();
    let stalled = fixtures::slow_clients::open(addr, 200).await;
    for _ in 0..20 {
        assert_eq!(server.get("/api/me").await.0, 200);
    }
    fixtures::slow_clients::assert_all_closed(stalled, started, Duration::from_secs(10)).await;
    server.stop().await;
}

/// A try-it relay to a lookup service that never answers holds the one request allowed in
/// flight: the next request gets 503 `overloaded`; with two connections open, a third is
/// refused the same way; both refusals are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_connections_past_their_caps_get_503_overloaded() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let dir = workspace();
    let server = TestServer::boot_with(dir.path(), |c| {
        c.limits = limits(10_000, 3, 1);
        c.lookup_base_urls
            .insert("default".to_string(), silent_url.clone());
    })
    .await;
    server.create_api(top_products_spec("top")).await;

    let relay = {
        let (client, url) = (server.client.clone(), server.url("/api/apis/top/try"));
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(ADMIN)
                .json(&json!({ "key": ["fb"] }))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = server.get_raw("/healthz").await;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");

    // The relay's connection, one idle one and one more: the fourth is refused at once.
    let _idle = TcpStream::connect(address(&server)).await.unwrap();
    let _third = TcpStream::connect(address(&server)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = TcpStream::connect(address(&server)).await.unwrap();
    refused
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    refused.read_to_string(&mut answer).await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("\"overloaded\""),
        "{answer}"
    );

    relay.abort();
    holder.abort();
    drop((_idle, _third));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = server.get_raw("/metrics").await.text().await.unwrap();
    for limit in ["connections", "in_flight"] {
        assert!(
            metrics.contains(&format!(
                "tablecast_dashboard_refused_total{{limit=\"{limit}\"}}"
            )),
            "{limit} refusals are not counted:\n{metrics}"
        );
    }
    server.stop().await;
}

/// A spec body over `max_body_bytes` is refused with 413 `too_large`, naming the limit.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_is_refused_before_it_is_read() {
    let dir = workspace();
    let server = TestServer::boot_with(dir.path(), |c| c.max_body_bytes = 4_096).await;
    let mut spec = top_products_spec("big");
    spec["description"] = json!("x".repeat(10_000));
    let (status, e) = server.post("/api/apis", json!({ "spec": spec })).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("4096"),
        "{e}"
    );
    server.stop().await;
}

/// A STUB upstream (a lookup service answering 50 MB) through the try-it relay: the relay
/// shows the first MiB, says it is truncated with the full size, and stops reading: the stub
/// could write only a small part of its answer before the relay hung up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_upstream_the_try_relay_stops_reading_at_its_cap() {
    const ANSWER: usize = 50 << 20;
    let stub = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub_url = format!("http://{}", stub.local_addr().unwrap());
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        let (mut s, _) = stub.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = s.read(&mut request).await;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {ANSWER}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'7'; 64 << 10];
        while counter.load(std::sync::atomic::Ordering::SeqCst) < ANSWER {
            if s.write_all(&chunk).await.is_err() {
                break;
            }
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    let dir = workspace();
    let server = TestServer::boot_with(dir.path(), |c| {
        c.lookup_base_urls.insert("default".to_string(), stub_url);
        // The stub answers one connection: the relay's, not the traffic scraper's.
        c.traffic.scrape_ms = 0;
    })
    .await;
    server.create_api(top_products_spec("top")).await;
    let (status, tried) = server
        .post("/api/apis/top/try", json!({ "key": ["fb"] }))
        .await;
    assert_eq!(status, 200, "{tried}");
    assert_eq!(tried["truncated"], true);
    assert_eq!(tried["bytes"], ANSWER);
    assert_eq!(tried["body"].as_str().unwrap().len(), 1 << 20);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        sent < 16 << 20,
        "the relay read on: the stub wrote {sent} bytes"
    );
    eprintln!("the stub could write {} KiB of its 50 MiB", sent >> 10);
    server.stop().await;
}
