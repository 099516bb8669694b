//! A run store that fills mid-run: `hallmark run --simulate` as a child whose files may not grow
//! past a size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past it fails with EFBIG as
//! on a full disk; no root needed). The run is aborted and every probe's load stopped, the error
//! names the store file and what to do, the end the store could not record is said so, and what
//! was stored before is kept and readable.
#![cfg(unix)]

mod common;

use common::process::*;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

/// Every node of examples/hall-small.toml, one long phase: the store fills long before its end.
const PLAN: &str = r#"
name = "fill"
sample_hz = 10
[expect]
nodes = 4
devices_per_node = 8
timeout_s = 30
[[phase]]
name = "steady"
workload = "burn"
duration_s = 60
pattern = { kind = "steady", level = 1.0 }
"#;

const NODES: [&str; 4] = [
    "row1-rack01-n01",
    "row1-rack01-n02",
    "row1-rack02-n01",
    "row1-rack02-n02",
];

#[test]
fn a_store_that_fills_mid_run_aborts_the_run_stops_the_load_and_says_what_to_do() {
    let dir = tempdir("full-disk");
    let results = dir.join("results");
    // The store exists before the run, its schema written: the limit leaves room for the run's
    // start and a few seconds of telemetry, no more.
    drop(hallmark_store::Store::open(&results).unwrap());
    let db = results.join(hallmark_store::DB_FILE);
    let limit = std::fs::metadata(&db).unwrap().len() + 256 * 1024;
    let plan = dir.join("plan.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let mut cmd = hallmark();
    cmd.args([
        "run",
        plan.to_str().unwrap(),
        "--simulate",
        hall,
        "--results",
    ])
    .arg(&results)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal).
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let child = Killed(cmd.spawn().unwrap());
    let out = wait_output(child, Duration::from_secs(120));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !out.status.success(),
        "a run whose store filled exited 0: {err}"
    );

    // The error names the store file, says the disk is full (or the write failed as then), and
    // what to do.
    let db_name = db.to_str().unwrap();
    let said = err
        .lines()
        .find(|l| l.contains("cannot write to the run store"))
        .unwrap_or_else(|| panic!("no store error in: {err}"));
    assert!(said.contains(db_name), "{said}");
    assert!(said.contains("the disk is full"), "{said}");
    assert!(said.contains("free space"), "{said}");
    assert!(said.contains("another results directory"), "{said}");
    // The run was aborted for it, and said so.
    assert!(
        err.contains("cannot store run data") && err.contains("stopping the load"),
        "{err}"
    );

    // Every probe stopped its load: each reported its phase ended early because of the abort.
    for node in NODES {
        assert!(
            err.lines().any(|l| l.contains(&format!(
                "node {node} ended phase 0 early: run aborted by the coordinator: cannot store run data"
            ))),
            "no early end of {node}'s load in: {err}"
        );
    }

    // What was stored before the store filled is kept and readable; the run is recorded as
    // aborted, or (the store could not take even that) the error said its end was not recorded.
    let listed = run(&[
        "runs",
        "list",
        "--json",
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let id = runs[0]["run_id"].as_str().unwrap().to_string();
    let shown = run(&[
        "runs",
        "show",
        &id,
        "--json",
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let stored = v["samples_stored"].as_u64().unwrap();
    assert!(
        stored > 0,
        "the store filled before any telemetry: raise the limit"
    );
    assert!(stored < v["samples_expected"].as_u64().unwrap(), "{v}");
    match v["status"].as_str().unwrap() {
        "aborted" => {
            let reason = v["status_reason"].as_str().unwrap();
            assert!(reason.contains("cannot store run data"), "{reason}");
        }
        other => {
            // Stored as running, its coordinator gone: shown as interrupted.
            assert_eq!(other, "interrupted", "{v}");
            assert!(
                err.contains(&format!("run {id} has stopped"))
                    && err.contains("its end could not be recorded in the run store"),
                "{err}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child's output once it has exited, at most `limit` (it is killed past that).
fn wait_output(mut child: Killed, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let mut stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let errs = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let status = wait_exit(&mut child.0, limit, "the run did not end within its limit");
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: errs.join().unwrap(),
    }
}
