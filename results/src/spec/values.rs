//! Reading the values of a criterion: which keys its kind takes, its scope, and quantities with
//! units, plain numbers and counts, each checked against its dimension and range, every refusal a
//! [`SpecError`] that names the key, the criterion and what is allowed.

use toml::Spanned;

use super::convert::Ck;
use super::errors::SpecError;
use super::file::Raw;
use super::units::{parse_quantity, Dimension, QuantityError};
use crate::verdict::Scope;

impl Ck<'_> {
    pub(super) fn takes(&self) -> String {
        let (_, req, opt, _, _) = self.keys;
        let mut s = String::new();
        if !req.is_empty() {
            s.push_str(&format!("{} (required)", req.join(", ")));
        }
        if !opt.is_empty() {
            if !s.is_empty() {
                s.push_str(" and ");
            }
            s.push_str(&format!("{} (optional)", opt.join(", ")));
        }
        format!("it takes id, kind, title and {s}")
    }

    pub(super) fn check_keys(&self) -> Result<(), SpecError> {
        let (kind, req, opt, _, _) = self.keys;
        let present = self.c.present();
        for (key, span) in &present {
            if !req.contains(key) && !opt.contains(key) {
                return Err(self.cx.err_at_key(
                    span.clone(),
                    format!(
                        "criterion `{}` of kind `{kind}` does not take `{key}`; {}",
                        self.id,
                        self.takes()
                    ),
                ));
            }
        }
        for key in *req {
            if !present.iter().any(|(k, _)| k == key) {
                return Err(self.cx.err(
                    self.span.clone(),
                    format!(
                        "criterion `{}` of kind `{kind}` needs the key `{key}`; {}",
                        self.id,
                        self.takes()
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn scope(&self) -> Result<Scope, SpecError> {
        let (kind, _, _, default, allowed) = self.keys;
        let Some(s) = &self.c.scope else {
            return Ok(*default);
        };
        match Scope::parse(s.get_ref()) {
            Some(scope) if allowed.contains(&scope) => Ok(scope),
            _ => {
                Err(self.cx.err(
                    s.span(),
                    format!(
                    "scope `{}` is not allowed for criterion `{}` of kind `{kind}`; allowed: {}",
                    s.get_ref(),
                    self.id,
                    allowed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
                ))
            }
        }
    }

    pub(super) fn err(&self, v: &Spanned<Raw>, msg: String) -> SpecError {
        self.cx.err(v.span(), msg)
    }

    /// A quantity of `dim` in canonical units. `difference`: a temperature margin (K accepted).
    pub(super) fn quantity(
        &self,
        key: &str,
        v: &Spanned<Raw>,
        dim: Dimension,
        difference: bool,
    ) -> Result<f64, SpecError> {
        let id = &self.id;
        let needs = |n: f64| {
            format!(
                "this criterion needs {} such as \"{n} {}\" (units: {})",
                dim.described(),
                dim.example_unit(),
                dim.units_list()
            )
        };
        let text = match v.get_ref() {
            Raw::Text(t) => t,
            Raw::Number(x) => {
                return Err(self.err(
                    v,
                    format!(
                        "`{key}` of criterion `{id}` is {x} without a unit; {}",
                        needs(*x)
                    ),
                ))
            }
            Raw::Integer(n) => {
                return Err(self.err(
                    v,
                    format!(
                        "`{key}` of criterion `{id}` is {n} without a unit; {}",
                        needs(*n as f64)
                    ),
                ))
            }
        };
        let q = match parse_quantity(text, difference) {
            Ok(q) => q,
            Err(QuantityError::NoNumber) => {
                return Err(self.err(v, format!("`{key}` of criterion `{id}` is {text:?}: expected a number and a unit; {}", needs(1.0))))
            }
            Err(QuantityError::NoUnit(x)) => {
                return Err(self.err(v, format!("`{key}` of criterion `{id}` is {x} without a unit; {}", needs(x))))
            }
            Err(QuantityError::UnknownUnit { number, unit, like }) => {
                let hint = like.map(|l| format!(" (did you mean `{l}`?)")).unwrap_or_default();
                return Err(self.err(v, format!("`{key}` of criterion `{id}` has the unknown unit `{unit}`{hint}; {}", needs(number))));
            }
            Err(QuantityError::Kelvin(x)) => {
                return Err(self.err(
                    v,
                    format!("`{key}` of criterion `{id}` is {x} K; an absolute temperature is written in °C, such as \"85 °C\" (K is accepted for margins only)"),
                ))
            }
        };
        if q.dimension != dim {
            return Err(self.err(
                v,
                format!(
                    "`{key}` of criterion `{id}` is {q}, {}; {}",
                    q.dimension.described(),
                    needs(q.number)
                ),
            ));
        }
        Ok(q.canonical())
    }

    /// A quantity of `dim` that must lie within `lo..=hi` (canonical units; `lo` excluded if `open`).
    pub(super) fn ranged(
        &self,
        key: &str,
        v: &Spanned<Raw>,
        dim: Dimension,
        lo: f64,
        open: bool,
        hi: f64,
    ) -> Result<f64, SpecError> {
        let x = self.quantity(key, v, dim, key.contains("margin"))?;
        if (open && x <= lo) || x < lo || x > hi {
            let (l, h, u) = match dim {
                Dimension::Fraction => (lo * 100.0, hi * 100.0, "%"),
                Dimension::Size => (lo, hi, "B"),
                _ => (lo, hi, dim.example_unit()),
            };
            let low = if open { "greater than" } else { "at least" };
            return Err(self.err(
                v,
                format!(
                    "`{key}` of criterion `{}` is {}, out of range: give {} {low} {l} {u} and at most {h} {u}",
                    self.id,
                    v.get_ref(),
                    dim.described()
                ),
            ));
        }
        Ok(x)
    }

    pub(super) fn required(&self, key: &str) -> Result<&Spanned<Raw>, SpecError> {
        self.raw(key).ok_or_else(|| {
            self.cx.err(
                self.span.clone(),
                format!(
                    "criterion `{}` of kind `{}` needs the key `{key}`; {}",
                    self.id,
                    self.keys.0,
                    self.takes()
                ),
            )
        })
    }

    pub(super) fn raw(&self, key: &str) -> Option<&Spanned<Raw>> {
        let c = self.c;
        match key {
            "min" => c.min.as_ref(),
            "max" => c.max.as_ref(),
            "warn_min" => c.warn_min.as_ref(),
            "warn_max" => c.warn_max.as_ref(),
            "window" => c.window.as_ref(),
            "margin" => c.margin.as_ref(),
            "warn_margin" => c.warn_margin.as_ref(),
            "min_fraction_of_median" => c.min_fraction_of_median.as_ref(),
            "mad_outlier" => c.mad_outlier.as_ref(),
            "size" => c.size.as_ref(),
            "nodes" => c.nodes.as_ref(),
            "devices_per_node" => c.devices_per_node.as_ref(),
            "tolerance" => c.tolerance.as_ref(),
            "capture_min" => c.capture_min.as_ref(),
            "capture_max" => c.capture_max.as_ref(),
            _ => None,
        }
    }

    /// A plain number (or, for fractions, a percentage string) within `lo < x <= hi`.
    pub(super) fn number(
        &self,
        key: &str,
        v: &Spanned<Raw>,
        lo: f64,
        hi: f64,
        percent: bool,
    ) -> Result<f64, SpecError> {
        let x = match v.get_ref() {
            Raw::Number(x) => *x,
            Raw::Integer(n) => *n as f64,
            Raw::Text(_) if percent => {
                self.quantity(key, v, Dimension::Fraction, false)
                    .map_err(|_| {
                        self.err(
                            v,
                            format!(
                                "`{key}` of criterion `{}` is {}; give a fraction such as 0.9 or a percentage such as \"90 %\"",
                                self.id,
                                v.get_ref()
                            ),
                        )
                    })?
            }
            Raw::Text(t) => {
                return Err(self.err(
                    v,
                    format!(
                    "`{key}` of criterion `{}` is {t:?}; give a plain number, e.g. {key} = {hi}",
                    self.id
                ),
                ))
            }
        };
        if !(x.is_finite() && x > lo && x <= hi) {
            return Err(self.err(v, format!("`{key}` of criterion `{}` is {}, out of range: give a number greater than {lo} and at most {hi}", self.id, v.get_ref())));
        }
        Ok(x)
    }

    /// A whole number within `lo..=hi`.
    pub(super) fn count(
        &self,
        key: &str,
        v: &Spanned<Raw>,
        lo: i64,
        hi: i64,
    ) -> Result<i64, SpecError> {
        match v.get_ref() {
            Raw::Integer(n) if (lo..=hi).contains(n) => Ok(*n),
            other => Err(self.err(v, format!("`{key}` of criterion `{}` is {other}; give a whole number from {lo} to {hi}, without quotes or unit", self.id))),
        }
    }

    pub(super) fn opt<T>(
        &self,
        key: &str,
        f: impl Fn(&Spanned<Raw>) -> Result<T, SpecError>,
    ) -> Result<Option<T>, SpecError> {
        self.raw(key).map(f).transpose()
    }

    /// Checks that a warning threshold lies on the passing side of its limit.
    pub(super) fn warn_order(
        &self,
        key: &str,
        warn: Option<f64>,
        limit: f64,
        at_least: bool,
        unit: &str,
        scale: f64,
    ) -> Result<(), SpecError> {
        let Some(w) = warn else { return Ok(()) };
        let wrong = if at_least { w < limit } else { w > limit };
        if wrong {
            let side = if at_least { "below" } else { "above" };
            let lim = key.strip_prefix("warn_").unwrap_or(key);
            let v = self.raw(key).map_or(self.span.clone(), |v| v.span());
            return Err(self.cx.err(
                v,
                format!(
                    "`{key}` of criterion `{}` ({} {unit}) is {side} `{lim}` ({} {unit}); a warning threshold lies on the passing side of the limit",
                    self.id,
                    w * scale,
                    limit * scale
                ),
            ));
        }
        Ok(())
    }
}
