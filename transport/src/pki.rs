//! The private certificate authority of a hallmark deployment.
//!
//! One CA per deployment signs the coordinator's server certificate and one client certificate per
//! probe. A probe's node id travels in its certificate twice: as the subject common name and as a
//! URI subject alternative name `urn:hallmark:node:<id>`; [`node_id_from_cert`] reads it back (the
//! URI first), so the coordinator learns who connected from the TLS handshake alone.
//!
//! The file helpers back `hallmark certs init --out DIR [--san NAME]...` ([`init_dir`]) and
//! `hallmark certs issue --ca DIR --node NODE --out DIR2` ([`issue_node_files`]). Private keys are
//! created with mode 0600 and every file is written to a temporary name, synced and renamed, so a
//! crash never leaves a half-written key behind. An existing `ca-key.pem` is never overwritten:
//! replacing a CA would orphan every node certificate it issued.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hallmark_protocol::{NodeId, NodeIdError};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

/// Subject alternative names of the coordinator certificate when `--san` is not given.
pub const DEFAULT_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Prefix of the URI subject alternative name that carries a node id.
pub const NODE_URI_PREFIX: &str = "urn:hallmark:node:";

/// Common name of the coordinator certificate.
pub const COORDINATOR_CN: &str = "hallmark coordinator";

/// The CA certificate written by [`init_dir`].
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA private key written by [`init_dir`] (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The coordinator certificate written by [`init_dir`].
pub const COORDINATOR_CERT_FILE: &str = "coordinator.pem";
/// The coordinator private key written by [`init_dir`] (mode 0600).
pub const COORDINATOR_KEY_FILE: &str = "coordinator-key.pem";

/// How long a new CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long a new leaf certificate is valid (clamped to the CA's own expiry).
const LEAF_VALIDITY: Duration = Duration::days(5 * 365);
/// Certificates start one day in the past so clocks that lag a little still accept them.
const BACKDATE: Duration = Duration::days(1);

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("could not generate {what}: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error(
        "subject alternative name {san:?} is neither an IP address nor a valid DNS name ({reason}); \
         pass --san with a host name such as coordinator.example or an address such as 10.0.0.5"
    )]
    InvalidSan { san: String, reason: String },
    #[error("{file} does not exist; create the CA with `hallmark certs init --out DIR` or point --ca at the directory that holds it")]
    Missing { file: String },
    #[error("cannot read {file}: {source}; check the path and its permissions")]
    Read { file: String, source: io::Error },
    #[error("cannot write {file}: {source}; check that the directory is writable and the disk is not full")]
    Write { file: String, source: io::Error },
    #[error("{file} holds no usable certificate ({detail}); it must contain a PEM block `-----BEGIN CERTIFICATE-----`, as written by `hallmark certs init`")]
    BadCertificatePem { file: String, detail: String },
    #[error("{file} holds no usable private key ({detail}); it must contain a PEM block `-----BEGIN PRIVATE KEY-----`, as written by `hallmark certs init`")]
    BadKeyPem { file: String, detail: String },
    #[error("{file} is not a CA certificate ({detail}); pass the ca.pem written by `hallmark certs init`")]
    NotACa { file: String, detail: String },
    #[error("the private key in {key_file} does not belong to the certificate in {cert_file}; keep ca.pem and ca-key.pem from the same `hallmark certs init`")]
    KeyMismatch { cert_file: String, key_file: String },
    #[error("the CA certificate expired on {not_after}; create a new CA with `hallmark certs init` and reissue every certificate")]
    CaExpired { not_after: OffsetDateTime },
    #[error("{file} already exists; refusing to overwrite a CA key because that would orphan every certificate it issued; remove it or choose another --out")]
    CaKeyExists { file: String },
    #[error("cannot parse the certificate: {detail}; it must be a DER X.509 certificate issued with `hallmark certs issue`")]
    BadCertificate { detail: String },
    #[error("certificate carries no hallmark node id; issue it with `hallmark certs issue`")]
    NoNodeId,
    #[error("certificate carries node id {value:?}, which is not valid ({source}); reissue it with `hallmark certs issue`")]
    BadNodeId { value: String, source: NodeIdError },
}

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate, PEM encoded.
    pub cert_pem: String,
    /// The private key, PEM encoded (PKCS#8). Keep it secret.
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// A certificate authority able to issue coordinator and node certificates. Its `Debug` output
/// elides the private key.
#[derive(Debug)]
pub struct Ca {
    cert_pem: String,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Generates a fresh self-signed CA with a unique common name (`hallmark CA <16 hex>`), valid for
    /// ten years from yesterday, allowed to sign leaf certificates only (path length 0).
    pub fn generate() -> Result<Ca, PkiError> {
        let key = KeyPair::generate().map_err(generate_err("the CA key pair"))?;
        // The public key is random, so its first bytes make the name unique; two CAs with one name
        // confuse certificate verification (BadSignature instead of UnknownIssuer).
        let raw = key.der_bytes();
        let tag = hex(raw.get(1..9).unwrap_or(raw));
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("hallmark CA {tag}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "hallmark");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let not_after = params.not_after;
        let cert = params
            .self_signed(&key)
            .map_err(generate_err("the CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            not_after,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its PEM certificate and PEM private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        Self::from_pem_named(cert_pem, key_pem, "the CA certificate", "the CA key")
    }

    /// Loads a CA from `dir/ca.pem` and `dir/ca-key.pem`.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = read_text(&cert_path)?;
        let key_pem = read_text(&key_path)?;
        Self::from_pem_named(
            &cert_pem,
            &key_pem,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )
    }

    fn from_pem_named(
        cert_pem: &str,
        key_pem: &str,
        cert_file: &str,
        key_file: &str,
    ) -> Result<Ca, PkiError> {
        let bad_cert = |detail: String| PkiError::BadCertificatePem {
            file: cert_file.to_owned(),
            detail,
        };
        let der = match CertificateDer::pem_slice_iter(cert_pem.as_bytes()).next() {
            Some(Ok(der)) => der,
            Some(Err(e)) => return Err(bad_cert(format!("invalid PEM: {e}"))),
            None => return Err(bad_cert("no certificate block found".into())),
        };
        let (_, x509) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| bad_cert(format!("not an X.509 certificate: {e}")))?;
        if !x509.is_ca() {
            return Err(PkiError::NotACa {
                file: cert_file.to_owned(),
                detail: "its basic constraints do not allow signing certificates".into(),
            });
        }
        let not_after = x509.validity().not_after.to_datetime();

        let bad_key = |detail: String| PkiError::BadKeyPem {
            file: key_file.to_owned(),
            detail,
        };
        let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                bad_key("no private key block found".into())
            }
            e => bad_key(format!("invalid PEM: {e}")),
        })?;
        let key = KeyPair::try_from(&key_der)
            .map_err(|e| bad_key(format!("unsupported or corrupt key: {e}")))?;
        if key.subject_public_key_info() != x509.public_key().raw {
            return Err(PkiError::KeyMismatch {
                cert_file: cert_file.to_owned(),
                key_file: key_file.to_owned(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| PkiError::NotACa {
            file: cert_file.to_owned(),
            detail: format!("cannot use it as an issuer: {e}"),
        })?;
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            not_after,
            issuer,
        })
    }

    /// The CA certificate, PEM encoded (the file probes and the coordinator trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM encoded (PKCS#8). Keep it secret.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues the coordinator's server certificate for `sans`: entries that parse as an IP address
    /// become IP SANs, the rest DNS SANs (validated). An empty list means [`DEFAULT_SANS`].
    pub fn issue_coordinator(&self, sans: &[String]) -> Result<CertifiedKey, PkiError> {
        let mut names = Vec::new();
        let defaults: Vec<String>;
        let sans = if sans.is_empty() {
            defaults = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
            &defaults
        } else {
            sans
        };
        for san in sans {
            let parsed = parse_san(san)?;
            if !names.contains(&parsed) {
                names.push(parsed);
            }
        }
        let mut params = self.leaf_params(COORDINATOR_CN)?;
        params.subject_alt_names = names;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, "the coordinator certificate")
    }

    /// Issues a client certificate for `node`: the node id is the subject common name and the URI
    /// SAN `urn:hallmark:node:<id>`.
    pub fn issue_node(&self, node: &NodeId) -> Result<CertifiedKey, PkiError> {
        let uri = format!("{NODE_URI_PREFIX}{}", node.as_str());
        let uri = uri
            .try_into()
            .map_err(generate_err(format!("the URI name of node {node}")))?;
        let mut params = self.leaf_params(node.as_str())?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, &format!("the certificate of node {node}"))
    }

    fn leaf_params(&self, common_name: &str) -> Result<CertificateParams, PkiError> {
        let now = OffsetDateTime::now_utc();
        if self.not_after <= now {
            return Err(PkiError::CaExpired {
                not_after: self.not_after,
            });
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = (now + LEAF_VALIDITY).min(self.not_after);
        Ok(params)
    }

    fn sign(&self, params: CertificateParams, what: &str) -> Result<CertifiedKey, PkiError> {
        let key = KeyPair::generate().map_err(generate_err(format!("the key pair of {what}")))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(generate_err(what))?;
        Ok(CertifiedKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn parse_san(san: &str) -> Result<SanType, PkiError> {
    let invalid = |reason: &str| PkiError::InvalidSan {
        san: san.to_owned(),
        reason: reason.to_owned(),
    };
    if san.trim().is_empty() {
        return Err(invalid("it is empty"));
    }
    if let Ok(ip) = san.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if san.contains('*') {
        return Err(invalid("wildcards are not supported"));
    }
    rustls_pki_types::DnsName::try_from(san).map_err(|e| invalid(&e.to_string()))?;
    let ia5 = san.try_into().map_err(|_| invalid("it is not ASCII"))?;
    Ok(SanType::DnsName(ia5))
}

fn generate_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError::Generate { what, source }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Reads the node id from a DER certificate: the `urn:hallmark:node:` URI SAN if present, otherwise
/// the subject common name, validated as a [`NodeId`].
pub fn node_id_from_cert(der: &[u8]) -> Result<NodeId, PkiError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::BadCertificate {
            detail: e.to_string(),
        })?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::BadCertificate {
            detail: format!("invalid subject alternative names: {e}"),
        })?;
    let from_uri = sans.and_then(|ext| {
        ext.value.general_names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(NODE_URI_PREFIX),
            _ => None,
        })
    });
    let value = match from_uri {
        Some(id) => id.to_owned(),
        None => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .ok_or(PkiError::NoNodeId)?,
    };
    NodeId::new(value.clone()).map_err(|source| PkiError::BadNodeId { value, source })
}

/// Creates `out` and writes a new CA plus the coordinator's certificate into it: `ca.pem`,
/// `ca-key.pem`, `coordinator.pem`, `coordinator-key.pem`. Empty `sans` means [`DEFAULT_SANS`].
/// Refuses to run when `out/ca-key.pem` already exists. Returns the written paths.
pub fn init_dir(out: &Path, sans: &[String]) -> Result<Vec<PathBuf>, PkiError> {
    let ca_key_path = out.join(CA_KEY_FILE);
    if ca_key_path.exists() {
        return Err(PkiError::CaKeyExists {
            file: ca_key_path.display().to_string(),
        });
    }
    // Validate the names and generate everything before touching the disk.
    let ca = Ca::generate()?;
    let coordinator = ca.issue_coordinator(sans)?;
    create_dir(out)?;
    let files = [
        (CA_CERT_FILE, ca.cert_pem().to_owned(), false),
        (CA_KEY_FILE, ca.key_pem(), true),
        (COORDINATOR_CERT_FILE, coordinator.cert_pem, false),
        (COORDINATOR_KEY_FILE, coordinator.key_pem, true),
    ];
    let mut written = Vec::with_capacity(files.len());
    for (name, contents, secret) in files {
        let path = out.join(name);
        write_atomic(&path, contents.as_bytes(), secret)?;
        written.push(path);
    }
    Ok(written)
}

/// Issues a certificate for `node` from the CA in `ca_dir` and writes `out/NODE.pem` and
/// `out/NODE-key.pem` (creating `out`). Returns the written paths.
pub fn issue_node_files(
    ca_dir: &Path,
    node: &NodeId,
    out: &Path,
) -> Result<Vec<PathBuf>, PkiError> {
    let ca = Ca::load(ca_dir)?;
    let issued = ca.issue_node(node)?;
    create_dir(out)?;
    let cert_path = out.join(format!("{}.pem", node.as_str()));
    let key_path = out.join(format!("{}-key.pem", node.as_str()));
    write_atomic(&key_path, issued.key_pem.as_bytes(), true)?;
    write_atomic(&cert_path, issued.cert_pem.as_bytes(), false)?;
    Ok(vec![cert_path, key_path])
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Write {
        file: dir.display().to_string(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| {
        let file = path.display().to_string();
        if source.kind() == io::ErrorKind::NotFound {
            PkiError::Missing { file }
        } else {
            PkiError::Read { file, source }
        }
    })
}

/// Writes `contents` to `path` through a new temporary file in the same directory (mode 0600 when
/// `secret`, else 0644), synced before it is renamed over `path`.
fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos();
        let name = format!("hallmark-pki-{tag}-{}-{nanos}", std::process::id());
        std::env::temp_dir().join(name)
    }

    fn id_of(cert_pem: &str) -> Result<NodeId, PkiError> {
        node_id_from_cert(&CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
    }

    fn assert_private(path: &Path) {
        #[cfg(unix)]
        assert_eq!(
            fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn ca_names_are_unique() {
        let cn = |ca: &Ca| {
            let der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap();
            let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
            let cn = x.subject().iter_common_name().next().unwrap();
            cn.as_str().unwrap().to_owned()
        };
        let (a, b) = (cn(&Ca::generate().unwrap()), cn(&Ca::generate().unwrap()));
        assert!(a.starts_with("hallmark CA ") && a.len() == "hallmark CA ".len() + 16);
        assert_ne!(a, b);
    }

    #[test]
    fn node_id_round_trips() {
        let ca = Ca::generate().unwrap();
        let node = NodeId::new("gpu-node_07.rack3").unwrap();
        assert_eq!(
            id_of(&ca.issue_node(&node).unwrap().cert_pem).unwrap(),
            node
        );
        // The coordinator certificate carries no node id (its CN is not a valid one).
        let coordinator = ca.issue_coordinator(&[]).unwrap();
        let err = id_of(&coordinator.cert_pem).unwrap_err();
        assert!(matches!(err, PkiError::BadNodeId { .. }), "{err}");
        let err = node_id_from_cert(b"not a certificate").unwrap_err();
        assert!(matches!(err, PkiError::BadCertificate { .. }), "{err}");
    }

    #[test]
    fn reloaded_ca_issues_and_checks_its_key() {
        let ca = Ca::generate().unwrap();
        let again = Ca::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        let node = NodeId::new("n1").unwrap();
        assert_eq!(
            id_of(&again.issue_node(&node).unwrap().cert_pem).unwrap(),
            node
        );
        let other = Ca::generate().unwrap();
        let err = Ca::from_pem(ca.cert_pem(), &other.key_pem()).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
        let leaf = ca.issue_node(&node).unwrap();
        let err = Ca::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
        assert!(matches!(err, PkiError::NotACa { .. }), "{err}");
    }

    #[test]
    fn sans_are_validated() {
        let ca = Ca::generate().unwrap();
        let ok = ["coord.example", "10.0.0.5", "fe80::1", "localhost"].map(String::from);
        ca.issue_coordinator(&ok).unwrap();
        for bad in ["", " ", "bad name", "*.example", "exa_mple..com", "-x."] {
            let err = ca.issue_coordinator(&[bad.to_string()]).unwrap_err();
            assert!(matches!(err, PkiError::InvalidSan { .. }), "{bad:?}: {err}");
            assert!(err.to_string().contains("--san"));
        }
    }

    #[test]
    fn init_dir_writes_four_files_and_refuses_a_second_init() {
        let dir = temp_dir("init").join("certs");
        let written = init_dir(&dir, &[]).unwrap();
        let names = [
            "ca.pem",
            "ca-key.pem",
            "coordinator.pem",
            "coordinator-key.pem",
        ];
        assert_eq!(written, names.map(|n| dir.join(n)));
        assert_private(&written[1]);
        assert_private(&written[3]);
        let before = fs::read(&written[1]).unwrap();
        let err = init_dir(&dir, &[]).unwrap_err();
        assert!(matches!(err, PkiError::CaKeyExists { .. }));
        assert!(err.to_string().contains("ca-key.pem"));
        assert_eq!(fs::read(&written[1]).unwrap(), before);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 4);
        Ca::load(&dir).unwrap();
        fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn issue_node_files_writes_cert_and_private_key() {
        let base = temp_dir("issue");
        init_dir(&base.join("ca"), &["coord.example".into()]).unwrap();
        let node = NodeId::new("probe-1").unwrap();
        let written = issue_node_files(&base.join("ca"), &node, &base.join("nodes")).unwrap();
        let expected = ["nodes/probe-1.pem", "nodes/probe-1-key.pem"].map(|n| base.join(n));
        assert_eq!(written, expected);
        assert_private(&written[1]);
        assert_eq!(
            id_of(&fs::read_to_string(&written[0]).unwrap()).unwrap(),
            node
        );
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn loading_corrupt_or_missing_files_names_the_file() {
        let dir = temp_dir("corrupt");
        let err = Ca::load(&dir).unwrap_err();
        assert!(matches!(err, PkiError::Missing { .. }) && err.to_string().contains("ca.pem"));

        init_dir(&dir, &[]).unwrap();
        fs::write(dir.join("ca.pem"), "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
        let err = Ca::load(&dir).unwrap_err();
        assert!(matches!(err, PkiError::BadCertificatePem { .. }), "{err}");
        let ca_pem = dir.join("ca.pem").display().to_string();
        assert!(err.to_string().contains(&ca_pem), "{err}");
        let err = issue_node_files(&dir, &NodeId::new("n").unwrap(), &dir).unwrap_err();
        assert!(err.to_string().contains(&ca_pem), "{err}");

        init_dir(&dir.join("fresh"), &[]).unwrap();
        fs::write(dir.join("fresh/ca-key.pem"), "garbage").unwrap();
        let err = Ca::load(&dir.join("fresh")).unwrap_err();
        assert!(matches!(err, PkiError::BadKeyPem { .. }), "{err}");
        assert!(err.to_string().contains("ca-key.pem"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }
}
