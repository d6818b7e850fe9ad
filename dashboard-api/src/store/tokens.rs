//! The `tokens` table: API read tokens and analysts' dashboard tokens, as SHA-256 hashes only.
//! A change to an API's tokens bumps its access revision in the same transaction.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Reads one API on the edges.
    Api,
    /// Signs an analyst into the dashboard.
    Analyst,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Analyst => "analyst",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub api: Option<String>,
    pub kind: TokenKind,
    pub name: String,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// A read token's quota on the lookup services.
    pub quota: Option<Quota>,
}

/// Requests per second on average, and at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quota {
    pub per_second: u32,
    pub burst: u32,
}

fn token_row(row: &AnyRow) -> Result<TokenRow> {
    let kind: String = row.try_get("kind")?;
    Ok(TokenRow {
        id: row.try_get("id")?,
        api: row.try_get("api")?,
        kind: if kind == "analyst" {
            TokenKind::Analyst
        } else {
            TokenKind::Api
        },
        name: row.try_get("name")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        quota: quota_of(row)?,
    })
}

pub(super) fn quota_of(row: &AnyRow) -> Result<Option<Quota>> {
    let per_second: Option<i64> = row.try_get("rate_per_second")?;
    let burst: Option<i64> = row.try_get("burst")?;
    Ok(per_second.map(|p| Quota {
        per_second: p as u32,
        burst: burst.unwrap_or(p) as u32,
    }))
}

impl Store {
    // ---- tokens ----

    /// Stores a token (its hash); an API token changes who may read the API.
    pub async fn create_token(&self, token: &TokenRow, hash: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO tokens (id, api, kind, name, hash, created_by, created_at, rate_per_second, burst) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&token.id)
        .bind(&token.api)
        .bind(token.kind.as_str())
        .bind(&token.name)
        .bind(hash)
        .bind(&token.created_by)
        .bind(token.created_at)
        .bind(token.quota.map(|q| i64::from(q.per_second)))
        .bind(token.quota.map(|q| i64::from(q.burst)))
        .execute(&mut *tx)
        .await?;
        if let (TokenKind::Api, Some(api)) = (token.kind, &token.api) {
            control::bump_access(&mut tx, api, token.created_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<TokenRow> {
        let row = sqlx::query("SELECT * FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::not_found("token", id))?;
        token_row(&row)
    }

    /// An API's tokens, or analysts' tokens when `api` is `None`; revoked ones included.
    pub async fn tokens(&self, api: Option<&str>) -> Result<Vec<TokenRow>> {
        let rows = match api {
            Some(api) => sqlx::query(
                "SELECT * FROM tokens WHERE api = $1 AND kind = 'api' ORDER BY created_at, id",
            )
            .bind(api),
            None => {
                sqlx::query("SELECT * FROM tokens WHERE kind = 'analyst' ORDER BY created_at, id")
            }
        }
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_row).collect()
    }

    /// Stores an API token made elsewhere (the CLI's old token files) unless its hash is here.
    pub async fn import_api_token(
        &self,
        api: &str,
        id: &str,
        hash: &str,
        created_at: i64,
        revoked_at: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO tokens (id, api, kind, name, hash, created_by, created_at, revoked_at)              VALUES ($1, $2, 'api', 'cli', $3, 'cli', $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(api)
        .bind(hash)
        .bind(created_at)
        .bind(revoked_at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            control::bump_access(&mut tx, api, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Revokes a token; false if it was revoked already. Revoking an API token changes who may
    /// read the API.
    pub async fn revoke_token(&self, id: &str) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let revoked = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING api, kind",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = revoked else {
            return Ok(false);
        };
        let (api, kind): (Option<String>, String) = (row.try_get("api")?, row.try_get("kind")?);
        if let (Some(api), "api") = (api, kind.as_str()) {
            control::bump_access(&mut tx, &api, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// SHA-256 hashes of an API's live tokens, sorted.
    pub async fn api_token_hashes(&self, api: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT hash FROM tokens WHERE api = $1 AND kind = 'api' AND revoked_at IS NULL ORDER BY hash")
            .bind(api)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("hash")?)).collect()
    }

    /// The live analyst token with this hash, with the hash as stored.
    pub async fn analyst_by_hash(&self, hash: &str) -> Result<Option<(TokenRow, String)>> {
        let row = sqlx::query(
            "SELECT * FROM tokens WHERE hash = $1 AND kind = 'analyst' AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((token_row(&r)?, r.try_get("hash")?)))
            .transpose()
    }
}
