//! The probe side of `hallmark bench fleet`: a hidden `bench fleet-probes --spec FILE` command that
//! the bench re-executes itself as. It reads the fleet's spec (the coordinator's address, the
//! ephemeral CA's certificate and one certificate and key per probe, written by the parent into its
//! temporary directory; removed once read, since it holds private keys), then starts every probe at the same moment on this process's one tokio
//! runtime: each a [`ProbeHandle`] with its own QUIC endpoint and mutual-TLS identity, speaking the
//! real protocol and loading simulated devices. The probes keep their normal jittered backoff when
//! a connection attempt fails.
//!
//! It runs until its stdin closes (the parent is done, or gone) or the spec's deadline passes,
//! then stops every probe (bounded) and prints one JSON report on stdout: when the probes started,
//! and every failed connection attempt by cause — retried ones (busy, timeouts, resets, others) from each
//! probe's status as it begins its next attempt, fatal ones (certificate and CA refusals,
//! coordinator refusals, others) from how each probe ended.

use anyhow::{bail, Context};
use clap::Args;
use hallmark_probe::{ProbeError, ProbeHandle, ProbeOptions, ProbeStatus};
use hallmark_protocol::{Labels, NodeId};
use hallmark_transport::tls::{ConnectFailure, Identity};
use hallmark_workloads::sim::SimBackend;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Nodes per simulated rack (labels only: per-rack power on the coordinator).
pub const NODES_PER_RACK: usize = 40;

/// Largest UDP payload each probe's endpoint accepts: an Ethernet frame's. quinn sizes an
/// endpoint's receive buffer as this × 64 (the kernel's largest GRO batch, where the socket
/// offers GRO) × 32 (datagrams per receive call): about 2.9 MiB of address space per probe,
/// instead of 128 MiB at quinn's default of 65 527; only the pages datagrams land in become
/// resident, as long as the allocator hands out fresh pages (see `bench_fleet.rs`).
const MAX_UDP_PAYLOAD: u16 = 1472;

/// Longest wait for every probe to stop once told to.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// Distinct "other" failure messages kept in the report (with their counts).
const OTHER_KINDS: usize = 10;

#[derive(Debug, Args)]
pub struct FleetProbesArgs {
    /// The fleet's spec, written by `hallmark bench fleet`.
    #[arg(long)]
    spec: PathBuf,
}

/// What the parent hands the probe process.
#[derive(Debug, Serialize, Deserialize)]
pub struct FleetSpec {
    /// The coordinator, HOST:PORT.
    pub coordinator: String,
    /// The ephemeral CA's certificate (PEM).
    pub ca_pem: String,
    /// Simulated devices per probe.
    pub devices: u16,
    /// The process stops its probes and reports after this long even if stdin stays open, s.
    pub deadline_s: f64,
    /// Each probe waits a random part of this before its first attempt, s (0: none).
    #[serde(default)]
    pub start_jitter_s: f64,
    pub nodes: Vec<FleetNode>,
}

/// One probe's identity.
#[derive(Debug, Serialize, Deserialize)]
pub struct FleetNode {
    pub node_id: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// What the probe process reports on stdout.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FleetReport {
    pub probes_started: usize,
    /// When the last probe was spawned, ns since the UNIX epoch.
    pub started_at_unix_ns: i64,
    /// Seconds spent loading the identities before the start.
    pub identities_s: f64,
    /// Connection attempts that failed and were retried, by cause.
    pub retried: Retried,
    /// Probes that ended with an error, by cause.
    pub fatal: Fatal,
    /// Probes still running when the stop's time ran out.
    pub not_stopped: usize,
    /// This process's peak resident memory, MiB (`None`: /proc did not say).
    pub peak_rss_mb: Option<f64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Retried {
    /// The coordinator turned the attempt away for load before its handshake ("busy").
    #[serde(default)]
    pub busy: u64,
    /// No answer within the connect timeout (the handshake timed out).
    pub timeout: u64,
    /// The coordinator reset the connection.
    pub reset: u64,
    /// Anything else, by message (the most frequent [`OTHER_KINDS`]).
    pub other: u64,
    pub other_kinds: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Fatal {
    /// The coordinator rejected the probe's certificate (not from its CA, revoked).
    pub certificate_rejected: u64,
    /// The probe did not trust the coordinator's certificate (its CA, its name).
    pub coordinator_not_trusted: u64,
    /// The coordinator refused the probe after its Hello.
    pub refused: u64,
    pub other: u64,
}

/// Runs the probe process (see the module docs).
pub async fn run(a: FleetProbesArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.spec)
        .with_context(|| format!("reading the fleet spec {}", a.spec.display()))?;
    let spec: FleetSpec = serde_json::from_str(&text)
        .with_context(|| format!("parsing the fleet spec {}", a.spec.display()))?;
    // It holds every probe's private key: gone as soon as it is read.
    if let Err(e) = std::fs::remove_file(&a.spec) {
        tracing::warn!("could not remove the fleet spec {}: {e}", a.spec.display());
    }
    if !(spec.deadline_s.is_finite() && spec.deadline_s > 0.0) {
        bail!(
            "the fleet spec's deadline_s {} is not positive",
            spec.deadline_s
        );
    }
    if !(spec.start_jitter_s.is_finite() && spec.start_jitter_s >= 0.0) {
        bail!(
            "the fleet spec's start_jitter_s {} is not a duration",
            spec.start_jitter_s
        );
    }
    let start_jitter = Duration::from_secs_f64(spec.start_jitter_s);
    raise_open_files(spec.nodes.len());
    let loading = std::time::Instant::now();
    let mut ready = Vec::with_capacity(spec.nodes.len());
    for (i, n) in spec.nodes.iter().enumerate() {
        let node_id = NodeId::new(&n.node_id)?;
        let identity = Identity::from_pem(&spec.ca_pem, &n.cert_pem, &n.key_pem)
            .with_context(|| format!("loading the identity of {node_id}"))?;
        let backend = SimBackend::standalone(node_id.clone(), spec.devices)
            .with_context(|| format!("building the simulated devices of {node_id}"))?;
        let labels = Labels {
            hall: "fleet".into(),
            row: "row1".into(),
            rack: format!("rack{:04}", i / NODES_PER_RACK + 1),
        };
        let hello = hallmark_probe::hello(node_id, labels, &backend);
        let mut opts = ProbeOptions::new(spec.coordinator.clone(), hello);
        opts.max_udp_payload = Some(MAX_UDP_PAYLOAD);
        opts.start_jitter = start_jitter;
        ready.push((identity, opts, backend));
    }
    let identities_s = loading.elapsed().as_secs_f64();
    let retried = Arc::new(Mutex::new(Retried::default()));
    let mut probes = Vec::with_capacity(ready.len());
    let mut watchers = Vec::with_capacity(ready.len());
    for (identity, opts, backend) in ready {
        let probe =
            ProbeHandle::spawn(&identity, opts, Box::new(backend)).context("starting a probe")?;
        watchers.push(tokio::spawn(count_retries(probe.watch(), retried.clone())));
        probes.push(probe);
    }
    let started_at_unix_ns = unix_now_ns();
    tracing::info!("{} probes started", probes.len());
    wait_for_stop(Duration::from_secs_f64(spec.deadline_s)).await;
    let mut report = FleetReport {
        probes_started: probes.len(),
        started_at_unix_ns,
        identities_s,
        ..FleetReport::default()
    };
    let stops: Vec<_> = probes
        .into_iter()
        .map(|p| tokio::spawn(tokio::time::timeout(STOP_LIMIT, p.shutdown())))
        .collect();
    for stop in stops {
        match stop.await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => count_fatal(&mut report.fatal, &e),
            Ok(Err(_)) | Err(_) => report.not_stopped += 1,
        }
    }
    for w in watchers {
        w.abort();
    }
    report.peak_rss_mb = peak_rss_mb();
    report.retried = std::mem::take(&mut *retried.lock().unwrap_or_else(|p| p.into_inner()));
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// Waits until stdin closes (or fails) or `limit` passes. Stdin is read on a thread of its own
/// (not the runtime's blocking pool, which the runtime's end would wait for).
async fn wait_for_stop(limit: Duration) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("fleet-stdin".into())
        .spawn(move || {
            use std::io::Read;
            let mut input = std::io::stdin();
            let mut buf = [0u8; 64];
            // Ends when the parent closes the pipe (or goes away).
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = tx.send(());
        });
    if spawned.is_err() {
        tracing::warn!("cannot watch stdin: the probes run until the fleet's deadline");
        tokio::time::sleep(limit).await;
        return;
    }
    if tokio::time::timeout(limit, rx).await.is_err() {
        tracing::warn!("the fleet's deadline passed before the bench ended: stopping the probes");
    }
}

/// Counts every failed attempt of one probe by cause, as the probe starts its next attempt (the
/// status then carries the last attempt's error). Ends when the probe stops.
async fn count_retries(
    mut status: tokio::sync::watch::Receiver<ProbeStatus>,
    into: Arc<Mutex<Retried>>,
) {
    let timeout = ConnectFailure::TimedOut.to_string();
    let reset = ConnectFailure::Reset.to_string();
    let busy = ConnectFailure::Busy.to_string();
    let mut last_attempt = 0u32;
    while status.changed().await.is_ok() {
        let (attempt, error) = match &*status.borrow_and_update() {
            ProbeStatus::Connecting {
                attempt,
                last_error: Some(e),
            } => (*attempt, e.clone()),
            ProbeStatus::Stopped => return,
            _ => continue,
        };
        if attempt == last_attempt {
            continue;
        }
        last_attempt = attempt;
        let mut r = into.lock().unwrap_or_else(|p| p.into_inner());
        if error == busy {
            r.busy += 1;
        } else if error == timeout {
            r.timeout += 1;
        } else if error == reset {
            r.reset += 1;
        } else {
            r.other += 1;
            if let Some(n) = r.other_kinds.get_mut(&error) {
                *n += 1;
            } else if r.other_kinds.len() < OTHER_KINDS {
                r.other_kinds.insert(error, 1);
            }
        }
    }
}

fn count_fatal(f: &mut Fatal, e: &ProbeError) {
    match e {
        ProbeError::Connect(
            ConnectFailure::CertificateRejected { .. } | ConnectFailure::CertificateRevoked { .. },
        ) => f.certificate_rejected += 1,
        ProbeError::Connect(
            ConnectFailure::ServerNotTrusted { .. } | ConnectFailure::ServerNameMismatch { .. },
        ) => f.coordinator_not_trusted += 1,
        ProbeError::Refused(_) | ProbeError::RefusedOnClose(_) => f.refused += 1,
        _ => f.other += 1,
    }
}

/// This process's peak resident memory (VmHWM), MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Each probe holds a UDP socket: lifts this process's soft limit of open files to its hard limit
/// when `probes` would come near the soft one.
fn raise_open_files(probes: usize) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit write/read only the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return;
            }
            let want = (probes as libc::rlim_t).saturating_add(256);
            if lim.rlim_cur >= want {
                return;
            }
            if lim.rlim_max < want {
                tracing::warn!(
                    "{probes} probes need about {want} open files but this process may have only {}: raise `ulimit -Hn`",
                    lim.rlim_max
                );
            }
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!("could not raise the open-file limit to {}", lim.rlim_max);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = probes;
}
