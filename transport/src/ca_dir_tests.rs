//! Tests of the CA's files: layout, index, revocation lists.

use super::*;
use crate::pki::node_id_from_cert;
use crate::pki::tests::{der_of, lifetime_days, temp_dir};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

fn mode(path: &Path) -> u32 {
    #[cfg(unix)]
    return fs::metadata(path).unwrap().permissions().mode() & 0o777;
    #[cfg(not(unix))]
    0o600
}

fn serial_of(path: &Path) -> Serial {
    Serial::of_cert(&der_of(&fs::read_to_string(path).unwrap())).unwrap()
}

fn days_of(path: &Path) -> i64 {
    lifetime_days(&fs::read_to_string(path).unwrap())
}

#[test]
fn init_keeps_the_ca_key_apart_and_refuses_a_second_init() {
    let dir = temp_dir("init").join("certs");
    let written = init_dir(&dir, &[]).unwrap();
    let public = [
        "ca.pem",
        "coordinator.pem",
        "coordinator-key.pem",
        "crl.pem",
    ];
    let private = ["ca.pem", "ca-key.pem", "crl.pem", "issued.tsv"];
    let mut expected: Vec<PathBuf> = public.iter().map(|n| dir.join(n)).collect();
    expected.extend(private.iter().map(|n| dir.join("ca-private").join(n)));
    assert_eq!(written, expected);
    // The coordinator host's directory holds no CA key.
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca-private",
            "ca.pem",
            "coordinator-key.pem",
            "coordinator.pem",
            "crl.pem"
        ]
    );
    assert_eq!(mode(&dir.join("ca-private")), 0o700);
    assert_eq!(mode(&dir.join("ca-private/ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("coordinator-key.pem")), 0o600);
    // The coordinator's certificate lives a year; the index knows it.
    assert_eq!(days_of(&dir.join("coordinator.pem")), 365 + 1);
    let index = read_index(&dir.join("ca-private")).unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].kind, "coordinator");
    assert_eq!(index[0].serial, serial_of(&dir.join("coordinator.pem")));
    // The first revocation list is empty, numbered 1 and checks against the CA.
    let ca = der_of(&fs::read_to_string(dir.join("ca.pem")).unwrap());
    let list = crl::load(&dir.join("crl.pem"), &[ca]).unwrap();
    assert_eq!((list.number, list.revoked.len()), (1, 0));

    let before = fs::read(&written[5]).unwrap();
    let err = init_dir(&dir, &[]).unwrap_err();
    assert!(matches!(err, CaDirError::Pki(PkiError::CaKeyExists { .. })));
    assert!(err.to_string().contains("ca-key.pem"));
    assert_eq!(fs::read(&written[5]).unwrap(), before);
    // No temporary files are left behind.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 5);
    assert_eq!(fs::read_dir(dir.join("ca-private")).unwrap().count(), 4);
    fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn init_with_ca_out_and_lifetimes() {
    let base = temp_dir("caout");
    let opts = InitOptions {
        ca_out: Some(base.join("offline")),
        days: 90,
        ca_days: 1000,
        ..InitOptions::default()
    };
    init(&base.join("coord"), &opts).unwrap();
    assert!(base.join("offline/ca-key.pem").exists());
    assert!(!base.join("coord/ca-private").exists());
    assert_eq!(days_of(&base.join("coord/coordinator.pem")), 90 + 1);
    assert_eq!(days_of(&base.join("coord/ca.pem")), 1000 + 1);
    let bad = InitOptions {
        days: 400,
        ..InitOptions::default()
    };
    let err = init(&base.join("x"), &bad).unwrap_err();
    assert!(err.to_string().contains("1 to 365 days"), "{err}");
    let bad = InitOptions {
        days: 30,
        ca_days: 10,
        ..InitOptions::default()
    };
    let err = init(&base.join("y"), &bad).unwrap_err();
    assert!(matches!(err, CaDirError::CaShorterThanLeaf { .. }), "{err}");
    assert!(
        err.to_string().contains("pass --ca-days 30 or more"),
        "{err}"
    );
    // A CA lifetime out of range names --ca-days and its range, even when it is also shorter
    // than --days.
    for ca_days in [0, 9000] {
        let bad = InitOptions {
            ca_days,
            ..InitOptions::default()
        };
        let err = init(&base.join("y"), &bad).unwrap_err();
        assert!(
            matches!(err, CaDirError::Pki(PkiError::Lifetime { .. })),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.starts_with(&format!("--ca-days {ca_days} ")), "{text}");
        assert!(text.contains("1 to 7300 days"), "{text}");
    }
    let same = InitOptions {
        ca_out: Some(base.join("z/.")),
        ..InitOptions::default()
    };
    let err = init(&base.join("z"), &same).unwrap_err();
    assert!(matches!(err, CaDirError::CaOutIsOut { .. }), "{err}");
    assert!(!base.join("x").exists() && !base.join("y").exists());
    assert!(!base.join("z").exists());
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn issue_accepts_both_directories_and_records_the_certificate() {
    let base = temp_dir("issue");
    init_dir(&base.join("pki"), &["coord.example".into()]).unwrap();
    let node = NodeId::new("probe-1").unwrap();
    // `--ca` as the init directory and as the CA directory itself.
    for ca in [base.join("pki"), base.join("pki/ca-private")] {
        let written = issue_node_files(&ca, &node, &base.join("nodes")).unwrap();
        let expected = ["nodes/probe-1.pem", "nodes/probe-1-key.pem"].map(|n| base.join(n));
        assert_eq!(written, expected);
        assert_eq!(mode(&written[1]), 0o600);
        let pem = fs::read_to_string(&written[0]).unwrap();
        assert_eq!(node_id_from_cert(&der_of(&pem)).unwrap(), node);
        assert_eq!(days_of(&written[0]), 365 + 1);
    }
    let index = read_index(&base.join("pki/ca-private")).unwrap();
    let nodes: Vec<_> = index.iter().filter(|e| e.kind == "node").collect();
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|e| e.node == "probe-1"));
    assert_ne!(nodes[0].serial, nodes[1].serial);

    let written = issue_node_files_for(&base.join("pki"), &node, &base.join("short"), 7).unwrap();
    assert_eq!(days_of(&written[0]), 7 + 1);
    let err = issue_node_files_for(&base.join("pki"), &node, &base.join("long"), 366).unwrap_err();
    assert!(err.to_string().contains("--days 366"), "{err}");
    assert!(!base.join("long").exists());

    let renewed =
        issue_coordinator_files(&base.join("pki"), &[], &base.join("renewed"), 30).unwrap();
    assert_eq!(days_of(&renewed[0]), 30 + 1);

    let err = issue_node_files(&base.join("nodes"), &node, &base).unwrap_err();
    assert!(matches!(err, CaDirError::NoCa { .. }), "{err}");
    assert!(err.to_string().contains("certs init --out"), "{err}");
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn revoke_extends_the_list_with_the_next_number() {
    let base = temp_dir("revoke");
    let pki = base.join("pki");
    init_dir(&pki, &[]).unwrap();
    let n1 = NodeId::new("n1").unwrap();
    let n2 = NodeId::new("n2").unwrap();
    let c1 = issue_node_files(&pki, &n1, &base.join("nodes")).unwrap();
    let c2 = issue_node_files(&pki, &n2, &base.join("nodes")).unwrap();
    let extra = base.join("coordinator-host/crl.pem");
    fs::create_dir_all(extra.parent().unwrap()).unwrap();

    let t1 = OffsetDateTime::now_utc();
    let done = revoke_at(
        &pki,
        &RevokeTarget::Node(n1.clone()),
        std::slice::from_ref(&extra),
        t1,
    )
    .unwrap();
    assert_eq!(done.added.len(), 1);
    assert_eq!(done.added[0].0, serial_of(&c1[0]));
    assert_eq!(done.added[0].1.as_deref(), Some("node n1"));
    assert_eq!((done.number, done.listed), (2, 1));
    let expected = [
        pki.join("ca-private/crl.pem"),
        pki.join("crl.pem"),
        extra.clone(),
    ];
    assert_eq!(done.written, expected);
    assert_eq!(fs::read(&expected[0]).unwrap(), fs::read(&extra).unwrap());

    let t2 = t1 + time::Duration::seconds(5);
    let cert = RevokeTarget::Cert(c2[0].clone());
    let done = revoke_at(&pki, &cert, &[], t2).unwrap();
    assert_eq!((done.number, done.listed), (3, 2));
    let ca = der_of(&fs::read_to_string(pki.join("ca.pem")).unwrap());
    let list = crl::load(&pki.join("crl.pem"), &[ca]).unwrap();
    assert_eq!(list.number, 3);
    assert!(list.contains(&serial_of(&c1[0])) && list.contains(&serial_of(&c2[0])));
    // The first entry keeps its date; the list is dated now.
    assert_eq!(list.revoked[0].at.unix_timestamp(), t1.unix_timestamp());
    assert_eq!(list.this_update.unix_timestamp(), t2.unix_timestamp());
    assert!(list.next_update.unwrap() > t2);

    // Revoking again changes nothing; a serial works too.
    let serial = RevokeTarget::Serial(serial_of(&c1[0]));
    let done = revoke_at(&pki, &serial, &[], t2).unwrap();
    assert!(done.added.is_empty() && done.written.is_empty() && done.number == 3);
    let err = revoke(&pki, &RevokeTarget::Node(NodeId::new("n9").unwrap()), &[]).unwrap_err();
    assert!(matches!(err, CaDirError::NotIndexed { .. }), "{err}");
    assert!(err.to_string().contains("--cert"), "{err}");

    // A certificate from another CA is not ours to revoke.
    let other = base.join("other");
    init_dir(&other, &[]).unwrap();
    let foreign = issue_node_files(&other, &n1, &base.join("foreign")).unwrap();
    let err = revoke(&pki, &RevokeTarget::Cert(foreign[0].clone()), &[]).unwrap_err();
    assert!(matches!(err, CaDirError::ForeignCert { .. }), "{err}");
    // Nor is a list it signed: the CA's own copy is checked before it is extended.
    fs::copy(other.join("crl.pem"), pki.join("ca-private/crl.pem")).unwrap();
    let err = revoke(&pki, &serial, &[]).unwrap_err();
    assert!(
        matches!(err, CaDirError::Crl(CrlError::OtherCa { .. })),
        "{err}"
    );
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn an_old_layout_still_issues_and_revokes() {
    // Before the CA directory: everything in one directory, no list, no index.
    let dir = temp_dir("legacy");
    fs::create_dir_all(&dir).unwrap();
    let ca = Ca::generate().unwrap();
    let coordinator = ca.issue_coordinator(&[]).unwrap();
    fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    fs::write(dir.join("ca-key.pem"), ca.key_pem()).unwrap();
    fs::write(dir.join("coordinator.pem"), &coordinator.cert_pem).unwrap();
    fs::write(dir.join("coordinator-key.pem"), &coordinator.key_pem).unwrap();
    let old = ca.issue_node(&NodeId::new("n1").unwrap()).unwrap();
    fs::write(dir.join("n1-old.pem"), &old.cert_pem).unwrap();

    let paths = CaPaths::resolve(&dir).unwrap();
    assert!(paths.legacy && paths.public.is_none());
    assert!(
        paths.legacy_advice().contains("mv "),
        "{}",
        paths.legacy_advice()
    );
    let n1 = NodeId::new("n1").unwrap();
    let err = revoke(&dir, &RevokeTarget::Node(n1.clone()), &[]).unwrap_err();
    assert!(matches!(err, CaDirError::NotIndexed { .. }), "{err}");
    let done = revoke(&dir, &RevokeTarget::Cert(dir.join("n1-old.pem")), &[]).unwrap();
    assert!(done.first_list && done.number == 1 && done.listed == 1);
    assert_eq!(done.written, [dir.join("crl.pem")]);
    // From now on the index records what is issued, and --node finds it.
    issue_node_files(&dir, &n1, &dir.join("nodes")).unwrap();
    let done = revoke(&dir, &RevokeTarget::Node(n1), &[]).unwrap();
    assert_eq!((done.number, done.listed), (2, 2));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_ca_without_crl_sign_says_what_to_do() {
    let dir = temp_dir("nocrlsign");
    fs::create_dir_all(&dir).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hallmark CA old");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let cert = params.self_signed(&key).unwrap();
    fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
    fs::write(dir.join("ca-key.pem"), key.serialize_pem()).unwrap();
    let node = ca_issue(&dir);
    let err = revoke(&dir, &RevokeTarget::Cert(node), &[]).unwrap_err();
    assert!(
        matches!(err, CaDirError::Crl(CrlError::NotCrlSigner { .. })),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("cRLSign") && text.contains("certs init"),
        "{text}"
    );
    assert!(
        text.contains(&dir.join("ca.pem").display().to_string()),
        "{text}"
    );
    assert!(!dir.join("crl.pem").exists());
    fs::remove_dir_all(dir).unwrap();
}

fn ca_issue(dir: &Path) -> PathBuf {
    let written = issue_node_files(dir, &NodeId::new("n1").unwrap(), &dir.join("nodes")).unwrap();
    written[0].clone()
}

#[test]
fn loading_corrupt_or_missing_files_names_the_file() {
    let dir = temp_dir("corrupt");
    let err = Ca::load(&dir).unwrap_err();
    assert!(matches!(err, PkiError::Missing { .. }) && err.to_string().contains("ca.pem"));

    init_dir(&dir, &[]).unwrap();
    let private = dir.join("ca-private");
    fs::write(private.join("ca.pem"), "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
    let err = Ca::load(&private).unwrap_err();
    assert!(matches!(err, PkiError::BadCertificatePem { .. }), "{err}");
    let ca_pem = private.join("ca.pem").display().to_string();
    assert!(err.to_string().contains(&ca_pem), "{err}");
    let err = issue_node_files(&dir, &NodeId::new("n").unwrap(), &dir).unwrap_err();
    assert!(err.to_string().contains(&ca_pem), "{err}");

    init_dir(&dir.join("fresh"), &[]).unwrap();
    fs::write(dir.join("fresh/ca-private/ca-key.pem"), "garbage").unwrap();
    let err = Ca::load(&dir.join("fresh/ca-private")).unwrap_err();
    assert!(matches!(err, PkiError::BadKeyPem { .. }), "{err}");
    assert!(err.to_string().contains("ca-key.pem"), "{err}");

    fs::write(private.join("issued.tsv"), "ab\tnode\n").unwrap();
    let err = read_index(&private).unwrap_err();
    assert!(err.to_string().contains("issued.tsv line 1"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_list_numbered_at_the_limit_is_refused_not_overflowed() {
    let dir = temp_dir("maxnumber");
    init_dir(&dir, &[]).unwrap();
    let private = dir.join("ca-private");
    let ca = Ca::load(&private).unwrap();
    let list = crl::sign(&ca, u64::MAX, &[], OffsetDateTime::now_utc()).unwrap();
    fs::write(private.join("crl.pem"), &list.pem).unwrap();
    let public_before = fs::read(dir.join("crl.pem")).unwrap();
    let node = ca_issue(&dir);
    let err = revoke(&dir, &RevokeTarget::Cert(node), &[]).unwrap_err();
    assert!(
        matches!(err, CaDirError::CrlNumberExhausted { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&private.join("crl.pem").display().to_string())
            && text.contains("certs init"),
        "{text}"
    );
    // Nothing was written.
    assert_eq!(
        fs::read_to_string(private.join("crl.pem")).unwrap(),
        list.pem
    );
    assert_eq!(fs::read(dir.join("crl.pem")).unwrap(), public_before);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_copy_that_cannot_be_written_says_where_the_new_list_is() {
    let base = temp_dir("copyfails");
    let pki = base.join("pki");
    init_dir(&pki, &[]).unwrap();
    let node = ca_issue(&pki);
    let unwritable = base.join("missing-dir/crl.pem");
    let target = RevokeTarget::Cert(node);
    let err = revoke(&pki, &target, std::slice::from_ref(&unwritable)).unwrap_err();
    let text = err.to_string();
    // The CA's list is updated (a second revoke finds nothing new), so the error says which
    // file holds it and to copy it by hand.
    let master = pki.join("ca-private/crl.pem").display().to_string();
    assert!(text.contains(&master), "{text}");
    assert!(text.contains(&unwritable.display().to_string()), "{text}");
    assert!(text.contains("copy"), "{text}");
    let again = revoke(&pki, &target, &[]).unwrap();
    assert!(again.added.is_empty() && again.number == 2, "{again:?}");
    fs::remove_dir_all(base).unwrap();
}
