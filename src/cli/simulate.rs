//! A simulated hall in this process (a [`LocalCluster`]): one probe per simulated node, each over
//! its own real QUIC connection and with its own data plane, the nodes of a rack sharing one
//! coolant loop, and its facility: a rack PDU and a CDU per rack served over Redfish on loopback
//! (`sim_facility.rs`) and read by a facility collector. Used by `hallmark demo` and
//! `hallmark run PLAN --simulate HALL`.
//!
//! The hall's seed fixes its hardware; the run seed (`--seed`) draws what differs between two runs
//! of it (`hallmark_workloads::sim::conditions`: the racks' supply offset and drift, the nodes' base
//! load, sensor noise, and the facility meters' noise). The run stores both seeds as a note.

use super::execute::{execute_with_notes, RunRequest};
use super::local::{LocalCluster, LocalNode};
use super::sim_facility::SimFacility;
use anyhow::{bail, Context};
use hallmark_facility::config::FacilityConfig;
use hallmark_facility::serve::serve;
use hallmark_protocol::plan::Plan;
use hallmark_results::RunSummary;
use hallmark_store::location::Location;
use hallmark_workloads::sim::{HallSpec, RunConditions};
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::info;

/// Most nodes simulated in one process.
pub const MAX_SIMULATED_NODES: usize = 2000;

/// The note stored with a run on simulated `hall` with run seed `run_seed`.
pub fn seeds_note(hall: &HallSpec, run_seed: u64) -> String {
    format!(
        "simulated hall {}: hall seed {} (the hardware: each GPU's spread), run seed {run_seed} \
         (coolant supply offset and drift, base load, sensor and meter noise; docs/HALL.md)",
        hall.name, hall.seed
    )
}

/// Runs `plan` on the simulated `hall` in a run drawn from `run_seed` and returns the stored run's
/// summary.
pub async fn run_on_simulated_hall(
    hall: &HallSpec,
    run_seed: u64,
    plan: Plan,
    plan_source: String,
    results: &Location,
    progress: bool,
    metrics: Option<std::net::SocketAddr>,
) -> anyhow::Result<RunSummary> {
    let nodes = hall.nodes();
    if nodes.is_empty() || nodes.len() > MAX_SIMULATED_NODES {
        bail!(
            "hall {} has {} nodes; one process simulates 1 to {MAX_SIMULATED_NODES}",
            hall.name,
            nodes.len()
        );
    }
    let expected = plan.expect.nodes.node_count();
    if expected > nodes.len() {
        tracing::warn!(
            "plan {} expects {expected} nodes but hall {} has {}: the run will wait {} s for them and be INCOMPLETE",
            plan.name,
            hall.name,
            nodes.len(),
            plan.expect.timeout_ms / 1000
        );
    }
    // A store that cannot be written is refused before any probe starts.
    super::results::check_writable(results)?;
    let (loops, backends) = hall
        .backends_for_run(RunConditions::Seeded(run_seed))
        .context("building the simulated nodes")?;
    // The hall's meters: a rack PDU and a CDU per rack over Redfish on loopback, read by a
    // facility collector through the same client as a real hall's; their noise is the run's.
    let board = Arc::new(SimFacility::new(hall, &loops, run_seed)?);
    let served = serve(SocketAddr::from(([127, 0, 0, 1], 0)), board.clone())
        .await
        .context("serving the simulated hall's facility")?;
    let facility_toml = board.facility_toml(&served.base_url());
    let facility = FacilityConfig::parse(
        &facility_toml,
        "the simulated hall's facility.toml",
        std::path::Path::new("."),
        &|_| None,
    )
    .context("the simulated hall's facility file")?;
    let local: Vec<LocalNode> = backends
        .into_iter()
        .map(|(node, backend)| LocalNode {
            node_id: node.node_id,
            labels: node.labels,
            backend: Box::new(backend),
        })
        .collect();
    // Every simulated probe gets a data plane on 127.0.0.1, so plans with fabric phases run too.
    let mut cluster = LocalCluster::start(local, true, metrics).await?;
    cluster.add_facility(facility, &hall.name).await?;
    info!(
        "simulated hall {}: {} nodes in {} racks, coordinator on {}",
        hall.name,
        nodes.len(),
        hall.racks().len(),
        cluster.server().local_addr()
    );
    let request = RunRequest {
        plan,
        plan_source,
        hall: Some(hall.name.clone()),
        results,
        progress,
    };
    let notes = [seeds_note(hall, run_seed)];
    let summary = execute_with_notes(cluster.server(), request, &notes).await;
    cluster.stop().await?;
    served.shutdown().await;
    summary
}
