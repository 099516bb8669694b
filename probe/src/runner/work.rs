//! What a phase runs beside its load levels: the backend's kernel (memory bandwidth or GEMM), power
//! targets, and the fabric work of a latency or collective phase — on the data plane through the
//! [`FabricDriver`], or on the backend's GPUs through NCCL — and putting the backend back after.

use super::{device_error, Active};
use crate::fabric::FabricDriver;
use hallmark_protocol::{FabricParams, NodeId, ProbeMessage, Workload};
use hallmark_workloads::backend::{Backend, Kernel, NcclJob};

/// A fabric phase's work on this probe.
#[derive(Debug)]
pub(super) enum FabricState {
    /// On the fabric driver (the data plane).
    Running,
    /// On the backend's GPUs through NCCL.
    Nccl,
    Failed(String),
}

/// Sets up what a phase runs beside its load levels: the backend's kernel (memory bandwidth or
/// GEMM) and the fabric work of a latency or collective phase.
pub(super) fn begin_workload(
    a: &mut Active,
    me: Option<&NodeId>,
    late_ns: i64,
    duration_ns: i64,
    backend: &mut dyn Backend,
    fabric: Option<&mut (dyn FabricDriver + 'static)>,
    out: &mut Vec<ProbeMessage>,
) {
    let kernel = match a.spec.workload {
        Workload::MemoryBandwidth => Kernel::MemoryBandwidth,
        _ => Kernel::Gemm,
    };
    let mut refused = backend.set_kernel(kernel).err();
    if let (Workload::TargetPower, Some(w)) = (&a.spec.workload, a.spec.target_power_w) {
        for i in 0..backend.inventory().len() {
            if refused.is_none() {
                refused = backend.set_power_target(i as u16, Some(w)).err();
            }
        }
        if refused.is_some() {
            for i in 0..backend.inventory().len() {
                let _ = backend.set_power_target(i as u16, None);
            }
        }
    }
    if let Some(e) = refused {
        // The phase's workload cannot run here: the devices stay unloaded and the phase says why,
        // rather than running some other load under its name.
        let why = format!(
            "the {} backend cannot run phase {}: {e}",
            backend.name(),
            a.spec.name
        );
        out.push(device_error(why.clone()));
        a.unsupported = true;
        a.stopped_early.get_or_insert(why);
    }
    if let Some(phase) = &a.spec.fabric {
        if phase.nccl.is_some() {
            a.fabric = Some(begin_nccl(
                a.spec.phase_id,
                phase,
                me,
                late_ns,
                duration_ns,
                backend,
            ));
            return;
        }
        a.fabric = Some(match fabric {
            None => FabricState::Failed(
                "this probe has no data plane (it was started without one), so it took no part in the fabric phase".into(),
            ),
            Some(f) => match f.begin(a.spec.phase_id, phase, late_ns, duration_ns) {
                Ok(()) => FabricState::Running,
                Err(e) => FabricState::Failed(e),
            },
        });
    }
}

/// Starts a collective phase through NCCL on the backend's GPUs.
fn begin_nccl(
    phase_id: u32,
    phase: &hallmark_protocol::FabricPhase,
    me: Option<&NodeId>,
    late_ns: i64,
    duration_ns: i64,
    backend: &mut dyn Backend,
) -> FabricState {
    let (Some(setup), FabricParams::Collective(params)) = (&phase.nccl, &phase.params) else {
        return FabricState::Failed(
            "the coordinator asked for NCCL in a phase that is not a collective phase".into(),
        );
    };
    let Some(member) = me.and_then(|m| phase.rank_of(m)) else {
        return FabricState::Failed(
            "this node is not among the phase's members; the coordinator's order is inconsistent"
                .into(),
        );
    };
    // The phase's window on the monotonic clock, as the data-plane driver takes it.
    let (start, end) = crate::fabric::window_now(late_ns, duration_ns);
    let job = NcclJob {
        phase_id,
        params: params.clone(),
        setup: setup.clone(),
        member,
        start,
        end,
    };
    match backend.start_nccl(job) {
        Ok(()) => FabricState::Nccl,
        Err(e) => FabricState::Failed(format!("NCCL collectives could not start: {e}")),
    }
}

/// Puts the backend back to its plain GEMM burn without power targets after a phase.
pub(super) fn end_workload(a: &Active, backend: &mut dyn Backend) {
    if a.spec.workload == Workload::TargetPower {
        for i in 0..backend.inventory().len() {
            let _ = backend.set_power_target(i as u16, None);
        }
    }
    if a.spec.workload == Workload::MemoryBandwidth {
        let _ = backend.set_kernel(Kernel::Gemm);
    }
}
