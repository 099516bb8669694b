//! One simulated GPU: power, energy, temperature, thermal throttling and shutdown.
//!
//! Equations (see `docs/HALL.md` for the reasoning behind the constants):
//!
//! * clock factor `f`: 1 at or below the slowdown temperature `T_s`; above it the software thermal
//!   controller lowers the clocks in proportion to the excess, `f = max(F_MIN, 1 − K_T·(T − T_s))`
//!   with [`THROTTLE_GAIN_PER_K`] and [`MIN_CLOCK_FACTOR`]; this holds the temperature within a few
//!   kelvin of `T_s` as long as the clocks can go low enough.
//! * power `P = P_idle + (P_limit − P_idle) · level · f · e`, capped at `P_limit` (then the power cap
//!   lowers the clocks and `SW_POWER_CAP` is set); `e` is the device's seeded efficiency factor.
//! * temperature `dT/dt = (P·R − (T − T_coolant)) / (R·C)`, integrated exactly over each step with `P`
//!   and `T_coolant` held (so any step size is stable); steady state `T = T_coolant + P·R`.
//! * memory (HBM) temperature follows `T_coolant + 0.9·(T − T_coolant)` with 1.5× the lag.
//! * at the shutdown temperature the device shuts down: load and power go to 0 and it stays down.

use crate::backend::{throttle, DeviceReading};

/// Clock reduction per kelvin above the slowdown temperature (fraction of full clocks per K).
pub const THROTTLE_GAIN_PER_K: f64 = 0.25;
/// The lowest clock factor the software thermal controller goes to.
pub const MIN_CLOCK_FACTOR: f64 = 0.35;
/// Share of the GPU's rise over the coolant that the memory sees.
pub const MEM_COUPLING: f64 = 0.9;
/// Memory time constant as a multiple of the GPU's.
pub const MEM_LAG_FACTOR: f64 = 1.5;

/// The resolved figures of one device (spec, seeded spread and faults applied).
#[derive(Debug, Clone, PartialEq)]
pub struct GpuParams {
    pub idle_power_w: f64,
    pub power_limit_w: f64,
    /// Multiplies the dynamic power (1.0 = nominal).
    pub efficiency: f64,
    /// Cold-plate resistance, K/W.
    pub resistance_k_per_w: f64,
    /// Heat capacity, J/K.
    pub capacitance_j_per_k: f64,
    pub slowdown_temp_c: f64,
    pub shutdown_temp_c: f64,
    pub max_sm_clock_mhz: u32,
    pub idle_sm_clock_mhz: u32,
    /// Dense throughput at full clocks and full load, TFLOP/s.
    pub peak_tflops: f64,
}

impl GpuParams {
    /// R·C, s.
    pub fn time_constant_s(&self) -> f64 {
        self.resistance_k_per_w * self.capacitance_j_per_k
    }
}

/// Where a device operates at one temperature and load level.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OperatingPoint {
    power_w: f64,
    /// Thermal clock factor.
    thermal: f64,
    /// The power cap holds the device.
    capped: bool,
    /// Clocks relative to full speed (thermal and power cap together).
    clocks: f64,
}

/// The state of one simulated GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct SimGpu {
    params: GpuParams,
    level: f64,
    temp_c: f64,
    mem_temp_c: f64,
    energy_j: f64,
    /// Work done since creation, TFLOP (the model of a GEMM burn's arithmetic).
    work_tflop: f64,
    shut_down: bool,
    rising: bool,
}

impl SimGpu {
    /// An idle device in thermal equilibrium with coolant at `coolant_c`.
    pub fn new(params: GpuParams, coolant_c: f64) -> Self {
        let temp_c = coolant_c + params.idle_power_w * params.resistance_k_per_w;
        let mem_temp_c = mem_target(temp_c, coolant_c);
        SimGpu {
            params,
            level: 0.0,
            temp_c,
            mem_temp_c,
            energy_j: 0.0,
            work_tflop: 0.0,
            shut_down: false,
            rising: false,
        }
    }

    pub fn params(&self) -> &GpuParams {
        &self.params
    }

    /// Sets the load level (clamped to 0.0..=1.0; NaN counts as 0). Ignored once shut down.
    pub fn set_level(&mut self, level: f64) {
        if !self.shut_down {
            self.level = if level.is_nan() {
                0.0
            } else {
                level.clamp(0.0, 1.0)
            };
        }
    }

    pub fn level(&self) -> f64 {
        self.level
    }

    pub fn temp_c(&self) -> f64 {
        self.temp_c
    }

    pub fn mem_temp_c(&self) -> f64 {
        self.mem_temp_c
    }

    pub fn energy_j(&self) -> f64 {
        self.energy_j
    }

    /// Work done since creation, TFLOP: peak × level × clock factor, integrated over time.
    pub fn work_tflop(&self) -> f64 {
        self.work_tflop
    }

    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Power drawn now, W.
    pub fn power_w(&self) -> f64 {
        self.operating_point().power_w
    }

    fn operating_point(&self) -> OperatingPoint {
        let p = &self.params;
        if self.shut_down {
            return OperatingPoint {
                power_w: 0.0,
                thermal: 0.0,
                capped: false,
                clocks: 0.0,
            };
        }
        let thermal = if self.temp_c > p.slowdown_temp_c {
            (1.0 - THROTTLE_GAIN_PER_K * (self.temp_c - p.slowdown_temp_c)).max(MIN_CLOCK_FACTOR)
        } else {
            1.0
        };
        let dynamic = (p.power_limit_w - p.idle_power_w) * self.level * thermal * p.efficiency;
        let uncapped = p.idle_power_w + dynamic;
        if uncapped > p.power_limit_w && dynamic > 0.0 {
            let cap = (p.power_limit_w - p.idle_power_w) / dynamic;
            OperatingPoint {
                power_w: p.power_limit_w,
                thermal,
                capped: true,
                clocks: thermal * cap,
            }
        } else {
            OperatingPoint {
                power_w: uncapped,
                thermal,
                capped: false,
                clocks: thermal,
            }
        }
    }

    /// Advances the device by `dt_s` seconds with coolant at `coolant_c`.
    pub fn step(&mut self, dt_s: f64, coolant_c: f64) {
        if dt_s <= 0.0 || !dt_s.is_finite() {
            return;
        }
        let op = self.operating_point();
        self.energy_j += op.power_w * dt_s;
        self.work_tflop += self.params.peak_tflops * self.level * op.clocks * dt_s;
        let tau = self.params.time_constant_s().max(1e-3);
        let steady = coolant_c + op.power_w * self.params.resistance_k_per_w;
        let before = self.temp_c;
        self.temp_c = steady + (before - steady) * (-dt_s / tau).exp();
        self.rising = self.temp_c > before + 1e-6;
        let mem_steady = mem_target(self.temp_c, coolant_c);
        self.mem_temp_c =
            mem_steady + (self.mem_temp_c - mem_steady) * (-dt_s / (tau * MEM_LAG_FACTOR)).exp();
        if !self.shut_down && self.temp_c >= self.params.shutdown_temp_c {
            self.shut_down = true;
            self.level = 0.0;
        }
    }

    /// Stops the load (level 0).
    pub fn stop(&mut self) {
        self.level = 0.0;
    }

    /// NVML clock-event reason bits now.
    pub fn throttle_reasons(&self) -> u64 {
        if self.shut_down {
            return throttle::HW_THERMAL;
        }
        let op = self.operating_point();
        let mut bits = 0;
        if self.level <= 0.0 {
            bits |= throttle::GPU_IDLE;
        }
        if op.capped {
            bits |= throttle::SW_POWER_CAP;
        }
        if op.thermal < 1.0 {
            bits |= throttle::SW_THERMAL;
            if op.thermal <= MIN_CLOCK_FACTOR && self.rising {
                bits |= throttle::HW_THERMAL;
            }
        }
        bits
    }

    /// The SM clock now, MHz: idle clock with no load, 0 when shut down.
    pub fn sm_clock_mhz(&self) -> u32 {
        if self.shut_down {
            return 0;
        }
        if self.level <= 0.0 {
            return self.params.idle_sm_clock_mhz;
        }
        let op = self.operating_point();
        let mhz = f64::from(self.params.max_sm_clock_mhz) * op.clocks;
        (mhz.round() as u32).max(
            self.params
                .idle_sm_clock_mhz
                .min(self.params.max_sm_clock_mhz),
        )
    }

    /// Everything a sensor reads from this device now.
    pub fn reading(&self, device: u16) -> DeviceReading {
        DeviceReading {
            device,
            power_w: Some(self.power_w()),
            energy_j: Some(self.energy_j),
            gpu_temp_c: Some(self.temp_c),
            mem_temp_c: Some(self.mem_temp_c),
            sm_clock_mhz: Some(self.sm_clock_mhz()),
            util_pct: Some(self.level * 100.0),
            throttle_reasons: self.throttle_reasons(),
            shut_down: self.shut_down,
        }
    }
}

fn mem_target(gpu_c: f64, coolant_c: f64) -> f64 {
    coolant_c + MEM_COUPLING * (gpu_c - coolant_c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(r_factor: f64) -> GpuParams {
        GpuParams {
            idle_power_w: 150.0,
            power_limit_w: 1000.0,
            efficiency: 1.0,
            resistance_k_per_w: 0.045 * r_factor,
            capacitance_j_per_k: 10.0 / 0.045,
            slowdown_temp_c: 88.0,
            shutdown_temp_c: 93.0,
            max_sm_clock_mhz: 1980,
            peak_tflops: 2000.0,
            idle_sm_clock_mhz: 345,
        }
    }

    fn run(gpu: &mut SimGpu, seconds: f64, dt: f64, coolant: f64) {
        let steps = (seconds / dt).round() as usize;
        for _ in 0..steps {
            gpu.step(dt, coolant);
        }
    }

    #[test]
    fn steady_state_is_coolant_plus_power_times_resistance() {
        for (level, coolant) in [(1.0, 30.0), (0.5, 25.0), (0.3, 40.0)] {
            let mut gpu = SimGpu::new(params(1.0), coolant);
            gpu.set_level(level);
            // 8 time constants at a coarse 0.5 s step.
            run(&mut gpu, 8.0 * 10.0, 0.5, coolant);
            let p = gpu.power_w();
            let expected = coolant + p * 0.045;
            assert!(
                (gpu.temp_c() - expected).abs() < 0.02 * (expected - coolant),
                "{level}"
            );
            assert!((p - (150.0 + 850.0 * level)).abs() < 1e-9);
            assert_eq!(gpu.throttle_reasons(), 0, "level {level}");
            assert_eq!(gpu.sm_clock_mhz(), 1980);
            assert!(gpu.mem_temp_c() < gpu.temp_c() && gpu.mem_temp_c() > coolant);
        }
    }

    #[test]
    fn energy_integrates_power() {
        let mut gpu = SimGpu::new(params(1.0), 30.0);
        gpu.set_level(1.0);
        run(&mut gpu, 10.0, 0.05, 30.0);
        assert!(
            (gpu.energy_j() - 10_000.0).abs() < 1.0,
            "{}",
            gpu.energy_j()
        );
    }

    #[test]
    fn idle_device_draws_idle_power_and_says_so() {
        let mut gpu = SimGpu::new(params(1.0), 30.0);
        run(&mut gpu, 60.0, 1.0, 30.0);
        let r = gpu.reading(2);
        assert_eq!(r.power_w, Some(150.0));
        assert_eq!(r.throttle_reasons, throttle::GPU_IDLE);
        assert_eq!(r.sm_clock_mhz, Some(345));
        assert_eq!(r.util_pct, Some(0.0));
        assert!((gpu.temp_c() - (30.0 + 150.0 * 0.045)).abs() < 1e-6);
    }

    #[test]
    fn hot_coolant_throttles_and_holds_near_slowdown() {
        let mut gpu = SimGpu::new(params(1.0), 50.0);
        gpu.set_level(1.0);
        let full = gpu.power_w();
        run(&mut gpu, 120.0, 0.05, 50.0);
        let r = gpu.reading(0);
        assert!(r.throttle_reasons & throttle::SW_THERMAL != 0);
        assert_eq!(r.throttle_reasons & throttle::HW_THERMAL, 0);
        assert!(!r.shut_down);
        let t = gpu.temp_c();
        assert!(t > 88.0 && t < 91.0, "{t}");
        assert!(gpu.power_w() < full - 50.0, "{}", gpu.power_w());
        assert!(r.sm_clock_mhz.is_some_and(|c| c < 1900));
        // Cooler water lets it recover.
        run(&mut gpu, 120.0, 0.05, 30.0);
        assert_eq!(gpu.throttle_reasons(), 0);
        assert_eq!(gpu.sm_clock_mhz(), 1980);
    }

    #[test]
    fn shutdown_temperature_stops_the_device_for_good() {
        // A cold plate five times worse than nominal cannot be held even at the lowest clocks.
        let mut gpu = SimGpu::new(params(5.0), 30.0);
        gpu.set_level(1.0);
        let mut saw_hw = false;
        for _ in 0..2000 {
            gpu.step(0.1, 30.0);
            saw_hw |= gpu.throttle_reasons() & throttle::HW_THERMAL != 0;
            if gpu.is_shut_down() {
                break;
            }
        }
        assert!(saw_hw);
        assert!(gpu.is_shut_down());
        let r = gpu.reading(0);
        assert!(r.shut_down);
        assert_eq!(r.power_w, Some(0.0));
        assert_eq!(r.sm_clock_mhz, Some(0));
        gpu.set_level(1.0);
        run(&mut gpu, 600.0, 1.0, 30.0);
        assert!(gpu.is_shut_down());
        assert_eq!(gpu.power_w(), 0.0);
        assert_eq!(gpu.level(), 0.0);
        assert!((gpu.temp_c() - 30.0).abs() < 0.5);
    }

    #[test]
    fn efficient_devices_hit_the_power_cap() {
        let mut p = params(1.0);
        p.efficiency = 1.03;
        let mut gpu = SimGpu::new(p, 30.0);
        gpu.set_level(1.0);
        assert_eq!(gpu.power_w(), 1000.0);
        assert_eq!(gpu.throttle_reasons(), throttle::SW_POWER_CAP);
        assert!(gpu.sm_clock_mhz() < 1980 && gpu.sm_clock_mhz() > 1900);
        gpu.set_level(0.5);
        assert!(gpu.power_w() < 1000.0);
        assert_eq!(gpu.throttle_reasons(), 0);
    }
}
