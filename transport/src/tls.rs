//! rustls and quinn configurations for mutual-TLS QUIC, and what a failed connection means.
//!
//! Both sides load an [`Identity`] (the CA to trust, their own certificate chain and private key).
//! [`server_config`] makes client certificates mandatory and [`client_config`] verifies the
//! coordinator against the same CA; both use the ring crypto provider explicitly (never the
//! process default, which panics when two providers are linked), TLS 1.3 only and ALPN
//! [`hallmark_protocol::ALPN`]. [`peer_node_id`] names the authenticated probe on the server.
//!
//! [`server_config_with_crl`] adds a revocation list that is re-read when its file changes
//! ([`crate::revocation`]) and, like [`server_config`], turns TLS session resumption off (no
//! session cache, no tickets): a resumed session skips the client-certificate check, so a
//! certificate revoked after its first connection could otherwise come back.
//!
//! In TLS 1.3 a client whose certificate the server rejects still completes its own handshake: the
//! rejection arrives afterwards, on first use, as the connection closing with a TLS alert.
//! [`classify_connection_error`] turns that and every other [`quinn::ConnectionError`] into a
//! [`ConnectFailure`] that says whether retrying can help.

use std::path::Path;
use std::sync::Arc;

use hallmark_protocol::{NodeId, ALPN};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use crate::options::TransportOptions;

use crate::crl::{CrlError, Serial};
use crate::pki::{self, PkiError};
use crate::revocation::RevocationCheck;

/// Why a TLS identity or configuration could not be built, or a peer could not be identified.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} file {file} does not exist; pass the file written by `hallmark certs init` or `hallmark certs issue`")]
    Missing { what: &'static str, file: String },
    #[error("cannot read {what} file {file}: {source}; check the path and its permissions")]
    Read {
        what: &'static str,
        file: String,
        source: std::io::Error,
    },
    #[error("{file} contains no {what} ({detail}); it must hold a PEM block `-----BEGIN CERTIFICATE-----`, as written by `hallmark certs`")]
    NoCertificate {
        what: &'static str,
        file: String,
        detail: String,
    },
    #[error("{file} contains no private key ({detail}); it must hold a PEM block `-----BEGIN PRIVATE KEY-----`, as written by `hallmark certs`")]
    NoPrivateKey { file: String, detail: String },
    #[error("{file} holds a CA certificate that cannot be trusted ({detail}); pass the ca.pem written by `hallmark certs init`")]
    BadCa { file: String, detail: String },
    #[error("the private key in {key_file} cannot be used with the certificate in {cert_file} ({detail}); pass the key issued together with that certificate")]
    KeyMismatch {
        cert_file: String,
        key_file: String,
        detail: String,
    },
    #[error("invalid transport options: {0}")]
    Options(String),
    #[error("cannot build the {what}: {detail}")]
    Config { what: &'static str, detail: String },
    #[error(
        "the peer presented no certificate; every probe needs one from `hallmark certs issue`"
    )]
    NoPeerCertificate,
    #[error("the peer's certificate does not identify a node: {0}")]
    PeerNodeId(#[from] PkiError),
    #[error("{0}")]
    Crl(#[from] CrlError),
}

/// The trusted CA plus this side's certificate chain and private key (elided from `Debug`).
#[derive(Debug)]
pub struct Identity {
    cas: Vec<CertificateDer<'static>>,
    roots: RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            cas: self.cas.clone(),
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Builds an identity from PEM texts: the CA certificate(s) to trust, this side's certificate
    /// (chain, leaf first) and its private key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Identity, TlsError> {
        let names = ["the CA PEM", "the certificate PEM", "the private key PEM"];
        Self::from_pem_named([ca_pem, cert_pem, key_pem], names)
    }

    /// Loads an identity from the CA certificate file, this side's certificate file and its key file.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let ca_pem = read("CA certificate", ca)?;
        let cert_pem = read("certificate", cert)?;
        let key_pem = read("private key", key)?;
        let names = [ca, cert, key].map(|p| p.display().to_string());
        let names = names.each_ref().map(String::as_str);
        Self::from_pem_named([&ca_pem, &cert_pem, &key_pem], names)
    }

    /// `pems` and their `names` (for messages): CA, certificate, key.
    fn from_pem_named(pems: [&str; 3], names: [&str; 3]) -> Result<Identity, TlsError> {
        let ([ca_pem, cert_pem, key_pem], [ca_name, cert_name, key_name]) = (pems, names);
        let mut roots = RootCertStore::empty();
        let cas = certificates("CA certificate", ca_name, ca_pem)?;
        for der in cas.iter().cloned() {
            roots.add(der).map_err(|e| TlsError::BadCa {
                file: ca_name.to_owned(),
                detail: e.to_string(),
            })?;
        }
        let chain = certificates("certificate", cert_name, cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
            TlsError::NoPrivateKey {
                file: key_name.to_owned(),
                detail: pem_detail(&e),
            }
        })?;
        // Catch a key that belongs to another certificate now, with both file names, instead of
        // as an obscure handshake failure later.
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(
            |e| TlsError::KeyMismatch {
                cert_file: cert_name.to_owned(),
                key_file: key_name.to_owned(),
                detail: e.to_string(),
            },
        )?;
        Ok(Identity {
            cas,
            roots,
            chain,
            key,
        })
    }

    /// The trusted CA certificates, DER encoded.
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.cas
    }

    /// The trusted CA certificates.
    pub fn roots(&self) -> &RootCertStore {
        &self.roots
    }

    /// This side's certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// This side's private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The node id carried by this side's own certificate (meaningful for probes).
    pub fn node_id(&self) -> Result<NodeId, TlsError> {
        let leaf = self.chain.first().ok_or(TlsError::NoPeerCertificate)?;
        Ok(pki::node_id_from_cert(leaf)?)
    }
}

fn read(what: &'static str, path: &Path) -> Result<String, TlsError> {
    crate::files::read_or(
        path,
        |file| TlsError::Missing { what, file },
        |file, source| TlsError::Read { what, file, source },
    )
}

fn certificates(
    what: &'static str,
    file: &str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let no_cert = |detail: String| TlsError::NoCertificate {
        what,
        file: file.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| no_cert(pem_detail(&e)))?;
    if certs.is_empty() {
        return Err(no_cert("no certificate block found".into()));
    }
    Ok(certs)
}

fn pem_detail(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => "no matching PEM block found".into(),
        e => format!("invalid PEM: {e}"),
    }
}

fn config_err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> TlsError + Copy {
    move |e| TlsError::Config {
        what,
        detail: e.to_string(),
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The coordinator's QUIC server configuration: TLS 1.3, client certificates signed by the
/// identity's CA required, ALPN `hallmark/1`, no session resumption.
pub fn server_config(
    id: &Identity,
    opts: &TransportOptions,
) -> Result<quinn::ServerConfig, TlsError> {
    server_config_with_crl(id, opts, None)
}

/// Like [`server_config`]; with `crl`, client certificates on the revocation list in that file
/// (checked against the identity's CA when loaded, re-read when it changes) are refused.
pub fn server_config_with_crl(
    id: &Identity,
    opts: &TransportOptions,
    crl: Option<&Path>,
) -> Result<quinn::ServerConfig, TlsError> {
    Ok(server_config_with_revocation(id, opts, crl)?.0)
}

/// [`server_config_with_crl`], and with `crl` the check it installed: the server subscribes to it
/// to close open connections whose certificate a new list revokes
/// ([`RevocationCheck::subscribe`], [`RevocationCheck::watch_file`]).
pub fn server_config_with_revocation(
    id: &Identity,
    opts: &TransportOptions,
    crl: Option<&Path>,
) -> Result<(quinn::ServerConfig, Option<Arc<RevocationCheck>>), TlsError> {
    let transport = opts.transport_config()?;
    let check = match crl {
        Some(path) => Some(Arc::new(RevocationCheck::new(
            path,
            id.cas.clone(),
            Arc::new(id.roots.clone()),
            Arc::new(provider()),
        )?)),
        None => None,
    };
    let tls = server_tls(id, check.clone())?;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(config_err("QUIC server configuration"))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok((config, check))
}

/// The rustls half of [`server_config_with_revocation`].
fn server_tls(
    id: &Identity,
    check: Option<Arc<RevocationCheck>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(provider());
    let rustls_err = config_err::<rustls::Error>("TLS server configuration");
    let verifier: Arc<dyn ClientCertVerifier> = match check {
        Some(check) => check,
        None => WebPkiClientVerifier::builder_with_provider(
            Arc::new(id.roots.clone()),
            provider.clone(),
        )
        .build()
        .map_err(config_err("client certificate verifier"))?,
    };
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .map_err(rustls_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // Resumption would skip the client-certificate (and revocation) check: no session cache, no
    // tickets, so every connection is a full handshake.
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    Ok(tls)
}

/// A probe's QUIC client configuration: trusts only the identity's CA, presents the identity's
/// certificate, TLS 1.3, ALPN `hallmark/1`.
pub fn client_config(
    id: &Identity,
    opts: &TransportOptions,
) -> Result<quinn::ClientConfig, TlsError> {
    let transport = opts.transport_config()?;
    let rustls_err = config_err::<rustls::Error>("TLS client configuration");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_err)?
        .with_root_certificates(id.roots.clone())
        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
        .map_err(rustls_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(config_err("QUIC client configuration"))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The node id of the authenticated peer of `conn` (on the coordinator: the probe), read from the
/// first certificate it presented.
pub fn peer_node_id(conn: &quinn::Connection) -> Result<NodeId, TlsError> {
    let identity = conn.peer_identity().ok_or(TlsError::NoPeerCertificate)?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| TlsError::NoPeerCertificate)?;
    let leaf = chain.first().ok_or(TlsError::NoPeerCertificate)?;
    Ok(pki::node_id_from_cert(leaf)?)
}

/// The serial number of the authenticated peer's certificate (on the coordinator: the probe's).
pub fn peer_serial(conn: &quinn::Connection) -> Result<Serial, TlsError> {
    let identity = conn.peer_identity().ok_or(TlsError::NoPeerCertificate)?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| TlsError::NoPeerCertificate)?;
    let leaf = chain.first().ok_or(TlsError::NoPeerCertificate)?;
    Serial::of_cert(leaf).map_err(|detail| PkiError::BadCertificate { detail }.into())
}

/// The QUIC application close code with which the coordinator closes an open connection whose
/// certificate a new revocation list names; [`classify_connection_error`] makes it
/// [`ConnectFailure::CertificateRevoked`], as the TLS alert is at a handshake.
pub const REVOKED_CLOSE_CODE: u32 = 3;

/// What a failed or lost connection to the coordinator means, seen from the probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectFailure {
    /// No answer within the idle timeout.
    #[error("no answer from the coordinator within the idle timeout (it is not running, unreachable, or UDP is blocked); retrying")]
    TimedOut,
    /// The coordinator forgot the connection (it probably restarted).
    #[error("the coordinator reset the connection (it probably restarted); retrying")]
    Reset,
    /// The coordinator turned the connection away before its handshake (QUIC's
    /// CONNECTION_REFUSED): it is admitting as many handshakes or connections as it may at once.
    #[error("the coordinator is busy: it refused the connection before the handshake (too many handshakes or connections at once); retrying")]
    Busy,
    /// The coordinator refused this probe's certificate because it is on the revocation list.
    #[error("the coordinator refused this probe's certificate because it has been revoked ({detail}); this node is no longer trusted: if that is a mistake, issue it a new certificate with `hallmark certs issue`")]
    CertificateRevoked { detail: String },
    /// The coordinator refused this probe's certificate.
    #[error("the coordinator rejected this probe's certificate ({detail}): issue it from the coordinator's CA with `hallmark certs issue`")]
    CertificateRejected { detail: String },
    /// The coordinator's certificate is not signed by the CA this probe trusts.
    #[error("the coordinator's certificate is not signed by the CA in --ca ({detail}); use the ca.pem of the coordinator's `hallmark certs init`")]
    ServerNotTrusted { detail: String },
    /// The coordinator's certificate does not name the host this probe connected to.
    #[error("the coordinator's certificate does not cover the name this probe connected to ({detail}); connect by a name it lists or reissue it with `hallmark certs init --san NAME`")]
    ServerNameMismatch { detail: String },
    /// The two sides do not speak the same protocol (QUIC version, TLS version or ALPN).
    #[error("the coordinator does not speak this probe's protocol ({detail}); run the same hallmark version on both sides")]
    ProtocolMismatch { detail: String },
    /// The connection cannot even be attempted with these settings.
    #[error("cannot connect to the coordinator: {detail}")]
    Misconfigured { detail: String },
    /// The connection was closed by an application, the peer's or ours.
    #[error("connection closed by {}: {detail}", if *by_peer { "the coordinator" } else { "this side" })]
    Closed { by_peer: bool, detail: String },
    /// Anything else; worth a retry.
    #[error("connection to the coordinator failed: {detail}; retrying")]
    Other { detail: String },
}

impl ConnectFailure {
    /// True when retrying cannot help (authentication or configuration): the probe should exit.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ConnectFailure::CertificateRejected { .. }
                | ConnectFailure::CertificateRevoked { .. }
                | ConnectFailure::ServerNotTrusted { .. }
                | ConnectFailure::ServerNameMismatch { .. }
                | ConnectFailure::ProtocolMismatch { .. }
                | ConnectFailure::Misconfigured { .. }
        )
    }

    /// True when the probe should retry after a pause.
    pub fn is_transient(&self) -> bool {
        !self.is_fatal()
    }
}

/// TLS alerts that mean "your certificate is not acceptable": bad_certificate (42),
/// unsupported_certificate, certificate_revoked, certificate_expired, certificate_unknown (46),
/// unknown_ca (48), access_denied, decrypt_error (51: bad signature), certificate_required (116).
const CERTIFICATE_ALERTS: &[u8] = &[42, 43, 44, 45, 46, 48, 49, 51, 116];

/// The TLS alert certificate_revoked.
const REVOKED_ALERT: u8 = 44;

/// TLS alerts that mean no protocol in common: handshake_failure (40), protocol_version (70),
/// no_application_protocol (120).
const PROTOCOL_ALERTS: &[u8] = &[40, 70, 120];

/// The TLS alert carried by a QUIC CRYPTO_ERROR code (0x100 + alert), if it is one.
fn tls_alert(code: quinn::TransportErrorCode) -> Option<u8> {
    let code = u64::from(code);
    (0x100..0x200).contains(&code).then(|| (code - 0x100) as u8)
}

/// Classifies why a connection to the coordinator failed or was lost.
///
/// A TLS alert the probe raised itself (`TransportError`) is about the coordinator's certificate;
/// one the coordinator sent (`ConnectionClosed`) is about the probe's.
pub fn classify_connection_error(e: &quinn::ConnectionError) -> ConnectFailure {
    use quinn::ConnectionError as E;
    match e {
        E::TimedOut => ConnectFailure::TimedOut,
        E::Reset => ConnectFailure::Reset,
        E::VersionMismatch => ConnectFailure::ProtocolMismatch {
            detail: "no common QUIC version".into(),
        },
        E::TransportError(te) => {
            let detail = te.to_string();
            match tls_alert(te.code) {
                Some(_) if te.reason.contains("NotValidForName") => {
                    ConnectFailure::ServerNameMismatch { detail }
                }
                Some(alert)
                    if CERTIFICATE_ALERTS.contains(&alert)
                        || te.reason.contains("peer certificate") =>
                {
                    ConnectFailure::ServerNotTrusted { detail }
                }
                Some(alert) if PROTOCOL_ALERTS.contains(&alert) => {
                    ConnectFailure::ProtocolMismatch { detail }
                }
                _ => ConnectFailure::Other { detail },
            }
        }
        E::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            ConnectFailure::Busy
        }
        E::ConnectionClosed(close) => {
            let detail = close.to_string();
            match tls_alert(close.error_code) {
                Some(REVOKED_ALERT) => ConnectFailure::CertificateRevoked { detail },
                Some(alert) if CERTIFICATE_ALERTS.contains(&alert) => {
                    ConnectFailure::CertificateRejected { detail }
                }
                Some(alert) if PROTOCOL_ALERTS.contains(&alert) => {
                    ConnectFailure::ProtocolMismatch { detail }
                }
                _ => ConnectFailure::Other { detail },
            }
        }
        E::ApplicationClosed(close) if close.error_code == REVOKED_CLOSE_CODE.into() => {
            ConnectFailure::CertificateRevoked {
                detail: String::from_utf8_lossy(&close.reason).into_owned(),
            }
        }
        E::ApplicationClosed(close) => ConnectFailure::Closed {
            by_peer: true,
            detail: close.to_string(),
        },
        E::LocallyClosed => ConnectFailure::Closed {
            by_peer: false,
            detail: e.to_string(),
        },
        E::CidsExhausted => ConnectFailure::Other {
            detail: e.to_string(),
        },
    }
}

/// Classifies an error from [`quinn::Endpoint::connect`] (raised before any packet is sent).
pub fn classify_connect_error(e: &quinn::ConnectError) -> ConnectFailure {
    use quinn::ConnectError as E;
    match e {
        E::EndpointStopping | E::CidsExhausted => ConnectFailure::Other {
            detail: e.to_string(),
        },
        E::InvalidServerName(_)
        | E::InvalidRemoteAddress(_)
        | E::NoDefaultClientConfig
        | E::UnsupportedVersion => ConnectFailure::Misconfigured {
            detail: e.to_string(),
        },
    }
}

/// Why `conn` was lost, classified; `None` while it is still open. Use it after a stream error.
pub fn connection_failure(conn: &quinn::Connection) -> Option<ConnectFailure> {
    conn.close_reason().map(|e| classify_connection_error(&e))
}

/// A one-line explanation of a connection error, with what to do about it.
pub fn describe_connection_error(e: &quinn::ConnectionError) -> String {
    classify_connection_error(e).to_string()
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
