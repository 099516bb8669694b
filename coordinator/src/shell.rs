//! The core task of the coordinator's shell: the one task that owns the [`Coordinator`] state
//! machine. It feeds the machine what the connection tasks, the operator's commands and the
//! recorder thread report, runs its timers, and routes what it says: messages to per-connection
//! writers, run data to the recorder, events to the log, subscribers, progress and status file.

use crate::admit::Admission;
use crate::conn::{connection, ConnParams, ShellEvent, WriterCmd};
use crate::gaplog::GapLog;
use crate::machine::{close_code, Close, ConnId, Coordinator, Event, ProbeRecord};
use crate::metrics_http::{update, Serving, SharedMetrics};
use crate::probelist::{sleep_until_due, ProbeList};
use crate::record::{spawn_writer, Record, Recorded};
use crate::refused::{self, admit, RecentRefusals};
use crate::run::Outcome;
use crate::server::{CoreCmd, RunProgress, RunStage, ServerError};
use crate::status::log_event;
use hallmark_transport::clock::WallClock;
use hallmark_transport::revocation::ListInForce;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

pub(crate) struct Core {
    machine: Coordinator,
    clock: WallClock,
    writers: HashMap<ConnId, mpsc::Sender<WriterCmd>>,
    /// Whether each connection is read (back-pressure on telemetry).
    reads: HashMap<ConnId, watch::Sender<bool>>,
    /// The registered probes, published to subscribers and the status file.
    probe_list: ProbeList,
    progress_tx: watch::Sender<Option<RunProgress>>,
    events: broadcast::Sender<Event>,
    /// The run's recorder thread, while a run is being stored.
    recorder: Option<(mpsc::UnboundedSender<Record>, std::thread::JoinHandle<()>)>,
    recorded_tx: mpsc::UnboundedSender<Recorded>,
    batches_stored: u64,
    lost: Vec<String>,
    /// The task that waits for a finished run's recorder thread to write its last records.
    closing: Option<tokio::task::JoinHandle<()>>,
    /// The live metrics and their HTTP endpoint (`--metrics`), when served.
    metrics: Option<(SharedMetrics, Serving)>,
    /// The revocation list in force (with `--crl`), for the connection tasks.
    revocations: Option<watch::Receiver<Arc<ListInForce>>>,
    /// Telemetry gaps in the log, bounded.
    gap_log: GapLog,
}

/// How often the run's progress is published.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

impl Core {
    pub(crate) fn new(
        machine: Coordinator,
        probes_tx: watch::Sender<Vec<ProbeRecord>>,
        progress_tx: watch::Sender<Option<RunProgress>>,
        events: broadcast::Sender<Event>,
        status_file: Option<PathBuf>,
        local_addr: SocketAddr,
        recorded_tx: mpsc::UnboundedSender<Recorded>,
    ) -> Self {
        Core {
            machine,
            clock: WallClock::new(),
            writers: HashMap::new(),
            reads: HashMap::new(),
            probe_list: ProbeList::new(probes_tx, status_file, local_addr),
            progress_tx,
            events,
            recorder: None,
            recorded_tx,
            batches_stored: 0,
            lost: Vec::new(),
            closing: None,
            metrics: None,
            revocations: None,
            gap_log: GapLog::default(),
        }
    }

    /// Keeps `metrics` up to date from the events and serves them while the core runs.
    pub(crate) fn with_metrics(mut self, metrics: Option<(SharedMetrics, Serving)>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Has every connection task close its connection once the revocation list in force names
    /// the peer's certificate.
    pub(crate) fn with_revocations(mut self, lists: watch::Receiver<Arc<ListInForce>>) -> Self {
        self.revocations = Some(lists);
        self
    }

    pub(crate) async fn run(
        mut self,
        endpoint: quinn::Endpoint,
        handshake_timeout: Duration,
        admission: Admission,
        mut shutdown: oneshot::Receiver<()>,
        mut commands: mpsc::UnboundedReceiver<CoreCmd>,
        mut recorded: mpsc::UnboundedReceiver<Recorded>,
    ) -> Result<(), ServerError> {
        let (tx, mut rx) = mpsc::channel::<ShellEvent>(8192);
        let mut next_conn: ConnId = 1;
        let mut refused = RecentRefusals::new(refused::KEEP, refused::MOST);
        let mut progress_tick = tokio::time::interval(PROGRESS_EVERY);
        progress_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // Set when told to shut down during a run: the run is aborted and the loop goes on until
        // the probes' last telemetry and reports are stored (bounded by the abort's grace period).
        let mut stopping: Option<tokio::time::Instant> = None;
        let (frame_limit, frame_limit_rx) = watch::channel(self.machine.probe_frame_limit());
        let params = ConnParams {
            clock: self.clock,
            handshake_timeout,
            admission: admission.clone(),
            frame_limit: frame_limit_rx,
            revocations: self.revocations.take(),
        };
        loop {
            let deadline = self
                .machine
                .poll_timeout()
                .map(|t| self.clock.instant_at(t));
            tokio::select! {
                _ = &mut shutdown, if stopping.is_none() => {
                    if self.machine.run().is_some_and(|r| !r.is_done()) {
                        self.machine
                            .abort_run("the coordinator is shutting down", self.clock.now_ns());
                        stopping = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                    } else {
                        break;
                    }
                }
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let now = std::time::Instant::now();
                    if let Some((incoming, place)) = admit(incoming, &admission, &mut refused, now) {
                        let conn = next_conn;
                        next_conn += 1;
                        tokio::spawn(connection(conn, incoming, tx.clone(), params.clone(), place));
                    } else if let Some((m, _)) = &self.metrics {
                        update(m, |m| m.set_turned_away(admission.refusals()));
                    }
                }
                Some(ev) = rx.recv() => self.apply(ev),
                Some(cmd) = commands.recv() => self.command(cmd),
                Some(r) = recorded.recv() => self.recorded(r),
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.machine.handle_timeout(self.clock.now_ns());
                }
                _ = progress_tick.tick() => self.publish_progress(None),
                _ = sleep_until_due(self.probe_list.due()) => {}
            }
            self.drain()?;
            let limit = self.machine.probe_frame_limit();
            frame_limit.send_if_modified(|v| std::mem::replace(v, limit) != limit);
            if let Some(limit) = stopping {
                let done = self.machine.run().is_none_or(|r| r.is_done());
                if done || tokio::time::Instant::now() >= limit {
                    break;
                }
            }
        }
        for (_, w) in self.writers.drain() {
            let _ = w.try_send(WriterCmd::Close(Close {
                code: close_code::DONE,
                reason: "coordinator shutting down".into(),
            }));
        }
        endpoint.close(close_code::DONE.into(), b"coordinator shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        // Everything queued for the store is written before the coordinator returns.
        if let Some((tx, handle)) = self.recorder.take() {
            drop(tx);
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        if let Some(closing) = self.closing.take() {
            let _ = closing.await;
        }
        info!("coordinator stopped");
        Ok(())
    }

    fn command(&mut self, cmd: CoreCmd) {
        match cmd {
            CoreCmd::StartRun {
                run_id,
                plan,
                resume,
                recorder,
                reply,
            } => {
                if self.machine.run().is_some_and(|r| !r.is_done()) || self.recorder.is_some() {
                    let _ = reply.send(Err(ServerError::RunInProgress));
                    return;
                }
                let writer = match spawn_writer(recorder, self.recorded_tx.clone()) {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        return;
                    }
                };
                let now = self.clock.now_ns();
                self.recorder = Some(writer);
                self.batches_stored = 0;
                self.lost.clear();
                info!(
                    "run {run_id}: plan {} with {} phases ({:.0} s), waiting for {} probes",
                    plan.name,
                    plan.phases.len(),
                    plan.total_duration_ms() as f64 / 1e3,
                    plan.expect.nodes.node_count()
                );
                if let Some((m, _)) = &self.metrics {
                    update(m, |m| m.on_run_requested(&run_id));
                }
                match resume {
                    Some(from) => self.machine.resume_run(run_id, plan, from, now),
                    None => self.machine.start_run(run_id, plan, now),
                }
                let _ = reply.send(Ok(()));
            }
            CoreCmd::AbortRun { reason } => {
                self.machine.abort_run(&reason, self.clock.now_ns());
            }
        }
    }

    fn recorded(&mut self, r: Recorded) {
        match r {
            Recorded::Stored(written) => {
                self.batches_stored += written.stored.len() as u64;
                if let Some((m, _)) = &self.metrics {
                    update(m, |m| {
                        written.stored.iter().for_each(|(n, s)| m.on_stored(n, *s));
                        written
                            .refused
                            .iter()
                            .for_each(|(n, s)| m.on_refused(n, *s));
                    });
                }
                for (node, seq) in written.stored {
                    self.machine.telemetry_stored(&node, seq);
                }
                for (node, seq) in written.refused {
                    self.machine.telemetry_refused(&node, seq);
                }
            }
            Recorded::Failed(e) => {
                let reason = format!("cannot store run data ({e}); stopping the load rather than losing measurements");
                self.machine.abort_run(&reason, self.clock.now_ns());
            }
        }
    }

    fn record(&mut self, r: Record) {
        if let Some((tx, _)) = &self.recorder {
            if tx.send(r).is_err() {
                error!("the recorder thread has stopped; run data is not being stored");
            }
        }
    }

    /// Publishes the run's progress; `finished` when the run has just ended and its data is stored.
    fn publish_progress(&mut self, finished: Option<(Outcome, String)>) {
        if let Some(line) = self
            .gap_log
            .flush(std::time::Instant::now(), finished.is_some())
        {
            warn!("{line}");
        }
        let Some(run) = self.machine.run() else {
            return;
        };
        let now = self.clock.now_ns();
        let stage = if let Some((outcome, reason)) = finished {
            RunStage::Finished { outcome, reason }
        } else if run.is_waiting() {
            RunStage::Waiting {
                registered: self.machine.probes().count(),
                expected: run.plan.expect.nodes.node_count(),
            }
        } else if run.is_done() {
            // Finished, its data still being written: keep the last published stage.
            return;
        } else {
            let phases = run.phases();
            let idx = phases
                .iter()
                .rposition(|p| p.start.start_at_ns <= now)
                .unwrap_or(0);
            let end = |i: usize| {
                phases.get(i).map_or(now, |p| {
                    p.start.start_at_ns + p.start.duration_ms as i64 * 1_000_000
                })
            };
            RunStage::Running {
                phase: idx,
                phases: phases.len(),
                name: phases
                    .get(idx)
                    .map_or(String::new(), |p| p.start.name.clone()),
                phase_left_s: ((end(idx) - now) as f64 / 1e9).max(0.0),
                total_left_s: ((end(phases.len().saturating_sub(1)) - now) as f64 / 1e9).max(0.0),
            }
        };
        let progress = RunProgress {
            run_id: run.run_id.clone(),
            stage,
            rack_kw: run.rack_power_kw(),
            batches_stored: self.batches_stored,
            lost: self.lost.clone(),
            unstored_readings: self.machine.unstored_telemetry(),
        };
        self.progress_tx.send_replace(Some(progress));
    }

    fn apply(&mut self, ev: ShellEvent) {
        match ev {
            ShellEvent::Connected {
                conn,
                node,
                remote,
                writer,
                reads,
                at_ns,
            } => {
                debug!(conn, %node, %remote, "control stream open");
                self.writers.insert(conn, writer);
                self.reads.insert(conn, reads);
                self.machine.on_connected(conn, node, remote, at_ns);
            }
            ShellEvent::Payload {
                conn, bytes, at_ns, ..
            } => self.machine.on_payload(conn, &bytes, at_ns),
            ShellEvent::FrameError { conn, error } => self.machine.on_frame_error(conn, &error),
            ShellEvent::Closed { conn, reason } => {
                self.writers.remove(&conn);
                self.reads.remove(&conn);
                self.machine.on_closed(conn, &reason, self.clock.now_ns());
            }
        }
    }

    fn drain(&mut self) -> Result<(), ServerError> {
        while let Some((conn, msg)) = self.machine.poll_transmit() {
            let Some(w) = self.writers.get(&conn) else {
                continue;
            };
            if w.try_send(WriterCmd::Send(Box::new(msg))).is_err() {
                warn!(
                    conn,
                    "probe is not reading its control stream; disconnecting it"
                );
                if let Some(w) = self.writers.remove(&conn) {
                    drop(w);
                }
                self.reads.remove(&conn);
                self.machine
                    .on_closed(conn, "control stream backed up", self.clock.now_ns());
            }
        }
        while let Some((conn, close)) = self.machine.poll_close() {
            if let Some(w) = self.writers.remove(&conn) {
                // The writer sends what is queued, then closes.
                let _ = w.try_send(WriterCmd::Close(close));
            }
            self.reads.remove(&conn);
        }
        while let Some((conn, read)) = self.machine.poll_read() {
            if let Some(r) = self.reads.get(&conn) {
                if !read {
                    warn!(
                        conn,
                        "probe has {} telemetry readings waiting for the store; not reading its \
                         connection until the store catches up",
                        self.machine.unstored_telemetry()
                    );
                }
                r.send_replace(read);
            }
        }
        let mut changed = false;
        while let Some(ev) = self.machine.poll_event() {
            changed |= log_event(&ev);
            if let Event::Gap {
                node_id, reason, ..
            } = &ev
            {
                let now = std::time::Instant::now();
                if let Some(line) = self.gap_log.gap(node_id, reason, now) {
                    warn!("{line}");
                }
            }
            if let Some((m, _)) = &self.metrics {
                update(m, |m| m.on_event(&ev));
            }
            self.route(ev);
        }
        if changed {
            self.probe_list.changed();
        }
        self.probe_list.publish_if_due(&self.machine)
    }
}

impl Core {
    /// Sends a run event to the store (and everything but bulk telemetry to subscribers).
    fn route(&mut self, ev: Event) {
        let record = match &ev {
            Event::RunStarted {
                run_id,
                nodes,
                phases,
            } => Some(Record::RunStarted {
                run_id: run_id.clone(),
                probes: nodes
                    .iter()
                    .filter_map(|n| self.machine.probe(n).cloned())
                    .collect(),
                phases: phases.clone(),
            }),
            Event::PhaseStarted {
                node_id,
                phase_id,
                actual_start_ns,
            } => Some(Record::PhaseStarted {
                node_id: node_id.clone(),
                phase_id: *phase_id,
                actual_start_ns: *actual_start_ns,
            }),
            Event::Telemetry { .. } | Event::Facility { .. } => None,
            Event::Gap {
                node_id,
                from_ns,
                to_ns,
                instants,
                reason,
            } => Some(Record::Gap {
                node_id: node_id.clone(),
                from_ns: *from_ns,
                to_ns: *to_ns,
                instants: *instants,
                reason: reason.clone(),
            }),
            Event::PhaseReport { node_id, report } => Some(Record::PhaseReport {
                node_id: node_id.clone(),
                report: report.clone(),
            }),
            Event::ProbeLost {
                node_id,
                at_ns,
                reason,
            } => {
                self.lost.push(node_id.to_string());
                Some(Record::ProbeLost {
                    node_id: node_id.clone(),
                    at_ns: *at_ns,
                    reason: reason.clone(),
                })
            }
            Event::ProbeBack { node_id, at_ns } => {
                self.lost.retain(|n| n != node_id.as_str());
                Some(Record::Note {
                    at_ns: *at_ns,
                    node_id: Some(node_id.clone()),
                    kind: "probe_back",
                    message: "reconnected; replaying its unacknowledged telemetry".into(),
                })
            }
            Event::SafetyStop { node_id, message } => Some(Record::Note {
                at_ns: self.clock.now_ns(),
                node_id: Some(node_id.clone()),
                kind: "safety_stop",
                message: message.clone(),
            }),
            Event::RunNote { message } => Some(Record::Note {
                at_ns: self.clock.now_ns(),
                node_id: None,
                kind: "note",
                message: message.clone(),
            }),
            Event::ProbeError { node_id, message } if self.machine.run().is_some() => {
                Some(Record::Note {
                    at_ns: self.clock.now_ns(),
                    node_id: Some(node_id.clone()),
                    kind: "probe_error",
                    message: message.clone(),
                })
            }
            Event::RunFinished {
                outcome,
                reason,
                at_ns,
                ..
            } => Some(Record::RunFinished {
                outcome: *outcome,
                reason: reason.clone(),
                at_ns: *at_ns,
            }),
            _ => None,
        };
        if let Some(r) = record {
            self.record(r);
        }
        match ev {
            Event::Telemetry {
                node_id,
                batch,
                received_at_ns,
            } => self.record(Record::Telemetry {
                node_id,
                batch,
                received_at_ns,
            }),
            Event::Facility {
                node_id,
                batch,
                received_at_ns,
            } => self.record(Record::Facility {
                node_id,
                batch,
                received_at_ns,
            }),
            Event::RunFinished {
                outcome, reason, ..
            } => {
                let _ = self.events.send(Event::RunFinished {
                    run_id: self
                        .machine
                        .run()
                        .map_or(String::new(), |r| r.run_id.clone()),
                    outcome,
                    reason: reason.clone(),
                    at_ns: self.clock.now_ns(),
                });
                self.finish_recording(outcome, reason);
            }
            other => {
                let _ = self.events.send(other);
            }
        }
    }

    /// Closes the recorder once everything queued is written, then publishes the finished run.
    fn finish_recording(&mut self, outcome: Outcome, reason: String) {
        let Some((tx, handle)) = self.recorder.take() else {
            self.publish_progress(Some((outcome, reason)));
            return;
        };
        drop(tx);
        let progress = self.progress_tx.clone();
        let mut last = self.progress_tx.borrow().clone().or_else(|| {
            self.machine.run().map(|run| RunProgress {
                run_id: run.run_id.clone(),
                stage: RunStage::Finished {
                    outcome,
                    reason: reason.clone(),
                },
                rack_kw: run.rack_power_kw(),
                batches_stored: self.batches_stored,
                lost: self.lost.clone(),
                unstored_readings: self.machine.unstored_telemetry(),
            })
        });
        self.closing = Some(tokio::spawn(async move {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
            if let Some(p) = last.as_mut() {
                p.stage = RunStage::Finished { outcome, reason };
            }
            progress.send_replace(last);
        }));
        // Acks for the last batches arrive through `recorded` as usual.
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
