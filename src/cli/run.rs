//! `hallmark run PLAN`: run a plan on a simulated hall (`--simulate HALL.toml`) or, as the
//! coordinator of a real cluster, on the probes that register (`--listen ADDR --ca … --cert …
//! --key …`). Both store the run and print its summary exactly as the demo does. `hallmark run
//! --resume RUN --listen ADDR --ca … --cert … --key …` takes over a run whose coordinator was
//! interrupted: its probes reconnect and hand over what they still hold, and the run finishes
//! INCOMPLETE saying what was recovered.
//!
//! Exit codes: with `--spec`, the certification's (0 PASS or WARN, 1 FAIL, 2 INCOMPLETE, 3 when
//! certification itself failed); without, 0 when the run is complete, 2 when it is incomplete or
//! aborted (missing inventory, a lost probe, an interrupted run). Other errors exit 1.

use super::certify::{certify_run, SpecSource, EXIT_ERROR};
use super::execute::{execute, print_outcome, print_summary, RunRequest};
use super::results::ResultsArg;
use super::simulate::run_on_simulated_hall;
use anyhow::{bail, Context};
use clap::Args;
use hallmark_coordinator::fabric::FabricSubnet;
use hallmark_coordinator::ServerHandle;
use hallmark_protocol::plan::parse_plan;
use hallmark_results::overall;
use hallmark_store::RunStatus;
use hallmark_workloads::sim::{load_hall, DEFAULT_RUN_SEED};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file (TOML; see docs/PLAN.md and examples/plan-*.toml); not with --resume.
    #[arg(required_unless_present = "resume", conflicts_with = "resume")]
    plan: Option<PathBuf>,
    /// Resume this interrupted run (its coordinator died): collect what its probes still hold.
    /// Needs --listen on the same address and CA as before.
    #[arg(long, value_name = "RUN", requires = "listen", conflicts_with_all = ["simulate", "spec"])]
    resume: Option<String>,
    /// Run on a simulated hall described by this file (see docs/HALL.md), in this process.
    #[arg(long, value_name = "HALL.toml", conflicts_with_all = ["listen", "ca", "cert", "key", "crl"])]
    simulate: Option<PathBuf>,
    /// With --simulate: the run seed, what differs between two runs of the same hall (coolant
    /// supply offset and drift, base load, sensor and meter noise; docs/HALL.md); default 0.
    #[arg(long, value_name = "N", requires = "simulate", conflicts_with_all = ["listen", "resume"])]
    seed: Option<u64>,
    /// Be the coordinator of a real cluster on this UDP address.
    #[arg(long, requires_all = ["ca", "cert", "key"])]
    listen: Option<SocketAddr>,
    /// The cluster's CA certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The coordinator's certificate.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The coordinator's private key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Refuse probes whose certificates this revocation list (crl.pem from `certs init` or
    /// `certs revoke`) lists; re-read whenever the file changes.
    #[arg(long, value_name = "FILE", requires = "listen")]
    crl: Option<PathBuf>,
    /// Keep this JSON file up to date with the registered probes.
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
    /// A network the probes' data planes live on (e.g. 10.20.0.0/16; repeatable). A probe may
    /// announce a data-plane IP (`--data-announce`) other than the one it connects from only
    /// inside one of these; otherwise its Hello is refused.
    #[arg(long = "fabric-subnet", value_name = "CIDR", requires = "listen")]
    fabric_subnet: Vec<FabricSubnet>,
    /// Serve live metrics for Prometheus at http://ADDR/metrics (TCP, e.g. 0.0.0.0:9464): probes,
    /// the run and its phase, node, rack and hall power, samples stored, gaps.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// With --listen: most QUIC connections at once, handshakes included (see `hallmark
    /// coordinator --max-connections`).
    #[arg(long, value_name = "N", requires = "listen", default_value_t = super::coordinator::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// With --listen: most TLS handshakes in flight at once; more are told to retry (see
    /// `hallmark coordinator --max-handshakes`).
    #[arg(long, value_name = "N", requires = "listen", default_value_t = hallmark_coordinator::DEFAULT_MAX_HANDSHAKES as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_handshakes: u32,
    #[command(flatten)]
    results: ResultsArg,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Certify the run against this spec at the end; the exit code is then the verdict's.
    #[arg(long)]
    spec: Option<PathBuf>,
}

impl RunArgs {
    /// Whether this run is on a simulated hall in this process.
    pub fn simulates(&self) -> bool {
        self.simulate.is_some()
    }
}

pub async fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(run) = &a.resume {
        return resume(&a, run).await;
    }
    let Some(plan_file) = &a.plan else {
        bail!("say which plan to run (a plan file), or --resume RUN");
    };
    let source = std::fs::read_to_string(plan_file)
        .with_context(|| format!("reading the plan {}", plan_file.display()))?;
    let plan = parse_plan(&source, &plan_file.display().to_string())?;
    // A bad spec is refused before the run, not after it.
    let spec = a.spec.as_deref().map(SpecSource::load).transpose()?;
    let progress = !a.json && std::io::stderr().is_terminal();
    let summary = match (&a.simulate, a.listen) {
        (Some(hall_file), _) => {
            let hall = load_hall(hall_file)?;
            run_on_simulated_hall(
                &hall,
                a.seed.unwrap_or(DEFAULT_RUN_SEED),
                plan,
                source,
                &a.results.location,
                progress,
                a.metrics,
            )
            .await?
        }
        (None, Some(listen)) => {
            let server = start_server(&a, listen).await?;
            let request = RunRequest {
                plan,
                plan_source: source,
                hall: None,
                results: &a.results.location,
                progress,
            };
            let summary = execute(&server, request).await;
            server
                .shutdown()
                .await
                .context("stopping the coordinator")?;
            summary?
        }
        (None, None) => bail!(
            "say where to run the plan: --simulate HALL.toml for a simulated hall, or \
             --listen ADDR --ca FILE --cert FILE --key FILE to coordinate a real cluster"
        ),
    };
    let Some(spec) = spec else {
        print_summary(&summary, a.json)?;
        return Ok(match summary.status {
            RunStatus::Complete => ExitCode::SUCCESS,
            _ => ExitCode::from(2),
        });
    };
    let verdicts = match certify_run(&a.results.location, &summary.run_id, &spec) {
        Ok(v) => v,
        Err(e) => {
            print_summary(&summary, a.json)?;
            eprintln!("error: certifying run {}: {e:#}", summary.run_id);
            return Ok(ExitCode::from(EXIT_ERROR));
        }
    };
    print_outcome(&summary, &spec.spec, &verdicts, a.json)?;
    Ok(ExitCode::from(overall(&verdicts).exit_code()))
}

/// Starts the coordinator of a real cluster on `listen` with the TLS identity in `a`.
async fn start_server(a: &RunArgs, listen: SocketAddr) -> anyhow::Result<ServerHandle> {
    let (Some(ca), Some(cert), Some(key)) = (&a.ca, &a.cert, &a.key) else {
        bail!("--listen needs --ca, --cert and --key");
    };
    super::coordinator::start(super::coordinator::Serve {
        listen,
        ca,
        cert,
        key,
        crl: a.crl.clone(),
        status_file: a.status_file.clone(),
        fabric_subnets: a.fabric_subnet.clone(),
        metrics: a.metrics,
        max_connections: a.max_connections,
        max_handshakes: a.max_handshakes,
    })
    .await
}

/// `hallmark run --resume RUN --listen …`: exit 2 (an interrupted run is never complete).
async fn resume(a: &RunArgs, run: &str) -> anyhow::Result<ExitCode> {
    let Some(listen) = a.listen else {
        bail!("--resume needs --listen ADDR --ca FILE --cert FILE --key FILE (the same address and CA as the interrupted coordinator)");
    };
    let progress = !a.json && std::io::stderr().is_terminal();
    let request = super::execute::prepare_resume(run, &a.results.location)?;
    let server = start_server(a, listen).await?;
    let summary = super::execute::resume(&server, request, &a.results.location, progress).await;
    server
        .shutdown()
        .await
        .context("stopping the coordinator")?;
    let summary = summary?;
    print_summary(&summary, a.json)?;
    Ok(match summary.status {
        RunStatus::Complete => ExitCode::SUCCESS,
        _ => ExitCode::from(2),
    })
}
