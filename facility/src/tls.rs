//! TLS for HTTPS Redfish services: the service's certificate checked against a CA file, or, only
//! when asked for explicitly, accepted whatever it is (`--insecure`: BMCs often carry self-signed
//! certificates). Built on the ring provider like the rest of the binary (two providers in one
//! process make rustls panic at run time). There is no silent fallback to an unverified connection.

use crate::error::FacilityError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How an HTTPS service's certificate is trusted.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Only certificates chaining to the CA certificates in this PEM file.
    CaFile(PathBuf),
    /// Any certificate (the connection is encrypted but the server is not authenticated).
    Insecure,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, FacilityError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| FacilityError::Tls {
            uri: "(TLS configuration)".into(),
            detail: e.to_string(),
        })?;
    let config = match trust {
        Trust::CaFile(file) => builder
            .with_root_certificates(roots(file)?)
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth(),
    };
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn roots(file: &Path) -> Result<RootCertStore, FacilityError> {
    let err = |detail: String| FacilityError::CaFile {
        file: file.to_path_buf(),
        detail,
    };
    let pem = std::fs::read(file).map_err(|e| err(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let mut n = 0usize;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| err(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("a certificate rustls cannot use: {e}")))?;
        n += 1;
    }
    if n == 0 {
        return Err(err("no CERTIFICATE block in it".into()));
    }
    Ok(roots)
}

/// Accepts every server certificate but still checks that the handshake is signed by the key in
/// it, so the session is at least bound to the certificate presented.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
