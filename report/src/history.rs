//! The history page (`hallmark history --html FILE`): one self-contained HTML document with a chart
//! per series — the metric over the runs of its plan, oldest first, one point per run, each change
//! point marked by a dashed red line at the run where the new level starts with the mean before and
//! after drawn as steps — and a table of the runs. Series with change points come first; past
//! `max_charts` the rest are counted, not drawn, and the page says how to narrow the selection.

use crate::charts::{font, tick_decimals, DrawResult};
use crate::style::{self, esc, GRID, MUTED};
use hallmark_results::regress::{History, Series};
use hallmark_store::time::format_utc;
use plotters::prelude::*;
use std::fmt::Write;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 300;

/// The chart of one series; `None` when it has no measured point.
pub fn series_chart(s: &Series) -> DrawResult<Option<String>> {
    let present: Vec<(usize, f64)> = s
        .points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.value.map(|v| (i, v)))
        .collect();
    if present.is_empty() {
        return Ok(None);
    }
    let lo = present.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = present
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.15).max(hi.abs().max(1e-9) * 0.01);
    let (y0, y1) = (lo - pad, hi + pad);
    let x_max = (s.points.len().max(2) - 1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(72)
            .build_cartesian_2d(-0.5f64..x_max + 0.5, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("run (oldest first)")
            .y_desc(format!("{} ({})", s.metric, s.unit))
            .x_label_formatter(&|v| format!("{}", v.round() as i64 + 1))
            .y_label_formatter(&|v| format!("{v:.*}", tick_decimals(y1.abs().max(y0.abs()))))
            .label_style(font(13))
            .axis_desc_style(font(14))
            .bold_line_style(GRID)
            .light_line_style(GRID.mix(0.4))
            .draw()?;
        let line = style::series_color(0);
        chart.draw_series(LineSeries::new(
            present.iter().map(|&(i, v)| (i as f64, v)),
            line.stroke_width(2),
        ))?;
        chart.draw_series(
            present
                .iter()
                .map(|&(i, v)| Circle::new((i as f64, v), 3, line.filled())),
        )?;
        draw_levels(&mut chart, s, x_max)?;
        for cp in &s.change_points {
            let x = cp.index as f64 - 0.5;
            chart.draw_series(DashedLineSeries::new(
                vec![(x, y0), (x, y1)],
                6,
                4,
                style::FAIL.stroke_width(2),
            ))?;
        }
        root.present()?;
    }
    Ok(Some(svg))
}

/// The mean level of each segment between change points, as thin grey steps.
fn draw_levels<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    s: &Series,
    x_max: f64,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    let mut from = -0.5;
    for (k, cp) in s.change_points.iter().enumerate() {
        let to = cp.index as f64 - 0.5;
        chart.draw_series(LineSeries::new(
            vec![(from, cp.mean_before), (to, cp.mean_before)],
            MUTED.stroke_width(1),
        ))?;
        from = to;
        if k + 1 == s.change_points.len() {
            chart.draw_series(LineSeries::new(
                vec![(from, cp.mean_after), (x_max + 0.5, cp.mean_after)],
                MUTED.stroke_width(1),
            ))?;
        }
    }
    Ok(())
}

/// The caption of a series: what it is and its change points.
fn caption(s: &Series) -> String {
    let mut c = format!(
        "<b>{}</b> {} · {} · plan {} · hall {} · {} runs",
        esc(&s.metric),
        esc(&s.kind),
        esc(&s.subject),
        esc(&s.plan_name),
        esc(&s.hall),
        s.points.len()
    );
    if s.change_points.is_empty() {
        c.push_str(" · no change point");
    }
    for cp in &s.change_points {
        let delta = cp
            .delta_pct
            .map(|d| format!("{d:+.1} %"))
            .unwrap_or_else(|| "from 0".into());
        let _ = write!(
            c,
            " · <span class=\"fail\">change point at run {} ({}): {}, p = {:.2e}</span>",
            cp.index + 1,
            esc(&cp.run_id),
            delta,
            cp.p_value
        );
    }
    c
}

/// The whole page: at most `max_charts` charts.
pub fn history_page(h: &History, title: &str, max_charts: usize) -> DrawResult<String> {
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>hallmark history — {}</title><style>{}</style></head>\n<body><main>\n\
         <header><h1>hallmark history: {}</h1><div class=\"muted\">{} runs · {} series · {} with \
         change points (e-divisive with a t-test, as Apache Otava; docs/COMPARE.md)</div></header>\n",
        esc(title),
        crate::html::CSS,
        esc(title),
        h.runs.len(),
        h.series.len(),
        h.series.iter().filter(|s| !s.change_points.is_empty()).count()
    );
    if !h.plans_edited.is_empty() {
        let _ = writeln!(
            out,
            "<div class=\"warnbox\">The text of plan {} changed within this history: its series \
             span the edit.</div>",
            esc(&h.plans_edited.join(", "))
        );
    }
    out.push_str("<section id=\"series\"><h2>Series</h2>\n");
    for s in h.series.iter().take(max_charts) {
        let svg = series_chart(s)?;
        out.push_str(&crate::html::figure(
            svg,
            &caption(s),
            &format!("{} {}: no run measured it", s.subject, s.metric),
        ));
    }
    if h.series.len() > max_charts {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more series are not drawn: narrow the selection with --metric \
             and --subject, or raise --max-charts.</p>",
            h.series.len() - max_charts
        );
    }
    out.push_str(
        "</section>\n<section id=\"runs\"><h2>Runs</h2>\n<table><tr><th>#</th><th>run</th>\
         <th>name</th><th>plan</th><th>plan SHA-256</th><th>hall</th><th>started (UTC)</th></tr>\n",
    );
    for (i, r) in h.runs.iter().enumerate() {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
             <td>{}</td></tr>",
            i + 1,
            esc(&r.run_id),
            esc(&r.name),
            esc(&r.plan_name),
            esc(r.plan_sha256.get(..12).unwrap_or(&r.plan_sha256)),
            esc(&r.halls.join(", ")),
            format_utc(r.started_at_ns)
        );
    }
    out.push_str("</table></section>\n</main></body></html>\n");
    Ok(out)
}

/// Most charts in the run report's history section.
const REPORT_CHARTS: usize = 24;

/// The run report's history section: the series of the run's plan and hall up to this run — every
/// series with a change point, then the hall's and racks' — or a note while the history is short.
pub(crate) fn section(
    store: &hallmark_store::Store,
    s: &hallmark_results::RunSummary,
) -> Result<crate::html::Section, crate::ReportError> {
    use hallmark_results::regress::{history, RegressError};
    let query = hallmark_store::HistoryQuery {
        plan_name: Some(s.plan_name.clone()),
        until_ns: Some(s.started_at_ns),
        ..hallmark_store::HistoryQuery::default()
    };
    let h = match history(store, &query, &hallmark_compare::Params::default()) {
        Ok(h) => h,
        Err(RegressError::Store(e)) => return Err(e.into()),
        Err(e) => {
            return Ok(history_section(format!(
                "<p class=\"note\">The history could not be analysed: {}</p>",
                esc(&e.to_string())
            )))
        }
    };
    let this = h.runs.iter().find(|r| r.run_id == s.run_id);
    let Some(this) = this else {
        return Ok(history_section(format!(
            "<p class=\"note\">This run's per-subject metrics are not stored (a run of an older \
             hallmark, or one whose end was not recorded): `hallmark compare` computes them; the \
             history of plan {} is then drawn here.</p>",
            esc(&s.plan_name)
        )));
    };
    let hall = this.halls.join(", ");
    let series: Vec<&Series> = h.series.iter().filter(|x| x.hall == hall).collect();
    let runs = series.first().map(|x| x.points.len()).unwrap_or(1);
    if runs < 2 {
        return Ok(history_section(format!(
            "<p class=\"note\">This is the first run of plan {} in hall {} with stored metrics: \
             the history starts here.</p>",
            esc(&s.plan_name),
            esc(&hall)
        )));
    }
    let mut shown: Vec<&Series> = series
        .iter()
        .copied()
        .filter(|x| !x.change_points.is_empty() || x.kind == "hall" || x.kind == "rack")
        .collect();
    let hidden = shown.len().saturating_sub(REPORT_CHARTS);
    shown.truncate(REPORT_CHARTS);
    let mut body = format!(
        "<p>{runs} runs of plan {} in hall {}, up to this one; {} series, {} with change points \
         (e-divisive with a t-test, as Apache Otava). Drawn: the series with change points, then \
         the hall's and racks'. Every series: <code>hallmark history --plan {} --html FILE</code>.</p>\n",
        esc(&s.plan_name),
        esc(&hall),
        series.len(),
        series.iter().filter(|x| !x.change_points.is_empty()).count(),
        esc(&s.plan_name)
    );
    for x in shown {
        let svg = crate::chart("history", series_chart(x))?;
        body.push_str(&crate::html::figure(
            svg,
            &caption(x),
            &format!("{} {}: no run measured it", x.subject, x.metric),
        ));
    }
    if hidden > 0 {
        let _ = writeln!(
            body,
            "<p class=\"note\">{hidden} more series are not drawn here.</p>"
        );
    }
    Ok(history_section(body))
}

fn history_section(body: String) -> crate::html::Section {
    crate::html::Section {
        id: "history",
        title: "History of the plan",
        body,
    }
}
