//! Connection tasks of the coordinator's shell: authenticate a peer, accept its control stream,
//! cut frames out of it and forward them to the core task; and the writer task that sends what the
//! core routes to the connection and closes it when told.

use crate::machine::{close_code, Close, ConnId};
use crate::server::WRITER_QUEUE;
use hallmark_protocol::{CoordinatorMessage, DecodeError};
use hallmark_transport::clock::WallClock;
use hallmark_transport::framed::{FramedError, FramedRecv, FramedSend};
use hallmark_transport::tls;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// What a connection task tells the core task.
pub(crate) enum ShellEvent {
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

/// What the core task tells a connection's writer.
pub(crate) enum WriterCmd {
    /// Boxed: a message (a phase order with its fabric members) is far larger than a close.
    Send(Box<CoordinatorMessage>),
    Close(Close),
}

pub(crate) async fn connection(
    conn: ConnId,
    incoming: quinn::Incoming,
    tx: mpsc::Sender<ShellEvent>,
    clock: WallClock,
    handshake_timeout: Duration,
) {
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
