//! A simulated network and clock for driving the coordinator's and probes' sans-IO machines
//! deterministically: per-probe clock offsets, asymmetric jittery links that keep each direction in
//! order (like a QUIC stream), every message through the real codec, and a run store stand-in that
//! counts what it would store and acknowledges it.

use hallmark_coordinator::machine::{ConnId, Coordinator, CoordinatorConfig, Event};
use hallmark_probe::ProbeSession;
use hallmark_protocol::codec::{decode_frame, encode_frame, HEADER_LEN};
use hallmark_protocol::{CoordinatorMessage, Hello, ProbeMessage};
use hallmark_workloads::backend::Backend;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

pub const MS: i64 = 1_000_000;

/// A deterministic xorshift generator.
pub struct Rng(pub u64);
impl Rng {
    pub fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as i64
    }
}

pub struct SimProbe {
    pub conn: ConnId,
    pub session: ProbeSession,
    /// probe clock = coordinator clock + offset.
    pub offset: i64,
    pub out_base: i64,
    pub back_base: i64,
    last_out: i64,
    last_back: i64,
    /// The connection is closed: nothing more is delivered either way.
    pub closed: bool,
    /// The probe process is dead: it neither runs nor answers.
    pub dead: bool,
    /// Messages the probe sent with the true (coordinator-clock) instant, for assertions.
    pub sent: Vec<(i64, ProbeMessage)>,
}

enum Delivery {
    ToCoordinator(ConnId, Vec<u8>),
    ToProbe(usize, Vec<u8>),
    Closed(ConnId, String),
    /// The probe sees its connection closed (after what was sent before the close).
    ProbeClosed(usize),
}

pub struct Sim {
    pub now: i64,
    pub coordinator: Coordinator,
    pub probes: Vec<SimProbe>,
    queue: BinaryHeap<Reverse<(i64, u64, usize)>>,
    deliveries: Vec<Option<Delivery>>,
    seq: u64,
    pub rng: Rng,
    pub events: Vec<Event>,
    /// (node, seq) of every telemetry batch "stored", and the samples in them.
    pub stored: BTreeMap<(String, u64), usize>,
    /// How many times a batch arrived again after it was stored (replays).
    pub duplicates: usize,
    /// Largest clock offset drawn for a probe, ns (± this).
    pub max_offset: i64,
    /// Hottest GPU temperature stored per node, °C.
    pub max_temp: BTreeMap<String, f32>,
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        Sim {
            now: 1_700_000_000_000_000_000,
            coordinator: Coordinator::new(CoordinatorConfig::default()),
            probes: Vec::new(),
            queue: BinaryHeap::new(),
            deliveries: Vec::new(),
            seq: 0,
            rng: Rng(seed | 1),
            events: Vec::new(),
            stored: BTreeMap::new(),
            duplicates: 0,
            max_offset: 10_000 * MS,
            max_temp: BTreeMap::new(),
        }
    }

    fn schedule(&mut self, at: i64, d: Delivery) {
        self.deliveries.push(Some(d));
        self.seq += 1;
        self.queue
            .push(Reverse((at, self.seq, self.deliveries.len() - 1)));
    }

    /// Adds a probe process with `hello` and `backend`, and connects it with a certificate for
    /// `cert_node`.
    pub fn add_probe(&mut self, cert_node: &str, hello: Hello, backend: Box<dyn Backend>) -> usize {
        let idx = self.probes.len();
        let offset = self.rng.below(2 * self.max_offset) - self.max_offset;
        let out_base = 50_000 + self.rng.below(2 * MS);
        let back_base = 50_000 + self.rng.below(2 * MS);
        self.probes.push(SimProbe {
            conn: 0,
            session: ProbeSession::new(hello, backend),
            offset,
            out_base,
            back_base,
            last_out: 0,
            last_back: 0,
            closed: true,
            dead: false,
            sent: Vec::new(),
        });
        self.reconnect(idx, cert_node);
        idx
    }

    /// Opens a new connection for probe `idx` (its process lives on).
    pub fn reconnect(&mut self, idx: usize, cert_node: &str) {
        let conn = 1000 * (idx as ConnId + 1) + self.seq;
        let p = &mut self.probes[idx];
        p.conn = conn;
        p.closed = false;
        let hello = p.session.connected();
        self.coordinator.on_connected(
            conn,
            hallmark_protocol::NodeId::new(cert_node).unwrap(),
            format!("sim:{idx}"),
            self.now,
        );
        self.probe_send(idx, &hello);
    }

    fn idx_of(&self, conn: ConnId) -> Option<usize> {
        self.probes.iter().position(|p| p.conn == conn)
    }

    fn probe_send(&mut self, idx: usize, msg: &ProbeMessage) {
        let jitter = self.rng.below(300_000);
        let p = &mut self.probes[idx];
        p.sent.push((self.now, msg.clone()));
        if p.closed {
            return;
        }
        let at = (self.now + p.out_base + jitter).max(p.last_out + 1);
        p.last_out = at;
        let frame = encode_frame(msg).unwrap();
        let conn = p.conn;
        self.schedule(
            at,
            Delivery::ToCoordinator(conn, frame[HEADER_LEN..].to_vec()),
        );
    }

    /// Cuts probe `idx`'s connection; the coordinator notices after `notice_ns` (the idle timeout).
    pub fn cut(&mut self, idx: usize, notice_ns: i64) {
        let conn = self.probes[idx].conn;
        self.probes[idx].closed = true;
        self.probes[idx].session.disconnected();
        let at = self.now + notice_ns;
        self.schedule(
            at,
            Delivery::Closed(conn, "no answer within the idle timeout".into()),
        );
    }

    /// Kills probe `idx`'s process.
    pub fn kill(&mut self, idx: usize, notice_ns: i64) {
        self.probes[idx].dead = true;
        self.cut(idx, notice_ns);
    }

    pub fn pump(&mut self) {
        while let Some((conn, msg)) = self.coordinator.poll_transmit() {
            let Some(idx) = self.idx_of(conn) else {
                continue;
            };
            let jitter = self.rng.below(300_000);
            let p = &mut self.probes[idx];
            if p.closed {
                continue;
            }
            let at = (self.now + p.back_base + jitter).max(p.last_back + 1);
            p.last_back = at;
            let frame = encode_frame(&msg).unwrap();
            self.schedule(at, Delivery::ToProbe(idx, frame));
        }
        while let Some((conn, close)) = self.coordinator.poll_close() {
            if let Some(idx) = self.idx_of(conn) {
                let at = self.probes[idx].last_back.max(self.now) + 1;
                self.schedule(at, Delivery::ProbeClosed(idx));
            }
            let at = self.now + 10 * MS;
            self.schedule(at, Delivery::Closed(conn, close.reason));
        }
        while let Some(e) = self.coordinator.poll_event() {
            if let Event::Telemetry { node_id, batch, .. } = &e {
                let key = (node_id.to_string(), batch.seq);
                match self.stored.entry(key) {
                    std::collections::btree_map::Entry::Occupied(_) => self.duplicates += 1,
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(batch.samples.len());
                    }
                }
                let hottest = batch
                    .samples
                    .iter()
                    .filter_map(|s| s.gpu_temp_c)
                    .fold(f32::MIN, f32::max);
                let t = self.max_temp.entry(node_id.to_string()).or_insert(f32::MIN);
                *t = t.max(hottest);
                self.coordinator.telemetry_stored(node_id, batch.seq);
                // Bulk telemetry is not kept in the event log.
                continue;
            }
            self.events.push(e);
        }
    }

    /// Samples stored for `node`.
    pub fn stored_samples(&self, node: &str) -> usize {
        self.stored
            .iter()
            .filter(|((n, _), _)| n == node)
            .map(|(_, s)| *s)
            .sum()
    }

    /// The run's final event, if it has finished.
    pub fn finished(&self) -> Option<(hallmark_coordinator::run::Outcome, String)> {
        self.events.iter().find_map(|e| match e {
            Event::RunFinished {
                outcome, reason, ..
            } => Some((*outcome, reason.clone())),
            _ => None,
        })
    }

    /// The next instant a probe's own timer fires, on the coordinator's clock.
    fn next_probe_timer(&self) -> Option<(i64, usize)> {
        self.probes
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.dead)
            .filter_map(|(i, p)| p.session.poll_timeout().map(|t| (t - p.offset, i)))
            .min()
    }

    /// Runs the simulation until `until` (coordinator clock), bounded in steps.
    pub fn run_until(&mut self, until: i64) {
        for _ in 0..5_000_000 {
            let next_msg = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self.coordinator.poll_timeout();
            let next_probe = self.next_probe_timer();
            let next = [next_msg, next_timer, next_probe.map(|(t, _)| t)]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else { break };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_msg == Some(next) {
                let Some(Reverse((_, _, i))) = self.queue.pop() else {
                    break;
                };
                match self.deliveries[i].take() {
                    Some(Delivery::ToCoordinator(conn, payload)) => {
                        self.coordinator.on_payload(conn, &payload, self.now)
                    }
                    Some(Delivery::ToProbe(idx, frame)) => {
                        let p = &self.probes[idx];
                        if p.closed || p.dead {
                            continue;
                        }
                        let msg: CoordinatorMessage = decode_frame(&frame).unwrap();
                        let probe_now = self.now + p.offset;
                        let (replies, _) = self.probes[idx].session.handle(msg, probe_now);
                        for r in replies {
                            self.probe_send(idx, &r);
                        }
                    }
                    Some(Delivery::ProbeClosed(idx)) => {
                        self.probes[idx].closed = true;
                        self.probes[idx].session.disconnected();
                    }
                    Some(Delivery::Closed(conn, reason)) => {
                        self.coordinator.on_closed(conn, &reason, self.now);
                    }
                    None => {}
                }
            } else if next_timer == Some(next) {
                self.coordinator.handle_timeout(self.now);
            } else if let Some((_, idx)) = next_probe {
                let probe_now = self.now + self.probes[idx].offset;
                let out = self.probes[idx].session.handle_timeout(probe_now);
                for m in out {
                    self.probe_send(idx, &m);
                }
            }
            self.pump();
        }
    }
}
