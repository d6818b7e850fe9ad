//! The OpenAPI description of the REST API, served at `/api/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{self, apis, catalogs, jobs, tokens, ui};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token, or an analyst token from POST /api/users/tokens",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tablecast dashboard API", description = "Define key-value lookup APIs over warehouse tables, publish them to edge caches, follow jobs, roll back, manage tokens."),
    paths(
        catalogs::list_catalogs,
        catalogs::list_databases,
        catalogs::list_tables,
        catalogs::describe_table,
        apis::list_apis,
        apis::create_api,
        apis::validate_api,
        apis::get_api,
        apis::update_api,
        apis::delete_api,
        apis::list_revisions,
        apis::plan_api,
        apis::publish_api,
        apis::rollback_api,
        apis::api_versions,
        apis::api_traffic,
        apis::traffic_overview,
        ui::try_lookup,
        tokens::create_api_token,
        tokens::list_api_tokens,
        tokens::revoke_token,
        tokens::create_analyst_token,
        tokens::list_analyst_tokens,
        tokens::me,
        jobs::list_jobs,
        jobs::get_job,
        jobs::cancel_job,
        jobs::job_events,
        openapi_json,
        routes::healthz,
        routes::metrics,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "catalogs", description = "Browse catalogs, databases and tables"),
        (name = "apis", description = "Define, validate, plan, publish and roll back APIs"),
        (name = "jobs", description = "Publish and rollback jobs and their live events"),
        (name = "tokens", description = "API read tokens and analysts' dashboard tokens"),
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "apis", security(("bearer" = [])), responses((status = 200, description = "The OpenAPI 3.1 document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
