//! Authentication on the data plane: every UDP test packet and every TCP handshake of a fabric
//! phase carries an HMAC-SHA256 tag (truncated to [`TAG_LEN`] bytes) under the key of the **pair**
//! of members it is between. The coordinator derives one key per unordered pair of members from a
//! phase key that never leaves it, and sends each member only the keys of the n − 1 pairs it is in
//! ([`hallmark_protocol::FabricPhase::keys`]). So a packet or connection that verifies under the
//! key of {me, p} comes from p (or is mine, which the ranks inside every message rule out): a
//! third member cannot forge traffic between two others nor claim another's rank, and a stranger
//! or another phase cannot talk to a member at all.

use hallmark_protocol::{FabricMember, FabricParams, FabricPhase, PairKey, PeerKey};
use ring::hmac;

/// Bytes of a truncated tag (128 bits).
pub const TAG_LEN: usize = 16;

/// The MACs of one member in one fabric phase: one key per other member.
#[derive(Clone)]
pub struct PhaseMac {
    phase_id: u32,
    rank: usize,
    /// By rank; `None` at this member's own rank.
    keys: Vec<Option<hmac::Key>>,
}

impl std::fmt::Debug for PhaseMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PhaseMac {{ phase_id: {}, rank: {}, peers: {} }}",
            self.phase_id,
            self.rank,
            self.keys.iter().flatten().count()
        )
    }
}

impl PhaseMac {
    /// The MACs of member `rank` of `phase` from the keys its order carries. The error (a fault
    /// message) says what is wrong when the order does not hold exactly one key per other member.
    pub fn new(phase: &FabricPhase, rank: usize, phase_id: u32) -> Result<PhaseMac, String> {
        PhaseMac::from_keys(phase_id, rank, phase.members.len(), &phase.keys)
    }

    /// The MACs of member `rank` of `n` members from its `keys`.
    pub fn from_keys(
        phase_id: u32,
        rank: usize,
        n: usize,
        keys: &[PeerKey],
    ) -> Result<PhaseMac, String> {
        let bad = |what: String| {
            Err(format!(
                "the order of fabric phase {phase_id} {what}; the coordinator and this probe may \
                 run different hallmark releases"
            ))
        };
        if rank >= n {
            return bad(format!("does not count rank {rank} among its {n} members"));
        }
        let mut by_rank: Vec<Option<hmac::Key>> = (0..n).map(|_| None).collect();
        for k in keys {
            let r = usize::try_from(k.rank).unwrap_or(usize::MAX);
            match by_rank.get_mut(r) {
                _ if r == rank => {
                    return bad(format!("carries a key for this member's own rank {r}"))
                }
                None => return bad(format!("carries a key for rank {r} of {n} members")),
                Some(Some(_)) => return bad(format!("carries two keys for rank {r}")),
                Some(slot) => *slot = Some(hmac::Key::new(hmac::HMAC_SHA256, &k.key.0)),
            }
        }
        let missing: Vec<String> = (0..n)
            .filter(|&r| r != rank && by_rank[r].is_none())
            .map(|r| r.to_string())
            .collect();
        if !missing.is_empty() {
            return bad(format!("carries no key for rank(s) {}", missing.join(", ")));
        }
        Ok(PhaseMac {
            phase_id,
            rank,
            keys: by_rank,
        })
    }

    pub fn phase_id(&self) -> u32 {
        self.phase_id
    }

    /// This member's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The tag of the concatenation of `parts` under the key shared with `peer`; `None` when
    /// `peer` is not another member.
    pub fn tag(&self, peer: usize, parts: &[&[u8]]) -> Option<[u8; TAG_LEN]> {
        let key = self.keys.get(peer)?.as_ref()?;
        let mut ctx = hmac::Context::with_key(key);
        for p in parts {
            ctx.update(p);
        }
        let full = ctx.sign();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        Some(out)
    }

    /// Whether `tag` is the tag of `parts` under the key shared with `peer`, compared in constant
    /// time; false for a `peer` that is not another member.
    pub fn verify(&self, peer: usize, parts: &[&[u8]], tag: &[u8]) -> bool {
        if tag.len() != TAG_LEN {
            return false;
        }
        let Some(expected) = self.tag(peer, parts) else {
            return false;
        };
        expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// `N` random bytes from the operating system (nonces).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)?;
    Ok(b)
}

/// Keys for a mesh of `n` members run without a coordinator (benches and tests): one random key
/// per unordered pair, handed out as the coordinator does — element `i` holds member `i`'s n − 1
/// keys, in rank order.
pub fn random_mesh_keys(n: usize) -> Result<Vec<Vec<PeerKey>>, getrandom::Error> {
    let mut pair: Vec<Vec<Option<PairKey>>> = vec![vec![None; n]; n];
    for (i, j) in (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))) {
        let k = PairKey(random_bytes::<32>()?);
        pair[i][j] = Some(k.clone());
        pair[j][i] = Some(k);
    }
    Ok(pair
        .into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .filter_map(|(j, k)| {
                    Some(PeerKey {
                        rank: u32::try_from(j).ok()?,
                        key: k?,
                    })
                })
                .collect()
        })
        .collect())
}

/// Every member's order of a mesh of `members` run without a coordinator (benches and tests), by
/// rank: the members, `params`, and that member's keys from [`random_mesh_keys`].
pub fn random_mesh_orders(
    members: &[FabricMember],
    params: &FabricParams,
) -> Result<Vec<FabricPhase>, getrandom::Error> {
    Ok(random_mesh_keys(members.len())?
        .into_iter()
        .map(|keys| FabricPhase {
            keys,
            members: members.to_vec(),
            params: params.clone(),
            nccl: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_the_pair_key_and_every_byte() {
        let keys = random_mesh_keys(3).unwrap();
        let m0 = PhaseMac::from_keys(3, 0, 3, &keys[0]).unwrap();
        let m1 = PhaseMac::from_keys(3, 1, 3, &keys[1]).unwrap();
        let m2 = PhaseMac::from_keys(3, 2, 3, &keys[2]).unwrap();
        let t = m0.tag(1, &[b"abc", b"def"]).unwrap();
        assert!(m1.verify(0, &[b"abcdef"], &t), "the other end verifies");
        assert!(!m1.verify(0, &[b"abcdeg"], &t));
        assert!(!m1.verify(2, &[b"abcdef"], &t), "another pair's key");
        assert!(
            !m2.verify(0, &[b"abcdef"], &t) && !m2.verify(1, &[b"abcdef"], &t),
            "a third member cannot verify (nor forge) the pair's tags"
        );
        assert!(!m1.verify(0, &[b"abcdef"], &t[..TAG_LEN - 1]), "short tag");
        assert!(m0.tag(0, &[b"x"]).is_none() && m0.tag(3, &[b"x"]).is_none());
        assert!(!m0.verify(0, &[b"abcdef"], &t), "no key with oneself");
        let mut bad = t;
        bad[TAG_LEN - 1] ^= 1;
        assert!(!m1.verify(0, &[b"abcdef"], &bad));
        assert_ne!(random_bytes::<16>().unwrap(), random_bytes::<16>().unwrap());
        assert!(!format!("{m0:?}").contains('['), "no key bytes in logs");
    }

    #[test]
    fn an_order_must_hold_exactly_one_key_per_other_member() {
        let keys = random_mesh_keys(3).unwrap();
        assert!(PhaseMac::from_keys(1, 0, 3, &keys[0]).is_ok());
        let e = PhaseMac::from_keys(1, 0, 3, &keys[0][..1]).unwrap_err();
        assert!(e.contains("no key for rank(s) 2"), "{e}");
        let mut two = keys[0].clone();
        two.push(keys[0][0].clone());
        assert!(PhaseMac::from_keys(1, 0, 3, &two)
            .unwrap_err()
            .contains("two keys"));
        let e = PhaseMac::from_keys(1, 1, 3, &keys[0]).unwrap_err();
        assert!(e.contains("own rank 1"), "{e}");
        let e = PhaseMac::from_keys(1, 0, 2, &keys[0]).unwrap_err();
        assert!(e.contains("rank 2 of 2"), "{e}");
        assert!(PhaseMac::from_keys(1, 3, 3, &[]).is_err());
        assert_eq!(
            random_mesh_keys(4)
                .unwrap()
                .iter()
                .map(Vec::len)
                .sum::<usize>(),
            12
        );
    }
}
