//! The exposition text of the live metrics, shared by both formats: a family's `# HELP` and
//! `# TYPE`, counters named as each format wants them, label sets and escaped label values,
//! sample values.

use crate::metrics::Format;
use hallmark_protocol::{Labels, NodeId};
use std::fmt::Write;

/// `# HELP` and `# TYPE` of a family.
pub(crate) fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A counter family with one sample, named `NAME_total`; the family is `NAME_total` in the
/// Prometheus format (whose `TYPE` names the sample) and `NAME` in OpenMetrics (whose counter
/// samples add `_total` to the family's name).
pub(crate) fn counter(o: &mut String, format: Format, name: &str, help: &str, value: u64) {
    counter_family(o, format, name, help);
    let _ = writeln!(o, "{name}_total {value}");
}

/// `# HELP` and `# TYPE` of a counter family whose samples are named `NAME_total` (see
/// [`counter`]).
pub(crate) fn counter_family(o: &mut String, format: Format, name: &str, help: &str) {
    match format {
        Format::Prometheus => family(o, &format!("{name}_total"), "counter", help),
        Format::OpenMetrics => family(o, name, "counter", help),
    }
}

pub(crate) fn node_labels(id: &NodeId, l: &Labels) -> String {
    format!(
        "{},node=\"{}\"",
        rack_labels(&l.hall, &l.row, &l.rack),
        esc(id.as_str())
    )
}

pub(crate) fn rack_labels(hall: &str, row: &str, rack: &str) -> String {
    format!(
        "hall=\"{}\",row=\"{}\",rack=\"{}\"",
        esc(hall),
        esc(row),
        esc(rack)
    )
}

/// A label value escaped as both formats require (`\\`, `\"`, `\n`).
pub(crate) fn esc(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A sample value: finite as Rust prints it (shortest round trip).
pub(crate) fn num(v: f64) -> String {
    format!("{v}")
}
