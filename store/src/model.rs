//! The records the coordinator hands to the store and the small value types shared by writer and reader.

use crate::error::StoreError;
use hallmark_protocol::facility::FacilityReading;
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{ClockEstimate, Hello, Labels, NodeId, PhaseStart, Workload};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A run's id: `YYYYMMDDTHHMMSSZ-xxxxxx`, the run's start on the coordinator clock (UTC) and six random
/// hex digits. Ids sort by start time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// Wraps an id read from the database or typed by a user; not checked.
    pub fn new(id: impl Into<String>) -> RunId {
        RunId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl std::borrow::Borrow<str> for RunId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started and not finished: still running, or its coordinator stopped without finishing it
    /// (`ended_at_ns` is NULL in both cases).
    Running,
    /// Every phase ran to its end.
    Complete,
    /// The run ended without all of its data (missing probes, a timeout); never a pass.
    Incomplete,
    /// Stopped on purpose: Ctrl-C, a safety breach.
    Aborted,
    /// Never stored: what a reader shows for a run still `running` in the store whose coordinator
    /// is gone (its process ended, or its liveness heartbeat stopped; see [`crate::liveness`]).
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Aborted => "aborted",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(RunStatus::Running),
            "complete" => Ok(RunStatus::Complete),
            "incomplete" => Ok(RunStatus::Incomplete),
            "aborted" => Ok(RunStatus::Aborted),
            "interrupted" => Ok(RunStatus::Interrupted),
            other => Err(StoreError::invalid(
                "run status",
                format!(
                    "{other:?}; expected running, complete, incomplete, aborted or interrupted"
                ),
            )),
        }
    }
}

/// A run about to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Human name of the run (e.g. the plan name and a date, or what the user passed).
    pub name: String,
    pub plan_name: String,
    /// The plan as written; its SHA-256 is stored beside it.
    pub plan_toml: String,
    /// The simulated hall's name, or `None` on real hardware.
    pub hall: Option<String>,
    /// Coordinator clock, ns since the UNIX epoch; also names the run id.
    pub started_at_ns: i64,
    pub hallmark_version: String,
    /// Telemetry rate of the plan; the sample interval of every derived number.
    pub sample_hz: f64,
}

/// A registered probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRow {
    pub node_id: NodeId,
    pub labels: Labels,
    pub backend: String,
    pub hallmark_version: String,
    /// The probe's network address as the coordinator saw it.
    pub remote: Option<String>,
    pub registered_at_ns: i64,
    /// The clock estimate at registration, if one exists yet (refresh it with `update_clock`).
    pub clock: Option<ClockEstimate>,
}

impl ProbeRow {
    /// The row of a probe that registered with `hello`.
    pub fn from_hello(hello: &Hello, remote: Option<String>, registered_at_ns: i64) -> ProbeRow {
        ProbeRow {
            node_id: hello.node_id.clone(),
            labels: hello.labels.clone(),
            backend: hello.backend.clone(),
            hallmark_version: hello.hallmark_version.clone(),
            remote,
            registered_at_ns,
            clock: None,
        }
    }
}

/// A phase of a run as scheduled.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseRow {
    pub phase_id: u32,
    pub name: String,
    pub workload: Workload,
    pub pattern: Pattern,
    /// Coordinator-clock instant at which every probe is to start.
    pub scheduled_start_ns: i64,
    pub duration_ms: u64,
}

impl From<&PhaseStart> for PhaseRow {
    fn from(p: &PhaseStart) -> PhaseRow {
        PhaseRow {
            phase_id: p.phase_id,
            name: p.name.clone(),
            workload: p.workload.clone(),
            pattern: p.pattern.clone(),
            scheduled_start_ns: p.start_at_ns,
            duration_ms: p.duration_ms,
        }
    }
}

/// What [`crate::Store::insert_batch`] did with a telemetry batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// `false`: the batch's sequence number was already stored (a replay); nothing was written.
    pub new: bool,
    /// Samples written (0 for a replay).
    pub samples: usize,
}

/// One stored facility reading and who sent it ([`crate::Store::facility_readings`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFacilityReading {
    /// The collector's node id (the facility probe that sent the batch).
    pub collector: String,
    /// The sequence number of the batch it came in.
    pub seq: u64,
    /// The reading as sent, but a value that was not a finite number, which is stored as absent
    /// with the note [`crate::FACILITY_NOT_FINITE`].
    pub reading: FacilityReading,
}

/// One line of `hallmark runs list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub run_id: RunId,
    pub name: String,
    pub plan_name: String,
    pub hall: Option<String>,
    pub started_at_ns: i64,
    pub ended_at_ns: Option<i64>,
    pub status: RunStatus,
    pub status_reason: Option<String>,
    /// Probes registered.
    pub probes: u64,
    /// Samples stored.
    pub samples: u64,
}

/// Event kinds the store itself writes; callers may use others.
pub mod event_kind {
    /// A probe's connection was lost (written by `probe_lost`).
    pub const PROBE_LOST: &str = "probe_lost";
    /// A safety interlock stopped the load.
    pub const SAFETY_STOP: &str = "safety_stop";
    /// The run was aborted.
    pub const ABORT: &str = "abort";
    /// An error reported by a probe or the coordinator.
    pub const ERROR: &str = "error";
}

/// Serialises a value to a short text: a unit enum variant as its name in snake case (`Burn` → `burn`,
/// `SimulatedGpu` → `simulated_gpu`, as plans spell them), anything else as JSON.
pub(crate) fn label_of<T: Serialize>(what: &'static str, v: &T) -> Result<String, StoreError> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(snake_case(&s)),
        Ok(other) => Ok(other.to_string()),
        Err(e) => Err(StoreError::invalid(what, e.to_string())),
    }
}

fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::DeviceKind;

    #[test]
    fn labels_are_snake_case() {
        assert_eq!(label_of("w", &Workload::Burn).unwrap(), "burn");
        assert_eq!(
            label_of("k", &DeviceKind::SimulatedGpu).unwrap(),
            "simulated_gpu"
        );
        assert_eq!(label_of("k", &DeviceKind::CpuSocket).unwrap(), "cpu_socket");
    }
}
