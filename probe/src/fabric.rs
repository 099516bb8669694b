//! The probe's side of fabric phases: its data plane and the phase running on it.
//!
//! The [`PhaseRunner`](crate::runner::PhaseRunner) starts a fabric phase's work when the phase
//! starts and collects its report when the phase ends, through the [`FabricDriver`] trait, so that
//! the runner stays sans-IO and is tested with a simulated clock. [`DataPlaneDriver`] is the real
//! one: it runs the phase on its own thread over the probe's [`DataPlane`] (see
//! `hallmark_workloads::fabric`).

use hallmark_protocol::{DataPlaneAddr, FabricFault, FabricPhase, FabricReport, NodeId};
use hallmark_workloads::fabric::{DataPlane, FabricTask, PhaseWindow};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the phase runner (`runner/finishing.rs`) waits for a fabric thread past the phase's
/// end before it reports the phase without it.
pub const FINISH_WAIT: Duration = Duration::from_secs(2);

/// A phase's window on this process's monotonic clock, for a phase that began `late_ns` ago
/// (probe clock) and lasts `duration_ns`.
pub fn window_now(late_ns: i64, duration_ns: i64) -> (Instant, Instant) {
    let now = Instant::now();
    let start = now
        .checked_sub(Duration::from_nanos(late_ns.max(0) as u64))
        .unwrap_or(now);
    (
        start,
        start + Duration::from_nanos(duration_ns.max(0) as u64),
    )
}

/// Runs fabric phases beside the load.
pub trait FabricDriver: Send + std::fmt::Debug {
    /// Where the data plane listens (announced in the Hello).
    fn addr(&self) -> Option<DataPlaneAddr>;
    /// Starts `phase`, which began `late_ns` ago (probe clock) and lasts `duration_ns`.
    fn begin(
        &mut self,
        phase_id: u32,
        phase: &FabricPhase,
        late_ns: i64,
        duration_ns: i64,
    ) -> Result<(), String>;
    /// Asks the running phase to end now (abort, interlock, or its work outlived the phase).
    fn stop(&mut self);
    /// The report of the phase begun last once its work has ended, `None` while it runs; never
    /// blocks. The runner polls it after the phase's end, calls [`FabricDriver::stop`] from
    /// [`FINISH_WAIT`] − [`STOP_BEFORE`], and at [`FINISH_WAIT`] reports the phase without the
    /// work ([`unfinished_report`]), leaving it to end on its own.
    fn try_finish(&mut self) -> Option<FabricReport>;
}

/// How long before [`FINISH_WAIT`] lingering fabric work is asked to stop.
pub const STOP_BEFORE: Duration = Duration::from_millis(500);

/// [`FINISH_WAIT`] in nanoseconds.
pub const FINISH_WAIT_NS: i64 = FINISH_WAIT.as_nanos() as i64;

/// From when, in nanoseconds after a phase's end, lingering work is asked to stop.
pub const STOP_AFTER_NS: i64 = FINISH_WAIT_NS - STOP_BEFORE.as_nanos() as i64;

/// The report of a phase whose fabric work did not end within [`FINISH_WAIT`] of its end.
pub fn unfinished_report() -> FabricReport {
    FabricReport {
        faults: vec![FabricFault {
            peer: None,
            message: format!(
                "the fabric thread did not end within {} s of the phase's end; its results are lost",
                FINISH_WAIT.as_secs()
            ),
        }],
        ..FabricReport::default()
    }
}

/// The real driver: a data plane bound for the probe's life and the phase thread on it.
#[derive(Debug)]
pub struct DataPlaneDriver {
    dp: Arc<DataPlane>,
    me: NodeId,
    /// The IP announced in the Hello; `None`: the coordinator uses the control connection's.
    announce_ip: Option<std::net::IpAddr>,
    /// The port announced, when it is not the bound one (a relay or port mapping in between).
    announce_port: Option<u16>,
    task: Option<FabricTask>,
}

impl DataPlaneDriver {
    /// Binds the data plane on `bind` (port 0: any free port). `announce_ip` and `announce_port`
    /// are where the other probes reach this one, when that is not the bound address (or, for the
    /// IP, the one its control connection comes from).
    pub fn bind(
        me: NodeId,
        bind: std::net::SocketAddr,
        announce_ip: Option<std::net::IpAddr>,
        announce_port: Option<u16>,
    ) -> std::io::Result<DataPlaneDriver> {
        let dp = DataPlane::bind(bind)?;
        let announce_ip = announce_ip.or_else(|| {
            let ip = bind.ip();
            (!ip.is_unspecified()).then_some(ip)
        });
        Ok(DataPlaneDriver {
            dp: Arc::new(dp),
            me,
            announce_ip,
            announce_port,
            task: None,
        })
    }
}

impl FabricDriver for DataPlaneDriver {
    fn addr(&self) -> Option<DataPlaneAddr> {
        let port = match self.announce_port {
            Some(p) => p,
            None => self.dp.local_addr().ok()?.port(),
        };
        Some(DataPlaneAddr {
            ip: self.announce_ip,
            port,
        })
    }

    fn begin(
        &mut self,
        phase_id: u32,
        phase: &FabricPhase,
        late_ns: i64,
        duration_ns: i64,
    ) -> Result<(), String> {
        if let Some(old) = self.task.take() {
            old.stop();
        }
        let (start, end) = window_now(late_ns, duration_ns);
        let window = PhaseWindow {
            phase_id,
            start,
            end,
        };
        let task = FabricTask::spawn(self.dp.clone(), self.me.clone(), phase.clone(), window)
            .map_err(|e| format!("cannot start the fabric thread: {e}"))?;
        self.task = Some(task);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(t) = &self.task {
            t.stop();
        }
    }

    fn try_finish(&mut self) -> Option<FabricReport> {
        if self.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return None;
        }
        // The thread has ended (joining it does not wait), or no phase was begun.
        Some(self.task.take().map(FabricTask::join).unwrap_or_default())
    }
}
