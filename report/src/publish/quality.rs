//! The measurement quality level of a run, in the spirit of the Green500 / EEHPC WG power
//! measurement levels L1–L3 (docs/PUBLISH.md): how many devices were measured, how often, over how
//! much of the run, and whether the racks' own PDU meters saw the same run. It is hallmark's own
//! scale, not the Green500's: the levels say what hallmark measured, not what a Green500
//! submission requires.
//!
//! | level | devices with GPU-side power | device rate | run covered | rack PDU meters |
//! |---|---|---|---|---|
//! | L1 | ≥ 1/64 of them (at least one) | ≥ 1 Hz | ≥ 80 % | not required |
//! | L2 | ≥ 1/8 of them (at least one) | ≥ 1 Hz | ≥ 95 % | on ≥ 1/8 of the racks (at least one), ≥ 0.1 Hz |
//! | L3 | every device | ≥ 1 Hz | ≥ 99 % | on every rack, ≥ 0.2 Hz |
//!
//! A run that meets none is "unrated". CDU and BMC meters are listed with the method but do not
//! enter the level (cooling is not part of a Green500 measurement either).

use super::model::{finite, MeterKind, Method};
use serde::Serialize;

/// A measurement quality level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    /// Meets no level.
    Unrated,
    L1,
    L2,
    L3,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Unrated => "unrated",
            Level::L1 => "L1",
            Level::L2 => "L2",
            Level::L3 => "L3",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run's level and what the next level up lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quality {
    pub level: Level,
    /// Why the run is not at the next level (empty at L3).
    pub short_of_next: Vec<String>,
}

/// Least device sample rate at every level, Hz.
pub const DEVICE_HZ: f64 = 1.0;

struct Requirement {
    level: Level,
    /// Devices measured: at least `devices_total / device_div`, rounded up, and at least one.
    device_div: usize,
    /// Least share of the run covered by device samples.
    coverage: f64,
    /// PDU meters: racks at least `racks_total / rack_div`, rounded up, at least one, at
    /// `pdu_hz` or faster; `None`: not required.
    pdu: Option<(usize, f64)>,
}

const LEVELS: [Requirement; 3] = [
    Requirement {
        level: Level::L1,
        device_div: 64,
        coverage: 0.80,
        pdu: None,
    },
    Requirement {
        level: Level::L2,
        device_div: 8,
        coverage: 0.95,
        pdu: Some((8, 0.1)),
    },
    Requirement {
        level: Level::L3,
        device_div: 1,
        coverage: 0.99,
        pdu: Some((1, 0.2)),
    },
];

fn at_least(total: usize, div: usize) -> usize {
    total.div_ceil(div).max(1)
}

/// What `m` lacks for `r`; empty when it meets it.
fn unmet(m: &Method, r: &Requirement) -> Vec<String> {
    let mut out = Vec::new();
    let need = at_least(m.devices_total, r.device_div);
    if m.devices_total == 0 {
        out.push("the run has no devices".to_string());
    } else if m.devices_instrumented < need {
        out.push(format!(
            "GPU-side power on {} of {} devices, {} needs {need}",
            m.devices_instrumented, m.devices_total, r.level
        ));
    }
    match finite(m.gpu_sample_hz) {
        Some(hz) if hz >= DEVICE_HZ => {}
        Some(hz) => out.push(format!(
            "devices sampled at {hz} Hz, {} needs {DEVICE_HZ} Hz",
            r.level
        )),
        None => out.push("the device sample rate is unknown".to_string()),
    }
    match (finite(m.covered_s), finite(m.run_s)) {
        (Some(c), Some(run)) if run > 0.0 => {
            let share = c / run;
            if share < r.coverage {
                out.push(format!(
                    "device samples cover {:.1} % of the run, {} needs {:.0} %",
                    share * 100.0,
                    r.level,
                    r.coverage * 100.0
                ));
            }
        }
        _ => out.push("how much of the run the samples cover is unknown".to_string()),
    }
    if let Some((div, hz)) = r.pdu {
        let need = at_least(m.racks_total, div);
        let pdu = m.meters.iter().find(|x| x.kind == MeterKind::Pdu);
        match pdu {
            None => out.push(format!(
                "no rack PDU meter, {} needs PDUs on {need} of {} racks",
                r.level, m.racks_total
            )),
            Some(p) => {
                if p.racks < need {
                    out.push(format!(
                        "PDU meters on {} of {} racks, {} needs {need}",
                        p.racks, m.racks_total, r.level
                    ));
                }
                match finite(p.sample_hz) {
                    Some(h) if h >= hz => {}
                    Some(h) => out.push(format!(
                        "PDUs read at {} Hz, {} needs {hz} Hz",
                        round3(h),
                        r.level
                    )),
                    None => out.push("the PDUs' reading rate is unknown".to_string()),
                }
            }
        }
    }
    out
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The quality level of a run measured as `m`.
pub fn quality(m: &Method) -> Quality {
    let mut level = Level::Unrated;
    for r in &LEVELS {
        let lacks = unmet(m, r);
        if !lacks.is_empty() {
            return Quality {
                level,
                short_of_next: lacks,
            };
        }
        level = r.level;
    }
    Quality {
        level,
        short_of_next: Vec::new(),
    }
}

/// The levels' requirements in words, for the page.
pub fn definitions() -> [(&'static str, &'static str); 3] {
    [
        (
            "L1",
            "GPU-side power on at least 1/64 of the devices (at least one), sampled at 1 Hz or \
             faster, over at least 80 % of the run.",
        ),
        (
            "L2",
            "GPU-side power on at least 1/8 of the devices (at least one) at 1 Hz or faster over at \
             least 95 % of the run, and rack PDU meters on at least 1/8 of the racks (at least one) \
             read every 10 s or faster.",
        ),
        (
            "L3",
            "GPU-side power on every device at 1 Hz or faster over at least 99 % of the run, and \
             rack PDU meters on every rack read every 5 s or faster.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::model::Meter;
    use super::*;

    fn method(inst: usize, total: usize, hz: f64, cov: f64, pdu: Option<(usize, f64)>) -> Method {
        Method {
            gpu_sensor: Some("NVML".into()),
            gpu_sample_hz: Some(hz),
            thermal_method: None,
            devices_instrumented: inst,
            devices_total: total,
            run_s: Some(100.0),
            covered_s: Some(cov * 100.0),
            meters: pdu
                .map(|(racks, hz)| Meter {
                    kind: MeterKind::Pdu,
                    count: racks * 2,
                    racks,
                    sample_hz: Some(hz),
                })
                .into_iter()
                .collect(),
            racks_total: 8,
        }
    }

    #[test]
    fn levels_follow_the_table() {
        assert_eq!(
            quality(&method(64, 64, 10.0, 1.0, Some((8, 1.0)))).level,
            Level::L3
        );
        // One rack without PDU: L2 at best.
        let q = quality(&method(64, 64, 10.0, 1.0, Some((7, 1.0))));
        assert_eq!(q.level, Level::L2);
        assert!(q.short_of_next[0].contains("7 of 8 racks"), "{q:?}");
        // 8 of 64 devices and no PDU: L1.
        assert_eq!(quality(&method(8, 64, 1.0, 1.0, None)).level, Level::L1);
        // 1 of 64 devices: L1 (1/64 rounds up to one).
        assert_eq!(quality(&method(1, 64, 1.0, 0.8, None)).level, Level::L1);
        // 1 of 65 needs 2.
        assert_eq!(
            quality(&method(1, 65, 1.0, 0.9, None)).level,
            Level::Unrated
        );
        // Slow sampling or poor coverage: unrated.
        assert_eq!(
            quality(&method(64, 64, 0.5, 1.0, None)).level,
            Level::Unrated
        );
        assert_eq!(
            quality(&method(64, 64, 1.0, 0.5, None)).level,
            Level::Unrated
        );
        // PDUs too slow for L3.
        let q = quality(&method(64, 64, 1.0, 1.0, Some((8, 0.1))));
        assert_eq!(q.level, Level::L2);
        assert!(
            q.short_of_next.iter().any(|s| s.contains("0.1 Hz")),
            "{q:?}"
        );
        assert_eq!(quality(&Method::default()).level, Level::Unrated);
    }
}
