//! Command-line wiring: clap definitions and dispatch. Each command lives in its own module and
//! only translates arguments into calls of the library crates.

mod bench;
mod bench_fabric;
mod bench_fleet;
mod bench_fleet_probes;
mod bench_fleet_udp;
mod certify;
mod certs;
mod compare;
mod coordinator;
mod demo;
mod devices;
mod evidence;
mod execute;
mod facility;
mod history;
mod local;
mod probe;
mod probe_facility;
mod progress;
mod publish;
mod results;
mod run;
mod runs;
mod runs_metrics;
mod runs_starts;
mod sim_facility;
mod simulate;

#[cfg(test)]
mod deploy_tests;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// hallmark: benchmark and validate AI data halls — load every GPU, watch power, cooling and fabric,
/// and judge the hall against a certification spec.
#[derive(Debug, Parser)]
#[command(name = "hallmark", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the built-in plan on the built-in simulated hall, end to end in this process:
    /// certificates, a coordinator and 80 probes over loopback QUIC, the run stored and summarised.
    Demo(demo::DemoArgs),
    /// Run a plan on a simulated hall (--simulate) or as the coordinator of a real cluster (--listen).
    Run(run::RunArgs),
    /// List and show stored runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Judge a stored run against a certification spec; exit 0 PASS, 1 FAIL, 2 INCOMPLETE, 3 error.
    Certify(certify::CertifyArgs),
    /// Compare two runs subject by subject against noise thresholds from their history; exit 0
    /// without a significant regression, 1 with one, 3 on error or when they are not comparable.
    Compare(compare::CompareArgs),
    /// The series of a metric over the runs of a plan, oldest first, with its change points.
    History(history::HistoryArgs),
    /// Write a run's self-contained HTML report with charts, and JSON and CSV exports.
    Report(evidence::ReportArgs),
    /// Publish runs side by side for a paper or a web page: one self-contained page with each
    /// hall's system and measurement method, every distribution as a chart (also standalone SVG),
    /// the data as CSV and JSON, each figure traced to its run id and bundle hash.
    Publish(publish::PublishArgs),
    /// Make an Ed25519 key pair for signing bundles.
    Keygen(evidence::KeygenArgs),
    /// Write a run's signed bundle (report, exports, spec; a SHA-256 of each, signed manifest).
    Bundle(evidence::BundleArgs),
    /// Check a bundle against a public key: fails on any changed byte.
    Verify(evidence::VerifyArgs),
    /// Make the private CA and certificates a cluster needs.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Run the coordinator: accept probes, register them, keep their clocks in sync.
    Coordinator(coordinator::CoordinatorArgs),
    /// Run the probe of one node: connect to the coordinator and take its orders.
    Probe(probe::ProbeArgs),
    /// Quick single-node checks without a coordinator (`bench gemm`: load the devices, print
    /// GFLOP/s, result checks, power, temperatures and throttling).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The hall's own meters over Redfish (`facility discover URL`: rack PDUs, CDUs, chassis).
    #[command(subcommand)]
    Facility(facility::FacilityCommand),
}

impl Command {
    /// Whether the command only reads what exists and prints it: such a command may end when
    /// the reader of its output goes away. Commands that drive hardware, a run or a service do not.
    pub fn prints_for_a_reader(&self) -> bool {
        matches!(
            self,
            Command::Runs(_)
                | Command::Certify(_)
                | Command::Verify(_)
                | Command::Compare(_)
                | Command::History(_)
        )
    }

    /// Whether the command runs a whole simulated hall in this process.
    pub fn simulates_a_hall(&self) -> bool {
        match self {
            Command::Demo(_) => true,
            Command::Run(a) => a.simulates(),
            _ => false,
        }
    }
}

/// Dispatches a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(a).await,
        Command::Run(a) => run::run(a).await,
        // The commands that read or write the store run off the async runtime (see
        // `results::off_runtime`).
        Command::Runs(c) => results::off_runtime(|| runs::run(c)),
        Command::Certify(a) => results::off_runtime(|| certify::run(a)),
        Command::Compare(a) => results::off_runtime(|| compare::run(a)),
        Command::History(a) => results::off_runtime(|| history::run(a)),
        Command::Report(a) => results::off_runtime(|| evidence::report(a)),
        Command::Publish(a) => results::off_runtime(|| publish::run(a)),
        Command::Keygen(a) => evidence::keygen_cmd(a),
        Command::Bundle(a) => results::off_runtime(|| evidence::bundle(a)),
        Command::Verify(a) => evidence::verify(a),
        Command::Certs(c) => certs::run(c),
        Command::Coordinator(a) => coordinator::run(a).await,
        Command::Probe(a) => probe::run(a).await,
        Command::Bench(c) => bench::run(c).await,
        Command::Facility(c) => facility::run(c).await,
    }
}

/// Logs to stderr; stdout stays free for results. Colour only when stderr is a terminal and
/// `NO_COLOR` is unset or empty: a log redirected to a file or a pipe carries no escape codes.
pub fn init_tracing(verbose: u8, quiet: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,hallmark={level},hallmark_coordinator={level},hallmark_probe={level},hallmark_transport={level}"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(log_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_target(false)
        .try_init();
}

/// Whether logs are coloured: on a terminal, unless `NO_COLOR` is set to something
/// (<https://no-color.org>: an empty value does not count).
fn log_colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
