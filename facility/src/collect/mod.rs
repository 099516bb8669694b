//! The facility collector: polls every source of a `facility.toml` at its own rate and hands the
//! readings, stamped on the caller's clock, to a channel (docs/FACILITY.md, "The collector").
//!
//! - [`schedule`]: when each source is due (sans-IO, driven by `now_ns`);
//! - [`extract`]: Redfish resources to [`FacilityReading`]s (sans-IO);
//! - [`redfish`]: the Redfish [`Lane`], one client per service origin;
//! - [`snmp`]: the SNMP [`Lane`], one session per rack PDU's agent;
//! - this module: the async shell, [`Collector`] and [`run_collector`].
//!
//! Sources are polled through [`Lane`]s: a lane owns the connection to one service (or one SNMP
//! agent) and polls its sources one at a time; lanes run side by side, at most
//! [`MAX_IN_FLIGHT`] polls at once. A poll that fails gives the source's readings absent, each
//! with a note naming the source and the fix; the source backs off (up to 30 s) and the collector
//! goes on. A change of a source's state (failing, failing otherwise, recovered) is logged once,
//! not on every poll.

pub mod extract;
pub mod redfish;
pub mod schedule;
pub mod snmp;

use crate::config::{FacilityConfig, RedfishSourceConfig, SourceConfig};
use crate::error::FacilityError;
use hallmark_protocol::facility::FacilityReading;
use schedule::{Change, Schedule};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// Polls in flight at most, over all lanes.
pub const MAX_IN_FLIGHT: usize = 64;
/// Readings are handed on together: at most this long after the first of them is read…
const FLUSH_AFTER: Duration = Duration::from_millis(100);
/// …or as soon as this many wait.
const FLUSH_READINGS: usize = 1024;
/// How long a stopping collector waits for its lanes to close (Redfish sessions deleted).
const CLOSE_BOUND: Duration = Duration::from_secs(5);

/// The caller's clock: ns (the coordinator's clock in a probe, ns since the UNIX epoch).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What one poll of one source gave.
#[derive(Debug, Clone)]
pub struct PollResult {
    /// Every reading, absent ones with their note.
    pub readings: Vec<FacilityReading>,
    /// What went wrong, where anything did (the whole error, for the log).
    pub failure: Option<String>,
    /// The source answered at least once: a failure of part of it does not back it off.
    pub reachable: bool,
    /// The slowest `SensingInterval` (s) the source's meters state, where any does.
    pub sensing_s: Option<f64>,
}

/// A connection to one service or agent that polls its sources, one at a time. The collector
/// calls `poll` with the lane's own source index (the order the sources were added in).
pub trait Lane: Send + 'static {
    fn poll<'a>(
        &'a mut self,
        source: usize,
        clock: &'a Clock,
    ) -> Pin<Box<dyn Future<Output = PollResult> + Send + 'a>>;

    /// Ends the lane's sessions; called once when the collector stops.
    fn close(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// A source as the schedule knows it.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub name: String,
    pub interval: Duration,
}

/// What a collector did, when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectorStats {
    pub polls: u64,
    /// Polls that got nothing from their source.
    pub failed_polls: u64,
    pub readings: u64,
}

/// The sources of a facility file on their lanes, ready to run.
pub struct Collector {
    sources: Vec<(Scheduled, usize, usize)>,
    lanes: Vec<Box<dyn Lane>>,
    seed: u64,
}

impl Collector {
    /// The Redfish sources of `config` on one lane per origin, each SNMP source (a PDU's agent)
    /// on a lane of its own.
    pub fn new(config: &FacilityConfig) -> Result<Collector, CollectError> {
        let mut by_origin: Vec<(String, Vec<&RedfishSourceConfig>)> = Vec::new();
        let mut snmp_lanes = Vec::new();
        for s in &config.sources {
            match s {
                SourceConfig::Redfish(r) => {
                    match by_origin.iter_mut().find(|(o, _)| *o == r.origin) {
                        Some((_, v)) => v.push(r),
                        None => by_origin.push((r.origin.clone(), vec![r])),
                    }
                }
                SourceConfig::Snmp(s) => snmp_lanes.push((snmp::SnmpLane::new(s)?, s)),
            }
        }
        let mut c = Collector {
            sources: Vec::new(),
            lanes: Vec::new(),
            seed: 0,
        };
        for (lane, s) in snmp_lanes {
            let scheduled = vec![Scheduled {
                name: s.name.clone(),
                interval: s.interval,
            }];
            c.add_lane(Box::new(lane), scheduled);
        }
        for (_, group) in by_origin {
            let lane = redfish::RedfishLane::new(&group)?;
            let scheduled = group
                .iter()
                .map(|r| Scheduled {
                    name: r.name.clone(),
                    interval: r.interval,
                })
                .collect();
            c.add_lane(Box::new(lane), scheduled);
        }
        Ok(c)
    }

    /// Adds a lane polling `sources` (its index `k` is `sources[k]`).
    pub fn add_lane(&mut self, lane: Box<dyn Lane>, sources: Vec<Scheduled>) {
        let l = self.lanes.len();
        self.lanes.push(lane);
        for (k, s) in sources.into_iter().enumerate() {
            self.sources.push((s, l, k));
        }
    }

    /// Sources polled, over all lanes.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// The seed of the first polls' spread over each interval (default 0).
    pub fn with_seed(mut self, seed: u64) -> Collector {
        self.seed = seed;
        self
    }

    /// Polls until `shutdown` completes or `sink` is closed; closes every lane (bounded) and
    /// says what it did. Readings go to `sink` in batches of what was read within 100 ms (at
    /// most 1 024 readings, or one poll's readings if more), each batch in the order read.
    pub async fn run(
        mut self,
        clock: Clock,
        sink: mpsc::Sender<Vec<FacilityReading>>,
        shutdown: impl Future<Output = ()>,
    ) -> CollectorStats {
        let intervals: Vec<i64> = self
            .sources
            .iter()
            .map(|(s, _, _)| i64::try_from(s.interval.as_nanos()).unwrap_or(i64::MAX))
            .collect();
        let mut sched = Schedule::new(&intervals, clock(), self.seed);
        let (done_tx, mut done_rx) =
            mpsc::channel::<(usize, PollResult)>(self.sources.len().max(1));
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut jobs = Vec::new();
        let mut tasks = Vec::new();
        for (l, mut lane) in std::mem::take(&mut self.lanes).into_iter().enumerate() {
            let n = self.sources.iter().filter(|s| s.1 == l).count().max(1);
            let (tx, mut rx) = mpsc::channel::<(usize, usize)>(n);
            jobs.push(tx);
            let (done, permits, clock) = (done_tx.clone(), permits.clone(), clock.clone());
            tasks.push(tokio::spawn(async move {
                while let Some((global, local)) = rx.recv().await {
                    let Ok(_permit) = permits.acquire().await else {
                        break;
                    };
                    let r = lane.poll(local, &clock).await;
                    if done.send((global, r)).await.is_err() {
                        break;
                    }
                }
                let _ = tokio::time::timeout(CLOSE_BOUND, lane.close()).await;
            }));
        }
        drop(done_tx);
        let mut stats = CollectorStats::default();
        let mut partial: HashMap<usize, String> = HashMap::new();
        tokio::pin!(shutdown);
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        // Readings wait at most FLUSH_AFTER (or until FLUSH_READINGS) to go out together.
        let mut pending: Vec<FacilityReading> = Vec::new();
        let mut flush_at: Option<tokio::time::Instant> = None;
        'run: loop {
            let (due, mut next_wake) = sched.due_and_next(clock());
            for i in due {
                let (_, l, k) = &self.sources[i];
                if jobs[*l].try_send((i, *k)).is_err() {
                    // Never full (one slot per source, each in flight once); a lane that died.
                    sched.on_failure(i, clock(), "its polling task ended".into());
                    let due = sched.state(i).next_due_ns;
                    next_wake = Some(next_wake.map_or(due, |w| w.min(due)));
                }
            }
            let now = tokio::time::Instant::now();
            if flush_at.is_some_and(|t| t <= now) || pending.len() >= FLUSH_READINGS {
                flush_at = None;
                tokio::select! {
                    sent = sink.send(std::mem::take(&mut pending)) => if sent.is_err() {
                        tracing::info!("the facility readings' receiver is gone; the collector stops");
                        break 'run;
                    },
                    _ = &mut shutdown => break 'run,
                }
            }
            let sleep_ns =
                next_wake.map_or(1_000_000_000, |w| (w - clock()).clamp(0, 1_000_000_000));
            let mut wake = now + Duration::from_nanos(sleep_ns as u64);
            if let Some(t) = flush_at {
                wake = wake.min(t);
            }
            sleep.as_mut().reset(wake);
            tokio::select! {
                _ = &mut shutdown => break 'run,
                done = done_rx.recv() => {
                    let Some((i, r)) = done else { break 'run };
                    stats.polls += 1;
                    self.note(&mut sched, &mut partial, &mut stats, i, &r, clock());
                    stats.readings += r.readings.len() as u64;
                    if !r.readings.is_empty() {
                        flush_at.get_or_insert(now + FLUSH_AFTER);
                        pending.extend(r.readings);
                    }
                }
                _ = &mut sleep => {}
            }
        }
        if !pending.is_empty() {
            // What was read before the stop still goes out (unless nobody takes it within the bound).
            let _ = tokio::time::timeout(CLOSE_BOUND, sink.send(pending)).await;
        }
        // Lanes end after their poll in hand, then close their sessions; all within one bound.
        drop(jobs);
        drop(done_rx);
        let deadline = tokio::time::Instant::now() + CLOSE_BOUND;
        for t in &mut tasks {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
        for t in tasks {
            t.abort();
        }
        stats
    }

    /// Takes a poll's end into the schedule and logs a change of the source's state.
    fn note(
        &self,
        sched: &mut Schedule,
        partial: &mut HashMap<usize, String>,
        stats: &mut CollectorStats,
        i: usize,
        r: &PollResult,
        now: i64,
    ) {
        let name = &self.sources[i].0.name;
        match (&r.failure, r.reachable) {
            (Some(why), false) => {
                stats.failed_polls += 1;
                partial.remove(&i);
                if sched.on_failure(i, now, why.clone()) == Change::Failing {
                    let wait_s = (sched.state(i).next_due_ns - now) as f64 / 1e9;
                    tracing::warn!(source = %name, "facility source unreadable: {why}; its readings are absent, retrying in {wait_s:.1} s and backing off up to 30 s");
                }
            }
            (failure, _) => {
                if sched.on_success(i, now, r.sensing_s) == Change::Recovered {
                    tracing::info!(source = %name, "facility source readable again");
                }
                match failure {
                    Some(why) if partial.get(&i) != Some(why) => {
                        tracing::warn!(source = %name, "part of the facility source unreadable: {why}; those readings are absent");
                        partial.insert(i, why.clone());
                    }
                    Some(_) => {}
                    None => {
                        if partial.remove(&i).is_some() {
                            tracing::info!(source = %name, "facility source read whole again");
                        }
                    }
                }
            }
        }
    }
}

/// Why a collector cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Client(#[from] FacilityError),
    #[error(transparent)]
    Snmp(#[from] snmp::SnmpSourceError),
}

/// Polls every source of `config` until `shutdown` completes or `sink` is closed. `clock` is the
/// caller's clock in ns (each reading's `t_ns` is the middle of its request's round trip on it).
pub async fn run_collector(
    config: &FacilityConfig,
    clock: impl Fn() -> i64 + Send + Sync + 'static,
    sink: mpsc::Sender<Vec<FacilityReading>>,
    shutdown: impl Future<Output = ()>,
) -> Result<CollectorStats, CollectError> {
    let c = Collector::new(config)?;
    Ok(c.run(Arc::new(clock), sink, shutdown).await)
}
