//! A coordinator killed outright (SIGKILL) mid-phase leaves its run "running" in the store; readers
//! show it as interrupted, with the reason, because its process is gone (see
//! `hallmark_store::liveness`). `hallmark run --resume RUN` on the same address and CA then
//! collects what the probe still held (the telemetry of its last seconds and its phase report),
//! stores it, and finishes the run INCOMPLETE saying what was recovered.

mod common;

use common::process::*;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn a_run_whose_coordinator_was_killed_is_listed_as_interrupted_and_resumed_without_loss() {
    let LongRun {
        dir,
        node: _,
        cluster,
        mut coordinator,
        probe: _probe,
        lines,
    } = start_long_run("interrupted");
    assert!(
        wait_line(
            &lines,
            "phase 0 (steady) scheduled",
            Duration::from_secs(30)
        )
        .is_some(),
        "the run never started"
    );
    let results = cluster.path("results");
    // While the coordinator runs, the run is running.
    let list = run(&["runs", "list", "--results", &results]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(" running "), "{text}");

    // Mid-phase (it starts 2 s after it is scheduled), kill the coordinator outright.
    std::thread::sleep(Duration::from_millis(3000));
    coordinator.0.kill().unwrap();
    let _ = coordinator.0.wait();

    let list = run(&["runs", "list", "--results", &results, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let r = &v[0];
    assert_eq!(r["status"], "interrupted", "{v}");
    let why = r["status_reason"].as_str().unwrap();
    assert!(
        why.contains("coordinator") && why.contains("ended"),
        "{why}"
    );
    let list = run(&["runs", "list", "--results", &results]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("interrupted"), "{text}");

    let id = r["run_id"].as_str().unwrap();
    let show = run(&["runs", "show", id, "--results", &results, "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(s["status"], "interrupted", "{s}");
    let stored_before = s["samples_stored"].as_u64().unwrap();

    // A new coordinator resumes the run; the probe (never restarted) reconnects and replays.
    let started = std::time::Instant::now();
    let mut resumed = Killed(
        hallmark()
            .args(["run", "--resume", id, "--listen", &cluster.addr.to_string()])
            .args(["--ca", &cluster.path("ca.pem")])
            .args(["--cert", &cluster.path("coordinator.pem")])
            .args(["--key", &cluster.path("coordinator-key.pem")])
            .args(["--results", &results, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let status = wait_exit(
        &mut resumed.0,
        Duration::from_secs(60),
        "the resumed run did not finish in time",
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(resumed.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(2), "never complete: {stdout}");
    // Probe backoff (≤ 5 s), the replay, 2 s of quiet: well under the 20 s collection bound.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["status"], "incomplete", "{s}");
    let reason = s["status_reason"].as_str().unwrap();
    assert!(reason.contains("interrupted"), "{reason}");
    let recovered = reason
        .split("recovered ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no recovered count in {reason:?}"));
    assert!(recovered >= 1, "{reason}");
    let stored_after = s["samples_stored"].as_u64().unwrap();
    assert!(
        stored_after > stored_before,
        "recovered samples stored: {stored_before} → {stored_after}"
    );
    // The dead-man's early end, held by the probe while it was cut off, is stored too.
    assert!(
        s["phases"][0]["stopped_early"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "{s}"
    );
    let events = s["events"].to_string();
    assert!(
        events.contains("resumed after the coordinator was interrupted"),
        "{events}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hallmark run --resume RUN` with throwaway TLS paths: the refusals come before any file is read.
fn resume(results: &std::path::Path, id: &str) -> String {
    let out = run(&[
        "run",
        "--resume",
        id,
        "--listen",
        "127.0.0.1:9",
        "--ca",
        "ca.pem",
        "--cert",
        "c.pem",
        "--key",
        "k.pem",
        "--results",
        results.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn resuming_a_run_that_is_not_interrupted_is_refused_saying_what_to_do() {
    use hallmark_store::{NewRun, RunStatus, Store};
    let dir = tempdir("not-interrupted");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut store = Store::open(&dir).unwrap();
    let new = |started_at_ns| NewRun {
        name: "r".into(),
        plan_name: "p".into(),
        plan_toml: String::new(),
        hall: None,
        started_at_ns,
        hallmark_version: "0".into(),
        sample_hz: 10.0,
    };
    // Finished.
    let done = store.create_run(&new(now - 3_000_000_000)).unwrap();
    store
        .finish_run(&done, now, RunStatus::Complete, None)
        .unwrap();
    // Running, with no coordinator recorded (as a hallmark before store schema 4 left it).
    let old = store.create_run(&new(now - 2_000_000_000)).unwrap();
    // Running, its coordinator on another host heard from just now.
    let live = store.create_run(&new(now - 1_000_000_000)).unwrap();
    store
        .set_coordinator(&live, "another-host.invalid", 4242, now)
        .unwrap();
    drop(store);

    let err = resume(&dir, done.as_str());
    assert!(err.contains("has finished (complete)"), "{err}");
    assert!(err.contains("nothing to resume"), "{err}");
    assert!(err.contains(&format!("hallmark runs show {done}")), "{err}");

    let err = resume(&dir, old.as_str());
    assert!(err.contains("no record of its coordinator"), "{err}");
    assert!(err.contains("hallmark run PLAN"), "{err}");

    let err = resume(&dir, live.as_str());
    assert!(
        err.contains("still coordinated by process 4242 on another-host.invalid"),
        "{err}"
    );
    assert!(err.contains("silent for 10 s"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
