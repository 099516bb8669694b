//! What a walk of a facility service found: rack PDUs, CDUs and chassis with their current
//! readings, and the findings. This is the `--json` output of `hallmark facility discover`
//! (docs/FACILITY.md): every reading is a number in the unit its name ends with, or `null` when
//! nobody measured it or the measurement was refused (a finding then says why); never 0 instead.

use crate::finding::Finding;
use crate::heat::CoolantProps;
use crate::reading::SensorInfo;
use serde::Serialize;
use std::collections::BTreeMap;

/// The inventory of one service.
#[derive(Clone, Debug, Serialize)]
pub struct Inventory {
    /// The service root.
    pub service: String,
    /// When the readings were checked (RFC 3339, UTC): the "now" of reading ages.
    pub checked_at: String,
    pub resources_read: usize,
    pub pdus: Vec<Pdu>,
    pub cdus: Vec<Cdu>,
    pub chassis: Vec<Chassis>,
    pub findings: Vec<Finding>,
}

/// Sensors behind readings, by the reading's field name (`power_w`, …).
pub type Sensors = BTreeMap<&'static str, SensorInfo>;

/// A rack PDU (`PowerEquipment/RackPDUs/{id}`).
#[derive(Clone, Debug, Serialize)]
pub struct Pdu {
    pub uri: String,
    pub name: Option<String>,
    /// `Metrics.PowerWatts`, W.
    pub power_w: Option<f64>,
    /// `Metrics.EnergykWh`, kWh.
    pub energy_kwh: Option<f64>,
    pub mains: Vec<Circuit>,
    pub branches: Vec<Circuit>,
    pub outlets: Vec<Circuit>,
    pub sensors: Sensors,
}

/// A mains or branch circuit, or an outlet, of a PDU.
#[derive(Clone, Debug, Serialize)]
pub struct Circuit {
    pub uri: String,
    pub name: Option<String>,
    pub power_w: Option<f64>,
    pub energy_kwh: Option<f64>,
    pub current_a: Option<f64>,
}

/// A coolant distribution unit (`ThermalEquipment/CDUs/{id}`).
#[derive(Clone, Debug, Serialize)]
pub struct Cdu {
    pub uri: String,
    pub name: Option<String>,
    /// The CDU's `Coolant` as stated (`null` fields where not stated).
    pub coolant: Option<CoolantStated>,
    pub connectors: Vec<Connector>,
}

/// A `Coolant` as the service states it.
#[derive(Clone, Debug, Serialize)]
pub struct CoolantStated {
    pub coolant_type: Option<String>,
    pub additive_name: Option<String>,
    pub additive_percent: Option<f64>,
    pub density_kg_per_m3: Option<f64>,
    pub specific_heat_kj_per_kg_k: Option<f64>,
}

/// A coolant connector: a CDU's primary (facility) or secondary (rack) loop, or a chassis's.
#[derive(Clone, Debug, Serialize)]
pub struct Connector {
    pub uri: String,
    pub name: Option<String>,
    /// `primary`, `secondary` or `chassis`.
    pub side: &'static str,
    pub supply_temp_c: Option<f64>,
    pub return_temp_c: Option<f64>,
    /// `DeltaTemperatureCelsius` as reported, K.
    pub delta_t_k: Option<f64>,
    pub flow_lpm: Option<f64>,
    pub supply_pressure_kpa: Option<f64>,
    pub return_pressure_kpa: Option<f64>,
    pub delta_pressure_kpa: Option<f64>,
    /// `HeatRemovedkW` as reported, kW.
    pub heat_removed_kw: Option<f64>,
    /// ρ · c_p · flow · ΔT, kW (ΔT = return − supply, else the reported ΔT); `null` without flow or ΔT.
    pub computed_heat_kw: Option<f64>,
    /// The coolant properties `computed_heat_kw` used and where they come from.
    pub coolant_used: CoolantProps,
    pub sensors: Sensors,
}

/// A chassis (`Chassis/{id}`): a node's BMC view, or the chassis of a PDU or CDU.
#[derive(Clone, Debug, Serialize)]
pub struct Chassis {
    pub uri: String,
    pub name: Option<String>,
    pub chassis_type: Option<String>,
    /// `EnvironmentMetrics.PowerWatts`, W.
    pub power_w: Option<f64>,
    /// Sum of the present power supplies' `InputPowerWatts`, W; `null` unless every present
    /// supply has a reading.
    pub psu_input_w: Option<f64>,
    pub power_supplies: Vec<PowerSupply>,
    pub coolant_connectors: Vec<Connector>,
    pub sensors: Sensors,
}

/// A power supply of a chassis.
#[derive(Clone, Debug, Serialize)]
pub struct PowerSupply {
    pub uri: String,
    pub name: Option<String>,
    /// The bay is empty (`Status.State` `Absent`).
    pub absent: bool,
    pub input_power_w: Option<f64>,
}
