//! The probe's tokio shell: connect to the coordinator, register, answer it, reconnect.
//!
//! One control session at a time: connect (mutual TLS over QUIC), open the control stream, send the
//! Hello, then feed every coordinator message to the [`ProbeSession`] state machine and write what
//! it answers. When the coordinator is not up yet or goes away, the probe retries with capped,
//! jittered exponential backoff (a restarted coordinator is not stormed by every probe at once).
//! What retrying cannot fix — a refusal, a certificate the coordinator rejects, a coordinator this
//! probe does not trust — ends the probe with an error that says what to do.
//!
//! The session's loop never waits on a write: what the machine answers goes into an [`Outbox`] that
//! a `writer::Writer` empties one message at a time, beside reading the coordinator and running
//! the machine's timers. So when the coordinator holds this probe's telemetry back (it stops
//! reading the connection while its store catches up, and QUIC flow control stops the writes), the
//! phases still start and end on time, the interlocks (dead-man, temperature) still run, and the
//! coordinator's messages (heartbeats, clock pings, stops) are still heard; the queue holds what
//! waits, bounded (docs in [`crate::outbox`]).

mod addr;
mod writer;

use addr::{jitter_seed, looks_like_host_port, next_unit, resolve, split_host};

use crate::facility::FacilityInbox;
use crate::outbox::Outbox;
use crate::session::{ProbeSession, SessionEvent};
use hallmark_protocol::{ClockEstimate, CoordinatorMessage, Hello, ProbeMessage, Refusal};
use hallmark_transport::clock::WallClock;
use hallmark_transport::framed::{FramedError, FramedRecv, FramedSend};
use hallmark_transport::tls::{self, ConnectFailure, Identity, TransportOptions};
use hallmark_workloads::backend::Backend;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

/// Why a probe stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the coordinator refused this probe: {}", .0.message)]
    Refused(Refusal),
    /// The coordinator closed the connection as a refusal, and its Refused message did not arrive.
    #[error("the coordinator refused this probe: {0}")]
    RefusedOnClose(String),
    #[error("{0}")]
    Connect(ConnectFailure),
    #[error("TLS configuration: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot resolve the coordinator address {addr:?}: {detail}; give HOST:PORT, e.g. coordinator.example:4433 or 10.0.0.1:4433")]
    Resolve { addr: String, detail: String },
    #[error("cannot open a local UDP socket: {0}")]
    Socket(std::io::Error),
    #[error("the probe task failed: {0}")]
    Task(String),
}

impl ProbeError {
    /// The exit code the CLI uses: 2 for refusals and authentication, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProbeError::Refused(_) | ProbeError::RefusedOnClose(_) | ProbeError::Connect(_) => 2,
            _ => 1,
        }
    }
}

/// Capped exponential backoff between connection attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The pause before attempt `attempt` (1-based; attempt 1 is immediate), jittered into
    /// [½, 1] of the capped exponential value by `jitter` in 0..1.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let exp = self
            .initial
            .saturating_mul(1u32 << (attempt - 2).min(20))
            .min(self.max);
        exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// How to run a probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Coordinator address, HOST:PORT.
    pub coordinator: String,
    /// Name to verify the coordinator's certificate against; defaults to the host in `coordinator`.
    pub server_name: Option<String>,
    pub transport: TransportOptions,
    pub hello: Hello,
    pub backoff: Backoff,
    /// Longest wait for one connection attempt's handshake.
    pub connect_timeout: Duration,
    /// Clock the probe stamps with (tests shift it to simulate a skewed node).
    pub clock: WallClock,
    /// Largest UDP payload this probe's endpoint accepts, bytes (QUIC's `max_udp_payload_size`;
    /// at least 1200). The endpoint's receive buffer is this times its batch of datagrams (32 on
    /// Linux), about 2 MiB at quinn's default of 65527: `None` keeps that default; thousands of
    /// probes in one process (`hallmark bench fleet`) set a smaller one.
    pub max_udp_payload: Option<u16>,
    /// A facility collector's readings, left by its collector task ([`ProbeHandle::spawn_facility`]).
    pub facility: Option<FacilityInbox>,
}

impl ProbeOptions {
    pub fn new(coordinator: impl Into<String>, hello: Hello) -> Self {
        ProbeOptions {
            coordinator: coordinator.into(),
            server_name: None,
            transport: TransportOptions::default(),
            hello,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            clock: WallClock::new(),
            max_udp_payload: None,
            facility: None,
        }
    }
}

/// What the probe is doing now.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeStatus {
    Connecting {
        attempt: u32,
        last_error: Option<String>,
    },
    Registered {
        session_id: u64,
        clock: Option<ClockEstimate>,
    },
    Stopped,
}

/// A running probe.
#[derive(Debug)]
pub struct ProbeHandle {
    status: watch::Receiver<ProbeStatus>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ProbeError>>,
    /// Set once the task's result has been taken.
    joined: bool,
}

impl ProbeHandle {
    /// Starts a probe in the background, loading `backend`.
    pub fn spawn(
        identity: &Identity,
        opts: ProbeOptions,
        backend: Box<dyn Backend>,
    ) -> Result<Self, ProbeError> {
        ProbeHandle::spawn_with_fabric(identity, opts, backend, None)
    }

    /// As [`ProbeHandle::spawn`], with a data plane for fabric phases (its address goes in the
    /// Hello).
    pub fn spawn_with_fabric(
        identity: &Identity,
        opts: ProbeOptions,
        backend: Box<dyn Backend>,
        fabric: Option<Box<dyn crate::fabric::FabricDriver>>,
    ) -> Result<Self, ProbeError> {
        let session = match fabric {
            Some(f) => ProbeSession::with_fabric(opts.hello.clone(), backend, f),
            None => ProbeSession::new(opts.hello.clone(), backend),
        };
        ProbeHandle::spawn_session(identity, opts, session)
    }

    /// Starts a facility collector's probe: it registers as [`hallmark_protocol::ProbeRole::Facility`]
    /// with no devices and sends what is left in `inbox` (the collector task fills it, stamping
    /// readings with `opts.clock`).
    pub fn spawn_facility(
        identity: &Identity,
        mut opts: ProbeOptions,
        inbox: FacilityInbox,
    ) -> Result<Self, ProbeError> {
        let session = ProbeSession::for_facility(opts.hello.clone());
        opts.facility = Some(inbox);
        ProbeHandle::spawn_session(identity, opts, session)
    }

    /// Runs `session` in the background, connecting as `opts` says.
    fn spawn_session(
        identity: &Identity,
        opts: ProbeOptions,
        session: ProbeSession,
    ) -> Result<Self, ProbeError> {
        let client = tls::client_config(identity, &opts.transport)?;
        let (status_tx, status) = watch::channel(ProbeStatus::Connecting {
            attempt: 0,
            last_error: None,
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let task = tokio::spawn(run(client, opts, session, status_tx, shutdown_rx));
        Ok(ProbeHandle {
            status,
            shutdown: Some(shutdown_tx),
            task,
            joined: false,
        })
    }

    /// What the probe is doing now.
    pub fn status(&self) -> ProbeStatus {
        self.status.borrow().clone()
    }

    /// A receiver of status changes.
    pub fn watch(&self) -> watch::Receiver<ProbeStatus> {
        self.status.clone()
    }

    /// Waits until the status satisfies `pred`, at most `limit`.
    pub async fn wait_for(
        &self,
        limit: Duration,
        mut pred: impl FnMut(&ProbeStatus) -> bool,
    ) -> Option<ProbeStatus> {
        let mut rx = self.status.clone();
        let wait = async {
            loop {
                {
                    let s = rx.borrow_and_update();
                    if pred(&s) {
                        return Some(s.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }

    /// Whether the probe task has ended (fatal error or shutdown).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the probe and waits for it.
    pub async fn shutdown(mut self) -> Result<(), ProbeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.join().await
    }

    /// Waits for the probe to end by itself (a fatal error).
    pub async fn join(mut self) -> Result<(), ProbeError> {
        self.finished().await
    }

    /// Waits for the probe task to end and takes its result; cancel-safe (for `select!`). After it
    /// returned once, later calls return `Ok(())` at once.
    pub async fn finished(&mut self) -> Result<(), ProbeError> {
        if self.joined {
            return Ok(());
        }
        let r = (&mut self.task).await;
        self.joined = true;
        match r {
            Ok(r) => r,
            Err(e) => Err(ProbeError::Task(e.to_string())),
        }
    }
}

/// What one turn of the session's loop got.
enum Turn {
    Shutdown,
    /// Messages to send, and what happened to the session.
    Handled(Vec<hallmark_protocol::ProbeMessage>, Option<SessionEvent>),
    /// A queued message was written (or the write failed).
    Written(Result<(), FramedError>),
}

/// How one session ended.
enum SessionEnd {
    /// Worth another attempt; `registered` says whether this one got as far as a Welcome.
    Retry {
        registered: bool,
        reason: String,
    },
    Fatal(ProbeError),
    /// The probe was told to stop; the load is stopped and reported.
    Shutdown,
}

async fn run(
    client: quinn::ClientConfig,
    opts: ProbeOptions,
    mut machine: ProbeSession,
    status: watch::Sender<ProbeStatus>,
    mut shutdown: oneshot::Receiver<()>,
) -> Result<(), ProbeError> {
    let (host, _) = split_host(&opts.coordinator);
    let server_name = opts.server_name.clone().unwrap_or_else(|| host.to_string());
    let mut attempt = 0u32;
    let mut rng = jitter_seed(opts.hello.node_id.as_str());
    let mut last_error: Option<String> = None;
    let result = loop {
        attempt += 1;
        let pause = opts.backoff.delay(attempt, next_unit(&mut rng));
        status.send_replace(ProbeStatus::Connecting {
            attempt,
            last_error: last_error.clone(),
        });
        if !pause_running(&mut machine, &opts.clock, pause, &mut shutdown).await {
            break Ok(());
        }
        let addr = match resolve(&opts.coordinator).await {
            Ok(a) => a,
            Err(e) if !looks_like_host_port(&opts.coordinator) => break Err(e),
            Err(e) => {
                warn!("attempt {attempt}: {e}");
                last_error = Some(e.to_string());
                continue;
            }
        };
        let bind = if addr.is_ipv6() {
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
        };
        let mut endpoint = match client_endpoint(bind, opts.max_udp_payload) {
            Ok(e) => e,
            Err(e) => {
                machine.stop_load(opts.clock.now_ns(), "probe stopped: no UDP socket");
                break Err(ProbeError::Socket(e));
            }
        };
        endpoint.set_default_client_config(client.clone());
        let end = session(
            &endpoint,
            addr,
            &server_name,
            &opts,
            &mut machine,
            &status,
            &mut shutdown,
        )
        .await;
        machine.disconnected();
        // A fatal end (a refusal; a certificate revoked, at a handshake or while connected) stops
        // the load at once, not after the endpoint's wait below.
        if let SessionEnd::Fatal(e) = &end {
            machine.stop_load(opts.clock.now_ns(), &format!("probe stopped: {e}"));
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        match end {
            SessionEnd::Shutdown => break Ok(()),
            SessionEnd::Fatal(e) => break Err(e),
            SessionEnd::Retry { registered, reason } => {
                if registered {
                    // A session that worked: start the backoff over.
                    attempt = 0;
                    warn!("lost the coordinator at {addr}: {reason}; reconnecting");
                } else {
                    debug!("attempt {attempt} to reach {addr} failed: {reason}");
                }
                last_error = Some(reason);
            }
        }
    };
    log_notices(&mut machine);
    status.send_replace(ProbeStatus::Stopped);
    result
}

/// A client endpoint on `bind`, accepting UDP payloads up to `max_udp_payload` (quinn's default when
/// `None`).
fn client_endpoint(
    bind: SocketAddr,
    max_udp_payload: Option<u16>,
) -> std::io::Result<quinn::Endpoint> {
    let Some(max) = max_udp_payload else {
        return quinn::Endpoint::client(bind);
    };
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(max)
        .map_err(|e| std::io::Error::other(format!("max UDP payload {max}: {e}")))?;
    let socket = std::net::UdpSocket::bind(bind)?;
    quinn::Endpoint::new(
        config,
        None,
        socket,
        std::sync::Arc::new(quinn::TokioRuntime),
    )
}

/// Waits `pause` while running the session's timers (a phase goes on while disconnected, until
/// the dead-man interlock stops it). Returns false when told to shut down (the load is stopped).
async fn pause_running(
    machine: &mut ProbeSession,
    clock: &WallClock,
    pause: Duration,
    shutdown: &mut oneshot::Receiver<()>,
) -> bool {
    let until = tokio::time::Instant::now() + pause;
    // Bounded: each turn either sleeps to the next timer or to the end of the pause.
    for _ in 0..1_000_000 {
        let timer = machine.poll_timeout().map(|t| clock.instant_at(t).into());
        let wake = timer.map_or(until, |t: tokio::time::Instant| t.min(until));
        tokio::select! {
            _ = &mut *shutdown => {
                machine.stop_load(clock.now_ns(), "probe shutting down");
                return false;
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        if tokio::time::Instant::now() >= until {
            return true;
        }
        machine.handle_timeout(clock.now_ns());
        log_notices(machine);
    }
    true
}

/// Logs what the probe did on its own authority (interlocks, early phase ends).
fn log_notices(machine: &mut ProbeSession) {
    for n in machine.take_notices() {
        warn!("{n}");
    }
}

/// The last stretch before a precise timer that a blocking thread sleeps on the OS's
/// high-resolution timer (see [`sleep_until_ns`]).
const FINE_WAIT: Duration = Duration::from_millis(2);

/// Sleeps until `at` on the probe's clock. tokio's timer wheel counts whole milliseconds and
/// rounds a deadline up to its next tick, which alone would start every phase up to 1 ms late
/// (rack-wide steps are meant to line up within that). So for a `precise` timer (a phase's start
/// or end: [`ProbeSession::next_transition`]) the wheel sleeps until [`FINE_WAIT`] before the
/// instant and a blocking thread sleeps the rest (tens of µs late on Linux); every other timer
/// (sampling instants, read anywhere within their period of at least 10 ms; clock pings; polls of
/// lingering fabric work) sleeps on the wheel alone. Dropping the future (another branch of a
/// `select!` won) leaves that thread to finish its short sleep.
async fn sleep_until_ns(clock: &WallClock, at: Option<i64>, precise: bool) {
    let Some(t) = at else {
        return std::future::pending().await;
    };
    let deadline = clock.instant_at(t);
    if !precise {
        return tokio::time::sleep_until(deadline.into()).await;
    }
    let coarse = deadline.checked_sub(FINE_WAIT).unwrap_or(deadline);
    tokio::time::sleep_until(coarse.into()).await;
    let rest = deadline.saturating_duration_since(std::time::Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

async fn session(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    opts: &ProbeOptions,
    machine: &mut ProbeSession,
    status: &watch::Sender<ProbeStatus>,
    shutdown: &mut oneshot::Receiver<()>,
) -> SessionEnd {
    let fail = |f: ConnectFailure| {
        if f.is_fatal() {
            SessionEnd::Fatal(ProbeError::Connect(f))
        } else {
            SessionEnd::Retry {
                registered: false,
                reason: f.to_string(),
            }
        }
    };
    let connecting = match endpoint.connect(addr, server_name) {
        Ok(c) => c,
        Err(e) => return fail(tls::classify_connect_error(&e)),
    };
    let conn = tokio::select! {
        _ = &mut *shutdown => {
            machine.stop_load(opts.clock.now_ns(), "probe shutting down");
            return SessionEnd::Shutdown;
        }
        c = tokio::time::timeout(opts.connect_timeout, connecting) => match c {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return fail(tls::classify_connection_error(&e)),
            Err(_) => return fail(ConnectFailure::TimedOut),
        },
    };
    let (send, recv) = match conn.open_bi().await {
        Ok(s) => s,
        Err(e) => return fail(tls::classify_connection_error(&e)),
    };
    let mut send = FramedSend::new(send);
    let mut recv = FramedRecv::new(recv);
    if let Err(e) = send.send(&machine.connected()).await {
        return lost(&conn, &e, false);
    }
    let mut writer = writer::Writer::new(send);
    let mut outbox = Outbox::default();
    let mut registered = false;
    loop {
        writer.start(&mut outbox);
        writer::log_dropped(&mut outbox);
        let timer = machine.poll_timeout();
        let precise = timer.is_some() && timer == machine.next_transition();
        let turn = tokio::select! {
            _ = &mut *shutdown => Turn::Shutdown,
            _ = sleep_until_ns(&opts.clock, timer, precise) => {
                Turn::Handled(machine.handle_timeout(opts.clock.now_ns()), None)
            }
            msg = recv.recv::<CoordinatorMessage>() => match msg {
                Ok(Some(m)) => {
                    let (out, event) = machine.handle(m, opts.clock.now_ns());
                    Turn::Handled(out, event)
                }
                Ok(None) => {
                    // The coordinator ended the stream; the close that follows says why.
                    let reason = tokio::time::timeout(Duration::from_secs(2), conn.closed())
                        .await
                        .ok();
                    return match reason {
                        Some(e) => closed(&e, registered),
                        None => SessionEnd::Retry {
                            registered,
                            reason: "the coordinator ended the control stream".into(),
                        },
                    };
                }
                Err(e) => return lost(&conn, &e, registered),
            },
            r = writer.written(), if writer.is_busy() => Turn::Written(r),
            _ = inbox_ready(opts.facility.as_ref()) => Turn::Handled(take_facility(opts, machine), None),
        };
        let (outgoing, event) = match turn {
            Turn::Shutdown => {
                writer::shut_down(machine, &opts.clock, writer, &mut outbox).await;
                conn.close(0u32.into(), b"probe shutting down");
                return SessionEnd::Shutdown;
            }
            Turn::Written(Err(e)) => return lost(&conn, &e, registered),
            Turn::Written(Ok(())) => continue,
            Turn::Handled(out, event) => (out, event),
        };
        log_notices(machine);
        outbox.extend(outgoing);
        match event {
            Some(SessionEvent::Registered(w)) => {
                registered = true;
                info!(
                    "registered with the coordinator at {addr} as node {} (session {}, {} devices)",
                    opts.hello.node_id,
                    w.session_id,
                    opts.hello.inventory.len()
                );
                status.send_replace(ProbeStatus::Registered {
                    session_id: w.session_id,
                    clock: machine.clock(),
                });
            }
            Some(SessionEvent::Refused(r)) => {
                conn.close(0u32.into(), b"refused");
                return SessionEnd::Fatal(ProbeError::Refused(r));
            }
            Some(SessionEvent::ClockUpdated(e)) => {
                debug!(
                    "clock offset to the coordinator {:.3} ms ± {:.1} µs",
                    e.offset_ns as f64 / 1e6,
                    e.uncertainty_ns as f64 / 1e3
                );
                status.send_modify(|s| {
                    if let ProbeStatus::Registered { clock, .. } = s {
                        *clock = Some(e);
                    }
                });
            }
            Some(SessionEvent::PhaseScheduled { phase_id, name }) => {
                debug!("phase {phase_id} ({name}) scheduled")
            }
            Some(SessionEvent::Aborted(reason)) => warn!("coordinator aborted the run: {reason}"),
            Some(SessionEvent::CoordinatorError(e)) => {
                warn!("coordinator reported {:?}: {}", e.code, e.message)
            }
            None => {}
        }
    }
}

/// Resolves when the collector has left readings; never without a collector.
async fn inbox_ready(inbox: Option<&FacilityInbox>) {
    match inbox {
        Some(i) => i.ready().await,
        None => std::future::pending().await,
    }
}

/// What the collector left, handed to the session; readings the inbox gave up are logged.
fn take_facility(opts: &ProbeOptions, machine: &mut ProbeSession) -> Vec<ProbeMessage> {
    let Some(inbox) = opts.facility.as_ref() else {
        return Vec::new();
    };
    let (readings, dropped) = inbox.take();
    if dropped > 0 {
        warn!(
            "gave up {dropped} facility readings: the probe could not send them as fast as the \
             collector made them"
        );
    }
    machine.push_facility(readings)
}

/// A stream error: classify by the connection's close reason when there is one.
fn lost(conn: &quinn::Connection, e: &FramedError, registered: bool) -> SessionEnd {
    match conn.close_reason() {
        Some(reason) => closed(&reason, registered),
        None => {
            conn.close(2u32.into(), b"protocol error");
            SessionEnd::Retry {
                registered,
                reason: format!("control stream failed: {e}"),
            }
        }
    }
}

/// The connection is gone: a refusal and authentication failures are final, the rest is retried.
fn closed(e: &quinn::ConnectionError, registered: bool) -> SessionEnd {
    if let quinn::ConnectionError::ApplicationClosed(c) = e {
        // The coordinator closes with code 1 after a refusal; its Refused message normally arrives
        // first and ends the session there.
        if c.error_code.into_inner() == 1 {
            let reason = String::from_utf8_lossy(&c.reason).into_owned();
            return SessionEnd::Fatal(ProbeError::RefusedOnClose(reason));
        }
    }
    let f = tls::classify_connection_error(e);
    if f.is_fatal() {
        SessionEnd::Fatal(ProbeError::Connect(f))
    } else {
        SessionEnd::Retry {
            registered,
            reason: f.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endpoint_takes_a_smaller_udp_payload_and_refuses_one_below_quic_minimum() {
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        let e = client_endpoint(bind, Some(1472)).unwrap();
        assert!(e.local_addr().unwrap().port() != 0);
        let err = client_endpoint(bind, Some(1000)).unwrap_err();
        assert!(err.to_string().contains("max UDP payload 1000"), "{err}");
        client_endpoint(bind, None).unwrap();
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, 0.3), Duration::ZERO);
        assert_eq!(b.delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay(2, 0.0), Duration::from_millis(100));
        assert_eq!(b.delay(40, 1.0), Duration::from_secs(5));
        assert!(b.delay(40, 0.0) >= Duration::from_millis(2500));
    }
}
