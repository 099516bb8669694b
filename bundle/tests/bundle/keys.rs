//! Key files: `keygen` modes and refusal to overwrite, clear errors for malformed files, and
//! interoperability with OpenSSL's Ed25519 PEM files (when `openssl` is installed).

use super::prereq::{missing, tool};
use super::{run_files, TempDir};
use hallmark_bundle::{
    keygen, load_public_key, load_signing_key, read_archive, verify_bundle, write_bundle,
    BundleError,
};
use std::process::Command;

#[cfg(unix)]
#[test]
fn keygen_modes_and_no_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("keygen");
    let kdir = dir.join("nested/keys");
    let (k, p) = keygen(&kdir).unwrap();
    assert_eq!(
        (k.file_name().unwrap(), p.file_name().unwrap()),
        ("signing.key".as_ref(), "signing.pub".as_ref())
    );
    assert_eq!(
        std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&kdir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let text = std::fs::read_to_string(&k).unwrap();
    assert!(
        text.starts_with("-----BEGIN PRIVATE KEY-----\n")
            && text.ends_with("-----END PRIVATE KEY-----\n")
    );
    let public = std::fs::read_to_string(&p).unwrap();
    assert!(
        public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{public}"
    );
    assert_eq!(
        load_signing_key(&k).unwrap().verifying_key(),
        load_public_key(&p).unwrap()
    );

    let err = keygen(&kdir).unwrap_err();
    assert!(matches!(err, BundleError::KeyExists { .. }), "{err}");
    assert!(err.to_string().contains("signing.key"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&k).unwrap(),
        text,
        "the old key is untouched"
    );
    assert_eq!(
        std::fs::read_dir(&kdir).unwrap().count(),
        2,
        "no temporary files left"
    );
    let (k2, _) = keygen(&dir.join("other")).unwrap();
    assert_ne!(
        std::fs::read(k2).unwrap(),
        text.as_bytes(),
        "keys are random"
    );
}

#[test]
fn malformed_key_files_give_clear_errors() {
    let dir = TempDir::new("badkeys");
    let (k, p) = keygen(&dir.join("keys")).unwrap();
    let private = std::fs::read_to_string(&k).unwrap();
    let public = std::fs::read_to_string(&p).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "empty"),
        ("binary", vec![0xff, 0xfe, 0x00, 0x80], "not text"),
        ("garbage", b"hello world\n".to_vec(), "BEGIN PRIVATE KEY"),
        (
            "public-as-private",
            public.clone().into_bytes(),
            "holds a public key",
        ),
        (
            "rsa",
            b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".to_vec(),
            "RSA PRIVATE KEY",
        ),
        (
            "no-end",
            private
                .lines()
                .take(2)
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
            "cut short",
        ),
        (
            "bad-base64",
            private.replacen("MC4C", "M*4C", 1).into_bytes(),
            "base64",
        ),
        (
            "short",
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
                .to_vec(),
            "not an Ed25519 key",
        ),
        ("trailing", format!("{private}junk\n").into_bytes(), "after"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = load_signing_key(&path).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, BundleError::BadKey { .. }), "{name}: {text}");
        assert!(
            text.contains(path.to_str().unwrap()) && text.contains(want),
            "{name}: {text}"
        );
    }
    let path = dir.join("private-as-public");
    std::fs::write(&path, &private).unwrap();
    let err = load_public_key(&path).unwrap_err().to_string();
    assert!(
        err.contains("holds a private key") && err.contains("signing.pub"),
        "{err}"
    );
    let path = dir.join("bad-point");
    // 32 bytes that are not the encoding of a curve point (y = 2, which has no x).
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, 2,
    ];
    der.resize(44, 0);
    std::fs::write(&path, pem("PUBLIC KEY", &der)).unwrap();
    let err = load_public_key(&path).unwrap_err().to_string();
    assert!(
        err.contains("not a valid Ed25519 point") || err.contains("weak"),
        "{err}"
    );
    let err = load_public_key(&dir.join("missing.pub")).unwrap_err();
    assert!(
        matches!(err, BundleError::Io { .. }) && err.to_string().contains("missing.pub"),
        "{err}"
    );
}

/// A PEM file (tests only: the standard alphabet, one line).
fn pem(label: &str, der: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for c in der.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            b64.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
}

#[test]
fn openssl_interoperates() {
    if !tool("openssl", "version") {
        missing("no openssl (Debian package openssl)");
        return;
    }
    let dir = TempDir::new("openssl");
    // A key made by OpenSSL signs bundles that verify against the public key OpenSSL derives...
    let k = dir.join("ossl.key");
    let p = dir.join("ossl.pub");
    let ok = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(&dir.0)
            .output()
            .unwrap()
    };
    let gen = ok(&["genpkey", "-algorithm", "ed25519", "-out", "ossl.key"]);
    if !gen.status.success() {
        missing(&format!(
            "this openssl has no Ed25519: {}",
            String::from_utf8_lossy(&gen.stderr).trim()
        ));
        return;
    }
    assert!(
        ok(&["pkey", "-in", "ossl.key", "-pubout", "-out", "ossl.pub"])
            .status
            .success()
    );
    let key = load_signing_key(&k).unwrap();
    let public = load_public_key(&p).unwrap();
    let out = dir.join("b.hallmark");
    write_bundle(&out, "run-1", &run_files(), &key).unwrap();
    verify_bundle(&out, &public).unwrap();
    // ...and OpenSSL checks hallmark's signature by hand.
    let members = read_archive(&out).unwrap();
    std::fs::write(dir.join("manifest.json"), &members[0].bytes).unwrap();
    let sig = String::from_utf8(members[1].bytes.clone()).unwrap();
    let hex = sig
        .lines()
        .find_map(|l| l.strip_prefix("signature: "))
        .unwrap();
    let raw: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    std::fs::write(dir.join("sig.bin"), raw).unwrap();
    let v = ok(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "ossl.pub",
        "-rawin",
        "-in",
        "manifest.json",
        "-sigfile",
        "sig.bin",
    ]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    // hallmark's own public key file reads in OpenSSL too.
    let (_, hp) = keygen(&dir.join("hk")).unwrap();
    assert!(
        ok(&["pkey", "-pubin", "-in", hp.to_str().unwrap(), "-noout"])
            .status
            .success()
    );
}
