//! Plans: what a run does, read from a TOML plan file.
//!
//! A [`Plan`] is an ordered list of [`PhaseSpec`]s (one workload under one pattern for a duration), the
//! telemetry rate, the inventory the run expects ([`Expect`]) and the limits the coordinator's safety
//! policy enforces ([`Limits`]). The file format is described in `docs/PLAN.md`.
//!
//! Parsing is sans-IO: [`parse_plan`] takes the text and a file name (used only in messages). Every
//! error, syntactic or semantic, is a [`PlanError`] that names the file, line and column, and says what
//! is allowed. The file is read into private "file" structs that mirror the TOML and are then converted
//! and checked, so the wire types ([`Pattern`], [`Workload`]) stay as they are.
//!
//! The module is split by stage: this file holds the public types and entry points, `file` the
//! private structs that mirror the TOML, `convert` their conversion into a [`Plan`] with every check,
//! and `errors` the positions and wording of [`PlanError`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fabric::FabricParams;
use crate::ids::NodeId;
use crate::message::Workload;
use crate::pattern::Pattern;

use errors::{explain, Cx};
use file::PlanFile;
pub use workload::{parse_size, COLLECTIVE_SIZE_RANGE, MAX_TARGET_W, PACKET_BYTES_RANGE};

mod convert;
mod errors;
mod file;
#[cfg(test)]
mod tests;
mod workload;

/// Telemetry sampling rate when a plan does not name one, Hz.
pub const DEFAULT_SAMPLE_HZ: f64 = 10.0;
/// Lowest accepted `sample_hz`.
pub const MIN_SAMPLE_HZ: f64 = 0.5;
/// Highest accepted `sample_hz`.
pub const MAX_SAMPLE_HZ: f64 = 100.0;
/// How long the coordinator waits for the expected inventory when a plan does not say, seconds.
pub const DEFAULT_EXPECT_TIMEOUT_S: u64 = 120;
/// Longest accepted `expect.timeout_s`, seconds (one day).
pub const MAX_EXPECT_TIMEOUT_S: f64 = 86_400.0;
/// Longest accepted phase, seconds (seven days).
pub const MAX_PHASE_S: f64 = 7.0 * 86_400.0;
/// Highest accepted pattern frequency (`start_hz`, `end_hz`), Hz.
pub const MAX_PATTERN_HZ: f64 = 1000.0;
/// Longest accepted plan or phase name, characters.
pub const MAX_NAME_LEN: usize = 64;

/// The pattern kinds a plan file accepts, as written in `pattern = { kind = "..." }`.
pub const PATTERN_KINDS: &[&str] = &["steady", "ramp", "steps", "square", "sweep"];
/// The workloads a plan file accepts, as written in `workload = "..."`.
pub const WORKLOAD_KINDS: &[&str] = &[
    "burn",
    "idle",
    "latency",
    "collective",
    "memory-bandwidth",
    "target-power",
];

/// What a run does: phases in order, the sampling rate, the expected inventory and the limits.
///
/// [`parse_plan`] is the checking way in; the serde derives are for storing a plan with its run, and
/// check nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    /// Telemetry sampling rate, Hz (0.5..=100, default 10).
    pub sample_hz: f64,
    pub expect: Expect,
    pub limits: Limits,
    /// At least one phase; names are unique.
    pub phases: Vec<PhaseSpec>,
}

impl Plan {
    /// The sum of the phases' durations, ms (the run takes longer: registration, the lead time before
    /// each phase start, reports).
    pub fn total_duration_ms(&self) -> u64 {
        self.phases
            .iter()
            .fold(0u64, |sum, p| sum.saturating_add(p.duration_ms))
    }
}

/// One phase of a plan: one workload under one pattern for a duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSpec {
    /// Unique within the plan.
    pub name: String,
    pub workload: Workload,
    /// For an idle phase: `Steady { level: 0.0 }`.
    pub pattern: Pattern,
    /// At least 1.
    pub duration_ms: u64,
    /// The parameters of a `latency` or `collective` phase.
    #[serde(default)]
    pub fabric: Option<FabricParams>,
    /// The per-device power set point of a `target-power` phase, W.
    #[serde(default)]
    pub target_power_w: Option<f64>,
}

/// The inventory a run expects before its first phase.
///
/// When it is not complete within `timeout_ms` of the run's start, the coordinator proceeds with what
/// registered and the run is INCOMPLETE, never a silent PASS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expect {
    pub nodes: ExpectedNodes,
    /// Devices every node must report in its registration.
    pub devices_per_node: Option<u32>,
    /// How long to wait for the inventory, ms (default 120 s).
    pub timeout_ms: u64,
}

/// The expected nodes: a count, or nodes by rack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedNodes {
    /// At least this many nodes, any ids, any racks.
    Count(usize),
    /// These nodes, each in its rack (the `rack` label of its registration). Every rack names at least
    /// one node and no node appears twice.
    Racks(BTreeMap<String, Vec<NodeId>>),
}

impl ExpectedNodes {
    /// How many nodes are expected.
    pub fn node_count(&self) -> usize {
        match self {
            ExpectedNodes::Count(n) => *n,
            ExpectedNodes::Racks(racks) => racks.values().map(Vec::len).sum(),
        }
    }
}

impl Expect {
    /// How many nodes the plan expects.
    pub fn node_count(&self) -> usize {
        self.nodes.node_count()
    }

    /// What the registered set lacks, one sentence per shortfall; empty when the inventory is complete.
    ///
    /// `registered` holds, for each registered node, its id, its `rack` label and its device count.
    /// Reported: too few nodes (count form), named nodes absent or registered in another rack (rack
    /// form), and nodes with fewer devices than `devices_per_node` (every registered node in the count
    /// form, the named nodes in the rack form). Nodes the plan does not name are not reported.
    pub fn missing(&self, registered: &[(NodeId, String, usize)]) -> Vec<String> {
        let mut out = Vec::new();
        let by_id: BTreeMap<&NodeId, (&str, usize)> = registered
            .iter()
            .map(|(id, rack, devices)| (id, (rack.as_str(), *devices)))
            .collect();
        match &self.nodes {
            ExpectedNodes::Count(n) => {
                if by_id.len() < *n {
                    out.push(format!(
                        "{} of {n} expected nodes have not registered ({} registered)",
                        n - by_id.len(),
                        by_id.len()
                    ));
                }
            }
            ExpectedNodes::Racks(racks) => {
                for (rack, nodes) in racks {
                    for node in nodes {
                        match by_id.get(node) {
                            None => out.push(format!(
                                "node `{node}` (rack `{rack}`) has not registered"
                            )),
                            Some((got, _)) if got != rack => out.push(format!(
                                "node `{node}` registered in rack `{got}`; the plan expects it in rack `{rack}`"
                            )),
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        if let Some(want) = self.devices_per_node {
            let named: Option<BTreeSet<&NodeId>> = match &self.nodes {
                ExpectedNodes::Count(_) => None,
                ExpectedNodes::Racks(racks) => Some(racks.values().flatten().collect()),
            };
            for (id, (_, devices)) in &by_id {
                let checked = named.as_ref().is_none_or(|n| n.contains(id));
                if checked && *devices < want as usize {
                    out.push(format!(
                        "node `{id}` has {devices} device{}; the plan expects {want} per node",
                        if *devices == 1 { "" } else { "s" }
                    ));
                }
            }
        }
        out
    }
}

/// Limits the coordinator's safety policy enforces during the run; a breach aborts the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Highest allowed rack power (sum of its nodes), kW — typically the rack's breaker rating.
    pub max_rack_kw: Option<f64>,
    /// Highest allowed node power, kW.
    pub max_node_kw: Option<f64>,
    /// Highest allowed temperature of any GPU, °C.
    pub max_gpu_temp_c: Option<f64>,
}

/// Why a plan file was refused: where, and what is wrong and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// The file name given to [`parse_plan`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for PlanError {}

/// The built-in demo plan (about one minute): a ramp to full load, steady full load, a square wave.
pub const DEMO_PLAN: &str = r#"# The hallmark demo plan: about one minute of synchronised load.
name = "demo"
sample_hz = 10.0

[expect]
nodes = 80
devices_per_node = 8
timeout_s = 120

[limits]
max_rack_kw = 130.0

# Every device from idle to full load over 15 s.
[[phase]]
name = "ramp"
workload = "burn"
duration_s = 15
pattern = { kind = "ramp", from = 0.0, to = 1.0 }

# Full load for 30 s.
[[phase]]
name = "steady"
workload = "burn"
duration_s = 30
pattern = { kind = "steady", level = 1.0 }

# 20 % <-> 100 % at 1 Hz, every node in step.
[[phase]]
name = "square"
workload = "burn"
duration_s = 15
pattern = { kind = "square", low = 0.2, high = 1.0, period_s = 1.0, duty = 0.5 }
"#;

/// The built-in quick demo plan (about 15 s): the demo's phases, shortened.
pub const DEMO_QUICK_PLAN: &str = r#"# The hallmark quick demo plan: the demo's phases in about 15 s.
name = "demo-quick"
sample_hz = 10.0

[expect]
nodes = 80
devices_per_node = 8
timeout_s = 120

[limits]
max_rack_kw = 130.0

[[phase]]
name = "ramp"
workload = "burn"
duration_s = 3
pattern = { kind = "ramp", from = 0.0, to = 1.0 }

[[phase]]
name = "steady"
workload = "burn"
duration_s = 8
pattern = { kind = "steady", level = 1.0 }

# 20 % <-> 100 % at 2 Hz.
[[phase]]
name = "square"
workload = "burn"
duration_s = 4
pattern = { kind = "square", low = 0.2, high = 1.0, period_s = 0.5, duty = 0.5 }
"#;

/// The built-in demo plan ([`DEMO_PLAN`]), or its quick form ([`DEMO_QUICK_PLAN`]).
pub fn demo_plan(quick: bool) -> Plan {
    let (text, file) = if quick {
        (DEMO_QUICK_PLAN, "plan-demo-quick.toml")
    } else {
        (DEMO_PLAN, "plan-demo.toml")
    };
    match parse_plan(text, file) {
        Ok(plan) => plan,
        // Unreachable: the unit tests parse both constants.
        Err(e) => panic!("built-in plan does not parse: {e}"),
    }
}

/// Reads and checks a plan file. `file_name` is used only in error messages.
pub fn parse_plan(text: &str, file_name: &str) -> Result<Plan, PlanError> {
    let cx = Cx {
        text,
        file: file_name,
    };
    let file: PlanFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..text.len());
        cx.err(span.clone(), explain(text, span, e.message().trim_end()))
    })?;
    file.convert(&cx)
}
