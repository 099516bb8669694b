//! One publication chart as a standalone SVG (drawn with plotters and the report's embedded font):
//! a horizontal box-and-whisker per run over the run's individual values as a strip of dots, groups
//! (message sizes) one under the other, a value axis, and under the plot the run ids and bundle
//! hashes the chart is drawn from. A chart with a simulated run carries a SIMULATED band under its
//! title and the word on that run's row and source line.
//!
//! Box: first to third quartile; thick line: median; white dot: mean; whiskers: the most extreme
//! values within 1.5 × IQR; hollow circles: values beyond the whiskers.

use super::dataset::{ChartData, Row};
use crate::charts::{bold, font, DrawResult, WIDTH};
use crate::style::{self, GRID, MUTED, TEXT};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The SIMULATED colour, as the report's banner.
pub const SIM: RGBColor = RGBColor(0x4a, 0x14, 0x8c);
const MARK: RGBColor = RGBColor(0xc6, 0x28, 0x28);

/// A run as a chart labels it.
pub(crate) struct RunLabel {
    pub name: String,
    pub hall: String,
    pub run_id: String,
    pub simulated: bool,
    /// What the run's figures are traced to (`bundle sha256 …`, or why there is no bundle).
    pub trace: String,
}

const LABEL_W: i32 = 300;
const RIGHT_W: i32 = 120;
const ROW_H: i32 = 46;
const GROUP_H: i32 = 26;
const TITLE_H: i32 = 40;
const SIM_H: i32 = 30;
const AXIS_H: i32 = 56;
const SOURCE_H: i32 = 18;
/// Most dots drawn per row; beyond, only the outliers.
const MAX_DOTS: usize = 2000;

/// A round step near `span / 6` and the axis from a multiple of it to a multiple of it.
fn axis_range(lo: f64, hi: f64) -> (f64, f64, f64) {
    let (mut lo, mut hi) = (lo, hi);
    if lo >= 0.0 && lo < 0.3 * hi {
        lo = 0.0;
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = (hi.abs() * 0.1).max(1.0);
        lo -= pad;
        hi += pad;
        if lo < 0.0 && hi - pad >= 0.0 {
            lo = 0.0;
        }
    }
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((lo / step).floor() * step, (hi / step).ceil() * step, step)
}

/// Decimals that print every multiple of `step` exactly (at most 6).
fn decimals(step: f64) -> usize {
    (0..6)
        .find(|d| {
            let x = step * 10f64.powi(*d as i32);
            (x - x.round()).abs() < 1e-6 * x.abs().max(1.0)
        })
        .unwrap_or(6)
}

/// `s` cut to at most `n` characters, with `…` when cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Vertical jitter of the `i`-th dot, px in ±11 (deterministic: the golden-ratio sequence).
fn jitter(i: usize) -> i32 {
    let f = (i as f64 * 0.618_033_988_749_895).fract();
    ((f - 0.5) * 22.0).round() as i32
}

/// Height of the rows and group headings, px.
fn plot_height(c: &ChartData) -> i32 {
    c.groups
        .iter()
        .map(|g| g.label.is_some() as i32 * GROUP_H + g.rows.len() as i32 * ROW_H)
        .sum()
}

/// Height of the sources under the axis: a heading, two lines per run.
fn sources_height(runs: &[RunLabel]) -> i32 {
    SOURCE_H + runs.len() as i32 * 2 * SOURCE_H + 8
}

/// The value axis: linear between round values, or logarithmic over whole decades.
enum Axis {
    Linear { lo: f64, hi: f64, step: f64 },
    Log { lo_exp: i32, hi_exp: i32 },
}

impl Axis {
    /// The axis over `lo..=hi`; logarithmic when asked and every value is above zero.
    fn new(lo: f64, hi: f64, log: bool) -> Axis {
        if log && lo > 0.0 && hi.is_finite() {
            let lo_exp = lo.log10().floor() as i32;
            let hi_exp = (hi.log10().ceil() as i32).max(lo_exp + 1);
            Axis::Log { lo_exp, hi_exp }
        } else {
            let (lo, hi, step) = axis_range(lo, hi);
            Axis::Linear { lo, hi, step }
        }
    }

    /// Where `v` is, 0 at the axis' start and 1 at its end.
    fn frac(&self, v: f64) -> f64 {
        match *self {
            Axis::Linear { lo, hi, .. } => (v - lo) / (hi - lo),
            Axis::Log { lo_exp, hi_exp } => {
                (v.log10() - f64::from(lo_exp)) / f64::from(hi_exp - lo_exp)
            }
        }
    }

    /// Tick values and labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        match *self {
            Axis::Linear { lo, hi, step } => {
                let dec = decimals(step);
                let n = ((hi - lo) / step).round() as i32;
                (0..=n)
                    .map(|i| {
                        let t = lo + step * f64::from(i);
                        (t, format!("{t:.dec$}"))
                    })
                    .collect()
            }
            Axis::Log { lo_exp, hi_exp } => {
                let label = |m: f64, k: i32| {
                    let t = m * 10f64.powi(k);
                    (t, format!("{t:.*}", (-k).max(0) as usize))
                };
                let mut out: Vec<(f64, String)> = (lo_exp..hi_exp)
                    .flat_map(|k| [1.0, 2.0, 5.0].map(|m| label(m, k)))
                    .collect();
                out.push(label(1.0, hi_exp));
                out
            }
        }
    }
}

/// The chart's height, px.
fn height(c: &ChartData, runs: &[RunLabel]) -> i32 {
    let sim = runs.iter().any(|r| r.simulated);
    TITLE_H + if sim { SIM_H } else { 0 } + 10 + plot_height(c) + AXIS_H + sources_height(runs)
}

/// The drawing surface of a chart.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws chart `c` of `runs` (indexed by [`Row::run`]).
pub(crate) fn draw(c: &ChartData, runs: &[RunLabel]) -> DrawResult<String> {
    let h = height(c, runs);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, h as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let w = WIDTH as i32;
        let (x0, x1) = (LABEL_W, w - RIGHT_W);
        let mut y = header(&root, c, runs)?;
        let (lo, hi) = value_range(c);
        let axis = Axis::new(lo, hi, c.log);
        let px = |v: f64| x0 + (axis.frac(v) * f64::from(x1 - x0)).round() as i32;
        let plot = (y, y + plot_height(c));
        grid(&root, c, &axis, &px, plot)?;
        for g in &c.groups {
            if let Some(label) = &g.label {
                root.draw(&Text::new(
                    label.clone(),
                    (16, y + GROUP_H / 2),
                    bold(14).pos(Pos::new(HPos::Left, VPos::Center)),
                ))?;
                root.draw(&PathElement::new(
                    vec![(16, y + GROUP_H - 2), (w - 16, y + GROUP_H - 2)],
                    GRID.stroke_width(1),
                ))?;
                y += GROUP_H;
            }
            for row in &g.rows {
                draw_row(&root, row, runs, y, &px)?;
                y += ROW_H;
            }
        }
        sources(&root, runs, plot.1 + AXIS_H)?;
        root.present()?;
    }
    Ok(svg)
}

/// The title, the key of the red marks, and the SIMULATED band; returns where the plot starts.
fn header(root: &Area, c: &ChartData, runs: &[RunLabel]) -> DrawResult<i32> {
    let w = WIDTH as i32;
    root.draw(&Text::new(c.title.clone(), (16, 12), bold(17)))?;
    let key = match (&c.reference, c.marks_are) {
        (Some((_, label)), _) => Some(format!("dashed red line: {label}")),
        (None, Some(m)) => Some(format!("red ticks: {m}")),
        (None, None) => None,
    };
    if let Some(key) = key {
        root.draw(&Text::new(
            key,
            (w - 16, 16),
            font(13).color(&MARK).pos(Pos::new(HPos::Right, VPos::Top)),
        ))?;
    }
    let mut y = TITLE_H;
    let sims: Vec<&str> = runs
        .iter()
        .filter(|r| r.simulated)
        .map(|r| r.name.as_str())
        .collect();
    if !sims.is_empty() {
        root.draw(&Rectangle::new([(0, y), (w, y + SIM_H - 4)], SIM.filled()))?;
        let text = if sims.len() == runs.len() {
            "SIMULATED: every run in this chart is simulated; these figures do not certify hardware"
                .to_string()
        } else {
            format!(
                "SIMULATED: {} of these runs ({}) are simulated; their figures do not certify hardware",
                sims.len(),
                cut(&sims.join(", "), 60)
            )
        };
        root.draw(&Text::new(
            text,
            (16, y + (SIM_H - 4) / 2),
            bold(14)
                .color(&WHITE)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        y += SIM_H;
    }
    y += 10;

    Ok(y)
}

/// The smallest and largest value, mark and reference of the chart (0 to 1 when it has none).
fn value_range(c: &ChartData) -> (f64, f64) {
    let all = c.groups.iter().flat_map(|g| g.rows.iter());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in all {
        for v in r.values.iter().chain(&r.marks) {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if let Some((v, _)) = &c.reference {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        (lo, hi) = (0.0, 1.0);
    }
    (lo, hi)
}

/// Grid lines, tick labels, the axis and its description, and the reference line, over the plot
/// from `plot_top` to `plot_bottom`.
fn grid(
    root: &Area,
    c: &ChartData,
    axis: &Axis,
    px: &dyn Fn(f64) -> i32,
    (plot_top, plot_bottom): (i32, i32),
) -> DrawResult<()> {
    let (x0, x1) = (LABEL_W, WIDTH as i32 - RIGHT_W);
    for (t, label) in axis.ticks() {
        let x = px(t);
        root.draw(&PathElement::new(
            vec![(x, plot_top), (x, plot_bottom)],
            GRID.stroke_width(1),
        ))?;
        root.draw(&Text::new(
            label,
            (x, plot_bottom + 8),
            font(13).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    root.draw(&PathElement::new(
        vec![(x0, plot_bottom), (x1, plot_bottom)],
        MUTED.stroke_width(1),
    ))?;
    root.draw(&Text::new(
        c.axis.clone(),
        ((x0 + x1) / 2, plot_bottom + 30),
        font(14).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    if let Some((v, label)) = &c.reference {
        let x = px(*v);
        let mut yy = plot_top;
        while yy < plot_bottom {
            root.draw(&PathElement::new(
                vec![(x, yy), (x, (yy + 6).min(plot_bottom))],
                MARK.stroke_width(2),
            ))?;
            yy += 10;
        }
        // The label on the side of the line with more room.
        let (at, h) = if x > (x0 + x1) / 2 {
            (x - 4, HPos::Right)
        } else {
            (x + 4, HPos::Left)
        };
        root.draw(&Text::new(
            label.clone(),
            (at, plot_top + 2),
            font(12).color(&MARK).pos(Pos::new(h, VPos::Top)),
        ))?;
    }

    Ok(())
}

/// Under the axis from `y`: each run's name, hall, run id and what its figures are traced to.
fn sources(root: &Area, runs: &[RunLabel], y: i32) -> DrawResult<()> {
    let mut y = y;
    root.draw(&Text::new(
        "Drawn from:".to_string(),
        (16, y),
        bold(12).color(&MUTED),
    ))?;
    y += 18;
    for (i, r) in runs.iter().enumerate() {
        let color = style::series_color(i);
        root.draw(&Rectangle::new([(16, y + 2), (26, y + 12)], color.filled()))?;
        let mut text = format!(
            "{} ({}): run {}",
            cut(&r.name, 48),
            cut(&r.hall, 32),
            r.run_id
        );
        if r.simulated {
            text.push_str(" · SIMULATED");
        }
        let ink = if r.simulated { &SIM } else { &TEXT };
        root.draw(&Text::new(text, (32, y), bold(12).color(ink)))?;
        root.draw(&Text::new(
            r.trace.clone(),
            (32, y + 16),
            font(12).color(ink),
        ))?;
        y += 2 * SOURCE_H;
    }
    Ok(())
}

/// One run's row at `y`: label, dots, box, whiskers, marks and its count.
fn draw_row(
    root: &Area,
    row: &Row,
    runs: &[RunLabel],
    y: i32,
    px: &dyn Fn(f64) -> i32,
) -> DrawResult<()> {
    let Some(run) = runs.get(row.run) else {
        return Ok(());
    };
    let color = style::series_color(row.run);
    let cy = y + ROW_H / 2;
    root.draw(&Rectangle::new(
        [(16, cy - 6), (26, cy + 6)],
        color.filled(),
    ))?;
    root.draw(&Text::new(
        cut(&format!("{} · {}", run.name, run.hall), 34),
        (32, cy - 3),
        bold(13).pos(Pos::new(HPos::Left, VPos::Bottom)),
    ))?;
    let sub = if run.simulated {
        format!("{} · SIMULATED", cut(&run.run_id, 24))
    } else {
        cut(&run.run_id, 36)
    };
    root.draw(&Text::new(
        sub,
        (32, cy + 2),
        font(11)
            .color(if run.simulated { &SIM } else { &MUTED })
            .pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    let right = WIDTH as i32 - RIGHT_W + 12;
    let count = format!("n = {}", row.values.len());
    root.draw(&Text::new(
        count,
        (right, cy - 2),
        font(12).pos(Pos::new(HPos::Left, VPos::Bottom)),
    ))?;
    if row.absent > 0 {
        root.draw(&Text::new(
            format!("{} without value", row.absent),
            (right, cy + 2),
            font(11).color(&MUTED).pos(Pos::new(HPos::Left, VPos::Top)),
        ))?;
    }
    let Some(b) = &row.stats else {
        root.draw(&Text::new(
            "not measured: no value in this run".to_string(),
            (LABEL_W + 8, cy),
            font(13)
                .color(&MUTED)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        return Ok(());
    };
    draw_box(root, row, b, cy, color, px)
}

/// The dots, box, whiskers, median, mean, outliers and marks of a row around `cy`.
fn draw_box(
    root: &Area,
    row: &Row,
    b: &super::stats::BoxStats,
    cy: i32,
    color: RGBColor,
    px: &dyn Fn(f64) -> i32,
) -> DrawResult<()> {
    // The values as dots behind the box.
    if row.values.len() <= MAX_DOTS {
        // Few values: larger, stronger dots.
        let (r, alpha) = if row.values.len() <= 100 {
            (3, 0.7)
        } else {
            (2, 0.45)
        };
        for (i, v) in row.values.iter().enumerate() {
            root.draw(&Circle::new(
                (px(*v), cy + jitter(i)),
                r,
                color.mix(alpha).filled(),
            ))?;
        }
    }
    let (q1, q3) = (px(b.q1), px(b.q3));
    let line = color.stroke_width(2);
    root.draw(&PathElement::new(
        vec![(px(b.whisker_lo), cy), (q1, cy)],
        line,
    ))?;
    root.draw(&PathElement::new(
        vec![(q3, cy), (px(b.whisker_hi), cy)],
        line,
    ))?;
    for x in [px(b.whisker_lo), px(b.whisker_hi)] {
        root.draw(&PathElement::new(vec![(x, cy - 7), (x, cy + 7)], line))?;
    }
    root.draw(&Rectangle::new(
        [(q1, cy - 11), (q3.max(q1 + 1), cy + 11)],
        color.mix(0.25).filled(),
    ))?;
    root.draw(&PathElement::new(
        vec![
            (q1, cy - 11),
            (q3, cy - 11),
            (q3, cy + 11),
            (q1, cy + 11),
            (q1, cy - 11),
        ],
        line,
    ))?;
    let m = px(b.median);
    root.draw(&Rectangle::new(
        [(m - 1, cy - 13), (m + 2, cy + 13)],
        TEXT.filled(),
    ))?;
    root.draw(&Circle::new((px(b.mean), cy), 3, WHITE.filled()))?;
    root.draw(&Circle::new((px(b.mean), cy), 3, TEXT.stroke_width(1)))?;
    for v in row
        .values
        .iter()
        .filter(|v| **v < b.whisker_lo || **v > b.whisker_hi)
    {
        root.draw(&Circle::new((px(*v), cy), 4, color.stroke_width(1)))?;
    }
    for v in &row.marks {
        let x = px(*v);
        root.draw(&Rectangle::new(
            [(x - 1, cy - 17), (x + 1, cy + 17)],
            MARK.filled(),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_axes() {
        assert_eq!(axis_range(0.0, 10.0), (0.0, 10.0, 2.0));
        assert_eq!(axis_range(650.0, 720.0), (640.0, 720.0, 20.0));
        assert_eq!(axis_range(5.0, 5.0), (4.0, 6.0, 0.5));
        assert_eq!((decimals(0.25), decimals(0.5), decimals(20.0)), (2, 1, 0));
        assert_eq!(cut("abcdef", 4), "abc…");
        let log = Axis::new(9.0, 372.0, true);
        let ticks: Vec<String> = log.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(
            ticks,
            ["1", "2", "5", "10", "20", "50", "100", "200", "500", "1000"]
        );
        assert_eq!(log.frac(10.0), 1.0 / 3.0);
        let small: Vec<String> = Axis::new(0.02, 0.5, true)
            .ticks()
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(small[0], "0.01");
        assert!(matches!(Axis::new(0.0, 5.0, true), Axis::Linear { .. }));
    }
}
