//! `hallmark coordinator`: serve probes until Ctrl-C.

use anyhow::Context;
use clap::Args;
use hallmark_coordinator::fabric::FabricSubnet;
use hallmark_coordinator::{ServerHandle, ServerOptions, DEFAULT_MAX_HANDSHAKES};
use hallmark_transport::tls::Identity;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tracing::{info, warn};

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// UDP address to listen on, e.g. `0.0.0.0:4433` or `[::]:4433`.
    #[arg(long, default_value = "0.0.0.0:4433")]
    listen: SocketAddr,
    /// The cluster's CA certificate (ca.pem from `certs init`).
    #[arg(long)]
    ca: PathBuf,
    /// The coordinator's certificate (coordinator.pem).
    #[arg(long)]
    cert: PathBuf,
    /// The coordinator's private key (coordinator-key.pem).
    #[arg(long)]
    key: PathBuf,
    /// Refuse probes whose certificates this revocation list (crl.pem from `certs init` or
    /// `certs revoke`) lists; re-read whenever the file changes (looked at every second), so a
    /// new list takes effect without a restart: new connections are refused, and open ones it
    /// revokes are closed within 2 s.
    #[arg(long, value_name = "FILE")]
    crl: Option<PathBuf>,
    /// Number of probes expected; the coordinator says when all are registered and warns when
    /// they are not within --expect-timeout.
    #[arg(long, value_name = "N")]
    expect: Option<usize>,
    /// How long to wait for the expected probes, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    expect_timeout: u64,
    /// Keep this JSON file up to date with the registered probes (labels, devices, clock offsets).
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
    /// A network the probes' data planes live on (e.g. 10.20.0.0/16; repeatable). A probe may
    /// announce a data-plane IP (`--data-announce`) other than the one it connects from only
    /// inside one of these; otherwise its Hello is refused.
    #[arg(long = "fabric-subnet", value_name = "CIDR")]
    fabric_subnet: Vec<FabricSubnet>,
    /// Serve live metrics for Prometheus at http://ADDR/metrics (TCP, e.g. 0.0.0.0:9464): probes
    /// by backend, node, rack and hall power, and during a run its state, phase and storage.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Most QUIC connections at once, counted from arrival (handshakes included): probes,
    /// facility collectors and connections still to be refused. One more is turned away at
    /// once and retries with backoff. Raise it above ~1.1 × the probes of halls beyond 3 700
    /// nodes.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Most TLS handshakes in flight at once (from a connection's arrival until its control
    /// stream is open). More are turned away before any cryptography and retry with a jittered
    /// backoff ("coordinator busy"), so that a registration storm is slowed, not timed out.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_HANDSHAKES as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_handshakes: u32,
}

/// `--max-connections` when not given.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;

/// What a coordinator of a real cluster is started with, by `hallmark coordinator` and by
/// `hallmark run --listen`.
pub struct Serve<'a> {
    pub listen: SocketAddr,
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
    pub crl: Option<PathBuf>,
    pub status_file: Option<PathBuf>,
    pub fabric_subnets: Vec<FabricSubnet>,
    pub metrics: Option<SocketAddr>,
    pub max_connections: u32,
    pub max_handshakes: u32,
}

/// Loads the TLS identity and starts the coordinator; warns when no revocation list is given.
pub async fn start(s: Serve<'_>) -> anyhow::Result<ServerHandle> {
    let identity =
        Identity::load(s.ca, s.cert, s.key).context("loading the coordinator's TLS identity")?;
    let mut opts = ServerOptions::new(s.listen);
    if s.crl.is_none() {
        warn!("no --crl: revoked certificates cannot be refused; pass the crl.pem of `certs init`");
    }
    opts.crl = s.crl;
    opts.status_file = s.status_file;
    opts.config.fabric_subnets = s.fabric_subnets;
    opts.metrics = s.metrics;
    opts.max_connections = s.max_connections as usize;
    opts.max_handshakes = s.max_handshakes as usize;
    ServerHandle::start(&identity, opts)
        .await
        .context("starting the coordinator")
}

pub async fn run(a: CoordinatorArgs) -> anyhow::Result<ExitCode> {
    let server = start(Serve {
        listen: a.listen,
        ca: &a.ca,
        cert: &a.cert,
        key: &a.key,
        crl: a.crl.clone(),
        status_file: a.status_file.clone(),
        fabric_subnets: a.fabric_subnet.clone(),
        metrics: a.metrics,
        max_connections: a.max_connections,
        max_handshakes: a.max_handshakes,
    })
    .await?;
    if let Some(path) = &a.status_file {
        info!("registered probes are listed in {}", path.display());
    }
    let expect = async {
        let Some(n) = a.expect else {
            return std::future::pending::<()>().await;
        };
        let limit = Duration::from_secs(a.expect_timeout);
        match server.wait_for(limit, |p| p.len() >= n).await {
            Some(p) => {
                let devices: usize = p.iter().map(|r| r.inventory.len()).sum();
                info!("all {n} expected probes registered ({devices} devices)");
            }
            None => {
                let have = server.probes().len();
                warn!("only {have} of {n} expected probes registered within {limit:?}");
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = super::shutdown_signal() => info!("shutting down"),
        _ = expect => {}
    }
    server
        .shutdown()
        .await
        .context("stopping the coordinator")?;
    Ok(ExitCode::SUCCESS)
}
