//! How fresh each API's serving data is: its data time (the newest partition it read, else
//! when its table last changed; see `publisher::freshness`), when it was published, its age and
//! whether that breaks the API's objective (`refresh.freshness_objective_h`). Shown on API pages
//! and lists, and exported as `tablecast_api_data_age_seconds` and `tablecast_api_stale`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::store::{ApiRow, Store, VersionRow};

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Freshness {
    /// The serving version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The newest data it holds (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_time: Option<String>,
    /// When it was committed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    /// Seconds since the data time (since publishing when the data time is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objective_h: Option<f64>,
    /// The age is past the objective (or nothing serves while one is set).
    pub stale: bool,
}

impl Freshness {
    pub fn of(api: &ApiRow, serving: Option<&VersionRow>, now: DateTime<Utc>) -> Freshness {
        let objective_h = api.spec.refresh.freshness_objective_h;
        let Some(v) = serving else {
            return Freshness {
                objective_h,
                stale: objective_h.is_some(),
                ..Default::default()
            };
        };
        let parse = |s: &Option<String>| {
            s.as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let age_s = parse(&v.data_time)
            .or_else(|| parse(&v.committed_at))
            .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        Freshness {
            version: Some(v.version),
            data_time: v.data_time.clone(),
            published_at: v.committed_at.clone(),
            age_s,
            objective_h,
            stale: age_s.is_some_and(|a| api.spec.refresh.is_stale(a)),
        }
    }

    /// Every API's freshness, by name.
    pub async fn of_all(store: &Store, now: DateTime<Utc>) -> Result<Vec<(String, Freshness)>> {
        let serving = store.serving_versions().await?;
        Ok(store
            .apis()
            .await?
            .into_iter()
            .map(|api| {
                let v = serving.iter().find(|(a, _)| *a == api.name).map(|(_, v)| v);
                let f = Freshness::of(&api, v, now);
                (api.name, f)
            })
            .collect())
    }
}
