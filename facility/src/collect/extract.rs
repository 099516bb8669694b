//! From fetched Redfish resources to [`FacilityReading`]s, without I/O: which resources a source's
//! poll reads ([`Target`], found from the source's resource and its collections by [`links`]), the
//! readings each one gives ([`extract`]), the Sensor metadata applied to them ([`apply_sensor`]),
//! a CDU's total ([`cdu_total`]) and the readings of a poll that failed ([`failed`]).
//!
//! Every value is checked as the walk checks it (`reading::Raw`, the physical ranges of
//! `reading::Quantity`, `reading::age_seconds`): absent, malformed, out of range or stale gives
//! `value: None` and a short note (at most 160 bytes) saying what and where; never 0.

use crate::model::{self, Excerpt};
use crate::reading::{age_seconds_ns, Quantity, Raw, SensorInfo};
use hallmark_protocol::facility::{
    bounded_text, FacilityQuantity as Q, FacilityReading, SourceKind, Subject,
    MAX_FACILITY_NOTE_BYTES, MAX_FACILITY_TEXT_BYTES,
};
use serde::de::DeserializeOwned;

/// Members read at most from one collection of a source (outlets, connectors, supplies).
pub const MAX_MEMBERS: usize = 64;

/// What a source's readings carry besides the numbers.
#[derive(Debug, Clone)]
pub struct SourceMeta {
    pub name: String,
    pub kind: SourceKind,
    pub subject: Subject,
    /// A Sensor `ReadingTime` further than this from the poll makes the reading stale.
    pub max_reading_age_s: Option<f64>,
}

/// When a resource was read: the middle of its round trip on the caller's clock, and the round trip.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub t_ns: i64,
    pub latency_us: Option<u32>,
}

/// What a resource read in each poll holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A PDU's `Metrics` (PowerDistributionMetrics).
    PduMetrics,
    /// A mains circuit or outlet, at `point` (`mains/A`, `outlet/3`).
    Circuit { point: String },
    /// A CDU's coolant connector at `point` (`primary`, `secondary/2`).
    Connector { point: String },
    /// A chassis's EnvironmentMetrics.
    EnvMetrics,
    /// A power supply's metrics at `point` (`psu/1`).
    PsuMetrics { point: String },
}

/// A resource to GET in each poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The resource's path on the source's service.
    pub path: String,
    pub role: Role,
}

/// The links of a source's own resource (or of a power supply) that lead to its targets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Links {
    /// Targets read directly (a PDU's Metrics, a chassis's EnvironmentMetrics, a PSU's Metrics).
    pub targets: Vec<Target>,
    /// Collections whose members are targets (or, for power supplies, lead to them): (path, prefix
    /// of the members' points).
    pub collections: Vec<(String, &'static str)>,
}

fn parse<T: DeserializeOwned>(body: &serde_json::Value, what: &str) -> Result<T, String> {
    T::deserialize(body).map_err(|e| format!("not a valid {what}: {e}"))
}

/// The links of the source's resource of kind `kind`.
pub fn links(kind: SourceKind, body: &serde_json::Value) -> Result<Links, String> {
    let mut l = Links::default();
    let t = |link: &Option<model::Link>, role: Role| {
        link.as_ref().map(|x| Target {
            path: x.odata_id.clone(),
            role,
        })
    };
    match kind {
        SourceKind::Pdu => {
            let p: model::PowerDistribution = parse(body, "PowerDistribution (rack PDU)")?;
            l.targets.extend(t(&p.metrics, Role::PduMetrics));
            l.collections.extend(p.mains.map(|m| (m.odata_id, "mains")));
            l.collections
                .extend(p.outlets.map(|m| (m.odata_id, "outlet")));
        }
        SourceKind::Cdu => {
            let c: model::CoolingUnit = parse(body, "CoolingUnit (CDU)")?;
            l.collections.extend(
                c.primary_coolant_connectors
                    .map(|m| (m.odata_id, "primary")),
            );
            l.collections.extend(
                c.secondary_coolant_connectors
                    .map(|m| (m.odata_id, "secondary")),
            );
        }
        SourceKind::Chassis => {
            let c: model::Chassis = parse(body, "Chassis")?;
            l.targets
                .extend(t(&c.environment_metrics, Role::EnvMetrics));
            l.collections
                .extend(c.power_subsystem.map(|m| (m.odata_id, "psu")));
        }
    }
    Ok(l)
}

/// The members of a collection (at most [`MAX_MEMBERS`], the first page) as (path, id).
pub fn members(body: &serde_json::Value) -> Result<Vec<(String, String)>, String> {
    let c: model::Collection = parse(body, "resource collection")?;
    Ok(c.members
        .into_iter()
        .take(MAX_MEMBERS)
        .map(|m| {
            let id = m
                .odata_id
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            (m.odata_id, id)
        })
        .collect())
}

/// The point of member `id` of a collection with points `prefix`, one of `count` members: a lone
/// coolant connector is just `primary` / `secondary`.
pub fn member_point(prefix: &str, id: &str, count: usize) -> String {
    match prefix {
        "primary" | "secondary" if count == 1 => prefix.to_string(),
        _ => format!("{prefix}/{id}"),
    }
}

/// A power supply's metrics target, or `None` for an empty bay (`Status.State` `Absent`).
pub fn psu_target(body: &serde_json::Value, point: String) -> Result<Option<Target>, String> {
    let p: model::PowerSupply = parse(body, "PowerSupply")?;
    let absent = p.status.as_ref().and_then(|s| s.state.as_deref()) == Some("Absent");
    Ok(match (absent, p.metrics) {
        (false, Some(m)) => Some(Target {
            path: m.odata_id,
            role: Role::PsuMetrics { point },
        }),
        _ => None,
    })
}

/// A reading of `src` and where its Sensor is, if it names one.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub reading: FacilityReading,
    pub sensor: Option<String>,
}

fn range_of(q: Q) -> Quantity {
    Quantity::of(q)
}

fn note(text: String) -> Option<String> {
    Some(bounded_text(text, MAX_FACILITY_NOTE_BYTES))
}

/// A reading of `src` (value and note not set yet).
pub fn blank(src: &SourceMeta, point: &str, q: Q, uri: String, stamp: Stamp) -> FacilityReading {
    FacilityReading {
        source: src.name.clone(),
        kind: src.kind,
        subject: src.subject.clone(),
        point: bounded_text(point.to_string(), MAX_FACILITY_TEXT_BYTES),
        quantity: q,
        uri: bounded_text(uri, MAX_FACILITY_TEXT_BYTES),
        t_ns: stamp.t_ns,
        value: None,
        device_time_ns: None,
        latency_us: stamp.latency_us,
        note: None,
    }
}

/// One excerpt checked: the number in its physical range, or `None` and why.
fn value(raw: Raw, q: Q, property: &str) -> (Option<f64>, Option<String>) {
    match raw {
        Raw::Absent => (
            None,
            note(format!("{property} absent: the service does not report it")),
        ),
        Raw::Malformed(t) => (None, note(format!("{property} is {t}, not a number"))),
        Raw::Number(v) => {
            let (lo, hi) = range_of(q).range();
            if v < lo || v > hi {
                let unit = q.unit();
                (None, note(format!("{property} reads {v} {unit}, outside {lo}…{hi} {unit}: a broken meter or wrong units")))
            } else {
                (Some(v), None)
            }
        }
    }
}

fn reading(
    src: &SourceMeta,
    resource: &str,
    point: &str,
    q: Q,
    property: &str,
    e: Option<&Excerpt>,
    stamp: Stamp,
) -> Extracted {
    let uri = format!("{resource}#/{}/Reading", property.replace('.', "/"));
    let mut r = blank(src, point, q, uri, stamp);
    let raw = e.map_or(Raw::Absent, |e| Raw::from_num(&e.reading));
    (r.value, r.note) = value(raw, q, property);
    Extracted {
        reading: r,
        sensor: e.and_then(|e| e.data_source_uri.clone()),
    }
}

/// The readings resource `resource` (its full URL) gives in its `role`.
pub fn extract(
    src: &SourceMeta,
    role: &Role,
    resource: &str,
    body: &serde_json::Value,
    stamp: Stamp,
) -> Result<Vec<Extracted>, String> {
    let mut out = Vec::new();
    match role {
        Role::PduMetrics => {
            let m: model::PowerDistributionMetrics = parse(body, "PowerDistributionMetrics")?;
            out.push(reading(
                src,
                resource,
                "",
                Q::PowerW,
                "PowerWatts",
                m.power_watts.as_ref(),
                stamp,
            ));
            out.push(reading(
                src,
                resource,
                "",
                Q::EnergyKwh,
                "EnergykWh",
                m.energy_kwh.as_ref(),
                stamp,
            ));
        }
        Role::Circuit { point } => {
            let c: model::CircuitLike = parse(body, "Circuit or Outlet")?;
            out.push(reading(
                src,
                resource,
                point,
                Q::PowerW,
                "PowerWatts",
                c.power_watts.as_ref(),
                stamp,
            ));
            if c.energy_kwh.is_some() {
                out.push(reading(
                    src,
                    resource,
                    point,
                    Q::EnergyKwh,
                    "EnergykWh",
                    c.energy_kwh.as_ref(),
                    stamp,
                ));
            }
        }
        Role::Connector { point } => {
            let c: model::CoolantConnector = parse(body, "CoolantConnector")?;
            connector(src, resource, point, &c, stamp, &mut out);
        }
        Role::EnvMetrics => {
            let m: model::EnvironmentMetrics = parse(body, "EnvironmentMetrics")?;
            out.push(reading(
                src,
                resource,
                "",
                Q::PowerW,
                "PowerWatts",
                m.power_watts.as_ref(),
                stamp,
            ));
        }
        Role::PsuMetrics { point } => {
            let m: model::PowerSupplyMetrics = parse(body, "PowerSupplyMetrics")?;
            out.push(reading(
                src,
                resource,
                point,
                Q::PowerW,
                "InputPowerWatts",
                m.input_power_watts.as_ref(),
                stamp,
            ));
        }
    }
    Ok(out)
}

/// A coolant connector's readings: supply and return temperature, flow and heat removed always
/// (absent when not reported), ΔT and pressures where the service reports them.
fn connector(
    src: &SourceMeta,
    resource: &str,
    point: &str,
    c: &model::CoolantConnector,
    stamp: Stamp,
    out: &mut Vec<Extracted>,
) {
    // (quantity, property, excerpt, whether it is read even when the service does not report it)
    let props: [(Q, &str, Option<&Excerpt>, bool); 7] = [
        (
            Q::SupplyTempC,
            "SupplyTemperatureCelsius",
            c.supply_temperature_celsius.as_ref(),
            true,
        ),
        (
            Q::ReturnTempC,
            "ReturnTemperatureCelsius",
            c.return_temperature_celsius.as_ref(),
            true,
        ),
        (
            Q::FlowLpm,
            "FlowLitersPerMinute",
            c.flow_liters_per_minute.as_ref(),
            true,
        ),
        (
            Q::HeatRemovedKw,
            "HeatRemovedkW",
            c.heat_removed_kw.as_ref(),
            true,
        ),
        (
            Q::DeltaTK,
            "DeltaTemperatureCelsius",
            c.delta_temperature_celsius.as_ref(),
            false,
        ),
        (
            Q::SupplyPressureKpa,
            "SupplyPressurekPa",
            c.supply_pressure_kpa.as_ref(),
            false,
        ),
        (
            Q::ReturnPressureKpa,
            "ReturnPressurekPa",
            c.return_pressure_kpa.as_ref(),
            false,
        ),
    ];
    for (q, p, e, always) in props {
        if always || e.is_some() {
            out.push(reading(src, resource, point, q, p, e, stamp));
        }
    }
    // The coolant the connector states, for ρ · c_p · flow · ΔT.
    if let Some(coolant) = &c.coolant {
        let props = [
            (
                Q::CoolantDensityKgM3,
                "Coolant/DensityKgPerCubicMeter",
                &coolant.density_kg_per_cubic_meter,
            ),
            (
                Q::CoolantSpecificHeatKjKgK,
                "Coolant/SpecificHeatkJoulesPerKgK",
                &coolant.specific_heat_kj_per_kg_k,
            ),
        ];
        for (q, property, num) in props {
            let raw = Raw::from_num(num);
            if raw == Raw::Absent {
                continue;
            }
            let mut r = blank(src, point, q, format!("{resource}#/{property}"), stamp);
            (r.value, r.note) = value(raw, q, property);
            out.push(Extracted {
                reading: r,
                sensor: None,
            });
        }
    }
}

/// Sets the device's reading time from the Sensor `info` read for `r`, refuses the reading when
/// that time is further than `max_age_s` from `now_ns` (the caller's clock, ns since the UNIX
/// epoch), and notes the Sensor's stated accuracy.
pub fn apply_sensor(
    r: &mut FacilityReading,
    info: &SensorInfo,
    now_ns: i64,
    max_age_s: Option<f64>,
) {
    if r.value.is_none() {
        if let (Some(v), Some(n)) = (info.reading, &r.note) {
            // The excerpt had no number but the Sensor has: take it, checked like the excerpt.
            if n.contains("absent") {
                (r.value, r.note) = value(Raw::Number(v), r.quantity, "Sensor Reading");
            }
        }
    }
    let Some(t) = &info.reading_time else {
        accuracy_note(r, info);
        return;
    };
    let Some((device_ns, age_s)) = age_seconds_ns(t, now_ns) else {
        r.note = note(format!(
            "Sensor ReadingTime {t:?} is no RFC 3339 time; reading kept without it"
        ));
        return;
    };
    r.device_time_ns = Some(device_ns);
    match max_age_s {
        Some(max) if age_s.abs() > max && r.value.is_some() => {
            let when = if age_s > 0.0 { "old" } else { "ahead" };
            r.value = None;
            r.note = note(format!(
                "stale: Sensor ReadingTime {t} is {:.0} s {when} (> {max:.0} s); meter not updating or its clock is wrong",
                age_s.abs()
            ));
        }
        _ => accuracy_note(r, info),
    }
}

fn accuracy_note(r: &mut FacilityReading, info: &SensorInfo) {
    if let (Some(a), Some(_), None) = (info.accuracy_pct, r.value, &r.note) {
        r.note = note(format!("accuracy ±{a} % (Sensor)"));
    }
}

/// A CDU's total heat removed: the sum over its secondary (rack-side) connectors, else its
/// primary ones; absent when any of them has no reading.
pub fn cdu_total(
    src: &SourceMeta,
    cdu_uri: &str,
    readings: &[FacilityReading],
    stamp: Stamp,
) -> FacilityReading {
    let side = |s: &str| -> Vec<&FacilityReading> {
        readings
            .iter()
            .filter(|r| {
                r.quantity == Q::HeatRemovedKw
                    && (r.point == s || r.point.starts_with(&format!("{s}/")))
            })
            .collect()
    };
    let (name, parts) = match side("secondary") {
        v if !v.is_empty() => ("secondary", v),
        _ => ("primary", side("primary")),
    };
    let mut r = blank(
        src,
        "",
        Q::HeatRemovedKw,
        format!("{cdu_uri}#/{name}CoolantConnectors"),
        stamp,
    );
    if parts.is_empty() {
        r.note = note("no coolant connector reports HeatRemovedkW".into());
        return r;
    }
    if let Some(missing) = parts.iter().find(|p| p.value.is_none()) {
        r.note = note(format!(
            "total of {} {name} connectors: {} has no reading",
            parts.len(),
            missing.point
        ));
        return r;
    }
    r.value = Some(parts.iter().filter_map(|p| p.value).sum());
    r.device_time_ns = parts.iter().filter_map(|p| p.device_time_ns).min();
    r
}

/// The quantities a failed poll of a source of `kind` reports as absent (its headline readings).
pub fn headline(kind: SourceKind) -> &'static [Q] {
    match kind {
        SourceKind::Pdu => &[Q::PowerW, Q::EnergyKwh],
        SourceKind::Cdu => &[Q::HeatRemovedKw],
        SourceKind::Chassis => &[Q::PowerW],
    }
}

/// The readings of a poll that failed: the source's headline quantities, absent, with `why`.
pub fn failed(src: &SourceMeta, uri: &str, why: &str, stamp: Stamp) -> Vec<FacilityReading> {
    headline(src.kind)
        .iter()
        .map(|&q| {
            let mut r = blank(src, "", q, uri.to_string(), stamp);
            r.note = note(format!("{}: {why}", src.name));
            r
        })
        .collect()
}
