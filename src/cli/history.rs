//! `hallmark history [--plan NAME] [--hall NAME] [--metric M] [--subject S] [--json] [--html FILE]`:
//! the series of every run of a plan, oldest first, with its change points
//! (`hallmark_results::regress::history`, docs/COMPARE.md); `--html` writes a page with a chart
//! per series and the change points marked (`hallmark_report::history`).

use super::results::{self, ResultsArg};
use anyhow::Context;
use clap::Args;
use hallmark_compare::Params;
use hallmark_results::regress::{history, History};
use hallmark_store::HistoryQuery;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only runs of this plan (its name, as `runs list` shows it).
    #[arg(long)]
    plan: Option<String>,
    /// Only runs in this hall (the simulated hall's name, or a probe's hall label).
    #[arg(long)]
    hall: Option<String>,
    /// Only this metric (`thermal_resistance_k_per_w`; a base name also selects its qualified
    /// forms, `throttle_s` selects `throttle_s.sw_thermal`).
    #[arg(long)]
    metric: Option<String>,
    /// Only this subject (a device, node, rack, …; a prefix selects what is under it: `node01`
    /// selects `node01/3`).
    #[arg(long)]
    subject: Option<String>,
    #[command(flatten)]
    results: ResultsArg,
    /// Largest p-value of a change point kept (Apache Otava's default 0.001).
    #[arg(long, default_value_t = 0.001)]
    max_pvalue: f64,
    /// List every series in the text, not only those with change points.
    #[arg(long)]
    all: bool,
    /// One JSON object on stdout: `runs`, `series` (each with `points` and `change_points`).
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page with a chart per series to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Most charts drawn on the `--html` page (series with change points first).
    #[arg(long, default_value_t = 200)]
    max_charts: usize,
}

pub fn run(a: HistoryArgs) -> anyhow::Result<ExitCode> {
    if !(a.max_pvalue > 0.0 && a.max_pvalue <= 1.0) {
        anyhow::bail!(
            "--max-pvalue {}: give a probability in (0, 1], e.g. 0.001",
            a.max_pvalue
        );
    }
    let store = results::open_read_only(&a.results.location)?;
    let query = HistoryQuery {
        plan_name: a.plan.clone(),
        hall: a.hall.clone(),
        metric: a.metric.clone(),
        subject: a.subject.clone(),
        until_ns: None,
    };
    let params = Params {
        max_pvalue: a.max_pvalue,
        ..Params::default()
    };
    let h = history(&store, &query, &params).context("reading the history")?;
    if h.runs.is_empty() {
        anyhow::bail!(
            "no stored run matches (plan {}, hall {}): runs get their metrics when they end; \
             `hallmark runs list` shows what is stored",
            a.plan.as_deref().unwrap_or("any"),
            a.hall.as_deref().unwrap_or("any")
        );
    }
    if let Some(path) = &a.html {
        let title = a.plan.as_deref().unwrap_or("all plans");
        let page = hallmark_report::history::history_page(&h, title, a.max_charts)
            .map_err(|e| anyhow::anyhow!("drawing the history charts: {e}"))?;
        std::fs::write(path, page)
            .with_context(|| format!("writing the history page {}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&h)?);
    } else {
        print!("{}", render(&h, a.all));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(h: &History, all: bool) -> String {
    let mut out = String::new();
    let with = h
        .series
        .iter()
        .filter(|s| !s.change_points.is_empty())
        .count();
    let _ = writeln!(
        out,
        "{} run(s), {} series, {with} with change points",
        h.runs.len(),
        h.series.len()
    );
    for p in &h.plans_edited {
        let _ = writeln!(
            out,
            "note: the text of plan {p} changed within this history"
        );
    }
    for s in h
        .series
        .iter()
        .filter(|s| all || !s.change_points.is_empty())
    {
        let values: Vec<String> = s
            .points
            .iter()
            .map(|p| {
                p.value
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into())
            })
            .collect();
        let _ = writeln!(
            out,
            "{} {} {} ({}) [plan {}, hall {}]: {}",
            s.kind,
            s.subject,
            s.metric,
            s.unit,
            s.plan_name,
            s.hall,
            values.join(" ")
        );
        for cp in &s.change_points {
            let _ = writeln!(
                out,
                "  change point at run {} ({}): {} → {} ({}), p = {:.2e}",
                cp.index + 1,
                cp.run_id,
                fmt(cp.mean_before),
                fmt(cp.mean_after),
                cp.delta_pct
                    .map(|d| format!("{d:+.2} %"))
                    .unwrap_or_else(|| "from 0".into()),
                cp.p_value
            );
        }
    }
    out
}

fn fmt(v: f64) -> String {
    format!("{v:.4}")
}
