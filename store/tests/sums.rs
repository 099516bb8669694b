//! Sums of floating-point results read the same on both backends: a node's GFLOP/s are added by the
//! store in device order, not by SQL's `sum` (SQLite's compensates rounding, PostgreSQL's does not),
//! so results whose sum depends on rounding give the same bits from SQLite and from PostgreSQL.

#[path = "../../results/tests/common/mod.rs"]
mod run;

use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{DeviceResult, PhaseReport, Workload};
use hallmark_store::testing::stores::stores;
use hallmark_store::PhaseRow;
use run::{new_run, node, probe_row, MS, T0};

#[test]
fn a_nodes_gflops_are_summed_in_device_order_on_both_backends() {
    // 1e16 + 1 rounds back to 1e16, so the sum in device order is 0; a compensated sum gives 1.
    let gflops = [1e16, 1.0, -1e16];
    let in_order = gflops.iter().fold(0.0f64, |sum, g| sum + g);
    let mut backends = Vec::new();
    for mut s in stores("sums") {
        let store = &mut s.store;
        let run = store.create_run(&new_run()).unwrap();
        let n = node("n1");
        store
            .add_probe(&run, &probe_row("n1", "h", "r1", "k1"))
            .unwrap();
        let phase = PhaseRow {
            phase_id: 1,
            name: "burn".into(),
            workload: Workload::Burn,
            pattern: Pattern::Steady { level: 1.0 },
            scheduled_start_ns: T0,
            duration_ms: 1000,
        };
        store.add_phase(&run, &phase).unwrap();
        let devices = (0u16..)
            .zip(gflops)
            .map(|(device, g)| DeviceResult {
                device,
                gflops: Some(g),
                mem_bandwidth_gbps: None,
                wrong_elements: 0,
            })
            .collect();
        let report = PhaseReport {
            phase_id: 1,
            ended_at_ns: T0 + 1000 * MS,
            stopped_early: None,
            devices,
            fabric: None,
        };
        store.phase_report(&run, &n, &report).unwrap();
        let read = store.phase_reports(run.as_str()).unwrap();
        assert_eq!(read.len(), 1, "{}", s.backend);
        let sum = read[0].gflops.expect("a sum");
        assert_eq!(sum.to_bits(), in_order.to_bits(), "{}: {sum}", s.backend);
        backends.push(s.backend);
    }
    assert!(!backends.is_empty());
}
