//! `facility.toml`: a good file read whole, and each bad input refused with its file, line, column
//! and how to fix it.

mod common;

use hallmark_facility::auth::Auth;
use hallmark_facility::config::{SnmpProfile, SnmpSecurity};
use hallmark_facility::{FacilityConfig, SourceConfig, Trust};
use hallmark_protocol::facility::{SourceKind, Subject};
use std::path::Path;
use std::time::Duration;

fn env(k: &str) -> Option<String> {
    match k {
        "PDU_PASSWORD" => Some("pdu-secret-pw".into()),
        "COMMUNITY" => Some("public-ish".into()),
        "AUTH_PW" => Some("auth-pass-phrase".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<FacilityConfig, String> {
    FacilityConfig::parse(text, "facility.toml", Path::new("/nonexistent-dir"), &env)
        .map_err(|e| e.to_string())
}

/// The error of `text`, which must start `facility.toml:LINE:COLUMN:` and contain every `needle`.
fn refused(text: &str, line: usize, column: usize, needles: &[&str]) {
    let e = parse(text).expect_err("refused");
    let at = format!("facility.toml:{line}:{column}: ");
    assert!(e.starts_with(&at), "expected {at}…, got: {e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
}

const GOOD: &str = r#"
[defaults]
interval_s = 2
timeout_s = 1.5
username = "ops"
password_env = "PDU_PASSWORD"

[[redfish]]
name = "pdu-r01"
url = "http://127.0.0.1:8000"
resource = "/redfish/v1/PowerEquipment/RackPDUs/r01"
rack = "r01"
interval_s = 0.5

[[redfish]]
name = "cdu-r01"
url = "http://127.0.0.1:8000"
resource = "/redfish/v1/ThermalEquipment/CDUs/1"
row = "row-a"
max_reading_age_s = 0

[[redfish]]
name = "bmc.n1"
url = "http://10.0.0.9"
resource = "/redfish/v1/Chassis/1U/"
node = "n1"
session = true

[[redfish]]
name = "hall-meter"
url = "http://10.0.0.10:8080"
resource = "/redfish/v1/PowerEquipment/RackPDUs/main"
hall = true
username = "other"
password_file = "PW_FILE"

[[snmp]]
name = "pdu-r02"
address = "10.0.0.6:161"
profile = "raritan-pdu2"
version = "2c"
community_env = "COMMUNITY"
rack = "r02"

[[snmp]]
name = "pdu-r03"
address = "10.0.0.7"
profile_file = "profiles/apc.toml"
version = "3"
user = "monitor"
auth_protocol = "sha-256"
auth_password_env = "AUTH_PW"
rack = "r03"
"#;

#[test]
fn a_good_file_is_read_whole() {
    let pw = common::temp_file("pw", "file-secret\n");
    let text = GOOD.replace("PW_FILE", pw.to_str().unwrap());
    let c = parse(&text).unwrap();
    assert_eq!(c.sources.len(), 6);
    let names: Vec<&str> = c.sources.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "pdu-r01",
            "cdu-r01",
            "bmc.n1",
            "hall-meter",
            "pdu-r02",
            "pdu-r03"
        ]
    );
    let SourceConfig::Redfish(p) = &c.sources[0] else {
        panic!()
    };
    assert_eq!(
        (p.kind, &p.subject),
        (SourceKind::Pdu, &Subject::Rack("r01".into()))
    );
    assert_eq!(p.origin, "http://127.0.0.1:8000");
    assert_eq!(
        p.url(),
        "http://127.0.0.1:8000/redfish/v1/PowerEquipment/RackPDUs/r01"
    );
    assert_eq!(
        p.interval,
        Duration::from_millis(500),
        "the source's own interval"
    );
    assert_eq!(
        p.timeout,
        Duration::from_millis(1500),
        "the default's timeout"
    );
    assert_eq!(p.max_reading_age_s, Some(300.0));
    match &p.auth {
        Auth::Basic(c) => assert_eq!(
            (c.user.as_str(), c.password.expose()),
            ("ops", "pdu-secret-pw")
        ),
        other => panic!("{other:?}"),
    }
    let SourceConfig::Redfish(cdu) = &c.sources[1] else {
        panic!()
    };
    assert_eq!(
        (cdu.kind, &cdu.subject, cdu.interval),
        (
            SourceKind::Cdu,
            &Subject::Row("row-a".into()),
            Duration::from_secs(2)
        )
    );
    assert_eq!(cdu.max_reading_age_s, None, "0 turns the check off");
    let SourceConfig::Redfish(bmc) = &c.sources[2] else {
        panic!()
    };
    assert_eq!(
        (bmc.kind, bmc.resource.as_str()),
        (SourceKind::Chassis, "/redfish/v1/Chassis/1U")
    );
    assert_eq!(bmc.origin, "http://10.0.0.9:80");
    assert!(matches!(&bmc.auth, Auth::Session(c) if c.user == "ops"));
    let SourceConfig::Redfish(hall) = &c.sources[3] else {
        panic!()
    };
    assert_eq!(hall.subject, Subject::Hall);
    assert!(
        matches!(&hall.auth, Auth::Basic(c) if c.user == "other" && c.password.expose() == "file-secret")
    );
    let SourceConfig::Snmp(s2) = &c.sources[4] else {
        panic!()
    };
    assert_eq!(
        (s2.address.as_str(), &s2.profile),
        ("10.0.0.6:161", &SnmpProfile::Builtin("raritan-pdu2".into()))
    );
    assert!(
        matches!(&s2.security, SnmpSecurity::V2c { community } if community.expose() == "public-ish")
    );
    assert_eq!(
        s2.interval,
        Duration::from_secs(2),
        "[defaults] interval applies to SNMP too"
    );
    let SourceConfig::Snmp(s3) = &c.sources[5] else {
        panic!()
    };
    assert_eq!(
        s3.profile,
        SnmpProfile::File(Path::new("/nonexistent-dir/profiles/apc.toml").to_path_buf())
    );
    match &s3.security {
        SnmpSecurity::V3(v3) => {
            assert_eq!(v3.user, "monitor");
            let (proto, pw) = v3.auth.as_ref().unwrap();
            assert_eq!(
                (proto.as_str(), pw.expose()),
                ("SHA-256", "auth-pass-phrase")
            );
            assert!(v3.privacy.is_none());
        }
        other => panic!("{other:?}"),
    }
    // No secret in any Debug output.
    let shown = format!("{c:?}");
    for secret in [
        "pdu-secret-pw",
        "file-secret",
        "public-ish",
        "auth-pass-phrase",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

#[test]
fn https_with_a_ca_relative_to_the_file_or_insecure() {
    let (ca, _, _) = common::certificates("cfg CA");
    let ca_path = common::temp_file("facility-ca.pem", &ca);
    let dir = ca_path.parent().unwrap();
    let file = dir.join("facility.toml");
    std::fs::write(
        &file,
        "[defaults]\nca = \"facility-ca.pem\"\n[[redfish]]\nname = \"a\"\nurl = \"https://localhost:8443\"\nresource = \"/redfish/v1/Chassis/1\"\nnode = \"n1\"\n[[redfish]]\nname = \"b\"\nurl = \"https://localhost:9443\"\nresource = \"/redfish/v1/Chassis/2\"\nnode = \"n2\"\nca = \"\"\ninsecure = true\n",
    )
    .unwrap();
    // `ca = ""` beside insecure is still both: refused.
    let e = FacilityConfig::load(&file, &env).unwrap_err().to_string();
    assert!(e.contains(":13:1:") && e.contains("not both"), "{e}");
    std::fs::write(
        &file,
        "[defaults]\nca = \"facility-ca.pem\"\n[[redfish]]\nname = \"a\"\nurl = \"https://localhost:8443\"\nresource = \"/redfish/v1/Chassis/1\"\nnode = \"n1\"\n[[redfish]]\nname = \"b\"\nurl = \"https://localhost:9443\"\nresource = \"/redfish/v1/Chassis/2\"\nnode = \"n2\"\n",
    )
    .unwrap();
    let c = FacilityConfig::load(&file, &env).unwrap();
    let SourceConfig::Redfish(a) = &c.sources[0] else {
        panic!()
    };
    assert!(matches!(&a.trust, Some(Trust::CaFile(p)) if *p == ca_path));
    let e = FacilityConfig::load(&dir.join("absent.toml"), &env)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("absent.toml") && e.contains("cannot read the facility file"),
        "{e}"
    );
}

const PDU: &str = "[[redfish]]\nname = \"p\"\nurl = \"http://127.0.0.1:8000\"\nresource = \"/redfish/v1/PowerEquipment/RackPDUs/1\"\nrack = \"r1\"\n";

#[test]
fn bad_input_names_line_column_and_fix() {
    refused("", 1, 1, &["names no source", "[[redfish]]"]);
    refused(
        &format!("{PDU}colour = \"red\"\n"),
        6,
        1,
        &["unknown key `colour`", "allowed keys are", "`resource`"],
    );
    refused(
        "[default]\ninterval_s = 1\n",
        1,
        2,
        &["unknown key `default`"],
    );
    refused(
        &format!("{PDU}{PDU}"),
        7,
        1,
        &["\"p\" is already used on line 2", "its own name"],
    );
    refused(
        &PDU.replace("name = \"p\"", "name = \"p q\""),
        2,
        1,
        &["1 to 64 of"],
    );
    refused(
        &PDU.replace("RackPDUs/1", "Outlets/1"),
        4,
        1,
        &[
            "no rack PDU, CDU or chassis",
            "/redfish/v1/ThermalEquipment/CDUs/ID",
        ],
    );
    refused(
        &PDU.replace("rack = \"r1\"", "rack = \"r1\"\nnode = \"n1\""),
        6,
        1,
        &["more than one subject (rack and node)"],
    );
    refused(
        &PDU.replace("rack = \"r1\"\n", ""),
        2,
        1,
        &["names no subject", "hall = true"],
    );
    refused(
        &PDU.replace("rack = \"r1\"", "hall = false"),
        5,
        1,
        &["names no subject"],
    );
    refused(
        &format!("{PDU}interval_s = 0.1\n"),
        6,
        1,
        &["interval_s = 0.1 is out of range", "0.25 to 3600"],
    );
    refused(
        &format!("[defaults]\ninterval_s = 7200\n{PDU}"),
        2,
        1,
        &["interval_s = 7200"],
    );
    refused(
        &format!("{PDU}interval_s = \"1s\"\n"),
        6,
        14,
        &["expected a number"],
    );
    refused(
        &PDU.replace("http://127.0.0.1:8000", "127.0.0.1:8000"),
        3,
        1,
        &["not a Redfish service address"],
    );
    refused(
        &PDU.replace("http://127.0.0.1:8000", "http://127.0.0.1:8000/redfish/v1"),
        3,
        1,
        &["origin only", "`resource`"],
    );
    refused(
        &PDU.replace("http://", "https://"),
        3,
        1,
        &["HTTPS", "ca = \"FILE\"", "insecure = true"],
    );
    refused(
        &format!("{PDU}ca = \"x.pem\"\ninsecure = true\n"),
        6,
        1,
        &["not both"],
    );
    refused(
        &format!("{PDU}ca = \"missing-ca.pem\"\n"),
        6,
        1,
        &["missing-ca.pem", "PEM"],
    );
    refused(
        &format!("{PDU}username = \"ops\"\n"),
        6,
        1,
        &["needs a password", "password_env"],
    );
    refused(
        &format!("{PDU}password_env = \"PDU_PASSWORD\"\n"),
        6,
        1,
        &["without `username`"],
    );
    refused(
        &format!("{PDU}username = \"ops\"\npassword_env = \"UNSET_VAR\"\n"),
        7,
        1,
        &["UNSET_VAR", "not set"],
    );
    refused(
        &format!("{PDU}username = \"ops\"\npassword_file = \"no-such-pw\"\n"),
        7,
        1,
        &["no-such-pw", "first line"],
    );
    refused(
        &format!("{PDU}session = true\n"),
        6,
        1,
        &["needs credentials"],
    );
    refused(&format!("{PDU}[[redfish]]\nname = \"q\"\nurl = \"http://127.0.0.1:8000\"\nresource = \"/redfish/v1/Chassis/1\"\nnode = \"n\"\nusername = \"ops\"\npassword_env = \"PDU_PASSWORD\"\n"), 8, 1, &["also polled by the source on line 2", "same ca"]);
    refused(
        "[[redfish]]\nname = \"p\"\nurl = \"http://x\"\nrack = \"r\"\n",
        1,
        1,
        &["missing key `resource`"],
    );
    refused("[redfish]\nname = \"p\"\n", 1, 1, &["double brackets"]);
}

const SNMP: &str = "[[snmp]]\nname = \"s\"\naddress = \"10.0.0.6:161\"\nprofile = \"raritan-pdu2\"\nversion = \"2c\"\nrack = \"r\"\n";

#[test]
fn bad_snmp_input_is_refused_where_it_is() {
    refused(SNMP, 5, 1, &["needs a community", "community_env"]);
    refused(
        &SNMP.replace("\"2c\"", "\"1\""),
        5,
        1,
        &["\"1\"", "\"2c\" or \"3\""],
    );
    refused(
        &format!("{SNMP}community_env = \"COMMUNITY\"\nuser = \"u\"\n"),
        8,
        1,
        &["v2c takes"],
    );
    refused(
        &format!("{SNMP}community_env = \"COMMUNITY\"\ncommunity_file = \"c\"\n"),
        8,
        1,
        &["not both"],
    );
    refused(
        &SNMP.replace("10.0.0.6:161", "10.0.0.6:99999"),
        3,
        1,
        &["HOST[:PORT]"],
    );
    refused(
        &SNMP.replace("profile = \"raritan-pdu2\"\n", ""),
        2,
        1,
        &["no profile", "profile_file"],
    );
    let v3 = SNMP.replace("\"2c\"", "\"3\"");
    refused(&v3, 5, 1, &["needs `user"]);
    refused(
        &format!("{v3}user = \"u\"\nauth_protocol = \"SHA\"\n"),
        8,
        1,
        &["needs its pass phrase"],
    );
    refused(
        &format!(
            "{v3}user = \"u\"\nauth_protocol = \"SHA-1024\"\nauth_password_env = \"AUTH_PW\"\n"
        ),
        8,
        1,
        &["not one of", "SHA-256"],
    );
    refused(
        &format!("{v3}user = \"u\"\npriv_protocol = \"AES\"\npriv_password_env = \"AUTH_PW\"\n"),
        8,
        1,
        &["privacy needs authentication"],
    );
    refused(
        &format!("{v3}user = \"u\"\nauth_password_env = \"AUTH_PW\"\n"),
        8,
        1,
        &["without `auth_protocol`"],
    );
    refused(
        &format!("{PDU}{}", SNMP.replace("name = \"s\"", "name = \"p\"")),
        7,
        1,
        &["already used on line 2"],
    );
}

#[test]
fn the_example_file_is_valid() {
    let example = include_str!("../../examples/facility.toml");
    let (ca, _, _) = common::certificates("example CA");
    let ca_path = common::temp_file("facility-ca.pem", &ca);
    let dir = ca_path.parent().unwrap();
    std::fs::write(dir.join("snmp-priv.pw"), "priv-pass-phrase\n").unwrap();
    let env = |k: &str| match k {
        "HALLMARK_FACILITY_PASSWORD" | "HALLMARK_SNMP_COMMUNITY" | "HALLMARK_SNMP_AUTH" => {
            Some(format!("{k}-value"))
        }
        _ => None,
    };
    let c = FacilityConfig::parse(example, "facility.toml", dir, &env).unwrap();
    assert_eq!(c.sources.len(), 5);
    let SourceConfig::Redfish(bmc) = &c.sources[2] else {
        panic!()
    };
    assert!(
        matches!(bmc.trust, Some(Trust::Insecure)),
        "a source's insecure replaces the default ca"
    );
    let SourceConfig::Redfish(pdu) = &c.sources[0] else {
        panic!()
    };
    assert!(matches!(&pdu.trust, Some(Trust::CaFile(p)) if *p == ca_path));
    assert!(matches!(&pdu.auth, Auth::Session(c) if c.user == "hallmark-ro"));
}
