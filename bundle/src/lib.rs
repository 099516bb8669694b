//! Signed run bundles: one file that carries a run's artefacts (manifest, summary, verdicts, samples,
//! report: whatever the caller passes as named [`BundleFile`]s), a SHA-256 of each, and an Ed25519
//! signature over the manifest that lists them. Format and guarantees: `docs/BUNDLE.md`.
//!
//! * Keys: [`keygen`] writes `DIR/signing.key` (mode 0600) and `DIR/signing.pub`; [`load_signing_key`],
//!   [`load_public_key`] read them (PEM, the formats OpenSSL uses for Ed25519).
//! * [`write_bundle`] writes the bundle atomically; [`verify_bundle`] / [`open_bundle`] check every byte
//!   of it against a public key; [`read_bundle_file`] returns one member of a verified bundle.
//! * [`StagingDir`]: a private (0700, random name) directory for the files before they are signed.
//! * [`read_archive`], [`write_archive`], [`sign_manifest`]: the unverified building blocks, for tests
//!   and tools.
//!
//! The archive is a canonical POSIX ustar file (module `archive`): `manifest.json`, `manifest.sig`, then
//! the files in manifest order. Every byte of it is fixed by the signed manifest, so verification fails
//! on any change.

mod archive;
mod error;
mod keys;
mod manifest;
mod signature;
mod staging;

pub use archive::{MAX_NAME_LEN, MAX_SIZE};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::BundleError;
pub use keys::{
    fingerprint, keygen, load_public_key, load_signing_key, PUBLIC_KEY_FILE, SIGNING_KEY_FILE,
};
pub use manifest::{check_name, Manifest, ManifestEntry};
pub use signature::sign_manifest;
pub use staging::StagingDir;

use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The bundle format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The `format` field of every manifest.
pub const FORMAT_NAME: &str = "hallmark-bundle";
/// The first member of every bundle.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The second member: the signature over the exact bytes of `manifest.json`.
pub const SIGNATURE_NAME: &str = "manifest.sig";

/// One named file of a bundle. Names are relative `/`-separated paths (see [`check_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl BundleFile {
    pub fn new(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        BundleFile {
            name: name.into(),
            bytes: bytes.into(),
        }
    }
}

/// A bundle whose every byte has been checked: its manifest and its files, in manifest order.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    pub manifest: Manifest,
    pub files: Vec<BundleFile>,
}

impl VerifiedBundle {
    /// The bytes of the file `name`, if the bundle holds it.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.bytes.as_slice())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Writes `bytes` to a new temporary file next to `target` and returns its path; the caller renames
/// or links it into place. A `private` file is mode 0600 from its creation on (whatever the umask);
/// others get the usual 0666 less the umask.
pub(crate) fn write_temp(
    target: &Path,
    bytes: &[u8],
    private: bool,
) -> Result<PathBuf, BundleError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let Some(file_name) = target.file_name() else {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file");
        return Err(BundleError::io("write", target, e));
    };
    let tmp = target.with_file_name(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(&tmp)
        .map_err(|e| BundleError::io("create a temporary file for", target, e))?;
    let result = (|| {
        #[cfg(unix)]
        if private {
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(BundleError::io("write a temporary file for", target, e))
        }
    }
}

/// Makes a rename in `dir` durable (best effort: not every platform can sync a directory).
pub(crate) fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn check_sizes(files: &[BundleFile]) -> Result<(), BundleError> {
    match files.iter().find(|f| f.bytes.len() as u64 > MAX_SIZE) {
        Some(f) => Err(BundleError::BadName {
            name: f.name.clone(),
            reason: format!(
                "it is {} bytes; a bundle member holds at most {MAX_SIZE}",
                f.bytes.len()
            ),
        }),
        None => Ok(()),
    }
}

fn write_atomically(out: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let tmp = write_temp(out, bytes, false)?;
    if let Err(e) = fs::rename(&tmp, out) {
        let _ = fs::remove_file(&tmp);
        return Err(BundleError::io("write", out, e));
    }
    sync_dir(out.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Writes the bundle of run `run_id` holding `files` (in this order) to `out`, signed with `key`:
/// a temporary file next to `out`, renamed over it when complete. Returns the manifest written.
pub fn write_bundle(
    out: &Path,
    run_id: &str,
    files: &[BundleFile],
    key: &SigningKey,
) -> Result<Manifest, BundleError> {
    write_bundle_with(out, run_id, None, files, key)
}

/// [`write_bundle`] for a run that may be simulated: `simulated` (the run's SIMULATED warning) goes
/// into the signed manifest.
pub fn write_bundle_with(
    out: &Path,
    run_id: &str,
    simulated: Option<String>,
    files: &[BundleFile],
    key: &SigningKey,
) -> Result<Manifest, BundleError> {
    manifest::check_names(files.iter().map(|f| f.name.as_str()))
        .map_err(|(name, reason)| BundleError::BadName { name, reason })?;
    check_sizes(files)?;
    let manifest = Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        run_id: run_id.into(),
        created_at: manifest::now_utc(),
        hallmark_version: env!("CARGO_PKG_VERSION").into(),
        simulated,
        files: files
            .iter()
            .map(|f| ManifestEntry {
                name: f.name.clone(),
                size: f.bytes.len() as u64,
                sha256: sha256_hex(&f.bytes),
            })
            .collect(),
    };
    let mut manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::BadManifest {
            path: out.to_path_buf(),
            detail: e.to_string(),
        })?;
    manifest_bytes.push(b'\n');
    let signature = sign_manifest(&manifest_bytes, key);
    let mut entries = Vec::with_capacity(files.len() + 2);
    entries.push(BundleFile::new(MANIFEST_NAME, manifest_bytes));
    entries.push(BundleFile::new(SIGNATURE_NAME, signature));
    entries.extend_from_slice(files);
    write_atomically(out, &archive::encode(&entries))?;
    Ok(manifest)
}

/// Writes `entries` as a bundle archive, as they are: no manifest, no signature, no checks beyond what
/// the archive format needs (name length, size). For building deliberately odd bundles in tests.
pub fn write_archive(out: &Path, entries: &[BundleFile]) -> Result<(), BundleError> {
    if let Some(f) = entries
        .iter()
        .find(|f| f.name.is_empty() || f.name.len() > MAX_NAME_LEN || f.name.contains('\0'))
    {
        return Err(BundleError::BadName {
            name: f.name.clone(),
            reason: format!("an archive member name is 1 to {MAX_NAME_LEN} bytes without NUL"),
        });
    }
    check_sizes(entries)?;
    write_atomically(out, &archive::encode(entries))
}

/// The members of the archive at `path`, in order, WITHOUT verifying anything but the archive's form.
pub fn read_archive(path: &Path) -> Result<Vec<BundleFile>, BundleError> {
    let bytes = fs::read(path).map_err(|e| BundleError::io("read", path, e))?;
    decode(path, &bytes)
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Vec<BundleFile>, BundleError> {
    archive::decode(bytes).map_err(|fault| match fault {
        archive::Fault::Truncated(detail) => BundleError::Truncated {
            path: path.to_path_buf(),
            detail,
        },
        archive::Fault::Malformed(detail) => BundleError::Malformed {
            path: path.to_path_buf(),
            detail,
        },
    })
}
/// Verifies the bundle at `path` against `public` and returns its contents. Fails, naming the check,
/// on a malformed or truncated archive, a signature by another key or one that does not match the
/// manifest, an unsupported format version, and any file that is missing, extra, moved, resized or
/// changed: every byte of the file is covered.
pub fn open_bundle(path: &Path, public: &VerifyingKey) -> Result<VerifiedBundle, BundleError> {
    let bytes = fs::read(path).map_err(|e| BundleError::io("read", path, e))?;
    open_bundle_bytes(path, &bytes, public)
}

/// [`open_bundle`] for a bundle already in memory; `origin` only names it in errors.
pub fn open_bundle_bytes(
    origin: &Path,
    bytes: &[u8],
    public: &VerifyingKey,
) -> Result<VerifiedBundle, BundleError> {
    let path = || origin.to_path_buf();
    let mut members = decode(origin, bytes)?.into_iter();
    let malformed = |detail: String| BundleError::Malformed {
        path: path(),
        detail,
    };
    let manifest_bytes = match members.next() {
        Some(m) if m.name == MANIFEST_NAME => m.bytes,
        Some(m) => {
            return Err(malformed(format!(
                "the first member is {:?}; a bundle starts with {MANIFEST_NAME}",
                m.name
            )))
        }
        None => return Err(malformed("the archive is empty".into())),
    };
    let sig_bytes = match members.next() {
        Some(m) if m.name == SIGNATURE_NAME => m.bytes,
        Some(m) => {
            return Err(malformed(format!(
                "the second member is {:?}; expected {SIGNATURE_NAME}",
                m.name
            )))
        }
        None => return Err(malformed(format!("{SIGNATURE_NAME} is missing"))),
    };
    signature::verify(origin, &manifest_bytes, &sig_bytes, public)?;
    let manifest = manifest::parse(origin, &manifest_bytes)?;

    // Which names are where: extra and duplicate members first, then missing ones, then order and content.
    let files: Vec<BundleFile> = members.collect();
    let listed: HashSet<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    let mut present = HashSet::new();
    for f in &files {
        if !listed.contains(f.name.as_str()) {
            return Err(BundleError::UnexpectedFile {
                path: path(),
                name: f.name.clone(),
            });
        }
        if !present.insert(f.name.as_str()) {
            return Err(BundleError::DuplicateFile {
                path: path(),
                name: f.name.clone(),
            });
        }
    }
    if let Some(missing) = manifest
        .files
        .iter()
        .find(|e| !present.contains(e.name.as_str()))
    {
        return Err(BundleError::MissingFile {
            path: path(),
            name: missing.name.clone(),
        });
    }
    for (entry, f) in manifest.files.iter().zip(&files) {
        let name = || f.name.clone();
        if entry.name != f.name {
            return Err(BundleError::OutOfOrder {
                path: path(),
                name: name(),
                expected: entry.name.clone(),
            });
        }
        let size = f.bytes.len() as u64;
        if size != entry.size {
            return Err(BundleError::SizeMismatch {
                path: path(),
                name: name(),
                expected: entry.size,
                found: size,
            });
        }
        let digest = sha256_hex(&f.bytes);
        if digest != entry.sha256 {
            return Err(BundleError::HashMismatch {
                path: path(),
                name: name(),
                expected: entry.sha256.clone(),
                found: digest,
            });
        }
    }
    Ok(VerifiedBundle { manifest, files })
}

/// Verifies the bundle at `path` (see [`open_bundle`]) and returns its manifest.
pub fn verify_bundle(path: &Path, public: &VerifyingKey) -> Result<Manifest, BundleError> {
    open_bundle(path, public).map(|b| b.manifest)
}

/// Verifies the bundle at `path` (see [`open_bundle`]) and returns the bytes of its file `name`.
pub fn read_bundle_file(
    path: &Path,
    public: &VerifyingKey,
    name: &str,
) -> Result<Vec<u8>, BundleError> {
    let bundle = open_bundle(path, public)?;
    match bundle.files.into_iter().find(|f| f.name == name) {
        Some(f) => Ok(f.bytes),
        None => Err(BundleError::NotInBundle {
            path: path.to_path_buf(),
            name: name.into(),
            available: bundle
                .manifest
                .files
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
