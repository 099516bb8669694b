//! Live metrics of a coordinator for Prometheus: [`Metrics`] follows the machine's events (who is
//! registered, the run and its phase, each node's latest power, what was stored, gaps) and renders
//! them as text in the Prometheus exposition format or OpenMetrics ([`Metrics::render`]). Sans-IO:
//! it is told the time and the events; `metrics_http` serves it.
//!
//! Power is the latest reading of each node (node power, and the sum of its devices' power at its
//! latest sample instant: the GPU-side power), labelled by hall, row, rack and node; rack and hall
//! figures are sums over nodes whose latest reading is younger than [`STALE_NS`] — a node without a
//! fresh reading is left out and counted in `hallmark_rack_nodes_stale`, never read as 0 W.

use crate::event::{Event, ProbeRecord};
use crate::metrics_facility::FacilityMetrics;
use crate::metrics_text::{counter, counter_family, esc, family, node_labels, num, rack_labels};
use crate::run::Outcome;
use hallmark_protocol::{Labels, NodeId, ProbeRole, TelemetryBatch};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A power reading older than this (coordinator clock) is stale: 10 s.
pub const STALE_NS: i64 = 10_000_000_000;

/// Which text format [`Metrics::render`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text exposition 0.0.4 (`text/plain; version=0.0.4`).
    Prometheus,
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`): counters' families named
    /// without `_total`, and a final `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The format a scraper's `Accept` header asks for (Prometheus asks for OpenMetrics first).
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// One node as the metrics know it.
#[derive(Debug, Clone)]
struct Node {
    labels: Labels,
    backend: String,
    devices: usize,
    connected: bool,
    lost: bool,
    /// Latest node-power reading: (coordinator ns, W).
    node_power: Option<(i64, f64)>,
    /// Sum of the devices' power at the latest sample instant: (ns, W, devices that reported).
    gpu_power: Option<(i64, f64, usize)>,
    /// The sequence number the node's next new batch has (`None`: none received yet).
    next_seq: Option<u64>,
}

/// A rack's (or hall's) sums over its nodes' fresh readings.
#[derive(Debug, Default)]
struct RackSum {
    node_w: f64,
    gpu_w: f64,
    /// Nodes with a fresh node-power reading (in `node_w`).
    nodes: u64,
    /// Nodes without one.
    stale: u64,
    /// Nodes with a fresh GPU-side reading (in `gpu_w`).
    gpu_nodes: u64,
}

/// The run as the metrics know it.
#[derive(Debug, Clone, Default)]
struct Run {
    id: String,
    /// 0 waiting, 1 running, 2 ended.
    state: u8,
    outcome: Option<Outcome>,
    /// Phase id and name by start instant, for the phase in force.
    phases: Vec<(i64, u32, String, u64)>,
}

/// The coordinator's live figures.
#[derive(Debug, Default)]
pub struct Metrics {
    nodes: BTreeMap<NodeId, Node>,
    run: Option<Run>,
    refusals: u64,
    /// Connections turned away before their handshake ("coordinator busy"), by cause.
    turned_away: crate::LoadRefusals,
    samples_received: u64,
    batches_received: u64,
    samples_stored: u64,
    /// Samples of each batch received and not yet stored, by node and sequence number.
    pending: BTreeMap<(NodeId, u64), u64>,
    gaps: u64,
    gap_instants: u64,
    /// Facility collectors registered, by node id: connected or not.
    collectors: BTreeMap<NodeId, bool>,
    facility: FacilityMetrics,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Follows one event of the machine.
    pub fn on_event(&mut self, ev: &Event) {
        match ev {
            Event::Registered(p) if p.role == ProbeRole::Facility => {
                self.collectors.insert(p.node_id.clone(), true);
            }
            Event::Registered(p) => self.registered(p),
            Event::Refused { .. } => self.refusals += 1,
            Event::Departed { node_id, .. } => {
                if let Some(c) = self.collectors.get_mut(node_id) {
                    *c = false;
                }
                self.set_connected(node_id, false)
            }
            Event::Facility { batch, .. } => self.facility.on_batch(batch),
            Event::ProbeLost { node_id, .. } => {
                if let Some(n) = self.nodes.get_mut(node_id) {
                    n.lost = true;
                    n.connected = false;
                }
            }
            Event::ProbeBack { node_id, .. } => {
                if let Some(n) = self.nodes.get_mut(node_id) {
                    n.lost = false;
                    n.connected = true;
                }
            }
            Event::RunStarted { run_id, phases, .. } => {
                self.run = Some(Run {
                    id: run_id.clone(),
                    state: 1,
                    outcome: None,
                    phases: phases
                        .iter()
                        .map(|p| (p.start_at_ns, p.phase_id, p.name.clone(), p.duration_ms))
                        .collect(),
                });
            }
            Event::RunFinished { outcome, .. } => {
                if let Some(r) = &mut self.run {
                    r.state = 2;
                    r.outcome = Some(*outcome);
                }
            }
            Event::Telemetry { node_id, batch, .. } => self.telemetry(node_id, batch),
            Event::Gap { instants, .. } => {
                self.gaps += 1;
                self.gap_instants += instants.unwrap_or(0);
            }
            _ => {}
        }
    }

    /// A run was asked for: it waits for its inventory (state 0) until it starts.
    pub fn on_run_requested(&mut self, run_id: &str) {
        self.run = Some(Run {
            id: run_id.to_owned(),
            ..Run::default()
        });
    }

    /// The store has committed `node`'s batch `seq`: its samples count as stored.
    pub fn on_stored(&mut self, node: &NodeId, seq: u64) {
        if let Some(samples) = self.pending.remove(&(node.clone(), seq)) {
            self.samples_stored = self.samples_stored.saturating_add(samples);
        }
    }

    /// The connections turned away for load so far (the shell's admission counts them).
    pub fn set_turned_away(&mut self, refusals: crate::LoadRefusals) {
        self.turned_away = refusals;
    }

    /// The store refused `node`'s batch `seq`: it will never count as stored.
    pub fn on_refused(&mut self, node: &NodeId, seq: u64) {
        self.pending.remove(&(node.clone(), seq));
    }

    fn registered(&mut self, p: &ProbeRecord) {
        let n = self.nodes.entry(p.node_id.clone()).or_insert_with(|| Node {
            labels: p.labels.clone(),
            backend: p.backend.clone(),
            devices: 0,
            connected: true,
            lost: false,
            node_power: None,
            gpu_power: None,
            next_seq: None,
        });
        n.labels = p.labels.clone();
        n.backend = p.backend.clone();
        n.devices = p.inventory.len();
        n.connected = true;
        n.lost = false;
    }

    fn set_connected(&mut self, node: &NodeId, connected: bool) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.connected = connected;
        }
    }

    fn telemetry(&mut self, node: &NodeId, batch: &TelemetryBatch) {
        self.batches_received += 1;
        self.samples_received += batch.samples.len() as u64;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        // A batch below the node's next sequence number is a replay (after a reconnect) of one
        // the store holds already, as the run engine counts it: its samples are not stored twice.
        if n.next_seq.is_none_or(|next| batch.seq >= next) {
            n.next_seq = Some(batch.seq.saturating_add(1));
            self.pending
                .insert((node.clone(), batch.seq), batch.samples.len() as u64);
        }
        if let Some(&(t, w)) = batch
            .node_power_w
            .iter()
            .filter(|(_, w)| w.is_finite())
            .max_by_key(|(t, _)| *t)
        {
            if n.node_power.is_none_or(|(old, _)| t >= old) {
                n.node_power = Some((t, f64::from(w)));
            }
        }
        let Some(last) = batch.samples.iter().map(|s| s.t_ns).max() else {
            return;
        };
        let at_last = batch.samples.iter().filter(|s| s.t_ns == last);
        let (mut sum, mut count) = (0.0, 0);
        for w in at_last.filter_map(|s| s.power_w).filter(|w| w.is_finite()) {
            sum += f64::from(w);
            count += 1;
        }
        if count > 0 && n.gpu_power.is_none_or(|(old, _, _)| last >= old) {
            n.gpu_power = Some((last, sum, count));
        }
    }

    /// The metrics at coordinator time `now_ns`, in `format`.
    pub fn render(&self, now_ns: i64, format: Format) -> String {
        let mut o = String::with_capacity(4096 + 256 * self.nodes.len());
        self.render_probes(&mut o, format);
        self.render_run(&mut o, now_ns);
        self.render_power(&mut o, now_ns);
        self.render_facility(&mut o, now_ns, format);
        self.render_counters(&mut o, format);
        if format == Format::OpenMetrics {
            o.push_str("# EOF\n");
        }
        o
    }

    fn render_probes(&self, o: &mut String, format: Format) {
        family(
            o,
            "hallmark_probe_connected",
            "gauge",
            "1 while the node's probe is connected, 0 after it left or was lost",
        );
        for (id, n) in &self.nodes {
            let l = node_labels(id, &n.labels);
            let _ = writeln!(
                o,
                "hallmark_probe_connected{{{l},backend=\"{}\"}} {}",
                esc(&n.backend),
                u8::from(n.connected)
            );
        }
        family(
            o,
            "hallmark_probe_devices",
            "gauge",
            "devices the node's probe loads and measures",
        );
        for (id, n) in &self.nodes {
            let _ = writeln!(
                o,
                "hallmark_probe_devices{{{}}} {}",
                node_labels(id, &n.labels),
                n.devices
            );
        }
        let mut by_backend: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for n in self.nodes.values() {
            let e = by_backend.entry(n.backend.as_str()).or_default();
            e.0 += u64::from(n.connected);
            e.1 += u64::from(n.lost);
        }
        family(
            o,
            "hallmark_probes_registered",
            "gauge",
            "probes connected now, by device backend",
        );
        for (b, (connected, _)) in &by_backend {
            let _ = writeln!(
                o,
                "hallmark_probes_registered{{backend=\"{}\"}} {connected}",
                esc(b)
            );
        }
        family(
            o,
            "hallmark_probes_lost",
            "gauge",
            "participants of the run whose connection was lost and not re-established",
        );
        for (b, (_, lost)) in &by_backend {
            let _ = writeln!(o, "hallmark_probes_lost{{backend=\"{}\"}} {lost}", esc(b));
        }
        counter(
            o,
            format,
            "hallmark_probe_refusals",
            "probe connections refused (certificate, node id, protocol)",
            self.refusals,
        );
        let t = &self.turned_away;
        let name = "hallmark_connections_turned_away";
        let help = "connections turned away before their handshake, told the coordinator is busy, \
                    by cause (a copy of a refused attempt's first packet counted apart)";
        counter_family(o, format, name, help);
        for (cause, n) in [
            ("handshakes_in_flight", t.handshakes_in_flight),
            ("connections_open", t.connections_open),
            ("resent_initial", t.resent_initials),
        ] {
            let _ = writeln!(o, "{name}_total{{cause=\"{cause}\"}} {n}");
        }
    }

    fn render_run(&self, o: &mut String, now_ns: i64) {
        family(
            o,
            "hallmark_run_state",
            "gauge",
            "the run: 0 waiting for its inventory, 1 running, 2 ended; with its id and outcome",
        );
        if let Some(r) = &self.run {
            let outcome = match r.outcome {
                None => "",
                Some(Outcome::Complete) => "complete",
                Some(Outcome::Incomplete) => "incomplete",
                Some(Outcome::Aborted) => "aborted",
            };
            let _ = writeln!(
                o,
                "hallmark_run_state{{run_id=\"{}\",outcome=\"{outcome}\"}} {}",
                esc(&r.id),
                r.state
            );
        }
        family(
            o,
            "hallmark_run_phase",
            "gauge",
            "the phase in force (coordinator clock): its id, with its name",
        );
        if let Some((_, id, name, _)) = self.run.as_ref().filter(|r| r.state == 1).and_then(|r| {
            r.phases.iter().rev().find(|(start, _, _, ms)| {
                *start <= now_ns
                    && now_ns < start.saturating_add((*ms as i64).saturating_mul(1_000_000))
            })
        }) {
            let run = self.run.as_ref().map_or("", |r| r.id.as_str());
            let _ = writeln!(
                o,
                "hallmark_run_phase{{run_id=\"{}\",phase=\"{}\"}} {id}",
                esc(run),
                esc(name)
            );
        }
    }

    fn render_power(&self, o: &mut String, now_ns: i64) {
        let fresh = |t: i64| now_ns.saturating_sub(t) <= STALE_NS;
        family(
            o,
            "hallmark_node_power_watts",
            "gauge",
            "the node's latest whole-node power reading, W (left out when older than 10 s)",
        );
        for (id, n) in &self.nodes {
            if let Some((_, w)) = n.node_power.filter(|(t, _)| fresh(*t)) {
                let _ = writeln!(
                    o,
                    "hallmark_node_power_watts{{{}}} {}",
                    node_labels(id, &n.labels),
                    num(w)
                );
            }
        }
        family(
            o,
            "hallmark_node_gpu_power_watts",
            "gauge",
            "sum of the node's device power at its latest sample instant, W (GPU-side)",
        );
        for (id, n) in &self.nodes {
            if let Some((_, w, _)) = n.gpu_power.filter(|(t, _, _)| fresh(*t)) {
                let _ = writeln!(
                    o,
                    "hallmark_node_gpu_power_watts{{{}}} {}",
                    node_labels(id, &n.labels),
                    num(w)
                );
            }
        }
        let mut racks: BTreeMap<(&str, &str, &str), RackSum> = BTreeMap::new();
        for n in self.nodes.values() {
            let e = racks
                .entry((&n.labels.hall, &n.labels.row, &n.labels.rack))
                .or_default();
            match n.node_power.filter(|(t, _)| fresh(*t)) {
                Some((_, w)) => {
                    e.node_w += w;
                    e.nodes += 1;
                }
                None => e.stale += 1,
            }
            if let Some((_, w, _)) = n.gpu_power.filter(|(t, _, _)| fresh(*t)) {
                e.gpu_w += w;
                e.gpu_nodes += 1;
            }
        }
        family(
            o,
            "hallmark_rack_power_watts",
            "gauge",
            "sum of the rack's fresh node-power readings, W (see hallmark_rack_nodes_stale)",
        );
        for ((hall, row, rack), r) in racks.iter().filter(|(_, r)| r.nodes > 0) {
            let _ = writeln!(
                o,
                "hallmark_rack_power_watts{{{}}} {}",
                rack_labels(hall, row, rack),
                num(r.node_w)
            );
        }
        family(
            o,
            "hallmark_rack_gpu_power_watts",
            "gauge",
            "sum of the rack's devices' latest power, W (GPU-side)",
        );
        for ((hall, row, rack), r) in racks.iter().filter(|(_, r)| r.gpu_nodes > 0) {
            let _ = writeln!(
                o,
                "hallmark_rack_gpu_power_watts{{{}}} {}",
                rack_labels(hall, row, rack),
                num(r.gpu_w)
            );
        }
        family(
            o,
            "hallmark_rack_nodes_stale",
            "gauge",
            "nodes of the rack without a node-power reading in the last 10 s (not in its sum)",
        );
        for ((hall, row, rack), r) in &racks {
            let _ = writeln!(
                o,
                "hallmark_rack_nodes_stale{{{}}} {}",
                rack_labels(hall, row, rack),
                r.stale
            );
        }
        let mut halls: BTreeMap<&str, RackSum> = BTreeMap::new();
        for ((hall, _, _), r) in &racks {
            let e = halls.entry(hall).or_default();
            e.node_w += r.node_w;
            e.nodes += r.nodes;
        }
        family(
            o,
            "hallmark_hall_power_watts",
            "gauge",
            "sum of the hall's fresh node-power readings, W",
        );
        for (hall, r) in halls.iter().filter(|(_, r)| r.nodes > 0) {
            let _ = writeln!(
                o,
                "hallmark_hall_power_watts{{hall=\"{}\"}} {}",
                esc(hall),
                num(r.node_w)
            );
        }
    }
    fn render_facility(&self, o: &mut String, now_ns: i64, format: Format) {
        // A rack's hall and row from its nodes; a rack no node names keeps only its name.
        let mut place: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        for n in self.nodes.values() {
            place.insert(&n.labels.rack, (&n.labels.hall, &n.labels.row));
        }
        let connected = self.collectors.values().filter(|c| **c).count();
        self.facility.render(o, now_ns, format, connected, &place);
    }

    fn render_counters(&self, o: &mut String, format: Format) {
        counter(
            o,
            format,
            "hallmark_telemetry_batches_received",
            "telemetry batches received from probes",
            self.batches_received,
        );
        counter(
            o,
            format,
            "hallmark_samples_received",
            "device samples received from probes",
            self.samples_received,
        );
        counter(
            o,
            format,
            "hallmark_samples_stored",
            "device samples committed to the run store (rate() gives samples per second)",
            self.samples_stored,
        );
        counter(
            o,
            format,
            "hallmark_gaps",
            "stretches of telemetry that will never arrive",
            self.gaps,
        );
        counter(
            o,
            format,
            "hallmark_gap_instants_missed",
            "sampling instants the probes counted as missed",
            self.gap_instants,
        );
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
