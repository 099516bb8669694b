//! A simulated hall in this process: an ephemeral CA, a coordinator on 127.0.0.1 and one probe per
//! simulated node, each over its own real QUIC connection, the nodes of a rack sharing one coolant
//! loop. Used by `hallmark demo` and `hallmark run PLAN --simulate HALL`.

use super::execute::{execute, RunRequest};
use anyhow::{bail, Context};
use hallmark_coordinator::{ServerHandle, ServerOptions};
use hallmark_probe::{ProbeHandle, ProbeOptions};
use hallmark_protocol::plan::Plan;
use hallmark_results::RunSummary;
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::Identity;
use hallmark_workloads::sim::HallSpec;
use std::path::Path;
use tracing::info;

/// Most nodes simulated in one process.
pub const MAX_SIMULATED_NODES: usize = 2000;

/// Runs `plan` on the simulated `hall` and returns the stored run's summary.
pub async fn run_on_simulated_hall(
    hall: &HallSpec,
    plan: Plan,
    plan_source: String,
    results: &Path,
    progress: bool,
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
    let ca = Ca::generate().context("making an ephemeral CA")?;
    let server_cert = ca
        .issue_coordinator(&["127.0.0.1".to_string()])
        .context("issuing the coordinator certificate")?;
    let identity = Identity::from_pem(ca.cert_pem(), &server_cert.cert_pem, &server_cert.key_pem)?;
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = ServerHandle::start(&identity, ServerOptions::new(listen))
        .await
        .context("starting the coordinator")?;
    let addr = server.local_addr();
    info!(
        "simulated hall {}: {} nodes in {} racks, coordinator on {addr}",
        hall.name,
        nodes.len(),
        hall.racks().len()
    );
    let (_loops, backends) = hall.backends().context("building the simulated nodes")?;
    let mut probes = Vec::with_capacity(backends.len());
    for (node, backend) in backends {
        let issued = ca
            .issue_node(&node.node_id)
            .with_context(|| format!("issuing a certificate for {}", node.node_id))?;
        let id = Identity::from_pem(ca.cert_pem(), &issued.cert_pem, &issued.key_pem)?;
        let hello = hallmark_probe::hello(node.node_id.clone(), node.labels.clone(), &backend);
        let opts = ProbeOptions::new(addr.to_string(), hello);
        probes.push(ProbeHandle::spawn(&id, opts, Box::new(backend))?);
    }
    let request = RunRequest {
        plan,
        plan_source,
        hall: Some(hall.name.clone()),
        results,
        progress,
    };
    let summary = execute(&server, request).await;
    let stops: Vec<_> = probes
        .into_iter()
        .map(|p| tokio::spawn(p.shutdown()))
        .collect();
    for stop in stops {
        stop.await
            .context("stopping a probe")?
            .context("stopping a probe")?;
    }
    server
        .shutdown()
        .await
        .context("stopping the coordinator")?;
    summary
}
