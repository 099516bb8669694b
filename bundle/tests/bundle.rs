//! Signed bundles: round trip, tampering of every kind (each byte, missing/extra/renamed/reordered
//! members, truncation, another key, a forged signature, a newer format), key files and their errors,
//! and interoperability with `tar` and `openssl` where those tools are installed.

use hallmark_bundle::{
    self as bundle, fingerprint, keygen, load_public_key, load_signing_key, open_bundle,
    open_bundle_bytes, read_archive, read_bundle_file, sign_manifest, verify_bundle, write_archive,
    write_bundle, BundleError, BundleFile, SigningKey, VerifyingKey, MANIFEST_NAME, SIGNATURE_NAME,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

#[path = "bundle/keys.rs"]
mod key_files;
#[path = "../../tests/common/prereq.rs"]
mod prereq;

use prereq::{missing, tool};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hallmark-bundle-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keys(dir: &TempDir, sub: &str) -> (SigningKey, VerifyingKey) {
    let (k, p) = keygen(&dir.join(sub)).unwrap();
    (load_signing_key(&k).unwrap(), load_public_key(&p).unwrap())
}

fn run_files() -> Vec<BundleFile> {
    vec![
        BundleFile::new(
            "run.json",
            br#"{"run":"20261129T021500Z-abc123","plan":"hall-a"}"#.to_vec(),
        ),
        BundleFile::new("summary.json", br#"{"phases":2,"status":"pass"}"#.to_vec()),
        BundleFile::new("verdicts.json", b"[]".to_vec()),
        BundleFile::new("samples/telemetry.csv", b"t,node,w\n0,r1n1,700\n".to_vec()),
        BundleFile::new("report.txt", b"All checks passed.\n".to_vec()),
    ]
}

/// The byte range of each member's content: (name, start, end).
fn layout(path: &Path) -> Vec<(String, usize, usize)> {
    let mut at = 0;
    let mut out = Vec::new();
    for m in read_archive(path).unwrap() {
        let start = at + 512;
        out.push((m.name, start, start + m.bytes.len()));
        at = start + m.bytes.len().div_ceil(512) * 512;
    }
    out
}

#[test]
fn round_trip() {
    let dir = TempDir::new("round");
    let (key, public) = keys(&dir, "keys");
    let out = dir.join("run.hallmark");
    let files = run_files();
    let written = write_bundle(&out, "20261129T021500Z-abc123", &files, &key).unwrap();
    assert_eq!(written.format_version, bundle::FORMAT_VERSION);
    assert_eq!(written.run_id, "20261129T021500Z-abc123");
    assert_eq!(written.files.len(), files.len());
    assert_eq!(
        written.files[2].sha256,
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
    );
    assert_eq!(verify_bundle(&out, &public).unwrap(), written);
    let opened = open_bundle(&out, &public).unwrap();
    assert_eq!(opened.files, files);
    for f in &files {
        assert_eq!(read_bundle_file(&out, &public, &f.name).unwrap(), f.bytes);
        assert_eq!(opened.file(&f.name), Some(f.bytes.as_slice()));
    }
    let err = read_bundle_file(&out, &public, "nope.txt").unwrap_err();
    assert!(matches!(err, BundleError::NotInBundle { .. }), "{err}");
    assert!(err.to_string().contains("report.txt"), "{err}");
    // An empty bundle (no files) is valid too, and writing again replaces the file atomically.
    write_bundle(&out, "r", &[], &key).unwrap();
    assert!(verify_bundle(&out, &public).unwrap().files.is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "temporary files left behind: {leftovers:?}"
    );
}

/// Flips one bit pattern (rotating 0x01, 0x20, 0x80) of the byte at each of `positions` and checks
/// that verification fails, and with the specific error where the byte is in a member's content.
/// In memory: the verifier reads the file into the same function.
fn assert_every_flip_fails(
    path: &Path,
    public: &VerifyingKey,
    positions: impl Iterator<Item = usize>,
) -> usize {
    let original = std::fs::read(path).unwrap();
    let members = layout(path);
    let mut n = 0;
    for (k, i) in positions.enumerate() {
        let mask = [0x01u8, 0x20, 0x80][k % 3];
        let mut bytes = original.clone();
        bytes[i] ^= mask;
        let Err(err) = open_bundle_bytes(path, &bytes, public) else {
            panic!("flipping byte {i} (mask {mask:#04x}) went unnoticed");
        };
        n += 1;
        let Some((name, _, _)) = members.iter().find(|(_, s, e)| (*s..*e).contains(&i)) else {
            continue; // a header, padding or the end marker: any error will do
        };
        match name.as_str() {
            MANIFEST_NAME => assert!(
                matches!(err, BundleError::BadSignature { .. }),
                "byte {i}: {err}"
            ),
            SIGNATURE_NAME => assert!(
                matches!(
                    err,
                    BundleError::BadSignature { .. }
                        | BundleError::BadSignatureFile { .. }
                        | BundleError::WrongKey { .. }
                ),
                "byte {i}: {err}"
            ),
            file => assert!(
                matches!(&err, BundleError::HashMismatch { name, .. } if name == file),
                "byte {i} in {file}: {err}"
            ),
        }
    }
    n
}

#[test]
fn flipping_any_byte_of_a_small_bundle_fails() {
    let dir = TempDir::new("flip");
    let (key, public) = keys(&dir, "keys");
    let out = dir.join("small.hallmark");
    let files = [
        BundleFile::new("run.json", b"{}".to_vec()),
        BundleFile::new("samples/a.csv", b"t,w\n0,700\n".to_vec()),
    ];
    write_bundle(&out, "run-1", &files, &key).unwrap();
    let len = std::fs::metadata(&out).unwrap().len() as usize;
    assert_eq!(assert_every_flip_fails(&out, &public, 0..len), len);
    verify_bundle(&out, &public).unwrap();
}

#[test]
fn flipping_sampled_bytes_of_a_bigger_bundle_fails() {
    let dir = TempDir::new("flipbig");
    let (key, public) = keys(&dir, "keys");
    let out = dir.join("big.hallmark");
    let mut files = run_files();
    files.truncate(2);
    // Several blocks, and a size that leaves padding.
    files.push(BundleFile::new(
        "samples/big.bin",
        (0..3000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    ));
    write_bundle(&out, "run-2", &files, &key).unwrap();
    let len = std::fs::metadata(&out).unwrap().len() as usize;
    let members = layout(&out);
    assert_eq!(members.len(), 5);
    // Every byte of manifest.json, manifest.sig and their headers; every 7th byte after them, and the last.
    let signed_end = members[1].2;
    let positions = (0..signed_end)
        .chain((signed_end..len).step_by(7))
        .chain([len - 1]);
    assert!(
        assert_every_flip_fails(&out, &public, positions) > signed_end + (len - signed_end) / 7
    );
}

#[test]
fn truncation_at_any_length_fails() {
    let dir = TempDir::new("trunc");
    let (key, public) = keys(&dir, "keys");
    let out = dir.join("t.hallmark");
    write_bundle(&out, "run-1", &run_files(), &key).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    for len in 0..bytes.len() {
        let err = open_bundle_bytes(&out, &bytes[..len], &public).unwrap_err();
        assert!(
            matches!(err, BundleError::Truncated { .. }),
            "cut at {len}: {err}"
        );
    }
    // On disk too, and trailing data.
    let cut = dir.join("cut.hallmark");
    std::fs::write(&cut, &bytes[..bytes.len() - 1]).unwrap();
    let err = verify_bundle(&cut, &public).unwrap_err();
    assert!(
        matches!(err, BundleError::Truncated { .. }) && err.to_string().contains("cut.hallmark"),
        "{err}"
    );
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 512]);
    std::fs::write(&cut, &longer).unwrap();
    assert!(matches!(
        verify_bundle(&cut, &public),
        Err(BundleError::Malformed { .. })
    ));
}

#[test]
fn another_key_fails() {
    let dir = TempDir::new("otherkey");
    let (key, public) = keys(&dir, "a");
    let (other_key, other_public) = keys(&dir, "b");
    let out = dir.join("x.hallmark");
    write_bundle(&out, "run-1", &run_files(), &key).unwrap();
    let err = verify_bundle(&out, &other_public).unwrap_err();
    match &err {
        BundleError::WrongKey {
            signed_by,
            expected,
            ..
        } => {
            assert_eq!(signed_by, &fingerprint(&public));
            assert_eq!(expected, &fingerprint(&other_public));
        }
        e => panic!("expected WrongKey, got {e}"),
    }
    // A manifest signed by another key but claiming the right key's fingerprint: a forgery.
    let mut members = read_archive(&out).unwrap();
    let forged = String::from_utf8(sign_manifest(&members[0].bytes, &other_key))
        .unwrap()
        .replace(&fingerprint(&other_public), &fingerprint(&public));
    members[1].bytes = forged.into_bytes();
    write_archive(&out, &members).unwrap();
    let err = verify_bundle(&out, &public).unwrap_err();
    assert!(matches!(err, BundleError::BadSignature { .. }), "{err}");
}

/// Rewrites the archive at `path` with `edit` applied to its members, keeping the signed manifest.
fn edit_members(path: &Path, edit: impl FnOnce(&mut Vec<BundleFile>)) {
    let mut members = read_archive(path).unwrap();
    edit(&mut members);
    write_archive(path, &members).unwrap();
}

#[test]
fn missing_extra_renamed_reordered_members_fail() {
    let dir = TempDir::new("members");
    let (key, public) = keys(&dir, "keys");
    let out = dir.join("m.hallmark");
    let reset = || write_bundle(&out, "run-1", &run_files(), &key).unwrap();
    let check = |want: &str, err: BundleError| {
        assert!(
            format!("{err:?}").starts_with(want),
            "expected {want}: {err}"
        );
        assert!(
            err.to_string().contains(out.to_str().unwrap()),
            "names the bundle: {err}"
        );
    };

    reset();
    edit_members(&out, |m| {
        m.remove(5);
    });
    let err = verify_bundle(&out, &public).unwrap_err();
    assert!(err.to_string().contains("samples/telemetry.csv"), "{err}");
    check("MissingFile", err);

    reset();
    edit_members(&out, |m| {
        m.push(BundleFile::new("extra.txt", b"x".to_vec()))
    });
    check("UnexpectedFile", verify_bundle(&out, &public).unwrap_err());

    reset();
    edit_members(&out, |m| m[3].name = "verdict.json".into());
    check("UnexpectedFile", verify_bundle(&out, &public).unwrap_err());

    reset();
    edit_members(&out, |m| m.swap(2, 3));
    check("OutOfOrder", verify_bundle(&out, &public).unwrap_err());

    reset();
    edit_members(&out, |m| m.insert(3, m[2].clone()));
    check("DuplicateFile", verify_bundle(&out, &public).unwrap_err());

    reset();
    edit_members(&out, |m| m[6].bytes.push(b'\n'));
    check("SizeMismatch", verify_bundle(&out, &public).unwrap_err());

    reset();
    edit_members(&out, |m| m[6].bytes[0] = b'a');
    check("HashMismatch", verify_bundle(&out, &public).unwrap_err());

    reset();
    edit_members(&out, |m| {
        m.remove(1);
    });
    check("Malformed", verify_bundle(&out, &public).unwrap_err());

    reset();
    edit_members(&out, |m| m.swap(0, 1));
    check("Malformed", verify_bundle(&out, &public).unwrap_err());

    write_archive(&out, &[]).unwrap();
    check("Malformed", verify_bundle(&out, &public).unwrap_err());
    std::fs::write(&out, b"not a tar file at all").unwrap();
    check("Truncated", verify_bundle(&out, &public).unwrap_err());
}

#[test]
fn unsupported_version_fails() {
    let dir = TempDir::new("version");
    let (key, public) = keys(&dir, "keys");
    let out = dir.join("v.hallmark");
    write_bundle(&out, "run-1", &run_files(), &key).unwrap();
    edit_members(&out, |m| {
        let text = String::from_utf8(m[0].bytes.clone()).unwrap();
        let newer = text.replace("\"format_version\": 1", "\"format_version\": 2");
        assert_ne!(text, newer);
        m[0].bytes = newer.into_bytes();
        m[1].bytes = sign_manifest(&m[0].bytes, &key); // validly signed, by the right key
    });
    match verify_bundle(&out, &public).unwrap_err() {
        BundleError::UnsupportedVersion {
            found, supported, ..
        } => assert_eq!((found.as_str(), supported), ("2", 1)),
        e => panic!("expected UnsupportedVersion, got {e}"),
    }
}

#[test]
fn bad_member_names_are_refused() {
    let dir = TempDir::new("names");
    let (key, _) = keys(&dir, "keys");
    let out = dir.join("n.hallmark");
    let long = "x".repeat(101);
    for bad in [
        "",
        "/etc/passwd",
        "../up",
        "a/../b",
        "a//b",
        "./a",
        "a/",
        "manifest.json",
        "manifest.sig",
        "a\\b",
        "sp ace",
        "tab\t",
        "é",
        &long,
    ] {
        let err =
            write_bundle(&out, "r", &[BundleFile::new(bad, b"x".to_vec())], &key).unwrap_err();
        assert!(matches!(err, BundleError::BadName { .. }), "{bad:?}: {err}");
    }
    for pair in [["a", "a"], ["a", "a/b"], ["x/y/z", "x/y"]] {
        let files: Vec<_> = pair
            .iter()
            .map(|n| BundleFile::new(*n, b"x".to_vec()))
            .collect();
        let err = write_bundle(&out, "r", &files, &key).unwrap_err();
        assert!(
            matches!(err, BundleError::BadName { .. }),
            "{pair:?}: {err}"
        );
    }
    assert!(!out.exists(), "nothing written for refused names");
    let err =
        write_bundle(&dir.join("no/such/dir/b.hallmark"), "r", &run_files(), &key).unwrap_err();
    assert!(matches!(err, BundleError::Io { .. }), "{err}");
}

#[test]
fn standard_tar_extracts_and_sha256_matches() {
    if !tool("tar", "--version") {
        missing("no tar (Debian package tar)");
        return;
    }
    let dir = TempDir::new("tar");
    let (key, _) = keys(&dir, "keys");
    let out = dir.join("r.hallmark");
    let manifest = write_bundle(&out, "run-1", &run_files(), &key).unwrap();
    let x = dir.join("x");
    std::fs::create_dir(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&out)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    for f in run_files() {
        assert_eq!(
            std::fs::read(x.join(&f.name)).unwrap(),
            f.bytes,
            "{}",
            f.name
        );
    }
    assert!(x.join(MANIFEST_NAME).exists() && x.join(SIGNATURE_NAME).exists());
    let listed: Vec<String> = manifest
        .files
        .iter()
        .map(|f| format!("{}  {}", f.sha256, f.name))
        .collect();
    if tool("sha256sum", "--version") {
        std::fs::write(x.join("SHA256SUMS"), listed.join("\n") + "\n").unwrap();
        let st = Command::new("sha256sum")
            .args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(&x)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

#[test]
fn a_simulated_runs_manifest_says_so_and_a_real_ones_has_no_such_field() {
    let dir = TempDir::new("simulated");
    let (key, public) = keys(&dir, "k");
    let banner = "SIMULATED: 8 of 8 devices on 4 of 4 nodes are simulated".to_string();
    let out = dir.join("sim.bundle");
    bundle::write_bundle_with(&out, "run-1", Some(banner.clone()), &run_files(), &key).unwrap();
    let m = verify_bundle(&out, &public).unwrap();
    assert_eq!(m.simulated.as_deref(), Some(banner.as_str()));
    let manifest = read_archive(&out).unwrap().remove(0);
    assert_eq!(manifest.name, MANIFEST_NAME);
    let manifest = manifest.bytes;
    assert!(String::from_utf8_lossy(&manifest).contains(&format!("\"simulated\": \"{banner}\"")));

    let out = dir.join("real.bundle");
    write_bundle(&out, "run-1", &run_files(), &key).unwrap();
    assert_eq!(verify_bundle(&out, &public).unwrap().simulated, None);
    let manifest = read_archive(&out).unwrap().remove(0);
    assert_eq!(manifest.name, MANIFEST_NAME);
    let manifest = manifest.bytes;
    assert!(!String::from_utf8_lossy(&manifest).contains("simulated"));
}

#[test]
fn the_staging_directory_is_private_fresh_and_unpredictable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("staging");
    // A predictable name pre-created by someone else (here a link to a directory they control)
    // is never what the staging directory is.
    let theirs = dir.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let predictable = dir
        .0
        .join(format!("hallmark-bundle-{}", std::process::id()));
    std::os::unix::fs::symlink(&theirs, &predictable).unwrap();

    let a = bundle::StagingDir::new(&dir.0, "hallmark-bundle").unwrap();
    let b = bundle::StagingDir::new(&dir.0, "hallmark-bundle").unwrap();
    for s in [&a, &b] {
        let meta = std::fs::symlink_metadata(s.path()).unwrap();
        assert!(meta.is_dir() && !meta.file_type().is_symlink());
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o700,
            "{}",
            s.path().display()
        );
        assert_ne!(s.path(), predictable);
        let name = s.path().file_name().unwrap().to_str().unwrap();
        // 128 random bits after the prefix.
        let suffix = name.strip_prefix("hallmark-bundle-").unwrap();
        assert_eq!(suffix.len(), 32, "{name}");
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()));
    }
    assert_ne!(a.path(), b.path());
    std::fs::write(a.path().join("index.html"), "x").unwrap();
    let path = a.path().to_path_buf();
    drop(a);
    assert!(!path.exists(), "removed when dropped");
    assert_eq!(
        std::fs::read_dir(&theirs).unwrap().count(),
        0,
        "nothing written there"
    );
}
