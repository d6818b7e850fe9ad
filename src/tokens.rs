//! API access tokens kept by the CLI in the state directory: only SHA-256 hashes are stored,
//! and the hashes of live tokens are what edges receive. A token is shown once, at creation.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub sha256: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

pub struct TokenStore {
    dir: PathBuf,
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl TokenStore {
    pub fn new(dir: PathBuf) -> Self {
        TokenStore { dir }
    }

    fn file(&self, api: &str) -> Result<PathBuf> {
        if !publisher::spec::is_api_name(api) {
            bail!("{api:?} is not an API name");
        }
        Ok(self.dir.join(format!("{api}.json")))
    }

    pub fn list(&self, api: &str) -> Result<Vec<TokenRecord>> {
        let path = self.file(api)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn save(&self, api: &str, records: &[TokenRecord]) -> Result<()> {
        let path = self.file(api)?;
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(records)?)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// Creates a token; returns its record and the secret, which is not stored.
    pub fn create(&self, api: &str) -> Result<(TokenRecord, String)> {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!("tc_{}", hex::encode(secret));
        let record = TokenRecord {
            id: hex::encode(&secret[..4]),
            sha256: hash(&token),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            revoked_at: None,
        };
        let mut records = self.list(api)?;
        records.push(record.clone());
        self.save(api, &records)?;
        Ok((record, token))
    }

    pub fn revoke(&self, api: &str, id: &str) -> Result<()> {
        let mut records = self.list(api)?;
        let record = records
            .iter_mut()
            .find(|r| r.id == id)
            .with_context(|| format!("no token {id} for API {api}"))?;
        record.revoked_at =
            Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        self.save(api, &records)
    }

    pub fn active_hashes(&self, api: &str) -> Result<Vec<String>> {
        Ok(self
            .list(api)?
            .into_iter()
            .filter(|r| r.revoked_at.is_none())
            .map(|r| r.sha256)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_only_hashes_and_revokes() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path().to_path_buf());
        let (record, token) = store.create("demo").unwrap();
        assert!(token.starts_with("tc_") && token.len() == 67);
        let text = std::fs::read_to_string(dir.path().join("demo.json")).unwrap();
        assert!(!text.contains(&token) && text.contains(&hash(&token)));
        assert_eq!(
            store.active_hashes("demo").unwrap(),
            vec![record.sha256.clone()]
        );
        store.revoke("demo", &record.id).unwrap();
        assert!(store.active_hashes("demo").unwrap().is_empty());
        assert!(store.create("../x").is_err());
    }
}
