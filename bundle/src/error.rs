//! Errors of bundle signing and verification.
//!
//! Every error names the file it concerns (the key file, the bundle, the member of the bundle) and says
//! what is wrong; verification errors say which check failed, so "the bundle was changed" can be told
//! apart from "you passed the wrong public key".

use std::path::PathBuf;

/// What went wrong while making keys, writing a bundle or verifying one.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} already exists; hallmark never overwrites a signing key: move it away first, or choose another directory")]
    KeyExists { path: PathBuf },

    #[error("{path} is not a usable {kind}: {detail}")]
    BadKey {
        path: PathBuf,
        kind: &'static str,
        detail: String,
    },

    #[error("cannot put {name:?} in a bundle: {reason}")]
    BadName { name: String, reason: String },

    #[error("bundle {path}: not a valid hallmark bundle archive: {detail}")]
    Malformed { path: PathBuf, detail: String },

    #[error("bundle {path} is truncated: {detail}")]
    Truncated { path: PathBuf, detail: String },

    #[error("bundle {path}: manifest.sig is malformed: {detail}")]
    BadSignatureFile { path: PathBuf, detail: String },

    #[error("bundle {path} was signed by key {signed_by}, not by the given public key {expected}; pass the public key of the signer (or manifest.sig was changed)")]
    WrongKey {
        path: PathBuf,
        signed_by: String,
        expected: String,
    },

    #[error("bundle {path}: the signature does not match manifest.json; the manifest or its signature was changed after signing")]
    BadSignature { path: PathBuf },

    #[error("bundle {path} has format version {found}; this build reads version {supported}; use a newer hallmark to verify it")]
    UnsupportedVersion {
        path: PathBuf,
        found: String,
        supported: u32,
    },

    #[error("bundle {path}: manifest.json is invalid: {detail}")]
    BadManifest { path: PathBuf, detail: String },

    #[error("bundle {path}: {name} is listed in the manifest but missing from the archive")]
    MissingFile { path: PathBuf, name: String },

    #[error("bundle {path}: {name} is in the archive but not listed in the signed manifest")]
    UnexpectedFile { path: PathBuf, name: String },

    #[error("bundle {path}: {name} appears more than once in the archive")]
    DuplicateFile { path: PathBuf, name: String },

    #[error("bundle {path}: found {name} where the manifest puts {expected}; the archive was rearranged")]
    OutOfOrder {
        path: PathBuf,
        name: String,
        expected: String,
    },

    #[error("bundle {path}: {name} is {found} bytes, the signed manifest says {expected}; the file was changed")]
    SizeMismatch {
        path: PathBuf,
        name: String,
        expected: u64,
        found: u64,
    },

    #[error("bundle {path}: {name} has SHA-256 {found}, the signed manifest says {expected}; the file was changed")]
    HashMismatch {
        path: PathBuf,
        name: String,
        expected: String,
        found: String,
    },

    #[error("bundle {path} has no file named {name:?} (it holds: {available})")]
    NotInBundle {
        path: PathBuf,
        name: String,
        available: String,
    },
}

impl BundleError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BundleError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
