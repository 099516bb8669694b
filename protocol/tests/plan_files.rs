//! Plan files: the examples parse, the built-in demo plans match their example files, malformed plans
//! are refused with the right file:line:column, and the expected-inventory check.

use std::path::PathBuf;

use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::plan::{
    demo_plan, parse_plan, Expect, ExpectedNodes, Plan, PlanError, DEMO_PLAN, DEMO_QUICK_PLAN,
};
use hallmark_protocol::{NodeId, Workload};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn example(name: &str) -> String {
    let path = examples_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example_plans() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|e| e.expect("readable directory entry").file_name())
        .filter_map(|n| n.to_str().map(str::to_string))
        .filter(|n| n.starts_with("plan-") && n.ends_with(".toml"))
        .map(|n| {
            let text = example(&n);
            (n, text)
        })
        .collect();
    out.sort();
    out
}

fn err(text: &str) -> PlanError {
    match parse_plan(text, "bad.toml") {
        Ok(plan) => panic!("plan should be refused, got {plan:?}"),
        Err(e) => e,
    }
}

/// Asserts the position and that the message contains every one of `words`.
fn assert_err(text: &str, line: usize, column: usize, words: &[&str]) {
    let e = err(text);
    assert_eq!((e.line, e.column), (line, column), "{e}");
    assert_eq!(e.file, "bad.toml");
    assert!(
        e.to_string()
            .starts_with(&format!("bad.toml:{line}:{column}: ")),
        "{e}"
    );
    for w in words {
        assert!(e.message.contains(w), "message lacks {w:?}: {e}");
    }
}

/// A valid plan: the cases below break one thing each.
const GOOD: &str = r#"name = "t"

[expect]
nodes = 2

[[phase]]
name = "ramp"
workload = "burn"
duration_s = 1.5
pattern = { kind = "ramp", from = 0.0, to = 1.0 }

[[phase]]
name = "hold"
workload = "burn"
duration_s = 2
pattern = { kind = "steady", level = 1.0 }
"#;

#[test]
fn the_base_case_parses() {
    let plan = parse_plan(GOOD, "good.toml").unwrap();
    assert_eq!(plan.total_duration_ms(), 3500);
    assert_eq!(plan.phases[0].duration_ms, 1500);
}

#[test]
fn every_example_plan_parses() {
    let plans = example_plans();
    let names: Vec<&str> = plans.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "plan-commissioning.toml",
        "plan-demo-quick.toml",
        "plan-demo.toml",
        "plan-weekly.toml",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for (file, text) in &plans {
        let plan = parse_plan(text, file).unwrap_or_else(|e| panic!("{e}"));
        assert!(!plan.phases.is_empty(), "{file}");
        assert!(plan.total_duration_ms() > 0, "{file}");
    }
}

#[test]
fn demo_constants_match_the_example_files() {
    let demo = example("plan-demo.toml");
    let quick = example("plan-demo-quick.toml");
    assert_eq!(
        parse_plan(&demo, "plan-demo.toml").unwrap(),
        demo_plan(false)
    );
    assert_eq!(
        parse_plan(&quick, "plan-demo-quick.toml").unwrap(),
        demo_plan(true)
    );
    // The same text, comments included: edit both together.
    assert_eq!(
        demo, DEMO_PLAN,
        "examples/plan-demo.toml differs from DEMO_PLAN"
    );
    assert_eq!(
        quick, DEMO_QUICK_PLAN,
        "examples/plan-demo-quick.toml differs from DEMO_QUICK_PLAN"
    );
}

#[test]
fn demo_plans_are_as_specified() {
    let demo = demo_plan(false);
    assert_eq!(demo.sample_hz, 10.0);
    assert_eq!(demo.expect.nodes, ExpectedNodes::Count(80));
    assert_eq!(demo.expect.devices_per_node, Some(8));
    assert_eq!(demo.expect.timeout_ms, 120_000);
    assert_eq!(demo.limits.max_rack_kw, Some(130.0));
    let phases: Vec<_> = demo
        .phases
        .iter()
        .map(|p| (p.name.as_str(), p.workload.clone(), p.duration_ms))
        .collect();
    assert_eq!(
        phases,
        [
            ("ramp", Workload::Burn, 15_000),
            ("steady", Workload::Burn, 30_000),
            ("square", Workload::Burn, 15_000)
        ]
    );
    assert_eq!(demo.phases[0].pattern, Pattern::Ramp { from: 0.0, to: 1.0 });
    assert_eq!(demo.phases[1].pattern, Pattern::Steady { level: 1.0 });

    let quick = demo_plan(true);
    let durations: Vec<u64> = quick.phases.iter().map(|p| p.duration_ms).collect();
    assert_eq!(durations, [3000, 8000, 4000]);
    assert_eq!(
        quick.phases[2].pattern,
        Pattern::Square {
            low: 0.2,
            high: 1.0,
            period_ms: 500,
            duty: 0.5
        }
    );
}

#[test]
fn commissioning_plan_is_as_documented() {
    let plan = parse_plan(
        &example("plan-commissioning.toml"),
        "plan-commissioning.toml",
    )
    .unwrap();
    let names: Vec<&str> = plan.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "baseline",
            "ramp",
            "full-load",
            "steps",
            "square-0.1hz",
            "square-1hz",
            "sweep",
            "cool-down"
        ]
    );
    assert_eq!(plan.phases[0].workload, Workload::Idle);
    assert_eq!(plan.phases[2].duration_ms, 600_000);
    assert_eq!(
        plan.phases[3].pattern,
        Pattern::Steps {
            levels: vec![0.25, 0.5, 0.75, 1.0],
            step_ms: 120_000
        }
    );
    assert_eq!(
        plan.phases[6].pattern,
        Pattern::Sweep {
            low: 0.3,
            high: 1.0,
            start_hz: 0.1,
            end_hz: 20.0
        }
    );
    assert_eq!(plan.expect.node_count(), 32);
    assert_eq!(plan.sample_hz, 50.0);
    assert_eq!(plan.total_duration_ms(), 3_360_000);
}

#[test]
fn plans_survive_the_wire_codec() {
    let plan = parse_plan(
        &example("plan-commissioning.toml"),
        "plan-commissioning.toml",
    )
    .unwrap();
    let bytes = postcard::to_stdvec(&plan).unwrap();
    assert_eq!(postcard::from_bytes::<Plan>(&bytes).unwrap(), plan);
}

// ------------------------------------------------------------------------------------------------
// Refused plans: position and message

#[test]
fn unknown_key_points_at_the_key() {
    let text = GOOD.replace("duration_s = 2\n", "duration_s = 2\ncolour = \"red\"\n");
    assert_err(
        &text,
        16,
        1,
        &["unknown key `colour`", "`duration_s`", "`pattern`"],
    );
    let text = GOOD.replace("[[phase]]", "[[phases]]");
    assert_err(&text, 6, 3, &["unknown key `phases`", "`phase`"]);
}

#[test]
fn unknown_pattern_key_lists_what_each_kind_takes() {
    let text = GOOD.replace("level = 1.0", "levle = 1.0");
    assert_err(
        &text,
        16,
        30,
        &["unknown key `levle`", "steady takes level"],
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = GOOD.replace("duration_s = 2\n", "duration_s = \"2\"\n");
    assert_err(&text, 15, 14, &["invalid type", "expected a number"]);
    let text = GOOD.replace("nodes = 2", "nodes = 2.5");
    assert_err(&text, 4, 9, &["expected a whole number"]);
}

#[test]
fn bad_pattern_kind_names_the_allowed_kinds() {
    let text = GOOD.replace("kind = \"ramp\"", "kind = \"sqaure\"");
    assert_err(
        &text,
        10,
        20,
        &[
            "phase `ramp`",
            "unknown pattern kind `sqaure`; expected one of steady, ramp, steps, square, sweep",
        ],
    );
}

#[test]
fn bad_workload_names_the_allowed_workloads() {
    let text = GOOD.replacen("\"burn\"", "\"burm\"", 1);
    assert_err(
        &text,
        8,
        12,
        &["unknown workload `burm`; expected one of burn, idle"],
    );
}

#[test]
fn level_out_of_range_points_at_the_level() {
    let text = GOOD.replace("level = 1.0", "level = 1.5");
    assert_err(
        &text,
        16,
        38,
        &["phase `hold`", "`level` = 1.5", "0.0 to 1.0"],
    );
    let text = GOOD.replace("to = 1.0", "to = -0.1");
    assert_err(&text, 10, 45, &["phase `ramp`", "`to` = -0.1"]);
}

#[test]
fn zero_duration_points_at_the_duration() {
    let text = GOOD.replace("duration_s = 1.5", "duration_s = 0");
    assert_err(
        &text,
        9,
        14,
        &["phase `ramp`", "`duration_s` = 0", "greater than 0"],
    );
    let text = GOOD.replace("duration_s = 1.5", "duration_s = 0.0001");
    assert_err(&text, 9, 14, &["rounds to 0 ms"]);
}

#[test]
fn duplicate_phase_name_points_at_the_second() {
    let text = GOOD.replace("name = \"hold\"", "name = \"ramp\"");
    assert_err(
        &text,
        13,
        8,
        &["phase name `ramp` is already used by the phase at line 7"],
    );
}

#[test]
fn a_plan_without_phases_is_refused() {
    let text = "name = \"t\"\n[expect]\nnodes = 2\n";
    assert_err(text, 1, 1, &["no phases", "[[phase]]"]);
}

#[test]
fn missing_keys_name_the_key_and_its_table() {
    let text = GOOD.replace("name = \"hold\"\n", "");
    assert_err(&text, 12, 1, &["missing key `name`", "[[phase]]"]);
    let text = GOOD.replace("name = \"t\"\n", "");
    assert_err(&text, 1, 1, &["missing key `name`", "top level"]);
    let text = GOOD.replace("pattern = { kind = \"ramp\", from = 0.0, to = 1.0 }\n", "");
    assert_err(&text, 6, 1, &["phase `ramp`", "needs a `pattern`"]);
    let text = GOOD.replace(", to = 1.0", "");
    assert_err(&text, 10, 11, &["a `ramp` pattern needs `to`"]);
}

#[test]
fn a_key_of_another_pattern_kind_is_refused_at_the_key() {
    let text = GOOD.replace("level = 1.0", "level = 1.0, duty = 0.5");
    assert_err(
        &text,
        16,
        43,
        &[
            "`duty` does not apply to a `steady` pattern",
            "takes `level`",
        ],
    );
}

#[test]
fn other_semantic_errors() {
    assert_err(
        &format!("sample_hz = 200\n{GOOD}"),
        1,
        13,
        &["`sample_hz` = 200", "0.5 to 100 Hz"],
    );
    assert_err(
        &GOOD.replace("nodes = 2", "nodes = 0"),
        4,
        9,
        &["`expect.nodes` = 0", "at least 1"],
    );
    assert_err(
        &GOOD.replace("nodes = 2", "devices_per_node = 8"),
        3,
        1,
        &["needs either `nodes = N`"],
    );
    assert_err(
        &GOOD.replace("nodes = 2", "nodes = 2\n[expect.racks]\nr1 = [\"a\"]"),
        5,
        1,
        &["both `nodes`", "give one of them"],
    );
    assert_err(
        &GOOD.replace("nodes = 2", "racks = { r1 = [\"n1\", \"n/2\"] }"),
        4,
        23,
        &["rack `r1`", "node id \"n/2\""],
    );
    assert_err(
        &GOOD.replace("nodes = 2", "racks = { r1 = [\"n1\"], r2 = [\"n1\"] }"),
        4,
        30,
        &["node `n1` is already listed in rack `r1`"],
    );
    assert_err(
        &GOOD.replace("[expect]", "[limits]\nmax_gpu_temp_c = 900\n[expect]"),
        4,
        18,
        &["`limits.max_gpu_temp_c` = 900", "at most 150"],
    );
    assert_err(
        &GOOD.replace(
            "pattern = { kind = \"steady\", level = 1.0 }",
            "pattern = { kind = \"steps\", levels = [0.5, 1.0, 0.5], step_s = 1 }",
        ),
        16,
        38,
        &["level 3 would never run"],
    );
    assert_err(
        &GOOD.replacen("workload = \"burn\"", "workload = \"idle\"", 1),
        10,
        11,
        &["an idle phase", "takes no `pattern`"],
    );
    assert_err(
        "name = \"t\"\n[expect]\nnodes = 2\n[phase]\nname = \"a\"\n",
        4,
        1,
        &["expected an array", "[[phase]]"],
    );
    assert_err(
        &GOOD.replace("duration_s = 2", "duration_s = "),
        15,
        14,
        &[],
    );
}

/// Cut every example at every character and flip bytes: never a panic, and every error has a
/// position inside the text.
#[test]
fn never_panics_on_damaged_plans() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let junk = [
        "",
        "=",
        "[",
        "]",
        "[[",
        "\"",
        "'",
        "{",
        "}",
        ",",
        "\n",
        "-1",
        "1e999",
        "nan",
        "inf",
        "0.0",
        "x",
        "[[phase]]",
        "kind",
        "= {",
        "\u{0}",
        "é",
    ];
    for (file, text) in example_plans() {
        let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for &cut in &cuts {
            check_position(&text[..cut], &file);
        }
        for _ in 0..400 {
            let at = cuts[(next() % cuts.len() as u64) as usize];
            let end = cuts
                .iter()
                .copied()
                .find(|&i| i > at + (next() % 8) as usize)
                .unwrap_or(text.len());
            let j = junk[(next() % junk.len() as u64) as usize];
            let damaged = format!("{}{j}{}", &text[..at], &text[end..]);
            check_position(&damaged, &file);
        }
    }
}

fn check_position(text: &str, file: &str) {
    if let Err(e) = parse_plan(text, file) {
        let lines = text.split('\n').count();
        assert!(
            e.line >= 1 && e.line <= lines && e.column >= 1,
            "{e} (text has {lines} lines)"
        );
        assert!(!e.message.is_empty());
    }
}

// ------------------------------------------------------------------------------------------------
// The expected inventory

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn reg(node: &str, rack: &str, devices: usize) -> (NodeId, String, usize) {
    (id(node), rack.to_string(), devices)
}

fn by_rack(devices_per_node: Option<u32>) -> Expect {
    Expect {
        nodes: ExpectedNodes::Racks(
            [
                ("rack01".to_string(), vec![id("r101-n01"), id("r101-n02")]),
                ("rack02".to_string(), vec![id("r102-n01")]),
            ]
            .into_iter()
            .collect(),
        ),
        devices_per_node,
        timeout_ms: 120_000,
    }
}

#[test]
fn missing_by_count() {
    let expect = Expect {
        nodes: ExpectedNodes::Count(3),
        devices_per_node: Some(8),
        timeout_ms: 120_000,
    };
    assert_eq!(
        expect.missing(&[reg("a", "r1", 8)]),
        ["2 of 3 expected nodes have not registered (1 registered)"]
    );
    let all = [reg("a", "r1", 8), reg("b", "r1", 8), reg("c", "r2", 8)];
    assert!(expect.missing(&all).is_empty());
    let more = [
        reg("a", "r1", 8),
        reg("b", "r1", 8),
        reg("c", "r2", 8),
        reg("d", "r2", 8),
    ];
    assert!(expect.missing(&more).is_empty());
    let short = [reg("a", "r1", 8), reg("b", "r1", 7), reg("c", "r2", 1)];
    assert_eq!(
        expect.missing(&short),
        [
            "node `b` has 7 devices; the plan expects 8 per node",
            "node `c` has 1 device; the plan expects 8 per node"
        ]
    );
}

#[test]
fn missing_by_rack() {
    let expect = by_rack(None);
    assert_eq!(expect.node_count(), 3);
    let all = [
        reg("r101-n01", "rack01", 8),
        reg("r101-n02", "rack01", 8),
        reg("r102-n01", "rack02", 8),
    ];
    assert!(expect.missing(&all).is_empty());
    // A node the plan does not name is not a shortfall.
    let mut extra = all.to_vec();
    extra.push(reg("r103-n01", "rack03", 2));
    assert!(expect.missing(&extra).is_empty());

    let partial = [reg("r101-n01", "rack01", 8), reg("r102-n01", "rack01", 8)];
    assert_eq!(
        expect.missing(&partial),
        [
            "node `r101-n02` (rack `rack01`) has not registered",
            "node `r102-n01` registered in rack `rack01`; the plan expects it in rack `rack02`"
        ]
    );
}

#[test]
fn missing_devices_by_rack_checks_only_named_nodes() {
    let expect = by_rack(Some(8));
    let registered = [
        reg("r101-n01", "rack01", 8),
        reg("r101-n02", "rack01", 4),
        reg("r102-n01", "rack02", 8),
        reg("stranger", "rack02", 1),
    ];
    assert_eq!(
        expect.missing(&registered),
        ["node `r101-n02` has 4 devices; the plan expects 8 per node"]
    );
}

#[test]
fn expect_from_a_file() {
    let plan = parse_plan(
        &GOOD.replace(
            "[expect]\nnodes = 2",
            "[expect]\ndevices_per_node = 4\ntimeout_s = 2.5\n[expect.racks]\nrack01 = [\"r101-n01\", \"r101-n02\"]\nrack02 = [\"r102-n01\"]",
        ),
        "t.toml",
    )
    .unwrap();
    assert_eq!(plan.expect, by_rack(Some(4)).with_timeout(2500));
}

trait WithTimeout {
    fn with_timeout(self, ms: u64) -> Self;
}

impl WithTimeout for Expect {
    fn with_timeout(mut self, ms: u64) -> Self {
        self.timeout_ms = ms;
        self
    }
}

#[test]
fn missing_kind_names_the_kinds() {
    assert_err(
        &GOOD.replace("kind = \"ramp\", ", ""),
        10,
        11,
        &["missing key `kind`", "steady, ramp, steps, square, sweep"],
    );
    assert_err(
        &GOOD.replacen("\"burn\"", "{ }", 1),
        8,
        12,
        &["missing key `kind`", "burn, idle"],
    );
    assert_err(
        "\n[expect]\nnodes = 1\n",
        1,
        1,
        &["missing key `name` at the top level"],
    );
}
