//! `hallmark probe`: the agent of one node.

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use hallmark_probe::{ProbeHandle, ProbeOptions};
use hallmark_protocol::{Labels, NodeId};
use hallmark_transport::tls::Identity;
use hallmark_workloads::cpu::CpuBackend;
use hallmark_workloads::sim::{load_hall, HallSpec, SimBackend};
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::info;

/// Device backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Simulated GPUs (`--devices`, or the node as `--sim-hall` describes it).
    Sim,
    /// The CPUs: multithreaded SGEMM burn on every core (or `--threads`), one device per socket,
    /// results checked against a reference. (The CUDA backend is being built.)
    Cpu,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The coordinator's address, HOST:PORT.
    #[arg(long)]
    coordinator: String,
    /// Name to check the coordinator's certificate against (default: the HOST of --coordinator).
    #[arg(long)]
    server_name: Option<String>,
    /// The cluster's CA certificate (ca.pem).
    #[arg(long)]
    ca: PathBuf,
    /// This node's certificate (NODE.pem from `certs issue`).
    #[arg(long)]
    cert: PathBuf,
    /// This node's private key (NODE-key.pem).
    #[arg(long)]
    key: PathBuf,
    /// This node's id; must be the one its certificate was issued for.
    #[arg(long)]
    node: NodeId,
    /// Rack the node is in (taken from --sim-hall when that is given).
    #[arg(long, required_unless_present = "sim_hall")]
    rack: Option<String>,
    /// Row the rack is in.
    #[arg(long, default_value = "row1")]
    row: String,
    /// Hall the row is in.
    #[arg(long, default_value = "hall1")]
    hall: String,
    /// Simulate this node as the hall file describes it (its GPUs, faults and rack cooling; the
    /// rest of its rack is assumed to run the same synchronised load).
    #[arg(long, value_name = "HALL.toml", conflicts_with_all = ["rack", "devices"])]
    sim_hall: Option<PathBuf>,
    /// Device backend.
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    backend: Backend,
    /// Number of simulated GPUs (sim backend without --sim-hall).
    #[arg(long)]
    devices: Option<u16>,
    /// Worker threads of the cpu backend (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

pub async fn run(a: ProbeArgs) -> anyhow::Result<ExitCode> {
    let identity =
        Identity::load(&a.ca, &a.cert, &a.key).context("loading the probe's TLS identity")?;
    if a.backend == Backend::Sim && a.threads.is_some() {
        bail!("--threads is for --backend cpu");
    }
    let (backend, labels): (Box<dyn hallmark_workloads::Backend>, Labels) = match a.backend {
        Backend::Sim => match &a.sim_hall {
            Some(file) => {
                let hall = load_hall(file)?;
                let node = hall.node(a.node.as_str()).with_context(|| {
                    format!(
                        "node {} is not in hall {} ({}); its nodes are named like {}",
                        a.node,
                        hall.name,
                        file.display(),
                        HallSpec::node_name(1, 1, 1)
                    )
                })?;
                let backend = hall
                    .backend_scaled(&a.node)
                    .context("building the simulated node")?;
                (Box::new(backend), node.labels)
            }
            None => {
                let backend = SimBackend::standalone(a.node.clone(), a.devices.unwrap_or(8))
                    .context("building the simulated node")?;
                let labels = Labels {
                    hall: a.hall,
                    row: a.row,
                    rack: a.rack.unwrap_or_default(),
                };
                (Box::new(backend), labels)
            }
        },
        Backend::Cpu => {
            if a.sim_hall.is_some() || a.devices.is_some() {
                bail!("--sim-hall and --devices are for --backend sim");
            }
            let backend = CpuBackend::new(a.threads).context("starting the cpu backend")?;
            let labels = Labels {
                hall: a.hall,
                row: a.row,
                rack: a.rack.unwrap_or_default(),
            };
            (Box::new(backend), labels)
        }
    };
    let hello = hallmark_probe::hello(a.node.clone(), labels, backend.as_ref());
    let mut opts = ProbeOptions::new(a.coordinator.clone(), hello);
    opts.server_name = a.server_name;
    info!("probe {} connecting to {}", a.node, a.coordinator);
    let mut probe = ProbeHandle::spawn(&identity, opts, backend).context("starting the probe")?;
    let ended = tokio::select! {
        _ = super::shutdown_signal() => None,
        r = probe.finished() => Some(r),
    };
    let ended = match ended {
        Some(r) => r,
        None => {
            info!("shutting down");
            probe.shutdown().await
        }
    };
    match ended {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: probe {}: {e}", a.node);
            Ok(ExitCode::from(e.exit_code() as u8))
        }
    }
}
