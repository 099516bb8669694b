//! Admission of QUIC connections in the coordinator's shell: a global cap on connections (counted
//! from the moment one arrives, before its handshake) and a cap per node certificate (counted once
//! the certificate is known). A connection holds its places through [`Place`]s, given back when
//! they are dropped, so every way a connection task ends releases them.

use hallmark_protocol::NodeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_node: HashMap<NodeId, usize>,
}

/// The shared counters and their limits.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_node: usize,
    counts: Arc<Mutex<Counts>>,
}

/// One place held: in the global count, and in a node's count when `node` is set.
#[derive(Debug)]
pub(crate) struct Place {
    counts: Arc<Mutex<Counts>>,
    node: Option<NodeId>,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_node: usize) -> Self {
        Admission {
            max_total,
            max_per_node,
            counts: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection, or the number held when all `max_total` are taken.
    pub(crate) fn enter(&self) -> Result<Place, usize> {
        let mut c = self.lock();
        if c.total >= self.max_total {
            return Err(c.total);
        }
        c.total += 1;
        Ok(Place {
            counts: self.counts.clone(),
            node: None,
        })
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

    pub(crate) fn max_per_node(&self) -> usize {
        self.max_per_node
    }
}

impl Drop for Place {
    fn drop(&mut self) {
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
        let a = Admission::new(3, 2);
        let node = NodeId::new("n1").unwrap();
        let mut p1 = a.enter().unwrap();
        let mut p2 = a.enter().unwrap();
        let mut p3 = a.enter().unwrap();
        assert_eq!(a.enter().unwrap_err(), 3);
        a.enter_node(&mut p1, &node).unwrap();
        a.enter_node(&mut p2, &node).unwrap();
        assert_eq!(a.enter_node(&mut p3, &node).unwrap_err(), 2);
        drop(p1);
        a.enter_node(&mut p3, &node).unwrap();
        let p4 = a.enter().unwrap();
        drop((p2, p3, p4));
        assert_eq!(a.lock().total, 0);
        assert!(a.lock().per_node.is_empty());
    }
}
