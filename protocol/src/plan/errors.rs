//! Error positions and wording: byte spans to line and column, and the TOML reader's messages
//! rewritten in the words of a plan file.

use crate::textpos::explain_toml;
pub(super) use crate::textpos::{key_start, line_col};
use std::ops::Range;

use super::{PlanError, PATTERN_KINDS, WORKLOAD_KINDS};

/// The text being read and its file name: what turns a byte span into a [`PlanError`].
pub(super) struct Cx<'a> {
    pub(super) text: &'a str,
    pub(super) file: &'a str,
}

impl Cx<'_> {
    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> PlanError {
        let (line, column) = line_col(self.text, span.start);
        PlanError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }
}

/// Rewrites a message of the TOML reader in the words of a plan file ([`explain_toml`]), plus what
/// each pattern and workload kind takes.
pub(super) fn explain(text: &str, span: Range<usize>, message: &str) -> String {
    let e = explain_toml(text, span, message, "plan");
    let mut m = e.message;
    if e.missing_key.as_deref() == Some("`kind`") {
        if e.line.contains("pattern") {
            m.push_str(&format!(
                "; a pattern's kind is one of {}",
                one_of(PATTERN_KINDS)
            ));
        } else if e.line.contains("workload") {
            m.push_str(&format!(
                "; a workload's kind is one of {}",
                one_of(WORKLOAD_KINDS)
            ));
        }
    }
    if m.starts_with("unknown key") && m.contains("`kind`, `level`, `from`") {
        m.push_str(
            "; by kind: steady takes level; ramp takes from, to; steps takes levels, step_s; \
             square takes low, high, period_s, duty; sweep takes low, high, start_hz, end_hz",
        );
    }
    m
}

pub(super) fn one_of(list: &[&str]) -> String {
    list.join(", ")
}
