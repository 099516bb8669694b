//! What an agent's answers mean for one profile reading, without I/O: the raw number checked
//! against the profile's "not measured" values, scaled by the profile's factor and the sensor's
//! decimal digits, its units checked where the MIB states them, and the result checked against
//! the quantity's physical range ([`crate::reading::Quantity::range`]). Anything else is
//! [`Absent`] with the reason, never 0.

use super::profile::{Oid, ProfileEntry};
use crate::reading::Quantity;
use hallmark_protocol::facility::FacilityQuantity;
use std::fmt;

/// Most decimal digits a sensor may state (Raritan's are 0 to 3).
pub const MAX_DECIMAL_DIGITS: i64 = 9;

/// One variable binding of an agent's answer, reduced to what a reading can use.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// INTEGER, Gauge32, Unsigned32, Counter32 or Counter64.
    Number(i64),
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
    /// Any other type (OCTET STRING, TimeTicks, …), by name.
    OtherType(&'static str),
    /// The answer had no binding for the OID.
    Missing,
}

/// Why a reading is absent.
#[derive(Debug, Clone, PartialEq)]
pub enum Absent {
    /// The agent has no such object (the MIB or this part of it is not implemented).
    NoSuchObject {
        oid: Oid,
    },
    /// The agent has the object but no such instance (no such inlet, phase or PDU index).
    NoSuchInstance {
        oid: Oid,
    },
    EndOfMibView {
        oid: Oid,
    },
    WrongType {
        oid: Oid,
        got: &'static str,
    },
    NotAnswered {
        oid: Oid,
    },
    /// A raw value the profile lists as "not measured" (APC's -1).
    NotMeasured {
        oid: Oid,
        raw: i64,
    },
    BadDecimalDigits {
        oid: Oid,
        raw: i64,
    },
    WrongUnits {
        oid: Oid,
        got: i64,
        expected: i64,
    },
    OutOfRange {
        value: f64,
        unit: &'static str,
        min: f64,
        max: f64,
    },
}

impl fmt::Display for Absent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Absent::NoSuchObject { oid } => write!(f, "noSuchObject at {oid}: the agent lacks it"),
            Absent::NoSuchInstance { oid } => {
                write!(f, "noSuchInstance at {oid}: no such inlet/phase/index here")
            }
            Absent::EndOfMibView { oid } => write!(f, "endOfMibView at {oid}"),
            Absent::WrongType { oid, got } => write!(f, "{oid} is {got}, not a number"),
            Absent::NotAnswered { oid } => write!(f, "no binding for {oid} in the answer"),
            Absent::NotMeasured { oid, raw } => {
                write!(f, "{oid} = {raw}: the PDU does not measure it")
            }
            Absent::BadDecimalDigits { oid, raw } => write!(
                f,
                "decimal digits {oid} = {raw}, not 0..{MAX_DECIMAL_DIGITS}"
            ),
            Absent::WrongUnits { oid, got, expected } => write!(
                f,
                "units {oid} = {got}, the profile expects {expected}: fix the profile"
            ),
            Absent::OutOfRange {
                value,
                unit,
                min,
                max,
            } => write!(
                f,
                "{value} {unit} is outside {min}..{max} {unit}: broken meter or wrong scale"
            ),
        }
    }
}

/// The physical range of a facility quantity (the Redfish client's ranges).
pub fn range_of(q: FacilityQuantity) -> (f64, f64) {
    Quantity::of(q).range()
}

fn number(oid: &Oid, a: &Answer) -> Result<i64, Absent> {
    let oid = oid.clone();
    match a {
        Answer::Number(n) => Ok(*n),
        Answer::NoSuchObject => Err(Absent::NoSuchObject { oid }),
        Answer::NoSuchInstance => Err(Absent::NoSuchInstance { oid }),
        Answer::EndOfMibView => Err(Absent::EndOfMibView { oid }),
        Answer::OtherType(got) => Err(Absent::WrongType { oid, got }),
        Answer::Missing => Err(Absent::NotAnswered { oid }),
    }
}

/// The reading of `entry` from the agent's answers: `value` for its OID, `digits` and `units` for
/// its decimal-digit and unit OIDs (`None` where the profile has none).
pub fn interpret(
    entry: &ProfileEntry,
    value: &Answer,
    digits: Option<&Answer>,
    units: Option<&Answer>,
) -> Result<f64, Absent> {
    let raw = number(&entry.oid, value)?;
    if entry.absent_if.contains(&raw) {
        return Err(Absent::NotMeasured {
            oid: entry.oid.clone(),
            raw,
        });
    }
    if let (Some((oid, expected)), Some(a)) = (&entry.units, units) {
        let got = number(oid, a)?;
        if got != *expected {
            return Err(Absent::WrongUnits {
                oid: oid.clone(),
                got,
                expected: *expected,
            });
        }
    }
    let mut v = raw as f64 * entry.scale;
    if let (Some(oid), Some(a)) = (&entry.decimal_digits_oid, digits) {
        let d = number(oid, a)?;
        if !(0..=MAX_DECIMAL_DIGITS).contains(&d) {
            return Err(Absent::BadDecimalDigits {
                oid: oid.clone(),
                raw: d,
            });
        }
        v /= 10f64.powi(d as i32);
    }
    let (min, max) = range_of(entry.quantity);
    if !(min..=max).contains(&v) {
        return Err(Absent::OutOfRange {
            value: v,
            unit: entry.quantity.unit(),
            min,
            max,
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(q: FacilityQuantity, scale: f64) -> ProfileEntry {
        ProfileEntry {
            point: "inlet/1".into(),
            quantity: q,
            oid: Oid::parse("1.3.6.1.4.1.99.1").unwrap(),
            scale,
            decimal_digits_oid: Some(Oid::parse("1.3.6.1.4.1.99.2").unwrap()),
            units: Some((Oid::parse("1.3.6.1.4.1.99.3").unwrap(), 5)),
            absent_if: vec![-1],
        }
    }

    #[test]
    fn scales_by_factor_and_decimal_digits() {
        let e = entry(FacilityQuantity::EnergyKwh, 0.001);
        let n = Answer::Number;
        // 56 438 123 Wh with no decimal digits: 56 438.123 kWh.
        let v = interpret(&e, &n(56_438_123), Some(&n(0)), Some(&n(5))).unwrap();
        assert!((v - 56_438.123).abs() < 1e-6, "{v}");
        // 64 381 tenths of a W with one decimal digit, scale 1: 6 438.1 W.
        let mut p = entry(FacilityQuantity::PowerW, 1.0);
        p.units = None;
        let v = interpret(&p, &n(64_381), Some(&n(1)), None).unwrap();
        assert!((v - 6_438.1).abs() < 1e-9, "{v}");
        // Hundredths of kW to W (APC): 643 → 6 430 W.
        p.decimal_digits_oid = None;
        p.scale = 10.0;
        assert_eq!(interpret(&p, &n(643), None, None), Ok(6_430.0));
    }

    #[test]
    fn absent_for_every_reason_never_zero() {
        let e = entry(FacilityQuantity::PowerW, 1.0);
        let n = Answer::Number;
        let ok_d = Some(&Answer::Number(0));
        let watts = Answer::Number(5);
        let case = |v: Answer, d: Option<&Answer>, u: Option<&Answer>| {
            interpret(&e, &v, d, u).unwrap_err().to_string()
        };
        let units_ok = Some(&watts);
        assert!(case(Answer::NoSuchObject, ok_d, units_ok)
            .starts_with("noSuchObject at 1.3.6.1.4.1.99.1"));
        assert!(case(Answer::NoSuchInstance, ok_d, units_ok).contains("no such inlet"));
        assert!(case(Answer::EndOfMibView, ok_d, units_ok).contains("endOfMibView"));
        assert_eq!(
            case(Answer::OtherType("OCTET STRING"), ok_d, units_ok),
            "1.3.6.1.4.1.99.1 is OCTET STRING, not a number"
        );
        assert!(case(Answer::Missing, ok_d, units_ok).contains("no binding"));
        assert!(case(n(-1), ok_d, units_ok).contains("does not measure it"));
        assert!(case(n(100), Some(&n(12)), units_ok)
            .starts_with("decimal digits 1.3.6.1.4.1.99.2 = 12"));
        assert!(case(n(100), Some(&n(-1)), units_ok).contains("not 0..9"));
        assert!(case(n(100), Some(&Answer::NoSuchInstance), units_ok).contains("1.3.6.1.4.1.99.2"));
        assert_eq!(
            case(n(100), ok_d, Some(&n(3))),
            "units 1.3.6.1.4.1.99.3 = 3, the profile expects 5: fix the profile"
        );
        // 10 MW on a rack PDU, and negative power: refused, not stored.
        assert!(case(n(10_000_000), ok_d, units_ok).contains("outside 0..500000 W"));
        assert!(case(n(-5), ok_d, units_ok).contains("outside"));
    }

    #[test]
    fn every_quantity_has_a_range() {
        for q in FacilityQuantity::ALL {
            let (lo, hi) = range_of(q);
            assert!(lo < hi, "{q:?}");
        }
    }
}
