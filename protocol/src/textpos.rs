//! Positions in text files: byte offsets (as the `toml` parser reports spans) turned into the 1-based
//! line and column an error message names, the start of the `key` whose value is at an offset, and
//! the `toml` reader's messages reworded for the people who write the files. Every file format of
//! hallmark (plans, halls, specs) reports its errors with these.

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for (i, ch) in text.char_indices() {
        if i >= offset {
            break;
        }
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// The start of the key whose value starts at byte `value_start` (`key = value`), or `value_start`
/// when the text before the value is not a plain `key =`.
pub fn key_start(text: &str, value_start: usize) -> usize {
    let Some(before) = text.get(..value_start) else {
        return value_start;
    };
    let Some(before) = before.trim_end_matches([' ', '\t']).strip_suffix('=') else {
        return value_start;
    };
    let before = before.trim_end_matches([' ', '\t']);
    let key_start = if let Some(quoted) = before.strip_suffix('"') {
        quoted.rfind('"')
    } else {
        let bare =
            before.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        (bare.len() < before.len()).then_some(bare.len())
    };
    key_start.unwrap_or(value_start)
}

/// A message of the `toml` reader reworded for the people who write hallmark's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlMessage<'a> {
    /// The reworded message; callers may append format-specific hints.
    pub message: String,
    /// The source line the error points into, trimmed.
    pub line: &'a str,
    /// For a missing key, the key as the reader names it (e.g. `` `kind` ``).
    pub missing_key: Option<String>,
}

/// Rewords a message of the `toml` reader at `span` of `text`, a `document` ("plan", "spec"): TOML
/// type names instead of Rust ones, the table a missing key belongs in, "key" for "field", and how
/// to write a list of tables.
pub fn explain_toml<'a>(
    text: &'a str,
    span: std::ops::Range<usize>,
    message: &str,
    document: &str,
) -> TomlMessage<'a> {
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
        .get(..span.start)
        .map(|b| b.rfind('\n').map_or(0, |i| i + 1))
        .and_then(|start| text.get(start..))
        .and_then(|rest| rest.lines().next())
        .unwrap_or("")
        .trim();
    let mut missing_key = None;
    if let Some(rest) = m.strip_prefix("missing field ").map(str::to_string) {
        // The reader gives the root table an empty span at 0, and any other table its header or value.
        let place = if span.start == 0 && (span.is_empty() || span.end == text.len()) {
            format!("at the top level of the {document}")
        } else if line.starts_with('[') {
            format!("in the table `{line}`")
        } else {
            "in this table".to_string()
        };
        m = format!("missing key {rest} {place}");
        missing_key = Some(rest);
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
    TomlMessage {
        message: m,
        line,
        missing_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters() {
        let text = "a = 1\nµ = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // After the two-byte µ, the column counts it once.
        assert_eq!(line_col(text, 10), (2, 4));
        assert_eq!(line_col(text, 1_000), (3, 1));
    }

    #[test]
    fn the_key_of_a_value_is_found() {
        let text = "name = \"x\"\n\"quoted key\" = 5\n";
        assert_eq!(key_start(text, 7), 0);
        let v = text.rfind('5').unwrap();
        assert_eq!(key_start(text, v), text.find("\"quoted").unwrap());
        assert_eq!(key_start(text, 2), 2, "not after `key =`");
    }
}
