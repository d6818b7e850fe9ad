//! The web UI's HTTP side: the page and its assets (types, CSP, ETags, every referenced asset
//! served), and the "try it" relay to the lookup service (key URL rule, tokens, errors).
//! The page itself is driven in a real browser by tests/tests/browser.rs.

mod common;

use std::time::Duration;

use common::{TestServer, protected_top_products_spec, top_products_spec, workspace};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn serves_the_page_and_its_assets_with_types_csp_and_etags() {
    let (_dir, server) = TestServer::fresh().await;

    let page = server.get_raw("/").await;
    assert_eq!(page.status().as_u16(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "inline code would break the CSP"
    );

    // Every asset the page references is served, with its type.
    let mut referenced = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = &part[..part.find('"').unwrap()];
            if target.starts_with("/ui/") {
                referenced.push(target.to_string());
            }
        }
    }
    referenced.sort();
    assert_eq!(
        referenced,
        [
            "/ui/app.css",
            "/ui/app.js",
            "/ui/favicon.svg",
            "/ui/uplot.css"
        ],
        "{html}"
    );
    for (path, kind) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/uplot.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let r = server.get_raw(path).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], kind, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert!(!r.bytes().await.unwrap().is_empty());

        let again = server
            .client
            .get(server.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 304, "{path} with its ETag");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    // The entry module's imports, followed transitively, are all served as JavaScript; and
    // every file of `ui/` is served (a module added but not embedded would break the page).
    let mut modules = vec!["app.js".to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(module) = modules.pop() {
        if !seen.insert(module.clone()) {
            continue;
        }
        let r = server.get_raw(&format!("/ui/{module}")).await;
        assert_eq!(r.status().as_u16(), 200, "{module}");
        assert_eq!(
            r.headers()["content-type"],
            "text/javascript; charset=utf-8",
            "{module}"
        );
        let source = r.text().await.unwrap();
        for part in source.split(" from './").skip(1) {
            modules.push(part[..part.find('\'').unwrap()].to_string());
        }
    }
    assert!(seen.len() > 5, "the page is split into modules: {seen:?}");
    let ui_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    for file in std::fs::read_dir(&ui_dir).unwrap() {
        let name = file.unwrap().file_name().into_string().unwrap();
        let path = if name == "index.html" {
            "/".to_string()
        } else {
            format!("/ui/{name}")
        };
        let r = server.get_raw(&path).await;
        assert_eq!(r.status().as_u16(), 200, "ui/{name} is not served");
        if name.ends_with(".js") {
            assert!(seen.contains(&name), "ui/{name} is imported by no module");
        }
    }

    let missing = server.get_raw("/ui/nope.js").await;
    assert_eq!(missing.status().as_u16(), 404);

    // The page needs no token; the API behind it does.
    let (status, _) = server.call(Method::GET, "/api/me", None, None).await;
    assert_eq!(status, 401);
    server.stop().await;
}

/// POSTs to the relay until the lookup answers `status` (the lookup service caches versions).
async fn try_until(server: &TestServer, api: &str, body: Value, status: u64) -> Value {
    fixtures::poll::until(
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || {
            let (s, r) = server
                .post(&format!("/api/apis/{api}/try"), body.clone())
                .await;
            assert_eq!(s, 200, "{r}");
            if r["status"] == status {
                Ok(r)
            } else {
                Err(format!("try {api} {body}: {r}, expected {status}"))
            }
        },
    )
    .await
}

#[tokio::test]
async fn try_relays_lookups_with_the_key_url_rule_and_tokens() {
    let (_dir, server) = TestServer::fresh_with_api(top_products_spec("tp")).await;
    server.publish_ok("tp").await;
    let lookup = &server.stack.lookups[0];

    // Unicode is percent-encoded; the answer is the lookup's, byte for byte.
    let r = try_until(&server, "tp", json!({"key": ["日本"]}), 200).await;
    assert_eq!(r["url"], format!("{lookup}/v1/tp/%E6%97%A5%E6%9C%AC"));
    assert_eq!(r["version"], 1);
    assert_eq!(r["content_type"], "application/json");
    assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(r["truncated"], false);
    let (status, direct, _) = server
        .stack
        .lookup(0, "tp", "%E6%97%A5%E6%9C%AC", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["body"], serde_json::from_str::<Value>(&direct).unwrap());
    assert_eq!(r["bytes"], direct.len());

    // NULL is ~null (one row has no network); a missing key is the lookup's 404, relayed.
    let r = try_until(&server, "tp", json!({"key": [null]}), 200).await;
    assert!(r["url"].as_str().unwrap().ends_with("/v1/tp/~null"), "{r}");
    assert_eq!(r["body"][0]["product_id"], 4);
    let r = try_until(&server, "tp", json!({"key": ["a/b"]}), 404).await;
    assert!(r["url"].as_str().unwrap().ends_with("/v1/tp/a%2Fb"), "{r}");
    assert_eq!(r["body"]["error"]["code"], "not_found", "{r}");

    // Wrong arity or a non-scalar key: 422, by field; unknown API: 404; no token: 401.
    for key in [json!([]), json!(["fb", "x"]), json!([{"a": 1}])] {
        let (status, body) = server.post("/api/apis/tp/try", json!({"key": key})).await;
        assert_eq!(status, 422, "{key}: {body}");
        assert_eq!(body["error"]["fields"][0]["field"], "key", "{body}");
    }
    let (status, _) = server
        .post("/api/apis/nope/try", json!({"key": ["fb"]}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .call(
            Method::POST,
            "/api/apis/tp/try",
            None,
            Some(json!({"key": ["fb"]})),
        )
        .await;
    assert_eq!(status, 401);

    // A protected API: the lookup refuses without a read token, answers with one.
    let spec = protected_top_products_spec("tp");
    let (status, body) = server.put("/api/apis/tp", json!({"spec": spec})).await;
    assert_eq!(status, 200, "{body}");
    let token = server.create_token("/api/apis/tp/tokens", "relay").await;
    server.publish_ok("tp").await;
    try_until(&server, "tp", json!({"key": ["fb"]}), 401).await;
    let r = try_until(
        &server,
        "tp",
        json!({"key": ["fb"], "token": token["token"]}),
        200,
    )
    .await;
    assert_eq!(r["version"], 2, "{r}");
    server.stop().await;
}

#[tokio::test]
async fn try_says_which_setting_is_missing_without_a_lookup_service() {
    let dir = workspace();
    let server = TestServer::boot_with(dir.path(), |c| c.lookup_base_urls.clear()).await;
    server.create_api(top_products_spec("tp")).await;
    let (status, body) = server
        .post("/api/apis/tp/try", json!({"key": ["fb"]}))
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("lookup_base_urls"), "{message}");
    server.stop().await;
}
