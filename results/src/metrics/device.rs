//! Per-device metrics: `sustained_tflops`, `mean_power_w`, `gflops_per_w`, `idle_power_w`,
//! `thermal_resistance_k_per_w` (GPUs), `throttle_s` and `throttle_s.<reason>` (GPUs),
//! `wrong_elements`; definitions in the module docs of [`super`] and in `docs/COMPARE.md`.

use std::collections::{BTreeMap, BTreeSet};

use hallmark_store::PhaseResultRecord;

use super::groups::FacilityFigures;
use super::scan::{Context, DevAcc, Load, Seg, Window};
use super::{
    MetricValue, SubjectKind, MIN_POWER_STEP_FRACTION, MIN_STEADY_SEGMENTS, SEGMENTS,
    STEADY_TOLERANCE_K, UNIT_K_PER_W_DIFFERENTIAL, UNIT_K_PER_W_SUPPLY,
};
use crate::aggregate::throttle;

/// The slices of a phase that form its steady part (see the module docs of [`super`]).
pub(crate) fn steady(segs: &[Seg; SEGMENTS]) -> Option<std::ops::Range<usize>> {
    let mean = |s: &Seg| (s.n_temp > 0).then(|| s.sum_temp / f64::from(s.n_temp));
    let last = segs.iter().rposition(|s| s.n_temp > 0)?;
    let reference = mean(&segs[last])?;
    let mut first = last;
    while first > 0 {
        match mean(&segs[first - 1]) {
            Some(m) if (m - reference).abs() <= STEADY_TOLERANCE_K => first -= 1,
            _ => break,
        }
    }
    (last + 1 - first >= MIN_STEADY_SEGMENTS).then_some(first..last + 1)
}

/// Pooled sums over some slices.
#[derive(Debug, Clone, Copy, Default)]
struct Pool {
    seg: Seg,
    /// Σ n_temp × the slice's mean coolant supply, and whether every slice had a supply.
    supply_weighted: f64,
    supply_complete: bool,
}

impl Pool {
    fn add(&mut self, s: &Seg, supply: Option<f64>) {
        self.seg.n_temp += s.n_temp;
        self.seg.sum_temp += s.sum_temp;
        self.seg.n_power += s.n_power;
        self.seg.sum_power += s.sum_power;
        match supply {
            Some(c) => self.supply_weighted += f64::from(s.n_temp) * c,
            None if s.n_temp > 0 => self.supply_complete = false,
            None => {}
        }
    }
    fn temp(&self) -> Option<f64> {
        (self.seg.n_temp > 0).then(|| self.seg.sum_temp / f64::from(self.seg.n_temp))
    }
    fn power(&self) -> Option<f64> {
        (self.seg.n_power > 0).then(|| self.seg.sum_power / f64::from(self.seg.n_power))
    }
    fn supply(&self) -> Option<f64> {
        (self.supply_complete && self.seg.n_temp > 0)
            .then(|| self.supply_weighted / f64::from(self.seg.n_temp))
    }
}

/// Every slice (`steady` false) or the steady slices of the windows of one kind, pooled.
fn pool(
    cx: &Context,
    dev: &DevAcc,
    load: Load,
    steady_only: bool,
    supply: &dyn Fn(&Window, usize) -> Option<f64>,
) -> Pool {
    let mut p = Pool {
        supply_complete: true,
        ..Pool::default()
    };
    for (w, segs) in cx.windows.iter().zip(&dev.segs) {
        if w.load != load {
            continue;
        }
        let range = if steady_only {
            match steady(segs) {
                Some(r) => r,
                None => continue,
            }
        } else {
            0..SEGMENTS
        };
        for k in range {
            let s = supply(w, k);
            p.add(&segs[k], s);
        }
    }
    p
}

/// Thermal resistance and its unit (the method that gave it).
fn thermal_resistance(
    cx: &Context,
    dev: &DevAcc,
    rack: &str,
    facility: &FacilityFigures,
) -> (Option<f64>, &'static str) {
    let supply = |w: &Window, k: usize| {
        let (a, b) = w.segment_span(k);
        facility.supply_mean(rack, a, b)
    };
    let none = |_: &Window, _: usize| None;
    let load = pool(cx, dev, Load::Full, true, &supply);
    let (Some(t_load), Some(p_load)) = (load.temp(), load.power()) else {
        return (None, "K/W");
    };
    if let Some(s) = load.supply() {
        if p_load > 0.0 {
            return (Some((t_load - s) / p_load), UNIT_K_PER_W_SUPPLY);
        }
    }
    let idle = pool(cx, dev, Load::Idle, true, &none);
    match (idle.temp(), idle.power()) {
        (Some(t_idle), Some(p_idle)) if p_load - p_idle >= MIN_POWER_STEP_FRACTION * p_load => (
            Some((t_load - t_idle) / (p_load - p_idle)),
            UNIT_K_PER_W_DIFFERENTIAL,
        ),
        _ => (None, "K/W"),
    }
}

/// The devices of the run: the inventory's, those that sent samples and those with results,
/// as (node slot, index).
fn all_devices(
    cx: &Context,
    acc: &super::MetricsAcc,
    results: &[PhaseResultRecord],
) -> BTreeSet<(usize, u16)> {
    let mut out = BTreeSet::new();
    for (node, index) in cx.inventory.keys() {
        if let Some(&n) = cx.node_slot.get(node) {
            out.insert((n, *index));
        }
    }
    for (n, devs) in acc.devices.iter().enumerate() {
        for (d, a) in devs.iter().enumerate() {
            if a.is_some() {
                out.insert((n, d as u16));
            }
        }
    }
    for r in results {
        if let Some(&n) = cx.node_slot.get(&r.node) {
            out.insert((n, r.device));
        }
    }
    out
}

/// Per device: the duration-weighted mean GFLOP/s over the full-load phases, and the wrong
/// elements summed over the results that checked.
type Results = BTreeMap<(String, u16), (Option<(f64, f64)>, Option<u64>)>;

fn results_by_device(cx: &Context, results: &[PhaseResultRecord]) -> Results {
    let mut out: Results = BTreeMap::new();
    for r in results {
        let e = out.entry((r.node.clone(), r.device)).or_default();
        if let (Some(&ms), Some(g)) = (
            cx.full_load_ms.get(&r.phase_id),
            r.gflops.filter(|g| g.is_finite()),
        ) {
            let w = ms.max(1) as f64;
            let (sum, weight) = e.0.unwrap_or((0.0, 0.0));
            e.0 = Some((sum + g * w, weight + w));
        }
        if let Some(wrong) = r.wrong_elements {
            e.1 = Some(e.1.unwrap_or(0).saturating_add(wrong.max(0) as u64));
        }
    }
    out
}

/// Appends every device's metrics.
pub(super) fn device_metrics(
    cx: &Context,
    acc: &super::MetricsAcc,
    results: &[PhaseResultRecord],
    facility: &FacilityFigures,
    out: &mut Vec<MetricValue>,
) {
    let by_device = results_by_device(cx, results);
    let checked = by_device.values().any(|r| r.1.is_some());
    let (full, idle) = (cx.has(Load::Full), cx.has(Load::Idle));
    let none = |_: &Window, _: usize| None;
    for (n, index) in all_devices(cx, acc, results) {
        let node = &cx.nodes[n];
        let name = format!("{}/{index}", node.id);
        let gpu = cx.is_gpu(&node.id, index);
        let dev = acc.devices[n]
            .get(usize::from(index))
            .and_then(Option::as_ref);
        let res = by_device.get(&(node.id.clone(), index));
        let mut push = |metric: &str, value: Option<f64>, unit: &str| {
            out.push(MetricValue::new(
                SubjectKind::Device,
                name.clone(),
                metric,
                value,
                unit,
            ))
        };
        if full {
            let tflops = res
                .and_then(|r| r.0)
                .map(|(sum, weight)| sum / weight / 1e3);
            let power = dev.and_then(|d| pool(cx, d, Load::Full, false, &none).power());
            push("sustained_tflops", tflops, "TFLOP/s");
            push("mean_power_w", power, "W");
            let per_w = tflops.zip(power.filter(|p| *p > 0.0));
            push("gflops_per_w", per_w.map(|(t, p)| t * 1e3 / p), "GFLOP/s/W");
            if gpu {
                let (r, unit) = match dev {
                    Some(d) => thermal_resistance(cx, d, &node.rack, facility),
                    None => (None, "K/W"),
                };
                push("thermal_resistance_k_per_w", r, unit);
            }
        }
        if idle {
            let power = dev.and_then(|d| pool(cx, d, Load::Idle, false, &none).power());
            push("idle_power_w", power, "W");
        }
        if gpu {
            let seconds = |count: u64| count as f64 / cx.sample_hz;
            let agg = dev.map(|d| &d.agg).filter(|a| a.samples > 0);
            push("throttle_s", agg.map(|a| seconds(a.throttled)), "s");
            for (i, (_, reason)) in throttle::REASONS.iter().enumerate() {
                let v = agg.map(|a| seconds(a.by_reason[i]));
                push(&format!("throttle_s.{reason}"), v, "s");
            }
        }
        if checked {
            let wrong = res.and_then(|r| r.1).map(|w| w as f64);
            push("wrong_elements", wrong, "elements");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(temps: &[Option<f64>]) -> [Seg; SEGMENTS] {
        let mut out = [Seg::default(); SEGMENTS];
        for (s, t) in out.iter_mut().zip(temps) {
            if let Some(t) = t {
                *s = Seg {
                    n_temp: 10,
                    sum_temp: 10.0 * t,
                    n_power: 10,
                    sum_power: 10_000.0,
                };
            }
        }
        out
    }

    #[test]
    fn the_steady_part_is_the_trailing_run_within_tolerance() {
        // A rise that settles: the last four slices are within 1 K of the last.
        let rise = [30.0, 50.0, 65.0, 72.0, 76.0, 78.0, 79.2, 79.6, 79.9, 80.0];
        let s = segs(&rise.map(Some));
        assert_eq!(steady(&s), Some(6..10));
        // Still rising at the end: fewer than three slices within 1 K.
        let rising = [30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0, 70.0, 70.5];
        assert_eq!(steady(&segs(&rising.map(Some))), None);
        // Flat throughout.
        assert_eq!(steady(&segs(&[Some(40.0); SEGMENTS])), Some(0..10));
        // A slice without samples ends the run; no samples at all: no steady part.
        let gap = [
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            40.0,
            f64::NAN,
            40.0,
            40.0,
            40.0,
        ];
        let with_gap: Vec<Option<f64>> = gap.iter().map(|t| (!t.is_nan()).then_some(*t)).collect();
        assert_eq!(steady(&segs(&with_gap)), Some(7..10));
        assert_eq!(steady(&segs(&[None; SEGMENTS])), None);
    }

    #[test]
    fn a_pool_without_a_supply_for_every_slice_has_none() {
        let mut p = Pool {
            supply_complete: true,
            ..Pool::default()
        };
        let s = segs(&[Some(70.0)]);
        p.add(&s[0], Some(30.0));
        assert_eq!(p.supply(), Some(30.0));
        assert_eq!(p.temp(), Some(70.0));
        assert_eq!(p.power(), Some(1000.0));
        p.add(&s[0], None);
        assert_eq!(p.supply(), None);
        // An empty slice needs no supply.
        let mut q = Pool {
            supply_complete: true,
            ..Pool::default()
        };
        q.add(&s[0], Some(30.0));
        q.add(&Seg::default(), None);
        assert_eq!(q.supply(), Some(30.0));
    }
}
