//! End-to-end: a coordinator and probes over real loopback QUIC with mutual TLS.

mod common;

use common::*;
use hallmark_coordinator::Event;
use hallmark_probe::{ProbeError, ProbeStatus};
use hallmark_protocol::{RefusalReason, PROTOCOL_VERSION};
use hallmark_transport::framed::FramedSend;
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::{self, ConnectFailure, Identity, TransportOptions};
use std::time::Duration;

#[tokio::test]
async fn three_probes_register_with_labels_inventory_and_clocks() {
    let pki = TestPki::new();
    let server = pki.start().await;
    let addr = server.local_addr();
    let mut probes = Vec::new();
    for (node, rack) in [("n1", "rack-a"), ("n2", "rack-a"), ("n3", "rack-b")] {
        probes.push(spawn(&pki.node(node), probe_opts(addr, node, rack)));
    }
    let registered = server
        .wait_for(WAIT, |p| {
            p.len() == 3 && p.iter().all(|r| r.clock.is_some())
        })
        .await
        .expect("three probes register and get a clock estimate");
    let racks: Vec<_> = registered
        .iter()
        .map(|r| {
            (
                r.node_id.as_str(),
                r.labels.rack.as_str(),
                r.inventory.len(),
            )
        })
        .collect();
    assert_eq!(
        racks,
        [
            ("n1", "rack-a", 8),
            ("n2", "rack-a", 8),
            ("n3", "rack-b", 8)
        ]
    );
    for r in &registered {
        assert_eq!(r.labels.hall, "hall-t");
        assert_eq!(r.backend, "sim");
        let c = r.clock.unwrap();
        // Same host, same clock: the offset is within its own uncertainty of zero.
        assert!(c.offset_ns.abs() <= c.uncertainty_ns, "{c:?}");
        assert!(c.rtt_ns > 0 && c.rtt_ns < 1_000_000_000, "{c:?}");
    }
    // Probes learn their clock estimate too.
    for p in &probes {
        p.wait_for(WAIT, |s| {
            matches!(s, ProbeStatus::Registered { clock: Some(_), .. })
        })
        .await
        .expect("probe receives its clock estimate");
    }
    for p in probes {
        p.shutdown().await.unwrap();
    }
    server
        .wait_for(WAIT, |p| p.is_empty())
        .await
        .expect("departures are noticed");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_probe_with_a_certificate_from_another_ca_is_refused() {
    let pki = TestPki::new();
    let server = pki.start().await;
    let addr = server.local_addr();
    let good = spawn(&pki.node("n1"), probe_opts(addr, "n1", "r"));
    wait_registered(&good).await;

    // Issued by a stranger CA, but trusting the coordinator's CA.
    let other = Ca::generate().unwrap();
    let c = other.issue_node(&"n2".parse().unwrap()).unwrap();
    let id = Identity::from_pem(pki.ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap();
    let bad = spawn(&id, probe_opts(addr, "n2", "r"));
    let err = tokio::time::timeout(WAIT, bad.join())
        .await
        .expect("bad probe gives up")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::Connect(ConnectFailure::CertificateRejected { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("hallmark certs issue"), "{err}");
    assert_eq!(err.exit_code(), 2);
    // The coordinator keeps serving the good probe.
    assert_eq!(server.probes().len(), 1);
    assert!(matches!(good.status(), ProbeStatus::Registered { .. }));

    // A probe that does not trust the coordinator's CA gives up too.
    let c = pki.ca.issue_node(&"n3".parse().unwrap()).unwrap();
    let id = Identity::from_pem(other.cert_pem(), &c.cert_pem, &c.key_pem).unwrap();
    let untrusting = spawn(&id, probe_opts(addr, "n3", "r"));
    let err = tokio::time::timeout(WAIT, untrusting.join())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::Connect(ConnectFailure::ServerNotTrusted { .. })
        ),
        "{err}"
    );
    good.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

async fn refusal_of(
    pki: &TestPki,
    opts: hallmark_probe::ProbeOptions,
    cert_node: &str,
) -> RefusalReason {
    let probe = spawn(&pki.node(cert_node), opts);
    match tokio::time::timeout(WAIT, probe.join())
        .await
        .expect("refused probe stops")
    {
        Err(ProbeError::Refused(r)) => r.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn mismatched_duplicate_and_wrong_version_probes_are_refused() {
    let pki = TestPki::new();
    let server = pki.start().await;
    let addr = server.local_addr();
    let mut events = server.subscribe();
    let first = spawn(&pki.node("n1"), probe_opts(addr, "n1", "r"));
    wait_registered(&first).await;

    // Certificate for n2, Hello claims n9.
    let reason = refusal_of(&pki, probe_opts(addr, "n9", "r"), "n2").await;
    assert_eq!(
        reason,
        RefusalReason::NodeIdMismatch {
            claimed: "n9".into(),
            certificate: "n2".into()
        }
    );
    // A second live n1.
    let reason = refusal_of(&pki, probe_opts(addr, "n1", "r"), "n1").await;
    assert_eq!(
        reason,
        RefusalReason::DuplicateNode {
            node_id: "n1".into()
        }
    );
    // A protocol version the coordinator does not speak.
    let mut opts = probe_opts(addr, "n4", "r");
    opts.hello.protocol_version = PROTOCOL_VERSION + 1;
    let reason = refusal_of(&pki, opts, "n4").await;
    assert_eq!(
        reason,
        RefusalReason::ProtocolVersion {
            offered: PROTOCOL_VERSION + 1,
            supported: PROTOCOL_VERSION
        }
    );
    // Three refusal events, and the first probe is still registered.
    let mut refusals = 0;
    while let Ok(Ok(ev)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        refusals += usize::from(matches!(ev, Event::Refused { .. }));
    }
    assert_eq!(refusals, 3);
    let nodes: Vec<_> = server
        .probes()
        .iter()
        .map(|p| p.node_id.to_string())
        .collect();
    assert_eq!(nodes, ["n1"]);
    assert!(matches!(first.status(), ProbeStatus::Registered { .. }));
    first.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

/// Connects as a raw peer with a valid certificate and returns the connection and control stream.
async fn raw_peer(
    pki: &TestPki,
    addr: std::net::SocketAddr,
    node: &str,
) -> (quinn::Endpoint, quinn::Connection, FramedSend) {
    let client = tls::client_config(&pki.node(node), &TransportOptions::default()).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client);
    let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
    let (send, _recv) = conn.open_bi().await.unwrap();
    (endpoint, conn, FramedSend::new(send))
}

#[tokio::test]
async fn a_garbage_frame_closes_only_that_connection() {
    let pki = TestPki::new();
    let server = pki.start().await;
    let addr = server.local_addr();
    let good = spawn(&pki.node("n1"), probe_opts(addr, "n1", "r"));
    wait_registered(&good).await;

    // A well-framed but undecodable payload.
    let (ep, conn, mut send) = raw_peer(&pki, addr, "garbage").await;
    send.send_raw(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let closed = tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("connection is closed");
    match closed {
        quinn::ConnectionError::ApplicationClosed(c) => assert_eq!(c.error_code.into_inner(), 2),
        other => panic!("expected an application close, got {other:?}"),
    }
    ep.close(0u32.into(), b"");

    // A frame announcing 1 GiB.
    let (ep, conn, mut send) = raw_peer(&pki, addr, "huge").await;
    send.send_raw(&(1u32 << 30).to_be_bytes()).await.unwrap();
    let closed = tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("connection is closed");
    assert!(closed.to_string().contains("exceeds the limit"), "{closed}");
    ep.close(0u32.into(), b"");

    // The good probe never noticed.
    assert!(matches!(good.status(), ProbeStatus::Registered { .. }));
    let nodes: Vec<_> = server
        .probes()
        .iter()
        .map(|p| p.node_id.to_string())
        .collect();
    assert_eq!(nodes, ["n1"]);
    good.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_probe_started_before_the_coordinator_connects_once_it_is_up() {
    let pki = TestPki::new();
    let addr = free_udp_port();
    let probe = spawn(&pki.node("early"), probe_opts(addr, "early", "r"));
    // Let it fail a few attempts.
    probe
        .wait_for(
            WAIT,
            |s| matches!(s, ProbeStatus::Connecting { attempt, .. } if *attempt >= 3),
        )
        .await
        .expect("probe keeps retrying");
    let server = pki.start_on(addr).await;
    wait_registered(&probe).await;
    assert_eq!(server.probes().len(), 1);

    // The coordinator goes away and comes back: the probe registers again.
    server.shutdown().await.unwrap();
    probe
        .wait_for(WAIT, |s| matches!(s, ProbeStatus::Connecting { .. }))
        .await
        .expect("probe notices the coordinator is gone");
    let server = pki.start_on(addr).await;
    wait_registered(&probe).await;
    assert_eq!(server.probes().len(), 1);
    probe.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}
