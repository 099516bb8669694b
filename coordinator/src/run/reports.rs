//! What participants report during a run: phase starts, phase reports and telemetry batches,
//! each checked against what the coordinator sent (`crate::validate`) before it is recorded, and
//! the plan's limits checked on the live rack power. A report that fails its checks is the
//! sender's protocol error (`Err`), never a failure of the run.

use super::*;
use crate::machine::{truncate_chars, MAX_ERROR_LEN};

impl Run {
    /// A participant started a phase at `at`; refused (Err: the probe's protocol error) for a
    /// phase it was never sent.
    pub fn on_phase_started(
        &mut self,
        node: &NodeId,
        phase_id: u32,
        at: i64,
        now: i64,
        out: &mut Outputs,
    ) -> Result<(), String> {
        if !self.participants.contains_key(node) || (at < self.created_ns && !self.is_collecting())
        {
            // Not a participant, or a start from an earlier run re-sent after a reconnect.
            return Ok(());
        }
        if self.is_collecting() {
            // A resumed run has no schedule: a phase of its plan is all that can be checked.
            let phases = self.plan.phases.len();
            if phase_id as usize >= phases {
                return Err(format!(
                    "PhaseStarted: phase {phase_id} is not in this run's plan ({phases} phases)"
                ));
            }
        } else {
            sent_phase(&self.phases, phase_id, now).map_err(|e| format!("PhaseStarted: {e}"))?;
        }
        self.count_repeat(node, phase_id, false)?;
        out.events.push_back(Event::PhaseStarted {
            node_id: node.clone(),
            phase_id,
            actual_start_ns: at,
        });
        Ok(())
    }

    /// Counts a PhaseStarted (`report` false) or PhaseReport of `phase_id` from `node`: a probe
    /// may repeat one ([`MAX_REPEATS`] times per connection; a report is recorded once), not
    /// flood the coordinator with it.
    fn count_repeat(&mut self, node: &NodeId, phase_id: u32, report: bool) -> Result<(), String> {
        let Some(p) = self.participants.get_mut(node) else {
            return Ok(());
        };
        let n = p.repeats.entry((phase_id, report)).or_insert(0);
        *n = n.saturating_add(1);
        if *n > MAX_REPEATS {
            let what = if report {
                "PhaseReport"
            } else {
                "PhaseStarted"
            };
            return Err(format!(
                "sent {what} of phase {phase_id} more than {MAX_REPEATS} times"
            ));
        }
        Ok(())
    }

    pub fn on_phase_report(
        &mut self,
        node: &NodeId,
        report: PhaseReport,
        now: i64,
        out: &mut Outputs,
    ) -> Result<(), String> {
        if !self.participants.contains_key(node) {
            return Ok(());
        }
        if report.ended_at_ns < self.created_ns && !self.is_collecting() {
            // A report of an earlier run, re-sent after a reconnect (the probe keeps its latest
            // reports, not knowing which arrived): not this run's.
            return Ok(());
        }
        let mut report = report;
        if self.is_collecting() {
            self.check_resumed_report(node, &mut report, out)?;
        } else {
            let phase = sent_phase(&self.phases, report.phase_id, now)
                .map_err(|e| format!("PhaseReport: {e}"))?;
            if let Some(f) = &report.fabric {
                check_fabric(phase, node, f).map_err(|e| format!("PhaseReport: {e}"))?;
            }
        }
        self.count_repeat(node, report.phase_id, true)?;
        let Some(p) = self.participants.get_mut(node) else {
            return Ok(());
        };
        if p.reported.contains(&report.phase_id) {
            // Sent again after a reconnect (the probe cannot know it arrived): already recorded.
            return Ok(());
        }
        p.reported.push(report.phase_id);
        let running = matches!(self.stage, Stage::Running { .. });
        if let (Some(why), true) = (&report.stopped_early, running) {
            let name = self
                .phases
                .get(report.phase_id as usize)
                .map_or("?", |p| p.start.name.as_str());
            // The probe's words go into the run's reason: as long as an error report may be.
            let mut why = why.clone();
            truncate_chars(&mut why, MAX_ERROR_LEN);
            self.shortfalls
                .push(format!("node {node} ended phase {name} early: {why}"));
        }
        out.events.push_back(Event::PhaseReport {
            node_id: node.clone(),
            report,
        });
        if matches!(self.stage, Stage::Stopping { .. }) && self.stopped_reports_in(now) {
            self.finish(Outcome::Aborted, now, out);
        }
        Ok(())
    }

    /// A telemetry batch: checks the sequence, the plan's limits, and hands it to the store.
    /// Refused (Err: the probe's protocol error) when it does not fit the node's devices and the
    /// run's rate, or its numbers cannot be stored.
    pub fn on_telemetry(
        &mut self,
        node: &NodeId,
        batch: TelemetryBatch,
        now: i64,
        out: &mut Outputs,
    ) -> Result<(), String> {
        let hz = self.plan.sample_hz;
        let Some(p) = self.participants.get_mut(node) else {
            return Ok(());
        };
        // Unknown until now: the probe's earlier batches belonged to earlier runs (or to none).
        let next_seq = *p.next_seq.get_or_insert(batch.seq);
        check_batch(&batch, p.devices, hz, next_seq, p.last_t_ns)?;
        let span = instants(&batch);
        let first_t = span.map(|(first, _)| first);
        if batch.seq > next_seq {
            out.events.push_back(Event::Gap {
                node_id: node.clone(),
                from_ns: p.last_t_ns.unwrap_or(first_t.unwrap_or(now)),
                to_ns: first_t.unwrap_or(now),
                instants: None,
                reason: format!(
                    "telemetry batches {}..{} never arrived (the probe's replay buffer overflowed)",
                    next_seq,
                    batch.seq.saturating_sub(1)
                ),
            });
            note_shortfall(
                &mut self.shortfalls,
                &mut self.shortfalls_more,
                format!(
                    "node {node}: telemetry batches {}..{} never arrived",
                    next_seq,
                    batch.seq.saturating_sub(1)
                ),
            );
        }
        if batch.seq >= next_seq {
            if matches!(self.stage, Stage::Collecting { .. }) {
                let (batches, samples) = &mut self.recovered;
                *batches = batches.saturating_add(1);
                *samples = samples.saturating_add(batch.samples.len() as u64);
            }
            // Sampling instants the probe missed (late or failed ticks): gaps with the probe's
            // cause; a run with a sample missing is not complete.
            for g in &batch.gaps {
                out.events.push_back(Event::Gap {
                    node_id: node.clone(),
                    from_ns: g.from_ns,
                    to_ns: g.to_ns,
                    instants: Some(g.instants),
                    reason: g.reason.clone(),
                });
                if matches!(
                    self.stage,
                    Stage::Running { .. } | Stage::Stopping { .. } | Stage::Collecting { .. }
                ) {
                    note_shortfall(
                        &mut self.shortfalls,
                        &mut self.shortfalls_more,
                        format!("node {node} missed samples: {}", g.reason),
                    );
                }
            }
            p.next_seq = Some(batch.seq.saturating_add(1));
            if let Some((_, last)) = span {
                p.last_t_ns = Some(last);
            }
            if let Some(&(_, w)) = batch
                .node_power_w
                .iter()
                .filter(|(_, w)| w.is_finite())
                .max_by_key(|(t, _)| *t)
            {
                p.power = Some(f64::from(w));
            }
        }
        // A reading that is not a finite number (a broken sensor's NaN or infinity) is no reading,
        // as the store keeps it: it neither hides a hot device or a loaded rack nor trips a limit.
        let hottest = batch
            .samples
            .iter()
            .filter_map(|s| {
                s.gpu_temp_c
                    .filter(|t| t.is_finite())
                    .map(|t| (t, s.device))
            })
            .fold(None, |acc: Option<(f32, u16)>, x| match acc {
                Some(a) if a.0 >= x.0 => Some(a),
                _ => Some(x),
            });
        let node_kw = batch
            .node_power_w
            .iter()
            .filter(|(_, w)| w.is_finite())
            .map(|(_, w)| f64::from(*w) / 1000.0)
            .fold(0.0, f64::max);
        out.events.push_back(Event::Telemetry {
            node_id: node.clone(),
            batch,
            received_at_ns: now,
        });
        self.check_limits(node, node_kw, hottest, now, out);
        Ok(())
    }

    fn check_limits(
        &mut self,
        node: &NodeId,
        node_kw: f64,
        hottest: Option<(f32, u16)>,
        now: i64,
        out: &mut Outputs,
    ) {
        if !matches!(self.stage, Stage::Running { .. }) {
            return;
        }
        let limits = self.plan.limits.clone();
        if let Some(max) = limits.max_node_kw {
            if node_kw > max {
                let reason = format!(
                    "node {node} drew {node_kw:.1} kW, above the plan limit of {max:.1} kW"
                );
                return self.abort(&reason, now, out);
            }
        }
        if let (Some(max), Some((t, dev))) = (limits.max_gpu_temp_c, hottest) {
            if f64::from(t) > max {
                let reason = format!(
                    "device {dev} of node {node} reached {t:.1} °C, above the plan limit of {max:.1} °C"
                );
                return self.abort(&reason, now, out);
            }
        }
        if let Some(max) = limits.max_rack_kw {
            let Some(rack) = self.participants.get(node).map(|p| p.rack.clone()) else {
                return;
            };
            // This rack's sum only (the same as `rack_power_kw` gives it): it runs on every batch.
            let kw: f64 = self
                .participants
                .values()
                .filter(|p| p.rack == rack)
                .filter_map(|p| p.power)
                .map(|w| w / 1000.0)
                .sum();
            if kw > max {
                let reason =
                    format!("rack {rack} drew {kw:.1} kW, above the plan limit (breaker rating) of {max:.1} kW");
                self.abort(&reason, now, out);
            }
        }
    }
}
