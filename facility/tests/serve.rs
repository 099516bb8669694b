//! The served facility (`hallmark_facility::serve`) read back through the crate's own client and
//! walk over real HTTP on loopback: every PDU and CDU found with the numbers the board gives, no
//! findings on a consistent board, the heat check when a CDU's `HeatRemovedkW` disagrees with
//! ρ·c_p·flow·ΔT, Redfish errors for unknown paths and methods, bad ids and addresses refused,
//! and a dropped server gone.

use hallmark_facility::serve::{self, CduState, ConnectorState, MeterBoard, PduState, ServeError};
use hallmark_facility::{ClientOptions, FindingKind, Inventory, RedfishClient, WalkOptions};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RHO: f64 = 997.0;
const CP: f64 = 4.18;

/// Fixed readings, taken "now" whenever asked.
struct Fixed {
    pdus: Vec<PduState>,
    cdus: Vec<CduState>,
}

impl MeterBoard for Fixed {
    fn pdus(&self, now: SystemTime) -> Vec<PduState> {
        self.pdus
            .iter()
            .map(|p| PduState {
                reading_time: now,
                ..p.clone()
            })
            .collect()
    }
    fn cdus(&self, now: SystemTime) -> Vec<CduState> {
        self.cdus
            .iter()
            .map(|c| CduState {
                reading_time: now,
                ..c.clone()
            })
            .collect()
    }
}

fn side(supply: f64, dt: f64, flow: f64) -> ConnectorState {
    ConnectorState {
        supply_temp_c: Some(supply),
        return_temp_c: Some(supply + dt),
        flow_lpm: Some(flow),
        heat_removed_kw: Some(RHO * CP * flow / 60_000.0 * dt),
    }
}

fn pdu(id: &str, power_w: f64, energy_kwh: f64) -> PduState {
    PduState {
        id: id.into(),
        rack: id.into(),
        power_w: Some(power_w),
        energy_kwh: Some(energy_kwh),
        accuracy_pct: Some(1.0),
        sensing_interval_s: 1.0,
        reading_time: SystemTime::UNIX_EPOCH,
    }
}

fn cdu(id: &str, secondary: ConnectorState, primary: ConnectorState) -> CduState {
    CduState {
        id: id.into(),
        rack: id.into(),
        density_kg_per_m3: RHO,
        specific_heat_kj_per_kg_k: CP,
        primary,
        secondary,
        accuracy_pct: None,
        sensing_interval_s: 1.0,
        reading_time: SystemTime::UNIX_EPOCH,
    }
}

/// Two racks whose CDUs carry, on both sides, the heat ρ·c_p·flow·ΔT says.
fn consistent() -> Fixed {
    Fixed {
        pdus: vec![
            pdu("row1-rack01", 99_512.5, 12.25),
            pdu("row1-rack02", 27_801.0, 3.5),
        ],
        cdus: vec![
            cdu(
                "row1-rack01",
                side(30.0, 8.0, 150.0),
                side(25.0, 8.0, 150.0),
            ),
            // 40 % of the flow: 2.5 × the ΔT for the same heat.
            cdu(
                "row1-rack02",
                side(30.0, 20.0, 60.0),
                side(25.0, 8.0, 150.0),
            ),
        ],
    }
}

async fn start(board: Fixed) -> serve::FacilityServer {
    serve::serve("127.0.0.1:0".parse().unwrap(), Arc::new(board))
        .await
        .unwrap()
}

async fn discover(base: &str) -> Inventory {
    let mut client = RedfishClient::new(base, ClientOptions::default()).unwrap();
    let inv =
        hallmark_facility::discover(&mut client, WalkOptions::default(), Duration::from_secs(20))
            .await
            .unwrap();
    client.close().await;
    inv
}

#[tokio::test]
async fn discover_finds_every_served_pdu_and_cdu_with_its_numbers() {
    let server = start(consistent()).await;
    assert_eq!(server.pdus().len(), 2);
    assert_eq!(
        server.cdus()[1].path,
        "/redfish/v1/ThermalEquipment/CDUs/row1-rack02"
    );
    let inv = discover(&server.base_url()).await;
    assert!(inv.findings.is_empty(), "{:#?}", inv.findings);
    assert_eq!((inv.pdus.len(), inv.cdus.len()), (2, 2));
    let p = &inv.pdus[0];
    assert!(p
        .uri
        .ends_with("/redfish/v1/PowerEquipment/RackPDUs/row1-rack01"));
    assert_eq!((p.power_w, p.energy_kwh), (Some(99_512.5), Some(12.25)));
    let s = &p.sensors["power_w"];
    assert_eq!(
        (s.accuracy_pct, s.sensing_interval_s),
        (Some(1.0), Some(1.0))
    );
    assert_eq!(s.reading, Some(99_512.5));
    assert!(s.reading_time.is_some(), "{s:?}");
    assert_eq!(inv.pdus[1].power_w, Some(27_801.0));

    let c = &inv.cdus[1];
    let coolant = c.coolant.as_ref().unwrap();
    assert_eq!(coolant.density_kg_per_m3, Some(RHO));
    assert_eq!(c.connectors.len(), 2);
    let sec = c.connectors.iter().find(|k| k.side == "secondary").unwrap();
    assert_eq!(
        (
            sec.supply_temp_c,
            sec.return_temp_c,
            sec.delta_t_k,
            sec.flow_lpm
        ),
        (Some(30.0), Some(50.0), Some(20.0), Some(60.0))
    );
    let computed = sec.computed_heat_kw.unwrap();
    assert!((computed - RHO * CP * 60.0 / 60_000.0 * 20.0).abs() < 1e-9);
    assert!((sec.heat_removed_kw.unwrap() - computed).abs() < 1e-9);
    assert_eq!(sec.coolant_used.source, "connector");
    assert!(sec.sensors.contains_key("flow_lpm"), "{:?}", sec.sensors);
    let pri = c.connectors.iter().find(|k| k.side == "primary").unwrap();
    assert_eq!(pri.supply_temp_c, Some(25.0));
    // The chassis that hold the Sensors are listed too, without readings of their own.
    assert_eq!(inv.chassis.len(), 4);
    server.shutdown().await;
}

#[tokio::test]
async fn a_cdu_whose_heat_meter_disagrees_is_flagged() {
    let mut board = consistent();
    board.cdus[0].secondary.heat_removed_kw = Some(60.0);
    let server = start(board).await;
    let inv = discover(&server.base_url()).await;
    let f: Vec<_> = inv
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::HeatMismatch)
        .collect();
    assert_eq!(f.len(), 1, "{:#?}", inv.findings);
    assert!(
        f[0].uri
            .ends_with("/ThermalEquipment/CDUs/row1-rack01/SecondaryCoolantConnectors/1"),
        "{}",
        f[0].uri
    );
    assert_eq!(f[0].values["heat_removed_kw"], 60.0);
    // The two sides now disagree as well.
    assert!(inv
        .findings
        .iter()
        .any(|f| f.kind == FindingKind::PrimarySecondaryMismatch));
}

/// One raw HTTP/1.1 exchange: (status line, headers and body as text).
async fn raw(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let (status, rest) = out.split_once("\r\n").unwrap();
    (status.to_string(), rest.to_string())
}

fn body(rest: &str) -> serde_json::Value {
    serde_json::from_str(rest.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[tokio::test]
async fn unknown_paths_and_methods_get_redfish_errors() {
    let server = start(consistent()).await;
    for path in [
        "/redfish/v1/Nope",
        "/redfish/v1/PowerEquipment/RackPDUs/row9-rack01",
        "/redfish/v1/ThermalEquipment/CDUs/row1-rack01/TertiaryCoolantConnectors",
        "/redfish/v1/Chassis/PDU-row1-rack01/Sensors/Voltage",
        "/",
    ] {
        let (status, rest) = raw(server.addr(), "GET", path).await;
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{path}");
        let e = body(&rest);
        assert_eq!(e["error"]["code"], "Base.1.8.ResourceMissingAtURI", "{e}");
        assert_eq!(
            e["error"]["@Message.ExtendedInfo"][0]["MessageArgs"][0],
            path
        );
    }
    let (status, rest) = raw(server.addr(), "POST", "/redfish/v1/SessionService/Sessions").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(
        rest.to_ascii_lowercase().contains("allow: get, head"),
        "{rest}"
    );
    // Trailing slashes and HEAD are served.
    let (status, rest) = raw(server.addr(), "GET", "/redfish/v1/").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body(&rest)["@odata.id"], "/redfish/v1/");
    assert!(
        rest.to_ascii_lowercase().contains("odata-version: 4.0"),
        "{rest}"
    );
    let (status, rest) = raw(server.addr(), "HEAD", "/redfish/v1/Chassis").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(rest.ends_with("\r\n\r\n"), "no body: {rest}");
}

#[tokio::test]
async fn bad_ids_and_addresses_are_refused_and_a_dropped_server_is_gone() {
    let e = serve::serve("0.0.0.0:0".parse().unwrap(), Arc::new(consistent()))
        .await
        .unwrap_err();
    assert!(matches!(e, ServeError::NotLoopback { .. }), "{e}");
    assert!(e.to_string().contains("loopback"), "{e}");
    for bad in ["a/b", "", "..", "x y"] {
        let mut board = consistent();
        board.pdus[1].id = bad.into();
        let e = serve::serve("127.0.0.1:0".parse().unwrap(), Arc::new(board))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ServeError::BadId { what: "PDU", .. }),
            "{bad:?}: {e}"
        );
    }
    let mut board = consistent();
    board.cdus[1].id = board.cdus[0].id.clone();
    let e = serve::serve("127.0.0.1:0".parse().unwrap(), Arc::new(board))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("two of them"), "{e}");
    let taken = start(consistent()).await;
    let e = serve::serve(taken.addr(), Arc::new(consistent()))
        .await
        .unwrap_err();
    assert!(matches!(e, ServeError::Bind { .. }), "{e}");

    let addr = taken.addr();
    drop(taken);
    let mut gone = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "{addr} still accepts connections");
}
