//! [`SpecError`] and its positions and wording: byte spans to line and column, and the TOML
//! reader's messages rewritten in the words of a spec file (as `hallmark_protocol::plan` does for
//! plan files).

pub(super) use hallmark_protocol::textpos::{key_start, line_col};
use std::ops::Range;

use super::KINDS;

/// Why a spec file was refused: where (file, 1-based line and column in characters), and what is
/// wrong and what is allowed. Displays as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct SpecError {
    /// The file name given to [`parse_spec`](super::parse_spec).
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The text being read and its file name: what turns a byte span into a [`SpecError`].
pub(super) struct Cx<'a> {
    pub(super) text: &'a str,
    pub(super) file: &'a str,
}

impl Cx<'_> {
    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> SpecError {
        let (line, column) = line_col(self.text, span.start);
        SpecError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error at the key of the value at `value_span` (`key = value`).
    pub(super) fn err_at_key(
        &self,
        value_span: Range<usize>,
        message: impl Into<String>,
    ) -> SpecError {
        let start = key_start(self.text, value_span.start);
        self.err(start..value_span.end, message)
    }

    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }
}

/// Rewrites a message of the TOML reader in the words of a spec file
/// ([`hallmark_protocol::textpos::explain_toml`]), plus the criterion kinds and where to find which
/// keys a kind takes.
pub(super) fn explain(text: &str, span: Range<usize>, message: &str) -> String {
    let e = hallmark_protocol::textpos::explain_toml(text, span, message, "spec");
    let mut m = e.message;
    if e.missing_key.as_deref() == Some("`kind`") {
        m.push_str(&format!(
            "; a criterion's kind is one of {}",
            KINDS.join(", ")
        ));
    }
    if m.starts_with("unknown key") {
        m = m.replace("expected one of", "allowed keys are");
        if m.contains("`min_fraction_of_median`") {
            m.push_str(
                " (which of them a criterion takes depends on its `kind`; see docs/SPEC.md)",
            );
        }
    }
    m
}
