//! Interoperability: the SNMP client against Net-SNMP's `snmpd` (an independent agent, Debian
//! package `snmpd`) on a loopback UDP port, run as the current user with its own configuration
//! and persistent directory in a temporary folder. The agent serves the built-in profiles' OIDs
//! with fixed values (`override` directives) and has a v2c community and two v3 users
//! (SHA-256 + AES-128 and SHA-1 + AES-128, `authPriv`); the test polls over v2c and v3 and checks
//! the values after scaling, what is absent and why, and that a wrong community, password or user
//! gives an error naming the agent, never a value.
//!
//! Prerequisite: `snmpd` (`HALLMARK_SNMPD`, else on the PATH, else `/usr/sbin/snmpd`). Outside CI
//! a missing one skips with the reason on stderr; with `CI=true` it fails. `.ci/run` installs the
//! package; alone: `cargo test -p hallmark-facility --test interop_snmpd -- --nocapture`.

#[path = "../../tests/common/prereq.rs"]
mod prereq;

use hallmark_facility::snmp::{
    self, readings, Absent, AuthProtocol, PrivProtocol, Profile, SnmpError, SnmpSession,
    SnmpTarget, SnmpVersion,
};
use hallmark_facility::Secret;
use hallmark_protocol::facility::{FacilityQuantity, Subject};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AUTH_PW: &str = "auth-pass-1234";
const PRIV_PW: &str = "priv-pass-5678";

/// What the agent serves: Raritan PDU2-MIB inlet 1 (power 6438.1 W as 64381 with one decimal
/// digit, energy 56 438 123 Wh), APC rPDU2 (device power -1: not measured; phase 1 643
/// hundredths of kW; no energy object), and test OIDs of the wrong type and out of range.
const SERVED: &str = "
override .1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5 uinteger 64381
override .1.3.6.1.4.1.13742.6.3.3.4.1.7.1.1.5 uinteger 1
override .1.3.6.1.4.1.13742.6.3.3.4.1.6.1.1.5 integer 3
override .1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.8 uinteger 56438123
override .1.3.6.1.4.1.13742.6.3.3.4.1.7.1.1.8 uinteger 0
override .1.3.6.1.4.1.13742.6.3.3.4.1.6.1.1.8 integer 5
override .1.3.6.1.4.1.318.1.1.26.4.3.1.5.1 integer -1
override .1.3.6.1.4.1.318.1.1.26.6.3.1.7.1 integer 643
override .1.3.6.1.4.1.99999.1.1 octet_str \"6438\"
override .1.3.6.1.4.1.99999.1.2 integer 10000000
override .1.3.6.1.4.1.99999.1.3 counter 7
";

fn snmpd_path() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("HALLMARK_SNMPD") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![PathBuf::from("snmpd"), PathBuf::from("/usr/sbin/snmpd")],
    };
    let found = candidates.into_iter().find(|p| {
        Command::new(p)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        prereq::missing("Net-SNMP's snmpd does not run: install the Debian package snmpd (apt-get install snmpd) or set HALLMARK_SNMPD to the snmpd binary");
    }
    found
}

/// A throw-away snmpd on a loopback port; killed and its folder removed when dropped.
struct Agent {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Agent {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("snmpd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

fn start(snmpd: &PathBuf, tag: &str) -> Agent {
    let dir = std::env::temp_dir().join(format!("hallmark-snmpd-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("persist")).unwrap();
    // A free UDP port: bound and released, then given to snmpd.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = format!(
        "agentAddress udp:127.0.0.1:{port}\n\
         rocommunity hallmark-ro 127.0.0.1\n\
         createUser pdu-sha256 SHA-256 \"{AUTH_PW}\" AES \"{PRIV_PW}\"\n\
         createUser pdu-sha1 SHA \"{AUTH_PW}\" AES \"{PRIV_PW}\"\n\
         rouser pdu-sha256 priv\n\
         rouser pdu-sha1 priv\n\
         {SERVED}"
    );
    let conf_path = dir.join("snmpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(snmpd)
        .arg("-f")
        .arg("-Lf")
        .arg(dir.join("snmpd.log"))
        .arg("-C")
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir.join("snmpd.pid"))
        // No SMUX listener (TCP 199, taken by a system agent if there is one).
        .args(["-I", "-smux"])
        .env("SNMP_PERSISTENT_DIR", dir.join("persist"))
        .env("MIBS", "")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting snmpd");
    let mut agent = Agent {
        child,
        dir,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    // Ready once it holds the port.
    let deadline = Instant::now() + Duration::from_secs(20);
    while UdpSocket::bind(agent.addr).is_ok() {
        if let Some(status) = agent.child.try_wait().unwrap() {
            panic!(
                "snmpd exited ({status}) before listening on {}:\n{}",
                agent.addr,
                agent.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "snmpd did not bind {} within 20 s:\n{}",
            agent.addr,
            agent.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    agent
}

fn target(addr: SocketAddr, version: SnmpVersion) -> SnmpTarget {
    SnmpTarget {
        addr,
        version,
        timeout: Duration::from_secs(2),
        retries: 1,
    }
}

fn v2c(community: &str) -> SnmpVersion {
    SnmpVersion::V2c {
        community: Secret::new(community.into()),
    }
}

fn v3(user: &str, auth: AuthProtocol, auth_pw: &str) -> SnmpVersion {
    SnmpVersion::V3 {
        user: user.into(),
        auth: Some((auth, Secret::new(auth_pw.into()))),
        privacy: Some((PrivProtocol::Aes128, Secret::new(PRIV_PW.into()))),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// The Raritan profile's two readings: 6438.1 W and 56 438.123 kWh.
fn check_raritan(values: &[snmp::SnmpValue]) {
    assert_eq!(values.len(), 2);
    assert_eq!(
        (values[0].point.as_str(), values[0].quantity),
        ("inlet/1", FacilityQuantity::PowerW)
    );
    let power = values[0].value.clone().expect("inlet power");
    assert!(close(power, 6438.1), "{power}");
    assert_eq!(values[1].quantity, FacilityQuantity::EnergyKwh);
    let energy = values[1].value.clone().expect("inlet energy");
    assert!(close(energy, 56_438.123), "{energy}");
}

#[tokio::test]
async fn v2c_reads_the_builtin_profiles_scaled_and_absent_with_reasons() {
    let Some(snmpd) = snmpd_path() else { return };
    let agent = start(&snmpd, "v2c");
    let t = target(agent.addr, v2c("hallmark-ro"));
    let raritan = Profile::builtin("raritan-pdu2").unwrap();
    let polled = snmp::poll(&t, &raritan).await;
    let p = polled.as_ref().expect("v2c poll");
    check_raritan(&p.values);
    assert!(p.latency > Duration::ZERO && p.latency < Duration::from_secs(2));

    let rs = readings(
        &polled,
        &raritan,
        "pdu-r12a",
        &Subject::Rack("r12".into()),
        77,
    );
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].value.map(|v| close(v, 6438.1)), Some(true));
    assert_eq!(rs[0].uri, "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5");
    assert_eq!((rs[0].source.as_str(), rs[0].t_ns), ("pdu-r12a", 77));
    assert!(rs[0].latency_us.is_some() && rs[0].note.is_none());

    // APC: -1 is "not measured", the energy object is not served, phase 1 is 643 → 6430 W.
    let apc = Profile::builtin("apc-rpdu2").unwrap();
    let p = snmp::poll(&t, &apc).await.expect("v2c poll");
    assert!(
        matches!(&p.values[0].value, Err(Absent::NotMeasured { raw: -1, .. })),
        "{:?}",
        p.values[0]
    );
    assert!(
        matches!(&p.values[1].value, Err(Absent::NoSuchObject { .. })),
        "{:?}",
        p.values[1]
    );
    assert_eq!(p.values[2].value, Ok(6430.0));
    let rs = readings(&Ok(p), &apc, "pdu-apc", &Subject::Rack("r12".into()), 1);
    assert_eq!(rs[0].value, None);
    assert!(rs[0]
        .note
        .as_deref()
        .unwrap()
        .contains("does not measure it"));
    assert_eq!(rs[1].value, None);
    assert!(rs[1].note.as_deref().unwrap().contains("noSuchObject"));
}

#[tokio::test]
async fn wrong_type_out_of_range_and_wrong_units_are_absent() {
    let Some(snmpd) = snmpd_path() else { return };
    let agent = start(&snmpd, "bad");
    let profile = Profile::from_toml(
        r#"
vendor = "test"
mib = "none"
[[reading]]
point = "a"
quantity = "power_w"
oid = "1.3.6.1.4.1.99999.1.1"
[[reading]]
point = "b"
quantity = "power_w"
oid = "1.3.6.1.4.1.99999.1.2"
[[reading]]
point = "c"
quantity = "energy_kwh"
oid = "1.3.6.1.4.1.99999.1.3"
scale = 0.5
[[reading]]
point = "d"
quantity = "power_w"
oid = "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1.5"
units_oid = "1.3.6.1.4.1.13742.6.3.3.4.1.6.1.1.5"
units = 5
[[reading]]
point = "e"
quantity = "power_w"
oid = "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.2.5"
"#,
        "test.toml",
    )
    .unwrap();
    let t = target(agent.addr, v2c("hallmark-ro"));
    let p = snmp::poll(&t, &profile).await.expect("poll");
    let v: Vec<_> = p.values.iter().map(|v| v.value.clone()).collect();
    assert!(
        matches!(
            &v[0],
            Err(Absent::WrongType {
                got: "octet_string",
                ..
            })
        ),
        "{v:?}"
    );
    assert!(matches!(&v[1], Err(Absent::OutOfRange { .. })), "{v:?}");
    assert_eq!(v[2], Ok(3.5), "a Counter32 read as a number");
    assert!(
        matches!(
            &v[3],
            Err(Absent::WrongUnits {
                got: 3,
                expected: 5,
                ..
            })
        ),
        "{v:?}"
    );
    assert!(matches!(&v[4], Err(Absent::NoSuchObject { .. })), "{v:?}");
}

#[tokio::test]
async fn v3_auth_priv_with_sha256_and_sha1_over_one_session() {
    let Some(snmpd) = snmpd_path() else { return };
    let agent = start(&snmpd, "v3");
    let raritan = Profile::builtin("raritan-pdu2").unwrap();
    for (user, auth) in [
        ("pdu-sha256", AuthProtocol::Sha256),
        ("pdu-sha1", AuthProtocol::Sha1),
    ] {
        let session = SnmpSession::open(&target(agent.addr, v3(user, auth, AUTH_PW)))
            .await
            .unwrap();
        // The second poll reuses the engine id and time the first discovered.
        for round in 0..2 {
            let p = session
                .poll(&raritan)
                .await
                .unwrap_or_else(|e| panic!("{user} poll {round}: {e}\n{}", agent.log_tail()));
            check_raritan(&p.values);
        }
    }

    // An agent that answered once and then went away times out: that is no credentials error.
    let mut t = target(agent.addr, v3("pdu-sha256", AuthProtocol::Sha256, AUTH_PW));
    t.timeout = Duration::from_millis(300);
    let session = SnmpSession::open(&t).await.unwrap();
    check_raritan(&session.poll(&raritan).await.expect("first poll").values);
    drop(agent);
    let e = session.poll(&raritan).await.unwrap_err();
    assert!(matches!(e, SnmpError::Timeout { tries: 2, .. }), "{e:?}");
    assert!(
        e.to_string().contains("v3 user and passwords, firewall"),
        "{e}"
    );
}

#[tokio::test]
async fn wrong_credentials_give_an_error_naming_the_agent_never_a_value() {
    let Some(snmpd) = snmpd_path() else { return };
    let agent = start(&snmpd, "wrong");
    let raritan = Profile::builtin("raritan-pdu2").unwrap();
    let addr = agent.addr.to_string();

    // A wrong community: snmpd drops the request, so the poll times out, bounded.
    let mut t = target(agent.addr, v2c("not-the-community"));
    t.timeout = Duration::from_millis(300);
    t.retries = 1;
    let started = Instant::now();
    let polled = snmp::poll(&t, &raritan).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let e = polled.as_ref().unwrap_err();
    assert!(matches!(e, SnmpError::Timeout { tries: 2, .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&addr) && text.contains("community") && text.contains("firewall"),
        "{text}"
    );
    let rs = readings(&polled, &raritan, "pdu", &Subject::Hall, 5);
    assert_eq!(rs.len(), 2);
    for r in &rs {
        assert_eq!(r.value, None);
        assert!(r.note.as_deref().unwrap().contains(&addr), "{r:?}");
    }

    // A wrong v3 authentication password, privacy password, or an unknown user: snmpd answers
    // engine discovery, then only with unauthenticated reports, which the client does not take
    // (anyone could forge them); the poll says the credentials are wrong, naming the agent.
    for (user, auth_pw, priv_pw) in [
        ("pdu-sha256", "wrong-pass-1234", PRIV_PW),
        ("pdu-sha256", AUTH_PW, "wrong-priv-5678"),
        ("nobody", AUTH_PW, PRIV_PW),
    ] {
        let mut t = target(
            agent.addr,
            SnmpVersion::V3 {
                user: user.into(),
                auth: Some((AuthProtocol::Sha256, Secret::new(auth_pw.into()))),
                privacy: Some((PrivProtocol::Aes128, Secret::new(priv_pw.into()))),
            },
        );
        t.timeout = Duration::from_millis(400);
        let started = Instant::now();
        let e = snmp::poll(&t, &raritan).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(e, SnmpError::Auth { .. }), "{user}: {e:?}");
        let text = e.to_string();
        assert!(text.contains(&addr) && text.contains("passwords"), "{text}");
        assert!(
            !text.contains("wrong-pass") && !text.contains("wrong-priv"),
            "{text}"
        );
    }

    // Privacy without authentication does not exist in SNMPv3: refused before sending.
    let t = target(
        agent.addr,
        SnmpVersion::V3 {
            user: "pdu-sha256".into(),
            auth: None,
            privacy: Some((PrivProtocol::Aes128, Secret::new(PRIV_PW.into()))),
        },
    );
    let e = snmp::poll(&t, &raritan).await.unwrap_err();
    assert!(matches!(e, SnmpError::Config { .. }), "{e:?}");
}

/// The collector polls `[[snmp]]` sources of a facility.toml on SNMP lanes (v2c and v3 authPriv,
/// secrets from the environment), stamped on its clock, and an agent that does not answer gives
/// its readings absent with the reason while the others read on.
#[tokio::test]
async fn the_collector_polls_snmp_sources_of_a_facility_file() {
    use hallmark_facility::collect::run_collector;
    use hallmark_facility::config::FacilityConfig;
    let Some(snmpd) = snmpd_path() else { return };
    let agent = start(&snmpd, "collector");
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let text = format!(
        "[defaults]\ninterval_s = 0.5\ntimeout_s = 0.5\n\
         [[snmp]]\nname = \"pdu-v2c\"\naddress = \"{a}\"\nprofile = \"raritan-pdu2\"\nversion = \"2c\"\ncommunity_env = \"COMMUNITY\"\nrack = \"r1\"\n\
         [[snmp]]\nname = \"pdu-v3\"\naddress = \"{a}\"\nprofile = \"raritan-pdu2\"\nversion = \"3\"\nuser = \"pdu-sha256\"\nauth_protocol = \"SHA-256\"\nauth_password_env = \"AUTH\"\npriv_protocol = \"AES\"\npriv_password_env = \"PRIV\"\nrack = \"r2\"\n\
         [[snmp]]\nname = \"pdu-silent\"\naddress = \"{s}\"\nprofile = \"raritan-pdu2\"\nversion = \"2c\"\ncommunity_env = \"COMMUNITY\"\nrack = \"r3\"\n",
        a = agent.addr,
        s = silent.local_addr().unwrap(),
    );
    let env = |k: &str| match k {
        "COMMUNITY" => Some("hallmark-ro".to_string()),
        "AUTH" => Some(AUTH_PW.to_string()),
        "PRIV" => Some(PRIV_PW.to_string()),
        _ => None,
    };
    let config = FacilityConfig::parse(&text, "facility.toml", std::path::Path::new("."), &env)
        .expect("the facility file");
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let clock = move || started.elapsed().as_nanos() as i64;
    let collector = tokio::spawn(async move {
        run_collector(&config, clock, tx, async {
            let _ = stopped.await;
        })
        .await
    });
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let seen = |name: &str, ok: bool| {
            got.iter()
                .any(|r: &hallmark_protocol::facility::FacilityReading| {
                    r.source == name && r.value.is_some() == ok
                })
        };
        if seen("pdu-v2c", true) && seen("pdu-v3", true) && seen("pdu-silent", false) {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some(batch)) => got.extend(batch),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let _ = stop.send(());
    let stats = collector.await.unwrap().expect("the collector ran");
    assert!(stats.polls >= 3, "{stats:?}");
    for name in ["pdu-v2c", "pdu-v3"] {
        let power = got
            .iter()
            .find(|r| r.source == name && r.quantity == FacilityQuantity::PowerW)
            .unwrap_or_else(|| panic!("no power reading of {name}: {got:?}"));
        assert_eq!(
            power.value.map(|v| close(v, 6438.1)),
            Some(true),
            "{power:?}"
        );
        assert!(power.latency_us.is_some() && power.t_ns > 0, "{power:?}");
        assert_eq!(power.point, "inlet/1");
    }
    let silent = got
        .iter()
        .find(|r| r.source == "pdu-silent")
        .expect("the silent agent's readings");
    assert_eq!(silent.value, None);
    assert!(
        silent.note.as_deref().unwrap().contains("no SNMP answer"),
        "{silent:?}"
    );
}
