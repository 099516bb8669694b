//! Every hallmark command line in `deploy/` (systemd units, the Slurm batch script, the Kubernetes
//! manifests) parses with this binary's own argument parser, its variables given sample values:
//! a renamed or removed option breaks this test, not a hall's deployment. The files themselves are
//! checked by their tools in `tests/deploy.rs` (`systemd-analyze verify`, `kubectl kustomize`,
//! `shellcheck`).

use super::Cli;
use clap::Parser;
use std::path::Path;

/// Sample values of the variables the files use, as the deployment would set them.
const SAMPLES: &[(&str, &str)] = &[
    // systemd (EnvironmentFile=, Environment=, the instance name)
    ("${COORDINATOR}", "coordinator.hall1.example:4433"),
    ("${NODE}", "r01n01"),
    ("${HALL}", "hall1"),
    ("${ROW}", "row1"),
    ("${RACK}", "rack01"),
    ("${BACKEND}", "cuda"),
    ("${RESULTS}", "/var/lib/hallmark/results"),
    ("%i", "weekly"),
    // Kubernetes ($(VAR) from the container's env, $VAR in the probe's shell)
    (
        "$(RESULTS_URL)",
        "postgres://hallmark@db.hall1.example/hallmark",
    ),
    ("$NODE_NAME", "gpu-node-001"),
    ("$HALL", "hall1"),
    ("$ROW", "row1"),
    ("$RACK", "rack01"),
    // Slurm (the batch script's shell variables and the probe step's arguments)
    ("$1:$2", "batch-host:4433"),
    ("$3", "/etc/hallmark/pki"),
    ("$4", "hall1"),
    ("$5", "row1"),
    ("$6", "cuda"),
    ("$node", "gpu-node-001"),
    ("$rack", "rack01"),
    ("$plan", "plan.toml"),
    ("$port", "4433"),
    ("$pki", "/etc/hallmark/pki"),
    ("$results", "hallmark-results"),
    ("${spec_args[@]}", "--spec spec.toml"),
];

fn deploy_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The words of a command line after the program, variables replaced, shell quotes dropped.
fn words(line: &str) -> Vec<String> {
    let mut text = line.to_owned();
    for (var, value) in SAMPLES {
        text = text.replace(var, value);
    }
    assert!(
        !text.contains('$') && !text.contains("%i"),
        "a variable without a sample value in: {text}"
    );
    text.split_whitespace()
        .map(|w| w.trim_matches('"').to_owned())
        .collect()
}

/// Parses `args` (after the program name) with the real parser; the error names the file.
fn parses(file: &str, args: &[String]) {
    let argv = std::iter::once("hallmark".to_owned()).chain(args.iter().cloned());
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!("{file}: `hallmark {}` does not parse:\n{e}", args.join(" "));
    }
}

#[test]
fn the_systemd_units_command_lines_parse() {
    let mut seen = 0;
    for unit in [
        "systemd/hallmark-probe.service",
        "systemd/hallmark-coordinator.service",
        "systemd/hallmark-run@.service",
        "systemd/hallmark-compare@.service",
    ] {
        let text = deploy_file(unit);
        for line in text.lines().filter(|l| l.starts_with("ExecStart=")) {
            let line = line.trim_start_matches("ExecStart=");
            let line = line
                .strip_prefix("/usr/local/bin/hallmark ")
                .unwrap_or_else(|| panic!("{unit}: ExecStart= runs /usr/local/bin/hallmark"));
            parses(unit, &words(line));
            seen += 1;
        }
    }
    assert_eq!(seen, 4, "one ExecStart= per service");
}

#[test]
fn the_kubernetes_manifests_command_lines_parse() {
    let job = deploy_file("kubernetes/coordinator-job.yaml");
    let args = job
        .lines()
        .find_map(|l| l.trim().strip_prefix("args: "))
        .expect("the Job's args: [...] line");
    let args: Vec<String> = serde_json::from_str(args).expect("args as a flow sequence of strings");
    let args: Vec<String> = args.iter().flat_map(|a| words(a)).collect();
    assert_eq!(args[0], "run");
    parses("coordinator-job.yaml", &args);

    let probe = deploy_file("kubernetes/probe-daemonset.yaml");
    let line = probe
        .lines()
        .find_map(|l| l.trim().strip_prefix("exec hallmark "))
        .expect("the probe's `exec hallmark probe …` line");
    parses("probe-daemonset.yaml", &words(line));
}

#[test]
fn the_slurm_scripts_command_lines_parse() {
    let script = deploy_file("slurm/hallmark-run.sbatch");
    // Continuation lines joined into one.
    let joined = script.replace("\\\n", " ");
    let mut seen = 0;
    for line in joined.lines().map(str::trim) {
        let rest = line
            .strip_prefix("exec \"$0\" ")
            .or_else(|| line.strip_prefix("\"$bin\" "));
        if let Some(rest) = rest {
            parses("hallmark-run.sbatch", &words(rest));
            seen += 1;
        }
    }
    assert_eq!(seen, 2, "the probe step and the coordinator's run");
}
