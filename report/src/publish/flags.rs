//! What makes runs not like for like, named on the page above the charts: different specs (or one
//! judged and one not), different plans, different measurement methods (GPU-side sensor, sample
//! rate, facility meters present), different quality levels, simulated beside real runs. Nothing is
//! refused here: the runs are drawn side by side, never pooled, and the page says what differs.

use super::model::PublishRun;
use super::quality::quality;
use serde::Serialize;
use std::collections::BTreeSet;

/// One difference between the runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// `spec`, `plan`, `method`, `quality` or `simulated`.
    pub kind: String,
    /// What differs, naming every run's side.
    pub message: String,
}

fn who(r: &PublishRun) -> String {
    format!("{} ({})", r.name, r.run_id)
}

/// Each run and its value of `f`, when the runs do not all share one.
fn differs(runs: &[PublishRun], f: impl Fn(&PublishRun) -> String) -> Option<String> {
    let values: Vec<String> = runs.iter().map(&f).collect();
    let distinct: BTreeSet<&String> = values.iter().collect();
    (distinct.len() > 1).then(|| {
        runs.iter()
            .zip(&values)
            .map(|(r, v)| format!("{}: {v}", who(r)))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn rate(hz: Option<f64>) -> String {
    match hz.filter(|v| v.is_finite()) {
        Some(v) => format!("{v} Hz"),
        None => "rate unknown".into(),
    }
}

/// The differences between `runs`, in a fixed order.
pub fn flags(runs: &[PublishRun]) -> Vec<Flag> {
    let mut out = Vec::new();
    let mut push = |kind: &str, head: &str, body: Option<String>, tail: &str| {
        if let Some(b) = body {
            out.push(Flag {
                kind: kind.into(),
                message: format!("{head}: {b}. {tail}"),
            });
        }
    };
    push(
        "spec",
        "Judged against different specs",
        differs(runs, |r| match &r.spec {
            Some(s) => format!("{} (sha256 {})", s.name, s.sha256),
            None => "not judged".into(),
        }),
        "Their verdict counts answer different questions and are not comparable.",
    );
    push(
        "plan",
        "Different plans",
        differs(runs, |r| {
            format!("{} (sha256 {})", r.plan_name, r.plan_sha256)
        }),
        "The load differs, so the figures measure different work.",
    );
    push(
        "method",
        "Different GPU-side sensors",
        differs(runs, |r| {
            r.method.gpu_sensor.clone().unwrap_or_else(|| "none".into())
        }),
        "Power and temperature come from different instruments.",
    );
    push(
        "method",
        "Different device sample rates",
        differs(runs, |r| rate(r.method.gpu_sample_hz)),
        "Short peaks are seen differently.",
    );
    push(
        "method",
        "Thermal resistance measured differently",
        differs(runs, |r| {
            r.method
                .thermal_method
                .clone()
                .unwrap_or_else(|| "not measured".into())
        }),
        "Resistances over the coolant supply and from an idle-to-load differential are not the same figure.",
    );
    push(
        "method",
        "Different facility meters",
        differs(runs, |r| {
            let kinds: Vec<&str> = r.method.meters.iter().map(|m| m.kind.as_str()).collect();
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(" + ")
            }
        }),
        "Rack and cooling figures rest on different meters.",
    );
    push(
        "quality",
        "Different measurement quality levels",
        differs(runs, |r| quality(&r.method).level.to_string()),
        "See each run's method below.",
    );
    push(
        "simulated",
        "Simulated and real runs together",
        differs(runs, |r| {
            if r.simulated.is_some() {
                "SIMULATED".into()
            } else {
                "real hardware".into()
            }
        }),
        "A simulated run's figures come from a model and certify no hardware.",
    );
    out
}
