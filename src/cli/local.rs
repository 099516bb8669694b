//! A cluster in this process: an ephemeral CA, a coordinator on 127.0.0.1 and one probe per node,
//! each over its own real QUIC connection, each with its own data plane on 127.0.0.1 when asked;
//! and, when asked, a facility collector reading the simulated hall's meters over Redfish.
//! Used by `hallmark demo`, `hallmark run PLAN --simulate HALL` and the `bench latency` /
//! `bench collective` commands.

use super::probe_facility::FacilityProbe;
use anyhow::Context;
use hallmark_coordinator::{ServerHandle, ServerOptions};
use hallmark_facility::collect::Collector;
use hallmark_facility::config::FacilityConfig;
use hallmark_probe::fabric::{DataPlaneDriver, FabricDriver};
use hallmark_probe::{ProbeHandle, ProbeOptions};
use hallmark_protocol::{Labels, NodeId};
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::Identity;
use hallmark_workloads::Backend;
use std::net::SocketAddr;
use std::time::Duration;

/// One node of a local cluster.
pub struct LocalNode {
    pub node_id: NodeId,
    pub labels: Labels,
    pub backend: Box<dyn Backend>,
}

/// A coordinator and its probes in this process.
pub struct LocalCluster {
    server: ServerHandle,
    probes: Vec<ProbeHandle>,
    ca: Ca,
    facility: Option<FacilityProbe>,
}

/// The node id of a local cluster's facility collector.
pub const FACILITY_COLLECTOR: &str = "facility-collector";
/// How long a local facility collector has to register.
const FACILITY_REGISTER: Duration = Duration::from_secs(20);

impl LocalCluster {
    /// Starts the coordinator and a probe per node; with `data_plane` each probe binds a data plane
    /// on 127.0.0.1 (any free port), so the cluster can run fabric phases; with `metrics` the
    /// coordinator serves its live metrics there.
    pub async fn start(
        nodes: Vec<LocalNode>,
        data_plane: bool,
        metrics: Option<SocketAddr>,
    ) -> anyhow::Result<LocalCluster> {
        let ca = Ca::generate().context("making an ephemeral CA")?;
        let server_cert = ca
            .issue_coordinator(&["127.0.0.1".to_string()])
            .context("issuing the coordinator certificate")?;
        let identity =
            Identity::from_pem(ca.cert_pem(), &server_cert.cert_pem, &server_cert.key_pem)?;
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut opts = ServerOptions::new(listen);
        opts.metrics = metrics;
        let server = ServerHandle::start(&identity, opts)
            .await
            .context("starting the coordinator")?;
        let addr = server.local_addr();
        let mut probes = Vec::with_capacity(nodes.len());
        for node in nodes {
            let issued = ca
                .issue_node(&node.node_id)
                .with_context(|| format!("issuing a certificate for {}", node.node_id))?;
            let id = Identity::from_pem(ca.cert_pem(), &issued.cert_pem, &issued.key_pem)?;
            let hello =
                hallmark_probe::hello(node.node_id.clone(), node.labels, node.backend.as_ref());
            let opts = ProbeOptions::new(addr.to_string(), hello);
            let fabric: Option<Box<dyn FabricDriver>> = if data_plane {
                let driver = DataPlaneDriver::bind(
                    node.node_id.clone(),
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    None,
                    None,
                )
                .with_context(|| format!("binding the data plane of {}", node.node_id))?;
                Some(Box::new(driver))
            } else {
                None
            };
            probes.push(ProbeHandle::spawn_with_fabric(
                &id,
                opts,
                node.backend,
                fabric,
            )?);
        }
        Ok(LocalCluster {
            server,
            probes,
            ca,
            facility: None,
        })
    }

    /// Starts a facility collector polling the sources of `config` (its own certificate from the
    /// cluster's CA), in `hall`, and waits until it is registered.
    pub async fn add_facility(&mut self, config: FacilityConfig, hall: &str) -> anyhow::Result<()> {
        let collector = Collector::new(&config)
            .context("setting up the simulated hall's facility collector")?;
        let node = NodeId::new(FACILITY_COLLECTOR)?;
        let issued = self
            .ca
            .issue_node(&node)
            .context("issuing the facility collector's certificate")?;
        let id = Identity::from_pem(self.ca.cert_pem(), &issued.cert_pem, &issued.key_pem)?;
        let hello = super::probe_facility::hello(node, hall.to_string());
        let opts = ProbeOptions::new(self.server.local_addr().to_string(), hello);
        let probe = FacilityProbe::start(&id, opts, collector)?;
        if !probe.registered(FACILITY_REGISTER).await {
            let _ = probe.shutdown().await;
            anyhow::bail!(
                "the facility collector did not register within {} s",
                FACILITY_REGISTER.as_secs()
            );
        }
        self.facility = Some(probe);
        Ok(())
    }

    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// Stops the facility collector and every probe, then the coordinator.
    pub async fn stop(self) -> anyhow::Result<()> {
        if let Some(f) = self.facility {
            f.shutdown().await?;
        }
        let stops: Vec<_> = self
            .probes
            .into_iter()
            .map(|p| tokio::spawn(p.shutdown()))
            .collect();
        for stop in stops {
            stop.await
                .context("stopping a probe")?
                .context("stopping a probe")?;
        }
        self.server
            .shutdown()
            .await
            .context("stopping the coordinator")
    }
}
