//! The control stream's writing half, writing the [`Outbox`] one message at a time without ever
//! making the session's loop wait.
//!
//! A write that QUIC flow control holds (the coordinator stopped reading this connection: its
//! store is behind) stays in progress inside the [`Writer`] while the loop goes on reading the
//! coordinator's messages and running the session's timers; [`Writer::written`] is cancel-safe, so
//! the loop can `select!` on it beside everything else. At the end of a session ([`shut_down`])
//! what is left is written within [`SHUTDOWN_FLUSH`], never longer.

use crate::outbox::Outbox;
use crate::session::ProbeSession;
use hallmark_transport::clock::WallClock;
use hallmark_transport::framed::{FramedError, FramedSend};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tracing::warn;

/// Longest a shutting-down probe spends writing what it still has to send (its last phase report
/// among it) and ending its control stream.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

type Write = Pin<Box<dyn Future<Output = (FramedSend, Result<(), FramedError>)> + Send>>;

/// The writing half: idle, or one message being written.
pub(super) struct Writer {
    idle: Option<FramedSend>,
    busy: Option<Write>,
}

impl Writer {
    pub(super) fn new(send: FramedSend) -> Self {
        Writer {
            idle: Some(send),
            busy: None,
        }
    }

    /// Starts writing the next queued message when no write is in progress.
    pub(super) fn start(&mut self, outbox: &mut Outbox) {
        if self.busy.is_some() || outbox.is_empty() {
            return;
        }
        let (Some(mut send), Some(m)) = (self.idle.take(), outbox.pop()) else {
            return;
        };
        self.busy = Some(Box::pin(async move {
            let r = send.send(&m).await;
            (send, r)
        }));
    }

    /// Whether a write is in progress.
    pub(super) fn is_busy(&self) -> bool {
        self.busy.is_some()
    }

    /// Waits until the write in progress is done (forever when there is none). Cancel-safe: a
    /// write interrupted here goes on at the next call.
    pub(super) async fn written(&mut self) -> Result<(), FramedError> {
        let Some(write) = self.busy.as_mut() else {
            return std::future::pending().await;
        };
        let (send, r) = write.await;
        self.busy = None;
        self.idle = Some(send);
        r
    }

    /// At the end of a session: finishes the write in progress, writes what is queued, ends the
    /// stream and waits for the coordinator to have it all, within `limit` in all (a coordinator
    /// that has stopped reading must not hold a shutting-down probe). Returns how many messages
    /// were left unwritten.
    pub(super) async fn flush(mut self, outbox: &mut Outbox, limit: Duration) -> usize {
        let until = tokio::time::Instant::now() + limit;
        let write_all = async {
            // Bounded by the queue's length: a message takes two turns (start, written).
            for _ in 0..2 * outbox.len() + 2 {
                if self.is_busy() {
                    if self.written().await.is_err() {
                        return;
                    }
                } else if outbox.is_empty() {
                    break;
                } else {
                    self.start(outbox);
                }
            }
            if let Some(send) = self.idle.as_mut() {
                send.finish().await;
            }
        };
        let _ = tokio::time::timeout_at(until, write_all).await;
        outbox.len()
    }
}

/// Stops the load, waits (bounded) for a report that waits on fabric work, and writes what is
/// left within [`SHUTDOWN_FLUSH`].
pub(super) async fn shut_down(
    machine: &mut ProbeSession,
    clock: &WallClock,
    writer: Writer,
    outbox: &mut Outbox,
) {
    // Stop the load first, then report, then leave.
    let mut out = machine.stop_load(clock.now_ns(), "probe shutting down");
    // A report that waits for fabric work comes within FINISH_WAIT: keep the timers running
    // (asynchronously) until it is out. Bounded by count and time.
    let until =
        tokio::time::Instant::now() + crate::fabric::FINISH_WAIT + Duration::from_millis(500);
    for _ in 0..10_000 {
        if !machine.reports_pending() || tokio::time::Instant::now() >= until {
            break;
        }
        super::sleep_until_ns(clock, machine.poll_timeout(), false).await;
        out.extend(machine.handle_timeout(clock.now_ns()));
    }
    super::log_notices(machine);
    outbox.extend(out);
    log_dropped(outbox);
    let left = writer.flush(outbox, SHUTDOWN_FLUSH).await;
    if left > 0 {
        warn!(
            "shutting down with {left} messages not written within {} s (the coordinator stopped \
             reading this probe's connection, or it failed); they are not stored",
            SHUTDOWN_FLUSH.as_secs()
        );
    }
}

/// Logs the telemetry batches the outbox gave up (the coordinator records each as a gap).
pub(super) fn log_dropped(outbox: &mut Outbox) {
    let dropped = outbox.take_dropped();
    if let (Some(first), Some(last)) = (dropped.first(), dropped.last()) {
        warn!(
            "the coordinator has held this probe's telemetry back for so long that {} queued \
             batches ({first}..={last}) were given up ({} in all); the coordinator records them \
             as gaps, and they are sent again after a reconnect while the replay buffer holds them",
            dropped.len(),
            outbox.dropped_batches()
        );
    }
}
