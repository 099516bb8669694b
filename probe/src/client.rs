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
mod backoff;
mod endpoint;
mod options;
mod timers;
mod writer;

pub use backoff::{Backoff, Jitter, LastFailure, RetrySchedule};
pub use options::{ProbeError, ProbeOptions, ProbeStatus};

use addr::{looks_like_host_port, resolve, split_host};
use endpoint::{client_endpoint, same_family, wait_closed};
use timers::{log_notices, pause_running, sleep_until_ns};

use crate::facility::FacilityInbox;
use crate::outbox::Outbox;
use crate::session::{ProbeSession, SessionEvent};
use hallmark_protocol::{CoordinatorMessage, ProbeMessage};
use hallmark_transport::framed::{FramedError, FramedRecv, FramedSend};
use hallmark_transport::tls::{self, ConnectFailure, Identity};
use hallmark_workloads::backend::Backend;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

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

/// Why a session is retried, as far as the loop cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryCause {
    /// The coordinator turned the attempt away for load: full-jitter backoff.
    Busy,
    /// The endpoint itself failed (it is stopping): a new one for the next attempt.
    Endpoint,
    Other,
}

impl RetryCause {
    fn of(f: &ConnectFailure) -> Self {
        if *f == ConnectFailure::Busy {
            RetryCause::Busy
        } else {
            RetryCause::Other
        }
    }
}

/// How one session ended.
enum SessionEnd {
    /// Worth another attempt; `registered` says whether this one got as far as a Welcome, `cause`
    /// what the next pause and endpoint depend on.
    Retry {
        registered: bool,
        reason: String,
        cause: RetryCause,
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
    let jitter = match opts.jitter_seed {
        Some(seed) => Jitter::new(seed),
        None => Jitter::for_node(opts.hello.node_id.as_str(), opts.clock.now_ns() as u64),
    };
    let mut schedule = RetrySchedule::new(opts.backoff, opts.start_jitter, jitter);
    let mut last = LastFailure::None;
    let mut last_error: Option<String> = None;
    // One endpoint (one UDP socket) for every attempt while it works: a failed attempt leaves
    // nothing behind but its connection, which drains on this endpoint.
    let mut kept: Option<quinn::Endpoint> = None;
    let result = loop {
        attempt += 1;
        let pause = schedule.pause(attempt, last);
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
                last = LastFailure::Other;
                last_error = Some(e.to_string());
                continue;
            }
        };
        let endpoint = match kept.take().filter(|e| same_family(e, addr)) {
            Some(e) => e,
            None => match client_endpoint(addr, opts.max_udp_payload) {
                Ok(mut e) => {
                    e.set_default_client_config(client.clone());
                    e
                }
                Err(e) => {
                    machine.stop_load(opts.clock.now_ns(), "probe stopped: no UDP socket");
                    break Err(ProbeError::Socket(e));
                }
            },
        };
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
        match end {
            SessionEnd::Shutdown => {
                wait_closed(endpoint).await;
                break Ok(());
            }
            SessionEnd::Fatal(e) => {
                wait_closed(endpoint).await;
                break Err(e);
            }
            SessionEnd::Retry {
                registered,
                reason,
                cause,
            } => {
                if registered {
                    // A session that worked: start the backoff over.
                    attempt = 0;
                    warn!("lost the coordinator at {addr}: {reason}; reconnecting");
                } else if cause == RetryCause::Busy {
                    info!("attempt {attempt} to reach {addr}: {reason}");
                } else {
                    debug!("attempt {attempt} to reach {addr} failed: {reason}");
                }
                last = match cause {
                    RetryCause::Busy => LastFailure::Busy,
                    RetryCause::Endpoint | RetryCause::Other => LastFailure::Other,
                };
                if cause != RetryCause::Endpoint {
                    kept = Some(endpoint);
                }
                last_error = Some(reason);
            }
        }
    };
    log_notices(&mut machine);
    status.send_replace(ProbeStatus::Stopped);
    result
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
                cause: RetryCause::of(&f),
                reason: f.to_string(),
            }
        }
    };
    let connecting = match endpoint.connect(addr, server_name) {
        Ok(c) => c,
        Err(e @ quinn::ConnectError::EndpointStopping) => {
            return SessionEnd::Retry {
                registered: false,
                reason: tls::classify_connect_error(&e).to_string(),
                cause: RetryCause::Endpoint,
            }
        }
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
                            cause: RetryCause::Other,
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
                cause: RetryCause::Other,
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
            cause: RetryCause::of(&f),
            reason: f.to_string(),
        }
    }
}
