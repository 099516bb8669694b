//! Shared fixtures of the end-to-end tests: an ephemeral CA, a coordinator on loopback, probes.

#![allow(dead_code)]

use hallmark_coordinator::{ServerHandle, ServerOptions};
use hallmark_probe::{Backoff, ProbeHandle, ProbeOptions, ProbeStatus};
use hallmark_protocol::{Labels, NodeId};
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::Identity;
use hallmark_workloads::backend::Backend;
use hallmark_workloads::sim::SimBackend;
use std::net::SocketAddr;
use std::time::Duration;

/// Upper bound of every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestPki {
    pub ca: Ca,
    pub coordinator: Identity,
}

impl TestPki {
    pub fn new() -> Self {
        let ca = Ca::generate().unwrap();
        let c = ca.issue_coordinator(&[]).unwrap();
        let coordinator = Identity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap();
        TestPki { ca, coordinator }
    }

    /// A node identity issued by this CA, trusting this CA.
    pub fn node(&self, node: &str) -> Identity {
        let c = self.ca.issue_node(&NodeId::new(node).unwrap()).unwrap();
        Identity::from_pem(self.ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap()
    }

    pub async fn start(&self) -> ServerHandle {
        self.start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(&self, addr: SocketAddr) -> ServerHandle {
        ServerHandle::start(&self.coordinator, ServerOptions::new(addr))
            .await
            .unwrap()
    }
}

pub fn labels(rack: &str) -> Labels {
    Labels {
        hall: "hall-t".into(),
        row: "row-t".into(),
        rack: rack.into(),
    }
}

/// A standalone simulated node of 8 GPUs.
pub fn sim_backend(node: &str) -> Box<dyn Backend> {
    Box::new(SimBackend::standalone(NodeId::new(node).unwrap(), 8).unwrap())
}

/// Starts a probe on a standalone simulated node named like its Hello.
pub fn spawn(identity: &Identity, opts: ProbeOptions) -> ProbeHandle {
    let backend = sim_backend(opts.hello.node_id.as_str());
    ProbeHandle::spawn(identity, opts, backend).unwrap()
}

/// Probe options with a short backoff, so reconnection tests stay fast.
pub fn probe_opts(addr: SocketAddr, node: &str, rack: &str) -> ProbeOptions {
    let backend = sim_backend(node);
    let hello = hallmark_probe::hello(NodeId::new(node).unwrap(), labels(rack), backend.as_ref());
    let mut opts = ProbeOptions::new(addr.to_string(), hello);
    opts.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
    };
    opts.connect_timeout = Duration::from_secs(2);
    opts
}

pub async fn wait_registered(probe: &ProbeHandle) -> ProbeStatus {
    probe
        .wait_for(WAIT, |s| matches!(s, ProbeStatus::Registered { .. }))
        .await
        .expect("probe registers in time")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_udp_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}
pub mod netns;
pub mod prereq;
pub mod process;
pub mod simnet;
