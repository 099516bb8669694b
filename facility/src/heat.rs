//! Heat arithmetic of a coolant loop.
//!
//! Heat carried by a loop, kW = ρ · c_p · Q · ΔT with
//! - ρ, density in kg/m³ (Redfish `DensityKgPerCubicMeter`),
//! - c_p, specific heat in kJ/(kg·K) (`SpecificHeatkJoulesPerKgK`),
//! - Q, flow in L/min (`FlowLitersPerMinute`), converted to m³/s by dividing by 60 000,
//! - ΔT, return − supply temperature in K (`ReturnTemperatureCelsius` − `SupplyTemperatureCelsius`,
//!   else `DeltaTemperatureCelsius`).
//!
//! kg/m³ · kJ/(kg·K) · m³/s · K = kJ/s = kW. The coolant's properties come from the connector's
//! `Coolant`, else the CDU's `Coolant`, else a stated default (plain water when the service says
//! water without additive, else a 25 % propylene-glycol mix), and the output says which.

use crate::finding::{Finding, FindingKind};
use crate::model::Coolant;
use crate::reading::Raw;
use serde::Serialize;

/// Density and specific heat used for a loop, and where they come from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoolantProps {
    pub density_kg_per_m3: f64,
    pub specific_heat_kj_per_kg_k: f64,
    /// `connector`, `cdu`, or `default: …` naming the assumed coolant.
    pub source: String,
}

/// Water at 30 °C.
pub const WATER: (f64, f64) = (995.7, 4.178);
/// 25 % propylene glycol in water near 30 °C (ASHRAE tables, rounded).
pub const PG25: (f64, f64) = (1020.0, 3.93);
/// Plausible coolant properties; outside these a stated value is refused.
pub const DENSITY_RANGE: (f64, f64) = (500.0, 2_000.0);
pub const SPECIFIC_HEAT_RANGE: (f64, f64) = (1.0, 5.0);

/// Tolerance between a computed and a reported heat (or two reported heats): they disagree when
/// they differ by more than `relative` of the larger and by more than `absolute_kw`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeatTolerance {
    pub relative: f64,
    pub absolute_kw: f64,
}

impl Default for HeatTolerance {
    fn default() -> Self {
        HeatTolerance {
            relative: 0.10,
            absolute_kw: 0.5,
        }
    }
}

impl HeatTolerance {
    pub fn disagree(&self, a: f64, b: f64) -> bool {
        let diff = (a - b).abs();
        diff > self.absolute_kw && diff > self.relative * a.abs().max(b.abs())
    }
}

/// ρ · c_p · flow · ΔT in kW (flow in L/min, ΔT in K, ρ in kg/m³, c_p in kJ/(kg·K)).
pub fn heat_kw(props: &CoolantProps, flow_lpm: f64, delta_t_k: f64) -> f64 {
    props.density_kg_per_m3 * (flow_lpm / 60_000.0) * props.specific_heat_kj_per_kg_k * delta_t_k
}

/// The properties to use for a connector, from its own `Coolant`, else the CDU's, else a default;
/// a stated value that is not physical is reported (`uri` of the resource stating it) and skipped.
pub fn coolant_for(
    connector: Option<&Coolant>,
    connector_uri: &str,
    cdu: Option<&Coolant>,
    cdu_uri: &str,
    findings: &mut Vec<Finding>,
) -> CoolantProps {
    for (coolant, uri, source) in [
        (connector, connector_uri, "connector"),
        (cdu, cdu_uri, "cdu"),
    ] {
        let Some(c) = coolant else { continue };
        let density = stated(
            &c.density_kg_per_cubic_meter,
            DENSITY_RANGE,
            uri,
            "Coolant.DensityKgPerCubicMeter",
            "kg/m³",
            findings,
        );
        let cp = stated(
            &c.specific_heat_kj_per_kg_k,
            SPECIFIC_HEAT_RANGE,
            uri,
            "Coolant.SpecificHeatkJoulesPerKgK",
            "kJ/(kg·K)",
            findings,
        );
        if let (Some(d), Some(cp)) = (density, cp) {
            return CoolantProps {
                density_kg_per_m3: d,
                specific_heat_kj_per_kg_k: cp,
                source: source.into(),
            };
        }
    }
    let plain_water = [connector, cdu]
        .into_iter()
        .flatten()
        .next()
        .is_some_and(|c| {
            c.coolant_type.as_deref() == Some("Water")
                && Raw::from_num(&c.additive_percent).number() == Some(0.0)
        });
    let ((d, cp), what) = if plain_water {
        (WATER, "default: water at 30 °C (the service states water without additive but no density or specific heat)")
    } else {
        (PG25, "default: 25 % propylene glycol in water near 30 °C (the service states no density or specific heat)")
    };
    CoolantProps {
        density_kg_per_m3: d,
        specific_heat_kj_per_kg_k: cp,
        source: what.into(),
    }
}

fn stated(
    n: &crate::model::Num,
    range: (f64, f64),
    uri: &str,
    property: &str,
    unit: &str,
    findings: &mut Vec<Finding>,
) -> Option<f64> {
    match Raw::from_num(n) {
        Raw::Absent => None,
        Raw::Number(v) if v >= range.0 && v <= range.1 => Some(v),
        Raw::Number(v) => {
            let hint = if property.contains("Density") && v > 0.5 && v < 2.0 {
                " (this looks like kg/L; Redfish states kg/m³)"
            } else {
                ""
            };
            findings.push(
                Finding::new(FindingKind::BadCoolant, uri, format!("{property} is {v} {unit}, outside {}–{} {unit}{hint}; the next source of coolant properties is used", range.0, range.1))
                    .with("value", v)
                    .with("min", range.0)
                    .with("max", range.1),
            );
            None
        }
        Raw::Malformed(t) => {
            findings.push(Finding::new(FindingKind::BadCoolant, uri, format!("{property} is {t}, not a number; the next source of coolant properties is used")));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn coolant(v: serde_json::Value) -> Coolant {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn dmtf_cdu_primary_loop_is_28_6_kw() {
        // DMTF's public-cooling-unit mockup: CDU Coolant 1030 kg/m³, 3.974 kJ/(kg·K); primary
        // connector 42 L/min, supply 30 °C, return 40 °C.
        let cdu = coolant(
            json!({"CoolantType": "Water", "AdditivePercent": 20, "SpecificHeatkJoulesPerKgK": 3.974, "DensityKgPerCubicMeter": 1030}),
        );
        let conn = coolant(json!({"CoolantType": "Water", "AdditivePercent": 0}));
        let mut f = vec![];
        let p = coolant_for(Some(&conn), "c", Some(&cdu), "u", &mut f);
        assert_eq!(p.source, "cdu");
        let q = heat_kw(&p, 42.0, 10.0);
        assert!(
            (q - 1030.0 * 0.0007 * 3.974 * 10.0).abs() < 1e-9 && (q - 28.652).abs() < 0.001,
            "{q}"
        );
        assert!(f.is_empty());
        assert!(HeatTolerance::default().disagree(q, 25.48));
        assert!(!HeatTolerance::default().disagree(25.48, 25.31));
    }

    #[test]
    fn defaults_are_stated_and_bad_values_reported() {
        let mut f = vec![];
        let p = coolant_for(None, "c", None, "u", &mut f);
        assert_eq!((p.density_kg_per_m3, p.specific_heat_kj_per_kg_k), PG25);
        assert!(p.source.starts_with("default: 25 % propylene glycol"));
        let water = coolant(json!({"CoolantType": "Water", "AdditivePercent": 0}));
        assert_eq!(
            coolant_for(Some(&water), "c", None, "u", &mut f).density_kg_per_m3,
            WATER.0
        );
        let kg_per_l =
            coolant(json!({"SpecificHeatkJoulesPerKgK": 4.18, "DensityKgPerCubicMeter": 1.0}));
        let p = coolant_for(None, "c", Some(&kg_per_l), "u", &mut f);
        assert_eq!(p.density_kg_per_m3, PG25.0);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message.contains("kg/L") && f[0].uri == "u",
            "{:?}",
            f[0]
        );
    }
}
