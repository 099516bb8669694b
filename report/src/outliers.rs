//! The report's outliers section: the subjects of the run far from their like subjects' median
//! ([`hallmark_results::outliers`]: robust z-scores over devices of one model, over nodes, racks
//! and pairs), one table row each; separate from regressions across runs.

use super::html::Section;
use super::style::esc;
use hallmark_results::outliers::{MIN_GROUP, MIN_RELATIVE_DEVIATION, Z_LIMIT};
use hallmark_results::RunSummary;
use std::fmt::Write;

/// A figure with about four significant digits.
fn figure(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.1 {
        format!("{v:.5}")
    } else {
        format!("{v:.2}")
    }
}

/// The section; a note when nothing stands out.
pub fn section(s: &RunSummary) -> Section {
    let note = format!(
        "Per metric, over like subjects (devices of one model; nodes; racks; pairs; groups of at \
         least {MIN_GROUP}): robust z = (value − median) / (1.4826 · MAD), an outlier beyond \
         ±{Z_LIMIT} (Iglewicz–Hoaglin) on either side. Where the MAD is 0 the scale is \
         1.253314 · the mean absolute deviation; a deviation under {floor} % of the median is \
         never an outlier. Outliers within this run, not regressions against earlier runs.",
        floor = MIN_RELATIVE_DEVIATION * 100.0
    );
    let mut body = String::new();
    if s.outliers.is_empty() {
        let _ = writeln!(
            body,
            "<p>No subject stands out from its like subjects.</p>\n<p class=\"note\">{}</p>",
            esc(&note)
        );
    } else {
        body.push_str(
            "<table><thead><tr><th>subject</th><th>metric</th><th class=\"num\">value</th>\
             <th>unit</th><th class=\"num\">median</th><th class=\"num\">MAD</th>\
             <th class=\"num\">robust z</th><th>side</th><th>compared with</th></tr></thead><tbody>\n",
        );
        for o in &s.outliers {
            let _ = writeln!(
                body,
                "<tr><td>{} {}</td><td>{}</td><td class=\"num\"><b class=\"fail\">{}</b></td>\
                 <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{:+.1}</td><td>{}</td><td>{} ({})</td></tr>",
                esc(o.kind.as_str()),
                esc(&o.subject),
                esc(&o.metric),
                figure(o.value),
                esc(&o.unit),
                figure(o.median),
                figure(o.mad),
                o.robust_z,
                o.direction.as_str(),
                esc(&o.group),
                o.group_size
            );
        }
        let _ = writeln!(
            body,
            "</tbody></table>\n<p class=\"note\">{}</p>",
            esc(&note)
        );
    }
    Section {
        id: "outliers",
        title: "Outliers within the run",
        body,
    }
}
