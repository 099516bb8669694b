//! [`SimBackend`]: the simulated devices of one node, driven through the [`Backend`] trait.
//!
//! Each call to [`Backend::sample`] integrates the node's GPUs and its rack's coolant loop from the
//! previous sample up to `now_ns`, in sub-steps of at most [`MAX_STEP_NS`] (longer only for gaps of more
//! than [`MAX_STEPS_PER_SAMPLE`] steps, where the exact exponential integration keeps it stable). Node
//! power is `Σ P_gpu / psu_efficiency + base_load`, and all of it is reported as heat to the rack's loop.
//!
//! The node's [`RunConditions`] (its spec's `run`) scale its base load for the run and add sensor noise
//! to what [`Backend::sample`] reads (power and temperatures); the physics runs on the true values.

use super::conditions::{RunConditions, SensorNoise};
use super::coolant::{CoolantSpec, RackCooling};
use super::physics::{GpuParams, SimGpu};
use super::{sim_inventory, spread, SimGpuSpec};
use crate::backend::{check_level, Backend, BackendError, NodeReading};
use hallmark_protocol::{DeviceInfo, DeviceResult, NodeId};

/// Longest integration step, ns (50 ms).
pub const MAX_STEP_NS: i64 = 50_000_000;
/// Most sub-steps one sample integrates; a longer gap takes longer steps.
pub const MAX_STEPS_PER_SAMPLE: i64 = 20_000;

/// Everything that makes one simulated node.
#[derive(Debug, Clone, PartialEq)]
pub struct SimNodeSpec {
    pub node_id: NodeId,
    pub gpu: SimGpuSpec,
    pub gpus: u16,
    /// CPUs, fans, NICs, W.
    pub base_load_w: f64,
    /// Share of the wall power that reaches the GPUs (0.94 = 94 %).
    pub psu_efficiency: f64,
    /// Seed of the manufacturing spread (the hall's seed).
    pub seed: u64,
    /// What this run varies (the run seed's draws); [`RunConditions::Nominal`] varies nothing.
    pub run: RunConditions,
    /// Injected weak cold plates: (device, factor multiplying its resistance).
    pub cold_plate_factors: Vec<(u16, f64)>,
}

impl SimNodeSpec {
    /// Checks the figures the physics divides by or integrates.
    pub fn validate(&self) -> Result<(), BackendError> {
        let g = &self.gpu;
        let bad = |what: &str| Err(BackendError::Config(format!("{}: {what}", self.node_id)));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(g.power_limit_w) && g.idle_power_w.is_finite() && g.idle_power_w >= 0.0) {
            return bad("power limit must be positive and idle power non-negative");
        }
        if g.idle_power_w >= g.power_limit_w {
            return bad("idle power must be below the power limit");
        }
        if !(positive(g.thermal_time_constant_s) && positive(g.cold_plate_resistance_k_per_w)) {
            return bad("thermal time constant and cold-plate resistance must be positive");
        }
        if !(g.slowdown_temp_c.is_finite() && g.shutdown_temp_c.is_finite())
            || g.slowdown_temp_c >= g.shutdown_temp_c
        {
            return bad("slowdown temperature must be below the shutdown temperature");
        }
        if !((0.0..0.5).contains(&g.efficiency_spread) && (0.0..0.5).contains(&g.resistance_spread))
        {
            return bad("spreads must be within 0.0..0.5");
        }
        if !(self.psu_efficiency > 0.0 && self.psu_efficiency <= 1.0) {
            return bad("PSU efficiency must be within 0.0 (exclusive) and 1.0");
        }
        if !(self.base_load_w.is_finite() && self.base_load_w >= 0.0) {
            return bad("base load must be non-negative");
        }
        for (device, factor) in &self.cold_plate_factors {
            if *device >= self.gpus || !positive(*factor) {
                return bad("a cold-plate factor names a missing device or is not positive");
            }
        }
        Ok(())
    }

    /// The resolved figures of device `index`: spec, seeded spread and injected faults.
    pub fn device_params(&self, index: u16) -> GpuParams {
        let g = &self.gpu;
        let e = spread(self.seed, &self.node_id, index, "efficiency");
        let r = spread(self.seed, &self.node_id, index, "cold_plate");
        let fault: f64 = self
            .cold_plate_factors
            .iter()
            .filter(|(d, _)| *d == index)
            .map(|(_, f)| *f)
            .product();
        GpuParams {
            idle_power_w: g.idle_power_w,
            power_limit_w: g.power_limit_w,
            efficiency: 1.0 + g.efficiency_spread * e,
            resistance_k_per_w: g.cold_plate_resistance_k_per_w
                * (1.0 + g.resistance_spread * r)
                * fault,
            // The heat capacity is the module's: the nominal time constant over the nominal resistance.
            capacitance_j_per_k: g.thermal_time_constant_s / g.cold_plate_resistance_k_per_w,
            slowdown_temp_c: g.slowdown_temp_c,
            shutdown_temp_c: g.shutdown_temp_c,
            max_sm_clock_mhz: g.max_sm_clock_mhz,
            idle_sm_clock_mhz: g.idle_sm_clock_mhz,
            peak_tflops: g.peak_tflops,
        }
    }
}

/// One simulated node: its GPUs and its way to the rack's coolant loop.
#[derive(Debug)]
pub struct SimBackend {
    spec: SimNodeSpec,
    inventory: Vec<DeviceInfo>,
    gpus: Vec<SimGpu>,
    cooling: RackCooling,
    /// The base load in this run (the spec's, times the run's factor), W.
    base_load_w: f64,
    noise: SensorNoise,
    t_ns: Option<i64>,
    /// Each device's work (TFLOP) and the instant at the previous `take_results`.
    results_mark: Option<(i64, Vec<f64>)>,
}

impl SimBackend {
    /// A node with idle devices in equilibrium with its loop's supply; reports its idle heat to the
    /// loop at once. The clock starts at the first [`Backend::sample`].
    pub fn new(spec: SimNodeSpec, mut cooling: RackCooling) -> Result<Self, BackendError> {
        spec.validate()?;
        let supply = cooling.supply_c();
        let gpus: Vec<SimGpu> = (0..spec.gpus)
            .map(|i| SimGpu::new(spec.device_params(i), supply))
            .collect();
        let inventory = sim_inventory(&spec.node_id, spec.gpus, &spec.gpu);
        let base_load_w = spec.base_load_w * spec.run.base_load_factor(&spec.node_id);
        let noise = spec.run.sensor_noise(&spec.node_id);
        let heat = node_power(&gpus, spec.psu_efficiency, base_load_w);
        cooling.report_heat(heat);
        Ok(SimBackend {
            spec,
            inventory,
            gpus,
            cooling,
            base_load_w,
            noise,
            t_ns: None,
            results_mark: None,
        })
    }

    /// A node of `gpus` default GPUs outside any hall file: default base load and PSU, and a
    /// coolant loop of its own (a rack of one node at the default setpoint and capacity).
    pub fn standalone(node_id: NodeId, gpus: u16) -> Result<Self, BackendError> {
        let spec = SimNodeSpec {
            node_id,
            gpu: SimGpuSpec::default(),
            gpus,
            base_load_w: crate::sim::hall::DEFAULT_BASE_LOAD_W,
            psu_efficiency: crate::sim::hall::DEFAULT_PSU_EFFICIENCY,
            seed: 0,
            run: RunConditions::Nominal,
            cold_plate_factors: Vec::new(),
        };
        SimBackend::new(spec, RackCooling::scaled(CoolantSpec::default(), 1))
    }

    pub fn spec(&self) -> &SimNodeSpec {
        &self.spec
    }

    pub fn node_id(&self) -> &NodeId {
        &self.spec.node_id
    }

    /// Device `index`, for inspection.
    pub fn gpu(&self, index: u16) -> Option<&SimGpu> {
        self.gpus.get(usize::from(index))
    }

    /// Wall power of the node now, W (also the heat it gives its rack's loop): the truth, without
    /// the sensor noise of what [`Backend::sample`] reads.
    pub fn node_power_w(&self) -> f64 {
        node_power(&self.gpus, self.spec.psu_efficiency, self.base_load_w)
    }

    /// The node's base load in this run, W.
    pub fn base_load_w(&self) -> f64 {
        self.base_load_w
    }

    /// Supply temperature of the rack's loop, °C.
    pub fn supply_c(&self) -> f64 {
        self.cooling.supply_c()
    }

    /// The rack's heat as this node's loop sees it, W.
    pub fn rack_heat_w(&self) -> f64 {
        self.cooling.rack_heat_w()
    }

    fn integrate(&mut self, from_ns: i64, to_ns: i64) {
        let gap = to_ns.saturating_sub(from_ns);
        let step = MAX_STEP_NS.max(gap / MAX_STEPS_PER_SAMPLE + 1);
        let mut t = from_ns;
        while t < to_ns {
            let next = to_ns.min(t.saturating_add(step));
            let heat = self.node_power_w();
            let supply = self.cooling.exchange(next, heat);
            let dt = (next - t) as f64 / 1e9;
            for gpu in &mut self.gpus {
                gpu.step(dt, supply);
            }
            t = next;
        }
        let heat = self.node_power_w();
        self.cooling.report_heat(heat);
    }

    /// What the node's sensors read now: the truth with this run's sensor noise.
    fn reading(&self) -> NodeReading {
        let t = self.t_ns.unwrap_or(0);
        NodeReading {
            devices: self
                .gpus
                .iter()
                .zip(0u16..)
                .map(|(g, i)| self.noise.device_reading(g.reading(i), t))
                .collect(),
            node_power_w: Some(self.noise.node_power(self.node_power_w(), t)),
        }
    }
}

fn node_power(gpus: &[SimGpu], psu_efficiency: f64, base_load_w: f64) -> f64 {
    let gpu_w: f64 = gpus.iter().map(SimGpu::power_w).sum();
    gpu_w / psu_efficiency + base_load_w
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    /// The simulation model's version ([`crate::software::simulator`]).
    fn software(&self) -> Vec<hallmark_protocol::SoftwareVersion> {
        crate::software::simulator()
    }

    fn inventory(&self) -> &[DeviceInfo] {
        &self.inventory
    }

    /// A device that has shut down accepts the call and stays at level 0.
    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError> {
        let count = self.gpus.len();
        let level = check_level(device, level)?;
        let gpu = self
            .gpus
            .get_mut(usize::from(device))
            .ok_or(BackendError::NoSuchDevice { device, count })?;
        gpu.set_level(level);
        Ok(())
    }

    /// An instant at or before the previous sample integrates nothing and reads the state as it is.
    fn sample(&mut self, now_ns: i64) -> Result<NodeReading, BackendError> {
        match self.t_ns {
            None => {
                let heat = self.node_power_w();
                self.cooling.exchange(now_ns, heat);
                self.t_ns = Some(now_ns);
            }
            Some(t) if now_ns > t => {
                self.integrate(t, now_ns);
                self.t_ns = Some(now_ns);
            }
            Some(_) => {}
        }
        Ok(self.reading())
    }

    fn stop_all(&mut self) {
        for gpu in &mut self.gpus {
            gpu.stop();
        }
        let heat = self.node_power_w();
        self.cooling.report_heat(heat);
    }

    /// Achieved GFLOP/s since the previous call: the modelled work (peak × level × clock factor)
    /// over the time between the calls. The modelled GEMM's result check is clean: 0 wrong
    /// elements (the simulation injects no silent data corruption).
    fn take_results(&mut self, now_ns: i64) -> Vec<DeviceResult> {
        // Bring the physics up to `now_ns` first, so the work is counted to that instant.
        let _ = self.sample(now_ns);
        let work: Vec<f64> = self.gpus.iter().map(|g| g.work_tflop()).collect();
        let previous = self.results_mark.replace((now_ns, work.clone()));
        let Some((since, before)) = previous else {
            return Vec::new();
        };
        let seconds = (now_ns - since) as f64 / 1e9;
        if seconds <= 0.0 {
            return Vec::new();
        }
        work.iter()
            .zip(before)
            .enumerate()
            .map(|(i, (now, then))| DeviceResult {
                device: i as u16,
                gflops: Some((now - then) * 1000.0 / seconds),
                mem_bandwidth_gbps: None,
                wrong_elements: 0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::coolant::CoolantSpec;
    use super::*;
    use crate::backend::throttle;
    const S: i64 = 1_000_000_000;

    fn spec(factors: Vec<(u16, f64)>) -> SimNodeSpec {
        SimNodeSpec {
            node_id: NodeId::new("row1-rack01-n01").unwrap(),
            gpu: SimGpuSpec::default(),
            gpus: 8,
            base_load_w: 1500.0,
            psu_efficiency: 0.94,
            seed: 1,
            run: RunConditions::Nominal,
            cold_plate_factors: factors,
        }
    }

    fn alone(factors: Vec<(u16, f64)>, capacity_kw: f64) -> SimBackend {
        let coolant = CoolantSpec {
            capacity_kw,
            ..CoolantSpec::default()
        };
        SimBackend::new(spec(factors), RackCooling::scaled(coolant, 10)).unwrap()
    }

    fn full_load(b: &mut SimBackend, seconds: i64) -> NodeReading {
        for d in 0..8 {
            b.set_level(d, 1.0).unwrap();
        }
        let mut r = b.sample(0).unwrap();
        for t in 1..=seconds {
            r = b.sample(t * S).unwrap();
        }
        r
    }

    #[test]
    fn idle_node_draws_idle_power_plus_base_load() {
        let mut b = alone(vec![], 120.0);
        let r = b.sample(5).unwrap();
        let r2 = b.sample(60 * S).unwrap();
        assert_eq!(r.devices.len(), 8);
        for d in &r2.devices {
            assert_eq!(d.power_w, Some(150.0));
            assert_eq!(d.throttle_reasons, throttle::GPU_IDLE);
            assert!(!d.shut_down);
        }
        let node = r2.node_power_w.unwrap();
        assert!(
            (node - (8.0 * 150.0 / 0.94 + 1500.0)).abs() < 1e-6,
            "{node}"
        );
        assert_eq!(b.name(), "sim");
        assert_eq!(b.inventory().len(), 8);
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        let mut b = alone(vec![], 120.0);
        assert!(matches!(
            b.set_level(8, 0.5),
            Err(BackendError::NoSuchDevice {
                device: 8,
                count: 8
            })
        ));
        assert!(b.set_level(0, f64::NAN).is_err());
        assert!(b.set_level(0, 1.5).is_err());
        b.sample(10 * S).unwrap();
        // Time going backwards integrates nothing.
        let e = b.gpu(0).unwrap().energy_j();
        b.sample(5 * S).unwrap();
        assert_eq!(b.gpu(0).unwrap().energy_j(), e);
        let mut broken = spec(vec![(9, 2.0)]);
        assert!(SimBackend::new(
            broken.clone(),
            RackCooling::scaled(CoolantSpec::default(), 1)
        )
        .is_err());
        broken.cold_plate_factors.clear();
        broken.psu_efficiency = 0.0;
        assert!(SimBackend::new(broken, RackCooling::scaled(CoolantSpec::default(), 1)).is_err());
    }

    #[test]
    fn a_weak_cold_plate_throttles_its_device_only() {
        let mut b = alone(vec![(3, 1.5)], 120.0);
        let r = full_load(&mut b, 120);
        for d in &r.devices {
            let thermal = d.throttle_reasons & throttle::THERMAL != 0;
            assert_eq!(thermal, d.device == 3, "device {}: {d:?}", d.device);
        }
        let weak = &r.devices[3];
        assert!(
            weak.gpu_temp_c.is_some_and(|t| t > 88.0 && t < 91.0),
            "{weak:?}"
        );
        assert!(weak.power_w.is_some_and(|p| p < 950.0), "{weak:?}");
        assert!(weak.sm_clock_mhz.is_some_and(|c| c < 1900));
        assert!(r.devices.iter().all(|d| !d.shut_down));
        assert_eq!(b.supply_c(), 30.0);
    }

    #[test]
    fn a_rack_over_its_cooling_capacity_heats_until_its_gpus_throttle() {
        let mut b = alone(vec![], 60.0);
        let start = full_load(&mut b, 1);
        assert!(start
            .devices
            .iter()
            .all(|d| d.throttle_reasons & throttle::THERMAL == 0));
        let full_node_w = start.node_power_w.unwrap();
        let r = full_load(&mut b, 120);
        assert!(b.supply_c() > 45.0, "supply {}", b.supply_c());
        for d in &r.devices {
            assert!(d.throttle_reasons & throttle::SW_THERMAL != 0, "{d:?}");
            assert!(d.sm_clock_mhz.is_some_and(|c| c < 1800), "{d:?}");
            assert!(d.power_w.is_some_and(|p| p < 900.0), "{d:?}");
            assert!(!d.shut_down);
        }
        assert!(r.node_power_w.unwrap() < full_node_w - 1000.0);
        // The rack's heat (this node × 10) fell with the clocks.
        assert!(b.rack_heat_w() < 10.0 * full_node_w);
    }

    #[test]
    fn the_backend_is_send_and_survives_extreme_clocks() {
        fn send<T: Send>(_: &T) {}
        let mut b = alone(vec![], 120.0);
        send(&b);
        b.set_level(0, 1.0).unwrap();
        b.sample(i64::MIN).unwrap();
        let r = b.sample(i64::MAX).unwrap();
        assert!(r.devices[0].gpu_temp_c.is_some_and(f64::is_finite));
        assert!(r.devices[0].energy_j.is_some_and(f64::is_finite));
    }

    #[test]
    fn achieved_throughput_follows_level_and_clocks() {
        // Plenty of cooling: half load for 10 s gives half the peak, less the power cap's cut.
        let mut b = alone(vec![], 1000.0);
        assert!(
            b.take_results(0).is_empty(),
            "the first call only starts counting"
        );
        for d in 0..8 {
            b.set_level(d, 0.5).unwrap();
        }
        let half = b.take_results(10 * S);
        assert_eq!(half.len(), 8);
        let peak = SimGpuSpec::default().peak_tflops * 1000.0;
        for r in &half {
            let g = r.gflops.unwrap();
            assert!(
                (g - 0.5 * peak).abs() < 1.0,
                "device {}: {g} GFLOP/s",
                r.device
            );
            assert_eq!(r.wrong_elements, 0);
        }
        // An undersized loop throttles the devices: full load achieves clearly less than peak.
        let mut hot = alone(vec![], 20.0);
        hot.take_results(0);
        full_load(&mut hot, 120);
        let throttled = hot.take_results(121 * S);
        let mean = throttled.iter().map(|r| r.gflops.unwrap()).sum::<f64>() / 8.0;
        assert!(mean < 0.9 * peak, "throttled mean {mean} GFLOP/s");
    }

    #[test]
    fn stop_all_drops_every_level() {
        let mut b = alone(vec![], 120.0);
        let busy = full_load(&mut b, 5).node_power_w.unwrap();
        b.stop_all();
        let r = b.sample(6 * S).unwrap();
        assert!(r.node_power_w.unwrap() < busy / 2.0);
        assert!(r.devices.iter().all(|d| d.util_pct == Some(0.0)));
    }

    #[test]
    fn a_seeded_run_adds_noise_to_the_readings_not_to_the_physics() {
        use crate::sim::conditions::{BASE_LOAD_VARIATION, POWER_NOISE_FRACTION, TEMP_NOISE_K};
        let cooling = || RackCooling::scaled(CoolantSpec::default(), 10);
        let mut nominal = SimBackend::new(spec(vec![]), cooling()).unwrap();
        let seeded_spec = SimNodeSpec {
            run: RunConditions::Seeded(5),
            ..spec(vec![])
        };
        let mut seeded = SimBackend::new(seeded_spec.clone(), cooling()).unwrap();
        let mut again = SimBackend::new(seeded_spec, cooling()).unwrap();
        let factor = seeded.base_load_w() / nominal.base_load_w();
        assert!(factor != 1.0 && (factor - 1.0).abs() <= BASE_LOAD_VARIATION);
        let (mut power_differs, mut temp_differs) = (false, false);
        for b in [&mut nominal, &mut seeded, &mut again] {
            for d in 0..8 {
                b.set_level(d, 1.0).unwrap();
            }
        }
        for t in 0..=60 {
            let truth = nominal.sample(t * S).unwrap();
            let read = seeded.sample(t * S).unwrap();
            assert_eq!(
                read,
                again.sample(t * S).unwrap(),
                "the same seed reads the same"
            );
            for (d, (n, r)) in truth.devices.iter().zip(&read.devices).enumerate() {
                // The physics is the nominal node's: the same supply, the same devices.
                let gpu = seeded.gpu(d as u16).unwrap();
                assert_eq!(gpu.temp_c(), nominal.gpu(d as u16).unwrap().temp_c());
                let (np, rp) = (n.power_w.unwrap(), r.power_w.unwrap());
                assert!(
                    (rp - np).abs() <= np * POWER_NOISE_FRACTION + 1e-9,
                    "{rp} vs {np}"
                );
                let (nt, rt) = (n.gpu_temp_c.unwrap(), r.gpu_temp_c.unwrap());
                assert!((rt - nt).abs() <= TEMP_NOISE_K + 1e-9, "{rt} vs {nt}");
                power_differs |= rp != np;
                temp_differs |= rt != nt;
                assert_eq!(
                    (n.energy_j, n.sm_clock_mhz, n.throttle_reasons),
                    (r.energy_j, r.sm_clock_mhz, r.throttle_reasons)
                );
            }
            let (nn, rn) = (truth.node_power_w.unwrap(), read.node_power_w.unwrap());
            let base = nominal.base_load_w();
            let most = (factor - 1.0).abs() * base + (nn + base) * POWER_NOISE_FRACTION;
            assert!((rn - nn).abs() <= most, "{rn} vs {nn}");
        }
        assert!(power_differs && temp_differs);
    }

    #[test]
    fn long_gaps_are_integrated_in_bounded_steps() {
        let mut b = alone(vec![], 120.0);
        for d in 0..8 {
            b.set_level(d, 0.5).unwrap();
        }
        b.sample(0).unwrap();
        let r = b.sample(10 * 24 * 3600 * S).unwrap();
        let d = &r.devices[0];
        let expected = 30.0 + d.power_w.unwrap() * b.gpu(0).unwrap().params().resistance_k_per_w;
        assert!((d.gpu_temp_c.unwrap() - expected).abs() < 0.01);
        let e = d.energy_j.unwrap() / (10.0 * 24.0 * 3600.0);
        assert!((e - d.power_w.unwrap()).abs() < 0.01, "{e}");
    }
}
