//! A probe's first packet resent after the coordinator refused it for load (the probe's
//! retransmission timer fired before the refusal reached it) is refused again, never admitted
//! into a handshake that nobody answers; a new attempt from the same address is admitted. Real
//! loopback QUIC: real quinn clients' first packets, caught on a socket of the test and sent on to
//! the coordinator when the test says.

use hallmark_coordinator::{LoadRefusals, ServerHandle, ServerOptions};
use hallmark_protocol::NodeId;
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::{client_config, Identity, TransportOptions};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(400);

/// The first datagram a real probe client sends (its Initial, with a connection id it drew at
/// random for this attempt), caught instead of delivered.
async fn first_initial(ca: &Ca, node: &str) -> Vec<u8> {
    let c = ca.issue_node(&NodeId::new(node).unwrap()).unwrap();
    let id = Identity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap();
    let trap = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_config(&id, &TransportOptions::default()).unwrap());
    let connecting = client
        .connect(trap.local_addr().unwrap(), "localhost")
        .unwrap();
    let attempt = tokio::spawn(async move { timeout(WAIT, connecting).await });
    let mut buf = vec![0u8; 65_536];
    let (n, _) = timeout(WAIT, trap.recv_from(&mut buf))
        .await
        .expect("the client sends its Initial")
        .unwrap();
    attempt.abort();
    client.close(0u32.into(), b"");
    buf.truncate(n);
    buf
}

/// Sends `datagram` from `from` to the coordinator and waits for its first answer (a refusal or
/// the start of a handshake): by then the coordinator has counted what it did with it.
async fn send_and_hear(from: &UdpSocket, datagram: &[u8], to: SocketAddr) {
    from.send_to(datagram, to).await.unwrap();
    let mut buf = vec![0u8; 65_536];
    timeout(WAIT, from.recv_from(&mut buf))
        .await
        .expect("the coordinator answers")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_a_refused_initial_is_refused_again_and_a_new_attempt_is_admitted() {
    let ca = Ca::generate().unwrap();
    let c = ca.issue_coordinator(&[]).unwrap();
    let coordinator = Identity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap();
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap());
    opts.max_handshakes = 1;
    opts.handshake_timeout = HANDSHAKE_TIMEOUT;
    let server = ServerHandle::start(&coordinator, opts).await.unwrap();
    let to = server.local_addr();
    let (a, b) = (
        first_initial(&ca, "resend-a").await,
        first_initial(&ca, "resend-b").await,
    );
    let (pa, pb) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let refusals = |h, r| LoadRefusals {
        handshakes_in_flight: h,
        connections_open: 0,
        resent_initials: r,
    };
    // a takes the one handshake place and never answers: it holds it until the timeout.
    send_and_hear(&pa, &a, to).await;
    assert_eq!(server.load_refusals(), refusals(0, 0));
    // b arrives while the place is taken: refused for load.
    send_and_hear(&pb, &b, to).await;
    assert_eq!(server.load_refusals(), refusals(1, 0));
    // a's handshake times out and gives its place back (a wide margin for a loaded machine).
    tokio::time::sleep(HANDSHAKE_TIMEOUT * 5).await;
    // The copy of b's Initial finds the place free, and is refused again all the same: its
    // probe read the first refusal and is waiting out its backoff.
    send_and_hear(&pb, &b, to).await;
    assert_eq!(server.load_refusals(), refusals(1, 1));
    // b's next attempt, from the same address with a new connection id, is admitted.
    let b2 = first_initial(&ca, "resend-b").await;
    send_and_hear(&pb, &b2, to).await;
    assert_eq!(server.load_refusals(), refusals(1, 1));
    server.shutdown().await.unwrap();
}
