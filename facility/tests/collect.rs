//! The collector end to end against the tests' Redfish service on loopback: readings of a PDU, a
//! CDU and a chassis arrive stamped on the caller's clock; a source that fails (unreachable, 401,
//! a redirect loop, malformed or huge JSON, out-of-range or stale readings) gives absent readings
//! with a note naming the source and the fix, backs off, and the others still arrive.

mod common;

use common::fixture::{facility, now_text, sensor, set};
use common::{redirect, serve, Reply};
use hallmark_facility::{run_collector, CollectorStats, FacilityConfig};
use hallmark_protocol::facility::{FacilityQuantity as Q, FacilityReading, SourceKind, Subject};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn source(name: &str, url: &str, resource: &str, subject: &str, extra: &str) -> String {
    format!("[[redfish]]\nname = \"{name}\"\nurl = \"{url}\"\nresource = \"{resource}\"\n{subject}\n{extra}\n")
}

const PDU: &str = "/redfish/v1/PowerEquipment/RackPDUs/1";
const CDU: &str = "/redfish/v1/ThermalEquipment/CDUs/1";
const CHASSIS: &str = "/redfish/v1/Chassis/1U";

/// Runs a collector of `toml` for `run_for` (bounded) and returns every reading and its stats.
async fn collect(toml: &str, run_for: Duration) -> (Vec<FacilityReading>, CollectorStats) {
    collect_env(toml, run_for, &|_| None).await
}

async fn collect_env(
    toml: &str,
    run_for: Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<FacilityReading>, CollectorStats) {
    let config = FacilityConfig::parse(toml, "facility.toml", Path::new("."), env).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let reader = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(batch) = rx.recv().await {
            all.extend(batch);
        }
        all
    });
    let run = run_collector(&config, wall_ns, tx, tokio::time::sleep(run_for));
    let stats = tokio::time::timeout(run_for + Duration::from_secs(15), run)
        .await
        .expect("the collector stops within its bound")
        .unwrap();
    let all = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap();
    (all, stats)
}

fn find<'a>(
    all: &'a [FacilityReading],
    source: &str,
    point: &str,
    q: Q,
) -> Vec<&'a FacilityReading> {
    all.iter()
        .filter(|r| r.source == source && r.point == point && r.quantity == q)
        .collect()
}

fn last<'a>(all: &'a [FacilityReading], source: &str, point: &str, q: Q) -> &'a FacilityReading {
    find(all, source, point, q)
        .last()
        .copied()
        .unwrap_or_else(|| panic!("no {source} {point} {q:?} in {all:#?}"))
}

#[tokio::test]
async fn readings_of_a_pdu_a_cdu_and_a_chassis_arrive_on_the_callers_clock() {
    let server = serve(facility()).await;
    let url = server.url();
    let toml = [
        source("pdu-r1", &url, PDU, "rack = \"r1\"", "interval_s = 0.25"),
        source("cdu-r1", &url, CDU, "rack = \"r1\"", "interval_s = 0.25"),
        source("n1", &url, CHASSIS, "node = \"n1\"", "interval_s = 0.25"),
    ]
    .concat();
    let before = wall_ns();
    let run_for = Duration::from_millis(2600);
    let (all, stats) = collect(&toml, run_for).await;
    let after = wall_ns();
    assert_eq!(stats.failed_polls, 0, "{all:#?}");

    let p = last(&all, "pdu-r1", "", Q::PowerW);
    assert_eq!(
        (p.value, p.kind, &p.subject),
        (Some(6438.0), SourceKind::Pdu, &Subject::Rack("r1".into()))
    );
    assert_eq!(p.uri, format!("{url}{PDU}/Metrics#/PowerWatts/Reading"));
    assert!(
        p.t_ns > before && p.t_ns < after,
        "t_ns on the caller's clock"
    );
    assert!(p.latency_us.is_some_and(|l| l < 2_000_000), "{p:?}");
    // Its Sensor states a ReadingTime (2 s before the fixture was made) and an accuracy.
    let device = p.device_time_ns.expect("the Sensor's ReadingTime");
    assert!(
        (before - device).abs() < 10_000_000_000,
        "{device} vs {before}"
    );
    assert_eq!(p.note.as_deref(), Some("accuracy ±1.5 % (Sensor)"));
    assert_eq!(last(&all, "pdu-r1", "", Q::EnergyKwh).value, Some(56438.0));
    assert_eq!(
        last(&all, "pdu-r1", "outlet/A1", Q::PowerW).value,
        Some(197.4)
    );

    let c = |point: &str, q: Q| last(&all, "cdu-r1", point, q).value;
    assert_eq!(
        [
            c("primary", Q::SupplyTempC),
            c("primary", Q::ReturnTempC),
            c("primary", Q::DeltaTK),
            c("primary", Q::FlowLpm),
            c("primary", Q::SupplyPressureKpa),
            c("primary", Q::HeatRemovedKw)
        ],
        [
            Some(30.0),
            Some(40.0),
            Some(10.0),
            Some(60.0),
            Some(300.0),
            Some(40.5)
        ]
    );
    assert!(
        find(&all, "cdu-r1", "primary", Q::ReturnPressureKpa).is_empty(),
        "not reported: not emitted"
    );
    let total = last(&all, "cdu-r1", "", Q::HeatRemovedKw);
    assert_eq!(
        (
            total.value,
            total.uri.ends_with("#/primaryCoolantConnectors")
        ),
        (Some(40.5), true),
        "{total:?}"
    );

    assert_eq!(last(&all, "n1", "", Q::PowerW).value, Some(374.0));
    assert_eq!(last(&all, "n1", "psu/1", Q::PowerW).value, Some(380.0));
    assert!(
        find(&all, "n1", "psu/2", Q::PowerW).is_empty(),
        "an absent bay gives no reading"
    );

    // Polled at its own rate, but never faster than its Sensor's SensingInterval (PT0.5S): the
    // PDU's Metrics at most every 0.5 s, the chassis (no Sensor) every 0.25 s.
    let pdu_polls = server.count("GET", &format!("{PDU}/Metrics"));
    let chassis_polls = server.count("GET", &format!("{CHASSIS}/EnvironmentMetrics"));
    assert!(
        (3..=7).contains(&pdu_polls),
        "{pdu_polls} PDU polls in 2.6 s"
    );
    assert!(
        (7..=12).contains(&chassis_polls),
        "{chassis_polls} chassis polls in 2.6 s"
    );
    // The structure is found once: the PDU's own resource and its outlets collection read once.
    assert_eq!(server.count("GET", PDU), 1);
    assert_eq!(server.count("GET", &format!("{PDU}/Outlets")), 1);
}

#[tokio::test]
async fn a_failing_source_gives_absent_readings_with_a_note_and_the_others_go_on() {
    let mut routes = facility();
    set(
        &mut routes,
        "/redfish/v1/Chassis/Loop",
        redirect("/redfish/v1/Chassis/Loop"),
    );
    set(
        &mut routes,
        "/redfish/v1/Chassis/Huge",
        Reply::Huge(5 << 20),
    );
    set(
        &mut routes,
        "/redfish/v1/Chassis/Bad",
        Reply::Status {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: "{\"Name\": ".into(),
        },
    );
    set(
        &mut routes,
        "/redfish/v1/ThermalEquipment/CDUs/1/Primary/1",
        Reply::Json(
            json!({"FlowLitersPerMinute": {"Reading": -5}, "SupplyTemperatureCelsius": {"Reading": "N/A"}, "ReturnTemperatureCelsius": {"Reading": 40}, "HeatRemovedkW": {"Reading": 40.5}}),
        ),
    );
    set(
        &mut routes,
        "/redfish/v1/PowerEquipment/RackPDUs/1/Metrics",
        Reply::Json(
            json!({"PowerWatts": {"Reading": 1.0e7}, "EnergykWh": {"Reading": 5, "DataSourceUri": "/redfish/v1/Sensors/Old"}}),
        ),
    );
    set(
        &mut routes,
        "/redfish/v1/Sensors/Old",
        sensor(json!(5), &now_text(-3600)),
    );
    let server = serve(routes).await;
    let denied = serve(common::routes([(
        CHASSIS,
        Reply::Status {
            status: 401,
            headers: vec![],
            body: String::new(),
        },
    )]))
    .await;
    let hanging = serve(common::routes([(CHASSIS, Reply::Hang)])).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = server.url();
    let toml = [
        source("pdu-r1", &url, PDU, "rack = \"r1\"", "interval_s = 0.25"),
        source("cdu-r1", &url, CDU, "rack = \"r1\"", "interval_s = 0.25"),
        source("n1", &url, CHASSIS, "node = \"n1\"", "interval_s = 0.25"),
        source(
            "gone",
            &format!("http://{closed}"),
            CHASSIS,
            "node = \"n2\"",
            "interval_s = 0.25",
        ),
        source(
            "denied",
            &denied.url(),
            CHASSIS,
            "node = \"n3\"",
            "interval_s = 0.25",
        ),
        source(
            "loop",
            &url,
            "/redfish/v1/Chassis/Loop",
            "node = \"n4\"",
            "interval_s = 0.25",
        ),
        source(
            "huge",
            &url,
            "/redfish/v1/Chassis/Huge",
            "node = \"n5\"",
            "interval_s = 0.25",
        ),
        source(
            "bad-json",
            &url,
            "/redfish/v1/Chassis/Bad",
            "node = \"n6\"",
            "interval_s = 0.25",
        ),
        source(
            "hang",
            &hanging.url(),
            CHASSIS,
            "node = \"n7\"",
            "interval_s = 0.25\ntimeout_s = 0.3",
        ),
    ]
    .concat();
    let (all, stats) = collect(&toml, Duration::from_millis(3000)).await;

    // The healthy chassis reads on.
    assert_eq!(last(&all, "n1", "", Q::PowerW).value, Some(374.0));
    // Each failing source: its headline reading absent, never 0, with the source and the fix.
    for (name, needles) in [
        ("gone", &["gone: unreachable", "check url"][..]),
        (
            "denied",
            &[
                "denied: credentials refused (HTTP 401)",
                "username and password",
            ],
        ),
        ("loop", &["loop: redirect loop"]),
        ("huge", &["huge: answer larger than 4194304 bytes"]),
        ("bad-json", &["bad-json: answer is not valid JSON"]),
        (
            "hang",
            &["hang: no answer within 300 ms", "raise timeout_s"],
        ),
    ] {
        let r = last(&all, name, "", Q::PowerW);
        let note = r.note.as_deref().unwrap_or("");
        assert_eq!(r.value, None, "{name}");
        assert!(needles.iter().all(|n| note.contains(n)), "{name}: {note}");
        assert!(note.len() <= 160);
        // Backed off: 0.25, 0.5, 1, 2 s … so at most 5 polls in 3 s (the healthy one: about 12).
        let polls = find(&all, name, "", Q::PowerW).len();
        assert!((1..=5).contains(&polls), "{name}: {polls} polls");
    }
    assert!(find(&all, "n1", "", Q::PowerW).len() >= 9);
    assert!(stats.failed_polls >= 5, "{stats:?}");

    // Readings refused one by one; the rest of the source stands.
    let pdu = last(&all, "pdu-r1", "", Q::PowerW);
    assert_eq!(pdu.value, None);
    assert!(
        pdu.note
            .as_deref()
            .unwrap()
            .contains("PowerWatts reads 10000000 W, outside 0…500000 W"),
        "{pdu:?}"
    );
    let energy = last(&all, "pdu-r1", "", Q::EnergyKwh);
    assert_eq!(energy.value, None, "stale");
    assert!(
        energy
            .note
            .as_deref()
            .unwrap()
            .starts_with("stale: Sensor ReadingTime"),
        "{energy:?}"
    );
    assert!(energy.device_time_ns.is_some());
    let flow = last(&all, "cdu-r1", "primary", Q::FlowLpm);
    assert_eq!(flow.value, None);
    assert!(
        flow.note
            .as_deref()
            .unwrap()
            .contains("outside 0…20000 L/min"),
        "{flow:?}"
    );
    let supply = last(&all, "cdu-r1", "primary", Q::SupplyTempC);
    assert_eq!(
        (supply.value, supply.note.as_deref()),
        (
            None,
            Some("SupplyTemperatureCelsius is \"N/A\", not a number")
        )
    );
    assert_eq!(
        last(&all, "cdu-r1", "primary", Q::ReturnTempC).value,
        Some(40.0)
    );
    assert_eq!(
        last(&all, "pdu-r1", "outlet/A1", Q::PowerW).value,
        Some(197.4)
    );
}

#[tokio::test]
async fn a_missing_part_is_absent_with_a_note_and_found_again() {
    let mut routes = facility();
    set(
        &mut routes,
        "/redfish/v1/PowerEquipment/RackPDUs/1/Outlets/A1",
        Reply::Status {
            status: 500,
            headers: vec![],
            body: String::new(),
        },
    );
    let server = serve(routes).await;
    let toml = source(
        "pdu-r1",
        &server.url(),
        PDU,
        "rack = \"r1\"",
        "interval_s = 0.25",
    );
    let (all, stats) = collect(&toml, Duration::from_millis(1200)).await;
    let outlet = last(&all, "pdu-r1", "outlet/A1", Q::PowerW);
    assert_eq!(outlet.value, None);
    assert!(
        outlet.note.as_deref().unwrap().contains("pdu-r1: HTTP 500"),
        "{outlet:?}"
    );
    assert_eq!(
        last(&all, "pdu-r1", "", Q::PowerW).value,
        Some(6438.0),
        "the rest of the PDU reads on"
    );
    assert_eq!(stats.failed_polls, 0, "reachable: no backoff");
    assert!(
        server.count("GET", PDU) >= 2,
        "what to read is found again after a failed part"
    );
}

#[tokio::test]
async fn sources_of_one_service_share_one_session_deleted_at_the_end() {
    let mut routes = facility();
    routes.insert(
        "POST /redfish/v1/SessionService/Sessions".into(),
        Reply::Status {
            status: 201,
            headers: vec![
                ("x-auth-token".into(), "tok-123".into()),
                (
                    "location".into(),
                    "/redfish/v1/SessionService/Sessions/7".into(),
                ),
            ],
            body: "{}".into(),
        },
    );
    routes.insert(
        "DELETE /redfish/v1/SessionService/Sessions/7".into(),
        Reply::Status {
            status: 204,
            headers: vec![],
            body: String::new(),
        },
    );
    let server = serve(routes).await;
    let url = server.url();
    let login = "username = \"ops\"\npassword_env = \"PW\"\nsession = true";
    let toml = format!(
        "[defaults]\n{login}\ninterval_s = 0.25\n{}{}",
        source("pdu-r1", &url, PDU, "rack = \"r1\"", ""),
        source("n1", &url, CHASSIS, "node = \"n1\"", "")
    );
    let env = |k: &str| (k == "PW").then(|| "pw-secret".to_string());
    let (all, _) = collect_env(&toml, Duration::from_millis(1000), &env).await;
    assert_eq!(last(&all, "pdu-r1", "", Q::PowerW).value, Some(6438.0));
    assert_eq!(last(&all, "n1", "", Q::PowerW).value, Some(374.0));
    assert_eq!(
        server.count("POST", "/redfish/v1/SessionService/Sessions"),
        1,
        "one login for the origin"
    );
    assert_eq!(
        server.count("DELETE", "/redfish/v1/SessionService/Sessions/7"),
        1,
        "deleted when the collector stops"
    );
    let seen = server.seen.lock().unwrap();
    let gets: Vec<_> = seen.iter().filter(|s| s.method == "GET").collect();
    assert!(
        gets.len() > 4 && gets.iter().all(|s| s.token.as_deref() == Some("tok-123")),
        "{gets:?}"
    );
    assert!(
        seen.iter().all(|s| s.authorization.is_none()),
        "no basic auth beside the session"
    );
}

#[tokio::test]
async fn https_reads_with_the_right_ca_and_refuses_another() {
    let (ca, cert, key) = common::certificates("facility CA");
    let (other_ca, _, _) = common::certificates("another CA");
    let right = common::temp_file("ca.pem", &ca);
    let wrong = common::temp_file("other-ca.pem", &other_ca);
    let server = common::serve_tls(facility(), &cert, &key).await;
    let url = server.https_url();
    let second = common::serve_tls(facility(), &cert, &key).await;
    let toml = [
        source(
            "n1",
            &url,
            CHASSIS,
            "node = \"n1\"",
            &format!("ca = {:?}\ninterval_s = 0.25", right.display().to_string()),
        ),
        source(
            "n2",
            &second.https_url(),
            CHASSIS,
            "node = \"n2\"",
            &format!("ca = {:?}\ninterval_s = 0.25", wrong.display().to_string()),
        ),
    ]
    .concat();
    let (all, _) = collect(&toml, Duration::from_millis(800)).await;
    assert_eq!(last(&all, "n1", "", Q::PowerW).value, Some(374.0));
    let refused = last(&all, "n2", "", Q::PowerW);
    assert_eq!(refused.value, None);
    assert!(
        refused
            .note
            .as_deref()
            .unwrap()
            .starts_with("n2: TLS refused; check `ca`"),
        "{refused:?}"
    );
}
