//! The file parsers' contract on an error, in one place for the fuzz targets (`fuzz/src/lib.rs`)
//! and the bounded property tests (`tests/file_formats.rs`, which include this file): the error
//! names `file`, a line inside the text (or just past its end) and a column ≥ 1 within that line
//! (+1), and its message starts with `file:line:column:`.

/// Why an error at `line`:`column`, shown as `shown`, breaks the contract for `text` read as
/// `file` (`Ok` when it keeps it).
pub fn check_position(
    text: &str,
    file: &str,
    line: usize,
    column: usize,
    shown: &str,
) -> Result<(), String> {
    let lines: Vec<&str> = text.split('\n').collect();
    if !(line >= 1 && line <= lines.len() + 1) {
        return Err(format!("line {line} of {}: {shown}", lines.len()));
    }
    let width = lines.get(line - 1).map_or(0, |l| l.chars().count());
    if !(column >= 1 && column <= width + 2) {
        return Err(format!(
            "column {column} of a {width}-character line {line}: {shown}"
        ));
    }
    if !shown.starts_with(&format!("{file}:{line}:{column}:")) {
        return Err(format!(
            "the message does not start with {file}:{line}:{column}: {shown}"
        ));
    }
    Ok(())
}
