//! Readings: what a number from a Redfish resource means (its [`Quantity`] and unit), the
//! physical range it must lie in, and the Sensor metadata (`ReadingTime`, `SensingInterval`,
//! `Accuracy`) read through its `DataSourceUri`. A reading that is absent, malformed, out of its
//! physical range or stale is `None`, never 0, and the reason is a [`crate::finding::Finding`].

use crate::model::{Num, Sensor};
use serde::Serialize;

/// What a reading measures; each has one unit and one physical range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// Electrical power of a PDU, circuit, outlet, chassis or power supply input, W.
    PowerW,
    /// Energy counter, kWh.
    EnergyKwh,
    /// Current, A.
    CurrentA,
    /// Coolant temperature, °C.
    CoolantTempC,
    /// Temperature difference across a loop, K (Redfish calls it `DeltaTemperatureCelsius`).
    DeltaTK,
    /// Coolant flow, L/min.
    FlowLpm,
    /// Gauge pressure, kPa.
    PressureKpa,
    /// Pressure difference, kPa.
    DeltaPressureKpa,
    /// Heat removed by a loop, kW.
    HeatKw,
    /// A coolant's density, kg/m³.
    DensityKgM3,
    /// A coolant's specific heat, kJ/(kg·K).
    SpecificHeatKjKgK,
}

impl Quantity {
    /// The quantity (and so the physical range) of a reading the protocol carries.
    pub fn of(q: hallmark_protocol::facility::FacilityQuantity) -> Quantity {
        use hallmark_protocol::facility::FacilityQuantity as Q;
        match q {
            Q::PowerW => Quantity::PowerW,
            Q::EnergyKwh => Quantity::EnergyKwh,
            Q::SupplyTempC | Q::ReturnTempC => Quantity::CoolantTempC,
            Q::DeltaTK => Quantity::DeltaTK,
            Q::FlowLpm => Quantity::FlowLpm,
            Q::SupplyPressureKpa | Q::ReturnPressureKpa => Quantity::PressureKpa,
            Q::HeatRemovedKw => Quantity::HeatKw,
            Q::CoolantDensityKgM3 => Quantity::DensityKgM3,
            Q::CoolantSpecificHeatKjKgK => Quantity::SpecificHeatKjKgK,
        }
    }

    /// The unit as printed.
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::PowerW => "W",
            Quantity::EnergyKwh => "kWh",
            Quantity::CurrentA => "A",
            Quantity::CoolantTempC => "°C",
            Quantity::DeltaTK => "K",
            Quantity::FlowLpm => "L/min",
            Quantity::PressureKpa | Quantity::DeltaPressureKpa => "kPa",
            Quantity::HeatKw => "kW",
            Quantity::DensityKgM3 => "kg/m³",
            Quantity::SpecificHeatKjKgK => "kJ/(kg·K)",
        }
    }

    /// The physical range (inclusive) outside which a reading is refused. Wide on purpose: they
    /// catch broken meters and wrong units (10 MW on a rack PDU, negative flow), not bad halls.
    pub fn range(self) -> (f64, f64) {
        match self {
            // A rack of 100-150 kW is fed by a few PDUs; 500 kW leaves room for a whole-rack chassis.
            Quantity::PowerW => (0.0, 500_000.0),
            Quantity::EnergyKwh => (0.0, 1e12),
            Quantity::CurrentA => (0.0, 5_000.0),
            // Liquid coolant at about atmospheric pressure: frozen below, boiling above.
            Quantity::CoolantTempC => (-20.0, 120.0),
            Quantity::DeltaTK => (-100.0, 100.0),
            // The largest CDUs move a few thousand L/min.
            Quantity::FlowLpm => (0.0, 20_000.0),
            // Gauge pressure: no lower than vacuum, no higher than any cooling loop is rated.
            Quantity::PressureKpa => (-101.325, 5_000.0),
            Quantity::DeltaPressureKpa => (-5_000.0, 5_000.0),
            // A little below zero is meter noise on an idle loop; 20 MW is beyond any CDU.
            Quantity::HeatKw => (-1.0, 20_000.0),
            // Liquid coolants, as the heat arithmetic takes them (kg/L instead of kg/m³ is out).
            Quantity::DensityKgM3 => crate::heat::DENSITY_RANGE,
            Quantity::SpecificHeatKjKgK => crate::heat::SPECIFIC_HEAT_RANGE,
        }
    }
}

/// What a JSON value read as a number turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    /// Not there (property absent, or `null`: the service has no reading).
    Absent,
    Number(f64),
    /// There, but not a finite number; the text is the JSON as found (cut short).
    Malformed(String),
}

impl Raw {
    pub fn from_num(n: &Num) -> Raw {
        match n {
            None | Some(serde_json::Value::Null) => Raw::Absent,
            Some(serde_json::Value::Number(x)) => match x.as_f64() {
                Some(v) if v.is_finite() => Raw::Number(v),
                _ => Raw::Malformed(x.to_string()),
            },
            Some(other) => Raw::Malformed(other.to_string().chars().take(60).collect()),
        }
    }

    pub fn number(&self) -> Option<f64> {
        match self {
            Raw::Number(v) => Some(*v),
            _ => None,
        }
    }
}

/// The metadata of the Sensor resource behind a reading.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SensorInfo {
    /// The Sensor resource (`DataSourceUri`).
    pub uri: String,
    /// `ReadingTime` as the service wrote it (RFC 3339).
    pub reading_time: Option<String>,
    /// `SensingInterval` in seconds.
    pub sensing_interval_s: Option<f64>,
    /// `Accuracy`: estimated error in percent of the reading.
    pub accuracy_pct: Option<f64>,
    /// The Sensor's own `Reading` (may differ from the excerpt when read a moment later).
    pub reading: Option<f64>,
    #[serde(skip)]
    pub units: Option<String>,
}

impl SensorInfo {
    pub fn from_sensor(uri: &str, s: &Sensor) -> SensorInfo {
        SensorInfo {
            uri: uri.to_string(),
            reading_time: s.reading_time.clone(),
            sensing_interval_s: s.sensing_interval.as_deref().and_then(iso8601_seconds),
            accuracy_pct: Raw::from_num(&s.accuracy).number(),
            reading: Raw::from_num(&s.reading).number(),
            units: s.reading_units.clone(),
        }
    }
}

/// Seconds of an ISO 8601 duration of days, hours, minutes and seconds (`PT0.25S`, `P1DT2H`,
/// `PT5M`): what Redfish uses for `SensingInterval`. Years, months and weeks are refused (`None`).
pub fn iso8601_seconds(text: &str) -> Option<f64> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut any = false;
    for (part, units) in [
        (date, &[('D', 86_400.0)][..]),
        (
            time.unwrap_or(""),
            &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)][..],
        ),
    ] {
        let mut rest = part;
        for &(letter, scale) in units {
            if let Some(i) = rest.find(letter) {
                let v: f64 = rest[..i].parse().ok()?;
                if !v.is_finite() || v < 0.0 {
                    return None;
                }
                total += v * scale;
                any = true;
                rest = &rest[i + 1..];
            }
        }
        if !rest.is_empty() {
            return None;
        }
    }
    if time == Some("") {
        return None;
    }
    any.then_some(total)
}

/// Seconds between an RFC 3339 `reading_time` and `now` (positive: in the past), or `None` if
/// the text is no RFC 3339 date-time.
pub fn age_seconds(reading_time: &str, now: time::OffsetDateTime) -> Option<f64> {
    let t =
        time::OffsetDateTime::parse(reading_time, &time::format_description::well_known::Rfc3339)
            .ok()?;
    Some((now - t).as_seconds_f64())
}

/// The instant of an RFC 3339 `reading_time` in ns since the UNIX epoch, and its age in seconds
/// at `now_ns` (ns since the UNIX epoch; positive: in the past), or `None` if the text is no RFC
/// 3339 date-time (or lies beyond what i64 nanoseconds hold).
pub fn age_seconds_ns(reading_time: &str, now_ns: i64) -> Option<(i64, f64)> {
    let t =
        time::OffsetDateTime::parse(reading_time, &time::format_description::well_known::Rfc3339)
            .ok()?;
    let ns = i64::try_from(t.unix_timestamp_nanos()).ok()?;
    Some((ns, (now_ns as f64 - ns as f64) / 1e9))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(iso8601_seconds("PT0.25S"), Some(0.25));
        assert_eq!(iso8601_seconds("PT5M"), Some(300.0));
        assert_eq!(iso8601_seconds("P1DT1H1M1S"), Some(90_061.0));
        for bad in ["", "P", "PT", "5S", "PT-1S", "P1Y", "PTxS", "PT1S2"] {
            assert_eq!(iso8601_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn raw_values() {
        assert_eq!(Raw::from_num(&None), Raw::Absent);
        assert_eq!(Raw::from_num(&Some(json!(null))), Raw::Absent);
        assert_eq!(Raw::from_num(&Some(json!(0))), Raw::Number(0.0));
        assert_eq!(
            Raw::from_num(&Some(json!("N/A"))),
            Raw::Malformed("\"N/A\"".into())
        );
    }

    #[test]
    fn reading_age() {
        let now = time::OffsetDateTime::parse(
            "2026-01-01T00:10:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(age_seconds("2026-01-01T02:05:00+02:00", now), Some(300.0));
        assert_eq!(age_seconds("yesterday", now), None);
        let now_ns = now.unix_timestamp_nanos() as i64;
        let (ns, age) = age_seconds_ns("2026-01-01T00:05:00Z", now_ns).unwrap();
        assert_eq!((now_ns - ns, age), (300_000_000_000, 300.0));
        assert_eq!(age_seconds_ns("soon", now_ns), None);
    }
}
