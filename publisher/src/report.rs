//! The publish report: what happened, measured, step by step. The same struct is printed by
//! the CLI (`--json`), stored with dashboard jobs and streamed at the end of a job's events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::guards::GuardOutcome;
use crate::quality::{GateOutcome, OutputProfile};

/// Steps of a publish, in order. A failure names the step it happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Plan,
    Guards,
    /// Waiting for (or losing) the API's operation lease.
    Lease,
    Engine,
    Push,
    Verify,
    Snapshot,
    /// Quality gates against the serving version, between sealing and committing.
    Gates,
    /// The new version on one edge first, probed through its lookup service.
    Canary,
    Commit,
    Gc,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Plan => "plan",
            Step::Guards => "guards",
            Step::Lease => "lease",
            Step::Engine => "engine",
            Step::Push => "push",
            Step::Verify => "verify",
            Step::Snapshot => "snapshot",
            Step::Gates => "gates",
            Step::Canary => "canary",
            Step::Commit => "commit",
            Step::Gc => "gc",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Value bytes of a compressed version before and after compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionReport {
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeResult {
    pub edge: String,
    pub keys: u64,
    pub bytes: u64,
    pub checksum: String,
    pub push_ms: u64,
    pub committed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One engine attempt; a re-routed publish has two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub path: String,
    pub ms: u64,
    pub rows_in: u64,
    pub peak_memory_bytes: u64,
    /// Why the attempt ended early (`guard memory_pool tripped …`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishError {
    pub step: Step,
    pub message: String,
    /// The edge the error concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    pub transient: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishReport {
    pub api: String,
    pub table: String,
    /// The new version, once allocated.
    pub version: Option<u64>,
    /// The serving version before this publish.
    pub previous_version: Option<u64>,
    /// The path that produced the output (`fasttrack` or `fallback`).
    pub path: Option<String>,
    /// Why that path: the first tripped guard, or "all guards within limits".
    pub route_reason: String,
    pub guards: Vec<GuardOutcome>,
    pub attempts: Vec<Attempt>,
    pub rows_in: u64,
    pub keys_out: u64,
    pub bytes_out: u64,
    pub checksum: Option<String>,
    pub edges: Vec<EdgeResult>,
    pub timings_ms: BTreeMap<String, u64>,
    pub total_ms: u64,
    pub committed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<PublishError>,
    /// What the version is computed from; equal to the serving version's, a triggered publish
    /// stops after planning with `unchanged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The source had not changed since the serving version: nothing was published.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    /// The newest data the version holds (see `freshness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_time: Option<String>,
    /// The partitions `latest_partitions` chose, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latest_partitions: Vec<String>,
    /// The output's keys, rows, nulls and ranges, measured while encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<OutputProfile>,
    /// Set when the version's values are stored compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionReport>,
    /// Quality gates against the serving version, each measured against its limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateOutcome>,
    /// The gates failed and the owner published anyway.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// What the canary edge answered, when the spec asks for a canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryReport>,
}

/// A canary commit's probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryReport {
    pub edge: String,
    pub lookup: String,
    pub probes: u64,
    pub mismatches: u64,
    pub soak_ms: u64,
    /// Why it failed, or why it was skipped (a first publish has nothing to protect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The first differing answers, for the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

impl PublishReport {
    pub fn new(api: &str, table: &str) -> Self {
        PublishReport {
            api: api.into(),
            table: table.into(),
            version: None,
            previous_version: None,
            path: None,
            route_reason: String::new(),
            guards: Vec::new(),
            attempts: Vec::new(),
            rows_in: 0,
            keys_out: 0,
            bytes_out: 0,
            checksum: None,
            edges: Vec::new(),
            timings_ms: BTreeMap::new(),
            total_ms: 0,
            committed: false,
            error: None,
            fingerprint: None,
            unchanged: false,
            data_time: None,
            latest_partitions: Vec::new(),
            profile: None,
            compression: None,
            gates: Vec::new(),
            forced: false,
            canary: None,
        }
    }
}
