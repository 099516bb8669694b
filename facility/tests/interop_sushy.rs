//! Interoperability: `discover` against sushy-tools' `sushy-static` (an independent Redfish
//! server, PyPI `sushy-tools`) serving DMTF's public mockups `public-pdu`, `public-cooling-unit`
//! and `public-rackmount1` on a loopback port. The expected numbers are read from the mockup
//! files themselves (and checked against the values this test was written for).
//!
//! Prerequisites: the mockups in `../shared/fixtures/redfish-dmtf/` beside the repository (or
//! `HALLMARK_REDFISH_MOCKUPS`), and `sushy-static` on the PATH (or `HALLMARK_SUSHY_STATIC`).
//! Outside CI a missing one skips the test with the reason on stderr; with `CI=true` it fails.
//! `.ci/run` installs sushy-tools in a virtual environment and runs this with the other tests;
//! alone: `cargo test -p hallmark-facility --test interop_sushy -- --nocapture`.

mod common;
#[path = "../../tests/common/prereq.rs"]
mod prereq;

use hallmark_facility::inventory::Connector;
use hallmark_facility::{
    discover, ClientOptions, FindingKind, Inventory, RedfishClient, WalkOptions,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Prereqs {
    mockups: PathBuf,
    sushy: PathBuf,
}

fn prerequisites() -> Option<Prereqs> {
    let mockups = match std::env::var_os("HALLMARK_REDFISH_MOCKUPS") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            // ../shared beside the repository (a worktree may sit one level deeper).
            workspace
                .ancestors()
                .skip(1)
                .take(3)
                .map(|a| a.join("shared/fixtures/redfish-dmtf"))
                .find(|d| d.join("public-pdu/index.json").is_file())
        }
    };
    let Some(mockups) = mockups.filter(|d| d.join("public-pdu/index.json").is_file()) else {
        prereq::missing("DMTF's Redfish mockups are not in ../shared/fixtures/redfish-dmtf beside the repository (set HALLMARK_REDFISH_MOCKUPS to their folder)");
        return None;
    };
    let sushy = std::env::var_os("HALLMARK_SUSHY_STATIC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("sushy-static"));
    let runs = Command::new(&sushy)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        prereq::missing(&format!("{} does not run: install PyPI sushy-tools (pip install sushy-tools) or set HALLMARK_SUSHY_STATIC", sushy.display()));
        return None;
    }
    Some(Prereqs { mockups, sushy })
}

/// sushy-static serving one mockup on a loopback port; killed when dropped.
struct Sushy {
    child: Child,
    url: String,
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(p: &Prereqs, mockup: &str) -> Sushy {
    start_with(p, mockup, &[])
}

/// sushy-static with extra arguments (`-c CERT -k KEY` for HTTPS).
fn start_with(p: &Prereqs, mockup: &str, extra: &[&std::ffi::OsStr]) -> Sushy {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&p.sushy)
        .arg("-m")
        .arg(p.mockups.join(mockup))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting sushy-static");
    let mut s = Sushy {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            s.child.try_wait().unwrap().is_none(),
            "sushy-static exited before serving {mockup}"
        );
        assert!(
            Instant::now() < deadline,
            "sushy-static did not listen on port {port} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    s
}

async fn walk(s: &Sushy, max_reading_age_s: Option<f64>) -> Inventory {
    let mut client = RedfishClient::new(&s.url, ClientOptions::default()).unwrap();
    let opts = WalkOptions {
        max_reading_age_s,
        ..WalkOptions::default()
    };
    let inv = discover(&mut client, opts, Duration::from_secs(60))
        .await
        .expect("discover");
    client.close().await;
    inv
}

/// A number from a mockup file: `path` under the mockup folder, then keys.
fn fixture(p: &Prereqs, path: &str, keys: &[&str]) -> f64 {
    let text = std::fs::read_to_string(p.mockups.join(path).join("index.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    for k in keys {
        v = v[*k].clone();
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path} {keys:?} is no number"))
}

fn fixture_text(p: &Prereqs, path: &str, key: &str) -> String {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(p.mockups.join(path).join("index.json")).unwrap(),
    )
    .unwrap();
    v[key].as_str().unwrap().to_string()
}

#[tokio::test]
async fn rack_pdu_of_public_pdu() {
    let Some(p) = prerequisites() else { return };
    let s = start(&p, "public-pdu");
    let metrics = "public-pdu/PowerEquipment/RackPDUs/1/Metrics";
    let power = fixture(&p, metrics, &["PowerWatts", "Reading"]);
    let energy = fixture(&p, metrics, &["EnergykWh", "Reading"]);
    assert_eq!((power, energy), (6438.0, 56438.0), "the mockup changed");
    let sensor = "public-pdu/Chassis/PDU/Sensors/PDUPower";
    let reading_time = fixture_text(&p, sensor, "ReadingTime");
    assert_eq!(reading_time, "2019-08-13T04:14:33+06:00");

    let inv = walk(&s, Some(300.0)).await;
    assert_eq!(
        (inv.pdus.len(), inv.cdus.len(), inv.chassis.len()),
        (1, 0, 2),
        "{inv:#?}"
    );
    let pdu = &inv.pdus[0];
    assert!(
        pdu.uri.ends_with("/redfish/v1/PowerEquipment/RackPDUs/1"),
        "{}",
        pdu.uri
    );
    // The PDUPower Sensor's ReadingTime is from 2019: the reading is stale, so absent, with a finding.
    assert_eq!(pdu.power_w, None);
    let stale = inv
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::StaleReading)
        .expect("stale PDUPower");
    assert!(
        stale.uri.ends_with("/Chassis/PDU/Sensors/PDUPower"),
        "{stale:?}"
    );
    assert_eq!(
        (stale.values["reading"], stale.reading_time.as_deref()),
        (power, Some(reading_time.as_str()))
    );
    assert_eq!(pdu.energy_kwh, Some(energy));
    let info = &pdu.sensors["power_w"];
    assert_eq!(info.accuracy_pct, Some(fixture(&p, sensor, &["Accuracy"])));
    assert_eq!(info.reading, Some(fixture(&p, sensor, &["Reading"])));
    assert_eq!(info.sensing_interval_s, Some(0.25));
    // PDUEnergy is named by the Metrics but the mockup has no such Sensor (sushy-static: 404).
    assert!(
        inv.findings
            .iter()
            .any(|f| f.kind == FindingKind::SensorUnreadable
                && f.uri.ends_with("/Sensors/PDUEnergy")),
        "{:#?}",
        inv.findings
    );

    assert_eq!(
        (pdu.mains.len(), pdu.branches.len(), pdu.outlets.len()),
        (1, 3, 11)
    );
    let a1 = pdu
        .outlets
        .iter()
        .find(|o| o.uri.ends_with("/Outlets/A1"))
        .unwrap();
    let outlet = "public-pdu/PowerEquipment/RackPDUs/1/Outlets/A1";
    assert_eq!(
        a1.power_w,
        Some(fixture(&p, outlet, &["PowerWatts", "Reading"]))
    );
    assert_eq!(
        a1.energy_kwh,
        Some(fixture(&p, outlet, &["EnergykWh", "Reading"]))
    );
    assert_eq!(
        a1.current_a,
        Some(fixture(&p, outlet, &["CurrentAmps", "Reading"]))
    );
    assert_eq!(
        (a1.power_w, a1.energy_kwh, a1.current_a),
        (Some(197.4), Some(36166.0), Some(1.68))
    );
    let branch_a = pdu
        .branches
        .iter()
        .find(|b| b.uri.ends_with("/Branches/A"))
        .unwrap();
    assert_eq!(
        branch_a.power_w,
        Some(fixture(
            &p,
            "public-pdu/PowerEquipment/RackPDUs/1/Branches/A",
            &["PowerWatts", "Reading"]
        ))
    );
    let a4 = pdu
        .outlets
        .iter()
        .find(|o| o.uri.ends_with("/Outlets/A4"))
        .unwrap();
    assert_eq!(
        a4.power_w, None,
        "outlet A4 has no PowerWatts in the mockup: absent, not 0"
    );

    // With the reading-time check off, the PDU's own reading stands.
    let inv = walk(&s, None).await;
    assert_eq!(inv.pdus[0].power_w, Some(power));
}

fn conn<'a>(c: &'a [Connector], side: &str) -> &'a Connector {
    c.iter()
        .find(|k| k.side == side)
        .unwrap_or_else(|| panic!("no {side} connector"))
}

#[tokio::test]
async fn cdu_of_public_cooling_unit() {
    let Some(p) = prerequisites() else { return };
    let s = start(&p, "public-cooling-unit");
    let cdu_path = "public-cooling-unit/ThermalEquipment/CDUs/1";
    let rho = fixture(&p, cdu_path, &["Coolant", "DensityKgPerCubicMeter"]);
    let cp = fixture(&p, cdu_path, &["Coolant", "SpecificHeatkJoulesPerKgK"]);
    assert_eq!((rho, cp), (1030.0, 3.974), "the mockup changed");

    let inv = walk(&s, Some(300.0)).await;
    assert_eq!(
        (inv.pdus.len(), inv.cdus.len(), inv.chassis.len()),
        (0, 1, 1),
        "{inv:#?}"
    );
    let cdu = &inv.cdus[0];
    assert!(
        cdu.uri.ends_with("/redfish/v1/ThermalEquipment/CDUs/1"),
        "{}",
        cdu.uri
    );
    assert_eq!(cdu.connectors.len(), 2);
    for (side, folder, expected) in [
        (
            "primary",
            "PrimaryCoolantConnectors/1",
            [30.0, 40.0, 10.0, 42.0, 827.0, 965.0, 138.0, 25.48],
        ),
        (
            "secondary",
            "SecondaryCoolantConnectors/1",
            [30.0, 48.0, 18.0, 42.0, 103.0, 137.0, 34.0, 25.31],
        ),
    ] {
        let path = format!("{cdu_path}/{folder}");
        let props = [
            "SupplyTemperatureCelsius",
            "ReturnTemperatureCelsius",
            "DeltaTemperatureCelsius",
            "FlowLitersPerMinute",
            "SupplyPressurekPa",
            "ReturnPressurekPa",
            "DeltaPressurekPa",
            "HeatRemovedkW",
        ];
        let from_file: Vec<f64> = props
            .iter()
            .map(|k| fixture(&p, &path, &[k, "Reading"]))
            .collect();
        assert_eq!(from_file, expected, "the mockup changed");
        let c = conn(&cdu.connectors, side);
        let got = [
            c.supply_temp_c,
            c.return_temp_c,
            c.delta_t_k,
            c.flow_lpm,
            c.supply_pressure_kpa,
            c.return_pressure_kpa,
            c.delta_pressure_kpa,
            c.heat_removed_kw,
        ];
        assert_eq!(got.map(Option::unwrap), expected, "{side}");
        // ρ · c_p · flow · ΔT with the CDU's coolant: kg/m³ · kJ/(kg·K) · (L/min ÷ 60 000) · K = kW.
        let want = rho * cp * expected[3] / 60_000.0 * (expected[1] - expected[0]);
        assert!(
            (c.computed_heat_kw.unwrap() - want).abs() < 1e-9,
            "{side}: {:?} vs {want}",
            c.computed_heat_kw
        );
        assert_eq!(c.coolant_used.source, "cdu");
        assert_eq!(c.sensors["flow_lpm"].sensing_interval_s, Some(5.0));
        let mismatch = inv
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::HeatMismatch && f.uri == c.uri)
            .expect("heat mismatch");
        assert_eq!(mismatch.values["heat_removed_kw"], expected[7]);
    }
    assert!((conn(&cdu.connectors, "primary").computed_heat_kw.unwrap() - 28.652).abs() < 0.001);
    assert!((conn(&cdu.connectors, "secondary").computed_heat_kw.unwrap() - 51.574).abs() < 0.001);
    // 25.48 kW out through the primary against 25.31 kW in from the racks: within tolerance.
    assert!(
        !inv.findings
            .iter()
            .any(|f| f.kind == FindingKind::PrimarySecondaryMismatch),
        "{:#?}",
        inv.findings
    );
}

#[tokio::test]
async fn chassis_of_public_rackmount1() {
    let Some(p) = prerequisites() else { return };
    let s = start(&p, "public-rackmount1");
    let power = fixture(
        &p,
        "public-rackmount1/Chassis/1U/EnvironmentMetrics",
        &["PowerWatts", "Reading"],
    );
    let psu = fixture(
        &p,
        "public-rackmount1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay1/Metrics",
        &["InputPowerWatts", "Reading"],
    );
    assert_eq!((power, psu), (374.0, 937.4), "the mockup changed");

    let inv = walk(&s, Some(300.0)).await;
    assert_eq!(
        (inv.pdus.len(), inv.cdus.len(), inv.chassis.len()),
        (0, 0, 1),
        "{inv:#?}"
    );
    let ch = &inv.chassis[0];
    assert!(ch.uri.ends_with("/redfish/v1/Chassis/1U"), "{}", ch.uri);
    // TotalPower's ReadingTime is from 2019 as well.
    assert_eq!(ch.power_w, None);
    let stale = inv
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::StaleReading)
        .expect("stale TotalPower");
    assert!(
        stale.uri.ends_with("/Chassis/1U/Sensors/TotalPower") && stale.values["reading"] == power,
        "{stale:?}"
    );
    assert_eq!(ch.psu_input_w, Some(psu));
    assert_eq!(ch.power_supplies.len(), 2);
    assert!(
        ch.power_supplies
            .iter()
            .any(|s| s.absent && s.input_power_w.is_none()),
        "bay 2 is empty"
    );

    let inv = walk(&s, None).await;
    let ch = &inv.chassis[0];
    assert_eq!(ch.power_w, Some(power));
    let f = inv
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::PsuInputMismatch)
        .expect("374 W chassis with a 937.4 W supply");
    assert_eq!((f.values["power_w"], f.values["psu_input_w"]), (power, psu));
}

#[tokio::test]
async fn rack_pdu_over_https_with_a_ca_file_and_refused_with_another() {
    let Some(p) = prerequisites() else { return };
    let (ca, cert, key) = common::certificates("sushy interop CA");
    let (ca_file, cert_file, key_file) = (
        common::temp_file("ca.pem", &ca),
        common::temp_file("cert.pem", &cert),
        common::temp_file("key.pem", &key),
    );
    let mut s = start_with(
        &p,
        "public-pdu",
        &[
            std::ffi::OsStr::new("-c"),
            cert_file.as_os_str(),
            std::ffi::OsStr::new("-k"),
            key_file.as_os_str(),
        ],
    );
    s.url = s.url.replace("http://127.0.0.1", "https://localhost");
    let trusted = ClientOptions {
        trust: Some(hallmark_facility::Trust::CaFile(ca_file)),
        ..ClientOptions::default()
    };
    let mut client = RedfishClient::new(&s.url, trusted).unwrap();
    let opts = WalkOptions {
        max_reading_age_s: None,
        ..WalkOptions::default()
    };
    let inv = discover(&mut client, opts, Duration::from_secs(60))
        .await
        .expect("discover over HTTPS");
    let power = fixture(
        &p,
        "public-pdu/PowerEquipment/RackPDUs/1/Metrics",
        &["PowerWatts", "Reading"],
    );
    assert_eq!(inv.pdus[0].power_w, Some(power));
    assert!(
        inv.pdus[0].uri.starts_with("https://localhost:"),
        "{}",
        inv.pdus[0].uri
    );
    // Another CA: the handshake is refused, and discover says so.
    let (other, _, _) = common::certificates("not the sushy CA");
    let wrong = ClientOptions {
        trust: Some(hallmark_facility::Trust::CaFile(common::temp_file(
            "other.pem",
            &other,
        ))),
        ..ClientOptions::default()
    };
    let mut client = RedfishClient::new(&s.url, wrong).unwrap();
    let e = discover(&mut client, WalkOptions::default(), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(e, hallmark_facility::FacilityError::Tls { .. }),
        "{e:?}"
    );
}
