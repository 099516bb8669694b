//! Messages shared by the benchmarks.

use hallmark_protocol::{DeviceInfo, DeviceKind, Hello, Labels, NodeId, PROTOCOL_VERSION};

/// The Hello of a probe on a node with 8 GPUs, every inventory field present (what a CUDA probe
/// reads from NVML), built from the protocol types alone so that the benchmarks do not depend on
/// how the probe assembles it.
pub fn hello_8_gpus() -> Hello {
    let inventory = (0..8u16)
        .map(|index| DeviceInfo {
            index,
            kind: DeviceKind::Gpu,
            model: "NVIDIA H200".into(),
            uuid: format!("GPU-3f1c9a2e-7b4d-5e61-a8c0-12d4e5f6a7{index:02x}"),
            serial: Some(format!("16548240{:05}", 12_345 + u32::from(index))),
            memory_bytes: Some(150_754_820_096),
            power_limit_w: Some(700.0),
            idle_power_w: Some(74.6 + f64::from(index) * 0.8),
            slowdown_temp_c: Some(90.0),
            shutdown_temp_c: Some(95.0),
            max_operating_temp_c: Some(87.0),
        })
        .collect();
    Hello {
        protocol_version: PROTOCOL_VERSION,
        node_id: NodeId::new("r03-n12").expect("valid node id"),
        labels: Labels {
            hall: "hall-a".into(),
            row: "row-03".into(),
            rack: "r03-12".into(),
        },
        inventory,
        backend: "cuda".into(),
        hallmark_version: "0.1.0".into(),
        instance_id: 0x9e37_79b9_7f4a_7c15,
        data_plane: None,
        role: hallmark_protocol::ProbeRole::Node,
        software: Vec::new(),
    }
}
