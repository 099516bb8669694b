//! [`render_verdicts`]: the certification for a terminal, compact however many subjects there are —
//! the overall verdict, one line per criterion with its counts, every FAIL and WARN subject with its
//! measured value against the limit, and the reasons for INCOMPLETE verdicts grouped (a hall of 640
//! devices does not print 640 lines of PASS).

use std::fmt::Write;

use super::eval::WARNING_THRESHOLD;
use crate::verdict::{overall, Status, Verdict};

/// How many distinct reasons for INCOMPLETE are shown per criterion.
const MAX_REASONS: usize = 3;

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
        for v in vs.iter().filter(|v| v.status == Status::Fail) {
            let _ = writeln!(o, "      FAIL  {}: {}", v.subject, measured(v));
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
