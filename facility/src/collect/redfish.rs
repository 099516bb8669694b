//! The Redfish lane: one [`RedfishClient`] per service origin, kept alive (and logged in once when
//! set up for a session), polling the sources on that origin one request at a time.
//!
//! A source's first poll finds what to read (its resource, then the collections it links to:
//! mains, outlets, coolant connectors, power supplies); later polls GET only those resources, and
//! the Sensors named by their `DataSourceUri`s: a Sensor is read once for its `SensingInterval`
//! and `Accuracy`, and again on each poll only when it states a `ReadingTime` (at most
//! [`MAX_SENSORS_PER_POLL`]). A failed request makes what it would have given absent with a note,
//! and the source's resources are found again on its next poll.

use super::extract::{self, Role, SourceMeta, Stamp, Target};
use super::{Clock, Lane, PollResult};
use crate::config::RedfishSourceConfig;
use crate::error::FacilityError;
use crate::reading::SensorInfo;
use crate::url::Url;
use crate::{model, RedfishClient};
use hallmark_protocol::facility::{FacilityQuantity as Q, FacilityReading, SourceKind};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Sensors read at most in one poll of a source.
pub const MAX_SENSORS_PER_POLL: usize = 16;
/// Resources read at most to find what a source's polls read.
const MAX_DISCOVERY_REQUESTS: usize = 2 + 3 * extract::MAX_MEMBERS;

/// What reading a source's targets gave.
struct Read {
    readings: Vec<FacilityReading>,
    /// (index into `readings`, the Sensor's URL).
    sensors: Vec<(usize, String)>,
    first_error: Option<FacilityError>,
    read_any: bool,
}

struct Source {
    meta: SourceMeta,
    resource: Url,
    timeout: Duration,
    plan: Option<std::sync::Arc<Vec<Target>>>,
    /// Sensor URL → what it said, `None` when it could not be read (not tried again).
    sensors: HashMap<String, Option<SensorInfo>>,
}

/// The sources of one Redfish service.
pub struct RedfishLane {
    client: RedfishClient,
    /// The client's connect and read timeout: the longest of its sources'.
    client_timeout: Duration,
    logged_in: bool,
    sources: Vec<Source>,
}

impl RedfishLane {
    /// A lane for `sources`, all on one origin with the same client settings (the configuration
    /// guarantees it).
    pub fn new(sources: &[&RedfishSourceConfig]) -> Result<RedfishLane, FacilityError> {
        let first = sources.first().ok_or_else(|| FacilityError::InvalidUrl {
            url: String::new(),
            detail: "a lane needs a source".into(),
        })?;
        let mut opts = first.client_options();
        let longest = sources
            .iter()
            .map(|s| s.timeout)
            .max()
            .unwrap_or(first.timeout);
        opts.read_timeout = longest;
        opts.connect_timeout = longest;
        let client = RedfishClient::new(&first.origin, opts)?;
        let sources = sources
            .iter()
            .map(|s| {
                Ok(Source {
                    meta: SourceMeta {
                        name: s.name.clone(),
                        kind: s.kind,
                        subject: s.subject.clone(),
                        max_reading_age_s: s.max_reading_age_s,
                    },
                    resource: Url::parse(&s.url())?,
                    timeout: s.timeout,
                    plan: None,
                    sensors: HashMap::new(),
                })
            })
            .collect::<Result<_, FacilityError>>()?;
        Ok(RedfishLane {
            client,
            client_timeout: longest,
            logged_in: false,
            sources,
        })
    }
}

/// A short note for a failed request: what happened and what to do (the log has the whole error).
pub fn short(e: &FacilityError) -> String {
    match e {
        FacilityError::Connect { detail, .. } => {
            format!("unreachable ({detail}); check url and that the service is up")
        }
        FacilityError::Tls { .. }
        | FacilityError::NeedsTrust { .. }
        | FacilityError::CaFile { .. } => {
            "TLS refused; check `ca` (the CA that signed the service) or set insecure".into()
        }
        FacilityError::Unauthorized { status, .. } => {
            format!("credentials refused (HTTP {status}); check username and password")
        }
        FacilityError::Session { .. } => {
            "session login failed; check credentials, or session = false".into()
        }
        FacilityError::RedirectLoop { .. } | FacilityError::TooManyRedirects { .. } => {
            "redirect loop or chain too long; fix the service's redirect or the url".into()
        }
        FacilityError::BodyTooLarge { limit, .. } => {
            format!("answer larger than {limit} bytes; the service misbehaves")
        }
        FacilityError::Json { .. } => "answer is not valid JSON; the service misbehaves".into(),
        FacilityError::Malformed { what, .. } => {
            format!("answer is no valid {what}; check `resource`")
        }
        FacilityError::Timeout { after_ms, .. } => {
            format!("no answer within {after_ms} ms; check the service or raise timeout_s")
        }
        FacilityError::Status { status, .. } => {
            format!("HTTP {status}; check `resource` and the account's rights")
        }
        FacilityError::Http { detail, .. } => format!("HTTP exchange failed ({detail})"),
        FacilityError::InvalidUrl { detail, .. } => format!("bad address ({detail})"),
        FacilityError::Credentials { .. } => "credentials unreadable".into(),
    }
}

impl RedfishLane {
    /// GETs `url` within the source's timeout, stamped with the middle of the round trip.
    async fn get(
        &mut self,
        url: &Url,
        timeout: Duration,
        clock: &Clock,
    ) -> (Result<serde_json::Value, FacilityError>, Stamp) {
        let a = clock();
        let r = if timeout >= self.client_timeout {
            // The client's own connect and read timeouts bound it already.
            self.client.get_json(url).await.map(|f| f.body)
        } else {
            match tokio::time::timeout(timeout, self.client.get_json(url)).await {
                Ok(r) => r.map(|f| f.body),
                Err(_) => Err(FacilityError::Timeout {
                    uri: url.to_string(),
                    what: "waiting for the answer",
                    after_ms: timeout.as_millis() as u64,
                }),
            }
        };
        let b = clock();
        let rtt = (b - a).max(0);
        let stamp = Stamp {
            t_ns: a + rtt / 2,
            latency_us: Some(u32::try_from(rtt / 1000).unwrap_or(u32::MAX)),
        };
        (r, stamp)
    }

    /// The resources source `i`'s polls read.
    async fn discover(&mut self, i: usize, clock: &Clock) -> Result<Vec<Target>, FacilityError> {
        let (resource, timeout, kind) = {
            let s = &self.sources[i];
            (s.resource.clone(), s.timeout, s.meta.kind)
        };
        let malformed = |uri: &Url, what, detail: String| FacilityError::Malformed {
            uri: uri.to_string(),
            what,
            detail,
        };
        let (body, _) = self.get(&resource, timeout, clock).await;
        let links = extract::links(kind, &body?)
            .map_err(|d| malformed(&resource, "facility resource", d))?;
        let mut plan = links.targets;
        let mut requests = 1;
        for (path, prefix) in links.collections {
            let mut coll = resource.join(&path)?;
            if prefix == "psu" {
                // PowerSubsystem → its PowerSupplies collection.
                let (b, _) = self.get(&coll, timeout, clock).await;
                requests += 1;
                let p: model::PowerSubsystem = serde_json::from_value(b?)
                    .map_err(|e| malformed(&coll, "PowerSubsystem", e.to_string()))?;
                let Some(l) = p.power_supplies else { continue };
                coll = coll.join(&l.odata_id)?;
            }
            let (b, _) = self.get(&coll, timeout, clock).await;
            requests += 1;
            let members =
                extract::members(&b?).map_err(|d| malformed(&coll, "resource collection", d))?;
            let n = members.len();
            for (path, id) in members {
                let point = extract::member_point(prefix, &id, n);
                let role = match prefix {
                    "mains" | "outlet" => Role::Circuit { point },
                    "primary" | "secondary" => Role::Connector { point },
                    _ => {
                        if requests >= MAX_DISCOVERY_REQUESTS {
                            break;
                        }
                        let psu = coll.join(&path)?;
                        let (b, _) = self.get(&psu, timeout, clock).await;
                        requests += 1;
                        if let Some(t) = extract::psu_target(&b?, point)
                            .map_err(|d| malformed(&psu, "PowerSupply", d))?
                        {
                            plan.push(t);
                        }
                        continue;
                    }
                };
                plan.push(Target { path, role });
            }
        }
        Ok(plan)
    }

    async fn poll_source(&mut self, i: usize, clock: &Clock) -> PollResult {
        let (uri, meta, timeout) = {
            let s = &self.sources[i];
            (s.resource.to_string(), s.meta.clone(), s.timeout)
        };
        let fail = |e: &FacilityError, clock: &Clock| {
            let now = clock();
            PollResult {
                readings: extract::failed(
                    &meta,
                    &uri,
                    &short(e),
                    Stamp {
                        t_ns: now,
                        latency_us: None,
                    },
                ),
                failure: Some(e.to_string()),
                reachable: false,
                sensing_s: None,
            }
        };
        if !self.logged_in {
            if let Err(e) = tokio::time::timeout(timeout * 2, self.client.login())
                .await
                .unwrap_or_else(|_| {
                    Err(FacilityError::Timeout {
                        uri: uri.clone(),
                        what: "logging in",
                        after_ms: (timeout * 2).as_millis() as u64,
                    })
                })
            {
                return fail(&e, clock);
            }
            self.logged_in = true;
        }
        let plan = match self.sources[i].plan.clone() {
            Some(p) => p,
            None => match self.discover(i, clock).await {
                Ok(p) => std::sync::Arc::new(p),
                Err(e) => {
                    if matches!(e, FacilityError::Unauthorized { .. }) {
                        // A session may have expired: log in again next time.
                        self.logged_in = false;
                    }
                    return fail(&e, clock);
                }
            },
        };
        let Read {
            mut readings,
            sensors,
            first_error,
            read_any,
        } = self.read_targets(i, &plan, &meta, clock).await;
        let sensing_s = self.read_sensors(i, &mut readings, &sensors, clock).await;
        if meta.kind == SourceKind::Cdu {
            let now = clock();
            let total = extract::cdu_total(
                &meta,
                &uri,
                &readings,
                Stamp {
                    t_ns: now,
                    latency_us: None,
                },
            );
            readings.push(total);
        }
        if plan.is_empty() && first_error.is_none() {
            let stamp = Stamp {
                t_ns: clock(),
                latency_us: None,
            };
            readings = extract::failed(&meta, &uri, "its resource links nothing read here (Metrics, EnvironmentMetrics, connectors); check `resource`", stamp);
        }
        if !read_any && matches!(first_error, Some(FacilityError::Unauthorized { .. })) {
            // A session may have expired: log in again next time.
            self.logged_in = false;
        }
        self.sources[i].plan = if first_error.is_some() {
            None
        } else {
            Some(plan)
        };
        PollResult {
            readings,
            failure: first_error.map(|e| e.to_string()),
            reachable: read_any,
            sensing_s,
        }
    }

    /// GETs every target of source `i`'s plan and extracts its readings; a failed target gives
    /// its readings absent, and an error that ends the walk (unreachable, TLS, 401) ends the poll.
    async fn read_targets(
        &mut self,
        i: usize,
        plan: &[Target],
        meta: &SourceMeta,
        clock: &Clock,
    ) -> Read {
        let resource = self.sources[i].resource.clone();
        let mut readings: Vec<FacilityReading> = Vec::new();
        let mut sensors: Vec<(usize, String)> = Vec::new();
        let mut first_error: Option<FacilityError> = None;
        let mut read_any = false;
        for t in plan {
            let url = match resource.join(&t.path) {
                Ok(u) => u,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let (body, stamp) = self.get(&url, self.sources[i].timeout, clock).await;
            let got = body.and_then(|b| {
                extract::extract(meta, &t.role, &url.to_string(), &b, stamp).map_err(|d| {
                    FacilityError::Malformed {
                        uri: url.to_string(),
                        what: "facility resource",
                        detail: d,
                    }
                })
            });
            match got {
                Ok(ex) => {
                    read_any = true;
                    for x in ex {
                        if let Some(s) = x
                            .sensor
                            .and_then(|s| url.join(&s).ok())
                            .filter(|s| s.same_origin(&url))
                        {
                            sensors.push((readings.len(), s.to_string()));
                        }
                        readings.push(x.reading);
                    }
                }
                Err(e) => {
                    readings.extend(target_failed(
                        meta,
                        &t.role,
                        &url.to_string(),
                        &short(&e),
                        stamp,
                    ));
                    let ends = e.ends_walk();
                    first_error.get_or_insert(e);
                    if ends {
                        break;
                    }
                }
            }
        }
        Read {
            readings,
            sensors,
            first_error,
            read_any,
        }
    }

    /// Reads the Sensors behind `readings` (index, URL) where needed and applies them; returns the
    /// slowest `SensingInterval` among the source's Sensors.
    async fn read_sensors(
        &mut self,
        i: usize,
        readings: &mut [FacilityReading],
        sensors: &[(usize, String)],
        clock: &Clock,
    ) -> Option<f64> {
        let timeout = self.sources[i].timeout;
        let max_age = self.sources[i].meta.max_reading_age_s;
        let mut read: HashMap<String, Option<SensorInfo>> = HashMap::new();
        for (k, uri) in sensors {
            let cached = self.sources[i].sensors.get(uri).cloned();
            let refresh = match &cached {
                None => true,
                Some(Some(info)) => info.reading_time.is_some(),
                Some(None) => false,
            };
            let info = if refresh && read.len() < MAX_SENSORS_PER_POLL && !read.contains_key(uri) {
                let Ok(url) = Url::parse(uri) else { continue };
                let (body, _) = self.get(&url, timeout, clock).await;
                let info = body
                    .ok()
                    .and_then(|b| serde_json::from_value::<model::Sensor>(b).ok())
                    .map(|s| SensorInfo::from_sensor(uri, &s));
                read.insert(uri.clone(), info.clone());
                self.sources[i].sensors.insert(uri.clone(), info.clone());
                info
            } else {
                read.get(uri).cloned().unwrap_or(cached.flatten())
            };
            if let Some(info) = info {
                extract::apply_sensor(&mut readings[*k], &info, clock(), max_age);
            }
        }
        self.sources[i]
            .sensors
            .values()
            .flatten()
            .filter_map(|s| s.sensing_interval_s)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    }
}

/// The readings a target of `role` would have given, absent with `why`.
fn target_failed(
    meta: &SourceMeta,
    role: &Role,
    uri: &str,
    why: &str,
    stamp: Stamp,
) -> Vec<FacilityReading> {
    let (point, qs): (&str, &[Q]) = match role {
        Role::PduMetrics => ("", &[Q::PowerW, Q::EnergyKwh]),
        Role::Circuit { point } | Role::PsuMetrics { point } => (point, &[Q::PowerW]),
        Role::Connector { point } => (
            point,
            &[Q::SupplyTempC, Q::ReturnTempC, Q::FlowLpm, Q::HeatRemovedKw],
        ),
        Role::EnvMetrics => ("", &[Q::PowerW]),
    };
    qs.iter()
        .map(|&q| {
            let mut r = extract::blank(meta, point, q, uri.to_string(), stamp);
            r.note = Some(hallmark_protocol::facility::bounded_text(
                format!("{}: {why}", meta.name),
                hallmark_protocol::facility::MAX_FACILITY_NOTE_BYTES,
            ));
            r
        })
        .collect()
}

impl Lane for RedfishLane {
    fn poll<'a>(
        &'a mut self,
        source: usize,
        clock: &'a Clock,
    ) -> Pin<Box<dyn Future<Output = PollResult> + Send + 'a>> {
        Box::pin(self.poll_source(source, clock))
    }

    fn close(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.client.close())
    }
}
