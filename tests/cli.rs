//! The `hallmark` binary as an operator uses it: certificates on disk, coordinator and probe
//! processes over loopback, the errors a misconfigured probe gets, bad input files, and the dead-man
//! interlock across processes.

mod common;

use common::process::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn certs_are_written_with_private_keys_closed() {
    let dir = tempdir("certs");
    init_certs(&dir, &["r01-n01"]);
    for f in ["ca.pem", "coordinator.pem"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    for f in [
        "ca-private/ca-key.pem",
        "coordinator-key.pem",
        "nodes/r01-n01-key.pem",
    ] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    assert!(dir.join("nodes/r01-n01.pem").exists());

    // A second init would orphan every issued certificate: refused, nothing overwritten.
    let before = std::fs::read(dir.join("ca-private/ca-key.pem")).unwrap();
    let out = run(&["certs", "init", "--out", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ca-key.pem"), "{err}");
    assert_eq!(
        std::fs::read(dir.join("ca-private/ca-key.pem")).unwrap(),
        before
    );

    // A node id that cannot be a file name is refused by the argument parser.
    let out = run(&[
        "certs",
        "issue",
        "--ca",
        dir.to_str().unwrap(),
        "--node",
        "../x",
        "--out",
        "/tmp",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("node id"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_probe_with_a_missing_key_file_says_which_file() {
    let dir = tempdir("missing");
    init_certs(&dir, &["n1"]);
    let out = run(&[
        "probe",
        "--coordinator",
        "127.0.0.1:1",
        "--ca",
        dir.join("ca.pem").to_str().unwrap(),
        "--cert",
        dir.join("nodes/n1.pem").to_str().unwrap(),
        "--key",
        dir.join("nodes/nope-key.pem").to_str().unwrap(),
        "--node",
        "n1",
        "--rack",
        "r1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope-key.pem"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn coordinator_and_probe_processes_register_and_refuse() {
    let dir = tempdir("cluster");
    init_certs(&dir, &["n1", "n2"]);
    let cluster = Cluster {
        dir: dir.clone(),
        addr: common::free_udp_port(),
    };
    let status = dir.join("status.json");
    let _coordinator = Killed(
        cluster
            .coordinator()
            .args(["--status-file", &cluster.path("status.json")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let probe_cmd = |node: &str, cert: &str| {
        let mut c = cluster.probe(node, cert);
        c.args(["--rack", "rack07", "--row", "row2", "--hall", "hall-x"]);
        c
    };
    let _probe = Killed(probe_cmd("n1", "n1").stderr(Stdio::null()).spawn().unwrap());
    // The status file lists the probe once it has registered.
    let deadline = Instant::now() + common::WAIT;
    let listed = loop {
        let text = std::fs::read_to_string(&status).unwrap_or_default();
        if text.contains("\"n1\"") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "n1 never appeared in the status file: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let probe = &v["probes"][0];
    assert_eq!(probe["labels"]["rack"], "rack07");
    assert_eq!(probe["labels"]["hall"], "hall-x");
    assert_eq!(probe["inventory"].as_array().unwrap().len(), 8);

    // A probe claiming n2 with n1's certificate exits 2 and says why.
    let out = probe_cmd("n2", "n1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate was issued to node n1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_across_processes_stores_every_sample() {
    let dir = tempdir("processes");
    let nodes = ["row1-rack01-n01", "row1-rack01-n02"];
    init_certs(&dir, &nodes);
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, TWO_NODE_PLAN).unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let cluster = Cluster {
        dir: dir.clone(),
        addr: common::free_udp_port(),
    };
    let mut coordinator = Killed(
        cluster
            .run_listen("plan.toml")
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _probes: Vec<Killed> = nodes
        .iter()
        .map(|node| {
            let mut c = cluster.probe(node, node);
            Killed(
                c.args(["--sim-hall", hall])
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    // The coordinator exits by itself once the run is stored.
    let status = wait_exit(
        &mut coordinator.0,
        Duration::from_secs(60),
        "the run did not finish in time",
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(coordinator.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "exit {status:?}: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["status"], "complete");
    assert_eq!(v["samples_expected"].as_u64(), Some(2 * 8 * 30));
    assert_eq!(v["samples_stored"].as_u64(), Some(2 * 8 * 30));
    assert_eq!(v["racks"][0]["rack"], "row1-rack01");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_plan_and_hall_files_are_refused_with_line_and_column() {
    let dir = tempdir("badfiles");
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, TWO_NODE_PLAN.replace("level = 1.0", "level = 1.5")).unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let out = run(&[
        "run",
        plan.to_str().unwrap(),
        "--simulate",
        hall,
        "--results",
        dir.join("r").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plan.toml:17:38:"), "{err}");
    assert!(err.contains("1.5"), "{err}");

    let bad_hall = dir.join("hall.toml");
    std::fs::write(&bad_hall, "name = \"h\"\nseed = 1\nrows = 1\nracks_per_row = 1\nnodes_per_rack = 2\ngpus_per_node = 8\n[gpu]\npower_limit_w = 5000\n").unwrap();
    std::fs::write(&plan, TWO_NODE_PLAN).unwrap();
    let out = run(&[
        "run",
        plan.to_str().unwrap(),
        "--simulate",
        bad_hall.to_str().unwrap(),
        "--results",
        dir.join("r").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hall.toml:8:17"), "{err}");
    assert!(err.contains("power_limit_w"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_probe_whose_coordinator_dies_mid_phase_stops_its_load_within_the_dead_man_interval() {
    let LongRun {
        dir,
        node: _,
        cluster: _,
        mut coordinator,
        probe: _probe,
        lines,
    } = start_long_run("deadman");
    assert!(wait_line(
        &lines,
        "phase 0 (steady) scheduled",
        Duration::from_secs(20)
    )
    .is_some());
    // The first phase starts 2 s after it is scheduled; let it run a little, then kill the
    // coordinator outright (no goodbye: the probe only notices the silence).
    std::thread::sleep(Duration::from_millis(3000));
    coordinator.0.kill().unwrap();
    let killed = Instant::now();
    let stopped = wait_line(&lines, "dead-man", Duration::from_secs(10))
        .expect("the dead-man stopped the load");
    let after = stopped - killed;
    // Dead-man interval 2 s after the last heartbeat (which came ≤ 0.4 s before the kill), seen at
    // the next sample instant (0.1 s); the rest is slack for a loaded machine.
    assert!(
        after <= Duration::from_millis(3500),
        "load stopped {after:?} after the coordinator died"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_listing_whose_reader_went_away_ends_quietly() {
    // `hallmark runs list | head -0`: the reader is gone before the first line is written. The
    // command ends as other Unix tools do (SIGPIPE), with no panic and no backtrace on stderr.
    let dir = tempdir("pipe");
    drop(hallmark_store::Store::open(&dir).expect("an empty store"));
    let mut child = hallmark()
        .args(["runs", "list", "--results", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--max-connections` takes 1 to 1 000 000 connections; anything else is a usage error naming
/// the option, and `run` takes it only with `--listen`.
#[test]
fn max_connections_is_checked() {
    for bad in ["0", "many", "1000001"] {
        let out = run(&[
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--ca",
            "ca.pem",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
            "--max-connections",
            bad,
        ]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--max-connections"), "{bad}: {err}");
    }
    let out = run(&["run", "plan.toml", "--max-connections", "10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}
