//! The coordinator's client-certificate check with a revocation list that is re-read when it
//! changes.
//!
//! [`RevocationCheck`] is a rustls [`ClientCertVerifier`] around rustls's own webpki verifier built
//! with the CA and the current list. On every handshake it first looks at the list's file (a
//! `stat`: device, inode, size and modification time); when that changed it reads the file again,
//! checks it against the CA ([`crate::crl::load`]) and swaps the inner verifier, so a `certs revoke`
//! copied over the file takes effect for the next connection without a restart. A list that fails
//! its checks is logged once and the previous list stays in force: a broken file never lets a
//! revoked certificate back in. A refused revoked certificate gets one log line naming its node
//! and serial, and the TLS alert `certificate_revoked`.
//!
//! The `stat` (a few microseconds, next to the milliseconds of a handshake's signatures) and, when
//! the file changed, the reload run under the check's lock: stamps are compared in the order they
//! were taken, and a handshake that arrives during a reload waits for the new list instead of
//! passing on the old one. Only the verifier (an `Arc`) and the list's number leave the lock.
//!
//! Revocation is only checked in a full handshake, so the server configuration turns session
//! resumption off (see [`crate::tls::server_config_with_crl`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls_pki_types::{CertificateDer, UnixTime};
use tracing::{error, info, warn};

use crate::crl::{self, CrlError, RevocationList, Serial};
use crate::pki;

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    let (dev, ino) = {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    };
    #[cfg(not(unix))]
    let (dev, ino) = (0, 0);
    Ok(Stamp {
        dev,
        ino,
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// What is in force: the webpki verifier built with the list, and the list's CRL number (all a
/// handshake needs; the list itself lives inside the verifier).
struct Current {
    /// The file version last looked at (loaded or refused).
    seen: Option<Stamp>,
    verifier: Arc<dyn ClientCertVerifier>,
    number: u64,
}

/// A client-certificate verifier that refuses certificates on the revocation list in a file and
/// re-reads the file when it changes.
pub struct RevocationCheck {
    path: PathBuf,
    cas: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    subjects: Vec<DistinguishedName>,
    current: Mutex<Current>,
}

impl std::fmt::Debug for RevocationCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationCheck")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RevocationCheck {
    /// Loads the list in `path`, which must be issued and signed by one of `cas` (the CA
    /// certificates that are also in `roots`).
    pub fn new(
        path: &Path,
        cas: Vec<CertificateDer<'static>>,
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<RevocationCheck, CrlError> {
        let seen = stamp(path).ok();
        let list = crl::load(path, &cas)?;
        let verifier = build(&roots, &provider, &list, path)?;
        info!(
            crl = %path.display(),
            number = list.number,
            revoked = list.revoked.len(),
            "revocation list loaded"
        );
        Ok(RevocationCheck {
            path: path.to_owned(),
            subjects: roots.subjects(),
            cas,
            roots,
            provider,
            current: Mutex::new(Current {
                seen,
                verifier,
                number: list.number,
            }),
        })
    }

    /// Re-reads the file if it changed; returns the verifier in force and its list's CRL number.
    fn refresh(&self) -> (Arc<dyn ClientCertVerifier>, u64) {
        let mut cur = match self.current.lock() {
            Ok(cur) => cur,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = stamp(&self.path);
        match now {
            Ok(s) if cur.seen.as_ref() == Some(&s) => {}
            Ok(s) => {
                cur.seen = Some(s);
                let loaded = crl::load(&self.path, &self.cas).and_then(|list| {
                    build(&self.roots, &self.provider, &list, &self.path).map(|v| (v, list))
                });
                match loaded {
                    Ok((_, list)) if list.number < cur.number => error!(
                        crl = %self.path.display(),
                        "the revocation list was replaced by an older one (number {} after {}); \
                         keeping number {}: copy the latest crl.pem from the CA directory",
                        list.number, cur.number, cur.number
                    ),
                    Ok((verifier, list)) => {
                        info!(
                            crl = %self.path.display(),
                            number = list.number,
                            revoked = list.revoked.len(),
                            "revocation list reloaded"
                        );
                        cur.verifier = verifier;
                        cur.number = list.number;
                    }
                    Err(e) => error!(
                        "{e}; keeping the previous revocation list (number {})",
                        cur.number
                    ),
                }
            }
            Err(e) => {
                if cur.seen.is_some() {
                    error!(
                        crl = %self.path.display(),
                        "cannot read the revocation list ({e}); keeping the one loaded before \
                         (number {})",
                        cur.number
                    );
                }
                cur.seen = None;
            }
        }
        (cur.verifier.clone(), cur.number)
    }
}

fn build(
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    list: &RevocationList,
    path: &Path,
) -> Result<Arc<dyn ClientCertVerifier>, CrlError> {
    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .with_crls([list.der.clone()])
        .build()
        .map_err(|e| CrlError::Parse {
            file: path.display().to_string(),
            detail: e.to_string(),
        })
}

impl ClientCertVerifier for RevocationCheck {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let (verifier, crl_number) = self.refresh();
        let result = verifier.verify_client_cert(end_entity, intermediates, now);
        if let Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)) = &result {
            let node = pki::node_id_from_cert(end_entity)
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into());
            let serial = Serial::of_cert(end_entity)
                .map(|s| s.to_string())
                .unwrap_or_else(|_| "?".into());
            warn!(
                %node,
                %serial,
                crl = %self.path.display(),
                crl_number,
                "refused a revoked certificate"
            );
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
