//! The coordinator's tokio shell: a QUIC endpoint, one task per connection, one task that owns
//! the [`Coordinator`] state machine and does what it says, and a writer thread for the run store.
//!
//! Connection tasks (`conn.rs`) authenticate the peer (mutual TLS; the certificate's node
//! id), accept the probe's control stream, cut frames out of it and forward payloads to the core
//! task, each stamped with the coordinator's clock on arrival. The core task feeds them to the
//! machine, runs its timers, and routes its transmits, closes and events: messages to
//! per-connection writer tasks, run data to the recorder ([`crate::record`]), events to the log,
//! to subscribers, to the run's progress and to the status file. With `--crl`, a task looks at the
//! revocation list's file every second and the connection tasks close a connection whose
//! certificate a new list revokes (see `conn.rs`).

use crate::admit::{Admission, LoadRefusals};
use crate::limits::MAX_PROBE_FRAME;
use crate::machine::{Coordinator, CoordinatorConfig, Event, ProbeRecord};
use crate::metrics::Metrics;
use crate::metrics_http;
use crate::record::{RecordError, Recorder};
use crate::run::Outcome;
use crate::shell::Core;
use crate::status::write_status;
use hallmark_protocol::plan::Plan;
use hallmark_transport::clock::WallClock;
use hallmark_transport::revocation;
use hallmark_transport::tls::{self, Identity, TransportOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{info, warn};

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
    #[error(transparent)]
    Metrics(#[from] crate::metrics_http::MetricsBindError),
}

/// Handshakes in flight at once by default: enough to keep two cores busy with handshakes over a
/// loopback or a LAN (each costs about a millisecond of CPU and a round trip or two), few enough
/// that each finishes well within the probes' 5 s connect timeout under a storm.
pub const DEFAULT_MAX_HANDSHAKES: usize = 128;

/// How to run a coordinator.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub transport: TransportOptions,
    pub config: CoordinatorConfig,
    /// Rewritten (atomically) with the registered probes whenever they change.
    pub status_file: Option<PathBuf>,
    /// The revocation list whose certificates are refused (re-read when the file changes).
    pub crl: Option<PathBuf>,
    /// Longest wait for a TLS handshake and for the probe's control stream.
    pub handshake_timeout: Duration,
    /// Connections open at once, handshakes included; more are refused before their handshake.
    pub max_connections: usize,
    /// Handshakes in flight at once, from a connection's arrival until its control stream is open
    /// ([`DEFAULT_MAX_HANDSHAKES`]); more are refused before any cryptography and the probes
    /// retry after a jittered backoff, so that a registration storm is slowed, not timed out.
    pub max_handshakes: usize,
    /// Connections one node certificate may hold at once.
    pub max_connections_per_node: usize,
    /// Serve live metrics for Prometheus on this TCP address (`GET /metrics`).
    pub metrics: Option<SocketAddr>,
    /// Receive buffer asked for the endpoint's one UDP socket, bytes ([`DEFAULT_UDP_RECEIVE_BUFFER`]):
    /// every probe's datagrams arrive on it, and what overflows it is dropped by the kernel and
    /// resent by QUIC a loss-detection timeout later. The kernel caps it (Linux:
    /// `net.core.rmem_max`); the coordinator logs what it got.
    pub udp_receive_buffer: usize,
}

/// [`ServerOptions::udp_receive_buffer`] by default: 8 MiB, some 6 000 full-size datagrams.
pub const DEFAULT_UDP_RECEIVE_BUFFER: usize = 8 << 20;

impl ServerOptions {
    pub fn new(listen: SocketAddr) -> Self {
        ServerOptions {
            listen,
            // One largest frame in flight on the control stream, and no more streams.
            transport: TransportOptions::coordinator(MAX_PROBE_FRAME as u32 + (64 << 10)),
            config: CoordinatorConfig::default(),
            status_file: None,
            crl: None,
            handshake_timeout: Duration::from_secs(5),
            max_connections: 4096,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            max_connections_per_node: 4,
            metrics: None,
            udp_receive_buffer: DEFAULT_UDP_RECEIVE_BUFFER,
        }
    }
}

/// The endpoint's UDP socket on `listen`, its receive buffer raised towards `receive_buffer` (a
/// smaller one than asked is logged, with the kernel setting that caps it).
fn udp_socket(listen: SocketAddr, receive_buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if let Err(e) = socket.set_recv_buffer_size(receive_buffer) {
        warn!("could not raise the UDP receive buffer to {receive_buffer} bytes: {e}");
    }
    match socket.recv_buffer_size() {
        Ok(got) if got < receive_buffer => warn!(
            "the UDP receive buffer is {got} bytes, less than the {receive_buffer} asked: under a \
             registration storm datagrams may be dropped and resent late (on Linux raise \
             net.core.rmem_max)"
        ),
        Ok(got) => info!("UDP receive buffer: {got} bytes"),
        Err(e) => warn!("cannot read the UDP receive buffer's size: {e}"),
    }
    socket.bind(&listen.into())?;
    Ok(socket.into())
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
    admission: Admission,
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
    /// Telemetry readings (samples and node-power readings) received and not yet stored, all
    /// probes together: bounded by the telemetry budget per probe.
    pub unstored_readings: u64,
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

pub(crate) enum CoreCmd {
    StartRun {
        run_id: String,
        plan: Plan,
        /// `Some`: resume this interrupted run (collect what its probes hold) instead.
        resume: Option<crate::run::ResumeFrom>,
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
        let (server_config, revocation) =
            tls::server_config_with_revocation(identity, &opts.transport, opts.crl.as_deref())?;
        let bind_error = |source| ServerError::Bind {
            addr: opts.listen,
            source,
        };
        let socket = udp_socket(opts.listen, opts.udp_receive_buffer).map_err(bind_error)?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_error)?;
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
        let metrics = match opts.metrics {
            None => None,
            Some(addr) => {
                let listener = metrics_http::bind(addr).await?;
                let served = listener.local_addr().unwrap_or(addr);
                info!(%served, "serving metrics at http://{served}/metrics");
                let shared = Arc::new(Mutex::new(Metrics::new()));
                let clock = WallClock::new();
                let now: Arc<dyn Fn() -> i64 + Send + Sync> = Arc::new(move || clock.now_ns());
                let serving = metrics_http::spawn(listener, shared.clone(), now);
                Some((shared, serving))
            }
        };
        let (recorded_tx, recorded_rx) = mpsc::unbounded_channel();
        let core = Core::new(
            Coordinator::new(opts.config.clone()),
            probes_tx,
            progress_tx,
            events.clone(),
            opts.status_file.clone(),
            local_addr,
            recorded_tx,
        )
        .with_metrics(metrics);
        // With --crl: the connection tasks learn of every list that takes effect, and the file is
        // looked at every second, so an open connection a new list revokes is closed within
        // REVOCATION_BOUND with no handshake needed (the task ends once the core and every
        // connection task are gone).
        let core = match revocation {
            Some(check) => {
                let core = core.with_revocations(check.subscribe());
                tokio::spawn(check.watch_file(revocation::WATCH_EVERY));
                core
            }
            None => core,
        };
        let admission = Admission::new(
            opts.max_connections,
            opts.max_handshakes.max(1),
            opts.max_connections_per_node,
        );
        let task = tokio::spawn(core.run(
            endpoint,
            opts.handshake_timeout,
            admission.clone(),
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
            admission,
        })
    }

    /// Connections turned away before their handshake so far, by cause (the probes retry them).
    pub fn load_refusals(&self) -> LoadRefusals {
        self.admission.refusals()
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
        self.start_or_resume(run_id, plan, None, recorder).await
    }

    /// Resumes the interrupted run `run_id`: collects what its probes still hold (they reconnect
    /// to this coordinator on the same address and CA), then finishes it INCOMPLETE.
    pub async fn resume_run(
        &self,
        run_id: String,
        plan: Plan,
        from: crate::run::ResumeFrom,
        recorder: Box<dyn Recorder>,
    ) -> Result<(), ServerError> {
        self.start_or_resume(run_id, plan, Some(from), recorder)
            .await
    }

    async fn start_or_resume(
        &self,
        run_id: String,
        plan: Plan,
        resume: Option<crate::run::ResumeFrom>,
        recorder: Box<dyn Recorder>,
    ) -> Result<(), ServerError> {
        let (reply, rx) = oneshot::channel();
        let cmd = CoreCmd::StartRun {
            run_id,
            plan,
            resume,
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
