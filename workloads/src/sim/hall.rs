//! Simulated halls: rows → racks → nodes → GPUs, each rack on its own coolant loop, with faults.
//!
//! A hall is read from a TOML file ([`parse_hall`], [`load_hall`]) or is the built-in demo hall
//! ([`HallSpec::demo`], equal to `examples/hall-demo.toml`). `docs/HALL.md` documents every key.
//!
//! Names are generated, 1-based and zero-padded where it keeps them sorted:
//! row `row{R}`, rack `row{R}-rack{KK}`, node `row{R}-rack{KK}-n{NN}` (e.g. `row2-rack03-n07`);
//! devices are numbered from 0 as NVML numbers them. A node's labels are (hall name, row, rack).
//!
//! The hall's `seed` fixes the hardware (each GPU's spread) and the faults are the file's. What differs
//! between two runs of the same hall comes from the run's [`RunConditions`] (the run seed), given to
//! the `*_for_run` constructors; the plain ones ([`HallSpec::backends`], …) are nominal.

use super::conditions::RunConditions;
use super::coolant::{CoolantLoop, CoolantSpec, RackCooling, SharedLoop};
use super::hall_file::{excerpt, key_at, line_col, RawHall};
use super::node::{SimBackend, SimNodeSpec};
use super::{sim_inventory, SimGpuSpec};
use crate::backend::BackendError;
use hallmark_protocol::{DeviceInfo, Labels, NodeId};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Default base load of a node (CPUs, fans, NICs), W.
pub const DEFAULT_BASE_LOAD_W: f64 = 1500.0;
/// Default PSU efficiency.
pub const DEFAULT_PSU_EFFICIENCY: f64 = 0.94;

/// Why a hall file was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HallError {
    #[error("{file}: cannot read the hall file: {message}")]
    Read { file: String, message: String },
    #[error("{file}:{line}:{column}: {message}{excerpt}")]
    At {
        file: String,
        line: usize,
        column: usize,
        /// The dotted key at fault where known (`gpu.power_limit_w`).
        key: Option<String>,
        message: String,
        /// The offending line with a caret under the value (starts with a newline; may be empty).
        excerpt: String,
    },
}

impl HallError {
    pub fn line(&self) -> Option<usize> {
        match self {
            HallError::At { line, .. } => Some(*line),
            HallError::Read { .. } => None,
        }
    }
    pub fn column(&self) -> Option<usize> {
        match self {
            HallError::At { column, .. } => Some(*column),
            HallError::Read { .. } => None,
        }
    }
    pub fn key(&self) -> Option<&str> {
        match self {
            HallError::At { key, .. } => key.as_deref(),
            HallError::Read { .. } => None,
        }
    }
}

/// A per-rack change of the hall's coolant figures.
#[derive(Debug, Clone, PartialEq)]
pub struct RackCoolantOverride {
    pub rack: String,
    pub setpoint_c: Option<f64>,
    pub capacity_kw: Option<f64>,
    /// Nominal secondary flow, L/min.
    pub flow_lpm: Option<f64>,
}

/// Injected fault: device `device` of `node` has a cold plate `factor` times worse than its own.
#[derive(Debug, Clone, PartialEq)]
pub struct WeakColdPlate {
    pub node: NodeId,
    pub device: u16,
    pub factor: f64,
}

/// Injected fault: rack `rack`'s loop removes only `capacity_kw`.
#[derive(Debug, Clone, PartialEq)]
pub struct UndersizedCooling {
    pub rack: String,
    pub capacity_kw: f64,
}

/// Injected fault: `node`'s links carry `extra_latency_us` more latency (used by the interconnect work).
#[derive(Debug, Clone, PartialEq)]
pub struct SlowLink {
    pub node: NodeId,
    pub extra_latency_us: u64,
}

/// Injected fault: rack `rack`'s PDU meter reads `factor` × the rack's true power (a mis-wired or
/// mis-scaled meter); its energy counter too.
#[derive(Debug, Clone, PartialEq)]
pub struct PduReadsLow {
    pub rack: String,
    pub factor: f64,
}

/// Injected fault: rack `rack`'s CDU delivers only `fraction` of its nominal secondary flow.
#[derive(Debug, Clone, PartialEq)]
pub struct CduLowFlow {
    pub rack: String,
    pub fraction: f64,
}

/// The faults injected into a hall.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    pub weak_cold_plates: Vec<WeakColdPlate>,
    pub undersized_cooling: Vec<UndersizedCooling>,
    pub slow_links: Vec<SlowLink>,
    pub pdu_reads_low: Vec<PduReadsLow>,
    pub cdu_low_flow: Vec<CduLowFlow>,
}

/// A simulated hall, defaults filled in and every value checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HallSpec {
    pub name: String,
    pub seed: u64,
    pub rows: u16,
    pub racks_per_row: u16,
    pub nodes_per_rack: u16,
    pub gpus_per_node: u16,
    pub gpu: SimGpuSpec,
    pub base_load_w: f64,
    pub psu_efficiency: f64,
    /// The coolant loop of every rack, before overrides and faults.
    pub coolant: CoolantSpec,
    pub rack_coolant: Vec<RackCoolantOverride>,
    pub faults: Faults,
}

/// One node of a hall: where it stands and what it is called.
#[derive(Debug, Clone, PartialEq)]
pub struct HallNode {
    pub node_id: NodeId,
    pub labels: Labels,
    /// 1-based row, rack within the row, node within the rack.
    pub row: u16,
    pub rack: u16,
    pub index: u16,
}

/// One rack of a hall with its resolved coolant loop.
#[derive(Debug, Clone, PartialEq)]
pub struct HallRack {
    pub name: String,
    pub row: u16,
    pub index: u16,
    pub nodes: u16,
    pub coolant: CoolantSpec,
}

/// The shared coolant loop of every rack, by rack name.
pub type HallLoops = BTreeMap<String, SharedLoop>;

impl HallSpec {
    /// The built-in demo hall: 2 rows × 4 racks × 10 nodes × 8 GPUs of 1000 W; each rack draws about
    /// 100 kW at full load on a 120 kW loop, except `row2-rack03`, whose loop removes only 75 kW;
    /// `row1-rack02`'s PDU reads 20 % low and `row2-rack01`'s CDU delivers 40 % of its flow.
    pub fn demo() -> HallSpec {
        HallSpec {
            name: "demo-hall".to_string(),
            seed: 42,
            rows: 2,
            racks_per_row: 4,
            nodes_per_rack: 10,
            gpus_per_node: 8,
            gpu: SimGpuSpec::default(),
            base_load_w: DEFAULT_BASE_LOAD_W,
            psu_efficiency: DEFAULT_PSU_EFFICIENCY,
            coolant: CoolantSpec::default(),
            rack_coolant: Vec::new(),
            faults: Faults {
                undersized_cooling: vec![UndersizedCooling {
                    rack: "row2-rack03".to_string(),
                    capacity_kw: 75.0,
                }],
                pdu_reads_low: vec![PduReadsLow {
                    rack: "row1-rack02".to_string(),
                    factor: 0.8,
                }],
                cdu_low_flow: vec![CduLowFlow {
                    rack: "row2-rack01".to_string(),
                    fraction: 0.4,
                }],
                ..Faults::default()
            },
        }
    }

    /// `row{R}`.
    pub fn row_name(row: u16) -> String {
        format!("row{row}")
    }

    /// `row{R}-rack{KK}`.
    pub fn rack_name(row: u16, rack: u16) -> String {
        format!("row{row}-rack{rack:02}")
    }

    /// `row{R}-rack{KK}-n{NN}`.
    pub fn node_name(row: u16, rack: u16, node: u16) -> String {
        format!("{}-n{node:02}", Self::rack_name(row, rack))
    }

    fn hall_node(&self, row: u16, rack: u16, index: u16) -> Option<HallNode> {
        Some(HallNode {
            node_id: NodeId::new(Self::node_name(row, rack, index)).ok()?,
            labels: Labels {
                hall: self.name.clone(),
                row: Self::row_name(row),
                rack: Self::rack_name(row, rack),
            },
            row,
            rack,
            index,
        })
    }

    /// Every node, row by row, rack by rack.
    pub fn nodes(&self) -> Vec<HallNode> {
        let mut out = Vec::new();
        for row in 1..=self.rows {
            for rack in 1..=self.racks_per_row {
                for n in 1..=self.nodes_per_rack {
                    out.extend(self.hall_node(row, rack, n));
                }
            }
        }
        out
    }

    /// The node called `id`, if the hall has it.
    pub fn node(&self, id: &str) -> Option<HallNode> {
        let rest = id.strip_prefix("row")?;
        let (row, rest) = rest.split_once("-rack")?;
        let (rack, n) = rest.split_once("-n")?;
        let (row, rack, n) = (row.parse().ok()?, rack.parse().ok()?, n.parse().ok()?);
        let inside = (1..=self.rows).contains(&row)
            && (1..=self.racks_per_row).contains(&rack)
            && (1..=self.nodes_per_rack).contains(&n);
        (inside && Self::node_name(row, rack, n) == id).then(|| self.hall_node(row, rack, n))?
    }

    /// Every rack with its resolved coolant loop.
    pub fn racks(&self) -> Vec<HallRack> {
        let mut out = Vec::new();
        for row in 1..=self.rows {
            for index in 1..=self.racks_per_row {
                let name = Self::rack_name(row, index);
                let coolant = self.rack_coolant_spec(&name);
                out.push(HallRack {
                    name,
                    row,
                    index,
                    nodes: self.nodes_per_rack,
                    coolant,
                });
            }
        }
        out
    }

    /// The rack called `name`, if the hall has it.
    pub fn rack(&self, name: &str) -> Option<HallRack> {
        self.racks().into_iter().find(|r| r.name == name)
    }

    /// The coolant loop of rack `name`: the hall's, then the rack's override, then an
    /// undersized-cooling fault and a low-flow fault.
    fn rack_coolant_spec(&self, name: &str) -> CoolantSpec {
        let mut spec = self.coolant.clone();
        for o in self.rack_coolant.iter().filter(|o| o.rack == name) {
            spec.setpoint_c = o.setpoint_c.unwrap_or(spec.setpoint_c);
            spec.capacity_kw = o.capacity_kw.unwrap_or(spec.capacity_kw);
            spec.flow_lpm = o.flow_lpm.or(spec.flow_lpm);
        }
        for f in self.faults.cdu_low_flow.iter().filter(|f| f.rack == name) {
            spec.flow_fraction = f.fraction;
        }
        for f in self
            .faults
            .undersized_cooling
            .iter()
            .filter(|f| f.rack == name)
        {
            spec.capacity_kw = f.capacity_kw;
        }
        spec
    }

    /// What makes node `id`: the GPU spec, its spread (from the seed) and its weak cold plates.
    pub fn node_spec(&self, id: &NodeId) -> Option<SimNodeSpec> {
        self.node(id.as_str())?;
        Some(SimNodeSpec {
            node_id: id.clone(),
            gpu: self.gpu.clone(),
            gpus: self.gpus_per_node,
            base_load_w: self.base_load_w,
            psu_efficiency: self.psu_efficiency,
            seed: self.seed,
            run: RunConditions::Nominal,
            cold_plate_factors: self
                .faults
                .weak_cold_plates
                .iter()
                .filter(|w| &w.node == id)
                .map(|w| (w.device, w.factor))
                .collect(),
        })
    }

    /// The Hello inventory of node `id`.
    pub fn inventory(&self, id: &NodeId) -> Option<Vec<DeviceInfo>> {
        self.node(id.as_str())?;
        Some(sim_inventory(id, self.gpus_per_node, &self.gpu))
    }

    /// What rack `name`'s PDU meter reads per watt drawn: a `pdu_reads_low` fault's factor, else 1.
    pub fn pdu_factor(&self, name: &str) -> f64 {
        self.faults
            .pdu_reads_low
            .iter()
            .find(|f| f.rack == name)
            .map_or(1.0, |f| f.factor)
    }

    /// The extra latency injected on node `id`'s links, µs.
    pub fn slow_link_us(&self, id: &NodeId) -> Option<u64> {
        self.faults
            .slow_links
            .iter()
            .find(|s| &s.node == id)
            .map(|s| s.extra_latency_us)
    }

    /// Power of rack `name` at full load, W, with the seeded spread (thermal throttling aside).
    pub fn rack_full_load_w(&self, name: &str) -> Option<f64> {
        let rack = self.rack(name)?;
        let mut total = 0.0;
        for n in 1..=self.nodes_per_rack {
            let node = self.hall_node(rack.row, rack.index, n)?;
            let spec = self.node_spec(&node.node_id)?;
            let gpus: f64 = (0..self.gpus_per_node)
                .map(|d| {
                    let p = spec.device_params(d);
                    (p.idle_power_w + (p.power_limit_w - p.idle_power_w) * p.efficiency)
                        .min(p.power_limit_w)
                })
                .sum();
            total += gpus / self.psu_efficiency + self.base_load_w;
        }
        Some(total)
    }

    fn unknown_node(&self, id: &NodeId) -> BackendError {
        BackendError::Config(format!(
            "node {id} is not in hall {} (nodes are named like {})",
            self.name,
            Self::node_name(1, 1, 1)
        ))
    }

    /// The backend of node `id` simulated alone, under nominal conditions (see
    /// [`HallSpec::backend_scaled_for_run`]).
    pub fn backend_scaled(&self, id: &NodeId) -> Result<SimBackend, BackendError> {
        self.backend_scaled_for_run(id, RunConditions::Nominal)
    }

    /// The backend of node `id` simulated alone in a run under `run`: its rack's loop is private
    /// and counts this node's heat once for every node of the rack (for a probe that simulates
    /// only its own node). The rack's supply varies as the shared loop's does under `run`.
    pub fn backend_scaled_for_run(
        &self,
        id: &NodeId,
        run: RunConditions,
    ) -> Result<SimBackend, BackendError> {
        let spec = self.node_spec(id).ok_or_else(|| self.unknown_node(id))?;
        let node = self
            .node(id.as_str())
            .ok_or_else(|| self.unknown_node(id))?;
        let coolant = self.rack_coolant_spec(&node.labels.rack);
        let cooling = RackCooling::scaled_varied(
            coolant,
            u32::from(self.nodes_per_rack),
            run.supply(&node.labels.rack),
        );
        SimBackend::new(SimNodeSpec { run, ..spec }, cooling)
    }

    /// One shared coolant loop per rack, for simulating many nodes in one process (nominal).
    pub fn coolant_loops(&self) -> HallLoops {
        self.coolant_loops_for_run(RunConditions::Nominal)
    }

    /// One shared coolant loop per rack, each holding its supply as `run` says.
    pub fn coolant_loops_for_run(&self, run: RunConditions) -> HallLoops {
        self.racks()
            .into_iter()
            .map(|r| {
                let variation = run.supply(&r.name);
                (r.name, CoolantLoop::varied(r.coolant, variation).shared())
            })
            .collect()
    }

    /// The backend of node `id` on its rack's shared loop from `loops` (nominal sensors).
    pub fn backend_shared(
        &self,
        id: &NodeId,
        loops: &HallLoops,
    ) -> Result<SimBackend, BackendError> {
        self.backend_shared_for_run(id, loops, RunConditions::Nominal)
    }

    /// The backend of node `id` on its rack's shared loop from `loops` (made for the same `run`),
    /// its base load and sensors as `run` says.
    pub fn backend_shared_for_run(
        &self,
        id: &NodeId,
        loops: &HallLoops,
        run: RunConditions,
    ) -> Result<SimBackend, BackendError> {
        let spec = self.node_spec(id).ok_or_else(|| self.unknown_node(id))?;
        let node = self
            .node(id.as_str())
            .ok_or_else(|| self.unknown_node(id))?;
        let coolant = loops.get(&node.labels.rack).ok_or_else(|| {
            BackendError::Config(format!("no coolant loop for rack {}", node.labels.rack))
        })?;
        SimBackend::new(SimNodeSpec { run, ..spec }, RackCooling::join(coolant))
    }

    /// Every node's backend, the nodes of a rack sharing one loop (nominal conditions).
    pub fn backends(&self) -> Result<(HallLoops, Vec<(HallNode, SimBackend)>), BackendError> {
        self.backends_for_run(RunConditions::Nominal)
    }

    /// Every node's backend in a run under `run`, the nodes of a rack sharing one loop.
    pub fn backends_for_run(
        &self,
        run: RunConditions,
    ) -> Result<(HallLoops, Vec<(HallNode, SimBackend)>), BackendError> {
        let loops = self.coolant_loops_for_run(run);
        let mut out = Vec::new();
        for node in self.nodes() {
            let b = self.backend_shared_for_run(&node.node_id, &loops, run)?;
            out.push((node, b));
        }
        Ok((loops, out))
    }
}

/// Reads and checks the hall file at `path`.
pub fn load_hall(path: &Path) -> Result<HallSpec, HallError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| HallError::Read {
        file: file.clone(),
        message: e.to_string(),
    })?;
    parse_hall(&text, &file)
}

/// Parses and checks a hall file; `file_name` names it in errors, which carry line, column and key.
pub fn parse_hall(text: &str, file_name: &str) -> Result<HallSpec, HallError> {
    let cx = Cx {
        file: file_name,
        text,
    };
    let raw: RawHall = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;
    super::hall_check::resolve(&cx, raw)
}

/// What an error needs to point into the file.
pub(super) struct Cx<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Cx<'_> {
    /// An error at `span` about `key`.
    pub(super) fn at(&self, span: Range<usize>, key: Option<String>, message: String) -> HallError {
        let (line, column) = line_col(self.text, span.start);
        HallError::At {
            file: self.file.to_string(),
            line,
            column,
            key,
            message,
            excerpt: excerpt(self.text, span.start, span.end.saturating_sub(span.start)),
        }
    }

    /// An error about the value `v` of `key`.
    pub(super) fn bad<T>(&self, v: &Spanned<T>, key: &str, message: String) -> HallError {
        self.at(v.span(), Some(key.to_string()), message)
    }

    fn toml_error(&self, e: &toml::de::Error) -> HallError {
        let span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_string();
        let named = ["missing field `", "unknown field `", "duplicate key `"]
            .iter()
            .find_map(|p| msg.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let key = if msg.starts_with("missing field") {
            // The span covers the table that lacks the key: name it from its header, if any.
            let (line, _) = line_col(self.text, span.start);
            let header = self
                .text
                .lines()
                .nth(line - 1)
                .map(str::trim)
                .filter(|l| l.starts_with('['))
                .map(|l| {
                    l.trim_matches(|c| c == '[' || c == ']')
                        .trim()
                        .replace('"', "")
                });
            match (header, named) {
                (Some(h), Some(k)) if !h.is_empty() => Some(format!("{h}.{k}")),
                (_, k) => k,
            }
        } else {
            key_at(self.text, span.start).or(named)
        };
        let message = match &key {
            Some(k) if !msg.contains(&format!("`{k}`")) && !msg.starts_with("unknown field") => {
                format!("`{k}`: {msg}")
            }
            _ => msg,
        };
        self.at(span, key, message)
    }
}
