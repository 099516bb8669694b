//! The device commands of the `hallmark` binary on a machine without NVIDIA GPUs (as these tests
//! run): `--backend cuda` is a clear error with its own exit code, `auto` falls back to the cpu
//! backend, `probe --list-devices` reports sensors truthfully, and `bench gemm` burns the CPUs
//! for real, and `scripts/gpu-check.sh` without a GPU still prints and packs its summary. On a GPU
//! host the cuda cases check the success path instead.

mod common;

use common::process::*;
use serde_json::Value;

/// The exit code for "the cuda backend cannot run here".
const EXIT_NO_CUDA: i32 = 4;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}\nstderr: {}",
            stdout(o),
            stderr(o)
        )
    })
}

/// Whether this host runs the cuda backend (then the "missing library" cases do not apply).
fn gpu_host() -> bool {
    run(&["probe", "--list-devices", "--backend", "cuda", "--json"])
        .status
        .success()
}

fn assert_no_cuda(o: &std::process::Output) {
    assert_eq!(o.status.code(), Some(EXIT_NO_CUDA), "{}", stderr(o));
    let err = stderr(o);
    assert!(
        err.contains("libcuda.so.1") && err.contains("libnvidia-ml.so.1"),
        "{err}"
    );
    assert!(err.contains("install the NVIDIA driver"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_cuda_backend_without_cuda_is_a_clear_error_with_its_own_exit_code() {
    let list = run(&["probe", "--list-devices", "--backend", "cuda", "--json"]);
    if list.status.success() {
        // A GPU host: the listing is the cuda backend's.
        let v = json(&list);
        assert_eq!(v["backend"], "cuda");
        assert!(!v["devices"].as_array().unwrap().is_empty());
        // What the Hello lists: the driver's versions, read from the driver and NVML.
        let software = v["software"].as_array().unwrap();
        for name in ["cuda_driver", "nvml_driver"] {
            assert!(software.iter().any(|s| s["name"] == name), "{software:?}");
        }
        return;
    }
    assert_no_cuda(&list);
    // bench names the compute libraries too.
    let bench = run(&["bench", "gemm", "--backend", "cuda", "--seconds", "1"]);
    assert_no_cuda(&bench);
    let err = stderr(&bench);
    assert!(
        err.contains("libcublas.so.13") && err.contains("libnvrtc.so.13"),
        "{err}"
    );

    // A probe with a complete command line stops at its backend, before connecting.
    let dir = tempdir("gpu-probe");
    init_certs(&dir, &["g1"]);
    let out = run(&[
        "probe",
        "--coordinator",
        "127.0.0.1:9",
        "--ca",
        dir.join("ca.pem").to_str().unwrap(),
        "--cert",
        dir.join("nodes/g1.pem").to_str().unwrap(),
        "--key",
        dir.join("nodes/g1-key.pem").to_str().unwrap(),
        "--node",
        "g1",
        "--rack",
        "r1",
        "--backend",
        "cuda",
        "--dtype",
        "tf32",
    ]);
    assert_no_cuda(&out);
    let _ = std::fs::remove_dir_all(&dir);

    // The exit code is documented.
    for cmd in [&["probe", "--help"][..], &["bench", "gemm", "--help"][..]] {
        let help = stdout(&run(cmd));
        assert!(
            help.contains("4 the cuda backend cannot run here"),
            "{help}"
        );
    }
}

#[test]
fn auto_falls_back_to_the_cpu_backend_and_says_why() {
    if gpu_host() {
        return;
    }
    for args in [
        &["probe", "--list-devices", "--backend", "auto", "--json"][..],
        // auto is the default of --list-devices.
        &["probe", "--list-devices", "--json"][..],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{}", stderr(&out));
        let v = json(&out);
        assert_eq!(v["backend"], "cpu", "{v}");
        assert_eq!(v["auto"]["chose"], "cpu");
        let why = v["auto"]["why"].as_str().unwrap();
        assert!(why.contains("libcuda.so.1"), "{why}");
        let libs = v["libraries"].as_array().unwrap();
        assert_eq!(libs.len(), 5, "driver, NVML, cuBLAS, NVRTC, NCCL: {libs:?}");
        assert!(libs
            .iter()
            .any(|l| l["library"] == "libcuda.so.1" && l["present"] == false));
        // The cpu backend's software: the kernel release, as Linux names it.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let software = v["software"].as_array().unwrap();
        assert!(
            software
                .iter()
                .any(|s| s["name"] == "kernel" && s["version"] == release.trim()),
            "{software:?}"
        );
    }
    // The choice is logged.
    let out = run(&["probe", "--list-devices"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("backend auto: cpu"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("backend cpu (auto: "),
        "{}",
        stdout(&out)
    );
}

/// Sensor names of `device` that read `what`.
fn sensors_of<'a>(v: &'a Value, device: u64, what: &[&str]) -> Vec<&'a Value> {
    v["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["device"].as_u64() == Some(device))
        .filter(|s| {
            let n = s["name"].as_str().unwrap_or("").to_lowercase();
            what.iter().any(|w| n.contains(w))
        })
        .collect()
}

#[test]
fn list_devices_on_the_cpu_backend_reports_sensors_truthfully() {
    let out = run(&["probe", "--list-devices", "--backend", "cpu", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["backend"], "cpu");
    let devices = v["devices"].as_array().unwrap();
    assert!(!devices.is_empty());
    assert!(devices.iter().all(|d| d["kind"] == "CpuSocket"));
    for s in v["sensors"].as_array().unwrap() {
        assert!(s["name"].as_str().is_some_and(|n| !n.is_empty()), "{s}");
        assert!(s["available"].is_boolean(), "{s}");
        assert!(s["detail"].as_str().is_some_and(|d| !d.is_empty()), "{s}");
    }
    let readings = v["readings"].as_array().unwrap();
    assert_eq!(readings.len(), devices.len());
    for r in readings {
        let d = r["device"].as_u64().unwrap();
        // A value in the reading needs a sensor that says it works; an absent sensor reads null.
        let power = sensors_of(&v, d, &["power", "rapl", "energy"]);
        if power.iter().all(|s| s["available"] == false) {
            assert!(r["power_w"].is_null(), "power without a power sensor: {r}");
            assert!(r["energy_j"].is_null(), "energy without a sensor: {r}");
        }
        let temp = sensors_of(&v, d, &["temperature"]);
        if temp.iter().all(|s| s["available"] == false) {
            assert!(
                r["gpu_temp_c"].is_null(),
                "temperature without a sensor: {r}"
            );
        }
        // No CPU has an SM clock or memory temperature.
        assert!(
            r["sm_clock_mhz"].is_null() && r["mem_temp_c"].is_null(),
            "{r}"
        );
    }
    // Where this machine has no RAPL (a VM), RAPL sensors are absent.
    if !std::path::Path::new("/sys/class/powercap/intel-rapl:0/energy_uj").exists() {
        let rapl = sensors_of(&v, 0, &["rapl"]);
        assert!(rapl.iter().all(|s| s["available"] == false), "{rapl:?}");
    }

    // The text form has the same parts; --json needs --list-devices; no certificates needed.
    let text = run(&["probe", "--list-devices", "--backend", "cpu"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let t = stdout(&text);
    assert!(t.contains("backend cpu") && t.contains("sensors:"), "{t}");
    let bad = run(&["probe", "--json"]);
    assert!(!bad.status.success());
    // A real probe still needs its coordinator.
    let bad = run(&["probe", "--backend", "cpu"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--coordinator"), "{}", stderr(&bad));
    // The simulated backend lists its devices too.
    let sim = run(&[
        "probe",
        "--list-devices",
        "--backend",
        "sim",
        "--devices",
        "3",
        "--json",
    ]);
    assert!(sim.status.success(), "{}", stderr(&sim));
    assert_eq!(json(&sim)["devices"].as_array().unwrap().len(), 3);
}

#[test]
fn bench_gemm_on_the_cpu_burns_and_checks_its_results() {
    let out = run(&[
        "bench",
        "gemm",
        "--backend",
        "cpu",
        "--seconds",
        "1",
        "--json",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json(&out);
    let gflops = v["gflops"].as_f64().unwrap();
    assert!(gflops > 0.0, "{v}");
    assert_eq!(v["wrong_elements"], 0);
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["dtype"], "fp32");
    assert_eq!(v["pattern"], "steady");
    let devices = v["devices"].as_array().unwrap();
    assert!(!devices.is_empty());
    let sum: f64 = devices.iter().filter_map(|d| d["gflops"].as_f64()).sum();
    assert!((sum - gflops).abs() < 1e-6 * gflops.max(1.0));
    assert!(devices.iter().all(|d| d["samples"].as_u64() > Some(5)));

    // A square wave does about half the work of steady full load.
    let sq = run(&[
        "bench",
        "gemm",
        "--backend",
        "cpu",
        "--seconds",
        "1",
        "--json",
        "--threads",
        "1",
        "--pattern",
        "square",
        "--period-ms",
        "100",
    ]);
    assert!(sq.status.success(), "{}", stderr(&sq));
    let s = json(&sq);
    let ratio = s["gflops"].as_f64().unwrap() / gflops;
    assert!((0.15..0.85).contains(&ratio), "square/steady = {ratio}");
    assert_eq!(s["period_ms"], 100);
    assert!(s["devices"][0]["square"].is_object(), "{s}");

    // The text form prints the total.
    let text = run(&[
        "bench",
        "gemm",
        "--backend",
        "cpu",
        "--seconds",
        "0.3",
        "--threads",
        "1",
    ]);
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(stdout(&text).contains("GFLOP/s"), "{}", stdout(&text));
}

#[test]
fn bench_gemm_refuses_what_the_cpu_backend_cannot_do() {
    let cases: [(&[&str], &str); 5] = [
        (&["--dtype", "bf16"], "fp32 only"),
        (&["--kernel", "memory-bandwidth"], "for --backend cuda"),
        (&["--devices", "0"], "--devices picks GPUs"),
        (&["--seconds", "0"], "--seconds"),
        (&["--dtype", "fp8"], "unknown dtype"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["bench", "gemm", "--backend", "cpu", "--threads", "1"];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // fp32 is the cpu backend's own.
    let out = run(&[
        "bench",
        "gemm",
        "--backend",
        "cpu",
        "--dtype",
        "fp32",
        "--seconds",
        "0.2",
        "--threads",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["wrong_elements"], 0);
}

/// `scripts/gpu-check.sh --short --out DIR` on a machine without a GPU: a clear message, the
/// summary printed all the same, everything packed into DIR/gpu-check.tar.gz, exit 2. The binary
/// is given as a relative path from another directory than the repository's.
#[test]
fn gpu_check_without_a_gpu_says_why_and_still_packs_its_summary() {
    if gpu_host() {
        return; // a GPU host: the script runs the real checks there (minutes; docs/GPU.md).
    }
    for tool in ["bash", "python3", "tar"] {
        if !common::prereq::tool(tool, "--version") {
            common::prereq::missing(&format!("{tool} is needed to run scripts/gpu-check.sh"));
            return;
        }
    }
    let out = tempdir("gpu-check");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_hallmark"));
    let cwd = bin.parent().and_then(|p| p.parent()).unwrap();
    let relative = bin.strip_prefix(cwd).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gpu-check.sh");
    let console = out.join("console.txt");
    let child = std::process::Command::new("bash")
        .arg(&script)
        .args(["--short", "--out"])
        .arg(&out)
        .env("HALLMARK", relative)
        .env_remove("OUT")
        .current_dir(cwd)
        .stdout(std::fs::File::create(&console).unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bash runs");
    let mut child = Killed(child);
    let status = wait_exit(
        &mut child.0,
        std::time::Duration::from_secs(120),
        "gpu-check.sh did not end within 2 minutes without a GPU",
    );
    let text = std::fs::read_to_string(&console).unwrap();
    assert_eq!(status.code(), Some(2), "{text}");
    assert!(text.contains("(short), results in"), "{text}");
    assert!(
        text.contains("the cuda backend cannot load libcuda.so.1"),
        "{text}"
    );
    // The table comes after the message, with the reason in its first row.
    let table = &text[text.find("== summary").expect("a summary")..];
    assert!(
        table.contains("cuda backend") && table.contains("does not start (exit 4)"),
        "{table}"
    );
    assert!(table.contains("libcuda.so.1"), "{table}");
    let archive = out.join("gpu-check.tar.gz");
    assert!(
        table.contains(&format!("results packed into {}", archive.display())),
        "{table}"
    );
    let listing = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(&archive)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for f in [
        "summary.txt",
        "output.log",
        "list.json",
        "list.log",
        "list.rc",
    ] {
        assert!(
            listing.contains(&format!("gpu-check/{f}")),
            "{f}: {listing}"
        );
    }
    let summary = std::fs::read_to_string(out.join("gpu-check/summary.txt")).unwrap();
    assert!(summary.contains("does not start (exit 4)"), "{summary}");
    let _ = std::fs::remove_dir_all(&out);
}
