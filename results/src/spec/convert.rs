//! Conversion and checks: the file structs into a [`Spec`], every value checked and every refusal a
//! [`SpecError`] at the offending key or value that says what is allowed.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::errors::{Cx, SpecError};
use super::file::{CriterionFile, SpecFile};
use super::units::Dimension;
use super::{Criterion, CriterionKind, Spec, TempLimit, ThrottleReason, KINDS};
use crate::verdict::Scope;

/// Longest accepted spec name and criterion id, characters.
const MAX_NAME_LEN: usize = 64;
/// Longest accepted title and description, characters.
const MAX_TEXT_LEN: usize = 2000;

/// (kind, required keys, optional keys, default scope, allowed scopes).
pub(super) type KindKeys = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    Scope,
    &'static [Scope],
);

pub(super) const GROUPS: &[Scope] = &[Scope::Rack, Scope::Row, Scope::Hall];
const DEVICE: &[Scope] = &[Scope::Device];
const HALL: &[Scope] = &[Scope::Hall];

const KIND_KEYS: &[KindKeys] = &[
    (
        "sustained_power",
        &["min", "window"],
        &["scope", "phase", "warn_min"],
        Scope::Rack,
        GROUPS,
    ),
    (
        "peak_power",
        &["max"],
        &["scope", "phase", "warn_max"],
        Scope::Rack,
        GROUPS,
    ),
    (
        "gpu_temperature",
        &[],
        &["margin", "max", "warn_margin", "warn_max", "scope", "phase"],
        Scope::Device,
        DEVICE,
    ),
    (
        "throttle",
        &["reason", "max"],
        &["warn_max", "scope", "phase"],
        Scope::Device,
        &[
            Scope::Device,
            Scope::Node,
            Scope::Rack,
            Scope::Row,
            Scope::Hall,
        ],
    ),
    (
        "tflops",
        &["min_fraction_of_median"],
        &["mad_outlier", "scope", "phase"],
        Scope::Device,
        DEVICE,
    ),
    (
        "wrong_elements",
        &[],
        &["max", "scope", "phase"],
        Scope::Device,
        DEVICE,
    ),
    (
        "start_skew",
        &["max"],
        &["warn_max", "scope", "phase"],
        Scope::Hall,
        HALL,
    ),
    (
        "latency_p99",
        &["max"],
        &["warn_max", "scope", "phase"],
        Scope::Hall,
        &[Scope::Hall, Scope::Node],
    ),
    (
        "collective_busbw",
        &["min", "size"],
        &["warn_min", "scope", "phase"],
        Scope::Hall,
        HALL,
    ),
    (
        "inventory",
        &[],
        &["nodes", "devices_per_node", "scope"],
        Scope::Hall,
        HALL,
    ),
    (
        "coverage",
        &["min"],
        &["warn_min", "scope", "phase"],
        Scope::Hall,
        &[Scope::Hall, Scope::Row, Scope::Rack, Scope::Node],
    ),
];

fn check_text(cx: &Cx, what: &str, v: &Spanned<String>, max: usize) -> Result<String, SpecError> {
    let s = v.get_ref();
    let problem = if s.trim().is_empty() {
        Some("must not be empty".to_string())
    } else if s.chars().count() > max {
        Some(format!(
            "is {} characters long; at most {max} are allowed",
            s.chars().count()
        ))
    } else if s.chars().any(|c| c.is_control() && c != '\n') {
        Some("must not contain control characters".to_string())
    } else {
        None
    };
    match problem {
        Some(p) => Err(cx.err(v.span(), format!("{what} {p}"))),
        None => Ok(s.clone()),
    }
}

impl SpecFile {
    /// The spec, every value checked.
    pub(super) fn convert(self, cx: &Cx) -> Result<Spec, SpecError> {
        let name = check_text(cx, "the spec's `name`", &self.name, MAX_NAME_LEN)?;
        let description = match &self.description {
            Some(d) => Some(check_text(cx, "the spec's `description`", d, MAX_TEXT_LEN)?),
            None => None,
        };
        if self.criterion.is_empty() {
            return Err(cx.err(
                0..0,
                "the spec has no criteria; add at least one [[criterion]] table with `id`, `kind` and its limits",
            ));
        }
        let mut seen: BTreeMap<String, Range<usize>> = BTreeMap::new();
        let mut criteria = Vec::with_capacity(self.criterion.len());
        for c in &self.criterion {
            let criterion = c.get_ref().convert(cx, c.span())?;
            let id_span = c.get_ref().id.span();
            if let Some(first) = seen.get(&criterion.id) {
                return Err(cx.err(
                    id_span,
                    format!(
                        "criterion id `{}` is already used by the criterion at line {}; ids must be unique within a spec",
                        criterion.id,
                        cx.line_of(first)
                    ),
                ));
            }
            seen.insert(criterion.id.clone(), id_span);
            criteria.push(criterion);
        }
        Ok(Spec {
            name,
            description,
            criteria,
        })
    }
}

/// One criterion being converted: what errors need to name it.
pub(super) struct Ck<'a> {
    pub(super) cx: &'a Cx<'a>,
    pub(super) c: &'a CriterionFile,
    pub(super) id: String,
    pub(super) keys: &'a KindKeys,
    pub(super) span: Range<usize>,
}

impl CriterionFile {
    fn convert(&self, cx: &Cx, span: Range<usize>) -> Result<Criterion, SpecError> {
        let id = check_text(cx, "a criterion's `id`", &self.id, MAX_NAME_LEN)?;
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
        {
            return Err(cx.err(
                self.id.span(),
                format!("criterion id `{id}` contains {bad:?}; ids use letters, digits, `.`, `_` and `-`"),
            ));
        }
        let kind = self.kind.get_ref().as_str();
        let Some(keys) = KIND_KEYS
            .iter()
            .chain(super::convert_facility::FACILITY_KIND_KEYS)
            .find(|k| k.0 == kind)
        else {
            return Err(cx.err(
                self.kind.span(),
                format!(
                    "unknown criterion kind `{kind}` (criterion `{id}`); the kinds are {}",
                    KINDS.join(", ")
                ),
            ));
        };
        let k = Ck {
            cx,
            c: self,
            id,
            keys,
            span,
        };
        k.check_keys()?;
        let scope = k.scope()?;
        let phases = match &self.phase {
            None => Vec::new(),
            Some(p) => {
                if p.get_ref().0.is_empty() || p.get_ref().0.iter().any(|n| n.trim().is_empty()) {
                    return Err(cx.err(
                        p.span(),
                        format!("`phase` of criterion `{}` must name at least one phase, and no empty names", k.id),
                    ));
                }
                p.get_ref().0.clone()
            }
        };
        let kind = k.kind()?;
        let title = match &self.title {
            Some(t) => check_text(
                cx,
                &format!("the `title` of criterion `{}`", k.id),
                t,
                MAX_TEXT_LEN,
            )?,
            None => default_title(&kind, scope),
        };
        Ok(Criterion {
            id: k.id,
            title,
            scope,
            phases,
            kind,
        })
    }
}

fn default_title(kind: &CriterionKind, scope: Scope) -> String {
    let s = scope.as_str();
    match kind {
        CriterionKind::SustainedPower { .. } => format!("Sustained {s} power"),
        CriterionKind::PeakPower { .. } => format!("Peak {s} power"),
        CriterionKind::GpuTemperature { .. } => "GPU temperature".into(),
        CriterionKind::Throttle { reason, .. } => format!("{} throttling per {s}", reason.as_str()),
        CriterionKind::Tflops { .. } => "Achieved TFLOP/s against the fleet median".into(),
        CriterionKind::WrongElements { .. } => "Wrong result elements".into(),
        CriterionKind::StartSkew { .. } => "Phase start skew".into(),
        CriterionKind::LatencyP99 { .. } if scope == Scope::Node => {
            "Latency p99 of the node's pairs".into()
        }
        CriterionKind::LatencyP99 { .. } => "Latency p99 per node pair".into(),
        CriterionKind::CollectiveBusbw { .. } => "All-reduce bus bandwidth".into(),
        CriterionKind::Inventory { .. } => "Expected inventory present".into(),
        CriterionKind::Coverage { .. } => format!("Telemetry coverage per {s}"),
        k => super::convert_facility::default_title(k),
    }
}

impl Ck<'_> {
    fn kind(&self) -> Result<CriterionKind, SpecError> {
        use Dimension::*;
        if let Some(kind) = self.facility_kind()? {
            return Ok(kind);
        }
        let kind = match self.keys.0 {
            "sustained_power" => {
                let (min_kw, window_s, warn_min_kw) = self.sustained_limits()?;
                CriterionKind::SustainedPower {
                    min_kw,
                    window_s,
                    warn_min_kw,
                }
            }
            "peak_power" => {
                let (max_kw, warn_max_kw) = self.peak_limits()?;
                CriterionKind::PeakPower {
                    max_kw,
                    warn_max_kw,
                }
            }
            "gpu_temperature" => self.temperature()?,
            "throttle" => {
                let r = self
                    .c
                    .reason
                    .as_ref()
                    .ok_or_else(|| self.cx.err(self.span.clone(), "missing `reason`"))?;
                let reason = ThrottleReason::parse(r.get_ref()).ok_or_else(|| {
                    let all: Vec<&str> = ThrottleReason::ALL.iter().map(|r| r.as_str()).collect();
                    self.cx.err(
                        r.span(),
                        format!(
                            "`reason` of criterion `{}` is `{}`; the reasons are {}",
                            self.id,
                            r.get_ref(),
                            all.join(", ")
                        ),
                    )
                })?;
                let max_s = self.ranged("max", self.required("max")?, Time, 0.0, false, 1e9)?;
                let warn_max_s = self.opt("warn_max", |v| {
                    self.ranged("warn_max", v, Time, 0.0, false, 1e9)
                })?;
                self.warn_order("warn_max", warn_max_s, max_s, false, "s", 1.0)?;
                CriterionKind::Throttle {
                    reason,
                    max_s,
                    warn_max_s,
                }
            }
            "tflops" => CriterionKind::Tflops {
                min_fraction_of_median: self.number(
                    "min_fraction_of_median",
                    self.required("min_fraction_of_median")?,
                    0.0,
                    1.0,
                    true,
                )?,
                mad_outlier: self.opt("mad_outlier", |v| {
                    self.number("mad_outlier", v, 0.0, 100.0, false)
                })?,
            },
            "wrong_elements" => CriterionKind::WrongElements {
                max: self
                    .opt("max", |v| self.count("max", v, 0, i64::MAX))?
                    .unwrap_or(0) as u64,
            },
            "start_skew" | "latency_p99" => {
                let max_s = self.ranged(
                    "max",
                    self.required("max")?,
                    Time,
                    0.0,
                    self.keys.0 == "latency_p99",
                    3600.0,
                )?;
                let warn_max_s = self.opt("warn_max", |v| {
                    self.ranged("warn_max", v, Time, 0.0, false, 3600.0)
                })?;
                self.warn_order("warn_max", warn_max_s, max_s, false, "s", 1.0)?;
                if self.keys.0 == "start_skew" {
                    CriterionKind::StartSkew { max_s, warn_max_s }
                } else {
                    CriterionKind::LatencyP99 { max_s, warn_max_s }
                }
            }
            "collective_busbw" => {
                let min_gb_s = self.ranged("min", self.required("min")?, Rate, 0.0, true, 1e6)?;
                let size = self.ranged(
                    "size",
                    self.required("size")?,
                    Size,
                    1.0,
                    false,
                    (1u64 << 50) as f64,
                )?;
                let warn_min_gb_s = self.opt("warn_min", |v| {
                    self.ranged("warn_min", v, Rate, 0.0, true, 1e6)
                })?;
                self.warn_order("warn_min", warn_min_gb_s, min_gb_s, true, "GB/s", 1.0)?;
                CriterionKind::CollectiveBusbw {
                    min_gb_s,
                    size_bytes: size.round() as u64,
                    warn_min_gb_s,
                }
            }
            "inventory" => CriterionKind::Inventory {
                nodes: self
                    .opt("nodes", |v| self.count("nodes", v, 1, 1_000_000))?
                    .map(|n| n as usize),
                devices_per_node: self
                    .opt("devices_per_node", |v| {
                        self.count("devices_per_node", v, 1, 1024)
                    })?
                    .map(|n| n as u32),
            },
            _ => {
                let min_fraction =
                    self.ranged("min", self.required("min")?, Fraction, 0.0, true, 1.0)?;
                let warn_min_fraction = self.opt("warn_min", |v| {
                    self.ranged("warn_min", v, Fraction, 0.0, true, 1.0)
                })?;
                self.warn_order(
                    "warn_min",
                    warn_min_fraction,
                    min_fraction,
                    true,
                    "%",
                    100.0,
                )?;
                CriterionKind::Coverage {
                    min_fraction,
                    warn_min_fraction,
                }
            }
        };
        Ok(kind)
    }

    fn temperature(&self) -> Result<CriterionKind, SpecError> {
        let t = |key: &str| {
            self.opt(key, |v| {
                if key.contains("margin") {
                    self.ranged(key, v, Dimension::Temperature, 0.0, false, 100.0)
                } else {
                    self.ranged(key, v, Dimension::Temperature, -50.0, false, 200.0)
                }
            })
        };
        let pick = |margin: &str,
                    max: &str,
                    needed: bool|
         -> Result<Option<TempLimit>, SpecError> {
            match (t(margin)?, t(max)?) {
                (Some(_), Some(_)) => Err(self.cx.err(
                    self.raw(max).map_or(self.span.clone(), |v| v.span()),
                    format!("criterion `{}` gives both `{margin}` and `{max}`; give one: `{margin}` below each device's max-operating temperature, or `{max}` for every device", self.id),
                )),
                (None, None) if needed => Err(self.cx.err(
                    self.span.clone(),
                    format!("criterion `{}` of kind `gpu_temperature` needs `margin` (below each device's max-operating temperature, e.g. margin = \"2 °C\") or `max` (absolute, e.g. max = \"83 °C\")", self.id),
                )),
                (Some(m), None) => Ok(Some(TempLimit::BelowMaxOperating { margin_c: m })),
                (None, Some(x)) => Ok(Some(TempLimit::Absolute { max_c: x })),
                (None, None) => Ok(None),
            }
        };
        let limit = pick("margin", "max", true)?.unwrap_or(TempLimit::Absolute { max_c: 0.0 });
        let warn = pick("warn_margin", "warn_max", false)?;
        match (limit, warn) {
            (
                TempLimit::BelowMaxOperating { margin_c },
                Some(TempLimit::BelowMaxOperating { margin_c: w }),
            ) if w < margin_c => {
                self.warn_order("warn_margin", Some(w), margin_c, true, "°C", 1.0)?
            }
            (TempLimit::Absolute { max_c }, Some(TempLimit::Absolute { max_c: w })) => {
                self.warn_order("warn_max", Some(w), max_c, false, "°C", 1.0)?
            }
            _ => {}
        }
        Ok(CriterionKind::GpuTemperature { limit, warn })
    }
}
