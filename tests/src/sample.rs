//! A small Hive-style warehouse written on the spot, for tests that need tables in a database of
//! their own (so that tests sharing one metastore never touch each other's tables):
//!
//! - `<db>.referrals`: `product_id bigint, network string, amount decimal(12,2), ts timestamp`,
//!   partitioned by `dt` (7 days, 2 files each);
//! - `<db>.users`: `user_id bigint, name string`, unpartitioned, one file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{
    ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

pub const REFERRALS_DAYS: usize = 7;
pub const REFERRALS_FILES_PER_DAY: usize = 2;
pub const REFERRALS_ROWS_PER_FILE: usize = 50;
pub const USERS_ROWS: usize = 100;

/// What [`write_warehouse`] wrote.
#[derive(Debug, Clone)]
pub struct SampleWarehouse {
    pub root: PathBuf,
    pub db: String,
    /// `(table, rows)` in name order.
    pub tables: Vec<(String, u64)>,
    /// The `dt` values of `referrals`, sorted.
    pub days: Vec<String>,
}

impl SampleWarehouse {
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, r)| *r)
            .unwrap_or(0)
    }
}

/// Writes `root/<db>/referrals/dt=…/part-*.parquet` and `root/<db>/users/part-0.parquet`.
pub fn write_warehouse(root: &Path, db: &str) -> Result<SampleWarehouse> {
    let days: Vec<String> = (1..=REFERRALS_DAYS)
        .map(|d| format!("2026-11-{d:02}"))
        .collect();
    let networks = ["facebook", "instagram", "tiktok", "x", "reddit"];
    let referrals = Arc::new(Schema::new(vec![
        Field::new("product_id", DataType::Int64, false),
        Field::new("network", DataType::Utf8, false),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let mut n = 0i64;
    for (d, day) in days.iter().enumerate() {
        let dir = root.join(db).join("referrals").join(format!("dt={day}"));
        std::fs::create_dir_all(&dir)?;
        for f in 0..REFERRALS_FILES_PER_DAY {
            let rows = REFERRALS_ROWS_PER_FILE as i64;
            let ids: Vec<i64> = (n..n + rows).map(|i| i % 37).collect();
            let nets: Vec<&str> = (n..n + rows).map(|i| networks[(i % 5) as usize]).collect();
            let amounts = Decimal128Array::from(
                (n..n + rows)
                    .map(|i| Some(i128::from(i * 125 + 99)))
                    .collect::<Vec<_>>(),
            )
            .with_precision_and_scale(12, 2)?;
            let base = 1_793_491_200_000_000i64 + d as i64 * 86_400_000_000; // 2026-11-01T00:00:00Z
            let ts = TimestampMicrosecondArray::from(
                (0..rows).map(|i| base + i * 60_000_000).collect::<Vec<_>>(),
            )
            .with_timezone("UTC");
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(nets)),
                Arc::new(amounts),
                Arc::new(ts),
            ];
            write_parquet(
                &dir.join(format!("part-{f:05}.parquet")),
                RecordBatch::try_new(referrals.clone(), columns)?,
            )?;
            n += rows;
        }
    }

    let users = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let dir = root.join(db).join("users");
    std::fs::create_dir_all(&dir)?;
    let ids: Vec<i64> = (0..USERS_ROWS as i64).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("user {i} ✓")).collect();
    let batch = RecordBatch::try_new(
        users,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )?;
    write_parquet(&dir.join("part-00000.parquet"), batch)?;
    // Markers that every reader must skip.
    File::create(dir.join("_SUCCESS"))?;

    Ok(SampleWarehouse {
        root: root.to_path_buf(),
        db: db.to_string(),
        tables: vec![
            ("referrals".into(), n as u64),
            ("users".into(), USERS_ROWS as u64),
        ],
        days,
    })
}

fn write_parquet(path: &Path, batch: RecordBatch) -> Result<()> {
    Ok(fixtures::write_parquet(path, &[batch])?)
}
