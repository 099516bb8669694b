//! Errors of the facility clients. Each names the source (the URI or the file) and what to do about
//! it; none carries a credential. `FacilityError::ends_walk` says which ones make the rest of a
//! service unreachable (a discovery stops on those and goes on past the others).

use std::path::PathBuf;

/// An error of a facility client or of its configuration.
#[derive(Debug, thiserror::Error)]
pub enum FacilityError {
    #[error("'{url}' is not a Redfish service address ({detail}); give http://HOST[:PORT] or https://HOST[:PORT]")]
    InvalidUrl { url: String, detail: String },
    #[error("{uri} is HTTPS and no way to trust its certificate was given: pass --ca FILE (the PEM certificate of the CA that signed the service's certificate) or --insecure to accept any certificate")]
    NeedsTrust { uri: String },
    #[error("cannot read the CA file {}: {detail}; pass a PEM file holding the CA certificate of the service", file.display())]
    CaFile { file: PathBuf, detail: String },
    #[error("cannot read credentials from {source_name}: {detail}")]
    Credentials { source_name: String, detail: String },
    #[error("cannot connect to {uri}: {detail}; check the address and port and that the service is up and reachable from here")]
    Connect { uri: String, detail: String },
    #[error("TLS with {uri} failed: {detail}; pass the CA that signed the service's certificate with --ca FILE, or --insecure to accept any certificate")]
    Tls { uri: String, detail: String },
    #[error("{uri} did not answer within {after_ms} ms ({what}); check that the service is healthy, or raise the timeout")]
    Timeout {
        uri: String,
        what: &'static str,
        after_ms: u64,
    },
    #[error("HTTP exchange with {uri} failed: {detail}")]
    Http { uri: String, detail: String },
    #[error("{uri} refused the credentials (HTTP {status}); check the user name and password (--user with --password-file, or HALLMARK_REDFISH_USER and HALLMARK_REDFISH_PASSWORD) and the account's rights")]
    Unauthorized { uri: String, status: u16 },
    #[error("{uri} answered HTTP {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        uri: String,
        status: u16,
        message: String,
    },
    #[error(
        "{uri} redirects in a loop ({chain}); fix the service's redirect or give the final address"
    )]
    RedirectLoop { uri: String, chain: String },
    #[error("{uri} redirected more than {limit} times ({chain}); give the final address")]
    TooManyRedirects {
        uri: String,
        limit: usize,
        chain: String,
    },
    #[error("{uri} answered a body larger than {limit} bytes; a Redfish resource is far smaller, so the service is misbehaving (or raise the limit if it is known to be right)")]
    BodyTooLarge { uri: String, limit: usize },
    #[error("{uri} did not answer valid JSON: {detail}")]
    Json { uri: String, detail: String },
    #[error("{uri} is not a valid {what}: {detail}")]
    Malformed {
        uri: String,
        what: &'static str,
        detail: String,
    },
    #[error("creating a Redfish session at {uri} failed: {detail}")]
    Session { uri: String, detail: String },
}

impl FacilityError {
    /// Whether this error means that the rest of the service cannot be read either (nothing
    /// answers, TLS or the credentials are refused: 401; a 403 forbids one resource only): a
    /// walk stops on it instead of trying every other resource the same way.
    pub fn ends_walk(&self) -> bool {
        matches!(
            self,
            FacilityError::Connect { .. }
                | FacilityError::Tls { .. }
                | FacilityError::NeedsTrust { .. }
                | FacilityError::Unauthorized { status: 401, .. }
                | FacilityError::Session { .. }
        )
    }
}
