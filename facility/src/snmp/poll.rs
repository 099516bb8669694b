//! The async shell: an SNMP session with one agent (async-snmp over UDP, v2c or v3 USM), one GET
//! of every OID a profile needs per poll, the answers handed to [`interpret`], and the results
//! turned into [`FacilityReading`]s. Every exchange is bounded by the target's timeout and
//! retries, and the whole poll by an outer deadline derived from them.

use super::interpret::{interpret, Absent, Answer};
use super::profile::{Oid, Profile};
use super::{AuthProtocol, PrivProtocol, SnmpError, SnmpTarget, SnmpVersion};
use super::{MAX_RETRIES, MAX_TIMEOUT};
use async_snmp::{Auth, Client, EngineCache, Retry, UdpHandle, UsmConfig, Value};
use hallmark_protocol::facility::{
    bounded_text, FacilityQuantity, FacilityReading, SourceKind, Subject, MAX_FACILITY_NOTE_BYTES,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most OIDs one GET carries (an agent that finds the answer too big gets fewer: async-snmp
/// splits a request on `tooBig`).
pub const MAX_OIDS_PER_GET: usize = 48;

/// One reading of a poll.
#[derive(Debug, Clone, PartialEq)]
pub struct SnmpValue {
    pub point: String,
    pub quantity: FacilityQuantity,
    /// The OID of the reading itself.
    pub oid: Oid,
    /// The reading after scaling, or why it is absent.
    pub value: Result<f64, Absent>,
}

/// What one poll of an agent gave.
#[derive(Debug, Clone, PartialEq)]
pub struct SnmpPoll {
    /// One per profile entry, in profile order.
    pub values: Vec<SnmpValue>,
    /// The GET's round trip (all of its requests, where it had to be split).
    pub latency: Duration,
}

/// A session with one agent, kept between polls (an SNMPv3 session keeps the agent's engine id,
/// boots and time from its first exchange).
pub struct SnmpSession {
    addr: SocketAddr,
    credential: &'static str,
    tries: u32,
    bound: Duration,
    /// SNMPv3 only: what engine discovery learnt, to tell "no answer at all" from "an answer to
    /// discovery but none to the authenticated request" (wrong user or passwords).
    engines: Option<Arc<EngineCache>>,
    /// Whether a poll of this session got an answer: a later timeout is then the agent or the
    /// network gone, not the credentials.
    answered: AtomicBool,
    client: Client<UdpHandle>,
}

impl std::fmt::Debug for SnmpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnmpSession")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn auth_of(p: AuthProtocol) -> async_snmp::AuthProtocol {
    match p {
        AuthProtocol::Md5 => async_snmp::AuthProtocol::Md5,
        AuthProtocol::Sha1 => async_snmp::AuthProtocol::Sha1,
        AuthProtocol::Sha224 => async_snmp::AuthProtocol::Sha224,
        AuthProtocol::Sha256 => async_snmp::AuthProtocol::Sha256,
        AuthProtocol::Sha384 => async_snmp::AuthProtocol::Sha384,
        AuthProtocol::Sha512 => async_snmp::AuthProtocol::Sha512,
    }
}

fn priv_of(p: PrivProtocol) -> async_snmp::PrivProtocol {
    match p {
        PrivProtocol::Des => async_snmp::PrivProtocol::Des,
        PrivProtocol::Aes128 => async_snmp::PrivProtocol::Aes128,
        PrivProtocol::Aes192 => async_snmp::PrivProtocol::Aes192Blumenthal,
        PrivProtocol::Aes256 => async_snmp::PrivProtocol::Aes256Blumenthal,
    }
}

fn auth_config(target: &SnmpTarget) -> Result<Auth, SnmpError> {
    let config = |detail: String| SnmpError::Config {
        addr: target.addr,
        detail,
    };
    let pw = "a v3 password has at least 8 characters and the protocol must be available";
    match &target.version {
        SnmpVersion::V2c { community } => Ok(Auth::v2c(community.expose())),
        SnmpVersion::V3 {
            user,
            auth: None,
            privacy: None,
        } => Ok(Auth::usm(user)),
        SnmpVersion::V3 {
            user,
            auth: Some((a, apw)),
            privacy: None,
        } => UsmConfig::new(user.clone().into_bytes())
            .auth(auth_of(*a), apw.expose())
            .map(Auth::from)
            .map_err(|e| config(format!("v3 user {user}, {}: {e}; {pw}", a.as_str()))),
        SnmpVersion::V3 {
            user,
            auth: Some((a, apw)),
            privacy: Some((p, ppw)),
        } => UsmConfig::new(user.clone().into_bytes())
            .auth_priv(auth_of(*a), apw.expose(), priv_of(*p), ppw.expose())
            .map(Auth::from)
            .map_err(|e| {
                config(format!(
                    "v3 user {user}, {}/{}: {e}; {pw}",
                    a.as_str(),
                    p.as_str()
                ))
            }),
        SnmpVersion::V3 {
            user,
            auth: None,
            privacy: Some(_),
        } => Err(config(format!(
            "v3 user {user} has privacy without authentication, which SNMPv3 does not have; give an authentication protocol and password too"
        ))),
    }
}

impl SnmpSession {
    /// Sets up a session with the target's agent (a local UDP socket; nothing is sent yet).
    pub async fn open(target: &SnmpTarget) -> Result<SnmpSession, SnmpError> {
        let addr = target.addr;
        if target.timeout.is_zero() || target.timeout > MAX_TIMEOUT {
            return Err(SnmpError::Config {
                addr,
                detail: format!(
                    "timeout {} ms is not within 1 ms..{} s",
                    target.timeout.as_millis(),
                    MAX_TIMEOUT.as_secs()
                ),
            });
        }
        if target.retries > MAX_RETRIES {
            return Err(SnmpError::Config {
                addr,
                detail: format!("{} retries, at most {MAX_RETRIES}", target.retries),
            });
        }
        let auth = auth_config(target)?;
        let retry =
            Retry::fixed(target.retries, Duration::ZERO).map_err(|e| SnmpError::Config {
                addr,
                detail: e.to_string(),
            })?;
        let engines = match target.version {
            SnmpVersion::V2c { .. } => None,
            SnmpVersion::V3 { .. } => Some(Arc::new(EngineCache::new())),
        };
        let mut builder = Client::builder(addr, auth)
            .request_timeout(target.timeout)
            .retry(retry)
            .max_oids_per_request(MAX_OIDS_PER_GET);
        if let Some(cache) = &engines {
            builder = builder.engine_cache(Arc::clone(cache));
        }
        let client = builder
            .connect()
            .await
            .map_err(|e| classify(&e, addr, "community"))?;
        let credential = match target.version {
            SnmpVersion::V2c { .. } => "community",
            SnmpVersion::V3 { .. } => "v3 user and passwords",
        };
        // Engine discovery (v3), then the GET, each at most (retries + 1) timeouts; a GET split
        // into several requests (one per MAX_OIDS_PER_GET OIDs) gets this bound per request.
        let tries = target.retries + 1;
        let bound = target.timeout * tries * 2 + Duration::from_secs(1);
        Ok(SnmpSession {
            addr,
            credential,
            tries,
            bound,
            engines,
            answered: AtomicBool::new(false),
            client,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One GET of every OID `profile` needs, interpreted per entry. An error when the agent gave
    /// no usable answer (no answer at all, refused credentials, an SNMP error status).
    pub async fn poll(&self, profile: &Profile) -> Result<SnmpPoll, SnmpError> {
        let mut oids: Vec<Oid> = Vec::new();
        for e in &profile.entries {
            oids.push(e.oid.clone());
            oids.extend(e.decimal_digits_oid.iter().cloned());
            oids.extend(e.units.iter().map(|(o, _)| o.clone()));
        }
        oids.sort();
        oids.dedup();
        let request: Vec<async_snmp::Oid> = oids
            .iter()
            .map(|o| async_snmp::Oid::from_slice(o.arcs()))
            .collect();
        let requests = request.len().div_ceil(MAX_OIDS_PER_GET).max(1) as u32;
        let bound = self.bound * requests;
        let started = tokio::time::Instant::now();
        let answer = tokio::time::timeout(bound, self.client.get_many(&request)).await;
        let latency = started.elapsed();
        let response = match answer {
            Err(_) => {
                return Err(self.credentials_or(SnmpError::Timeout {
                    addr: self.addr,
                    after_ms: latency.as_millis() as u64,
                    tries: self.tries,
                    credential: self.credential,
                }))
            }
            Ok(Err(e)) => {
                return Err(self.credentials_or(classify(&e, self.addr, self.credential)))
            }
            Ok(Ok(r)) => r,
        };
        self.answered.store(true, Ordering::Relaxed);
        let mut answers: BTreeMap<Vec<u32>, Answer> = BTreeMap::new();
        for vb in response.varbinds {
            answers.insert(vb.oid.arcs().to_vec(), answer_of(&vb.value));
        }
        let get = |o: &Oid| answers.get(o.arcs()).cloned().unwrap_or(Answer::Missing);
        let values = profile
            .entries
            .iter()
            .map(|e| {
                let digits = e.decimal_digits_oid.as_ref().map(get);
                let units = e.units.as_ref().map(|(o, _)| get(o));
                SnmpValue {
                    point: e.point.clone(),
                    quantity: e.quantity,
                    oid: e.oid.clone(),
                    value: interpret(e, &get(&e.oid), digits.as_ref(), units.as_ref()),
                }
            })
            .collect();
        Ok(SnmpPoll { values, latency })
    }
}

impl SnmpSession {
    /// A v3 timeout after the agent answered engine discovery, in a session that never got an
    /// answer to a request: the agent is there and drops the authenticated request, so the user,
    /// protocols or passwords are wrong. (Its reports saying so come unauthenticated, and anyone
    /// could forge those: they are not taken.)
    fn credentials_or(&self, e: SnmpError) -> SnmpError {
        let discovered = self
            .engines
            .as_ref()
            .is_some_and(|c| c.get(&self.addr).is_some());
        let discovered = discovered && !self.answered.load(Ordering::Relaxed);
        match e {
            SnmpError::Timeout { addr, .. } if discovered => SnmpError::Auth {
                addr,
                detail: "answered discovery, not the authenticated request".into(),
            },
            other => other,
        }
    }
}

/// Opens a session with `target` and polls it once with `profile` (a collector keeps an
/// [`SnmpSession`] instead, sparing SNMPv3's engine discovery on every poll).
pub async fn poll(target: &SnmpTarget, profile: &Profile) -> Result<SnmpPoll, SnmpError> {
    SnmpSession::open(target).await?.poll(profile).await
}

fn answer_of(v: &Value) -> Answer {
    match v {
        Value::Integer(n) => Answer::Number(i64::from(*n)),
        Value::Gauge32(n) | Value::UInteger32(n) | Value::Counter32(n) => {
            Answer::Number(i64::from(*n))
        }
        Value::Counter64(n) => match i64::try_from(*n) {
            Ok(n) => Answer::Number(n),
            Err(_) => Answer::OtherType("Counter64 beyond 2^63"),
        },
        Value::NoSuchObject => Answer::NoSuchObject,
        Value::NoSuchInstance => Answer::NoSuchInstance,
        Value::EndOfMibView => Answer::EndOfMibView,
        other => Answer::OtherType(other.kind().as_str()),
    }
}

/// An async-snmp error as an [`SnmpError`] naming the agent and what to check.
fn classify(e: &async_snmp::Error, addr: SocketAddr, credential: &'static str) -> SnmpError {
    use async_snmp::v3::ReportStatus;
    use async_snmp::Error as E;
    match e {
        E::Exchange { source, .. } => classify(source, addr, credential),
        E::SharedOperation { source } => classify(source, addr, credential),
        E::Timeout {
            elapsed, retries, ..
        } => SnmpError::Timeout {
            addr,
            after_ms: elapsed.as_millis() as u64,
            tries: retries + 1,
            credential,
        },
        E::Auth { .. } => SnmpError::Auth {
            addr,
            detail: "the answer's authentication did not verify".into(),
        },
        E::Report { status, .. } => match status.as_ref() {
            ReportStatus::WrongDigest { .. } => SnmpError::Auth {
                addr,
                detail: "wrong digest: the authentication password or protocol is wrong".into(),
            },
            ReportStatus::UnknownUserName { .. } => SnmpError::Auth {
                addr,
                detail: "unknown user name".into(),
            },
            ReportStatus::UnsupportedSecurityLevel { .. } => SnmpError::Auth {
                addr,
                detail: "the user does not have this security level (auth/priv)".into(),
            },
            ReportStatus::DecryptionError { .. } => SnmpError::Auth {
                addr,
                detail: "decryption failed: the privacy password or protocol is wrong".into(),
            },
            other => SnmpError::Protocol {
                addr,
                detail: format!("SNMPv3 report: {other}"),
            },
        },
        E::Network { source, .. } => SnmpError::Network {
            addr,
            detail: source.to_string(),
        },
        E::Snmp { status, index, .. } => SnmpError::Protocol {
            addr,
            detail: format!("error status {status} at binding {index}"),
        },
        other => SnmpError::Protocol {
            addr,
            detail: other.to_string(),
        },
    }
}

/// The readings of one poll as [`FacilityReading`]s of source `source` (its name in
/// `facility.toml`), a PDU about `subject`, stamped `t_ns` (coordinator clock, the middle of the
/// poll's round trip). A failed poll gives every profile entry absent with the error as its note.
pub fn readings(
    polled: &Result<SnmpPoll, SnmpError>,
    profile: &Profile,
    source: &str,
    subject: &Subject,
    t_ns: i64,
) -> Vec<FacilityReading> {
    let reading = |point: &str, q: FacilityQuantity, oid: &Oid| FacilityReading {
        source: source.to_string(),
        kind: SourceKind::Pdu,
        subject: subject.clone(),
        point: point.to_string(),
        quantity: q,
        uri: oid.to_string(),
        t_ns,
        value: None,
        device_time_ns: None,
        latency_us: None,
        note: None,
    };
    let note = |text: String| Some(bounded_text(text, MAX_FACILITY_NOTE_BYTES));
    match polled {
        Ok(p) => p
            .values
            .iter()
            .map(|v| {
                let mut r = reading(&v.point, v.quantity, &v.oid);
                r.latency_us = Some(u32::try_from(p.latency.as_micros()).unwrap_or(u32::MAX));
                match &v.value {
                    Ok(x) => r.value = Some(*x),
                    Err(why) => r.note = note(why.to_string()),
                }
                r
            })
            .collect(),
        Err(e) => profile
            .entries
            .iter()
            .map(|en| {
                let mut r = reading(&en.point, en.quantity, &en.oid);
                r.note = note(e.to_string());
                r
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;

    fn target(version: SnmpVersion) -> SnmpTarget {
        SnmpTarget {
            addr: "127.0.0.1:161".parse().unwrap(),
            version,
            timeout: Duration::from_secs(1),
            retries: 1,
        }
    }

    fn v3(auth_pw: &str, privacy: bool) -> SnmpVersion {
        SnmpVersion::V3 {
            user: "pdu".into(),
            auth: Some((AuthProtocol::Sha256, Secret::new(auth_pw.into()))),
            privacy: privacy.then(|| (PrivProtocol::Aes128, Secret::new("priv-pass-1".into()))),
        }
    }

    async fn refused(t: SnmpTarget) -> String {
        match SnmpSession::open(&t).await {
            Err(e @ SnmpError::Config { .. }) => e.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_targets_are_refused_before_anything_is_sent() {
        let mut t = target(v3("auth-pass-1", true));
        t.timeout = Duration::ZERO;
        assert!(refused(t).await.contains("timeout 0 ms is not within"));
        let mut t = target(v3("auth-pass-1", true));
        t.retries = MAX_RETRIES + 1;
        assert!(refused(t).await.contains("6 retries, at most 5"));
        let e = refused(target(v3("pw7Xq", false))).await;
        assert!(
            e.contains("at least 8 characters") && !e.contains("pw7Xq"),
            "{e}"
        );
        let e = refused(target(SnmpVersion::V3 {
            user: "pdu".into(),
            auth: None,
            privacy: Some((PrivProtocol::Aes128, Secret::new("priv-pass-1".into()))),
        }))
        .await;
        assert!(e.contains("privacy without authentication"), "{e}");
        assert!(SnmpSession::open(&target(v3("auth-pass-1", true)))
            .await
            .is_ok());
    }

    #[test]
    fn a_failed_poll_gives_every_reading_absent_with_the_reason() {
        let profile = Profile::builtin("raritan-pdu2").unwrap();
        let addr: SocketAddr = "192.0.2.7:161".parse().unwrap();
        let failed = Err(SnmpError::Timeout {
            addr,
            after_ms: 4000,
            tries: 2,
            credential: "community",
        });
        let rs = readings(&failed, &profile, "pdu-r1", &Subject::Rack("r1".into()), 42);
        assert_eq!(rs.len(), profile.entries.len());
        for (r, e) in rs.iter().zip(&profile.entries) {
            assert_eq!((r.value, r.latency_us, r.t_ns), (None, None, 42));
            assert_eq!((r.kind, r.quantity), (SourceKind::Pdu, e.quantity));
            assert_eq!(r.uri, e.oid.to_string());
            let note = r.note.as_deref().unwrap();
            assert!(note.len() <= MAX_FACILITY_NOTE_BYTES, "{note}");
            assert!(
                note.contains("192.0.2.7:161") && note.contains("firewall"),
                "{note}"
            );
        }
        let ok = Ok(SnmpPoll {
            values: vec![
                SnmpValue {
                    point: "inlet/1".into(),
                    quantity: FacilityQuantity::PowerW,
                    oid: profile.entries[0].oid.clone(),
                    value: Ok(6438.1),
                },
                SnmpValue {
                    point: "inlet/1".into(),
                    quantity: FacilityQuantity::EnergyKwh,
                    oid: profile.entries[1].oid.clone(),
                    value: Err(Absent::NoSuchInstance {
                        oid: profile.entries[1].oid.clone(),
                    }),
                },
            ],
            latency: Duration::from_micros(1234),
        });
        let rs = readings(&ok, &profile, "pdu-r1", &Subject::Hall, 7);
        assert_eq!((rs[0].value, rs[0].note.as_deref()), (Some(6438.1), None));
        assert_eq!(rs[0].latency_us, Some(1234));
        assert_eq!(rs[1].value, None);
        assert!(rs[1]
            .note
            .as_deref()
            .unwrap()
            .starts_with("noSuchInstance at 1.3.6.1.4.1.13742"));
    }
}
