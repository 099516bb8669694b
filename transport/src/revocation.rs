//! The coordinator's client-certificate check with a revocation list that is re-read when it
//! changes.
//!
//! [`RevocationCheck`] is a rustls [`ClientCertVerifier`] around rustls's own webpki verifier built
//! with the CA and the current list. On every handshake it first looks at the list's file (a
//! `stat`: device, inode, size and modification time); when that changed it reads the file again,
//! checks it against the CA ([`crate::crl::load`]) and swaps the inner verifier, so a `certs revoke`
//! copied over the file takes effect for the next connection without a restart. A list that fails
//! its checks is logged once and the previous list stays in force: a broken file never lets a
//! revoked certificate back in. Nor does an older list (a smaller CRL number), nor a different
//! list with the number in force: the CA numbers every list it signs one higher than the last
//! (under the CA directory's lock, [`crate::ca_lock`]), so two lists with one number did not both
//! come from it in order — the file was replaced or rolled back. Such a list is accepted only when
//! its DER bytes are those of the list in force (the same list copied again, whatever its PEM line
//! endings); equal bytes rather than equal serials, because hallmark never signs two lists with
//! one number, so a list that differs in anything (its serials, their dates, its signature) is not
//! the one in force. A refused revoked certificate gets one log line naming its node and serial,
//! and the TLS alert `certificate_revoked`.
//!
//! Connections that are already open are not checked by a handshake again, so the check also
//! publishes what is revoked ([`ListInForce`], through [`RevocationCheck::subscribe`]) whenever a
//! new list takes effect, and [`RevocationCheck::watch_file`] looks at the file every
//! [`WATCH_EVERY`] without waiting for a connection: the coordinator's connection tasks close a
//! connection whose certificate the list now names within that tick ([`REVOCATION_BOUND`]).
//!
//! The `stat` (a few microseconds, next to the milliseconds of a handshake's signatures) and, when
//! the file changed, the reload run under the check's lock: stamps are compared in the order they
//! were taken, and a handshake that arrives during a reload waits for the new list instead of
//! passing on the old one. Only the verifier (an `Arc`) and the list's number leave the lock;
//! the list in force is published (a `watch` channel) under it, so subscribers see the lists in
//! the order they took effect.
//!
//! Revocation is only checked in a full handshake, so the server configuration turns session
//! resumption off (see [`crate::tls::server_config_with_crl`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

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

/// How often [`RevocationCheck::watch_file`] looks at the file.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The longest a new list in the file takes to close a connection whose certificate it revokes:
/// one [`WATCH_EVERY`] tick to notice the file, with a second's margin for reading it and for the
/// connection tasks to act (in practice milliseconds).
pub const REVOCATION_BOUND: Duration = Duration::from_secs(2);

/// What the list in force revokes, as published to the connections that are open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInForce {
    /// The list's CRL number.
    pub number: u64,
    /// The serials it lists.
    pub revoked: HashSet<Serial>,
}

impl ListInForce {
    fn of(list: &RevocationList) -> Arc<ListInForce> {
        Arc::new(ListInForce {
            number: list.number,
            revoked: list.revoked.iter().map(|r| r.serial.clone()).collect(),
        })
    }
}

/// What is in force: the webpki verifier built with the list, and the list's CRL number (all a
/// handshake needs; the list itself lives inside the verifier).
struct Current {
    /// The file version last looked at (loaded or refused).
    seen: Option<Stamp>,
    verifier: Arc<dyn ClientCertVerifier>,
    number: u64,
    /// The list's DER bytes: a list with the same number must be these bytes.
    der: CertificateRevocationListDer<'static>,
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
    /// The list in force, for open connections; sent under `current`'s lock.
    published: watch::Sender<Arc<ListInForce>>,
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
        let (published, _) = watch::channel(ListInForce::of(&list));
        Ok(RevocationCheck {
            published,
            path: path.to_owned(),
            subjects: roots.subjects(),
            cas,
            roots,
            provider,
            current: Mutex::new(Current {
                seen,
                verifier,
                number: list.number,
                der: list.der,
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
                    Ok((_, list)) if list.number == cur.number && list.der != cur.der => error!(
                        crl = %self.path.display(),
                        "the revocation list was replaced by a different list with the same number \
                         {}; keeping the list in force: a list with the number in force must be \
                         that list, byte for byte (`hallmark certs revoke` numbers every new list \
                         one higher), so this file was altered or rolled back: copy the latest \
                         crl.pem from the CA directory",
                        list.number
                    ),
                    Ok((_, list)) if list.number == cur.number => debug!(
                        crl = %self.path.display(),
                        number = list.number,
                        "the revocation list was rewritten unchanged"
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
                        self.published.send_replace(ListInForce::of(&list));
                        cur.der = list.der;
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

impl RevocationCheck {
    /// What the list in force revokes, now and whenever another list takes effect (by a
    /// handshake, [`RevocationCheck::poll`] or [`RevocationCheck::watch_file`]).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ListInForce>> {
        self.published.subscribe()
    }

    /// Re-reads the file if it changed, as a handshake does; returns the CRL number in force.
    pub fn poll(&self) -> u64 {
        self.refresh().1
    }

    /// Polls the file every `every` until nobody subscribes any more (the connections and the
    /// coordinator that asked are gone), so a new list takes effect for open connections without
    /// waiting for a handshake. Spawn it after the first [`RevocationCheck::subscribe`]: with no
    /// subscriber it returns at once.
    pub async fn watch_file(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // A stat, and when the file changed a read of a few kilobytes, on the runtime as
                // a handshake does it.
                _ = tick.tick() => {
                    self.poll();
                }
                () = self.published.closed() => return,
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crl::{sign, Revoked};
    use crate::pki::tests::{der_of, temp_dir};
    use crate::pki::Ca;
    use hallmark_protocol::NodeId;
    use time::OffsetDateTime;

    /// Replaces `path` with `text` (a new file renamed over it, as `certs revoke` writes).
    fn put(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    fn check(path: &Path, ca: &Ca) -> RevocationCheck {
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        RevocationCheck::new(path, vec![ca.cert_der().clone()], Arc::new(roots), provider).unwrap()
    }

    fn revoked(check: &RevocationCheck, cert: &CertificateDer<'static>) -> bool {
        match check.verify_client_cert(cert, &[], UnixTime::now()) {
            Ok(_) => false,
            Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)) => true,
            Err(e) => panic!("unexpected verification error: {e}"),
        }
    }

    fn in_force(check: &RevocationCheck) -> (u64, Vec<u8>) {
        let cur = check.current.lock().unwrap();
        (cur.number, cur.der.to_vec())
    }

    #[test]
    fn a_different_list_with_the_number_in_force_is_refused_and_the_same_list_accepted() {
        let dir = temp_dir("same-number");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("crl.pem");
        let ca = Ca::generate().unwrap();
        let n1 = der_of(&ca.issue_node(&NodeId::new("n1").unwrap()).unwrap().cert_pem);
        let now = OffsetDateTime::now_utc();
        let entry = Revoked {
            serial: Serial::of_cert(&n1).unwrap(),
            at: now.replace_nanosecond(0).unwrap(),
        };
        let two = sign(&ca, 2, std::slice::from_ref(&entry), now).unwrap();
        put(&path, &two.pem);
        let check = check(&path, &ca);
        assert!(revoked(&check, &n1));

        // Signed by the CA with the number in force but without n1 (a rollback, or a list
        // replaced by someone who holds the CA key): n1 stays revoked, list 2 stays in force.
        let forged = sign(&ca, 2, &[], now).unwrap();
        put(&path, &forged.pem);
        assert!(revoked(&check, &n1), "a same-number list un-revoked n1");
        assert_eq!(in_force(&check), (2, two.der.to_vec()));

        // The list in force copied again, with other line endings: accepted, nothing changes.
        put(&path, &two.pem.replace('\n', "\r\n"));
        assert!(revoked(&check, &n1));
        assert_eq!(in_force(&check), (2, two.der.to_vec()));

        // The next list takes effect as before.
        let three = sign(&ca, 3, &[entry], now).unwrap();
        put(&path, &three.pem);
        assert!(revoked(&check, &n1));
        assert_eq!(in_force(&check), (3, three.der.to_vec()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
