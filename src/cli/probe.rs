//! `hallmark probe`: the agent of one node.

use anyhow::Context;
use clap::{Args, ValueEnum};
use hallmark_probe::{ProbeHandle, ProbeOptions};
use hallmark_protocol::{Labels, NodeId};
use hallmark_transport::tls::Identity;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::info;

/// Device backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Simulated GPUs (the only backend so far; cpu and cuda are being built).
    Sim,
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
    /// Rack the node is in.
    #[arg(long)]
    rack: String,
    /// Row the rack is in.
    #[arg(long, default_value = "row1")]
    row: String,
    /// Hall the row is in.
    #[arg(long, default_value = "hall1")]
    hall: String,
    /// Device backend.
    #[arg(long, value_enum, default_value_t = Backend::Sim)]
    backend: Backend,
    /// Number of simulated GPUs (sim backend).
    #[arg(long, default_value_t = 8)]
    devices: u16,
}

pub async fn run(a: ProbeArgs) -> anyhow::Result<ExitCode> {
    let identity =
        Identity::load(&a.ca, &a.cert, &a.key).context("loading the probe's TLS identity")?;
    let labels = Labels {
        hall: a.hall,
        row: a.row,
        rack: a.rack,
    };
    let hello = match a.backend {
        Backend::Sim => hallmark_probe::sim_hello(a.node.clone(), labels, a.devices),
    };
    let mut opts = ProbeOptions::new(a.coordinator.clone(), hello);
    opts.server_name = a.server_name;
    info!("probe {} connecting to {}", a.node, a.coordinator);
    let mut probe = ProbeHandle::spawn(&identity, opts).context("starting the probe")?;
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
