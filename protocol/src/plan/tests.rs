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
