//! `hallmark runs starts RUN [--json]`: when every probe actually started every phase, against the
//! instant the coordinator scheduled it — who started late, and by how much.
//!
//! One row per stored probe-phase start: the phase (id and name), the node, the scheduled start and
//! the actual start (ns, both on the coordinator's clock: the probe's own start converted with the
//! probe's clock estimate), the offset `actual − scheduled`, and the probe's clock estimate as
//! stored at the run's start (offset probe − coordinator, and its ± uncertainty). What was not
//! stored is `null` in JSON and `-` in the table, never 0: a start of a phase the store does not
//! hold has no scheduled start and no offset; a probe without a clock estimate has none.
//!
//! Built only on the store's typed read API ([`Store::phases`], [`Store::phase_starts`],
//! [`Store::probes`]), so it reads a SQLite directory or a PostgreSQL database alike.

use anyhow::Context;
use clap::Args;
use hallmark_store::location::{Location, LocationError};
use hallmark_store::time::format_utc;
use hallmark_store::{PhaseRecord, PhaseStartRecord, ProbeRecord, Store};
use serde::Serialize;
use std::collections::HashMap;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct StartsArgs {
    /// The run id (or a unique prefix of it, or `latest`), as `hallmark runs list` shows it.
    run: String,
    /// Where runs are stored: a directory, or postgres://USER@HOST/DB.
    #[arg(long, value_name = "DIR|URL", default_value = "hallmark-results", value_parser = parse_results)]
    results: Location,
    /// One JSON array on stdout, one object per probe-phase start.
    #[arg(long)]
    json: bool,
}

/// Reads a `--results` value (a directory or a PostgreSQL URL) for clap.
fn parse_results(arg: &str) -> Result<Location, LocationError> {
    Location::parse(arg)
}

/// One probe's start of one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartRow {
    pub phase_id: u32,
    /// The phase's name (`None`: the store holds no such phase).
    pub phase: Option<String>,
    pub node: String,
    /// When the coordinator scheduled the phase to start, ns on its clock.
    pub scheduled_start_ns: Option<i64>,
    /// When the probe started it, ns on the coordinator's clock.
    pub actual_start_ns: i64,
    /// `actual_start_ns − scheduled_start_ns`: positive is late.
    pub offset_ns: Option<i64>,
    /// The probe's clock − the coordinator's, ns, as estimated at the run's start.
    pub clock_offset_ns: Option<i64>,
    /// The ± uncertainty of that estimate, ns.
    pub clock_uncertainty_ns: Option<i64>,
}

pub fn run(a: StartsArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_location_read_only(&a.results)
        .with_context(|| format!("opening the run store {}", a.results))?;
    let id = store.resolve_run(&a.run)?;
    let run = id.as_str();
    let rows = start_rows(
        &store.phases(run)?,
        &store.phase_starts(run)?,
        &store.probes(run)?,
    );
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&rows).context("serialising the starts")?
        );
    } else {
        print!("{}", render(run, &rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// Joins each stored start with its phase's schedule and its probe's clock estimate; in the
/// phases' scheduled order (a start of an unknown phase last), then by node.
pub fn start_rows(
    phases: &[PhaseRecord],
    starts: &[PhaseStartRecord],
    probes: &[ProbeRecord],
) -> Vec<StartRow> {
    let phase: HashMap<u32, &PhaseRecord> = phases.iter().map(|p| (p.phase_id, p)).collect();
    let probe: HashMap<&str, &ProbeRecord> = probes.iter().map(|p| (p.node.as_str(), p)).collect();
    let mut rows: Vec<StartRow> = starts
        .iter()
        .map(|s| {
            let p = phase.get(&s.phase_id);
            let scheduled = p.map(|p| p.scheduled_start_ns);
            let clock = probe.get(s.node.as_str());
            StartRow {
                phase_id: s.phase_id,
                phase: p.map(|p| p.name.clone()),
                node: s.node.clone(),
                scheduled_start_ns: scheduled,
                actual_start_ns: s.actual_start_ns,
                offset_ns: scheduled.and_then(|t| s.actual_start_ns.checked_sub(t)),
                clock_offset_ns: clock.and_then(|c| c.clock_offset_ns),
                clock_uncertainty_ns: clock.and_then(|c| c.clock_uncertainty_ns),
            }
        })
        .collect();
    rows.sort_by(|a, b| order(a).cmp(&order(b)));
    rows
}

/// Scheduled start first (a start of an unknown phase last), then phase id, then node.
fn order(r: &StartRow) -> (bool, i64, u32, &str) {
    (
        r.scheduled_start_ns.is_none(),
        r.scheduled_start_ns.unwrap_or(0),
        r.phase_id,
        &r.node,
    )
}

/// The table: one line per start, then the latest and the earliest start.
pub fn render(run: &str, rows: &[StartRow]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if rows.is_empty() {
        let _ = writeln!(out, "run {run}: no phase starts stored");
        return out;
    }
    let _ = writeln!(
        out,
        "run {run}: {} phase starts; offset = actual − scheduled start (coordinator clock), \
         positive is late; clock = the probe's estimated offset from the coordinator ± its uncertainty",
        rows.len()
    );
    let _ = writeln!(
        out,
        "{:>5} {:<16} {:<24} {:<24} {:>19} {:>19} {:>11} {:>11} {:>9}",
        "PHASE",
        "NAME",
        "NODE",
        "SCHEDULED (UTC)",
        "SCHEDULED ns",
        "ACTUAL ns",
        "OFFSET ms",
        "CLOCK µs",
        "± µs"
    );
    let dash = || "-".to_string();
    for r in rows {
        let _ = writeln!(
            out,
            "{:>5} {:<16} {:<24} {:<24} {:>19} {:>19} {:>11} {:>11} {:>9}",
            r.phase_id,
            r.phase.as_deref().unwrap_or("-"),
            r.node,
            r.scheduled_start_ns.map_or_else(dash, format_utc),
            r.scheduled_start_ns.map_or_else(dash, |t| t.to_string()),
            r.actual_start_ns,
            r.offset_ns
                .map_or_else(dash, |d| format!("{:+.3}", d as f64 / 1e6)),
            r.clock_offset_ns
                .map_or_else(dash, |o| format!("{:+.1}", o as f64 / 1e3)),
            r.clock_uncertainty_ns
                .map_or_else(dash, |u| format!("{:.1}", u as f64 / 1e3)),
        );
    }
    let timed = || rows.iter().filter_map(|r| r.offset_ns.map(|d| (d, r)));
    let line = |what: &str, (d, r): (i64, &StartRow)| {
        format!(
            "{what}: {} in phase {} ({}), {:+.3} ms\n",
            r.node,
            r.phase_id,
            r.phase.as_deref().unwrap_or("-"),
            d as f64 / 1e6
        )
    };
    if let Some(late) = timed().max_by_key(|(d, _)| *d) {
        out.push_str(&line("latest start", late));
    }
    if let Some(early) = timed().min_by_key(|(d, _)| *d) {
        out.push_str(&line("earliest start", early));
    }
    let unscheduled = rows.iter().filter(|r| r.offset_ns.is_none()).count();
    if unscheduled > 0 {
        let _ = writeln!(
            out,
            "{unscheduled} start(s) of a phase the store does not hold: no offset (-)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(phase_id: u32, name: &str, at: i64) -> PhaseRecord {
        PhaseRecord {
            phase_id,
            name: name.into(),
            workload: "burn".into(),
            scheduled_start_ns: at,
            duration_ms: 1000,
        }
    }

    fn start(phase_id: u32, node: &str, at: i64) -> PhaseStartRecord {
        PhaseStartRecord {
            phase_id,
            node: node.into(),
            actual_start_ns: at,
        }
    }

    fn probe(node: &str, clock: Option<(i64, i64)>) -> ProbeRecord {
        ProbeRecord {
            key: 1,
            node: node.into(),
            hall: "h".into(),
            row: "r".into(),
            rack: "k".into(),
            backend: "sim".into(),
            hallmark_version: "0".into(),
            registered_at_ns: 0,
            lost: None,
            clock_offset_ns: clock.map(|c| c.0),
            clock_uncertainty_ns: clock.map(|c| c.1),
            clock_rtt_ns: None,
        }
    }

    #[test]
    fn offsets_are_actual_minus_scheduled_and_absent_values_stay_absent() {
        const MS: i64 = 1_000_000;
        let phases = [
            phase(1, "square", 2_000 * MS),
            phase(0, "steady", 1_000 * MS),
        ];
        let starts = [
            start(1, "b", 2_005 * MS),
            start(0, "b", 999 * MS),
            start(0, "a", 1_003 * MS),
            start(7, "a", 5_000 * MS),
        ];
        let probes = [probe("a", Some((-40, 15))), probe("b", None)];
        let rows = start_rows(&phases, &starts, &probes);
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.phase_id, r.node.as_str(), r.offset_ns))
            .collect();
        // Scheduled order (phase 0 first), then node; the unknown phase last, with no offset.
        assert_eq!(
            got,
            [
                (0, "a", Some(3 * MS)),
                (0, "b", Some(-MS)),
                (1, "b", Some(5 * MS)),
                (7, "a", None)
            ]
        );
        assert_eq!(rows[0].clock_offset_ns, Some(-40));
        assert_eq!(rows[0].clock_uncertainty_ns, Some(15));
        assert_eq!(rows[1].clock_offset_ns, None);
        assert_eq!(rows[3].phase, None);
        assert_eq!(rows[3].scheduled_start_ns, None);
        let json = serde_json::to_value(&rows).unwrap();
        assert!(json[1]["clock_offset_ns"].is_null(), "{json}");
        assert!(json[3]["offset_ns"].is_null(), "{json}");
        let text = render("r1", &rows);
        assert!(
            text.contains("latest start: b in phase 1 (square), +5.000 ms"),
            "{text}"
        );
        assert!(
            text.contains("earliest start: b in phase 0 (steady), -1.000 ms"),
            "{text}"
        );
        assert!(
            text.contains("1 start(s) of a phase the store does not hold"),
            "{text}"
        );
    }

    #[test]
    fn a_run_without_starts_says_so() {
        assert_eq!(render("r1", &[]), "run r1: no phase starts stored\n");
    }
}
