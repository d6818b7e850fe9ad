//! The REST API without jobs: browsing, API definitions and validation, planning, auth and
//! tokens, OpenAPI and metrics. Everything goes through HTTP to an in-process server.

mod common;

use common::{
    ADMIN, TestServer, open_db, protected_top_products_spec, top_products_spec, workspace,
};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

#[tokio::test]
async fn browses_catalogs_databases_tables_and_previews_a_table() {
    let (_dir, server) = TestServer::fresh().await;

    let (status, catalogs) = server.get("/api/catalogs").await;
    assert_eq!(status, 200);
    assert_eq!(catalogs[0]["name"], "local");
    assert!(catalogs[0]["uri"].as_str().unwrap().starts_with("file:///"));

    let (status, dbs) = server.get("/api/catalogs/local/databases").await;
    assert_eq!((status, dbs), (200, json!(["shop"])));
    let (status, tables) = server
        .get("/api/catalogs/local/databases/shop/tables")
        .await;
    assert_eq!(
        (status, tables),
        (200, json!([{"name": "sales", "table": "shop.sales"}]))
    );

    let (status, t) = server.get("/api/catalogs/local/tables/shop.sales").await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["name"], "shop.sales");
    assert_eq!(t["format"], "parquet");
    let columns = fixtures::described_columns(&t);
    assert_eq!(
        columns,
        vec![
            ("product_id", "bigint", false),
            ("network", "string", false),
            ("referrals", "bigint", false),
            ("revenue", "decimal(12,2)", false),
            ("ts", "timestamp", false),
            ("dt", "string", true)
        ]
    );
    assert_eq!(t["partition_keys"], json!(["dt"]));
    assert_eq!(t["partition_count"], 2);
    assert_eq!(t["partitions"][1]["values"], json!(["2026-11-02"]));
    assert_eq!(t["stats"]["rows"], 7);
    assert_eq!(t["stats"]["files"], 2);
    assert!(t["stats"]["bytes"].as_u64().unwrap() > 0);

    // The preview: first row group of the first file, canonical cells, partition value appended.
    let p = &t["preview"];
    assert!(
        p["file"]
            .as_str()
            .unwrap()
            .ends_with("dt=2026-11-01/part-0.parquet"),
        "{p}"
    );
    assert_eq!(
        p["columns"],
        json!(["product_id", "network", "referrals", "revenue", "ts", "dt"])
    );
    assert_eq!(p["row_group_rows"], 3);
    assert_eq!(
        p["rows"][0],
        json!([1, "fb", 5, "1.50", "1970-01-01T00:00:01Z", "2026-11-01"])
    );
    assert_eq!(p["rows"].as_array().unwrap().len(), 3);

    // Bounded by ?preview= and by the configured maximum (5).
    let (_, t) = server
        .get("/api/catalogs/local/tables/shop.sales?preview=1")
        .await;
    assert_eq!(t["preview"]["rows"].as_array().unwrap().len(), 1);
    assert_eq!(t["preview"]["limit"], 1);
    let (_, t) = server
        .get("/api/catalogs/local/tables/shop.sales?preview=1000")
        .await;
    assert_eq!(t["preview"]["limit"], 5);

    // Errors: JSON bodies with a code, from the one mapping.
    let (status, e) = server.get("/api/catalogs/nope/databases").await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{e}"
    );
    let (status, e) = server.get("/api/catalogs/local/tables/shop.missing").await;
    assert_eq!(status, 404, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shop.missing"),
        "{e}"
    );
    let (status, e) = server
        .get("/api/catalogs/local/databases/nodb/tables")
        .await;
    assert_eq!(status, 404, "{e}");
    let (status, e) = server.get("/api/catalogs/local/tables/not-a-name").await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("invalid")),
        "{e}"
    );

    server.stop().await;
}

#[tokio::test]
async fn defines_validates_plans_updates_and_deletes_apis() {
    let (_dir, server) = TestServer::fresh().await;

    // Validation lists every problem by field.
    let mut bad = top_products_spec("top");
    bad["key"] = json!(["netwrk"]);
    bad["values"][1]["column"] = json!("referals");
    let (status, v) = server
        .post("/api/apis/_validate", json!({"spec": bad}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["valid"], false);
    let fields: Vec<&str> = fixtures::pluck_str(&v["problems"], "field");
    assert!(fields.contains(&"key[0]"), "{v}");
    assert!(fields.contains(&"values[1].column"), "{v}");
    assert!(
        v["problems"]
            .to_string()
            .contains("unknown column `netwrk`"),
        "{v}"
    );

    let (status, v) = server
        .post(
            "/api/apis/_validate",
            json!({"spec": top_products_spec("top")}),
        )
        .await;
    assert_eq!((status, v), (200, json!({"valid": true, "problems": []})));

    // Problems that need no table, and configuration problems, by field too.
    let (_, v) = server
        .post("/api/apis/_validate", json!({"spec": {"name": "bad name", "table": "shop.nothere", "values": [{"column": "x"}]}, "catalog": "local", "edge_group": "mars"}))
        .await;
    let fields: Vec<&str> = fixtures::pluck_str(&v["problems"], "field");
    assert!(
        fields.contains(&"name") && fields.contains(&"table") && fields.contains(&"edge_group"),
        "{v}"
    );
    let (_, v) = server
        .post(
            "/api/apis/_validate",
            json!({"spec": {"name": "x", "table": "shop.sales", "valuez": []}}),
        )
        .await;
    assert_eq!(v["problems"][0]["field"], "valuez", "{v}");

    // Creating an invalid API: 422 with the fields.
    let (status, e) = server.post("/api/apis", json!({"spec": bad})).await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["code"], "invalid");
    assert!(
        e["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["field"] == "key[0]"),
        "{e}"
    );

    // Create, read, list.
    let created = server.create_api(top_products_spec("top")).await;
    assert_eq!(created["name"], "top");
    assert_eq!(created["catalog"], "local");
    assert_eq!(created["edge_group"], "default");
    assert_eq!(created["owner"], "admin");
    assert_eq!(created["revision"], 1);
    assert_eq!(created["edges"], json!(server.stack.urls));
    assert_eq!(
        created["lookup_url"].as_str().unwrap(),
        format!("{}/v1/top/", server.stack.lookups[0])
    );
    let (status, e) = server
        .post("/api/apis", json!({"spec": top_products_spec("top")}))
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (status, list) = server.get("/api/apis").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Plan: the guard report and the path; nothing published.
    let (status, plan) = server.post("/api/apis/top/plan", json!({})).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["path"], "fasttrack");
    assert_eq!(plan["reason"], "all guards within limits");
    assert_eq!(plan["rows"], 7);
    assert_eq!(plan["files"], 2);
    let guards: Vec<&str> = fixtures::pluck_str(&plan["guards"], "name");
    assert!(
        guards.contains(&"row_count") && guards.contains(&"memory_pool"),
        "{plan}"
    );
    assert!(
        plan["guards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["tripped"] == false)
    );
    let (status, plan) = server
        .post("/api/apis/top/plan", json!({"route": "fallback"}))
        .await;
    assert_eq!(
        (status, plan["path"].as_str()),
        (200, Some("fallback")),
        "{plan}"
    );
    assert_eq!(
        server.stack.serving(0, "top").await,
        None,
        "planning published nothing"
    );

    // Update: a new revision; the URL's name wins over a missing one, a different one is refused.
    let mut spec = top_products_spec("top");
    spec.as_object_mut().unwrap().remove("name");
    spec["limit"] = json!(1);
    let (status, updated) = server.put("/api/apis/top", json!({"spec": spec})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["revision"], 2);
    assert_eq!(updated["spec"]["limit"], 1);
    let (status, e) = server
        .put("/api/apis/top", json!({"spec": top_products_spec("other")}))
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["fields"][0]["field"], "name");
    let (status, revisions) = server.get("/api/apis/top/revisions").await;
    assert_eq!(status, 200);
    assert_eq!(
        revisions
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["revision"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 1]
    );

    // Delete: every edge drops it.
    let (status, deleted) = server.delete("/api/apis/top").await;
    assert_eq!(
        (status, &deleted["retired"]),
        (200, &json!(true)),
        "{deleted}"
    );
    let (status, e) = server.get("/api/apis/top").await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = server.post("/api/apis/top/publish", json!({})).await;
    assert_eq!(status, 404);

    // Unknown routes and methods: JSON errors too.
    let (status, e) = server.get("/api/nothing/here").await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{e}"
    );
    let (status, e) = server
        .call(Method::PATCH, "/api/apis", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{e}"
    );

    // Malformed bodies are 4xx JSON, not panics or plain text.
    let resp = server
        .client
        .post(server.url("/api/apis"))
        .bearer_auth(ADMIN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid");

    server.stop().await;
}

#[tokio::test]
async fn every_api_route_needs_a_token_and_admin_routes_need_the_admin() {
    let (_dir, server) = TestServer::fresh().await;

    // Anonymous and unknown tokens: 401, JSON.
    for path in [
        "/api/catalogs",
        "/api/apis",
        "/api/jobs",
        "/api/openapi.json",
        "/api/nothing",
    ] {
        let (status, e) = server.call(Method::GET, path, None, None).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{path}: {e}"
        );
        let (status, _) = server
            .call(Method::GET, path, Some("tcu_not-a-token"), None)
            .await;
        assert_eq!(status, 401, "{path}");
    }
    let resp = server
        .client
        .get(server.url("/api/apis"))
        .header("authorization", "Basic YWRtaW46eA==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // Health and metrics stay open.
    assert_eq!(
        server.call(Method::GET, "/healthz", None, None).await.0,
        200
    );

    // An analyst token, created by the admin, shown once.
    let created = server.create_token("/api/users/tokens", "ana").await;
    let analyst = created["token"].as_str().unwrap().to_string();
    assert!(analyst.starts_with("tcu_"));
    let (status, me) = server
        .call(Method::GET, "/api/me", Some(&analyst), None)
        .await;
    assert_eq!((status, me), (200, json!({"name": "ana", "admin": false})));

    // Analysts work with APIs …
    let (status, api) = server
        .call(
            Method::POST,
            "/api/apis",
            Some(&analyst),
            Some(json!({"spec": top_products_spec("top")})),
        )
        .await;
    assert_eq!(status, 201, "{api}");
    assert_eq!(api["owner"], "ana");
    // … but admin routes are 403 for them.
    let (status, e) = server
        .call(
            Method::POST,
            "/api/users/tokens",
            Some(&analyst),
            Some(json!({"name": "eve"})),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{e}"
    );
    let (status, _) = server
        .call(Method::GET, "/api/users/tokens", Some(&analyst), None)
        .await;
    assert_eq!(status, 403);
    let token_id = created["id"].as_str().unwrap();
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/api/tokens/{token_id}"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(status, 403, "analysts cannot revoke analyst tokens");

    // Listing shows no secret.
    let (status, list) = server.get("/api/users/tokens").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "ana");
    assert!(
        list[0].get("token").is_none() && list[0].get("hash").is_none(),
        "{list}"
    );

    // At rest: only the SHA-256 of the token.
    let db = open_db(&server.db).await;
    let rows = sqlx::query("SELECT hash FROM tokens")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored: String = rows[0].get("hash");
    assert_eq!(stored, dashboard_api::auth::hash_token(&analyst));
    let dump: Vec<String> = ["apis", "api_revisions", "jobs", "job_events", "tokens"]
        .iter()
        .map(|t| format!("SELECT * FROM {t}"))
        .collect();
    for q in dump {
        for row in sqlx::query(&q).fetch_all(&db).await.unwrap() {
            for i in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                    assert!(
                        !text.contains(&analyst) && !text.contains(ADMIN),
                        "a secret is stored in clear: {q}"
                    );
                }
            }
        }
    }

    // Revoked: 401 from then on.
    let (status, revoked) = server.delete(&format!("/api/tokens/{token_id}")).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, _) = server
        .call(Method::GET, "/api/me", Some(&analyst), None)
        .await;
    assert_eq!(status, 401);

    server.stop().await;
}

#[tokio::test]
async fn api_tokens_are_hashed_and_pushed_to_the_edges_on_create_and_revoke() {
    let (_dir, server) = TestServer::fresh_with_api(protected_top_products_spec("private")).await;
    let stack = &server.stack;

    let t1 = server
        .create_token("/api/apis/private/tokens", "checkout")
        .await;
    let secret1 = t1["token"].as_str().unwrap().to_string();
    assert!(secret1.starts_with("tca_"));
    assert_eq!(t1["edges"], json!([]), "no edge serves the API yet: {t1}");
    let (_, t2) = server
        .post("/api/apis/private/tokens", json!({"name": "search"}))
        .await;
    let secret2 = t2["token"].as_str().unwrap().to_string();
    let h1 = dashboard_api::auth::hash_token(&secret1);
    let h2 = dashboard_api::auth::hash_token(&secret2);
    let mut both = vec![h1.clone(), h2.clone()];
    both.sort();
    assert!(stack.pushes.lock().unwrap().is_empty());

    // Publish it: the commit applies the store's access on each edge before switching, and
    // each edge's lookup service enforces it.
    server.publish_ok("private").await;
    {
        let pushes = stack.pushes.lock().unwrap();
        for url in &stack.urls {
            let last = pushes.iter().rev().find(|p| &p.0 == url).unwrap();
            assert_eq!(
                (last.1.as_str(), &last.2, last.3),
                ("private", &both, true),
                "{url}"
            );
        }
    }
    for i in 0..2 {
        stack.lookup_until(i, "private", "tw", None, 401).await;
        stack
            .lookup_until(i, "private", "tw", Some("tca_wrong"), 403)
            .await;
        let (body, _) = stack
            .lookup_until(i, "private", "tw", Some(&secret1), 200)
            .await;
        assert_eq!(body, r#"[{"product_id":3,"referrals":1}]"#);
        stack
            .lookup_until(i, "private", "tw", Some(&secret2), 200)
            .await;
    }

    let (status, list) = server.get("/api/apis/private/tokens").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains(&secret1) && !list.to_string().contains(&h1),
        "no secrets, no hashes: {list}"
    );

    // Revoking pushes the smaller set; the edges refuse the revoked token at once.
    let (status, revoked) = server
        .delete(&format!("/api/tokens/{}", t1["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(pushed_everywhere(&revoked), "{revoked}");
    assert_eq!(
        stack.pushes.lock().unwrap().last().unwrap().2,
        vec![h2.clone()]
    );
    for i in 0..2 {
        stack
            .lookup_until(i, "private", "tw", Some(&secret1), 403)
            .await;
        stack
            .lookup_until(i, "private", "tw", Some(&secret2), 200)
            .await;
    }
    let (status, _) = server
        .delete(&format!("/api/tokens/{}", t1["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "revoking twice is harmless");

    // Making the API public pushes too.
    let mut spec = top_products_spec("private");
    spec["protected"] = json!(false);
    let (status, updated) = server.put("/api/apis/private", json!({"spec": spec})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["token_push"].as_array().unwrap().len(), 2);
    assert!(!stack.pushes.lock().unwrap().last().unwrap().3);
    assert!(
        stack.pushes.lock().unwrap().last().unwrap().2.is_empty(),
        "a public API's tokens are dormant"
    );
    for i in 0..2 {
        stack.lookup_until(i, "private", "tw", None, 200).await;
    }

    // Only hashes at rest.
    let db = open_db(&server.db).await;
    let hashes: Vec<String> =
        sqlx::query("SELECT hash FROM tokens WHERE api = 'private' ORDER BY created_at")
            .fetch_all(&db)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("hash"))
            .collect();
    assert_eq!(hashes, vec![h1, h2]);

    server.stop().await;
}

#[tokio::test]
async fn serves_an_openapi_document_covering_the_routes_and_metrics() {
    let (_dir, server) = TestServer::fresh().await;
    let (status, doc) = server.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/catalogs",
        "/api/catalogs/{catalog}/databases",
        "/api/catalogs/{catalog}/databases/{db}/tables",
        "/api/catalogs/{catalog}/tables/{table}",
        "/api/apis",
        "/api/apis/_validate",
        "/api/apis/{name}",
        "/api/apis/{name}/plan",
        "/api/apis/{name}/publish",
        "/api/apis/{name}/rollback",
        "/api/apis/{name}/versions",
        "/api/apis/{name}/tokens",
        "/api/tokens/{id}",
        "/api/users/tokens",
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/jobs/{id}/events",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    for m in ["get", "put", "delete"] {
        assert!(paths["/api/apis/{name}"].get(m).is_some(), "{m}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let resp = server.get_raw("/metrics").await;
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("tablecast_dashboard_jobs{state=\"queued\"} 0"),
        "{text}"
    );
    assert!(text.contains("tablecast_dashboard_queue_depth 0"), "{text}");

    let (status, _) = server.call(Method::GET, "/", None, None).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn browses_the_generated_fixture_tables() {
    let dir = workspace();
    let (server, tables) = TestServer::boot_over_generated_fixtures(dir.path()).await;

    let (status, dbs) = server.get("/api/catalogs/fixtures/databases").await;
    assert_eq!(status, 200, "{dbs}");
    let mut expected: Vec<&str> = tables.iter().map(|t| t.db.as_str()).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(dbs, json!(expected));
    for t in &tables {
        let (_, list) = server
            .get(&format!("/api/catalogs/fixtures/databases/{}/tables", t.db))
            .await;
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == t.table.as_str()),
            "{list}"
        );
        let (status, d) = server
            .get(&format!(
                "/api/catalogs/fixtures/tables/{}.{}",
                t.db, t.table
            ))
            .await;
        assert_eq!(status, 200, "{d}");
        assert_eq!(d["stats"]["rows"], t.rows, "{}", t.table);
        assert_eq!(d["stats"]["files"], t.files.len(), "{}", t.table);
        assert_eq!(
            d["partition_keys"],
            json!(t.partition_columns),
            "{}",
            t.table
        );
        let p = &d["preview"];
        let rows = p["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no preview: {d}", t.table));
        assert_eq!(rows.len(), 5.min(t.rows as usize), "{}", t.table);
        let width = p["columns"].as_array().unwrap().len();
        assert_eq!(width, t.schema.fields().len() + t.partition_columns.len());
        assert!(rows.iter().all(|r| r.as_array().unwrap().len() == width));
        assert_eq!(d["columns"].as_array().unwrap().len(), width);
    }
    server.stop().await;
}

/// A spec asking a limit above the server's ceiling (`memory_pool_bytes = 2^62`) is refused at
/// validation and creation, naming the limit and the ceiling; only an administrator may grant
/// one API more, and then the same spec is accepted; withdrawn, the spec is refused again.
#[tokio::test(flavor = "multi_thread")]
async fn limits_above_the_ceilings_are_refused_unless_an_admin_grants_them() {
    let dir = workspace();
    let server = TestServer::boot_with(dir.path(), |c| {
        c.ceilings.0.memory_pool_bytes = 1 << 30;
    })
    .await;
    let created = server.create_token("/api/users/tokens", "ana").await;
    let analyst = created["token"].as_str().unwrap().to_string();
    let mut spec = top_products_spec("greedy");
    spec["limits"] = json!({ "memory_pool_bytes": 1u64 << 62 });
    let expected = (
        "limits.memory_pool_bytes",
        (1u64 << 62).to_string(),
        (1u64 << 30).to_string(),
    );
    let named = |e: &Value| {
        let f = &e["error"]["fields"][0];
        let message = f["message"].as_str().unwrap_or_default();
        f["field"] == expected.0 && message.contains(&expected.1) && message.contains(&expected.2)
    };

    let (status, v) = server
        .post("/api/apis/_validate", json!({ "spec": spec }))
        .await;
    assert_eq!((status, &v["valid"]), (200, &json!(false)), "{v}");
    assert_eq!(v["problems"][0]["field"], expected.0, "{v}");
    let (status, e) = server
        .call(
            Method::POST,
            "/api/apis",
            Some(&analyst),
            Some(json!({ "spec": spec })),
        )
        .await;
    assert!(status == 422 && named(&e), "{e}");

    // An analyst cannot grant it; an administrator can.
    let grant = json!({ "spec": spec, "ceilings": { "memory_pool_bytes": 1u64 << 62 } });
    let (status, e) = server
        .call(
            Method::POST,
            "/api/apis",
            Some(&analyst),
            Some(grant.clone()),
        )
        .await;
    assert_eq!(status, 403, "{e}");
    let (status, api) = server.post("/api/apis", grant).await;
    assert_eq!(status, 201, "{api}");
    assert_eq!(api["ceilings"]["memory_pool_bytes"], json!(1u64 << 62));

    // Withdrawn: the spec is over the ceiling again.
    let (status, e) = server
        .put("/api/apis/greedy", json!({ "spec": spec, "ceilings": {} }))
        .await;
    assert!(status == 422 && named(&e), "{e}");
    let (status, api) = server
        .put(
            "/api/apis/greedy",
            json!({ "spec": top_products_spec("greedy"), "ceilings": {} }),
        )
        .await;
    assert_eq!(status, 200, "{api}");
    server.stop().await;
}

/// Every edge took the access push a token route reports (`edges[].ok`).
fn pushed_everywhere(reply: &Value) -> bool {
    reply["edges"]
        .as_array()
        .is_some_and(|edges| edges.iter().all(|e| e["ok"] == true))
}

/// A read token made with a quota (2 requests/s, burst 2) reaches the edges with it: a burst
/// of lookups with it gets 429 `throttled` after the first ones, while a token without a
/// quota is never throttled; the quota shows in the token list, and analysts' tokens take
/// none.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_quota_is_pushed_to_the_edges_and_enforced_there() {
    let (_dir, server) = TestServer::fresh_with_api(protected_top_products_spec("metered")).await;
    let stack = &server.stack;
    server.publish_ok("metered").await;
    let (status, slow) = server
        .post(
            "/api/apis/metered/tokens",
            json!({"name": "batch-job", "rate_per_second": 2, "burst": 2}),
        )
        .await;
    assert_eq!(status, 201, "{slow}");
    assert_eq!(
        slow["quota"],
        json!({"per_second": 2, "burst": 2}),
        "{slow}"
    );
    let fast = server
        .create_token("/api/apis/metered/tokens", "checkout")
        .await;
    let (slow, fast) = (
        slow["token"].as_str().unwrap().to_string(),
        fast["token"].as_str().unwrap().to_string(),
    );
    stack
        .lookup_until(0, "metered", "tw", Some(&fast), 200)
        .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(stack.lookup(0, "metered", "tw", Some(&slow)).await.0);
        assert_eq!(stack.lookup(0, "metered", "tw", Some(&fast)).await.0, 200);
    }
    assert!(
        statuses.starts_with(&[200]) && statuses.contains(&429),
        "{statuses:?}"
    );
    let (status, e) = server
        .post(
            "/api/users/tokens",
            json!({"name": "ana", "rate_per_second": 5}),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    server.stop().await;
}
