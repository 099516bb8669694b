//! Connection tasks of the coordinator's shell: authenticate a peer, hold its place under the
//! connection caps, accept its control stream, cut frames out of it (at most
//! [`MAX_PROBE_FRAME`] bytes) and forward them to the core task, at most [`IN_FLIGHT`] at a time
//! and only while the core lets it read (back-pressure); and the writer task that sends what the
//! core routes to the connection and closes it when told.

use crate::admit::{Admission, Place};
use crate::limits::MAX_PROBE_FRAME;
use crate::machine::{close_code, Close, ConnId};
use crate::server::WRITER_QUEUE;
use hallmark_protocol::{CoordinatorMessage, DecodeError};
use hallmark_transport::clock::WallClock;
use hallmark_transport::framed::{FramedError, FramedRecv, FramedSend};
use hallmark_transport::tls;
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
    let (reads, mut may_read) = watch::channel(true);
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
    let mut reader = FramedRecv::with_max_frame(recv, (*frame_limit.borrow()).max(MAX_PROBE_FRAME));
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let reason = 'read: loop {
        // Back-pressure: while the core says so, nothing more is read (QUIC flow control then
        // holds the probe back); the connection may still end meanwhile.
        while !*may_read.borrow_and_update() {
            tokio::select! {
                changed = may_read.changed() => if changed.is_err() {
                    break 'read "closed by the coordinator".to_string();
                },
                e = connection.closed() => break 'read describe_close(&e),
            }
        }
        reader.set_max_frame(*frame_limit.borrow());
        match reader.recv_payload().await {
            Ok(Some(p)) => {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                let ev = ShellEvent::Payload {
                    conn,
                    bytes: p.to_vec(),
                    at_ns: clock.now_ns(),
                    _permit: permit,
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
    drop(place);
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
