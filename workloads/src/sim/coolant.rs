//! A rack's coolant loop (its CDU): a supply setpoint, a heat-removal capacity and a lag.
//!
//! While the rack's heat `Q` stays within the capacity the loop holds its supply at the setpoint. Heat
//! above capacity raises the supply temperature towards `setpoint + rise·(Q − capacity)` with a
//! first-order lag:
//!
//! `dT_supply/dt = (setpoint + rise·max(0, Q − capacity) − T_supply) / lag`
//!
//! (`rise` in K per kW of excess heat, `lag` in s). Every GPU of the rack sees the supply temperature.
//!
//! Two ways to use a loop ([`RackCooling`]):
//! * **shared** — the nodes of a rack simulated in one process share one [`CoolantLoop`] behind an
//!   `Arc<Mutex<…>>` ([`SharedLoop`]); each node holds a slot, reports its latest heat there, and the loop
//!   integrates the sum of the latest heat of all its nodes;
//! * **scaled** — a probe that simulates only its own node owns a private loop and reports its heat
//!   multiplied by the number of nodes in its rack (all nodes run the same synchronised pattern).

use std::sync::{Arc, Mutex, MutexGuard};

/// Default supply setpoint, °C (warm-water cooling).
pub const DEFAULT_SETPOINT_C: f64 = 30.0;
/// Default heat-removal capacity of a rack's loop, kW.
pub const DEFAULT_CAPACITY_KW: f64 = 120.0;
/// Default supply rise per kW of heat above capacity, K/kW.
pub const DEFAULT_RISE_K_PER_KW: f64 = 1.5;
/// Default time constant of the supply temperature, s.
pub const DEFAULT_LAG_S: f64 = 12.0;

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
}

impl Default for CoolantSpec {
    fn default() -> Self {
        CoolantSpec {
            setpoint_c: DEFAULT_SETPOINT_C,
            capacity_kw: DEFAULT_CAPACITY_KW,
            rise_k_per_kw: DEFAULT_RISE_K_PER_KW,
            lag_s: DEFAULT_LAG_S,
        }
    }
}

impl CoolantSpec {
    /// The supply temperature the loop settles at with `heat_w` of heat.
    pub fn steady_supply_c(&self, heat_w: f64) -> f64 {
        let excess_kw = (heat_w / 1000.0 - self.capacity_kw).max(0.0);
        self.setpoint_c + self.rise_k_per_kw * excess_kw
    }
}

/// The state of one loop: its supply temperature, its clock and the latest heat of each node.
#[derive(Debug, Clone, PartialEq)]
pub struct CoolantLoop {
    spec: CoolantSpec,
    supply_c: f64,
    t_ns: Option<i64>,
    heat_w: Vec<f64>,
}

/// A loop shared between the nodes of a rack in one process.
pub type SharedLoop = Arc<Mutex<CoolantLoop>>;

impl CoolantLoop {
    /// A loop at its setpoint with no nodes yet.
    pub fn new(spec: CoolantSpec) -> Self {
        CoolantLoop {
            supply_c: spec.setpoint_c,
            spec,
            t_ns: None,
            heat_w: Vec::new(),
        }
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

    /// Integrates the loop up to `now_ns` with the heat it holds. The first call sets its clock; an
    /// instant before its clock changes nothing (another node of the rack already got there).
    pub fn advance_to(&mut self, now_ns: i64) {
        let Some(t) = self.t_ns else {
            self.t_ns = Some(now_ns);
            return;
        };
        if now_ns <= t {
            return;
        }
        let dt = now_ns.saturating_sub(t) as f64 / 1e9;
        let target = self.spec.steady_supply_c(self.heat_w());
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
        let nodes_in_rack = nodes_in_rack.max(1);
        let mut coolant = CoolantLoop::new(spec);
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
}
