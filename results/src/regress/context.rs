//! Whether two runs may be compared, and what else differs between them.
//!
//! Two runs are **comparable** when they ran the same plan (its SHA-256), in the same hall, were
//! judged against the same spec (when both were certified) and carry the same device models in the
//! same numbers — conbench's rule of refusing to compare runs of different hardware. What differs
//! beyond that is the **context diff**, always shown: hallmark versions, the probes' backends and
//! versions, their driver and library versions (CUDA driver, NVML, cuBLAS, kernel: each name's
//! versions across the run's probes, with how many nodes run each, so that a change between the
//! runs and nodes that differ within one both show) and the inventory (nodes and devices added,
//! removed or replaced). Pure: it reads two [`RunContext`]s and returns flat records.

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
    out.extend(software_diff(base, new));
    out.extend(inventory_diff(base, new));
    out
}

/// Software name → version → the nodes that run it.
type SoftwareNodes<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a str>>>;

fn software_nodes(c: &RunContext) -> SoftwareNodes<'_> {
    let mut m: SoftwareNodes<'_> = BTreeMap::new();
    for p in &c.probes {
        for (name, version) in &p.software {
            m.entry(name.as_str())
                .or_default()
                .entry(version.as_str())
                .or_default()
                .push(p.node_id.as_str());
        }
    }
    m
}

/// Per software name, its versions on each side: a Difference when they differ between the
/// runs, or when the nodes of either run do not all run the same one (a node that did not list
/// the name counts as "not listed" there).
fn software_diff(base: &RunContext, new: &RunContext) -> Vec<Difference> {
    let (b, n) = (software_nodes(base), software_nodes(new));
    let names: BTreeSet<&str> = b.keys().chain(n.keys()).copied().collect();
    let mut out = Vec::new();
    for name in names {
        let (bv, nv) = (b.get(name), n.get(name));
        let keys = |v: Option<&BTreeMap<&str, Vec<&str>>>| -> Vec<String> {
            v.map(|v| v.keys().map(|k| k.to_string()).collect())
                .unwrap_or_default()
        };
        let mixed = |c: &RunContext, v: Option<&BTreeMap<&str, Vec<&str>>>| {
            v.is_some_and(|v| v.len() > 1 || unlisted(c, v).is_some())
        };
        if keys(bv) != keys(nv) || mixed(base, bv) || mixed(new, nv) {
            out.push(Difference::new(
                format!("software {name}"),
                bv.map(|v| versions_text(base, v)),
                nv.map(|v| versions_text(new, v)),
            ));
        }
    }
    out
}

/// The nodes of `c` that list none of the versions in `v`, if any.
fn unlisted<'a>(c: &'a RunContext, v: &BTreeMap<&str, Vec<&str>>) -> Option<Vec<&'a String>> {
    let listed: BTreeSet<&str> = v.values().flatten().copied().collect();
    let rest: Vec<&String> = c
        .probes
        .iter()
        .map(|p| &p.node_id)
        .filter(|n| !listed.contains(n.as_str()))
        .collect();
    (!rest.is_empty()).then_some(rest)
}

/// "12.8 (64 nodes)"; with several versions, the nodes of all but the most common one named:
/// "12.8 (62 nodes), 12.9 (2 nodes: n07, n12)".
fn versions_text(c: &RunContext, v: &BTreeMap<&str, Vec<&str>>) -> String {
    let mut parts: Vec<(String, Vec<&str>)> = v
        .iter()
        .map(|(version, nodes)| (version.to_string(), nodes.clone()))
        .collect();
    if let Some(rest) = unlisted(c, v) {
        parts.push((
            "not listed".into(),
            rest.iter().map(|s| s.as_str()).collect(),
        ));
    }
    let most = parts
        .iter()
        .map(|(_, nodes)| nodes.len())
        .max()
        .unwrap_or(0);
    let mut named_most = false;
    let texts: Vec<String> = parts
        .iter()
        .map(|(version, nodes)| {
            let count = nodes_count(nodes.len());
            if parts.len() == 1 || (nodes.len() == most && !named_most) {
                named_most = true;
                return format!("{version} ({count})");
            }
            let ids: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
            let ids: Vec<&String> = ids.iter().collect();
            format!("{version} ({count}: {})", listed(&ids))
        })
        .collect();
    texts.join(", ")
}

fn nodes_count(n: usize) -> String {
    if n == 1 {
        "1 node".into()
    } else {
        format!("{n} nodes")
    }
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

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
