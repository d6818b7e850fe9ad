//! Browsing: catalogs → databases → tables → one table (schema, statistics, partitions, files,
//! bytes and a bounded preview).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use publisher::catalog::Catalog;
use publisher::schema::TableName;
use serde::Serialize;

use crate::AppState;
use crate::config::NamedCatalog;
use crate::error::{Error, Result};
use crate::preview::{Preview, preview};

/// Opens a configured catalog by name.
pub(crate) async fn open_catalog(state: &AppState, name: &str) -> Result<Arc<dyn Catalog>> {
    let entry = state
        .config
        .catalog(name)
        .ok_or_else(|| Error::not_found("catalog", name))?;
    Ok(state.stack.catalog(&entry.uri).await?)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ColumnInfo {
    pub name: String,
    /// The type as the catalog spells it (`bigint`, `decimal(12,2)`).
    #[serde(rename = "type")]
    pub hive_type: String,
    /// Whether Tablecast can serve the column (scalar types only).
    pub scalar: bool,
    pub partition_key: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartitionInfo {
    pub values: Vec<String>,
    pub location: String,
    pub rows: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TableStatsView {
    pub rows: Option<u64>,
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    /// `catalog` (statistics as recorded), `listing` (files listed now) or `unknown`.
    pub source: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TableDetail {
    pub catalog: String,
    /// `db.table`.
    pub name: String,
    pub location: String,
    pub format: String,
    /// Data columns then partition keys.
    pub columns: Vec<ColumnInfo>,
    pub partition_keys: Vec<String>,
    pub partition_count: usize,
    /// The first 100 partitions.
    pub partitions: Vec<PartitionInfo>,
    pub stats: TableStatsView,
    pub parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<Preview>,
    /// Why there is no preview, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TableEntry {
    pub name: String,
    /// `db.table`, as an API spec names it.
    pub table: String,
}

/// The catalogs the dashboard browses.
#[utoipa::path(get, path = "/api/catalogs", tag = "catalogs", security(("bearer" = [])),
    responses((status = 200, body = [NamedCatalog])))]
pub async fn list_catalogs(State(state): State<AppState>) -> Json<Vec<NamedCatalog>> {
    Json(state.config.catalogs.clone())
}

/// The databases of a catalog.
#[utoipa::path(get, path = "/api/catalogs/{catalog}/databases", tag = "catalogs", security(("bearer" = [])),
    params(("catalog" = String, Path, description = "Catalog name")),
    responses((status = 200, body = [String]), (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn list_databases(
    State(state): State<AppState>,
    Path(catalog): Path<String>,
) -> Result<Json<Vec<String>>> {
    Ok(Json(
        open_catalog(&state, &catalog).await?.databases().await?,
    ))
}

/// The tables of a database.
#[utoipa::path(get, path = "/api/catalogs/{catalog}/databases/{db}/tables", tag = "catalogs", security(("bearer" = [])),
    params(("catalog" = String, Path, description = "Catalog name"), ("db" = String, Path, description = "Database")),
    responses((status = 200, body = [TableEntry]), (status = 404, body = crate::error::ErrorBody)))]
pub async fn list_tables(
    State(state): State<AppState>,
    Path((catalog, db)): Path<(String, String)>,
) -> Result<Json<Vec<TableEntry>>> {
    let tables = open_catalog(&state, &catalog).await?.tables(&db).await?;
    Ok(Json(
        tables
            .into_iter()
            .map(|t| TableEntry {
                table: format!("{db}.{t}"),
                name: t,
            })
            .collect(),
    ))
}

/// One table: schema, statistics, partitions, files and bytes, and a preview of its first rows
/// (`?preview=N`, at most the configured `preview_rows`; `0` for none).
#[utoipa::path(get, path = "/api/catalogs/{catalog}/tables/{table}", tag = "catalogs", security(("bearer" = [])),
    params(("catalog" = String, Path, description = "Catalog name"), ("table" = String, Path, description = "`db.table`"),
        ("preview" = Option<usize>, Query, description = "Rows to preview")),
    responses((status = 200, body = TableDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn describe_table(
    State(state): State<AppState>,
    Path((catalog, table)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TableDetail>> {
    let name: TableName = table.parse()?;
    let cat = open_catalog(&state, &catalog).await?;
    let meta = cat.table(&name).await?;
    let limit = match query.get("preview") {
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| Error::invalid("preview", format!("{n:?} is not a row count")))?,
        None => state.config.preview_rows,
    }
    .min(state.config.preview_rows);

    let mut stats = TableStatsView {
        rows: meta.stats.num_rows,
        files: meta.stats.num_files,
        bytes: meta.stats.total_size,
        source: if meta.stats.num_rows.is_some() || meta.stats.num_files.is_some() {
            "catalog"
        } else {
            "unknown"
        }
        .into(),
    };
    // Without recorded file statistics, list the files when that is cheap.
    if (stats.files.is_none() || stats.bytes.is_none()) && meta.partitions.len() <= 100 {
        let (files, _) = publisher::files::list_table(&meta, |_| true).await?;
        stats.files = Some(files.len() as u64);
        stats.bytes = Some(files.iter().map(|f| f.size).sum());
        stats.source = "listing".into();
    }

    let (preview, preview_error) = if limit == 0 {
        (None, None)
    } else {
        match preview(&meta, limit).await {
            Ok(Some(p)) => (Some(p), None),
            Ok(None) => (None, Some("the table has no data files".to_string())),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let columns = meta
        .all_columns()
        .map(|c| ColumnInfo {
            name: c.name.clone(),
            hive_type: c.hive_type.clone(),
            scalar: c.is_scalar(),
            partition_key: meta.is_partition_key(&c.name),
        })
        .collect();
    Ok(Json(TableDetail {
        catalog,
        name: meta.name.to_string(),
        location: meta.location.clone(),
        format: meta.format.label().to_string(),
        columns,
        partition_keys: meta.partition_keys.iter().map(|k| k.name.clone()).collect(),
        partition_count: meta.partitions.len(),
        partitions: meta
            .partitions
            .iter()
            .take(100)
            .map(|p| PartitionInfo {
                values: p.values.clone(),
                location: p.location.clone(),
                rows: p.num_rows,
            })
            .collect(),
        stats,
        parameters: meta.parameters.clone(),
        preview,
        preview_error,
    }))
}
