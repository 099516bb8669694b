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
        let name = self
            .phases
            .get(phase_id as usize)
            .map_or_else(|| phase_id.to_string(), |p| p.start.name.clone());
        apply_nccl(
            &mut self.phases,
            &mut self.shortfalls,
            phase_id,
            &name,
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
    name: &str,
    outcome: NcclOutcome,
    out: &mut Outputs,
) {
    let Some(f) = phases
        .get_mut(phase_id as usize)
        .and_then(|p| p.start.fabric.as_mut())
    else {
        return;
    };
    match outcome {
        NcclOutcome::Ready(setup) => f.nccl = Some(setup),
        NcclOutcome::Fallback { why, required } => {
            f.nccl = None;
            let message = format!(
                "collective phase {name}: {why}; its collectives run over the data plane instead"
            );
            if required {
                shortfalls.push(message.clone());
            }
            out.events.push_back(Event::RunNote { message });
        }
    }
}
