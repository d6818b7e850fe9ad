//! A directory of Parquet or ORC files as a catalog: `{root}/{db}/{table}/[k=v/…]*`.
//! Format, schema and row counts come from the files' footers (one format per table);
//! partitions from `k=v` folder names.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{Catalog, Partition, TableMeta, TableStats};
use crate::error::{Error, Result};
use crate::files::{self, DataFile};
use crate::schema::{Column, TableName, is_identifier};

/// A partition's values (in key order) and its folder.
type PartitionDir = (Vec<String>, PathBuf);

pub struct DirectoryCatalog {
    root: PathBuf,
    uri: String,
}

impl DirectoryCatalog {
    pub fn open(root: PathBuf) -> Result<Self> {
        let uri = url::Url::from_file_path(&root)
            .map(|u| u.to_string())
            .unwrap_or_else(|_| root.display().to_string());
        if !root.is_dir() {
            return Err(Error::Catalog {
                uri,
                message: format!("{} is not a directory", root.display()),
            });
        }
        Ok(DirectoryCatalog { root, uri })
    }

    /// Sub-folders whose names are identifiers: databases, tables. Anything else (hidden
    /// folders, `..`) is not part of the catalog, which also keeps lookups inside the root.
    fn folders(dir: &Path) -> Result<Vec<String>> {
        let read = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let mut names: Vec<String> = read
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_identifier(n))
            .map(|n| n.to_ascii_lowercase())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Partition folders: every level below the table is `key=value`.
    fn partitions(table_dir: &Path) -> Result<(Vec<String>, Vec<PartitionDir>)> {
        let mut keys = Vec::new();
        let mut level = vec![(Vec::<String>::new(), table_dir.to_path_buf())];
        loop {
            let mut next = Vec::new();
            let mut key_here: Option<String> = None;
            for (values, dir) in &level {
                let Ok(read) = std::fs::read_dir(dir) else {
                    continue;
                };
                for e in read.filter_map(|e| e.ok()) {
                    if !e.file_type().is_ok_and(|t| t.is_dir()) {
                        continue;
                    }
                    let name = e.file_name().to_string_lossy().to_string();
                    let Some((k, v)) = name.split_once('=') else {
                        continue;
                    };
                    if !is_identifier(k) {
                        continue;
                    }
                    key_here.get_or_insert_with(|| k.to_ascii_lowercase());
                    let mut vs = values.clone();
                    vs.push(
                        percent_encoding::percent_decode_str(v)
                            .decode_utf8_lossy()
                            .to_string(),
                    );
                    next.push((vs, e.path()));
                }
            }
            match key_here {
                Some(k) => {
                    keys.push(k);
                    next.sort();
                    level = next;
                }
                None => break,
            }
        }
        if keys.is_empty() {
            level.clear();
        }
        Ok((keys, level))
    }
}

/// The table parameter holding a digest of every file's URL, size and modification time.
pub const LISTING_PARAMETER: &str = "tablecast.listing";

#[async_trait]
impl Catalog for DirectoryCatalog {
    fn uri(&self) -> &str {
        &self.uri
    }

    async fn databases(&self) -> Result<Vec<String>> {
        Self::folders(&self.root)
    }

    async fn tables(&self, db: &str) -> Result<Vec<String>> {
        if !is_identifier(db) || !self.root.join(db).is_dir() {
            return Err(Error::DatabaseNotFound(db.into(), self.uri.clone()));
        }
        Self::folders(&self.root.join(db))
    }

    async fn table(&self, name: &TableName) -> Result<TableMeta> {
        // Names become folder names here: only identifiers, never `..` or a separator, whoever
        // built the name.
        if !is_identifier(&name.db) || !is_identifier(&name.table) {
            return Err(Error::BadTableName(name.to_string()));
        }
        if !self.root.join(&name.db).is_dir() {
            return Err(Error::DatabaseNotFound(name.db.clone(), self.uri.clone()));
        }
        let dir = self.root.join(&name.db).join(&name.table);
        if !dir.is_dir() {
            return Err(Error::TableNotFound(name.to_string(), self.uri.clone()));
        }
        let location = url::Url::from_file_path(&dir)
            .map_err(|_| Error::Catalog {
                uri: self.uri.clone(),
                message: format!("bad path {}", dir.display()),
            })?
            .to_string();
        let (keys, parts) = Self::partitions(&dir)?;
        let partitions: Vec<Partition> = parts
            .into_iter()
            .map(|(values, path)| Partition {
                values,
                location: url::Url::from_file_path(&path)
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                num_rows: None,
            })
            .collect();

        let mut all: Vec<DataFile> = Vec::new();
        if keys.is_empty() {
            all = files::list(&location, &[]).await?;
        } else {
            for p in &partitions {
                all.extend(files::list(&p.location, &p.values).await?);
            }
        }
        let first = all.first().ok_or_else(|| Error::Catalog {
            uri: self.uri.clone(),
            message: format!("table {name} has no data files under {location}"),
        })?;
        let footer = files::read_footer(first).await?;
        let (rows, _) = files::footer_totals(&all).await?;
        let columns: Vec<Column> = footer
            .schema
            .fields()
            .iter()
            .filter(|f| !keys.iter().any(|k| k.eq_ignore_ascii_case(f.name())))
            .map(|f| Column::from_arrow(f))
            .collect();
        // Partition values live in paths: Hive types them as strings unless told otherwise.
        let partition_keys = keys
            .iter()
            .map(|k| Column::from_hive(k, "string"))
            .collect();
        Ok(TableMeta {
            name: name.clone(),
            location,
            format: footer.format,
            columns,
            partition_keys,
            partitions,
            stats: TableStats {
                num_rows: Some(rows),
                total_size: Some(all.iter().map(|f| f.size).sum()),
                num_files: Some(all.len() as u64),
            },
            // A directory has no change time of its own: the listing stands for it, so that a
            // file rewritten in place changes the table's signature.
            parameters: [(
                LISTING_PARAMETER.to_string(),
                crate::fingerprint::listing(&all),
            )]
            .into(),
        })
    }
}

#[cfg(test)]
mod traversal_tests {
    use super::*;

    #[tokio::test]
    async fn names_that_would_leave_the_root_are_refused() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("warehouse");
        std::fs::create_dir_all(root.join("db/t")).unwrap();
        // A table outside the root that `..` would reach.
        std::fs::create_dir_all(outer.path().join("secret/t")).unwrap();
        let catalog = DirectoryCatalog::open(root).unwrap();
        for (db, table) in [
            ("..", "secret"),
            ("db", ".."),
            ("../secret", "t"),
            ("db", "t/.."),
        ] {
            let err = catalog.table(&TableName::new(db, table)).await.unwrap_err();
            assert!(matches!(err, Error::BadTableName(_)), "{db}.{table}: {err}");
        }
        assert!(catalog.tables("..").await.is_err());
    }
}
