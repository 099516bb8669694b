//! The latency mesh's loop: one thread, one UDP socket, initiator in its own half-slots and
//! responder all the time.
//!
//! Each turn of the loop checks `stop` and the deadlines, sends the next ping when this member is
//! initiating and nothing is outstanding, then blocks in `recv_from` for at most a few ms. A
//! received packet is either a ping for this rank or the pong of the outstanding ping; either must
//! come from the sending member's registered data-plane address and verify under the key this
//! member shares with it. A ping is answered at once, in place, to that registered address (never
//! to another: no reflection), and only if its sequence number is above every earlier ping's from
//! that member (a replayed ping gets no answer); a pong's round trip is recorded. All else is
//! counted and dropped. Nothing is allocated per packet: the buffers, the histogram and its
//! serializer live as long as the loop, and the read timeout is set only when it changes.
//!
//! **Late, reordered and duplicate pongs.** A ping whose pong has not come within
//! [`PONG_TIMEOUT`] stops holding up the next ping, but it is not lost yet: it is kept (with its own
//! send instant) among the pair's overdue pings until its half-slot ends. A pong that answers an
//! overdue ping — late, or reordered behind a later ping's — is received: its round trip, from the
//! send instant of *that* ping, goes into the histogram and it counts as answered. A ping is **lost**
//! when no pong for it came by the end of its half-slot (the quiet guard included), which is also
//! the latest instant a pong can be attributed to its pair. A second pong for an answered ping is a
//! duplicate: dropped and counted, never a second round trip. (So `sent − lost` is always the
//! number of round trips in the histogram.) At most [`MAX_OVERDUE`] pings are kept overdue per pair;
//! past that the oldest counts as lost at once.

use super::packet::{self, Header, Kind, Malformed, MAX_PACKET};
use super::pairs::{match_pong, PairRun, Pending, PongMatch};
use super::schedule::Half;
use crate::fabric::auth::PhaseMac;
use crate::fabric::PhaseWindow;
use hallmark_protocol::{FabricFault, FabricPhase, FabricReport, LatencyPair, NodeId};
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a ping waits for its pong (less at the end of a half-slot) before the next ping goes
/// out; its pong may still come until the half-slot's end (then it is late, not lost).
pub const PONG_TIMEOUT: Duration = Duration::from_millis(50);
/// Overdue pings (past [`PONG_TIMEOUT`], unanswered) kept per pair for a late pong to match.
pub const MAX_OVERDUE: usize = 256;
/// The longest single blocking read: `stop` and the deadlines are looked at least this often.
const POLL: Duration = Duration::from_millis(5);
/// Read timeouts shorter than [`POLL`] are rounded up to a multiple of this, so that the loop does
/// not set a new timeout on every turn while a deadline approaches.
const TIMEOUT_STEP_US: u64 = 250;
/// Wait after a failed send (or receive) before trying again.
const RETRY: Duration = Duration::from_millis(1);
/// Round trips above this are recorded as this (the histogram's top).
const MAX_RTT_NS: u64 = 60_000_000_000;
/// Significant digits of the round-trip histograms.
const SIGFIG: u8 = 3;
/// Receive buffer: larger than any valid packet, so an oversized one is seen as such.
const RECV_BUF: usize = 2048;

/// Packets dropped, by reason (for the debug line at the end).
#[derive(Debug, Default, Clone, Copy)]
struct Drops {
    length: u64,
    foreign: u64,
    other_phase: u64,
    misaddressed: u64,
    bad_tag: u64,
    /// A pong for no ping of the pair being measured (past its half-slot's end).
    stale_pong: u64,
    /// A second pong for an answered ping.
    duplicate_pong: u64,
    /// From an address other than the claimed sender's registered one.
    wrong_source: u64,
    /// A ping whose sequence number is not above the sender's last answered one.
    replayed: u64,
    icmp_errors: u64,
}

/// The mesh's state for one phase on one member.
pub struct Mesh<'a> {
    sock: &'a UdpSocket,
    phase: &'a FabricPhase,
    mac: &'a PhaseMac,
    rank: usize,
    rank16: u16,
    len: usize,
    ping: [u8; MAX_PACKET],
    rbuf: [u8; RECV_BUF],
    hist: Histogram<u64>,
    ser: V2DeflateSerializer,
    seq: u64,
    /// Per rank, the highest sequence number of an answered ping (the replay window).
    last_ping: Vec<u64>,
    pending: Option<Pending>,
    pair: Option<PairRun>,
    retry_at: Option<Instant>,
    timeout: Option<Duration>,
    drops: Drops,
    pong_errors: u64,
    first_pong_error: Option<(SocketAddr, io::Error)>,
    recv_errors: u64,
    first_recv_error: Option<io::Error>,
    report: FabricReport,
}

impl<'a> Mesh<'a> {
    /// Prepares the loop; the error is a fault message.
    pub fn new(
        sock: &'a UdpSocket,
        rank: usize,
        phase: &'a FabricPhase,
        mac: &'a PhaseMac,
        len: usize,
    ) -> Result<Mesh<'a>, String> {
        let rank16 = u16::try_from(rank)
            .map_err(|_| format!("latency mesh: rank {rank} does not fit a test packet"))?;
        let hist = Histogram::new_with_bounds(1, MAX_RTT_NS, SIGFIG)
            .map_err(|e| format!("latency mesh: cannot create a round-trip histogram: {e:?}"))?;
        sock.set_nonblocking(false).map_err(|e| {
            format!("latency mesh: cannot make the data plane's UDP socket blocking: {e}")
        })?;
        Ok(Mesh {
            sock,
            phase,
            mac,
            rank,
            rank16,
            len: len.clamp(packet::MIN_PACKET, MAX_PACKET),
            ping: [0; MAX_PACKET],
            rbuf: [0; RECV_BUF],
            hist,
            ser: V2DeflateSerializer::new(),
            seq: 0,
            last_ping: vec![0; phase.members.len()],
            pending: None,
            pair: None,
            retry_at: None,
            timeout: None,
            drops: Drops::default(),
            pong_errors: 0,
            first_pong_error: None,
            recv_errors: 0,
            first_recv_error: None,
            report: FabricReport::default(),
        })
    }

    /// Runs until the window's end or `stop`; `halves` are this member's initiating half-slots.
    pub fn run(
        &mut self,
        halves: &[Half],
        window: &PhaseWindow,
        stop: &AtomicBool,
    ) -> FabricReport {
        let mut cur = 0;
        let mut stopped = false;
        loop {
            let now = Instant::now();
            if stop.load(Ordering::Relaxed) {
                stopped = true;
                break;
            }
            if now >= window.end {
                break;
            }
            if let Some(p) = self.pending {
                if now >= p.deadline {
                    self.pending = None;
                    if let Some(pr) = self.pair.as_mut() {
                        pr.timed_out(p);
                    }
                }
            }
            if self.pending.is_none() {
                while let Some(h) = halves.get(cur) {
                    if now < h.end {
                        break;
                    }
                    self.finish(h);
                    cur += 1;
                }
            }
            let half = halves.get(cur);
            if let Some(h) = half {
                let may_send = self.pending.is_none()
                    && now >= h.start
                    && now < h.send_end
                    && self.retry_at.is_none_or(|t| now >= t);
                if may_send {
                    self.send_ping(h);
                }
            }
            let wake = self.next_wake(half, window.end);
            if !self.receive(wake) {
                break;
            }
        }
        if let Some(p) = self.pending.take() {
            if let Some(pr) = self.pair.as_mut() {
                if stopped {
                    // Cut short by the stop within its timeout, not lost: as if never sent.
                    pr.sent = pr.sent.saturating_sub(1);
                } else {
                    pr.timed_out(p);
                }
            }
        }
        for h in halves.iter().skip(cur) {
            if stopped && self.pair.as_ref().is_none_or(|p| p.peer != h.peer) {
                break;
            }
            self.finish(h);
        }
        if let Err(e) = self.sock.set_read_timeout(None) {
            self.fault(
                None,
                format!("latency mesh: cannot clear the UDP read timeout: {e}"),
            );
        }
        self.end_faults();
        self.log_drops();
        std::mem::take(&mut self.report)
    }

    fn node(&self, rank: usize) -> Option<&'a NodeId> {
        let phase = self.phase;
        phase.members.get(rank).map(|m| &m.node_id)
    }

    fn fault(&mut self, peer: Option<NodeId>, message: String) {
        self.report.faults.push(FabricFault { peer, message });
    }

    /// Sends the next ping of half-slot `h`.
    fn send_ping(&mut self, h: &Half) {
        let Some(member) = self.phase.members.get(h.peer) else {
            return;
        };
        let Ok(dst) = u16::try_from(h.peer) else {
            return;
        };
        let pr = self.pair.get_or_insert(PairRun::new(h.peer, self.seq + 1));
        self.seq += 1;
        let header = Header {
            kind: Kind::Ping,
            src: self.rank16,
            dst,
            phase_id: self.mac.phase_id(),
            seq: self.seq,
        };
        let Some(pkt) = self.ping.get_mut(..self.len) else {
            return;
        };
        if !(packet::write_header(pkt, &header) && packet::seal(self.mac, h.peer, pkt)) {
            return;
        }
        let sent_at = Instant::now();
        match self.sock.send_to(pkt, member.addr) {
            Ok(_) => {
                pr.sent += 1;
                self.retry_at = None;
                self.pending = Some(Pending {
                    seq: self.seq,
                    sent_at,
                    deadline: (sent_at + PONG_TIMEOUT).min(h.end),
                });
            }
            Err(e) => {
                pr.send_errors += 1;
                pr.first_send_error.get_or_insert(e);
                self.retry_at = Some(sent_at + RETRY);
            }
        }
    }

    /// When the loop must look again if no packet comes.
    fn next_wake(&self, half: Option<&Half>, end: Instant) -> Instant {
        let at = match (self.pending, half) {
            (Some(p), _) => p.deadline,
            (None, Some(h)) => {
                let now = Instant::now();
                if now < h.start {
                    h.start
                } else if now < h.send_end {
                    self.retry_at.unwrap_or(now)
                } else {
                    h.end
                }
            }
            (None, None) => end,
        };
        at.min(end)
    }

    /// Waits for one packet until `wake` at the latest (give or take a few ms) and handles it.
    /// False when the socket cannot be used any more.
    fn receive(&mut self, wake: Instant) -> bool {
        let timeout = pick_timeout(wake.saturating_duration_since(Instant::now()));
        if self.timeout != Some(timeout) {
            if let Err(e) = self.sock.set_read_timeout(Some(timeout)) {
                self.fault(
                    None,
                    format!(
                        "latency mesh: cannot set a read timeout on the data plane's UDP socket \
                         ({e}); the mesh ended early"
                    ),
                );
                return false;
            }
            self.timeout = Some(timeout);
        }
        match self.sock.recv_from(&mut self.rbuf) {
            Ok((len, from)) => {
                let received_at = Instant::now();
                self.on_packet(len, from, received_at);
            }
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted => {}
                // An ICMP error for an earlier datagram (some systems report them on recv).
                ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => {
                    self.drops.icmp_errors += 1;
                }
                _ => {
                    self.recv_errors += 1;
                    self.first_recv_error.get_or_insert(e);
                    std::thread::sleep(RETRY);
                }
            },
        }
        true
    }

    fn on_packet(&mut self, len: usize, from: SocketAddr, received_at: Instant) {
        let Some(pkt) = self.rbuf.get_mut(..len) else {
            self.drops.length += 1;
            return;
        };
        let h = match packet::parse_header(pkt) {
            Ok(h) => h,
            Err(Malformed::Length) => {
                self.drops.length += 1;
                return;
            }
            Err(Malformed::Foreign) => {
                self.drops.foreign += 1;
                return;
            }
        };
        if h.phase_id != self.mac.phase_id() {
            self.drops.other_phase += 1;
            return;
        }
        let src = usize::from(h.src);
        let Some(registered) = self.phase.members.get(src).map(|m| m.addr) else {
            self.drops.misaddressed += 1;
            return;
        };
        if h.dst != self.rank16 || src == self.rank {
            self.drops.misaddressed += 1;
            return;
        }
        if !same_addr(from, registered) {
            self.drops.wrong_source += 1;
            return;
        }
        match h.kind {
            Kind::Pong => {
                let sent_at =
                    match match_pong(self.pair.as_ref(), self.pending, self.seq, src, h.seq) {
                        PongMatch::Answer(at) => at,
                        PongMatch::Duplicate => {
                            self.drops.duplicate_pong += 1;
                            return;
                        }
                        PongMatch::Stale => {
                            self.drops.stale_pong += 1;
                            return;
                        }
                    };
                if !packet::verify(self.mac, src, pkt) {
                    self.drops.bad_tag += 1;
                    return;
                }
                // Verified: now take the ping out of what is waiting.
                let Some(pr) = self.pair.as_mut() else {
                    return;
                };
                if self.pending.is_some_and(|p| p.seq == h.seq) {
                    self.pending = None;
                } else if pr.answer_overdue(h.seq).is_some() {
                    pr.late += 1;
                }
                pr.pongs += 1;
                let rtt = received_at.saturating_duration_since(sent_at);
                self.hist
                    .saturating_record(u64::try_from(rtt.as_nanos()).unwrap_or(MAX_RTT_NS));
            }
            Kind::Ping => {
                if !packet::verify(self.mac, src, pkt) {
                    self.drops.bad_tag += 1;
                    return;
                }
                // Checked after the tag, so that forged pings cannot move the window.
                let Some(last) = self.last_ping.get_mut(src) else {
                    return;
                };
                if h.seq <= *last {
                    self.drops.replayed += 1;
                    return;
                }
                *last = h.seq;
                if !packet::ping_to_pong(self.mac, pkt, &h) {
                    return;
                }
                if let Err(e) = self.sock.send_to(pkt, registered) {
                    self.pong_errors += 1;
                    self.first_pong_error.get_or_insert((registered, e));
                }
            }
        }
    }

    /// Closes half-slot `h`: its pair goes into the report, with faults if it got no answer. Pings
    /// still overdue now are lost.
    fn finish(&mut self, h: &Half) {
        let pr = match self.pair.take() {
            Some(pr) if pr.peer == h.peer => pr,
            _ => PairRun::new(h.peer, self.seq + 1),
        };
        self.retry_at = None;
        let phase = self.phase;
        let (Some(me), Some(peer)) = (self.node(self.rank), phase.members.get(h.peer)) else {
            return;
        };
        let mut bytes = Vec::new();
        if let Err(e) = self.ser.serialize(&self.hist, &mut bytes) {
            bytes.clear();
            self.fault(
                Some(peer.node_id.clone()),
                format!(
                    "latency: cannot encode the round-trip histogram of {me} → {}: {e}; this is a \
                     bug in hallmark",
                    peer.node_id
                ),
            );
        }
        self.hist.reset();
        let (p, addr) = (&peer.node_id, peer.addr);
        if pr.sent > 0 && pr.pongs == 0 {
            self.fault(
                Some(p.clone()),
                format!(
                    "latency: {p} ({addr}) answered none of the {} pings {me} sent it in its \
                     half-slot; check that {p}'s probe is running and that UDP port {} on {} is \
                     reachable from {me} (firewall, routing, the data-plane address the probe \
                     announced). Answers that fail authentication (another phase's key) or come \
                     from another address than {addr} (a NAT or relay between the nodes) count as \
                     none",
                    pr.sent,
                    addr.port(),
                    addr.ip()
                ),
            );
        }
        if let Some(e) = &pr.first_send_error {
            let local = self
                .sock
                .local_addr()
                .map_or_else(|_| "unknown".to_string(), |a| a.to_string());
            self.fault(
                Some(p.clone()),
                format!(
                    "latency: {} pings from {me} to {p} ({addr}) could not be sent ({e}); check this \
                     node's route to {addr} and that its address family matches the data plane's \
                     socket ({local})",
                    pr.send_errors
                ),
            );
        }
        if pr.sent == 0 && pr.send_errors == 0 {
            self.fault(
                Some(p.clone()),
                format!(
                    "latency: {me} sent no ping to {p}: its half-slot had passed when this probe's \
                     mesh loop reached it (the phase started late on {me}, or the probe was \
                     starved of CPU)"
                ),
            );
        }
        if pr.late > 0 {
            tracing::debug!(
                phase = self.mac.phase_id(),
                "latency {me} → {p}: {} of {} pongs came after the {} ms timeout (received, with \
                 their own round trips)",
                pr.late,
                pr.pongs,
                PONG_TIMEOUT.as_millis()
            );
        }
        self.report.latency.push(LatencyPair {
            src: me.clone(),
            dst: p.clone(),
            sent: pr.sent,
            lost: pr.unanswered(),
            rtt_ns_hist: bytes,
        });
    }

    /// Faults for socket errors outside any one pair.
    fn end_faults(&mut self) {
        let me = self
            .node(self.rank)
            .map_or_else(|| format!("rank {}", self.rank), NodeId::to_string);
        let local = self
            .sock
            .local_addr()
            .map_or_else(|_| "unknown".to_string(), |a| a.to_string());
        if let Some((to, e)) = self.first_pong_error.take() {
            let peer = self
                .phase
                .members
                .iter()
                .find(|m| m.addr == to)
                .map(|m| m.node_id.clone());
            let msg = format!(
                "latency: {} answers from {me} could not be sent (the first to {to}: {e}); check \
                 this node's route back to the pinging peers",
                self.pong_errors
            );
            self.fault(peer, msg);
        }
        if let Some(e) = self.first_recv_error.take() {
            let msg = format!(
                "latency: receiving on {me}'s data-plane UDP socket {local} failed {} times (the \
                 first: {e}); round trips of this phase may be missing or too long",
                self.recv_errors
            );
            self.fault(None, msg);
        }
    }

    /// The debug line with what was dropped, when anything was.
    fn log_drops(&self) {
        let d = self.drops;
        let total = d.length
            + d.foreign
            + d.other_phase
            + d.misaddressed
            + d.bad_tag
            + d.stale_pong
            + d.duplicate_pong
            + d.wrong_source
            + d.replayed
            + d.icmp_errors;
        if total > 0 {
            tracing::debug!(
                phase = self.mac.phase_id(),
                rank = self.rank,
                bad_length = d.length,
                foreign = d.foreign,
                other_phase = d.other_phase,
                misaddressed = d.misaddressed,
                bad_tag = d.bad_tag,
                stale_pong = d.stale_pong,
                duplicate_pong = d.duplicate_pong,
                wrong_source = d.wrong_source,
                replayed = d.replayed,
                icmp_errors = d.icmp_errors,
                "latency mesh dropped {total} packets"
            );
        }
    }
}

/// Whether `a` and `b` are the same address, an IPv4-mapped IPv6 address counting as IPv4 (a
/// dual-stack socket reports IPv4 peers that way).
fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

/// The read timeout for `remaining`: [`POLL`] when at least that, else `remaining` rounded up to a
/// multiple of [`TIMEOUT_STEP_US`] (never zero, which the socket would refuse).
fn pick_timeout(remaining: Duration) -> Duration {
    if remaining >= POLL {
        return POLL;
    }
    let us = u64::try_from(remaining.as_micros()).unwrap_or(u64::MAX);
    let steps = us / TIMEOUT_STEP_US + 1;
    Duration::from_micros(steps.saturating_mul(TIMEOUT_STEP_US)).min(POLL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_the_same_address() {
        let v4: SocketAddr = "192.0.2.1:7000".parse().unwrap();
        assert!(same_addr("[::ffff:192.0.2.1]:7000".parse().unwrap(), v4));
        assert!(!same_addr("192.0.2.1:7001".parse().unwrap(), v4));
        assert!(!same_addr("192.0.2.2:7000".parse().unwrap(), v4));
    }

    #[test]
    fn read_timeouts_are_few_distinct_values_and_never_zero() {
        assert_eq!(pick_timeout(Duration::from_secs(3)), POLL);
        assert_eq!(pick_timeout(Duration::ZERO), Duration::from_micros(250));
        assert_eq!(
            pick_timeout(Duration::from_micros(260)),
            Duration::from_micros(500)
        );
        assert_eq!(pick_timeout(Duration::from_micros(4999)), POLL);
    }
}
