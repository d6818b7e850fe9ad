//! Tokens: per-API read tokens (pushed to the API's edges as hashes) and analysts' dashboard
//! tokens (admin only). A token is shown once, when created; only its SHA-256 is stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{User, generate_token, hash_token};
use crate::error::{Error, Result};
use crate::routes::parse_body;
use crate::store::{Quota, TokenKind, TokenRow, new_id, now_ms, rfc3339};

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// What the token is for (`checkout-service`, an analyst's name): 1 to 64 characters.
    pub name: String,
    /// A read token's quota on each lookup service: requests per second (none: unlimited).
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// Requests it may make at once (default: one second's worth).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl TokenInput {
    fn quota(&self) -> Result<Option<Quota>> {
        match (self.rate_per_second, self.burst) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(Error::invalid("burst", "a burst needs a rate_per_second")),
            (Some(0), _) => Err(Error::invalid("rate_per_second", "a rate is at least 1")),
            (Some(per_second), burst) => Ok(Some(Quota {
                per_second,
                burst: burst.unwrap_or(per_second).max(1),
            })),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub kind: TokenKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    pub name: String,
    pub created_by: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

impl From<TokenRow> for TokenView {
    fn from(t: TokenRow) -> Self {
        TokenView {
            id: t.id,
            kind: t.kind,
            api: t.api,
            name: t.name,
            created_by: t.created_by,
            created_at: rfc3339(t.created_at),
            revoked_at: t.revoked_at.map(rfc3339),
            quota: t.quota,
        }
    }
}

/// The result of pushing an API's token hashes to one edge.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EdgePush {
    pub edge: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenView,
    /// The secret itself: shown this once, never stored.
    pub token: String,
    /// Pushes of the API's new token set to its edges (API tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<EdgePush>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedToken {
    #[serde(flatten)]
    pub info: TokenView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edges: Option<Vec<EdgePush>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub name: String,
    pub admin: bool,
}

/// Has the control plane push the API's current access (protection and live token hashes) to
/// its edges. Failures are reported, not fatal: the next convergence applies the same set, and
/// an edge never takes an older one.
pub async fn push_access(state: &AppState, api: &str) -> Result<Vec<EdgePush>> {
    Ok(state
        .control
        .apply_access(api)
        .await?
        .into_iter()
        .map(|o| EdgePush {
            edge: o.edge,
            ok: o.error.is_none(),
            error: o.error,
        })
        .collect())
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "a token name is 1 to 64 printable characters",
        ));
    }
    Ok(())
}

/// Creates a read token for an API and pushes the API's new token set to its edges.
#[utoipa::path(post, path = "/api/apis/{name}/tokens", tag = "tokens", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    request_body = TokenInput,
    responses((status = 201, body = CreatedToken), (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_api_token(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedToken>)> {
    let input: TokenInput = parse_body(&body, false)?;
    check_name(&input.name)?;
    let api = state.store.api(&name).await?;
    user.require_change(&api, "create tokens for")?;
    let token = generate_token("tca_");
    let row = TokenRow {
        id: format!("tok_{}", new_id()),
        api: Some(api.name.clone()),
        kind: TokenKind::Api,
        name: input.name.trim().to_string(),
        created_by: user.name.clone(),
        created_at: now_ms(),
        revoked_at: None,
        quota: input.quota()?,
    };
    state.store.create_token(&row, &hash_token(&token)).await?;
    tracing::info!(api = %api.name, token = %row.id, "API token created");
    let edges = push_access(&state, &api.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: row.into(),
            token,
            edges: Some(edges),
        }),
    ))
}

/// An API's tokens, revoked ones included; never the secrets.
#[utoipa::path(get, path = "/api/apis/{name}/tokens", tag = "tokens", security(("bearer" = [])), params(("name" = String, Path, description = "API name")),
    responses((status = 200, body = [TokenView]), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_api_tokens(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<TokenView>>> {
    state.store.api(&name).await?;
    Ok(Json(
        state
            .store
            .tokens(Some(&name))
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect(),
    ))
}

/// Revokes a token. An API token's revocation is pushed to the API's edges (the API's owner,
/// editors and administrators may revoke it); revoking an analyst token needs the admin token.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", security(("bearer" = [])), params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = RevokedToken), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    Path(id): Path<String>,
) -> Result<Json<RevokedToken>> {
    let token = state.store.token(&id).await?;
    match (&token.api, token.kind) {
        (Some(api), TokenKind::Api) => {
            user.require_change(&state.store.api(api).await?, "revoke tokens of")?
        }
        _ => user.require_admin()?,
    }
    state.store.revoke_token(&id).await?;
    tracing::info!(token = %id, "token revoked");
    let edges = match (&token.api, token.kind) {
        (Some(api), TokenKind::Api) => Some(push_access(&state, api).await?),
        _ => None,
    };
    Ok(Json(RevokedToken {
        info: state.store.token(&id).await?.into(),
        edges,
    }))
}

/// Creates an analyst's dashboard token (admin only).
#[utoipa::path(post, path = "/api/users/tokens", tag = "tokens", security(("bearer" = [])), request_body = TokenInput,
    responses((status = 201, body = CreatedToken), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create_analyst_token(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedToken>)> {
    user.require_admin()?;
    let input: TokenInput = parse_body(&body, false)?;
    check_name(&input.name)?;
    if input.quota()?.is_some() {
        return Err(Error::invalid(
            "rate_per_second",
            "quotas are for API read tokens, not analysts' tokens",
        ));
    }
    // The name is the analyst's identity (owner, editor); `admin` is the administrator's.
    if input.name.trim() == "admin" {
        return Err(Error::invalid(
            "name",
            "`admin` names the administrator; choose the analyst's own name",
        ));
    }
    let token = generate_token("tcu_");
    let row = TokenRow {
        id: format!("tok_{}", new_id()),
        api: None,
        kind: TokenKind::Analyst,
        name: input.name.trim().to_string(),
        created_by: user.name.clone(),
        created_at: now_ms(),
        revoked_at: None,
        quota: None,
    };
    state.store.create_token(&row, &hash_token(&token)).await?;
    tracing::info!(token = %row.id, analyst = %row.name, "analyst token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: row.into(),
            token,
            edges: None,
        }),
    ))
}

/// Analysts' tokens, revoked ones included (admin only).
#[utoipa::path(get, path = "/api/users/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = [TokenView]), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_analyst_tokens(
    State(state): State<AppState>,
    axum::Extension(user): axum::Extension<User>,
) -> Result<Json<Vec<TokenView>>> {
    user.require_admin()?;
    Ok(Json(
        state
            .store
            .tokens(None)
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect(),
    ))
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/api/me", tag = "tokens", security(("bearer" = [])), responses((status = 200, body = Me)))]
pub async fn me(axum::Extension(user): axum::Extension<User>) -> Json<Me> {
    Json(Me {
        name: user.name,
        admin: user.admin,
    })
}
