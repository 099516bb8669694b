//! What differs between two runs of the same simulated hall: [`RunConditions`].
//!
//! A hall file's `seed` fixes the hardware, as a real hall's parts are fixed: each GPU's efficiency
//! and cold-plate spread, and the faults. The **run seed** (`--seed N` on `hallmark demo` and on
//! `hallmark run --simulate`, [`DEFAULT_RUN_SEED`] without it) draws what differs between two
//! weekly runs of the same hardware, each within a stated bound (docs/HALL.md, "The run seed"):
//!
//! * the coolant supply of each rack: an offset from its setpoint, uniform within
//!   ±[`SUPPLY_OFFSET_MAX_K`] for the whole run (where the CDU's controller settles this time), and
//!   a slow drift of the inlet water, a sine of amplitude up to [`SUPPLY_DRIFT_MAX_K`] with a period
//!   of [`SUPPLY_DRIFT_PERIOD_MIN_S`] to [`SUPPLY_DRIFT_PERIOD_MAX_S`] and a seeded phase. This is
//!   physics: the GPUs see the supply, and a rack over its capacity rises from the shifted point;
//! * the room (ambient air): each node's base load (CPUs, fans, NICs) × (1 ± up to
//!   [`BASE_LOAD_VARIATION`]) for the run, also physics (it is heat for the rack's loop);
//! * sensor noise on the readings only, never on the physics: each GPU power reading and the node's
//!   power reading × (1 ± up to [`POWER_NOISE_FRACTION`]), each GPU and memory temperature reading
//!   ± up to [`TEMP_NOISE_K`]. A reading is a function of (run seed, node, device, quantity,
//!   instant), so the same instant always reads the same. The probe's interlocks act on these
//!   readings, as a real probe's act on its real, noisy sensors.
//!
//! Every draw is a hash of (run seed, what it is for): no clock, no entropy. The same hall and the
//! same run seed give the same physics and the same readings at the same instants.
//! [`RunConditions::Nominal`] varies nothing: the equations exactly, for tests of the equations.

use super::{draw, fnv1a, mix, unit};
use crate::backend::DeviceReading;
use hallmark_protocol::NodeId;
use std::f64::consts::TAU;

/// The run seed of a run that names none.
pub const DEFAULT_RUN_SEED: u64 = 0;
/// Largest offset of a rack's coolant supply from its setpoint for a run, K.
pub const SUPPLY_OFFSET_MAX_K: f64 = 0.5;
/// Largest amplitude of a rack's inlet drift during a run, K.
pub const SUPPLY_DRIFT_MAX_K: f64 = 0.3;
/// Shortest period of the inlet drift, s.
pub const SUPPLY_DRIFT_PERIOD_MIN_S: f64 = 600.0;
/// Longest period of the inlet drift, s.
pub const SUPPLY_DRIFT_PERIOD_MAX_S: f64 = 1800.0;
/// Largest change of a node's base load for a run (the room's air), fraction.
pub const BASE_LOAD_VARIATION: f64 = 0.01;
/// Largest noise of a power reading, fraction of the reading.
pub const POWER_NOISE_FRACTION: f64 = 0.005;
/// Largest noise of a temperature reading, K.
pub const TEMP_NOISE_K: f64 = 0.25;

/// What this run's conditions are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunConditions {
    /// No run-to-run variation: the equations exactly (for tests of the equations).
    #[default]
    Nominal,
    /// A run whose supply offsets, drift, base loads and sensor noise are drawn from this seed.
    Seeded(u64),
}

impl RunConditions {
    /// The run seed; `None` for nominal conditions.
    pub fn seed(&self) -> Option<u64> {
        match self {
            RunConditions::Nominal => None,
            RunConditions::Seeded(s) => Some(*s),
        }
    }

    /// A draw uniform in -1..=1 for `key`, 0 under nominal conditions. The keys start with `run/`
    /// so that a run seed equal to the hall's seed still draws independently of the hardware.
    fn draw(&self, key: &str) -> f64 {
        self.seed().map_or(0.0, |s| draw(s, &format!("run/{key}")))
    }

    /// How rack `rack`'s coolant supply departs from its setpoint in this run.
    pub fn supply(&self, rack: &str) -> SupplyVariation {
        if self.seed().is_none() {
            return SupplyVariation::default();
        }
        let half = |v: f64| (v + 1.0) / 2.0;
        SupplyVariation {
            offset_k: SUPPLY_OFFSET_MAX_K * self.draw(&format!("{rack}/supply_offset")),
            drift_k: SUPPLY_DRIFT_MAX_K * half(self.draw(&format!("{rack}/drift_amplitude"))),
            drift_period_s: SUPPLY_DRIFT_PERIOD_MIN_S
                + (SUPPLY_DRIFT_PERIOD_MAX_S - SUPPLY_DRIFT_PERIOD_MIN_S)
                    * half(self.draw(&format!("{rack}/drift_period"))),
            drift_phase_rad: TAU * half(self.draw(&format!("{rack}/drift_phase"))),
        }
    }

    /// What node `node`'s base load is multiplied by in this run (the room's air: fans, CPUs).
    pub fn base_load_factor(&self, node: &NodeId) -> f64 {
        1.0 + BASE_LOAD_VARIATION * self.draw(&format!("{node}/base_load"))
    }

    /// The noise of node `node`'s sensors in this run.
    pub fn sensor_noise(&self, node: &NodeId) -> SensorNoise {
        SensorNoise {
            key: self
                .seed()
                .map(|s| fnv1a(format!("run/{node}/sensors").as_bytes(), mix(s))),
        }
    }
}

/// A rack's coolant supply in one run: setpoint + offset + drift·sin(2π·t/period + phase), with
/// `t` from the loop's first instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SupplyVariation {
    /// Offset from the setpoint for the whole run, K (within ±[`SUPPLY_OFFSET_MAX_K`]).
    pub offset_k: f64,
    /// Amplitude of the inlet drift, K (0 to [`SUPPLY_DRIFT_MAX_K`]).
    pub drift_k: f64,
    /// Period of the drift, s.
    pub drift_period_s: f64,
    /// Phase of the drift at the loop's first instant, rad.
    pub drift_phase_rad: f64,
}

impl SupplyVariation {
    /// The departure from the setpoint `t_s` seconds after the loop's first instant, K.
    pub fn at(&self, t_s: f64) -> f64 {
        if self.drift_k == 0.0 || self.drift_period_s <= 0.0 || !t_s.is_finite() {
            return self.offset_k + self.drift_k * self.drift_phase_rad.sin();
        }
        self.offset_k
            + self.drift_k * (TAU * t_s / self.drift_period_s + self.drift_phase_rad).sin()
    }
}

/// What a power reading's noise is keyed by (a temperature reading's too), per device.
const POWER: u64 = 1;
const GPU_TEMP: u64 = 2;
const MEM_TEMP: u64 = 3;
const NODE_POWER: u64 = 4;

/// The noise of one node's sensors in one run; none under nominal conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorNoise {
    key: Option<u64>,
}

impl SensorNoise {
    /// No noise.
    pub fn none() -> SensorNoise {
        SensorNoise { key: None }
    }

    /// A draw uniform in -1..=1 for quantity `what` of device `device` at instant `t_ns`.
    fn draw(&self, device: u16, what: u64, t_ns: i64) -> f64 {
        self.key.map_or(0.0, |k| {
            unit(mix(mix(mix(k ^ u64::from(device)) ^ what) ^ (t_ns as u64)))
        })
    }

    /// Device `device`'s reading at `t_ns` as its sensors read it: power and temperatures with
    /// their noise; energy, clocks, utilisation and reasons as they are. Absent stays absent.
    pub fn device_reading(&self, mut r: DeviceReading, t_ns: i64) -> DeviceReading {
        if self.key.is_none() {
            return r;
        }
        let d = r.device;
        r.power_w = r
            .power_w
            .map(|w| w * (1.0 + POWER_NOISE_FRACTION * self.draw(d, POWER, t_ns)));
        r.gpu_temp_c = r
            .gpu_temp_c
            .map(|c| c + TEMP_NOISE_K * self.draw(d, GPU_TEMP, t_ns));
        r.mem_temp_c = r
            .mem_temp_c
            .map(|c| c + TEMP_NOISE_K * self.draw(d, MEM_TEMP, t_ns));
        r
    }

    /// The node's power reading at `t_ns` for a true `power_w`.
    pub fn node_power(&self, power_w: f64, t_ns: i64) -> f64 {
        power_w * (1.0 + POWER_NOISE_FRACTION * self.draw(0, NODE_POWER, t_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        NodeId::new("row1-rack01-n01").unwrap()
    }

    #[test]
    fn nominal_conditions_vary_nothing() {
        let n = RunConditions::Nominal;
        assert_eq!(n.supply("row1-rack01"), SupplyVariation::default());
        assert_eq!(n.supply("row1-rack01").at(1234.0), 0.0);
        assert_eq!(n.base_load_factor(&node()), 1.0);
        assert_eq!(n.sensor_noise(&node()), SensorNoise::none());
        assert_eq!(n.sensor_noise(&node()).node_power(5000.0, 7), 5000.0);
    }

    #[test]
    fn run_draws_are_reproducible_bounded_and_differ_between_seeds() {
        let racks: Vec<String> = (1..=50).map(|i| format!("row1-rack{i:02}")).collect();
        let offsets = |seed| -> Vec<f64> {
            racks
                .iter()
                .map(|r| RunConditions::Seeded(seed).supply(r).offset_k)
                .collect()
        };
        assert_eq!(offsets(3), offsets(3));
        assert_ne!(offsets(3), offsets(4));
        for seed in 0..20 {
            for r in &racks {
                let v = RunConditions::Seeded(seed).supply(r);
                assert!(v.offset_k.abs() <= SUPPLY_OFFSET_MAX_K, "{v:?}");
                assert!((0.0..=SUPPLY_DRIFT_MAX_K).contains(&v.drift_k), "{v:?}");
                assert!(
                    (SUPPLY_DRIFT_PERIOD_MIN_S..=SUPPLY_DRIFT_PERIOD_MAX_S)
                        .contains(&v.drift_period_s),
                    "{v:?}"
                );
                for t in [0.0, 100.0, 450.0, 3600.0] {
                    assert!(v.at(t).abs() <= SUPPLY_OFFSET_MAX_K + SUPPLY_DRIFT_MAX_K);
                }
            }
        }
        // The offsets use their range: some racks well above, some well below the setpoint.
        let all = offsets(9);
        assert!(all.iter().any(|o| *o > 0.3) && all.iter().any(|o| *o < -0.3));
        let f = RunConditions::Seeded(5).base_load_factor(&node());
        assert!((f - 1.0).abs() <= BASE_LOAD_VARIATION && f != 1.0, "{f}");
    }

    #[test]
    fn the_drift_moves_slowly() {
        let v = RunConditions::Seeded(11).supply("row2-rack03");
        // Over one minute the drift moves at most 2π·amplitude·60/period.
        let most = TAU * v.drift_k * 60.0 / v.drift_period_s + 1e-12;
        assert!((v.at(60.0) - v.at(0.0)).abs() <= most, "{v:?}");
        assert_eq!(v.at(0.0), v.offset_k + v.drift_k * v.drift_phase_rad.sin());
    }

    #[test]
    fn sensor_noise_is_bounded_keyed_by_instant_and_leaves_the_rest_alone() {
        let noise = RunConditions::Seeded(1).sensor_noise(&node());
        let truth = DeviceReading {
            device: 2,
            power_w: Some(1000.0),
            energy_j: Some(5.0),
            gpu_temp_c: Some(70.0),
            mem_temp_c: Some(65.0),
            sm_clock_mhz: Some(1980),
            util_pct: Some(100.0),
            throttle_reasons: 4,
            shut_down: false,
        };
        let mut seen = Vec::new();
        for t in 0..2000i64 {
            let r = noise.device_reading(truth.clone(), t * 100_000_000);
            assert_eq!(r, noise.device_reading(truth.clone(), t * 100_000_000));
            let p = r.power_w.unwrap();
            assert!(
                (p - 1000.0).abs() <= 1000.0 * POWER_NOISE_FRACTION + 1e-9,
                "{p}"
            );
            let g = r.gpu_temp_c.unwrap();
            assert!((g - 70.0).abs() <= TEMP_NOISE_K + 1e-12, "{g}");
            assert!((r.mem_temp_c.unwrap() - 65.0).abs() <= TEMP_NOISE_K + 1e-12);
            assert_eq!(
                (r.energy_j, r.sm_clock_mhz, r.util_pct, r.throttle_reasons),
                (Some(5.0), Some(1980), Some(100.0), 4)
            );
            seen.push(g);
        }
        // Noise, not an offset: centred on the truth and spread over its range.
        let mean = seen.iter().sum::<f64>() / seen.len() as f64;
        assert!((mean - 70.0).abs() < 0.02, "{mean}");
        assert!(seen.iter().any(|g| *g > 70.2) && seen.iter().any(|g| *g < 69.8));
        // Absent stays absent; another seed reads differently.
        let absent = DeviceReading {
            power_w: None,
            gpu_temp_c: None,
            ..truth.clone()
        };
        let r = noise.device_reading(absent, 0);
        assert_eq!((r.power_w, r.gpu_temp_c), (None, None));
        let other = RunConditions::Seeded(2).sensor_noise(&node());
        assert_ne!(
            noise.device_reading(truth.clone(), 0),
            other.device_reading(truth, 0)
        );
    }
}
