//! The output directory: refused when it holds anything but an earlier publication and the bundles
//! the runs cite; an earlier publication's files (as its `data/publication.json` lists them) are
//! removed before the new one is written, so no chart of it is left behind. Nothing else in the
//! directory is ever removed.

use super::export::FORMAT;
use super::PublishError;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The top-level names a publication writes.
const OWN: [&str; 4] = ["index.html", "charts", "data", "bundles"];

/// The manifest path inside the directory.
pub(crate) const MANIFEST: &str = "data/publication.json";

#[derive(serde::Deserialize)]
struct Manifest {
    format: String,
    files: Vec<String>,
}

/// Whether `rel` is a relative path inside a publication (no `..`, no root, starting with one of
/// [`OWN`]).
fn own_path(rel: &str) -> bool {
    let p = Path::new(rel);
    let mut comps = p.components();
    let first_ok =
        matches!(comps.next(), Some(Component::Normal(c)) if OWN.iter().any(|o| c == *o));
    first_ok && comps.all(|c| matches!(c, Component::Normal(_)))
}

/// The files of an earlier publication in `dir`, when `dir/data/publication.json` is one.
fn earlier(dir: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join(MANIFEST)).ok()?;
    let m: Manifest = serde_json::from_str(&text).ok()?;
    (m.format == FORMAT && m.files.iter().all(|f| own_path(f))).then_some(m.files)
}

fn rel_text(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every entry of `dir` (relative, `/`-separated) not in `allowed` and not a publication's own
/// directory, sorted.
fn foreign(dir: &Path, allowed: &BTreeSet<String>) -> Result<Vec<String>, PublishError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let rd = std::fs::read_dir(&abs).map_err(|source| PublishError::Read {
            path: abs.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for e in rd {
            let e = e.map_err(|source| PublishError::Read {
                path: abs.clone(),
                source,
            })?;
            names.push(e.file_name());
        }
        names.sort();
        for name in names {
            let r = rel.join(&name);
            let text = rel_text(&r);
            let meta =
                std::fs::symlink_metadata(dir.join(&r)).map_err(|source| PublishError::Read {
                    path: dir.join(&r),
                    source,
                })?;
            let own_dir = rel.as_os_str().is_empty()
                && ["charts", "data", "bundles"].iter().any(|d| name == *d);
            if meta.is_dir() && own_dir {
                stack.push(r);
            } else if !(meta.is_file() && allowed.contains(&text)) {
                out.push(text);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Checks that `dir` may receive a publication: absent, empty, or an earlier publication with the
/// given bundles (`bundles/NAME`) beside it. Returns the earlier publication's files.
pub(crate) fn check(dir: &Path, bundles: &BTreeSet<String>) -> Result<Vec<String>, PublishError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PublishError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    if !meta.is_dir() {
        return Err(PublishError::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    let old = earlier(dir).unwrap_or_default();
    let mut allowed: BTreeSet<String> = old.iter().cloned().collect();
    allowed.extend(bundles.iter().map(|b| format!("bundles/{b}")));
    let other = foreign(dir, &allowed)?;
    if let Some(first) = other.first() {
        return Err(PublishError::NotEmpty {
            dir: dir.to_path_buf(),
            first: first.clone(),
            more: other.len() - 1,
        });
    }
    Ok(old)
}

/// Removes the earlier publication's files but the bundles about to be cited.
pub(crate) fn clear(
    dir: &Path,
    old: &[String],
    keep: &BTreeSet<String>,
) -> Result<(), PublishError> {
    for f in old {
        if keep.contains(f) {
            continue;
        }
        let path = dir.join(f);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(PublishError::Remove { path, source }),
        }
    }
    Ok(())
}

/// Creates `dir/sub` and its parents.
pub(crate) fn mkdir(dir: &Path) -> Result<(), PublishError> {
    std::fs::create_dir_all(dir).map_err(|source| PublishError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `dir/rel`.
pub(crate) fn write(dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), PublishError> {
    let path = dir.join(rel);
    std::fs::write(&path, bytes).map_err(|source| PublishError::Write { path, source })
}

/// The SHA-256 of the file at `path`, lowercase hex, read in blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `name` is a plain file name (no directory, not `.` or `..`, no control characters).
pub(crate) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside() {
        assert!(own_path("charts/gpu-power.svg"));
        assert!(own_path("index.html"));
        assert!(!own_path("../x"));
        assert!(!own_path("charts/../../x"));
        assert!(!own_path("/etc/passwd"));
        assert!(!own_path("notes.txt"));
        assert!(plain_name("r1.hallmark") && !plain_name("../r1") && !plain_name(".."));
        let p = std::env::temp_dir().join(format!("hallmark-sha-{}", std::process::id()));
        std::fs::write(&p, "abc").unwrap();
        // FIPS 180-2's example.
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let _ = std::fs::remove_file(&p);
    }
}
