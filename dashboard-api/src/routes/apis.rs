//! APIs: create, read, update, delete, validate, plan, publish, roll back, versions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use publisher::publish::Route;
use publisher::spec::{self, ApiSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::auth::User;
use crate::config::DEFAULT_EDGE_GROUP;
use crate::error::{Error, FieldError, Result};
use crate::freshness::Freshness;
use crate::routes::jobs::JobView;
use crate::routes::tokens::{EdgePush, push_access};
use crate::routes::{catalogs::open_catalog, json_error, parse_body};
use crate::store::{
    ApiRow, ApiUpdate, JobKind, JobParams, JobRow, TriggerRow, VersionRow, rfc3339,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiView {
    pub name: String,
    /// The API spec (see the design's API spec section).
    #[schema(value_type = Object)]
    pub spec: ApiSpec,
    pub catalog: String,
    pub edge_group: String,
    /// The edges of the API's group; for an API published from the CLI to edges no group
    /// lists, the edges the control plane recorded for it.
    pub edges: Vec<String>,
    pub owner: String,
    /// Analysts who may change it besides its owner and the administrators.
    pub editors: Vec<String>,
    /// Ceilings an administrator granted this API above the server's (`[dashboard.ceilings]`).
    #[schema(value_type = Object)]
    pub ceilings: publisher::guards::LimitOverrides,
    /// Whether the user asking may change it (edit, publish, roll back, delete, manage its
    /// tokens, cancel its jobs): its owner, an editor or an administrator.
    pub may_change: bool,
    pub protected: bool,
    pub revision: i64,
    pub created_at: String,
    pub updated_at: String,
    /// `{lookup base}/v1/{api}/`, where a lookup service for the edge group is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_url: Option<String>,
    /// The newest job of the API, on single-API reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_job: Option<JobView>,
    /// Token pushes to edges that this request caused (on updates that change protection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_push: Option<Vec<EdgePush>>,
    /// How old the serving data is, against the API's objective (on reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
    /// What its triggers did last and do next (on reads, when it has any).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers: Option<TriggerView>,
}

/// An API's triggers as they stand: the spec's `refresh` says what they are, this says when.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TriggerView {
    pub on_table_change: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The schedule's next firing (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fired_at: Option<String>,
    /// `table_change` or `schedule`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_trigger: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_job: Option<String>,
}

impl TriggerView {
    fn of(api: &ApiRow, state: Option<&TriggerRow>) -> Option<TriggerView> {
        let r = &api.spec.refresh;
        if !r.on_table_change
            && r.schedule.is_none()
            && state.is_none_or(|t| t.last_fired_at.is_none())
        {
            return None;
        }
        let state = state.cloned().unwrap_or_default();
        Some(TriggerView {
            on_table_change: r.on_table_change,
            schedule: r
                .schedule
                .as_ref()
                .map(|s| format!("{s} ({})", r.timezone.as_deref().unwrap_or("UTC"))),
            next_at: state.next_at.filter(|_| r.schedule.is_some()).map(rfc3339),
            last_fired_at: state.last_fired_at.map(rfc3339),
            last_trigger: state.last_trigger,
            last_job: state.last_job,
        })
    }
}

impl ApiView {
    pub(crate) fn new(state: &AppState, user: &User, a: ApiRow) -> Self {
        Self::with_recorded(state, user, a, Vec::new())
    }

    /// With the edges the control plane recorded, used when the API's group has none.
    pub(crate) fn with_recorded(
        state: &AppState,
        user: &User,
        a: ApiRow,
        recorded: Vec<String>,
    ) -> Self {
        let configured = state
            .config
            .edge_groups
            .get(&a.edge_group)
            .cloned()
            .unwrap_or_default();
        ApiView {
            may_change: user.may_change(&a),
            lookup_url: state.config.lookup_url(&a.edge_group, &a.name),
            edges: if configured.is_empty() {
                recorded
            } else {
                configured
            },
            name: a.name,
            spec: a.spec,
            catalog: a.catalog,
            edge_group: a.edge_group,
            owner: a.owner,
            editors: a.editors,
            ceilings: a.ceilings,
            protected: a.protected,
            revision: a.revision,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
            last_job: None,
            token_push: None,
            freshness: None,
            triggers: None,
        }
    }
}

/// A spec with where it reads from and publishes to.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiInput {
    /// The API spec; on update its `name` may be omitted.
    #[schema(value_type = Object)]
    pub spec: Value,
    /// A configured catalog's name; default: the API's current one, else the first configured.
    #[serde(default)]
    pub catalog: Option<String>,
    /// A configured edge group; default: the API's current one, else `default`.
    #[serde(default)]
    pub edge_group: Option<String>,
    /// Analysts who may change the API besides its owner; default: the current ones (none on
    /// creation). Only the owner and administrators may change the list.
    #[serde(default)]
    pub editors: Option<Vec<String>>,
    /// Ceilings granted to this API above the server's, per guard limit; default: the current
    /// ones (none on creation). Only administrators may change them.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub ceilings: Option<publisher::guards::LimitOverrides>,
}

/// Editors as given: trimmed, each a user name (1 to 64 printable characters), no repeats.
fn editors_of(input: &ApiInput, current: &[String]) -> Result<Vec<String>> {
    let Some(given) = &input.editors else {
        return Ok(current.to_vec());
    };
    let mut editors: Vec<String> = Vec::with_capacity(given.len());
    for (i, name) in given.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                format!("editors[{i}]"),
                "an editor is a user name of 1 to 64 printable characters",
            ));
        }
        if !editors.iter().any(|e| e == name) {
            editors.push(name.to_string());
        }
    }
    Ok(editors)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Validation {
    pub valid: bool,
    pub problems: Vec<FieldError>,
}

/// A spec checked against everything: syntax, configuration and the table's schema.
struct Checked {
    spec: Option<ApiSpec>,
    catalog: String,
    edge_group: String,
    problems: Vec<FieldError>,
}

async fn check(
    state: &AppState,
    input: &ApiInput,
    path_name: Option<&str>,
    current: Option<&ApiRow>,
) -> Result<Checked> {
    let mut problems: Vec<FieldError> = Vec::new();
    let mut value = input.spec.clone();
    if let (Some(name), Value::Object(map)) = (path_name, &mut value) {
        map.entry("name")
            .or_insert_with(|| Value::String(name.to_string()));
    }
    let spec = match serde_json::from_value::<ApiSpec>(value) {
        Ok(s) => Some(s),
        Err(e) => {
            if let Error::Invalid { fields, .. } = json_error("", &e) {
                problems.extend(fields);
            }
            None
        }
    };
    let catalog = input
        .catalog
        .clone()
        .or_else(|| current.map(|c| c.catalog.clone()))
        .or_else(|| state.config.catalogs.first().map(|c| c.name.clone()))
        .unwrap_or_default();
    if state.config.catalog(&catalog).is_none() {
        let known: Vec<&str> = state
            .config
            .catalogs
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        problems.push(FieldError {
            field: "catalog".into(),
            message: if catalog.is_empty() {
                "no catalog is configured".into()
            } else {
                format!(
                    "unknown catalog `{catalog}` (configured: {})",
                    known.join(", ")
                )
            },
        });
    }
    let edge_group = input
        .edge_group
        .clone()
        .or_else(|| current.map(|c| c.edge_group.clone()))
        .unwrap_or_else(|| DEFAULT_EDGE_GROUP.to_string());
    if !state.config.edge_groups.contains_key(&edge_group) {
        let known: Vec<&str> = state
            .config
            .edge_groups
            .keys()
            .map(String::as_str)
            .collect();
        problems.push(FieldError {
            field: "edge_group".into(),
            message: format!(
                "unknown edge group `{edge_group}` (configured: {})",
                known.join(", ")
            ),
        });
    }
    let Some(spec) = spec else {
        return Ok(Checked {
            spec: None,
            catalog,
            edge_group,
            problems,
        });
    };
    if let Some(name) = path_name
        && spec.name != name
    {
        problems.push(FieldError {
            field: "name".into(),
            message: format!(
                "the spec is named `{}` but the URL names `{name}`; APIs are not renamed",
                spec.name
            ),
        });
    }
    if spec.name.starts_with('_') {
        problems.push(FieldError {
            field: "name".into(),
            message: "names starting with `_` are reserved".into(),
        });
    }
    let grants = input
        .ceilings
        .clone()
        .or_else(|| current.map(|c| c.ceilings.clone()))
        .unwrap_or_default();
    problems.extend(
        state
            .config
            .ceilings
            .with_grants(&grants)
            .check(&spec.limits)
            .into_iter()
            .map(FieldError::from),
    );
    let syntax = spec::check_syntax(&spec);
    let table = spec.table_name().ok();
    match (table, problems.iter().any(|p| p.field == "catalog")) {
        (Some(table), false) => {
            let cat = open_catalog(state, &catalog).await?;
            match cat.table(&table).await {
                Ok(meta) => {
                    if let Err(publisher::Error::SpecInvalid {
                        problems: found, ..
                    }) = spec::validate(&spec, &meta)
                    {
                        problems.extend(found.into_iter().map(FieldError::from));
                    }
                }
                Err(
                    e @ (publisher::Error::TableNotFound(..)
                    | publisher::Error::DatabaseNotFound(..)),
                ) => {
                    problems.extend(syntax.into_iter().map(FieldError::from));
                    problems.push(FieldError {
                        field: "table".into(),
                        message: e.to_string(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => problems.extend(syntax.into_iter().map(FieldError::from)),
    }
    Ok(Checked {
        spec: Some(spec),
        catalog,
        edge_group,
        problems,
    })
}

fn reject(problems: Vec<FieldError>) -> Error {
    let message = problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    Error::Invalid {
        message: format!("the API is invalid: {message}"),
        fields: problems,
    }
}

/// Every API.
#[utoipa::path(get, path = "/api/apis", tag = "apis", security(("bearer" = [])), responses((status = 200, body = [ApiView])))]
pub async fn list_apis(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
) -> Result<Json<Vec<ApiView>>> {
    let mut recorded: std::collections::HashMap<String, Vec<String>> = state
        .store
        .api_states()
        .await?
        .into_iter()
        .map(|s| (s.api, s.edges))
        .collect();
    let mut freshness: std::collections::HashMap<String, Freshness> =
        Freshness::of_all(&state.store, chrono::Utc::now())
            .await?
            .into_iter()
            .collect();
    let triggers = state.store.trigger_states().await?;
    Ok(Json(
        state
            .store
            .apis()
            .await?
            .into_iter()
            .map(|a| {
                let edges = recorded.remove(&a.name).unwrap_or_default();
                let f = freshness.remove(&a.name);
                let t = TriggerView::of(&a, triggers.iter().find(|t| t.api == a.name));
                let mut view = ApiView::with_recorded(&state, &user, a, edges);
                view.freshness = f;
                view.triggers = t;
                view
            })
            .collect(),
    ))
}

/// Creates an API after validating its spec against the table (422 with problems by field).
#[utoipa::path(post, path = "/api/apis", tag = "apis", security(("bearer" = [])), request_body = ApiInput,
    responses((status = 201, body = ApiView), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_api(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    body: Bytes,
) -> Result<Response> {
    let input: ApiInput = parse_body(&body, false)?;
    let editors = editors_of(&input, &[])?;
    if input.ceilings.as_ref().is_some_and(|c| !c.is_empty()) {
        user.require_admin()?;
    }
    let checked = check(&state, &input, None, None).await?;
    let spec = match checked.spec {
        Some(spec) if checked.problems.is_empty() => spec,
        _ => return Err(reject(checked.problems)),
    };
    let row = ApiRow {
        editors,
        ceilings: input.ceilings.clone().unwrap_or_default(),
        ..ApiRow::new(spec, &checked.catalog, &user.name, &checked.edge_group)
    };
    state.store.create_api(&row).await?;
    tracing::info!(api = %row.name, "API created");
    let location = format!("/api/apis/{}", row.name);
    let mut response =
        (StatusCode::CREATED, Json(ApiView::new(&state, &user, row))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Checks a spec without saving it: `{valid, problems: [{field, message}]}`.
#[utoipa::path(post, path = "/api/apis/_validate", tag = "apis", security(("bearer" = [])), request_body = ApiInput,
    responses((status = 200, body = Validation)))]
pub async fn validate_api(State(state): State<AppState>, body: Bytes) -> Result<Json<Validation>> {
    let input: ApiInput = parse_body(&body, false)?;
    let current = match input.spec.get("name").and_then(Value::as_str) {
        Some(name) => state.store.api(name).await.ok(),
        None => None,
    };
    let checked = check(&state, &input, None, current.as_ref()).await?;
    Ok(Json(Validation {
        valid: checked.problems.is_empty(),
        problems: checked.problems,
    }))
}

/// One API, with its newest job.
#[utoipa::path(get, path = "/api/apis/{name}", tag = "apis", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    responses((status = 200, body = ApiView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_api(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    Path(name): Path<String>,
) -> Result<Json<ApiView>> {
    let api = state.store.api(&name).await?;
    let recorded = state
        .store
        .api_state(&name)
        .await?
        .map(|s| s.edges)
        .unwrap_or_default();
    let serving = state.store.serving_version(&name).await?;
    let freshness = Freshness::of(&api, serving.as_ref(), chrono::Utc::now());
    let triggers = TriggerView::of(&api, state.store.trigger_state(&name).await?.as_ref());
    let mut view = ApiView::with_recorded(&state, &user, api, recorded);
    view.freshness = Some(freshness);
    view.triggers = triggers;
    view.last_job = state
        .store
        .jobs(Some(&name), None, 1)
        .await?
        .into_iter()
        .next()
        .map(JobView::from);
    Ok(Json(view))
}

/// Saves a new revision of an API (validated like a creation).
#[utoipa::path(put, path = "/api/apis/{name}", tag = "apis", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    request_body = ApiInput,
    responses((status = 200, body = ApiView), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn update_api(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<ApiView>> {
    let input: ApiInput = parse_body(&body, false)?;
    let before = state.store.api(&name).await?;
    user.require_change(&before, "edit")?;
    let editors = editors_of(&input, &before.editors)?;
    if editors != before.editors {
        user.require_owner(&before, "change the editors of")?;
    }
    let ceilings = input.ceilings.clone().unwrap_or(before.ceilings.clone());
    if ceilings != before.ceilings {
        user.require_admin()?;
    }
    let checked = check(&state, &input, Some(&name), Some(&before)).await?;
    let spec = match checked.spec {
        Some(spec) if checked.problems.is_empty() => spec,
        _ => return Err(reject(checked.problems)),
    };
    state
        .store
        .update_api(
            &name,
            &ApiUpdate {
                spec: &spec,
                catalog: &checked.catalog,
                edge_group: &checked.edge_group,
                editors: &editors,
                ceilings: &ceilings,
            },
            &user.name,
        )
        .await?;
    let after = state.store.api(&name).await?;
    let push = if after.protected != before.protected {
        Some(push_access(&state, &name).await?)
    } else {
        None
    };
    let mut view = ApiView::new(&state, &user, after);
    view.token_push = push;
    Ok(Json(view))
}

/// What a delete did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedApi {
    pub api: String,
    /// Every edge dropped it (versions, keys, tokens). When false, the failed edges are
    /// retried by convergence, and the name can be created again only once they have.
    pub retired: bool,
    /// Each edge's outcome.
    pub edges: Vec<EdgePush>,
    /// Queued jobs of the API, cancelled.
    pub cancelled_jobs: Vec<String>,
}

/// Deletes an API: its definition, revisions, tokens and version history; queued jobs are
/// cancelled (refused while one of its jobs runs). Every edge drops it at once: its tokens
/// stop working, lookups answer 404, its keys are unlinked. Re-creating the name starts over
/// from version 1 with no tokens.
#[utoipa::path(delete, path = "/api/apis/{name}", tag = "apis", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    responses((status = 200, body = DeletedApi), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn delete_api(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    Path(name): Path<String>,
) -> Result<Json<DeletedApi>> {
    let api = state.store.api(&name).await?;
    user.require_change(&api, "delete")?;
    let (cancelled, outcomes) = state.control.delete(&name).await?;
    for id in &cancelled {
        let _ = state.emit(id, &serde_json::json!({"event": "finished", "state": "cancelled", "error": {"step": "cancel", "message": "the API was deleted", "transient": false}})).await;
    }
    let edges: Vec<EdgePush> = outcomes
        .into_iter()
        .map(|o| EdgePush {
            edge: o.edge,
            ok: o.error.is_none(),
            error: o.error,
        })
        .collect();
    let retired = edges.iter().all(|e| e.ok);
    tracing::info!(api = %name, by = %user.name, retired, "API deleted");
    Ok(Json(DeletedApi {
        api: name,
        retired,
        edges,
        cancelled_jobs: cancelled,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevisionView {
    pub revision: i64,
    #[schema(value_type = Object)]
    pub spec: ApiSpec,
    pub author: String,
    pub at: String,
}

/// Every saved revision of an API, newest first.
#[utoipa::path(get, path = "/api/apis/{name}/revisions", tag = "apis", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    responses((status = 200, body = [RevisionView]), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_revisions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<RevisionView>>> {
    state.store.api(&name).await?;
    let revisions = state.store.revisions(&name).await?;
    Ok(Json(
        revisions
            .into_iter()
            .map(|r| RevisionView {
                revision: r.revision,
                spec: r.spec,
                author: r.author,
                at: rfc3339(r.at),
            })
            .collect(),
    ))
}

/// Options of a plan or a publish.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteInput {
    /// `auto` (follow the guards, the default), `fasttrack` or `fallback`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub route: Route,
    /// Publish only if the source changed since the serving version (else the job ends
    /// `unchanged`): what an orchestrator's call wants.
    #[serde(default)]
    pub if_changed: bool,
    /// Commit even if quality gates fail ("publish anyway"): the owner's or an
    /// administrator's call, recorded with the version.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub api: String,
    pub table: String,
    /// `fasttrack` or `fallback`.
    pub path: String,
    /// Why that path.
    pub reason: String,
    /// Every breaker's measured value against its limit.
    #[schema(value_type = Vec<Object>)]
    pub guards: Vec<publisher::guards::GuardOutcome>,
    pub rows: u64,
    /// `statistics`, `footers` or `unknown`.
    pub rows_source: String,
    pub files: usize,
    pub bytes: u64,
    pub partitions_selected: usize,
    pub partitions_total: usize,
    /// The partitions `latest_partitions` chose, newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latest_partitions: Vec<String>,
    /// The newest data a publish now would hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_time: Option<String>,
    /// What a publish now would be computed from; equal to the serving version's, a
    /// triggered publish would find the source unchanged.
    pub fingerprint: String,
    /// Whether the serving version was computed from this same source.
    pub unchanged: bool,
    /// The engine's plan, when it could describe it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<String>,
}

/// The guard report and the chosen path; reads no data and publishes nothing.
#[utoipa::path(post, path = "/api/apis/{name}/plan", tag = "apis", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    request_body(content = RouteInput, description = "Optional"),
    responses((status = 200, body = PlanView), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn plan_api(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<PlanView>> {
    let input: RouteInput = parse_body(&body, true)?;
    let api = state.store.api(&name).await?;
    let catalog = state.config.catalog(&api.catalog).ok_or_else(|| {
        Error::invalid(
            "catalog",
            format!("catalog `{}` is no longer configured", api.catalog),
        )
    })?;
    let publisher = state.stack.publisher(&catalog.uri).await?;
    let plan = publisher.plan(&api.spec, input.route).await?;
    let engine = match plan.path {
        publisher::engine::EnginePath::Fasttrack => Some(&publisher.fasttrack),
        publisher::engine::EnginePath::Fallback => publisher.fallback.as_ref(),
    };
    let explain = match engine {
        Some(e) => e.explain(&plan.job(publisher.catalog.uri())).await.ok(),
        None => None,
    };
    let rows_source = serde_json::to_value(plan.inspection.rows_source)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let serving = state.store.serving_version(&name).await?;
    Ok(Json(PlanView {
        api: name,
        table: plan.table.name.to_string(),
        path: plan.path.to_string(),
        reason: plan.reason.clone(),
        rows: plan.inspection.rows,
        rows_source,
        files: plan.inspection.files.len(),
        bytes: plan.inspection.bytes(),
        partitions_selected: plan.inspection.partitions_selected,
        partitions_total: plan.inspection.partitions_total,
        unchanged: serving.and_then(|v| v.fingerprint).as_ref() == Some(&plan.fingerprint),
        latest_partitions: plan.latest_partitions,
        data_time: plan.data_time,
        fingerprint: plan.fingerprint,
        guards: plan.guards,
        explain,
    }))
}

fn accepted(job: JobRow) -> Response {
    let location = format!("/api/jobs/{}", job.id);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    (StatusCode::ACCEPTED, headers, Json(JobView::from(job))).into_response()
}

/// Queues a publish of the API's current revision; 202 with the job (follow
/// `/api/jobs/{id}/events`). Publishes of one API run one at a time, in order.
#[utoipa::path(post, path = "/api/apis/{name}/publish", tag = "apis", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    request_body(content = RouteInput, description = "Optional"),
    responses((status = 202, body = JobView), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn publish_api(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let input: RouteInput = parse_body(&body, true)?;
    let api = state.store.api(&name).await?;
    user.require_change(&api, "publish")?;
    if input.force {
        user.require_owner(&api, "publish past failed quality gates")?;
    }
    // The ceilings may have been lowered since the spec was saved.
    let over = state
        .config
        .ceilings
        .with_grants(&api.ceilings)
        .check(&api.spec.limits);
    if !over.is_empty() {
        return Err(reject(over.into_iter().map(FieldError::from).collect()));
    }
    let params = JobParams {
        spec: Some(api.spec.clone()),
        catalog: Some(api.catalog.clone()),
        edge_group: Some(api.edge_group.clone()),
        route: input.route,
        to: None,
        trigger: None,
        if_changed: input.if_changed,
        force: input.force,
    };
    Ok(accepted(
        crate::runner::enqueue(&state, &api, JobKind::Publish, params, &user.name).await?,
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    /// The version to serve again; default: the newest kept version older than the serving one.
    #[serde(default)]
    pub to: Option<u64>,
}

/// Queues a rollback (a job, serialized with the API's publishes); 202 with the job.
#[utoipa::path(post, path = "/api/apis/{name}/rollback", tag = "apis", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    request_body(content = RollbackInput, description = "Optional"),
    responses((status = 202, body = JobView), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn rollback_api(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let input: RollbackInput = parse_body(&body, true)?;
    if input.to == Some(0) {
        return Err(Error::invalid("to", "versions start at 1"));
    }
    let api = state.store.api(&name).await?;
    user.require_change(&api, "roll back")?;
    let params = JobParams {
        spec: None,
        catalog: None,
        edge_group: Some(api.edge_group.clone()),
        route: Route::Auto,
        to: input.to,
        ..Default::default()
    };
    Ok(accepted(
        crate::runner::enqueue(&state, &api, JobKind::Rollback, params, &user.name).await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeptVersion {
    pub version: u64,
    pub created_at: String,
    pub path: String,
    pub keys: u64,
    pub bytes: u64,
    pub checksum: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EdgeVersionsView {
    pub edge: String,
    pub serving: Option<u64>,
    pub highest: u64,
    /// Committed versions kept for rollback, newest first.
    pub kept: Vec<KeptVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionsView {
    pub api: String,
    pub edge_group: String,
    /// The version every edge serves, when they agree.
    pub serving: Option<u64>,
    pub edges: Vec<EdgeVersionsView>,
    /// The version the control plane's store says every edge must serve.
    pub desired: Option<u64>,
    /// The edges may not all serve `desired` yet (a commit failed part-way, or an edge is down).
    pub converging: bool,
    /// Every version the control plane numbered, newest first, with its state.
    pub history: Vec<VersionRow>,
}

/// What each edge serves and keeps, and the versions the dashboard committed.
#[utoipa::path(get, path = "/api/apis/{name}/versions", tag = "apis", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    responses((status = 200, body = VersionsView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn api_versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<VersionsView>> {
    let api = state.store.api(&name).await?;
    let desired = state.store.api_state(&name).await?.unwrap_or_default();
    let urls = if desired.edges.is_empty() {
        state
            .config
            .edge_groups
            .get(&api.edge_group)
            .cloned()
            .unwrap_or_default()
    } else {
        desired.edges.clone()
    };
    let edges = join_all(urls.iter().map(|url| {
        let state = state.clone();
        let name = name.clone();
        async move {
            let empty = |error: String| EdgeVersionsView {
                edge: url.clone(),
                serving: None,
                highest: 0,
                kept: Vec::new(),
                error: Some(error),
            };
            let edge = match state.stack.edge(url).await {
                Ok(e) => e,
                Err(e) => return empty(e.to_string()),
            };
            match edge.versions(&name).await {
                Ok(v) => EdgeVersionsView {
                    edge: url.clone(),
                    serving: v.serving,
                    highest: v.highest,
                    kept: v
                        .kept
                        .iter()
                        .map(|m| KeptVersion {
                            version: m.version,
                            created_at: m.created_at.clone(),
                            path: m.path.clone(),
                            keys: m.checksum.keys,
                            bytes: m.checksum.bytes,
                            checksum: m.checksum.hex(),
                        })
                        .collect(),
                    error: None,
                },
                Err(e) => empty(e.to_string()),
            }
        }
    }))
    .await;
    let first = edges.first().and_then(|e| e.serving);
    let serving = first.filter(|_| {
        edges
            .iter()
            .all(|e| e.serving == first && e.error.is_none())
    });
    Ok(Json(VersionsView {
        api: name.clone(),
        edge_group: api.edge_group,
        serving,
        edges,
        desired: desired.serving,
        converging: desired.converging,
        history: state.store.versions(&name).await?,
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct TrafficQuery {
    /// `1h` (the default, at the scrape interval) or `24h` (coarser points).
    #[serde(default)]
    pub window: Option<String>,
}

/// An API's lookup traffic over the last hour or day, from the lookup services' metrics:
/// requests/s, p50/p99 latency, 404 share, errors and bytes per interval, and what each lookup
/// service serves now (version, memory of the edge).
#[utoipa::path(get, path = "/api/apis/{name}/traffic", tag = "apis", security(("bearer" = [])),
    params(("name" = String, Path, description = "API name"), TrafficQuery),
    responses((status = 200, body = crate::traffic::ApiTraffic), (status = 404, body = crate::error::ErrorBody)))]
pub async fn api_traffic(
    State(state): State<AppState>,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<TrafficQuery>,
) -> Result<Json<crate::traffic::ApiTraffic>> {
    let api = state.store.api(&name).await?;
    let window = q.window.as_deref().unwrap_or("1h");
    if window != "1h" && window != "24h" {
        return Err(Error::invalid(
            "window",
            format!("{window:?}: expected 1h or 24h"),
        ));
    }
    Ok(Json(state.traffic.api(&api.name, window)))
}

/// One API's last hour, for ranking.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrafficRank {
    pub api: String,
    pub requests_per_s: f64,
    /// 5xx answers in percent of requests.
    pub error_pct: f64,
    pub not_found_pct: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    pub freshness: Freshness,
}

/// Every API's last hour, busiest first: requests/s, errors, 404s, p99 and staleness.
#[utoipa::path(get, path = "/api/traffic", tag = "apis", security(("bearer" = [])),
    responses((status = 200, body = [TrafficRank])))]
pub async fn traffic_overview(State(state): State<AppState>) -> Result<Json<Vec<TrafficRank>>> {
    let freshness = Freshness::of_all(&state.store, chrono::Utc::now()).await?;
    let mut ranks: Vec<TrafficRank> = freshness
        .into_iter()
        .map(|(api, freshness)| {
            let (hour, seconds) = state.traffic.last_hour(&api);
            let pct = |n: u32| {
                if hour.requests == 0 {
                    0.0
                } else {
                    f64::from(n) * 100.0 / f64::from(hour.requests)
                }
            };
            TrafficRank {
                requests_per_s: f64::from(hour.requests) / seconds,
                error_pct: pct(hour.errors),
                not_found_pct: pct(hour.not_found),
                p99_ms: hour.quantile_ms(0.99),
                freshness,
                api,
            }
        })
        .collect();
    ranks.sort_by(|a, b| {
        b.requests_per_s
            .total_cmp(&a.requests_per_s)
            .then_with(|| a.api.cmp(&b.api))
    });
    Ok(Json(ranks))
}
