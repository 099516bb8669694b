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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::ids::NodeId;
use crate::message::Workload;
use crate::pattern::Pattern;

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
pub const WORKLOAD_KINDS: &[&str] = &["burn", "idle"];

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

// ---------------------------------------------------------------------------------------------------
// Error positions

struct Cx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Cx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> PlanError {
        let (line, column) = line_col(self.text, span.start);
        PlanError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for (i, ch) in text.char_indices() {
        if i >= offset {
            break;
        }
        if ch == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// The start of the key whose value starts at byte `value_start` (`key = value`), or `value_start`
/// when the text before the value is not a plain `key =`.
fn key_start(text: &str, value_start: usize) -> usize {
    let Some(before) = text.get(..value_start) else {
        return value_start;
    };
    let Some(before) = before.trim_end_matches([' ', '\t']).strip_suffix('=') else {
        return value_start;
    };
    let before = before.trim_end_matches([' ', '\t']);
    let key_start = if let Some(quoted) = before.strip_suffix('"') {
        quoted.rfind('"')
    } else {
        let bare =
            before.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        (bare.len() < before.len()).then_some(bare.len())
    };
    key_start.unwrap_or(value_start)
}

/// Rewrites a message of the TOML reader in the words of a plan file: TOML type names instead of
/// Rust ones, the table a missing key belongs in, and what each pattern kind takes.
fn explain(text: &str, span: Range<usize>, message: &str) -> String {
    let at = span.start;
    let mut m = message.to_string();
    if m.starts_with("invalid type") {
        for (rust, toml) in [
            ("expected f64", "expected a number"),
            ("expected i64", "expected a whole number"),
            ("expected a string", "expected a string in quotes"),
            ("expected a sequence", "expected an array"),
            ("map,", "table,"),
            ("sequence,", "array,"),
        ] {
            m = m.replace(rust, toml);
        }
    }
    let line = text
        .get(..at)
        .and_then(|b| b.rfind('\n').map(|i| i + 1).or(Some(0)))
        .and_then(|start| text.get(start..))
        .and_then(|rest| rest.lines().next())
        .unwrap_or("")
        .trim();
    if let Some(rest) = m.strip_prefix("missing field ").map(str::to_string) {
        // The reader gives the root table an empty span at 0, and any other table its header or value.
        let table = if span.start == 0 && (span.is_empty() || span.end == text.len()) {
            "at the top level of the plan".to_string()
        } else if line.starts_with('[') {
            format!("in the table `{line}`")
        } else {
            "in this table".to_string()
        };
        m = format!("missing key {rest} {table}");
        if rest == "`kind`" {
            if line.contains("pattern") {
                m.push_str(&format!(
                    "; a pattern's kind is one of {}",
                    one_of(PATTERN_KINDS)
                ));
            } else if line.contains("workload") {
                m.push_str(&format!(
                    "; a workload's kind is one of {}",
                    one_of(WORKLOAD_KINDS)
                ));
            }
        }
    }
    if m.starts_with("invalid type: table, expected an array")
        && line.starts_with('[')
        && !line.starts_with("[[")
    {
        m.push_str(&format!(
            "; a list of tables is written with double brackets: `[{line}]`"
        ));
    }
    if let Some(rest) = m.strip_prefix("unknown field ") {
        m = format!("unknown key {rest}");
    }
    if m.starts_with("unknown key") && m.contains("`kind`, `level`, `from`") {
        m.push_str(
            "; by kind: steady takes level; ramp takes from, to; steps takes levels, step_s; \
             square takes low, high, period_s, duty; sweep takes low, high, start_hz, end_hz",
        );
    }
    m
}

fn one_of(list: &[&str]) -> String {
    list.join(", ")
}

// ---------------------------------------------------------------------------------------------------
// The file as written

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    name: Spanned<String>,
    sample_hz: Option<Spanned<f64>>,
    expect: Spanned<ExpectFile>,
    limits: Option<LimitsFile>,
    #[serde(default)]
    phase: Vec<Spanned<PhaseFile>>,
}

/// `[expect.racks]`: rack name → node ids.
type RacksFile = BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    nodes: Option<Spanned<i64>>,
    racks: Option<Spanned<RacksFile>>,
    devices_per_node: Option<Spanned<i64>>,
    timeout_s: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    max_rack_kw: Option<Spanned<f64>>,
    max_node_kw: Option<Spanned<f64>>,
    max_gpu_temp_c: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseFile {
    name: Spanned<String>,
    workload: Spanned<WorkloadFile>,
    duration_s: Spanned<f64>,
    pattern: Option<Spanned<PatternFile>>,
}

/// `workload = "burn"` or `workload = { kind = "burn" }`; the table form is where workloads with
/// parameters (collectives, latency meshes) put them.
struct WorkloadFile {
    kind: String,
    /// The span of `kind` in the table form; the string form uses the whole value's span.
    kind_span: Option<Range<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadTable {
    kind: Spanned<String>,
}

impl<'de> Deserialize<'de> for WorkloadFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WorkloadFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a workload name ({}) or a table {{ kind = \"...\" }}",
                    one_of(WORKLOAD_KINDS)
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WorkloadFile, E> {
                Ok(WorkloadFile {
                    kind: v.to_string(),
                    kind_span: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WorkloadFile, A::Error> {
                let t = WorkloadTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let span = t.kind.span();
                Ok(WorkloadFile {
                    kind: t.kind.into_inner(),
                    kind_span: Some(span),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Every key of every pattern kind; which ones a kind takes is checked after reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternFile {
    kind: Spanned<String>,
    level: Option<Spanned<f64>>,
    from: Option<Spanned<f64>>,
    to: Option<Spanned<f64>>,
    levels: Option<Spanned<Vec<Spanned<f64>>>>,
    step_s: Option<Spanned<f64>>,
    low: Option<Spanned<f64>>,
    high: Option<Spanned<f64>>,
    period_s: Option<Spanned<f64>>,
    duty: Option<Spanned<f64>>,
    start_hz: Option<Spanned<f64>>,
    end_hz: Option<Spanned<f64>>,
}

// ---------------------------------------------------------------------------------------------------
// Conversion and checks

fn check_name(cx: &Cx, what: &str, name: &Spanned<String>) -> Result<String, PlanError> {
    let s = name.get_ref();
    let problem = if s.trim().is_empty() {
        Some("must not be empty".to_string())
    } else if s.chars().count() > MAX_NAME_LEN {
        Some(format!(
            "is {} characters long; at most {MAX_NAME_LEN} are allowed",
            s.chars().count()
        ))
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters".to_string())
    } else {
        None
    };
    match problem {
        Some(p) => Err(cx.err(name.span(), format!("{what} {p}"))),
        None => Ok(s.clone()),
    }
}

/// Seconds (fractional allowed) to whole milliseconds, at least 1 ms and at most `max_s`.
fn seconds_to_ms(
    cx: &Cx,
    ctx: &str,
    key: &str,
    v: &Spanned<f64>,
    max_s: f64,
) -> Result<u64, PlanError> {
    let s = *v.get_ref();
    if !(s.is_finite() && s > 0.0 && s <= max_s) {
        return Err(cx.err(
            v.span(),
            format!("{ctx}`{key}` = {s} is not allowed; give a duration in seconds greater than 0 and at most {max_s}"),
        ));
    }
    let ms = (s * 1000.0).round();
    if ms < 1.0 {
        return Err(cx.err(
            v.span(),
            format!("{ctx}`{key}` = {s} s rounds to 0 ms; the shortest allowed is 0.001 s"),
        ));
    }
    Ok(ms as u64)
}

fn check_level(cx: &Cx, ctx: &str, key: &str, v: &Spanned<f64>) -> Result<f64, PlanError> {
    let l = *v.get_ref();
    if (0.0..=1.0).contains(&l) {
        Ok(l)
    } else {
        Err(cx.err(
            v.span(),
            format!("{ctx}`{key}` = {l} is outside the allowed range 0.0 to 1.0 (the fraction of full load)"),
        ))
    }
}

impl PlanFile {
    fn convert(self, cx: &Cx) -> Result<Plan, PlanError> {
        let name = check_name(cx, "the plan's `name`", &self.name)?;
        let sample_hz = match &self.sample_hz {
            None => DEFAULT_SAMPLE_HZ,
            Some(v) => {
                let hz = *v.get_ref();
                if !(MIN_SAMPLE_HZ..=MAX_SAMPLE_HZ).contains(&hz) {
                    return Err(cx.err(
                        v.span(),
                        format!("`sample_hz` = {hz} is not allowed; the sampling rate must be within {MIN_SAMPLE_HZ} to {MAX_SAMPLE_HZ} Hz"),
                    ));
                }
                hz
            }
        };
        let expect = self.expect.get_ref().convert(cx, self.expect.span())?;
        let limits = match &self.limits {
            None => Limits::default(),
            Some(l) => l.convert(cx)?,
        };
        if self.phase.is_empty() {
            return Err(cx.err(
                0..0,
                "the plan has no phases; add at least one [[phase]] table with `name`, `workload`, `duration_s` and `pattern`",
            ));
        }
        let mut phases = Vec::with_capacity(self.phase.len());
        let mut seen: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for p in &self.phase {
            let phase = p.get_ref().convert(cx, p.span())?;
            let name_span = p.get_ref().name.span();
            if let Some(first) = seen.get(&phase.name) {
                return Err(cx.err(
                    name_span,
                    format!(
                        "phase name `{}` is already used by the phase at line {}; phase names must be unique within a plan",
                        phase.name,
                        cx.line_of(first)
                    ),
                ));
            }
            seen.insert(phase.name.clone(), name_span);
            phases.push(phase);
        }
        Ok(Plan {
            name,
            sample_hz,
            expect,
            limits,
            phases,
        })
    }
}

fn positive_count(cx: &Cx, key: &str, v: &Spanned<i64>) -> Result<usize, PlanError> {
    let n = *v.get_ref();
    if n < 1 || n > u32::MAX as i64 {
        return Err(cx.err(
            v.span(),
            format!("`expect.{key}` = {n} is not allowed; give a whole number of at least 1"),
        ));
    }
    Ok(n as usize)
}

impl ExpectFile {
    fn convert(&self, cx: &Cx, span: Range<usize>) -> Result<Expect, PlanError> {
        let nodes = match (&self.nodes, &self.racks) {
            (Some(_), Some(r)) => {
                return Err(cx.err(
                    r.span(),
                    "`[expect]` gives both `nodes` (a count) and `racks` (nodes by rack); give one of them",
                ))
            }
            (None, None) => {
                return Err(cx.err(
                    span,
                    "`[expect]` needs either `nodes = N` (how many nodes) or an `[expect.racks]` table (node ids by rack)",
                ))
            }
            (Some(n), None) => ExpectedNodes::Count(positive_count(cx, "nodes", n)?),
            (None, Some(racks)) => {
                if racks.get_ref().is_empty() {
                    return Err(cx.err(
                        racks.span(),
                        "`[expect.racks]` names no racks; list the node ids of each rack, e.g. rack01 = [\"r01-n01\", \"r01-n02\"]",
                    ));
                }
                let mut out = BTreeMap::new();
                let mut seen: BTreeMap<NodeId, (String, Range<usize>)> = BTreeMap::new();
                for (rack, nodes) in racks.get_ref() {
                    let rack_name = rack.get_ref();
                    if rack_name.trim().is_empty() || rack_name.chars().any(char::is_control) {
                        return Err(cx.err(
                            rack.span(),
                            "a rack name in `[expect.racks]` must be non-empty and free of control characters",
                        ));
                    }
                    if nodes.get_ref().is_empty() {
                        return Err(cx.err(
                            nodes.span(),
                            format!("rack `{rack_name}` in `[expect.racks]` lists no nodes; list at least one node id"),
                        ));
                    }
                    let mut ids = Vec::with_capacity(nodes.get_ref().len());
                    for node in nodes.get_ref() {
                        let id = NodeId::new(node.get_ref().as_str()).map_err(|e| {
                            cx.err(node.span(), format!("rack `{rack_name}`: {e}"))
                        })?;
                        if let Some((other, first)) = seen.get(&id) {
                            return Err(cx.err(
                                node.span(),
                                format!(
                                    "node `{id}` is already listed in rack `{other}` (line {}); a node can be expected only once",
                                    cx.line_of(first)
                                ),
                            ));
                        }
                        seen.insert(id.clone(), (rack_name.clone(), node.span()));
                        ids.push(id);
                    }
                    out.insert(rack_name.clone(), ids);
                }
                ExpectedNodes::Racks(out)
            }
        };
        let devices_per_node = match &self.devices_per_node {
            None => None,
            Some(v) => Some(positive_count(cx, "devices_per_node", v)? as u32),
        };
        let timeout_ms = match &self.timeout_s {
            None => DEFAULT_EXPECT_TIMEOUT_S * 1000,
            Some(v) => seconds_to_ms(cx, "", "expect.timeout_s", v, MAX_EXPECT_TIMEOUT_S)?,
        };
        Ok(Expect {
            nodes,
            devices_per_node,
            timeout_ms,
        })
    }
}

impl LimitsFile {
    fn convert(&self, cx: &Cx) -> Result<Limits, PlanError> {
        let check = |key: &str, v: &Option<Spanned<f64>>, max: f64, unit: &str| {
            let Some(v) = v else { return Ok(None) };
            let x = *v.get_ref();
            if x.is_finite() && x > 0.0 && x <= max {
                Ok(Some(x))
            } else {
                Err(cx.err(
                    v.span(),
                    format!("`limits.{key}` = {x} is not allowed; give a value greater than 0 and at most {max} {unit}"),
                ))
            }
        };
        Ok(Limits {
            max_rack_kw: check("max_rack_kw", &self.max_rack_kw, 10_000.0, "kW")?,
            max_node_kw: check("max_node_kw", &self.max_node_kw, 1_000.0, "kW")?,
            max_gpu_temp_c: check("max_gpu_temp_c", &self.max_gpu_temp_c, 150.0, "°C")?,
        })
    }
}

impl PhaseFile {
    fn convert(&self, cx: &Cx, span: Range<usize>) -> Result<PhaseSpec, PlanError> {
        let name = check_name(cx, "a phase's `name`", &self.name)?;
        let ctx = format!("phase `{name}`: ");
        let w = self.workload.get_ref();
        let workload = match w.kind.as_str() {
            "burn" => Workload::Burn,
            "idle" => Workload::Idle,
            other => {
                return Err(cx.err(
                    w.kind_span.clone().unwrap_or_else(|| self.workload.span()),
                    format!(
                        "{ctx}unknown workload `{other}`; expected one of {}",
                        one_of(WORKLOAD_KINDS)
                    ),
                ))
            }
        };
        let duration_ms = seconds_to_ms(cx, &ctx, "duration_s", &self.duration_s, MAX_PHASE_S)?;
        let pattern = match (&workload, &self.pattern) {
            (Workload::Idle, None) => Pattern::Steady { level: 0.0 },
            (Workload::Idle, Some(p)) => {
                return Err(cx.err(
                    p.span(),
                    format!("{ctx}an idle phase applies no load and takes no `pattern`; remove it, or use workload = \"burn\""),
                ))
            }
            (_, None) => {
                return Err(cx.err(
                    span,
                    format!(
                        "{ctx}a `{}` phase needs a `pattern`, e.g. pattern = {{ kind = \"steady\", level = 1.0 }}; kinds: {}",
                        w.kind,
                        one_of(PATTERN_KINDS)
                    ),
                ))
            }
            (_, Some(p)) => p.get_ref().convert(cx, &ctx, p.span(), duration_ms)?,
        };
        Ok(PhaseSpec {
            name,
            workload,
            pattern,
            duration_ms,
        })
    }
}

/// The keys each pattern kind takes (besides `kind`); `duty` is optional (default 0.5).
fn pattern_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "steady" => &["level"],
        "ramp" => &["from", "to"],
        "steps" => &["levels", "step_s"],
        "square" => &["low", "high", "period_s", "duty"],
        "sweep" => &["low", "high", "start_hz", "end_hz"],
        _ => return None,
    })
}

impl PatternFile {
    /// The keys present besides `kind`, with the spans of their values.
    fn present(&self) -> Vec<(&'static str, Range<usize>)> {
        let f = |k: &'static str, v: &Option<Spanned<f64>>| v.as_ref().map(|v| (k, v.span()));
        [
            f("level", &self.level),
            f("from", &self.from),
            f("to", &self.to),
            self.levels.as_ref().map(|v| ("levels", v.span())),
            f("step_s", &self.step_s),
            f("low", &self.low),
            f("high", &self.high),
            f("period_s", &self.period_s),
            f("duty", &self.duty),
            f("start_hz", &self.start_hz),
            f("end_hz", &self.end_hz),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn convert(
        &self,
        cx: &Cx,
        ctx: &str,
        span: Range<usize>,
        duration_ms: u64,
    ) -> Result<Pattern, PlanError> {
        let kind = self.kind.get_ref().as_str();
        let Some(keys) = pattern_keys(kind) else {
            return Err(cx.err(
                self.kind.span(),
                format!(
                    "{ctx}unknown pattern kind `{kind}`; expected one of {}",
                    one_of(PATTERN_KINDS)
                ),
            ));
        };
        let takes = || {
            keys.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (key, at) in self.present() {
            if !keys.contains(&key) {
                let at = key_start(cx.text, at.start);
                return Err(cx.err(
                    at..at,
                    format!(
                        "{ctx}`{key}` does not apply to a `{kind}` pattern; a {kind} pattern takes {}",
                        takes()
                    ),
                ));
            }
        }
        let need = |key: &str| {
            cx.err(
                span.clone(),
                format!(
                    "{ctx}a `{kind}` pattern needs `{key}`; a {kind} pattern takes {}",
                    takes()
                ),
            )
        };
        let level = |key: &str, v: &Option<Spanned<f64>>| match v {
            Some(v) => check_level(cx, ctx, key, v),
            None => Err(need(key)),
        };
        let hz = |key: &str, v: &Option<Spanned<f64>>| {
            let Some(v) = v else { return Err(need(key)) };
            let x = *v.get_ref();
            if x.is_finite() && x > 0.0 && x <= MAX_PATTERN_HZ {
                Ok(x)
            } else {
                Err(cx.err(
                    v.span(),
                    format!("{ctx}`{key}` = {x} is not allowed; give a frequency greater than 0 and at most {MAX_PATTERN_HZ} Hz"),
                ))
            }
        };
        let secs = |key: &str, v: &Option<Spanned<f64>>| match v {
            Some(v) => seconds_to_ms(cx, ctx, key, v, MAX_PHASE_S),
            None => Err(need(key)),
        };
        let pattern = match kind {
            "steady" => Pattern::Steady {
                level: level("level", &self.level)?,
            },
            "ramp" => Pattern::Ramp {
                from: level("from", &self.from)?,
                to: level("to", &self.to)?,
            },
            "steps" => {
                let Some(levels) = &self.levels else {
                    return Err(need("levels"));
                };
                if levels.get_ref().is_empty() {
                    return Err(cx.err(
                        levels.span(),
                        format!("{ctx}`levels` is empty; list at least one level from 0.0 to 1.0"),
                    ));
                }
                let values = levels
                    .get_ref()
                    .iter()
                    .map(|l| check_level(cx, ctx, "levels", l))
                    .collect::<Result<Vec<_>, _>>()?;
                let step_ms = secs("step_s", &self.step_s)?;
                let starts_last = (values.len() as u64 - 1).saturating_mul(step_ms);
                if starts_last >= duration_ms {
                    return Err(cx.err(
                        levels.span(),
                        format!(
                            "{ctx}{} levels of {} s each do not fit the phase's `duration_s` ({} s): level {} would never run; lengthen the phase to more than {} s or shorten `step_s`",
                            values.len(),
                            step_ms as f64 / 1000.0,
                            duration_ms as f64 / 1000.0,
                            values.len(),
                            starts_last as f64 / 1000.0
                        ),
                    ));
                }
                Pattern::Steps {
                    levels: values,
                    step_ms,
                }
            }
            "square" => {
                let duty = match &self.duty {
                    None => 0.5,
                    Some(d) => {
                        let x = *d.get_ref();
                        if !(0.0..=1.0).contains(&x) {
                            return Err(cx.err(
                                d.span(),
                                format!("{ctx}`duty` = {x} is outside the allowed range 0.0 to 1.0 (the fraction of each period at `high`)"),
                            ));
                        }
                        x
                    }
                };
                Pattern::Square {
                    low: level("low", &self.low)?,
                    high: level("high", &self.high)?,
                    period_ms: secs("period_s", &self.period_s)?,
                    duty,
                }
            }
            _ => Pattern::Sweep {
                low: level("low", &self.low)?,
                high: level("high", &self.high)?,
                start_hz: hz("start_hz", &self.start_hz)?,
                end_hz: hz("end_hz", &self.end_hz)?,
            },
        };
        // The checks above cover what `validate` checks; this keeps the two from drifting apart.
        pattern
            .validate()
            .map_err(|e| cx.err(span, format!("{ctx}pattern: {e}")))?;
        Ok(pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> PlanError {
        parse_plan(text, "t.toml").expect_err("plan should be refused")
    }

    const HEAD: &str = "name = \"t\"\n[expect]\nnodes = 2\n";

    #[test]
    fn demo_plans_parse_and_last_as_designed() {
        let demo = demo_plan(false);
        assert_eq!(demo.name, "demo");
        assert_eq!(demo.total_duration_ms(), 60_000);
        assert_eq!(demo.expect.node_count(), 80);
        assert_eq!(demo.expect.devices_per_node, Some(8));
        assert_eq!(demo.limits.max_rack_kw, Some(130.0));
        assert_eq!(
            demo.phases[2].pattern,
            Pattern::Square {
                low: 0.2,
                high: 1.0,
                period_ms: 1000,
                duty: 0.5
            }
        );
        let quick = demo_plan(true);
        assert_eq!(quick.total_duration_ms(), 15_000);
        let names: Vec<_> = quick.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["ramp", "steady", "square"]);
    }

    #[test]
    fn defaults_apply() {
        let plan = parse_plan(
            &format!("{HEAD}[[phase]]\nname = \"rest\"\nworkload = \"idle\"\nduration_s = 0.25\n"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(plan.sample_hz, DEFAULT_SAMPLE_HZ);
        assert_eq!(plan.expect.timeout_ms, 120_000);
        assert_eq!(plan.limits, Limits::default());
        assert_eq!(plan.phases[0].duration_ms, 250);
        assert_eq!(plan.phases[0].workload, Workload::Idle);
        assert_eq!(plan.phases[0].pattern, Pattern::Steady { level: 0.0 });
    }

    #[test]
    fn workload_table_form_and_integers_for_levels() {
        let plan = parse_plan(
            &format!("{HEAD}[[phase]]\nname = \"a\"\nworkload = {{ kind = \"burn\" }}\nduration_s = 1\n[phase.pattern]\nkind = \"ramp\"\nfrom = 0\nto = 1\n"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(plan.phases[0].workload, Workload::Burn);
        assert_eq!(plan.phases[0].pattern, Pattern::Ramp { from: 0.0, to: 1.0 });
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "ab\nçd\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 5), (2, 2)); // after the two-byte 'ç'
        assert_eq!(line_col(text, 100), (3, 1));
    }

    #[test]
    fn key_that_another_pattern_takes_is_refused_at_the_key() {
        let e = err(&format!(
            "{HEAD}[[phase]]\nname = \"a\"\nworkload = \"burn\"\nduration_s = 1\npattern = {{ kind = \"ramp\", level = 1.0, to = 1.0 }}\n"
        ));
        assert_eq!((e.line, e.column), (8, 28), "{e}");
        assert!(
            e.message
                .contains("`level` does not apply to a `ramp` pattern"),
            "{e}"
        );
    }

    #[test]
    fn steps_that_do_not_fit_are_refused() {
        let e = err(&format!(
            "{HEAD}[[phase]]\nname = \"s\"\nworkload = \"burn\"\nduration_s = 30\npattern = {{ kind = \"steps\", levels = [0.25, 0.5, 0.75, 1.0], step_s = 10 }}\n"
        ));
        assert!(e.message.contains("level 4 would never run"), "{e}");
    }

    #[test]
    fn display_is_file_line_column_message() {
        let e = PlanError {
            file: "p.toml".into(),
            line: 3,
            column: 7,
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "p.toml:3:7: bad");
    }
}
