//! A facility collector's readings: accepted only from a probe registered as
//! [`ProbeRole::Facility`], checked, and handed to the store with the current run (acknowledged
//! once stored, counted against the collector's telemetry budget like a node's telemetry).
//! Between runs there is nothing to keep them with: they are acknowledged and not stored, so the
//! collector does not hold them.

use super::*;
use hallmark_protocol::{FacilityBatch, ProbeRole};

impl Coordinator {
    pub(super) fn on_facility(
        &mut self,
        conn: ConnId,
        node_id: NodeId,
        batch: FacilityBatch,
        now: i64,
    ) {
        let role = self.probes.get(&node_id).map(|(_, r)| r.role);
        if role != Some(ProbeRole::Facility) {
            return self.protocol_error(
                conn,
                format!(
                    "sent facility readings (batch {}) but registered as a node's probe; start a \
                     facility collector with `hallmark probe --facility FILE`",
                    batch.seq
                ),
            );
        }
        if let Err(e) = crate::validate::check_facility_batch(&batch) {
            return self.protocol_error(conn, e);
        }
        if self.run.as_ref().is_none_or(|r| r.is_done()) {
            self.out
                .transmits
                .push_back((conn, CoordinatorMessage::Ack { seq: batch.seq }));
            return;
        }
        let (seq, size) = (batch.seq, (batch.readings.len() as u64).max(1));
        self.out.events.push_back(Event::Facility {
            node_id: node_id.clone(),
            batch,
            received_at_ns: now,
        });
        self.flow.queued(&node_id, conn, seq, size, &mut self.out);
    }
}
