//! API read tokens from the CLI's side. Tokens live in the control plane's store (hashes only,
//! shared with the dashboard); a token is shown once, at creation. Earlier CLIs kept them in
//! JSON files under `{state_dir}/tokens`: those are imported into the store once, then removed.

use std::path::Path;

use anyhow::{Context, Result};
use dashboard_api::store::Store;
use serde::Deserialize;

/// A token as earlier CLIs kept it (`{state_dir}/tokens/{api}.json`, a list of these).
#[derive(Debug, Deserialize)]
struct LegacyToken {
    id: String,
    sha256: String,
    created_at: String,
    #[serde(default)]
    revoked_at: Option<String>,
}

fn millis(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| dashboard_api::store::now_ms())
}

/// Moves the token files of earlier CLIs into the store (idempotent: a hash already there is
/// skipped) and removes each file once its tokens are in.
pub async fn import_legacy(store: &Store, dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(api) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|a| publisher::spec::is_api_name(a))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let tokens: Vec<LegacyToken> = serde_json::from_str(&text)
            .with_context(|| format!("reading {} (a CLI token file)", path.display()))?;
        for t in &tokens {
            store
                .import_api_token(
                    api,
                    &format!("tok_cli_{}", t.id),
                    &t.sha256,
                    millis(&t.created_at),
                    t.revoked_at.as_deref().map(millis),
                )
                .await?;
        }
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        tracing::info!(api, tokens = tokens.len(), file = %path.display(), "imported the CLI's token file into the control-plane store");
    }
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn legacy_token_files_are_imported_once_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let live = "a".repeat(64);
        let revoked = "b".repeat(64);
        std::fs::write(
            tokens.join("demo.json"),
            format!(
                r#"[{{"id":"0001","sha256":"{live}","created_at":"2026-11-01T00:00:00Z"}},
                    {{"id":"0002","sha256":"{revoked}","created_at":"2026-11-01T00:00:00Z","revoked_at":"2026-11-02T00:00:00Z"}}]"#
            ),
        )
        .unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let store = Store::open(&url).await.unwrap();
        import_legacy(&store, &tokens).await.unwrap();
        assert!(
            !tokens.exists(),
            "the token files are gone after the import"
        );
        let access = store.access("demo").await.unwrap();
        assert!(
            access.protected,
            "tokens made by the CLI protected their API"
        );
        assert_eq!(access.token_hashes, vec![live]);
        // A second run finds nothing to import and changes nothing.
        import_legacy(&store, &tokens).await.unwrap();
        assert_eq!(store.access("demo").await.unwrap(), access);
    }
}
