//! Unit tests of plan parsing: the built-in plans, defaults, error positions and wording.
//! Whole plan files, good and bad, are tested in `protocol/tests/plan_files.rs`.

use super::errors::line_col;
use super::*;

fn err(text: &str) -> PlanError {
    parse_plan(text, "t.toml").expect_err("plan should be refused")
}

const HEAD: &str = "name = \"t\"\n[expect]\nnodes = 2\n";

#[test]
fn demo_plans_parse_and_last_as_designed() {
    let demo = demo_plan(false);
    assert_eq!(demo.name, "demo");
    assert_eq!(demo.total_duration_ms(), 60_000);
    assert_eq!(demo.expect.node_count(), 80);
    assert_eq!(demo.expect.devices_per_node, Some(8));
    assert_eq!(demo.limits.max_rack_kw, Some(130.0));
    assert_eq!(
        demo.phases[2].pattern,
        Pattern::Square {
            low: 0.2,
            high: 1.0,
            period_ms: 1000,
            duty: 0.5
        }
    );
    let quick = demo_plan(true);
    assert_eq!(quick.total_duration_ms(), 15_000);
    let names: Vec<_> = quick.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ramp", "steady", "square"]);
}

#[test]
fn defaults_apply() {
    let plan = parse_plan(
        &format!("{HEAD}[[phase]]\nname = \"rest\"\nworkload = \"idle\"\nduration_s = 0.25\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(plan.sample_hz, DEFAULT_SAMPLE_HZ);
    assert_eq!(plan.expect.timeout_ms, 120_000);
    assert_eq!(plan.limits, Limits::default());
    assert_eq!(plan.phases[0].duration_ms, 250);
    assert_eq!(plan.phases[0].workload, Workload::Idle);
    assert_eq!(plan.phases[0].pattern, Pattern::Steady { level: 0.0 });
}

#[test]
fn workload_table_form_and_integers_for_levels() {
    let plan = parse_plan(
        &format!("{HEAD}[[phase]]\nname = \"a\"\nworkload = {{ kind = \"burn\" }}\nduration_s = 1\n[phase.pattern]\nkind = \"ramp\"\nfrom = 0\nto = 1\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(plan.phases[0].workload, Workload::Burn);
    assert_eq!(plan.phases[0].pattern, Pattern::Ramp { from: 0.0, to: 1.0 });
}

#[test]
fn line_col_counts_characters() {
    let text = "ab\nçd\n";
    assert_eq!(line_col(text, 0), (1, 1));
    assert_eq!(line_col(text, 3), (2, 1));
    assert_eq!(line_col(text, 5), (2, 2)); // after the two-byte 'ç'
    assert_eq!(line_col(text, 100), (3, 1));
}

#[test]
fn key_that_another_pattern_takes_is_refused_at_the_key() {
    let e = err(&format!(
        "{HEAD}[[phase]]\nname = \"a\"\nworkload = \"burn\"\nduration_s = 1\npattern = {{ kind = \"ramp\", level = 1.0, to = 1.0 }}\n"
    ));
    assert_eq!((e.line, e.column), (8, 28), "{e}");
    assert!(
        e.message
            .contains("`level` does not apply to a `ramp` pattern"),
        "{e}"
    );
}

#[test]
fn steps_that_do_not_fit_are_refused() {
    let e = err(&format!(
        "{HEAD}[[phase]]\nname = \"s\"\nworkload = \"burn\"\nduration_s = 30\npattern = {{ kind = \"steps\", levels = [0.25, 0.5, 0.75, 1.0], step_s = 10 }}\n"
    ));
    assert!(e.message.contains("level 4 would never run"), "{e}");
}

#[test]
fn display_is_file_line_column_message() {
    let e = PlanError {
        file: "p.toml".into(),
        line: 3,
        column: 7,
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "p.toml:3:7: bad");
}

fn one_phase(workload: &str, rest: &str) -> String {
    format!("{HEAD}[[phase]]\nname = \"p\"\nworkload = {workload}\nduration_s = 10\n{rest}")
}

#[test]
fn fabric_workloads_take_their_parameters_and_default_to_no_device_load() {
    use crate::fabric::{CollectiveAlgorithm, CollectiveOp, CollectiveParams, FabricParams};
    let plan = parse_plan(&one_phase("\"latency\"", ""), "t.toml").unwrap();
    let p = &plan.phases[0];
    assert_eq!(p.workload, Workload::Latency);
    assert_eq!(p.pattern, Pattern::Steady { level: 0.0 });
    assert_eq!(
        p.fabric,
        Some(FabricParams::Latency(crate::fabric::LatencyParams {
            packet_bytes: 64
        }))
    );
    let plan = parse_plan(
        &one_phase(
            "{ kind = \"collective\", ops = [\"all-reduce\", \"broadcast\"], min_size = 8, max_size = \"64MiB\", algorithm = \"ring\", iterations = 10, transport = \"data-plane\" }",
            "pattern = { kind = \"steady\", level = 1.0 }\n",
        ),
        "t.toml",
    )
    .unwrap();
    let p = &plan.phases[0];
    assert_eq!(
        p.pattern,
        Pattern::Steady { level: 1.0 },
        "fabric under load"
    );
    assert_eq!(
        p.fabric,
        Some(FabricParams::Collective(CollectiveParams {
            ops: vec![CollectiveOp::AllReduce, CollectiveOp::Broadcast],
            min_bytes: 8,
            max_bytes: 64 << 20,
            algorithm: CollectiveAlgorithm::Ring,
            transport: crate::fabric::CollectiveTransport::DataPlane,
            iterations: Some(10),
        }))
    );
    let plan = parse_plan(&one_phase("\"collective\"", ""), "t.toml").unwrap();
    assert_eq!(
        plan.phases[0].fabric,
        Some(FabricParams::Collective(CollectiveParams::default()))
    );
    let plan = parse_plan(
        &one_phase("{ kind = \"target-power\", target_w = 650 }", ""),
        "t.toml",
    )
    .unwrap();
    assert_eq!(plan.phases[0].workload, Workload::TargetPower);
    assert_eq!(plan.phases[0].target_power_w, Some(650.0));
    assert_eq!(plan.phases[0].pattern, Pattern::Steady { level: 1.0 });
    let plan = parse_plan(
        &one_phase(
            "\"memory-bandwidth\"",
            "pattern = { kind = \"steady\", level = 1.0 }\n",
        ),
        "t.toml",
    )
    .unwrap();
    assert_eq!(plan.phases[0].workload, Workload::MemoryBandwidth);
    assert_eq!(plan.phases[0].fabric, None);
}

#[test]
fn fabric_parameters_are_checked_where_they_are_written() {
    let e = err(&one_phase(
        "{ kind = \"collective\", ops = [\"all-reduse\"] }",
        "",
    ));
    assert!(e.message.contains("unknown collective `all-reduse`"), "{e}");
    assert!(e.message.contains("all-reduce, all-gather"), "{e}");
    assert_eq!((e.line, e.column), (6, 42), "{e}");
    let e = err(&one_phase(
        "{ kind = \"collective\", max_size = \"64 furlongs\" }",
        "",
    ));
    assert!(e.message.contains("`max_size` must be a size"), "{e}");
    let e = err(&one_phase(
        "{ kind = \"collective\", min_size = \"1MiB\", max_size = 8 }",
        "",
    ));
    assert!(e.message.contains("larger than `max_size`"), "{e}");
    let e = err(&one_phase("{ kind = \"burn\", packet_bytes = 64 }", ""));
    assert!(
        e.message.contains(
            "`packet_bytes` does not apply to a `burn` workload, which takes no parameters"
        ),
        "{e}"
    );
    let e = err(&one_phase("{ kind = \"latency\", target_w = 64 }", ""));
    assert!(e.message.contains("which takes packet_bytes"), "{e}");
    let e = err(&one_phase(
        "{ kind = \"latency\", packet_bytes = 9000 }",
        "",
    ));
    assert!(e.message.contains("40 to 1472 bytes"), "{e}");
    let e = err(&one_phase("\"target-power\"", ""));
    assert!(e.message.contains("needs `target_w`"), "{e}");
    let e = err(&one_phase("{ kind = \"target-power\", target_w = -5 }", ""));
    assert!(e.message.contains("greater than 0"), "{e}");
    let e = err(&one_phase(
        "{ kind = \"collective\", algorithm = \"tree\" }",
        "",
    ));
    assert!(e.message.contains("auto, ring, latency-optimal"), "{e}");
    let e = err(&one_phase(
        "{ kind = \"collective\", transport = \"rdma\" }",
        "",
    ));
    assert!(e.message.contains("auto, data-plane, nccl"), "{e}");
    let e = err(&one_phase(
        "{ kind = \"collective\", algorithm = \"nccl\" }",
        "",
    ));
    assert!(e.message.contains("auto, ring, latency-optimal"), "{e}");
    let e = err(&one_phase("{ kind = \"collective\", bogus = 1 }", ""));
    assert!(e.message.contains("bogus"), "{e}");
    let e = err(&one_phase("\"memory-bandwidth\"", ""));
    assert!(e.message.contains("needs a `pattern`"), "{e}");
}
