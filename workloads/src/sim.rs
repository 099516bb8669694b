//! The simulated backend: devices, physics, coolant loops and simulated halls.
//!
//! * this module — the GPU spec ([`SimGpuSpec`]), stable device identities ([`sim_uuid`]), the Hello
//!   inventory ([`sim_inventory`]) and the seeded manufacturing spread ([`spread`]).
//! * [`physics`] — one GPU: power, energy, first-order thermal model, thermal throttling, shutdown.
//! * [`coolant`] — a rack's coolant loop, shared between the nodes of a rack or scaled for one node.
//! * [`node`] — [`SimBackend`]: the [`crate::backend::Backend`] of one simulated node.
//! * [`hall`] — hall files (TOML): rows → racks → nodes, coolant, faults; the built-in demo hall.
//! * [`conditions`] — [`RunConditions`]: what the run seed varies between two runs of one hall
//!   (the coolant supply's offset and drift, the room's effect on the nodes' base load, sensor
//!   noise), while the hall's seed fixes the hardware.
//!
//! `docs/HALL.md` documents the hall-file format, the equations and the constants.

pub mod conditions;
pub mod coolant;
pub mod hall;
mod hall_check;
mod hall_file;
#[cfg(test)]
mod hall_tests;
pub mod node;
pub mod physics;
#[cfg(test)]
mod scenario_tests;

pub use conditions::{RunConditions, DEFAULT_RUN_SEED};
pub use coolant::{CoolantLoop, CoolantSpec, RackCooling, SharedLoop};
pub use hall::{load_hall, parse_hall, HallError, HallLoops, HallNode, HallRack, HallSpec};
pub use node::{SimBackend, SimNodeSpec};

use hallmark_protocol::{DeviceInfo, DeviceKind, NodeId};

/// Model string of the default simulated GPU.
pub const SIM_MODEL: &str = "Simulated B200-class 1000W";

/// Nominal figures of a simulated GPU model: what NVML would report, plus what the physics needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimGpuSpec {
    pub model: String,
    /// Enforced power limit, W.
    pub power_limit_w: f64,
    /// Power with no load, W.
    pub idle_power_w: f64,
    pub slowdown_temp_c: f64,
    pub shutdown_temp_c: f64,
    pub max_operating_temp_c: f64,
    pub memory_bytes: u64,
    /// SM clock at full speed, MHz.
    pub max_sm_clock_mhz: u32,
    /// SM clock of an idle device, MHz.
    pub idle_sm_clock_mhz: u32,
    /// Thermal time constant R·C of the GPU on its cold plate, s (nominal R).
    pub thermal_time_constant_s: f64,
    /// Cold-plate thermal resistance R from die to coolant, K/W.
    pub cold_plate_resistance_k_per_w: f64,
    /// Seeded manufacturing spread of the dynamic power, ± fraction (0.03 = ±3 %).
    pub efficiency_spread: f64,
    /// Seeded manufacturing spread of the cold-plate resistance, ± fraction (0.10 = ±10 %).
    pub resistance_spread: f64,
    /// Dense throughput at full clocks, TFLOP/s: what a device achieves is this × load level ×
    /// clock factor (thermal slowdown and power cap), the simulation's model of a GEMM burn.
    pub peak_tflops: f64,
}

impl Default for SimGpuSpec {
    /// A 1000 W B200-class module on a warm-water cold plate (the demo hall's GPU).
    fn default() -> Self {
        SimGpuSpec {
            model: SIM_MODEL.to_string(),
            power_limit_w: 1000.0,
            idle_power_w: 150.0,
            slowdown_temp_c: 88.0,
            shutdown_temp_c: 95.0,
            max_operating_temp_c: 85.0,
            memory_bytes: 180 * 1024 * 1024 * 1024,
            max_sm_clock_mhz: 1980,
            idle_sm_clock_mhz: 345,
            thermal_time_constant_s: 10.0,
            cold_plate_resistance_k_per_w: 0.045,
            efficiency_spread: 0.03,
            resistance_spread: 0.10,
            peak_tflops: 2250.0,
        }
    }
}

/// FNV-1a, 64-bit: a stable hash for derived identities (not for security).
pub(crate) fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// splitmix64's finaliser: spreads the bits of a hash evenly.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded number uniform in -1.0..=1.0 for device `index` of `node`; `what` names the quantity so
/// that different quantities of one device are independent. The same inputs always give the same value.
pub fn spread(seed: u64, node: &NodeId, index: u16, what: &str) -> f64 {
    draw(seed, &format!("{node}/{index}/{what}"))
}

/// A seeded number uniform in -1.0..=1.0 named by `key`: the same seed and key always give the
/// same value, different keys independent values.
pub(crate) fn draw(seed: u64, key: &str) -> f64 {
    unit(mix(fnv1a(key.as_bytes(), mix(seed))))
}

/// A hash's 53 high bits → [0, 1] → [-1, 1].
pub(crate) fn unit(h: u64) -> f64 {
    let u = (h >> 11) as f64 / ((1u64 << 53) - 1) as f64;
    2.0 * u - 1.0
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
            model: spec.model.clone(),
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
        assert_eq!(inv[0].power_limit_w, Some(1000.0));
        assert_eq!(inv[0].model, SIM_MODEL);
        assert_eq!(inv[0].kind, DeviceKind::SimulatedGpu);
    }

    #[test]
    fn spread_is_deterministic_bounded_and_seeded() {
        let n = NodeId::new("row1-rack01-n01").unwrap();
        let values: Vec<f64> = (0..1000).map(|i| spread(7, &n, i, "r")).collect();
        assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)));
        let again: Vec<f64> = (0..1000).map(|i| spread(7, &n, i, "r")).collect();
        assert_eq!(values, again);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!(mean.abs() < 0.1, "mean {mean}");
        assert!(values.iter().any(|v| *v > 0.8) && values.iter().any(|v| *v < -0.8));
        assert_ne!(spread(7, &n, 0, "r"), spread(8, &n, 0, "r"));
        assert_ne!(spread(7, &n, 0, "r"), spread(7, &n, 0, "e"));
    }
}
