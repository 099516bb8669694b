//! The deployment files under `deploy/`, checked by the tools that read them: the systemd units by
//! `systemd-analyze verify` (no warning at all, the binary being this build's), the Kubernetes
//! manifests by `kubectl kustomize` (they render, with the four objects), the Slurm batch script by
//! `bash -n` and `shellcheck`. That their hallmark command lines parse is checked by the binary's
//! own unit tests (`src/cli/deploy_tests.rs`). Each tool missing is a skip outside CI and a failure
//! in CI (`.ci/run` installs them).

mod common;

use common::prereq;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

/// Whether `tool` runs (`tool ARGS`, a version query); a skip (or a CI failure) when it does not.
fn have(tool: &str, args: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        prereq::missing(&format!(
            "{tool} is not installed (the deploy files' checker)"
        ));
    }
    ok
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_systemd_units_verify_without_a_warning() {
    if !have("systemd-analyze", &["--version"]) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hallmark-units-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The units as installed, with this build's binary where they expect /usr/local/bin/hallmark,
    // and the template instantiated as its timer would.
    let mut units = Vec::new();
    for (file, name) in [
        ("hallmark-probe.service", "hallmark-probe.service"),
        (
            "hallmark-coordinator.service",
            "hallmark-coordinator.service",
        ),
        ("hallmark-run@.service", "hallmark-run@weekly.service"),
        ("hallmark-run@.timer", "hallmark-run@weekly.timer"),
        (
            "hallmark-compare@.service",
            "hallmark-compare@weekly.service",
        ),
    ] {
        let unit = std::fs::read_to_string(deploy("systemd").join(file)).unwrap();
        assert!(
            unit.contains("[Install]") || file.ends_with(".service"),
            "{file}"
        );
        let unit = unit.replace("/usr/local/bin/hallmark", env!("CARGO_BIN_EXE_hallmark"));
        std::fs::write(dir.join(name), unit).unwrap();
        units.push(dir.join(name));
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify warned:\n{said}"
    );

    // And it does catch a broken unit: a misspelt key is a warning.
    let broken = dir.join("hallmark-broken.service");
    let unit = std::fs::read_to_string(&units[0]).unwrap();
    std::fs::write(&broken, unit.replace("Restart=", "Restrat=")).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(text(&out).contains("Restrat"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_kubernetes_manifests_render_with_kustomize() {
    if !have("kubectl", &["version", "--client"]) {
        return;
    }
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy("kubernetes"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize failed:\n{}",
        text(&out)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "kind: Namespace",
        "kind: Service",
        "kind: Job",
        "kind: DaemonSet",
    ] {
        assert!(yaml.contains(kind), "{kind} missing:\n{yaml}");
    }
    assert_eq!(yaml.matches("namespace: hallmark").count(), 3, "{yaml}");
    assert!(yaml.contains("nvidia.com/gpu: 8") && yaml.contains("hostNetwork: true"));
}

#[test]
fn the_slurm_script_is_valid_shell() {
    let script = deploy("slurm/hallmark-run.sbatch");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "bash -n:\n{}", text(&out));
    if !have("shellcheck", &["--version"]) {
        return;
    }
    let out = Command::new("shellcheck").arg(&script).output().unwrap();
    assert!(out.status.success(), "shellcheck:\n{}", text(&out));
}
