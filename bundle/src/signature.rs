//! `manifest.sig`: the Ed25519 signature over the exact bytes of `manifest.json`.
//!
//! Four lines of text, each ending in `\n`:
//!
//! ```text
//! hallmark-bundle-signature 1
//! algorithm: ed25519
//! key: SHA256:<64 hex digits: the signer's key fingerprint>
//! signature: <128 hex digits: the 64-byte signature>
//! ```
//!
//! Reading is strict: the file must be exactly what [`sign_manifest`] writes for its key and signature
//! (lowercase hex, no extra spaces or lines), so no byte of it can change unnoticed.

use super::{fingerprint, hex, BundleError};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::path::Path;

const HEADER: &str = "hallmark-bundle-signature 1";

fn render(key_fingerprint: &str, signature: &[u8]) -> String {
    format!(
        "{HEADER}\nalgorithm: ed25519\nkey: {key_fingerprint}\nsignature: {}\n",
        hex(signature)
    )
}

/// The contents of `manifest.sig` for `manifest_json` signed with `key`.
pub fn sign_manifest(manifest_json: &[u8], key: &SigningKey) -> Vec<u8> {
    let signature = key.sign(manifest_json);
    render(&fingerprint(&key.verifying_key()), &signature.to_bytes()).into_bytes()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
        })
        .collect()
}

/// Checks `sig_file` (the bytes of `manifest.sig`) against `manifest` and `public`.
pub(crate) fn verify(
    path: &Path,
    manifest: &[u8],
    sig_file: &[u8],
    public: &VerifyingKey,
) -> Result<(), BundleError> {
    let bad = |detail: &str| BundleError::BadSignatureFile {
        path: path.to_path_buf(),
        detail: detail.into(),
    };
    let text = std::str::from_utf8(sig_file).map_err(|_| bad("it is not text"))?;
    let mut lines = text.split('\n');
    if lines.next() != Some(HEADER) {
        return Err(bad(&format!("the first line is not {HEADER:?}")));
    }
    if lines.next() != Some("algorithm: ed25519") {
        return Err(bad("the second line is not \"algorithm: ed25519\""));
    }
    let signed_by = lines
        .next()
        .and_then(|l| l.strip_prefix("key: "))
        .ok_or_else(|| bad("the third line is not \"key: SHA256:<hex>\""))?;
    let sig_hex = lines
        .next()
        .and_then(|l| l.strip_prefix("signature: "))
        .ok_or_else(|| bad("the fourth line is not \"signature: <hex>\""))?;
    let sig_bytes = unhex(sig_hex)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or_else(|| bad("the signature is not 128 hex digits"))?;
    if render(signed_by, &sig_bytes).as_bytes() != sig_file {
        return Err(bad(
            "it is not in the exact form hallmark writes (case, spacing or extra lines differ)",
        ));
    }
    let expected = fingerprint(public);
    if signed_by != expected {
        return Err(BundleError::WrongKey {
            path: path.to_path_buf(),
            signed_by: signed_by.into(),
            expected,
        });
    }
    public
        .verify_strict(manifest, &Signature::from_bytes(&sig_bytes))
        .map_err(|_| BundleError::BadSignature {
            path: path.to_path_buf(),
        })
}
