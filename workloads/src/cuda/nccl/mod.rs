//! Collective phases through NCCL between the GPUs: one rank per GPU over every member of the
//! phase, the cuda backend's side of [`crate::Backend::nccl_unique_id`], `start_nccl`,
//! `stop_nccl` and `finish_nccl`.
//!
//! * [`NcclState::unique_id`] (on the phase's first member) checks that `libnccl` loads and is
//!   2.14 or newer, makes an `ncclUniqueId` (which starts NCCL's bootstrap root in this process)
//!   and returns its 128 bytes; the last [`KEEP_IDS`] ids are kept.
//! * [`NcclState::start`] checks the job (the id's length, this member's ranks against the
//!   backend's GPUs, the world size, the window) and the library, then starts one thread per local
//!   GPU (`sweep`): GPU `i` is rank `first + i`. The threads' communicators are made
//!   concurrently, so the local ranks do not wait on each other.
//! * Each thread sweeps the plan's operations and sizes like the host collectives
//!   (`fabric::collective`): the same sizes, input pattern and exact check, a warm-up, the timed
//!   iterations; every decision agreed by all ranks through a one-element NCCL all-reduce, so all
//!   issue the same calls. It ends by the phase's end: waits poll, and the end, a stop or an NCCL
//!   error aborts the communicator (`comm`).
//! * [`NcclState::finish`] waits (bounded) for the threads and merges their outcomes ([`merge()`]):
//!   per operation and size the slowest local GPU's mean, the wrong elements summed, the fewest
//!   iterations, the world of all GPUs, algorithm `nccl`; faults for what was not done.
//!
//! The GEMM workers keep running at the phase's level beside it, on their own streams. Their
//! buffers fill the memory but 10 % of it: the sweep checks the free memory after NCCL's setup
//! and all ranks agree to run only the sizes every rank holds (the rest is a fault that says
//! which `max_bytes` fits).
//!
//! cudarc looks for `libnccl.so` (and `libnccl.so.<CUDA major>`, ...), not `libnccl.so.2`, the only
//! name NCCL's run-time package installs; [`missing_message`] says so and what to do.

mod comm;
pub mod merge;
pub mod plan;
mod sweep;
/// The host collectives' shapes, input pattern and exact check: the NCCL sweep checks its results
/// the same way.
use crate::fabric::collective::verify;

#[cfg(test)]
mod tests;

use crate::backend::{BackendError, NcclJob};
use crate::cuda::libs::{self, Library};
use hallmark_protocol::{FabricFault, FabricReport, NcclSetup};
use merge::GpuOutcome;
use plan::{version_parts, Plan, MIN_VERSION};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use merge::{merge, Ended};

/// How many of the ids this process made are kept (a plan's NCCL phases are all prepared when
/// its run starts).
pub const KEEP_IDS: usize = 32;

/// The ranks of one member: its first, how many, and the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranks {
    pub first: u32,
    pub count: u32,
    pub world: u32,
}

/// Checks an NCCL job against this node's `local_gpus` GPUs: a 128-byte id, this member's ranks
/// in the setup, as many as the backend's GPUs, a world that NCCL's int holds, a window not yet
/// over.
pub fn check_job(job: &NcclJob, local_gpus: usize, now: Instant) -> Result<Ranks, BackendError> {
    let s = &job.setup;
    let bad = |m: String| {
        Err(BackendError::Config(format!(
            "NCCL phase {}: {m}",
            job.phase_id
        )))
    };
    if s.unique_id.len() != NcclSetup::ID_LEN {
        return bad(format!(
            "the NCCL unique id has {} bytes, not {}; the coordinator's setup is inconsistent",
            s.unique_id.len(),
            NcclSetup::ID_LEN
        ));
    }
    let Some((first, count)) = s.ranks_of(job.member) else {
        return bad(format!(
            "this node is member {} but the setup lists GPUs for {} members",
            job.member,
            s.gpus.len()
        ));
    };
    if count as usize != local_gpus {
        return bad(format!(
            "the setup gives this node {count} ranks but its backend runs {local_gpus} GPUs; \
             the probe announced a different GPU count than it now has (restart the probe)"
        ));
    }
    let world = s.world();
    if world == 0 || world > i32::MAX as u32 || first.saturating_add(count) > world {
        return bad(format!(
            "a world of {world} ranks (this node's from {first}) is not one NCCL can run"
        ));
    }
    if job.end <= now || job.end <= job.start {
        return bad("the phase's window is already over".into());
    }
    Ok(Ranks {
        first,
        count,
        world,
    })
}

/// The error where NCCL cannot be loaded: what was looked for and how to make it found.
pub fn missing_message() -> String {
    let tried: Vec<String> = Library::Nccl
        .candidates()
        .into_iter()
        .filter(|n| !n.contains("64"))
        .collect();
    format!(
        "NCCL collectives need libnccl.so, which cannot be loaded here (looked for {}). NCCL's \
         run-time package (libnccl2, or the nvidia-nccl Python wheels) installs only libnccl.so.2, \
         a name cudarc does not try: install NCCL's development package (libnccl-dev or \
         nccl-devel), which adds the libnccl.so link, or make a link named libnccl.so to \
         libnccl.so.2 in a directory on LD_LIBRARY_PATH; NCCL 2.14 or newer is needed. Or run the \
         phase over the data plane (transport = \"data-plane\")",
        tried.join(", ")
    )
}

/// Checks that libnccl loads and is new enough; its version code.
pub fn check_library() -> Result<i32, BackendError> {
    if !libs::cuda_library_present(Library::Nccl) {
        return Err(BackendError::Unsupported(missing_message()));
    }
    let code = match std::panic::catch_unwind(comm::library_version) {
        Ok(Ok(code)) => code,
        Ok(Err(r)) => {
            return Err(BackendError::Unsupported(format!(
                "ncclGetVersion failed: NCCL {}",
                comm::result_name(r)
            )))
        }
        Err(_) => {
            return Err(BackendError::Unsupported(
                "the loaded libnccl.so has no ncclGetVersion; it is not NCCL 2.x".into(),
            ))
        }
    };
    let (major, minor, patch) = version_parts(code);
    if (major, minor) < MIN_VERSION {
        return Err(BackendError::Unsupported(format!(
            "NCCL {major}.{minor}.{patch} is older than {}.{}, which hallmark needs (non-blocking \
             communicators that can be aborted); install a newer NCCL",
            MIN_VERSION.0, MIN_VERSION.1
        )));
    }
    Ok(code)
}

/// An NCCL phase whose threads run.
#[derive(Debug)]
struct Running {
    phase_id: u32,
    plan: Plan,
    ops: Vec<hallmark_protocol::CollectiveOp>,
    world: u32,
    stop: Arc<AtomicBool>,
    threads: Vec<(usize, JoinHandle<()>)>,
    slots: Vec<Arc<Mutex<GpuOutcome>>>,
    /// Faults from starting it (a thread that could not be spawned).
    faults: Vec<FabricFault>,
}

/// The backend's NCCL state: the ids it made, the running phase, threads left behind.
#[derive(Debug, Default)]
pub struct NcclState {
    ids: VecDeque<Vec<u8>>,
    run: Option<Running>,
    /// Threads of earlier phases that had not ended when their results were collected.
    lingering: Vec<JoinHandle<()>>,
}

impl NcclState {
    /// Makes an NCCL unique id; see the module docs.
    pub fn unique_id(&mut self) -> Result<Vec<u8>, BackendError> {
        check_library()?;
        let made = std::panic::catch_unwind(comm::new_unique_id).map_err(|_| {
            BackendError::Unsupported("the loaded libnccl.so has no ncclGetUniqueId".into())
        })?;
        let id = made.map_err(|r| {
            BackendError::Config(format!(
                "ncclGetUniqueId failed: NCCL {}; NCCL could not start its bootstrap (it needs a \
                 network interface the other members reach: set NCCL_SOCKET_IFNAME, and see \
                 NCCL_DEBUG=WARN)",
                comm::result_name(r)
            ))
        })?;
        let bytes = comm::id_bytes(&id);
        if self.ids.len() >= KEEP_IDS {
            self.ids.pop_front();
        }
        self.ids.push_back(bytes.clone());
        Ok(bytes)
    }

    /// Whether `id` is one this process made (and still keeps).
    pub fn made_here(&self, id: &[u8]) -> bool {
        self.ids.iter().any(|i| i == id)
    }

    /// Starts `job` on the GPUs with these CUDA `ordinals` (in the backend's order); returns at
    /// once.
    pub fn start(&mut self, job: NcclJob, ordinals: &[usize]) -> Result<(), BackendError> {
        let ranks = check_job(&job, ordinals.len(), Instant::now())?;
        if let Some(r) = &self.run {
            if r.threads.iter().any(|(_, h)| !h.is_finished()) {
                return Err(BackendError::Config(format!(
                    "NCCL phase {} cannot start: phase {} still runs (finish_nccl was not called)",
                    job.phase_id, r.phase_id
                )));
            }
            tracing::warn!(
                "NCCL phase {}: the results of phase {} were never collected; dropped",
                job.phase_id,
                r.phase_id
            );
            self.run = None;
        }
        check_library()?;
        let mut id = [0u8; NcclSetup::ID_LEN];
        id.copy_from_slice(&job.setup.unique_id);
        if job.member == 0 && !self.made_here(&id) {
            tracing::warn!(
                "NCCL phase {}: this node is the first member but did not make the phase's NCCL \
                 id (restarted since?); its bootstrap may not be reachable",
                job.phase_id
            );
        }
        if std::env::var("NCCL_COMM_BLOCKING").is_ok_and(|v| v.trim() == "1") {
            tracing::warn!(
                "NCCL_COMM_BLOCKING=1 makes the communicators blocking: a dead peer can hold the \
                 NCCL threads past the phase's end; unset it"
            );
        }
        let plan = Plan::new(&job.params);
        let stop = Arc::new(AtomicBool::new(false));
        let mut run = Running {
            phase_id: job.phase_id,
            plan: plan.clone(),
            ops: job.params.ops.clone(),
            world: ranks.world,
            stop: Arc::clone(&stop),
            threads: Vec::new(),
            slots: Vec::new(),
            faults: Vec::new(),
        };
        let runs_anything = !plan.sizes.is_empty() && !job.params.ops.is_empty();
        for (gpu, &ordinal) in ordinals.iter().enumerate() {
            let rank = ranks.first + gpu as u32;
            let slot = Arc::new(Mutex::new(GpuOutcome::new(gpu, rank)));
            run.slots.push(Arc::clone(&slot));
            if !runs_anything {
                sweep::with_outcome(&slot, |o| o.ended = Ended::Complete);
                continue;
            }
            let rank_job = sweep::RankJob {
                gpu,
                ordinal,
                rank,
                world: ranks.world,
                id,
                ops: job.params.ops.clone(),
                iterations: job.params.iterations,
                plan: plan.clone(),
                start: job.start,
                end: job.end,
                stop: Arc::clone(&stop),
                slot: Arc::clone(&slot),
            };
            let spawned = thread::Builder::new()
                .name(format!("nccl-{}-{gpu}", job.phase_id))
                .spawn(move || sweep::run(rank_job));
            match spawned {
                Ok(h) => run.threads.push((gpu, h)),
                Err(e) => {
                    // The other ranks' init waits for this one until the phase's end.
                    sweep::with_outcome(&slot, |o| {
                        o.faults.push(format!("starting its NCCL thread: {e}"));
                        o.ended = Ended::Halted(plan::Halt::Failed);
                    });
                }
            }
        }
        tracing::info!(
            "NCCL phase {}: ranks {}–{} of {} on {} GPUs",
            job.phase_id,
            ranks.first,
            ranks.first + ranks.count.saturating_sub(1),
            ranks.world,
            ordinals.len()
        );
        self.run = Some(run);
        Ok(())
    }

    /// Asks the running phase to end now: its threads abort their communicators.
    pub fn stop(&mut self) {
        if let Some(r) = &self.run {
            r.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the running phase's threads have all ended (or no phase runs).
    pub fn is_done(&self) -> bool {
        self.run
            .as_ref()
            .is_none_or(|r| r.threads.iter().all(|(_, h)| h.is_finished()))
    }

    /// Waits at most `wait` for the running phase's threads and returns its report (an empty
    /// one if no phase runs). Threads still running are asked to stop and left to end on their
    /// own.
    pub fn finish(&mut self, wait: Duration) -> FabricReport {
        self.lingering.retain(|h| !h.is_finished());
        let Some(mut run) = self.run.take() else {
            return FabricReport::default();
        };
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline && run.threads.iter().any(|(_, h)| !h.is_finished()) {
            thread::sleep(Duration::from_millis(2));
        }
        let mut unfinished = Vec::new();
        for (gpu, h) in run.threads.drain(..) {
            if h.is_finished() {
                let _ = h.join();
            } else {
                unfinished.push(gpu);
                self.lingering.push(h);
            }
        }
        if !unfinished.is_empty() {
            run.stop.store(true, Ordering::Relaxed);
        }
        let outcomes: Vec<GpuOutcome> = run
            .slots
            .iter()
            .map(|s| sweep::with_outcome(s, |o| o.clone()))
            .collect();
        let mut report = merge(&outcomes, &run.plan, &run.ops, run.world, &unfinished, wait);
        report.faults.splice(0..0, run.faults);
        report
    }

    /// Stops everything and waits until `deadline` for the threads (dropping the backend).
    pub fn shutdown(&mut self, deadline: Instant) {
        self.stop();
        let mut threads: Vec<JoinHandle<()>> = self.lingering.drain(..).collect();
        if let Some(run) = self.run.take() {
            threads.extend(run.threads.into_iter().map(|(_, h)| h));
        }
        while Instant::now() < deadline && threads.iter().any(|h| !h.is_finished()) {
            thread::sleep(Duration::from_millis(1));
        }
        for h in threads {
            if h.is_finished() {
                let _ = h.join();
            }
            // A thread still running is left to end on its own (detached) by its phase's end.
        }
    }
}
