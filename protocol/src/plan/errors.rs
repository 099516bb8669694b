//! Error positions and wording: byte spans to line and column, and the TOML reader's messages
//! rewritten in the words of a plan file.

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

/// Rewrites a message of the TOML reader in the words of a plan file: TOML type names instead of
/// Rust ones, the table a missing key belongs in, and what each pattern kind takes.
pub(super) fn explain(text: &str, span: Range<usize>, message: &str) -> String {
    let at = span.start;
    let mut m = message.to_string();
    if m.starts_with("invalid type") {
        for (rust, toml) in [
            ("expected f64", "expected a number"),
            ("expected i64", "expected a whole number"),
            ("expected a string", "expected a string in quotes"),
            ("expected a sequence", "expected an array"),
            ("map,", "table,"),
            ("sequence,", "array,"),
        ] {
            m = m.replace(rust, toml);
        }
    }
    let line = text
        .get(..at)
        .and_then(|b| b.rfind('\n').map(|i| i + 1).or(Some(0)))
        .and_then(|start| text.get(start..))
        .and_then(|rest| rest.lines().next())
        .unwrap_or("")
        .trim();
    if let Some(rest) = m.strip_prefix("missing field ").map(str::to_string) {
        // The reader gives the root table an empty span at 0, and any other table its header or value.
        let table = if span.start == 0 && (span.is_empty() || span.end == text.len()) {
            "at the top level of the plan".to_string()
        } else if line.starts_with('[') {
            format!("in the table `{line}`")
        } else {
            "in this table".to_string()
        };
        m = format!("missing key {rest} {table}");
        if rest == "`kind`" {
            if line.contains("pattern") {
                m.push_str(&format!(
                    "; a pattern's kind is one of {}",
                    one_of(PATTERN_KINDS)
                ));
            } else if line.contains("workload") {
                m.push_str(&format!(
                    "; a workload's kind is one of {}",
                    one_of(WORKLOAD_KINDS)
                ));
            }
        }
    }
    if m.starts_with("invalid type: table, expected an array")
        && line.starts_with('[')
        && !line.starts_with("[[")
    {
        m.push_str(&format!(
            "; a list of tables is written with double brackets: `[{line}]`"
        ));
    }
    if let Some(rest) = m.strip_prefix("unknown field ") {
        m = format!("unknown key {rest}");
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
