//! A fabric phase that has ended while its work (the data-plane driver's thread, the backend's
//! NCCL threads) goes on: its report is held and the work polled, never waited for, until it has
//! ended or is given up [`FINISH_WAIT`](crate::fabric::FINISH_WAIT) after the phase's end.

use super::PhaseRunner;
use crate::fabric::{unfinished_report, FINISH_WAIT_NS, STOP_AFTER_NS};
use hallmark_protocol::{FabricReport, PhaseReport, ProbeMessage};
use hallmark_workloads::backend::Backend;
use std::time::Duration;

/// How often a held phase report asks whether its fabric work has ended, ns.
pub const FINISH_POLL_NS: i64 = 5_000_000;

/// A phase that has ended, its report held until its fabric work has ended.
#[derive(Debug)]
pub(super) struct Finishing {
    pub(super) report: PhaseReport,
    /// The work runs on the backend's NCCL threads (else on the fabric driver).
    pub(super) nccl: bool,
    /// When the phase ended (probe clock).
    pub(super) since_ns: i64,
    /// When to ask again.
    pub(super) poll_at_ns: i64,
}

impl PhaseRunner {
    /// Sends the held phase report once its fabric work has ended, or without that work's results
    /// once it is `FINISH_WAIT` late (at once when `force`). Never blocks.
    pub(super) fn poll_finishing(
        &mut self,
        now: i64,
        force: bool,
        backend: &mut dyn Backend,
        out: &mut Vec<ProbeMessage>,
    ) {
        let Some(f) = self.finishing.as_mut() else {
            return;
        };
        let waited = if force {
            FINISH_WAIT_NS
        } else {
            now.saturating_sub(f.since_ns)
        };
        let nccl = f.nccl;
        let mut driver = if nccl {
            None
        } else {
            self.fabric.as_deref_mut()
        };
        let ended = match driver.as_deref_mut() {
            Some(d) => d.try_finish(),
            None if nccl => backend
                .nccl_done()
                .then(|| backend.finish_nccl(Duration::ZERO)),
            // Begun without a driver: nothing ran.
            None => Some(FabricReport::default()),
        };
        // One schedule for both kinds of work: asked to stop from STOP_AFTER_NS, reported without
        // it at FINISH_WAIT_NS (a fault says so).
        let report = ended.or_else(|| {
            if waited >= STOP_AFTER_NS {
                match driver.as_deref_mut() {
                    Some(d) => d.stop(),
                    None => backend.stop_nccl(),
                }
            }
            (waited >= FINISH_WAIT_NS).then(|| match driver {
                Some(_) => unfinished_report(),
                None => backend.finish_nccl(Duration::ZERO),
            })
        });
        match report {
            Some(fabric) => {
                if let Some(mut f) = self.finishing.take() {
                    f.report.fabric = Some(fabric);
                    out.push(ProbeMessage::PhaseReport(f.report));
                }
            }
            None => f.poll_at_ns = now.saturating_add(FINISH_POLL_NS),
        }
    }
}
