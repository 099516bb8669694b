//! Builders shared by the coordinator's integration tests: node ids, a probe's Hello, samples and
//! telemetry batches; and the simulated coordinator of the machine tests ([`sim`]).

// Each test binary uses a part of this module.
#![allow(dead_code)]

pub mod sim;

use hallmark_protocol::{
    DeviceInfo, DeviceKind, Hello, Labels, NodeId, Sample, TelemetryBatch, PROTOCOL_VERSION,
};

pub fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// Labels of a node in hall `h`, row `r` and `rack`.
pub fn labels(rack: &str) -> Labels {
    Labels {
        hall: "h".into(),
        row: "r".into(),
        rack: rack.into(),
    }
}

/// The Hello of probe process 1 of node `id` in `rack` with `devices` simulated GPUs (700 W power
/// limit) and no data plane.
pub fn hello(id: &str, rack: &str, devices: u16) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        node_id: node(id),
        labels: labels(rack),
        inventory: (0..devices)
            .map(|i| DeviceInfo {
                index: i,
                kind: DeviceKind::SimulatedGpu,
                model: "sim".into(),
                uuid: format!("{id}-{i}"),
                serial: None,
                memory_bytes: None,
                power_limit_w: Some(700.0),
                idle_power_w: None,
                slowdown_temp_c: None,
                shutdown_temp_c: None,
                max_operating_temp_c: None,
            })
            .collect(),
        backend: "sim".into(),
        hallmark_version: "0".into(),
        instance_id: 1,
        data_plane: None,
        role: hallmark_protocol::ProbeRole::Node,
        software: Vec::new(),
    }
}

/// A sample of `device` at `t_ns` with every reading measured (300 W, 50 °C, ...).
pub fn sample(t_ns: i64, device: u16) -> Sample {
    Sample {
        t_ns,
        device,
        power_w: Some(300.0),
        energy_j: Some(1.0),
        gpu_temp_c: Some(50.0),
        mem_temp_c: Some(40.0),
        sm_clock_mhz: Some(1900),
        util_pct: Some(100.0),
        throttle_reasons: 0,
    }
}

/// Batch `seq`: `ticks` sampling instants `step_ns` apart from `t`, each with a sample of every
/// one of `devices` devices and a 900 W node-power reading; no gaps.
pub fn batch(seq: u64, t: i64, devices: u16, ticks: usize, step_ns: i64) -> TelemetryBatch {
    let at = move |k: usize| t + k as i64 * step_ns;
    TelemetryBatch {
        gaps: Vec::new(),
        seq,
        node_power_w: (0..ticks).map(|k| (at(k), 900.0)).collect(),
        samples: (0..ticks)
            .flat_map(|k| (0..devices).map(move |d| sample(at(k), d)))
            .collect(),
    }
}
