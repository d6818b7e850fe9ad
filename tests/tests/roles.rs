//! Many analysts, one dashboard, over a real `tablecast serve`, real redis-server edges and
//! real lookup services: an API changes only by its owner, its editors and administrators
//! (every analyst may read it); deleting an API retires it from every edge at once (its tokens
//! stop working, its keys go) and re-creating the name starts from version 1.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tablecast_e2e::dashboard::{ADMIN_TOKEN, sample_spec_json};
use tablecast_e2e::lookup::{answer, answer_until, connect, scan_keys};
use tablecast_e2e::{Dashboard, DashboardSettings, Deployment, lookup_url};

const API: &str = "top_products_by_network";
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

fn log(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(format!("{name}.log"))
}

/// An analyst's dashboard token, made by the administrator.
async fn analyst(dash: &Dashboard, name: &str) -> String {
    let (status, created) = dash
        .post("/api/users/tokens", Some(&json!({ "name": name })))
        .await;
    assert_eq!(status, 201, "{created}");
    created["token"].as_str().unwrap().to_string()
}

/// One user's side of the dashboard: requests with their token.
struct As<'a> {
    dash: &'a Dashboard,
    token: &'a str,
}

impl As<'_> {
    async fn call(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let body = (!body.is_null()).then_some(body);
        self.dash
            .request(method, path, Some(self.token), body.as_ref())
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, Value::Null).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, body).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, Value::Null).await
    }

    /// Saves the sample spec again with these editors.
    async fn set_editors(&self, editors: &[&str]) -> (u16, Value) {
        let body = json!({ "spec": sample_spec_json(API), "editors": editors });
        self.call(Method::PUT, &format!("/api/apis/{API}"), body)
            .await
    }

    async fn may_change(&self) -> Value {
        let (status, view) = self.get(&format!("/api/apis/{API}")).await;
        assert_eq!(status, 200, "{view}");
        view["may_change"].clone()
    }
}

async fn wait_job(dash: &Dashboard, job: &Value) -> Value {
    let id = job["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {job}"));
    let view = dash.wait_job(id, JOB_TIMEOUT).await;
    assert_eq!(view["state"], "succeeded", "{view}\n{}", dash.log_tail(30));
    view
}

/// Every mutating route of analyst A's API answers 403 to analyst B (naming the owner) and
/// 2xx to A; B may read everything; once A makes B an editor, B may change it but not its
/// editors; the administrator may do everything.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_owner_editors_and_admins_change_an_api() {
    let deployment = Deployment::start(1);
    let edge = deployment.edges[0].url();
    let logs = tempfile::tempdir().unwrap();
    let settings = DashboardSettings::new(
        deployment.state.path(),
        &deployment.catalog(),
        std::slice::from_ref(&edge),
    );
    let dash = Dashboard::start(&settings, &log(&logs, "serve"));
    let (ana, bob) = (analyst(&dash, "ana").await, analyst(&dash, "bob").await);
    let (ana, bob, admin) = (
        As {
            dash: &dash,
            token: &ana,
        },
        As {
            dash: &dash,
            token: &bob,
        },
        As {
            dash: &dash,
            token: ADMIN_TOKEN,
        },
    );
    let (publish, api) = (
        format!("/api/apis/{API}/publish"),
        format!("/api/apis/{API}"),
    );

    let mut spec = sample_spec_json(API);
    spec["protected"] = json!(true);
    let (status, created) = ana.post("/api/apis", json!({ "spec": spec })).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["owner"], ana.may_change().await),
        (&json!("ana"), json!(true))
    );

    // What ana may do, bob may not (and nothing changes); every refusal names the owner.
    let (status, job) = ana.post(&publish, Value::Null).await;
    assert_eq!(status, 202, "{job}");
    let published = wait_job(&dash, &job).await;
    let (status, token) = ana
        .post(&format!("{api}/tokens"), json!({"name": "app"}))
        .await;
    assert_eq!(status, 201, "{token}");
    let token_id = token["id"].as_str().unwrap().to_string();
    let (status, queued) = ana.post(&publish, Value::Null).await;
    assert_eq!(status, 202, "{queued}");
    let queued_id = queued["id"].as_str().unwrap().to_string();

    let mut unprotected = sample_spec_json(API);
    unprotected["protected"] = json!(false);
    let refused: Vec<(Method, String, Value)> = vec![
        (
            Method::PUT,
            api.clone(),
            json!({ "spec": sample_spec_json(API) }),
        ),
        (Method::PUT, api.clone(), json!({ "spec": unprotected })),
        (Method::POST, publish.clone(), Value::Null),
        (Method::POST, format!("{api}/rollback"), json!({ "to": 1 })),
        (
            Method::POST,
            format!("{api}/tokens"),
            json!({ "name": "bobs" }),
        ),
        (
            Method::DELETE,
            format!("/api/tokens/{token_id}"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/jobs/{queued_id}/cancel"),
            Value::Null,
        ),
        (Method::DELETE, api.clone(), Value::Null),
    ];
    for (method, path, body) in &refused {
        let (status, e) = bob.call(method.clone(), path, body.clone()).await;
        assert_eq!(status, 403, "bob {method} {path}: {e}");
        let message = e["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("bob") && message.contains("(ana)"),
            "{message}"
        );
    }
    // Reading is everyone's.
    for path in ["", "/versions", "/revisions", "/tokens"].map(|p| format!("{api}{p}")) {
        let (status, body) = bob.get(&path).await;
        assert_eq!(status, 200, "bob GET {path}: {body}");
    }
    assert_eq!(bob.get(&format!("/api/jobs/{queued_id}")).await.0, 200);
    assert_eq!(bob.may_change().await, json!(false));
    let (status, plan) = bob.post(&format!("{api}/plan"), Value::Null).await;
    assert_eq!(status, 200, "bob may plan: {plan}");

    // Nothing bob tried took effect.
    assert_eq!(dash.get(&api).await["revision"], 1);
    assert_ne!(
        dash.get(&format!("/api/jobs/{queued_id}")).await["state"],
        "cancelled"
    );

    // ana does the same things with success.
    let (status, e) = ana
        .post(&format!("/api/jobs/{queued_id}/cancel"), Value::Null)
        .await;
    assert!(
        status == 200 || status == 409,
        "ana cancels her job (or it already ended): {e}"
    );
    let to = json!({ "to": published["report"]["version"] });
    let (status, rolled) = ana.post(&format!("{api}/rollback"), to).await;
    assert_eq!(status, 202, "{rolled}");
    wait_job(&dash, &rolled).await;
    let (status, revoked) = ana.delete(&format!("/api/tokens/{token_id}")).await;
    assert_eq!(status, 200, "{revoked}");

    // Editors: only the owner (or an administrator) names them; an editor may then change it.
    assert_eq!(bob.set_editors(&["bob"]).await.0, 403);
    let (status, edited) = ana.set_editors(&["bob"]).await;
    assert_eq!(
        (status, &edited["editors"]),
        (200, &json!(["bob"])),
        "{edited}"
    );
    assert_eq!(bob.may_change().await, json!(true));
    let (status, job) = bob.post(&publish, Value::Null).await;
    assert_eq!(status, 202, "the editor publishes: {job}");
    wait_job(&dash, &job).await;
    let (status, e) = bob.set_editors(&["bob", "cy"]).await;
    assert_eq!(status, 403, "an editor may not name editors: {e}");
    let (status, edited) = admin.set_editors(&[]).await;
    assert_eq!((status, &edited["editors"]), (200, &json!([])), "{edited}");
    let (status, e) = bob.post(&publish, Value::Null).await;
    assert_eq!(status, 403, "no longer an editor: {e}");
    // The name `admin` is the administrator's, never an analyst's.
    let (status, e) = admin
        .post("/api/users/tokens", json!({ "name": "admin" }))
        .await;
    assert_eq!(status, 422, "{e}");
}

/// Deleting a published, protected API: right after the delete its token gets 404 on every
/// edge's lookup service, and no key of it is left in any edge's Redis but the lock (its
/// access record and fence); the name created again starts at version 1 with no tokens.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_api_is_gone_from_every_edge_and_starts_over_when_recreated() {
    let deployment = Deployment::start(2);
    let edges: Vec<String> = deployment.edges.iter().map(|e| e.url()).collect();
    let logs = tempfile::tempdir().unwrap();
    let settings = DashboardSettings::new(deployment.state.path(), &deployment.catalog(), &edges);
    let dash = Dashboard::start(&settings, &log(&logs, "serve"));
    let lookups: Vec<_> = (0..2)
        .map(|i| deployment.lookup_service(i, &log(&logs, &format!("lookup{i}"))))
        .collect();

    let mut spec = sample_spec_json(API);
    spec["protected"] = json!(true);
    let (status, created) = dash.post("/api/apis", Some(&json!({ "spec": spec }))).await;
    assert_eq!(status, 201, "{created}");
    let (status, job) = dash.post(&format!("/api/apis/{API}/publish"), None).await;
    assert_eq!(status, 202, "{job}");
    wait_job(&dash, &job).await;
    let secret = dash.create_token(API, "app").await;
    let key = tablecast_e2e::golden(API)[0].0.clone();
    let urls: Vec<String> = lookups
        .iter()
        .map(|(_, base)| lookup_url(base, API, &key))
        .collect();
    for url in &urls {
        answer_until(url, Some(&secret), 200, Some("1")).await;
    }

    let admin = As {
        dash: &dash,
        token: ADMIN_TOKEN,
    };
    let (status, deleted) = admin.delete(&format!("/api/apis/{API}")).await;
    assert_eq!(
        (status, &deleted["retired"]),
        (200, &json!(true)),
        "{deleted}"
    );
    for url in &urls {
        // At once: the lookup services re-read the serving version within their cache TTL.
        let (status, _) = answer_until(url, Some(&secret), 404, None).await;
        assert_eq!(status, 404);
        let (_, _, _, code) = answer(url, Some(&secret)).await;
        assert_eq!(code, "unknown_api");
    }
    for edge in &deployment.edges {
        let mut conn = connect(&edge.url()).await;
        let mut left = scan_keys(&mut conn, &format!("tc:{{{API}*")).await;
        left.sort();
        let lock: Vec<String> = ["auth", "fence", "tokens"]
            .iter()
            .map(|k| format!("tc:{{{API}}}:{k}"))
            .filter(|k| left.contains(k))
            .collect();
        assert_eq!(left, lock, "{}: only the lock stays", edge.url());
    }

    // Created again: version 1, the old token is not valid.
    let (status, created) = dash
        .post("/api/apis", Some(&json!({ "spec": sample_spec_json(API) })))
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, job) = dash.post(&format!("/api/apis/{API}/publish"), None).await;
    assert_eq!(status, 202, "{job}");
    let view = wait_job(&dash, &job).await;
    assert_eq!(view["report"]["version"], 1, "{view}");
    let (status, tokens) = admin.get(&format!("/api/apis/{API}/tokens")).await;
    assert_eq!((status, tokens), (200, json!([])));
    for url in &urls {
        answer_until(url, None, 200, Some("1")).await;
    }
}
