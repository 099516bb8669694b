//! Admission control of handshakes over real loopback QUIC: more probes arrive at once than the
//! coordinator does handshakes; the excess is turned away before any cryptography ("coordinator
//! busy"), counted, retried by the probes after a jittered backoff, and every probe registers —
//! slowed, not timed out, and nothing crashes. The live metrics count the turned-away connections
//! by cause as the coordinator does.

use hallmark_coordinator::{ServerHandle, ServerOptions};
use hallmark_probe::{Backoff, ProbeHandle, ProbeOptions, ProbeStatus};
use hallmark_protocol::{Labels, NodeId};
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::{ConnectFailure, Identity};
use hallmark_workloads::sim::SimBackend;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

const PROBES: usize = 20;
const MAX_HANDSHAKES: usize = 2;
/// Bound of the whole storm: 20 probes, two handshakes at a time, backoff capped at 400 ms.
const STORM_LIMIT: Duration = Duration::from_secs(60);

fn node_identity(ca: &Ca, node: &str) -> Identity {
    let c = ca.issue_node(&NodeId::new(node).unwrap()).unwrap();
    Identity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap()
}

/// A loopback TCP address free a moment ago.
fn free_tcp() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The body of `GET /metrics` (HTTP/1.1, the connection closed after it), bounded in time.
fn scrape(addr: SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// Counts, from one probe's status, attempts that failed "busy" and attempts that timed out.
async fn watch_failures(
    mut status: tokio::sync::watch::Receiver<ProbeStatus>,
    busy: Arc<AtomicUsize>,
    timed_out: Arc<AtomicUsize>,
) {
    let (busy_text, timeout_text) = (
        ConnectFailure::Busy.to_string(),
        ConnectFailure::TimedOut.to_string(),
    );
    while status.changed().await.is_ok() {
        let s = status.borrow_and_update().clone();
        match s {
            ProbeStatus::Connecting {
                last_error: Some(e),
                ..
            } => {
                if e == busy_text {
                    busy.fetch_add(1, Ordering::SeqCst);
                } else if e == timeout_text {
                    timed_out.fetch_add(1, Ordering::SeqCst);
                }
            }
            ProbeStatus::Stopped => return,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_beyond_the_handshake_cap_is_slowed_and_every_probe_registers() {
    let ca = Ca::generate().unwrap();
    let c = ca.issue_coordinator(&[]).unwrap();
    let coordinator = Identity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap();
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap());
    opts.max_handshakes = MAX_HANDSHAKES;
    let metrics = free_tcp();
    opts.metrics = Some(metrics);
    let server = ServerHandle::start(&coordinator, opts).await.unwrap();
    let addr = server.local_addr();

    // Everything prepared first, so that the 20 probes start within a few milliseconds.
    let mut ready = Vec::with_capacity(PROBES);
    for i in 0..PROBES {
        let name = format!("storm-{i:02}");
        let node = NodeId::new(&name).unwrap();
        let backend = SimBackend::standalone(node.clone(), 2).unwrap();
        let labels = Labels {
            hall: "h".into(),
            row: "r".into(),
            rack: "rack1".into(),
        };
        let hello = hallmark_probe::hello(node, labels, &backend);
        let mut o = ProbeOptions::new(addr.to_string(), hello);
        o.backoff = Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(400),
        };
        o.jitter_seed = Some(i as u64);
        ready.push((node_identity(&ca, &name), o, backend));
    }
    let (busy, timed_out) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut probes: Vec<ProbeHandle> = Vec::with_capacity(PROBES);
    let mut watchers = Vec::with_capacity(PROBES);
    for (id, o, backend) in ready {
        let p = ProbeHandle::spawn(&id, o, Box::new(backend)).unwrap();
        watchers.push(tokio::spawn(watch_failures(
            p.watch(),
            busy.clone(),
            timed_out.clone(),
        )));
        probes.push(p);
    }

    let all = server
        .wait_for(STORM_LIMIT, |p| p.len() == PROBES)
        .await
        .expect("every probe registers within the storm's bound");
    assert_eq!(all.len(), PROBES);
    // The coordinator lists a probe once its Hello is taken; the probe, once the Welcome is read.
    for p in &probes {
        p.wait_for(Duration::from_secs(10), |s| {
            matches!(s, ProbeStatus::Registered { .. })
        })
        .await
        .unwrap_or_else(|| panic!("the probe reads its Welcome in time: {:?}", p.status()));
    }
    let refused = server.load_refusals();
    assert!(
        refused.handshakes_in_flight > 0,
        "20 probes at once against 2 handshakes: some are turned away ({refused:?})"
    );
    assert_eq!(refused.connections_open, 0, "{refused:?}");
    assert!(
        busy.load(Ordering::SeqCst) > 0,
        "the probes saw \"coordinator busy\" and retried"
    );
    assert!(
        busy.load(Ordering::SeqCst) as u64 <= refused.total(),
        "a probe counts no more busy attempts than the coordinator refused"
    );
    assert_eq!(timed_out.load(Ordering::SeqCst), 0, "slowed, not timed out");
    let text = scrape(metrics);
    let line = format!(
        "hallmark_connections_turned_away_total{{cause=\"handshakes_in_flight\"}} {}\n",
        refused.handshakes_in_flight
    );
    assert!(text.contains(&line), "{line} in {text}");

    for p in probes {
        timeout(Duration::from_secs(10), p.shutdown())
            .await
            .expect("the probe stops in time")
            .expect("the probe ends without an error");
    }
    for w in watchers {
        timeout(Duration::from_secs(5), w)
            .await
            .expect("the watcher ends with its probe")
            .unwrap();
    }
    timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("the coordinator stops in time")
        .unwrap();
}
