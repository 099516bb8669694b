//! `hallmark runs list` and `hallmark runs show RUN`: what the run store holds.

use super::execute::print_summary;
use anyhow::Context;
use clap::{Args, Subcommand};
use hallmark_results::{time::format_utc, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One line per stored run, newest first.
    List(ListArgs),
    /// The summary of one run.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Where runs are stored.
    #[arg(long, value_name = "DIR", default_value = "hallmark-results")]
    results: PathBuf,
    /// One JSON array on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run id (or a unique prefix of it), as `hallmark runs list` shows it.
    run: String,
    /// Where runs are stored.
    #[arg(long, value_name = "DIR", default_value = "hallmark-results")]
    results: PathBuf,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List(a) => {
            let store = Store::open_read_only(&a.results)
                .with_context(|| format!("opening the run store in {}", a.results.display()))?;
            let runs = store.list_runs()?;
            if a.json {
                println!("{}", serde_json::to_string(&runs)?);
                return Ok(ExitCode::SUCCESS);
            }
            if runs.is_empty() {
                println!("no runs in {}", a.results.display());
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
            let store = Store::open_read_only(&a.results)
                .with_context(|| format!("opening the run store in {}", a.results.display()))?;
            let id = store.resolve_run(&a.run)?;
            let summary = store.run_summary(id.as_str())?;
            print_summary(&summary, a.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
