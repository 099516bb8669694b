//! `hallmark probe`: the agent of one node, and `hallmark probe --list-devices`: what this node's
//! backend sees (inventory, sensors, one reading), without a coordinator.

use super::devices::{self, OpenOptions, Real};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use hallmark_probe::fabric::{DataPlaneDriver, FabricDriver};
use hallmark_probe::{ProbeHandle, ProbeOptions};
use hallmark_protocol::{Labels, NodeId};
use hallmark_transport::tls::Identity;
use hallmark_workloads::cuda::{CudaConfig, Dtype};
use hallmark_workloads::sim::{load_hall, HallSpec, RunConditions, SimBackend, DEFAULT_RUN_SEED};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::info;

/// Device backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Simulated GPUs (`--devices`, or the node as `--sim-hall` describes it).
    Sim,
    /// The CPUs: multithreaded SGEMM burn on every core (or `--threads`), one device per socket,
    /// results checked against a reference.
    Cpu,
    /// NVIDIA GPUs: cuBLAS GEMM burn (`--dtype`) over most of each GPU's memory under a 5 ms duty
    /// cycle, results checked on the GPU, NVML sensors. Needs the NVIDIA driver (libcuda.so.1,
    /// libnvidia-ml.so.1) and the CUDA 13 libraries (libcublas.so.13, libnvrtc.so.13).
    Cuda,
    /// cuda where the NVIDIA driver and NVML load and a GPU is visible, else cpu.
    Auto,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 ended normally (or listed the devices), 1 error, 2 refused by the \
coordinator or not authenticated, 4 the cuda backend cannot run here (CUDA or NVML libraries \
missing, driver not loaded, or no GPU)."
)]
pub struct ProbeArgs {
    /// The coordinator's address, HOST:PORT.
    #[arg(long, required_unless_present = "list_devices")]
    coordinator: Option<String>,
    /// Name to check the coordinator's certificate against (default: the HOST of --coordinator).
    #[arg(long)]
    server_name: Option<String>,
    /// The cluster's CA certificate (ca.pem).
    #[arg(long, required_unless_present = "list_devices")]
    ca: Option<PathBuf>,
    /// This node's certificate (NODE.pem from `certs issue`).
    #[arg(long, required_unless_present = "list_devices")]
    cert: Option<PathBuf>,
    /// This node's private key (NODE-key.pem).
    #[arg(long, required_unless_present = "list_devices")]
    key: Option<PathBuf>,
    /// This node's id; must be the one its certificate was issued for.
    #[arg(long, required_unless_present = "list_devices")]
    node: Option<NodeId>,
    /// Rack the node is in (taken from --sim-hall when that is given).
    #[arg(long, required_unless_present_any = ["sim_hall", "list_devices", "facility"])]
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
    /// With --sim-hall: the run seed (docs/HALL.md; default 0, as `demo` and `run --simulate`):
    /// the rack's supply offset and drift, the node's base load and sensor noise. Give every probe
    /// of one run the same seed.
    #[arg(long, value_name = "N", requires = "sim_hall")]
    seed: Option<u64>,
    /// Device backend [default: sim; auto with --list-devices].
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// Number of simulated GPUs (sim backend without --sim-hall).
    #[arg(long)]
    devices: Option<u16>,
    /// Worker threads of the cpu backend (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// What the cuda backend's GEMMs multiply: bf16, fp16, fp32 or tf32 [default: bf16].
    #[arg(long)]
    dtype: Option<Dtype>,
    /// Print this node's devices, the sensors that work and one reading, then exit (needs no
    /// coordinator or certificates).
    #[arg(long)]
    list_devices: bool,
    /// With --list-devices: one JSON object instead of text.
    #[arg(long, requires = "list_devices")]
    json: bool,
    /// Where the data plane (latency and collective phases; UDP and TCP on one port) listens,
    /// IP:PORT; port 0 takes any free port.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:0")]
    data_listen: SocketAddr,
    /// The address the other probes reach this one's data plane at, when it is not the address of
    /// --data-listen or the one the coordinator sees the probe connect from (NAT, several
    /// interfaces): IP, or IP:PORT when a relay or port mapping sits in between.
    #[arg(long, value_name = "IP[:PORT]")]
    data_announce: Option<String>,
    /// Run without a data plane: this probe then takes no part in latency and collective phases
    /// (their runs are INCOMPLETE).
    #[arg(long, conflicts_with_all = ["data_listen", "data_announce"])]
    no_data_plane: bool,
    /// Be a facility collector instead of a node's probe: poll the rack PDUs, CDUs and BMCs this
    /// file lists (docs/FACILITY.md) and send their readings, on the coordinator's clock, to be
    /// stored with every run. --node names the collector (its certificate's node id); it loads
    /// no devices and takes part in no phase.
    #[arg(
        long,
        value_name = "facility.toml",
        conflicts_with_all = ["sim_hall", "backend", "devices", "threads", "dtype", "list_devices", "data_announce", "no_data_plane", "rack"]
    )]
    facility: Option<PathBuf>,
    /// Wait a random part of this many seconds before the first connection attempt (0 to 600;
    /// default 0: at once). For fleets started at the same second (Slurm's `srun`, a DaemonSet's
    /// rollout, a systemd target): 10 000 probes spread over 30 s reach the coordinator at ~330 a
    /// second. Later attempts back off on their own (a busy coordinator tells probes to retry).
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = parse_start_jitter)]
    start_jitter: Duration,
}

/// `--start-jitter` (of `probe` and `bench fleet`): seconds, 0 to 600.
pub(super) fn parse_start_jitter(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs.is_finite() && (0.0..=600.0).contains(&secs)) {
        return Err(format!("{s} s: give 0 to 600 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `name` of a probe argument clap requires unless --list-devices.
fn required<T>(v: Option<T>, name: &str) -> anyhow::Result<T> {
    v.with_context(|| format!("--{name} is required to run a probe"))
}

/// The run conditions of a node simulated from `--sim-hall`: `--seed`, else the default run seed.
fn run_conditions(a: &ProbeArgs) -> RunConditions {
    RunConditions::Seeded(a.seed.unwrap_or(DEFAULT_RUN_SEED))
}

/// `probe --list-devices`.
fn list_devices(a: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let kind = a.backend.unwrap_or(Backend::Auto);
    if kind != Backend::Cuda && kind != Backend::Auto && a.dtype.is_some() {
        bail!("--dtype is for --backend cuda");
    }
    let real = match kind {
        Backend::Sim => {
            let node = a.node.clone().unwrap_or(NodeId::new("local")?);
            let backend: Box<dyn hallmark_workloads::Backend> = match &a.sim_hall {
                Some(file) => {
                    let hall = load_hall(file)?;
                    Box::new(
                        hall.backend_scaled_for_run(&node, run_conditions(a))
                            .with_context(|| format!("node {node} of hall {}", hall.name))?,
                    )
                }
                None => Box::new(
                    SimBackend::standalone(node, a.devices.unwrap_or(8))
                        .context("building the simulated node")?,
                ),
            };
            return Ok(list_sim(backend, a.json));
        }
        Backend::Cpu => Real::Cpu,
        Backend::Cuda => Real::Cuda,
        Backend::Auto => Real::Auto,
    };
    if a.devices.is_some() || a.sim_hall.is_some() {
        bail!("--devices and --sim-hall are for --backend sim");
    }
    Ok(devices::list(
        real,
        a.threads,
        a.dtype.unwrap_or_default(),
        a.json,
    ))
}

/// `--list-devices` of the simulated backend.
fn list_sim(mut backend: Box<dyn hallmark_workloads::Backend>, json: bool) -> ExitCode {
    let reading = backend.sample(0);
    let inventory = backend.inventory().to_vec();
    let sensors = backend.sensors();
    if json {
        let v = serde_json::json!({
            "backend": backend.name(),
            "devices": inventory,
            "sensors": sensors,
            "readings": reading
                .as_ref()
                .map(|r| r.devices.iter().map(devices::reading_json).collect::<Vec<_>>())
                .unwrap_or_default(),
            "reading_error": reading.as_ref().err().map(|e| e.to_string()),
        });
        println!("{v}");
    } else {
        let mut out = vec![format!(
            "backend {}: {} simulated device(s)",
            backend.name(),
            inventory.len()
        )];
        out.extend(devices::inventory_lines(&inventory));
        out.push("sensors:".into());
        out.extend(devices::sensor_lines(&sensors));
        println!("{}", out.join("\n"));
    }
    ExitCode::SUCCESS
}

pub async fn run(a: ProbeArgs) -> anyhow::Result<ExitCode> {
    if a.list_devices {
        return list_devices(&a);
    }
    let coordinator = required(a.coordinator.clone(), "coordinator")?;
    let node = required(a.node.clone(), "node")?;
    // A bad facility file is refused before anything connects.
    let facility = match &a.facility {
        Some(file) => Some(super::probe_facility::load_collector(file)?),
        None => None,
    };
    let identity = Identity::load(
        &required(a.ca.clone(), "ca")?,
        &required(a.cert.clone(), "cert")?,
        &required(a.key.clone(), "key")?,
    )
    .context("loading the probe's TLS identity")?;
    if let Some(collector) = facility {
        let hello = super::probe_facility::hello(node.clone(), a.hall.clone());
        let mut opts = ProbeOptions::new(coordinator.clone(), hello);
        opts.server_name = a.server_name;
        opts.start_jitter = a.start_jitter;
        info!(
            "facility collector {node}: {} sources, connecting to {coordinator}",
            collector.sources()
        );
        let probe = super::probe_facility::FacilityProbe::start(&identity, opts, collector)?;
        return serve_collector(node, probe).await;
    }
    let kind = a.backend.unwrap_or(Backend::Sim);
    if kind == Backend::Sim && a.threads.is_some() {
        bail!("--threads is for --backend cpu");
    }
    if kind != Backend::Sim && (a.sim_hall.is_some() || a.devices.is_some()) {
        bail!("--sim-hall and --devices are for --backend sim");
    }
    if matches!(kind, Backend::Sim | Backend::Cpu) && a.dtype.is_some() {
        bail!("--dtype is for --backend cuda");
    }
    let labels = Labels {
        hall: a.hall.clone(),
        row: a.row.clone(),
        rack: a.rack.clone().unwrap_or_default(),
    };
    let (backend, labels): (Box<dyn hallmark_workloads::Backend>, Labels) = match kind {
        Backend::Sim => match &a.sim_hall {
            Some(file) => {
                let hall = load_hall(file)?;
                let n = hall.node(node.as_str()).with_context(|| {
                    format!(
                        "node {} is not in hall {} ({}); its nodes are named like {}",
                        node,
                        hall.name,
                        file.display(),
                        HallSpec::node_name(1, 1, 1)
                    )
                })?;
                let backend = hall
                    .backend_scaled_for_run(&node, run_conditions(&a))
                    .context("building the simulated node")?;
                (Box::new(backend), n.labels)
            }
            None => {
                let backend = SimBackend::standalone(node.clone(), a.devices.unwrap_or(8))
                    .context("building the simulated node")?;
                (Box::new(backend), labels)
            }
        },
        Backend::Cpu | Backend::Cuda | Backend::Auto => {
            let real = match kind {
                Backend::Cpu => Real::Cpu,
                Backend::Cuda => Real::Cuda,
                _ => Real::Auto,
            };
            let opts = OpenOptions {
                threads: a.threads,
                cuda: CudaConfig {
                    dtype: a.dtype.unwrap_or_default(),
                    ..CudaConfig::default()
                },
                sensors_only: false,
            };
            // Preparing the GPUs blocks for seconds: off the async runtime's threads.
            let opened = tokio::task::spawn_blocking(move || devices::open(real, &opts))
                .await
                .context("opening the backend")?;
            match opened {
                Ok((o, _)) => (o.into_box(), labels),
                Err(e) => return Ok(e.report()),
            }
        }
    };
    info!(
        "probe {node}: {} backend, {} device(s)",
        backend.name(),
        backend.inventory().len()
    );
    let fabric: Option<Box<dyn FabricDriver>> = if a.no_data_plane {
        None
    } else {
        let (ip, port) = match &a.data_announce {
            Some(text) => parse_announce(text)?,
            None => (None, None),
        };
        let driver = DataPlaneDriver::bind(node.clone(), a.data_listen, ip, port)
            .with_context(|| {
                format!(
                    "binding the data plane on {} (UDP and TCP): choose another --data-listen, or --no-data-plane",
                    a.data_listen
                )
            })?;
        if let Some(dp) = driver.addr() {
            info!(
                "data plane on {} (UDP and TCP), announced as {}:{}",
                a.data_listen,
                dp.ip
                    .map_or("the address the coordinator sees".to_string(), |ip| ip
                        .to_string()),
                dp.port
            );
        }
        Some(Box::new(driver))
    };
    let hello = hallmark_probe::hello(node.clone(), labels, backend.as_ref());
    let mut opts = ProbeOptions::new(coordinator.clone(), hello);
    opts.server_name = a.server_name;
    opts.start_jitter = a.start_jitter;
    info!("probe {node} connecting to {coordinator}");
    let mut probe = ProbeHandle::spawn_with_fabric(&identity, opts, backend, fabric)
        .context("starting the probe")?;
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
            eprintln!("error: probe {node}: {e}");
            Ok(ExitCode::from(e.exit_code() as u8))
        }
    }
}

/// Runs a facility collector until a signal or its own end (exit 1 on an error, as a probe).
async fn serve_collector(
    node: NodeId,
    mut probe: super::probe_facility::FacilityProbe,
) -> anyhow::Result<ExitCode> {
    let ended = tokio::select! {
        _ = super::shutdown_signal() => None,
        r = probe.finished() => Some(r),
    };
    let result = match ended {
        None => {
            info!("shutting down");
            probe.shutdown().await
        }
        Some(r) => {
            let stopped = probe.shutdown().await;
            r.and(stopped)
        }
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: facility collector {node}: {e:#}");
            // Refused or not authenticated: 2, as for a node's probe.
            let code = e
                .downcast_ref::<hallmark_probe::ProbeError>()
                .map_or(1, |p| p.exit_code());
            Ok(ExitCode::from(code as u8))
        }
    }
}

/// `--data-announce`: `IP` or `IP:PORT` (IPv6 with a port as `[IP]:PORT`).
fn parse_announce(text: &str) -> anyhow::Result<(Option<IpAddr>, Option<u16>)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((Some(ip), None));
    }
    match text.parse::<SocketAddr>() {
        Ok(a) => Ok((Some(a.ip()), Some(a.port()))),
        Err(_) => bail!(
            "--data-announce {text}: give an IP address (10.0.0.7, fd00::7) or IP:PORT (10.0.0.7:7000, [fd00::7]:7000)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use clap::Parser;
    use std::time::Duration;

    fn parse(extra: &[&str]) -> Result<super::ProbeArgs, clap::Error> {
        let base = [
            "hallmark",
            "probe",
            "--coordinator",
            "10.0.0.1:4433",
            "--ca",
            "ca.pem",
            "--cert",
            "n.pem",
            "--key",
            "n-key.pem",
            "--node",
            "n",
            "--rack",
            "r",
        ];
        let argv: Vec<&str> = base.iter().chain(extra).copied().collect();
        match Cli::try_parse_from(argv)?.command {
            Command::Probe(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn start_jitter_is_seconds_from_0_to_600() {
        assert_eq!(
            parse(&[]).unwrap().start_jitter,
            Duration::ZERO,
            "at once by default"
        );
        let a = parse(&["--start-jitter", "30"]).unwrap();
        assert_eq!(a.start_jitter, Duration::from_secs(30));
        let a = parse(&["--start-jitter", "0.5"]).unwrap();
        assert_eq!(a.start_jitter, Duration::from_millis(500));
        for bad in ["-1", "601", "NaN", "soon"] {
            let arg = format!("--start-jitter={bad}");
            let e = parse(&[&arg]).unwrap_err().to_string();
            assert!(e.contains("--start-jitter"), "{bad}: {e}");
            assert!(e.contains("600") || e.contains("number"), "{bad}: {e}");
        }
    }
}
