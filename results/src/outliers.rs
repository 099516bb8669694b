//! Cross-sectional outliers within one run (issue 11, item 2): per metric, over like subjects,
//! the median and the median absolute deviation (MAD), and each subject's robust z-score
//! (Iglewicz and Hoaglin's modified z-score):
//!
//! * **Like subjects**: devices of one model (`device <model>`), the nodes, the racks, the pairs
//!   of the latency mesh, each a group of its own; halls, collectives, PDUs and CDUs are not
//!   compared with one another, nor are the racks' facility figures
//!   ([`crate::metrics::FACILITY_METRICS`]): each rack's meters and coolant loop are its own
//!   (a CDU's capacity and flow are set per rack), and the facility summary already judges each
//!   rack's meters against its own GPU-side power (the energy and heat balances). Values of one metric with different units (a thermal resistance
//!   by another method) are different groups. A group of fewer than [`MIN_GROUP`] values is not
//!   examined.
//! * `robust_z = (x − median) / (1.4826 · MAD)`; an outlier when `|robust_z| >` [`Z_LIMIT`]
//!   (3.5, Iglewicz–Hoaglin), on either side: a device far above or far below its like devices is
//!   listed whichever way the metric improves (a GPU drawing much less than its neighbours at full
//!   load is as suspect as one drawing more), with its [`Side`].
//! * **MAD of 0** (more than half the values equal, e.g. throttle seconds that are 0 on most
//!   devices, or the throughput of the GPUs not held by their power cap), or at most
//!   [`TIGHT_MAD`] of |median|: the denominator becomes `1.253314 · MeanAD`, the mean absolute
//!   deviation from the median (the usual fallback for the modified z-score); when that is 0 too,
//!   all values are equal and nothing is an outlier.
//! * A deviation under [`MIN_RELATIVE_DEVIATION`] (5 %) of the median's magnitude is never an
//!   outlier, however tight the group: like parts differ by a few percent on their own (GPU
//!   efficiency and throughput under a power cap by ±3 % in the simulated hall's defaults), and a
//!   tight mode with such a tail (the GPUs a power cap does not hold all at one throughput, the
//!   others 0–3 % below) would otherwise list its tail.
//!
//! These are outliers within a run, separate from regressions across runs (`hallmark compare`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::metrics::{MetricValue, SubjectKind};

/// The modified z-score beyond which a value is an outlier (Iglewicz and Hoaglin).
pub const Z_LIMIT: f64 = 3.5;
/// MAD × this estimates the standard deviation of normally distributed values.
pub const MAD_SCALE: f64 = 1.4826;
/// MeanAD × this stands in for the scaled MAD when the MAD is 0.
pub const MEAN_AD_SCALE: f64 = 1.253314;
/// Groups smaller than this are not examined.
pub const MIN_GROUP: usize = 5;
/// A deviation from the median smaller than this fraction of |median| is never an outlier.
pub const MIN_RELATIVE_DEVIATION: f64 = 0.05;
/// A MAD at most this fraction of |median| counts as 0: a tight mode (more than half the values
/// equal but for rounding), whose MAD would make any departure from it look infinitely far.
pub const TIGHT_MAD: f64 = 0.001;

/// Which side of its group's median an outlier lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    High,
    Low,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::High => "high",
            Side::Low => "low",
        }
    }
}

/// One subject's metric far from its like subjects' median.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outlier {
    pub kind: SubjectKind,
    pub subject: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    /// The group's median and (unscaled) MAD.
    pub median: f64,
    pub mad: f64,
    /// (value − median) / (1.4826 · MAD), or over 1.253314 · MeanAD where the MAD is 0.
    pub robust_z: f64,
    /// `device <model>`, `nodes`, `racks` or `pairs`.
    pub group: String,
    /// Its size.
    pub group_size: usize,
    pub direction: Side,
}

/// The text summary's section: one line per outlier, or that there is none.
pub fn write_outliers(o: &mut String, outliers: &[Outlier]) -> std::fmt::Result {
    use std::fmt::Write;
    if outliers.is_empty() {
        return writeln!(o, "Outliers within the run: none");
    }
    writeln!(
        o,
        "Outliers within the run ({}; robust z beyond ±{Z_LIMIT} against like subjects):",
        outliers.len()
    )?;
    for x in outliers {
        writeln!(
            o,
            "  ! {} {} {}: {} {} ({}, z {:+.1}; median {} over {} in {})",
            x.kind.as_str(),
            x.subject,
            x.metric,
            figure(x.value),
            x.unit,
            x.direction.as_str(),
            x.robust_z,
            figure(x.median),
            x.group_size,
            x.group
        )?;
    }
    Ok(())
}

/// A figure with four significant digits or so.
fn figure(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.1 {
        format!("{v:.5}")
    } else {
        format!("{v:.2}")
    }
}

/// The group a subject is compared within, `None` for kinds that are not compared.
fn group_of(m: &MetricValue, models: &HashMap<String, String>) -> Option<String> {
    if crate::metrics::FACILITY_METRICS.contains(&m.metric.as_str()) {
        return None;
    }
    match m.kind {
        SubjectKind::Device => Some(format!(
            "device {}",
            models.get(&m.subject).map_or("unknown", String::as_str)
        )),
        SubjectKind::Node => Some("nodes".to_string()),
        SubjectKind::Rack => Some("racks".to_string()),
        SubjectKind::Pair => Some("pairs".to_string()),
        SubjectKind::Hall | SubjectKind::Collective | SubjectKind::Pdu | SubjectKind::Cdu => None,
    }
}

/// The median of values (sorts them); `values` is not empty.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The outliers among `metrics`; `models` maps a device subject (`node/index`) to its model.
/// Sorted by (kind, subject, metric).
pub fn find_outliers(metrics: &[MetricValue], models: &HashMap<String, String>) -> Vec<Outlier> {
    type Key = (String, String, String);
    let mut groups: BTreeMap<Key, Vec<(&MetricValue, f64)>> = BTreeMap::new();
    for m in metrics {
        let (Some(v), Some(g)) = (m.value.filter(|v| v.is_finite()), group_of(m, models)) else {
            continue;
        };
        groups
            .entry((g, m.metric.clone(), m.unit.clone()))
            .or_default()
            .push((m, v));
    }
    let mut out = Vec::new();
    for ((group, _, _), members) in groups {
        if members.len() < MIN_GROUP {
            continue;
        }
        let mut values: Vec<f64> = members.iter().map(|x| x.1).collect();
        let med = median(&mut values);
        let mut dev: Vec<f64> = values.iter().map(|x| (x - med).abs()).collect();
        let mad = median(&mut dev);
        let scale = if mad > TIGHT_MAD * med.abs() {
            MAD_SCALE * mad
        } else {
            MEAN_AD_SCALE * dev.iter().sum::<f64>() / dev.len() as f64
        };
        if scale <= 0.0 || !scale.is_finite() {
            continue;
        }
        for (m, v) in &members {
            let z = (v - med) / scale;
            if z.abs() > Z_LIMIT && (v - med).abs() >= MIN_RELATIVE_DEVIATION * med.abs() {
                out.push(Outlier {
                    kind: m.kind,
                    subject: m.subject.clone(),
                    metric: m.metric.clone(),
                    value: *v,
                    unit: m.unit.clone(),
                    median: med,
                    mad,
                    robust_z: z,
                    group: group.clone(),
                    group_size: members.len(),
                    direction: if z > 0.0 { Side::High } else { Side::Low },
                });
            }
        }
    }
    out.sort_by(|a, b| (a.kind, &a.subject, &a.metric).cmp(&(b.kind, &b.subject, &b.metric)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(i: usize, metric: &str, v: Option<f64>) -> MetricValue {
        MetricValue {
            kind: SubjectKind::Device,
            subject: format!("n{}/{}", i / 8, i % 8),
            metric: metric.to_string(),
            value: v,
            unit: "K/W".to_string(),
        }
    }

    fn models(n: usize, model: impl Fn(usize) -> &'static str) -> HashMap<String, String> {
        (0..n)
            .map(|i| (format!("n{}/{}", i / 8, i % 8), model(i).to_string()))
            .collect()
    }

    #[test]
    fn a_weak_plate_stands_out_and_the_spread_does_not() {
        // ±10 % spread around 0.045 K/W, one plate 1.5× worse.
        let mut ms: Vec<MetricValue> = (0..16)
            .map(|i| {
                let spread = 1.0 + 0.1 * ((i as f64 * 0.77).sin());
                device(i, "thermal_resistance_k_per_w", Some(0.045 * spread))
            })
            .collect();
        ms[5].value = Some(0.045 * 1.5);
        ms.push(device(16, "thermal_resistance_k_per_w", None));
        let out = find_outliers(&ms, &models(17, |_| "B200"));
        assert_eq!(out.len(), 1, "{out:?}");
        let o = &out[0];
        assert_eq!(o.subject, "n0/5");
        assert_eq!(o.direction, Side::High);
        assert!(o.robust_z > Z_LIMIT);
        assert_eq!(o.group, "device B200");
        assert_eq!(o.group_size, 16, "the absent value is not in the group");
    }

    #[test]
    fn like_devices_only_and_both_sides() {
        // Two models: each group is tight around its own figure; one low device in the second.
        let mut ms: Vec<MetricValue> = (0..16)
            .map(|i| {
                let base = if i < 8 { 700.0 } else { 1000.0 };
                device(i, "mean_power_w", Some(base + (i % 3) as f64))
            })
            .collect();
        ms[12].value = Some(800.0);
        let out = find_outliers(&ms, &models(16, |i| if i < 8 { "H100" } else { "B200" }));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].subject, "n1/4");
        assert_eq!(out[0].direction, Side::Low);
        assert_eq!(out[0].group, "device B200");
        // All in one group, 700 and 1000 W are two halves, no outlier.
        let out = find_outliers(&ms, &models(16, |_| "B200"));
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_zero_mad_falls_back_to_the_mean_absolute_deviation() {
        // Most devices never throttled: one that did is an outlier.
        let mut ms: Vec<MetricValue> = (0..10)
            .map(|i| device(i, "throttle_s", Some(0.0)))
            .collect();
        ms[3].value = Some(2.5);
        let out = find_outliers(&ms, &models(10, |_| "B200"));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].median, out[0].mad), (0.0, 0.0));
        assert!(out[0].robust_z.is_finite() && out[0].robust_z > Z_LIMIT);
        // Four of ten capped at their power limit: a mode, not an outlier.
        for m in ms.iter_mut().take(4) {
            m.value = Some(2.5);
        }
        assert!(find_outliers(&ms, &models(10, |_| "B200")).is_empty());
        // A mode equal but for rounding counts as MAD 0: the tail of power-capped devices
        // (7 of 16, 0.4–2.8 % slower) is not a list of outliers; one far slower device is.
        let mut tflops: Vec<MetricValue> = (0..16)
            .map(|i| {
                let v = if i < 9 {
                    2250.0 + 1e-9 * i as f64
                } else {
                    2250.0 * (1.0 - 0.004 * (i - 8) as f64)
                };
                device(i, "sustained_tflops", Some(v))
            })
            .collect();
        assert!(find_outliers(&tflops, &models(16, |_| "B200")).is_empty());
        tflops[15].value = Some(2000.0);
        let out = find_outliers(&tflops, &models(16, |_| "B200"));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].robust_z.is_finite() && out[0].robust_z < -Z_LIMIT);
        // All equal: nothing.
        for m in &mut ms {
            m.value = Some(1.0);
        }
        assert!(find_outliers(&ms, &models(10, |_| "B200")).is_empty());
    }

    #[test]
    fn the_text_names_subject_metric_and_side() {
        let mut ms: Vec<MetricValue> = (0..10)
            .map(|i| {
                device(
                    i,
                    "thermal_resistance_k_per_w",
                    Some(0.045 + 0.0001 * i as f64),
                )
            })
            .collect();
        ms[9].value = Some(0.07);
        let out = find_outliers(&ms, &models(10, |_| "B200"));
        let mut text = String::new();
        write_outliers(&mut text, &out).unwrap();
        assert!(
            text.contains("! device n1/1 thermal_resistance_k_per_w: 0.07000 K/W (high, z +"),
            "{text}"
        );
        assert!(text.contains("over 10 in device B200"), "{text}");
        let mut none = String::new();
        write_outliers(&mut none, &[]).unwrap();
        assert_eq!(none, "Outliers within the run: none\n");
    }

    #[test]
    fn tiny_deviations_and_small_groups_are_not_outliers() {
        // Nearly identical readings: a 4 % step is far in MADs but under the floor.
        let mut ms: Vec<MetricValue> = (0..10)
            .map(|i| device(i, "idle_power_w", Some(150.0 + 1e-6 * i as f64)))
            .collect();
        ms[0].value = Some(156.0);
        assert!(find_outliers(&ms, &models(10, |_| "B200")).is_empty());
        ms[0].value = Some(180.0);
        assert_eq!(find_outliers(&ms, &models(10, |_| "B200")).len(), 1);
        // Four devices are too few to judge.
        assert!(find_outliers(&ms[..4], &models(4, |_| "B200")).is_empty());
        // Halls and collectives are never compared.
        let halls: Vec<MetricValue> = (0..10)
            .map(|i| MetricValue {
                kind: SubjectKind::Collective,
                subject: format!("all-reduce/{i}"),
                metric: "busbw_gbps".into(),
                value: Some(if i == 0 { 1.0 } else { 100.0 }),
                unit: "GB/s".into(),
            })
            .collect();
        assert!(find_outliers(&halls, &HashMap::new()).is_empty());
        // Nor the racks' facility figures.
        let racks: Vec<MetricValue> = (0..10)
            .map(|i| MetricValue {
                kind: SubjectKind::Rack,
                subject: format!("rack-{i}"),
                metric: "coolant_delta_t_k".into(),
                value: Some(if i == 0 { 20.0 } else { 5.0 + 0.01 * i as f64 }),
                unit: "K".into(),
            })
            .collect();
        assert!(find_outliers(&racks, &HashMap::new()).is_empty());
        let mut power = racks.clone();
        for p in &mut power {
            p.metric = "full_load_power_w".into();
        }
        assert_eq!(find_outliers(&power, &HashMap::new()).len(), 1);
    }
}
