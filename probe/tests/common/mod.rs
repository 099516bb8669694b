//! Fixtures shared by the probe's integration tests: a test GPU's inventory entry, clock
//! estimates, a node's Hello and the coordinator's Welcome, and phase orders (a burn phase, a
//! two-member fabric phase). Each test file uses a part of them.
#![allow(dead_code)]

use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{
    ClockEstimate, CollectiveParams, CoordinatorMessage, DeviceInfo, DeviceKind, FabricMember,
    FabricParams, FabricPhase, Hello, Labels, NodeId, PairKey, PeerKey, PhaseReport, PhaseStart,
    ProbeMessage, Welcome, Workload, PROTOCOL_VERSION,
};
use hallmark_workloads::backend::{Backend, DeviceReading, NodeReading};

pub const S: i64 = 1_000_000_000;
pub const MS: i64 = 1_000_000;

/// Device 0: a simulated GPU with a 700 W power limit and nothing else known.
pub fn test_gpu() -> DeviceInfo {
    DeviceInfo {
        index: 0,
        kind: DeviceKind::SimulatedGpu,
        model: "test".into(),
        uuid: "GPU-0".into(),
        serial: None,
        memory_bytes: None,
        power_limit_w: Some(700.0),
        idle_power_w: None,
        slowdown_temp_c: None,
        shutdown_temp_c: None,
        max_operating_temp_c: None,
    }
}

pub fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

/// A clock estimate: the probe's clock is the coordinator's plus `offset_ns`.
pub fn clock(offset_ns: i64) -> ClockEstimate {
    ClockEstimate {
        offset_ns,
        uncertainty_ns: 10_000,
        rtt_ns: 20_000,
        measured_at_ns: 0,
    }
}

/// The Hello of node `id` in hall "h", row "r", rack "k", with `backend`'s inventory.
pub fn hello(id: &str, backend: &dyn Backend) -> Hello {
    let labels = Labels {
        hall: "h".into(),
        row: "r".into(),
        rack: "k".into(),
    };
    hallmark_probe::hello(node(id), labels, backend)
}

pub fn welcome(session_id: u64, dead_man_ms: u32) -> CoordinatorMessage {
    CoordinatorMessage::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        coordinator_version: "t".into(),
        session_id,
        dead_man_ms,
    })
}

/// Burn phase `id` ("p{id}") from `start_at_ns` (coordinator clock) for `duration_ms`, sampled at
/// 10 Hz.
pub fn burn(id: u32, start_at_ns: i64, duration_ms: u64, pattern: Pattern) -> PhaseStart {
    PhaseStart {
        phase_id: id,
        name: format!("p{id}"),
        workload: Workload::Burn,
        pattern,
        start_at_ns,
        duration_ms,
        sample_hz: 10.0,
        fabric: None,
        target_power_w: None,
    }
}

/// A collective order for the first of `members` (data planes on loopback ports 4000, 4001):
/// its key shared with rank 1 is `key` repeated.
pub fn two_member_fabric(members: [&str; 2], key: u8) -> FabricPhase {
    FabricPhase {
        keys: vec![PeerKey {
            rank: 1,
            key: PairKey([key; 32]),
        }],
        members: members
            .iter()
            .enumerate()
            .map(|(i, n)| FabricMember {
                node_id: node(n),
                addr: ([127, 0, 0, 1], 4000 + i as u16).into(),
            })
            .collect(),
        params: FabricParams::Collective(CollectiveParams::default()),
        nccl: None,
    }
}

/// The first phase report in `out`.
pub fn phase_report(out: &[ProbeMessage]) -> Option<&PhaseReport> {
    out.iter().find_map(|m| match m {
        ProbeMessage::PhaseReport(r) => Some(r),
        _ => None,
    })
}

/// A node's reading of one device (index 0) with power and GPU temperature only.
pub fn one_device(power_w: f64, gpu_temp_c: f64, node_power_w: Option<f64>) -> NodeReading {
    NodeReading {
        devices: vec![DeviceReading {
            device: 0,
            power_w: Some(power_w),
            energy_j: None,
            gpu_temp_c: Some(gpu_temp_c),
            mem_temp_c: None,
            sm_clock_mhz: None,
            util_pct: None,
            throttle_reasons: 0,
            shut_down: false,
        }],
        node_power_w,
    }
}
