//! [`render_verdicts`]: the certification for a terminal, compact however many subjects there are —
//! the overall verdict, one line per criterion with its counts, every FAIL and WARN subject with its
//! measured value against the limit, and the reasons for INCOMPLETE verdicts grouped (a hall of 640
//! devices does not print 640 lines of PASS).

use std::fmt::Write;

use super::eval::WARNING_THRESHOLD;
use crate::verdict::{overall, Status, Verdict};

/// How many distinct reasons for INCOMPLETE are shown per criterion.
const MAX_REASONS: usize = 3;

/// How many FAIL subjects are listed one per line per criterion before the rest are summarised.
const MAX_FAILS: usize = 6;

/// How far past its limit a verdict is, in its unit (0 without both values).
fn excess(v: &Verdict) -> f64 {
    match (v.measured, v.limit) {
        (Some(m), Some(l)) => match v.comparison {
            crate::verdict::Comparison::AtMost => m - l,
            crate::verdict::Comparison::AtLeast => l - m,
        },
        _ => 0.0,
    }
}

/// `row2-rack03-n01/0 … row2-rack03-n10/7`: the first and last subject in name order.
fn subjects_summary(vs: &[&&Verdict]) -> String {
    let mut names: Vec<&str> = vs.iter().map(|v| v.subject.as_str()).collect();
    names.sort_unstable();
    match (names.first(), names.last()) {
        (Some(a), Some(b)) if a != b => format!("{a} … {b}"),
        (Some(a), _) => a.to_string(),
        _ => String::new(),
    }
}

/// A value with its unit, to the precision the unit deserves (`89.4 °C`, `99.57 kW`, `99.950 %`).
pub(crate) fn fmt_value(x: f64, unit: &str) -> String {
    let decimals = match unit {
        "elements" | "nodes" => 0,
        "°C" | "s" | "µs" | "GB/s" | "TFLOP/s" => 1,
        "%" => 3,
        _ => 2,
    };
    if unit.is_empty() {
        format!("{x:.decimals$}")
    } else {
        format!("{x:.decimals$} {unit}")
    }
}

/// `89.6 °C (limit <= 85 °C)`.
fn measured(v: &Verdict) -> String {
    let m = v
        .measured
        .map_or_else(|| "-".to_string(), |x| fmt_value(x, &v.unit));
    match v.limit {
        Some(l) => format!(
            "{m} (limit {} {})",
            v.comparison.as_str(),
            fmt_value(l, &v.unit)
        ),
        None => m,
    }
}

/// Renders verdicts (of one certification) as text: overall first, then per criterion.
pub fn render_verdicts(verdicts: &[Verdict]) -> String {
    let mut o = String::new();
    let count = |s: Status, vs: &[&Verdict]| vs.iter().filter(|v| v.status == s).count();
    let all: Vec<&Verdict> = verdicts.iter().collect();
    // Criteria in order of first appearance.
    let mut ids: Vec<&str> = Vec::new();
    for v in verdicts {
        if !ids.contains(&v.criterion.as_str()) {
            ids.push(&v.criterion);
        }
    }
    let by: Vec<(&str, Vec<&Verdict>)> = ids
        .iter()
        .map(|id| {
            (
                *id,
                all.iter().copied().filter(|v| v.criterion == *id).collect(),
            )
        })
        .collect();
    let worst = |vs: &[&Verdict]| {
        vs.iter()
            .map(|v| v.status)
            .max()
            .unwrap_or(Status::Incomplete)
    };
    let crit = |s: Status| by.iter().filter(|(_, vs)| worst(vs) == s).count();
    let _ = writeln!(
        o,
        "Certification: {} — {} criteria: {} PASS, {} WARN, {} FAIL, {} INCOMPLETE ({} verdicts)",
        overall(verdicts),
        by.len(),
        crit(Status::Pass),
        crit(Status::Warn),
        crit(Status::Fail),
        crit(Status::Incomplete),
        verdicts.len()
    );
    if verdicts.is_empty() {
        let _ = writeln!(
            o,
            "  no verdicts: nothing was judged, which is never a pass"
        );
        return o;
    }
    let width = ids
        .iter()
        .map(|i| i.chars().count())
        .max()
        .unwrap_or(0)
        .max(9);
    let _ = writeln!(
        o,
        "  {:<10}  {:<width$}  {:<6}  {:>5} {:>5} {:>5} {:>10}",
        "status", "criterion", "scope", "PASS", "WARN", "FAIL", "INCOMPLETE"
    );
    for (id, vs) in &by {
        let _ = writeln!(
            o,
            "  {:<10}  {:<width$}  {:<6}  {:>5} {:>5} {:>5} {:>10}",
            worst(vs).as_str(),
            id,
            vs[0].scope.as_str(),
            count(Status::Pass, vs),
            count(Status::Warn, vs),
            count(Status::Fail, vs),
            count(Status::Incomplete, vs)
        );
        // FAIL subjects: all of them when few, else the worst few and the range of the rest (the
        // report and `--json` list every one).
        let mut fails: Vec<&&Verdict> = vs.iter().filter(|v| v.status == Status::Fail).collect();
        fails.sort_by(|a, b| excess(b).total_cmp(&excess(a)));
        let shown = if fails.len() > MAX_FAILS {
            MAX_FAILS - 1
        } else {
            fails.len()
        };
        for v in &fails[..shown] {
            let _ = writeln!(o, "      FAIL  {}: {}", v.subject, measured(v));
        }
        if fails.len() > shown {
            let rest = &fails[shown..];
            let values: Vec<f64> = rest.iter().filter_map(|v| v.measured).collect();
            let range = match (
                values.iter().copied().reduce(f64::min),
                values.iter().copied().reduce(f64::max),
            ) {
                (Some(lo), Some(hi)) => format!(
                    ", measured {} to {}",
                    fmt_value(lo, &rest[0].unit),
                    fmt_value(hi, &rest[0].unit)
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "      FAIL  and {} more ({}{range}); every subject is in the report and in --json",
                rest.len(),
                subjects_summary(rest)
            );
        }
        for v in vs.iter().filter(|v| v.status == Status::Warn) {
            // The threshold crossed, as `note_warn` wrote it, or the detail's last clause.
            let why = match v.evidence.detail.find(WARNING_THRESHOLD) {
                Some(i) => &v.evidence.detail[i..],
                None => v.evidence.detail.rsplit("; ").next().unwrap_or_default(),
            };
            let _ = writeln!(o, "      WARN  {}: {}; {why}", v.subject, measured(v));
        }
        // INCOMPLETE reasons, grouped by their wording.
        let mut reasons: Vec<(&str, usize, &str)> = Vec::new();
        for v in vs.iter().filter(|v| v.status == Status::Incomplete) {
            match reasons.iter_mut().find(|r| r.0 == v.evidence.detail) {
                Some(r) => r.1 += 1,
                None => reasons.push((&v.evidence.detail, 1, &v.subject)),
            }
        }
        for (detail, n, subject) in reasons.iter().take(MAX_REASONS) {
            let who = if *n == 1 {
                subject.to_string()
            } else {
                format!("{n} subjects, e.g. {subject}")
            };
            let _ = writeln!(o, "      INCOMPLETE  {who}: {detail}");
        }
        if reasons.len() > MAX_REASONS {
            let rest: usize = reasons[MAX_REASONS..].iter().map(|r| r.1).sum();
            let _ = writeln!(
                o,
                "      INCOMPLETE  {rest} more subjects for other reasons"
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Comparison, Evidence, Scope};

    fn fail(subject: String, measured: f64) -> Verdict {
        Verdict {
            criterion: "gpu-temperature".into(),
            title: "t".into(),
            scope: Scope::Device,
            subject,
            status: Status::Fail,
            measured: Some(measured),
            limit: Some(85.0),
            comparison: Comparison::AtMost,
            unit: "°C".into(),
            evidence: Evidence::default(),
        }
    }

    #[test]
    fn many_failures_list_the_worst_and_summarise_the_rest() {
        let vs: Vec<Verdict> = (0..80)
            .map(|i| {
                fail(
                    format!("r3-n{:02}/{}", i / 8, i % 8),
                    86.0 + f64::from(i) / 20.0,
                )
            })
            .collect();
        let text = render_verdicts(&vs);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("      FAIL  "))
            .collect();
        assert_eq!(lines.len(), MAX_FAILS, "{text}");
        // The worst first: 86 + 79/20 = 89.95 °C.
        assert!(lines[0].contains("r3-n09/7: 90.0 °C"), "{text}");
        assert!(
            lines[MAX_FAILS - 1]
                .contains("and 75 more (r3-n00/0 … r3-n09/2, measured 86.0 °C to 89.7 °C)"),
            "{text}"
        );
        // A few failures are all listed.
        let few = render_verdicts(&vs[..3]);
        assert_eq!(
            few.lines()
                .filter(|l| l.starts_with("      FAIL  "))
                .count(),
            3,
            "{few}"
        );
    }
}
