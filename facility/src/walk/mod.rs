//! The walk of a Redfish service as a sans-IO state machine: it says which resource to GET next
//! ([`Walk::next_request`]), takes each answer ([`Walk::on_response`]) and, at the end, is
//! turned into an [`Inventory`] with the time of the check passed in ([`Walk::finish`]). No
//! sockets, no clock: `discover` in `lib.rs` is the thin async shell that does the I/O.
//!
//! From the service root it follows `PowerEquipment` → `RackPDUs` (each PDU's `Metrics`, `Mains`,
//! `Branches`, `Outlets`), `ThermalEquipment` → `CDUs` (their primary and secondary coolant
//! connectors) and `Chassis` (`EnvironmentMetrics`, `PowerSubsystem` power supplies and their
//! metrics, `ThermalSubsystem` coolant connectors), collections page by page
//! (`Members@odata.nextLink`). Headline readings (PDU power and energy, every coolant-connector
//! reading, chassis power, power-supply input power) have their `DataSourceUri` Sensor read too,
//! once per Sensor. Circuits, outlets and Sensors wait until the main resources are read, and the
//! walk reads at most `max_resources` resources, each URI once.

use crate::client::Fetched;
use crate::error::FacilityError;
use crate::finding::{Finding, FindingKind};
use crate::heat::HeatTolerance;
use crate::inventory::Inventory;
use crate::model;
use crate::url::Url;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet, VecDeque};

mod gathered;
mod handle;

pub(crate) use gathered::*;

/// Bounds and tolerances of a walk.
#[derive(Clone, Debug)]
pub struct WalkOptions {
    /// Resources read at most (Sensors included).
    pub max_resources: usize,
    /// A reading whose Sensor's `ReadingTime` is further than this from now (either way) is
    /// stale: absent, with a finding. `None`: no such check.
    pub max_reading_age_s: Option<f64>,
    /// Read the Sensor behind each headline reading (`DataSourceUri`).
    pub follow_sensors: bool,
    pub heat_tolerance: HeatTolerance,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            max_resources: 1000,
            max_reading_age_s: Some(300.0),
            follow_sensors: true,
            heat_tolerance: HeatTolerance::default(),
        }
    }
}

/// A GET the walk wants done.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: u64,
    pub url: Url,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CircuitKind {
    Mains,
    Branch,
    Outlet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Primary,
    Secondary,
    Chassis,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Owner {
    Cdu(usize),
    Chassis(usize),
}

#[derive(Clone, Copy, Debug)]
enum Coll {
    Pdus,
    Cdus,
    Chassis,
    Circuits(usize, CircuitKind),
    Connectors(Owner, Side),
    Psus(usize),
}

#[derive(Clone, Copy, Debug)]
enum Job {
    Root,
    PowerEquipment,
    ThermalEquipment,
    Collection(Coll),
    Pdu,
    PduMetrics(usize),
    Circuit(usize, CircuitKind),
    Cdu,
    Connector(Owner, Side),
    Chassis,
    EnvMetrics(usize),
    PowerSubsystem(usize),
    Psu(usize),
    PsuMetrics(usize, usize),
    ThermalSubsystem(usize),
    Sensor,
}

pub(crate) type SlotId = usize;
/// The walk of one service.
#[derive(Debug)]
pub struct Walk {
    opts: WalkOptions,
    root: Url,
    high: VecDeque<(Url, Job)>,
    low: VecDeque<(Url, Job)>,
    seen: HashSet<String>,
    sensor_waiters: HashMap<String, Vec<SlotId>>,
    pending: HashMap<u64, (Url, Job)>,
    next_id: u64,
    read: usize,
    stopped: Option<String>,
    fatal: Option<FacilityError>,
    g: Gathered,
}

impl Walk {
    /// A walk starting at the service root `root`.
    pub fn new(root: Url, opts: WalkOptions) -> Walk {
        let mut w = Walk {
            opts,
            root: root.clone(),
            high: VecDeque::new(),
            low: VecDeque::new(),
            seen: HashSet::new(),
            sensor_waiters: HashMap::new(),
            pending: HashMap::new(),
            next_id: 0,
            read: 0,
            stopped: None,
            fatal: None,
            g: Gathered::default(),
        };
        w.queue(root, Job::Root);
        w
    }

    /// The next GET to do, or `None` when the walk is done (or bounded, or failed).
    pub fn next_request(&mut self) -> Option<Request> {
        if self.fatal.is_some() || self.stopped.is_some() {
            return None;
        }
        if self.high.is_empty() && self.low.is_empty() {
            return None;
        }
        if self.read >= self.opts.max_resources {
            self.stop(format!(
                "it read {} resources, its bound (--max-resources)",
                self.opts.max_resources
            ));
            return None;
        }
        let (url, job) = self.high.pop_front().or_else(|| self.low.pop_front())?;
        self.read += 1;
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, (url.clone(), job));
        Some(Request { id, url })
    }

    /// Stops the walk early (the shell's time bound); what was not read is absent.
    pub fn stop(&mut self, reason: String) {
        if self.stopped.is_none() {
            self.stopped = Some(reason);
        }
    }

    /// Resources read so far.
    pub fn resources_read(&self) -> usize {
        self.read
    }

    /// Takes the answer to request `id`.
    pub fn on_response(&mut self, id: u64, result: Result<Fetched, FacilityError>) {
        let Some((url, job)) = self.pending.remove(&id) else {
            return;
        };
        match result {
            Ok(f) => self.handle(&url, job, f),
            Err(e) if matches!(job, Job::Root) || e.ends_walk() => {
                self.high.clear();
                self.low.clear();
                self.fatal = Some(e);
            }
            Err(e) if matches!(job, Job::Sensor) => self.sensor_failed(&url, &e.to_string()),
            Err(e) => self.g.findings.push(Finding::new(
                FindingKind::Unreadable,
                url.to_string(),
                format!("{e}; what it holds is left out (absent)"),
            )),
        }
    }

    /// The inventory, checked at `now` (for reading times). A walk that could not read the
    /// service root, or that met an error meaning the service cannot be read at all, is that error.
    pub fn finish(mut self, now: time::OffsetDateTime) -> Result<Inventory, FacilityError> {
        if let Some(e) = self.fatal.take() {
            return Err(e);
        }
        if let Some(reason) = &self.stopped {
            let left = self.high.len() + self.low.len();
            self.g.findings.push(
                Finding::new(
                    FindingKind::WalkBounded,
                    self.root.to_string(),
                    format!("the walk stopped because {reason}; {left} resources queued were not read and what they hold is absent"),
                )
                .with("resources_read", self.read as f64)
                .with("resources_not_read", left as f64),
            );
        }
        Ok(crate::assemble::assemble(
            self.root.to_string(),
            self.g,
            &self.opts,
            now,
            self.read,
        ))
    }

    fn queue(&mut self, url: Url, job: Job) {
        if !self.seen.insert(url.to_string()) {
            return;
        }
        let low = matches!(job, Job::Circuit(..) | Job::Collection(Coll::Circuits(..)));
        if low {
            self.low.push_back((url, job));
        } else {
            self.high.push_back((url, job));
        }
    }

    fn link(&mut self, base: &Url, link: Option<&model::Link>, job: Job) {
        let Some(l) = link else { return };
        match self.within(base, &l.odata_id) {
            Ok(u) => self.queue(u, job),
            Err(why) => {
                self.g
                    .findings
                    .push(Finding::new(FindingKind::Unreadable, base.to_string(), why))
            }
        }
    }

    /// `reference` resolved against `base` when it stays on the service's origin: the walk never
    /// follows a service to another host (which would also go there without credentials).
    fn within(&self, base: &Url, reference: &str) -> Result<Url, String> {
        match base.join(reference) {
            Ok(u) if u.same_origin(&self.root) => Ok(u),
            Ok(u) => Err(format!("it links to {u}, outside the service {}; not followed (walk that service separately)", self.root)),
            Err(e) => Err(format!("a link that is no URI: {e}")),
        }
    }

    fn parse<T: DeserializeOwned>(
        &mut self,
        url: &Url,
        body: serde_json::Value,
        what: &'static str,
    ) -> Option<T> {
        match serde_json::from_value(body) {
            Ok(v) => Some(v),
            Err(e) => {
                let e = FacilityError::Malformed {
                    uri: url.to_string(),
                    what,
                    detail: e.to_string(),
                };
                self.g.findings.push(Finding::new(
                    FindingKind::Unreadable,
                    url.to_string(),
                    format!("{e}; what it holds is left out (absent)"),
                ));
                None
            }
        }
    }
}

fn member_job(c: Coll) -> Job {
    match c {
        Coll::Pdus => Job::Pdu,
        Coll::Cdus => Job::Cdu,
        Coll::Chassis => Job::Chassis,
        Coll::Circuits(i, k) => Job::Circuit(i, k),
        Coll::Connectors(o, s) => Job::Connector(o, s),
        Coll::Psus(i) => Job::Psu(i),
    }
}
