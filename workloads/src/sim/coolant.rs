//! A rack's coolant loop (its CDU): a supply setpoint, a heat-removal capacity and a lag.
//!
//! While the rack's heat `Q` stays within the capacity the loop holds its supply at the setpoint. Heat
//! above capacity raises the supply temperature towards `setpoint + rise·(Q − capacity)` with a
//! first-order lag:
//!
//! `dT_supply/dt = (setpoint + rise·max(0, Q − capacity) − T_supply) / lag`
//!
//! (`rise` in K per kW of excess heat, `lag` in s). Every GPU of the rack sees the supply temperature.
//! `Q` is the rack's heat, all of the nodes' electrical power; `capacity` and `rise` are stated per kW
//! of it.
//!
//! What the rack's CDU would measure ([`CoolantLoop::figures`], [`LoopFigures`]), with water
//! (ρ = 997 kg/m³, c_p = 4.18 kJ/(kg·K)):
//! * the liquid captures `capture` of the rack's heat (0.9 by default: direct liquid cooling takes the
//!   GPUs', CPUs' and memory's heat, the rest goes to the room's air);
//! * secondary (rack) side: supply = the loop's supply temperature, flow = the loop's flow (by
//!   default sized for a 10 K rise with the liquid's share of the loop's capacity, times the
//!   `cdu_low_flow` fault's fraction), return = supply + captured / (ρ·c_p·flow), heat removed =
//!   ρ·c_p·flow·(return − supply) = the captured heat (what the CDU's heat meter measures);
//! * primary (facility water) side: supply = setpoint − 5 K (the heat exchanger's approach), flow
//!   sized as the default secondary flow, heat = what the heat exchanger passes on. The loop's
//!   supply model is an energy balance `C·dT_supply/dt = captured − passed on` with the thermal mass
//!   `C = capture·lag/rise` (kJ/K), so the heat passed on is
//!   `capture·(min(Q, capacity) + (T_supply − setpoint)/rise)`: the captured heat in steady state,
//!   less while the loop warms (the undersized rack), more while it cools down.
//!
//! The GPUs see only the supply temperature: a low flow shows in the CDU's ΔT and return
//! temperature, not in the GPUs' (the cold plates' resistance does not depend on the flow here).
//!
//! Two ways to use a loop ([`RackCooling`]):
//! * **shared** — the nodes of a rack simulated in one process share one [`CoolantLoop`] behind an
//!   `Arc<Mutex<…>>` ([`SharedLoop`]); each node holds a slot, reports its latest heat there, and the loop
//!   integrates the sum of the latest heat of all its nodes;
//! * **scaled** — a probe that simulates only its own node owns a private loop and reports its heat
//!   multiplied by the number of nodes in its rack (all nodes run the same synchronised pattern).
//!
//! In a seeded run ([`super::conditions`]) the loop holds `setpoint + v(t)` instead of its setpoint,
//! `v` the rack's [`SupplyVariation`] for the run (an offset and a slow inlet drift, `t` from the
//! loop's first instant); the rise above capacity, the primary side and the energy balance are
//! reckoned from that hold point.

use super::conditions::SupplyVariation;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default supply setpoint, °C (warm-water cooling).
pub const DEFAULT_SETPOINT_C: f64 = 30.0;
/// Default heat-removal capacity of a rack's loop, kW.
pub const DEFAULT_CAPACITY_KW: f64 = 120.0;
/// Default supply rise per kW of heat above capacity, K/kW.
pub const DEFAULT_RISE_K_PER_KW: f64 = 1.5;
/// Default time constant of the supply temperature, s.
pub const DEFAULT_LAG_S: f64 = 12.0;
/// Default share of the rack's heat taken by the liquid (direct liquid cooling).
pub const DEFAULT_CAPTURE_FRACTION: f64 = 0.9;
/// Density of the loop's water, kg/m³.
pub const WATER_DENSITY_KG_PER_M3: f64 = 997.0;
/// Specific heat of the loop's water, kJ/(kg·K).
pub const WATER_SPECIFIC_HEAT_KJ_PER_KG_K: f64 = 4.18;
/// Coolant rise across the rack that the default flow is sized for, at the loop's capacity, K.
pub const DESIGN_RISE_K: f64 = 10.0;
/// Facility water supply below the loop's setpoint (the CDU heat exchanger's approach), K.
pub const PRIMARY_APPROACH_K: f64 = 5.0;

/// The figures of one coolant loop.
#[derive(Debug, Clone, PartialEq)]
pub struct CoolantSpec {
    /// Supply temperature the loop holds while within capacity, °C.
    pub setpoint_c: f64,
    /// Heat the loop removes at its setpoint, kW.
    pub capacity_kw: f64,
    /// Steady-state supply rise per kW of heat above capacity, K/kW.
    pub rise_k_per_kw: f64,
    /// Time constant of the supply temperature, s.
    pub lag_s: f64,
    /// Share of the rack's heat the liquid captures (0.5–1).
    pub capture_fraction: f64,
    /// Nominal secondary flow, L/min; `None`: sized for [`DESIGN_RISE_K`] at the capacity.
    pub flow_lpm: Option<f64>,
    /// Share of the nominal flow the CDU delivers (1; less with a `cdu_low_flow` fault).
    pub flow_fraction: f64,
}

impl Default for CoolantSpec {
    fn default() -> Self {
        CoolantSpec {
            setpoint_c: DEFAULT_SETPOINT_C,
            capacity_kw: DEFAULT_CAPACITY_KW,
            rise_k_per_kw: DEFAULT_RISE_K_PER_KW,
            lag_s: DEFAULT_LAG_S,
            capture_fraction: DEFAULT_CAPTURE_FRACTION,
            flow_lpm: None,
            flow_fraction: 1.0,
        }
    }
}

impl CoolantSpec {
    /// The supply temperature the loop settles at with `heat_w` of heat.
    pub fn steady_supply_c(&self, heat_w: f64) -> f64 {
        let excess_kw = (heat_w / 1000.0 - self.capacity_kw).max(0.0);
        self.setpoint_c + self.rise_k_per_kw * excess_kw
    }

    /// The flow sized for a [`DESIGN_RISE_K`] rise of water carrying the liquid's share of the
    /// capacity, L/min: the primary side's flow and the default secondary flow.
    pub fn design_flow_lpm(&self) -> f64 {
        let captured_kw = self.capture_fraction * self.capacity_kw;
        captured_kw / (WATER_DENSITY_KG_PER_M3 * WATER_SPECIFIC_HEAT_KJ_PER_KG_K * DESIGN_RISE_K)
            * 60_000.0
    }

    /// The secondary flow without faults, L/min.
    pub fn nominal_flow_lpm(&self) -> f64 {
        self.flow_lpm.unwrap_or_else(|| self.design_flow_lpm())
    }

    /// The secondary flow the CDU delivers, L/min.
    pub fn flow_lpm(&self) -> f64 {
        self.nominal_flow_lpm() * self.flow_fraction
    }
}

/// ρ·c_p·flow of water at `flow_lpm`, kW/K.
fn water_kw_per_k(flow_lpm: f64) -> f64 {
    WATER_DENSITY_KG_PER_M3 * WATER_SPECIFIC_HEAT_KJ_PER_KG_K * flow_lpm / 60_000.0
}

/// What a rack's CDU measures, from the loop's state (see the module's notes).
#[derive(Debug, Clone, PartialEq)]
pub struct LoopFigures {
    /// The rack's heat, the sum of its nodes' latest electrical power, W.
    pub rack_heat_w: f64,
    /// The share of it the liquid captures, kW.
    pub captured_kw: f64,
    /// Secondary (rack) side, °C, °C, L/min, kW.
    pub supply_c: f64,
    pub return_c: f64,
    pub flow_lpm: f64,
    pub heat_removed_kw: f64,
    /// Primary (facility water) side: the heat the exchanger passes on, kW; °C, °C, L/min.
    pub primary_heat_kw: f64,
    pub primary_supply_c: f64,
    pub primary_return_c: f64,
    pub primary_flow_lpm: f64,
    /// Coolant density, kg/m³, and specific heat, kJ/(kg·K), of both sides (water).
    pub density_kg_per_m3: f64,
    pub specific_heat_kj_per_kg_k: f64,
}

/// The state of one loop: its supply temperature, its clock and the latest heat of each node.
#[derive(Debug, Clone, PartialEq)]
pub struct CoolantLoop {
    spec: CoolantSpec,
    /// This run's departure of the hold point from the setpoint (none for nominal conditions).
    variation: SupplyVariation,
    supply_c: f64,
    /// The loop's first instant and its latest.
    t0_ns: Option<i64>,
    t_ns: Option<i64>,
    heat_w: Vec<f64>,
}

/// A loop shared between the nodes of a rack in one process.
pub type SharedLoop = Arc<Mutex<CoolantLoop>>;

impl CoolantLoop {
    /// A loop at its setpoint with no nodes yet.
    pub fn new(spec: CoolantSpec) -> Self {
        CoolantLoop::varied(spec, SupplyVariation::default())
    }

    /// A loop at its hold point for this run (setpoint + `variation` at its first instant).
    pub fn varied(spec: CoolantSpec, variation: SupplyVariation) -> Self {
        CoolantLoop {
            supply_c: spec.setpoint_c + variation.at(0.0),
            spec,
            variation,
            t0_ns: None,
            t_ns: None,
            heat_w: Vec::new(),
        }
    }

    /// This run's departure of the hold point from the setpoint.
    pub fn variation(&self) -> &SupplyVariation {
        &self.variation
    }

    /// The supply temperature the loop holds within capacity at `t_ns`, °C.
    fn hold_c(&self, t_ns: i64) -> f64 {
        let since_s = self
            .t0_ns
            .map_or(0.0, |t0| t_ns.saturating_sub(t0) as f64 / 1e9);
        self.spec.setpoint_c + self.variation.at(since_s)
    }

    /// The supply temperature the loop holds within capacity now, °C.
    pub fn hold_now_c(&self) -> f64 {
        self.hold_c(self.t_ns.unwrap_or(0))
    }

    /// Wraps the loop for sharing.
    pub fn shared(self) -> SharedLoop {
        Arc::new(Mutex::new(self))
    }

    pub fn spec(&self) -> &CoolantSpec {
        &self.spec
    }

    /// Adds a node reporting `heat_w`; returns its slot.
    pub fn add_node(&mut self, heat_w: f64) -> usize {
        self.heat_w.push(sanitize(heat_w));
        self.heat_w.len() - 1
    }

    /// Sets the latest heat of the node in `slot` (a slot this loop did not hand out is ignored).
    pub fn report_heat(&mut self, slot: usize, heat_w: f64) {
        if let Some(h) = self.heat_w.get_mut(slot) {
            *h = sanitize(heat_w);
        }
    }

    /// The sum of the latest heat of all nodes, W.
    pub fn heat_w(&self) -> f64 {
        self.heat_w.iter().sum()
    }

    /// Supply temperature now, °C.
    pub fn supply_c(&self) -> f64 {
        self.supply_c
    }

    /// What the rack's CDU measures now.
    pub fn figures(&self) -> LoopFigures {
        let spec = &self.spec;
        let rack_heat_w = self.heat_w();
        let captured_kw = spec.capture_fraction * rack_heat_w / 1000.0;
        let flow_lpm = spec.flow_lpm();
        let return_c = self.supply_c + captured_kw / water_kw_per_k(flow_lpm);
        let hold_c = self.hold_now_c();
        let warm_k = (self.supply_c - hold_c).max(0.0);
        let primary_heat_kw = spec.capture_fraction
            * ((rack_heat_w / 1000.0).min(spec.capacity_kw) + warm_k / spec.rise_k_per_kw);
        let primary_flow_lpm = spec.design_flow_lpm();
        let primary_supply_c = hold_c - PRIMARY_APPROACH_K;
        LoopFigures {
            rack_heat_w,
            captured_kw,
            supply_c: self.supply_c,
            return_c,
            flow_lpm,
            heat_removed_kw: water_kw_per_k(flow_lpm) * (return_c - self.supply_c),
            primary_heat_kw,
            primary_supply_c,
            primary_return_c: primary_supply_c + primary_heat_kw / water_kw_per_k(primary_flow_lpm),
            primary_flow_lpm,
            density_kg_per_m3: WATER_DENSITY_KG_PER_M3,
            specific_heat_kj_per_kg_k: WATER_SPECIFIC_HEAT_KJ_PER_KG_K,
        }
    }

    /// Integrates the loop up to `now_ns` with the heat it holds. The first call sets its clock; an
    /// instant before its clock changes nothing (another node of the rack already got there).
    pub fn advance_to(&mut self, now_ns: i64) {
        let Some(t) = self.t_ns else {
            self.t0_ns = Some(now_ns);
            self.t_ns = Some(now_ns);
            return;
        };
        if now_ns <= t {
            return;
        }
        let dt = now_ns.saturating_sub(t) as f64 / 1e9;
        let target =
            self.spec.steady_supply_c(self.heat_w()) - self.spec.setpoint_c + self.hold_c(now_ns);
        let lag = self.spec.lag_s.max(1e-3);
        self.supply_c = target + (self.supply_c - target) * (-dt / lag).exp();
        self.t_ns = Some(now_ns);
    }
}

fn sanitize(heat_w: f64) -> f64 {
    if heat_w.is_finite() {
        heat_w.max(0.0)
    } else {
        0.0
    }
}

fn lock(coolant: &SharedLoop) -> MutexGuard<'_, CoolantLoop> {
    // A node that panicked while holding the lock left a consistent loop behind (every update is
    // a plain store), so a poisoned lock is still usable.
    coolant.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the CDU of the rack on `coolant` measures now.
pub fn shared_figures(coolant: &SharedLoop) -> LoopFigures {
    lock(coolant).figures()
}

/// How one node reaches its rack's coolant loop.
#[derive(Debug, Clone)]
pub enum RackCooling {
    /// The rack's nodes share one loop in this process; this node reports in `slot`.
    Shared { coolant: SharedLoop, slot: usize },
    /// This node simulates its rack's loop alone, counting its heat `nodes_in_rack` times.
    Scaled {
        coolant: CoolantLoop,
        nodes_in_rack: u32,
    },
}

impl RackCooling {
    /// Joins a shared loop (reporting no heat until the node reports).
    pub fn join(coolant: &SharedLoop) -> Self {
        let slot = lock(coolant).add_node(0.0);
        RackCooling::Shared {
            coolant: Arc::clone(coolant),
            slot,
        }
    }

    /// A private loop for a node of a rack of `nodes_in_rack` nodes (at least 1).
    pub fn scaled(spec: CoolantSpec, nodes_in_rack: u32) -> Self {
        RackCooling::scaled_varied(spec, nodes_in_rack, SupplyVariation::default())
    }

    /// [`RackCooling::scaled`] with this run's variation of the rack's supply.
    pub fn scaled_varied(
        spec: CoolantSpec,
        nodes_in_rack: u32,
        variation: SupplyVariation,
    ) -> Self {
        let nodes_in_rack = nodes_in_rack.max(1);
        let mut coolant = CoolantLoop::varied(spec, variation);
        coolant.add_node(0.0);
        RackCooling::Scaled {
            coolant,
            nodes_in_rack,
        }
    }

    /// Reports this node's heat without moving the loop's clock.
    pub fn report_heat(&mut self, heat_w: f64) {
        match self {
            RackCooling::Shared { coolant, slot } => lock(coolant).report_heat(*slot, heat_w),
            RackCooling::Scaled {
                coolant,
                nodes_in_rack,
            } => coolant.report_heat(0, heat_w * f64::from(*nodes_in_rack)),
        }
    }

    /// Reports this node's heat, brings the loop to `now_ns` and returns its supply temperature.
    pub fn exchange(&mut self, now_ns: i64, heat_w: f64) -> f64 {
        match self {
            RackCooling::Shared { coolant, slot } => {
                let mut l = lock(coolant);
                l.report_heat(*slot, heat_w);
                l.advance_to(now_ns);
                l.supply_c()
            }
            RackCooling::Scaled {
                coolant,
                nodes_in_rack,
            } => {
                coolant.report_heat(0, heat_w * f64::from(*nodes_in_rack));
                coolant.advance_to(now_ns);
                coolant.supply_c()
            }
        }
    }

    /// Supply temperature now, °C.
    pub fn supply_c(&self) -> f64 {
        match self {
            RackCooling::Shared { coolant, .. } => lock(coolant).supply_c(),
            RackCooling::Scaled { coolant, .. } => coolant.supply_c(),
        }
    }

    /// The rack's heat as this node's loop sees it, W.
    pub fn rack_heat_w(&self) -> f64 {
        match self {
            RackCooling::Shared { coolant, .. } => lock(coolant).heat_w(),
            RackCooling::Scaled { coolant, .. } => coolant.heat_w(),
        }
    }

    /// The loop's figures.
    pub fn spec(&self) -> CoolantSpec {
        match self {
            RackCooling::Shared { coolant, .. } => lock(coolant).spec().clone(),
            RackCooling::Scaled { coolant, .. } => coolant.spec().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const S: i64 = 1_000_000_000;

    fn spec(capacity_kw: f64) -> CoolantSpec {
        CoolantSpec {
            capacity_kw,
            ..CoolantSpec::default()
        }
    }

    #[test]
    fn within_capacity_the_supply_holds_its_setpoint() {
        let mut l = CoolantLoop::new(spec(120.0));
        l.add_node(100_000.0);
        for t in 0..600 {
            l.advance_to(t * S);
        }
        assert_eq!(l.supply_c(), 30.0);
    }

    #[test]
    fn heat_above_capacity_raises_the_supply_with_a_lag() {
        let mut l = CoolantLoop::new(spec(75.0));
        l.add_node(100_000.0);
        l.advance_to(0);
        l.advance_to(DEFAULT_LAG_S as i64 * S);
        let target = 30.0 + DEFAULT_RISE_K_PER_KW * 25.0;
        let one_tau = 30.0 + (target - 30.0) * (1.0 - (-1.0f64).exp());
        assert!((l.supply_c() - one_tau).abs() < 1e-9, "{}", l.supply_c());
        l.advance_to(200 * S);
        assert!((l.supply_c() - target).abs() < 1e-3);
        // Going back in time changes nothing; the heat dropping lets it recover.
        l.advance_to(100 * S);
        assert!((l.supply_c() - target).abs() < 1e-3);
        l.report_heat(0, 50_000.0);
        l.advance_to(400 * S);
        assert!((l.supply_c() - 30.0).abs() < 1e-3);
    }

    #[test]
    fn shared_loop_sums_its_nodes_and_scaled_loop_matches_it() {
        let shared = CoolantLoop::new(spec(75.0)).shared();
        let mut nodes: Vec<RackCooling> = (0..10).map(|_| RackCooling::join(&shared)).collect();
        let mut alone = RackCooling::scaled(spec(75.0), 10);
        for n in &mut nodes {
            n.report_heat(3_000.0);
        }
        alone.report_heat(3_000.0);
        assert_eq!(nodes[0].rack_heat_w(), 30_000.0);
        assert_eq!(alone.rack_heat_w(), 30_000.0);
        let mut last = (0.0, 0.0);
        for step in 0..=600 {
            let now = step * S / 10;
            for n in &mut nodes {
                last.0 = n.exchange(now, 10_000.0);
            }
            last.1 = alone.exchange(now, 10_000.0);
        }
        assert!((last.0 - last.1).abs() < 0.2, "{last:?}");
        assert!(last.0 > 45.0, "{last:?}");
        assert_eq!(nodes[3].rack_heat_w(), 100_000.0);
        assert_eq!(nodes[3].supply_c(), last.0);
    }

    #[test]
    fn the_default_flow_gives_a_10_k_rise_at_capacity() {
        let s = spec(120.0);
        // 0.9 · 120 kW / (997 kg/m³ · 4.18 kJ/(kg·K) · 10 K) = 2.5915e-3 m³/s = 155.49 L/min.
        assert!((s.flow_lpm() - 155.49).abs() < 0.01, "{}", s.flow_lpm());
        let mut l = CoolantLoop::new(s);
        l.add_node(120_000.0);
        let f = l.figures();
        assert!((f.captured_kw - 108.0).abs() < 1e-9);
        assert!((f.return_c - f.supply_c - 10.0).abs() < 1e-9, "{f:?}");
        assert!((f.heat_removed_kw - 108.0).abs() < 1e-9);
        assert_eq!(f.primary_supply_c, 25.0);
        assert!((f.primary_heat_kw - 108.0).abs() < 1e-9);
        assert!((f.primary_return_c - 35.0).abs() < 1e-9);
    }

    #[test]
    fn a_low_flow_raises_the_delta_t_by_its_inverse() {
        let mut healthy = CoolantLoop::new(spec(120.0));
        let mut low = CoolantLoop::new(CoolantSpec {
            flow_fraction: 0.4,
            ..spec(120.0)
        });
        healthy.add_node(100_000.0);
        low.add_node(100_000.0);
        let (h, l) = (healthy.figures(), low.figures());
        let dt = |f: &LoopFigures| f.return_c - f.supply_c;
        assert!((dt(&h) - 90.0 / 108.0 * 10.0).abs() < 1e-9, "{h:?}");
        assert!((dt(&l) - dt(&h) / 0.4).abs() < 1e-9, "{l:?}");
        assert!((l.flow_lpm - 0.4 * h.flow_lpm).abs() < 1e-9);
        // The same heat is carried; the facility side does not change.
        assert!((l.heat_removed_kw - h.heat_removed_kw).abs() < 1e-9);
        assert_eq!(l.primary_return_c, h.primary_return_c);
        assert_eq!(l.supply_c, h.supply_c);
    }

    #[test]
    fn a_varied_loop_holds_its_runs_point_and_rises_from_it() {
        use crate::sim::conditions::{RunConditions, SUPPLY_DRIFT_MAX_K, SUPPLY_OFFSET_MAX_K};
        let bound = SUPPLY_OFFSET_MAX_K + SUPPLY_DRIFT_MAX_K;
        for seed in 0..10 {
            let v = RunConditions::Seeded(seed).supply("row1-rack01");
            // Within capacity: the supply follows the hold point (lag 12 s against a drift of
            // 10 minutes or more) and stays within the stated bound of the setpoint.
            let mut l = CoolantLoop::varied(spec(120.0), v);
            l.add_node(100_000.0);
            for k in 0..=3600 {
                l.advance_to(k * S);
                let s = l.supply_c();
                assert!((s - 30.0).abs() <= bound + 1e-9, "seed {seed}: {s}");
                assert!(
                    (s - (30.0 + v.at(k as f64))).abs() < 0.05,
                    "seed {seed} at {k} s"
                );
                let f = l.figures();
                assert!((f.primary_supply_c - (s - 5.0)).abs() < 0.05, "{f:?}");
            }
            // Over capacity: the same rise as a nominal loop, from the run's hold point.
            let mut hot = CoolantLoop::varied(spec(75.0), v);
            let mut nominal = CoolantLoop::new(spec(75.0));
            hot.add_node(100_000.0);
            nominal.add_node(100_000.0);
            for k in 0..=60 {
                hot.advance_to(k * S);
                nominal.advance_to(k * S);
            }
            let shift = hot.supply_c() - nominal.supply_c();
            assert!(
                (shift - v.at(60.0)).abs() < 0.05,
                "seed {seed}: {shift} vs {v:?}"
            );
        }
        // Nominal is the plain setpoint.
        assert_eq!(CoolantLoop::new(spec(120.0)).supply_c(), 30.0);
    }

    /// The heat passed to the facility water is the loop's energy balance: over a warm-up, the
    /// captured heat less the heat passed on is what the loop stored, C·ΔT with C = capture·lag/rise.
    #[test]
    fn the_primary_side_closes_the_loops_energy_balance() {
        let s = spec(75.0);
        let c_kj_per_k = s.capture_fraction * s.lag_s / s.rise_k_per_kw;
        let mut l = CoolantLoop::new(s);
        l.add_node(100_000.0);
        let step = S / 100;
        let mut stored_kj = 0.0;
        l.advance_to(0);
        for k in 1..=20_000 {
            let f = l.figures();
            assert!(f.primary_heat_kw <= f.captured_kw + 1e-9, "{f:?}");
            l.advance_to(k * step);
            let g = l.figures();
            let mean = |a: f64, b: f64| (a + b) / 2.0;
            stored_kj += (mean(f.captured_kw, g.captured_kw)
                - mean(f.primary_heat_kw, g.primary_heat_kw))
                * 0.01;
        }
        let rise = l.supply_c() - 30.0;
        assert!((rise - 37.5).abs() < 1e-3, "{rise}");
        assert!(
            (stored_kj - c_kj_per_k * rise).abs() < 0.01 * c_kj_per_k * rise,
            "{stored_kj} kJ vs {}",
            c_kj_per_k * rise
        );
        // Settled: what is captured is passed on.
        let f = l.figures();
        assert!((f.primary_heat_kw - f.captured_kw).abs() < 1e-3, "{f:?}");
    }
}
