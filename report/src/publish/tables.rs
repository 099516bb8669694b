//! The page's tables, one column per run: systems and their measurement methods, verdict counts,
//! and every distribution at a glance.

use super::dataset::ChartData;
use super::model::{finite, MeterKind, PublishRun};
use super::page::{fmt, hz, swatch};
use super::quality::Quality;
use crate::style::{self, esc};
use hallmark_store::time::format_utc;
use std::fmt::Write;

/// The same in HTML, the bundle linked.
fn trace_html(r: &PublishRun) -> String {
    match (&r.bundle, &r.data) {
        (Some(b), _) => format!(
            "bundle <a href=\"bundles/{0}\">{0}</a><br>sha256 <code>{1}</code>",
            esc(&b.file),
            esc(&b.sha256)
        ),
        (None, Some(d)) => format!(
            "bundle not written; {}<br>sha256 <code>{}</code>",
            esc(&d.what),
            esc(&d.sha256)
        ),
        (None, None) => "bundle not written; no data hash".into(),
    }
}

fn row(out: &mut String, label: &str, cells: impl Iterator<Item = String>) {
    let _ = write!(out, "<tr><th scope=\"row\">{}</th>", esc(label));
    for c in cells {
        let _ = write!(out, "<td>{c}</td>");
    }
    out.push_str("</tr>\n");
}

fn meter_text(r: &PublishRun, kind: MeterKind) -> String {
    match r.method.meters.iter().find(|m| m.kind == kind) {
        None => "none".into(),
        Some(m) => format!(
            "{} {} on {} of {} racks, {}",
            m.count,
            if m.count == 1 { "meter" } else { "meters" },
            m.racks,
            r.method.racks_total,
            match finite(m.sample_hz) {
                Some(_) => hz(m.sample_hz),
                None => "rate unknown".into(),
            }
        ),
    }
}

/// Systems and methods, one column per run.
pub(crate) fn systems(runs: &[PublishRun], quality: &[Quality]) -> String {
    let mut out = String::from("<table class=\"side\"><thead><tr><th></th>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(out, "<th>{}{}</th>", swatch(i), esc(&r.name));
    }
    out.push_str("</tr></thead><tbody>\n");
    let each = |f: &dyn Fn(&PublishRun) -> String| runs.iter().map(f).collect::<Vec<_>>();
    run_rows(&mut out, runs);
    row(
        &mut out,
        "devices",
        each(&|r| {
            let m: Vec<String> = r
                .system
                .device_models
                .iter()
                .map(|(k, v)| format!("{v} × {}", esc(k)))
                .collect();
            if m.is_empty() {
                "–".into()
            } else {
                m.join("<br>")
            }
        })
        .into_iter(),
    );
    row(
        &mut out,
        "nodes / racks",
        each(&|r| format!("{} / {}", r.system.nodes, r.system.racks)).into_iter(),
    );
    let list = |v: &[String]| {
        if v.is_empty() {
            "–".to_string()
        } else {
            esc(&v.join(", "))
        }
    };
    row(
        &mut out,
        "backends",
        each(&|r| list(&r.system.backends)).into_iter(),
    );
    row(
        &mut out,
        "GPU drivers",
        each(&|r| list(&r.system.drivers)).into_iter(),
    );
    let mut labels: Vec<&str> = Vec::new();
    for r in runs {
        for (k, _) in &r.system.notes {
            if !labels.contains(&k.as_str()) {
                labels.push(k);
            }
        }
    }
    for l in labels {
        row(
            &mut out,
            l,
            each(&|r| {
                r.system
                    .notes
                    .iter()
                    .find(|(k, _)| k == l)
                    .map(|(_, v)| esc(v))
                    .unwrap_or_else(|| "–".into())
            })
            .into_iter(),
        );
    }
    method_rows(&mut out, runs, quality);
    out.push_str("</tbody></table>\n");
    out
}

/// Which run each column is: hall, id, start, simulation, plan, spec, and what its figures are
/// traced to.
fn run_rows(out: &mut String, runs: &[PublishRun]) {
    let each = |f: &dyn Fn(&PublishRun) -> String| runs.iter().map(f).collect::<Vec<_>>();
    row(out, "hall", each(&|r| esc(&r.hall)).into_iter());
    row(
        out,
        "run id",
        each(&|r| format!("<code>{}</code>", esc(&r.run_id))).into_iter(),
    );
    row(
        out,
        "started",
        each(&|r| format_utc(r.started_at_ns)).into_iter(),
    );
    row(
        out,
        "simulated",
        each(&|r| match &r.simulated {
            Some(b) => format!("<span class=\"sim\">{}</span>", esc(b)),
            None => "no: real hardware".into(),
        })
        .into_iter(),
    );
    row(
        out,
        "plan",
        each(&|r| {
            format!(
                "{}<br>sha256 <code>{}</code>",
                esc(&r.plan_name),
                esc(&r.plan_sha256)
            )
        })
        .into_iter(),
    );
    row(
        out,
        "spec",
        each(&|r| match &r.spec {
            Some(s) => format!("{}<br>sha256 <code>{}</code>", esc(&s.name), esc(&s.sha256)),
            None => "not judged".into(),
        })
        .into_iter(),
    );
    row(out, "figures traced to", each(&trace_html).into_iter());
}

/// The measurement method's rows of the systems table.
fn method_rows(out: &mut String, runs: &[PublishRun], quality: &[Quality]) {
    let each = |f: &dyn Fn(&PublishRun) -> String| runs.iter().map(f).collect::<Vec<_>>();
    out.push_str("<tr><th colspan=\"99\"><b>Measurement method</b></th></tr>\n");
    row(
        out,
        "GPU-side power sensor",
        each(&|r| {
            r.method
                .gpu_sensor
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| "none".into())
        })
        .into_iter(),
    );
    row(
        out,
        "device sample rate",
        each(&|r| hz(r.method.gpu_sample_hz)).into_iter(),
    );
    row(
        out,
        "devices instrumented",
        each(&|r| {
            let m = &r.method;
            let pct = (m.devices_total > 0)
                .then(|| m.devices_instrumented as f64 / m.devices_total as f64 * 100.0);
            format!(
                "{} of {} ({} %)",
                m.devices_instrumented,
                m.devices_total,
                style::num(pct, 1)
            )
        })
        .into_iter(),
    );
    row(
        out,
        "run duration",
        each(&|r| {
            finite(r.method.run_s)
                .map(style::duration)
                .unwrap_or_else(|| "–".into())
        })
        .into_iter(),
    );
    row(
        out,
        "run covered by device samples",
        each(&|r| {
            let share = match (finite(r.method.covered_s), finite(r.method.run_s)) {
                (Some(c), Some(t)) if t > 0.0 => Some(c / t * 100.0),
                _ => None,
            };
            format!("{} %", style::num(share, 1))
        })
        .into_iter(),
    );
    row(
        out,
        "thermal resistance measured",
        each(&|r| {
            r.method
                .thermal_method
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| "–".into())
        })
        .into_iter(),
    );
    for k in [MeterKind::Pdu, MeterKind::Cdu, MeterKind::Bmc] {
        row(
            out,
            &format!("{} meters", k.as_str()),
            each(&|r| meter_text(r, k)).into_iter(),
        );
    }
    row(
        out,
        "quality level",
        runs.iter().zip(quality).map(|(_, q)| {
            let mut s = format!("<span class=\"level\">{}</span>", q.level);
            if !q.short_of_next.is_empty() {
                let _ = write!(
                    s,
                    "<br><span class=\"muted\">short of the next level: {}</span>",
                    esc(&q.short_of_next.join("; "))
                );
            }
            s
        }),
    );
}

/// Verdict counts, one column per run; `–` for a run that was not judged.
pub(crate) fn verdicts(runs: &[PublishRun]) -> String {
    let mut statuses: Vec<&str> = vec!["PASS", "WARN", "FAIL", "INCOMPLETE"];
    for r in runs {
        for k in r.verdicts.keys() {
            if !statuses.contains(&k.as_str()) {
                statuses.push(k);
            }
        }
    }
    let mut out = String::from("<table class=\"side\"><thead><tr><th></th>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(out, "<th class=\"num\">{}{}</th>", swatch(i), esc(&r.name));
    }
    out.push_str("</tr></thead><tbody>\n");
    for st in statuses {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", esc(st));
        for r in runs {
            let cell = if r.verdicts.is_empty() {
                "–".to_string()
            } else {
                r.verdicts.get(st).copied().unwrap_or(0).to_string()
            };
            let _ = write!(out, "<td class=\"num\">{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n<p class=\"caption\">Counts of verdicts by status, each against the spec named above for its run; – : the run was not judged.</p>\n");
    out
}

/// Every distribution in one table: median and quartiles per run, and how to read the charts.
pub(crate) fn glance(runs: &[PublishRun], charts: &[ChartData]) -> String {
    let mut out = String::from("<table class=\"side glance\"><thead><tr><th></th>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(out, "<th class=\"num\">{}{}</th>", swatch(i), esc(&r.name));
    }
    out.push_str("</tr></thead><tbody>\n");
    for c in charts {
        // A chart of several sizes: its largest here, every size in the chart.
        let groups = if c.groups.len() > 1 {
            &c.groups[c.groups.len() - 1..]
        } else {
            &c.groups[..]
        };
        for g in groups {
            let label = match &g.label {
                Some(l) => format!("{} at {l}", c.short),
                None => c.short.clone(),
            };
            let _ = write!(
                out,
                "<tr><th scope=\"row\"><a href=\"#{}\">{}</a> ({})</th>",
                c.id,
                esc(&label),
                esc(c.unit)
            );
            for row in &g.rows {
                let cell = match &row.stats {
                    Some(s) => format!(
                        "<b>{}</b> <span class=\"muted\">({} – {}) n {}</span>",
                        fmt(Some(s.median)),
                        fmt(Some(s.q1)),
                        fmt(Some(s.q3)),
                        s.n
                    ),
                    None => "–".into(),
                };
                let _ = write!(out, "<td class=\"num\">{cell}</td>");
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str(
        "</tbody></table>\n<p class=\"caption\">Median (first – third quartile) and the number of \
         values; – : no value; bandwidths at the largest size measured (every size in the chart). \
         In the charts below, one row per run: box from the first to the third \
         quartile, black bar the median, white dot the mean, whiskers to the most extreme values \
         within 1.5 × IQR of the box, hollow circles the values beyond, dots every value. Runs are \
         drawn side by side, never pooled; under each chart, the runs it is drawn from and the \
         bundle or data hash each run's figures are traced to.</p>\n",
    );
    out
}
