//! The spec file as written: private structs that mirror the TOML, with the spans of their values.
//!
//! Reading checks only the shape (keys, TOML types); `convert` checks which keys each kind takes,
//! the units and the ranges.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpecFile {
    pub(super) name: Spanned<String>,
    pub(super) description: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) criterion: Vec<Spanned<CriterionFile>>,
}

/// Every key of every criterion kind; which ones a kind takes is checked after reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CriterionFile {
    pub(super) id: Spanned<String>,
    pub(super) title: Option<Spanned<String>>,
    pub(super) kind: Spanned<String>,
    pub(super) scope: Option<Spanned<String>>,
    pub(super) phase: Option<Spanned<Phases>>,
    pub(super) min: Option<Spanned<Raw>>,
    pub(super) max: Option<Spanned<Raw>>,
    pub(super) warn_min: Option<Spanned<Raw>>,
    pub(super) warn_max: Option<Spanned<Raw>>,
    pub(super) window: Option<Spanned<Raw>>,
    pub(super) margin: Option<Spanned<Raw>>,
    pub(super) warn_margin: Option<Spanned<Raw>>,
    pub(super) reason: Option<Spanned<String>>,
    pub(super) min_fraction_of_median: Option<Spanned<Raw>>,
    pub(super) mad_outlier: Option<Spanned<Raw>>,
    pub(super) size: Option<Spanned<Raw>>,
    pub(super) nodes: Option<Spanned<Raw>>,
    pub(super) devices_per_node: Option<Spanned<Raw>>,
    pub(super) tolerance: Option<Spanned<Raw>>,
    pub(super) capture_min: Option<Spanned<Raw>>,
    pub(super) capture_max: Option<Spanned<Raw>>,
    pub(super) coolant: Option<Spanned<String>>,
}

impl CriterionFile {
    /// The optional keys present, with the spans of their values.
    pub(super) fn present(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut out = Vec::new();
        let mut raw = |key: &'static str, v: &Option<Spanned<Raw>>| {
            if let Some(v) = v {
                out.push((key, v.span()));
            }
        };
        raw("min", &self.min);
        raw("max", &self.max);
        raw("warn_min", &self.warn_min);
        raw("warn_max", &self.warn_max);
        raw("window", &self.window);
        raw("margin", &self.margin);
        raw("warn_margin", &self.warn_margin);
        raw("min_fraction_of_median", &self.min_fraction_of_median);
        raw("mad_outlier", &self.mad_outlier);
        raw("size", &self.size);
        raw("nodes", &self.nodes);
        raw("devices_per_node", &self.devices_per_node);
        raw("tolerance", &self.tolerance);
        raw("capture_min", &self.capture_min);
        raw("capture_max", &self.capture_max);
        if let Some(v) = &self.coolant {
            out.push(("coolant", v.span()));
        }
        if let Some(v) = &self.phase {
            out.push(("phase", v.span()));
        }
        if let Some(v) = &self.reason {
            out.push(("reason", v.span()));
        }
        if let Some(v) = &self.scope {
            out.push(("scope", v.span()));
        }
        out
    }
}

/// A value written as a string (`"95 kW"`) or a number (`0.9`, `0`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Raw {
    Text(String),
    Number(f64),
    Integer(i64),
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Text(s) => write!(f, "{s:?}"),
            Raw::Number(x) => write!(f, "{x}"),
            Raw::Integer(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a quantity with its unit in quotes (e.g. \"95 kW\") or a number"
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
                i64::try_from(v)
                    .map(Raw::Integer)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `phase = "steady"` or `phase = ["steady", "square"]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Phases(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for Phases {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Phases;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a phase name in quotes or an array of phase names (e.g. [\"steady\", \"square\"])"
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Phases, E> {
                Ok(Phases(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Phases, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    out.push(name);
                }
                Ok(Phases(out))
            }
        }
        d.deserialize_any(V)
    }
}
