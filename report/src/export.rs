//! The machine-readable exports next to `index.html`: `summary.json` (the [`RunSummary`] with the
//! verdicts and the overall status), `summary.csv` (one row per rack), `verdicts.csv` (one row per
//! verdict). `samples.csv` is written by the streaming pass in [`super::samples`].
//!
//! CSV: RFC 4180 quoting, a header line, absent values as empty fields, numbers as Rust prints them
//! (shortest form that reads back to the same value).

use super::verdicts::rack_status;
use hallmark_results::verdict::{overall, Status, Verdict};
use hallmark_results::RunSummary;
use serde::Serialize;
use std::io::Write;

/// One CSV field, quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A stored REAL that came from an `f32` sensor reading, printed in the `f32`'s shortest form
/// (`150.1104`, not `150.1103973388672`); any other value is printed as the `f64` it is.
pub fn f32ish(v: f64) -> F32ish {
    F32ish(v)
}

pub struct F32ish(f64);

impl std::fmt::Display for F32ish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let narrow = self.0 as f32;
        if f64::from(narrow) == self.0 {
            write!(f, "{narrow}")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn opt(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The document of `summary.json`.
#[derive(Serialize)]
struct SummaryDoc<'a> {
    overall: Status,
    /// The SIMULATED warning of a simulated run ([`hallmark_results::Simulation::banner`]), `null` otherwise.
    simulated: Option<String>,
    summary: &'a RunSummary,
    verdicts: &'a [Verdict],
}

/// `summary.json`: `{"overall": "FAIL", "summary": {…}, "verdicts": […]}`.
pub fn summary_json(
    s: &RunSummary,
    verdicts: &[Verdict],
    out: &mut impl Write,
) -> Result<(), serde_json::Error> {
    let doc = SummaryDoc {
        overall: overall(verdicts),
        simulated: s.simulation.banner(),
        summary: s,
        verdicts,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

/// Header of `summary.csv`.
pub const SUMMARY_HEADER: &str = "run_id,hall,row,rack,nodes,peak_kw,mean_kw,sustained_kw,\
sustained_window_s,max_gpu_temp_c,hottest_device,throttle_s,verdict,simulated";

/// `summary.csv`: one row per rack; `verdict` is the worst verdict of the rack, its nodes and its
/// devices (empty when none applies); `simulated` is `true` on every row of a simulated run.
pub fn summary_csv(
    s: &RunSummary,
    verdicts: &[Verdict],
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(out, "{SUMMARY_HEADER}")?;
    for r in &s.racks {
        let hottest = r
            .hottest_device
            .as_ref()
            .map(|d| format!("{}/{}", d.node, d.device))
            .unwrap_or_default();
        let status = rack_status(verdicts, r)
            .map(|s| s.as_str())
            .unwrap_or_default();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&s.run_id),
            csv_field(&r.hall),
            csv_field(&r.row),
            csv_field(&r.rack),
            r.nodes.len(),
            opt(r.peak_kw),
            opt(r.mean_kw),
            opt(r.sustained_kw),
            opt(Some(r.sustained_window_s)),
            opt(r.max_gpu_temp_c),
            csv_field(&hottest),
            opt(Some(r.throttle_s)),
            status,
            s.simulation.is_simulated()
        )?;
    }
    Ok(())
}

/// Header of `verdicts.csv`.
pub const VERDICTS_HEADER: &str = "criterion,title,scope,subject,status,measured,comparison,limit,\
unit,from_ns,to_ns,evidence_subjects,detail,simulated";

/// `verdicts.csv`: one row per verdict, in the order given; evidence subjects separated by spaces;
/// `simulated` is `true` on every row when the run was simulated.
pub fn verdicts_csv(
    verdicts: &[Verdict],
    simulated: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(out, "{VERDICTS_HEADER}")?;
    for v in verdicts {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{simulated}",
            csv_field(&v.criterion),
            csv_field(&v.title),
            v.scope.as_str(),
            csv_field(&v.subject),
            v.status.as_str(),
            opt(v.measured),
            v.comparison.as_str(),
            opt(v.limit),
            csv_field(&v.unit),
            v.evidence
                .from_ns
                .map(|t| t.to_string())
                .unwrap_or_default(),
            v.evidence.to_ns.map(|t| t.to_string()).unwrap_or_default(),
            csv_field(&v.evidence.subjects.join(" ")),
            csv_field(&v.evidence.detail)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_and_f32_form() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(f32ish(f64::from(150.1104f32)).to_string(), "150.1104");
        assert_eq!(f32ish(0.1).to_string(), "0.1");
        assert_eq!(f32ish(300.0).to_string(), "300");
    }
}
