//! How an API keeps itself fresh (the `[refresh]` section of a spec): publish when its table
//! changes, on a cron schedule, or both, and how old its data may grow before it counts as
//! stale. The spec only declares; `tablecast serve` watches tables and fires schedules.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::spec::SpecProblem;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Refresh {
    /// Publish when the source table changes (partitions added or altered, its parameters),
    /// once it has been quiet for `settle_s`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub on_table_change: bool,
    /// Seconds without a further change before a change publishes; the server's default
    /// (`[triggers] settle_ms`) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_s: Option<u64>,
    /// Publish a change only once the newest partition holds a `_SUCCESS` marker.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_success_marker: bool,
    /// A cron expression (`min hour day month weekday`, or with seconds first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The schedule's IANA time zone (`Europe/Prague`); UTC when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Hours the served data may be old (by its data time) before the API counts as stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness_objective_h: Option<f64>,
}

impl Refresh {
    pub fn is_empty(&self) -> bool {
        *self == Refresh::default()
    }

    /// Problems with the section, each tied to its field.
    pub fn check(&self) -> Vec<SpecProblem> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(SpecProblem {
                field: format!("refresh.{field}"),
                message,
            })
        };
        if let Some(s) = &self.schedule
            && let Err(e) = Cron::from_str(s)
        {
            problem("schedule", format!("{s:?} is not a cron expression: {e}"));
        }
        if let Some(tz) = &self.timezone {
            if tz.parse::<chrono_tz::Tz>().is_err() {
                problem(
                    "timezone",
                    format!("{tz:?} is not an IANA time zone (like Europe/Prague)"),
                );
            }
            if self.schedule.is_none() {
                problem("timezone", "a time zone needs a schedule".into());
            }
        }
        if self.require_success_marker && !self.on_table_change {
            problem(
                "require_success_marker",
                "waiting for a _SUCCESS marker needs on_table_change".into(),
            );
        }
        if let Some(h) = self.freshness_objective_h
            && (h.is_nan() || h <= 0.0)
        {
            problem(
                "freshness_objective_h",
                format!("{h} must be a number of hours above 0"),
            );
        }
        problems
    }

    /// The first firing of the schedule strictly after `after`; none without a (valid) schedule.
    pub fn next_firing(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = Cron::from_str(self.schedule.as_deref()?).ok()?;
        let tz: chrono_tz::Tz = match &self.timezone {
            Some(tz) => tz.parse().ok()?,
            None => chrono_tz::UTC,
        };
        cron.find_next_occurrence(&after.with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether data of this age breaks the objective.
    pub fn is_stale(&self, age_s: f64) -> bool {
        self.freshness_objective_h
            .is_some_and(|h| age_s > h * 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_schedule_fires_at_its_instants_in_its_time_zone() {
        let daily = Refresh {
            schedule: Some("30 4 * * *".into()),
            timezone: Some("Europe/Prague".into()),
            ..Default::default()
        };
        // 04:30 in Prague is 03:30 UTC in winter and 02:30 UTC in summer.
        assert_eq!(
            daily.next_firing(at("2026-12-04T00:00:00Z")),
            Some(at("2026-12-04T03:30:00Z"))
        );
        assert_eq!(
            daily.next_firing(at("2026-12-04T03:30:00Z")),
            Some(at("2026-12-05T03:30:00Z")),
            "strictly after: a firing instant yields the next one"
        );
        assert_eq!(
            daily.next_firing(at("2026-07-01T00:00:00Z")),
            Some(at("2026-07-01T02:30:00Z"))
        );
        let every_minute = Refresh {
            schedule: Some("* * * * *".into()),
            ..Default::default()
        };
        assert_eq!(
            every_minute.next_firing(at("2026-12-04T10:00:59Z")),
            Some(at("2026-12-04T10:01:00Z"))
        );
        assert_eq!(
            Refresh::default().next_firing(at("2026-12-04T00:00:00Z")),
            None
        );
    }

    #[test]
    fn problems_name_their_field() {
        let bad = Refresh {
            schedule: Some("every day".into()),
            timezone: Some("Mars/Olympus".into()),
            require_success_marker: true,
            freshness_objective_h: Some(0.0),
            ..Default::default()
        };
        let fields: Vec<String> = bad.check().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "refresh.schedule",
                "refresh.timezone",
                "refresh.require_success_marker",
                "refresh.freshness_objective_h"
            ]
        );
        let good = Refresh {
            on_table_change: true,
            require_success_marker: true,
            schedule: Some("0 */6 * * *".into()),
            timezone: Some("America/New_York".into()),
            freshness_objective_h: Some(26.0),
            ..Default::default()
        };
        assert!(good.check().is_empty(), "{:?}", good.check());
        assert!(good.is_stale(27.0 * 3600.0));
        assert!(!good.is_stale(25.0 * 3600.0));
    }
}
