//! Conversion and checks: the file structs into a [`Plan`], every value checked and every refusal
//! a [`PlanError`] at the offending key or value that says what is allowed.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::errors::{key_start, one_of, Cx};
use super::file::{ExpectFile, LimitsFile, PatternFile, PhaseFile, PlanFile};
use super::workload::convert_workload;
use super::{
    Expect, ExpectedNodes, Limits, PhaseSpec, Plan, PlanError, DEFAULT_EXPECT_TIMEOUT_S,
    DEFAULT_SAMPLE_HZ, MAX_EXPECT_TIMEOUT_S, MAX_NAME_LEN, MAX_PATTERN_HZ, MAX_PHASE_S,
    MAX_SAMPLE_HZ, MIN_SAMPLE_HZ, PATTERN_KINDS,
};
use crate::ids::NodeId;
use crate::message::Workload;
use crate::pattern::Pattern;

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
    /// The plan, every value checked.
    pub(super) fn convert(self, cx: &Cx) -> Result<Plan, PlanError> {
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
        let spec = convert_workload(cx, &ctx, &self.workload)?;
        let workload = spec.workload.clone();
        let duration_ms = seconds_to_ms(cx, &ctx, "duration_s", &self.duration_s, MAX_PHASE_S)?;
        let pattern = match (&workload, &self.pattern) {
            (Workload::Idle, None) => Pattern::Steady { level: 0.0 },
            // Fabric phases load nothing unless they say so; a power target is held in full.
            (Workload::Latency | Workload::Collective, None) => Pattern::Steady { level: 0.0 },
            (Workload::TargetPower, None) => Pattern::Steady { level: 1.0 },
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
            fabric: spec.fabric,
            target_power_w: spec.target_power_w,
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
