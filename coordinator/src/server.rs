//! The coordinator's tokio shell: a QUIC endpoint, one task per connection, and one task that owns
//! the [`Coordinator`] state machine and does what it says.
//!
//! Connection tasks authenticate the peer (mutual TLS; the certificate's node id), accept the
//! probe's control stream, cut frames out of it and forward payloads to the core task, each stamped
//! with the coordinator's clock on arrival. The core task feeds them to the machine, runs its
//! timers, and routes its transmits, closes and events: messages to per-connection writer tasks,
//! events to the log, to subscribers and to the status file.

use crate::machine::{
    close_code, Close, ConnId, Coordinator, CoordinatorConfig, Event, ProbeRecord,
};
use hallmark_protocol::{CoordinatorMessage, DecodeError};
use hallmark_transport::clock::WallClock;
use hallmark_transport::framed::{FramedError, FramedRecv, FramedSend};
use hallmark_transport::tls::{self, Identity, TransportOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

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
    events: broadcast::Sender<Event>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

enum ShellEvent {
    Connected {
        conn: ConnId,
        node: hallmark_protocol::NodeId,
        remote: String,
        writer: mpsc::Sender<WriterCmd>,
    },
    Payload {
        conn: ConnId,
        bytes: Vec<u8>,
        at_ns: i64,
    },
    FrameError {
        conn: ConnId,
        error: DecodeError,
    },
    Closed {
        conn: ConnId,
        reason: String,
    },
}

enum WriterCmd {
    Send(CoordinatorMessage),
    Close(Close),
}

/// Messages queued for one probe before it counts as too slow and is disconnected.
const WRITER_QUEUE: usize = 4096;

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
        let (events, _) = broadcast::channel(1024);
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        if let Some(path) = &opts.status_file {
            write_status(path, local_addr, &[])?;
        }
        info!(%local_addr, "coordinator listening");
        let core = Core {
            machine: Coordinator::new(opts.config.clone()),
            clock: WallClock::new(),
            writers: HashMap::new(),
            probes_tx,
            events: events.clone(),
            status_file: opts.status_file.clone(),
            local_addr,
        };
        let task = tokio::spawn(core.run(endpoint, opts.handshake_timeout, shutdown_rx));
        Ok(ServerHandle {
            local_addr,
            probes,
            events,
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
    events: broadcast::Sender<Event>,
    status_file: Option<PathBuf>,
    local_addr: SocketAddr,
}

impl Core {
    async fn run(
        mut self,
        endpoint: quinn::Endpoint,
        handshake_timeout: Duration,
        mut shutdown: oneshot::Receiver<()>,
    ) -> Result<(), ServerError> {
        let (tx, mut rx) = mpsc::channel::<ShellEvent>(8192);
        let mut next_conn: ConnId = 1;
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
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.machine.handle_timeout(self.clock.now_ns());
                }
            }
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
        info!("coordinator stopped");
        Ok(())
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
                self.machine.on_closed(conn, &reason);
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
                self.machine.on_closed(conn, "control stream backed up");
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
            let _ = self.events.send(ev);
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

async fn connection(
    conn: ConnId,
    incoming: quinn::Incoming,
    tx: mpsc::Sender<ShellEvent>,
    clock: WallClock,
    handshake_timeout: Duration,
) {
    let remote = incoming.remote_address().to_string();
    let connection = match tokio::time::timeout(handshake_timeout, async { incoming.await }).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let why = match &e {
                quinn::ConnectionError::ConnectionClosed(c) => format!(
                    "the probe aborted the TLS handshake ({c}); its --ca does not hold this coordinator's CA"
                ),
                quinn::ConnectionError::TransportError(t) => format!(
                    "TLS handshake failed ({t}); the probe's certificate is not from this coordinator's CA"
                ),
                other => format!("TLS handshake failed: {other}"),
            };
            warn!("refused connection from {remote}: {why}");
            return;
        }
        Err(_) => {
            warn!(
                "refused connection from {remote}: no TLS handshake within {handshake_timeout:?}"
            );
            return;
        }
    };
    let node = match tls::peer_node_id(&connection) {
        Ok(n) => n,
        Err(e) => {
            warn!("refused connection from {remote}: {e}");
            connection.close(close_code::REFUSED.into(), e.to_string().as_bytes());
            return;
        }
    };
    let (send, recv) = match tokio::time::timeout(handshake_timeout, connection.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(%node, %remote, "connection ended before a control stream: {e}");
            return;
        }
        Err(_) => {
            warn!("closed connection of node {node} from {remote}: no control stream within {handshake_timeout:?}");
            connection.close(
                close_code::PROTOCOL_ERROR.into(),
                b"no control stream opened",
            );
            return;
        }
    };
    let (wtx, wrx) = mpsc::channel(WRITER_QUEUE);
    let connected = ShellEvent::Connected {
        conn,
        node,
        remote,
        writer: wtx,
    };
    if tx.send(connected).await.is_err() {
        return;
    }
    tokio::spawn(writer(wrx, FramedSend::new(send), connection.clone()));
    let mut reader = FramedRecv::new(recv);
    let reason = loop {
        match reader.recv_payload().await {
            Ok(Some(p)) => {
                let ev = ShellEvent::Payload {
                    conn,
                    bytes: p.to_vec(),
                    at_ns: clock.now_ns(),
                };
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            Ok(None) => break "probe closed its control stream".to_string(),
            Err(FramedError::Decode(error)) => {
                if tx
                    .send(ShellEvent::FrameError { conn, error })
                    .await
                    .is_err()
                {
                    return;
                }
                // The core closes the connection; wait for that (bounded by the idle timeout).
                break describe_close(&connection.closed().await);
            }
            Err(e) => break close_reason(&connection, &e),
        }
    };
    let _ = tx.send(ShellEvent::Closed { conn, reason }).await;
}

fn close_reason(connection: &quinn::Connection, e: &FramedError) -> String {
    match connection.close_reason() {
        Some(r) => describe_close(&r),
        None => e.to_string(),
    }
}

/// Why a probe's connection ended, in words an operator can act on.
fn describe_close(e: &quinn::ConnectionError) -> String {
    use quinn::ConnectionError as E;
    match e {
        E::ApplicationClosed(c) if c.reason.is_empty() => "the probe closed the connection".into(),
        E::ApplicationClosed(c) => format!(
            "the probe closed the connection: {}",
            String::from_utf8_lossy(&c.reason)
        ),
        E::TimedOut => {
            "no answer from the probe within the idle timeout (probe died or network failed)".into()
        }
        E::Reset => "the probe reset the connection (it restarted)".into(),
        E::LocallyClosed => "closed by the coordinator".into(),
        other => other.to_string(),
    }
}

async fn writer(mut rx: mpsc::Receiver<WriterCmd>, mut send: FramedSend, conn: quinn::Connection) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            WriterCmd::Send(msg) => {
                if let Err(e) = send.send(&msg).await {
                    debug!("control stream write failed: {e}");
                    break;
                }
            }
            WriterCmd::Close(close) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), send.finish()).await;
                let mut reason = close.reason.into_bytes();
                reason.truncate(900);
                conn.close(close.code.into(), &reason);
                return;
            }
        }
    }
    conn.close(close_code::DONE.into(), b"");
}
