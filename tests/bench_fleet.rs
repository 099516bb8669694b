//! `hallmark bench fleet` end to end, small: a coordinator in the bench's process, probes in the
//! probe process it starts, every sample accounted for, the JSON complete, and the probe process
//! gone afterwards — also when the bench itself is killed.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_hallmark");

/// Waits for `child` at most `limit`, killing it past that.
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let until = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the bench did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its entry is left.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_small_fleet_registers_and_loses_no_sample() {
    let child = Command::new(EXE)
        .args([
            "--quiet",
            "bench",
            "fleet",
            "--probes",
            "20",
            "--devices",
            "2",
            "--hz",
            "10",
            "--seconds",
            "3",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(180));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "probes",
        "registered",
        "registration_s",
        "samples_expected",
        "samples_stored",
        "samples_per_s",
        "coordinator_cpu_pct",
        "coordinator_rss_mb",
        "probes_rss_mb",
        "child_pid",
    ] {
        assert!(!v[field].is_null(), "{field} is null in {v}");
    }
    assert_eq!(v["probes"], 20);
    assert_eq!(v["registered"], 20);
    assert_eq!(v["samples_expected"], 20 * 2 * 10 * 3);
    assert_eq!(v["samples_stored"], v["samples_expected"], "{v}");
    assert_eq!(v["samples_lost"], 0);
    assert_eq!(v["pass"], true);
    assert_eq!(v["handshake_failures"]["certificate_rejected"], 0);
    let reg = v["registration_s"].as_f64().unwrap();
    assert!(reg > 0.0 && reg < 60.0, "{reg}");
    let rss = v["coordinator_rss_mb"].as_f64().unwrap();
    assert!(rss > 1.0, "{rss}");
    if cfg!(target_os = "linux") {
        // Every registration, batch and ack crossed loopback: at least a datagram per probe and s.
        let sent = v["udp_datagrams_sent"].as_u64().unwrap();
        let per_probe_s = v["udp_datagrams_per_probe_s"].as_f64().unwrap();
        assert!(sent >= 20 * 3 && per_probe_s >= 1.0, "{v}");
        assert!(v["udp_receive_buffer_errors"].is_u64(), "{v}");
    }
    let pid = u32::try_from(v["child_pid"].as_u64().unwrap()).unwrap();
    assert!(!alive(pid), "the probe process {pid} is still running");
}

#[test]
fn the_probe_process_ends_when_the_bench_is_killed() {
    let mut bench = Command::new(EXE)
        .args([
            "--quiet",
            "bench",
            "fleet",
            "--probes",
            "4",
            "--devices",
            "1",
            "--seconds",
            "600",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    let probes = loop {
        let c = children_of(bench.id());
        if !c.is_empty() {
            break c;
        }
        assert!(Instant::now() < until, "no probe process started");
        std::thread::sleep(Duration::from_millis(50));
    };
    // SIGKILL: no destructor of the bench runs; the probe process sees its stdin close.
    let pid = bench.id();
    bench.kill().unwrap();
    bench.wait().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while probes.iter().any(|&p| alive(p)) {
        assert!(
            Instant::now() < until,
            "the probe process outlived the bench by a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // What a killed bench cannot remove itself: its temporary directory (run store, spec).
    let prefix = format!("hallmark-fleet-{pid}-");
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let spec = entry.path().join("fleet-spec.json");
            assert!(
                !spec.exists(),
                "the probe process left its keys in {}",
                spec.display()
            );
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    for (args, needle) in [
        (&["--probes", "0"][..], "--probes 0: give 1 to"),
        (&["--probes", "2", "--devices", "0"][..], "--devices 0"),
        (&["--probes", "2", "--hz", "1000"][..], "--hz 1000"),
        (&["--probes", "2", "--seconds", "0"][..], "--seconds 0"),
    ] {
        let out = Command::new(EXE)
            .args(["bench", "fleet"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// Two handshakes at a time for 20 probes started within 0.2 s: the excess is turned away
/// ("coordinator busy"), retried, and every probe registers with no sample lost; a cap of 0 is
/// refused at the start.
#[test]
fn a_fleet_beyond_the_handshake_cap_registers_through_busy_retries() {
    let child = Command::new(EXE)
        .args([
            "--quiet",
            "bench",
            "fleet",
            "--probes",
            "20",
            "--devices",
            "1",
            "--seconds",
            "1",
            "--max-handshakes",
            "2",
            "--start-jitter",
            "0.2",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(180));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["registered"], 20, "{v}");
    assert_eq!(v["pass"], true, "{v}");
    assert_eq!(v["max_handshakes"], 2);
    assert_eq!(v["start_jitter_s"], 0.2);
    let f = &v["handshake_failures"];
    assert_eq!(f["retried_timeout"], 0, "{v}");
    assert_eq!(f["certificate_rejected"], 0, "{v}");
    let seen = f["retried_busy"].as_u64().unwrap();
    let refused = &v["coordinator_busy_refusals"];
    let turned_away = refused["handshakes_in_flight"].as_u64().unwrap();
    assert!(seen <= turned_away, "{v}");
    assert_eq!(refused["connections_open"], 0, "{v}");

    let out = Command::new(EXE)
        .args([
            "-q",
            "bench",
            "fleet",
            "--probes",
            "2",
            "--max-handshakes",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--max-handshakes 0"), "{stderr}");
}
