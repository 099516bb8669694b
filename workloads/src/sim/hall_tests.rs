//! Tests of hall files: the built-in and example halls, naming, the 100 kW arithmetic, determinism
//! and the errors a malformed file gets.

use super::hall::{parse_hall, HallError, HallSpec};
use super::node::SimBackend;
use crate::backend::Backend;
use hallmark_protocol::NodeId;

const DEMO: &str = include_str!("../../../examples/hall-demo.toml");
const SMALL: &str = include_str!("../../../examples/hall-small.toml");

const MINIMAL: &str =
    "name = \"h\"\nseed = 1\nrows = 1\nracks_per_row = 2\nnodes_per_rack = 2\ngpus_per_node = 4\n";

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn err(text: &str) -> HallError {
    match parse_hall(text, "bad.toml") {
        Ok(spec) => panic!("accepted: {spec:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_demo_file_is_the_builtin_hall() {
    assert_eq!(
        parse_hall(DEMO, "hall-demo.toml").unwrap(),
        HallSpec::demo()
    );
}

#[test]
fn the_small_file_parses() {
    let h = parse_hall(SMALL, "hall-small.toml").unwrap();
    assert_eq!(
        (h.rows, h.racks_per_row, h.nodes_per_rack, h.gpus_per_node),
        (1, 2, 2, 8)
    );
    assert_eq!(h.nodes().len(), 4);
    assert_eq!(h.faults.weak_cold_plates.len(), 1);
    let spec = h.node_spec(&id("row1-rack02-n01")).unwrap();
    assert_eq!(spec.cold_plate_factors, vec![(5, 1.5)]);
    assert_eq!(h.rack("row1-rack01").unwrap().coolant.capacity_kw, 40.0);
}

#[test]
fn nodes_and_racks_are_named_predictably() {
    let h = HallSpec::demo();
    let nodes = h.nodes();
    assert_eq!(nodes.len(), 80);
    assert_eq!(nodes[0].node_id.as_str(), "row1-rack01-n01");
    assert_eq!(nodes[79].node_id.as_str(), "row2-rack04-n10");
    let n = h.node("row2-rack03-n07").unwrap();
    assert_eq!((n.row, n.rack, n.index), (2, 3, 7));
    assert_eq!(n.labels.hall, "demo-hall");
    assert_eq!(n.labels.row, "row2");
    assert_eq!(n.labels.rack, "row2-rack03");
    for bad in [
        "row3-rack01-n01",
        "row1-rack05-n01",
        "row1-rack01-n11",
        "row1-rack1-n01",
        "x",
        "",
    ] {
        assert!(h.node(bad).is_none(), "{bad}");
    }
    let racks = h.racks();
    assert_eq!(racks.len(), 8);
    for r in &racks {
        let expected = if r.name == "row2-rack03" { 75.0 } else { 120.0 };
        assert_eq!(r.coolant.capacity_kw, expected, "{}", r.name);
    }
    assert!(h.backend_scaled(&id("row9-rack01-n01")).is_err());
}

#[test]
fn a_demo_rack_draws_about_100_kw_at_full_load() {
    let h = HallSpec::demo();
    for r in h.racks() {
        let kw = h.rack_full_load_w(&r.name).unwrap() / 1000.0;
        assert!((90.0..=110.0).contains(&kw), "{}: {kw} kW", r.name);
        assert!(kw < r.coolant.capacity_kw || r.name == "row2-rack03");
    }
    // And the simulation agrees: one node at full load, times ten.
    let mut b = h.backend_scaled(&id("row1-rack02-n04")).unwrap();
    for d in 0..8 {
        b.set_level(d, 1.0).unwrap();
    }
    let node_w = b.sample(0).unwrap().node_power_w.unwrap();
    assert!(
        (90.0..=110.0).contains(&(node_w * 10.0 / 1000.0)),
        "{node_w}"
    );
}

#[test]
fn same_file_and_seed_give_the_same_devices() {
    let a = HallSpec::demo();
    let mut b = HallSpec::demo();
    let node = id("row1-rack01-n03");
    let params = |h: &HallSpec| -> Vec<_> {
        let spec = h.node_spec(&node).unwrap();
        (0..8).map(|d| spec.device_params(d)).collect()
    };
    assert_eq!(params(&a), params(&b));
    assert_eq!(a.inventory(&node), b.inventory(&node));
    let spec = a.node_spec(&node).unwrap();
    for p in params(&a) {
        let r = p.resistance_k_per_w / spec.gpu.cold_plate_resistance_k_per_w;
        assert!((0.9..=1.1).contains(&r), "{r}");
        assert!((0.97..=1.03).contains(&p.efficiency), "{}", p.efficiency);
    }
    b.seed = 43;
    assert_ne!(params(&a), params(&b));
}

#[test]
fn every_node_gets_a_backend_on_its_racks_shared_loop() {
    let h = parse_hall(SMALL, "hall-small.toml").unwrap();
    let (loops, mut backends) = h.backends().unwrap();
    assert_eq!(loops.len(), 2);
    assert_eq!(backends.len(), 4);
    let (node, b) = &mut backends[0];
    assert_eq!(node.node_id.as_str(), "row1-rack01-n01");
    for d in 0..8 {
        b.set_level(d, 1.0).unwrap();
    }
    b.sample(0).unwrap();
    b.sample(1_000_000_000).unwrap();
    let busy = b.node_power_w();
    let other: &SimBackend = &backends[1].1;
    let idle = other.node_power_w();
    assert!((other.rack_heat_w() - (busy + idle)).abs() < 1.0);
    assert!((backends[2].1.rack_heat_w() - 2.0 * idle).abs() < 1.0);
}

#[test]
fn defaults_fill_in_missing_sections() {
    let h = parse_hall(MINIMAL, "m.toml").unwrap();
    assert_eq!(h.gpu, HallSpec::demo().gpu);
    assert_eq!(h.coolant, HallSpec::demo().coolant);
    assert!(h.faults.slow_links.is_empty());
}

#[test]
fn faults_take_one_table_or_many() {
    let one = format!(
        "{MINIMAL}[faults]\nslow_link = {{ node = \"row1-rack01-n02\", extra_latency_us = 250 }}\n"
    );
    let h = parse_hall(&one, "one.toml").unwrap();
    assert_eq!(h.slow_link_us(&id("row1-rack01-n02")), Some(250));
    assert_eq!(h.slow_link_us(&id("row1-rack01-n01")), None);
    let many = format!(
        "{MINIMAL}[[faults.slow_link]]\nnode = \"row1-rack01-n02\"\nextra_latency_us = 250\n\
         [[faults.slow_link]]\nnode = \"row1-rack02-n01\"\nextra_latency_us = 9\n\
         [[coolant.rack]]\nname = \"row1-rack02\"\nsetpoint_c = 35\n"
    );
    let h = parse_hall(&many, "many.toml").unwrap();
    assert_eq!(h.faults.slow_links.len(), 2);
    let r = h.rack("row1-rack02").unwrap();
    assert_eq!((r.coolant.setpoint_c, r.coolant.capacity_kw), (35.0, 120.0));
}

/// (file, line, column, key, words the message must hold)
fn check(text: &str, line: usize, column: usize, key: &str, words: &[&str]) {
    let e = err(text);
    let shown = e.to_string();
    assert_eq!(
        (e.line(), e.column()),
        (Some(line), Some(column)),
        "{shown}"
    );
    assert_eq!(e.key(), Some(key), "{shown}");
    assert!(
        shown.starts_with(&format!("bad.toml:{line}:{column}: ")),
        "{shown}"
    );
    for w in words {
        assert!(shown.contains(w), "{w:?} missing from: {shown}");
    }
}

#[test]
fn malformed_files_are_reported_with_line_column_and_key() {
    // Unknown key: named, with the keys allowed there.
    check(
        &format!("{MINIMAL}[gpu]\npower_limit = 700\n"),
        8,
        1,
        "gpu.power_limit",
        &["unknown field `power_limit`", "power_limit_w"],
    );
    check(
        &format!("{MINIMAL}colour = \"red\"\n"),
        7,
        1,
        "colour",
        &["unknown field `colour`", "nodes_per_rack"],
    );
    // Wrong type.
    check(
        &format!("{MINIMAL}[gpu]\npower_limit_w = \"lots\"\n"),
        8,
        17,
        "gpu.power_limit_w",
        &["`gpu.power_limit_w`", "invalid type", "string"],
    );
    check(
        "name = \"h\"\nseed = 1\nrows = 1.5\n",
        3,
        8,
        "rows",
        &["`rows`", "u16"],
    );
    // Out of range.
    check(
        &format!("{MINIMAL}[gpu]\npower_limit_w = 5000\n"),
        8,
        17,
        "gpu.power_limit_w",
        &["5000", "out of range", "50 to 3000 W"],
    );
    check(
        &format!("{MINIMAL}[node]\npsu_efficiency = 1.2\n"),
        8,
        18,
        "node.psu_efficiency",
        &["0.5 to 1"],
    );
    check(
        &format!("{MINIMAL}[coolant]\ncapacity_kw = nan\n"),
        8,
        15,
        "coolant.capacity_kw",
        &["out of range"],
    );
    check(
        &MINIMAL.replace("rows = 1", "rows = 0"),
        3,
        8,
        "rows",
        &["allowed 1 to 99"],
    );
    check(
        &MINIMAL.replace("seed = 1", "seed = -1"),
        2,
        8,
        "seed",
        &["`seed`", "u64"],
    );
    // Missing field.
    let e = err(&MINIMAL.replace("gpus_per_node = 4\n", ""));
    assert_eq!(e.key(), Some("gpus_per_node"), "{e}");
    assert!(
        e.to_string().contains("missing field `gpus_per_node`"),
        "{e}"
    );
    assert!(e.line().is_some() && e.column().is_some());
    let e = err(&format!(
        "{MINIMAL}[[faults.weak_cold_plate]]\nnode = \"row1-rack01-n01\"\ndevice = 1\n"
    ));
    assert_eq!(e.key(), Some("faults.weak_cold_plate.factor"), "{e}");
    // Bad references and relations.
    check(
        &format!(
            "{MINIMAL}[[faults.undersized_cooling]]\nrack = \"row1-rack03\"\ncapacity_kw = 10\n"
        ),
        8,
        8,
        "faults.undersized_cooling.rack",
        &["not a rack", "row1-rack01 to row1-rack02"],
    );
    check(&format!("{MINIMAL}[[faults.weak_cold_plate]]\nnode = \"row1-rack01-n01\"\ndevice = 4\nfactor = 2\n"), 9, 10, "faults.weak_cold_plate.device", &["allowed 0 to 3"]);
    check(
        &format!("{MINIMAL}[faults]\nslow_link = {{ node = \"n1\", extra_latency_us = 5 }}\n"),
        8,
        22,
        "faults.slow_link.node",
        &["not a node", "row1-rack01-n01 to row1-rack02-n02"],
    );
    check(&format!("{MINIMAL}[faults]\nslow_link = {{ node = \"row1-rack01-n01\", extra_latency_us = \"x\" }}\n"), 8, 60, "faults.slow_link.extra_latency_us", &["invalid type"]);
    check(
        &format!("{MINIMAL}[gpu]\nidle_power_w = 900\npower_limit_w = 800\n"),
        8,
        16,
        "gpu.idle_power_w",
        &["below `gpu.power_limit_w`"],
    );
    check(
        &format!("{MINIMAL}[gpu]\nslowdown_temp_c = 95\n"),
        8,
        19,
        "gpu.shutdown_temp_c",
        &["above `gpu.slowdown_temp_c`"],
    );
    // Not TOML at all.
    let e = err("name = \"h\nseed = 1\n");
    assert_eq!(e.line(), Some(1), "{e}");
    // The excerpt shows the line and marks the value.
    let shown = err(&format!("{MINIMAL}[gpu]\npower_limit_w = 5000\n")).to_string();
    assert!(
        shown.contains("8 | power_limit_w = 5000") && shown.contains("^^^^"),
        "{shown}"
    );
}

#[test]
fn facility_faults_and_flows_reach_the_racks() {
    let text = format!(
        "{MINIMAL}[coolant]\ncapture_fraction = 0.8\nflow_lpm = 100\n\
         [[coolant.rack]]\nname = \"row1-rack02\"\nflow_lpm = 250\n\
         [faults]\npdu_reads_low = {{ rack = \"row1-rack01\", factor = 0.8 }}\n\
         cdu_low_flow = [{{ rack = \"row1-rack02\", fraction = 0.4 }}]\n"
    );
    let h = parse_hall(&text, "f.toml").unwrap();
    assert_eq!(h.pdu_factor("row1-rack01"), 0.8);
    assert_eq!(h.pdu_factor("row1-rack02"), 1.0);
    let (r1, r2) = (
        h.rack("row1-rack01").unwrap(),
        h.rack("row1-rack02").unwrap(),
    );
    assert_eq!(r1.coolant.capture_fraction, 0.8);
    assert_eq!(
        (r1.coolant.flow_lpm(), r1.coolant.flow_fraction),
        (100.0, 1.0)
    );
    assert_eq!(r2.coolant.nominal_flow_lpm(), 250.0);
    assert!((r2.coolant.flow_lpm() - 100.0).abs() < 1e-9);
    // Without a stated flow it is sized for a 10 K rise at capacity (0.9 · 120 kW of water).
    let d = parse_hall(MINIMAL, "m.toml").unwrap();
    let flow = d.rack("row1-rack01").unwrap().coolant.flow_lpm();
    assert!((flow - 155.49).abs() < 0.01, "{flow}");
    // The loops carry it: a rack at 100 kW with 40 % flow shows 2.5 × the ΔT.
    let loops = h.coolant_loops();
    let dt = |rack: &str, capture: f64, flow: f64| {
        let l = &loops[rack];
        let slot = l.lock().unwrap().add_node(100_000.0);
        let f = super::coolant::shared_figures(l);
        l.lock().unwrap().report_heat(slot, 0.0);
        let expected = capture * 100.0 / (997.0 * 4.18 * flow / 60_000.0);
        assert!((f.return_c - f.supply_c - expected).abs() < 1e-9, "{f:?}");
        f.return_c - f.supply_c
    };
    dt("row1-rack01", 0.8, 100.0);
    dt("row1-rack02", 0.8, 0.4 * 250.0);
}

#[test]
fn bad_facility_faults_are_reported_with_line_column_and_key() {
    check(
        &format!("{MINIMAL}[faults]\npdu_reads_low = {{ rack = \"row1-rack01\", factor = 1.2 }}\n"),
        8,
        50,
        "faults.pdu_reads_low.factor",
        &["1.2", "out of range", "0.05 to 0.99"],
    );
    check(
        &format!("{MINIMAL}[faults]\npdu_reads_low = {{ rack = \"row9-rack01\", factor = 0.8 }}\n"),
        8,
        26,
        "faults.pdu_reads_low.rack",
        &["not a rack", "row1-rack01 to row1-rack02"],
    );
    check(
        &format!("{MINIMAL}[[faults.cdu_low_flow]]\nrack = \"row1-rack02\"\nfraction = 0\n"),
        9,
        12,
        "faults.cdu_low_flow.fraction",
        &["out of range", "0.05 to 0.95"],
    );
    check(
        &format!(
            "{MINIMAL}[[faults.cdu_low_flow]]\nrack = \"row1-rack02\"\nfraction = 0.5\n\
             [[faults.cdu_low_flow]]\nrack = \"row1-rack02\"\nfraction = 0.3\n"
        ),
        11,
        8,
        "faults.cdu_low_flow.rack",
        &["more than one cdu_low_flow"],
    );
    check(
        &format!("{MINIMAL}[faults]\ncdu_low_flow = {{ rack = \"row1-rack01\", flow = 0.4 }}\n"),
        8,
        40,
        "faults.cdu_low_flow.flow",
        &["unknown field `flow`", "fraction"],
    );
    check(
        &format!("{MINIMAL}[coolant]\nflow_lpm = -3\n"),
        8,
        12,
        "coolant.flow_lpm",
        &["out of range", "1 to 20000 L/min"],
    );
    check(
        &format!("{MINIMAL}[[coolant.rack]]\nname = \"row1-rack01\"\nflow_lpm = 0\n"),
        9,
        12,
        "coolant.rack.flow_lpm",
        &["out of range"],
    );
    check(
        &format!("{MINIMAL}[coolant]\ncapture_fraction = 0.2\n"),
        8,
        20,
        "coolant.capture_fraction",
        &["0.5 to 1"],
    );
}
