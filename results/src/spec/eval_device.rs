//! Device criteria: `gpu_temperature` and `throttle` from the samples, `tflops` and
//! `wrong_elements` from the phase results.
//!
//! * **gpu_temperature**: the device's hottest `gpu_temp_c` in the selection, against its own
//!   `max_operating_temp_c − margin` or an absolute `max`.
//! * **throttle**: samples with the reason's bit set × the sample interval (`1 / sample_hz`), in
//!   device-seconds, summed over the subject's GPUs.
//! * **tflops**: per phase, the median and the median absolute deviation (MAD) of the devices'
//!   GFLOP/s; a device is judged in the phase where its ratio to the median is lowest. Below
//!   `min_fraction_of_median × median` it FAILs; more than `mad_outlier` scaled MADs
//!   (1.4826 × MAD) below the median it is a WARN.
//! * **wrong_elements**: the sum of the device's wrong elements over its phase results.

use super::data::{Acc, RunData};
use super::eval::{at_least, at_most, limit_of, list, note_warn, subjects, verdict, Sel, Subject};
use super::{Criterion, CriterionKind, TempLimit};
use crate::verdict::{Evidence, Scope, Status, Verdict};

/// MAD × this estimates the standard deviation of normally distributed values.
const MAD_SCALE: f64 = 1.4826;
/// Fewer devices than this give no fleet median.
const MIN_FLEET: usize = 3;

/// Judges a device criterion for every subject of its scope.
pub(super) fn judge(d: &RunData, c: &Criterion, sel: &Sel, out: &mut Vec<Verdict>) {
    match &c.kind {
        CriterionKind::GpuTemperature { limit, warn } => {
            for s in subjects(d, Scope::Device, true) {
                out.push(temperature(d, c, sel, &s, *limit, *warn));
            }
        }
        CriterionKind::Throttle { .. } => {
            for s in subjects(d, c.scope, true) {
                out.push(throttle(d, c, sel, &s));
            }
        }
        CriterionKind::Tflops {
            min_fraction_of_median,
            mad_outlier,
        } => tflops(d, c, sel, *min_fraction_of_median, *mad_outlier, out),
        _ => wrong_elements(d, c, sel, out),
    }
}

/// A device's samples in the selection.
fn acc(d: &RunData, sel: &Sel, dev: usize) -> Acc {
    match &sel.phases {
        None => d.total[dev].clone(),
        Some(ps) => {
            let mut a = Acc::default();
            for &p in ps {
                a.merge(&d.per_phase[dev][p]);
            }
            a
        }
    }
}

fn temperature(
    d: &RunData,
    c: &Criterion,
    sel: &Sel,
    s: &Subject,
    limit: TempLimit,
    warn: Option<TempLimit>,
) -> Verdict {
    let (cmp, unit, _) = limit_of(c);
    let dev = s.devices[0];
    let max_op = d.devices[dev].max_operating_temp_c;
    let resolve = |l: TempLimit| match l {
        TempLimit::Absolute { max_c } => Some(max_c),
        TempLimit::BelowMaxOperating { margin_c } => max_op.map(|m| m - margin_c),
    };
    let limit_c = resolve(limit);
    let warn_c = warn.and_then(resolve);
    let a = acc(d, sel, dev);
    let where_ = sel.describe(d);
    let mut ev = Evidence {
        subjects: vec![s.name.clone()],
        ..Evidence::default()
    };
    let Some(hottest) = a.agg.max_gpu_temp_c else {
        (ev.from_ns, ev.to_ns) = sel.span(d);
        ev.detail = format!(
            "no GPU temperature reading {where_} ({} samples)",
            a.agg.samples
        );
        return verdict(c, &s.name, Status::Incomplete, None, limit_c, cmp, unit, ev);
    };
    ev.from_ns = Some(a.hottest_at);
    ev.to_ns = Some(a.hottest_at);
    let how = match (limit, max_op) {
        (TempLimit::Absolute { max_c }, _) => format!("limit {max_c} °C for every GPU"),
        (TempLimit::BelowMaxOperating { margin_c }, Some(m)) => {
            format!("limit = the device's max-operating {m} °C − margin {margin_c} °C")
        }
        (TempLimit::BelowMaxOperating { .. }, None) => String::new(),
    };
    let Some(limit_c) = limit_c else {
        ev.detail = format!(
            "hottest reading {hottest:.1} °C {where_}, but the device reports no max-operating temperature; give the criterion an absolute `max`"
        );
        return verdict(c, &s.name, Status::Incomplete, None, None, cmp, unit, ev);
    };
    ev.detail = format!("hottest of {} readings {where_}; {how}", a.agg.samples);
    let status = at_most(hottest, limit_c, warn_c);
    note_warn(&mut ev, status, warn_c, unit);
    verdict(
        c,
        &s.name,
        status,
        Some(hottest),
        Some(limit_c),
        cmp,
        unit,
        ev,
    )
}

fn throttle(d: &RunData, c: &Criterion, sel: &Sel, s: &Subject) -> Verdict {
    let (cmp, unit, limit) = limit_of(c);
    let (reason, max_s, warn) = match c.kind {
        CriterionKind::Throttle {
            reason,
            max_s,
            warn_max_s,
        } => (reason, max_s, warn_max_s),
        _ => {
            return verdict(
                c,
                &s.name,
                Status::Incomplete,
                None,
                limit,
                cmp,
                unit,
                Evidence::default(),
            )
        }
    };
    let where_ = sel.describe(d);
    let i = reason.index();
    let (mut count, mut span, mut hit, mut silent) =
        (0u64, None::<(i64, i64)>, Vec::new(), Vec::new());
    for &dev in &s.devices {
        let a = acc(d, sel, dev);
        if a.agg.samples == 0 {
            silent.push(d.device_name(dev));
        }
        if a.agg.by_reason[i] > 0 {
            count += a.agg.by_reason[i];
            hit.push(d.device_name(dev));
        }
        if let Some((f, l)) = a.reason_span[i] {
            span = Some(span.map_or((f, l), |(a, b)| (a.min(f), b.max(l))));
        }
    }
    let mut ev = Evidence {
        subjects: if c.scope == Scope::Device {
            vec![s.name.clone()]
        } else {
            hit.clone()
        },
        ..Evidence::default()
    };
    (ev.from_ns, ev.to_ns) = match span {
        Some((f, l)) => (Some(f), Some(l)),
        None => sel.span(d),
    };
    if s.devices.is_empty() {
        ev.detail = format!("no GPU in this {}", c.scope.as_str());
        return verdict(c, &s.name, Status::Incomplete, None, limit, cmp, unit, ev);
    }
    let seconds = count as f64 / d.sample_hz;
    let interval_ms = 1e3 / d.sample_hz;
    ev.detail = format!(
        "{} set in {count} samples × {interval_ms} ms {where_}",
        reason.as_str()
    );
    if c.scope != Scope::Device {
        ev.detail.push_str(&format!(
            ", device-seconds summed over {} GPUs ({} throttled)",
            s.devices.len(),
            hit.len()
        ));
    }
    let status = at_most(seconds, max_s, warn);
    note_warn(&mut ev, status, warn, unit);
    if status != Status::Fail && !silent.is_empty() {
        ev.detail = format!(
            "{}; no samples {where_} from {}",
            ev.detail,
            list(&silent, 5)
        );
        return verdict(c, &s.name, Status::Incomplete, None, limit, cmp, unit, ev);
    }
    verdict(c, &s.name, status, Some(seconds), limit, cmp, unit, ev)
}

/// The median of values (sorts them).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// (median, MAD, devices) of one phase's GFLOP/s.
struct Fleet {
    median: f64,
    mad: f64,
    n: usize,
}

fn tflops(
    d: &RunData,
    c: &Criterion,
    sel: &Sel,
    frac: f64,
    mad_k: Option<f64>,
    out: &mut Vec<Verdict>,
) {
    let (cmp, unit, _) = limit_of(c);
    let phases: Vec<usize> = match &sel.phases {
        Some(ps) => ps.clone(),
        None => (0..d.phases.len())
            .filter(|&p| d.phases[p].workload != "idle")
            .collect(),
    };
    let where_ = match &sel.phases {
        Some(_) => sel.describe(d),
        None => "in the phases with load".to_string(),
    };
    // Per device, per considered phase: GFLOP/s.
    let mut by_device: Vec<Vec<(usize, f64)>> = vec![Vec::new(); d.devices.len()];
    let mut by_phase: Vec<Vec<f64>> = vec![Vec::new(); d.phases.len()];
    for r in &d.results {
        if let (true, Some(g)) = (phases.contains(&r.phase), r.gflops) {
            by_device[r.device].push((r.phase, g));
            by_phase[r.phase].push(g);
        }
    }
    let fleets: Vec<Option<Fleet>> = by_phase
        .into_iter()
        .map(|mut v| {
            if v.len() < MIN_FLEET {
                return None;
            }
            let m = median(&mut v);
            let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
            Some(Fleet {
                median: m,
                mad: median(&mut dev),
                n: v.len(),
            })
        })
        .collect();
    for s in subjects(d, Scope::Device, false) {
        let dev = s.devices[0];
        let mut ev = Evidence {
            subjects: vec![s.name.clone()],
            ..Evidence::default()
        };
        // The phase where the device's ratio to the median is lowest.
        let worst = by_device[dev]
            .iter()
            .filter_map(|&(p, g)| fleets[p].as_ref().map(|f| (p, g, f)))
            .min_by(|a, b| {
                (a.1 / a.2.median.max(f64::MIN_POSITIVE))
                    .total_cmp(&(b.1 / b.2.median.max(f64::MIN_POSITIVE)))
            });
        let Some((p, g, fleet)) = worst else {
            (ev.from_ns, ev.to_ns) = sel.span(d);
            ev.detail = if by_device[dev].is_empty() {
                format!("the device reported no GFLOP/s {where_}")
            } else {
                format!("fewer than {MIN_FLEET} devices reported GFLOP/s in the device's phases: no fleet median")
            };
            out.push(verdict(
                c,
                &s.name,
                Status::Incomplete,
                None,
                None,
                cmp,
                unit,
                ev,
            ));
            continue;
        };
        let phase = &d.phases[p];
        ev.from_ns = Some(phase.start_ns);
        ev.to_ns = Some(phase.end_ns);
        let (x, med) = (g / 1e3, fleet.median / 1e3);
        let limit = frac * med;
        let mut status = at_least(x, limit, None);
        let scaled = MAD_SCALE * fleet.mad / 1e3;
        let z = if scaled > 0.0 {
            (med - x) / scaled
        } else {
            0.0
        };
        ev.detail = format!(
            "achieved in phase {} (its lowest ratio to the median); fleet median {med:.1} TFLOP/s over {} devices, limit {frac} × median; {z:.1} scaled MADs below the median",
            phase.name, fleet.n
        );
        if status == Status::Pass && mad_k.is_some_and(|k| z > k) {
            status = Status::Warn;
            ev.detail.push_str(&format!(
                " (an outlier beyond {} MADs)",
                mad_k.unwrap_or_default()
            ));
        }
        out.push(verdict(
            c,
            &s.name,
            status,
            Some(x),
            Some(limit),
            cmp,
            unit,
            ev,
        ));
    }
}

fn wrong_elements(d: &RunData, c: &Criterion, sel: &Sel, out: &mut Vec<Verdict>) {
    let (cmp, unit, limit) = limit_of(c);
    let max = limit.unwrap_or(0.0);
    let where_ = sel.describe(d);
    // Per device: (wrong elements, results, their phases' span).
    type Checks = (u64, usize, Option<(i64, i64)>);
    let mut by_device: Vec<Checks> = vec![(0, 0, None); d.devices.len()];
    for r in &d.results {
        let (Some(w), true) = (
            r.wrong_elements,
            sel.phases.as_ref().is_none_or(|ps| ps.contains(&r.phase)),
        ) else {
            continue;
        };
        let e = &mut by_device[r.device];
        e.0 = e.0.saturating_add(w.max(0) as u64);
        e.1 += 1;
        let ph = &d.phases[r.phase];
        e.2 = Some(e.2.map_or((ph.start_ns, ph.end_ns), |(a, b)| {
            (a.min(ph.start_ns), b.max(ph.end_ns))
        }));
    }
    for s in subjects(d, Scope::Device, false) {
        let (wrong, checks, span) = by_device[s.devices[0]];
        let mut ev = Evidence {
            subjects: vec![s.name.clone()],
            ..Evidence::default()
        };
        if checks == 0 {
            (ev.from_ns, ev.to_ns) = sel.span(d);
            ev.detail = format!("the device reported no result check {where_}");
            out.push(verdict(
                c,
                &s.name,
                Status::Incomplete,
                None,
                limit,
                cmp,
                unit,
                ev,
            ));
            continue;
        }
        (ev.from_ns, ev.to_ns) = span.map_or((None, None), |(a, b)| (Some(a), Some(b)));
        ev.detail = format!("wrong elements summed over {checks} phase results {where_}");
        let status = at_most(wrong as f64, max, None);
        out.push(verdict(
            c,
            &s.name,
            status,
            Some(wrong as f64),
            limit,
            cmp,
            unit,
            ev,
        ));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(super::median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
