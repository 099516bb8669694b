//! Tests of the transport options on loopback: the acknowledgements a stream of telemetry-sized
//! messages draws.

use super::*;
use crate::pki::Ca;
use crate::tls::{client_config, server_config, Identity};
use hallmark_protocol::NodeId;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// Messages sent, and the pause between them (longer than the 25 ms acknowledgement delay, as a
/// probe's second between two telemetry batches).
const MESSAGES: usize = 20;
const PAUSE: Duration = Duration::from_millis(40);
/// Each message is three packets, like a telemetry batch at 8 devices × 10 Hz, sent a few
/// milliseconds apart: a busy coordinator takes a batch's packets in separate turns, and acknowledges
/// each second one at once unless asked to wait.
const PACKETS: usize = 3;
const PACKET_BYTES: usize = 1_000;
const PACKET_SPACING: Duration = Duration::from_millis(3);

/// ACK frames the server sent while a client sent [`MESSAGES`] messages on one stream, both
/// sides with `opts`; and how many datagrams it received.
async fn server_acks(opts: &TransportOptions) -> (u64, u64) {
    let ca = Ca::generate().unwrap();
    let issued = ca.issue_coordinator(&[]).unwrap();
    let server_id = Identity::from_pem(ca.cert_pem(), &issued.cert_pem, &issued.key_pem).unwrap();
    let node = ca.issue_node(&NodeId::new("probe-1").unwrap()).unwrap();
    let client_id = Identity::from_pem(ca.cert_pem(), &node.cert_pem, &node.key_pem).unwrap();
    let config = server_config(&server_id, opts).unwrap();
    let server = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let accepting = server.clone();
    let served = tokio::spawn(async move {
        let conn = accepting.accept().await.unwrap().await.unwrap();
        let mut recv = conn.accept_uni().await.unwrap();
        let data = recv
            .read_to_end(MESSAGES * PACKETS * PACKET_BYTES)
            .await
            .unwrap();
        assert_eq!(data.len(), MESSAGES * PACKETS * PACKET_BYTES);
        // Whatever acknowledgement is still due goes out within the 25 ms delay.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = conn.stats();
        conn.close(0u32.into(), b"done");
        (stats.frame_tx.acks, stats.udp_rx.datagrams)
    });
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_config(&client_id, opts).unwrap());
    let conn = client.connect(addr, "localhost").unwrap().await.unwrap();
    let mut send = conn.open_uni().await.unwrap();
    for i in 0..MESSAGES {
        for _ in 0..PACKETS {
            send.write_all(&[i as u8; PACKET_BYTES]).await.unwrap();
            tokio::time::sleep(PACKET_SPACING).await;
        }
        tokio::time::sleep(PAUSE).await;
    }
    send.finish().unwrap();
    let counts = timeout(WAIT, served).await.unwrap().unwrap();
    conn.closed().await;
    client.wait_idle().await;
    server.wait_idle().await;
    counts
}

#[tokio::test]
async fn a_message_of_a_few_packets_draws_one_acknowledgement() {
    let (acks, received) = server_acks(&TransportOptions::default()).await;
    // The handshake's few acknowledgements (6 here), then one per message.
    assert!(
        received >= (PACKETS * MESSAGES) as u64,
        "{received} datagrams"
    );
    assert!(
        acks < MESSAGES as u64 + 12,
        "{acks} ACK frames for {MESSAGES} messages of {PACKETS} packets"
    );
    // Without the request the peer acknowledges every second packet at once and the third one
    // 25 ms later: two per message (45 in all here).
    let old = TransportOptions {
        ack_eliciting_threshold: None,
        ..TransportOptions::default()
    };
    let (old_acks, _) = server_acks(&old).await;
    assert!(
        old_acks >= acks + MESSAGES as u64 / 2,
        "{old_acks} ACK frames without the request, {acks} with it"
    );
}
