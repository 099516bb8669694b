//! Per-pair keys of a fabric phase. The coordinator draws one random [`PhaseKey`] per phase; it
//! never leaves the coordinator (it is neither serialised nor shown by `Debug`). From it the
//! coordinator derives the key of every unordered pair of members, and sends member `i` only the
//! n − 1 keys of the pairs `{i, j}`, `j ≠ i` ([`PhaseKey::keys_for`]).
//!
//! Why one key per unordered pair, not one per direction: both ends of a directed exchange (a
//! pings, b answers) must tag and verify its packets, so a and b would hold both directed keys
//! anyway. The direction is bound inside every authenticated message instead (sender and
//! addressee ranks in each UDP packet; the dialling and accepting ranks and a `server`/`client`
//! label in the TCP handshake), and a member drops what claims to come from itself.

use hallmark_protocol::{FabricMember, PairKey, PeerKey};
use std::fmt;

/// The coordinator's secret of one fabric phase (32 random bytes), from which every pair key is
/// derived.
#[derive(Clone, PartialEq, Eq)]
pub struct PhaseKey([u8; 32]);

impl fmt::Debug for PhaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhaseKey(..)")
    }
}

/// Domain-separation label of the pair-key derivation (bumped with the scheme).
pub const PAIR_KEY_LABEL: &[u8] = b"hallmark fabric pair key v3";

impl PhaseKey {
    /// The phase key made of `bytes` (the caller draws them from the operating system).
    pub fn from_bytes(bytes: [u8; 32]) -> PhaseKey {
        PhaseKey(bytes)
    }

    /// The key of the unordered pair of ranks `a` and `b` (`a ≠ b`) of `members` in phase
    /// `phase_id`: HMAC-SHA256(phase key, [`PAIR_KEY_LABEL`] ‖ 0 ‖ phase_id ‖ lo ‖ hi ‖
    /// len(id_lo) ‖ id_lo ‖ len(id_hi) ‖ id_hi), where lo < hi are the two ranks (u32, big-endian)
    /// and id the members' node ids (length as u16, big-endian). The same for (a, b) and (b, a);
    /// `None` when a rank is out of range or `a == b`.
    pub fn pair_key(
        &self,
        phase_id: u32,
        members: &[FabricMember],
        a: usize,
        b: usize,
    ) -> Option<PairKey> {
        derive(&self.root(), phase_id, members, a, b)
    }

    /// The HMAC key every pair key of the phase is derived with.
    fn root(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0)
    }

    /// The keys member `rank` receives: one per other member, in rank order (n − 1 keys; none
    /// when `rank` is not a member).
    pub fn keys_for(&self, phase_id: u32, members: &[FabricMember], rank: usize) -> Vec<PeerKey> {
        if rank >= members.len() {
            return Vec::new();
        }
        let root = self.root();
        (0..members.len())
            .filter(|&peer| peer != rank)
            .filter_map(|peer| {
                Some(PeerKey {
                    rank: u32::try_from(peer).ok()?,
                    key: derive(&root, phase_id, members, rank, peer)?,
                })
            })
            .collect()
    }
}

/// [`PhaseKey::pair_key`] with the phase's HMAC key made once.
fn derive(
    root: &ring::hmac::Key,
    phase_id: u32,
    members: &[FabricMember],
    a: usize,
    b: usize,
) -> Option<PairKey> {
    let (lo, hi) = (a.min(b), a.max(b));
    if lo == hi {
        return None;
    }
    let (m_lo, m_hi) = (members.get(lo)?, members.get(hi)?);
    let mut ctx = ring::hmac::Context::with_key(root);
    ctx.update(PAIR_KEY_LABEL);
    ctx.update(&[0]);
    ctx.update(&phase_id.to_be_bytes());
    for r in [lo, hi] {
        ctx.update(&u32::try_from(r).ok()?.to_be_bytes());
    }
    for m in [m_lo, m_hi] {
        let id = m.node_id.as_str().as_bytes();
        ctx.update(&u16::try_from(id.len()).ok()?.to_be_bytes());
        ctx.update(id);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    Some(PairKey(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::NodeId;
    use std::net::SocketAddr;

    #[test]
    fn the_phase_key_does_not_show_in_logs() {
        assert_eq!(
            format!("{:?}", PhaseKey::from_bytes([7; 32])),
            "PhaseKey(..)"
        );
    }

    fn members(n: usize) -> Vec<FabricMember> {
        (0..n)
            .map(|i| FabricMember {
                node_id: NodeId::new(format!("n{i}")).unwrap(),
                addr: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
            })
            .collect()
    }

    /// Member i holds exactly the keys of the pairs {i, j}, j ≠ i; both ends of a pair derive the
    /// same key, and no member holds the key of a pair it is not in.
    #[test]
    fn each_member_gets_exactly_its_pair_keys() {
        let k = PhaseKey::from_bytes([3; 32]);
        let m = members(5);
        let all: Vec<Vec<PeerKey>> = (0..5).map(|i| k.keys_for(9, &m, i)).collect();
        for (i, keys) in all.iter().enumerate() {
            let ranks: Vec<u32> = keys.iter().map(|p| p.rank).collect();
            let want: Vec<u32> = (0..5u32).filter(|&j| j as usize != i).collect();
            assert_eq!(ranks, want, "member {i} gets one key per other member");
            for p in keys {
                let j = p.rank as usize;
                let theirs = all[j].iter().find(|q| q.rank as usize == i).unwrap();
                assert_eq!(p.key, theirs.key, "both ends of {{{i}, {j}}} hold one key");
                assert_eq!(Some(p.key.clone()), k.pair_key(9, &m, j, i));
                // Nobody else's set holds this pair's key.
                for (x, other) in all.iter().enumerate() {
                    if x != i && x != j {
                        assert!(
                            other.iter().all(|q| q.key != p.key),
                            "{x} holds {{{i}, {j}}}"
                        );
                    }
                }
            }
        }
        let distinct: std::collections::BTreeSet<[u8; 32]> =
            all.iter().flatten().map(|p| p.key.0).collect();
        assert_eq!(
            distinct.len(),
            5 * 4 / 2,
            "one distinct key per unordered pair"
        );
        assert!(k.keys_for(9, &m, 5).is_empty(), "a non-member gets nothing");
        assert!(k.pair_key(9, &m, 2, 2).is_none() && k.pair_key(9, &m, 0, 5).is_none());
    }

    /// The same inputs give the same key; a change of phase key, phase id, rank or node id gives
    /// another, and the key is not the phase key itself.
    #[test]
    fn pair_keys_are_deterministic_and_domain_separated() {
        let k = PhaseKey::from_bytes([3; 32]);
        let m = members(3);
        let base = k.pair_key(1, &m, 0, 1).unwrap();
        assert_eq!(
            Some(base.clone()),
            PhaseKey::from_bytes([3; 32]).pair_key(1, &m, 0, 1)
        );
        assert_ne!(base.0, [3; 32]);
        assert_ne!(
            Some(base.clone()),
            PhaseKey::from_bytes([4; 32]).pair_key(1, &m, 0, 1)
        );
        assert_ne!(Some(base.clone()), k.pair_key(2, &m, 0, 1), "another phase");
        assert_ne!(Some(base.clone()), k.pair_key(1, &m, 0, 2), "another pair");
        let mut renamed = m.clone();
        renamed[1].node_id = NodeId::new("n9").unwrap();
        assert_ne!(
            Some(base.clone()),
            k.pair_key(1, &renamed, 0, 1),
            "another node"
        );
        // Length prefixes: ids "ab" + "c" and "a" + "bc" do not collide.
        let mut x = m.clone();
        let mut y = m.clone();
        (x[0].node_id, x[1].node_id) = (NodeId::new("ab").unwrap(), NodeId::new("c").unwrap());
        (y[0].node_id, y[1].node_id) = (NodeId::new("a").unwrap(), NodeId::new("bc").unwrap());
        assert_ne!(k.pair_key(1, &x, 0, 1), k.pair_key(1, &y, 0, 1));
        // Independently computed: HMAC-SHA256 over the documented input.
        let mut input = PAIR_KEY_LABEL.to_vec();
        input.push(0);
        input.extend_from_slice(&1u32.to_be_bytes());
        input.extend_from_slice(&0u32.to_be_bytes());
        input.extend_from_slice(&1u32.to_be_bytes());
        for id in ["n0", "n1"] {
            input.extend_from_slice(&(id.len() as u16).to_be_bytes());
            input.extend_from_slice(id.as_bytes());
        }
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[3; 32]),
            &input,
        );
        assert_eq!(&base.0[..], tag.as_ref());
    }
}
