//! Turns a raw hall file into a [`HallSpec`]: fills in defaults, checks every value's range and every
//! reference (racks, nodes, devices), and points each error at the value in the file.

use super::coolant::CoolantSpec;
use super::hall::{
    CduLowFlow, Cx, Faults, HallError, HallSpec, PduReadsLow, RackCoolantOverride, SlowLink,
    UndersizedCooling, WeakColdPlate, DEFAULT_BASE_LOAD_W, DEFAULT_PSU_EFFICIENCY,
};
use super::hall_file::{RawFaults, RawHall};
use super::SimGpuSpec;
use hallmark_protocol::NodeId;
use std::collections::BTreeSet;
use toml::Spanned;

/// Most nodes a hall may have.
pub const MAX_NODES: usize = 10_000;
/// Allowed secondary flow of a rack's loop, L/min.
const FLOW_RANGE_LPM: (f64, f64) = (1.0, 20_000.0);

impl Cx<'_> {
    /// `v` if within `lo..=hi`, else an error naming `key`, the value and the range.
    fn range(
        &self,
        v: &Spanned<f64>,
        key: &str,
        lo: f64,
        hi: f64,
        unit: &str,
    ) -> Result<f64, HallError> {
        let x = *v.get_ref();
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(self.bad(
                v,
                key,
                format!("`{key}` = {x} is out of range: allowed {lo} to {hi}{unit}"),
            ))
        }
    }

    /// Like [`Cx::range`] for an optional key, `default` when absent.
    fn opt(
        &self,
        v: &Option<Spanned<f64>>,
        key: &str,
        default: f64,
        lo: f64,
        hi: f64,
        unit: &str,
    ) -> Result<f64, HallError> {
        match v {
            Some(v) => self.range(v, key, lo, hi, unit),
            None => Ok(default),
        }
    }

    fn int<T: Copy + Into<u64>>(
        &self,
        v: &Spanned<T>,
        key: &str,
        lo: u64,
        hi: u64,
    ) -> Result<T, HallError> {
        let x: u64 = (*v.get_ref()).into();
        if (lo..=hi).contains(&x) {
            Ok(*v.get_ref())
        } else {
            Err(self.bad(
                v,
                key,
                format!("`{key}` = {x} is out of range: allowed {lo} to {hi}"),
            ))
        }
    }

    fn opt_int<T: Copy + Into<u64>>(
        &self,
        v: &Option<Spanned<T>>,
        key: &str,
        default: T,
        lo: u64,
        hi: u64,
    ) -> Result<T, HallError> {
        match v {
            Some(v) => self.int(v, key, lo, hi),
            None => Ok(default),
        }
    }

    fn text(&self, v: &Spanned<String>, key: &str) -> Result<String, HallError> {
        let s = v.get_ref();
        if s.trim().is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) {
            return Err(self.bad(
                v,
                key,
                format!("`{key}` must be 1 to 64 printable characters"),
            ));
        }
        Ok(s.clone())
    }
}

/// Checks `raw` and fills in the defaults.
pub(super) fn resolve(cx: &Cx<'_>, raw: RawHall) -> Result<HallSpec, HallError> {
    let name = cx.text(&raw.name, "name")?;
    let rows = cx.int(&raw.rows, "rows", 1, 99)?;
    let racks_per_row = cx.int(&raw.racks_per_row, "racks_per_row", 1, 99)?;
    let nodes_per_rack = cx.int(&raw.nodes_per_rack, "nodes_per_rack", 1, 99)?;
    let gpus_per_node = cx.int(&raw.gpus_per_node, "gpus_per_node", 1, 64)?;
    let nodes = usize::from(rows) * usize::from(racks_per_row) * usize::from(nodes_per_rack);
    if nodes > MAX_NODES {
        return Err(cx.bad(&raw.nodes_per_rack, "nodes_per_rack", format!(
            "the hall has {nodes} nodes (rows × racks_per_row × nodes_per_rack); at most {MAX_NODES} are allowed"
        )));
    }

    let d = SimGpuSpec::default();
    let g = &raw.gpu;
    let model = match &g.model {
        Some(m) => cx.text(m, "gpu.model")?,
        None => d.model.clone(),
    };
    let power_limit_w = cx.opt(
        &g.power_limit_w,
        "gpu.power_limit_w",
        d.power_limit_w,
        50.0,
        3000.0,
        " W",
    )?;
    let idle_power_w = cx.opt(
        &g.idle_power_w,
        "gpu.idle_power_w",
        d.idle_power_w,
        0.0,
        3000.0,
        " W",
    )?;
    if idle_power_w >= power_limit_w {
        let msg = format!("`gpu.idle_power_w` = {idle_power_w} must be below `gpu.power_limit_w` = {power_limit_w}");
        return Err(match (&g.idle_power_w, &g.power_limit_w) {
            (Some(v), _) => cx.bad(v, "gpu.idle_power_w", msg),
            (None, Some(v)) => cx.bad(v, "gpu.power_limit_w", msg),
            (None, None) => cx.at(0..0, Some("gpu.idle_power_w".into()), msg),
        });
    }
    let slowdown = cx.opt(
        &g.slowdown_temp_c,
        "gpu.slowdown_temp_c",
        d.slowdown_temp_c,
        40.0,
        120.0,
        " °C",
    )?;
    let shutdown = cx.opt(
        &g.shutdown_temp_c,
        "gpu.shutdown_temp_c",
        d.shutdown_temp_c,
        41.0,
        130.0,
        " °C",
    )?;
    if shutdown <= slowdown {
        let msg = format!(
            "`gpu.shutdown_temp_c` = {shutdown} must be above `gpu.slowdown_temp_c` = {slowdown}"
        );
        let v = g.shutdown_temp_c.as_ref().or(g.slowdown_temp_c.as_ref());
        return Err(match v {
            Some(v) => cx.bad(v, "gpu.shutdown_temp_c", msg),
            None => cx.at(0..0, Some("gpu.shutdown_temp_c".into()), msg),
        });
    }
    let max_operating = cx.opt(
        &g.max_operating_temp_c,
        "gpu.max_operating_temp_c",
        d.max_operating_temp_c.min(shutdown),
        20.0,
        shutdown,
        " °C (the shutdown temperature)",
    )?;
    let memory_gib = cx.opt_int(
        &g.memory_gib,
        "gpu.memory_gib",
        (d.memory_bytes >> 30) as u32,
        1,
        16_384,
    )?;
    let max_clock = cx.opt_int(
        &g.max_sm_clock_mhz,
        "gpu.max_sm_clock_mhz",
        d.max_sm_clock_mhz,
        100,
        5000,
    )?;
    let idle_clock = cx.opt_int(
        &g.idle_sm_clock_mhz,
        "gpu.idle_sm_clock_mhz",
        d.idle_sm_clock_mhz.min(max_clock),
        0,
        u64::from(max_clock),
    )?;
    let gpu = SimGpuSpec {
        model,
        power_limit_w,
        idle_power_w,
        slowdown_temp_c: slowdown,
        shutdown_temp_c: shutdown,
        max_operating_temp_c: max_operating,
        memory_bytes: u64::from(memory_gib) << 30,
        max_sm_clock_mhz: max_clock,
        idle_sm_clock_mhz: idle_clock,
        thermal_time_constant_s: cx.opt(
            &g.thermal_time_constant_s,
            "gpu.thermal_time_constant_s",
            d.thermal_time_constant_s,
            0.5,
            600.0,
            " s",
        )?,
        cold_plate_resistance_k_per_w: cx.opt(
            &g.cold_plate_resistance_k_per_w,
            "gpu.cold_plate_resistance_k_per_w",
            d.cold_plate_resistance_k_per_w,
            0.001,
            1.0,
            " K/W",
        )?,
        efficiency_spread: cx.opt(
            &g.efficiency_spread,
            "gpu.efficiency_spread",
            d.efficiency_spread,
            0.0,
            0.2,
            "",
        )?,
        resistance_spread: cx.opt(
            &g.resistance_spread,
            "gpu.resistance_spread",
            d.resistance_spread,
            0.0,
            0.4,
            "",
        )?,
        peak_tflops: cx.opt(
            &g.peak_tflops,
            "gpu.peak_tflops",
            d.peak_tflops,
            1.0,
            100_000.0,
            " TFLOP/s",
        )?,
    };

    let base_load_w = cx.opt(
        &raw.node.base_load_w,
        "node.base_load_w",
        DEFAULT_BASE_LOAD_W,
        0.0,
        20_000.0,
        " W",
    )?;
    let psu_efficiency = cx.opt(
        &raw.node.psu_efficiency,
        "node.psu_efficiency",
        DEFAULT_PSU_EFFICIENCY,
        0.5,
        1.0,
        "",
    )?;

    let dc = CoolantSpec::default();
    let c = &raw.coolant;
    let coolant = CoolantSpec {
        setpoint_c: cx.opt(
            &c.setpoint_c,
            "coolant.setpoint_c",
            dc.setpoint_c,
            5.0,
            60.0,
            " °C",
        )?,
        capacity_kw: cx.opt(
            &c.capacity_kw,
            "coolant.capacity_kw",
            dc.capacity_kw,
            1.0,
            2000.0,
            " kW",
        )?,
        rise_k_per_kw: cx.opt(
            &c.rise_k_per_kw,
            "coolant.rise_k_per_kw",
            dc.rise_k_per_kw,
            0.01,
            10.0,
            " K/kW",
        )?,
        lag_s: cx.opt(&c.lag_s, "coolant.lag_s", dc.lag_s, 1.0, 3600.0, " s")?,
        capture_fraction: cx.opt(
            &c.capture_fraction,
            "coolant.capture_fraction",
            dc.capture_fraction,
            0.5,
            1.0,
            "",
        )?,
        flow_lpm: c
            .flow_lpm
            .as_ref()
            .map(|v| {
                let (lo, hi) = FLOW_RANGE_LPM;
                cx.range(v, "coolant.flow_lpm", lo, hi, " L/min")
            })
            .transpose()?,
        flow_fraction: 1.0,
    };

    let mut spec = HallSpec {
        name,
        seed: *raw.seed.get_ref(),
        rows,
        racks_per_row,
        nodes_per_rack,
        gpus_per_node,
        gpu,
        base_load_w,
        psu_efficiency,
        coolant,
        rack_coolant: Vec::new(),
        faults: Faults::default(),
    };

    let rack_ref = |spec: &HallSpec, v: &Spanned<String>, key: &str| rack_of(cx, spec, v, key);
    let node_ref = |spec: &HallSpec, v: &Spanned<String>, key: &str| -> Result<NodeId, HallError> {
        let id = v.get_ref();
        match spec.node(id) {
            Some(n) => Ok(n.node_id),
            None => Err(cx.bad(v, key, format!(
                "`{key}` = {id:?} is not a node of this hall: nodes are named row{{R}}-rack{{KK}}-n{{NN}}, {} to {}",
                HallSpec::node_name(1, 1, 1),
                HallSpec::node_name(spec.rows, spec.racks_per_row, spec.nodes_per_rack)
            ))),
        }
    };

    let mut seen = BTreeSet::new();
    for o in &c.rack.0 {
        let rack = rack_ref(&spec, &o.name, "coolant.rack.name")?;
        if !seen.insert(rack.clone()) {
            return Err(cx.bad(
                &o.name,
                "coolant.rack.name",
                format!("rack {rack:?} has more than one `[[coolant.rack]]` entry"),
            ));
        }
        spec.rack_coolant.push(RackCoolantOverride {
            rack,
            setpoint_c: o
                .setpoint_c
                .as_ref()
                .map(|v| cx.range(v, "coolant.rack.setpoint_c", 5.0, 60.0, " °C"))
                .transpose()?,
            capacity_kw: o
                .capacity_kw
                .as_ref()
                .map(|v| cx.range(v, "coolant.rack.capacity_kw", 1.0, 2000.0, " kW"))
                .transpose()?,
            flow_lpm: o
                .flow_lpm
                .as_ref()
                .map(|v| {
                    let (lo, hi) = FLOW_RANGE_LPM;
                    cx.range(v, "coolant.rack.flow_lpm", lo, hi, " L/min")
                })
                .transpose()?,
        });
    }

    let f = &raw.faults;
    let mut seen = BTreeSet::new();
    for w in &f.weak_cold_plate.0 {
        let node = node_ref(&spec, &w.node, "faults.weak_cold_plate.node")?;
        let device = cx.int(
            &w.device,
            "faults.weak_cold_plate.device",
            0,
            u64::from(gpus_per_node) - 1,
        )?;
        if !seen.insert((node.clone(), device)) {
            return Err(cx.bad(
                &w.device,
                "faults.weak_cold_plate.device",
                format!("device {device} of {node} has more than one weak cold plate"),
            ));
        }
        let factor = cx.range(
            &w.factor,
            "faults.weak_cold_plate.factor",
            1.0,
            20.0,
            " (× the device's resistance)",
        )?;
        spec.faults.weak_cold_plates.push(WeakColdPlate {
            node,
            device,
            factor,
        });
    }
    let mut seen = BTreeSet::new();
    for u in &f.undersized_cooling.0 {
        let rack = rack_ref(&spec, &u.rack, "faults.undersized_cooling.rack")?;
        if !seen.insert(rack.clone()) {
            return Err(cx.bad(
                &u.rack,
                "faults.undersized_cooling.rack",
                format!("rack {rack:?} has more than one undersized_cooling fault"),
            ));
        }
        let capacity_kw = cx.range(
            &u.capacity_kw,
            "faults.undersized_cooling.capacity_kw",
            1.0,
            2000.0,
            " kW",
        )?;
        spec.faults
            .undersized_cooling
            .push(UndersizedCooling { rack, capacity_kw });
    }
    let mut seen = BTreeSet::new();
    for s in &f.slow_link.0 {
        let node = node_ref(&spec, &s.node, "faults.slow_link.node")?;
        if !seen.insert(node.clone()) {
            return Err(cx.bad(
                &s.node,
                "faults.slow_link.node",
                format!("node {node} has more than one slow_link fault"),
            ));
        }
        let extra_latency_us = cx.int(
            &s.extra_latency_us,
            "faults.slow_link.extra_latency_us",
            1,
            10_000_000,
        )?;
        spec.faults.slow_links.push(SlowLink {
            node,
            extra_latency_us,
        });
    }
    facility_faults(cx, f, &mut spec)?;
    Ok(spec)
}

/// The faults of the hall's facility meters: a PDU that reads low, a CDU with low flow.
fn facility_faults(cx: &Cx<'_>, f: &RawFaults, spec: &mut HallSpec) -> Result<(), HallError> {
    let mut seen = BTreeSet::new();
    for p in &f.pdu_reads_low.0 {
        let rack = rack_of(cx, spec, &p.rack, "faults.pdu_reads_low.rack")?;
        if !seen.insert(rack.clone()) {
            return Err(cx.bad(
                &p.rack,
                "faults.pdu_reads_low.rack",
                format!("rack {rack:?} has more than one pdu_reads_low fault"),
            ));
        }
        let factor = cx.range(
            &p.factor,
            "faults.pdu_reads_low.factor",
            0.05,
            0.99,
            " (× the rack's true power; 1 would be no fault)",
        )?;
        spec.faults.pdu_reads_low.push(PduReadsLow { rack, factor });
    }
    let mut seen = BTreeSet::new();
    for c in &f.cdu_low_flow.0 {
        let rack = rack_of(cx, spec, &c.rack, "faults.cdu_low_flow.rack")?;
        if !seen.insert(rack.clone()) {
            return Err(cx.bad(
                &c.rack,
                "faults.cdu_low_flow.rack",
                format!("rack {rack:?} has more than one cdu_low_flow fault"),
            ));
        }
        let fraction = cx.range(
            &c.fraction,
            "faults.cdu_low_flow.fraction",
            0.05,
            0.95,
            " (× the rack's nominal flow; 1 would be no fault)",
        )?;
        spec.faults.cdu_low_flow.push(CduLowFlow { rack, fraction });
    }
    Ok(())
}

/// The rack named by `v`, or an error naming the racks the hall has.
fn rack_of(
    cx: &Cx<'_>,
    spec: &HallSpec,
    v: &Spanned<String>,
    key: &str,
) -> Result<String, HallError> {
    let name = v.get_ref();
    if spec.rack(name).is_some() {
        return Ok(name.clone());
    }
    Err(cx.bad(v, key, format!(
        "`{key}` = {name:?} is not a rack of this hall: racks are named row{{R}}-rack{{KK}}, {} to {}",
        HallSpec::rack_name(1, 1),
        HallSpec::rack_name(spec.rows, spec.racks_per_row)
    )))
}
