//! The coordinator's side of fabric phases: who takes part, with which key, and — for collectives
//! through NCCL between GPUs — getting the NCCL unique id from the phase's first member before
//! the phase is sent.
//!
//! Every participant of the run with a data plane is a member of each fabric phase, in node-id
//! order (its rank). A collective phase goes through NCCL when its `transport` says `nccl`, or
//! `auto` and every member runs the cuda backend with at least one device: then one rank per GPU,
//! the members' GPU counts in member order, and the coordinator asks the first member for an
//! `ncclUniqueId` (`FabricPrepare`) as soon as the run starts. The id goes into the phase's
//! `PhaseStart`. If it does not come (an error, or not before the phase is sent), the phase falls
//! back to host collectives over the data plane and says why; where NCCL was required the run is
//! INCOMPLETE.
//!
//! Keys ([`keys`]): one random phase key per phase stays here; each member's order carries only the
//! keys of the pairs it is in. Data-plane addresses ([`subnet`]): a probe may announce only the IP
//! its control connection comes from, or one inside a configured fabric subnet.

pub mod keys;
pub mod subnet;

use crate::machine::{truncate_chars, ConnId, MAX_ERROR_LEN};
use hallmark_protocol::{
    CollectiveTransport, CoordinatorMessage, FabricMember, FabricParams, FabricPhase, NcclSetup,
    NodeId, PhaseStart,
};
pub use keys::PhaseKey;
use std::collections::BTreeMap;
use std::net::SocketAddr;
pub use subnet::{FabricSubnet, SubnetError};

/// A registered probe as the run sees it when deciding to start.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: NodeId,
    pub rack: String,
    pub devices: usize,
    pub conn: ConnId,
    pub clock_known: bool,
    pub data_plane: Option<SocketAddr>,
    /// The probe's backend (`sim`, `cpu`, `cuda`).
    pub backend: String,
}

/// A collective phase waiting for its NCCL unique id.
#[derive(Debug, Clone)]
pub(crate) struct NcclPlan {
    /// The first member, which makes the id.
    pub first: NodeId,
    pub gpus: Vec<u32>,
    /// The plan asked for NCCL (`transport = "nccl"`), rather than `auto`.
    pub required: bool,
}

/// A fabric phase's order and what the run lacks for it.
pub(crate) struct Assignment {
    /// The phase as the coordinator keeps it: no keys (they are filled per member).
    pub phase: FabricPhase,
    /// The phase's secret, which stays in the coordinator.
    pub key: PhaseKey,
    pub shortfall: Vec<String>,
    pub nccl: Option<NcclPlan>,
}

/// The fabric part of a phase's order: the members (every participant with a data plane, in node
/// order) and a fresh phase key; for collectives, whether they go through NCCL. Fails only when
/// no random key can be made.
pub(crate) fn assign(
    phase: &str,
    params: &FabricParams,
    participants: &[&Candidate],
) -> Result<Assignment, String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| {
        format!("no key for fabric phase {phase}: the operating system's random source failed: {e}")
    })?;
    let mut shortfall = Vec::new();
    let with: Vec<&&Candidate> = participants
        .iter()
        .filter(|c| c.data_plane.is_some())
        .collect();
    let without: Vec<String> = participants
        .iter()
        .filter(|c| c.data_plane.is_none())
        .map(|c| c.node.to_string())
        .collect();
    if !without.is_empty() {
        shortfall.push(format!(
            "left out of fabric phase {phase}: {} (no data plane: the probe was started without one)",
            without.join(", ")
        ));
    }
    if with.len() < 2 {
        shortfall.push(format!(
            "fabric phase {phase} has {} member(s) with a data plane; it needs at least 2",
            with.len()
        ));
    }
    let members: Vec<FabricMember> = with
        .iter()
        .filter_map(|c| {
            c.data_plane.map(|addr| FabricMember {
                node_id: c.node.clone(),
                addr,
            })
        })
        .collect();
    let nccl = match params {
        FabricParams::Collective(p) => nccl_plan(phase, p.transport, &with, &mut shortfall),
        FabricParams::Latency(_) => None,
    };
    Ok(Assignment {
        phase: FabricPhase {
            keys: Vec::new(),
            members,
            params: params.clone(),
            nccl: None,
        },
        key: PhaseKey::from_bytes(key),
        shortfall,
        nccl,
    })
}

/// Whether a collective phase goes through NCCL, and with how many GPUs per member.
fn nccl_plan(
    phase: &str,
    transport: CollectiveTransport,
    members: &[&&Candidate],
    shortfall: &mut Vec<String>,
) -> Option<NcclPlan> {
    let first = members.first()?;
    let not_gpu: Vec<String> = members
        .iter()
        .filter(|c| c.backend != "cuda" || c.devices == 0)
        .map(|c| format!("{} ({}, {} devices)", c.node, c.backend, c.devices))
        .collect();
    match transport {
        CollectiveTransport::DataPlane => None,
        CollectiveTransport::Auto if !not_gpu.is_empty() => None,
        CollectiveTransport::Nccl if !not_gpu.is_empty() => {
            shortfall.push(format!(
                "collective phase {phase} asks for NCCL but these members have no GPUs on the cuda backend: {}; its collectives run over the data plane instead",
                not_gpu.join(", ")
            ));
            None
        }
        CollectiveTransport::Auto | CollectiveTransport::Nccl => Some(NcclPlan {
            first: first.node.clone(),
            gpus: members
                .iter()
                .map(|c| u32::try_from(c.devices).unwrap_or(u32::MAX))
                .collect(),
            required: transport == CollectiveTransport::Nccl,
        }),
    }
}

/// The NCCL setups waiting for their unique id, by phase id.
#[derive(Debug, Default)]
pub(crate) struct NcclWaits {
    pending: BTreeMap<u32, NcclPlan>,
}

/// What became of a phase's NCCL setup.
pub(crate) enum NcclOutcome {
    /// The id came: the phase goes through NCCL.
    Ready(NcclSetup),
    /// No NCCL for this phase: why, and whether the plan required it.
    Fallback { why: String, required: bool },
}

impl NcclWaits {
    pub fn insert(&mut self, phase_id: u32, plan: NcclPlan) {
        self.pending.insert(phase_id, plan);
    }

    /// The first member's answer for `phase_id`; `None` when nothing waits for it from `node`.
    pub fn answer(
        &mut self,
        node: &NodeId,
        phase_id: u32,
        id: Result<Vec<u8>, String>,
    ) -> Option<NcclOutcome> {
        if self.pending.get(&phase_id).is_none_or(|p| &p.first != node) {
            return None;
        }
        let plan = self.pending.remove(&phase_id)?;
        Some(match id {
            Ok(unique_id) if unique_id.len() == NcclSetup::ID_LEN => {
                NcclOutcome::Ready(NcclSetup {
                    unique_id,
                    gpus: plan.gpus,
                })
            }
            Ok(other) => NcclOutcome::Fallback {
                why: format!(
                    "{node} sent an NCCL unique id of {} bytes instead of {}",
                    other.len(),
                    NcclSetup::ID_LEN
                ),
                required: plan.required,
            },
            Err(mut e) => {
                // The probe's words go into the run's reason: as long as an error report may be.
                truncate_chars(&mut e, MAX_ERROR_LEN);
                NcclOutcome::Fallback {
                    why: format!("{node} could not make an NCCL unique id: {e}"),
                    required: plan.required,
                }
            }
        })
    }

    /// The phase is due to be sent: if its id has not come, it falls back.
    pub fn due(&mut self, phase_id: u32) -> Option<NcclOutcome> {
        let plan = self.pending.remove(&phase_id)?;
        Some(NcclOutcome::Fallback {
            why: format!(
                "no NCCL unique id from {} before the phase was sent",
                plan.first
            ),
            required: plan.required,
        })
    }
}

/// A phase's order for one participant. Only a fabric phase's members get its members, keys and
/// parameters, and each member only the keys of the pairs it is in (derived from `key`, the
/// phase's key, which is never sent): a participant left out of it (no data plane) holds no key
/// of the phase, and runs the phase's device pattern alone.
pub(crate) fn order_for(
    start: &PhaseStart,
    key: Option<&PhaseKey>,
    node: &NodeId,
) -> CoordinatorMessage {
    let mut order = start.clone();
    if let Some(f) = order.fabric.as_mut() {
        match (f.rank_of(node), key) {
            (Some(rank), Some(key)) => f.keys = key.keys_for(start.phase_id, &f.members, rank),
            (Some(_), None) => f.keys = Vec::new(),
            (None, _) => order.fabric = None,
        }
    }
    CoordinatorMessage::PhaseStart(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::CollectiveParams;

    fn cand(node: &str, backend: &str, devices: usize, dp: bool) -> Candidate {
        Candidate {
            node: NodeId::new(node).unwrap(),
            rack: "r".into(),
            devices,
            conn: 0,
            clock_known: true,
            data_plane: dp.then(|| "127.0.0.1:7000".parse().unwrap()),
            backend: backend.into(),
        }
    }

    fn collective(transport: CollectiveTransport) -> FabricParams {
        FabricParams::Collective(CollectiveParams {
            transport,
            ..CollectiveParams::default()
        })
    }

    #[test]
    fn members_are_the_participants_with_a_data_plane_and_each_phase_gets_its_own_key() {
        let (a, b, c) = (
            cand("a", "sim", 8, true),
            cand("b", "sim", 8, false),
            cand("c", "sim", 8, true),
        );
        let p = FabricParams::Latency(Default::default());
        let one = assign("mesh", &p, &[&a, &b, &c]).unwrap();
        let two = assign("mesh", &p, &[&a, &b, &c]).unwrap();
        let names: Vec<_> = one
            .phase
            .members
            .iter()
            .map(|m| m.node_id.as_str())
            .collect();
        assert_eq!(names, ["a", "c"]);
        assert!(one.shortfall[0].contains("left out of fabric phase mesh: b"));
        assert_ne!(one.key, two.key, "a fresh phase key per phase");
        assert!(one.phase.keys.is_empty(), "the kept phase carries no keys");
        assert!(one.nccl.is_none());
        let alone = assign("mesh", &p, &[&a]).unwrap();
        assert!(alone.shortfall[0].contains("needs at least 2"));
    }

    #[test]
    fn members_get_only_their_pair_keys_and_non_members_nothing() {
        let (a, b) = (cand("a", "sim", 8, true), cand("b", "sim", 8, false));
        let (c, d) = (cand("c", "sim", 8, true), cand("d", "sim", 8, true));
        let p = FabricParams::Latency(Default::default());
        let x = assign("mesh", &p, &[&a, &b, &c, &d]).unwrap();
        let (fabric, key) = (x.phase, x.key);
        let start = PhaseStart {
            phase_id: 4,
            name: "mesh".into(),
            workload: hallmark_protocol::Workload::Latency,
            pattern: hallmark_protocol::pattern::Pattern::Steady { level: 0.0 },
            start_at_ns: 0,
            duration_ms: 1000,
            sample_hz: 1.0,
            fabric: Some(fabric.clone()),
            target_power_w: None,
        };
        let fabric_of = |node: &Candidate| match order_for(&start, Some(&key), &node.node) {
            CoordinatorMessage::PhaseStart(p) => p.fabric,
            _ => None,
        };
        // Members a, c, d are ranks 0, 1, 2: each gets the keys of its two pairs.
        for (cand, rank) in [(&a, 0), (&c, 1), (&d, 2)] {
            let got = fabric_of(cand).expect("a member gets the phase");
            assert_eq!(got.members, fabric.members);
            assert_eq!(got.keys, key.keys_for(4, &fabric.members, rank));
            let ranks: Vec<u32> = got.keys.iter().map(|k| k.rank).collect();
            let want: Vec<u32> = (0..3).filter(|&r| r != rank as u32).collect();
            assert_eq!(ranks, want);
        }
        assert_eq!(fabric_of(&b), None, "b has no data plane: no key");
        // The order names the keys, never the phase key itself.
        let order = format!("{:?}", order_for(&start, Some(&key), &a.node));
        assert!(order.contains("PairKey(..)") && !order.contains("PhaseKey"));
    }

    #[test]
    fn collectives_go_through_nccl_when_every_member_has_gpus_on_cuda() {
        let (a, b) = (cand("a", "cuda", 8, true), cand("b", "cuda", 4, true));
        let x = assign("ar", &collective(CollectiveTransport::Auto), &[&a, &b]).unwrap();
        let plan = x.nccl.expect("nccl");
        assert_eq!(
            (plan.first.as_str(), plan.gpus.clone(), plan.required),
            ("a", vec![8, 4], false)
        );
        let host = assign("ar", &collective(CollectiveTransport::DataPlane), &[&a, &b]).unwrap();
        assert!(host.nccl.is_none());
        let c = cand("c", "cpu", 1, true);
        let auto = assign("ar", &collective(CollectiveTransport::Auto), &[&a, &c]).unwrap();
        assert!(auto.nccl.is_none() && auto.shortfall.is_empty());
        let req = assign("ar", &collective(CollectiveTransport::Nccl), &[&a, &c]).unwrap();
        assert!(req.nccl.is_none());
        assert!(
            req.shortfall[0].contains("c (cpu, 1 devices)"),
            "{:?}",
            req.shortfall
        );
    }

    #[test]
    fn the_id_comes_from_the_first_member_or_the_phase_falls_back() {
        let plan = NcclPlan {
            first: NodeId::new("a").unwrap(),
            gpus: vec![8, 8],
            required: true,
        };
        let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
        let mut w = NcclWaits::default();
        w.insert(3, plan.clone());
        assert!(
            w.answer(&b, 3, Ok(vec![0; 128])).is_none(),
            "only the first member"
        );
        match w.answer(&a, 3, Ok(vec![7; 128])) {
            Some(NcclOutcome::Ready(s)) => assert_eq!((s.unique_id[0], s.world()), (7, 16)),
            _ => panic!("ready"),
        }
        assert!(w.due(3).is_none(), "answered: nothing left to fall back");
        w.insert(4, plan.clone());
        match w.answer(&a, 4, Ok(vec![0; 5])) {
            Some(NcclOutcome::Fallback { why, required }) => {
                assert!(why.contains("5 bytes") && required)
            }
            _ => panic!("fallback"),
        }
        w.insert(6, plan.clone());
        match w.answer(&a, 6, Err("e".repeat(100_000))) {
            Some(NcclOutcome::Fallback { why, .. }) => {
                assert!(why.contains("[cut]"), "{why}");
                assert!(why.len() < MAX_ERROR_LEN + 100, "{} bytes", why.len());
            }
            _ => panic!("fallback"),
        }
        w.insert(5, plan);
        match w.due(5) {
            Some(NcclOutcome::Fallback { why, .. }) => assert!(why.contains("before the phase")),
            _ => panic!("fallback"),
        }
    }
}
