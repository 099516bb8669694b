//! Quantities with units, as written in spec files (`"95 kW"`, `"2 °C"`, `"25 µs"`, `"64 MiB"`):
//! splitting number and unit, the units of each [`Dimension`], and conversion to canonical units.

use std::fmt;

/// What a quantity measures. Each criterion key needs one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Canonical unit kW.
    Power,
    /// Canonical unit °C.
    Temperature,
    /// Canonical unit s.
    Time,
    /// A data rate; canonical unit GB/s (10⁹ bytes per second).
    Rate,
    /// A share; canonical unit the fraction 0–1 (written as a percentage).
    Fraction,
    /// An amount of data; canonical unit bytes.
    Size,
}

impl Dimension {
    /// The dimension's name with its article, for messages ("a power").
    pub fn described(self) -> &'static str {
        match self {
            Dimension::Power => "a power",
            Dimension::Temperature => "a temperature",
            Dimension::Time => "a time",
            Dimension::Rate => "a bandwidth",
            Dimension::Fraction => "a percentage",
            Dimension::Size => "a size",
        }
    }

    /// The unit used in examples in messages.
    pub fn example_unit(self) -> &'static str {
        match self {
            Dimension::Power => "kW",
            Dimension::Temperature => "°C",
            Dimension::Time => "s",
            Dimension::Rate => "GB/s",
            Dimension::Fraction => "%",
            Dimension::Size => "MiB",
        }
    }

    /// The units accepted, for messages.
    pub fn units_list(self) -> String {
        UNITS
            .iter()
            .filter(|u| u.1 == self)
            .map(|u| u.0)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.described())
    }
}

/// (unit as written, dimension, multiplier, divisor): canonical = number × multiplier ÷ divisor
/// (divisions keep `25 µs` exactly `25e-6 s`).
const UNITS: &[(&str, Dimension, f64, f64)] = &[
    ("W", Dimension::Power, 1.0, 1e3),
    ("kW", Dimension::Power, 1.0, 1.0),
    ("MW", Dimension::Power, 1e3, 1.0),
    ("°C", Dimension::Temperature, 1.0, 1.0),
    ("C", Dimension::Temperature, 1.0, 1.0),
    ("degC", Dimension::Temperature, 1.0, 1.0),
    ("ns", Dimension::Time, 1.0, 1e9),
    ("us", Dimension::Time, 1.0, 1e6),
    ("µs", Dimension::Time, 1.0, 1e6),
    ("μs", Dimension::Time, 1.0, 1e6),
    ("ms", Dimension::Time, 1.0, 1e3),
    ("s", Dimension::Time, 1.0, 1.0),
    ("min", Dimension::Time, 60.0, 1.0),
    ("h", Dimension::Time, 3600.0, 1.0),
    ("B/s", Dimension::Rate, 1.0, 1e9),
    ("kB/s", Dimension::Rate, 1.0, 1e6),
    ("MB/s", Dimension::Rate, 1.0, 1e3),
    ("GB/s", Dimension::Rate, 1.0, 1.0),
    ("TB/s", Dimension::Rate, 1e3, 1.0),
    ("KiB/s", Dimension::Rate, 1024.0, 1e9),
    ("MiB/s", Dimension::Rate, 1_048_576.0, 1e9),
    ("GiB/s", Dimension::Rate, 1_073_741_824.0, 1e9),
    ("Mbit/s", Dimension::Rate, 1.0, 8e3),
    ("Gbit/s", Dimension::Rate, 1.0, 8.0),
    ("Tbit/s", Dimension::Rate, 1e3, 8.0),
    ("%", Dimension::Fraction, 1.0, 100.0),
    ("B", Dimension::Size, 1.0, 1.0),
    ("kB", Dimension::Size, 1e3, 1.0),
    ("MB", Dimension::Size, 1e6, 1.0),
    ("GB", Dimension::Size, 1e9, 1.0),
    ("KiB", Dimension::Size, 1024.0, 1.0),
    ("MiB", Dimension::Size, 1_048_576.0, 1.0),
    ("GiB", Dimension::Size, 1_073_741_824.0, 1.0),
];

/// A quantity as read: the number, its unit as written, and the unit's dimension and conversion.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Quantity {
    pub number: f64,
    pub unit: String,
    pub dimension: Dimension,
    mul: f64,
    div: f64,
}

impl Quantity {
    /// The value in the dimension's canonical unit.
    pub fn canonical(&self) -> f64 {
        self.number * self.mul / self.div
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.number, self.unit)
    }
}

/// Why a quantity could not be read.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum QuantityError {
    /// No number at the start.
    NoNumber,
    /// A number and no unit.
    NoUnit(f64),
    /// A unit this format does not know; a unit that differs only in case, if there is one.
    UnknownUnit {
        number: f64,
        unit: String,
        like: Option<&'static str>,
    },
    /// `K` (kelvin) where an absolute temperature is wanted.
    Kelvin(f64),
}

/// Splits `"95 kW"` into its number and unit and looks the unit up. `K` (kelvin) is read as a
/// temperature difference when `difference` is true (margins), and refused otherwise.
pub(super) fn parse_quantity(text: &str, difference: bool) -> Result<Quantity, QuantityError> {
    let text = text.trim();
    // The longest prefix that is a finite number.
    let mut best: Option<(f64, usize)> = None;
    for (i, _) in text.char_indices().skip(1).chain([(text.len(), ' ')]) {
        let head = &text[..i];
        if !head
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE_ ".contains(c))
        {
            break;
        }
        if let Ok(x) = head.trim().replace('_', "").parse::<f64>() {
            if x.is_finite() {
                best = Some((x, i));
            }
        }
    }
    let Some((number, end)) = best else {
        return Err(QuantityError::NoNumber);
    };
    let unit = text[end..].trim();
    if unit.is_empty() {
        return Err(QuantityError::NoUnit(number));
    }
    if unit == "K" {
        return if difference {
            Ok(Quantity {
                number,
                unit: "K".into(),
                dimension: Dimension::Temperature,
                mul: 1.0,
                div: 1.0,
            })
        } else {
            Err(QuantityError::Kelvin(number))
        };
    }
    match UNITS.iter().find(|u| u.0 == unit) {
        Some(&(name, dimension, mul, div)) => Ok(Quantity {
            number,
            unit: name.to_string(),
            dimension,
            mul,
            div,
        }),
        None => Err(QuantityError::UnknownUnit {
            number,
            unit: unit.to_string(),
            like: UNITS
                .iter()
                .find(|u| u.0.eq_ignore_ascii_case(unit))
                .map(|u| u.0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> (f64, Dimension) {
        let q = parse_quantity(s, false).unwrap();
        (q.canonical(), q.dimension)
    }

    #[test]
    fn units_convert_to_canonical() {
        assert_eq!(q("95 kW"), (95.0, Dimension::Power));
        assert_eq!(q("95kW"), (95.0, Dimension::Power));
        assert_eq!(q("1500 W"), (1.5, Dimension::Power));
        assert_eq!(q("2 °C"), (2.0, Dimension::Temperature));
        assert_eq!(q("2 degC"), (2.0, Dimension::Temperature));
        assert_eq!(q("-5 C"), (-5.0, Dimension::Temperature));
        assert_eq!(q("50 ms"), (0.05, Dimension::Time));
        assert_eq!(q("25 µs").0, 25e-6);
        assert_eq!(q("25 us").0, 25e-6);
        assert_eq!(q("2 min"), (120.0, Dimension::Time));
        assert_eq!(q("40 GB/s"), (40.0, Dimension::Rate));
        assert_eq!(q("400 Gbit/s"), (50.0, Dimension::Rate));
        assert!((q("99.9 %").0 - 0.999).abs() < 1e-12);
        assert_eq!(q("64 MiB"), (67_108_864.0, Dimension::Size));
        assert_eq!(q("1e3 W"), (1.0, Dimension::Power));
        assert_eq!(q("1_000 W"), (1.0, Dimension::Power));
    }

    #[test]
    fn bad_quantities_say_why() {
        assert_eq!(parse_quantity("kW", false), Err(QuantityError::NoNumber));
        assert_eq!(
            parse_quantity("95", false),
            Err(QuantityError::NoUnit(95.0))
        );
        assert_eq!(
            parse_quantity("95 kw", false),
            Err(QuantityError::UnknownUnit {
                number: 95.0,
                unit: "kw".into(),
                like: Some("kW")
            })
        );
        assert_eq!(
            parse_quantity("358 K", false),
            Err(QuantityError::Kelvin(358.0))
        );
        assert_eq!(parse_quantity("3 K", true).unwrap().canonical(), 3.0);
        assert_eq!(
            parse_quantity("inf kW", false),
            Err(QuantityError::NoNumber)
        );
    }
}
