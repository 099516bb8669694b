//! A coordinator killed outright (SIGKILL) mid-phase leaves its run "running" in the store; readers
//! show it as interrupted, with the reason, because its process is gone (see
//! `hallmark_results::liveness`).

mod common;

use common::process::*;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn a_run_whose_coordinator_was_killed_is_listed_as_interrupted() {
    let dir = tempdir("interrupted");
    let node = "row1-rack01-n01";
    init_certs(&dir, &[node]);
    std::fs::write(
        dir.join("plan.toml"),
        "name = \"long\"\n[expect]\nnodes = 1\n[[phase]]\nname = \"steady\"\nworkload = \"burn\"\n\
         duration_s = 60\npattern = { kind = \"steady\", level = 1.0 }\n",
    )
    .unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let cluster = Cluster {
        dir: dir.clone(),
        addr: common::free_udp_port(),
    };
    let mut coordinator = Killed(
        cluster
            .run_listen("plan.toml")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut probe = Killed(
        cluster
            .probe(node, node)
            .args(["-v", "--sim-hall", hall])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = stderr_lines(&mut probe.0);
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
    let _ = std::fs::remove_dir_all(&dir);
}
