//! The text summary of a run that a commissioning engineer reads: header, samples expected vs stored,
//! the per-rack table (racks that throttled marked `!` with the reasons), phases, the fabric phases
//! (latency percentiles and worst pairs, the collective table: [`crate::fabric::render_fabric`]),
//! the outliers within the run ([`crate::outliers::write_outliers`]), gaps, lost probes and events. `Display for RunSummary` prints the same text.

use crate::summary::{DeviceRef, RunSummary};
use hallmark_store::time::format_utc;
use std::fmt::{self, Write};

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

fn device(d: &Option<DeviceRef>) -> String {
    d.as_ref()
        .map_or_else(|| "-".to_string(), |d| format!("{}/{}", d.node, d.device))
}

fn rel(s: &RunSummary, t_ns: i64) -> String {
    format!(
        "+{:.3} s",
        t_ns.saturating_sub(s.started_at_ns) as f64 / 1e9
    )
}

fn reasons(by: &std::collections::BTreeMap<String, f64>) -> String {
    let mut v: Vec<(&String, &f64)> = by.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, s)| format!("{k} {s:.1} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders the human summary of a run.
pub fn render_text(s: &RunSummary) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = write_text(&mut o, s);
    o
}

fn write_text(o: &mut String, s: &RunSummary) -> fmt::Result {
    if let Some(banner) = s.simulation.banner() {
        writeln!(o, "*** {banner} ***")?;
    }
    writeln!(
        o,
        "Run {} \"{}\" — plan {} (sha256 {}…){}",
        s.run_id,
        s.name,
        s.plan_name,
        s.plan_sha256.get(..12).unwrap_or(&s.plan_sha256),
        s.hall.as_ref().map_or_else(
            || ", real hardware".to_string(),
            |h| format!(", simulated hall {h}")
        )
    )?;
    write!(o, "Status: {}", s.status.as_str().to_uppercase())?;
    if let Some(r) = &s.status_reason {
        write!(o, " — {r}")?;
    }
    writeln!(o)?;
    write!(o, "Started {}", format_utc(s.started_at_ns))?;
    match s.ended_at_ns {
        Some(end) => write!(
            o,
            ", ended {} ({:.1} s)",
            format_utc(end),
            end.saturating_sub(s.started_at_ns) as f64 / 1e9
        )?,
        None => write!(o, ", not ended")?,
    }
    writeln!(
        o,
        "; {} probes, {} Hz, hallmark {}",
        s.probes, s.sample_hz, s.hallmark_version
    )?;
    let pct = match share_of(s.samples_stored, s.samples_expected) {
        Some(p) => format!(" ({p})"),
        None => String::new(),
    };
    writeln!(
        o,
        "Samples: {} stored of {} expected{pct}",
        s.samples_stored, s.samples_expected
    )?;
    writeln!(
        o,
        "Hall: peak {} kW, max GPU {} °C ({}), throttling {:.1} device-s",
        opt(s.peak_kw, 2),
        opt(s.max_gpu_temp_c, 1),
        device(&s.hottest_device),
        s.throttle_s
    )?;

    writeln!(o)?;
    writeln!(
        o,
        "  {:<16} {:>5} {:>8} {:>8} {:>14} {:>10} {:<20} {:>10}",
        "rack",
        "nodes",
        "peak kW",
        "mean kW",
        "sustained kW",
        "max GPU °C",
        "hottest",
        "throttle s"
    )?;
    for r in &s.racks {
        let marker = if r.throttle_s > 0.0 { '!' } else { ' ' };
        let sustained = match r.sustained_kw {
            Some(kw) => format!("{kw:.2} ({:.0} s)", r.sustained_window_s),
            None => "-".to_string(),
        };
        write!(
            o,
            "{marker} {:<16} {:>5} {:>8} {:>8} {:>14} {:>10} {:<20} {:>10.1}",
            r.rack,
            r.nodes.len(),
            opt(r.peak_kw, 2),
            opt(r.mean_kw, 2),
            sustained,
            opt(r.max_gpu_temp_c, 1),
            device(&r.hottest_device),
            r.throttle_s
        )?;
        if r.throttle_s > 0.0 {
            write!(o, "  THROTTLED: {}", reasons(&r.throttle_s_by_reason))?;
        }
        writeln!(o)?;
    }
    let throttled: Vec<_> = s.racks.iter().filter(|r| r.throttle_s > 0.0).collect();
    if throttled.is_empty() {
        writeln!(o, "  no rack throttled")?;
    } else {
        writeln!(
            o,
            "  ! {} of {} racks throttled (device-seconds slowed by heat, a hardware slowdown or the power brake)",
            throttled.len(),
            s.racks.len()
        )?;
    }
    crate::facility::render::write_facility(o, s)?;

    writeln!(o)?;
    writeln!(
        o,
        "  {:>5} {:<20} {:>13} {:>7} {:>11} {:>8} {:>19}",
        "phase", "name", "start skew ms", "nodes", "energy kWh", "mean kW", "samples stored/exp"
    )?;
    for p in &s.phases {
        writeln!(
            o,
            "  {:>5} {:<20} {:>13} {:>7} {:>11} {:>8} {:>19}",
            p.phase_id,
            p.name,
            opt(p.start_skew_ms, 3),
            p.nodes_started,
            opt(p.energy_kwh, 4),
            opt(p.mean_kw, 2),
            format!("{}/{}", p.samples_stored, p.samples_expected)
        )?;
        if p.wrong_elements > 0 {
            writeln!(
                o,
                "        ! {} wrong elements in result checks (silent data corruption)",
                p.wrong_elements
            )?;
        }
        for n in &p.stopped_early {
            writeln!(o, "        ! {} stopped early: {}", n.node, n.message)?;
        }
    }
    if s.phases.is_empty() {
        writeln!(o, "  no phases stored")?;
    }
    o.push_str(&crate::fabric::render_fabric(&s.fabric));

    writeln!(o)?;
    crate::outliers::write_outliers(o, &s.outliers)?;
    if s.gaps.is_empty() {
        writeln!(o, "Gaps: none")?;
    } else {
        writeln!(o, "Gaps ({}):", s.gaps.len())?;
        for g in &s.gaps {
            let missed = g
                .instants
                .map_or(String::new(), |n| format!(", {n} instants missed"));
            writeln!(
                o,
                "  {}  {} → {} ({:.3} s{missed})  {}",
                g.node,
                rel(s, g.from_ns),
                rel(s, g.to_ns),
                g.to_ns.saturating_sub(g.from_ns) as f64 / 1e9,
                g.reason
            )?;
        }
    }
    if s.lost_probes.is_empty() {
        writeln!(o, "Lost probes: none")?;
    } else {
        writeln!(o, "Lost probes ({}):", s.lost_probes.len())?;
        for l in &s.lost_probes {
            writeln!(o, "  {} at {}: {}", l.node, rel(s, l.at_ns), l.reason)?;
        }
    }
    if !s.events.is_empty() {
        writeln!(o, "Events ({}):", s.events.len())?;
        for e in &s.events {
            writeln!(
                o,
                "  {} {:<12} {:<10} {}",
                rel(s, e.t_ns),
                e.kind,
                e.node.as_deref().unwrap_or("-"),
                e.message
            )?;
        }
    }
    Ok(())
}

/// `part` as a percentage of `whole` for people to read, truncated to two decimals and never
/// rounded up to 100: "99.98 %", or "< 100 %" when even the truncation would read 100.00
/// (`None` when `whole` is 0).
pub fn share_of(part: u64, whole: u64) -> Option<String> {
    if whole == 0 {
        return None;
    }
    if part == whole {
        return Some("100 %".into());
    }
    // Hundredths of a percent, truncated (integer arithmetic: no rounding up).
    let hundredths = u128::from(part) * 10_000 / u128::from(whole);
    if part > whole && hundredths == 10_000 {
        // More than expected, by less than 0.01 %: over-counting must not read as exactly 100.
        return Some("> 100 %".into());
    }
    Some(format!("{}.{:02} %", hundredths / 100, hundredths % 100))
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_text(self))
    }
}

#[cfg(test)]
mod tests {
    use super::share_of;

    #[test]
    fn a_share_below_the_whole_never_reads_100() {
        assert_eq!(share_of(1_199_776, 1_200_000).as_deref(), Some("99.98 %"));
        assert_eq!(share_of(999_999, 1_000_000).as_deref(), Some("99.99 %"));
        assert_eq!(
            share_of(999_999_999, 1_000_000_000).as_deref(),
            Some("99.99 %")
        );
        assert_eq!(share_of(1, 3).as_deref(), Some("33.33 %"));
        assert_eq!(share_of(0, 3).as_deref(), Some("0.00 %"));
        assert_eq!(share_of(7, 7).as_deref(), Some("100 %"));
        // Over-counting never reads as exactly the expected count.
        assert_eq!(share_of(320_016, 320_000).as_deref(), Some("> 100 %"));
        assert_eq!(share_of(320_100, 320_000).as_deref(), Some("100.03 %"));
        assert_eq!(share_of(5, 0), None);
    }
}
