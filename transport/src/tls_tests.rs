//! Tests of the TLS configurations: mutual TLS on loopback, rejection both ways, no resumption,
//! the failure classifier and load errors.

use super::*;
use crate::pki::Ca;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);
type Outcome<T> = Result<T, quinn::ConnectionError>;

/// A node identity issued by `issuer` that trusts `trusted`.
fn node_identity(issuer: &Ca, trusted: &Ca, node: &str) -> Identity {
    let issued = issuer.issue_node(&NodeId::new(node).unwrap()).unwrap();
    Identity::from_pem(trusted.cert_pem(), &issued.cert_pem, &issued.key_pem).unwrap()
}

/// The coordinator's identity issued by `ca`.
fn coordinator_identity(ca: &Ca) -> Identity {
    let issued = ca.issue_coordinator(&[]).unwrap();
    Identity::from_pem(ca.cert_pem(), &issued.cert_pem, &issued.key_pem).unwrap()
}

/// A coordinator endpoint on loopback serving one connection: it echoes one stream reversed
/// and yields the peer's node id, or the handshake error.
fn serve_one(ca: &Ca) -> (quinn::Endpoint, tokio::task::JoinHandle<Outcome<NodeId>>) {
    let id = coordinator_identity(ca);
    let config = server_config(&id, &TransportOptions::default()).unwrap();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let accepting = endpoint.clone();
    let task = tokio::spawn(async move {
        let conn = accepting.accept().await.unwrap().await?;
        let node = peer_node_id(&conn).unwrap();
        let (mut send, mut recv) = conn.accept_bi().await?;
        let mut data = recv.read_to_end(1024).await.unwrap();
        data.reverse();
        send.write_all(&data).await.unwrap();
        send.finish().unwrap();
        conn.closed().await;
        Ok(node)
    });
    (endpoint, task)
}

/// Connects, sends `hello` on a bi stream and reads the answer; a failure at any step (the
/// rejection of a client certificate shows only on first use) yields the connection error.
async fn exchange(id: &Identity, addr: SocketAddr) -> Outcome<Vec<u8>> {
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_config(id, &TransportOptions::default()).unwrap());
    let connecting = client.connect(addr, "localhost").unwrap();
    let result = async {
        let conn = connecting.await?;
        let reply = async {
            let (mut send, mut recv) = conn.open_bi().await.ok()?;
            send.write_all(b"hello").await.ok()?;
            send.finish().ok()?;
            recv.read_to_end(1024).await.ok()
        };
        let reply = match reply.await {
            Some(reply) => Ok(reply),
            None => Err(conn.closed().await),
        };
        conn.close(0u32.into(), b"done");
        reply
    }
    .await;
    client.wait_idle().await;
    result
}

/// Runs a client with `id` against a coordinator of `ca`: (client result, server result).
async fn run(ca: &Ca, id: &Identity) -> (Outcome<Vec<u8>>, Outcome<NodeId>) {
    let (endpoint, served) = serve_one(ca);
    let addr = endpoint.local_addr().unwrap();
    let client = timeout(WAIT, exchange(id, addr)).await.unwrap();
    let server = timeout(WAIT, served).await.unwrap().unwrap();
    endpoint.close(0u32.into(), b"");
    timeout(WAIT, endpoint.wait_idle()).await.unwrap();
    (client, server)
}

#[tokio::test]
async fn mutual_tls_exchange_identifies_the_node() {
    let ca = Ca::generate().unwrap();
    let id = node_identity(&ca, &ca, "probe-7");
    assert_eq!(id.node_id().unwrap().as_str(), "probe-7");
    let (client, server) = run(&ca, &id).await;
    assert_eq!(client.unwrap(), b"olleh");
    assert_eq!(server.unwrap().as_str(), "probe-7");
}

#[tokio::test]
async fn certificate_from_another_ca_is_rejected() {
    let (ca, rogue) = (Ca::generate().unwrap(), Ca::generate().unwrap());
    // Trusts the right CA, but its own certificate comes from another one.
    let (client, server) = run(&ca, &node_identity(&rogue, &ca, "intruder")).await;
    assert!(server.is_err(), "server accepted a rogue probe: {server:?}");
    let failure = classify_connection_error(&client.unwrap_err());
    assert!(
        matches!(failure, ConnectFailure::CertificateRejected { .. }),
        "{failure:?}"
    );
    assert!(failure.is_fatal() && failure.to_string().contains("hallmark certs issue"));
}

#[tokio::test]
async fn server_from_another_ca_is_not_trusted() {
    let (ca, other) = (Ca::generate().unwrap(), Ca::generate().unwrap());
    // Its certificate is fine, but it trusts another CA than the coordinator's.
    let (client, server) = run(&ca, &node_identity(&ca, &other, "probe-1")).await;
    assert!(server.is_err());
    let failure = classify_connection_error(&client.unwrap_err());
    assert!(
        matches!(failure, ConnectFailure::ServerNotTrusted { .. }),
        "{failure:?}"
    );
    assert!(failure.is_fatal() && failure.to_string().contains("--ca"));
}

#[test]
fn classifier_maps_alerts_and_transient_errors() {
    let closed = |alert: u8| {
        quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: quinn::TransportErrorCode::crypto(alert),
            frame_type: None,
            reason: b"".as_slice().into(),
        })
    };
    for alert in [42, 48, 116] {
        let f = classify_connection_error(&closed(alert));
        assert!(
            matches!(f, ConnectFailure::CertificateRejected { .. }),
            "{f:?}"
        );
    }
    let f = classify_connection_error(&closed(120));
    assert!(matches!(f, ConnectFailure::ProtocolMismatch { .. }) && f.is_fatal());
    for e in [
        quinn::ConnectionError::TimedOut,
        quinn::ConnectionError::Reset,
    ] {
        assert!(classify_connection_error(&e).is_transient());
    }
    let bad_name = quinn::ConnectError::InvalidServerName("".into());
    assert!(classify_connect_error(&bad_name).is_fatal());
    let keep_alive = Duration::from_secs(10);
    let opts = TransportOptions {
        keep_alive,
        ..TransportOptions::default()
    };
    assert!(opts
        .validate()
        .unwrap_err()
        .to_string()
        .contains("keep-alive"));
    TransportOptions::default().validate().unwrap();
}

#[test]
fn the_server_never_resumes_a_session() {
    let id = coordinator_identity(&Ca::generate().unwrap());
    let tls = server_tls(&id, None).unwrap();
    assert!(!tls.session_storage.can_cache());
    assert_eq!(tls.send_tls13_tickets, 0);
    assert!(!tls.ticketer.enabled());
    assert_eq!(tls.max_early_data_size, 0);
}

#[test]
fn the_revoked_alert_says_revoked() {
    let close = quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
        error_code: quinn::TransportErrorCode::crypto(44),
        frame_type: None,
        reason: b"".as_slice().into(),
    });
    let f = classify_connection_error(&close);
    assert!(
        matches!(f, ConnectFailure::CertificateRevoked { .. }),
        "{f:?}"
    );
    assert!(f.is_fatal() && f.to_string().contains("revoked"), "{f}");

    // An open connection cut because a new list revokes its certificate: the same failure.
    let app = |code: u32, reason: &str| {
        quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: code.into(),
            reason: reason.as_bytes().to_vec().into(),
        })
    };
    let why = "certificate revoked: serial 3af2 is on revocation list number 4";
    let f = classify_connection_error(&app(REVOKED_CLOSE_CODE, why));
    assert_eq!(
        f,
        ConnectFailure::CertificateRevoked {
            detail: why.to_owned()
        }
    );
    assert!(f.is_fatal() && f.to_string().contains(why), "{f}");
    let f = classify_connection_error(&app(2, "protocol error"));
    assert!(
        matches!(f, ConnectFailure::Closed { .. }) && !f.is_fatal(),
        "{f:?}"
    );
}

#[test]
fn load_errors_name_the_file() {
    let dir = crate::pki::tests::temp_dir("tls");
    let written = crate::ca_dir::init_dir(&dir, &[]).unwrap();
    let (ca, cert, key) = (&written[0], &written[1], &written[2]);
    Identity::load(ca, cert, key).unwrap();
    let err = Identity::load(ca, &dir.join("nope.pem"), key).unwrap_err();
    assert!(matches!(err, TlsError::Missing { .. }) && err.to_string().contains("nope.pem"));
    let err = Identity::load(ca, key, key).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    assert!(err.to_string().contains("coordinator-key.pem"));
    let err = Identity::load(ca, cert, cert).unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
    let ca_key = dir.join("ca-private/ca-key.pem");
    assert_eq!(written[5], ca_key);
    let err = Identity::load(ca, cert, &ca_key).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_refusal_for_load_says_busy_and_is_retried() {
    let close = quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
        error_code: quinn::TransportErrorCode::CONNECTION_REFUSED,
        frame_type: None,
        reason: b"".as_slice().into(),
    });
    let f = classify_connection_error(&close);
    assert_eq!(f, ConnectFailure::Busy);
    assert!(!f.is_fatal(), "{f}");
    let text = f.to_string();
    assert!(text.contains("busy") && text.contains("retrying"), "{text}");
    assert!(
        !text.contains("--ca") && !text.contains("certificate"),
        "{text}"
    );
}
