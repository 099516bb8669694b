//! What the publication tests share: a temporary directory, reading a publication's files back, a
//! small XML well-formedness check and an RFC 4180 CSV reader.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hallmark-publish-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The text of `dir/rel`.
pub fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file under `dir`, relative and `/`-separated, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap();
                out.push(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    out.sort();
    out
}

/// Checks that `s` is one well-formed XML element (after an optional declaration): tags nest and
/// close, attributes are quoted, `&` only starts a known entity, `<` only starts markup. Returns the
/// root element's name.
pub fn xml_root(s: &str) -> Result<String, String> {
    let s = s
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .unwrap_or(s);
    let b = s.as_bytes();
    let mut stack: Vec<String> = Vec::new();
    let mut root = None;
    let mut i = 0;
    let entity = |at: usize| -> Result<usize, String> {
        let end = s[at..]
            .find(';')
            .ok_or(format!("unterminated entity at {at}"))?;
        let name = &s[at + 1..at + end];
        let ok = ["lt", "gt", "amp", "quot", "apos"].contains(&name)
            || name
                .strip_prefix('#')
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty());
        if ok {
            Ok(at + end + 1)
        } else {
            Err(format!("bad entity &{name}; at {at}"))
        }
    };
    while i < b.len() {
        match b[i] {
            b'<' => {
                let end = s[i..].find('>').ok_or(format!("unclosed tag at {i}"))? + i;
                let tag = &s[i + 1..end];
                if let Some(name) = tag.strip_prefix('/') {
                    let open = stack.pop().ok_or(format!("close {name} without open"))?;
                    if open != name.trim() {
                        return Err(format!("<{open}> closed by </{name}>"));
                    }
                } else {
                    if stack.is_empty() && root.is_some() {
                        return Err("a second root element".into());
                    }
                    let self_closing = tag.ends_with('/');
                    let body = tag.trim_end_matches('/');
                    let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
                    if name.is_empty()
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
                    {
                        return Err(format!("bad tag name {name:?}"));
                    }
                    // Attributes: name="value" pairs.
                    let mut rest = body[name.len()..].trim_start();
                    while !rest.is_empty() {
                        let eq = rest
                            .find('=')
                            .ok_or(format!("attribute without value in <{name}>"))?;
                        let after = &rest[eq + 1..];
                        if !after.starts_with('"') {
                            return Err(format!("unquoted attribute in <{name}>"));
                        }
                        let close = after[1..].find('"').ok_or("unterminated attribute")? + 1;
                        let value = &after[1..close];
                        if value.contains('<') {
                            return Err(format!("< in an attribute of <{name}>"));
                        }
                        rest = after[close + 1..].trim_start();
                    }
                    root.get_or_insert_with(|| name.clone());
                    if !self_closing {
                        stack.push(name);
                    }
                }
                i = end + 1;
            }
            b'&' => i = entity(i)?,
            _ => {
                if stack.is_empty() && !b[i].is_ascii_whitespace() {
                    return Err(format!("text outside the root at {i}"));
                }
                i += 1;
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> never closed"));
    }
    root.ok_or("no element".into())
}

/// RFC 4180 records of `text` (header included).
pub fn csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "CSV ends without a newline"
    );
    rows
}

/// A CSV number field: empty is absent.
pub fn num(s: &str) -> Option<f64> {
    (!s.is_empty()).then(|| s.parse().unwrap())
}
