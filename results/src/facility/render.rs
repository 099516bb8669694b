//! The facility block of the text summary: per rack the PDU power beside the GPU-side figures,
//! the CDU under load, and the balances ("-" for what nobody measured).

use std::fmt::{self, Write};

use super::FacilitySummary;
use crate::summary::RunSummary;

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{:.1} %", x * 100.0))
}

/// Writes the facility block of `s` (a line saying there is none when the run has no readings).
pub fn write_facility(o: &mut String, s: &RunSummary) -> fmt::Result {
    writeln!(o)?;
    let Some(f) = &s.facility else {
        return writeln!(o, "Facility: no facility readings stored with the run");
    };
    write_block(o, s, f)
}

fn write_block(o: &mut String, s: &RunSummary, f: &FacilitySummary) -> fmt::Result {
    writeln!(
        o,
        "Facility: {} readings; balances under load, tolerances: energy {:.0} %, heat {:.0} %, liquid capture {}–{}",
        f.readings,
        f.tolerances.energy * 100.0,
        f.tolerances.heat * 100.0,
        pct(f.tolerances.capture_min),
        pct(f.tolerances.capture_max)
    )?;
    let header = format!(
        "  {:<16} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6} {:>8} {:>9} {:<20} {:<20}",
        "rack",
        "peak kW",
        "PDU pk",
        "sust kW",
        "PDU sust",
        "CDU heat",
        "supply °C",
        "ΔT K",
        "flow L/m",
        "computed",
        "energy balance",
        "heat balance"
    );
    writeln!(o, "{}", header.trim_end())?;
    for (r, rf) in s.racks.iter().zip(&f.racks) {
        let energy = format!(
            "{} {}",
            rf.energy.status,
            pct(rf.energy.gpu_over_pdu).replace(' ', "")
        );
        let heat = format!(
            "{} {}",
            rf.heat.status,
            pct(rf.heat.capture_ratio).replace(' ', "")
        );
        let line = format!(
            "  {:<16} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6} {:>8} {:>9} {:<20} {:<20}",
            r.rack,
            opt(r.peak_kw, 2),
            opt(r.pdu_peak_kw, 2),
            opt(r.sustained_kw, 2),
            opt(r.pdu_sustained_kw, 2),
            opt(r.cdu_heat_removed_kw, 2),
            opt(rf.supply_temp_max_c, 1),
            opt(rf.delta_t_max_k, 1),
            opt(rf.flow_mean_lpm, 1),
            opt(rf.computed_heat_mean_kw, 2),
            energy,
            heat
        );
        writeln!(o, "{}", line.trim_end())?;
        for p in &rf.problems {
            writeln!(o, "        ! {p}")?;
        }
    }
    writeln!(
        o,
        "  energy: GPU-side ÷ PDU (GPU-side ≤ chassis ≤ PDU); heat: liquid capture, CDU heat removed ÷ PDU"
    )
}
