//! The `hallmark` binary as an operator uses it: certificates on disk, a coordinator process and a
//! probe process over loopback, and the errors a misconfigured probe gets.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn hallmark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hallmark"));
    c.env_remove("RUST_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    hallmark().args(args).output().expect("hallmark runs")
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hallmark-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Kills the child when dropped, so a failing test leaves no process behind.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn init_certs(dir: &Path, nodes: &[&str]) {
    let out = run(&["certs", "init", "--out", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in nodes {
        let out = run(&[
            "certs",
            "issue",
            "--ca",
            dir.to_str().unwrap(),
            "--node",
            node,
            "--out",
            dir.join("nodes").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn certs_are_written_with_private_keys_closed() {
    let dir = tempdir("certs");
    init_certs(&dir, &["r01-n01"]);
    for f in ["ca.pem", "coordinator.pem"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    for f in ["ca-key.pem", "coordinator-key.pem", "nodes/r01-n01-key.pem"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    assert!(dir.join("nodes/r01-n01.pem").exists());

    // A second init would orphan every issued certificate: refused, nothing overwritten.
    let before = std::fs::read(dir.join("ca-key.pem")).unwrap();
    let out = run(&["certs", "init", "--out", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ca-key.pem"), "{err}");
    assert_eq!(std::fs::read(dir.join("ca-key.pem")).unwrap(), before);

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
    let addr = common::free_udp_port();
    let status = dir.join("status.json");
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let _coordinator = Killed(
        hallmark()
            .args([
                "coordinator",
                "--listen",
                &addr.to_string(),
                "--ca",
                &p("ca.pem"),
                "--cert",
                &p("coordinator.pem"),
                "--key",
                &p("coordinator-key.pem"),
                "--status-file",
                &p("status.json"),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let probe_args = |node: &str, cert: &str| -> Vec<String> {
        vec![
            "probe".into(),
            "--coordinator".into(),
            addr.to_string(),
            "--ca".into(),
            p("ca.pem"),
            "--cert".into(),
            p(&format!("nodes/{cert}.pem")),
            "--key".into(),
            p(&format!("nodes/{cert}-key.pem")),
            "--node".into(),
            node.into(),
            "--rack".into(),
            "rack07".into(),
            "--row".into(),
            "row2".into(),
            "--hall".into(),
            "hall-x".into(),
        ]
    };
    let _probe = Killed(
        hallmark()
            .args(probe_args("n1", "n1"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
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
    let out = hallmark().args(probe_args("n2", "n1")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate was issued to node n1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_quick_stores_every_expected_sample_and_shows_the_hot_rack() {
    let dir = tempdir("demo");
    let results = dir.join("results");
    let out = run(&[
        "demo",
        "--quick",
        "--json",
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    let expected = v["samples_expected"].as_u64().unwrap();
    // 80 nodes × 8 GPUs × 15 s × 10 Hz.
    assert_eq!(expected, 80 * 8 * 150);
    assert_eq!(
        v["samples_stored"].as_u64().unwrap(),
        expected,
        "every sample stored once"
    );
    assert_eq!(v["status"], "complete");
    let racks = v["racks"].as_array().unwrap();
    assert_eq!(racks.len(), 8);
    let temp = |r: &serde_json::Value| r["max_gpu_temp_c"].as_f64().unwrap();
    let hottest = racks
        .iter()
        .max_by(|a, b| temp(a).total_cmp(&temp(b)))
        .unwrap();
    // The built-in fault: row2-rack03's coolant loop is undersized.
    assert_eq!(hottest["rack"], "row2-rack03");
    for r in racks {
        assert!(r["peak_kw"].as_f64().unwrap() > 90.0, "{r}");
        if r["rack"] != "row2-rack03" {
            assert!(temp(hottest) > temp(r) + 5.0, "{r}");
        }
    }
    for p in v["phases"].as_array().unwrap() {
        assert!(p["start_skew_ms"].as_f64().unwrap() < 1000.0, "{p}");
        assert!(p["name"].is_string());
    }
    // The run is in the store, listed and shown by id.
    let listed = run(&["runs", "list", "--results", results.to_str().unwrap()]);
    let run_id = v["run_id"].as_str().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(run_id));
    let shown = run(&[
        "runs",
        "show",
        run_id,
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(shown.status.success());
    assert!(String::from_utf8_lossy(&shown.stdout).contains("row2-rack03"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plan for the two nodes of rack row1-rack01 in examples/hall-small.toml, about 3 s long.
const TWO_NODE_PLAN: &str = r#"
name = "two-nodes"
sample_hz = 10
[expect]
timeout_s = 20
[expect.racks]
"row1-rack01" = ["row1-rack01-n01", "row1-rack01-n02"]
[[phase]]
name = "ramp"
workload = "burn"
duration_s = 1.5
pattern = { kind = "ramp", from = 0.0, to = 1.0 }
[[phase]]
name = "steady"
workload = "burn"
duration_s = 1.5
pattern = { kind = "steady", level = 1.0 }
"#;

#[test]
fn a_run_across_processes_stores_every_sample() {
    let dir = tempdir("processes");
    let nodes = ["row1-rack01-n01", "row1-rack01-n02"];
    init_certs(&dir, &nodes);
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, TWO_NODE_PLAN).unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let addr = common::free_udp_port();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let coordinator = hallmark()
        .args([
            "run",
            &p("plan.toml"),
            "--listen",
            &addr.to_string(),
            "--ca",
            &p("ca.pem"),
            "--cert",
            &p("coordinator.pem"),
            "--key",
            &p("coordinator-key.pem"),
            "--results",
            &p("results"),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut coordinator = Killed(coordinator);
    let _probes: Vec<Killed> = nodes
        .iter()
        .map(|node| {
            Killed(
                hallmark()
                    .args([
                        "probe",
                        "--coordinator",
                        &addr.to_string(),
                        "--ca",
                        &p("ca.pem"),
                        "--cert",
                        &p(&format!("nodes/{node}.pem")),
                        "--key",
                        &p(&format!("nodes/{node}-key.pem")),
                        "--node",
                        node,
                        "--sim-hall",
                        hall,
                    ])
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    // The coordinator exits by itself once the run is stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = coordinator.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the run did not finish in time");
        std::thread::sleep(Duration::from_millis(100));
    };
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

/// Lines a child writes to stderr, collected by a thread as they come.
fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`, at most `limit`; returns when it came.
fn wait_line(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    limit: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Some(Instant::now()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn a_probe_whose_coordinator_dies_mid_phase_stops_its_load_within_the_dead_man_interval() {
    let dir = tempdir("deadman");
    let node = "row1-rack01-n01";
    init_certs(&dir, &[node]);
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        "name = \"long\"\n[expect]\nnodes = 1\n[[phase]]\nname = \"steady\"\nworkload = \"burn\"\n\
         duration_s = 60\npattern = { kind = \"steady\", level = 1.0 }\n",
    )
    .unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let addr = common::free_udp_port();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let mut coordinator = Killed(
        hallmark()
            .args([
                "run",
                &p("plan.toml"),
                "--listen",
                &addr.to_string(),
                "--ca",
                &p("ca.pem"),
                "--cert",
                &p("coordinator.pem"),
                "--key",
                &p("coordinator-key.pem"),
                "--results",
                &p("results"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut probe = Killed(
        hallmark()
            .args([
                "-v",
                "probe",
                "--coordinator",
                &addr.to_string(),
                "--ca",
                &p("ca.pem"),
                "--cert",
                &p(&format!("nodes/{node}.pem")),
                "--key",
                &p(&format!("nodes/{node}-key.pem")),
                "--node",
                node,
                "--sim-hall",
                hall,
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = stderr_lines(&mut probe.0);
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
fn ctrl_c_aborts_the_run_stops_every_load_and_keeps_what_was_measured() {
    let dir = tempdir("interrupt");
    let results = dir.join("results");
    let mut demo = Killed(
        hallmark()
            .args([
                "demo",
                "--quick",
                "--json",
                "--results",
                results.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Into the steady phase (probes register in ~1-3 s, phases start 2 s later, ramp 3 s).
    std::thread::sleep(Duration::from_secs(9));
    let pid = demo.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = demo.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(demo.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "{status:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["status"], "aborted", "{stdout}");
    assert!(
        v["status_reason"].as_str().unwrap().contains("interrupted"),
        "{stdout}"
    );
    // Measured data up to the interrupt is stored, and less than a full run's.
    let stored = v["samples_stored"].as_u64().unwrap();
    assert!(
        stored > 0 && stored < v["samples_expected"].as_u64().unwrap(),
        "{stored}"
    );
    // Every probe stopped the phase it was running and said so.
    let stopped_early: usize = v["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["stopped_early"].as_array().map_or(0, |a| a.len()))
        .sum();
    assert_eq!(stopped_early, 80, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
