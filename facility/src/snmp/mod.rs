//! Rack PDUs over SNMP (v2c, and v3 with USM authentication and privacy): the agent to poll
//! ([`SnmpTarget`]), vendor profiles as data ([`Profile`]: which OIDs hold which reading, and how
//! to scale them, from TOML files in `facility/profiles/` built into the binary or read from a
//! file), the interpretation of what an agent answered ([`interpret`], sans-IO: scaling, units,
//! decimal digits, physical ranges) and the async shell that asks ([`SnmpSession`], [`poll`]).
//!
//! One poll is one GET of every OID a profile needs (the readings and, where the MIB has them,
//! their decimal-digit and unit OIDs), split only where the agent answers `tooBig`. A reading the
//! agent does not have, of the wrong type, with units other than the profile expects or out of
//! its physical range is absent with the reason, never 0. An agent that does not answer, or
//! refuses the credentials, fails the whole poll with an error naming the agent and what to check;
//! [`readings`] turns either into [`FacilityReading`]s, absent ones with the reason in `note`.
//! Communities and passwords are [`Secret`]s: no `Debug`, log line or error carries them.

mod interpret;
mod poll;
mod profile;

pub use interpret::{interpret, Absent, Answer};
pub use poll::{poll, readings, SnmpPoll, SnmpSession, SnmpValue};
pub use profile::{Oid, Profile, ProfileEntry, ProfileError, BUILTIN_PROFILES};

use crate::auth::Secret;
use std::net::SocketAddr;
use std::time::Duration;

#[doc(no_inline)]
pub use hallmark_protocol::facility::FacilityReading;

/// An SNMP agent to poll: its UDP address, the protocol version with its credentials, how long to
/// wait for each answer and how many times to ask again after a timeout.
#[derive(Debug, Clone)]
pub struct SnmpTarget {
    pub addr: SocketAddr,
    pub version: SnmpVersion,
    /// Wait for one answer; a poll takes at most `timeout × (retries + 1)` per request (SNMPv3
    /// adds one engine-discovery exchange on a session's first poll).
    pub timeout: Duration,
    pub retries: u32,
}

/// Default time to wait for one answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of retries after a timeout.
pub const DEFAULT_RETRIES: u32 = 1;
/// Most retries a target may ask for (each waits a whole timeout).
pub const MAX_RETRIES: u32 = 5;
/// Longest timeout a target may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// The SNMP version and its credentials.
#[derive(Debug, Clone)]
pub enum SnmpVersion {
    /// SNMPv2c with a community string.
    V2c { community: Secret },
    /// SNMPv3 with the User-based Security Model: no authentication (`noAuthNoPriv`),
    /// authentication (`authNoPriv`) or authentication and privacy (`authPriv`); privacy without
    /// authentication does not exist in SNMPv3 and is refused.
    V3 {
        user: String,
        auth: Option<(AuthProtocol, Secret)>,
        privacy: Option<(PrivProtocol, Secret)>,
    },
}

impl SnmpVersion {
    /// `v2c` or `v3`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SnmpVersion::V2c { .. } => "v2c",
            SnmpVersion::V3 { .. } => "v3",
        }
    }
}

/// SNMPv3 authentication protocols (HMAC; RFC 3414 and RFC 7860).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    /// HMAC-MD5-96: broken, for old PDUs only.
    Md5,
    /// HMAC-SHA-96 (`SHA` in Net-SNMP).
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl AuthProtocol {
    const ALL: [(AuthProtocol, &'static str); 6] = [
        (AuthProtocol::Md5, "md5"),
        (AuthProtocol::Sha1, "sha"),
        (AuthProtocol::Sha224, "sha224"),
        (AuthProtocol::Sha256, "sha256"),
        (AuthProtocol::Sha384, "sha384"),
        (AuthProtocol::Sha512, "sha512"),
    ];

    /// The name as written in configuration files (`sha`, `sha256`, …; `sha1` is taken for `sha`).
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("", |e| e.1)
    }

    /// Parses a name case-insensitively; `None` for an unknown one (see [`AuthProtocol::names`]).
    pub fn parse(s: &str) -> Option<AuthProtocol> {
        let s = s.to_ascii_lowercase();
        let s = if s == "sha1" || s == "sha-1" {
            "sha"
        } else {
            &s
        };
        let s = s.replace('-', "");
        Self::ALL.iter().find(|(_, n)| *n == s).map(|e| e.0)
    }

    /// Every name [`AuthProtocol::parse`] takes, for error messages.
    pub fn names() -> String {
        Self::ALL.map(|e| e.1).join(", ")
    }
}

/// SNMPv3 privacy protocols (RFC 3414, RFC 3826; 192/256-bit AES with Blumenthal key extension,
/// Net-SNMP's `AES192`/`AES256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivProtocol {
    /// DES-CBC: broken, for old PDUs only.
    Des,
    /// AES-128-CFB (`AES` in Net-SNMP).
    Aes128,
    Aes192,
    Aes256,
}

impl PrivProtocol {
    const ALL: [(PrivProtocol, &'static str); 4] = [
        (PrivProtocol::Des, "des"),
        (PrivProtocol::Aes128, "aes"),
        (PrivProtocol::Aes192, "aes192"),
        (PrivProtocol::Aes256, "aes256"),
    ];

    /// The name as written in configuration files (`aes`, `aes256`, …; `aes128` is taken for `aes`).
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("", |e| e.1)
    }

    /// Parses a name case-insensitively; `None` for an unknown one (see [`PrivProtocol::names`]).
    pub fn parse(s: &str) -> Option<PrivProtocol> {
        let s = s.to_ascii_lowercase().replace('-', "");
        let s = if s == "aes128" { "aes" } else { &s };
        Self::ALL.iter().find(|(_, n)| *n == s).map(|e| e.0)
    }

    /// Every name [`PrivProtocol::parse`] takes, for error messages.
    pub fn names() -> String {
        Self::ALL.map(|e| e.1).join(", ")
    }
}

/// Why a whole poll failed: the agent gave no usable answer at all. Each names the agent and what
/// to check; none carries a community or password.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnmpError {
    #[error("SNMP target {addr}: {detail}")]
    Config { addr: SocketAddr, detail: String },
    #[error("no SNMP answer from {addr} in {after_ms} ms ({tries} tries); check address, port, {credential}, firewall")]
    Timeout {
        addr: SocketAddr,
        after_ms: u64,
        tries: u32,
        /// `community` or `v3 user and passwords`: what the agent silently drops when wrong.
        credential: &'static str,
    },
    #[error(
        "SNMP agent {addr} refused the credentials ({detail}); check v3 user, protocols, passwords"
    )]
    Auth { addr: SocketAddr, detail: String },
    #[error("SNMP agent {addr}: {detail}")]
    Protocol { addr: SocketAddr, detail: String },
    #[error("SNMP with {addr} failed: {detail}; check that the address is reachable from here")]
    Network { addr: SocketAddr, detail: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_round_trip_and_take_net_snmp_spellings() {
        for (p, n) in AuthProtocol::ALL {
            assert_eq!(AuthProtocol::parse(n), Some(p));
            assert_eq!(p.as_str(), n);
        }
        for (p, n) in PrivProtocol::ALL {
            assert_eq!(PrivProtocol::parse(n), Some(p));
            assert_eq!(p.as_str(), n);
        }
        assert_eq!(AuthProtocol::parse("SHA"), Some(AuthProtocol::Sha1));
        assert_eq!(AuthProtocol::parse("SHA-256"), Some(AuthProtocol::Sha256));
        assert_eq!(AuthProtocol::parse("sha1"), Some(AuthProtocol::Sha1));
        assert_eq!(PrivProtocol::parse("AES128"), Some(PrivProtocol::Aes128));
        assert_eq!(PrivProtocol::parse("AES-256"), Some(PrivProtocol::Aes256));
        assert_eq!(AuthProtocol::parse("sha3"), None);
        assert_eq!(PrivProtocol::parse("3des"), None);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let t = SnmpTarget {
            addr: "127.0.0.1:161".parse().unwrap(),
            version: SnmpVersion::V3 {
                user: "hallmark".into(),
                auth: Some((AuthProtocol::Sha256, Secret::new("auth-pass-1".into()))),
                privacy: Some((PrivProtocol::Aes128, Secret::new("priv-pass-1".into()))),
            },
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
        };
        let text = format!("{t:?}");
        assert!(
            !text.contains("auth-pass-1") && !text.contains("priv-pass-1"),
            "{text}"
        );
        assert!(text.contains("hallmark"), "{text}");
        let c = SnmpVersion::V2c {
            community: Secret::new("s3cret-community".into()),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
