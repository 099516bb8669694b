//! The latency mesh's UDP test packet: a fixed header, padding up to the requested size, and the
//! truncated HMAC tag over everything before it, under the key of the pair of members it is
//! between (the sender's and the addressee's).
//!
//! ```text
//! offset  size  field
//!      0     4  magic "HMLT"
//!      4     1  kind: 1 ping, 2 pong
//!      5     1  format version (2: per-pair keys)
//!      6     2  sender's rank (big-endian)
//!      8     2  addressee's rank
//!     10     2  reserved, zero
//!     12     4  phase id
//!     16     8  sequence number (a pong repeats its ping's)
//!     24     …  padding (zeros in a ping, echoed in its pong)
//! len−16    16  tag = PhaseMac::tag(peer, everything before it)
//! ```
//!
//! Packets are [`MIN_PACKET`]..=[`MAX_PACKET`] bytes: the requested `packet_bytes` is clamped into
//! that range (the header and tag need 40 bytes; 1472 is the UDP payload that fits a 1500-byte
//! Ethernet MTU over IPv4 without fragmentation).

use crate::fabric::auth::{PhaseMac, TAG_LEN};

/// First bytes of every packet.
pub const MAGIC: [u8; 4] = *b"HMLT";
/// The packet format version.
pub const VERSION: u8 = 2;
/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 24;
/// The smallest packet: header and tag.
pub const MIN_PACKET: usize = HEADER_LEN + TAG_LEN;
/// The largest packet: a 1500-byte MTU less the IPv4 and UDP headers.
pub const MAX_PACKET: usize = 1472;

/// The packet size used for a requested `packet_bytes`: clamped into `MIN_PACKET..=MAX_PACKET`.
pub fn packet_len(requested: u32) -> usize {
    usize::try_from(requested)
        .unwrap_or(MAX_PACKET)
        .clamp(MIN_PACKET, MAX_PACKET)
}

/// Whether a packet asks for an answer or is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ping,
    Pong,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Ping => 1,
            Kind::Pong => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Ping),
            2 => Some(Kind::Pong),
            _ => None,
        }
    }
}

/// The fixed header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub src: u16,
    pub dst: u16,
    pub phase_id: u32,
    pub seq: u64,
}

/// Why a received packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than [`MIN_PACKET`] or longer than [`MAX_PACKET`].
    Length,
    /// Not a latency packet of this format (magic, version or kind).
    Foreign,
}

/// Writes `h` into the first [`HEADER_LEN`] bytes of `buf`; false if `buf` is too short.
pub fn write_header(buf: &mut [u8], h: &Header) -> bool {
    let Some(head) = buf.first_chunk_mut::<HEADER_LEN>() else {
        return false;
    };
    head[0..4].copy_from_slice(&MAGIC);
    head[4] = h.kind.byte();
    head[5] = VERSION;
    head[6..8].copy_from_slice(&h.src.to_be_bytes());
    head[8..10].copy_from_slice(&h.dst.to_be_bytes());
    head[10..12].copy_from_slice(&[0, 0]);
    head[12..16].copy_from_slice(&h.phase_id.to_be_bytes());
    head[16..24].copy_from_slice(&h.seq.to_be_bytes());
    true
}

/// Reads the header of a received packet, checking its length, magic, version and kind (not its
/// tag: see [`verify`]).
pub fn parse_header(pkt: &[u8]) -> Result<Header, Malformed> {
    if pkt.len() < MIN_PACKET || pkt.len() > MAX_PACKET {
        return Err(Malformed::Length);
    }
    let Some(head) = pkt.first_chunk::<HEADER_LEN>() else {
        return Err(Malformed::Length);
    };
    if head[0..4] != MAGIC || head[5] != VERSION {
        return Err(Malformed::Foreign);
    }
    let kind = Kind::from_byte(head[4]).ok_or(Malformed::Foreign)?;
    let [_, _, _, _, _, _, s0, s1, d0, d1, _, _, p0, p1, p2, p3, q @ ..] = *head;
    Ok(Header {
        kind,
        src: u16::from_be_bytes([s0, s1]),
        dst: u16::from_be_bytes([d0, d1]),
        phase_id: u32::from_be_bytes([p0, p1, p2, p3]),
        seq: u64::from_be_bytes(q),
    })
}

/// Computes the tag over `pkt` less its last [`TAG_LEN`] bytes under the key shared with `peer`
/// and writes it there; false if `pkt` is shorter than [`MIN_PACKET`] or `peer` is no other member.
pub fn seal(mac: &PhaseMac, peer: usize, pkt: &mut [u8]) -> bool {
    let Some(body_len) = pkt.len().checked_sub(TAG_LEN).filter(|&b| b >= HEADER_LEN) else {
        return false;
    };
    let (body, tag) = pkt.split_at_mut(body_len);
    match mac.tag(peer, &[body]) {
        Some(t) => {
            tag.copy_from_slice(&t);
            true
        }
        None => false,
    }
}

/// Whether the last [`TAG_LEN`] bytes of `pkt` are the tag of the rest under the key shared
/// with `peer`.
pub fn verify(mac: &PhaseMac, peer: usize, pkt: &[u8]) -> bool {
    match pkt.len().checked_sub(TAG_LEN) {
        Some(body_len) if body_len >= HEADER_LEN => {
            let (body, tag) = pkt.split_at(body_len);
            mac.verify(peer, &[body], tag)
        }
        _ => false,
    }
}

/// Turns an authenticated ping (in place) into its pong: kind, sender and addressee swapped,
/// padding and sequence number kept, tag recomputed under the key shared with the pinger.
pub fn ping_to_pong(mac: &PhaseMac, pkt: &mut [u8], ping: &Header) -> bool {
    let pong = Header {
        kind: Kind::Pong,
        src: ping.dst,
        dst: ping.src,
        ..*ping
    };
    write_header(pkt, &pong) && seal(mac, usize::from(ping.src), pkt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::auth::random_mesh_keys;

    /// The MACs of ranks 0..4 of one mesh in phase `phase_id`.
    fn macs(phase_id: u32) -> Vec<PhaseMac> {
        let keys = random_mesh_keys(4).unwrap();
        (0..4)
            .map(|r| PhaseMac::from_keys(phase_id, r, 4, &keys[r]).unwrap())
            .collect()
    }

    #[test]
    fn packets_round_trip_and_any_change_breaks_the_tag() {
        let m = macs(7);
        let (mac, at1) = (&m[3], &m[1]);
        let mut buf = [0u8; MAX_PACKET];
        let len = packet_len(64);
        let h = Header {
            kind: Kind::Ping,
            src: 3,
            dst: 1,
            phase_id: 7,
            seq: 0x0102_0304_0506_0708,
        };
        let pkt = &mut buf[..len];
        assert!(write_header(pkt, &h) && seal(mac, 1, pkt));
        assert_eq!(parse_header(pkt), Ok(h));
        assert!(
            verify(at1, 3, pkt),
            "rank 1 verifies what rank 3 sealed for it"
        );
        assert!(!verify(at1, 2, pkt) && !verify(&m[2], 3, pkt) && !verify(&m[0], 3, pkt));
        assert!(!verify(&macs(7)[1], 3, pkt), "another mesh's key");
        for i in 0..len {
            let mut bad = pkt.to_vec();
            bad[i] ^= 0x40;
            assert!(!verify(at1, 3, &bad), "byte {i} is covered");
        }
        assert!(ping_to_pong(at1, pkt, &h));
        let pong = parse_header(pkt).unwrap();
        assert_eq!(
            (pong.kind, pong.src, pong.dst, pong.seq),
            (Kind::Pong, 1, 3, h.seq)
        );
        assert!(verify(mac, 1, pkt), "rank 3 verifies rank 1's pong");
    }

    #[test]
    fn sizes_are_clamped_and_garbage_is_refused() {
        assert_eq!(packet_len(0), MIN_PACKET);
        assert_eq!(packet_len(64), 64);
        assert_eq!(packet_len(u32::MAX), MAX_PACKET);
        assert_eq!(parse_header(&[0u8; 10]), Err(Malformed::Length));
        assert_eq!(parse_header(&[0u8; MAX_PACKET + 1]), Err(Malformed::Length));
        assert_eq!(parse_header(&[0u8; 64]), Err(Malformed::Foreign));
        let mut p = [0u8; 64];
        p[..4].copy_from_slice(&MAGIC);
        p[5] = VERSION;
        p[4] = 3;
        assert_eq!(parse_header(&p), Err(Malformed::Foreign), "unknown kind");
        let mac = &macs(1)[0];
        assert!(!verify(mac, 1, &[0u8; 20]));
        assert!(!seal(mac, 1, &mut [0u8; 20]));
        assert!(!seal(mac, 0, &mut [0u8; 64]), "no key with oneself");
    }
}
