//! Admission of QUIC connections in the coordinator's shell: a global cap on connections (counted
//! from the moment one arrives, before its handshake), a cap on handshakes in flight (from arrival
//! until the probe's control stream is open: what costs the coordinator cryptography and the
//! probe's timeouts), and a cap per node certificate (counted once the certificate is known). A
//! connection holds its places through [`Place`]s, given back when they are dropped, so every way
//! a connection task ends releases them. A connection over either global cap is turned away before
//! any cryptography (QUIC's CONNECTION_REFUSED, which the probe reads as "coordinator busy" and
//! retries after a jittered backoff); each such refusal is counted by cause ([`LoadRefusals`]).

use hallmark_protocol::NodeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    handshakes: usize,
    per_node: HashMap<NodeId, usize>,
    refused: LoadRefusals,
}

/// Connections turned away before their handshake since the coordinator started, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadRefusals {
    /// The most handshakes in flight were already being done (`ServerOptions::max_handshakes`).
    pub handshakes_in_flight: u64,
    /// The most connections were already open (`ServerOptions::max_connections`).
    pub connections_open: u64,
    /// Copies of a refused attempt's first packet, which its probe resent before the refusal
    /// reached it, refused again rather than admitted (the probe has gone to its backoff).
    pub resent_initials: u64,
}

impl LoadRefusals {
    /// Every refusal for load.
    pub fn total(&self) -> u64 {
        self.handshakes_in_flight + self.connections_open + self.resent_initials
    }
}

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// This many connections are open (the cap).
    Connections(usize),
    /// This many handshakes are in flight (the cap).
    Handshakes(usize),
}

/// The shared counters and their limits.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    max_total: usize,
    max_handshakes: usize,
    max_per_node: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One place held: in the global count, in the handshakes' count until
/// [`Place::handshake_done`], and in a node's count when `node` is set.
#[derive(Debug)]
pub(crate) struct Place {
    counts: Arc<Mutex<Counts>>,
    handshake: bool,
    node: Option<NodeId>,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_handshakes: usize, max_per_node: usize) -> Self {
        Admission {
            max_total,
            max_handshakes,
            max_per_node,
            counts: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection, its handshake counted in flight; or which cap is full (the
    /// refusal is counted).
    pub(crate) fn enter(&self) -> Result<Place, Full> {
        let mut c = self.lock();
        if c.total >= self.max_total {
            c.refused.connections_open += 1;
            return Err(Full::Connections(c.total));
        }
        if c.handshakes >= self.max_handshakes {
            c.refused.handshakes_in_flight += 1;
            return Err(Full::Handshakes(c.handshakes));
        }
        c.total += 1;
        c.handshakes += 1;
        Ok(Place {
            counts: self.counts.clone(),
            handshake: true,
            node: None,
        })
    }

    /// Counts a copy of a refused attempt, refused again.
    pub(crate) fn count_resent_initial(&self) {
        self.lock().refused.resent_initials += 1;
    }

    /// The refusals for load so far.
    pub(crate) fn refusals(&self) -> LoadRefusals {
        self.lock().refused
    }

    /// Counts `place` against `node`'s certificate, or says how many that certificate holds.
    pub(crate) fn enter_node(&self, place: &mut Place, node: &NodeId) -> Result<(), usize> {
        let mut c = self.lock();
        let n = c.per_node.entry(node.clone()).or_insert(0);
        if *n >= self.max_per_node {
            return Err(*n);
        }
        *n += 1;
        place.node = Some(node.clone());
        Ok(())
    }

    pub(crate) fn max_total(&self) -> usize {
        self.max_total
    }

    pub(crate) fn max_handshakes(&self) -> usize {
        self.max_handshakes
    }

    pub(crate) fn max_per_node(&self) -> usize {
        self.max_per_node
    }
}

impl Place {
    /// The handshake is over (the control stream is open, or the connection failed): its place
    /// among the handshakes in flight goes to the next connection.
    pub(crate) fn handshake_done(&mut self) {
        if std::mem::take(&mut self.handshake) {
            let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            c.handshakes = c.handshakes.saturating_sub(1);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.handshake_done();
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(node) = self.node.take() {
            if let Some(n) = c.per_node.get_mut(&node) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_node.remove(&node);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_and_given_back() {
        let a = Admission::new(3, 8, 2);
        let node = NodeId::new("n1").unwrap();
        let mut p1 = a.enter().unwrap();
        let mut p2 = a.enter().unwrap();
        let mut p3 = a.enter().unwrap();
        assert_eq!(a.enter().unwrap_err(), Full::Connections(3));
        a.enter_node(&mut p1, &node).unwrap();
        a.enter_node(&mut p2, &node).unwrap();
        assert_eq!(a.enter_node(&mut p3, &node).unwrap_err(), 2);
        drop(p1);
        a.enter_node(&mut p3, &node).unwrap();
        let p4 = a.enter().unwrap();
        drop((p2, p3, p4));
        assert_eq!(a.lock().total, 0);
        assert_eq!(a.lock().handshakes, 0);
        assert!(a.lock().per_node.is_empty());
        assert_eq!(
            a.refusals(),
            LoadRefusals {
                handshakes_in_flight: 0,
                connections_open: 1,
                resent_initials: 0,
            }
        );
    }

    #[test]
    fn handshakes_in_flight_are_capped_apart_from_open_connections() {
        let a = Admission::new(10, 2, 4);
        let mut p1 = a.enter().unwrap();
        let p2 = a.enter().unwrap();
        assert_eq!(a.enter().unwrap_err(), Full::Handshakes(2));
        assert_eq!(a.enter().unwrap_err(), Full::Handshakes(2));
        // Done twice counts once.
        p1.handshake_done();
        p1.handshake_done();
        let p3 = a.enter().unwrap();
        assert_eq!(a.enter().unwrap_err(), Full::Handshakes(2));
        // A connection that fails mid-handshake gives its handshake place back too.
        drop(p2);
        let p4 = a.enter().unwrap();
        assert_eq!(a.lock().total, 3);
        drop((p1, p3, p4));
        let (total, handshakes) = {
            let c = a.lock();
            (c.total, c.handshakes)
        };
        assert_eq!((total, handshakes), (0, 0));
        a.count_resent_initial();
        let r = a.refusals();
        assert_eq!(
            (
                r.handshakes_in_flight,
                r.connections_open,
                r.resent_initials,
                r.total()
            ),
            (3, 0, 1, 4)
        );
    }
}
