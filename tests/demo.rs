//! The main job end to end: `hallmark demo` (80 probes over loopback QUIC), its certification, the
//! report, the signed bundle, and Ctrl-C. These tests each run a whole simulated hall, so they take
//! turns (a lock) rather than share the machine's cores, whose timing the assertions depend on.

mod common;

use common::process::*;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// One simulated hall at a time.
static HALL: Mutex<()> = Mutex::new(());

/// Samples the run's recorded gaps account for: sampling instants a probe reached too late (each
/// gap's window at the run's rate) × the 8 GPUs of a demo node.
fn missed_samples(v: &serde_json::Value) -> u64 {
    let hz = v["sample_hz"].as_f64().unwrap();
    v["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let reason = g["reason"].as_str().unwrap();
            assert!(reason.contains("sampler late by"), "{reason}");
            let ns = g["to_ns"].as_i64().unwrap() - g["from_ns"].as_i64().unwrap();
            (ns as f64 * hz / 1e9).round() as u64 * 8
        })
        .sum()
}

#[test]
fn demo_quick_stores_every_expected_sample_and_shows_the_hot_rack() {
    let _turn = HALL.lock().unwrap_or_else(|e| e.into_inner());
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
    // Every sample stored once, or (on a machine too loaded to sample 80 nodes on time) its
    // instant recorded as a gap with the cause; a run with a sample missing is not complete.
    let missed = missed_samples(&v);
    assert_eq!(
        v["samples_stored"].as_u64().unwrap() + missed,
        expected,
        "every sample stored once or accounted for by a gap"
    );
    assert_eq!(
        v["status"],
        if missed == 0 {
            "complete"
        } else {
            "incomplete"
        }
    );
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

    // The quick demo was certified against the built-in spec: its 8 s steady phase cannot show 20 s
    // of sustained power, so that criterion is INCOMPLETE, not PASS. The facility's meters catch
    // what the GPUs cannot: the undersized rack's coolant supply climbing before its GPUs
    // throttle, row1-rack02's PDU reading 20 % under the power its GPUs draw (the energy balance,
    // and its liquid capture against that PDU), and row2-rack01's CDU at 40 % flow (ΔT). Those
    // are the only FAILs; every other rack's facility verdicts pass.
    assert_eq!(v["spec"], "demo-100kw");
    assert_eq!(v["verdict"], "FAIL", "{}", v["verdict"]);
    let verdicts = v["verdicts"].as_array().unwrap();
    assert!(verdicts
        .iter()
        .any(|x| x["criterion"] == "rack-sustained-power" && x["status"] == "INCOMPLETE"));
    let failing: Vec<(&str, &str)> = verdicts
        .iter()
        .filter(|x| x["status"] == "FAIL")
        .map(|x| {
            (
                x["criterion"].as_str().unwrap(),
                x["subject"].as_str().unwrap(),
            )
        })
        .collect();
    let mut failing = failing;
    failing.sort();
    assert_eq!(
        failing,
        [
            ("coolant-delta-t", "row2-rack01"),
            ("coolant-supply", "row2-rack03"),
            ("energy-balance", "row1-rack02"),
            ("heat-balance", "row1-rack02"),
        ]
    );
    for criterion in [
        "energy-balance",
        "heat-balance",
        "coolant-delta-t",
        "pdu-peak-power",
    ] {
        assert!(
            verdicts
                .iter()
                .filter(|x| x["criterion"] == criterion)
                .filter(
                    |x| !["row1-rack02", "row2-rack01"].contains(&x["subject"].as_str().unwrap())
                )
                .all(|x| x["status"] == "PASS"),
            "{criterion}"
        );
    }
    let energy = verdicts
        .iter()
        .find(|x| x["criterion"] == "energy-balance" && x["subject"] == "row1-rack02")
        .unwrap();
    let ratio = energy["measured"].as_f64().unwrap();
    assert!(
        (115.0..140.0).contains(&ratio),
        "GPU-side over PDU, % (1 / 0.8 = 125): {energy}"
    );
    for r in v["racks"].as_array().unwrap() {
        let (pdu, gpu) = (
            r["pdu_peak_kw"].as_f64().unwrap(),
            r["peak_kw"].as_f64().unwrap(),
        );
        if r["rack"] == "row1-rack02" {
            assert!(
                (0.75..0.85).contains(&(pdu / gpu)),
                "the PDU reads 0.8 ×: {r}"
            );
        } else {
            assert!((0.97..1.05).contains(&(pdu / gpu)), "{r}");
        }
        assert!(r["cdu_heat_removed_kw"].as_f64().unwrap() > 70.0, "{r}");
    }
    // Every output of the simulated hall says so, with how much of it was simulated.
    let banner = "SIMULATED: 640 of 640 devices on 80 of 80 nodes are simulated";
    assert!(
        v["simulated"]
            .as_str()
            .unwrap_or_default()
            .starts_with(banner),
        "{}",
        v["simulated"]
    );
    assert_eq!(v["simulation"]["simulated_devices"], 640);

    // certify again with a spec of its own: exit code 1 on FAIL.
    let spec = dir.join("spec.toml");
    std::fs::write(
        &spec,
        "name = \"tight\"\n[[criterion]]\nid = \"peak\"\nkind = \"peak_power\"\nscope = \"rack\"\nmax = \"90 kW\"\n",
    )
    .unwrap();
    let r = results.to_str().unwrap();
    let out = run(&[
        "certify",
        run_id,
        "--spec",
        spec.to_str().unwrap(),
        "--results",
        r,
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["overall"], "FAIL");
    assert_eq!(c["verdicts"].as_array().unwrap().len(), 8);
    assert!(
        c["simulated"]
            .as_str()
            .unwrap_or_default()
            .starts_with(banner),
        "{c}"
    );
    let text = run(&[
        "certify",
        run_id,
        "--spec",
        spec.to_str().unwrap(),
        "--results",
        r,
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with(&format!("*** {banner}")), "{text}");
    assert!(text.trim_end().ends_with("***"), "{text}");
    // A spec with a unit of the wrong kind is an error: exit code 3, the file and the line named.
    std::fs::write(
        &spec,
        "name = \"bad\"\n[[criterion]]\nid = \"peak\"\nkind = \"peak_power\"\nmax = \"90 °C\"\n",
    )
    .unwrap();
    let out = run(&[
        "certify",
        run_id,
        "--spec",
        spec.to_str().unwrap(),
        "--results",
        r,
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.toml:5:") && err.contains("power"),
        "{err}"
    );

    // The report: self-contained HTML with the verdicts of the latest certification.
    let report = dir.join("report");
    let out = run(&[
        "report",
        run_id,
        "--results",
        r,
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("FAIL") && html.contains("row2-rack03"));
    assert!(!html.contains("<script"));
    assert!(
        html.contains(&format!("<div class=\"simulated\">{banner}")),
        "no banner"
    );
    assert!(html.contains("<title>hallmark report — SIMULATED — "));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap())
            .unwrap();
    assert!(json["simulated"]
        .as_str()
        .unwrap_or_default()
        .starts_with(banner));
    for file in ["summary.csv", "verdicts.csv"] {
        let csv = std::fs::read_to_string(report.join(file)).unwrap();
        let mut lines = csv.lines();
        assert!(lines.next().unwrap().ends_with(",simulated"), "{file}");
        assert!(lines.all(|l| l.ends_with(",true")), "{file}: {csv}");
    }
    let samples = std::fs::read_to_string(report.join("samples.csv")).unwrap();
    assert_eq!(
        samples.lines().count() as u64,
        expected + 1,
        "one row per sample and a header"
    );

    // The signed bundle: verified with the right key, refused after any change or with another key.
    let keys = dir.join("keys");
    assert!(run(&["keygen", "--out", keys.to_str().unwrap()])
        .status
        .success());
    assert_eq!(mode(&keys.join("signing.key")), 0o600);
    let bundle = dir.join("run.bundle");
    let key = keys.join("signing.key");
    let out = run(&[
        "bundle",
        run_id,
        "--results",
        r,
        "--key",
        key.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = keys.join("signing.pub");
    let verify = |file: &std::path::Path, public: &std::path::Path| {
        run(&[
            "verify",
            file.to_str().unwrap(),
            "--pubkey",
            public.to_str().unwrap(),
        ])
    };
    let verified = verify(&bundle, &public);
    assert!(verified.status.success());
    assert!(String::from_utf8_lossy(&verified.stdout).contains(banner));
    let archive = std::fs::read(&bundle).unwrap();
    let manifest_text = String::from_utf8_lossy(&archive[512..4096]);
    assert!(
        manifest_text.contains(&format!("\"simulated\": \"{banner}")),
        "{manifest_text}"
    );
    let mut bytes = std::fs::read(&bundle).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let tampered = dir.join("tampered.bundle");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = verify(&tampered, &public);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAILED"));
    let other = dir.join("other-keys");
    assert!(run(&["keygen", "--out", other.to_str().unwrap()])
        .status
        .success());
    assert_eq!(
        verify(&bundle, &other.join("signing.pub")).status.code(),
        Some(1)
    );
    assert!(String::from_utf8_lossy(&shown.stdout).contains("row2-rack03"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_aborts_the_run_stops_every_load_and_keeps_what_was_measured() {
    let _turn = HALL.lock().unwrap_or_else(|e| e.into_inner());
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
            // To a file: the summary with its verdicts is megabytes, more than a pipe holds.
            .stdout(std::fs::File::create(dir.join("stdout.json")).unwrap())
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
    let status = wait_exit(
        &mut demo.0,
        Duration::from_secs(30),
        "the demo did not stop after Ctrl-C",
    );
    let stdout = std::fs::read_to_string(dir.join("stdout.json")).unwrap();
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

#[test]
fn the_demo_fails_the_undersized_rack_on_temperature_and_throttling_and_passes_the_rest() {
    let _turn = HALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir("demo-full");
    let results = dir.join("results");
    let out = run(&["demo", "--json", "--results", results.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["samples_stored"].as_u64().unwrap() + missed_samples(&v),
        v["samples_expected"].as_u64().unwrap()
    );
    assert_eq!(v["verdict"], "FAIL");
    let verdicts = v["verdicts"].as_array().unwrap();
    let failing = |criterion: &str| -> Vec<String> {
        verdicts
            .iter()
            .filter(|x| x["criterion"] == criterion && x["status"] == "FAIL")
            .map(|x| x["subject"].as_str().unwrap().to_string())
            .collect()
    };
    // Every GPU of the rack with undersized cooling runs above its max-operating temperature and
    // throttles; no GPU elsewhere does.
    for criterion in ["gpu-temperature", "throttle-sw-thermal"] {
        let f = failing(criterion);
        assert_eq!(f.len(), 80, "{criterion}: {f:?}");
        assert!(
            f.iter().all(|s| s.starts_with("row2-rack03-")),
            "{criterion}: {f:?}"
        );
    }
    // Nothing fails outside that rack but the two facility faults, each on its own cross-check
    // (the GPUs see neither: row1-rack02's PDU, 20 % low, also shows less than the sustained power
    // its GPUs drew, and the energy balance says the meter is the suspect), and nothing at all
    // fails on GPU-side power, hardware throttling, skew, inventory or coverage.
    for x in verdicts.iter().filter(|x| x["status"] == "FAIL") {
        let (criterion, subject) = (
            x["criterion"].as_str().unwrap(),
            x["subject"].as_str().unwrap(),
        );
        let facility_fault = matches!(
            (criterion, subject),
            (
                "energy-balance" | "heat-balance" | "pdu-sustained-power",
                "row1-rack02"
            ) | ("coolant-delta-t", "row2-rack01")
        );
        assert!(subject.starts_with("row2-rack03") || facility_fault, "{x}");
    }
    let of = |criterion: &str| -> Vec<&serde_json::Value> {
        verdicts
            .iter()
            .filter(|x| x["criterion"] == criterion)
            .collect()
    };
    assert_eq!(
        failing("energy-balance"),
        ["row1-rack02"],
        "{:#?}",
        of("energy-balance")
    );
    // The throttling rack sustains about 94 kW against the 95 kW limit: its PDU's ±1 % meter
    // noise decides that verdict either way, and its GPU-side one stands beside it.
    let pdu_sustained = failing("pdu-sustained-power");
    assert!(
        pdu_sustained.contains(&"row1-rack02".to_string())
            && pdu_sustained
                .iter()
                .all(|r| r == "row1-rack02" || r == "row2-rack03"),
        "{:#?}",
        of("pdu-sustained-power")
    );
    assert_eq!(failing("coolant-delta-t"), ["row2-rack01"]);
    for criterion in [
        "rack-peak-power",
        "throttle-hw-thermal",
        "throttle-hw-power-brake",
        "start-skew",
        "inventory",
        "coverage",
        "wrong-elements",
    ] {
        assert!(failing(criterion).is_empty(), "{criterion}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_probe_on_the_cpu_backend_burns_for_real_and_reports_what_it_achieved() {
    let _turn = HALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir("cpu");
    let node = "cpu-node";
    init_certs(&dir, &[node]);
    std::fs::write(
        dir.join("plan.toml"),
        "name = \"cpu-burn\"\n[expect]\nnodes = 1\ndevices_per_node = 1\n\
         [[phase]]\nname = \"half\"\nworkload = \"burn\"\nduration_s = 1.5\n\
         pattern = { kind = \"steady\", level = 0.5 }\n\
         [[phase]]\nname = \"full\"\nworkload = \"burn\"\nduration_s = 1.5\n\
         pattern = { kind = \"steady\", level = 1.0 }\n",
    )
    .unwrap();
    let cluster = Cluster {
        dir: dir.clone(),
        addr: common::free_udp_port(),
    };
    let mut coordinator = Killed(
        cluster
            .run_listen("plan.toml")
            .arg("--json")
            .stdout(std::fs::File::create(dir.join("out.json")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _probe = Killed(
        cluster
            .probe(node, node)
            .args(["--rack", "rack1", "--backend", "cpu", "--threads", "1"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let status = wait_exit(
        &mut coordinator.0,
        Duration::from_secs(60),
        "the run did not finish",
    );
    let out = std::fs::read_to_string(dir.join("out.json")).unwrap();
    assert!(status.success(), "{status:?}: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "complete");
    // One CPU socket, 10 Hz, 3 s.
    assert_eq!(v["samples_expected"].as_u64(), Some(30));
    assert_eq!(v["samples_stored"].as_u64(), Some(30));
    let phases = v["phases"].as_array().unwrap();
    let gflops = |i: usize| phases[i]["gflops"].as_f64().unwrap_or(0.0);
    // Real SGEMM work was done and checked: more at full load than at half.
    assert!(
        gflops(0) > 1.0 && gflops(1) > gflops(0),
        "{} then {}",
        gflops(0),
        gflops(1)
    );
    assert_eq!(phases[0]["wrong_elements"].as_u64(), Some(0));
    assert_eq!(phases[1]["wrong_elements"].as_u64(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
