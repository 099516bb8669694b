//! Loading the parts of a run that [`crate::RunSummary`] is built from: probes, devices, phases with
//! their starts and reports, gaps, events, and the row-id ranges of the run's telemetry (from the batch
//! index `telemetry_batches`).

use crate::error::StoreError;
use crate::store::Store;
use crate::summary::{EventSummary, GapSummary, NodeNote, PhaseSummary};
use std::collections::HashMap;

/// A registered probe of the run.
pub(crate) struct Probe {
    pub key: i64,
    pub node: String,
    pub hall: String,
    pub row: String,
    pub rack: String,
    pub registered_at_ns: i64,
    pub lost: Option<(i64, String)>,
}

/// Row ids `[from, to)`.
pub(crate) type Range = (i64, i64);

/// A phase being summarised, with each node's actual start.
pub(crate) struct PhaseData {
    pub summary: PhaseSummary,
    pub starts: Vec<(String, i64)>,
}

impl Store {
    /// The run's row-id ranges `[from, to)` of samples and of node-power readings, from the batch index,
    /// sorted and with adjacent ranges merged (one range for a run that had the database to itself).
    pub(crate) fn row_ranges(&self, run_id: &str) -> Result<(Vec<Range>, Vec<Range>), StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT first_sample_row, samples, first_node_power_row, node_power \
                 FROM telemetry_batches WHERE run_id = ?1",
            )
            .map_err(self.err("reading the batch index"))?;
        let rows: Vec<(i64, i64, i64, i64)> = stmt
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading the batch index"))?;
        let samples = merge_ranges(rows.iter().map(|r| (r.0, r.0 + r.1)));
        let power = merge_ranges(rows.iter().map(|r| (r.2, r.2 + r.3)));
        Ok((samples, power))
    }

    /// Calls `f(node_key, t_ns, power_w)` for every node-power reading in the row-id `ranges` (from
    /// [`Store::row_ranges`]) that has a value; absent readings are skipped.
    pub(crate) fn for_each_node_power(
        &self,
        ranges: &[Range],
        mut f: impl FnMut(i64, i64, f64),
    ) -> Result<(), StoreError> {
        let e = || self.err("reading node power");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT node_key, t_ns, power_w FROM node_power_rows \
                 WHERE node_power_row >= ?1 AND node_power_row < ?2",
            )
            .map_err(e())?;
        for (from, to) in ranges {
            let mut rows = stmt.query([from, to]).map_err(e())?;
            while let Some(r) = rows.next().map_err(e())? {
                let key: i64 = r.get(0).map_err(e())?;
                let t: i64 = r.get(1).map_err(e())?;
                let w: Option<f64> = r.get(2).map_err(e())?;
                if let Some(w) = w {
                    f(key, t, w);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn probes(&self, run_id: &str) -> Result<Vec<Probe>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT node_key, node_id, hall, row, rack, registered_at_ns, lost_at_ns, lost_reason \
                 FROM probes WHERE run_id = ?1 ORDER BY hall, row, rack, node_id",
            )
            .map_err(self.err("reading probes"))?;
        let rows = stmt
            .query_map([run_id], |r| {
                let lost_at: Option<i64> = r.get(6)?;
                let lost_reason: Option<String> = r.get(7)?;
                Ok(Probe {
                    key: r.get(0)?,
                    node: r.get(1)?,
                    hall: r.get(2)?,
                    row: r.get(3)?,
                    rack: r.get(4)?,
                    registered_at_ns: r.get(5)?,
                    lost: lost_at.map(|at| (at, lost_reason.unwrap_or_default())),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading probes"))?;
        Ok(rows)
    }

    pub(crate) fn device_counts(&self, run_id: &str) -> Result<HashMap<String, u64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT node_id, count(*) FROM devices WHERE run_id = ?1 GROUP BY node_id")
            .map_err(self.err("reading devices"))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading devices"))?;
        Ok(rows)
    }

    pub(crate) fn phases(
        &self,
        run_id: &str,
        probes: &[Probe],
        devices: &HashMap<String, u64>,
        sample_hz: f64,
    ) -> Result<Vec<PhaseData>, StoreError> {
        let e = |op| self.err(op);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT phase_id, name, workload, scheduled_start_ns, duration_ms FROM phases \
                 WHERE run_id = ?1 ORDER BY scheduled_start_ns, phase_id",
            )
            .map_err(e("reading phases"))?;
        let mut phases: Vec<PhaseData> = stmt
            .query_map([run_id], |r| {
                Ok(PhaseData {
                    summary: PhaseSummary {
                        phase_id: r.get(0)?,
                        name: r.get(1)?,
                        workload: r.get(2)?,
                        scheduled_start_ns: r.get(3)?,
                        duration_ms: r.get::<_, i64>(4)?.max(0) as u64,
                        nodes_started: 0,
                        start_skew_ms: None,
                        energy_kwh: None,
                        mean_kw: None,
                        samples_expected: 0,
                        samples_stored: 0,
                        gflops: None,
                        wrong_elements: 0,
                        stopped_early: Vec::new(),
                    },
                    starts: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(e("reading phases"))?;
        let pos: HashMap<u32, usize> = phases
            .iter()
            .enumerate()
            .map(|(i, p)| (p.summary.phase_id, i))
            .collect();

        let mut stmt = self
            .conn
            .prepare(
                "SELECT phase_id, node_id, actual_start_ns FROM phase_starts WHERE run_id = ?1",
            )
            .map_err(e("reading phase starts"))?;
        let starts: Vec<(u32, String, i64)> = stmt
            .query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(e("reading phase starts"))?;
        for (phase, node, t) in starts {
            if let Some(&i) = pos.get(&phase) {
                phases[i].starts.push((node, t));
            }
        }

        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.phase_id, r.node_id, r.stopped_early, \
                 (SELECT sum(x.gflops) FROM phase_results x WHERE x.run_id = r.run_id \
                    AND x.phase_id = r.phase_id AND x.node_id = r.node_id), \
                 (SELECT coalesce(sum(x.wrong_elements), 0) FROM phase_results x WHERE x.run_id = r.run_id \
                    AND x.phase_id = r.phase_id AND x.node_id = r.node_id) \
                 FROM phase_reports r WHERE r.run_id = ?1 ORDER BY r.node_id",
            )
            .map_err(e("reading phase reports"))?;
        type Report = (u32, String, Option<String>, Option<f64>, i64);
        let reports: Vec<Report> = stmt
            .query_map([run_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(e("reading phase reports"))?;
        for (phase, node, stopped, gflops, wrong) in reports {
            let Some(&i) = pos.get(&phase) else { continue };
            let ps = &mut phases[i].summary;
            if let Some(g) = gflops {
                ps.gflops = Some(ps.gflops.unwrap_or(0.0) + g);
            }
            ps.wrong_elements += wrong.max(0) as u64;
            if let Some(message) = stopped {
                ps.stopped_early.push(NodeNote { node, message });
            }
        }

        for p in &mut phases {
            let per_device = (p.summary.duration_ms as f64 * sample_hz / 1000.0)
                .round()
                .max(0.0) as u64;
            let start = p.summary.scheduled_start_ns;
            let devices_in_phase: u64 = probes
                .iter()
                .filter(|pr| {
                    pr.registered_at_ns <= start || p.starts.iter().any(|s| s.0 == pr.node)
                })
                .map(|pr| devices.get(&pr.node).copied().unwrap_or(0))
                .fold(0u64, u64::saturating_add);
            p.summary.samples_expected = devices_in_phase.saturating_mul(per_device);
        }
        Ok(phases)
    }

    pub(crate) fn gaps(&self, run_id: &str) -> Result<Vec<GapSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT node_id, from_ns, to_ns, reason FROM gaps WHERE run_id = ?1 ORDER BY from_ns, node_id",
            )
            .map_err(self.err("reading gaps"))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok(GapSummary {
                    node: r.get(0)?,
                    from_ns: r.get(1)?,
                    to_ns: r.get(2)?,
                    reason: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading gaps"))?;
        Ok(rows)
    }

    pub(crate) fn events(&self, run_id: &str) -> Result<Vec<EventSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t_ns, node_id, kind, message FROM events WHERE run_id = ?1 ORDER BY t_ns, event_id",
            )
            .map_err(self.err("reading events"))?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok(EventSummary {
                    t_ns: r.get(0)?,
                    node: r.get(1)?,
                    kind: r.get(2)?,
                    message: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("reading events"))?;
        Ok(rows)
    }
}

/// Sorts `[from, to)` ranges and merges those that touch or overlap; drops empty ones.
fn merge_ranges(ranges: impl Iterator<Item = Range>) -> Vec<Range> {
    let mut v: Vec<Range> = ranges.filter(|r| r.1 > r.0).collect();
    v.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(v.len().min(16));
    for r in v {
        match out.last_mut() {
            Some(last) if r.0 <= last.1 => last.1 = last.1.max(r.1),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn merge_ranges_joins_adjacent() {
        let r = super::merge_ranges([(10, 20), (0, 10), (30, 30), (25, 40), (35, 38)].into_iter());
        assert_eq!(r, vec![(0, 20), (25, 40)]);
    }
}
