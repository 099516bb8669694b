//! The vocabulary of the coordinator's state machine: its configuration, what it knows of a
//! registered probe, the events it reports and the outputs the shell drains.

use crate::run::Outcome;
use hallmark_protocol::clock::ClockSyncConfig;
use hallmark_protocol::{
    ClockEstimate, CoordinatorMessage, DeviceInfo, FacilityBatch, Labels, NodeId, PhaseReport,
    PhaseStart, ProbeRole, Refusal, TelemetryBatch,
};
use serde::Serialize;
use std::collections::VecDeque;

/// The shell's handle on one connection.
pub type ConnId = u64;

/// QUIC application close codes used by the coordinator.
pub mod close_code {
    /// Normal end (coordinator shutting down).
    pub const DONE: u32 = 0;
    /// The Hello was refused; the reason is in the Refused message and the close reason.
    pub const REFUSED: u32 = 1;
    /// The peer broke the protocol (garbage frame, message out of place).
    pub const PROTOCOL_ERROR: u32 = 2;
    /// A new revocation list names the certificate of this open connection (the shell closes it;
    /// the probe takes it as a revocation and exits).
    pub const REVOKED: u32 = hallmark_transport::tls::REVOKED_CLOSE_CODE;
}

/// Tunables of the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub clock_sync: ClockSyncConfig,
    /// Dead-man interval announced to probes.
    pub dead_man_ms: u32,
    /// Version string announced in Welcome.
    pub version: String,
    /// A connection whose control stream has not carried a Hello this long after it opened is
    /// closed (a peer that authenticated and then stalls holds nothing for long).
    pub hello_timeout_ms: u32,
    /// Unstored telemetry (samples, node-power readings, gaps) one probe may have queued before its
    /// connection stops being read ([`crate::limits::TELEMETRY_BUDGET`]).
    pub telemetry_budget: u64,
    /// Networks a probe may announce its data plane in besides the IP its control connection
    /// comes from (`--fabric-subnet`); see `fabric::subnet`.
    pub fabric_subnets: Vec<crate::fabric::FabricSubnet>,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            clock_sync: ClockSyncConfig::default(),
            dead_man_ms: 2000,
            version: env!("CARGO_PKG_VERSION").to_string(),
            hello_timeout_ms: 5000,
            telemetry_budget: crate::limits::TELEMETRY_BUDGET,
            fabric_subnets: Vec::new(),
        }
    }
}

/// A registered probe, as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeRecord {
    pub node_id: NodeId,
    pub labels: Labels,
    pub inventory: Vec<DeviceInfo>,
    pub backend: String,
    pub hallmark_version: String,
    /// The probe process's random id (a restarted probe gets a new one).
    pub instance_id: u64,
    pub session_id: u64,
    /// Peer address as the shell saw it.
    pub remote: String,
    /// Coordinator clock, ns.
    pub registered_at_ns: i64,
    /// Latest clock estimate (probe − coordinator).
    pub clock: Option<ClockEstimate>,
    /// Where the probe's data plane listens: the Hello's address, or its port on the address the
    /// control connection came from. `None`: the probe has no data plane (no fabric phases).
    pub data_plane: Option<std::net::SocketAddr>,
    /// A node's probe, or a facility collector (never a run's participant).
    pub role: ProbeRole,
    /// The versions of the software under the probe's load, as its Hello listed them (within
    /// the bounds of [`hallmark_protocol::check_software`]).
    pub software: Vec<hallmark_protocol::SoftwareVersion>,
}

/// A connection to be closed once its queued messages are out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: u32,
    pub reason: String,
}

/// What happened, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Registered(ProbeRecord),
    Refused {
        conn: ConnId,
        /// The node id the peer's certificate carries.
        certificate_node: NodeId,
        remote: String,
        refusal: Refusal,
    },
    ClockUpdated {
        node_id: NodeId,
        estimate: ClockEstimate,
    },
    /// A peer broke the protocol; its connection is closed, nobody else is affected.
    ProtocolError {
        conn: ConnId,
        certificate_node: NodeId,
        remote: String,
        error: String,
    },
    /// A registered probe's connection ended.
    Departed {
        node_id: NodeId,
        reason: String,
    },
    /// A probe reported an error.
    ProbeError {
        node_id: NodeId,
        message: String,
    },
    /// Something about the run worth recording that is not a probe's doing (a fabric phase falling
    /// back from NCCL to the data plane).
    RunNote {
        message: String,
    },
    /// A probe's own safety interlock acted.
    SafetyStop {
        node_id: NodeId,
        message: String,
    },
    /// The run's inventory is complete (or its wait timed out) and its phases are scheduled.
    RunStarted {
        run_id: String,
        nodes: Vec<NodeId>,
        phases: Vec<PhaseStart>,
    },
    /// A probe started a phase at `actual_start_ns` (coordinator clock).
    PhaseStarted {
        node_id: NodeId,
        phase_id: u32,
        actual_start_ns: i64,
    },
    /// Telemetry to store; call [`crate::machine::Coordinator::telemetry_stored`] once it is, so
    /// that it is acknowledged.
    Telemetry {
        node_id: NodeId,
        batch: TelemetryBatch,
        received_at_ns: i64,
    },
    /// Facility readings to store with the current run; call
    /// [`crate::machine::Coordinator::telemetry_stored`] once they are, so that they are
    /// acknowledged.
    Facility {
        node_id: NodeId,
        batch: FacilityBatch,
        received_at_ns: i64,
    },
    /// Telemetry that will never arrive.
    Gap {
        node_id: NodeId,
        from_ns: i64,
        to_ns: i64,
        /// Sampling instants missed, as the probe counted them; `None` when nobody counted them
        /// (batches that never arrived).
        instants: Option<u64>,
        reason: String,
    },
    PhaseReport {
        node_id: NodeId,
        report: PhaseReport,
    },
    /// A participant of the run disconnected during it.
    ProbeLost {
        node_id: NodeId,
        at_ns: i64,
        reason: String,
    },
    /// A lost participant reconnected (the same probe process).
    ProbeBack {
        node_id: NodeId,
        at_ns: i64,
    },
    RunFinished {
        run_id: String,
        outcome: Outcome,
        reason: String,
        at_ns: i64,
    },
}

/// What the machine wants done, drained by the shell.
#[derive(Debug, Default)]
pub struct Outputs {
    pub transmits: VecDeque<(ConnId, CoordinatorMessage)>,
    pub closes: VecDeque<(ConnId, Close)>,
    pub events: VecDeque<Event>,
    /// Connections to stop (`false`) or resume (`true`) reading: back-pressure on telemetry.
    pub reads: VecDeque<(ConnId, bool)>,
}
