//! The verdicts in the report, short enough that the charts follow on the first screens: the overall
//! verdict, counts per criterion, then the FAIL, INCOMPLETE and WARN verdicts grouped by criterion
//! and rack with the worst few of each group shown (groups past the first few folded), and every
//! verdict in `<details>` (no scripts); and what the charts take from the verdicts (each rack's
//! worst status, the power limits).

use super::style::{esc, status_class};
use hallmark_results::verdict::{overall, Comparison, Scope, Status, Verdict};
use hallmark_results::RackSummary;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Whether a verdict is about `rack`: the rack itself, one of its nodes, or one of their devices.
fn concerns(v: &Verdict, rack: &RackSummary) -> bool {
    match v.scope {
        Scope::Rack => v.subject == rack.rack,
        Scope::Node => rack.nodes.contains(&v.subject),
        Scope::Device => v
            .subject
            .rsplit_once('/')
            .is_some_and(|(node, _)| rack.nodes.iter().any(|n| n == node)),
        Scope::Row | Scope::Hall => false,
    }
}

/// The worst status of the verdicts about a rack, its nodes and devices (`None`: no verdict applies).
pub fn rack_status(verdicts: &[Verdict], rack: &RackSummary) -> Option<Status> {
    verdicts
        .iter()
        .filter(|v| concerns(v, rack))
        .map(|v| v.status)
        .max()
}

/// A rack power limit taken from the verdicts, kW.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerLimit {
    pub kw: f64,
    pub label: String,
}

/// `≤ 130.0 kW · rack-peak-power`, at most 34 characters.
pub fn limit_label(comparison: Comparison, kw: f64, source: &str) -> String {
    let sign = match comparison {
        Comparison::AtMost => '≤',
        Comparison::AtLeast => '≥',
    };
    let mut label = format!("{sign} {kw:.1} kW · {source}");
    if label.chars().count() > 34 {
        label = label.chars().take(33).collect::<String>() + "…";
    }
    label
}

/// The distinct limits (kW) of rack-scope power criteria whose id or title mentions `word`
/// (`sustain`, `peak`); a limit in W is converted.
pub fn power_limits(verdicts: &[Verdict], word: &str) -> Vec<PowerLimit> {
    let mut out: Vec<PowerLimit> = Vec::new();
    for v in verdicts {
        let scale = match v.unit.trim() {
            u if u.eq_ignore_ascii_case("kw") => 1.0,
            "W" | "w" => 1e-3,
            _ => continue,
        };
        let text = format!("{} {}", v.criterion, v.title).to_lowercase();
        if v.scope != Scope::Rack || !text.contains(word) {
            continue;
        }
        let Some(kw) = v.limit.map(|l| l * scale).filter(|l| l.is_finite()) else {
            continue;
        };
        if out.iter().all(|l| (l.kw - kw).abs() > 1e-9) {
            out.push(PowerLimit {
                kw,
                label: limit_label(v.comparison, kw, &v.criterion),
            });
        }
    }
    out
}

/// A measured value or limit with as many decimals as its size asks for.
pub fn value(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            let a = v.abs();
            if a >= 100.0 {
                format!("{v:.1}")
            } else if a >= 1.0 {
                format!("{v:.2}")
            } else if a == 0.0 {
                "0".into()
            } else {
                format!("{v:.4}")
            }
        }
        _ => "–".into(),
    }
}

/// The count slot of a status in the per-criterion table.
fn slot(s: Status) -> usize {
    match s {
        Status::Fail => 0,
        Status::Incomplete => 1,
        Status::Warn => 2,
        Status::Pass => 3,
    }
}

fn badge(s: Status) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(s),
        s.as_str()
    )
}

fn evidence(v: &Verdict, start_ns: i64) -> String {
    let mut out = esc(&v.evidence.detail);
    if let (Some(a), Some(b)) = (v.evidence.from_ns, v.evidence.to_ns) {
        let rel = |t: i64| t.saturating_sub(start_ns) as f64 / 1e9;
        let _ = write!(
            out,
            " <span class=\"muted\">(+{:.1} s → +{:.1} s)</span>",
            rel(a),
            rel(b)
        );
    }
    let subjects = &v.evidence.subjects;
    if !subjects.is_empty() {
        const SHOWN: usize = 8;
        let mut list = subjects
            .iter()
            .take(SHOWN)
            .map(|s| esc(s))
            .collect::<Vec<_>>()
            .join(", ");
        if subjects.len() > SHOWN {
            let _ = write!(list, " and {} more", subjects.len() - SHOWN);
        }
        let _ = write!(out, " <span class=\"muted\">[{list}]</span>");
    }
    out
}

fn rows(out: &mut String, verdicts: &[&Verdict], start_ns: i64) {
    out.push_str(
        "<table class=\"verdicts\"><thead><tr><th>status</th><th>criterion</th><th>scope</th>\
         <th>subject</th><th class=\"num\">measured</th><th class=\"num\">limit</th><th>unit</th>\
         <th>evidence</th></tr></thead><tbody>\n",
    );
    for v in verdicts {
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td title=\"{}\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{} {}</td><td>{}</td><td>{}</td></tr>",
            status_class(v.status),
            badge(v.status),
            esc(&v.title),
            esc(&v.criterion),
            v.scope.as_str(),
            esc(&v.subject),
            value(v.measured),
            esc(v.comparison.as_str()),
            value(v.limit),
            esc(&v.unit),
            evidence(v, start_ns)
        );
    }
    out.push_str("</tbody></table>\n");
}

/// How far a verdict is beyond its limit, as a share of the limit (larger is worse; `None` without
/// a measured value or a limit).
fn excess(v: &Verdict) -> Option<f64> {
    let (m, l) = (v.measured?, v.limit?);
    let over = match v.comparison {
        Comparison::AtMost => m - l,
        Comparison::AtLeast => l - m,
    };
    let r = over / l.abs().max(f64::MIN_POSITIVE);
    r.is_finite().then_some(r)
}

/// Worst first: status, then how far beyond the limit, then criterion and subject.
fn worse_first(a: &Verdict, b: &Verdict) -> std::cmp::Ordering {
    b.status
        .cmp(&a.status)
        .then_with(|| match (excess(a), excess(b)) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
        .then_with(|| a.criterion.cmp(&b.criterion))
        .then_with(|| a.subject.cmp(&b.subject))
}

/// The rack a verdict is about (its subject's rack), or its row or hall subject.
fn group_of<'a>(v: &'a Verdict, racks: &'a [RackSummary]) -> &'a str {
    match v.scope {
        Scope::Rack | Scope::Row | Scope::Hall => &v.subject,
        Scope::Node | Scope::Device => racks
            .iter()
            .find(|r| concerns(v, r))
            .map_or(v.subject.as_str(), |r| r.rack.as_str()),
    }
}

/// Groups listed before the rest are folded.
const GROUPS_SHOWN: usize = 12;
/// Worst verdicts shown in full.
const WORST_SHOWN: usize = 5;

/// One row of the group table.
fn group_row(out: &mut String, criterion: &str, rack: &str, vs: &[&Verdict]) {
    let mut counts = [0usize; 4];
    for v in vs {
        counts[slot(v.status)] += 1;
    }
    let cell = |s: Status| match counts[slot(s)] {
        0 => "<td class=\"num muted\">0</td>".to_string(),
        k => format!("<td class=\"num {}\"><b>{k}</b></td>", status_class(s)),
    };
    let worst = vs[0];
    let _ = writeln!(
        out,
        "<tr><td>{} {}</td><td>{}</td>{}{}{}<td>{}</td><td class=\"num\">{}</td>\
         <td class=\"num\">{} {} {}</td></tr>",
        badge(worst.status),
        esc(criterion),
        esc(rack),
        cell(Status::Fail),
        cell(Status::Incomplete),
        cell(Status::Warn),
        esc(&worst.subject),
        value(worst.measured),
        esc(worst.comparison.as_str()),
        value(worst.limit),
        esc(&worst.unit)
    );
}

/// The non-PASS verdicts (sorted worst first) by criterion and rack, one table row per group with
/// its counts and its worst verdict (groups past [`GROUPS_SHOWN`] folded in a `<details>`), then the
/// [`WORST_SHOWN`] worst verdicts in full.
fn groups(out: &mut String, bad: &[&Verdict], racks: &[RackSummary], start_ns: i64) {
    let mut groups: Vec<((&str, &str), Vec<&Verdict>)> = Vec::new();
    for v in bad {
        let key = (v.criterion.as_str(), group_of(v, racks));
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(v),
            None => groups.push((key, vec![v])),
        }
    }
    let _ = writeln!(
        out,
        "<h3>FAIL, INCOMPLETE and WARN by criterion and rack ({} verdicts in {} groups)</h3>",
        bad.len(),
        groups.len()
    );
    let head = "<table><thead><tr><th>criterion</th><th>rack</th><th class=\"num\">FAIL</th>\
                <th class=\"num\">INCOMPLETE</th><th class=\"num\">WARN</th><th>worst</th>\
                <th class=\"num\">measured</th><th class=\"num\">limit</th></tr></thead><tbody>\n";
    out.push_str(head);
    for ((criterion, rack), vs) in groups.iter().take(GROUPS_SHOWN) {
        group_row(out, criterion, rack, vs);
    }
    out.push_str("</tbody></table>\n");
    if groups.len() > GROUPS_SHOWN {
        let _ = writeln!(
            out,
            "<details><summary>{} more groups</summary>",
            groups.len() - GROUPS_SHOWN
        );
        out.push_str(head);
        for ((criterion, rack), vs) in &groups[GROUPS_SHOWN..] {
            group_row(out, criterion, rack, vs);
        }
        out.push_str("</tbody></table></details>\n");
    }
    let _ = writeln!(
        out,
        "<h3>The {} worst, in full</h3>",
        bad.len().min(WORST_SHOWN)
    );
    rows(out, &bad[..bad.len().min(WORST_SHOWN)], start_ns);
}

/// The verdict section: `racks` (the summary's) group verdicts by rack. `spec` names the spec the
/// verdicts come from, when known.
pub fn section(
    verdicts: &[Verdict],
    racks: &[RackSummary],
    start_ns: i64,
    spec: Option<&str>,
) -> String {
    let mut out = String::new();
    let all = overall(verdicts);
    let mut counts: BTreeMap<Status, usize> = BTreeMap::new();
    for v in verdicts {
        *counts.entry(v.status).or_default() += 1;
    }
    let count = |s| counts.get(&s).copied().unwrap_or(0);
    let _ = write!(
        out,
        "<div class=\"overall {}\"><div class=\"word\">{}</div><div>",
        status_class(all),
        all.as_str()
    );
    if verdicts.is_empty() {
        out.push_str(
            "<b>Not judged.</b> No verdicts were given for this run (no certification spec was \
             applied), so nothing here is a pass.",
        );
    } else {
        let _ = write!(
            out,
            "<b>{} verdicts</b>: {} FAIL · {} INCOMPLETE · {} WARN · {} PASS",
            verdicts.len(),
            count(Status::Fail),
            count(Status::Incomplete),
            count(Status::Warn),
            count(Status::Pass)
        );
        if let Some(spec) = spec {
            let _ = write!(out, "<br><span class=\"muted\">spec {}</span>", esc(spec));
        }
    }
    out.push_str("</div></div>\n");
    if verdicts.is_empty() {
        return out;
    }

    // Per criterion, in order of first appearance.
    let mut criteria: Vec<(&str, &str, [usize; 4])> = Vec::new();
    for v in verdicts {
        let i = match criteria.iter().position(|c| c.0 == v.criterion) {
            Some(i) => i,
            None => {
                criteria.push((&v.criterion, &v.title, [0; 4]));
                criteria.len() - 1
            }
        };
        criteria[i].2[slot(v.status)] += 1;
    }
    out.push_str(
        "<h3>By criterion</h3><table><thead><tr><th>criterion</th><th>title</th>\
         <th class=\"num\">FAIL</th><th class=\"num\">INCOMPLETE</th><th class=\"num\">WARN</th>\
         <th class=\"num\">PASS</th></tr></thead><tbody>\n",
    );
    for (id, title, n) in &criteria {
        let worst = [Status::Fail, Status::Incomplete, Status::Warn, Status::Pass]
            .into_iter()
            .find(|s| n[slot(*s)] > 0)
            .unwrap_or(Status::Pass);
        let cell = |s: Status| match n[slot(s)] {
            0 => "<td class=\"num muted\">0</td>".to_string(),
            k => format!("<td class=\"num {}\"><b>{k}</b></td>", status_class(s)),
        };
        let _ = writeln!(
            out,
            "<tr><td>{} {}</td><td>{}</td>{}{}{}{}</tr>",
            badge(worst),
            esc(id),
            esc(title),
            cell(Status::Fail),
            cell(Status::Incomplete),
            cell(Status::Warn),
            cell(Status::Pass)
        );
    }
    out.push_str("</tbody></table>\n");

    let mut bad: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.status != Status::Pass)
        .collect();
    bad.sort_by(|a, b| worse_first(a, b));
    if bad.is_empty() {
        out.push_str("<p>No FAIL, INCOMPLETE or WARN verdicts.</p>\n");
    } else {
        groups(&mut out, &bad, racks, start_ns);
        let _ = writeln!(
            out,
            "<details><summary>All {} FAIL, INCOMPLETE and WARN verdicts, worst first</summary>",
            bad.len()
        );
        rows(&mut out, &bad, start_ns);
        out.push_str("</details>\n");
    }
    let pass: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.status == Status::Pass)
        .collect();
    if !pass.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} PASS verdicts</summary>",
            pass.len()
        );
        rows(&mut out, &pass, start_ns);
        out.push_str("</details>\n");
    }
    out
}
