//! The simulated backend's devices.
//!
//! A simulated node carries GPUs modelled on an H200 SXM module. Each device gets a stable UUID
//! derived from the node id and its index, so the same simulated hall produces the same inventory in
//! every run and results can be compared across runs.

use hallmark_protocol::{DeviceInfo, DeviceKind, NodeId};

/// Model string reported by simulated GPUs.
pub const SIM_MODEL: &str = "Simulated H200 SXM 141GB";

/// Nominal figures of a simulated GPU (of an H200 SXM module as NVML reports them).
#[derive(Debug, Clone, PartialEq)]
pub struct SimGpuSpec {
    pub power_limit_w: f64,
    pub idle_power_w: f64,
    pub slowdown_temp_c: f64,
    pub shutdown_temp_c: f64,
    pub max_operating_temp_c: f64,
    pub memory_bytes: u64,
}

impl Default for SimGpuSpec {
    fn default() -> Self {
        SimGpuSpec {
            power_limit_w: 700.0,
            idle_power_w: 90.0,
            slowdown_temp_c: 90.0,
            shutdown_temp_c: 95.0,
            max_operating_temp_c: 87.0,
            memory_bytes: 141 * 1024 * 1024 * 1024,
        }
    }
}

/// FNV-1a, 64-bit: a stable hash for derived identities (not for security).
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A stable, UUID-shaped id for device `index` of `node` (`GPU-` prefix, as NVML writes them).
pub fn sim_uuid(node: &NodeId, index: u16) -> String {
    let key = format!("{node}/{index}");
    let a = fnv1a(key.as_bytes(), 0);
    let b = fnv1a(key.as_bytes(), a);
    format!(
        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// The inventory of a simulated node with `count` GPUs of `spec`.
pub fn sim_inventory(node: &NodeId, count: u16, spec: &SimGpuSpec) -> Vec<DeviceInfo> {
    (0..count)
        .map(|index| DeviceInfo {
            index,
            kind: DeviceKind::SimulatedGpu,
            model: SIM_MODEL.to_string(),
            uuid: sim_uuid(node, index),
            serial: Some(format!(
                "SIM{:010}",
                fnv1a(node.as_str().as_bytes(), 1) % 10_000_000_000 + u64::from(index)
            )),
            memory_bytes: Some(spec.memory_bytes),
            power_limit_w: Some(spec.power_limit_w),
            idle_power_w: Some(spec.idle_power_w),
            slowdown_temp_c: Some(spec.slowdown_temp_c),
            shutdown_temp_c: Some(spec.shutdown_temp_c),
            max_operating_temp_c: Some(spec.max_operating_temp_c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn uuids_are_stable_and_distinct() {
        let a = NodeId::new("r01-n01").unwrap();
        let b = NodeId::new("r01-n02").unwrap();
        assert_eq!(sim_uuid(&a, 3), sim_uuid(&a, 3));
        let all: HashSet<_> = (0..8)
            .flat_map(|i| [sim_uuid(&a, i), sim_uuid(&b, i)])
            .collect();
        assert_eq!(all.len(), 16);
        assert_eq!(
            sim_uuid(&a, 0).len(),
            "GPU-12345678-1234-1234-1234-123456789abc".len()
        );
    }

    #[test]
    fn inventory_carries_the_spec() {
        let node = NodeId::new("n1").unwrap();
        let inv = sim_inventory(&node, 8, &SimGpuSpec::default());
        assert_eq!(inv.len(), 8);
        assert_eq!(inv[7].index, 7);
        assert_eq!(inv[0].power_limit_w, Some(700.0));
        assert_eq!(inv[0].kind, DeviceKind::SimulatedGpu);
    }
}
