//! The SNMP [`Lane`]: one rack PDU's agent, polled with its vendor profile over one kept session
//! (a v3 agent's engine id and time are learnt once), each poll stamped with the middle of its
//! round trip. A failed poll gives every reading of the profile absent with the error as its
//! note; the session is opened again at the next poll.

use super::{Clock, Lane, PollResult};
use crate::config::{SnmpProfile, SnmpSecurity, SnmpSourceConfig};
use crate::snmp::{
    readings, AuthProtocol, PrivProtocol, Profile, SnmpError, SnmpSession, SnmpTarget, SnmpVersion,
    DEFAULT_RETRIES,
};
use hallmark_protocol::facility::{
    bounded_text, FacilityReading, SourceKind, Subject, MAX_FACILITY_NOTE_BYTES,
};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// Why an SNMP source cannot be polled at all: a profile or credentials the file names wrongly.
#[derive(Debug, thiserror::Error)]
#[error("SNMP source {source_name}: {detail}")]
pub struct SnmpSourceError {
    pub source_name: String,
    pub detail: String,
}

/// One SNMP agent (a rack PDU) and its source.
pub struct SnmpLane {
    name: String,
    subject: Subject,
    /// `host:port` as written; resolved at each (re)open.
    address: String,
    version: SnmpVersion,
    timeout: std::time::Duration,
    profile: Profile,
    session: Option<SnmpSession>,
}

impl SnmpLane {
    /// A lane for `source`: its profile read (built in, or its file) and its credentials checked
    /// now, so that a wrong name fails at start, not at every poll.
    pub fn new(source: &SnmpSourceConfig) -> Result<SnmpLane, SnmpSourceError> {
        let err = |detail: String| SnmpSourceError {
            source_name: source.name.clone(),
            detail,
        };
        let profile = match &source.profile {
            SnmpProfile::Builtin(name) => Profile::builtin(name).map_err(|e| err(e.to_string()))?,
            SnmpProfile::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    err(format!("cannot read profile_file {}: {e}", path.display()))
                })?;
                Profile::from_toml(&text, &path.display().to_string())
                    .map_err(|e| err(e.to_string()))?
            }
        };
        let version = match &source.security {
            SnmpSecurity::V2c { community } => SnmpVersion::V2c {
                community: community.clone(),
            },
            SnmpSecurity::V3(v3) => {
                let auth = match &v3.auth {
                    Some((name, secret)) => Some((
                        AuthProtocol::parse(name).ok_or_else(|| {
                            err(format!(
                                "auth_protocol {name:?} is unknown; use one of {}",
                                AuthProtocol::names()
                            ))
                        })?,
                        secret.clone(),
                    )),
                    None => None,
                };
                let privacy = match &v3.privacy {
                    Some((name, secret)) => Some((
                        PrivProtocol::parse(name).ok_or_else(|| {
                            err(format!(
                                "priv_protocol {name:?} is unknown; use one of {}",
                                PrivProtocol::names()
                            ))
                        })?,
                        secret.clone(),
                    )),
                    None => None,
                };
                SnmpVersion::V3 {
                    user: v3.user.clone(),
                    auth,
                    privacy,
                }
            }
        };
        Ok(SnmpLane {
            name: source.name.clone(),
            subject: source.subject.clone(),
            address: source.address.clone(),
            version,
            timeout: source.timeout,
            profile,
            session: None,
        })
    }

    /// The agent's address (port 161 unless given).
    async fn resolve(&self) -> Result<SocketAddr, String> {
        let with_port = if self.address.parse::<SocketAddr>().is_ok()
            || self.address.rsplit_once(':').is_some_and(|(h, p)| {
                !h.contains(':') && p.parse::<u16>().is_ok() || h.ends_with(']')
            }) {
            self.address.clone()
        } else if self.address.contains(':') {
            format!("[{}]:161", self.address)
        } else {
            format!("{}:161", self.address)
        };
        let mut addrs = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| format!("cannot resolve SNMP address {}: {e}", self.address))?;
        addrs
            .next()
            .ok_or_else(|| format!("SNMP address {} resolves to nothing", self.address))
    }

    async fn poll_once(&mut self, clock: &Clock) -> PollResult {
        let start = clock();
        if self.session.is_none() {
            let addr = match self.resolve().await {
                Ok(a) => a,
                Err(why) => return self.failed(clock, why),
            };
            let target = SnmpTarget {
                addr,
                version: self.version.clone(),
                timeout: self.timeout,
                retries: DEFAULT_RETRIES,
            };
            match SnmpSession::open(&target).await {
                Ok(s) => self.session = Some(s),
                Err(e) => return self.result(start, Err(e)),
            }
        }
        let Some(session) = self.session.as_ref() else {
            return self.failed(clock, "no SNMP session".into());
        };
        let a = clock();
        let polled = session.poll(&self.profile).await;
        let b = clock();
        if polled.is_err() {
            self.session = None;
        }
        self.result(a + (b - a).max(0) / 2, polled)
    }

    /// The readings of `polled`, stamped `t_ns`; a failure is the poll's failure.
    fn result(&self, t_ns: i64, polled: Result<crate::snmp::SnmpPoll, SnmpError>) -> PollResult {
        let readings = readings(&polled, &self.profile, &self.name, &self.subject, t_ns);
        let reachable = polled.is_ok();
        PollResult {
            readings,
            failure: polled.err().map(|e| e.to_string()),
            reachable,
            sensing_s: None,
        }
    }

    /// Every reading of the profile absent with `why` as its note, stamped now.
    fn failed(&self, clock: &Clock, why: String) -> PollResult {
        let note = bounded_text(why.clone(), MAX_FACILITY_NOTE_BYTES);
        let t_ns = clock();
        let out = self
            .profile
            .entries
            .iter()
            .map(|e| FacilityReading {
                source: self.name.clone(),
                kind: SourceKind::Pdu,
                subject: self.subject.clone(),
                point: e.point.clone(),
                quantity: e.quantity,
                uri: e.oid.to_string(),
                t_ns,
                value: None,
                device_time_ns: None,
                latency_us: None,
                note: Some(note.clone()),
            })
            .collect();
        PollResult {
            readings: out,
            failure: Some(why),
            reachable: false,
            sensing_s: None,
        }
    }
}

impl Lane for SnmpLane {
    fn poll<'a>(
        &'a mut self,
        _source: usize,
        clock: &'a Clock,
    ) -> Pin<Box<dyn Future<Output = PollResult> + Send + 'a>> {
        Box::pin(self.poll_once(clock))
    }

    fn close(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.session = None;
        Box::pin(async {})
    }
}
