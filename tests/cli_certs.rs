//! `hallmark certs init|issue|revoke` and `hallmark coordinator --crl` as an operator uses them:
//! where the CA key goes, lifetimes, a revocation that stops a probe process (at its next
//! connection, and while it is connected), and the errors of bad input.

mod common;

use common::process::*;
use std::process::Stdio;

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn init_says_where_the_ca_key_goes_and_lifetimes_are_checked() {
    let dir = tempdir("certs-layout");
    let pki = dir.join("pki");
    let p = pki.to_str().unwrap();
    let out = ok(&["certs", "init", "--out", p]);
    assert!(out.contains("ca-private"), "{out}");
    assert!(out.contains("--crl"), "{out}");
    assert!(!pki.join("ca-key.pem").exists());
    assert_eq!(mode(&pki.join("ca-private/ca-key.pem")), 0o600);
    assert_eq!(mode(&pki.join("ca-private")), 0o700);
    assert!(pki.join("crl.pem").exists());

    let other = dir.join("other");
    let err = fails(&[
        "certs",
        "init",
        "--out",
        other.to_str().unwrap(),
        "--ca-days",
        "9000",
    ]);
    assert!(
        err.contains("--ca-days 9000") && err.contains("1 to 7300"),
        "{err}"
    );
    assert!(!other.exists());

    let nodes = dir.join("nodes");
    let n = nodes.to_str().unwrap();
    let err = fails(&[
        "certs", "issue", "--ca", p, "--node", "n1", "--days", "400", "--out", n,
    ]);
    assert!(
        err.contains("--days 400") && err.contains("1 to 365"),
        "{err}"
    );
    ok(&[
        "certs", "issue", "--ca", p, "--node", "n1", "--days", "30", "--out", n,
    ]);
    let err = fails(&["certs", "issue", "--ca", p, "--out", n]);
    assert!(
        err.contains("--node") && err.contains("--coordinator"),
        "{err}"
    );
    let renewed = dir.join("renewed");
    let out = ok(&[
        "certs",
        "issue",
        "--ca",
        p,
        "--coordinator",
        "--san",
        "coord.example",
        "--out",
        renewed.to_str().unwrap(),
    ]);
    assert!(out.contains("coordinator.pem"), "{out}");

    let err = fails(&["certs", "revoke", "--ca", p]);
    assert!(err.contains("--node") && err.contains("--serial"), "{err}");
    let err = fails(&["certs", "revoke", "--ca", p, "--serial", "zz"]);
    assert!(err.contains("hex"), "{err}");
    let err = fails(&["certs", "revoke", "--ca", p, "--node", "n9"]);
    assert!(
        err.contains("issued.tsv") && err.contains("--cert"),
        "{err}"
    );
    let err = fails(&["certs", "revoke", "--ca", n, "--node", "n1"]);
    assert!(err.contains("holds no CA key"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_node_list_is_issued_in_one_go_or_not_at_all() {
    let dir = tempdir("certs-bulk");
    let pki = dir.join("pki");
    let p = pki.to_str().unwrap();
    ok(&["certs", "init", "--out", p]);
    let list = dir.join("nodes.txt");
    let out = dir.join("nodes");
    let (l, o) = (list.to_str().unwrap(), out.to_str().unwrap());

    std::fs::write(
        &list,
        "# row 1
r1n1
r1n2

r1n1
",
    )
    .unwrap();
    let err = fails(&["certs", "issue", "--ca", p, "--nodes", l, "--out", o]);
    assert!(
        err.contains("nodes.txt line 5: node r1n1 is listed already on line 2"),
        "{err}"
    );
    assert!(!out.exists(), "a bad list issues nothing");
    let err = fails(&[
        "certs", "issue", "--ca", p, "--nodes", l, "--node", "x", "--out", o,
    ]);
    assert!(err.contains("cannot be used with"), "{err}");

    let ids: Vec<String> = (0..25).map(|i| format!("r{}n{}", i / 5, i % 5)).collect();
    std::fs::write(&list, ids.join("\n")).unwrap();
    let said = ok(&["certs", "issue", "--ca", p, "--nodes", l, "--out", o]);
    assert!(
        said.contains("wrote 25 certificates and keys for the 25 nodes"),
        "{said}"
    );
    for id in &ids {
        assert!(out.join(format!("{id}.pem")).is_file(), "{id}");
        assert_eq!(mode(&out.join(format!("{id}-key.pem"))), 0o600, "{id}");
    }
    // Each is in the CA's index: revoking by node finds it.
    let said = ok(&["certs", "revoke", "--ca", p, "--node", "r4n4"]);
    assert!(said.contains("r4n4"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn revocations_run_at_once_are_numbered_one_after_the_other() {
    let dir = tempdir("certs-race");
    let nodes = ["n0", "n1", "n2", "n3"];
    init_certs(&dir, &nodes);
    let d = dir.to_str().unwrap();
    // Four `certs revoke` processes at once against one CA directory: each waits for the CA
    // directory's lock, so each signs the list the previous one wrote.
    let children: Vec<_> = nodes
        .iter()
        .map(|node| {
            hallmark()
                .args(["certs", "revoke", "--ca", d, "--node", node])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut numbers = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let number = said
            .split("revocation list number ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no list number in {said}"));
        numbers.push(number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, [2, 3, 4, 5]);
    // The last list revokes all four.
    for node in nodes {
        let said = ok(&["certs", "revoke", "--ca", d, "--node", node]);
        assert!(
            said.contains("was already revoked") && said.contains("stays number 5"),
            "{node}: {said}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_revoked_probe_process_is_refused_by_a_running_coordinator() {
    let dir = tempdir("certs-revoke");
    init_certs(&dir, &["n1", "n2"]);
    let cluster = Cluster {
        dir: dir.clone(),
        addr: common::free_udp_port(),
    };
    let mut coordinator = Killed(
        cluster
            .coordinator()
            .args(["--crl", &cluster.path("crl.pem")])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let logs = stderr_lines(&mut coordinator.0);
    assert!(wait_line(&logs, "coordinator listening", common::WAIT).is_some());
    // n2 is connected before anyone is revoked.
    let mut n2 = Killed(
        cluster
            .probe("n2", "n2")
            .args(["--rack", "rack01"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(wait_line(&logs, "registered node n2", common::WAIT).is_some());

    let out = ok(&[
        "certs",
        "revoke",
        "--ca",
        dir.to_str().unwrap(),
        "--node",
        "n1",
    ]);
    assert!(
        out.contains("revoked serial") && out.contains("node n1"),
        "{out}"
    );
    assert!(out.contains(&cluster.path("crl.pem")), "{out}");
    assert!(out.contains("number 2"), "{out}");

    let mut probe = Killed(
        cluster
            .probe("n1", "n1")
            .args(["--rack", "rack01"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = wait_exit(&mut probe.0, common::WAIT, "a revoked probe gives up");
    assert_eq!(status.code(), Some(2));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut probe.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("revoked"), "{err}");
    assert!(wait_line(&logs, "refused a revoked certificate", common::WAIT).is_some());

    // n2 stayed connected through n1's revocation; revoked in turn, it is cut with no new
    // connection and exits 2 as a refused probe does.
    assert!(n2.0.try_wait().unwrap().is_none(), "n2 stays connected");
    let out = ok(&[
        "certs",
        "revoke",
        "--ca",
        dir.to_str().unwrap(),
        "--node",
        "n2",
    ]);
    assert!(out.contains("number 3"), "{out}");
    let status = wait_exit(
        &mut n2.0,
        common::WAIT,
        "a connected probe is cut when revoked",
    );
    assert_eq!(status.code(), Some(2));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut n2.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("revoked") && err.contains("list number 3"),
        "{err}"
    );
    assert!(wait_line(
        &logs,
        "closed the connection of a revoked certificate",
        common::WAIT
    )
    .is_some());

    // A list from another CA is refused when the coordinator starts.
    let other = dir.join("other");
    ok(&["certs", "init", "--out", other.to_str().unwrap()]);
    let foreign = other.join("crl.pem");
    let mut c = cluster.coordinator();
    let out = c
        .args(["--crl", foreign.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another CA") && err.contains("crl.pem"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
