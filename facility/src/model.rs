//! Thin serde models of the Redfish resources the facility clients read: only the properties used,
//! everything optional (a service may leave any of them out). Numbers that are readings stay JSON
//! values here ([`Num`]) so that one malformed reading (`"Reading": "N/A"`) becomes that reading's
//! finding instead of making the whole resource unreadable; [`crate::reading`] interprets them.
//!
//! Schema names (DMTF): ServiceRoot, PowerEquipment, PowerDistribution (rack PDU),
//! PowerDistributionMetrics, Circuit (mains and branch circuits), Outlet, ThermalEquipment,
//! CoolingUnit (CDU), CoolantConnector, Chassis, EnvironmentMetrics, PowerSubsystem, PowerSupply,
//! PowerSupplyMetrics, ThermalSubsystem, Sensor, and the common Resource collection.

use serde::Deserialize;

/// A JSON value where a number is expected: absent, `null`, a number, or something malformed.
pub type Num = Option<serde_json::Value>;

/// `{"@odata.id": "..."}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Link {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
}

/// A sensor excerpt inline in a resource (`{"Reading": 6438, "DataSourceUri": "/redfish/v1/…/Sensors/PDUPower"}`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Excerpt {
    #[serde(default)]
    pub reading: Num,
    #[serde(default)]
    pub data_source_uri: Option<String>,
}

/// Any resource collection.
#[derive(Debug, Deserialize)]
pub struct Collection {
    #[serde(rename = "Members", default)]
    pub members: Vec<Link>,
    #[serde(rename = "Members@odata.nextLink", default)]
    pub next_link: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceRoot {
    pub power_equipment: Option<Link>,
    pub thermal_equipment: Option<Link>,
    pub chassis: Option<Link>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PowerEquipment {
    #[serde(rename = "RackPDUs")]
    pub rack_pdus: Option<Link>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ThermalEquipment {
    #[serde(rename = "CDUs")]
    pub cdus: Option<Link>,
}

/// Name and id, common to every resource.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Named {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// PowerDistribution (a rack PDU).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PowerDistribution {
    #[serde(flatten)]
    pub named: Named,
    pub metrics: Option<Link>,
    pub mains: Option<Link>,
    pub branches: Option<Link>,
    pub outlets: Option<Link>,
}

/// PowerDistributionMetrics.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PowerDistributionMetrics {
    pub power_watts: Option<Excerpt>,
    #[serde(rename = "EnergykWh")]
    pub energy_kwh: Option<Excerpt>,
}

/// Circuit (mains or branch) and Outlet: the properties both have.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CircuitLike {
    #[serde(flatten)]
    pub named: Named,
    pub power_watts: Option<Excerpt>,
    #[serde(rename = "EnergykWh")]
    pub energy_kwh: Option<Excerpt>,
    pub current_amps: Option<Excerpt>,
}

/// Coolant properties (CoolingUnit and CoolantConnector).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Coolant {
    pub coolant_type: Option<String>,
    pub additive_name: Option<String>,
    pub additive_percent: Num,
    #[serde(rename = "SpecificHeatkJoulesPerKgK")]
    pub specific_heat_kj_per_kg_k: Num,
    pub density_kg_per_cubic_meter: Num,
}

/// CoolingUnit (a CDU).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CoolingUnit {
    #[serde(flatten)]
    pub named: Named,
    pub coolant: Option<Coolant>,
    pub primary_coolant_connectors: Option<Link>,
    pub secondary_coolant_connectors: Option<Link>,
}

/// CoolantConnector (a CDU's primary or secondary loop, or a chassis's liquid connection).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CoolantConnector {
    #[serde(flatten)]
    pub named: Named,
    pub coolant: Option<Coolant>,
    pub flow_liters_per_minute: Option<Excerpt>,
    pub supply_temperature_celsius: Option<Excerpt>,
    pub return_temperature_celsius: Option<Excerpt>,
    pub delta_temperature_celsius: Option<Excerpt>,
    #[serde(rename = "SupplyPressurekPa")]
    pub supply_pressure_kpa: Option<Excerpt>,
    #[serde(rename = "ReturnPressurekPa")]
    pub return_pressure_kpa: Option<Excerpt>,
    #[serde(rename = "DeltaPressurekPa")]
    pub delta_pressure_kpa: Option<Excerpt>,
    #[serde(rename = "HeatRemovedkW")]
    pub heat_removed_kw: Option<Excerpt>,
}

/// Chassis.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Chassis {
    #[serde(flatten)]
    pub named: Named,
    pub chassis_type: Option<String>,
    pub environment_metrics: Option<Link>,
    pub power_subsystem: Option<Link>,
    pub thermal_subsystem: Option<Link>,
}

/// EnvironmentMetrics.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EnvironmentMetrics {
    pub power_watts: Option<Excerpt>,
}

/// PowerSubsystem.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PowerSubsystem {
    pub power_supplies: Option<Link>,
}

/// Status, for a power supply bay that is `Absent`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Status {
    pub state: Option<String>,
}

/// PowerSupply.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PowerSupply {
    #[serde(flatten)]
    pub named: Named,
    pub status: Option<Status>,
    pub metrics: Option<Link>,
}

/// PowerSupplyMetrics.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PowerSupplyMetrics {
    pub input_power_watts: Option<Excerpt>,
}

/// ThermalSubsystem.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ThermalSubsystem {
    pub coolant_connectors: Option<Link>,
}

/// Sensor: the reading's own metadata.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Sensor {
    pub reading: Num,
    pub reading_units: Option<String>,
    /// RFC 3339 date-time of the reading.
    pub reading_time: Option<String>,
    /// ISO 8601 duration between readings (`PT0.25S`).
    pub sensing_interval: Option<String>,
    /// Estimated error in percent of the reading.
    pub accuracy: Num,
}
