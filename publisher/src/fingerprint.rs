//! Fingerprints of what a version was computed from, and of a table as its catalog describes it.
//!
//! The *source fingerprint* is recorded with every version: the resolved spec, the table's
//! columns and non-statistical parameters, and every file read with its size and modification
//! time. A triggered publish whose fingerprint equals the serving version's would compute the
//! same answer, so it is skipped as "unchanged".
//!
//! The *table signature* is what the table watcher compares between polls: partitions (values,
//! location, row count), statistics and every parameter, `transient_lastDdlTime` included. It
//! is cheap (one table description) and may change without the data changing; the source
//! fingerprint then keeps the resulting publish from making a new version.

use sha2::{Digest, Sha256};

use crate::catalog::TableMeta;
use crate::files::DataFile;
use crate::spec::ResolvedSpec;

/// Parameters that record *when* or *how much* rather than *what*: their changes are seen in
/// the files themselves, or not at all.
const BOOKKEEPING: &[&str] = &[
    "transient_lastDdlTime",
    "last_modified_time",
    "last_modified_by",
    "numRows",
    "numFiles",
    "totalSize",
    "rawDataSize",
    "numFilesErasureCoded",
    "COLUMN_STATS_ACCURATE",
];

/// Hex SHA-256 of what a version of `spec` reads from `table` through `files`.
pub fn source(spec: &ResolvedSpec, table: &TableMeta, files: &[DataFile]) -> String {
    let mut h = Hasher::default();
    h.field(&serde_json::to_string(spec).expect("a resolved spec serializes"));
    for c in table.all_columns() {
        h.field(&c.name);
        h.field(&c.hive_type);
    }
    for (k, v) in &table.parameters {
        if !BOOKKEEPING.contains(&k.as_str()) && !k.starts_with("spark.sql.statistics") {
            h.field(k);
            h.field(v);
        }
    }
    h.field(&listing(files));
    h.hex()
}

/// Hex SHA-256 of a file listing: every file's URL, size and modification time. Part of the
/// source fingerprint, and the directory catalog's stand-in for a table's change time.
pub fn listing(files: &[DataFile]) -> String {
    let mut h = Hasher::default();
    for f in files {
        h.field(&f.url);
        h.field(&f.size.to_string());
        h.field(&f.modified_ms.map(|m| m.to_string()).unwrap_or_default());
    }
    h.hex()
}

/// Hex SHA-256 of a table description, for the watcher's change detection.
pub fn table_signature(table: &TableMeta) -> String {
    let mut h = Hasher::default();
    h.field(&table.location);
    for c in table.all_columns() {
        h.field(&c.name);
        h.field(&c.hive_type);
    }
    for p in &table.partitions {
        h.field(&p.values.join("\u{1}"));
        h.field(&p.location);
        h.field(&p.num_rows.map(|n| n.to_string()).unwrap_or_default());
    }
    let s = &table.stats;
    for n in [s.num_rows, s.total_size, s.num_files] {
        h.field(&n.map(|n| n.to_string()).unwrap_or_default());
    }
    for (k, v) in &table.parameters {
        h.field(k);
        h.field(v);
    }
    h.hex()
}

/// Length-prefixed fields, so that no two different sequences hash alike.
#[derive(Default)]
struct Hasher(Sha256);

impl Hasher {
    fn field(&mut self, s: &str) {
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }
    fn hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Partition, StorageFormat};
    use crate::schema::TableName;

    fn table() -> TableMeta {
        TableMeta {
            name: TableName {
                db: "social".into(),
                table: "referrals".into(),
            },
            location: "file:///w/social/referrals".into(),
            format: StorageFormat::Parquet,
            columns: vec![],
            partition_keys: vec![],
            partitions: vec![Partition {
                values: vec!["2026-11-01".into()],
                location: "file:///w/social/referrals/dt=2026-11-01".into(),
                num_rows: Some(10),
            }],
            stats: Default::default(),
            parameters: [("transient_lastDdlTime".to_string(), "1".to_string())].into(),
        }
    }

    #[test]
    fn the_table_signature_follows_partitions_and_parameters() {
        let t = table();
        let base = table_signature(&t);
        assert_eq!(base, table_signature(&table()), "stable");
        let mut added = table();
        added.partitions.push(Partition {
            values: vec!["2026-11-02".into()],
            location: "file:///w/social/referrals/dt=2026-11-02".into(),
            num_rows: None,
        });
        assert_ne!(base, table_signature(&added));
        let mut touched = table();
        touched
            .parameters
            .insert("transient_lastDdlTime".into(), "2".into());
        assert_ne!(base, table_signature(&touched));
    }

    #[test]
    fn fields_are_length_prefixed() {
        let mut a = Hasher::default();
        a.field("ab");
        a.field("c");
        let mut b = Hasher::default();
        b.field("a");
        b.field("bc");
        assert_ne!(a.hex(), b.hex());
    }
}
