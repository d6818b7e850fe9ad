//! How every Tablecast binary reads its configuration: one TOML file (`--config FILE`, else
//! `TABLECAST_CONFIG`, else `./tablecast.toml` if present), then `TABLECAST_*` environment
//! overrides. `TABLECAST_GUARDS__MAX_ROWS=1000` sets `[guards] max_rows = 1000`: the name after
//! the prefix is the path, `__` between levels. It lives here so that `tablecast` and the
//! stand-alone lookup service read the same file the same way; each deserializes the sections
//! it owns into its own typed struct.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Variables with the prefix that are not configuration (used by scripts and tests).
const NOT_CONFIG: &[&str] = &[
    "CONFIG",
    "BIN",
    "VENV",
    "ROOT",
    "CACHE",
    "ADMIN_TOKEN",
    "TOKEN",
];

/// The `[log]` section, the same for every binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for machines.
    pub format: String,
    /// A `tracing` filter, e.g. `info,tablecast=debug`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing config {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{variable}: `{section}` is not a section")]
    NotASection { variable: String, section: String },
}

/// The configuration as read, before it is typed.
pub struct Layered {
    /// The file read, if any (for error messages).
    pub file: Option<PathBuf>,
    /// Its contents with the environment applied.
    pub table: toml::Table,
}

impl Layered {
    /// Reads the file (see the module) and applies `env` over it.
    pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<Layered, SettingsError> {
        let explicit = path.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, _)| k == "TABLECAST_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        let file =
            explicit.or_else(|| Some(PathBuf::from("tablecast.toml")).filter(|p| p.exists()));
        let mut table = match &file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|source| SettingsError::Read {
                    path: path.clone(),
                    source,
                })?
                .parse::<toml::Table>()
                .map_err(|source| SettingsError::Parse {
                    path: path.clone(),
                    source,
                })?,
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        Ok(Layered { file, table })
    }

    /// What the values came from, for the message of a typing error.
    pub fn origin(&self) -> String {
        format!(
            "config {} (with TABLECAST_* overrides)",
            self.file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "defaults".into())
        )
    }
}

/// Sets each `TABLECAST_A__B=v` as `[a] b = v`, creating sections as needed.
pub fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), SettingsError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("TABLECAST_") else {
            continue;
        };
        if rest.is_empty() || NOT_CONFIG.contains(&rest) || rest.starts_with("TEST_") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let (last, parents) = path.split_last().expect("split yields at least one part");
        let mut node = &mut *table;
        for p in parents {
            let entry = node
                .entry(p.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(SettingsError::NotASection {
                        variable: name.clone(),
                        section: p.clone(),
                    });
                }
            };
        }
        node.insert(last.clone(), env_value(value));
    }
    Ok(())
}

/// `1000` is an integer, `true` a boolean, `["a","b"]` an array; anything else a string.
fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_are_typed_and_nested_and_other_variables_ignored() {
        let mut t: toml::Table = "[guards]\nmax_rows = 5\n".parse().unwrap();
        apply_env(
            &mut t,
            &env(&[
                ("TABLECAST_GUARDS__MAX_ROWS", "1000"),
                ("TABLECAST_EDGES", r#"["redis://127.0.0.1:1"]"#),
                ("TABLECAST_STATE_DIR", "/tmp/x y"),
                ("TABLECAST_TEST_HDFS", "ignored"),
                ("TABLECAST_ADMIN_TOKEN", "ignored"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        let expected: toml::Table = r#"
            edges = ["redis://127.0.0.1:1"]
            state_dir = "/tmp/x y"
            [guards]
            max_rows = 1000
        "#
        .parse()
        .unwrap();
        assert_eq!(t, expected);
    }

    #[test]
    fn a_value_where_a_section_is_needed_names_the_variable() {
        let mut t: toml::Table = "lookup = 1\n".parse().unwrap();
        let err = apply_env(&mut t, &env(&[("TABLECAST_LOOKUP__LISTEN", "x")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TABLECAST_LOOKUP__LISTEN: `lookup` is not a section"
        );
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = Layered::load(Some(Path::new("/nonexistent/t.toml")), &[])
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/t.toml"), "{err}");
    }
}
