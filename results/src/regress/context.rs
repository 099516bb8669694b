//! Whether two runs may be compared, and what else differs between them.
//!
//! Two runs are **comparable** when they ran the same plan (its SHA-256), in the same hall, were
//! judged against the same spec (when both were certified) and carry the same device models in the
//! same numbers — conbench's rule of refusing to compare runs of different hardware. What differs
//! beyond that is the **context diff**, always shown: hallmark versions, the probes' backends and
//! versions, and the inventory (nodes and devices added, removed or replaced). Pure: it reads two
//! [`RunContext`]s and returns flat records.

use hallmark_store::RunContext;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One thing that differs between BASE and NEW, as text on each side (`null`: absent there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub what: String,
    pub base: Option<String>,
    pub new: Option<String>,
}

impl Difference {
    fn new(what: impl Into<String>, base: Option<String>, new: Option<String>) -> Difference {
        Difference {
            what: what.into(),
            base,
            new,
        }
    }
}

/// Inventory changes beyond this many are summarised in one line each way.
const MAX_LISTED: usize = 20;

/// What makes BASE and NEW incomparable: empty when they are comparable.
pub fn incomparable(base: &RunContext, new: &RunContext) -> Vec<Difference> {
    let mut out = Vec::new();
    if base.plan_sha256 != new.plan_sha256 {
        out.push(Difference::new(
            "plan (SHA-256 of the plan as written)",
            Some(format!(
                "{} {}",
                base.run.plan_name,
                short(&base.plan_sha256)
            )),
            Some(format!("{} {}", new.run.plan_name, short(&new.plan_sha256))),
        ));
    }
    if base.halls != new.halls {
        out.push(Difference::new(
            "hall",
            Some(base.halls.join(", ")),
            Some(new.halls.join(", ")),
        ));
    }
    if let (Some(b), Some(n)) = (&base.spec_sha256, &new.spec_sha256) {
        if b != n {
            out.push(Difference::new(
                "spec (SHA-256 of the spec the run was certified against)",
                Some(format!("{} {}", side_name(&base.spec_name), short(b))),
                Some(format!("{} {}", side_name(&new.spec_name), short(n))),
            ));
        }
    }
    let (bm, nm) = (model_counts(base), model_counts(new));
    if bm != nm {
        out.push(Difference::new(
            "device models",
            Some(counts_text(&bm)),
            Some(counts_text(&nm)),
        ));
    }
    out
}

/// Everything else that differs: versions, backends, certification, inventory.
pub fn context_diff(base: &RunContext, new: &RunContext) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut differ = |what: &str, b: Option<String>, n: Option<String>| {
        if b != n {
            out.push(Difference::new(what, b, n));
        }
    };
    differ(
        "hallmark version (coordinator)",
        Some(base.hallmark_version.clone()),
        Some(new.hallmark_version.clone()),
    );
    differ(
        "hallmark versions (probes)",
        Some(distinct(
            base.probes.iter().map(|p| p.hallmark_version.as_str()),
        )),
        Some(distinct(
            new.probes.iter().map(|p| p.hallmark_version.as_str()),
        )),
    );
    differ(
        "backends (probes)",
        Some(distinct(base.probes.iter().map(|p| p.backend.as_str()))),
        Some(distinct(new.probes.iter().map(|p| p.backend.as_str()))),
    );
    differ(
        "certified against",
        base.spec_name.clone(),
        new.spec_name.clone(),
    );
    out.extend(inventory_diff(base, new));
    out
}

/// Nodes that joined or left, and devices whose identity (UUID, serial) or model changed.
fn inventory_diff(base: &RunContext, new: &RunContext) -> Vec<Difference> {
    let nodes = |c: &RunContext| -> BTreeSet<String> {
        c.probes.iter().map(|p| p.node_id.clone()).collect()
    };
    let (bn, nn) = (nodes(base), nodes(new));
    let mut out = Vec::new();
    let left: Vec<&String> = bn.difference(&nn).collect();
    let joined: Vec<&String> = nn.difference(&bn).collect();
    if !left.is_empty() {
        out.push(Difference::new(
            format!("nodes only in BASE ({})", left.len()),
            Some(listed(&left)),
            None,
        ));
    }
    if !joined.is_empty() {
        out.push(Difference::new(
            format!("nodes only in NEW ({})", joined.len()),
            None,
            Some(listed(&joined)),
        ));
    }
    let devices = |c: &RunContext| -> BTreeMap<(String, u16), String> {
        c.devices
            .iter()
            .map(|d| {
                let id = format!(
                    "{} uuid {} serial {}",
                    d.model,
                    d.uuid,
                    d.serial.as_deref().unwrap_or("-")
                );
                ((d.node_id.clone(), d.device), id)
            })
            .collect()
    };
    let (bd, nd) = (devices(base), devices(new));
    let mut replaced = 0usize;
    for ((node, index), b) in &bd {
        if let Some(n) = nd.get(&(node.clone(), *index)) {
            if b != n {
                replaced += 1;
                if replaced <= MAX_LISTED {
                    out.push(Difference::new(
                        format!("device {node}/{index} replaced"),
                        Some(b.clone()),
                        Some(n.clone()),
                    ));
                }
            }
        }
    }
    if replaced > MAX_LISTED {
        out.push(Difference::new(
            format!("devices replaced: {} more", replaced - MAX_LISTED),
            None,
            None,
        ));
    }
    out
}

/// Device model → count.
fn model_counts(c: &RunContext) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in &c.devices {
        *m.entry(d.model.clone()).or_insert(0) += 1;
    }
    m
}

fn counts_text(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "no devices".into();
    }
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{v} × {k}")).collect();
    parts.join(", ")
}

fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let set: BTreeSet<&str> = it.collect();
    if set.is_empty() {
        return "none".into();
    }
    set.into_iter().collect::<Vec<_>>().join(", ")
}

fn listed(v: &[&String]) -> String {
    let mut s: Vec<&str> = v.iter().take(MAX_LISTED).map(|s| s.as_str()).collect();
    let more = v.len().saturating_sub(MAX_LISTED);
    let extra = format!("… {more} more");
    if more > 0 {
        s.push(&extra);
    }
    s.join(", ")
}

fn side_name(name: &Option<String>) -> &str {
    name.as_deref().unwrap_or("-")
}

/// The first 12 hex digits of a SHA-256, as shown to people.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
