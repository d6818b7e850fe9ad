//! The dashboard's configuration (the `[dashboard]` section of `tablecast.toml` in the binary).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One catalog the dashboard browses and publishes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedCatalog {
    /// Short name used in URLs (`/api/catalogs/{name}/…`) and stored with each API.
    pub name: String,
    /// `thrift://host:port` (Hive metastore) or `file:///path` (directory catalog).
    pub uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server binds, `host:port`.
    pub listen: String,
    /// Where the default database lives.
    pub state_dir: PathBuf,
    /// `sqlite://path/to/file.db` (default `sqlite://{state_dir}/dashboard.db`: one instance), or
    /// `postgres://user:password@host:port/db` for several `tablecast serve` instances sharing
    /// the work (they must then share `state_dir` too, where version snapshots are kept).
    pub database_url: Option<String>,
    /// The administrator's bearer token (the binary sets it from `TABLECAST_ADMIN_TOKEN`).
    /// Required: the server refuses to start without one.
    pub admin_token: Option<String>,
    /// Jobs run in parallel (for different APIs; one job per API at a time).
    pub runners: usize,
    /// How long a runner's claim on a job lasts without renewal; renewed every third of it.
    pub lease_ms: u64,
    /// Attempts of a job before a transient failure becomes final.
    pub max_attempts: u32,
    /// Retry delay after the first failed attempt; doubles each attempt up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// How often an idle runner looks for due jobs (it is also woken when a job is queued).
    pub poll_ms: u64,
    /// On shutdown, how long running jobs may take to finish before they are abandoned
    /// (re-queued, to be re-run from the start by the next runner).
    pub shutdown_grace_ms: u64,
    /// Catalogs to browse; the first is the default for new APIs.
    pub catalogs: Vec<NamedCatalog>,
    /// Named groups of edge Redis URLs; an API publishes to every edge of its group.
    pub edge_groups: BTreeMap<String, Vec<String>>,
    /// Edge group → base URL of a lookup service serving it (for "try it" links).
    pub lookup_base_urls: BTreeMap<String, String>,
    /// Most rows a table preview shows.
    pub preview_rows: usize,
    /// How often `tablecast serve` converges every API's edges to the store (0: never).
    pub reconcile_ms: u64,
    /// How long the coordinator role (triggers and the reconcile loop, which one instance of a
    /// cluster runs) lasts without renewal: when its instance dies, another takes it after this.
    pub coordinator_ttl_ms: u64,
    /// The most a spec's `limits` may ask for (`[dashboard.ceilings]`, one key per guard
    /// limit); an administrator may grant one API more (`ceilings` on the API).
    pub ceilings: publisher::guards::Ceilings,
    /// Header-read and idle timeouts, connection and in-flight caps (`[dashboard.limits]`).
    pub limits: http_serve::HttpLimits,
    /// The largest request body (a spec, a token request) the API reads.
    pub max_body_bytes: usize,
    /// Table watching and schedules (`[dashboard.triggers]`).
    pub triggers: crate::triggers::TriggerConfig,
    /// Scraping the lookup services for the traffic charts (`[dashboard.traffic]`).
    pub traffic: crate::traffic::TrafficConfig,
}

pub const DEFAULT_EDGE_GROUP: &str = "default";

impl Default for ServerConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            state_dir: home.join(".local/state/tablecast"),
            database_url: None,
            admin_token: None,
            runners: 2,
            lease_ms: 30_000,
            max_attempts: 5,
            backoff_base_ms: 2_000,
            backoff_max_ms: 300_000,
            poll_ms: 1_000,
            shutdown_grace_ms: 30_000,
            catalogs: Vec::new(),
            edge_groups: BTreeMap::from([(DEFAULT_EDGE_GROUP.to_string(), Vec::new())]),
            lookup_base_urls: BTreeMap::new(),
            preview_rows: 20,
            reconcile_ms: 5_000,
            coordinator_ttl_ms: 10_000,
            ceilings: Default::default(),
            limits: Default::default(),
            max_body_bytes: 1 << 20,
            triggers: Default::default(),
            traffic: Default::default(),
        }
    }
}

impl ServerConfig {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.state_dir.join("dashboard.db").display()),
        }
    }

    /// Where snapshots of versions are kept (the CLI's too: one state directory).
    pub fn snapshot_dir(&self) -> PathBuf {
        self.state_dir.join("snapshots")
    }

    pub fn catalog(&self, name: &str) -> Option<&NamedCatalog> {
        self.catalogs
            .iter()
            .find(|c| c.name == name || c.uri == name)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.max(30))
    }

    /// Delay before attempt `attempts + 1`, after `attempts` failed ones.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let ms = self
            .backoff_base_ms
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max_ms.max(self.backoff_base_ms));
        Duration::from_millis(ms)
    }

    /// The "try it" base of an API: `{lookup base}/v1/{api}/`.
    pub fn lookup_url(&self, edge_group: &str, api: &str) -> Option<String> {
        self.lookup_base_urls
            .get(edge_group)
            .map(|base| format!("{}/v1/{api}/", base.trim_end_matches('/')))
    }

    /// Checks what can be wrong before the server starts.
    pub fn check(&self) -> Result<(), String> {
        match &self.admin_token {
            None => return Err("admin_token is not set (TABLECAST_ADMIN_TOKEN)".into()),
            Some(t) if t.len() < 16 => {
                return Err("admin_token must be at least 16 characters".into());
            }
            Some(_) => {}
        }
        if self.runners > 64 {
            return Err(format!("runners = {} is more than 64", self.runners));
        }
        if self.coordinator_ttl_ms < 300 {
            return Err(format!(
                "coordinator_ttl_ms = {} is under 300: the role would lapse between renewals",
                self.coordinator_ttl_ms
            ));
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.catalogs {
            if !publisher::spec::is_api_name(&c.name) {
                return Err(format!(
                    "catalog name {:?} must be 1 to 64 characters of A-Z a-z 0-9 _ -",
                    c.name
                ));
            }
            if !seen.insert(&c.name) {
                return Err(format!("catalog `{}` is listed twice", c.name));
            }
            if !(c.uri.starts_with("thrift://") || c.uri.starts_with("file:")) {
                return Err(format!(
                    "catalog `{}`: {:?} is not thrift://host:port or file:///path",
                    c.name, c.uri
                ));
            }
        }
        for group in self.lookup_base_urls.keys() {
            if !self.edge_groups.contains_key(group) {
                return Err(format!(
                    "lookup_base_urls names edge group `{group}`, which edge_groups does not define"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = ServerConfig {
            backoff_base_ms: 100,
            backoff_max_ms: 1000,
            ..Default::default()
        };
        let ms: Vec<u128> = (1..=6).map(|a| c.backoff(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn parses_with_defaults_and_refuses_unknown_fields() {
        let c: ServerConfig =
            serde_json::from_str(r#"{"runners": 3, "edge_groups": {"eu": ["redis://a"]}}"#)
                .unwrap();
        assert_eq!(c.runners, 3);
        assert_eq!(c.preview_rows, 20);
        assert!(serde_json::from_str::<ServerConfig>(r#"{"runner": 3}"#).is_err());
    }
}
