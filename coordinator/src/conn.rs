//! Connection tasks of the coordinator's shell: authenticate a peer, hold its place under the
//! connection caps, accept its control stream, cut frames out of it (at most
//! [`MAX_PROBE_FRAME`] bytes) and forward them to the core task, at most [`IN_FLIGHT`] at a time
//! (a frame is read only with a permit in hand) and only while the core lets it read
//! (back-pressure; see [`forward`]); and the writer task that sends what the core routes to the
//! connection and closes it when told. With a revocation list (`--crl`), a connection task also
//! watches the list in force ([`Revocations`]) and closes its connection with
//! [`close_code::REVOKED`] as soon as a new list names the peer's certificate; the core then
//! takes the probe as departed (during a run: lost) with that reason.

use crate::admit::{Admission, Full, Place};
use crate::limits::MAX_PROBE_FRAME;
use crate::machine::{close_code, Close, ConnId};
use crate::server::WRITER_QUEUE;
use hallmark_protocol::{CoordinatorMessage, DecodeError, NodeId};
use hallmark_transport::clock::WallClock;
use hallmark_transport::crl::Serial;
use hallmark_transport::framed::{FramedError, FramedRecv, FramedSend};
use hallmark_transport::revocation::ListInForce;
use hallmark_transport::tls;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

/// What a connection task tells the core task.
pub(crate) enum ShellEvent {
    Connected {
        conn: ConnId,
        node: hallmark_protocol::NodeId,
        remote: String,
        writer: mpsc::Sender<WriterCmd>,
        /// Whether the connection is read: the core sets `false` to hold a probe back.
        reads: watch::Sender<bool>,
        at_ns: i64,
    },
    Payload {
        conn: ConnId,
        bytes: Vec<u8>,
        at_ns: i64,
        /// Held until the core has taken the payload: bounds what one connection has in flight.
        _permit: OwnedSemaphorePermit,
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

/// What the core task tells a connection's writer.
pub(crate) enum WriterCmd {
    /// Boxed: a message (a phase order with its fabric members) is far larger than a close.
    Send(Box<CoordinatorMessage>),
    Close(Close),
}

/// Payloads one connection may have on their way to the core task.
pub(crate) const IN_FLIGHT: usize = 4;

/// How the shell admits and times connections.
#[derive(Clone)]
pub(crate) struct ConnParams {
    pub(crate) clock: WallClock,
    pub(crate) handshake_timeout: Duration,
    pub(crate) admission: Admission,
    /// The probe frame limit now (it grows with a run's largest fabric phase).
    pub(crate) frame_limit: watch::Receiver<usize>,
    /// The revocation list in force, with `--crl`.
    pub(crate) revocations: Option<watch::Receiver<Arc<ListInForce>>>,
}

/// One open connection's watch on the revocation list in force.
struct Revocations {
    lists: watch::Receiver<Arc<ListInForce>>,
    node: NodeId,
    serial: Serial,
    remote: String,
}

impl Revocations {
    /// Why the list in force revokes the peer's certificate (logged with the node, the serial and
    /// the list's number); `None` while it does not.
    fn listed(&mut self) -> Option<String> {
        let list = self.lists.borrow_and_update();
        if !list.revoked.contains(&self.serial) {
            return None;
        }
        let (node, serial, remote) = (&self.node, &self.serial, &self.remote);
        warn!(
            %node,
            %serial,
            crl_number = list.number,
            "closed the connection of a revoked certificate from {remote}"
        );
        Some(format!(
            "certificate revoked: serial {serial} of node {node} is on revocation list number {}",
            list.number
        ))
    }

    /// Resolves, with why, once the list in force revokes the peer's certificate; never without
    /// a list.
    async fn until_revoked(watch: Option<Revocations>) -> String {
        let Some(mut watch) = watch else {
            return std::future::pending().await;
        };
        loop {
            if let Some(why) = watch.listed() {
                return why;
            }
            if watch.lists.changed().await.is_err() {
                // The list's publisher is gone: the coordinator is shutting down.
                return std::future::pending().await;
            }
        }
    }
}

pub(crate) async fn connection(
    conn: ConnId,
    incoming: quinn::Incoming,
    tx: mpsc::Sender<ShellEvent>,
    params: ConnParams,
    mut place: Place,
) {
    let ConnParams {
        clock,
        handshake_timeout,
        admission,
        frame_limit,
        revocations,
    } = params;
    let remote = incoming.remote_address().to_string();
    let connection = match tokio::time::timeout(handshake_timeout, async { incoming.await }).await {
        Ok(Ok(c)) => c,
        Ok(Err(quinn::ConnectionError::TransportError(t)))
            if t.code == quinn::TransportErrorCode::crypto(44) =>
        {
            // certificate_revoked: the verifier has logged the refusal with the node and serial.
            tracing::debug!("refused connection from {remote}: {t}");
            return;
        }
        Ok(Err(e)) => {
            let why = match &e {
                quinn::ConnectionError::ConnectionClosed(c) => {
                    aborted_handshake(c.error_code, &c.to_string())
                }
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
    if let Err(held) = admission.enter_node(&mut place, &node) {
        let why = format!(
            "the certificate of node {node} already holds {held} connections, the most one node \
             may have (max {})",
            admission.max_per_node()
        );
        warn!("refused connection from {remote}: {why}");
        connection.close(close_code::REFUSED.into(), why.as_bytes());
        return;
    }
    let mut revocations =
        match revocations.map(|lists| watch_revocations(&connection, &node, lists)) {
            None => None,
            Some(Ok(watch)) => Some(watch),
            Some(Err(e)) => {
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
    // The handshake is over: its place among those in flight goes to the next connection.
    place.handshake_done();
    // A list that took effect since the handshake: the connection never reaches the core.
    if let Some(why) = revocations.as_mut().and_then(Revocations::listed) {
        connection.close(close_code::REVOKED.into(), why.as_bytes());
        return;
    }
    let (wtx, wrx) = mpsc::channel(WRITER_QUEUE);
    let (reads, may_read) = watch::channel(true);
    let connected = ShellEvent::Connected {
        conn,
        node,
        remote,
        writer: wtx,
        reads,
        at_ns: clock.now_ns(),
    };
    if tx.send(connected).await.is_err() {
        return;
    }
    tokio::spawn(writer(wrx, FramedSend::new(send), connection.clone()));
    let first_limit = (*frame_limit.borrow()).max(MAX_PROBE_FRAME);
    let mut frames = StreamFrames {
        recv: FramedRecv::with_max_frame(recv, first_limit),
        limit: frame_limit,
        connection: connection.clone(),
    };
    let reason = tokio::select! {
        reason = forward(conn, &mut frames, may_read, &tx, &clock) => match reason {
            Some(reason) => reason,
            None => return,
        },
        why = Revocations::until_revoked(revocations) => {
            connection.close(close_code::REVOKED.into(), why.as_bytes());
            why
        }
    };
    let _ = tx.send(ShellEvent::Closed { conn, reason }).await;
    drop(place);
}

/// Turns `incoming` away before any cryptography (QUIC's CONNECTION_REFUSED: the probe retries
/// after a jittered backoff, reporting "coordinator busy"), `full` saying which cap is reached.
/// Logged as a warning at the 1st, 2nd, 4th, 8th… refusal of each cause (a storm refuses
/// thousands), with the count so far; every one at debug level. Logged before the refusal goes
/// out, so that whoever reads it has the line to read.
pub(crate) fn refuse_for_load(incoming: quinn::Incoming, full: Full, admission: &Admission) {
    let remote = incoming.remote_address();
    let refused = admission.refusals();
    let (n, why) = match full {
        Full::Connections(held) => (
            refused.connections_open,
            format!(
                "{held} connections are open, the most this coordinator accepts (max {})",
                admission.max_total()
            ),
        ),
        Full::Handshakes(held) => (
            refused.handshakes_in_flight,
            format!(
                "{held} handshakes are in flight, the most this coordinator does at once (max {})",
                admission.max_handshakes()
            ),
        ),
    };
    debug!("refused connection from {remote} (busy, told to retry): {why}");
    if n.is_power_of_two() {
        warn!(
            "refused connection from {remote} (busy, told to retry): {why}; {n} refused for this \
             cause so far"
        );
    }
    incoming.refuse();
}

/// The watch of an authenticated connection on the revocation list in force.
fn watch_revocations(
    connection: &quinn::Connection,
    node: &NodeId,
    lists: watch::Receiver<Arc<ListInForce>>,
) -> Result<Revocations, tls::TlsError> {
    Ok(Revocations {
        lists,
        node: node.clone(),
        serial: tls::peer_serial(connection)?,
        remote: connection.remote_address().to_string(),
    })
}

/// Where a connection task reads frames from: the probe's control stream (in tests, a script).
pub(crate) trait Frames: Send {
    /// The next frame's payload; `None` when the peer ended the stream cleanly between frames.
    fn next(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, FramedError>> + Send;
    /// Waits until the connection has ended; why, in words.
    fn closed(&self) -> impl Future<Output = String> + Send;
    /// Why reading failed with `e`, in words.
    fn failed(&self, e: &FramedError) -> String;
}

/// The control stream of a QUIC connection, cut into frames of at most the frame limit now.
struct StreamFrames {
    recv: FramedRecv,
    limit: watch::Receiver<usize>,
    connection: quinn::Connection,
}

impl Frames for StreamFrames {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, FramedError> {
        let limit = *self.limit.borrow();
        self.recv.set_max_frame(limit);
        Ok(self.recv.recv_payload().await?.map(<[u8]>::to_vec))
    }

    async fn closed(&self) -> String {
        describe_close(&self.connection.closed().await)
    }

    fn failed(&self, e: &FramedError) -> String {
        close_reason(&self.connection, e)
    }
}

/// Reads `frames` and forwards each payload to the core, at most [`IN_FLIGHT`] on their way at a
/// time (each holds a permit until the core has taken it), and only while the core lets it read
/// (`may_read`). Returns why the connection ended, or `None` when the core task is gone.
async fn forward(
    conn: ConnId,
    frames: &mut impl Frames,
    mut may_read: watch::Receiver<bool>,
    tx: &mpsc::Sender<ShellEvent>,
    clock: &WallClock,
) -> Option<String> {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // The permit comes before the frame: no frame is read that has no permit to go with it,
        // so at most IN_FLIGHT are ever read and not yet taken by the core. (Read first, a frame
        // would wait for its permit outside that count; and the core lets the permit of the
        // payload that crosses a probe's budget go just before it says to stop reading, so one
        // more frame could be read in between.) Once the core has said it, at most IN_FLIGHT
        // payloads follow the one that crossed: those holding the other permits and the one read
        // with its permit.
        let permit = in_flight.clone().acquire_owned().await.ok()?;
        // Back-pressure: while the core says so, nothing more is read (QUIC flow control then
        // holds the probe back); the connection may still end meanwhile.
        while !*may_read.borrow_and_update() {
            tokio::select! {
                changed = may_read.changed() => if changed.is_err() {
                    return Some("closed by the coordinator".to_string());
                },
                why = frames.closed() => return Some(why),
            }
        }
        match frames.next().await {
            Ok(Some(bytes)) => {
                let ev = ShellEvent::Payload {
                    conn,
                    bytes,
                    at_ns: clock.now_ns(),
                    _permit: permit,
                };
                tx.send(ev).await.ok()?;
            }
            Ok(None) => return Some("probe closed its control stream".to_string()),
            Err(FramedError::Decode(error)) => {
                tx.send(ShellEvent::FrameError { conn, error }).await.ok()?;
                // The core closes the connection; wait for that (bounded by the idle timeout).
                return Some(frames.closed().await);
            }
            Err(e) => return Some(frames.failed(&e)),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Frames without end, counting how many were read.
    struct Endless(Arc<AtomicUsize>);

    impl Frames for Endless {
        fn next(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, FramedError>> + Send {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(Some(vec![0u8; 8])))
        }
        fn closed(&self) -> impl Future<Output = String> + Send {
            std::future::pending()
        }
        fn failed(&self, e: &FramedError) -> String {
            e.to_string()
        }
    }

    /// A connection task reading endless frames; what it has read so far.
    fn reader(
        may_read: watch::Receiver<bool>,
    ) -> (
        mpsc::Receiver<ShellEvent>,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::channel(1024);
        let read = Arc::new(AtomicUsize::new(0));
        let mut frames = Endless(read.clone());
        let task = tokio::spawn(async move {
            forward(7, &mut frames, may_read, &tx, &WallClock::new()).await;
        });
        (rx, read, task)
    }

    const SETTLE: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn no_frame_is_read_ahead_of_the_core_beyond_the_in_flight_permits() {
        let (_reads, may_read) = watch::channel(true);
        // The core takes nothing: every permit stays with a payload on its way.
        let (_rx, read, task) = reader(may_read);
        tokio::time::sleep(SETTLE).await;
        assert_eq!(read.load(Ordering::SeqCst), IN_FLIGHT);
        task.abort();
    }

    /// The flood test's case: the core takes the payload that crosses the probe's budget, lets
    /// its permit go, and only then (the core task is busy, or preempted) tells the connection to
    /// stop reading. No more than IN_FLIGHT payloads may follow the crossing one, however late
    /// that word comes: what `hostile_quic.rs` bounds the unstored telemetry with.
    #[tokio::test]
    async fn at_most_in_flight_payloads_follow_the_one_that_paused_the_connection() {
        let (reads, may_read) = watch::channel(true);
        let (mut rx, _read, task) = reader(may_read);
        tokio::time::sleep(SETTLE).await;
        let crossing = rx.recv().await.expect("a payload");
        drop(crossing);
        tokio::time::sleep(SETTLE).await;
        reads.send_replace(false);
        let mut after = 0;
        while let Ok(Some(ev)) = tokio::time::timeout(SETTLE, rx.recv()).await {
            drop(ev);
            after += 1;
            assert!(after <= 100, "the connection is still being read");
        }
        assert!(
            after <= IN_FLIGHT,
            "{after} payloads after the one that paused the connection (at most {IN_FLIGHT})"
        );
        task.abort();
    }
}

/// Why a probe closed its connection during the TLS handshake, by the close's code: a TLS alert
/// (its code is 0x100 + the alert) means the probe refused this coordinator's certificate; an
/// application close or no error means the probe gave up on its own — its connect timeout ran
/// out (a coordinator slow to answer under a registration storm) or it was stopped — which says
/// nothing about the certificates.
fn aborted_handshake(code: quinn::TransportErrorCode, detail: &str) -> String {
    let raw = u64::from(code);
    if (0x100..=0x1ff).contains(&raw) {
        format!(
            "the probe refused this coordinator's certificate ({detail}); its --ca does not hold this coordinator's CA"
        )
    } else if code == quinn::TransportErrorCode::APPLICATION_ERROR
        || code == quinn::TransportErrorCode::NO_ERROR
    {
        format!(
            "the probe gave up the TLS handshake ({detail}): its connect timeout ran out or it was stopped (a timeout, not a certificate problem)"
        )
    } else {
        format!("the probe closed the connection during the TLS handshake ({detail})")
    }
}

#[cfg(test)]
mod handshake_close_tests {
    use super::aborted_handshake;
    use quinn::TransportErrorCode;

    #[test]
    fn a_probe_that_gives_up_is_not_blamed_on_its_ca() {
        for code in [
            TransportErrorCode::APPLICATION_ERROR,
            TransportErrorCode::NO_ERROR,
        ] {
            let why = aborted_handshake(code, "closed");
            assert!(!why.contains("--ca"), "{why}");
            assert!(why.contains("timeout"), "{why}");
        }
        // unknown_ca (48): the probe does not trust this coordinator.
        let why = aborted_handshake(TransportErrorCode::crypto(48), "unknown ca");
        assert!(why.contains("--ca does not hold"), "{why}");
        let why = aborted_handshake(TransportErrorCode::PROTOCOL_VIOLATION, "x");
        assert!(!why.contains("--ca"), "{why}");
    }
}
