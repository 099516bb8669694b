//! `hallmark probe --facility FILE` as an operator uses it: a facility collector process beside a
//! coordinator (`run --listen`) and a node's probe process, reading a Redfish service on loopback
//! (the facility crate's `serve`, with fixed readings), its readings stored with the run on the
//! coordinator's clock; and a bad facility file refused before anything connects.

mod common;

use common::process::*;
use hallmark_facility::serve::{serve, CduState, ConnectorState, MeterBoard, PduState};
use hallmark_protocol::{FacilityQuantity, FacilitySubject, SourceKind};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const NODE: &str = "row1-rack01-n01";
const COLLECTOR: &str = "facility-1";

/// One rack's PDU at 6 400 W and its CDU.
struct Board;

impl MeterBoard for Board {
    fn pdus(&self, now: SystemTime) -> Vec<PduState> {
        vec![PduState {
            id: "row1-rack01".into(),
            rack: "row1-rack01".into(),
            power_w: Some(6400.0),
            energy_kwh: Some(12.5),
            accuracy_pct: Some(1.0),
            sensing_interval_s: 0.5,
            reading_time: now,
        }]
    }

    fn cdus(&self, now: SystemTime) -> Vec<CduState> {
        let side = |supply: f64| ConnectorState {
            supply_temp_c: Some(supply),
            return_temp_c: Some(supply + 5.0),
            flow_lpm: Some(20.0),
            heat_removed_kw: Some(997.0 * 4.18 * (20.0 / 60_000.0) * 5.0),
        };
        vec![CduState {
            id: "row1-rack01".into(),
            rack: "row1-rack01".into(),
            density_kg_per_m3: 997.0,
            specific_heat_kj_per_kg_k: 4.18,
            primary: side(25.0),
            secondary: side(30.0),
            accuracy_pct: None,
            sensing_interval_s: 0.5,
            reading_time: now,
        }]
    }
}

#[test]
fn a_bad_facility_file_is_refused_before_anything_connects() {
    let dir = tempdir("facility-bad");
    let cases = [
        (
            "[[redfish]]\nname = \"pdu\"\nurl = \"http://127.0.0.1:9\"\nresource = \"/redfish/v1/PowerEquipment/RackPDUs/1\"\nrack = \"r1\"\nbogus = 1\n",
            "facility.toml:6:1",
        ),
        (
            "[[snmp]]\nname = \"pdu\"\naddress = \"127.0.0.1:161\"\nprofile = \"no-such-pdu\"\nversion = \"2c\"\ncommunity_env = \"HALLMARK_TEST_COMMUNITY\"\nrack = \"r1\"\n",
            "no-such-pdu",
        ),
    ];
    for (text, want) in cases {
        let file = dir.join("facility.toml");
        std::fs::write(&file, text).unwrap();
        // The certificate files do not exist: the facility file is refused first.
        let out = hallmark()
            .args(["probe", "--coordinator", "127.0.0.1:9", "--ca", "none.pem"])
            .args([
                "--cert", "none.pem", "--key", "none.pem", "--node", COLLECTOR,
            ])
            .arg("--facility")
            .arg(&file)
            .env("HALLMARK_TEST_COMMUNITY", "public")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{want} not in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_process_stores_the_facilitys_readings_with_the_run() {
    let dir = tempdir("facility-run");
    init_certs(&dir, &[NODE, COLLECTOR]);
    std::fs::write(
        dir.join("plan.toml"),
        "name = \"short\"\n[expect]\nnodes = 1\n[[phase]]\nname = \"steady\"\nworkload = \"burn\"\n\
         duration_s = 6\npattern = { kind = \"steady\", level = 1.0 }\n",
    )
    .unwrap();
    let served = serve("127.0.0.1:0".parse().unwrap(), Arc::new(Board))
        .await
        .expect("the Redfish service");
    let facility = format!(
        "[defaults]\ninterval_s = 0.5\n\
         [[redfish]]\nname = \"pdu-r1\"\nurl = \"{u}\"\nresource = \"/redfish/v1/PowerEquipment/RackPDUs/row1-rack01\"\nrack = \"row1-rack01\"\n\
         [[redfish]]\nname = \"cdu-r1\"\nurl = \"{u}\"\nresource = \"/redfish/v1/ThermalEquipment/CDUs/row1-rack01\"\nrack = \"row1-rack01\"\n",
        u = served.base_url()
    );
    std::fs::write(dir.join("facility.toml"), facility).unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let cluster = Cluster {
        dir: dir.clone(),
        addr: common::free_udp_port(),
    };
    let mut coordinator = Killed(
        cluster
            .run_listen("plan.toml")
            .arg("--json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _collector = Killed(
        cluster
            .probe(COLLECTOR, COLLECTOR)
            .arg("--facility")
            .arg(dir.join("facility.toml"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _probe = Killed(
        cluster
            .probe(NODE, NODE)
            .args(["--sim-hall", hall])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let status = tokio::task::spawn_blocking(move || {
        let s = wait_exit(&mut coordinator.0, Duration::from_secs(60), "the run");
        (s, coordinator)
    })
    .await
    .unwrap()
    .0;
    assert!(status.code().is_some(), "the run ended: {status:?}");
    let store = hallmark_store::Store::open_read_only(&dir.join("results")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    let readings = store.facility_readings(run.run_id.as_str()).unwrap();
    let power: Vec<_> = readings
        .iter()
        .filter(|r| r.reading.kind == SourceKind::Pdu)
        .filter(|r| r.reading.quantity == FacilityQuantity::PowerW && r.reading.point.is_empty())
        .collect();
    assert!(
        power.len() >= 4,
        "a reading every 0.5 s over the run: {readings:?}"
    );
    for r in &power {
        assert_eq!(r.collector, COLLECTOR);
        assert_eq!(r.reading.value, Some(6400.0));
        assert_eq!(
            r.reading.subject,
            FacilitySubject::Rack("row1-rack01".into())
        );
        assert!(r.reading.latency_us.is_some() && r.reading.device_time_ns.is_some());
        // On the coordinator's clock, within the run.
        assert!(r.reading.t_ns >= run.started_at_ns, "{r:?} before {run:?}");
        assert!(
            run.ended_at_ns.is_none_or(|e| r.reading.t_ns <= e),
            "{r:?} after {run:?}"
        );
    }
    let supply = readings.iter().find(|r| {
        r.reading.quantity == FacilityQuantity::SupplyTempC && r.reading.point == "secondary"
    });
    assert_eq!(supply.and_then(|r| r.reading.value), Some(30.0));
    served.shutdown().await;
}
