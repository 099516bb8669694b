//! Turning what a walk gathered into an [`Inventory`]: each reading checked once (malformed, out
//! of physical range, stale `ReadingTime` → absent with a finding), the heat of every coolant loop
//! computed, and the consistency checks between readings:
//!
//! - `heat_mismatch`: ρ · c_p · flow · ΔT against `HeatRemovedkW` beyond the heat tolerance
//!   (default 10 % of the larger and 0.5 kW);
//! - `delta_t_mismatch`: the reported ΔT against return − supply, beyond 0.5 K;
//! - `return_colder_than_supply`: with coolant flowing, return more than 0.5 K below supply;
//! - `primary_secondary_mismatch`: a CDU's primary and secondary heat removed, beyond the heat tolerance;
//! - `psu_input_mismatch`: chassis power against the sum of its supplies' input power, beyond
//!   10 % and 20 W;
//! - `outlets_exceed_pdu`: a PDU's outlets together above its power by more than 10 % and 50 W.

use crate::finding::{Finding, FindingKind};
use crate::heat::{coolant_for, heat_kw};
use crate::inventory::{self as inv, Inventory, Sensors};
use crate::reading::{age_seconds, Raw};
use crate::walk::{CircuitKind, ConnB, Gathered, Side, SlotId, WalkOptions};

/// Tolerance of a reported ΔT against return − supply, and of "return colder than supply", K.
pub const DELTA_T_TOLERANCE_K: f64 = 0.5;
/// Relative and absolute tolerance of chassis power against its supplies' input power.
pub const PSU_TOLERANCE: (f64, f64) = (0.10, 20.0);
/// Relative and absolute margin by which outlets may exceed their PDU's power.
pub const OUTLET_TOLERANCE: (f64, f64) = (0.10, 50.0);

struct Ctx<'a> {
    g: &'a Gathered,
    values: Vec<Option<f64>>,
    findings: Vec<Finding>,
    opts: &'a WalkOptions,
}

pub(crate) fn assemble(
    service: String,
    g: Gathered,
    opts: &WalkOptions,
    now: time::OffsetDateTime,
    read: usize,
) -> Inventory {
    let mut findings = g.findings.clone();
    let values = (0..g.slots.len())
        .map(|id| resolve(&g, id, opts, now, &mut findings))
        .collect();
    let mut c = Ctx {
        g: &g,
        values,
        findings,
        opts,
    };
    let pdus = g.pdus.iter().map(|p| c.pdu(p)).collect();
    let cdus = g.cdus.iter().map(|d| c.cdu(d)).collect();
    let chassis = g.chassis.iter().map(|ch| c.chassis(ch)).collect();
    let checked_at = now
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Inventory {
        service,
        checked_at,
        resources_read: read,
        pdus,
        cdus,
        chassis,
        findings: c.findings,
    }
}

/// The checked value of a slot, with the findings that refuse it.
fn resolve(
    g: &Gathered,
    id: SlotId,
    opts: &WalkOptions,
    now: time::OffsetDateTime,
    findings: &mut Vec<Finding>,
) -> Option<f64> {
    let s = &g.slots[id];
    let what = format!("{} of {}", s.property, s.owner);
    let raw = match (&s.raw, s.sensor.as_ref().and_then(|i| i.reading)) {
        (Raw::Absent, Some(v)) => Raw::Number(v),
        (r, _) => r.clone(),
    };
    let v = match raw {
        Raw::Absent => {
            if s.essential {
                findings.push(Finding::new(
                    FindingKind::MissingReading,
                    &s.owner,
                    format!("{what}: no reading; the service does not report it (absent, not 0)"),
                ));
            }
            return None;
        }
        Raw::Malformed(t) => {
            findings.push(Finding::new(
                FindingKind::MalformedReading,
                &s.owner,
                format!("{what} is {t}, not a number; left absent"),
            ));
            return None;
        }
        Raw::Number(v) => v,
    };
    let (lo, hi) = s.q.range();
    let unit = s.q.unit();
    if v < lo || v > hi {
        findings.push(
            Finding::new(FindingKind::OutOfRange, &s.owner, format!("{what} reads {v} {unit}, outside the physical range {lo}…{hi} {unit}; a broken meter or wrong units: left absent"))
                .with("reading", v)
                .with("min", lo)
                .with("max", hi),
        );
        return None;
    }
    let Some(info) = &s.sensor else {
        return Some(v);
    };
    let Some(t) = &info.reading_time else {
        return Some(v);
    };
    let Some(age) = age_seconds(t, now) else {
        let mut f = Finding::new(FindingKind::BadReadingTime, &info.uri, format!("the Sensor behind {what} has ReadingTime {t:?}, no RFC 3339 date-time; the reading stands without it"));
        f.reading_time = Some(t.clone());
        findings.push(f);
        return Some(v);
    };
    match opts.max_reading_age_s {
        Some(max) if age.abs() > max => {
            let when = if age > 0.0 { "old" } else { "in the future" };
            let mut f = Finding::new(
                FindingKind::StaleReading,
                &info.uri,
                format!("{what} reads {v} {unit} but its Sensor's ReadingTime {t} is {:.0} s {when} (more than {max:.0} s): the meter is not updating, or the service's clock is wrong (check its NTP); left absent", age.abs()),
            )
            .with("reading", v)
            .with("age_s", age)
            .with("max_age_s", max);
            f.reading_time = Some(t.clone());
            findings.push(f);
            None
        }
        _ => Some(v),
    }
}

impl Ctx<'_> {
    fn v(&self, id: SlotId) -> Option<f64> {
        self.values[id]
    }

    fn sensors(&self, named: &[(&'static str, SlotId)]) -> Sensors {
        named
            .iter()
            .filter_map(|&(n, id)| self.g.slots[id].sensor.clone().map(|s| (n, s)))
            .collect()
    }

    fn pdu(&mut self, p: &crate::walk::PduB) -> inv::Pdu {
        let circuits = |kind| {
            p.circuits
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| inv::Circuit {
                    uri: c.uri.clone(),
                    name: c.name.clone(),
                    power_w: self.v(c.power),
                    energy_kwh: self.v(c.energy),
                    current_a: self.v(c.current),
                })
                .collect::<Vec<_>>()
        };
        let out = inv::Pdu {
            uri: p.uri.clone(),
            name: p.name.clone(),
            power_w: self.v(p.power),
            energy_kwh: self.v(p.energy),
            mains: circuits(CircuitKind::Mains),
            branches: circuits(CircuitKind::Branch),
            outlets: circuits(CircuitKind::Outlet),
            sensors: self.sensors(&[("power_w", p.power), ("energy_kwh", p.energy)]),
        };
        let outlets: Vec<f64> = out.outlets.iter().filter_map(|o| o.power_w).collect();
        if let (Some(total), false) = (out.power_w, outlets.is_empty()) {
            let sum: f64 = outlets.iter().sum();
            if sum > total * (1.0 + OUTLET_TOLERANCE.0) + OUTLET_TOLERANCE.1 {
                self.findings.push(
                    Finding::new(FindingKind::OutletsExceedPdu, &out.uri, format!("{} of its outlets draw {sum:.1} W together, more than the PDU's {total:.1} W; one of the meters is wrong", outlets.len()))
                        .with("outlets_sum_w", sum)
                        .with("power_w", total),
                );
            }
        }
        out
    }

    fn cdu(&mut self, d: &crate::walk::CduB) -> inv::Cdu {
        let connectors: Vec<inv::Connector> = d
            .connectors
            .iter()
            .map(|c| self.connector(c, d.coolant.as_ref(), &d.uri))
            .collect();
        let side_heat = |side: &str| -> Option<f64> {
            let on: Vec<_> = connectors.iter().filter(|c| c.side == side).collect();
            if on.is_empty() {
                return None;
            }
            on.iter().map(|c| c.heat_removed_kw).sum()
        };
        if let (Some(p), Some(s)) = (side_heat("primary"), side_heat("secondary")) {
            if self.opts.heat_tolerance.disagree(p, s) {
                self.findings.push(
                    Finding::new(FindingKind::PrimarySecondaryMismatch, &d.uri, format!("the primary loop removes {p:.2} kW but the secondary loop brings {s:.2} kW; what the racks give off must leave through the facility loop"))
                        .with("primary_heat_removed_kw", p)
                        .with("secondary_heat_removed_kw", s)
                        .with("tolerance_relative", self.opts.heat_tolerance.relative)
                        .with("tolerance_kw", self.opts.heat_tolerance.absolute_kw),
                );
            }
        }
        let coolant = d.coolant.as_ref().map(|c| inv::CoolantStated {
            coolant_type: c.coolant_type.clone(),
            additive_name: c.additive_name.clone(),
            additive_percent: Raw::from_num(&c.additive_percent).number(),
            density_kg_per_m3: Raw::from_num(&c.density_kg_per_cubic_meter).number(),
            specific_heat_kj_per_kg_k: Raw::from_num(&c.specific_heat_kj_per_kg_k).number(),
        });
        inv::Cdu {
            uri: d.uri.clone(),
            name: d.name.clone(),
            coolant,
            connectors,
        }
    }

    fn connector(
        &mut self,
        c: &ConnB,
        cdu_coolant: Option<&crate::model::Coolant>,
        cdu_uri: &str,
    ) -> inv::Connector {
        let [sup, ret, dt, flow, sp, rp, dp, heat] = c.slots.map(|id| self.v(id));
        let props = coolant_for(
            c.coolant.as_ref(),
            &c.uri,
            cdu_coolant,
            cdu_uri,
            &mut self.findings,
        );
        let measured_dt = sup.zip(ret).map(|(s, r)| r - s);
        let computed = flow
            .zip(measured_dt.or(dt))
            .map(|(q, d)| heat_kw(&props, q, d));
        let uri = &c.uri;
        if let (Some(m), Some(r)) = (measured_dt, dt) {
            if (m.abs() - r.abs()).abs() > DELTA_T_TOLERANCE_K {
                self.findings.push(
                    Finding::new(
                        FindingKind::DeltaTMismatch,
                        uri,
                        format!("it reports ΔT {r} K but return − supply is {m:.2} K"),
                    )
                    .with("delta_t_k", r)
                    .with("return_minus_supply_k", m),
                );
            }
        }
        if let (Some(m), Some(q)) = (measured_dt, flow) {
            if q > 0.0 && m < -DELTA_T_TOLERANCE_K {
                self.findings.push(
                    Finding::new(FindingKind::ReturnColderThanSupply, uri, format!("coolant flows ({q} L/min) but returns {:.2} K colder than it is supplied; swapped sensors or a loop running backwards", -m))
                        .with_opt("supply_temp_c", sup)
                        .with_opt("return_temp_c", ret)
                        .with("flow_lpm", q),
                );
            }
        }
        if let (Some(q), Some(h)) = (computed, heat) {
            let tol = self.opts.heat_tolerance;
            if tol.disagree(q, h) {
                self.findings.push(
                    Finding::new(
                        FindingKind::HeatMismatch,
                        uri,
                        format!("it reports {h} kW removed but ρ·c_p·flow·ΔT = {:.0} kg/m³ · {} kJ/(kg·K) · {} L/min · {:.2} K = {q:.2} kW (coolant: {}); the flow, temperature or heat meter is off",
                            props.density_kg_per_m3, props.specific_heat_kj_per_kg_k, flow.unwrap_or_default(), measured_dt.or(dt).unwrap_or_default(), props.source),
                    )
                    .with("heat_removed_kw", h)
                    .with("computed_heat_kw", q)
                    .with_opt("flow_lpm", flow)
                    .with_opt("delta_t_k", measured_dt.or(dt))
                    .with("density_kg_per_m3", props.density_kg_per_m3)
                    .with("specific_heat_kj_per_kg_k", props.specific_heat_kj_per_kg_k)
                    .with("tolerance_relative", tol.relative)
                    .with("tolerance_kw", tol.absolute_kw),
                );
            }
        }
        let names = [
            "supply_temp_c",
            "return_temp_c",
            "delta_t_k",
            "flow_lpm",
            "supply_pressure_kpa",
            "return_pressure_kpa",
            "delta_pressure_kpa",
            "heat_removed_kw",
        ];
        let named: Vec<(&'static str, SlotId)> = names.into_iter().zip(c.slots).collect();
        inv::Connector {
            uri: uri.clone(),
            name: c.name.clone(),
            side: match c.side {
                Side::Primary => "primary",
                Side::Secondary => "secondary",
                Side::Chassis => "chassis",
            },
            supply_temp_c: sup,
            return_temp_c: ret,
            delta_t_k: dt,
            flow_lpm: flow,
            supply_pressure_kpa: sp,
            return_pressure_kpa: rp,
            delta_pressure_kpa: dp,
            heat_removed_kw: heat,
            computed_heat_kw: computed,
            coolant_used: props,
            sensors: self.sensors(&named),
        }
    }

    fn chassis(&mut self, ch: &crate::walk::ChassisB) -> inv::Chassis {
        let power_supplies: Vec<inv::PowerSupply> = ch
            .psus
            .iter()
            .map(|p| inv::PowerSupply {
                uri: p.uri.clone(),
                name: p.name.clone(),
                absent: p.absent,
                input_power_w: self.v(p.input),
            })
            .collect();
        let present: Vec<_> = power_supplies.iter().filter(|p| !p.absent).collect();
        let psu_input_w: Option<f64> = if present.is_empty() {
            None
        } else {
            present.iter().map(|p| p.input_power_w).sum()
        };
        let power_w = self.v(ch.power);
        if let (Some(total), Some(psus)) = (power_w, psu_input_w) {
            let diff = (total - psus).abs();
            if diff > PSU_TOLERANCE.1 && diff > PSU_TOLERANCE.0 * total.max(psus) {
                self.findings.push(
                    Finding::new(FindingKind::PsuInputMismatch, &ch.uri, format!("it reports {total} W but its power supplies take {psus} W at their inputs"))
                        .with("power_w", total)
                        .with("psu_input_w", psus),
                );
            }
        }
        let coolant_connectors = ch
            .connectors
            .iter()
            .map(|c| self.connector(c, None, &ch.uri))
            .collect();
        let named: Vec<(&'static str, SlotId)> = vec![("power_w", ch.power)];
        inv::Chassis {
            uri: ch.uri.clone(),
            name: ch.name.clone(),
            chassis_type: ch.chassis_type.clone(),
            power_w,
            psu_input_w,
            power_supplies,
            coolant_connectors,
            sensors: self.sensors(&named),
        }
    }
}
