//! Hive metastore over Thrift (being written).
use async_trait::async_trait;

use super::{Catalog, CatalogConfig, TableMeta};
use crate::error::{Error, Result};
use crate::schema::TableName;

pub struct HiveCatalog {
    uri: String,
}

impl HiveCatalog {
    pub async fn connect(address: &str, _config: &CatalogConfig) -> Result<Self> {
        Ok(HiveCatalog { uri: format!("thrift://{address}") })
    }
}

#[async_trait]
impl Catalog for HiveCatalog {
    fn uri(&self) -> &str {
        &self.uri
    }
    async fn databases(&self) -> Result<Vec<String>> {
        Err(Error::Catalog { uri: self.uri.clone(), message: "not yet wired".into() })
    }
    async fn tables(&self, _db: &str) -> Result<Vec<String>> {
        Err(Error::Catalog { uri: self.uri.clone(), message: "not yet wired".into() })
    }
    async fn table(&self, _name: &TableName) -> Result<TableMeta> {
        Err(Error::Catalog { uri: self.uri.clone(), message: "not yet wired".into() })
    }
}
