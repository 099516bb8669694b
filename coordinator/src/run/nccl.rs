//! A collective phase through NCCL in a run: its first member's unique id (or why there is none)
//! put into the phase's order before it is sent, or the phase falls back to the data plane.

use super::{Run, ScheduledPhase};
use crate::fabric::NcclOutcome;
use crate::machine::{Event, Outputs};
use hallmark_protocol::NodeId;

impl Run {
    /// The first member of an NCCL collective phase sent its unique id (or why it has none).
    pub fn on_fabric_prepared(
        &mut self,
        node: &NodeId,
        phase_id: u32,
        id: Result<Vec<u8>, String>,
        out: &mut Outputs,
    ) {
        let Some(outcome) = self.nccl.answer(node, phase_id, id) else {
            return;
        };
        apply_nccl(
            &mut self.phases,
            &mut self.shortfalls,
            phase_id,
            outcome,
            out,
        );
    }
}

/// Puts a phase's NCCL outcome into its order: the setup, or the fallback to the data plane with
/// the reason (an event; a shortfall too where the plan required NCCL).
pub(super) fn apply_nccl(
    phases: &mut [ScheduledPhase],
    shortfalls: &mut Vec<String>,
    phase_id: u32,
    outcome: NcclOutcome,
    out: &mut Outputs,
) {
    let Some(p) = phases.get_mut(phase_id as usize) else {
        return;
    };
    let Some(f) = p.start.fabric.as_mut() else {
        return;
    };
    match outcome {
        NcclOutcome::Ready(setup) => f.nccl = Some(setup),
        NcclOutcome::Fallback { why, required } => {
            f.nccl = None;
            let message = format!(
                "collective phase {}: {why}; its collectives run over the data plane instead",
                p.start.name
            );
            if required {
                shortfalls.push(message.clone());
            }
            out.events.push_back(Event::RunNote { message });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::{FabricParams, FabricPhase, PhaseStart};

    #[test]
    fn a_fallback_names_its_phase_and_is_a_shortfall_where_nccl_was_required() {
        let fabric = FabricPhase {
            keys: Vec::new(),
            members: Vec::new(),
            params: FabricParams::Latency(Default::default()),
            nccl: None,
        };
        let phase = |i: u32, fabric: Option<FabricPhase>| ScheduledPhase {
            start: PhaseStart {
                phase_id: i,
                name: format!("p{i}"),
                workload: hallmark_protocol::Workload::Latency,
                pattern: hallmark_protocol::pattern::Pattern::Steady { level: 0.0 },
                start_at_ns: 0,
                duration_ms: 1000,
                sample_hz: 1.0,
                fabric,
                target_power_w: None,
            },
            key: None,
        };
        let mut phases = vec![phase(0, None), phase(1, Some(fabric))];
        let (mut shortfalls, mut out) = (Vec::new(), Outputs::default());
        let fallback = |required| NcclOutcome::Fallback {
            why: "no id".into(),
            required,
        };
        apply_nccl(&mut phases, &mut shortfalls, 0, fallback(true), &mut out);
        apply_nccl(&mut phases, &mut shortfalls, 7, fallback(true), &mut out);
        assert!(
            out.events.is_empty() && shortfalls.is_empty(),
            "no such fabric phase"
        );
        apply_nccl(&mut phases, &mut shortfalls, 1, fallback(false), &mut out);
        apply_nccl(&mut phases, &mut shortfalls, 1, fallback(true), &mut out);
        let want = "collective phase p1: no id; its collectives run over the data plane instead";
        assert_eq!(shortfalls, vec![want.to_string()], "only where required");
        assert_eq!(out.events.len(), 2);
        assert!(matches!(&out.events[0], Event::RunNote { message } if message == want));
    }
}
