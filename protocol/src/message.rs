//! Messages between a probe and the coordinator, one enum per direction.
//!
//! All instants are nanoseconds. Instants on the coordinator's clock are named `*_ns` and documented as
//! such; the only probe-clock instants on the wire are the clock-sync timestamps `t2`/`t3`.
//! Power is in watts, energy in joules, temperatures in °C, clocks in MHz. A sensor that could not be
//! read is `None`, never 0.

use crate::fabric::{DataPlaneAddr, FabricPhase, FabricReport};
use crate::facility::FacilityBatch;
use crate::ids::NodeId;
use crate::pattern::Pattern;
use serde::{Deserialize, Serialize};

/// Probe → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProbeMessage {
    /// First message on a control stream. Must stay variant 0 (see [`crate::PROTOCOL_VERSION`]).
    Hello(Hello),
    /// Answer to a [`ClockPing`].
    ClockPong(ClockPong),
    /// The probe started a phase; `actual_start_ns` is on the coordinator's clock.
    PhaseStarted { phase_id: u32, actual_start_ns: i64 },
    /// A batch of telemetry samples.
    Telemetry(TelemetryBatch),
    /// What a phase achieved on this node.
    PhaseReport(PhaseReport),
    /// Something went wrong on the probe that the coordinator should record.
    Error(ErrorReport),
    /// Answer to [`CoordinatorMessage::FabricPrepare`]: the NCCL unique id this probe made for the
    /// phase, or why it could not.
    FabricPrepared {
        phase_id: u32,
        nccl_unique_id: Result<Vec<u8>, String>,
    },
    /// Readings of the hall's meters, from a probe registered as [`ProbeRole::Facility`].
    Facility(FacilityBatch),
}

/// Coordinator → probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CoordinatorMessage {
    /// The Hello was accepted: the probe is registered.
    Welcome(Welcome),
    /// The Hello was refused; the coordinator closes the connection after sending this.
    Refused(Refusal),
    /// First half of a clock-sync exchange.
    ClockPing(ClockPing),
    /// The coordinator's current estimate of this probe's clock, so that the probe can turn
    /// coordinator instants into its own.
    ClockEstimate(ClockEstimate),
    /// Run a phase from `start_at_ns` (coordinator clock).
    PhaseStart(PhaseStart),
    /// End a phase normally.
    PhaseStop { phase_id: u32 },
    /// Stop all load at once.
    Abort { reason: String },
    /// Telemetry batches up to and including `seq` are stored.
    Ack { seq: u64 },
    /// Keeps the dead-man timer of a probe fed while nothing else is sent.
    Heartbeat { now_ns: i64 },
    /// Something went wrong on the coordinator that concerns this probe.
    Error(ErrorReport),
    /// Make what a collective phase through NCCL needs from its first member: the NCCL unique id
    /// (the probe keeps its bootstrap listening until the phase).
    FabricPrepare { phase_id: u32 },
}

/// Who a probe is and what it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Must stay the first field (see [`crate::PROTOCOL_VERSION`]).
    pub protocol_version: u16,
    pub node_id: NodeId,
    pub labels: Labels,
    pub inventory: Vec<DeviceInfo>,
    /// Device backend driving the load: `sim`, `cpu`, `cuda`.
    pub backend: String,
    /// The probe's hallmark version (crate version).
    pub hallmark_version: String,
    /// Random per probe process: tells a reconnecting probe from a restarted one, whose telemetry
    /// sequence numbers and phase schedule started over.
    pub instance_id: u64,
    /// Where this probe's data plane listens, if it has one (fabric phases need it).
    pub data_plane: Option<DataPlaneAddr>,
    /// A node's probe, or a facility collector (no devices, no phases: it sends facility readings).
    pub role: ProbeRole,
    /// Versions of the software under the load (driver, libraries, kernel) as the backend read
    /// them: at most [`MAX_SOFTWARE_ENTRIES`], names and versions of at most
    /// [`MAX_SOFTWARE_TEXT_BYTES`] bytes each (the coordinator refuses a Hello over the bounds).
    /// Only what was read: a version the probe could not read is not listed.
    pub software: Vec<SoftwareVersion>,
}

/// The version of one piece of software a probe runs on, e.g. `{"cuda_driver", "12.8"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SoftwareVersion {
    /// What it is: `cuda_driver`, `nvml_driver`, `cublas`, `kernel`, `cpu_model`, …
    pub name: String,
    pub version: String,
}

/// Most entries a Hello's [`Hello::software`] may list.
pub const MAX_SOFTWARE_ENTRIES: usize = 32;

/// Longest name or version of a [`SoftwareVersion`], bytes.
pub const MAX_SOFTWARE_TEXT_BYTES: usize = 128;

/// Why `software` is over the bounds of a Hello ([`MAX_SOFTWARE_ENTRIES`] entries, texts of at
/// most [`MAX_SOFTWARE_TEXT_BYTES`] bytes, no name empty or listed twice), or `None` when it fits.
pub fn check_software(software: &[SoftwareVersion]) -> Option<String> {
    if software.len() > MAX_SOFTWARE_ENTRIES {
        return Some(format!(
            "the Hello lists {} software versions; at most {MAX_SOFTWARE_ENTRIES} are allowed",
            software.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in software {
        if s.name.is_empty() {
            return Some("the Hello lists a software version without a name".into());
        }
        for (what, text) in [("name", &s.name), ("version", &s.version)] {
            if text.len() > MAX_SOFTWARE_TEXT_BYTES {
                return Some(format!(
                    "the Hello lists a software {what} of {} bytes; at most \
                     {MAX_SOFTWARE_TEXT_BYTES} are allowed",
                    text.len()
                ));
            }
        }
        if !seen.insert(s.name.as_str()) {
            return Some(format!("the Hello lists software {:?} twice", s.name));
        }
    }
    None
}

/// What a registered probe does in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProbeRole {
    /// Loads and measures its node's devices.
    Node,
    /// Polls the hall's meters (PDUs, CDUs, BMCs) and sends [`FacilityBatch`]es.
    Facility,
}

/// Where a node stands in the hall.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Labels {
    pub hall: String,
    pub row: String,
    pub rack: String,
}

/// Kind of a device that a probe loads and measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceKind {
    Gpu,
    CpuSocket,
    SimulatedGpu,
}

/// One device as read from the device itself (or from the simulation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Index on the node, as the backend numbers it.
    pub index: u16,
    pub kind: DeviceKind,
    pub model: String,
    /// Stable identity: GPU UUID, or a derived id for simulated devices.
    pub uuid: String,
    pub serial: Option<String>,
    pub memory_bytes: Option<u64>,
    /// Enforced power limit in W.
    pub power_limit_w: Option<f64>,
    /// Idle power in W where known (simulation) or measured at start.
    pub idle_power_w: Option<f64>,
    /// Temperature at which the device starts to slow down, °C.
    pub slowdown_temp_c: Option<f64>,
    /// Temperature at which the device shuts down, °C.
    pub shutdown_temp_c: Option<f64>,
    /// Highest temperature the vendor supports in operation, °C.
    pub max_operating_temp_c: Option<f64>,
}

/// Sent once the Hello is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol_version: u16,
    pub coordinator_version: String,
    /// Unique per accepted connection; names this session in logs on both sides.
    pub session_id: u64,
    /// The probe stops all load when the coordinator has been silent this long during a phase.
    pub dead_man_ms: u32,
}

/// Why a Hello was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RefusalReason {
    /// The coordinator speaks `supported`, the probe spoke `offered`.
    ProtocolVersion { offered: u16, supported: u16 },
    /// The Hello claims `claimed` but the probe's certificate names `certificate`.
    NodeIdMismatch {
        claimed: String,
        certificate: String,
    },
    /// Another live probe already holds this node id.
    DuplicateNode { node_id: String },
    /// The first message was not a Hello.
    ExpectedHello,
    /// The run's expected inventory does not contain this node.
    NotExpected { node_id: String },
    /// The Hello announces a data-plane IP (`announced`) that is neither the IP the control
    /// connection comes from (`control`) nor inside a fabric subnet the operator configured.
    DataPlaneAddress { announced: String, control: String },
}

/// A refusal with a human-readable explanation of how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub message: String,
}

/// Coordinator-initiated clock-sync request. `t1` is the coordinator's send instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockPing {
    pub seq: u32,
    pub t1: i64,
}

/// The probe's answer: `t2` receive and `t3` send instants on the probe's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockPong {
    pub seq: u32,
    pub t1: i64,
    pub t2: i64,
    pub t3: i64,
}

/// The probe's clock relative to the coordinator's: `probe_clock = coordinator_clock + offset_ns`,
/// true within ± `uncertainty_ns` at the time of measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockEstimate {
    pub offset_ns: i64,
    pub uncertainty_ns: i64,
    pub rtt_ns: i64,
    /// Coordinator instant of the exchange this estimate comes from.
    pub measured_at_ns: i64,
}

/// What a phase loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Workload {
    /// Devices at the pattern's level of full compute load.
    Burn,
    /// No load; telemetry only.
    Idle,
    /// The latency mesh between the phase's probes (devices under the phase's pattern meanwhile).
    Latency,
    /// Collective operations between the phase's probes (devices under the phase's pattern).
    Collective,
    /// Device-memory bandwidth (copy kernel) at the pattern's level.
    MemoryBandwidth,
    /// Closed-loop power: each device held at `target_power_w` × the pattern's level.
    TargetPower,
}

/// Orders a probe to run one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseStart {
    pub phase_id: u32,
    pub name: String,
    pub workload: Workload,
    pub pattern: Pattern,
    /// Coordinator-clock instant at which every probe starts.
    pub start_at_ns: i64,
    pub duration_ms: u64,
    /// Telemetry sampling rate.
    pub sample_hz: f64,
    /// Peers, key and parameters of a `Latency` or `Collective` phase; `None` otherwise.
    pub fabric: Option<FabricPhase>,
    /// Per-device power set point of a `TargetPower` phase, W (scaled by the pattern's level).
    pub target_power_w: Option<f64>,
}

/// One telemetry reading of one device at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Coordinator clock, ns.
    pub t_ns: i64,
    pub device: u16,
    pub power_w: Option<f32>,
    /// Cumulative energy since the probe started, J.
    pub energy_j: Option<f64>,
    pub gpu_temp_c: Option<f32>,
    pub mem_temp_c: Option<f32>,
    pub sm_clock_mhz: Option<u32>,
    /// 0–100 %.
    pub util_pct: Option<f32>,
    /// NVML clock-event (throttle) reason bits.
    pub throttle_reasons: u64,
}

/// A sequence-numbered batch of samples. Sequence numbers start at 0 per probe process and never repeat,
/// so the coordinator can tell a replay from new data and a gap from a late batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryBatch {
    pub seq: u64,
    /// Node power (all devices, PSU losses and base load), W, per sample instant where known.
    pub node_power_w: Vec<(i64, f32)>,
    pub samples: Vec<Sample>,
    /// Sampling instants the probe did not take (late or failed ticks), with the cause.
    pub gaps: Vec<TelemetryGap>,
}

/// Sampling instants a probe missed: `[from_ns, to_ns)` on the coordinator's clock, and why (e.g.
/// "probe overloaded: sampler late by 240 ms").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryGap {
    pub from_ns: i64,
    pub to_ns: i64,
    /// Sampling instants missed in the window.
    pub instants: u64,
    /// At most [`MAX_GAP_REASON_BYTES`] bytes ([`bounded_gap_reason`]).
    pub reason: String,
}

/// Longest cause a [`TelemetryGap`] may carry, bytes (the coordinator refuses longer ones).
pub const MAX_GAP_REASON_BYTES: usize = 160;

/// `reason` cut to at most [`MAX_GAP_REASON_BYTES`] bytes on a character boundary.
pub fn bounded_gap_reason(reason: String) -> String {
    crate::facility::bounded_text(reason, MAX_GAP_REASON_BYTES)
}

/// What one device achieved in a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceResult {
    pub device: u16,
    pub gflops: Option<f64>,
    /// Achieved device-memory bandwidth of a memory-bandwidth phase, GB/s (10⁹ bytes/s, read +
    /// written).
    pub mem_bandwidth_gbps: Option<f64>,
    /// Elements of checked results that differed from the reference (silent data corruption).
    pub wrong_elements: u64,
}

/// What a phase achieved on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    pub phase_id: u32,
    /// Coordinator-clock instant at which the load stopped.
    pub ended_at_ns: i64,
    /// Why the phase ended early, if it did (a safety interlock, an abort).
    pub stopped_early: Option<String>,
    pub devices: Vec<DeviceResult>,
    /// What a fabric phase measured on this node; `None` for other phases.
    pub fabric: Option<FabricReport>,
}

/// A recorded error from either side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub code: ErrorCode,
    pub message: String,
}

/// Broad class of a reported error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// A message arrived that makes no sense in the receiver's state.
    UnexpectedMessage,
    /// A device or sensor failed.
    Device,
    /// A safety interlock stopped the load.
    Safety,
    /// Anything else.
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_reasons_are_cut_to_the_limit_on_a_character_boundary() {
        assert_eq!(bounded_gap_reason("late".into()), "late");
        let exact = "a".repeat(MAX_GAP_REASON_BYTES);
        assert_eq!(bounded_gap_reason(exact.clone()), exact);
        assert_eq!(bounded_gap_reason(format!("{exact}b")), exact);
        // 'é' is 2 bytes: after "a", the limit falls inside one; the cut is before it.
        let cut = bounded_gap_reason(format!("a{}", "é".repeat(MAX_GAP_REASON_BYTES)));
        assert_eq!(cut.len(), MAX_GAP_REASON_BYTES - 1);
        assert!(cut.starts_with('a') && cut.ends_with('é'));
    }

    fn sw(name: &str, version: &str) -> SoftwareVersion {
        SoftwareVersion {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn software_within_the_bounds_passes_and_beyond_them_is_refused() {
        assert_eq!(check_software(&[]), None);
        let full: Vec<_> = (0..MAX_SOFTWARE_ENTRIES)
            .map(|i| sw(&format!("lib{i}"), &"9".repeat(MAX_SOFTWARE_TEXT_BYTES)))
            .collect();
        assert_eq!(check_software(&full), None);
        let mut over = full.clone();
        over.push(sw("one_more", "1"));
        assert!(check_software(&over).unwrap().contains("at most 32"));
        let long = [sw("cublas", &"9".repeat(MAX_SOFTWARE_TEXT_BYTES + 1))];
        assert!(check_software(&long)
            .unwrap()
            .contains("version of 129 bytes"));
        let long = [sw(&"n".repeat(MAX_SOFTWARE_TEXT_BYTES + 1), "1")];
        assert!(check_software(&long).unwrap().contains("name of 129 bytes"));
        assert!(check_software(&[sw("", "1")])
            .unwrap()
            .contains("without a name"));
        let twice = [sw("kernel", "6.1"), sw("kernel", "6.2")];
        assert!(check_software(&twice).unwrap().contains("twice"));
    }
}
