//! The probe's QUIC endpoint: one UDP socket for every connection attempt while it works (a
//! failed attempt leaves only its connection behind, draining on this endpoint), with a smaller
//! receive buffer where thousands of probes share a process.

use std::net::SocketAddr;
use std::time::Duration;

/// A client endpoint for reaching `to` (bound to the unspecified address of its family), accepting
/// UDP payloads up to `max_udp_payload` (quinn's default when `None`).
pub(super) fn client_endpoint(
    to: SocketAddr,
    max_udp_payload: Option<u16>,
) -> std::io::Result<quinn::Endpoint> {
    let bind = if to.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let Some(max) = max_udp_payload else {
        return quinn::Endpoint::client(bind);
    };
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(max)
        .map_err(|e| std::io::Error::other(format!("max UDP payload {max}: {e}")))?;
    let socket = std::net::UdpSocket::bind(bind)?;
    quinn::Endpoint::new(
        config,
        None,
        socket,
        std::sync::Arc::new(quinn::TokioRuntime),
    )
}

/// Whether `endpoint` can reach `addr` (an IPv4 socket cannot send to an IPv6 address).
pub(super) fn same_family(endpoint: &quinn::Endpoint, addr: SocketAddr) -> bool {
    endpoint
        .local_addr()
        .is_ok_and(|l| l.is_ipv6() == addr.is_ipv6())
}

/// Lets the endpoint's last connection send its close (at most 1 s) before the endpoint goes.
pub(super) async fn wait_closed(endpoint: quinn::Endpoint) {
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endpoint_takes_a_smaller_udp_payload_and_refuses_one_below_quic_minimum() {
        let to = SocketAddr::from(([127, 0, 0, 1], 4433));
        let e = client_endpoint(to, Some(1472)).unwrap();
        assert!(e.local_addr().unwrap().port() != 0);
        assert!(same_family(&e, to));
        assert!(!same_family(&e, SocketAddr::from(([0u16; 8], 4433))));
        let err = client_endpoint(to, Some(1000)).unwrap_err();
        assert!(err.to_string().contains("max UDP payload 1000"), "{err}");
        client_endpoint(to, None).unwrap();
    }
}
