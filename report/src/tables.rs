//! The report's HTML tables: energy and perf/W per phase, the hottest devices, data completeness
//! (samples, gaps, lost probes, events), inventory (nodes per rack, device models, power limits) and
//! provenance (versions, plan hash, hall, times, probe clock offsets).

use super::data::{DeviceInfo, RunContext};
use super::style::{duration, esc, num, si};
use hallmark_results::RunSummary;
use hallmark_store::time::format_utc;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Rows shown of a long list before the rest is counted.
const LIST_MAX: usize = 100;

/// A device with its highest temperature over the run.
#[derive(Debug, Clone)]
pub struct HotDevice {
    pub node: String,
    pub rack: String,
    pub device: i64,
    pub max_c: f64,
    pub info: Option<DeviceInfo>,
}

fn kv(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "<tr><th>{}</th><td>{value}</td></tr>", esc(key));
}

/// Energy, mean power, throughput and perf/W per phase.
pub fn phases(s: &RunSummary) -> String {
    if s.phases.is_empty() {
        return "<p class=\"note\">No phases were stored for this run.</p>\n".into();
    }
    let mut out = String::from(
        "<table><thead><tr><th>#</th><th>phase</th><th>workload</th><th class=\"num\">duration</th>\
         <th class=\"num\">nodes started</th><th class=\"num\">start skew ms</th>\
         <th class=\"num\">energy kWh</th><th class=\"num\">mean kW</th><th class=\"num\">compute</th>\
         <th class=\"num\">perf/W</th><th class=\"num\">samples stored / expected</th>\
         <th>notes</th></tr></thead><tbody>\n",
    );
    for p in &s.phases {
        let perf_w = match (p.gflops, p.mean_kw) {
            (Some(g), Some(kw)) if kw > 0.0 => si(Some(g * 1e9 / (kw * 1000.0)), "FLOP/s per W"),
            _ => "n/a".into(),
        };
        let mut notes = Vec::new();
        if p.wrong_elements > 0 {
            notes.push(format!(
                "<b class=\"fail\">{} wrong elements</b>",
                p.wrong_elements
            ));
        }
        for n in &p.stopped_early {
            notes.push(format!(
                "{} stopped early: {}",
                esc(&n.node),
                esc(&n.message)
            ));
        }
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{perf_w}</td><td class=\"num\">{} / {}</td>\
             <td>{}</td></tr>",
            p.phase_id,
            esc(&p.name),
            esc(&p.workload),
            duration(p.duration_ms as f64 / 1e3),
            p.nodes_started,
            num(p.start_skew_ms, 3),
            num(p.energy_kwh, 3),
            num(p.mean_kw, 1),
            p.gflops
                .map(|g| si(Some(g * 1e9), "FLOP/s"))
                .unwrap_or_else(|| "n/a".into()),
            p.samples_stored,
            p.samples_expected,
            notes.join("; ")
        );
    }
    let measured: Vec<f64> = s.phases.iter().filter_map(|p| p.energy_kwh).collect();
    let total = match measured.len() {
        0 => "no node reported power, so no phase energy is known".to_string(),
        n if n == s.phases.len() => {
            format!("{:.3} kWh in all phases", measured.iter().sum::<f64>())
        }
        n => format!(
            "{:.3} kWh in the {n} of {} phases with power readings",
            measured.iter().sum::<f64>(),
            s.phases.len()
        ),
    };
    let _ = writeln!(
        out,
        "</tbody></table>\n<p class=\"muted\">Energy from node power (devices, PSU losses, base load) in \
         each phase window; {total}; – where no node reported power. perf/W is the phase's compute rate over \
         its mean hall power; n/a where no device reported a rate or no power was measured.</p>"
    );
    out
}

/// The hottest devices, hottest first.
pub fn hottest(devices: &[HotDevice]) -> String {
    let mut out = String::from(
        "<table><thead><tr><th>device</th><th>rack</th><th>model</th><th class=\"num\">max °C</th>\
         <th class=\"num\">max operating °C</th><th class=\"num\">margin °C</th>\
         <th class=\"num\">slowdown °C</th></tr></thead><tbody>\n",
    );
    for d in devices {
        let op = d.info.as_ref().and_then(|i| i.max_operating_temp_c);
        let margin = op.map(|op| op - d.max_c);
        let class = if margin.is_some_and(|m| m < 0.0) {
            " class=\"fail\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<tr{class}><td>{}/{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.1}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&d.node),
            d.device,
            esc(&d.rack),
            d.info
                .as_ref()
                .map(|i| esc(&i.model))
                .unwrap_or_else(|| "–".into()),
            d.max_c,
            num(op, 1),
            num(margin, 1),
            num(d.info.as_ref().and_then(|i| i.slowdown_temp_c), 1)
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

/// Samples stored against expected, gaps, lost probes and events.
pub fn completeness(s: &RunSummary) -> String {
    let mut out = String::new();
    let pct = match hallmark_results::share_of(s.samples_stored, s.samples_expected) {
        Some(p) => format!(" ({p})"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "<p>Samples: <b>{} stored</b> of {} expected{pct}. Gaps: {}. Lost probes: {}. Events: {}.</p>",
        s.samples_stored,
        s.samples_expected,
        s.gaps.len(),
        s.lost_probes.len(),
        s.events.len()
    );
    let rel = |t: i64| format!("+{:.3} s", t.saturating_sub(s.started_at_ns) as f64 / 1e9);
    if !s.gaps.is_empty() {
        out.push_str("<table><thead><tr><th>node</th><th>from</th><th>to</th><th>reason</th></tr></thead><tbody>\n");
        for g in s.gaps.iter().take(LIST_MAX) {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.node),
                rel(g.from_ns),
                rel(g.to_ns),
                esc(&g.reason)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    if !s.lost_probes.is_empty() || !s.events.is_empty() {
        out.push_str("<table><thead><tr><th>when</th><th>node</th><th>what</th><th>message</th></tr></thead><tbody>\n");
        for l in s.lost_probes.iter().take(LIST_MAX) {
            let _ = writeln!(
                out,
                "<tr class=\"fail\"><td>{}</td><td>{}</td><td>probe lost</td><td>{}</td></tr>",
                rel(l.at_ns),
                esc(&l.node),
                esc(&l.reason)
            );
        }
        for e in s.events.iter().take(LIST_MAX) {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rel(e.t_ns),
                esc(e.node.as_deref().unwrap_or("(run)")),
                esc(&e.kind),
                esc(&e.message)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    let hidden = s.gaps.len().saturating_sub(LIST_MAX)
        + s.lost_probes.len().saturating_sub(LIST_MAX)
        + s.events.len().saturating_sub(LIST_MAX);
    if hidden > 0 {
        let _ = writeln!(
            out,
            "<p class=\"muted\">{hidden} more rows are in summary.json.</p>"
        );
    }
    out
}

/// Nodes and devices per rack, device models with their power limits and temperature limits.
pub fn inventory(s: &RunSummary, ctx: &RunContext) -> String {
    let mut devices_of: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &ctx.devices {
        *devices_of.entry(&d.node).or_default() += 1;
    }
    let mut out = String::from(
        "<div class=\"cols\"><div><h3>Racks</h3><table><thead><tr><th>row</th><th>rack</th>\
         <th class=\"num\">nodes</th><th class=\"num\">devices</th></tr></thead><tbody>\n",
    );
    for r in &s.racks {
        let devices: usize = r
            .nodes
            .iter()
            .map(|n| devices_of.get(n.as_str()).copied().unwrap_or(0))
            .sum();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{devices}</td></tr>",
            esc(&r.row),
            esc(&r.rack),
            r.nodes.len()
        );
    }
    let _ = writeln!(
        out,
        "<tr class=\"total\"><td colspan=\"2\">total</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\
         </tbody></table></div>",
        ctx.probes.len(),
        ctx.devices.len()
    );
    // (kind, model) → count, power limits, max operating temperatures.
    type ModelAcc = (usize, Vec<f64>, Vec<f64>);
    let mut models: BTreeMap<(&str, &str), ModelAcc> = BTreeMap::new();
    for d in &ctx.devices {
        let m = models.entry((&d.kind, &d.model)).or_default();
        m.0 += 1;
        m.1.extend(d.power_limit_w.filter(|v| v.is_finite()));
        m.2.extend(d.max_operating_temp_c.filter(|v| v.is_finite()));
    }
    let range = |v: &[f64], unit: &str| -> String {
        let lo = v.iter().copied().reduce(f64::min);
        let hi = v.iter().copied().reduce(f64::max);
        match (lo, hi) {
            (Some(a), Some(b)) if (a - b).abs() < 1e-9 => format!("{a:.0} {unit}"),
            (Some(a), Some(b)) => format!("{a:.0}–{b:.0} {unit}"),
            _ => "–".into(),
        }
    };
    out.push_str(
        "<div><h3>Devices</h3><table><thead><tr><th>kind</th><th>model</th><th class=\"num\">count</th>\
         <th class=\"num\">power limit</th><th class=\"num\">max operating</th></tr></thead><tbody>\n",
    );
    for ((kind, model), (n, limits, temps)) in &models {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{n}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            esc(kind),
            esc(model),
            range(limits, "W"),
            range(temps, "°C")
        );
    }
    if models.is_empty() {
        out.push_str("<tr><td colspan=\"5\" class=\"muted\">no devices registered</td></tr>\n");
    }
    out.push_str("</tbody></table></div></div>\n");
    out
}

fn ms(ns: f64) -> String {
    format!("{:.3} ms", ns / 1e6)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Versions, plan and spec hashes, hall, times and the probes' clock offsets.
pub fn provenance(s: &RunSummary, ctx: &RunContext, spec: Option<(&str, &str)>) -> String {
    let mut out = String::from("<table class=\"kv\"><tbody>\n");
    kv(
        &mut out,
        "run",
        &format!("{} — {}", esc(&s.run_id), esc(&s.name)),
    );
    let status = match &s.status_reason {
        Some(r) => format!("{} ({})", s.status, esc(r)),
        None => s.status.to_string(),
    };
    kv(&mut out, "run status", &status);
    kv(
        &mut out,
        "plan",
        &format!(
            "{} <code>sha256 {}</code>",
            esc(&s.plan_name),
            esc(&s.plan_sha256)
        ),
    );
    let spec = match spec {
        Some((name, sha)) => format!("{} <code>sha256 {}</code>", esc(name), esc(sha)),
        None => "none given".into(),
    };
    kv(&mut out, "spec", &spec);
    kv(
        &mut out,
        "hall",
        &esc(s
            .hall
            .as_deref()
            .unwrap_or("real hardware (no simulated hall)")),
    );
    let end = match s.ended_at_ns {
        Some(e) => format!(
            "{} ({})",
            format_utc(e),
            duration(e.saturating_sub(s.started_at_ns) as f64 / 1e9)
        ),
        None => "not finished".into(),
    };
    kv(&mut out, "started", &format_utc(s.started_at_ns));
    kv(&mut out, "ended", &end);
    kv(&mut out, "sample rate", &format!("{} Hz", s.sample_hz));
    kv(
        &mut out,
        "coordinator",
        &format!("hallmark {}", esc(&s.hallmark_version)),
    );
    let mut versions: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for p in &ctx.probes {
        *versions.entry((&p.version, &p.backend)).or_default() += 1;
    }
    let probes = versions
        .iter()
        .map(|((v, b), n)| format!("{n} × hallmark {} ({} backend)", esc(v), esc(b)))
        .collect::<Vec<_>>()
        .join(", ");
    kv(
        &mut out,
        "probes",
        if probes.is_empty() { "none" } else { &probes },
    );
    kv(
        &mut out,
        "report",
        &format!("hallmark-results {}", env!("CARGO_PKG_VERSION")),
    );

    let mut offsets: Vec<f64> = Vec::new();
    let mut worst_unc = 0i64;
    let mut worst_rtt = 0i64;
    for p in &ctx.probes {
        if let Some(o) = p.clock_offset_ns {
            offsets.push(o as f64);
            worst_unc = worst_unc.max(p.clock_uncertainty_ns.unwrap_or(0));
            worst_rtt = worst_rtt.max(p.clock_rtt_ns.unwrap_or(0));
        }
    }
    offsets.sort_by(f64::total_cmp);
    let clocks = if offsets.is_empty() {
        "no probe reported a clock estimate".to_string()
    } else {
        let max_abs = offsets.iter().map(|o| o.abs()).fold(0.0, f64::max);
        format!(
            "{} of {} probes: max |offset| {} ± up to {} (round trip up to {}); offsets min {}, \
             median {}, p95 {}, max {}",
            offsets.len(),
            ctx.probes.len(),
            ms(max_abs),
            ms(worst_unc as f64),
            ms(worst_rtt as f64),
            ms(offsets[0]),
            ms(quantile(&offsets, 0.5)),
            ms(quantile(&offsets, 0.95)),
            ms(offsets[offsets.len() - 1])
        )
    };
    kv(&mut out, "probe clocks (probe − coordinator)", &clocks);
    out.push_str("</tbody></table>\n");

    out.push_str(
        "<details><summary>Clock offset per probe</summary><table><thead><tr><th>node</th><th>rack</th>\
         <th class=\"num\">offset</th><th class=\"num\">± uncertainty</th><th class=\"num\">round trip</th>\
         </tr></thead><tbody>\n",
    );
    for p in &ctx.probes {
        let f = |v: Option<i64>| v.map(|v| ms(v as f64)).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            esc(&p.node),
            esc(&p.rack),
            f(p.clock_offset_ns),
            f(p.clock_uncertainty_ns),
            f(p.clock_rtt_ns)
        );
    }
    out.push_str("</tbody></table></details>\n");
    let _ = writeln!(
        out,
        "<details><summary>Plan as run ({})</summary><pre>{}</pre></details>",
        esc(&s.plan_name),
        esc(&ctx.plan_toml)
    );
    out
}
