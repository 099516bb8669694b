//! The coordinator's address (HOST:PORT, resolved at each attempt) and the backoff's jitter.

use super::ProbeError;
use hallmark_transport::clock::WallClock;
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

/// A small xorshift generator for backoff jitter, seeded per node so that probes spread out.
pub(super) fn jitter_seed(node: &str) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ WallClock::new().now_ns() as u64;
    for b in node.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h | 1
}

pub(super) fn next_unit(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
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
        let mut s = jitter_seed("n1");
        for _ in 0..100 {
            let u = next_unit(&mut s);
            assert!((0.0..1.0).contains(&u));
        }
    }
}
