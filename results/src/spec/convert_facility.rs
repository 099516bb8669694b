//! The facility criterion kinds in a spec file (`pdu_peak_power`, `pdu_sustained_power`,
//! `coolant_supply_temperature`, `coolant_delta_t`, `heat_removed`, `energy_balance`,
//! `heat_balance`): the keys each takes and their conversion, every refusal a [`SpecError`] at
//! the offending value.

use super::convert::{Ck, KindKeys};
use super::errors::SpecError;
use super::units::Dimension;
use super::CriterionKind;
use crate::facility::Coolant;
use crate::verdict::Scope;

const RACK: &[Scope] = &[Scope::Rack];

/// (kind, required keys, optional keys, default scope, allowed scopes) of the facility kinds.
pub(super) const FACILITY_KIND_KEYS: &[KindKeys] = &[
    (
        "pdu_peak_power",
        &["max"],
        &["warn_max", "scope", "phase"],
        Scope::Rack,
        RACK,
    ),
    (
        "pdu_sustained_power",
        &["min", "window"],
        &["warn_min", "scope", "phase"],
        Scope::Rack,
        RACK,
    ),
    (
        "coolant_supply_temperature",
        &["max"],
        &["warn_max", "scope", "phase"],
        Scope::Rack,
        RACK,
    ),
    (
        "coolant_delta_t",
        &["max"],
        &["warn_max", "scope", "phase"],
        Scope::Rack,
        RACK,
    ),
    (
        "heat_removed",
        &["min", "window"],
        &["warn_min", "scope", "phase"],
        Scope::Rack,
        RACK,
    ),
    (
        "energy_balance",
        &["tolerance"],
        &["scope", "phase"],
        Scope::Rack,
        RACK,
    ),
    (
        "heat_balance",
        &["tolerance"],
        &["capture_min", "capture_max", "coolant", "scope", "phase"],
        Scope::Rack,
        RACK,
    ),
];

/// The title of a facility criterion without one.
pub(super) fn default_title(kind: &CriterionKind) -> String {
    match kind {
        CriterionKind::PduPeakPower { .. } => "Peak rack power by PDU",
        CriterionKind::PduSustainedPower { .. } => "Sustained rack power by PDU",
        CriterionKind::CoolantSupplyTemperature { .. } => "Coolant supply temperature under load",
        CriterionKind::CoolantDeltaT { .. } => "Coolant ΔT under load",
        CriterionKind::HeatRemoved { .. } => "Heat removed per rack under load",
        CriterionKind::EnergyBalance { .. } => "Energy balance: GPU-side ≤ chassis ≤ PDU",
        CriterionKind::HeatBalance { .. } => "Heat balance: ρ·c_p·flow·ΔT, heat removed, PDU",
        _ => "Criterion",
    }
    .to_string()
}

/// Highest power a criterion may state, kW.
pub(super) const MAX_KW: f64 = 1e6;
/// Longest window a criterion may state, s.
pub(super) const DAY: f64 = 86_400.0;

impl Ck<'_> {
    /// `max` and `warn_max` of a peak-power criterion (GPU-side or by PDU), kW.
    pub(super) fn peak_limits(&self) -> Result<(f64, Option<f64>), SpecError> {
        use Dimension::Power;
        let max_kw = self.ranged("max", self.required("max")?, Power, 0.0, true, MAX_KW)?;
        let warn_max_kw = self.opt("warn_max", |v| {
            self.ranged("warn_max", v, Power, 0.0, true, MAX_KW)
        })?;
        self.warn_order("warn_max", warn_max_kw, max_kw, false, "kW", 1.0)?;
        Ok((max_kw, warn_max_kw))
    }

    /// `min`, `window` and `warn_min` of a sustained-power criterion (GPU-side, by PDU, or heat
    /// removed), kW and s.
    pub(super) fn sustained_limits(&self) -> Result<(f64, f64, Option<f64>), SpecError> {
        use Dimension::{Power, Time};
        let min_kw = self.ranged("min", self.required("min")?, Power, 0.0, true, MAX_KW)?;
        let window_s = self.ranged("window", self.required("window")?, Time, 0.0, true, DAY)?;
        let warn_min_kw = self.opt("warn_min", |v| {
            self.ranged("warn_min", v, Power, 0.0, true, MAX_KW)
        })?;
        self.warn_order("warn_min", warn_min_kw, min_kw, true, "kW", 1.0)?;
        Ok((min_kw, window_s, warn_min_kw))
    }

    /// The facility kinds; `None` for any other kind.
    pub(super) fn facility_kind(&self) -> Result<Option<CriterionKind>, SpecError> {
        use Dimension::*;
        let kind = match self.keys.0 {
            "pdu_peak_power" => {
                let (max_kw, warn_max_kw) = self.peak_limits()?;
                CriterionKind::PduPeakPower {
                    max_kw,
                    warn_max_kw,
                }
            }
            "pdu_sustained_power" | "heat_removed" => {
                let (min_kw, window_s, warn_min_kw) = self.sustained_limits()?;
                if self.keys.0 == "heat_removed" {
                    CriterionKind::HeatRemoved {
                        min_kw,
                        window_s,
                        warn_min_kw,
                    }
                } else {
                    CriterionKind::PduSustainedPower {
                        min_kw,
                        window_s,
                        warn_min_kw,
                    }
                }
            }
            "coolant_supply_temperature" => {
                let max_c = self.ranged(
                    "max",
                    self.required("max")?,
                    Temperature,
                    -20.0,
                    false,
                    120.0,
                )?;
                let warn_max_c = self.opt("warn_max", |v| {
                    self.ranged("warn_max", v, Temperature, -20.0, false, 120.0)
                })?;
                self.warn_order("warn_max", warn_max_c, max_c, false, "°C", 1.0)?;
                CriterionKind::CoolantSupplyTemperature { max_c, warn_max_c }
            }
            "coolant_delta_t" => {
                let max_k = self.delta_t("max")?.unwrap_or(0.0);
                let warn_max_k = self.delta_t("warn_max")?;
                self.warn_order("warn_max", warn_max_k, max_k, false, "K", 1.0)?;
                CriterionKind::CoolantDeltaT { max_k, warn_max_k }
            }
            "energy_balance" => CriterionKind::EnergyBalance {
                tolerance: self.share("tolerance", self.required("tolerance")?, 1.0)?,
            },
            "heat_balance" => self.heat_balance()?,
            _ => return Ok(None),
        };
        Ok(Some(kind))
    }

    /// A temperature difference in K (`"12 K"`, also `"12 °C"`), greater than 0 and at most 100 K.
    fn delta_t(&self, key: &str) -> Result<Option<f64>, SpecError> {
        self.opt(key, |v| {
            let x = self.quantity(key, v, Dimension::Temperature, true)?;
            if !(x > 0.0 && x <= 100.0) {
                return Err(self.err(
                    v,
                    format!(
                        "`{key}` of criterion `{}` is {}, out of range: give a temperature difference greater than 0 K and at most 100 K, such as \"12 K\"",
                        self.id,
                        v.get_ref()
                    ),
                ));
            }
            Ok(x)
        })
    }

    /// A percentage (`"5 %"`) as a fraction greater than 0 and at most `hi`.
    fn share(
        &self,
        key: &str,
        v: &toml::Spanned<super::file::Raw>,
        hi: f64,
    ) -> Result<f64, SpecError> {
        self.ranged(key, v, Dimension::Fraction, 0.0, true, hi)
    }

    fn heat_balance(&self) -> Result<CriterionKind, SpecError> {
        let tolerance = self.share("tolerance", self.required("tolerance")?, 1.0)?;
        let capture_min = self.opt("capture_min", |v| self.share("capture_min", v, 2.0))?;
        let capture_max = self.opt("capture_max", |v| self.share("capture_max", v, 2.0))?;
        if let (Some(lo), Some(hi)) = (capture_min, capture_max) {
            if lo > hi {
                let v = self
                    .raw("capture_max")
                    .map_or(self.span.clone(), |v| v.span());
                return Err(self.cx.err(
                    v,
                    format!(
                        "`capture_max` of criterion `{}` ({} %) is below `capture_min` ({} %); the liquid-capture range runs from `capture_min` up to `capture_max`",
                        self.id,
                        hi * 100.0,
                        lo * 100.0
                    ),
                ));
            }
        }
        let coolant = match &self.c.coolant {
            None => Coolant::PG25,
            Some(c) => match c.get_ref().as_str() {
                "pg25" => Coolant::PG25,
                "water" => Coolant::WATER,
                other => {
                    return Err(self.cx.err(
                        c.span(),
                        format!(
                            "`coolant` of criterion `{}` is `{other}`; the coolants are pg25 (25 % propylene glycol, 1020 kg/m³, 3.93 kJ/(kg·K)) and water (995.7 kg/m³, 4.178 kJ/(kg·K))",
                            self.id
                        ),
                    ))
                }
            },
        };
        Ok(CriterionKind::HeatBalance {
            tolerance,
            capture_min,
            capture_max,
            coolant,
        })
    }
}
