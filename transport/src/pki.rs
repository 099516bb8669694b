//! The private certificate authority of a hallmark deployment.
//!
//! One CA per deployment signs the coordinator's server certificate and one client certificate per
//! probe. A probe's node id travels in its certificate twice: as the subject common name and as a
//! URI subject alternative name `urn:hallmark:node:<id>`; [`node_id_from_cert`] reads it back (the
//! URI first), so the coordinator learns who connected from the TLS handshake alone.
//!
//! Lifetimes: a CA lives [`CA_DAYS`] days by default, a leaf certificate (coordinator or node)
//! [`LEAF_DAYS`] days at most, and never past its CA. The files on disk (the CA directory, the
//! index of issued certificates, the revocation list) are in [`crate::ca_dir`]; revocation lists
//! themselves in [`crate::crl`].

use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use hallmark_protocol::{NodeId, NodeIdError};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use crate::files::read_text;

/// Subject alternative names of the coordinator certificate when `--san` is not given.
pub const DEFAULT_SANS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Prefix of the URI subject alternative name that carries a node id.
pub const NODE_URI_PREFIX: &str = "urn:hallmark:node:";

/// Common name of the coordinator certificate.
pub const COORDINATOR_CN: &str = "hallmark coordinator";

/// The CA certificate written by [`crate::ca_dir::init_dir`].
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA private key written by [`crate::ca_dir::init_dir`] (mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The coordinator certificate written by [`crate::ca_dir::init_dir`].
pub const COORDINATOR_CERT_FILE: &str = "coordinator.pem";
/// The coordinator private key written by [`crate::ca_dir::init_dir`] (mode 0600).
pub const COORDINATOR_KEY_FILE: &str = "coordinator-key.pem";

/// Days a new CA is valid unless told otherwise (ten years).
pub const CA_DAYS: u32 = 3650;
/// The longest CA lifetime accepted, in days (twenty years).
pub const MAX_CA_DAYS: u32 = 7300;
/// Days a new leaf certificate (coordinator or node) is valid unless told otherwise, and the most
/// accepted: a stolen certificate stops working within a year even if nobody revokes it.
pub const LEAF_DAYS: u32 = 365;
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
    #[error("{flag} {days} is out of range for {what}: use 1 to {max} days (default {default})")]
    Lifetime {
        /// The command-line option that sets this lifetime.
        flag: &'static str,
        what: &'static str,
        days: u32,
        max: u32,
        default: u32,
    },
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
    cert_der: CertificateDer<'static>,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Generates a fresh self-signed CA with a unique common name (`hallmark CA <16 hex>`), valid for
    /// [`CA_DAYS`] days from yesterday, allowed to sign leaf certificates (path length 0) and
    /// revocation lists.
    pub fn generate() -> Result<Ca, PkiError> {
        Self::generate_for(CA_DAYS)
    }

    /// Like [`Ca::generate`], valid for `days` days (1 to [`MAX_CA_DAYS`]).
    pub fn generate_for(days: u32) -> Result<Ca, PkiError> {
        let validity = ca_validity(days)?;
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
        params.not_after = now + validity;
        let not_after = params.not_after;
        let cert = params
            .self_signed(&key)
            .map_err(generate_err("the CA certificate"))?;
        Ok(Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
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
            cert_der: der,
            not_after,
            issuer,
        })
    }

    /// The CA certificate, PEM encoded (the file probes and the coordinator trust).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER encoded (what revocation lists are checked against).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA private key, PEM encoded (PKCS#8). Keep it secret.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The signer of certificates and revocation lists.
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// Issues the coordinator's server certificate for `sans`, valid [`LEAF_DAYS`] days: entries
    /// that parse as an IP address become IP SANs, the rest DNS SANs (validated). An empty list
    /// means [`DEFAULT_SANS`].
    pub fn issue_coordinator(&self, sans: &[String]) -> Result<CertifiedKey, PkiError> {
        self.issue_coordinator_for(sans, LEAF_DAYS)
    }

    /// Like [`Ca::issue_coordinator`], valid for `days` days (1 to [`LEAF_DAYS`]).
    pub fn issue_coordinator_for(
        &self,
        sans: &[String],
        days: u32,
    ) -> Result<CertifiedKey, PkiError> {
        let validity = leaf_validity(days)?;
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
        let mut params = self.leaf_params(COORDINATOR_CN, validity)?;
        params.subject_alt_names = names;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, "the coordinator certificate")
    }

    /// Issues a client certificate for `node`, valid [`LEAF_DAYS`] days: the node id is the subject
    /// common name and the URI SAN `urn:hallmark:node:<id>`.
    pub fn issue_node(&self, node: &NodeId) -> Result<CertifiedKey, PkiError> {
        self.issue_node_for(node, LEAF_DAYS)
    }

    /// Like [`Ca::issue_node`], valid for `days` days (1 to [`LEAF_DAYS`]).
    pub fn issue_node_for(&self, node: &NodeId, days: u32) -> Result<CertifiedKey, PkiError> {
        let validity = leaf_validity(days)?;
        let uri = format!("{NODE_URI_PREFIX}{}", node.as_str());
        let uri = uri
            .try_into()
            .map_err(generate_err(format!("the URI name of node {node}")))?;
        let mut params = self.leaf_params(node.as_str(), validity)?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, &format!("the certificate of node {node}"))
    }

    fn leaf_params(
        &self,
        common_name: &str,
        validity: Duration,
    ) -> Result<CertificateParams, PkiError> {
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
        params.not_after = (now + validity).min(self.not_after);
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

/// Checks a CA's lifetime in days (1 to [`MAX_CA_DAYS`]).
pub(crate) fn ca_validity(days: u32) -> Result<Duration, PkiError> {
    if !(1..=MAX_CA_DAYS).contains(&days) {
        return Err(PkiError::Lifetime {
            flag: "--ca-days",
            what: "a CA",
            days,
            max: MAX_CA_DAYS,
            default: CA_DAYS,
        });
    }
    Ok(Duration::days(days.into()))
}

/// Checks a leaf certificate's lifetime in days (1 to [`LEAF_DAYS`]).
pub fn leaf_validity(days: u32) -> Result<Duration, PkiError> {
    if !(1..=LEAF_DAYS).contains(&days) {
        return Err(PkiError::Lifetime {
            flag: "--days",
            what: "a coordinator or node certificate",
            days,
            max: LEAF_DAYS,
            default: LEAF_DAYS,
        });
    }
    Ok(Duration::days(days.into()))
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

#[cfg(test)]
pub(crate) mod tests {
    //! Also the helpers the crate's other tests share.
    use super::*;

    /// A fresh path under the temporary directory (not created), unique to this test run.
    pub(crate) fn temp_dir(tag: &str) -> std::path::PathBuf {
        let nanos = std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos();
        let name = format!("hallmark-transport-{tag}-{}-{nanos}", std::process::id());
        std::env::temp_dir().join(name)
    }

    /// The DER of the first certificate in `pem`.
    pub(crate) fn der_of(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn id_of(cert_pem: &str) -> Result<NodeId, PkiError> {
        node_id_from_cert(&der_of(cert_pem))
    }

    #[test]
    fn ca_names_are_unique() {
        let cn = |ca: &Ca| {
            let der = der_of(ca.cert_pem());
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

    /// Days between a certificate's notBefore and notAfter.
    pub(crate) fn lifetime_days(cert_pem: &str) -> i64 {
        let der = der_of(cert_pem);
        let (_, x) = x509_parser::parse_x509_certificate(&der).unwrap();
        let v = x.validity();
        (v.not_after.to_datetime() - v.not_before.to_datetime()).whole_days()
    }

    #[test]
    fn lifetimes_default_to_a_year_for_leaves_and_ten_for_the_ca() {
        let ca = Ca::generate().unwrap();
        // One day of backdating on top of the lifetime.
        assert_eq!(lifetime_days(ca.cert_pem()), 3650 + 1);
        let node = NodeId::new("n1").unwrap();
        assert_eq!(
            lifetime_days(&ca.issue_node(&node).unwrap().cert_pem),
            365 + 1
        );
        assert_eq!(
            lifetime_days(&ca.issue_coordinator(&[]).unwrap().cert_pem),
            365 + 1
        );
        assert_eq!(
            lifetime_days(&ca.issue_node_for(&node, 30).unwrap().cert_pem),
            30 + 1
        );
        for days in [0, 366, 5 * 365] {
            let err = ca.issue_node_for(&node, days).unwrap_err();
            assert!(matches!(err, PkiError::Lifetime { .. }), "{err}");
            assert!(err.to_string().contains("1 to 365 days"), "{err}");
        }
        let err = Ca::generate_for(MAX_CA_DAYS + 1).unwrap_err();
        assert!(err.to_string().contains("1 to 7300 days"), "{err}");
        // The CA's lifetime is set by --ca-days, not --days.
        assert!(err.to_string().starts_with("--ca-days 7301 "), "{err}");
        // A leaf never outlives its CA.
        let short = Ca::generate_for(10).unwrap();
        assert_eq!(
            lifetime_days(&short.issue_node(&node).unwrap().cert_pem),
            10 + 1
        );
    }
}
