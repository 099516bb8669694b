//! `hallmark certify RUN --spec SPEC`: judge a stored run against a certification spec, store the
//! verdicts, print them, and exit with the overall verdict's code (0 PASS or WARN, 1 FAIL,
//! 2 INCOMPLETE, 3 when certification itself failed). `run` and `demo` certify through
//! [`certify_run`] too.

use super::results::{self, ResultsArg};
use anyhow::Context;
use clap::Args;
use hallmark_results::{
    evaluate, overall, parse_spec, render_verdicts, Spec, Status, StoreExt, Verdict,
};
use hallmark_store::location::Location;
use hallmark_store::Simulation;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code when certification could not be carried out (bad spec, unknown run, store error).
pub const EXIT_ERROR: u8 = 3;

#[derive(Debug, Args)]
pub struct CertifyArgs {
    /// The run id (or a unique prefix, or `latest`).
    run: String,
    /// The certification spec (TOML; see docs/SPEC.md and examples/spec-*.toml).
    #[arg(long)]
    spec: PathBuf,
    #[command(flatten)]
    results: ResultsArg,
    /// Print the verdicts as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// The verdicts of one certification, as `--json` prints them.
#[derive(Debug, Serialize)]
pub struct CertificationOutput<'a> {
    pub run_id: &'a str,
    pub spec: &'a str,
    pub overall: Status,
    /// The SIMULATED warning when any device of the run was simulated, `null` otherwise.
    pub simulated: Option<String>,
    /// How many devices and nodes were simulated.
    pub simulation: Simulation,
    pub verdicts: &'a [Verdict],
}

/// A spec read from a file, or the built-in one.
pub struct SpecSource {
    pub spec: Spec,
    pub text: String,
}

impl SpecSource {
    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> anyhow::Result<SpecSource> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the spec {}", path.display()))?;
        let spec = parse_spec(&text, &path.display().to_string())?;
        Ok(SpecSource { spec, text })
    }

    /// The built-in 100 kW spec of the demo hall.
    pub fn demo() -> SpecSource {
        SpecSource {
            spec: hallmark_results::demo_spec(),
            text: hallmark_results::DEMO_SPEC.to_string(),
        }
    }
}

/// Evaluates `spec` against run `run_id` in `location`, stores the verdicts and returns them
/// (off the async runtime, see [`results::off_runtime`]).
pub fn certify_run(
    location: &Location,
    run_id: &str,
    spec: &SpecSource,
) -> anyhow::Result<Vec<Verdict>> {
    results::off_runtime(|| {
        let mut store = results::open(location)?;
        let verdicts = evaluate(&store, run_id, &spec.spec)
            .with_context(|| format!("evaluating spec {} against run {run_id}", spec.spec.name))?;
        store
            .store_certification(run_id, &spec.spec.name, &spec.text, &verdicts)
            .context("storing the verdicts")?;
        Ok(verdicts)
    })
}

/// Prints verdicts as text (or JSON) on stdout; a simulated run's says SIMULATED before and after
/// the verdicts (text) or in `simulated` (JSON).
pub fn print_verdicts(
    run_id: &str,
    spec: &Spec,
    verdicts: &[Verdict],
    simulation: Simulation,
    json: bool,
) -> anyhow::Result<()> {
    let banner = simulation.banner();
    if json {
        let out = CertificationOutput {
            run_id,
            spec: &spec.name,
            overall: overall(verdicts),
            simulated: banner,
            simulation,
            verdicts,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        if let Some(b) = &banner {
            println!("*** {b} ***");
        }
        println!("Certification against spec {}:", spec.name);
        print!("{}", render_verdicts(verdicts));
        if let Some(b) = &banner {
            println!("*** {b} ***");
        }
    }
    Ok(())
}

pub fn run(a: CertifyArgs) -> anyhow::Result<ExitCode> {
    let result = (|| -> anyhow::Result<Status> {
        let spec = SpecSource::load(&a.spec)?;
        // Read first: a location holding no store is refused without creating one. A store of an
        // older schema is opened for writing, which brings it up to date (certifying writes anyway).
        let store = match results::open_read_only(&a.results.location) {
            Err(e) if results::needs_upgrade(&e) => results::open(&a.results.location)?,
            opened => opened?,
        };
        let run_id = store.resolve_run(&a.run)?;
        let simulation = store
            .simulation(run_id.as_str())
            .with_context(|| format!("reading the devices of run {run_id}"))?;
        drop(store);
        let verdicts = certify_run(&a.results.location, run_id.as_str(), &spec)?;
        print_verdicts(run_id.as_str(), &spec.spec, &verdicts, simulation, a.json)?;
        Ok(overall(&verdicts))
    })();
    match result {
        Ok(status) => Ok(ExitCode::from(status.exit_code())),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}
