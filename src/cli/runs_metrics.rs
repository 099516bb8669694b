//! `hallmark runs metrics RUN [--json]`: the run's per-subject metrics, the figures a regression
//! shows up in (`hallmark_results::compute_metrics`, docs/COMPARE.md "Per-subject metrics"):
//! per device sustained TFLOP/s, power, thermal resistance, throttle seconds and wrong elements;
//! per node and rack idle and full-load power; per pair and hall latency; busbw per collective
//! and size; the facility's figures per rack.
//!
//! The text is one row per metric, `-` where the run should have measured it and did not; the
//! JSON one object `{run_id, source, metrics: [...]}` with `null` there. They are the metrics stored
//! when the run ended (`source: "stored"`, what `compare` and `history` read); a run without them
//! (an older hallmark's, or one whose end was not recorded) has them computed from its telemetry in
//! one pass and shown, not stored (`source: "computed"`).

use super::results::{self, ResultsArg};
use anyhow::Context;
use clap::Args;
use hallmark_results::regress::{metric_values, MetricSource};
use hallmark_results::MetricValue;
use serde::Serialize;
use std::fmt::Write as _;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The run id (or a unique prefix of it, or `latest`), as `hallmark runs list` shows it.
    run: String,
    #[command(flatten)]
    results: ResultsArg,
    /// One JSON object on stdout: `{run_id, metrics: [{kind, subject, metric, value, unit}]}`.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    run_id: &'a str,
    /// `stored` (with the run) or `computed` (now, from its telemetry).
    source: MetricSource,
    metrics: &'a [MetricValue],
}

/// `hallmark runs metrics` (called off the async runtime, as every `runs` command).
pub fn run(a: MetricsArgs) -> anyhow::Result<ExitCode> {
    let store = results::open_read_only(&a.results.location)?;
    let id = store.resolve_run(&a.run)?;
    let run_id = id.as_str();
    let (metrics, source) = metric_values(&store, run_id)
        .with_context(|| format!("reading the metrics of run {run_id}"))?;
    if a.json {
        let out = Output {
            run_id,
            source,
            metrics: &metrics,
        };
        println!(
            "{}",
            serde_json::to_string(&out).context("serialising the metrics")?
        );
    } else {
        print!("{}", render(run_id, &metrics));
        if source == MetricSource::Computed {
            println!("(computed now from the run's telemetry: the run has no stored metrics)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A value with up to four significant decimals, `-` when absent.
fn value(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(x) if x != 0.0 && x.abs() < 0.1 => format!("{x:.5}"),
        Some(x) => format!("{x:.2}"),
    }
}

/// The table: kind, subject, metric, value, unit.
pub fn render(run_id: &str, metrics: &[MetricValue]) -> String {
    let mut out = format!("Metrics of run {run_id}: {} values\n", metrics.len());
    if metrics.is_empty() {
        return out;
    }
    let rows: Vec<[String; 5]> = metrics
        .iter()
        .map(|m| {
            [
                m.kind.as_str().to_string(),
                m.subject.clone(),
                m.metric.clone(),
                value(m.value),
                m.unit.clone(),
            ]
        })
        .collect();
    let head = ["kind", "subject", "metric", "value", "unit"];
    let mut width = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: [&str; 5]| {
        let [k, s, m, v, u] = cells;
        let _ = writeln!(
            out,
            "{k:<w0$}  {s:<w1$}  {m:<w2$}  {v:>w3$}  {u}",
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3]
        );
    };
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_results::SubjectKind;

    #[test]
    fn absent_values_are_a_dash_never_zero() {
        let m = vec![
            MetricValue {
                kind: SubjectKind::Device,
                subject: "n1/0".into(),
                metric: "thermal_resistance_k_per_w".into(),
                value: Some(0.0451),
                unit: "K/W (over CDU supply)".into(),
            },
            MetricValue {
                kind: SubjectKind::Node,
                subject: "n1".into(),
                metric: "idle_power_w".into(),
                value: None,
                unit: "W".into(),
            },
        ];
        let text = render("r1", &m);
        assert!(text.contains("0.04510"), "{text}");
        let node = text.lines().find(|l| l.starts_with("node")).unwrap();
        assert!(node.contains(" - "), "{node}");
        assert!(!node.contains('0'), "{node}");
    }
}
