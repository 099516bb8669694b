//! What a walk gathers before the checks: each reading as a slot (its quantity, the resource and
//! property it comes from, the raw value, the Sensor behind it), and the PDUs, CDUs and chassis
//! referring to their slots. `assemble` turns them into the inventory.

use super::{CircuitKind, Side, SlotId};
use crate::finding::Finding;
use crate::model::Coolant;
use crate::reading::{Quantity, Raw, SensorInfo};

/// One reading as found, before checks.
#[derive(Debug)]
pub(crate) struct Slot {
    pub q: Quantity,
    pub owner: String,
    pub property: &'static str,
    pub essential: bool,
    pub raw: Raw,
    pub sensor_uri: Option<String>,
    pub sensor: Option<SensorInfo>,
}

#[derive(Debug)]
pub(crate) struct CircuitB {
    pub uri: String,
    pub name: Option<String>,
    pub kind: CircuitKind,
    pub power: SlotId,
    pub energy: SlotId,
    pub current: SlotId,
}

#[derive(Debug)]
pub(crate) struct PduB {
    pub uri: String,
    pub name: Option<String>,
    pub power: SlotId,
    pub energy: SlotId,
    pub circuits: Vec<CircuitB>,
}

#[derive(Debug)]
pub(crate) struct ConnB {
    pub uri: String,
    pub name: Option<String>,
    pub side: Side,
    pub coolant: Option<Coolant>,
    /// supply, return, ΔT, flow, supply pressure, return pressure, Δp, heat removed.
    pub slots: [SlotId; 8],
}

#[derive(Debug)]
pub(crate) struct CduB {
    pub uri: String,
    pub name: Option<String>,
    pub coolant: Option<Coolant>,
    pub connectors: Vec<ConnB>,
}

#[derive(Debug)]
pub(crate) struct PsuB {
    pub uri: String,
    pub name: Option<String>,
    pub absent: bool,
    pub input: SlotId,
}

#[derive(Debug)]
pub(crate) struct ChassisB {
    pub uri: String,
    pub name: Option<String>,
    pub chassis_type: Option<String>,
    pub power: SlotId,
    pub psus: Vec<PsuB>,
    pub connectors: Vec<ConnB>,
}

/// What the walk has gathered.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    pub slots: Vec<Slot>,
    pub pdus: Vec<PduB>,
    pub cdus: Vec<CduB>,
    pub chassis: Vec<ChassisB>,
    pub findings: Vec<Finding>,
}
