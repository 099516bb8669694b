//! `manifest.json`: the list of a bundle's files with their sizes and SHA-256, and the rules for names.
//!
//! Written by `serde_json::to_vec_pretty` plus a final newline; signed byte for byte, so it is never
//! re-serialised on the way in: [`parse`] reads the signed bytes, checks the format version before
//! anything else, then the fields (unknown fields are refused) and the names.

use super::{
    BundleError, FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, MAX_NAME_LEN, SIGNATURE_NAME,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// `manifest.json`: what the bundle holds. Signed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    pub run_id: String,
    /// When the bundle was written, UTC, `2026-11-29T02:15:00.123Z`.
    pub created_at: String,
    /// The version of hallmark that wrote it.
    pub hallmark_version: String,
    /// For a run with simulated devices: the SIMULATED warning (`hallmark_results::Simulation::banner`);
    /// absent for a run of real devices only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<String>,
    /// Every member other than `manifest.json` and `manifest.sig`, in archive order.
    pub files: Vec<ManifestEntry>,
}

/// One file listed in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub name: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// Why `name` cannot be a bundle member, if it cannot: it must be 1 to [`MAX_NAME_LEN`] bytes of ASCII
/// letters, digits and `._-+=@,`, in `/`-separated components that are not empty, `.` or `..`, with no
/// leading `/`, and not one of the reserved names `manifest.json` and `manifest.sig`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("the name is longer than {MAX_NAME_LEN} bytes"));
    }
    if name == MANIFEST_NAME || name == SIGNATURE_NAME {
        return Err("the name is reserved for the bundle's own manifest and signature".into());
    }
    if name.starts_with('/') {
        return Err("absolute paths are not allowed".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "._-+=@,/".contains(c)))
    {
        return Err(format!(
            "the character {c:?} is not allowed (use ASCII letters, digits and ._-+=@,/)"
        ));
    }
    if let Some(part) = name
        .split('/')
        .find(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(format!("the path component {part:?} is not allowed"));
    }
    Ok(())
}

/// Checks a whole set of names: each valid, none twice, none both a file and a directory.
pub(crate) fn check_names<'a>(
    names: impl Iterator<Item = &'a str> + Clone,
) -> Result<(), (String, String)> {
    let mut seen = HashSet::new();
    for name in names.clone() {
        check_name(name).map_err(|r| (name.to_string(), r))?;
        if !seen.insert(name) {
            return Err((name.to_string(), "the name appears twice".into()));
        }
    }
    for name in names {
        let mut prefix = name;
        while let Some((dir, _)) = prefix.rsplit_once('/') {
            if seen.contains(dir) {
                return Err((
                    dir.to_string(),
                    format!("it is a file, and {name:?} needs it as a directory"),
                ));
            }
            prefix = dir;
        }
    }
    Ok(())
}

pub(crate) fn now_utc() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    hallmark_store::time::format_utc(ns).replacen(' ', "T", 1)
}

/// Parses and checks a manifest whose signature is already verified.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Manifest, BundleError> {
    #[derive(Deserialize)]
    struct Head {
        format: Option<serde_json::Value>,
        format_version: Option<serde_json::Value>,
    }
    let bad = |detail: String| BundleError::BadManifest {
        path: path.to_path_buf(),
        detail,
    };
    let head: Head = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if head.format.as_ref().and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Err(bad(format!("its \"format\" is not {FORMAT_NAME:?}")));
    }
    match head.format_version {
        Some(v) if v.as_u64() == Some(u64::from(FORMAT_VERSION)) => {}
        other => {
            return Err(BundleError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: other.map_or_else(|| "(none)".into(), |v| v.to_string()),
                supported: FORMAT_VERSION,
            })
        }
    }
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    check_names(manifest.files.iter().map(|f| f.name.as_str()))
        .map_err(|(name, reason)| bad(format!("file {name:?}: {reason}")))?;
    Ok(manifest)
}
