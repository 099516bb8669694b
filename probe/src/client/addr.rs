//! The coordinator's address (HOST:PORT, resolved at each attempt).

use super::ProbeError;
use std::net::SocketAddr;

pub(super) fn split_host(addr: &str) -> (&str, &str) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => (addr, ""),
    }
}

pub(super) fn looks_like_host_port(addr: &str) -> bool {
    matches!(split_host(addr), (h, p) if !h.is_empty() && p.parse::<u16>().is_ok())
}

pub(super) async fn resolve(addr: &str) -> Result<SocketAddr, ProbeError> {
    let err = |detail: String| ProbeError::Resolve {
        addr: addr.to_string(),
        detail,
    };
    if !looks_like_host_port(addr) {
        return Err(err("expected HOST:PORT".into()));
    }
    let mut addrs = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| err(e.to_string()))?;
    addrs.next().ok_or_else(|| err("no address found".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert!(looks_like_host_port("127.0.0.1:4433"));
        assert!(looks_like_host_port("[::1]:4433"));
        assert!(looks_like_host_port("coordinator.example:1"));
        assert!(!looks_like_host_port("coordinator.example"));
        assert!(!looks_like_host_port(":4433"));
        assert_eq!(split_host("[::1]:4433").0, "::1");
    }
}
