//! Readings of the hall's own meters (rack PDUs, CDUs, node BMCs) as a facility collector sends
//! them: one flat record per number read, stamped on the coordinator's clock, with where it came
//! from, what it measures and for which part of the hall.
//!
//! A collector is a probe that registers with [`crate::ProbeRole::Facility`], loads nothing and
//! sends [`FacilityBatch`]es, numbered like telemetry batches (from 0 per process, acknowledged by
//! [`crate::CoordinatorMessage::Ack`]). A reading nobody could take is kept with `value: None`
//! and the reason in `note`: absent is never 0.

use serde::{Deserialize, Serialize};

/// Most readings one [`FacilityBatch`] may carry (the coordinator refuses more).
pub const MAX_FACILITY_READINGS: usize = 4096;
/// Longest `source`, `point`, `uri` or subject name of a reading, bytes.
pub const MAX_FACILITY_TEXT_BYTES: usize = 256;
/// Longest `note` of a reading, bytes.
pub const MAX_FACILITY_NOTE_BYTES: usize = 160;

/// What kind of equipment a reading comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A rack power distribution unit (Redfish `RackPDUs`, or an SNMP PDU).
    Pdu,
    /// A coolant distribution unit (Redfish `CDUs`).
    Cdu,
    /// A node's BMC (Redfish `Chassis`).
    Chassis,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Pdu => "pdu",
            SourceKind::Cdu => "cdu",
            SourceKind::Chassis => "chassis",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        [SourceKind::Pdu, SourceKind::Cdu, SourceKind::Chassis]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What a reading measures, in one unit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FacilityQuantity {
    /// Electrical power, W (a PDU's input, a circuit, an outlet, a chassis, a power supply's input).
    PowerW,
    /// An energy counter, kWh.
    EnergyKwh,
    /// Coolant supply temperature, °C.
    SupplyTempC,
    /// Coolant return temperature, °C.
    ReturnTempC,
    /// Return − supply as the device reports it, K.
    DeltaTK,
    /// Coolant flow, L/min.
    FlowLpm,
    /// Coolant supply pressure (gauge), kPa.
    SupplyPressureKpa,
    /// Coolant return pressure (gauge), kPa.
    ReturnPressureKpa,
    /// Heat removed as the device reports it, kW.
    HeatRemovedKw,
    /// The coolant's density as the device states it (Redfish `Coolant`), kg/m³.
    CoolantDensityKgM3,
    /// The coolant's specific heat as the device states it (Redfish `Coolant`), kJ/(kg·K).
    CoolantSpecificHeatKjKgK,
}

impl FacilityQuantity {
    /// Every quantity, in a fixed order.
    pub const ALL: [FacilityQuantity; 11] = [
        FacilityQuantity::PowerW,
        FacilityQuantity::EnergyKwh,
        FacilityQuantity::SupplyTempC,
        FacilityQuantity::ReturnTempC,
        FacilityQuantity::DeltaTK,
        FacilityQuantity::FlowLpm,
        FacilityQuantity::SupplyPressureKpa,
        FacilityQuantity::ReturnPressureKpa,
        FacilityQuantity::HeatRemovedKw,
        FacilityQuantity::CoolantDensityKgM3,
        FacilityQuantity::CoolantSpecificHeatKjKgK,
    ];

    /// The stored and printed name (`power_w`, `supply_temp_c`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FacilityQuantity::PowerW => "power_w",
            FacilityQuantity::EnergyKwh => "energy_kwh",
            FacilityQuantity::SupplyTempC => "supply_temp_c",
            FacilityQuantity::ReturnTempC => "return_temp_c",
            FacilityQuantity::DeltaTK => "delta_t_k",
            FacilityQuantity::FlowLpm => "flow_lpm",
            FacilityQuantity::SupplyPressureKpa => "supply_pressure_kpa",
            FacilityQuantity::ReturnPressureKpa => "return_pressure_kpa",
            FacilityQuantity::HeatRemovedKw => "heat_removed_kw",
            FacilityQuantity::CoolantDensityKgM3 => "coolant_density_kg_m3",
            FacilityQuantity::CoolantSpecificHeatKjKgK => "coolant_specific_heat_kj_kg_k",
        }
    }

    pub fn parse(s: &str) -> Option<FacilityQuantity> {
        FacilityQuantity::ALL.into_iter().find(|q| q.as_str() == s)
    }

    /// The unit as printed.
    pub fn unit(self) -> &'static str {
        match self {
            FacilityQuantity::PowerW => "W",
            FacilityQuantity::EnergyKwh => "kWh",
            FacilityQuantity::SupplyTempC | FacilityQuantity::ReturnTempC => "°C",
            FacilityQuantity::DeltaTK => "K",
            FacilityQuantity::FlowLpm => "L/min",
            FacilityQuantity::SupplyPressureKpa | FacilityQuantity::ReturnPressureKpa => "kPa",
            FacilityQuantity::HeatRemovedKw => "kW",
            FacilityQuantity::CoolantDensityKgM3 => "kg/m³",
            FacilityQuantity::CoolantSpecificHeatKjKgK => "kJ/(kg·K)",
        }
    }
}

/// The part of the hall a reading is about, as `facility.toml` assigns its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Hall,
    Row(String),
    Rack(String),
    Node(String),
}

impl Subject {
    /// `hall`, `row`, `rack` or `node`.
    pub fn scope(&self) -> &'static str {
        match self {
            Subject::Hall => "hall",
            Subject::Row(_) => "row",
            Subject::Rack(_) => "rack",
            Subject::Node(_) => "node",
        }
    }

    /// The row, rack or node name; empty for the hall.
    pub fn name(&self) -> &str {
        match self {
            Subject::Hall => "",
            Subject::Row(n) | Subject::Rack(n) | Subject::Node(n) => n,
        }
    }

    /// The subject from its scope and name (as stored); `None` for an unknown scope.
    pub fn from_parts(scope: &str, name: &str) -> Option<Subject> {
        match scope {
            "hall" => Some(Subject::Hall),
            "row" => Some(Subject::Row(name.to_string())),
            "rack" => Some(Subject::Rack(name.to_string())),
            "node" => Some(Subject::Node(name.to_string())),
            _ => None,
        }
    }
}

/// One number read from one facility source at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacilityReading {
    /// The source's name in `facility.toml`.
    pub source: String,
    pub kind: SourceKind,
    pub subject: Subject,
    /// Where on the equipment: empty for the whole unit (a PDU's input, a CDU's total), else e.g.
    /// `primary`, `secondary` (coolant connectors), `mains/A`, `outlet/3`, `psu/1`.
    pub point: String,
    pub quantity: FacilityQuantity,
    /// Where the number was read: the Redfish resource's URI (with the property as a JSON pointer
    /// fragment, `…/RackPDUs/1/Metrics#/PowerWatts/Reading`) or the SNMP OID.
    pub uri: String,
    /// When it was read, coordinator clock, ns (the middle of the request's round trip).
    pub t_ns: i64,
    /// The reading; `None` when it could not be taken or was refused (see `note`).
    pub value: Option<f64>,
    /// The device's own time of the reading (Redfish `ReadingTime`), ns since the UNIX epoch as
    /// the device's clock says, where given.
    pub device_time_ns: Option<i64>,
    /// The poll's round trip, µs, where a request was made.
    pub latency_us: Option<u32>,
    /// Why `value` is absent, or what is doubtful about it; at most [`MAX_FACILITY_NOTE_BYTES`].
    pub note: Option<String>,
}

/// A numbered batch of facility readings. Numbers start at 0 per collector process and never
/// repeat, as for [`crate::TelemetryBatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacilityBatch {
    pub seq: u64,
    pub readings: Vec<FacilityReading>,
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn bounded_text(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for q in FacilityQuantity::ALL {
            assert_eq!(FacilityQuantity::parse(q.as_str()), Some(q));
        }
        for k in [SourceKind::Pdu, SourceKind::Cdu, SourceKind::Chassis] {
            assert_eq!(SourceKind::parse(k.as_str()), Some(k));
        }
        for s in [
            Subject::Hall,
            Subject::Row("row-1".into()),
            Subject::Rack("r01".into()),
            Subject::Node("n1".into()),
        ] {
            assert_eq!(Subject::from_parts(s.scope(), s.name()), Some(s.clone()));
        }
        assert_eq!(FacilityQuantity::parse("watts"), None);
        assert_eq!(Subject::from_parts("pod", "x"), None);
    }

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(bounded_text("abc".into(), 3), "abc");
        assert_eq!(bounded_text("abcd".into(), 3), "abc");
        assert_eq!(bounded_text("aé".into(), 2), "a");
    }
}
