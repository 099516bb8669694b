//! Running a plan on a coordinator that is up: create the run in the store, start it, show its
//! progress, stop every probe's load on Ctrl-C, and read back the summary once everything is stored.

use super::progress::Progress;
use super::results::{self, off_runtime, OffRuntime};
use anyhow::Context;
use hallmark_coordinator::{RunStage, ServerHandle, StoreRecorder};
use hallmark_protocol::plan::Plan;
use hallmark_results::{MetricValue, RunSummary};
use hallmark_store::location::Location;
use hallmark_store::{NewRun, Store};
use hallmark_transport::clock::WallClock;
use std::time::Duration;
use tracing::warn;

/// What to run and where to keep it.
pub struct RunRequest<'a> {
    pub plan: Plan,
    /// The plan file's text (stored with the run, hashed for provenance).
    pub plan_source: String,
    /// The simulated hall's name; `None` on real hardware.
    pub hall: Option<String>,
    pub results: &'a Location,
    /// Show the live progress line on stderr.
    pub progress: bool,
}

/// Runs the plan to its end (or an abort) and returns the stored run's summary.
pub async fn execute(server: &ServerHandle, req: RunRequest<'_>) -> anyhow::Result<RunSummary> {
    execute_with_notes(server, req, &[]).await
}

/// [`execute`], storing `notes` with the run first, as events of kind `note` at its start: what a
/// reader of the run should know about how it was run (a simulated run's seeds).
pub async fn execute_with_notes(
    server: &ServerHandle,
    req: RunRequest<'_>,
    notes: &[String],
) -> anyhow::Result<RunSummary> {
    let new = NewRun {
        name: req.plan.name.clone(),
        plan_name: req.plan.name.clone(),
        plan_toml: req.plan_source,
        hall: req.hall,
        started_at_ns: WallClock::new().now_ns(),
        hallmark_version: env!("CARGO_PKG_VERSION").to_string(),
        sample_hz: req.plan.sample_hz,
    };
    let (store, run_id) = off_runtime(|| -> anyhow::Result<_> {
        let mut store = OffRuntime::new(results::open(req.results)?);
        let run_id = store.create_run(&new).context("creating the run")?;
        for note in notes {
            store
                .event(&run_id, new.started_at_ns, None, "note", note)
                .context("recording a note of the run")?;
        }
        // Liveness: who coordinates the run, refreshed while this process runs it, so that a
        // reader tells a run whose coordinator died (it stays "running" in the store) as
        // interrupted.
        store
            .set_coordinator(
                &run_id,
                &super::runs::this_host(),
                std::process::id(),
                WallClock::new().now_ns(),
            )
            .context("recording the run's coordinator")?;
        Ok((store, run_id))
    })?;
    let _liveness = Liveness::start(req.results.clone(), run_id.clone());
    // Longest the run can take: waiting for probes, the phases, the grace after them, and slack.
    let limit = Duration::from_millis(req.plan.expect.timeout_ms)
        + Duration::from_millis(req.plan.total_duration_ms())
        + Duration::from_secs(60);
    server
        .start_run(
            run_id.as_str().to_string(),
            req.plan,
            Box::new(OffRuntime::new(StoreRecorder::new(
                store.into_inner(),
                run_id.clone(),
            ))),
        )
        .await
        .context("starting the run")?;
    follow(server, &run_id, limit, req.progress, req.results).await
}

/// An interrupted run, checked and read from the store, ready to be resumed.
pub struct ResumeRequest {
    run_id: hallmark_store::RunId,
    plan: Plan,
    from: hallmark_coordinator::run::ResumeFrom,
    store: OffRuntime<Store>,
}

/// Reads the interrupted run `run` from the store `location` and records this process as its coordinator,
/// before the coordinator listens (so that no probe reconnects before the run is there to take
/// what it replays). Refuses a run that has finished or whose coordinator is still alive.
/// Runs off the async runtime ([`off_runtime`]).
pub fn prepare_resume(run: &str, location: &Location) -> anyhow::Result<ResumeRequest> {
    off_runtime(|| {
        use hallmark_coordinator::run::{ResumeFrom, ResumeNode};
        let mut store = OffRuntime::new(results::open(location)?);
        let run_id = store.resolve_run(run)?;
        let here = super::runs::Here::now();
        check_resumable(&store, &run_id, &here)?;
        let source = store.run_plan_toml(run_id.as_str())?;
        let plan =
            hallmark_protocol::plan::parse_plan(&source, &format!("the plan of run {run_id}"))?;
        let mut nodes = Vec::new();
        for p in store.resume_points(run_id.as_str())? {
            let node = hallmark_protocol::NodeId::new(&p.node_id)
                .map_err(|e| anyhow::anyhow!("run {run_id} has a probe {:?}: {e}", p.node_id))?;
            nodes.push(ResumeNode {
                node,
                rack: p.rack,
                next_seq: p.next_seq,
            });
        }
        store
            .set_coordinator(&run_id, &here.host, std::process::id(), here.now_ns)
            .context("recording the run's new coordinator")?;
        Ok(ResumeRequest {
            run_id,
            plan,
            from: ResumeFrom { nodes },
            store,
        })
    })
}

/// Refuses to resume `run_id` unless it is interrupted (still `running` in the store, its
/// coordinator gone), saying what to do instead.
fn check_resumable(
    store: &Store,
    run_id: &hallmark_store::RunId,
    here: &super::runs::Here,
) -> anyhow::Result<()> {
    let status = store.run_status(run_id.as_str())?;
    let instead = format!(
        "`hallmark runs show {run_id}` shows what it stored, and `hallmark run PLAN` starts a new run"
    );
    if status != hallmark_store::RunStatus::Running {
        anyhow::bail!(
            "run {run_id} has finished ({status}), so there is nothing to resume: only a run \
             whose coordinator was interrupted can be resumed; {instead}"
        );
    }
    let Some(coordinator) = store.coordinator_of(run_id.as_str())? else {
        anyhow::bail!(
            "run {run_id} is stored as running but has no record of its coordinator (a hallmark \
             older than store schema version 4 started it), so whether that coordinator is gone \
             cannot be told and the run cannot be resumed; {instead}"
        );
    };
    if here.gone(&coordinator).is_none() {
        anyhow::bail!(
            "run {run_id} is still coordinated by process {} on {} (heard from {:.0} s ago): \
             resume it only once that coordinator is gone — stop that process, or, if it runs on \
             another host, wait until it has been silent for {} s; `hallmark runs list` then shows \
             the run as interrupted",
            coordinator.pid,
            coordinator.host,
            here.now_ns.saturating_sub(coordinator.heartbeat_ns) as f64 / 1e9,
            hallmark_store::liveness::STALE_NS / 1_000_000_000
        );
    }
    Ok(())
}

/// Resumes a prepared run on this coordinator: its probes reconnect and replay what they still
/// hold, which is stored; the run then finishes INCOMPLETE with what was recovered (see
/// `hallmark_coordinator::run::ResumeFrom`).
pub async fn resume(
    server: &ServerHandle,
    req: ResumeRequest,
    location: &Location,
    progress: bool,
) -> anyhow::Result<RunSummary> {
    let ResumeRequest {
        run_id,
        plan,
        from,
        store,
    } = req;
    let _liveness = Liveness::start(location.clone(), run_id.clone());
    tracing::info!(
        "resuming run {run_id}: collecting what its {} probes still hold",
        from.nodes.len()
    );
    server
        .resume_run(
            run_id.as_str().to_string(),
            plan,
            from,
            Box::new(OffRuntime::new(StoreRecorder::new(
                store.into_inner(),
                run_id.clone(),
            ))),
        )
        .await
        .context("resuming the run")?;
    let limit = Duration::from_nanos(hallmark_coordinator::run::COLLECT_NS as u64)
        + Duration::from_secs(30);
    follow(server, &run_id, limit, progress, location).await
}

/// Shows the run's progress until it finishes (Ctrl-C aborts it; `limit` bounds it) and reads
/// back its summary.
async fn follow(
    server: &ServerHandle,
    run_id: &hallmark_store::RunId,
    limit: Duration,
    show: bool,
    location: &Location,
) -> anyhow::Result<RunSummary> {
    let bar = Progress::new(show);
    let mut progress = server.progress();
    let deadline = tokio::time::Instant::now() + limit;
    let mut interrupted = false;
    // Why the run ended, as the coordinator said it.
    let mut ended: Option<String> = None;
    // One listener for the whole run: a signal that arrives between two turns of the loop is not
    // lost.
    let interrupt = super::shutdown_signal();
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            _ = &mut interrupt, if !interrupted => {
                interrupted = true;
                warn!("interrupted: stopping every probe's load");
                server.abort_run("interrupted by the operator");
            }
            changed = progress.changed() => {
                if changed.is_err() {
                    break;
                }
                let current = progress.borrow_and_update().clone();
                if let Some(p) = current {
                    bar.show(&p);
                    if let RunStage::Finished { reason, .. } = &p.stage {
                        ended = Some(reason.clone());
                        break;
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                server.abort_run("the run overran its plan by more than a minute");
                // Give the abort and the store a moment, then report what is there.
                let _ = server.wait_run_finished(Duration::from_secs(10)).await;
                break;
            }
        }
    }
    bar.finish();
    // The summary and the per-subject metrics from one pass over the run's telemetry.
    let (summary, metrics) = off_runtime(|| {
        let store = results::open_read_only(location).context("reading the run's summary")?;
        hallmark_results::run_summary_with_metrics(&store, run_id.as_str())
            .with_context(|| format!("summarising run {run_id}"))
    })?;
    if summary.status == hallmark_store::RunStatus::Running {
        // The store failed before it could record the run's end (a full disk): say so rather than
        // show a run that has stopped as running.
        anyhow::bail!(
            "run {run_id} has stopped{}, but its end could not be recorded in the run store {}: \
             it stays `running` there (`hallmark runs list` shows it as interrupted once this \
             process has exited); what was stored before is kept (`hallmark runs show {run_id}`)",
            ended.map(|r| format!(" ({r})")).unwrap_or_default(),
            location
        );
    }
    store_metrics(location, run_id.as_str(), &metrics);
    Ok(summary)
}

/// Stores the run's per-subject metrics, which `compare` and `history` read; a failure is logged,
/// not fatal (`compare` computes them when they are missing).
fn store_metrics(location: &Location, run_id: &str, metrics: &[MetricValue]) {
    let done = off_runtime(|| -> anyhow::Result<usize> {
        let mut store = results::open(location)?;
        let rows = hallmark_results::regress::store_metric_values(
            &mut store,
            run_id,
            metrics,
            WallClock::new().now_ns(),
        )?;
        Ok(rows.len())
    });
    match done {
        Ok(n) => tracing::debug!(run = run_id, metrics = n, "per-subject metrics stored"),
        Err(e) => warn!(
            run = run_id,
            "the run's per-subject metrics could not be stored ({e:#}); `hallmark compare` \
             computes them when it needs them"
        ),
    }
}

/// Refreshes the run's coordinator heartbeat every `liveness::HEARTBEAT_NS` on a thread and a
/// store connection of its own (SQLite waits are never on the runtime), until dropped; a failed
/// refresh is logged and tried again at the next tick.
struct Liveness {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Liveness {
    fn start(location: Location, run: hallmark_store::RunId) -> Liveness {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let period = Duration::from_nanos(hallmark_store::liveness::HEARTBEAT_NS as u64);
        let spawned = std::thread::Builder::new()
            .name("liveness".into())
            .spawn(move || {
                let mut store = match Store::open_location(&location) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!("cannot refresh the coordinator's liveness in the store: {e}");
                        return;
                    }
                };
                let clock = WallClock::new();
                // Bounded by the flag: the run's end drops the handle.
                while !flag.load(Ordering::Relaxed) {
                    if let Err(e) = store.coordinator_heartbeat(&run, clock.now_ns()) {
                        warn!("refreshing the coordinator's liveness: {e}");
                    }
                    let until = std::time::Instant::now() + period;
                    while !flag.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        if let Err(e) = spawned {
            warn!("cannot start the liveness thread: {e}");
        }
        Liveness { stop }
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Prints a run's summary and its certification: as text, or as one JSON object on stdout (the
/// summary's fields plus `spec`, `verdict` (the overall status) and `verdicts`).
pub fn print_outcome(
    summary: &RunSummary,
    spec: &hallmark_results::Spec,
    verdicts: &[hallmark_results::Verdict],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(summary).context("serialising the summary")?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("spec".into(), serde_json::Value::String(spec.name.clone()));
            obj.insert(
                "verdict".into(),
                serde_json::to_value(hallmark_results::overall(verdicts))?,
            );
            obj.insert("verdicts".into(), serde_json::to_value(verdicts)?);
            obj.insert(
                "simulated".into(),
                serde_json::to_value(summary.simulation.banner())?,
            );
        }
        println!("{v}");
    } else {
        print!("{}", hallmark_results::render_text(summary));
        println!();
        if let Some(banner) = summary.simulation.banner() {
            println!("*** {banner} ***");
        }
        println!("Certification against spec {}:", spec.name);
        print!("{}", hallmark_results::render_verdicts(verdicts));
    }
    Ok(())
}

/// Prints a summary as text or as one JSON object on stdout.
pub fn print_summary(summary: &RunSummary, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string(summary).context("serialising the summary")?
        );
    } else {
        print!("{}", hallmark_results::render_text(summary));
    }
    Ok(())
}
