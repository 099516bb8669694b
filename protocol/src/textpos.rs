//! Positions in text files: byte offsets (as the `toml` parser reports spans) turned into the 1-based
//! line and column an error message names, and the start of the `key` whose value is at an offset.
//! Every file format of hallmark (plans, halls, specs) reports its errors with these.

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
