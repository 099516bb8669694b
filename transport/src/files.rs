//! The crate's file I/O for certificates, keys and revocation lists: reading a text file with
//! errors that name it, creating directories, and writing a file atomically (a temporary file in
//! the same directory, synced, renamed over the target; private keys created with mode 0600).

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use crate::pki::PkiError;

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Write {
        file: dir.display().to_string(),
        source,
    })
}

/// Reads a text file; a missing one is [`PkiError::Missing`].
pub(crate) fn read_text(path: &Path) -> Result<String, PkiError> {
    read_or(
        path,
        |file| PkiError::Missing { file },
        |file, source| PkiError::Read { file, source },
    )
}

/// Reads a text file; the error is `missing(file)` when it does not exist, else
/// `unreadable(file, error)`, with `file` the path as displayed.
pub(crate) fn read_or<E>(
    path: &Path,
    missing: impl FnOnce(String) -> E,
    unreadable: impl FnOnce(String, io::Error) -> E,
) -> Result<String, E> {
    fs::read_to_string(path).map_err(|source| {
        let file = path.display().to_string();
        if source.kind() == io::ErrorKind::NotFound {
            missing(file)
        } else {
            unreadable(file, source)
        }
    })
}

/// Writes `contents` to `path` through a new temporary file in the same directory (mode 0600 when
/// `secret`, else 0644), synced before it is renamed over `path`.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
    let err = |p: &Path| {
        let file = p.display().to_string();
        move |source| PkiError::Write { file, source }
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let result = (|| {
        let mut file = options.open(&tmp).map_err(err(&tmp))?;
        file.write_all(contents).map_err(err(&tmp))?;
        file.sync_all().map_err(err(&tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(err(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable; failing to sync a directory is not worth an error.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
