//! `hallmark compare BASE NEW [--json] [--force] [--all]`: every subject's metrics from BASE to NEW,
//! each judged against its noise threshold (from the plan's history in the store, or the metric's
//! stated default), with the comparability check and the context diff
//! (`hallmark_results::regress`, docs/COMPARE.md).
//!
//! Exit codes: 0 without a significant regression, 1 with one, 3 on error — and 3 when the runs
//! are not comparable and `--force` was not given (what differs is printed).

use super::results::{self, ResultsArg};
use anyhow::Context;
use clap::Args;
use hallmark_compare::Direction;
use hallmark_results::regress::{compare_runs, ChangeRow, Difference, RunComparison};
use hallmark_store::time::format_utc;
use hallmark_store::{RunId, RunStatus, Store};
use hallmark_transport::clock::WallClock;
use std::fmt::Write;
use std::process::ExitCode;

/// Exit code of an error, and of runs refused as incomparable.
pub const EXIT_ERROR: u8 = 3;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The base run: an id, a unique prefix of one, `latest`, or `previous` (the latest run of
    /// NEW's plan and hall that started before NEW and was not aborted: last week's, for a weekly
    /// run).
    base: String,
    /// The new run, judged against BASE: an id, a unique prefix of one, or `latest`.
    new: String,
    /// `latest` means the latest run of this plan (what a weekly job compares).
    #[arg(long)]
    plan: Option<String>,
    #[command(flatten)]
    results: ResultsArg,
    /// Compare runs that are not comparable (different plan, hall, spec or device models).
    #[arg(long)]
    force: bool,
    /// List every subject and metric, not only the significant changes.
    #[arg(long)]
    all: bool,
    /// One JSON object on stdout: `comparable`, `differences`, `context_diff`, `changes`, ….
    #[arg(long)]
    json: bool,
}

pub fn run(a: CompareArgs) -> anyhow::Result<ExitCode> {
    match compare(&a) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

fn compare(a: &CompareArgs) -> anyhow::Result<ExitCode> {
    // Opened for writing (metrics of a run stored before they were are computed and stored now),
    // but never created here.
    let mut store = results::open_existing(&a.results.location)?;
    let new = resolve(&store, &a.new, a.plan.as_deref()).context("NEW")?;
    let base = if a.base == "previous" {
        previous(&store, &new)?
    } else {
        resolve(&store, &a.base, a.plan.as_deref()).context("BASE")?
    };
    let c = compare_runs(
        &mut store,
        base.as_str(),
        new.as_str(),
        a.force,
        WallClock::new().now_ns(),
    )
    .with_context(|| format!("comparing run {new} against run {base}"))?;
    if a.json {
        println!("{}", serde_json::to_string(&c)?);
    } else {
        print!("{}", render(&c, a.all));
    }
    if !c.comparable && !c.forced {
        eprintln!(
            "error: runs {base} and {new} are not comparable ({}); compare them anyway with --force",
            c.differences
                .iter()
                .map(|d| d.what.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    Ok(ExitCode::from(u8::from(c.has_regression())))
}

/// A run from what the user typed; `latest` within `plan` when one is given.
fn resolve(store: &Store, query: &str, plan: Option<&str>) -> anyhow::Result<RunId> {
    match plan {
        Some(plan) if query == "latest" => store
            .list_runs()?
            .into_iter()
            .filter(|r| r.plan_name == plan)
            .max_by_key(|r| r.started_at_ns)
            .map(|r| r.run_id)
            .with_context(|| format!("no stored run of plan {plan} (`hallmark runs list`)")),
        _ => Ok(store.resolve_run(query)?),
    }
}

/// The latest run of `new`'s plan and hall that started before it and ran to its end (complete,
/// or incomplete for lost data; not aborted, not still running).
fn previous(store: &Store, new: &RunId) -> anyhow::Result<RunId> {
    let runs = store.list_runs()?;
    let n = runs
        .iter()
        .find(|r| &r.run_id == new)
        .with_context(|| format!("run {new} is not in the list of runs"))?;
    runs.iter()
        .filter(|r| {
            r.plan_name == n.plan_name
                && r.hall == n.hall
                && r.started_at_ns < n.started_at_ns
                && matches!(r.status, RunStatus::Complete | RunStatus::Incomplete)
        })
        .max_by_key(|r| r.started_at_ns)
        .map(|r| r.run_id.clone())
        .with_context(|| {
            format!(
                "BASE previous: no run of plan {} that ran to its end started before run {new}; \
                 give BASE as a run id",
                n.plan_name
            )
        })
}

fn side(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn differences(out: &mut String, title: &str, list: &[Difference]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    for d in list {
        let _ = writeln!(
            out,
            "  {}: BASE {} | NEW {}",
            d.what,
            side(&d.base),
            side(&d.new)
        );
    }
}

fn value(v: Option<f64>) -> String {
    match v {
        Some(v) if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) => format!("{v:.4e}"),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

fn change_line(c: &ChangeRow) -> String {
    let delta = match (c.delta_pct, c.base, c.new) {
        (Some(d), _, _) => format!("{d:+.2} %"),
        (None, Some(_), Some(_)) => "from 0".into(),
        _ => "-".into(),
    };
    let verdict = match c.direction {
        Direction::Regression => "REGRESSION",
        Direction::Improvement => "improvement",
        Direction::None => "",
    };
    format!(
        "  {:<11} {} {} {}: {} → {} {} ({delta}; threshold {:.2} %, {})",
        verdict,
        c.kind,
        c.subject,
        c.metric,
        value(c.base),
        value(c.new),
        c.unit,
        c.threshold_pct,
        c.threshold_from
    )
}

/// The text of `hallmark compare`.
pub fn render(c: &RunComparison, all: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "BASE {} ({}, {})\nNEW  {} ({}, {})",
        c.base.run_id,
        c.base.name,
        format_utc(c.base.started_at_ns),
        c.new.run_id,
        c.new.name,
        format_utc(c.new.started_at_ns)
    );
    differences(&mut out, "Not comparable", &c.differences);
    if c.forced {
        out.push_str(
            "Compared anyway (--force): the changes below may be the differences above.\n",
        );
    }
    differences(&mut out, "Context diff", &c.context_diff);
    if c.context_diff.is_empty() {
        out.push_str("Context diff: none (same versions, backends and inventory)\n");
    }
    if !c.comparable && !c.forced {
        return out;
    }
    let _ = writeln!(
        out,
        "Thresholds: from the history of {} comparable run(s) of the plan up to BASE, where a \
         subject has 10 changes of history; else the metric's default.",
        c.history_runs
    );
    let regressions = c
        .changes
        .iter()
        .filter(|x| x.direction == Direction::Regression)
        .count();
    let improvements = c
        .changes
        .iter()
        .filter(|x| x.direction == Direction::Improvement)
        .count();
    let _ = writeln!(
        out,
        "{} subject-metrics compared: {regressions} significant regression(s), {improvements} \
         significant improvement(s)",
        c.changes.len()
    );
    for ch in c.changes.iter().filter(|x| all || x.significant) {
        let _ = writeln!(out, "{}", change_line(ch));
    }
    if !c.unjudged_metrics.is_empty() {
        let _ = writeln!(
            out,
            "Not judged (no policy for these metrics): {}",
            c.unjudged_metrics.join(", ")
        );
    }
    out
}
