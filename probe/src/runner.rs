//! The phase runner: turns scheduled phases into load levels, samples, telemetry batches and phase
//! reports, and enforces the probe's own safety interlocks.
//!
//! Sans-IO apart from the [`Backend`] it drives: the caller passes `now` (probe clock, ns) and the
//! current clock estimate; the runner says when it next needs to run ([`PhaseRunner::poll_timeout`])
//! and returns the messages to send. Interlocks, which hold whatever the coordinator says:
//!
//! * **dead-man** — the coordinator has been silent longer than the dead-man interval during a
//!   phase: all load stops and the phase ends early;
//! * **temperature** — a device at its shutdown temperature minus [`SHUTDOWN_MARGIN_C`] has its
//!   load removed for the rest of the phase;
//! * **overrun** — a phase's load never outlives its duration: the runner ends it at its end instant
//!   whether or not the coordinator says so, and sets every device's level to 0 then (the next
//!   phase, if any, sets its own levels from its first sampling instant).
//!
//! Fabric work runs on threads of its own (the data-plane driver's, the backend's NCCL threads):
//! the runner never waits for it. When a fabric phase ends, its report is held until the work has
//! ended ([`FabricDriver::try_finish`], [`Backend::nccl_done`]), polled every [`FINISH_POLL_NS`]
//! from `handle_timeout` and given up [`crate::fabric::FINISH_WAIT`] after the phase's end, so
//! that a slow device call never stalls the probe's control connection, clock replies or dead-man.
//!
//! Telemetry batches are numbered from 0 for the life of the probe process and kept until the
//! coordinator acknowledges them, so that they are replayed after a reconnect. The buffer is bounded;
//! when it overflows the oldest batch is dropped, and the coordinator sees the hole in the sequence
//! and records it as a gap.

mod finishing;
mod instants;
mod work;

use crate::fabric::FabricDriver;
use finishing::Finishing;
pub use finishing::FINISH_POLL_NS;
use hallmark_protocol::{
    ClockEstimate, ErrorCode, ErrorReport, FabricFault, FabricReport, NodeId, PhaseReport,
    PhaseStart, ProbeMessage, Sample, TelemetryBatch, TelemetryGap, Workload,
};
use hallmark_workloads::backend::{Backend, NodeReading};
use instants::missed;
use std::collections::{BTreeSet, VecDeque};
use work::{begin_workload, end_workload, FabricState};

/// Margin below a device's shutdown temperature at which the probe removes its load, °C.
pub const SHUTDOWN_MARGIN_C: f64 = 3.0;

/// Unacknowledged batches kept for replay (one per second: an hour).
pub const MAX_UNACKED_BATCHES: usize = 3600;

/// Seconds of samples in one telemetry batch.
const BATCH_SECONDS: f64 = 1.0;

/// A phase that is scheduled or running.
#[derive(Debug)]
struct Active {
    spec: PhaseStart,
    /// Probe-clock instants.
    start_ns: i64,
    end_ns: i64,
    /// Index of the next sample (sample k is due at start + k / sample_hz).
    next_sample: u64,
    started: bool,
    /// Devices whose load an interlock removed.
    interlocked: Vec<bool>,
    stopped_early: Option<String>,
    /// The phase's fabric work: running on the driver, or what it could not do.
    fabric: Option<FabricState>,
    /// The backend cannot run this phase's workload: its devices stay unloaded.
    unsupported: bool,
}

/// Runs phases on one node.
#[derive(Debug, Default)]
pub struct PhaseRunner {
    scheduled: VecDeque<PhaseStart>,
    active: Option<Active>,
    pending_samples: Vec<Sample>,
    pending_power: Vec<(i64, f32)>,
    /// Sampling instants missed since the last batch, with their cause.
    pending_gaps: Vec<TelemetryGap>,
    /// Sample instants in the pending batch, and how many make a batch.
    pending_ticks: u32,
    ticks_per_batch: u32,
    next_seq: u64,
    unacked: VecDeque<TelemetryBatch>,
    dropped_batches: u64,
    /// Every phase id ever scheduled: a PhaseStart sent again after a reconnect is not run twice.
    known_phases: BTreeSet<u32>,
    /// The latest end of a known phase (coordinator clock): an order starting at or after it is
    /// of a new run, whose phase ids start again from 0.
    known_until_ns: i64,
    /// Runs fabric phases (the data plane); `None`: this probe has none.
    fabric: Option<Box<dyn FabricDriver>>,
    /// This probe's node id: its rank in fabric phases.
    me: Option<NodeId>,
    /// An ended fabric phase waiting for its work's report.
    finishing: Option<Finishing>,
}

impl PhaseRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// A runner for node `me`, without a data plane.
    pub fn for_node(me: NodeId) -> Self {
        PhaseRunner {
            me: Some(me),
            ..Self::default()
        }
    }

    /// A runner for node `me` whose fabric phases run on `driver`.
    pub fn with_fabric(me: NodeId, driver: Box<dyn FabricDriver>) -> Self {
        PhaseRunner {
            fabric: Some(driver),
            me: Some(me),
            ..Self::default()
        }
    }

    /// The fabric driver, if this probe has a data plane.
    pub fn fabric(&self) -> Option<&dyn FabricDriver> {
        self.fabric.as_deref()
    }

    /// Whether a phase is loading the devices now.
    pub fn in_phase(&self) -> bool {
        self.active.as_ref().is_some_and(|a| a.started)
    }

    /// Whether an ended phase's report is held until its fabric work ends.
    pub fn finishing(&self) -> bool {
        self.finishing.is_some()
    }

    /// Batches sent but not yet acknowledged, oldest first (replayed after a reconnect).
    pub fn unacked(&self) -> impl Iterator<Item = &TelemetryBatch> {
        self.unacked.iter()
    }

    /// Batches dropped because the replay buffer overflowed.
    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches
    }

    /// Accepts a phase order. Phases run in the order of their start instants; a phase id already
    /// known (scheduled, running or run) is ignored (the coordinator re-sends orders after a
    /// reconnect), unless the order starts after every known phase has ended: then it is a new
    /// run's, and the phase ids known are the last run's.
    pub fn schedule(&mut self, spec: PhaseStart) {
        if self.known_phases.contains(&spec.phase_id) {
            if spec.start_at_ns < self.known_until_ns {
                return;
            }
            self.known_phases.clear();
        }
        self.known_phases.insert(spec.phase_id);
        let end = spec.start_at_ns.saturating_add(
            i64::try_from(spec.duration_ms)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000),
        );
        self.known_until_ns = self.known_until_ns.max(end);
        let pos = self
            .scheduled
            .iter()
            .position(|p| p.start_at_ns > spec.start_at_ns)
            .unwrap_or(self.scheduled.len());
        self.scheduled.insert(pos, spec);
    }

    /// The coordinator stored every batch up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        while self.unacked.front().is_some_and(|b| b.seq <= seq) {
            self.unacked.pop_front();
        }
    }

    /// When the runner next has work, on the probe's clock.
    pub fn poll_timeout(&self, clock: Option<&ClockEstimate>) -> Option<i64> {
        let finishing = self.finishing.as_ref().map(|f| f.poll_at_ns);
        let phase = if let Some(a) = &self.active {
            Some(if a.started {
                a.sample_due_ns().min(a.end_ns)
            } else if a.spec.fabric.is_some() {
                // A fabric phase waits for the previous one's work (see `handle_timeout`).
                finishing.map_or(a.start_ns, |f| a.start_ns.max(f))
            } else {
                a.start_ns
            })
        } else {
            clock.and_then(|c| self.scheduled.front().map(|p| c.to_probe(p.start_at_ns)))
        };
        match (phase, finishing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next instant the load changes by the schedule (the next phase's start, or the running
    /// phase's end) on the probe's clock: the shell wakes for it more precisely than for other
    /// timers (sampling instants, which are read anywhere within their period).
    pub fn next_transition(&self, clock: Option<&ClockEstimate>) -> Option<i64> {
        match &self.active {
            Some(a) => Some(if a.started { a.end_ns } else { a.start_ns }),
            None => clock.and_then(|c| self.scheduled.front().map(|p| c.to_probe(p.start_at_ns))),
        }
    }

    /// Stops the load at once (coordinator abort, shutdown): the phase ends early with `reason`.
    pub fn stop(
        &mut self,
        now: i64,
        reason: &str,
        clock: &ClockEstimate,
        backend: &mut dyn Backend,
    ) -> Vec<ProbeMessage> {
        backend.stop_all();
        backend.stop_nccl();
        if let Some(f) = self.fabric.as_deref_mut() {
            f.stop();
        }
        self.scheduled.clear();
        let mut out = Vec::new();
        if let Some(mut a) = self.active.take() {
            a.stopped_early.get_or_insert_with(|| reason.to_string());
            self.finish(a, now, clock, backend, &mut out);
        }
        out
    }

    /// Does everything due at `now`: starts phases, samples, enforces interlocks, ends phases and
    /// cuts batches. `last_heard_ns` is the probe-clock instant of the coordinator's last message.
    pub fn handle_timeout(
        &mut self,
        now: i64,
        clock: &ClockEstimate,
        last_heard_ns: i64,
        dead_man_ns: i64,
        backend: &mut dyn Backend,
    ) -> Vec<ProbeMessage> {
        let mut out = Vec::new();
        self.poll_finishing(now, false, backend, &mut out);
        // Bounded: at most a few phase transitions per call.
        for _ in 0..8 {
            if self.active.is_none() {
                match self.scheduled.front() {
                    Some(p) if clock.to_probe(p.start_at_ns) <= now => {
                        let Some(spec) = self.scheduled.pop_front() else {
                            break;
                        };
                        self.activate(spec, clock, backend);
                    }
                    _ => break,
                }
            }
            let starting_fabric = self
                .active
                .as_ref()
                .is_some_and(|a| !a.started && now >= a.start_ns && a.spec.fabric.is_some());
            if starting_fabric && self.finishing.is_some() {
                // The previous fabric phase's work has not ended yet and the fabric is needed
                // again: this phase starts once it has (at most FINISH_WAIT after that phase's
                // end), as late as it then is; no call waits meanwhile.
                self.poll_finishing(now, false, backend, &mut out);
                if self.finishing.is_some() {
                    break;
                }
            }
            let Some(a) = self.active.as_mut() else { break };
            if !a.started {
                if now < a.start_ns {
                    break;
                }
                a.started = true;
                let late = now.saturating_sub(a.start_ns);
                let duration = a.end_ns - a.start_ns;
                let fabric = self.fabric.as_deref_mut();
                begin_workload(
                    a,
                    self.me.as_ref(),
                    late,
                    duration,
                    backend,
                    fabric,
                    &mut out,
                );
                // Begin counting what the devices achieve in this phase.
                backend.take_results(now);
                out.push(ProbeMessage::PhaseStarted {
                    phase_id: a.spec.phase_id,
                    actual_start_ns: clock.to_coordinator(now),
                });
            }
            if now - last_heard_ns > dead_man_ns {
                backend.stop_all();
                backend.stop_nccl();
                if let Some(f) = self.fabric.as_deref_mut() {
                    f.stop();
                }
                a.stopped_early = Some(format!(
                    "dead-man: coordinator silent for {} ms (limit {} ms); load stopped",
                    (now - last_heard_ns) / 1_000_000,
                    dead_man_ns / 1_000_000
                ));
                let a = self.active.take();
                if let Some(a) = a {
                    self.finish(a, now, clock, backend, &mut out);
                }
                continue;
            }
            if now >= a.end_ns {
                // Samples are taken at start + k / sample_hz for every such instant before the end;
                // the end instant belongs to whatever comes next. Instants not taken by now are
                // missed: the sampler came too late for them.
                let n = a.instants();
                if a.next_sample < n {
                    let gap = missed(a, a.next_sample, n, now);
                    a.next_sample = n;
                    self.pending_gaps.push(gap);
                }
                if let Some(a) = self.active.take() {
                    self.finish(a, now, clock, backend, &mut out);
                }
                continue;
            }
            if let Some(k) = a.latest_due(now).filter(|k| *k >= a.next_sample) {
                // Each instant is read within its own period or not at all: instants whose period
                // passed before the sampler ran are recorded as missed, never read late.
                if k > a.next_sample {
                    let gap = missed(a, a.next_sample, k, now);
                    a.next_sample = k;
                    self.pending_gaps.push(gap);
                }
                self.sample(now, backend, &mut out);
            }
            break;
        }
        if self.pending_ticks >= self.ticks_per_batch.max(1) {
            self.cut_batch(&mut out);
        }
        out
    }

    fn activate(&mut self, spec: PhaseStart, clock: &ClockEstimate, backend: &mut dyn Backend) {
        let start_ns = clock.to_probe(spec.start_at_ns);
        let duration_ns = i64::try_from(spec.duration_ms)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000);
        let devices = backend.inventory().len();
        self.ticks_per_batch = (spec.sample_hz * BATCH_SECONDS).round().max(1.0) as u32;
        self.active = Some(Active {
            end_ns: start_ns.saturating_add(duration_ns),
            start_ns,
            next_sample: 0,
            started: false,
            interlocked: vec![false; devices],
            stopped_early: None,
            fabric: None,
            unsupported: false,
            spec,
        });
    }

    /// Applies the pattern's level, reads the devices and enforces the temperature interlock.
    fn sample(&mut self, now: i64, backend: &mut dyn Backend, out: &mut Vec<ProbeMessage>) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let elapsed = now.saturating_sub(a.start_ns);
        let duration = a.end_ns - a.start_ns;
        let level = match a.spec.workload {
            hallmark_protocol::Workload::Idle => 0.0,
            // Fabric phases load the devices under their pattern too (fabric under thermal load).
            hallmark_protocol::Workload::Burn
            | hallmark_protocol::Workload::Latency
            | hallmark_protocol::Workload::Collective
            | hallmark_protocol::Workload::MemoryBandwidth
            | hallmark_protocol::Workload::TargetPower => {
                a.spec.pattern.level_at(elapsed, duration)
            }
        };
        let inventory: Vec<(u16, Option<f64>)> = backend
            .inventory()
            .iter()
            .map(|d| (d.index, d.shutdown_temp_c))
            .collect();
        for (i, (index, _)) in inventory.iter().enumerate() {
            let l = if a.unsupported || a.interlocked.get(i).copied().unwrap_or(false) {
                0.0
            } else {
                level
            };
            let set = match (&a.spec.workload, a.spec.target_power_w) {
                _ if a.unsupported => backend.set_level(*index, 0.0),
                (Workload::TargetPower, Some(w)) if l > 0.0 => {
                    backend.set_power_target(*index, Some(w * l))
                }
                (Workload::TargetPower, _) => backend
                    .set_power_target(*index, None)
                    .and_then(|()| backend.set_level(*index, 0.0)),
                _ => backend.set_level(*index, l),
            };
            if let Err(e) = set {
                out.push(device_error(format!(
                    "device {index}: cannot set load: {e}"
                )));
            }
        }
        let k = a.next_sample;
        let reading = match backend.sample(now) {
            Ok(r) => r,
            Err(e) => {
                out.push(device_error(format!("reading the devices failed: {e}")));
                self.pending_gaps.push(TelemetryGap {
                    from_ns: a.stamp_ns(k),
                    to_ns: a.stamp_ns(k + 1).min(a.end_stamp_ns()),
                    instants: 1,
                    reason: hallmark_protocol::bounded_gap_reason(format!(
                        "reading the devices failed: {e}"
                    )),
                });
                a.next_sample += 1;
                self.pending_ticks += 1;
                return;
            }
        };
        // Temperature interlock.
        for (i, (index, shutdown)) in inventory.iter().enumerate() {
            let (Some(limit), Some(d)) = (
                shutdown,
                reading.devices.iter().find(|d| d.device == *index),
            ) else {
                continue;
            };
            let hot = d.gpu_temp_c.is_some_and(|t| t >= limit - SHUTDOWN_MARGIN_C);
            if hot && !a.interlocked.get(i).copied().unwrap_or(true) {
                a.interlocked[i] = true;
                let _ = backend.set_power_target(*index, None);
                let _ = backend.set_level(*index, 0.0);
                out.push(ProbeMessage::Error(ErrorReport {
                    code: ErrorCode::Safety,
                    message: format!(
                        "device {index} reached {:.1} °C, within {SHUTDOWN_MARGIN_C} °C of its shutdown \
                         temperature {limit:.1} °C: load removed for the rest of phase {}",
                        d.gpu_temp_c.unwrap_or(f64::NAN),
                        a.spec.name
                    ),
                }));
            }
        }
        a.next_sample += 1;
        // Stamped with its sampling instant on the coordinator's clock (read within one period of
        // it): the sample belongs to the phase whose window holds the instant.
        let t_ns = a.stamp_ns(k);
        self.record(t_ns, &reading);
    }

    fn record(&mut self, t_ns: i64, reading: &NodeReading) {
        self.pending_ticks += 1;
        if let Some(p) = reading.node_power_w {
            self.pending_power.push((t_ns, p as f32));
        }
        for d in &reading.devices {
            self.pending_samples.push(d.to_sample(t_ns));
        }
    }

    fn finish(
        &mut self,
        a: Active,
        now: i64,
        clock: &ClockEstimate,
        backend: &mut dyn Backend,
        out: &mut Vec<ProbeMessage>,
    ) {
        self.cut_batch(out);
        let ended = now.min(a.end_ns.max(a.start_ns));
        // What the devices achieved from the phase's start to its end (counting began at start).
        let devices = if a.started {
            backend.take_results(ended)
        } else {
            Vec::new()
        };
        // A phase's load never outlives it: the devices idle until the next phase sets their
        // levels (at its first sampling instant, which for back-to-back phases is this one).
        let indices: Vec<u16> = backend.inventory().iter().map(|d| d.index).collect();
        for index in indices {
            let _ = backend.set_level(index, 0.0);
        }
        end_workload(&a, backend);
        // Fabric work still running: the report waits for it (see `poll_finishing`).
        let (fabric, running) = match a.fabric {
            Some(FabricState::Running) => (None, Some(false)),
            Some(FabricState::Nccl) => (None, Some(true)),
            Some(FabricState::Failed(message)) => (
                Some(FabricReport {
                    faults: vec![FabricFault {
                        peer: None,
                        message,
                    }],
                    ..FabricReport::default()
                }),
                None,
            ),
            None => (None, None),
        };
        let report = PhaseReport {
            phase_id: a.spec.phase_id,
            ended_at_ns: clock.to_coordinator(ended),
            stopped_early: a.stopped_early,
            devices,
            fabric,
        };
        let Some(nccl) = running else {
            out.push(ProbeMessage::PhaseReport(report));
            return;
        };
        // One held report at a time: an older one still waiting is given up now.
        self.poll_finishing(now, true, backend, out);
        self.finishing = Some(Finishing {
            report,
            nccl,
            since_ns: now,
            poll_at_ns: now,
        });
        self.poll_finishing(now, false, backend, out);
    }

    fn cut_batch(&mut self, out: &mut Vec<ProbeMessage>) {
        if self.pending_samples.is_empty()
            && self.pending_power.is_empty()
            && self.pending_gaps.is_empty()
        {
            return;
        }
        let batch = TelemetryBatch {
            seq: self.next_seq,
            node_power_w: std::mem::take(&mut self.pending_power),
            samples: std::mem::take(&mut self.pending_samples),
            gaps: std::mem::take(&mut self.pending_gaps),
        };
        self.pending_ticks = 0;
        self.next_seq += 1;
        if self.unacked.len() >= MAX_UNACKED_BATCHES {
            self.unacked.pop_front();
            self.dropped_batches += 1;
        }
        self.unacked.push_back(batch.clone());
        out.push(ProbeMessage::Telemetry(batch));
    }
}

fn device_error(message: String) -> ProbeMessage {
    ProbeMessage::Error(ErrorReport {
        code: ErrorCode::Device,
        message,
    })
}
