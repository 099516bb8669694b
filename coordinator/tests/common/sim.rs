//! A simulated coordinator for the machine tests: the sans-IO [`Coordinator`] under a simulated
//! clock, with two probes whose clocks are in step, a plan of a burn, a latency and a collective
//! phase, and what the coordinator sent, closed and said recorded.

use super::node;
use hallmark_coordinator::machine::ConnId;
use hallmark_coordinator::{Coordinator, CoordinatorConfig, Event};
use hallmark_protocol::plan::parse_plan;
use hallmark_protocol::{
    ClockPong, CoordinatorMessage, DataPlaneAddr, FabricReport, Hello, PhaseReport, PhaseStart,
    ProbeMessage, TelemetryBatch,
};

pub const T0: i64 = 1_700_000_000_000_000_000;
pub const MS: i64 = 1_000_000;

pub const PLAN: &str = r#"
name = "hostile"
sample_hz = 10
[expect]
nodes = 2
timeout_s = 10
[[phase]]
name = "burn"
workload = "burn"
duration_s = 2
pattern = { kind = "steady", level = 1.0 }
[[phase]]
name = "mesh"
duration_s = 2
workload = { kind = "latency" }
[[phase]]
name = "reduce"
duration_s = 2
workload = { kind = "collective", ops = ["all-reduce"], max_size = "1MiB", transport = "data-plane" }
"#;

pub struct Sim {
    pub c: Coordinator,
    pub now: i64,
    /// Messages the coordinator sent, per connection, and connections it closed.
    pub sent: Vec<(ConnId, CoordinatorMessage)>,
    pub closed: Vec<(ConnId, u32, String)>,
    pub events: Vec<Event>,
    pub phases: Vec<PhaseStart>,
}

/// The Hello of node `id` in `rack` with two devices and a data plane on `port`, whose number is
/// also the probe's instance id.
pub fn hello(id: &str, rack: &str, port: u16) -> Hello {
    Hello {
        instance_id: u64::from(port),
        data_plane: Some(DataPlaneAddr {
            ip: Some("127.0.0.1".parse().unwrap()),
            port,
        }),
        ..super::hello(id, rack, 2)
    }
}

impl Sim {
    pub fn new(config: CoordinatorConfig) -> Self {
        Sim {
            c: Coordinator::new(config),
            now: T0,
            sent: Vec::new(),
            closed: Vec::new(),
            events: Vec::new(),
            phases: Vec::new(),
        }
    }

    /// Drains the machine; answers clock pings at once (clocks in step).
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            let mut any = false;
            while let Some((conn, msg)) = self.c.poll_transmit() {
                any = true;
                if let CoordinatorMessage::ClockPing(p) = &msg {
                    let pong = ProbeMessage::ClockPong(ClockPong {
                        seq: p.seq,
                        t1: p.t1,
                        t2: self.now,
                        t3: self.now,
                    });
                    self.c.on_message(conn, pong, self.now);
                }
                self.sent.push((conn, msg));
            }
            while let Some((conn, close)) = self.c.poll_close() {
                any = true;
                self.closed.push((conn, close.code, close.reason));
            }
            while let Some(ev) = self.c.poll_event() {
                any = true;
                if let Event::RunStarted { phases, .. } = &ev {
                    self.phases = phases.clone();
                }
                self.events.push(ev);
            }
            if !any {
                return;
            }
        }
        panic!("the machine never went quiet");
    }

    /// Advances the clock by `dt`, running every timer due on the way.
    pub fn advance(&mut self, dt: i64) {
        let end = self.now + dt;
        for _ in 0..100_000 {
            let next = self.c.poll_timeout().unwrap_or(end).clamp(self.now, end);
            self.now = next;
            self.c.handle_timeout(self.now);
            self.pump();
            if self.now >= end {
                return;
            }
        }
        panic!("timers never reached the end");
    }

    pub fn connect(&mut self, conn: ConnId, h: Hello) {
        self.c.on_connected(
            conn,
            h.node_id.clone(),
            format!("127.0.0.1:{}", 1000 + conn % 60000),
            self.now,
        );
        self.c.on_message(conn, ProbeMessage::Hello(h), self.now);
        self.pump();
    }

    pub fn send(&mut self, conn: ConnId, msg: ProbeMessage) {
        self.c.on_message(conn, msg, self.now);
        self.pump();
    }

    /// Two probes (conns 1 and 2, nodes a and b) registered, and a run of [`PLAN`] started.
    pub fn started(config: CoordinatorConfig) -> Sim {
        Sim::started_with(config, PLAN)
    }

    /// [`Sim::started`] with the plan `plan`.
    pub fn started_with(config: CoordinatorConfig, plan: &str) -> Sim {
        let mut sim = Sim::new(config);
        sim.connect(1, hello("a", "k1", 7001));
        sim.connect(2, hello("b", "k1", 7002));
        sim.advance(100 * MS);
        sim.c
            .start_run("run".into(), parse_plan(plan, "sim.toml").unwrap(), sim.now);
        sim.pump();
        sim
    }

    /// A run of [`PLAN`] with a telemetry budget of 200 readings, in which a sent batches 0..7 from
    /// `t` (returned with the run): reading a has stopped, once, at the batch past the budget.
    pub fn flooded() -> (Sim, i64) {
        let mut sim = Sim::budgeted(200);
        let t = sim.now;
        let mut reads = Vec::new();
        // Each batch is 2 devices × 10 ticks + 10 readings = 30: the 7th passes the budget of 200.
        for seq in 0..7 {
            sim.send(
                1,
                ProbeMessage::Telemetry(batch(seq, t + seq as i64 * 1000 * MS, 2, 10)),
            );
            while let Some(r) = sim.c.poll_read() {
                reads.push((seq, r));
            }
        }
        assert_eq!(
            reads,
            vec![(6, (1, false))],
            "reading a stops once, past its budget"
        );
        assert_eq!(sim.c.unstored_telemetry_of(&node("a")), 210);
        (sim, t)
    }

    /// [`Sim::started_with`], advanced into the first phase.
    pub fn in_first_phase(config: CoordinatorConfig, plan: &str) -> Sim {
        let mut sim = Sim::started_with(config, plan);
        sim.advance(2100 * MS);
        sim
    }

    /// A run of [`PLAN`] in its first phase, whose probes may each have `budget` readings waiting
    /// for the store.
    pub fn budgeted(budget: u64) -> Sim {
        let config = CoordinatorConfig {
            telemetry_budget: budget,
            ..CoordinatorConfig::default()
        };
        Sim::in_first_phase(config, PLAN)
    }

    /// [`Sim::started`], advanced until every phase has been sent.
    pub fn running() -> Sim {
        let mut sim = Sim::started(CoordinatorConfig::default());
        sim.advance(100 * MS);
        assert_eq!(sim.phases.len(), 3, "the run started: {:?}", sim.events);
        let last_sent = sim.phases[2].start_at_ns - 1500 * MS;
        sim.advance(last_sent - sim.now + MS);
        sim
    }

    pub fn end_ns(&self) -> i64 {
        let p = self.phases.last().unwrap();
        p.start_at_ns + p.duration_ms as i64 * MS
    }

    pub fn lost(&self, id: &str) -> Vec<(i64, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::ProbeLost {
                    node_id,
                    at_ns,
                    reason,
                } if node_id.as_str() == id => Some((*at_ns, reason.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn acks(&self, conn: ConnId) -> Vec<u64> {
        self.sent
            .iter()
            .filter_map(|(c, m)| match m {
                CoordinatorMessage::Ack { seq } if *c == conn => Some(*seq),
                _ => None,
            })
            .collect()
    }

    pub fn stored(&self, id: &str) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Telemetry { node_id, batch, .. } if node_id.as_str() == id => {
                    Some(batch.seq)
                }
                _ => None,
            })
            .collect()
    }
}

/// Batch `seq` of `ticks` instants at 10 Hz from `t` of `devices` devices.
pub fn batch(seq: u64, t: i64, devices: u16, ticks: usize) -> TelemetryBatch {
    super::batch(seq, t, devices, ticks, 100 * MS)
}

pub fn report(phase_id: u32, at: i64, fabric: Option<FabricReport>) -> ProbeMessage {
    ProbeMessage::PhaseReport(PhaseReport {
        phase_id,
        ended_at_ns: at,
        stopped_early: None,
        devices: Vec::new(),
        fabric,
    })
}
