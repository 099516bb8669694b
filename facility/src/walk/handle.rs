//! The walk's handling of each answer: parse the resource as what the job expected, note its
//! readings as slots, queue the resources it links to.

use super::{member_job, CircuitKind, Coll, ConnB, Job, Owner, Side, SlotId, Walk};
use super::{CduB, ChassisB, CircuitB, PduB, PsuB, Slot};
use crate::client::Fetched;
use crate::finding::{Finding, FindingKind};
use crate::model::{self, Excerpt};
use crate::reading::{Quantity, Raw, SensorInfo};
use crate::url::Url;

impl Walk {
    pub(super) fn handle(&mut self, asked: &Url, job: Job, f: Fetched) {
        let url = &f.url;
        let body = f.body;
        match job {
            Job::Root => {
                let Some(r) = self.parse::<model::ServiceRoot>(url, body, "Redfish service root")
                else {
                    return;
                };
                self.link(url, r.power_equipment.as_ref(), Job::PowerEquipment);
                self.link(url, r.thermal_equipment.as_ref(), Job::ThermalEquipment);
                self.link(url, r.chassis.as_ref(), Job::Collection(Coll::Chassis));
            }
            Job::PowerEquipment => {
                let Some(p) = self.parse::<model::PowerEquipment>(url, body, "PowerEquipment")
                else {
                    return;
                };
                self.link(url, p.rack_pdus.as_ref(), Job::Collection(Coll::Pdus));
            }
            Job::ThermalEquipment => {
                let Some(t) = self.parse::<model::ThermalEquipment>(url, body, "ThermalEquipment")
                else {
                    return;
                };
                self.link(url, t.cdus.as_ref(), Job::Collection(Coll::Cdus));
            }
            Job::Collection(c) => {
                let Some(coll) = self.parse::<model::Collection>(url, body, "resource collection")
                else {
                    return;
                };
                for m in &coll.members {
                    self.link(url, Some(m), member_job(c));
                }
                if let Some(next) = coll.next_link {
                    self.link(
                        url,
                        Some(&model::Link { odata_id: next }),
                        Job::Collection(c),
                    );
                }
            }
            Job::Sensor => {
                let Some(s) = self.parse::<model::Sensor>(url, body, "Sensor") else {
                    self.sensor_waiters.remove(&asked.to_string());
                    return;
                };
                let info = SensorInfo::from_sensor(&asked.to_string(), &s);
                for id in self
                    .sensor_waiters
                    .remove(&asked.to_string())
                    .unwrap_or_default()
                {
                    self.g.slots[id].sensor = Some(info.clone());
                }
            }
            _ => self.handle_equipment(url, job, body),
        }
    }

    fn handle_equipment(&mut self, url: &Url, job: Job, body: serde_json::Value) {
        match job {
            Job::Pdu => {
                let Some(p) = self.parse::<model::PowerDistribution>(
                    url,
                    body,
                    "PowerDistribution (rack PDU)",
                ) else {
                    return;
                };
                let i = self.g.pdus.len();
                let uri = url.to_string();
                let power = self.slot(Quantity::PowerW, &uri, "Metrics.PowerWatts", true);
                let energy = self.slot(Quantity::EnergyKwh, &uri, "Metrics.EnergykWh", true);
                self.g.pdus.push(PduB {
                    uri,
                    name: p.named.name,
                    power,
                    energy,
                    circuits: vec![],
                });
                self.link(url, p.metrics.as_ref(), Job::PduMetrics(i));
                self.link(
                    url,
                    p.mains.as_ref(),
                    Job::Collection(Coll::Circuits(i, CircuitKind::Mains)),
                );
                self.link(
                    url,
                    p.branches.as_ref(),
                    Job::Collection(Coll::Circuits(i, CircuitKind::Branch)),
                );
                self.link(
                    url,
                    p.outlets.as_ref(),
                    Job::Collection(Coll::Circuits(i, CircuitKind::Outlet)),
                );
            }
            Job::PduMetrics(i) => {
                let Some(m) = self.parse::<model::PowerDistributionMetrics>(
                    url,
                    body,
                    "PowerDistributionMetrics",
                ) else {
                    return;
                };
                let (power, energy) = (self.g.pdus[i].power, self.g.pdus[i].energy);
                self.fill(power, url, m.power_watts.as_ref(), true);
                self.fill(energy, url, m.energy_kwh.as_ref(), true);
            }
            Job::Circuit(i, kind) => {
                let what = if kind == CircuitKind::Outlet {
                    "Outlet"
                } else {
                    "Circuit"
                };
                let Some(c) = self.parse::<model::CircuitLike>(url, body, what) else {
                    return;
                };
                let uri = url.to_string();
                let power = self.slot(Quantity::PowerW, &uri, "PowerWatts", false);
                let energy = self.slot(Quantity::EnergyKwh, &uri, "EnergykWh", false);
                let current = self.slot(Quantity::CurrentA, &uri, "CurrentAmps", false);
                self.fill(power, url, c.power_watts.as_ref(), false);
                self.fill(energy, url, c.energy_kwh.as_ref(), false);
                self.fill(current, url, c.current_amps.as_ref(), false);
                self.g.pdus[i].circuits.push(CircuitB {
                    uri,
                    name: c.named.name,
                    kind,
                    power,
                    energy,
                    current,
                });
            }
            _ => self.handle_cooling(url, job, body),
        }
    }

    fn handle_cooling(&mut self, url: &Url, job: Job, body: serde_json::Value) {
        match job {
            Job::Cdu => {
                let Some(c) = self.parse::<model::CoolingUnit>(url, body, "CoolingUnit (CDU)")
                else {
                    return;
                };
                let i = self.g.cdus.len();
                self.g.cdus.push(CduB {
                    uri: url.to_string(),
                    name: c.named.name,
                    coolant: c.coolant,
                    connectors: vec![],
                });
                self.link(
                    url,
                    c.primary_coolant_connectors.as_ref(),
                    Job::Collection(Coll::Connectors(Owner::Cdu(i), Side::Primary)),
                );
                self.link(
                    url,
                    c.secondary_coolant_connectors.as_ref(),
                    Job::Collection(Coll::Connectors(Owner::Cdu(i), Side::Secondary)),
                );
            }
            Job::Connector(owner, side) => {
                let Some(c) = self.parse::<model::CoolantConnector>(url, body, "CoolantConnector")
                else {
                    return;
                };
                let conn = self.connector(url, side, c);
                match owner {
                    Owner::Cdu(i) => self.g.cdus[i].connectors.push(conn),
                    Owner::Chassis(i) => self.g.chassis[i].connectors.push(conn),
                }
            }
            _ => self.handle_chassis(url, job, body),
        }
    }

    fn handle_chassis(&mut self, url: &Url, job: Job, body: serde_json::Value) {
        match job {
            Job::Chassis => {
                let Some(c) = self.parse::<model::Chassis>(url, body, "Chassis") else {
                    return;
                };
                let i = self.g.chassis.len();
                let uri = url.to_string();
                let power = self.slot(
                    Quantity::PowerW,
                    &uri,
                    "EnvironmentMetrics.PowerWatts",
                    c.environment_metrics.is_some(),
                );
                self.g.chassis.push(ChassisB {
                    uri,
                    name: c.named.name,
                    chassis_type: c.chassis_type,
                    power,
                    psus: vec![],
                    connectors: vec![],
                });
                self.link(url, c.environment_metrics.as_ref(), Job::EnvMetrics(i));
                self.link(url, c.power_subsystem.as_ref(), Job::PowerSubsystem(i));
                self.link(url, c.thermal_subsystem.as_ref(), Job::ThermalSubsystem(i));
            }
            Job::EnvMetrics(i) => {
                let Some(m) =
                    self.parse::<model::EnvironmentMetrics>(url, body, "EnvironmentMetrics")
                else {
                    return;
                };
                let power = self.g.chassis[i].power;
                self.fill(power, url, m.power_watts.as_ref(), true);
            }
            Job::PowerSubsystem(i) => {
                let Some(p) = self.parse::<model::PowerSubsystem>(url, body, "PowerSubsystem")
                else {
                    return;
                };
                self.link(
                    url,
                    p.power_supplies.as_ref(),
                    Job::Collection(Coll::Psus(i)),
                );
            }
            Job::Psu(i) => {
                let Some(p) = self.parse::<model::PowerSupply>(url, body, "PowerSupply") else {
                    return;
                };
                let absent = p.status.as_ref().and_then(|s| s.state.as_deref()) == Some("Absent");
                let uri = url.to_string();
                let input = self.slot(
                    Quantity::PowerW,
                    &uri,
                    "Metrics.InputPowerWatts",
                    !absent && p.metrics.is_some(),
                );
                let j = self.g.chassis[i].psus.len();
                self.g.chassis[i].psus.push(PsuB {
                    uri,
                    name: p.named.name,
                    absent,
                    input,
                });
                self.link(url, p.metrics.as_ref(), Job::PsuMetrics(i, j));
            }
            Job::PsuMetrics(i, j) => {
                let Some(m) =
                    self.parse::<model::PowerSupplyMetrics>(url, body, "PowerSupplyMetrics")
                else {
                    return;
                };
                let input = self.g.chassis[i].psus[j].input;
                self.fill(input, url, m.input_power_watts.as_ref(), true);
            }
            Job::ThermalSubsystem(i) => {
                let Some(t) = self.parse::<model::ThermalSubsystem>(url, body, "ThermalSubsystem")
                else {
                    return;
                };
                self.link(
                    url,
                    t.coolant_connectors.as_ref(),
                    Job::Collection(Coll::Connectors(Owner::Chassis(i), Side::Chassis)),
                );
            }
            _ => {}
        }
    }

    fn connector(&mut self, url: &Url, side: Side, c: model::CoolantConnector) -> ConnB {
        let uri = url.to_string();
        let fields: [(Quantity, &'static str, Option<&Excerpt>, bool); 8] = [
            (
                Quantity::CoolantTempC,
                "SupplyTemperatureCelsius",
                c.supply_temperature_celsius.as_ref(),
                true,
            ),
            (
                Quantity::CoolantTempC,
                "ReturnTemperatureCelsius",
                c.return_temperature_celsius.as_ref(),
                true,
            ),
            (
                Quantity::DeltaTK,
                "DeltaTemperatureCelsius",
                c.delta_temperature_celsius.as_ref(),
                false,
            ),
            (
                Quantity::FlowLpm,
                "FlowLitersPerMinute",
                c.flow_liters_per_minute.as_ref(),
                true,
            ),
            (
                Quantity::PressureKpa,
                "SupplyPressurekPa",
                c.supply_pressure_kpa.as_ref(),
                false,
            ),
            (
                Quantity::PressureKpa,
                "ReturnPressurekPa",
                c.return_pressure_kpa.as_ref(),
                false,
            ),
            (
                Quantity::DeltaPressureKpa,
                "DeltaPressurekPa",
                c.delta_pressure_kpa.as_ref(),
                false,
            ),
            (
                Quantity::HeatKw,
                "HeatRemovedkW",
                c.heat_removed_kw.as_ref(),
                side != Side::Chassis,
            ),
        ];
        let mut slots = [0; 8];
        for (k, (q, property, excerpt, essential)) in fields.into_iter().enumerate() {
            slots[k] = self.slot(q, &uri, property, essential);
            self.fill(slots[k], url, excerpt, true);
        }
        ConnB {
            uri,
            name: c.named.name,
            side,
            coolant: c.coolant,
            slots,
        }
    }

    fn slot(
        &mut self,
        q: Quantity,
        owner: &str,
        property: &'static str,
        essential: bool,
    ) -> SlotId {
        self.g.slots.push(Slot {
            q,
            owner: owner.to_string(),
            property,
            essential,
            raw: Raw::Absent,
            sensor_uri: None,
            sensor: None,
        });
        self.g.slots.len() - 1
    }

    /// Fills slot `id` from an excerpt of resource `owner`, and queues its Sensor when `follow`.
    fn fill(&mut self, id: SlotId, owner: &Url, excerpt: Option<&Excerpt>, follow: bool) {
        let slot = &mut self.g.slots[id];
        slot.owner = owner.to_string();
        slot.raw = excerpt.map_or(Raw::Absent, |e| Raw::from_num(&e.reading));
        let source = excerpt.and_then(|e| e.data_source_uri.as_deref());
        let (Some(source), true) = (source, follow && self.opts.follow_sensors) else {
            return;
        };
        match self.within(owner, source) {
            Ok(u) => {
                let key = u.to_string();
                self.g.slots[id].sensor_uri = Some(key.clone());
                let waiters = self.sensor_waiters.entry(key).or_default();
                waiters.push(id);
                if waiters.len() == 1 {
                    self.low.push_back((u, Job::Sensor));
                }
            }
            Err(why) => self.g.findings.push(Finding::new(
                FindingKind::SensorUnreadable,
                owner.to_string(),
                format!("its DataSourceUri: {why}; the reading stands without the Sensor's reading time, interval or accuracy"),
            )),
        }
    }

    pub(super) fn sensor_failed(&mut self, url: &Url, error: &str) {
        let waiting = self
            .sensor_waiters
            .remove(&url.to_string())
            .unwrap_or_default();
        let of: Vec<String> = waiting
            .iter()
            .map(|&id| format!("{} {}", self.g.slots[id].owner, self.g.slots[id].property))
            .collect();
        self.g.findings.push(Finding::new(
            FindingKind::SensorUnreadable,
            url.to_string(),
            format!("{error}; the reading of {} stands without the Sensor's reading time, interval or accuracy", of.join(", ")),
        ));
    }
}
