//! The session's timers outside a connection's loop: waiting out a pause while the session's
//! timers still run, and sleeping until a phase's start or end with sub-millisecond precision.

use crate::session::ProbeSession;
use hallmark_transport::clock::WallClock;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::warn;

/// Waits `pause` while running the session's timers (a phase goes on while disconnected, until
/// the dead-man interlock stops it). Returns false when told to shut down (the load is stopped).
pub(super) async fn pause_running(
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
pub(super) fn log_notices(machine: &mut ProbeSession) {
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
pub(super) async fn sleep_until_ns(clock: &WallClock, at: Option<i64>, precise: bool) {
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
