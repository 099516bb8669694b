//! The facility figures and balances on synthetic readings of a simulated rack: 10 nodes of 10 kW
//! (100 kW GPU-side), a PDU and a CDU polled every second, a run of 60 s sampled at 10 Hz with
//! load from 10 s to 50 s.

use std::collections::BTreeMap;

use super::*;
use crate::verdict::Status;
use hallmark_protocol::facility::{FacilityQuantity as Q, SourceKind, Subject};

pub(crate) const S: i64 = 1_000_000_000;

/// What the synthetic hall gets wrong.
#[derive(Clone, Copy, Default)]
pub(crate) struct Faults {
    /// The PDU reads this fraction of the true power (1.0 when 0).
    pub pdu_scale: f64,
    /// The CDU's flow is this fraction of the healthy flow (ΔT rises by its inverse).
    pub flow_scale: f64,
    /// The PDU's last reading with a value, s (none after).
    pub pdu_stops_s: Option<i64>,
    pub no_pdu: bool,
    pub no_cdu: bool,
}

pub(crate) fn reading(
    source: &str,
    kind: SourceKind,
    subject: Subject,
    point: &str,
    q: Q,
    t: i64,
    v: Option<f64>,
) -> FacilityReading {
    FacilityReading {
        source: source.into(),
        kind,
        subject,
        point: point.into(),
        quantity: q,
        uri: format!("http://127.0.0.1/redfish/{source}"),
        t_ns: t,
        value: v,
        device_time_ns: None,
        latency_us: Some(800),
        note: v.is_none().then(|| "timed out".to_string()),
    }
}

/// The rack's true power at `t`, kW: 20 kW idle, 100 kW under load (10 s to 50 s).
pub(crate) fn rack_kw(t: i64) -> f64 {
    if (10 * S..50 * S).contains(&t) {
        100.0
    } else {
        20.0
    }
}

/// Readings of rack `rack` over 60 s, one poll per second (offset by 0.3 s).
pub(crate) fn readings(rack: &str, faults: Faults) -> Vec<FacilityReading> {
    let subject = Subject::Rack(rack.into());
    let pdu_scale = if faults.pdu_scale == 0.0 {
        1.0
    } else {
        faults.pdu_scale
    };
    let flow_scale = if faults.flow_scale == 0.0 {
        1.0
    } else {
        faults.flow_scale
    };
    let c = Coolant::PG25;
    let mut out = Vec::new();
    for k in 0..60 {
        let t = k * S + 300_000_000;
        let kw = rack_kw(t);
        if !faults.no_pdu {
            let v = (faults.pdu_stops_s.is_none_or(|s| k <= s)).then_some(kw * 1000.0 * pdu_scale);
            if faults.pdu_stops_s.is_none_or(|s| k <= s + 3) {
                out.push(reading(
                    &format!("pdu-{rack}"),
                    SourceKind::Pdu,
                    subject.clone(),
                    "",
                    Q::PowerW,
                    t,
                    v,
                ));
            }
        }
        if !faults.no_cdu {
            // All of the rack's power goes into the loop: ΔT = heat ÷ (ρ c_p flow).
            let flow = 120.0 * flow_scale;
            let dt = kw / c.heat_kw(flow, 1.0);
            let cdu = format!("cdu-{rack}");
            for (q, v) in [
                (Q::SupplyTempC, 30.0),
                (Q::ReturnTempC, 30.0 + dt),
                (Q::FlowLpm, flow),
                (Q::HeatRemovedKw, kw),
            ] {
                out.push(reading(
                    &cdu,
                    SourceKind::Cdu,
                    subject.clone(),
                    "secondary",
                    q,
                    t,
                    Some(v),
                ));
            }
        }
    }
    out
}

pub(crate) fn frame() -> Frame {
    Frame::new(0, 10.0, vec![(10 * S, 50 * S)])
}

/// The GPU-side rack power per bin (10 Hz, 60 s), kW: the true power (the probes' node power).
pub(crate) fn gpu_kw() -> BTreeMap<i64, f64> {
    (0..600).map(|b| (b, rack_kw(b * S / 10))).collect()
}

fn summary(faults: Faults) -> RackFacility {
    let input = RackInput {
        hall: "h".into(),
        row: "row1".into(),
        rack: "r1".into(),
        nodes: (1..=10).map(|n| format!("r1-n{n:02}")).collect(),
        gpu_kw: gpu_kw(),
    };
    let s = facility_summary(&frame(), &readings("r1", faults), vec![input]);
    s.racks.into_iter().next().unwrap()
}

#[test]
fn a_healthy_rack_balances_and_its_pdu_figures_match_the_gpu_side() {
    let r = summary(Faults::default());
    assert!((r.pdu_peak_kw.unwrap() - 100.0).abs() < 1e-9, "{r:?}");
    assert!((r.pdu_sustained_kw.unwrap() - 100.0).abs() < 1e-9);
    assert_eq!(r.pdu_sustained_window_s, 10.0);
    assert!((r.cdu_heat_removed_kw.unwrap() - 100.0).abs() < 1e-9);
    assert_eq!(r.energy.status, Status::Pass, "{}", r.energy.detail);
    assert_eq!(r.heat.status, Status::Pass, "{}", r.heat.detail);
    assert!(
        (r.heat.capture_ratio.unwrap() - 1.0).abs() < 0.03,
        "{:?}",
        r.heat
    );
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.supply_temp_max_c, Some(30.0));
    assert!(
        r.delta_t_max_k.unwrap() > 10.0 && r.delta_t_max_k.unwrap() < 14.0,
        "{:?}",
        r.delta_t_max_k
    );
}

#[test]
fn a_pdu_reading_low_fails_the_energy_balance() {
    let r = summary(Faults {
        pdu_scale: 0.8,
        ..Faults::default()
    });
    assert_eq!(r.energy.status, Status::Fail, "{}", r.energy.detail);
    let ratio = r.energy.worst_ratio.unwrap();
    assert!(ratio > 1.2 && ratio < 1.3, "{ratio}");
    assert!(r.energy.detail.contains("exceeds"), "{}", r.energy.detail);
    // The heat removed now exceeds the PDU's power: capture above the range.
    assert_eq!(r.heat.status, Status::Fail, "{}", r.heat.detail);
}

#[test]
fn low_flow_raises_delta_t_and_keeps_the_heat_balanced() {
    let healthy = summary(Faults::default());
    let low = summary(Faults {
        flow_scale: 0.4,
        ..Faults::default()
    });
    let ratio = low.delta_t_max_k.unwrap() / healthy.delta_t_max_k.unwrap();
    assert!((ratio - 2.5).abs() < 1e-9, "{ratio}");
    assert_eq!(low.heat.status, Status::Pass, "{}", low.heat.detail);
    assert_eq!(low.energy.status, Status::Pass);
}

#[test]
fn a_missing_source_is_incomplete_and_absent_is_null() {
    let r = summary(Faults {
        no_pdu: true,
        ..Faults::default()
    });
    assert_eq!(r.pdu_peak_kw, None);
    assert_eq!(r.pdu_sustained_kw, None);
    assert_eq!(r.energy.status, Status::Incomplete);
    assert_eq!(r.energy.pdu_kw, None);
    assert!(
        r.energy.detail.contains("no PDU source"),
        "{}",
        r.energy.detail
    );
    let r = summary(Faults {
        no_cdu: true,
        ..Faults::default()
    });
    assert_eq!(r.cdu_heat_removed_kw, None);
    assert_eq!(r.supply_temp_max_c, None);
    assert_eq!(r.heat.status, Status::Incomplete, "{}", r.heat.detail);
    assert_eq!(r.heat.difference, None);
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["cdu_heat_removed_kw"].is_null(), "{json}");
}

#[test]
fn a_stale_pdu_is_incomplete_not_pass() {
    // The PDU answers without a value from 30 s on: its figure stops, and the balance over the
    // load window cannot pass.
    let r = summary(Faults {
        pdu_stops_s: Some(30),
        ..Faults::default()
    });
    assert_eq!(r.energy.status, Status::Incomplete, "{}", r.energy.detail);
    assert!(r.energy.detail.contains("stale"), "{}", r.energy.detail);
    assert!(!r.problems.is_empty());
    // Its readings stopped: bins after the hold have no PDU figure (absent, not 0).
    assert!(r.pdu_peak_kw.is_some());
}

#[test]
fn the_demo_spec_passes_a_healthy_simulated_rack_and_fails_both_faults() {
    use crate::spec::CriterionKind;
    let spec = crate::demo_spec();
    let kind = |id: &str| {
        spec.criteria
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("the demo spec has no {id}"))
            .kind
            .clone()
    };
    let CriterionKind::EnergyBalance { tolerance } = kind("energy-balance") else {
        panic!("energy-balance")
    };
    let CriterionKind::CoolantDeltaT { max_k, .. } = kind("coolant-delta-t") else {
        panic!("coolant-delta-t")
    };
    let CriterionKind::HeatBalance {
        tolerance: heat,
        capture_min,
        capture_max,
        coolant,
    } = kind("heat-balance")
    else {
        panic!("heat-balance")
    };
    let CriterionKind::CoolantSupplyTemperature { max_c, .. } = kind("coolant-supply") else {
        panic!("coolant-supply")
    };
    let tol = Tolerances {
        energy: tolerance,
        heat,
        capture_min,
        capture_max,
    };
    let f = frame();
    let data = |faults: Faults| {
        let nodes: Vec<String> = (1..=10).map(|n| format!("r1-n{n:02}")).collect();
        let sources = RackSources::new(&readings("r1", faults), "r1", &nodes);
        RackData::new(&f, sources, gpu_kw(), coolant)
    };
    let healthy = data(Faults::default());
    assert_eq!(
        balance::energy(&f, &healthy, &f.load, tol.energy).status,
        Status::Pass
    );
    assert_eq!(
        balance::heat(&f, &healthy, &f.load, &tol).status,
        Status::Pass
    );
    assert!(max_in(&f, &healthy.delta_t_k, &f.load).unwrap() <= max_k);
    assert!(max_in(&f, &healthy.supply_c, &f.load).unwrap() <= max_c);

    let pdu_low = data(Faults {
        pdu_scale: 0.8,
        ..Faults::default()
    });
    let e = balance::energy(&f, &pdu_low, &f.load, tol.energy);
    assert_eq!(e.status, Status::Fail, "{}", e.detail);
    assert!(e.pdu_kw.unwrap() < e.gpu_kw.unwrap());

    let low_flow = data(Faults {
        flow_scale: 0.4,
        ..Faults::default()
    });
    assert!(max_in(&f, &low_flow.delta_t_k, &f.load).unwrap() > max_k);
}

/// Chassis (BMC) readings of the rack's 10 nodes, each `scale` × a tenth of the rack's power.
fn chassis(scale: f64, nodes: usize) -> Vec<FacilityReading> {
    let mut out = Vec::new();
    for k in 0..60 {
        let t = k * S + 500_000_000;
        for n in 1..=nodes {
            let node = format!("r1-n{n:02}");
            out.push(reading(
                &format!("bmc-{node}"),
                SourceKind::Chassis,
                Subject::Node(node),
                "",
                Q::PowerW,
                t,
                Some(rack_kw(t) * 100.0 * scale),
            ));
        }
    }
    out
}

fn summary_with(extra: Vec<FacilityReading>) -> RackFacility {
    let input = RackInput {
        hall: "h".into(),
        row: "row1".into(),
        rack: "r1".into(),
        nodes: (1..=10).map(|n| format!("r1-n{n:02}")).collect(),
        gpu_kw: gpu_kw(),
    };
    let mut rs = readings("r1", Faults::default());
    rs.extend(extra);
    let s = facility_summary(&frame(), &rs, vec![input]);
    s.racks.into_iter().next().unwrap()
}

#[test]
fn the_chassis_level_sits_between_gpu_side_and_pdu_when_every_node_has_one() {
    let r = summary_with(chassis(1.0, 10));
    assert_eq!(r.chassis_nodes, 10);
    // Polled 0.2 s after the PDU: the held figures differ only around the load steps.
    let (c, p) = (r.energy.chassis_kw.unwrap(), r.energy.pdu_kw.unwrap());
    assert!((c - p).abs() < 0.01 * p, "{c} {p}");
    assert_eq!(r.energy.status, Status::Pass, "{}", r.energy.detail);
    // BMCs that read 10 % above the PDU: chassis ÷ PDU fails.
    let r = summary_with(chassis(1.1, 10));
    assert_eq!(r.energy.status, Status::Fail, "{}", r.energy.detail);
    assert!((r.energy.chassis_over_pdu.unwrap() - 1.1).abs() < 0.01);
    // Chassis sources for 7 of 10 nodes: the chassis level is left out, and the detail says so.
    let r = summary_with(chassis(1.1, 7));
    assert_eq!(r.energy.chassis_kw, None);
    assert_eq!(r.energy.status, Status::Pass, "{}", r.energy.detail);
    assert!(
        r.energy.detail.contains("no chassis source for r1-n08"),
        "{}",
        r.energy.detail
    );
}

#[test]
fn a_load_faster_than_the_meters_is_not_balanced() {
    // A 0.5 s square wave GPU-side: no bin held steady for the PDU's 1 s interval.
    let input = RackInput {
        hall: "h".into(),
        row: "row1".into(),
        rack: "r1".into(),
        nodes: Vec::new(),
        gpu_kw: (0..600)
            .map(|b| (b, if (b / 5) % 2 == 0 { 100.0 } else { 20.0 }))
            .collect(),
    };
    let s = facility_summary(&frame(), &readings("r1", Faults::default()), vec![input]);
    let e = &s.racks[0].energy;
    assert_eq!(e.status, Status::Incomplete, "{}", e.detail);
    assert_eq!(e.worst_ratio, None);
    assert!(
        e.detail.contains("faster than the meters read"),
        "{}",
        e.detail
    );
}

/// A CDU that states its coolant has its loops computed with it, not with the assumed one: the
/// synthetic loop's ΔT is that of 25 % glycol, so a CDU stating water makes ρ·c_p·flow·ΔT come
/// out ≈ 4 % high (997 · 4.18 against 1020 · 3.93), and the detail names who stated it.
#[test]
fn a_cdus_stated_coolant_replaces_the_assumed_one() {
    let assumed = summary_with(Vec::new());
    let d = assumed.heat.difference.unwrap();
    assert!(d < 0.001, "{d}: {}", assumed.heat.detail);
    assert!(
        assumed.heat.detail.contains("assumed"),
        "{}",
        assumed.heat.detail
    );
    let stated: Vec<FacilityReading> = (0..60)
        .flat_map(|k| {
            let t = k * S + 300_000_000;
            [
                (Q::CoolantDensityKgM3, 997.0),
                (Q::CoolantSpecificHeatKjKgK, 4.18),
            ]
            .map(|(q, v)| {
                reading(
                    "cdu-r1",
                    SourceKind::Cdu,
                    Subject::Rack("r1".into()),
                    "secondary",
                    q,
                    t,
                    Some(v),
                )
            })
        })
        .collect();
    let water = summary_with(stated);
    let want = (997.0 * 4.18) / (1020.0 * 3.93) - 1.0;
    let got = water.heat.difference.unwrap();
    assert!(
        (got - want / (1.0 + want)).abs() < 0.002,
        "{got} vs {want}: {}",
        water.heat.detail
    );
    assert!(
        water.heat.detail.contains("as cdu-r1 states"),
        "{}",
        water.heat.detail
    );
}

/// A PDU that reports only its inlets (an SNMP profile's `inlet/1`, `inlet/2`) counts as their sum.
#[test]
fn a_pdu_reporting_only_its_inlets_counts_as_their_sum() {
    let whole = summary(Faults::default());
    let inlets: Vec<FacilityReading> = readings("r1", Faults::default())
        .into_iter()
        .flat_map(|r| {
            if r.kind != SourceKind::Pdu {
                return vec![r];
            }
            ["inlet/1", "inlet/2"]
                .map(|p| FacilityReading {
                    point: p.into(),
                    value: r.value.map(|v| v / 2.0),
                    ..r.clone()
                })
                .to_vec()
        })
        .collect();
    let input = RackInput {
        hall: "h".into(),
        row: "row1".into(),
        rack: "r1".into(),
        nodes: (1..=10).map(|n| format!("r1-n{n:02}")).collect(),
        gpu_kw: gpu_kw(),
    };
    let split = facility_summary(&frame(), &inlets, vec![input])
        .racks
        .into_iter()
        .next()
        .unwrap();
    assert!(whole.pdu_peak_kw.is_some());
    assert_eq!(split.pdu_peak_kw, whole.pdu_peak_kw);
    assert_eq!(split.pdu_sustained_kw, whole.pdu_sustained_kw);
}
