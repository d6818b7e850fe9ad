//! One typed configuration for every command: `tablecast.toml` (or `--config FILE`), then
//! `TABLECAST_*` environment overrides, layered as [`edge_contract::settings`] says.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use edge_contract::settings::{Layered, LogConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Snapshots, tokens, the dashboard database and fallback staging live here.
    pub state_dir: PathBuf,
    /// The default catalog, when a command is given no `--metastore`.
    pub metastore: Option<String>,
    /// The default edges, when a command is given no `--edge`.
    pub edges: Vec<String>,
    pub catalog: publisher::catalog::CatalogConfig,
    pub guards: publisher::guards::GuardLimits,
    pub publish: publisher::publish::PublishConfig,
    /// The Spark fallback (spark-submit or Oozie).
    pub fallback: fallback::SparkConfig,
    /// How commands and the dashboard talk to edge Redis servers (timeouts, GC, pipelines).
    pub edge: edge_cache::EdgeConfig,
    /// The lookup service an edge node runs (`tablecast edge serve`).
    pub lookup: edge_cache::LookupConfig,
    /// The analysts' dashboard and job runner (`tablecast serve`).
    pub dashboard: dashboard_api::ServerConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        Config {
            state_dir: home.join(".local/state/tablecast"),
            metastore: None,
            edges: Vec::new(),
            catalog: Default::default(),
            guards: Default::default(),
            publish: Default::default(),
            fallback: Default::default(),
            edge: Default::default(),
            lookup: Default::default(),
            dashboard: Default::default(),
            log: Default::default(),
        }
    }
}

impl Config {
    /// Loads `path` if given, else `./tablecast.toml` if present, else defaults; then applies
    /// the environment.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with(path, &env)
    }

    fn load_with(path: Option<&Path>, env: &[(String, String)]) -> Result<Config> {
        let layered = Layered::load(path, env)?;
        let staging_given = layered
            .table
            .get("fallback")
            .and_then(|f| f.get("staging_dir"))
            .is_some();
        let mut config: Config = toml::Value::Table(layered.table.clone())
            .try_into()
            .with_context(|| layered.origin())?;
        // The documented short name for the dashboard's admin token.
        if let Some((_, token)) = env.iter().find(|(k, _)| k == "TABLECAST_ADMIN_TOKEN") {
            config.dashboard.admin_token = Some(token.clone());
        }
        // Fallback staging belongs with the rest of the state unless placed elsewhere on purpose.
        if !staging_given {
            config.fallback.staging_dir = config.state_dir.join("fallback");
        }
        Ok(config)
    }

    pub fn tokens_dir(&self) -> PathBuf {
        self.state_dir.join("tokens")
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.state_dir.join("snapshots")
    }

    pub fn metastore<'a>(&'a self, flag: Option<&'a str>) -> Result<&'a str> {
        flag.or(self.metastore.as_deref())
            .context("no catalog: give --metastore thrift://host:port or file:///path (or `metastore` in tablecast.toml)")
    }

    pub fn edges<'a>(&'a self, flags: &'a [String]) -> Result<&'a [String]> {
        let edges = if flags.is_empty() {
            &self.edges[..]
        } else {
            flags
        };
        if edges.is_empty() {
            bail!("no edge: give --edge redis://host:port (or `edges` in tablecast.toml)");
        }
        Ok(edges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_contract::settings::apply_env;

    #[test]
    fn env_overrides_nested_fields_with_types() {
        let mut t: toml::Table = "[guards]\nmax_rows = 5\n".parse().unwrap();
        let env = vec![
            ("TABLECAST_GUARDS__MAX_ROWS".to_string(), "1000".to_string()),
            (
                "TABLECAST_EDGES".to_string(),
                r#"["redis://127.0.0.1:1"]"#.to_string(),
            ),
            ("TABLECAST_STATE_DIR".to_string(), "/tmp/x y".to_string()),
            ("TABLECAST_TEST_HDFS".to_string(), "ignored".to_string()),
            ("OTHER".to_string(), "ignored".to_string()),
        ];
        apply_env(&mut t, &env).unwrap();
        let c: Config = toml::Value::Table(t).try_into().unwrap();
        assert_eq!(c.guards.max_rows, 1000);
        assert_eq!(c.edges, vec!["redis://127.0.0.1:1"]);
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x y"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let mut t = toml::Table::new();
        apply_env(&mut t, &[("TABLECAST_GUARDS__MAX_ROWZ".into(), "1".into())]).unwrap();
        let err = toml::Value::Table(t)
            .try_into::<Config>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_rowz"), "{err}");
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../tablecast.example.toml");
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c.publish.keep_versions, 2);
        // The example spells out the defaults.
        assert_eq!(c.edge, edge_cache::EdgeConfig::default());
        assert_eq!(c.guards, publisher::guards::GuardLimits::default());
        assert_eq!(c.dashboard.ceilings, Default::default());
        assert_eq!(c.dashboard.limits, http_serve::HttpLimits::default());
        assert_eq!(c.lookup.limits, http_serve::HttpLimits::default());
    }

    #[test]
    fn fallback_staging_lives_in_the_state_dir_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tablecast.toml");
        std::fs::write(&file, "state_dir = \"/srv/tc\"\n").unwrap();
        let c = Config::load_with(Some(&file), &[]).unwrap();
        assert_eq!(c.fallback.staging_dir, PathBuf::from("/srv/tc/fallback"));
        let env = [(
            "TABLECAST_FALLBACK__STAGING_DIR".to_string(),
            "/scratch/spark".to_string(),
        )];
        let c = Config::load_with(Some(&file), &env).unwrap();
        assert_eq!(c.fallback.staging_dir, PathBuf::from("/scratch/spark"));
    }
}
