//! Certificate revocation lists (CRLs) of the private CA.
//!
//! The CA signs a CRL ([`sign`]) that lists the serial numbers of revoked certificates with a
//! CRL number that grows by one with every new list. The coordinator reads it ([`load`]): the list
//! must parse, name this cluster's CA as its issuer and carry a signature that verifies against
//! the CA's public key; anything else is refused with the file named, so a list from another CA
//! (which would revoke nothing of ours) is never silently accepted. The TLS side (refusing revoked
//! certificates during the handshake, re-reading the file when it changes) is in
//! [`crate::revocation`].

use std::fmt;
use std::path::Path;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use time::{Duration, OffsetDateTime};

use crate::pki::Ca;

/// The revocation list's file name, in the CA directory and beside the coordinator's files.
pub const CRL_FILE: &str = "crl.pem";

/// How long after its issue a list says the next one is due (hallmark does not refuse an overdue
/// list: revocations only ever add entries, so an old list is still correct about what it lists).
const CRL_VALIDITY: Duration = Duration::days(365);

/// Why a revocation list could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("revocation list {file} does not exist; `hallmark certs init` writes crl.pem and `hallmark certs revoke` updates it")]
    Missing { file: String },
    #[error("cannot read revocation list {file}: {source}; check the path and its permissions")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file} holds no revocation list ({detail}); it must contain a PEM block `-----BEGIN X509 CRL-----`, as written by `hallmark certs revoke`")]
    NoCrl { file: String, detail: String },
    #[error("{file} is not a valid revocation list ({detail}); write a new one with `hallmark certs revoke`")]
    Parse { file: String, detail: String },
    #[error("revocation list {file} was issued by another CA ({issuer}), not by this cluster's CA ({ca}); use the crl.pem that `hallmark certs revoke --ca DIR` wrote for this cluster's CA")]
    OtherCa {
        file: String,
        issuer: String,
        ca: String,
    },
    #[error("the signature of revocation list {file} does not verify against this cluster's CA certificate ({detail}): it was signed by another CA or altered; use the crl.pem that `hallmark certs revoke` wrote")]
    BadSignature { file: String, detail: String },
    #[error("the CA certificate {file} was created without the cRLSign key usage, so it cannot sign a revocation list; create a new CA with `hallmark certs init`, reissue the coordinator's and every node's certificate, and revoke from the new CA")]
    NotCrlSigner { file: String },
    #[error("cannot sign the revocation list: {0}")]
    Sign(rcgen::Error),
    #[error("serial number {value:?} is not valid ({detail}); pass the hex digits `hallmark certs revoke` or `openssl x509 -serial` prints, e.g. 3a:f2:… or 3af2…")]
    BadSerial { value: String, detail: String },
}

/// A certificate serial number (big-endian, no leading zero bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A serial from big-endian bytes (leading zero bytes are dropped).
    pub fn from_be(bytes: &[u8]) -> Serial {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Serial(bytes[first..].to_vec())
    }

    /// The serial of a DER certificate.
    pub fn of_cert(der: &[u8]) -> Result<Serial, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        Ok(Serial::from_be(&cert.serial.to_bytes_be()))
    }

    /// Parses hex digits, with or without `:` separators or a `0x` prefix.
    pub fn parse(text: &str) -> Result<Serial, CrlError> {
        let bad = |detail: &str| CrlError::BadSerial {
            value: text.to_owned(),
            detail: detail.to_owned(),
        };
        let t = text.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        let digits: String = t.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() {
            return Err(bad("it is empty"));
        }
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("only hex digits and `:` are allowed"));
        }
        if digits.len() > 42 {
            return Err(bad("a serial number has at most 20 bytes"));
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        let bytes: Vec<u8> = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).unwrap_or(0))
            .collect();
        let serial = Serial::from_be(&bytes);
        if serial.0.is_empty() {
            return Err(bad("a serial number is never zero"));
        }
        Ok(serial)
    }

    /// The big-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: Serial,
    /// When it was revoked (whole seconds).
    pub at: OffsetDateTime,
}

/// A revocation list, checked against its CA.
#[derive(Debug, Clone)]
pub struct RevocationList {
    /// The list, DER encoded, as rustls takes it.
    pub der: CertificateRevocationListDer<'static>,
    /// The list, PEM encoded, as it is written to disk.
    pub pem: String,
    /// The CRL number: grows by one with every list the CA signs.
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
    pub revoked: Vec<Revoked>,
}

impl RevocationList {
    /// True when `serial` is on the list.
    pub fn contains(&self, serial: &Serial) -> bool {
        self.revoked.iter().any(|r| &r.serial == serial)
    }
}

/// Signs a list of `revoked` certificates with `ca`, numbered `number`, issued `now`.
pub fn sign(
    ca: &Ca,
    number: u64,
    revoked: &[Revoked],
    now: OffsetDateTime,
) -> Result<RevocationList, CrlError> {
    // Whole seconds: the encoding cannot carry more, and the list read back must compare equal.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + CRL_VALIDITY,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(r.serial.bytes()),
                revocation_time: r.at,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(ca.issuer()).map_err(|e| match e {
        rcgen::Error::IssuerNotCrlSigner => CrlError::NotCrlSigner {
            file: "the CA certificate".into(),
        },
        e => CrlError::Sign(e),
    })?;
    let pem = crl.pem().map_err(CrlError::Sign)?;
    let file = "the new revocation list";
    let list = parse_pem(&pem, file, std::slice::from_ref(ca.cert_der()))?;
    // The parser rustls uses must accept it too, or the coordinator would refuse it later.
    webpki_check(&list.der, ca.cert_der()).map_err(|detail| CrlError::Parse {
        file: file.to_owned(),
        detail,
    })?;
    Ok(list)
}

/// Reads and checks the revocation list in `path` against the CA certificates `cas`.
pub fn load(path: &Path, cas: &[CertificateDer<'static>]) -> Result<RevocationList, CrlError> {
    let pem = crate::files::read_or(
        path,
        |file| CrlError::Missing { file },
        |file, source| CrlError::Read { file, source },
    )?;
    parse_pem(&pem, &path.display().to_string(), cas)
}

/// Parses a PEM revocation list (`file` names it in errors) and checks that one of `cas` issued
/// and signed it. rustls's own parser reads it where it is used: [`sign`] checks a new list with
/// it before the list is written, and the coordinator's verifier ([`crate::revocation`]) is built
/// from every list it loads, refusing one that parser rejects.
pub fn parse_pem(
    pem: &str,
    file: &str,
    cas: &[CertificateDer<'static>],
) -> Result<RevocationList, CrlError> {
    let parse = |detail: String| CrlError::Parse {
        file: file.to_owned(),
        detail,
    };
    let der = CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        CrlError::NoCrl {
            file: file.to_owned(),
            detail: match e {
                rustls_pki_types::pem::Error::NoItemsFound => "no CRL block found".into(),
                e => format!("invalid PEM: {e}"),
            },
        }
    })?;
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| parse(e.to_string()))?;
    let issuer = crl.issuer();
    let mut names = Vec::new();
    let mut signer = None;
    for ca_cert in cas {
        let (_, cert) =
            x509_parser::parse_x509_certificate(ca_cert).map_err(|e| CrlError::Parse {
                file: "the CA certificate".into(),
                detail: e.to_string(),
            })?;
        names.push(cert.subject().to_string());
        if cert.subject().as_raw() == issuer.as_raw() {
            signer = Some(cert);
            break;
        }
    }
    let Some(ca) = signer else {
        return Err(CrlError::OtherCa {
            file: file.to_owned(),
            issuer: issuer.to_string(),
            ca: names.join(", "),
        });
    };
    crl.verify_signature(ca.public_key())
        .map_err(|e| CrlError::BadSignature {
            file: file.to_owned(),
            detail: e.to_string(),
        })?;
    let number = match crl.crl_number() {
        Some(n) => u64::try_from(n).map_err(|_| parse(format!("CRL number {n} is too large")))?,
        None => return Err(parse("it has no CRL number".into())),
    };
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| Revoked {
            serial: Serial::from_be(&r.user_certificate.to_bytes_be()),
            at: r.revocation_date.to_datetime(),
        })
        .collect();
    Ok(RevocationList {
        number,
        this_update: crl.last_update().to_datetime(),
        next_update: crl.next_update().map(|t| t.to_datetime()),
        revoked,
        pem: pem.to_owned(),
        der: CertificateRevocationListDer::from(der.to_vec()),
    })
}

/// Builds rustls's verifier with this list, so a list webpki's parser rejects is refused when it
/// is signed rather than when the coordinator loads it.
fn webpki_check(
    der: &CertificateRevocationListDer<'_>,
    ca: &CertificateDer<'static>,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| e.to_string())?;
    rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(rustls::crypto::ring::default_provider()),
    )
    .with_crls([CertificateRevocationListDer::from(der.to_vec())])
    .build()
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::tests::der_of as der;
    use hallmark_protocol::NodeId;

    #[test]
    fn a_list_round_trips_and_only_its_ca_accepts_it() {
        let (ca, other) = (Ca::generate().unwrap(), Ca::generate().unwrap());
        let node = ca.issue_node(&NodeId::new("n1").unwrap()).unwrap();
        let serial = Serial::of_cert(&der(&node.cert_pem)).unwrap();
        let now = OffsetDateTime::now_utc();
        let revoked = [Revoked {
            serial: serial.clone(),
            at: now.replace_nanosecond(0).unwrap(),
        }];
        let list = sign(&ca, 7, &revoked, now).unwrap();
        assert_eq!(list.number, 7);
        assert_eq!(list.revoked, revoked);
        assert!(list.contains(&serial));
        let again = parse_pem(&list.pem, "crl.pem", &[der(ca.cert_pem())]).unwrap();
        assert_eq!(again.revoked, revoked);

        // Another CA's list: refused at load, naming both CAs.
        let foreign = sign(&other, 1, &[], now).unwrap();
        let err = parse_pem(&foreign.pem, "crl.pem", &[der(ca.cert_pem())]).unwrap_err();
        assert!(matches!(err, CrlError::OtherCa { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("crl.pem") && text.contains("another CA"),
            "{text}"
        );

        // A CA with the same name but another key (or an altered list): bad signature.
        let mut bytes = list.der.to_vec();
        let at = bytes.len() - 5;
        bytes[at] ^= 0x55;
        let pem = pem_of(&bytes);
        let err = parse_pem(&pem, "crl.pem", &[der(ca.cert_pem())]).unwrap_err();
        assert!(matches!(err, CrlError::BadSignature { .. }), "{err}");

        for bad in [
            "",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let err = parse_pem(bad, "crl.pem", &[der(ca.cert_pem())]).unwrap_err();
            assert!(matches!(err, CrlError::NoCrl { .. }), "{err}");
            assert!(err.to_string().contains("BEGIN X509 CRL"), "{err}");
        }
        let err = load(Path::new("/nonexistent/crl.pem"), &[]).unwrap_err();
        assert!(matches!(err, CrlError::Missing { .. }), "{err}");
    }

    fn pem_of(der: &[u8]) -> String {
        use std::fmt::Write as _;
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::from("-----BEGIN X509 CRL-----\n");
        for (i, chunk) in der.chunks(3).enumerate() {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                let c = if k <= chunk.len() {
                    B64[((n >> (18 - 6 * k)) & 63) as usize] as char
                } else {
                    '='
                };
                out.push(c);
            }
            if (i + 1) % 16 == 0 {
                out.push('\n');
            }
        }
        let _ = writeln!(out);
        out.push_str("-----END X509 CRL-----\n");
        out
    }

    #[test]
    fn serials_parse_from_what_tools_print() {
        let s = Serial::parse("0x3a:F2:00").unwrap();
        assert_eq!(s.bytes(), [0x3a, 0xf2, 0x00]);
        assert_eq!(s.to_string(), "3af200");
        assert_eq!(Serial::parse("00ab").unwrap().bytes(), [0xab]);
        assert_eq!(Serial::parse("abc").unwrap().bytes(), [0x0a, 0xbc]);
        for bad in ["", "xyz", "00", &"a".repeat(43)] {
            let err = Serial::parse(bad).unwrap_err();
            assert!(matches!(err, CrlError::BadSerial { .. }), "{bad:?}");
        }
    }
}
