//! The probe: the agent on one node that registers with the coordinator, agrees on time with it and
//! (as the project grows) loads its devices and streams what they measure.
//!
//! * [`session`] — the sans-IO state machine of the probe's side of the protocol (registration,
//!   clock, phases), living across reconnections.
//! * [`runner`] — the phase runner: pattern → load level, sampling, telemetry batches with replay,
//!   and the probe's own safety interlocks (dead-man, temperature, overrun).
//! * [`fabric`] — fabric phases beside the load: the data plane and the phase thread on it.
//! * [`facility`] — a facility collector's readings: batches on the coordinator's clock, kept
//!   until acknowledged; the inbox the collector task fills; the collector's empty backend.
//! * [`client`] — the tokio/quinn shell: connect, register, answer, reconnect with backoff.
//! * [`outbox`] — messages waiting for the control stream, bounded, so that back-pressure on the
//!   stream holds back only the sending, never the session's loop.

pub mod client;
pub mod fabric;
pub mod facility;
pub mod outbox;
pub mod runner;
pub mod session;

pub use client::{
    Backoff, Jitter, LastFailure, ProbeError, ProbeHandle, ProbeOptions, ProbeStatus, RetrySchedule,
};
pub use session::{ProbeSession, SessionEvent, SessionState};

use hallmark_protocol::{Hello, Labels, NodeId, PROTOCOL_VERSION};
use hallmark_workloads::backend::Backend;

/// The Hello a probe sends: who it is, where it stands, the devices `backend` loads and the
/// versions of the software under them that `backend` read.
pub fn hello(node_id: NodeId, labels: Labels, backend: &dyn Backend) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        node_id,
        labels,
        inventory: backend.inventory().to_vec(),
        backend: backend.name().to_string(),
        hallmark_version: env!("CARGO_PKG_VERSION").to_string(),
        instance_id: instance_id(),
        data_plane: None,
        role: hallmark_protocol::ProbeRole::Node,
        software: backend.software(),
    }
}

/// A random id for this probe process (from the clock, the process id and the address of a
/// stack variable; not a secret).
fn instance_id() -> u64 {
    let marker = 0u8;
    let t = hallmark_transport::clock::WallClock::new().now_ns() as u64;
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in [
        t,
        u64::from(std::process::id()),
        &marker as *const u8 as u64,
    ] {
        for b in v.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
