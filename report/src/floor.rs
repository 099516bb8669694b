//! The hall floor map (rows × racks, each cell coloured by the rack's sustained kW and outlined by its
//! worst verdict) and the GPU temperature distribution (histogram of each device's highest
//! temperature, with the max-operating and slowdown temperatures marked), as SVG strings.

use super::charts::{bold, font, DrawResult, WIDTH};
use super::style::{self, GRID, MUTED, TEXT};
use hallmark_results::verdict::Status;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A rack on the floor map.
#[derive(Debug, Clone)]
pub struct FloorCell {
    /// Row label (the row, or `hall/row` when the run spans halls).
    pub row: String,
    pub rack: String,
    pub sustained_kw: Option<f64>,
    pub max_gpu_temp_c: Option<f64>,
    /// Device-seconds of throttling (slowdown bits).
    pub throttle_s: f64,
    pub status: Option<Status>,
}

/// Most cells on one line of the map; a longer row continues on the next line.
const PER_LINE: usize = 10;

/// A round upper bound for a colour scale.
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let step = 10f64.powf(v.log10().floor()) / 2.0;
    (v / step).ceil() * step
}

/// A rectangular frame `w` px wide inside `(x0, y0)..(x1, y1)` (plotters' SVG rectangles ignore the
/// stroke width).
fn frame<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    w: i32,
    color: RGBColor,
) -> DrawResult<()>
where
    DB::ErrorType: 'static,
{
    let fill = color.filled();
    for r in [
        [(x0, y0), (x1, y0 + w)],
        [(x0, y1 - w), (x1, y1)],
        [(x0, y0), (x0 + w, y1)],
        [(x1 - w, y0), (x1, y1)],
    ] {
        area.draw(&Rectangle::new(r, fill))?;
    }
    Ok(())
}

/// The floor map; `scale_kw` is the top of the colour scale (e.g. the sustained target).
pub fn floor_map(cells: &[FloorCell], scale_kw: Option<f64>) -> DrawResult<String> {
    let mut by_row: Vec<(&str, Vec<&FloorCell>)> = Vec::new();
    for c in cells {
        match by_row.iter_mut().find(|r| r.0 == c.row) {
            Some(r) => r.1.push(c),
            None => by_row.push((&c.row, vec![c])),
        }
    }
    // Lines of the map: a row's label on its first line only.
    let mut rows: Vec<(&str, Vec<&FloorCell>)> = Vec::new();
    for (row, racks) in &by_row {
        for (i, chunk) in racks.chunks(PER_LINE).enumerate() {
            rows.push((if i == 0 { row } else { "" }, chunk.to_vec()));
        }
    }
    let per_row = rows.iter().map(|r| r.1.len()).max().unwrap_or(1).max(1) as u32;
    let label_w: u32 = rows
        .iter()
        .map(|r| r.0.chars().count() as u32)
        .max()
        .unwrap_or(3)
        .clamp(3, 24)
        * 9
        + 24;
    let gap = 10u32;
    let cell_w = ((WIDTH - label_w - 20) / per_row)
        .saturating_sub(gap)
        .clamp(40, 180);
    let cell_h = (cell_w * 3 / 5).clamp(80, 100);
    let legend_h = 90u32;
    let height = 20 + rows.len() as u32 * (cell_h + gap + 6) + legend_h;
    let data_max = cells
        .iter()
        .filter_map(|c| c.sustained_kw)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let top = nice_max(data_max.max(scale_kw.unwrap_or(0.0)));
    let name_size = (cell_w / 12).clamp(10, 15);
    let kw_size = (cell_w / 8).clamp(11, 20);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        for (ri, (row, racks)) in rows.iter().enumerate() {
            let y = 20 + ri as i32 * (cell_h + gap + 6) as i32;
            root.draw(&Text::new(
                row.to_string(),
                (label_w as i32 - 14, y + cell_h as i32 / 2),
                font(15).pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            for (ci, c) in racks.iter().enumerate() {
                let x = label_w as i32 + ci as i32 * (cell_w + gap) as i32;
                let (x1, y1) = (x + cell_w as i32, y + cell_h as i32);
                let fill = match c.sustained_kw {
                    Some(kw) if kw.is_finite() => style::power_scale(kw / top),
                    _ => RGBColor(0xf2, 0xf2, 0xf2),
                };
                root.draw(&Rectangle::new([(x, y), (x1, y1)], fill.filled()))?;
                let (outline, w) = match c.status {
                    Some(Status::Pass) => (style::PASS, 2),
                    Some(s) => (style::status_color(s), 5),
                    None => (RGBColor(0xbd, 0xbd, 0xbd), 1),
                };
                frame(&root, (x, y), (x1, y1), w, outline)?;
                let ink = if style::is_dark(fill) { WHITE } else { TEXT };
                let cx = x + cell_w as i32 / 2;
                root.draw(&Text::new(
                    c.rack.clone(),
                    (cx, y + 8),
                    font(name_size)
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                ))?;
                let kw = match c.sustained_kw {
                    Some(kw) if kw.is_finite() => format!("{kw:.1} kW"),
                    _ => "no data".into(),
                };
                root.draw(&Text::new(
                    kw,
                    (cx, y + cell_h as i32 * 2 / 5 + 2),
                    bold(kw_size)
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
                if let Some(t) = c.max_gpu_temp_c.filter(|t| t.is_finite()) {
                    root.draw(&Text::new(
                        format!("GPU max {t:.1} °C"),
                        (cx, y + cell_h as i32 * 2 / 3),
                        font(name_size.saturating_sub(1).max(9))
                            .color(&ink)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    ))?;
                }
                let mut notes: Vec<&str> = c.status.iter().map(|s| s.as_str()).collect();
                if c.throttle_s > 0.0 {
                    notes.push("throttled");
                }
                if !notes.is_empty() {
                    root.draw(&Text::new(
                        notes.join(" · "),
                        (cx, y1 - 7),
                        font(name_size.saturating_sub(1).max(9))
                            .color(&ink)
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    ))?;
                }
            }
        }
        // Legend: the colour scale, then the outlines.
        let ly = height as i32 - legend_h as i32 + 22;
        let lx = label_w as i32;
        let bar_w = 360;
        let steps = 60;
        for k in 0..steps {
            let x0 = lx + k * bar_w / steps;
            let x1 = lx + (k + 1) * bar_w / steps;
            let t = (f64::from(k) + 0.5) / f64::from(steps);
            root.draw(&Rectangle::new(
                [(x0, ly), (x1, ly + 16)],
                style::power_scale(t).filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(lx, ly), (lx + bar_w, ly + 16)],
            GRID.stroke_width(1),
        ))?;
        for k in 0..=4 {
            let x = lx + k * bar_w / 4;
            root.draw(&Text::new(
                format!("{:.0}", top * f64::from(k) / 4.0),
                (x, ly + 20),
                font(12)
                    .color(&MUTED)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
        root.draw(&Text::new(
            "sustained rack power (kW)",
            (lx, ly - 6),
            font(13).pos(Pos::new(HPos::Left, VPos::Bottom)),
        ))?;
        let mut kx = lx + bar_w + 50;
        root.draw(&Text::new(
            "outline = worst verdict of the rack, its nodes and devices:",
            (kx, ly - 6),
            font(13).pos(Pos::new(HPos::Left, VPos::Bottom)),
        ))?;
        for (s, w) in [
            (Status::Fail, 5),
            (Status::Warn, 5),
            (Status::Incomplete, 5),
            (Status::Pass, 2),
        ] {
            let c = style::status_color(s);
            frame(&root, (kx, ly), (kx + 26, ly + 18), w, c)?;
            root.draw(&Text::new(
                s.as_str(),
                (kx + 32, ly + 9),
                font(13).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            kx += 40 + s.as_str().len() as i32 * 9 + 14;
        }
        root.present()?;
    }
    Ok(svg)
}

/// Histogram of per-device highest GPU temperatures (°C); `None` without temperatures.
pub fn temperature_histogram(
    maxima: &[f64],
    max_operating_c: Option<f64>,
    slowdown_c: Option<f64>,
) -> DrawResult<Option<String>> {
    // A reading beyond any real GPU (a broken sensor) is left out rather than stretching the axis.
    let temps: Vec<f64> = maxima
        .iter()
        .copied()
        .filter(|t| t.is_finite() && (-100.0..=400.0).contains(t))
        .collect();
    let (Some(lo), Some(hi)) = (
        temps.iter().copied().reduce(f64::min),
        temps.iter().copied().reduce(f64::max),
    ) else {
        return Ok(None);
    };
    let width = ((hi - lo) / 60.0).ceil().max(1.0);
    let first = (lo / width).floor() * width;
    let bins = (((hi - first) / width).floor() as usize + 1).min(1000);
    let mut counts = vec![0u32; bins];
    for t in &temps {
        let b = (((t - first) / width).floor() as usize).min(bins - 1);
        counts[b] += 1;
    }
    // Show the limits when they are near the data.
    let near = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > lo - 30.0 && *v < hi + 30.0);
    let (op, slow) = (near(max_operating_c), near(slowdown_c));
    let x_lo = [Some(first), op, slow]
        .into_iter()
        .flatten()
        .fold(f64::INFINITY, f64::min)
        - width;
    let x_hi = [Some(first + bins as f64 * width), op, slow]
        .into_iter()
        .flatten()
        .fold(f64::NEG_INFINITY, f64::max)
        + width;
    let y_max = f64::from(counts.iter().copied().max().unwrap_or(1)) * 1.15 + 1.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .margin_right(30)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x_lo..x_hi, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("highest GPU temperature of the device over the run (°C)")
            .y_desc("devices")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .y_labels((y_max.floor() as usize).clamp(2, 10))
            .label_style(font(14))
            .axis_desc_style(font(15))
            .bold_line_style(GRID)
            .light_line_style(GRID.mix(0.4))
            .draw()?;
        chart.draw_series(
            counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| {
                    let x0 = first + i as f64 * width;
                    let hot = op.is_some_and(|op| x0 + width > op);
                    let color = if hot {
                        style::FAIL
                    } else {
                        style::series_color(0)
                    };
                    Rectangle::new(
                        [(x0 + width * 0.05, 0.0), (x0 + width * 0.95, f64::from(*n))],
                        color.filled(),
                    )
                }),
        )?;
        for (v, name, color, right) in [
            (op, "max operating", style::FAIL, false),
            (slow, "slowdown", RGBColor(0x6a, 0x1b, 0x9a), true),
        ] {
            let Some(v) = v else { continue };
            chart.draw_series(DashedLineSeries::new(
                vec![(v, 0.0), (v, y_max)],
                8,
                5,
                color.stroke_width(2),
            ))?;
            let at = chart.backend_coord(&(v, y_max));
            let (dx, h) = if right {
                (6, HPos::Left)
            } else {
                (-6, HPos::Right)
            };
            root.draw(&Text::new(
                format!("{name} {v:.0} °C"),
                (at.0 + dx, at.1 + 6),
                font(13).color(&color).pos(Pos::new(h, VPos::Top)),
            ))?;
        }
        root.present()?;
    }
    Ok(Some(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_tops_are_round() {
        assert_eq!(nice_max(99.6), 100.0);
        assert_eq!(nice_max(130.0), 150.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
    }

    #[test]
    fn histogram_of_nothing_is_none() {
        assert!(style::font_ready());
        assert!(temperature_histogram(&[], Some(85.0), None)
            .unwrap()
            .is_none());
        let svg = temperature_histogram(&[50.0, 91.0, f64::NAN], Some(85.0), Some(87.0))
            .unwrap()
            .unwrap();
        assert!(svg.contains("<svg") && svg.contains("max operating 85"));
    }
}
