//! The registered probes as the core task publishes them: the list subscribers watch
//! ([`crate::ServerHandle`]'s probes) and the status file. A change after a quiet spell goes out at
//! once; a burst of registrations (a storm: thousands within seconds) is coalesced, since each
//! publication copies the whole list (and rewrites the status file), which per registration would
//! cost the core task time quadratic in the fleet.

use crate::machine::{Coordinator, ProbeRecord};
use crate::server::ServerError;
use crate::status::write_status;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Most often the registered probes are published. With a large fleet the spacing grows to ten
/// times what one publication took, so that publishing never takes more than a tenth of the core
/// task's time (what a copy of 10 000 records costs was not measured on its own).
const PROBES_EVERY: Duration = Duration::from_millis(100);

/// Where the registered probes go, and when they are next due.
pub(crate) struct ProbeList {
    tx: watch::Sender<Vec<ProbeRecord>>,
    status_file: Option<PathBuf>,
    local_addr: SocketAddr,
    /// The registered probes changed since they were last published.
    dirty: bool,
    /// When they were last published.
    published: Option<Instant>,
    /// The least time between two publications: [`PROBES_EVERY`], or ten times what the last one
    /// took, whichever is longer.
    spacing: Duration,
}

impl ProbeList {
    pub(crate) fn new(
        tx: watch::Sender<Vec<ProbeRecord>>,
        status_file: Option<PathBuf>,
        local_addr: SocketAddr,
    ) -> Self {
        ProbeList {
            tx,
            status_file,
            local_addr,
            dirty: false,
            published: None,
            spacing: PROBES_EVERY,
        }
    }

    /// The registered probes (or their clocks) changed.
    pub(crate) fn changed(&mut self) {
        self.dirty = true;
    }

    /// When the probes are next due to be published, while they changed.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.dirty.then(|| {
            self.published
                .map_or_else(Instant::now, |t| t + self.spacing)
        })
    }

    /// Publishes the machine's probes when they are due.
    pub(crate) fn publish_if_due(&mut self, machine: &Coordinator) -> Result<(), ServerError> {
        if self.due().is_none_or(|due| due > Instant::now()) {
            return Ok(());
        }
        let began = Instant::now();
        let probes: Vec<ProbeRecord> = machine.probes().cloned().collect();
        self.dirty = false;
        if let Some(path) = &self.status_file {
            write_status(path, self.local_addr, &probes)?;
        }
        self.tx.send_replace(probes);
        let now = Instant::now();
        self.published = Some(now);
        self.spacing = PROBES_EVERY.max((now - began) * 10);
        Ok(())
    }
}

/// Resolves when the probes are due (`due`); never without one.
pub(crate) async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
