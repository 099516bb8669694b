//! Reading small sysfs attribute files (one value per file) with typed, explanatory errors.
//!
//! Nothing read here is trusted: a file may be missing, root-only, empty, not UTF-8 or not a number,
//! and each of those becomes a [`SysfsError`] that says which file and what to do, never a panic or
//! a zero. At most [`MAX_ATTR_BYTES`] are read from a file.

use std::io::{ErrorKind, Read};
use std::path::Path;

/// The most bytes read from one attribute file (sysfs attributes are at most a page).
pub const MAX_ATTR_BYTES: u64 = 4096;
/// How much of a malformed file's content an error quotes.
const QUOTE_CHARS: usize = 40;

/// Why an attribute file could not be read as a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SysfsError {
    #[error("{path} is missing")]
    Missing { path: String },
    #[error(
        "permission denied reading {path} (RAPL energy counters are root-only on most kernels: \
         run the probe as root, or make the file readable, e.g. with a udev rule)"
    )]
    PermissionDenied { path: String },
    #[error("reading {path} failed: {message}")]
    Io { path: String, message: String },
    #[error("{path} is empty")]
    Empty { path: String },
    #[error("{path} holds {content:?}, which is not a non-negative integer")]
    Malformed { path: String, content: String },
}

impl SysfsError {
    /// An I/O error on `path`, classified.
    pub fn from_io(path: &Path, e: &std::io::Error) -> SysfsError {
        let path = path.display().to_string();
        match e.kind() {
            ErrorKind::NotFound => SysfsError::Missing { path },
            ErrorKind::PermissionDenied => SysfsError::PermissionDenied { path },
            ErrorKind::InvalidData => SysfsError::Malformed {
                path,
                content: "<not UTF-8>".into(),
            },
            _ => SysfsError::Io {
                path,
                message: e.to_string(),
            },
        }
    }
}

/// The trimmed text of an attribute file; an empty file is an error.
pub fn read_text(path: &Path) -> Result<String, SysfsError> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_ATTR_BYTES).read_to_string(&mut text))
        .map_err(|e| SysfsError::from_io(path, &e))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(SysfsError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(trimmed.to_string())
}

/// An attribute file holding one unsigned decimal integer.
pub fn read_u64(path: &Path) -> Result<u64, SysfsError> {
    let text = read_text(path)?;
    text.parse().map_err(|_| SysfsError::Malformed {
        path: path.display().to_string(),
        content: text.chars().take(QUOTE_CHARS).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let dir = crate::host::tests::TempDir::new("sysfs");
        let p = dir.path().join("v");
        assert!(matches!(read_u64(&p), Err(SysfsError::Missing { .. })));
        std::fs::write(&p, "  42\n").unwrap();
        assert_eq!(read_u64(&p), Ok(42));
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(read_u64(&p), Err(SysfsError::Empty { .. })));
        std::fs::write(&p, "-5").unwrap();
        assert!(matches!(read_u64(&p), Err(SysfsError::Malformed { .. })));
        std::fs::write(&p, [0xff, 0xfe, b'1']).unwrap();
        let e = read_u64(&p).unwrap_err();
        assert!(matches!(e, SysfsError::Malformed { .. }), "{e}");
        let long = "x".repeat(10_000);
        std::fs::write(&p, &long).unwrap();
        let e = read_u64(&p).unwrap_err().to_string();
        assert!(e.len() < 200 + p.display().to_string().len(), "{e}");
    }
}
