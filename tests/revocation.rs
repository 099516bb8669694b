//! Revocation end to end: a coordinator with `--crl` over real loopback QUIC, probes built with the
//! project's transport, certificates and revocation lists written by `certs init|issue|revoke`'s
//! library functions. A stolen node certificate must stop working once the node is revoked:
//! for the next connection without a restart, through a resumed TLS session too, for a connection
//! that is open (cut within a bound, its load stopped), and a list from another CA must not be
//! taken for ours.

mod common;

use common::process::tempdir;
use common::*;
use hallmark_coordinator::record::{Record, RecordError, Recorder, Written};
use hallmark_coordinator::{Event, ServerError, ServerHandle, ServerOptions};
use hallmark_probe::{ProbeError, ProbeHandle};
use hallmark_protocol::plan::parse_plan;
use hallmark_protocol::{CoordinatorMessage, DeviceInfo, DeviceResult, NodeId, ProbeMessage};
use hallmark_transport::ca_dir::{self, RevokeTarget};
use hallmark_transport::crl::CrlError;
use hallmark_transport::framed::{FramedRecv, FramedSend};
use hallmark_transport::revocation::REVOCATION_BOUND;
use hallmark_transport::tls::{self, ConnectFailure, Identity, TlsError, TransportOptions};
use hallmark_workloads::backend::{Backend, BackendError, Kernel, NodeReading, SensorStatus};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// A CA on disk as `certs init --out DIR` leaves it, with certificates for `nodes`.
fn cluster(tag: &str, nodes: &[&str]) -> PathBuf {
    let dir = tempdir(&format!("revoke-{tag}")).join("pki");
    ca_dir::init_dir(&dir, &[]).unwrap();
    for node in nodes {
        let id = NodeId::new(*node).unwrap();
        ca_dir::issue_node_files(&dir, &id, &dir.join("nodes")).unwrap();
    }
    dir
}

fn node(dir: &Path, node: &str) -> Identity {
    let cert = dir.join(format!("nodes/{node}.pem"));
    let key = dir.join(format!("nodes/{node}-key.pem"));
    Identity::load(&dir.join("ca.pem"), &cert, &key).unwrap()
}

fn coordinator(dir: &Path) -> Identity {
    let [ca, cert, key] = ["ca.pem", "coordinator.pem", "coordinator-key.pem"].map(|f| dir.join(f));
    Identity::load(&ca, &cert, &key).unwrap()
}

async fn start(dir: &Path, crl: PathBuf) -> Result<ServerHandle, ServerError> {
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap());
    opts.crl = Some(crl);
    ServerHandle::start(&coordinator(dir), opts).await
}

fn revoke(dir: &Path, node: &str) {
    let target = RevokeTarget::Node(NodeId::new(node).unwrap());
    let done = ca_dir::revoke(dir, &target, &[]).unwrap();
    assert_eq!(done.added.len(), 1);
}

/// Log lines written while the guard lives (this thread's subscriber; tokio tests run the
/// endpoint on the test's thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// Runs a probe with `id` until it gives up, expecting it to be refused as revoked.
async fn expect_revoked(id: &Identity, addr: std::net::SocketAddr, name: &str) {
    let probe = spawn(id, probe_opts(addr, name, "r"));
    let err = tokio::time::timeout(WAIT, probe.join())
        .await
        .expect("a revoked probe gives up")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::Connect(ConnectFailure::CertificateRevoked { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("revoked"), "{err}");
    assert_eq!(err.exit_code(), 2);
}

/// The tests of this file run one at a time: the log capture is a thread's default subscriber,
/// and tracing caches per call site whether anyone listens, so a coordinator started by another
/// test's thread at the same moment can leave the captured lines incomplete.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_revoked_probe_is_refused_at_its_next_connection_without_a_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = Logs::default();
    let _guard = logs.capture();
    let dir = cluster("e2e", &["n1", "n2", "n3"]);
    let server = start(&dir, dir.join("crl.pem")).await.unwrap();
    let addr = server.local_addr();
    let n1 = spawn(&node(&dir, "n1"), probe_opts(addr, "n1", "r"));
    let n2 = spawn(&node(&dir, "n2"), probe_opts(addr, "n2", "r"));
    wait_registered(&n1).await;
    wait_registered(&n2).await;
    n2.shutdown().await.unwrap();

    // n2's certificate is revoked while the coordinator runs; `certs revoke --ca DIR` rewrites
    // DIR/crl.pem, the file the coordinator was started with.
    revoke(&dir, "n2");
    expect_revoked(&node(&dir, "n2"), addr, "n2").await;
    let refused = logs.lines_with("refused a revoked certificate");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("node=n2"), "{}", refused[0]);
    // One line per refusal: the connection task does not add a second, misleading one.
    let lines = logs.lines_with(" WARN ");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(logs.lines_with("revocation list reloaded").len(), 1);

    // Everyone else is unaffected: n1 stays, n3 joins.
    let n3 = spawn(&node(&dir, "n3"), probe_opts(addr, "n3", "r"));
    wait_registered(&n3).await;
    let names: Vec<_> = server
        .probes()
        .iter()
        .map(|p| p.node_id.to_string())
        .collect();
    assert_eq!(names, ["n1", "n3"]);

    // A broken file does not lift the revocation: the previous list stays in force.
    std::fs::write(dir.join("crl.pem"), "not a list").unwrap();
    expect_revoked(&node(&dir, "n2"), addr, "n2").await;
    assert_eq!(
        logs.lines_with("keeping the previous revocation list")
            .len(),
        1
    );
    // Nor does a deleted one.
    std::fs::remove_file(dir.join("crl.pem")).unwrap();
    expect_revoked(&node(&dir, "n2"), addr, "n2").await;
    assert_eq!(logs.lines_with("cannot read the revocation list").len(), 1);
    // Nor does an older list put back over a newer one.
    std::fs::copy(dir.join("ca-private/crl.pem"), dir.join("crl.pem")).unwrap();
    let older = std::fs::read(dir.join("crl.pem")).unwrap();
    revoke(&dir, "n3");
    expect_revoked(&node(&dir, "n3"), addr, "n3").await;
    std::fs::write(dir.join("crl.pem"), older).unwrap();
    expect_revoked(&node(&dir, "n3"), addr, "n3").await;
    assert_eq!(logs.lines_with("replaced by an older one").len(), 1);
    assert_eq!(logs.lines_with("refused a revoked certificate").len(), 5);

    // n3 was connected when it was revoked: its connection was cut, and it gave up as revoked.
    let err = tokio::time::timeout(WAIT, n3.join())
        .await
        .expect("the connected n3 is cut")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::Connect(ConnectFailure::CertificateRevoked { .. })
        ),
        "{err}"
    );
    n1.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

/// When a backend was loaded and stopped.
#[derive(Default)]
struct Load {
    /// The last time a device was set to a level above 0.
    last_loaded: Option<Instant>,
    /// Every `stop_all`.
    stops: Vec<Instant>,
}

/// A simulated node whose load is watched.
struct Watched {
    inner: Box<dyn Backend>,
    load: Arc<Mutex<Load>>,
}

impl Backend for Watched {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn inventory(&self) -> &[DeviceInfo] {
        self.inner.inventory()
    }
    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError> {
        if level > 0.0 {
            self.load.lock().unwrap().last_loaded = Some(Instant::now());
        }
        self.inner.set_level(device, level)
    }
    fn sample(&mut self, now_ns: i64) -> Result<NodeReading, BackendError> {
        self.inner.sample(now_ns)
    }
    fn stop_all(&mut self) {
        self.load.lock().unwrap().stops.push(Instant::now());
        self.inner.stop_all()
    }
    fn sensors(&self) -> Vec<SensorStatus> {
        self.inner.sensors()
    }
    fn set_kernel(&mut self, kernel: Kernel) -> Result<(), BackendError> {
        self.inner.set_kernel(kernel)
    }
    fn take_results(&mut self, now_ns: i64) -> Vec<DeviceResult> {
        self.inner.take_results(now_ns)
    }
}

/// A store that keeps nothing and acknowledges every telemetry batch.
struct AckAll;

impl Recorder for AckAll {
    fn record(&mut self, records: Vec<Record>) -> Result<Written, RecordError> {
        let mut written = Written::default();
        for r in records {
            if let Record::Telemetry { node_id, batch, .. } = r {
                written.stored.push((node_id, batch.seq));
            }
        }
        Ok(written)
    }
}

const LONG_BURN: &str = "name = \"cut\"\nsample_hz = 10\n[expect]\nnodes = 3\ntimeout_s = 10\n\
                         [[phase]]\nname = \"burn\"\nworkload = \"burn\"\nduration_s = 60\n\
                         pattern = { kind = \"steady\", level = 0.5 }\n";

#[tokio::test]
async fn an_open_connection_is_cut_within_the_bound_once_its_certificate_is_revoked() {
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = Logs::default();
    let _guard = logs.capture();
    let dir = cluster("cut", &["n1", "n2", "n3"]);
    let server = start(&dir, dir.join("crl.pem")).await.unwrap();
    let addr = server.local_addr();
    let load = Arc::new(Mutex::new(Load::default()));
    let backend = Box::new(Watched {
        inner: sim_backend("n2"),
        load: load.clone(),
    });
    let n2 = ProbeHandle::spawn(&node(&dir, "n2"), probe_opts(addr, "n2", "r"), backend).unwrap();
    let n1 = spawn(&node(&dir, "n1"), probe_opts(addr, "n1", "r"));
    let n3 = spawn(&node(&dir, "n3"), probe_opts(addr, "n3", "r"));
    for p in [&n1, &n2, &n3] {
        wait_registered(p).await;
    }
    let mut events = server.subscribe();
    let plan = parse_plan(LONG_BURN, "cut.toml").unwrap();
    server
        .start_run("cut".into(), plan, Box::new(AckAll))
        .await
        .unwrap();
    let loading = Instant::now() + WAIT;
    while load.lock().unwrap().last_loaded.is_none() {
        assert!(Instant::now() < loading, "n2 is never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // `certs revoke` rewrites the coordinator's --crl file; n2 opens no new connection.
    let revoked_at = Instant::now();
    revoke(&dir, "n2");
    let left = server
        .wait_for(WAIT, |p| p.iter().all(|p| p.node_id.as_str() != "n2"))
        .await
        .expect("the revoked n2 is cut");
    let cut = revoked_at.elapsed();
    assert!(
        cut <= REVOCATION_BOUND,
        "n2 was cut {cut:?} after its revocation (bound {REVOCATION_BOUND:?})"
    );
    // The others stay connected.
    let names: Vec<_> = left.iter().map(|p| p.node_id.to_string()).collect();
    assert_eq!(names, ["n1", "n3"]);

    // The run takes n2 as lost, saying why.
    let reason = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(Event::ProbeLost {
                    node_id, reason, ..
                }) if node_id.as_str() == "n2" => return reason,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("the coordinator stopped"),
            }
        }
    })
    .await
    .expect("n2 is lost to the run");
    assert!(
        reason.contains("certificate revoked") && reason.contains("revocation list number 2"),
        "{reason}"
    );

    // The probe takes the close as a revocation, as at a handshake: it gives up with exit code 2
    // and has stopped its load at once.
    let err = tokio::time::timeout(WAIT, n2.join())
        .await
        .expect("n2 gives up")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::Connect(ConnectFailure::CertificateRevoked { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("revoked"), "{err}");
    assert_eq!(err.exit_code(), 2);
    {
        let load = load.lock().unwrap();
        let stopped = *load
            .stops
            .iter()
            .find(|t| **t >= revoked_at)
            .expect("n2 stops its load");
        assert!(
            stopped - revoked_at <= REVOCATION_BOUND,
            "n2 stopped its load {:?} after its revocation",
            stopped - revoked_at
        );
        assert!(load.last_loaded.is_some_and(|t| t < stopped));
    }

    // One line names the node, the serial and the list's number.
    let cuts = logs.lines_with("closed the connection of a revoked certificate");
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    assert!(
        cuts[0].contains("node=n2")
            && cuts[0].contains("serial=")
            && cuts[0].contains("crl_number=2"),
        "{}",
        cuts[0]
    );

    server.abort_run("test over");
    n1.shutdown().await.unwrap();
    n3.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

/// Connects with `endpoint`'s client configuration, says Hello as `name` and waits for the
/// Welcome; the error of the connection when it is refused.
async fn hello(
    endpoint: &quinn::Endpoint,
    addr: std::net::SocketAddr,
    name: &str,
) -> Result<(), quinn::ConnectionError> {
    let conn = endpoint.connect(addr, "localhost").unwrap().await?;
    let exchange = async {
        let (send, recv) = conn.open_bi().await.ok()?;
        let mut send = FramedSend::new(send);
        let mut recv = FramedRecv::new(recv);
        let hello = probe_opts(addr, name, "r").hello;
        send.send(&ProbeMessage::Hello(hello)).await.ok()?;
        match recv.recv::<CoordinatorMessage>().await.ok()?? {
            CoordinatorMessage::Welcome(_) => Some(()),
            _ => None,
        }
    };
    let result = match tokio::time::timeout(WAIT, exchange).await.unwrap() {
        Some(()) => Ok(()),
        None => Err(conn.closed().await),
    };
    conn.close(0u32.into(), b"bye");
    result
}

#[tokio::test]
async fn a_resumed_tls_session_cannot_skip_the_revocation_check() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = cluster("resume", &["n1"]);
    let server = start(&dir, dir.join("crl.pem")).await.unwrap();
    let addr = server.local_addr();
    // One client configuration, hence one TLS session cache, for both connections: had the
    // coordinator issued a ticket, the second handshake would resume without a certificate.
    let client = tls::client_config(&node(&dir, "n1"), &TransportOptions::default()).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client);
    hello(&endpoint, addr, "n1")
        .await
        .expect("n1 is welcome before it is revoked");
    server
        .wait_for(WAIT, |p| p.is_empty())
        .await
        .expect("n1 departs");

    revoke(&dir, "n1");
    let err = hello(&endpoint, addr, "n1")
        .await
        .expect_err("a revoked n1 is refused");
    let failure = tls::classify_connection_error(&err);
    assert!(
        matches!(failure, ConnectFailure::CertificateRevoked { .. }),
        "{failure:?}"
    );
    assert!(server.probes().is_empty());
    endpoint.close(0u32.into(), b"");
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn a_list_from_another_ca_is_refused_when_the_coordinator_starts() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = cluster("foreign", &[]);
    let other = cluster("other", &[]);
    let err = start(&dir, other.join("crl.pem")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::Tls(TlsError::Crl(CrlError::OtherCa { .. }))
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&other.join("crl.pem").display().to_string()),
        "{text}"
    );
    assert!(text.contains("another CA"), "{text}");
    let err = start(&dir, dir.join("missing.pem")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::Tls(TlsError::Crl(CrlError::Missing { .. }))
        ),
        "{err}"
    );
    for d in [dir, other] {
        let _ = std::fs::remove_dir_all(d.parent().unwrap());
    }
}
