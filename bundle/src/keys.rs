//! Ed25519 key files: `hallmark keygen` output and what `bundle` / `verify` read.
//!
//! Both files are standard PEM, the same formats OpenSSL uses (`openssl genpkey -algorithm ed25519`
//! writes a key hallmark can load, and `openssl pkey` reads hallmark's):
//!
//! * `signing.key`: `-----BEGIN PRIVATE KEY-----`, base64 of the PKCS#8 DER of the 32-byte seed
//!   (RFC 8410); mode 0600 from the moment it is created; never overwritten.
//! * `signing.pub`: `-----BEGIN PUBLIC KEY-----`, base64 of the SubjectPublicKeyInfo DER (RFC 8410).
//!
//! The key's fingerprint ([`fingerprint`]) is `SHA256:` and the hex SHA-256 of the 32 raw public-key bytes.

use super::BundleError;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The private key's file name in the directory given to [`keygen`].
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// The public key's file name in the directory given to [`keygen`].
pub const PUBLIC_KEY_FILE: &str = "signing.pub";

/// PKCS#8 v1 PrivateKeyInfo for Ed25519 (OID 1.3.101.112), up to the 32 seed bytes.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// SubjectPublicKeyInfo for Ed25519, up to the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const PRIVATE_LABEL: &str = "PRIVATE KEY";
const PUBLIC_LABEL: &str = "PUBLIC KEY";
const SIGNING_KIND: &str = "hallmark signing key";
const PUBLIC_KIND: &str = "hallmark public key";

/// `SHA256:<hex>` of the raw public key: how bundles and errors name a key.
pub fn fingerprint(key: &VerifyingKey) -> String {
    format!("SHA256:{}", super::hex(&Sha256::digest(key.as_bytes())))
}

fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Makes `DIR/signing.key` (mode 0600) and `DIR/signing.pub`, creating `DIR` (mode 0700) if needed.
/// Refuses, with [`BundleError::KeyExists`], when `DIR/signing.key` exists; an old `signing.pub` without
/// its key is replaced. Returns (private key path, public key path).
pub fn keygen(dir: &Path) -> Result<(PathBuf, PathBuf), BundleError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| BundleError::io("create the key directory", dir, e))?;
    let key_path = dir.join(SIGNING_KEY_FILE);
    let pub_path = dir.join(PUBLIC_KEY_FILE);
    if fs::symlink_metadata(&key_path).is_ok() {
        return Err(BundleError::KeyExists { path: key_path });
    }

    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| {
        BundleError::io(
            "draw random bytes for",
            &key_path,
            std::io::Error::other(e.to_string()),
        )
    })?;
    let signing = SigningKey::from_bytes(&seed);
    let mut der = Zeroizing::new(PKCS8_PREFIX.to_vec());
    der.extend_from_slice(seed.as_ref());
    let private_pem = pem(PRIVATE_LABEL, &der);
    let mut spki = SPKI_PREFIX.to_vec();
    spki.extend_from_slice(signing.verifying_key().as_bytes());
    let public_pem = pem(PUBLIC_LABEL, &spki);

    let key_tmp = super::write_temp(&key_path, private_pem.as_bytes(), true)?;
    let pub_tmp = match super::write_temp(&pub_path, public_pem.as_bytes(), false) {
        Ok(t) => t,
        Err(e) => {
            let _ = fs::remove_file(&key_tmp);
            return Err(e);
        }
    };
    let cleanup = || {
        let _ = fs::remove_file(&key_tmp);
        let _ = fs::remove_file(&pub_tmp);
    };
    // A hard link never replaces an existing file, so a key made concurrently is not clobbered.
    match fs::hard_link(&key_tmp, &key_path) {
        Ok(()) => {
            let _ = fs::remove_file(&key_tmp);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            cleanup();
            return Err(BundleError::KeyExists { path: key_path });
        }
        // Filesystems without hard links: check again and rename.
        Err(_) => {
            if fs::symlink_metadata(&key_path).is_ok() {
                cleanup();
                return Err(BundleError::KeyExists { path: key_path });
            }
            if let Err(e) = fs::rename(&key_tmp, &key_path) {
                cleanup();
                return Err(BundleError::io("write", key_path, e));
            }
        }
    }
    fs::rename(&pub_tmp, &pub_path).map_err(|e| {
        let _ = fs::remove_file(&pub_tmp);
        BundleError::io("write", &pub_path, e)
    })?;
    super::sync_dir(dir);
    Ok((key_path, pub_path))
}

/// The DER inside a PEM file with `label`, or what is wrong with the file.
fn read_pem(
    path: &Path,
    label: &str,
    kind: &'static str,
) -> Result<Zeroizing<Vec<u8>>, BundleError> {
    let bad = |detail: String| BundleError::BadKey {
        path: path.to_path_buf(),
        kind,
        detail,
    };
    let raw = Zeroizing::new(fs::read(path).map_err(|e| BundleError::io("read", path, e))?);
    if raw.is_empty() {
        return Err(bad("the file is empty".into()));
    }
    let text =
        std::str::from_utf8(&raw).map_err(|_| bad("the file is not text (expected PEM)".into()))?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let Some(found) = first
        .strip_prefix("-----BEGIN ")
        .and_then(|l| l.strip_suffix("-----"))
    else {
        return Err(bad(format!(
            "expected a first line '-----BEGIN {label}-----' (PEM)"
        )));
    };
    if found != label {
        let hint = match found {
            PRIVATE_LABEL => {
                format!("it holds a private key; pass the public key ({PUBLIC_KEY_FILE})")
            }
            PUBLIC_LABEL => {
                format!("it holds a public key; pass the private key ({SIGNING_KEY_FILE})")
            }
            other => format!("it holds a {other}, expected an Ed25519 {label}"),
        };
        return Err(bad(hint));
    }
    let mut b64 = Zeroizing::new(String::new());
    let end = format!("-----END {label}-----");
    let mut ended = false;
    for line in lines.by_ref() {
        if line == end {
            ended = true;
            break;
        }
        b64.push_str(line);
    }
    if !ended {
        return Err(bad(format!("no '{end}' line; the file is cut short")));
    }
    if lines.next().is_some() {
        return Err(bad(format!("unexpected text after '{end}'")));
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| bad(format!("the base64 body is damaged ({e})")))
}

/// The raw 32 key bytes after `prefix`, or an error saying the key is not Ed25519.
fn key_bytes(
    der: &[u8],
    prefix: &[u8],
    path: &Path,
    kind: &'static str,
) -> Result<[u8; 32], BundleError> {
    der.strip_prefix(prefix)
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| BundleError::BadKey {
            path: path.to_path_buf(),
            kind,
            detail: format!(
                "not an Ed25519 key in the expected encoding ({} bytes of DER; make keys with `hallmark keygen` or `openssl genpkey -algorithm ed25519`)",
                der.len()
            ),
        })
}

/// Reads a private key written by [`keygen`] (or by `openssl genpkey -algorithm ed25519`).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, BundleError> {
    let der = read_pem(path, PRIVATE_LABEL, SIGNING_KIND)?;
    let seed = Zeroizing::new(key_bytes(&der, &PKCS8_PREFIX, path, SIGNING_KIND)?);
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a public key written by [`keygen`] (or by `openssl pkey -pubout`).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, BundleError> {
    let der = read_pem(path, PUBLIC_LABEL, PUBLIC_KIND)?;
    let raw = key_bytes(&der, &SPKI_PREFIX, path, PUBLIC_KIND)?;
    let bad = |detail: &str| BundleError::BadKey {
        path: path.to_path_buf(),
        kind: PUBLIC_KIND,
        detail: detail.into(),
    };
    let key = VerifyingKey::from_bytes(&raw)
        .map_err(|_| bad("the 32 bytes are not a valid Ed25519 point"))?;
    if key.is_weak() {
        return Err(bad(
            "the key is a weak (small-order) Ed25519 point, which anyone can forge signatures for",
        ));
    }
    Ok(key)
}
