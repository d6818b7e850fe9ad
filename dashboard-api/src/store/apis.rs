//! The `apis` and `api_revisions` tables: API definitions and every saved revision.

use publisher::guards::LimitOverrides;

use super::*;

#[derive(Debug, Clone)]
pub struct ApiRow {
    pub name: String,
    pub spec: ApiSpec,
    pub catalog: String,
    pub owner: String,
    /// Analysts who may change it besides its owner (and the administrators).
    pub editors: Vec<String>,
    /// Ceilings an administrator granted it above the server's.
    pub ceilings: LimitOverrides,
    pub protected: bool,
    pub edge_group: String,
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ApiRow {
    /// A new API (revision 1, now) of `spec`, owned by `owner`, with no editors or grants.
    pub fn new(spec: ApiSpec, catalog: &str, owner: &str, edge_group: &str) -> ApiRow {
        let now = now_ms();
        ApiRow {
            name: spec.name.clone(),
            protected: spec.protected,
            spec,
            catalog: catalog.to_string(),
            owner: owner.to_string(),
            editors: Vec::new(),
            ceilings: Default::default(),
            edge_group: edge_group.to_string(),
            revision: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A new revision of an API's definition, with who may change it and its ceiling grants.
#[derive(Debug, Clone, Copy)]
pub struct ApiUpdate<'a> {
    pub spec: &'a ApiSpec,
    pub catalog: &'a str,
    pub edge_group: &'a str,
    pub editors: &'a [String],
    pub ceilings: &'a LimitOverrides,
}

#[derive(Debug, Clone)]
pub struct RevisionRow {
    pub revision: i64,
    pub spec: ApiSpec,
    pub author: String,
    pub at: i64,
}

pub(super) fn api_row(row: &AnyRow) -> Result<ApiRow> {
    Ok(ApiRow {
        name: row.try_get("name")?,
        spec: json_col(row, "spec")?,
        catalog: row.try_get("catalog")?,
        owner: row.try_get("owner")?,
        editors: json_col(row, "editors")?,
        ceilings: json_col(row, "ceilings")?,
        protected: flag(row, "protected")?,
        edge_group: row.try_get("edge_group")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    // ---- APIs ----

    /// Creates an API. Refused while a deleted API of the same name is still being retired
    /// from its edges: the new one must not start where the old one's keys still live.
    pub async fn create_api(&self, api: &ApiRow) -> Result<()> {
        let mut tx = self.write().await?;
        let retiring = sqlx::query("SELECT edges FROM api_state WHERE api = $1 AND retiring")
            .bind(&api.name)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = retiring {
            let edges: String = row.try_get("edges")?;
            return Err(Error::Conflict(format!(
                "API `{}` was deleted and is still being retired from its edges ({edges}); \
                 create it again once they have dropped it (a reconcile retries)",
                api.name
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO apis (name, spec, catalog, owner, editors, ceilings, protected, edge_group, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)",
        )
        .bind(&api.name)
        .bind(to_json(&api.spec))
        .bind(&api.catalog)
        .bind(&api.owner)
        .bind(to_json(&api.editors))
        .bind(to_json(&api.ceilings))
        .bind(api.protected)
        .bind(&api.edge_group)
        .bind(api.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::Conflict(format!(
                    "API `{}` already exists",
                    api.name
                )));
            }
            other => other?,
        };
        sqlx::query("DELETE FROM api_revisions WHERE api = $1")
            .bind(&api.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_triggers WHERE api = $1")
            .bind(&api.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO api_revisions (api, revision, spec, author, at) VALUES ($1, 1, $2, $3, $4)")
            .bind(&api.name)
            .bind(to_json(&api.spec))
            .bind(&api.owner)
            .bind(api.created_at)
            .execute(&mut *tx)
            .await?;
        control::bump_access(&mut tx, &api.name, api.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a new revision of an API (with who may change it); returns it.
    pub async fn update_api(
        &self,
        name: &str,
        update: &ApiUpdate<'_>,
        author: &str,
    ) -> Result<i64> {
        let ApiUpdate {
            spec,
            catalog,
            edge_group,
            editors,
            ceilings,
        } = *update;
        let now = now_ms();
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE apis SET spec = $1, catalog = $2, protected = $3, edge_group = $4, editors = $5, \
                 ceilings = $6, revision = revision + 1, updated_at = $7 \
             WHERE name = $8 RETURNING revision",
        )
        .bind(to_json(spec))
        .bind(catalog)
        .bind(spec.protected)
        .bind(edge_group)
        .bind(to_json(&editors))
        .bind(to_json(ceilings))
        .bind(now)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("API", name))?;
        let revision: i64 = row.try_get("revision")?;
        sqlx::query("INSERT INTO api_revisions (api, revision, spec, author, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(name)
            .bind(revision)
            .bind(to_json(spec))
            .bind(author)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        control::bump_access(&mut tx, name, now).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn api(&self, name: &str) -> Result<ApiRow> {
        let row = sqlx::query("SELECT * FROM apis WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::not_found("API", name))?;
        api_row(&row)
    }

    pub async fn apis(&self) -> Result<Vec<ApiRow>> {
        let rows = sqlx::query("SELECT * FROM apis ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(api_row).collect()
    }

    pub async fn revisions(&self, name: &str) -> Result<Vec<RevisionRow>> {
        let rows = sqlx::query("SELECT revision, spec, author, at FROM api_revisions WHERE api = $1 ORDER BY revision DESC")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RevisionRow {
                    revision: r.try_get("revision")?,
                    spec: json_col(r, "spec")?,
                    author: r.try_get("author")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Deletes an API with its revisions, tokens and version history, cancels its
    /// queued jobs and records that its edges must retire it (see [`Store::retired`]). Refused
    /// while one of its jobs runs.
    pub async fn delete_api(&self, name: &str) -> Result<Vec<String>> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let deleted = sqlx::query("DELETE FROM apis WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found("API", name));
        }
        // The API's live jobs, locked on PostgreSQL: a claim (which takes no write lock) then
        // skips them, and one under way is waited for and seen running.
        let live = sqlx::query(&format!(
            "SELECT state FROM jobs WHERE api = $1 AND state IN ('queued', 'running'){}",
            self.for_update()
        ))
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        let running = live
            .iter()
            .map(|r| r.try_get::<String, _>("state"))
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .any(|s| s == "running");
        if running {
            return Err(Error::Conflict(format!(
                "a job of `{name}` is running; cancel it or wait for it to finish"
            )));
        }
        sqlx::query("DELETE FROM api_revisions WHERE api = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_triggers WHERE api = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        // Its tokens go with it: a re-created API of the same name starts with none.
        sqlx::query("DELETE FROM tokens WHERE api = $1 AND kind = 'api'")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        control::bump_access(&mut tx, name, now).await?;
        control::mark_retiring(&mut tx, name, now).await?;
        let cancelled = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE api = $2 AND state = 'queued' RETURNING id",
        )
        .bind(now)
        .bind(name)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<Vec<String>, _>>()?;
        tx.commit().await?;
        Ok(cancelled)
    }
}
