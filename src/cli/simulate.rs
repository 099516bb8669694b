//! A simulated hall in this process (a [`LocalCluster`]): one probe per simulated node, each over
//! its own real QUIC connection and with its own data plane, the nodes of a rack sharing one
//! coolant loop. Used by `hallmark demo` and `hallmark run PLAN --simulate HALL`.

use super::execute::{execute, RunRequest};
use super::local::{LocalCluster, LocalNode};
use anyhow::{bail, Context};
use hallmark_protocol::plan::Plan;
use hallmark_results::RunSummary;
use hallmark_store::location::Location;
use hallmark_workloads::sim::HallSpec;
use tracing::info;

/// Most nodes simulated in one process.
pub const MAX_SIMULATED_NODES: usize = 2000;

/// Runs `plan` on the simulated `hall` and returns the stored run's summary.
pub async fn run_on_simulated_hall(
    hall: &HallSpec,
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
    let (_loops, backends) = hall.backends().context("building the simulated nodes")?;
    let local: Vec<LocalNode> = backends
        .into_iter()
        .map(|(node, backend)| LocalNode {
            node_id: node.node_id,
            labels: node.labels,
            backend: Box::new(backend),
        })
        .collect();
    // Every simulated probe gets a data plane on 127.0.0.1, so plans with fabric phases run too.
    let cluster = LocalCluster::start(local, true, metrics).await?;
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
    let summary = execute(cluster.server(), request).await;
    cluster.stop().await?;
    summary
}
