//! `hallmark runs list` and `hallmark runs show RUN`: what the run store holds. A run still
//! `running` in the store whose coordinator is gone (its process ended on this host, or its
//! heartbeat stopped) is shown as `interrupted` (see `hallmark_store::liveness`).

use super::execute::print_summary;
use super::results::{self, ResultsArg};
use clap::{Args, Subcommand};
use hallmark_results::StoreExt;
use hallmark_store::liveness::Coordinator;
use hallmark_store::{time::format_utc, RunStatus, Store};
use hallmark_transport::clock::WallClock;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One line per stored run, newest first.
    List(ListArgs),
    /// The summary of one run.
    Show(ShowArgs),
    /// When every probe started every phase against its scheduled start: who started late, by how much.
    Starts(super::runs_starts::StartsArgs),
    /// The run's per-subject metrics (docs/COMPARE.md): the figures a regression shows up in.
    Metrics(super::runs_metrics::MetricsArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    results: ResultsArg,
    /// One JSON array on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run id (or a unique prefix of it), as `hallmark runs list` shows it.
    run: String,
    #[command(flatten)]
    results: ResultsArg,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::Starts(a) => super::runs_starts::run(a),
        RunsCommand::Metrics(a) => super::runs_metrics::run(a),
        RunsCommand::List(a) => {
            let store = results::open_read_only(&a.results.location)?;
            let mut runs = store.list_runs()?;
            let here = Here::now();
            for r in &mut runs {
                here.show_live(
                    &store,
                    r.run_id.as_str(),
                    &mut r.status,
                    &mut r.status_reason,
                )?;
            }
            if a.json {
                println!("{}", serde_json::to_string(&runs)?);
                return Ok(ExitCode::SUCCESS);
            }
            if runs.is_empty() {
                println!("no runs {}", results::describe(&a.results.location));
            }
            for r in runs {
                println!(
                    "{:<28} {:<24} {:<10} {:>4} probes {:>10} samples  {}  {}",
                    r.run_id.as_str(),
                    r.name,
                    r.status.as_str(),
                    r.probes,
                    r.samples,
                    format_utc(r.started_at_ns),
                    r.hall.as_deref().unwrap_or("(real hardware)")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show(a) => {
            let store = results::open_read_only(&a.results.location)?;
            let id = store.resolve_run(&a.run)?;
            let mut summary = store.run_summary(id.as_str())?;
            Here::now().show_live(
                &store,
                id.as_str(),
                &mut summary.status,
                &mut summary.status_reason,
            )?;
            print_summary(&summary, a.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where and when a reader looks at the store: this instant and this host, read once per command.
pub struct Here {
    pub now_ns: i64,
    pub host: String,
}

impl Here {
    pub fn now() -> Here {
        Here {
            now_ns: WallClock::new().now_ns(),
            host: this_host(),
        }
    }

    /// Why `coordinator` is gone, seen from here (`None`: it may still run).
    pub fn gone(&self, coordinator: &Coordinator) -> Option<String> {
        coordinator.gone(self.now_ns, &self.host, pid_alive)
    }

    /// Shows run `run`, stored as `status` with `reason`, as interrupted with why when it is still
    /// running in the store and its coordinator is gone.
    fn show_live(
        &self,
        store: &Store,
        run: &str,
        status: &mut RunStatus,
        reason: &mut Option<String>,
    ) -> anyhow::Result<()> {
        if let Some((live, why)) =
            store.live_status(run, *status, self.now_ns, &self.host, pid_alive)?
        {
            *status = live;
            *reason = Some(why);
        }
        Ok(())
    }
}

/// This machine's host name, as a coordinator records it with its run ("unknown" where the
/// system does not say).
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether process `pid` runs on this host (a zombie, killed and not yet reaped, does not).
/// Where there is no /proc to ask, every process counts as alive and only the coordinator's
/// heartbeat tells.
pub fn pid_alive(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
