//! `hallmark probe --facility FILE`: a facility collector. It registers with the coordinator like
//! a probe (its own certificate, clock sync, replay), as `ProbeRole::Facility`, and polls the
//! sources of the facility file (docs/FACILITY.md), sending their readings stamped on the
//! coordinator's clock. [`FacilityProbe`] is also what the simulated hall starts in-process.

use anyhow::Context;
use hallmark_facility::collect::{Clock, Collector, CollectorStats};
use hallmark_facility::config::FacilityConfig;
use hallmark_probe::facility::{FacilityInbox, NoDevices};
use hallmark_probe::{ProbeHandle, ProbeOptions, ProbeStatus};
use hallmark_protocol::{FacilityReading, Labels, NodeId};
use hallmark_transport::tls::Identity;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Batches of readings the collector may have handed over before the probe's loop takes them.
const HANDOVER: usize = 256;

/// A collector polling its sources and the probe sending what it reads.
pub struct FacilityProbe {
    probe: ProbeHandle,
    stop: oneshot::Sender<()>,
    /// The collector's result; `None` once it was taken.
    collector: Option<oneshot::Receiver<CollectorStats>>,
    thread: std::thread::JoinHandle<()>,
    forward: JoinHandle<()>,
}

impl FacilityProbe {
    /// Starts the probe (registering as a collector with `hello`'s node id and hall) and
    /// `collector`, whose readings are stamped with the probe's clock.
    pub fn start(
        identity: &Identity,
        opts: ProbeOptions,
        collector: Collector,
    ) -> anyhow::Result<FacilityProbe> {
        let inbox = FacilityInbox::default();
        let clock = opts.clock;
        let probe = ProbeHandle::spawn_facility(identity, opts, inbox.clone())
            .context("starting the facility collector's probe")?;
        let (tx, mut rx) = mpsc::channel::<Vec<FacilityReading>>(HANDOVER);
        let forward = tokio::spawn(async move {
            while let Some(readings) = rx.recv().await {
                inbox.put(readings);
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let (done, result) = oneshot::channel();
        // Its own thread and single-threaded runtime: the polls of a thousand sources stay off the
        // probe's runtime and cost the least CPU there (docs/PERFORMANCE.md).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the facility collector's runtime")?;
        let thread = std::thread::Builder::new()
            .name("hallmark-facility".into())
            .spawn(move || {
                let shutdown = async {
                    let _ = stopped.await;
                };
                let clock: Clock = Arc::new(move || clock.now_ns());
                let stats = runtime.block_on(collector.run(clock, tx, shutdown));
                let _ = done.send(stats);
            })
            .context("starting the facility collector's thread")?;
        Ok(FacilityProbe {
            probe,
            stop,
            collector: Some(result),
            thread,
            forward,
        })
    }

    /// Waits until the probe is registered (or `within` passes).
    pub async fn registered(&self, within: Duration) -> bool {
        self.probe
            .wait_for(within, |s| matches!(s, ProbeStatus::Registered { .. }))
            .await
            .is_some()
    }

    /// Waits for the probe or the collector to end on its own (an error, a refusal).
    pub async fn finished(&mut self) -> anyhow::Result<()> {
        let collector = async {
            match self.collector.as_mut() {
                Some(c) => c.await,
                None => std::future::pending().await,
            }
        };
        let ended = tokio::select! {
            r = self.probe.finished() => return r.context("the facility collector's probe stopped"),
            r = collector => r,
        };
        self.collector = None;
        match ended {
            Ok(stats) => {
                info!("facility collector stopped after {} polls", stats.polls);
                Ok(())
            }
            Err(_) => anyhow::bail!("the facility collector's thread ended without a result"),
        }
    }

    /// Stops the collector (its sessions closed), hands over what it read, then stops the probe.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        if let Some(c) = self.collector {
            match c.await {
                Ok(stats) => info!(
                    "facility collector: {} polls ({} failed), {} readings",
                    stats.polls, stats.failed_polls, stats.readings
                ),
                Err(_) => warn!("the facility collector's thread ended without a result"),
            }
        }
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        let _ = self.forward.await;
        self.probe
            .shutdown()
            .await
            .context("stopping the facility collector's probe")
    }
}

/// Reads the facility file, secrets named by `*_env` keys from the environment, and sets up the
/// collector of its sources, so that what cannot be polled (an unknown SNMP profile or protocol,
/// a Redfish address that is no URL) is refused before anything connects.
pub fn load_collector(path: &Path) -> anyhow::Result<Collector> {
    let config = FacilityConfig::load(path, &|k| std::env::var(k).ok())?;
    Collector::new(&config).with_context(|| format!("the facility file {}", path.display()))
}

/// The Hello of a collector `node` in `hall` (no rack: a collector serves many).
pub fn hello(node: NodeId, hall: String) -> hallmark_protocol::Hello {
    let labels = Labels {
        hall,
        row: String::new(),
        rack: String::new(),
    };
    hallmark_probe::hello(node, labels, &NoDevices)
}
