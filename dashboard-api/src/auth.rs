//! Bearer tokens: the administrator's (from the configuration) and analysts' (stored as SHA-256
//! hashes only). Every `/api` request is authenticated here and logged with its user.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::Instrument;

use crate::AppState;
use crate::error::Error;
use crate::store::ApiRow;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `admin`, or the analyst token's name.
    pub name: String,
    pub admin: bool,
    /// The analyst token used, if any.
    pub token_id: Option<String>,
}

impl User {
    pub fn require_admin(&self) -> Result<(), Error> {
        if self.admin {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "{} is not an administrator: this needs the admin token",
                self.name
            )))
        }
    }
}

/// Who may do what with one API: every analyst may read every API (definition, plans, jobs,
/// versions); its owner, its editors and the administrators may also change it (edit,
/// protect, publish, roll back, delete, manage its tokens, cancel its jobs); only its owner
/// and the administrators may change who its editors are. Every route that changes an API
/// asks here.
impl User {
    pub fn may_change(&self, api: &ApiRow) -> bool {
        self.admin || api.owner == self.name || api.editors.contains(&self.name)
    }

    pub fn require_change(&self, api: &ApiRow, action: &str) -> Result<(), Error> {
        if self.may_change(api) {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "{} may not {action} `{}`: only its owner ({}), its editors and administrators may",
            self.name, api.name, api.owner
        )))
    }

    pub fn require_owner(&self, api: &ApiRow, action: &str) -> Result<(), Error> {
        if self.admin || api.owner == self.name {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "{} may not {action} `{}`: only its owner ({}) and administrators may",
            self.name, api.name, api.owner
        )))
    }
}

/// The SHA-256 of a token, in lowercase hex: what is stored and what edges compare.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: a prefix naming its kind, then 256 bits in hex.
pub fn generate_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Resolves a presented token to a user, comparing digests in constant time.
pub async fn authenticate(state: &AppState, token: &str) -> Result<User, Error> {
    let presented = Sha256::digest(token.as_bytes());
    if bool::from(presented.as_slice().ct_eq(state.admin_digest.as_slice())) {
        return Ok(User {
            name: "admin".into(),
            admin: true,
            token_id: None,
        });
    }
    let hash = hex::encode(presented);
    match state.store.analyst_by_hash(&hash).await? {
        Some((token, stored)) if bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) => Ok(User {
            name: token.name,
            admin: false,
            token_id: Some(token.id),
        }),
        _ => Err(Error::Unauthorized("unknown or revoked token".into())),
    }
}

/// Middleware for `/api`: 401 without a valid bearer token; the user goes into the request's
/// extensions and into the request's tracing span.
pub async fn require_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let user = match bearer(&req) {
        None => Err(Error::Unauthorized(
            "missing `Authorization: Bearer <token>` header".into(),
        )),
        Some(token) => authenticate(&state, token).await,
    };
    let user = match user {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(%method, %path, user = "-", status = e.status().as_u16(), "request refused");
            return e.into_response();
        }
    };
    let span = tracing::info_span!("request", %method, %path, user = %user.name);
    req.extensions_mut().insert(user);
    async move {
        let response = next.run(req).await;
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
        response
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = generate_token("tc_");
        assert!(t.starts_with("tc_") && t.len() == 67);
        assert_ne!(generate_token("x"), generate_token("x"));
    }
}
