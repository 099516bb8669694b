//! `hallmark demo`: a simulated hall in one process, end to end over real loopback QUIC.
//!
//! Makes an ephemeral CA and certificates, starts a coordinator on 127.0.0.1, starts one probe per
//! simulated node, waits until every probe is registered and has a clock estimate, prints who
//! registered, and shuts everything down. Nothing is written to disk.

use anyhow::{bail, Context};
use clap::Args;
use hallmark_coordinator::{ProbeRecord, ServerHandle, ServerOptions};
use hallmark_probe::{ProbeHandle, ProbeOptions};
use hallmark_protocol::{Labels, NodeId};
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::Identity;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Racks in the simulated hall.
    #[arg(long, default_value_t = 2)]
    racks: u16,
    /// Nodes per rack.
    #[arg(long, default_value_t = 3)]
    nodes_per_rack: u16,
    /// Simulated GPUs per node.
    #[arg(long, default_value_t = 8)]
    devices: u16,
    /// Longest wait for every probe to register and sync its clock, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

pub async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let nodes = usize::from(a.racks) * usize::from(a.nodes_per_rack);
    if nodes == 0 || nodes > 1000 {
        bail!("the demo hall needs 1 to 1000 nodes (--racks × --nodes-per-rack), not {nodes}");
    }
    let started = Instant::now();
    let ca = Ca::generate().context("making the demo CA")?;
    let coordinator_cert = ca
        .issue_coordinator(&["127.0.0.1".to_string()])
        .context("issuing the coordinator certificate")?;
    let coordinator_id = Identity::from_pem(
        ca.cert_pem(),
        &coordinator_cert.cert_pem,
        &coordinator_cert.key_pem,
    )?;
    let listen = "127.0.0.1:0".parse().context("loopback address")?;
    let server = ServerHandle::start(&coordinator_id, ServerOptions::new(listen))
        .await
        .context("starting the coordinator")?;
    let addr = server.local_addr();
    println!(
        "hallmark demo: simulated hall of {} racks × {} nodes × {} GPUs",
        a.racks, a.nodes_per_rack, a.devices
    );
    println!("coordinator listening on {addr} (QUIC, mutual TLS with an ephemeral CA)");

    let mut probes = Vec::with_capacity(nodes);
    for rack in 1..=a.racks {
        for n in 1..=a.nodes_per_rack {
            let node = NodeId::new(format!("r{rack:02}-n{n:02}"))?;
            let issued = ca
                .issue_node(&node)
                .with_context(|| format!("issuing a certificate for {node}"))?;
            let identity = Identity::from_pem(ca.cert_pem(), &issued.cert_pem, &issued.key_pem)?;
            let labels = Labels {
                hall: "demo-hall".into(),
                row: "row1".into(),
                rack: format!("rack{rack:02}"),
            };
            let hello = hallmark_probe::sim_hello(node, labels, a.devices);
            let opts = ProbeOptions::new(addr.to_string(), hello);
            probes.push(ProbeHandle::spawn(&identity, opts)?);
        }
    }

    let limit = Duration::from_secs(a.timeout);
    let registered = server
        .wait_for(limit, |p| {
            p.len() == nodes && p.iter().all(|r| r.clock.is_some())
        })
        .await;
    let stops: Vec<_> = probes
        .into_iter()
        .map(|p| tokio::spawn(p.shutdown()))
        .collect();
    for stop in stops {
        stop.await
            .context("stopping a probe")?
            .context("stopping a probe")?;
    }
    let shown = registered.clone().unwrap_or_else(|| server.probes());
    server
        .shutdown()
        .await
        .context("stopping the coordinator")?;
    print_table(&shown);
    match registered {
        Some(r) => {
            let devices: usize = r.iter().map(|p| p.inventory.len()).sum();
            println!(
                "{} probes registered with {devices} devices and synchronised clocks in {:.2} s",
                r.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => bail!(
            "only {} of {nodes} probes registered with a clock estimate within {limit:?}",
            shown.len()
        ),
    }
}

fn print_table(probes: &[ProbeRecord]) {
    println!(
        "{:<10} {:<10} {:<6} {:<8} {:>7}  {:<26} {:>12} {:>9} {:>9}",
        "node", "hall", "row", "rack", "devices", "model", "clock (ms)", "± (µs)", "rtt (µs)"
    );
    for p in probes {
        let model = p.inventory.first().map_or("-", |d| d.model.as_str());
        let (offset, unc, rtt) = match p.clock {
            Some(c) => (
                format!("{:+.3}", c.offset_ns as f64 / 1e6),
                format!("{:.1}", c.uncertainty_ns as f64 / 1e3),
                format!("{:.1}", c.rtt_ns as f64 / 1e3),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<10} {:<10} {:<6} {:<8} {:>7}  {:<26} {:>12} {:>9} {:>9}",
            p.node_id,
            p.labels.hall,
            p.labels.row,
            p.labels.rack,
            p.inventory.len(),
            model,
            offset,
            unc,
            rtt
        );
    }
}
