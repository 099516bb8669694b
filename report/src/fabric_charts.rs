//! The interconnect charts, as SVG strings: the latency heat map of a latency phase (source ×
//! destination, each cell the pair's p99 round trip on a logarithmic colour scale; pairs that lost
//! every packet and pairs not measured marked) and the bus bandwidth of a collective op against the
//! message size (log₂ size axis, one line per phase).

use super::charts::{bold, font, tick_decimals, DrawResult, WIDTH};
use super::style::{self, GRID, MUTED, TEXT};
use hallmark_results::fabric::size_label;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Most rows and columns of the heat map; larger meshes are drawn in blocks of nodes.
pub const MAX_CELLS: usize = 48;

/// One cell of the heat map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeatCell {
    /// A node with itself, or nothing expected.
    Empty,
    /// Expected but not measured.
    Missing,
    /// Packets sent, none answered.
    Lost,
    /// The worst p99 in the cell, µs.
    P99(f64),
}

impl HeatCell {
    /// The worse of two cells of one block: lost over a value over missing.
    pub fn worse(self, o: HeatCell) -> HeatCell {
        use HeatCell::*;
        match (self, o) {
            (Lost, _) | (_, Lost) => Lost,
            (P99(a), P99(b)) => P99(a.max(b)),
            (P99(a), _) | (_, P99(a)) => P99(a),
            (Missing, _) | (_, Missing) => Missing,
            _ => Empty,
        }
    }
}

const MISSING: RGBColor = RGBColor(0xd0, 0xd0, 0xd0);
const LOST: RGBColor = RGBColor(0x21, 0x21, 0x21);

/// The heat map: `labels` name the rows and columns (nodes, or blocks of nodes), `cells[src][dst]`.
/// `None` when no cell has a value or a loss to show.
pub fn latency_heatmap(labels: &[String], cells: &[Vec<HeatCell>]) -> DrawResult<Option<String>> {
    let n = labels.len().min(cells.len());
    let values: Vec<f64> = cells
        .iter()
        .flatten()
        .filter_map(|c| match c {
            HeatCell::P99(v) if v.is_finite() && *v > 0.0 => Some(*v),
            _ => None,
        })
        .collect();
    if n == 0 || (values.is_empty() && !cells.iter().flatten().any(|c| *c == HeatCell::Lost)) {
        return Ok(None);
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let t = |v: f64| -> f64 {
        if hi <= lo {
            0.5
        } else {
            (v / lo).ln() / (hi / lo).ln()
        }
    };
    let label_chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4);
    let label_px = (label_chars.clamp(3, 28) * 8 + 16) as i32;
    let legend_w = 230i32;
    let cell = ((WIDTH as i32 - label_px - legend_w - 40) / n as i32).clamp(8, 56);
    let x0 = label_px + 20;
    let y0 = label_px + 30;
    let grid_px = cell * n as i32;
    let height = (y0 + grid_px + 40).max(260) as u32;
    let text_size = (cell as u32 * 2 / 3).clamp(9, 13);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            "rows: source (the node that initiated) · columns: destination (the node that answered)",
            (8, 8),
            font(13).color(&MUTED).pos(Pos::new(HPos::Left, VPos::Top)),
        ))?;
        for (i, row) in cells.iter().take(n).enumerate() {
            let y = y0 + i as i32 * cell;
            for (j, c) in row.iter().take(n).enumerate() {
                let x = x0 + j as i32 * cell;
                let fill = match c {
                    HeatCell::Empty => continue,
                    HeatCell::Missing => MISSING,
                    HeatCell::Lost => LOST,
                    HeatCell::P99(v) => style::latency_scale(t(*v)),
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell - 1, y + cell - 1)],
                    fill.filled(),
                ))?;
            }
            root.draw(&Text::new(
                labels[i].clone(),
                (x0 - 6, y + cell / 2),
                font(text_size).pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
        }
        for (j, label) in labels.iter().take(n).enumerate() {
            let x = x0 + j as i32 * cell + cell / 2;
            root.draw(&Text::new(
                label.clone(),
                (x, y0 - 6),
                font(text_size)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(x0 - 1, y0 - 1), (x0 + grid_px, y0 + grid_px)],
            GRID.stroke_width(1),
        ))?;

        // Legend: the colour ramp from the lowest to the highest p99, then the marks.
        let lx = x0 + grid_px + 40;
        let mut ly = y0;
        root.draw(&Text::new(
            "p99 round trip",
            (lx, ly),
            bold(13).pos(Pos::new(HPos::Left, VPos::Top)),
        ))?;
        ly += 24;
        if !values.is_empty() {
            const STEPS: i32 = 40;
            for k in 0..STEPS {
                let c = style::latency_scale(f64::from(k) / f64::from(STEPS - 1));
                root.draw(&Rectangle::new(
                    [(lx + k * 4, ly), (lx + k * 4 + 4, ly + 14)],
                    c.filled(),
                ))?;
            }
            ly += 18;
            root.draw(&Text::new(
                format!("{lo:.1} µs"),
                (lx, ly),
                font(12).pos(Pos::new(HPos::Left, VPos::Top)),
            ))?;
            root.draw(&Text::new(
                format!("{hi:.1} µs"),
                (lx + STEPS * 4, ly),
                font(12).pos(Pos::new(HPos::Right, VPos::Top)),
            ))?;
            ly += 18;
            root.draw(&Text::new(
                "(logarithmic)",
                (lx, ly),
                font(11).color(&MUTED).pos(Pos::new(HPos::Left, VPos::Top)),
            ))?;
            ly += 22;
        }
        for (color, name) in [(LOST, "every packet lost"), (MISSING, "not measured")] {
            root.draw(&Rectangle::new(
                [(lx, ly), (lx + 14, ly + 14)],
                color.filled(),
            ))?;
            root.draw(&Text::new(
                name,
                (lx + 20, ly + 7),
                font(12)
                    .color(&TEXT)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            ly += 20;
        }
        root.present()?;
    }
    Ok(Some(svg))
}

/// One line of the bandwidth chart: a phase's busbw per message size.
#[derive(Debug, Clone)]
pub struct BwSeries {
    pub name: String,
    /// (size bytes, busbw GB/s), sizes ascending.
    pub points: Vec<(u64, f64)>,
}

/// Bus bandwidth against message size for one op; `None` without a positive size and a finite
/// bandwidth.
pub fn busbw_chart(op: &str, series: &[BwSeries]) -> DrawResult<Option<String>> {
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(size, bw)| *size > 0 && bw.is_finite())
    };
    let (Some(lo), Some(hi)) = (pts().map(|p| p.0).min(), pts().map(|p| p.0).max()) else {
        return Ok(None);
    };
    let x = |size: u64| (size as f64).log2();
    let (x_lo, x_hi) = (x(lo).floor(), x(hi).ceil().max(x(lo).floor() + 1.0));
    let y_max = (pts().map(|p| p.1).fold(0.0, f64::max) * 1.15).max(0.01);
    const HEIGHT: u32 = 380;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = root.split_horizontally(WIDTH - 230);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .caption(format!("{op}: bus bandwidth"), bold(15))
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x_lo..x_hi, 0f64..y_max)?;
        let ticks = ((x_hi - x_lo) as usize + 1).min(16);
        chart
            .configure_mesh()
            .x_labels(ticks)
            .x_desc("message size (log₂)")
            .y_desc("busbw (GB/s)")
            .x_label_formatter(&|v| {
                let r = v.round();
                if (v - r).abs() < 1e-6 && (0.0..64.0).contains(&r) {
                    size_label(1u64 << r as u32)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| format!("{v:.*}", tick_decimals(y_max)))
            .label_style(font(12))
            .axis_desc_style(font(14))
            .bold_line_style(GRID)
            .light_line_style(GRID.mix(0.4))
            .draw()?;
        let mid = Pos::new(HPos::Left, VPos::Center);
        for (i, s) in series.iter().enumerate() {
            let color = style::series_color(i);
            let line: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|(size, bw)| *size > 0 && bw.is_finite())
                .map(|(size, bw)| (x(*size), *bw))
                .collect();
            chart.draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?;
            chart.draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
            let y = 30 + i as i32 * 20;
            legend.draw(&PathElement::new(
                vec![(8, y), (30, y)],
                color.stroke_width(3),
            ))?;
            legend.draw(&Text::new(s.name.clone(), (36, y), font(13).pos(mid)))?;
        }
        root.present()?;
    }
    Ok(Some(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_the_worst() {
        use HeatCell::*;
        assert_eq!(P99(3.0).worse(P99(5.0)), P99(5.0));
        assert_eq!(Missing.worse(P99(5.0)), P99(5.0));
        assert_eq!(P99(5.0).worse(Lost), Lost);
        assert_eq!(Empty.worse(Missing), Missing);
        assert_eq!(Empty.worse(Empty), Empty);
    }

    #[test]
    fn charts_draw_and_nothing_gives_none() {
        assert!(super::super::style::font_ready());
        assert!(latency_heatmap(&[], &[]).unwrap().is_none());
        let labels = vec!["a".to_string(), "b".to_string()];
        let cells = vec![
            vec![HeatCell::Empty, HeatCell::P99(12.5)],
            vec![HeatCell::Lost, HeatCell::Empty],
        ];
        let svg = latency_heatmap(&labels, &cells).unwrap().unwrap();
        assert!(svg.contains("<svg") && svg.contains("every packet lost"));
        let s = [BwSeries {
            name: "p".into(),
            points: vec![(8, 0.01), (1 << 20, 4.0), (64 << 20, 9.5)],
        }];
        let svg = busbw_chart("all-reduce", &s).unwrap().unwrap();
        assert!(svg.contains("64 MiB") && svg.contains("1 MiB"));
        assert!(busbw_chart("x", &[]).unwrap().is_none());
    }
}
