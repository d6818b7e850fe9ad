//! How old the data behind a version is: its *data time*, the newest date-like value of the
//! first partition key among the partitions read (`dt=2026-11-02` → `2026-11-02T00:00:00Z`), or,
//! for a table partitioned otherwise or not at all, when the catalog last saw the table change
//! (Hive's `transient_lastDdlTime`). Lookups return it (`x-tablecast-data-time`) and lookup
//! services export its age.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::catalog::TableMeta;
use crate::files::DataFile;

/// The data time of a version computed from `files` of `table`, as RFC 3339 UTC.
pub fn data_time(table: &TableMeta, files: &[DataFile]) -> Option<String> {
    let newest_partition = files
        .iter()
        .filter_map(|f| f.partition_values.first())
        .filter_map(|v| parse_date_like(v))
        .max();
    let changed = || {
        table
            .parameters
            .get("transient_lastDdlTime")
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
    };
    newest_partition
        .or_else(changed)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// `2026-11-02`, `20261102`, `2026-11-02 13:00:00` or `2026-11-02T13:00:00` (as UTC).
fn parse_date_like(value: &str) -> Option<DateTime<Utc>> {
    let v = value.trim();
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d-%H"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, format) {
            return Some(t.and_utc());
        }
    }
    ["%Y-%m-%d", "%Y%m%d"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(v, f).ok())
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(values: &[&str]) -> DataFile {
        DataFile {
            url: "file:///t/x.parquet".into(),
            size: 1,
            partition_values: values.iter().map(|v| v.to_string()).collect(),
            modified_ms: None,
        }
    }

    fn table(parameters: &[(&str, &str)]) -> TableMeta {
        TableMeta {
            name: crate::schema::TableName {
                db: "social".into(),
                table: "referrals".into(),
            },
            location: "file:///t".into(),
            format: crate::catalog::StorageFormat::Parquet,
            columns: Vec::new(),
            partition_keys: Vec::new(),
            partitions: Vec::new(),
            stats: Default::default(),
            parameters: parameters
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_newest_date_partition_read_else_the_table_change_time() {
        let t = table(&[("transient_lastDdlTime", "1764633600")]);
        let files = [
            file(&["2026-11-01"]),
            file(&["2026-11-03"]),
            file(&["2026-11-02"]),
        ];
        assert_eq!(
            data_time(&t, &files).as_deref(),
            Some("2026-11-03T00:00:00Z")
        );
        assert_eq!(
            data_time(&t, &[file(&["20261105", "fb"])]).as_deref(),
            Some("2026-11-05T00:00:00Z")
        );
        // Not a date: the table's change time.
        assert_eq!(
            data_time(&t, &[file(&["facebook"])]).as_deref(),
            Some("2025-12-02T00:00:00Z")
        );
        assert_eq!(
            data_time(&t, &[file(&[])]).as_deref(),
            Some("2025-12-02T00:00:00Z")
        );
        assert_eq!(data_time(&table(&[]), &[file(&[])]), None);
    }
}
