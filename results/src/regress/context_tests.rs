//! Unit tests of the context diff's software versions, on two hand-made run contexts.

use super::*;
use hallmark_store::{ContextProbe, RunId, RunRow, RunStatus};

fn probe(node: &str, software: &[(&str, &str)]) -> ContextProbe {
    ContextProbe {
        node_id: node.into(),
        backend: "cuda".into(),
        hallmark_version: "0.1.0".into(),
        hall: "h".into(),
        row: "r".into(),
        rack: "k".into(),
        software: software
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

fn context(probes: Vec<ContextProbe>) -> RunContext {
    RunContext {
        run: RunRow {
            run_id: RunId::new("20260101T000000Z-000000"),
            name: "weekly".into(),
            plan_name: "weekly".into(),
            hall: Some("h".into()),
            started_at_ns: 0,
            ended_at_ns: Some(1),
            status: RunStatus::Complete,
            status_reason: None,
            probes: probes.len() as u64,
            samples: 0,
        },
        plan_sha256: "a".repeat(64),
        hallmark_version: "0.1.0".into(),
        halls: vec!["h".into()],
        spec_name: None,
        spec_sha256: None,
        probes,
        devices: Vec::new(),
    }
}

/// `nodes` nodes n01.. all with `software`.
fn uniform(nodes: usize, software: &[(&str, &str)]) -> Vec<ContextProbe> {
    (1..=nodes)
        .map(|i| probe(&format!("n{i:02}"), software))
        .collect()
}

fn software(d: &[Difference]) -> Vec<&Difference> {
    d.iter()
        .filter(|d| d.what.starts_with("software "))
        .collect()
}

#[test]
fn the_same_versions_on_every_node_of_both_runs_show_nothing() {
    let sw = [("cuda_driver", "12.8"), ("cublas", "12.8.4")];
    let (base, new) = (context(uniform(4, &sw)), context(uniform(4, &sw)));
    assert!(context_diff(&base, &new).is_empty());
}

#[test]
fn a_driver_update_between_the_runs_is_a_difference() {
    let base = context(uniform(
        64,
        &[("cuda_driver", "12.8"), ("cublas", "12.8.4")],
    ));
    let new = context(uniform(
        64,
        &[("cuda_driver", "12.9"), ("cublas", "12.8.4")],
    ));
    let d = context_diff(&base, &new);
    assert_eq!(
        software(&d),
        [&Difference::new(
            "software cuda_driver",
            Some("12.8 (64 nodes)".into()),
            Some("12.9 (64 nodes)".into())
        )]
    );
}

#[test]
fn nodes_that_differ_within_a_run_are_named() {
    let base = context(uniform(3, &[("cuda_driver", "12.8")]));
    let mut probes = uniform(3, &[("cuda_driver", "12.8")]);
    probes.push(probe("n04", &[("cuda_driver", "12.9")]));
    probes.push(probe("n05", &[]));
    let new = context(probes);
    let d = context_diff(&base, &new);
    let sw = software(&d);
    assert_eq!(sw.len(), 1, "{d:?}");
    assert_eq!(sw[0].base.as_deref(), Some("12.8 (3 nodes)"));
    assert_eq!(
        sw[0].new.as_deref(),
        Some("12.8 (3 nodes), 12.9 (1 node: n04), not listed (1 node: n05)")
    );
    // A run mixed on its own shows even when the other run is mixed the same way.
    let again = context_diff(&new, &new.clone());
    assert_eq!(software(&again).len(), 1, "{again:?}");
}

#[test]
fn software_only_one_run_lists_is_absent_on_the_other_side() {
    let base = context(uniform(2, &[]));
    let new = context(uniform(2, &[("cublas", "13.0.2")]));
    let d = context_diff(&base, &new);
    assert_eq!(
        software(&d),
        [&Difference::new(
            "software cublas",
            None,
            Some("13.0.2 (2 nodes)".into())
        )]
    );
}
