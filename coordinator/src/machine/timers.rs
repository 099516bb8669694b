//! The connections' timers, indexed by instant: the Hello deadline of a connection that has not
//! said Hello yet, the next clock-sync step of a registered one. With 10 000 probes the machine
//! cannot scan every connection for the earliest timer on each input (the core loop asks for it
//! after every event), so each connection's next instant is kept here and updated whenever the
//! connection's state or clock changes ([`super::Coordinator::retime`]): the earliest is the first
//! entry, and the due ones are a range.

use super::{ConnState, Coordinator};
use crate::event::ConnId;
use hallmark_protocol::CoordinatorMessage;
use std::collections::{BTreeSet, HashMap};

impl Coordinator {
    /// The earliest instant at which [`Coordinator::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<i64> {
        let run = self.run.as_ref().and_then(|r| r.poll_timeout());
        self.timers.first().into_iter().chain(run).min()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: i64) {
        self.now = self.now.max(now);
        let mut published = Vec::new();
        for conn in self.timers.due(now) {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            match &mut c.state {
                ConnState::AwaitingHello { .. } => {
                    let secs = f64::from(self.config.hello_timeout_ms) / 1e3;
                    self.protocol_error(
                        conn,
                        format!("no Hello within {secs} s of opening the control stream"),
                    );
                }
                ConnState::Registered { node_id, clock } => {
                    // Bounded: each call either sends a ping or closes a burst, and the timer
                    // moves on.
                    for _ in 0..4 {
                        if clock.poll_timeout() > now {
                            break;
                        }
                        let (ping, estimate) = clock.handle_timeout(now);
                        if let Some(ping) = ping {
                            self.out
                                .transmits
                                .push_back((conn, CoordinatorMessage::ClockPing(ping)));
                        }
                        if let Some(e) = estimate {
                            published.push((conn, node_id.clone(), e));
                        }
                    }
                }
                ConnState::Closing => {}
            }
            self.retime(conn);
        }
        for (conn, node, e) in published {
            self.publish_clock(conn, node, e);
        }
        self.try_start_run(now);
        if let Some(run) = self.run.as_mut() {
            let conns = &self.conns;
            let last_sent = |c| conns.get(&c).and_then(|c: &super::Conn| c.last_sent);
            run.handle_timeout(now, last_sent, &mut self.out);
        }
    }

    /// Puts the timer of `conn` where its state and clock now say (none once it is closing or
    /// gone). Called after every change to either.
    pub(super) fn retime(&mut self, conn: ConnId) {
        let due = self.conns.get(&conn).and_then(|c| match &c.state {
            ConnState::AwaitingHello { deadline } => Some(*deadline),
            ConnState::Registered { clock, .. } => Some(clock.poll_timeout()),
            ConnState::Closing => None,
        });
        self.timers.set(conn, due);
    }
}

/// Each connection's next timer, and all of them ordered by instant.
#[derive(Debug, Default)]
pub(super) struct ConnTimers {
    by_due: BTreeSet<(i64, ConnId)>,
    of: HashMap<ConnId, i64>,
}

impl ConnTimers {
    /// Sets (`Some`) or clears (`None`) the timer of `conn`.
    pub(super) fn set(&mut self, conn: ConnId, due: Option<i64>) {
        let old = match due {
            Some(t) => self.of.insert(conn, t),
            None => self.of.remove(&conn),
        };
        if old == due {
            return;
        }
        if let Some(t) = old {
            self.by_due.remove(&(t, conn));
        }
        if let Some(t) = due {
            self.by_due.insert((t, conn));
        }
    }

    /// The earliest timer of any connection.
    pub(super) fn first(&self) -> Option<i64> {
        self.by_due.first().map(|(t, _)| *t)
    }

    /// The connections whose timer is due at `now`, earliest first.
    pub(super) fn due(&self, now: i64) -> Vec<ConnId> {
        self.by_due
            .range(..=(now, ConnId::MAX))
            .map(|(_, c)| *c)
            .collect()
    }

    /// Connections with a timer.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_and_the_due_follow_every_change() {
        let mut t = ConnTimers::default();
        assert_eq!(t.first(), None);
        t.set(1, Some(30));
        t.set(2, Some(10));
        t.set(3, Some(20));
        assert_eq!(t.first(), Some(10));
        assert_eq!(t.due(20), vec![2, 3]);
        t.set(2, Some(40));
        assert_eq!(t.first(), Some(20));
        assert_eq!(t.due(30), vec![3, 1]);
        t.set(3, None);
        t.set(3, None);
        assert_eq!(t.due(100), vec![1, 2]);
        t.set(1, Some(40));
        assert_eq!(t.due(40), vec![1, 2], "equal instants, by connection");
        assert_eq!(t.len(), 2);
        assert!(t.due(39).is_empty());
    }
}
