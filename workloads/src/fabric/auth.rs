//! Authentication on the data plane: every UDP test packet and every TCP handshake of a fabric
//! phase carries an HMAC-SHA256 tag (truncated to [`TAG_LEN`] bytes) under a key derived from the
//! phase's [`SessionKey`] and phase id. Only the members the coordinator named for the phase hold
//! the session key (it travels over their mutually authenticated control connections), so a packet
//! or connection whose tag does not verify is from someone else, or from another phase, and is
//! dropped.

use hallmark_protocol::SessionKey;
use ring::hmac;

/// Bytes of a truncated tag (128 bits).
pub const TAG_LEN: usize = 16;

/// Label mixed into the derived key, so the session key is never used directly.
const LABEL: &[u8] = b"hallmark fabric v1";

/// The MAC of one fabric phase.
#[derive(Clone)]
pub struct PhaseMac {
    key: hmac::Key,
    phase_id: u32,
}

impl std::fmt::Debug for PhaseMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhaseMac {{ phase_id: {} }}", self.phase_id)
    }
}

impl PhaseMac {
    /// The phase key: HMAC(session_key, LABEL ‖ phase_id).
    pub fn new(session: &SessionKey, phase_id: u32) -> PhaseMac {
        let root = hmac::Key::new(hmac::HMAC_SHA256, &session.0);
        let mut ctx = hmac::Context::with_key(&root);
        ctx.update(LABEL);
        ctx.update(&phase_id.to_be_bytes());
        let derived = ctx.sign();
        PhaseMac {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            phase_id,
        }
    }

    pub fn phase_id(&self) -> u32 {
        self.phase_id
    }

    /// The tag of the concatenation of `parts`.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p);
        }
        let full = ctx.sign();
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        out
    }

    /// Whether `tag` is the tag of `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        if tag.len() != TAG_LEN {
            return false;
        }
        let expected = self.tag(parts);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_key_phase_and_every_byte() {
        let k = SessionKey([1; 32]);
        let m = PhaseMac::new(&k, 3);
        let t = m.tag(&[b"abc", b"def"]);
        assert!(m.verify(&[b"abcdef"], &t), "tag covers the concatenation");
        assert!(!m.verify(&[b"abcdeg"], &t));
        assert!(
            !PhaseMac::new(&k, 4).verify(&[b"abcdef"], &t),
            "another phase"
        );
        assert!(!PhaseMac::new(&SessionKey([2; 32]), 3).verify(&[b"abcdef"], &t));
        assert!(!m.verify(&[b"abcdef"], &t[..TAG_LEN - 1]), "short tag");
        let mut bad = t;
        bad[TAG_LEN - 1] ^= 1;
        assert!(!m.verify(&[b"abcdef"], &bad));
        assert_ne!(random_bytes::<16>().unwrap(), random_bytes::<16>().unwrap());
    }
}
