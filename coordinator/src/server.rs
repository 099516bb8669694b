//! The coordinator's tokio shell: a QUIC endpoint, one task per connection, one task that owns
//! the [`Coordinator`] state machine and does what it says, and a writer thread for the run store.
//!
//! Connection tasks ([`crate::conn`]) authenticate the peer (mutual TLS; the certificate's node
//! id), accept the probe's control stream, cut frames out of it and forward payloads to the core
//! task, each stamped with the coordinator's clock on arrival. The core task feeds them to the
//! machine, runs its timers, and routes its transmits, closes and events: messages to
//! per-connection writer tasks, run data to the recorder ([`crate::record`]), events to the log,
//! to subscribers, to the run's progress and to the status file.

use crate::conn::{connection, ShellEvent, WriterCmd};
use crate::machine::{
    close_code, Close, ConnId, Coordinator, CoordinatorConfig, Event, ProbeRecord,
};
use crate::record::{spawn_writer, Record, RecordError, Recorded, Recorder};
use crate::run::Outcome;
use hallmark_protocol::plan::Plan;
use hallmark_transport::clock::WallClock;
use hallmark_transport::tls::{self, Identity, TransportOptions};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

/// Why the coordinator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS configuration: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source} (is another coordinator running, or is the address not local?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the status file {path}: {source}")]
    StatusFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the coordinator task failed: {0}")]
    Task(String),
    #[error("the run store: {0}")]
    Record(#[from] RecordError),
    #[error("a run is already in progress")]
    RunInProgress,
}

/// How to run a coordinator.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub transport: TransportOptions,
    pub config: CoordinatorConfig,
    /// Rewritten (atomically) with the registered probes whenever they change.
    pub status_file: Option<PathBuf>,
    /// Longest wait for a TLS handshake and for the probe's control stream.
    pub handshake_timeout: Duration,
}

impl ServerOptions {
    pub fn new(listen: SocketAddr) -> Self {
        ServerOptions {
            listen,
            transport: TransportOptions::default(),
            config: CoordinatorConfig::default(),
            status_file: None,
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// A running coordinator.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    probes: watch::Receiver<Vec<ProbeRecord>>,
    progress: watch::Receiver<Option<RunProgress>>,
    events: broadcast::Sender<Event>,
    commands: mpsc::UnboundedSender<CoreCmd>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

/// Where the current run stands, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub struct RunProgress {
    pub run_id: String,
    pub stage: RunStage,
    /// Live power per rack, kW (each node's latest node power, summed).
    pub rack_kw: BTreeMap<String, f64>,
    /// Telemetry batches stored so far.
    pub batches_stored: u64,
    /// Nodes lost during the run.
    pub lost: Vec<String>,
}

/// The stage of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStage {
    /// Waiting for the plan's expected inventory.
    Waiting {
        registered: usize,
        expected: usize,
    },
    /// Phases scheduled; `phase` is running (or next, before the first starts).
    Running {
        phase: usize,
        phases: usize,
        name: String,
        phase_left_s: f64,
        total_left_s: f64,
    },
    Finished {
        outcome: Outcome,
        reason: String,
    },
}

enum CoreCmd {
    StartRun {
        run_id: String,
        plan: Plan,
        recorder: Box<dyn Recorder>,
        reply: oneshot::Sender<Result<(), ServerError>>,
    },
    AbortRun {
        reason: String,
    },
}

/// Messages queued for one probe before it counts as too slow and is disconnected.
pub(crate) const WRITER_QUEUE: usize = 4096;

impl ServerHandle {
    /// Binds the endpoint and starts serving.
    pub async fn start(identity: &Identity, opts: ServerOptions) -> Result<Self, ServerError> {
        let server_config = tls::server_config(identity, &opts.transport)?;
        let endpoint = quinn::Endpoint::server(server_config, opts.listen).map_err(|source| {
            ServerError::Bind {
                addr: opts.listen,
                source,
            }
        })?;
        let local_addr = endpoint.local_addr().map_err(|source| ServerError::Bind {
            addr: opts.listen,
            source,
        })?;
        let (probes_tx, probes) = watch::channel(Vec::new());
        let (progress_tx, progress) = watch::channel(None);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        if let Some(path) = &opts.status_file {
            write_status(path, local_addr, &[])?;
        }
        info!(%local_addr, "coordinator listening");
        let (recorded_tx, recorded_rx) = mpsc::unbounded_channel();
        let core = Core {
            machine: Coordinator::new(opts.config.clone()),
            clock: WallClock::new(),
            writers: HashMap::new(),
            probes_tx,
            progress_tx,
            events: events.clone(),
            status_file: opts.status_file.clone(),
            local_addr,
            recorder: None,
            recorded_tx,
            batches_stored: 0,
            lost: Vec::new(),
        };
        let task = tokio::spawn(core.run(
            endpoint,
            opts.handshake_timeout,
            shutdown_rx,
            commands_rx,
            recorded_rx,
        ));
        Ok(ServerHandle {
            local_addr,
            probes,
            progress,
            events,
            commands,
            shutdown: Some(shutdown_tx),
            task,
        })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The registered probes now.
    pub fn probes(&self) -> Vec<ProbeRecord> {
        self.probes.borrow().clone()
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Starts the run `run_id` of `plan`, storing through `recorder` (whose run must exist). The
    /// run waits for the plan's expected inventory (at most its timeout), then schedules every
    /// phase.
    pub async fn start_run(
        &self,
        run_id: String,
        plan: Plan,
        recorder: Box<dyn Recorder>,
    ) -> Result<(), ServerError> {
        let (reply, rx) = oneshot::channel();
        let cmd = CoreCmd::StartRun {
            run_id,
            plan,
            recorder,
            reply,
        };
        self.commands
            .send(cmd)
            .map_err(|_| ServerError::Task("the coordinator has stopped".into()))?;
        rx.await
            .map_err(|_| ServerError::Task("the coordinator has stopped".into()))?
    }

    /// Stops every probe's load and ends the run.
    pub fn abort_run(&self, reason: &str) {
        let _ = self.commands.send(CoreCmd::AbortRun {
            reason: reason.to_string(),
        });
    }

    /// The current run's progress.
    pub fn progress(&self) -> watch::Receiver<Option<RunProgress>> {
        self.progress.clone()
    }

    /// Waits until the run has finished and everything it produced is stored, at most `limit`.
    pub async fn wait_run_finished(&self, limit: Duration) -> Option<RunProgress> {
        let mut rx = self.progress.clone();
        let wait = async {
            loop {
                {
                    let p = rx.borrow_and_update();
                    if let Some(p) = p
                        .as_ref()
                        .filter(|p| matches!(p.stage, RunStage::Finished { .. }))
                    {
                        return Some(p.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }

    /// Waits until `pred` holds for the registered probes, at most `limit`.
    pub async fn wait_for(
        &self,
        limit: Duration,
        mut pred: impl FnMut(&[ProbeRecord]) -> bool,
    ) -> Option<Vec<ProbeRecord>> {
        let mut rx = self.probes.clone();
        let wait = async {
            loop {
                {
                    let now = rx.borrow_and_update();
                    if pred(&now) {
                        return Some(now.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }

    /// Closes every connection and the endpoint, and waits for the core task.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Task(e.to_string())),
        }
    }

    /// Waits for the core task to end (it ends on shutdown or if the endpoint closes).
    pub async fn join(mut self) -> Result<(), ServerError> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Task(e.to_string())),
        }
    }
}

struct Core {
    machine: Coordinator,
    clock: WallClock,
    writers: HashMap<ConnId, mpsc::Sender<WriterCmd>>,
    probes_tx: watch::Sender<Vec<ProbeRecord>>,
    progress_tx: watch::Sender<Option<RunProgress>>,
    events: broadcast::Sender<Event>,
    status_file: Option<PathBuf>,
    local_addr: SocketAddr,
    /// The run's recorder thread, while a run is being stored.
    recorder: Option<(mpsc::UnboundedSender<Record>, std::thread::JoinHandle<()>)>,
    recorded_tx: mpsc::UnboundedSender<Recorded>,
    batches_stored: u64,
    lost: Vec<String>,
}

/// How often the run's progress is published.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

impl Core {
    async fn run(
        mut self,
        endpoint: quinn::Endpoint,
        handshake_timeout: Duration,
        mut shutdown: oneshot::Receiver<()>,
        mut commands: mpsc::UnboundedReceiver<CoreCmd>,
        mut recorded: mpsc::UnboundedReceiver<Recorded>,
    ) -> Result<(), ServerError> {
        let (tx, mut rx) = mpsc::channel::<ShellEvent>(8192);
        let mut next_conn: ConnId = 1;
        let mut progress_tick = tokio::time::interval(PROGRESS_EVERY);
        progress_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let deadline = self
                .machine
                .poll_timeout()
                .map(|t| self.clock.instant_at(t));
            tokio::select! {
                _ = &mut shutdown => break,
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let conn = next_conn;
                    next_conn += 1;
                    tokio::spawn(connection(conn, incoming, tx.clone(), self.clock, handshake_timeout));
                }
                Some(ev) = rx.recv() => self.apply(ev),
                Some(cmd) = commands.recv() => self.command(cmd),
                Some(r) = recorded.recv() => self.recorded(r),
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.machine.handle_timeout(self.clock.now_ns());
                }
                _ = progress_tick.tick() => self.publish_progress(None),
            }
            self.drain()?;
        }
        if self.machine.run().is_some_and(|r| !r.is_done()) {
            self.machine
                .abort_run("the coordinator is shutting down", self.clock.now_ns());
            self.drain()?;
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
        info!("coordinator stopped");
        Ok(())
    }

    fn command(&mut self, cmd: CoreCmd) {
        match cmd {
            CoreCmd::StartRun {
                run_id,
                plan,
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
                self.machine.start_run(run_id, plan, now);
                let _ = reply.send(Ok(()));
            }
            CoreCmd::AbortRun { reason } => {
                self.machine.abort_run(&reason, self.clock.now_ns());
            }
        }
    }

    fn recorded(&mut self, r: Recorded) {
        match r {
            Recorded::Stored(acks) => {
                self.batches_stored += acks.len() as u64;
                for (node, seq) in acks {
                    self.machine.telemetry_stored(&node, seq);
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
            } => {
                debug!(conn, %node, %remote, "control stream open");
                self.writers.insert(conn, writer);
                self.machine.on_connected(conn, node, remote);
            }
            ShellEvent::Payload { conn, bytes, at_ns } => {
                self.machine.on_payload(conn, &bytes, at_ns)
            }
            ShellEvent::FrameError { conn, error } => self.machine.on_frame_error(conn, &error),
            ShellEvent::Closed { conn, reason } => {
                self.writers.remove(&conn);
                self.machine.on_closed(conn, &reason, self.clock.now_ns());
            }
        }
    }

    fn drain(&mut self) -> Result<(), ServerError> {
        while let Some((conn, msg)) = self.machine.poll_transmit() {
            let Some(w) = self.writers.get(&conn) else {
                continue;
            };
            if w.try_send(WriterCmd::Send(msg)).is_err() {
                warn!(
                    conn,
                    "probe is not reading its control stream; disconnecting it"
                );
                if let Some(w) = self.writers.remove(&conn) {
                    drop(w);
                }
                self.machine
                    .on_closed(conn, "control stream backed up", self.clock.now_ns());
            }
        }
        while let Some((conn, close)) = self.machine.poll_close() {
            if let Some(w) = self.writers.remove(&conn) {
                // The writer sends what is queued, then closes.
                let _ = w.try_send(WriterCmd::Close(close));
            }
        }
        let mut changed = false;
        while let Some(ev) = self.machine.poll_event() {
            changed |= log_event(&ev);
            self.route(ev);
        }
        if changed {
            let probes: Vec<ProbeRecord> = self.machine.probes().cloned().collect();
            if let Some(path) = &self.status_file {
                write_status(path, self.local_addr, &probes)?;
            }
            self.probes_tx.send_replace(probes);
        }
        Ok(())
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
            Event::Telemetry { .. } => None,
            Event::Gap {
                node_id,
                from_ns,
                to_ns,
                reason,
            } => Some(Record::Gap {
                node_id: node_id.clone(),
                from_ns: *from_ns,
                to_ns: *to_ns,
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
            })
        });
        tokio::spawn(async move {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
            if let Some(p) = last.as_mut() {
                p.stage = RunStage::Finished { outcome, reason };
            }
            progress.send_replace(last);
        });
        // Acks for the last batches arrive through `recorded` as usual.
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Logs one event; returns whether the set of registered probes (or their clocks) changed.
fn log_event(ev: &Event) -> bool {
    match ev {
        Event::Registered(p) => {
            let model = p
                .inventory
                .first()
                .map_or("no devices", |d| d.model.as_str());
            info!(
                "registered node {} (hall {}, row {}, rack {}) from {}: {} devices ({model}), backend {}, session {}",
                p.node_id, p.labels.hall, p.labels.row, p.labels.rack, p.remote,
                p.inventory.len(), p.backend, p.session_id
            );
            true
        }
        Event::Refused {
            certificate_node,
            remote,
            refusal,
            ..
        } => {
            warn!(
                "refused probe with certificate for node {certificate_node} from {remote}: {}",
                refusal.message
            );
            false
        }
        Event::ProtocolError {
            certificate_node,
            remote,
            error,
            ..
        } => {
            warn!("closed connection of node {certificate_node} from {remote}: {error}");
            false
        }
        Event::Departed { node_id, reason } => {
            info!("node {node_id} disconnected: {reason}");
            true
        }
        Event::ClockUpdated { node_id, estimate } => {
            debug!(
                "clock of node {node_id}: offset {:.3} ms ± {:.1} µs (round trip {:.1} µs)",
                estimate.offset_ns as f64 / 1e6,
                estimate.uncertainty_ns as f64 / 1e3,
                estimate.rtt_ns as f64 / 1e3
            );
            true
        }
        Event::ProbeError { node_id, message } => {
            warn!("node {node_id} reported: {message}");
            false
        }
        Event::SafetyStop { node_id, message } => {
            warn!("node {node_id} safety interlock: {message}");
            false
        }
        Event::RunStarted {
            run_id,
            nodes,
            phases,
        } => {
            let secs: u64 = phases.iter().map(|p| p.duration_ms).sum::<u64>() / 1000;
            info!(
                "run {run_id}: {} probes, {} phases ({secs} s) scheduled",
                nodes.len(),
                phases.len()
            );
            false
        }
        Event::PhaseStarted {
            node_id, phase_id, ..
        } => {
            debug!("node {node_id} started phase {phase_id}");
            false
        }
        Event::Telemetry { .. } => false,
        Event::Gap {
            node_id, reason, ..
        } => {
            warn!("node {node_id}: gap in telemetry: {reason}");
            false
        }
        Event::PhaseReport { node_id, report } => {
            if let Some(why) = &report.stopped_early {
                warn!(
                    "node {node_id} ended phase {} early: {why}",
                    report.phase_id
                );
            }
            false
        }
        Event::ProbeLost {
            node_id, reason, ..
        } => {
            warn!("node {node_id} lost during the run: {reason}");
            false
        }
        Event::ProbeBack { node_id, .. } => {
            info!("node {node_id} is back");
            false
        }
        Event::RunFinished {
            run_id,
            outcome,
            reason,
            ..
        } => {
            if reason.is_empty() {
                info!("run {run_id} finished: {outcome:?}");
            } else {
                info!("run {run_id} finished: {outcome:?} ({reason})");
            }
            false
        }
    }
}

/// Writes the status file: who is connected, atomically (temp file + rename).
fn write_status(
    path: &Path,
    listen: SocketAddr,
    probes: &[ProbeRecord],
) -> Result<(), ServerError> {
    #[derive(serde::Serialize)]
    struct Status<'a> {
        listen: String,
        written_at_ns: i64,
        probes: &'a [ProbeRecord],
    }
    let status = Status {
        listen: listen.to_string(),
        written_at_ns: WallClock::new().now_ns(),
        probes,
    };
    let err = |source| ServerError::StatusFile {
        path: path.to_path_buf(),
        source,
    };
    let json = serde_json::to_vec_pretty(&status).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
