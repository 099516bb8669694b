//! The time-series charts, drawn with plotters into SVG strings that the page inlines: rack power
//! over time (one line per rack, phases shaded and named, the sustained-power target and the peak
//! limit), and the throttle timeline (per rack, the share of device samples thermally throttled).
//!
//! Both are 1200 px wide, share the rack colours of [`super::style::series_color`] and the time axis
//! (seconds since the run's start; minutes for runs over half an hour).

use super::data::Timeline;
use super::style::{self, FONT, GRID, MUTED, PHASE_FILL, TEXT};
use super::verdicts::PowerLimit;
use hallmark_results::verdict::Status;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Chart width, px.
pub const WIDTH: u32 = 1200;

/// A phase on the time axis: name, start and end in seconds since the run's start.
#[derive(Debug, Clone)]
pub struct PhaseSpan {
    pub name: String,
    pub from_s: f64,
    pub to_s: f64,
}

/// A rack as the charts label it.
#[derive(Debug, Clone)]
pub struct RackLabel {
    pub name: String,
    pub status: Option<Status>,
}

/// Seconds or minutes, whichever reads better for the run's length.
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    pub per_unit_s: f64,
    pub unit: &'static str,
    /// Decimals of the tick labels (1 on axes shorter than 10 units).
    pub decimals: usize,
}

impl TimeAxis {
    pub fn for_span(span_s: f64) -> TimeAxis {
        let (per_unit_s, unit) = if span_s > 1800.0 {
            (60.0, "min")
        } else {
            (1.0, "s")
        };
        TimeAxis {
            per_unit_s,
            unit,
            decimals: if span_s / per_unit_s < 10.0 { 1 } else { 0 },
        }
    }

    pub fn x(&self, s: f64) -> f64 {
        s / self.per_unit_s
    }

    /// A tick label: whole units unless the axis is short.
    pub fn label(&self, v: f64) -> String {
        format!("{v:.*}", self.decimals)
    }

    pub fn desc(&self) -> String {
        format!("time since run start ({})", self.unit)
    }
}

/// plotters writes an SVG font size of `size / 1.24`: this asks for `px` pixels.
fn px(px: u32) -> f64 {
    f64::from(px) * 1.24
}

/// Chart text of `size` px.
pub fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, px(size)).into_font()).color(&TEXT)
}

/// Bold chart text of `size` px.
pub fn bold(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, px(size), FontStyle::Bold).into_font()).color(&TEXT)
}

/// Decimals of tick labels on an axis from 0 to `max`, so that neighbouring ticks differ.
pub fn tick_decimals(max: f64) -> usize {
    if max >= 20.0 {
        0
    } else if max >= 2.0 {
        1
    } else {
        2
    }
}

/// Splits a series into runs of consecutive present values, as chart points.
pub(crate) fn segments(
    tl: &Timeline,
    axis: TimeAxis,
    series: &[Option<f64>],
) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for (i, v) in series.iter().enumerate() {
        match v {
            Some(v) if v.is_finite() => current.push((axis.x(tl.x_s(i)), *v)),
            _ => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Rack power over time; `None` when no rack has any power reading.
pub fn power_chart(
    tl: &Timeline,
    racks: &[RackLabel],
    series: &[Vec<Option<f64>>],
    phases: &[PhaseSpan],
    targets: &[PowerLimit],
    peaks: &[PowerLimit],
) -> DrawResult<Option<String>> {
    let data_max = series
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !data_max.is_finite() {
        return Ok(None);
    }
    let limit_max = targets
        .iter()
        .chain(peaks)
        .map(|l| l.kw)
        .fold(0.0, f64::max);
    let y_max = (data_max.max(limit_max) * 1.12).max(1.0);
    let axis = TimeAxis::for_span(tl.span_s());
    let x_max = axis.x(tl.span_s());
    const HEIGHT: u32 = 540;
    const LEGEND_W: u32 = 250;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_W);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        let clamp = |s: f64| axis.x(s).clamp(0.0, x_max);
        chart.draw_series(phases.iter().enumerate().map(|(i, p)| {
            Rectangle::new(
                [(clamp(p.from_s), 0.0), (clamp(p.to_s), y_max)],
                PHASE_FILL[i % 2].filled(),
            )
        }))?;
        chart
            .configure_mesh()
            .x_desc(axis.desc())
            .y_desc("rack power (kW)")
            .x_label_formatter(&|v| axis.label(*v))
            .y_label_formatter(&|v| format!("{v:.*}", tick_decimals(y_max)))
            .label_style(font(14))
            .axis_desc_style(font(15))
            .bold_line_style(GRID)
            .light_line_style(GRID.mix(0.4))
            .draw()?;
        // Phase names where they fit.
        let px_per_unit = f64::from(WIDTH - LEGEND_W - 90) / x_max.max(1e-9);
        for p in phases {
            let width_px = (clamp(p.to_s) - clamp(p.from_s)) * px_per_unit;
            if width_px > p.name.chars().count() as f64 * 8.0 + 10.0 {
                let at = chart.backend_coord(&(clamp(p.from_s), y_max));
                root.draw(&Text::new(
                    p.name.clone(),
                    (at.0 + 5, at.1 + 5),
                    font(13).color(&MUTED),
                ))?;
            }
        }
        let width = if racks.len() > 20 { 1 } else { 2 };
        // Racks with the worst verdicts last, on top of the others.
        let mut order: Vec<usize> = (0..series.len()).collect();
        order.sort_by_key(|&i| racks.get(i).and_then(|r| r.status));
        for i in order {
            let s = &series[i];
            let color = style::series_color(i);
            for seg in segments(tl, axis, s) {
                chart.draw_series(LineSeries::new(seg, color.stroke_width(width)))?;
            }
        }
        // Limits: the peak limit solid red, the sustained target dashed green; named in the legend.
        let mut keys = Vec::new();
        for (limits, color, dashed, name) in [
            (peaks, style::FAIL, false, "peak limit"),
            (targets, style::PASS, true, "sustained target"),
        ] {
            for l in limits {
                let line = vec![(0.0, l.kw), (x_max, l.kw)];
                let shape = color.stroke_width(2);
                if dashed {
                    chart.draw_series(DashedLineSeries::new(line, 10, 6, shape))?;
                } else {
                    chart.draw_series(LineSeries::new(line, shape))?;
                }
                keys.push(LimitKey {
                    name,
                    label: l.label.clone(),
                    color,
                    dashed,
                });
            }
        }
        legend_column(&legend, racks, &keys)?;
        root.present()?;
    }
    Ok(Some(svg))
}

/// A limit line as the legend names it.
struct LimitKey {
    name: &'static str,
    label: String,
    color: RGBColor,
    dashed: bool,
}

/// The legend beside the power chart: each rack's colour and name (with its worst verdict when that
/// is not PASS), then the limit lines.
fn legend_column<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    racks: &[RackLabel],
    limits: &[LimitKey],
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    const ROW: i32 = 20;
    let (_, h) = area.dim_in_pixel();
    let limit_rows = if limits.is_empty() {
        0
    } else {
        1 + 2 * limits.len() as i32
    };
    let fits = ((h as i32 - 60 - limit_rows * ROW) / ROW).max(1) as usize;
    let left = |y: i32| (36, y);
    let mid = Pos::new(HPos::Left, VPos::Center);
    area.draw(&Text::new("racks", (8, 24), bold(14).pos(mid)))?;
    let mut y = 24;
    for (i, r) in racks.iter().enumerate() {
        y += ROW;
        if i + 1 == fits && racks.len() > fits {
            let more = format!("… {} more", racks.len() - i);
            area.draw(&Text::new(more, (8, y), font(13).color(&MUTED).pos(mid)))?;
            break;
        }
        let c = style::series_color(i);
        area.draw(&PathElement::new(vec![(8, y), (30, y)], c.stroke_width(3)))?;
        let (text, color) = match r.status {
            Some(s) if s != Status::Pass => {
                (format!("{} {}", r.name, s.as_str()), style::status_color(s))
            }
            _ => (r.name.clone(), TEXT),
        };
        area.draw(&Text::new(text, left(y), font(13).color(&color).pos(mid)))?;
    }
    if !limits.is_empty() {
        y += ROW + ROW / 2;
        area.draw(&Text::new("limits", (8, y), bold(14).pos(mid)))?;
        for l in limits {
            y += ROW;
            let line = vec![(8, y), (30, y)];
            if l.dashed {
                area.draw(&PathElement::new(
                    vec![(8, y), (16, y)],
                    l.color.stroke_width(2),
                ))?;
                area.draw(&PathElement::new(
                    vec![(21, y), (30, y)],
                    l.color.stroke_width(2),
                ))?;
            } else {
                area.draw(&PathElement::new(line, l.color.stroke_width(2)))?;
            }
            area.draw(&Text::new(
                l.name,
                left(y),
                font(13).color(&l.color).pos(mid),
            ))?;
            y += ROW - 4;
            area.draw(&Text::new(
                l.label.clone(),
                left(y),
                font(12).color(&MUTED).pos(mid),
            ))?;
        }
    }
    Ok(())
}

/// Throttle timeline: one band per rack, the share of its device samples in each bucket with a
/// thermal throttle bit; `None` when there are no samples.
pub fn throttle_chart(
    tl: &Timeline,
    racks: &[RackLabel],
    grid: &[Vec<(u32, u32)>],
    phases: &[PhaseSpan],
) -> DrawResult<Option<String>> {
    if !grid.iter().flatten().any(|c| c.0 > 0) {
        return Ok(None);
    }
    let n = racks.len().min(grid.len());
    let band: u32 = if n > 40 { 12 } else { 22 };
    let height = 110 + band * n as u32;
    let label_w = racks
        .iter()
        .map(|r| r.name.chars().count() as u32)
        .max()
        .unwrap_or(4)
        .clamp(4, 40)
        * 8
        + 24;
    let axis = TimeAxis::for_span(tl.span_s());
    let x_max = axis.x(tl.span_s());
    let half = axis.x(tl.width_ns as f64 / 2e9);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .margin_top(30)
            .x_label_area_size(48)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0f64..x_max, 0f64..n as f64)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(axis.desc())
            .x_label_formatter(&|v| axis.label(*v))
            .label_style(font(14))
            .axis_desc_style(font(15))
            .bold_line_style(GRID)
            .light_line_style(GRID.mix(0.4))
            .draw()?;
        let no_data = RGBColor(0xd0, 0xd0, 0xd0);
        for (i, cells) in grid.iter().take(n).enumerate() {
            let y0 = (n - 1 - i) as f64 + 0.08;
            let y1 = (n - i) as f64 - 0.08;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (x_max, y1)],
                GRID.stroke_width(1),
            )))?;
            // Runs of equal colour become one rectangle; fully unthrottled stretches stay white.
            let level = |c: &(u32, u32)| -> Option<u32> {
                match c {
                    (0, _) => None,
                    (s, t) => Some((f64::from(*t) / f64::from(*s) * 20.0).round() as u32),
                }
            };
            let mut start = 0usize;
            while start < cells.len() {
                let l = level(&cells[start]);
                let mut end = start + 1;
                while end < cells.len() && level(&cells[end]) == l {
                    end += 1;
                }
                let color = match l {
                    None => Some(no_data),
                    Some(0) => None,
                    Some(k) => Some(style::throttle_scale(f64::from(k) / 20.0)),
                };
                if let Some(color) = color {
                    let x0 = (axis.x(tl.x_s(start)) - half).max(0.0);
                    let x1 = (axis.x(tl.x_s(end - 1)) + half).min(x_max);
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, y0), (x1, y1)],
                        color.filled(),
                    )))?;
                }
                start = end;
            }
            let at = chart.backend_coord(&(0.0, (n - i) as f64 - 0.5));
            let color = racks[i]
                .status
                .filter(|s| *s != Status::Pass)
                .map(style::status_color)
                .unwrap_or(TEXT);
            root.draw(&Text::new(
                racks[i].name.clone(),
                (at.0 - 8, at.1),
                font(13)
                    .color(&color)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
        }
        let px_per_unit = f64::from(WIDTH - label_w - 30) / x_max.max(1e-9);
        for p in phases {
            let x = axis.x(p.from_s);
            if !(0.0..x_max).contains(&x) {
                continue;
            }
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, 0.0), (x, n as f64)],
                MUTED.stroke_width(1),
            )))?;
            let width_px = (axis.x(p.to_s).min(x_max) - x) * px_per_unit;
            if width_px < p.name.chars().count() as f64 * 8.0 + 10.0 {
                continue;
            }
            let at = chart.backend_coord(&(x, n as f64));
            root.draw(&Text::new(
                p.name.clone(),
                (at.0 + 4, at.1 - 4),
                font(13)
                    .color(&MUTED)
                    .pos(Pos::new(HPos::Left, VPos::Bottom)),
            ))?;
        }
        root.present()?;
    }
    Ok(Some(svg))
}
