//! The file parsers (plan, spec, hall) on mutated copies of the example files: no panic, and every
//! error names the file, a line inside the text (or just past its end) and a column ≥ 1, as the
//! fuzz targets `parse_plan`, `parse_spec` and `parse_hall` check without a bound (`fuzz/`,
//! `.ci/fuzz`). Bounded here: a fixed number of cases per parser.

#[path = "../fuzz/src/file_error.rs"]
mod file_error;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const PLANS: [&str; 5] = [
    include_str!("../examples/plan-commissioning.toml"),
    include_str!("../examples/plan-demo-quick.toml"),
    include_str!("../examples/plan-demo.toml"),
    include_str!("../examples/plan-fabric.toml"),
    include_str!("../examples/plan-weekly.toml"),
];
const SPECS: [&str; 3] = [
    include_str!("../examples/spec-demo-100kw.toml"),
    include_str!("../examples/spec-fabric.toml"),
    include_str!("../examples/spec-h200-100kw.toml"),
];
const HALLS: [&str; 2] = [
    include_str!("../examples/hall-demo.toml"),
    include_str!("../examples/hall-small.toml"),
];

/// Cases per parser: enough to reach most error paths, small enough for every `cargo test`.
const CASES: u32 = 400;

/// Fragments that TOML and the parsers treat specially.
const TOKENS: [&str; 24] = [
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "\"",
    "'",
    "\n",
    "#",
    "{",
    "}",
    ",",
    ".",
    "-1",
    "0",
    "1e999",
    "nan",
    "\"\"",
    "\"1 kW\"",
    "\"-5 s\"",
    "true",
    "\u{feff}",
    "é",
    "\"99999999999999999999 TB\"",
];

/// One edit of a text: what to do, where (a fraction of the length), and with what.
#[derive(Debug, Clone)]
enum Edit {
    Insert(f64, usize),
    Delete(f64, usize),
    Replace(f64, usize),
    DuplicateLine(f64),
    Truncate(f64),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0.0..1.0f64, 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        (0.0..1.0f64, 1..40usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (0.0..1.0f64, 0..TOKENS.len()).prop_map(|(at, t)| Edit::Replace(at, t)),
        (0.0..1.0f64).prop_map(Edit::DuplicateLine),
        (0.0..1.0f64).prop_map(Edit::Truncate),
    ]
}

/// The char boundary at or before `at` × the length.
fn boundary(text: &str, at: f64) -> usize {
    let mut i = ((text.len() as f64) * at) as usize;
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut t = text.to_string();
    for e in edits {
        match *e {
            Edit::Insert(at, k) => {
                let i = boundary(&t, at);
                t.insert_str(i, TOKENS[k]);
            }
            Edit::Delete(at, n) => {
                let i = boundary(&t, at);
                let mut j = (i + n).min(t.len());
                while !t.is_char_boundary(j) {
                    j -= 1;
                }
                t.replace_range(i..j, "");
            }
            Edit::Replace(at, k) => {
                let i = boundary(&t, at);
                let j = t[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                t.replace_range(i..j, TOKENS[k]);
            }
            Edit::DuplicateLine(at) => {
                let i = boundary(&t, at);
                let start = t[..i].rfind('\n').map_or(0, |p| p + 1);
                let end = t[i..].find('\n').map_or(t.len(), |p| i + p + 1);
                let line = t[start..end].to_string();
                t.insert_str(end, &line);
            }
            Edit::Truncate(at) => {
                let i = boundary(&t, at);
                t.truncate(i);
            }
        }
    }
    t
}

/// An error's position must be inside `text` ([`file_error::check_position`], the fuzz targets'
/// check).
fn check_position(
    text: &str,
    file: &str,
    line: usize,
    column: usize,
    shown: &str,
) -> Result<(), TestCaseError> {
    file_error::check_position(text, file, line, column, shown)
        .map_err(|why| TestCaseError::fail(format!("{why}\n{text}")))
}

fn run(examples: &'static [&'static str], check: impl Fn(&str) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (0..examples.len(), prop::collection::vec(edit(), 1..4));
    runner
        .run(&strategy, |(i, edits)| check(&apply(examples[i], &edits)))
        .unwrap();
}

#[test]
fn the_examples_parse_unmutated() {
    for t in PLANS {
        hallmark_protocol::plan::parse_plan(t, "plan.toml").unwrap();
    }
    for t in SPECS {
        hallmark_results::parse_spec(t, "spec.toml").unwrap();
    }
    for t in HALLS {
        hallmark_workloads::sim::parse_hall(t, "hall.toml").unwrap();
    }
}

#[test]
fn mutated_plans_never_panic_and_errors_say_where() {
    run(&PLANS, |text| {
        if let Err(e) = hallmark_protocol::plan::parse_plan(text, "plan.toml") {
            check_position(text, "plan.toml", e.line, e.column, &e.to_string())?;
        }
        Ok(())
    });
}

#[test]
fn mutated_specs_never_panic_and_errors_say_where() {
    run(&SPECS, |text| {
        if let Err(e) = hallmark_results::parse_spec(text, "spec.toml") {
            check_position(text, "spec.toml", e.line, e.column, &e.to_string())?;
        }
        Ok(())
    });
}

#[test]
fn mutated_halls_never_panic_and_errors_say_where() {
    run(&HALLS, |text| {
        if let Err(e) = hallmark_workloads::sim::parse_hall(text, "hall.toml") {
            let shown = e.to_string();
            let (Some(line), Some(column)) = (e.line(), e.column()) else {
                return Err(TestCaseError::fail(format!("no line and column: {shown}")));
            };
            check_position(text, "hall.toml", line, column, &shown)?;
        }
        Ok(())
    });
}

#[test]
fn the_position_check_refuses_errors_that_do_not_say_where() {
    let text = "a = 1\nbb = 2";
    assert_eq!(
        file_error::check_position(text, "f.toml", 2, 3, "f.toml:2:3: bad"),
        Ok(())
    );
    // Just past the end is allowed: a missing key is reported after the last line.
    assert!(file_error::check_position(text, "f.toml", 3, 1, "f.toml:3:1: missing").is_ok());
    for (line, column, shown) in [
        (0, 1, "f.toml:0:1: x"),
        (4, 1, "f.toml:4:1: x"),
        (1, 0, "f.toml:1:0: x"),
        (1, 8, "f.toml:1:8: x"),
        (1, 1, "x at line 1"),
        (1, 1, "g.toml:1:1: x"),
    ] {
        assert!(
            file_error::check_position(text, "f.toml", line, column, shown).is_err(),
            "{line}:{column} {shown}"
        );
    }
}
