//! The facility section: only for a run with facility readings (`RunSummary::facility`). Per rack
//! the PDU power beside the GPU-side power over time (small multiples, one panel per rack, on the
//! rack power chart's time axis and buckets), the CDU under load (supply and return temperature,
//! ΔT, flow, heat removed and ρ·c_p·flow·ΔT), and the energy and heat balances with their numbers.

use super::charts::{font, segments, tick_decimals, DrawResult, PhaseSpan, TimeAxis, WIDTH};
use super::data::Timeline;
use super::html::{figure, Section};
use super::style::{self, esc, num, status_class, GRID, PHASE_FILL};
use super::ReportError;
use hallmark_results::facility::{by_rack, FacilitySummary, Frame, RackSources};
use hallmark_results::{RunSummary, Store};
use plotters::prelude::*;
use std::fmt::Write;

/// Panels per row of the small multiples, and a panel's height, px.
const COLUMNS: usize = 2;
const PANEL_H: u32 = 220;

/// The rack PDU power per chart bucket, kW (the mean of the held bins in the bucket; `None` where
/// the rack has no PDU figure).
fn pdu_buckets(
    store: &Store,
    s: &RunSummary,
    tl: &Timeline,
) -> Result<Vec<Vec<Option<f64>>>, ReportError> {
    let readings: Vec<_> = store
        .facility_readings(&s.run_id)?
        .into_iter()
        .map(|r| r.reading)
        .collect();
    let f = Frame::new(s.started_at_ns, s.sample_hz, Vec::new());
    let keys: Vec<(&str, &[String])> = s
        .racks
        .iter()
        .map(|r| (r.rack.as_str(), r.nodes.as_slice()))
        .collect();
    let per_rack = by_rack(&readings, &keys);
    let mut out = Vec::with_capacity(s.racks.len());
    for (r, own) in s.racks.iter().zip(per_rack) {
        let sources = RackSources::new(&own, &r.rack, &r.nodes);
        let mut acc = vec![(0.0, 0u32); tl.buckets];
        for (b, kw) in sources.pdu_kw(f.bins, f.width_ns) {
            if let Some(i) = tl.bucket(f.centre(b)) {
                acc[i].0 += kw;
                acc[i].1 += 1;
            }
        }
        out.push(
            acc.into_iter()
                .map(|(sum, n)| (n > 0).then(|| sum / f64::from(n)))
                .collect(),
        );
    }
    Ok(out)
}

/// The small multiples: per rack the GPU-side kW and the PDU kW; `None` without any PDU figure.
fn chart(
    s: &RunSummary,
    tl: &Timeline,
    gpu: &[Vec<Option<f64>>],
    pdu: &[Vec<Option<f64>>],
    phases: &[PhaseSpan],
) -> DrawResult<Option<String>> {
    let all = gpu.iter().chain(pdu).flatten().flatten().copied();
    let y_max = all
        .filter(|v| v.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    if !y_max.is_finite() || pdu.iter().flatten().all(|v| v.is_none()) {
        return Ok(None);
    }
    let y_max = (y_max * 1.12).max(1.0);
    let axis = TimeAxis::for_span(tl.span_s());
    let x_max = axis.x(tl.span_s());
    let rows = s.racks.len().div_ceil(COLUMNS).max(1);
    let height = PANEL_H * rows as u32 + 30;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (key, body) = root.split_vertically(30);
        key.draw(&Text::new(
            "solid: GPU-side (sum of node power) · dashed black: PDU (sum of the rack's PDUs)",
            (8, 8),
            font(13),
        ))?;
        let panels = body.split_evenly((rows, COLUMNS));
        for (i, (panel, r)) in panels.iter().zip(&s.racks).enumerate() {
            let clamp = |x: f64| axis.x(x).clamp(0.0, x_max);
            let mut c = ChartBuilder::on(panel)
                .margin(8)
                .caption(&r.rack, font(14))
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
            c.draw_series(phases.iter().enumerate().map(|(k, p)| {
                Rectangle::new(
                    [(clamp(p.from_s), 0.0), (clamp(p.to_s), y_max)],
                    PHASE_FILL[k % 2].filled(),
                )
            }))?;
            c.configure_mesh()
                .x_label_formatter(&|v| axis.label(*v))
                .y_label_formatter(&|v| format!("{v:.*}", tick_decimals(y_max)))
                .y_desc("kW")
                .label_style(font(12))
                .axis_desc_style(font(12))
                .bold_line_style(GRID)
                .light_line_style(GRID.mix(0.4))
                .draw()?;
            let color = style::series_color(i);
            for seg in segments(tl, axis, &gpu[i]) {
                c.draw_series(LineSeries::new(seg, color.stroke_width(2)))?;
            }
            for seg in segments(tl, axis, &pdu[i]) {
                c.draw_series(DashedLineSeries::new(seg, 6, 4, BLACK.stroke_width(2)))?;
            }
        }
        root.present()?;
    }
    Ok(Some(svg))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |x| format!("{:.1} %", x * 100.0))
}

fn badge(s: hallmark_results::Status) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(s),
        s.as_str()
    )
}

/// The CDU table and the balance table.
fn tables(f: &FacilitySummary) -> String {
    let mut o = String::from(
        "<h3>Coolant (CDU) under load</h3><table><thead><tr><th>rack</th><th>CDU</th>\
         <th class=\"num\">supply °C max</th><th class=\"num\">return °C max</th>\
         <th class=\"num\">ΔT K max</th><th class=\"num\">flow L/min</th>\
         <th class=\"num\">heat removed kW</th><th class=\"num\">ρ·c_p·flow·ΔT kW</th>\
         <th class=\"num\">heat removed, sustained kW</th></tr></thead><tbody>\n",
    );
    for r in &f.racks {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&r.rack),
            esc(&r.cdus.join(", ")),
            num(r.supply_temp_max_c, 1),
            num(r.return_temp_max_c, 1),
            num(r.delta_t_max_k, 1),
            num(r.flow_mean_lpm, 1),
            num(r.heat_removed_mean_kw, 2),
            num(r.computed_heat_mean_kw, 2),
            num(r.cdu_heat_removed_kw, 2),
        );
    }
    o.push_str("</tbody></table>\n");
    let _ = writeln!(
        o,
        "<h3>Balances under load</h3><p class=\"muted\">Energy: GPU-side ≤ BMC chassis ≤ PDU, each \
         level within {:.0} % of the one upstream. Heat: ρ·c_p·flow·ΔT (with the coolant each CDU states, else {} kg/m³, {} kJ/(kg·K)) \
         within {:.0} % of the CDU's heat removed; liquid capture (heat removed ÷ PDU) {}–{}.</p>\
         <table><thead><tr><th>rack</th><th class=\"num\">GPU-side kW</th>\
         <th class=\"num\">chassis kW</th><th class=\"num\">PDU kW</th><th class=\"num\">GPU ÷ PDU</th>\
         <th>energy</th><th class=\"num\">computed kW</th><th class=\"num\">removed kW</th>\
         <th class=\"num\">difference</th><th class=\"num\">capture</th><th>heat</th>\
         <th>how</th></tr></thead><tbody>",
        f.tolerances.energy * 100.0,
        f.coolant.density_kg_per_m3,
        f.coolant.specific_heat_kj_per_kg_k,
        f.tolerances.heat * 100.0,
        pct(f.tolerances.capture_min),
        pct(f.tolerances.capture_max),
    );
    for r in &f.racks {
        let (e, h) = (&r.energy, &r.heat);
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>\
             <td class=\"muted\">{}<br>{}</td></tr>",
            esc(&r.rack),
            num(e.gpu_kw, 2),
            num(e.chassis_kw, 2),
            num(e.pdu_kw, 2),
            pct(e.gpu_over_pdu),
            badge(e.status),
            num(h.computed_heat_kw, 2),
            num(h.cdu_heat_removed_kw, 2),
            pct(h.difference),
            pct(h.capture_ratio),
            badge(h.status),
            esc(&e.detail),
            esc(&h.detail),
        );
    }
    o.push_str("</tbody></table>\n");
    o
}

/// The facility section, `None` when the run has no facility readings. `gpu` is the rack power
/// chart's series on `tl`.
pub fn section(
    store: &Store,
    s: &RunSummary,
    tl: &Timeline,
    gpu: &[Vec<Option<f64>>],
    phases: &[PhaseSpan],
) -> Result<Option<Section>, ReportError> {
    let Some(f) = &s.facility else {
        return Ok(None);
    };
    let pdu = pdu_buckets(store, s, tl)?;
    let svg = chart(s, tl, gpu, &pdu, phases).map_err(|e| ReportError::Chart {
        chart: "facility power",
        detail: e.to_string(),
    })?;
    let mut body = figure(
        svg,
        "Per rack: the GPU-side power (the probes' node power, as in the rack power chart) and the \
         power the rack's PDUs measured (each reading standing for the interval that ends at it, \
         for at most 3 of the meter's intervals). A PDU line below the GPU-side line is a meter reading low or a wiring fault.",
        "No PDU power was stored for this run: no PDU chart.",
    );
    body.push_str(&tables(f));
    Ok(Some(Section {
        id: "facility",
        title: "Facility: PDUs, CDUs and balances",
        body,
    }))
}
