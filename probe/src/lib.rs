//! The probe: the agent on one node that registers with the coordinator, agrees on time with it and
//! (as the project grows) loads its devices and streams what they measure.
//!
//! * [`session`] — the sans-IO state machine of a control session.
//! * [`client`] — the tokio/quinn shell: connect, register, answer, reconnect with backoff.

pub mod client;
pub mod session;

pub use client::{Backoff, ProbeError, ProbeHandle, ProbeOptions, ProbeStatus};
pub use session::{ProbeSession, SessionEvent, SessionState};

use hallmark_protocol::{DeviceInfo, Hello, Labels, NodeId, PROTOCOL_VERSION};

/// The Hello a probe sends: who it is, where it stands, what it has.
pub fn hello(node_id: NodeId, labels: Labels, backend: &str, inventory: Vec<DeviceInfo>) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        node_id,
        labels,
        inventory,
        backend: backend.to_string(),
        hallmark_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The Hello of a probe on the simulated backend with `devices` simulated GPUs.
pub fn sim_hello(node_id: NodeId, labels: Labels, devices: u16) -> Hello {
    let inventory = hallmark_workloads::sim::sim_inventory(
        &node_id,
        devices,
        &hallmark_workloads::sim::SimGpuSpec::default(),
    );
    hello(node_id, labels, "sim", inventory)
}
