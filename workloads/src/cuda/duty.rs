//! The duty cycle of a GPU worker (pure arithmetic, unit-tested).
//!
//! Time is cut into [`SLICE`]s of 5 ms. At level `L < 1` a worker enqueues enough units of work
//! (GEMMs, or copies for the memory-bandwidth workload) for `L × 5 ms` of GPU time, waits for the
//! stream to drain, and idles the rest of the slice: the GPU is really idle then, not just the
//! host. The work of a slice never matches its target exactly; the difference is carried into the
//! next slices' targets (bounded by [`MAX_CARRY`]), so over many slices the busy share is `L`,
//! even where one unit is a large part of a slice. A 5 ms slice lets a square wave of tens of Hz
//! keep its shape.
//!
//! At level 1 nothing idles: the worker keeps one batch of about [`BATCH`] queued behind the one
//! running and waits only for the older one, so the GPU never waits for the host.

use std::time::Duration;

/// One duty-cycle slice.
pub const SLICE: Duration = Duration::from_millis(5);
/// GPU time of one batch at full load.
pub const BATCH: Duration = Duration::from_micros(2500);
/// Most busy time carried into later slices, either way.
pub const MAX_CARRY: Duration = Duration::from_millis(20);
/// Weight of a new measurement in the per-unit time estimate.
const EWMA: f64 = 0.25;

/// Whether a duty set while a slice idles ends that slice at once: only a stop (0, or nonsense)
/// does. Any other change takes effect with the next slice, at most one [`SLICE`] later, so the
/// power controller's frequent small changes do not cut idle parts short (which would make the
/// busy share exceed what the slicer counted).
pub fn ends_slice_early(new_duty: f64) -> bool {
    new_duty.is_nan() || new_duty <= 0.0
}

/// Plans the work of each slice from a running estimate of one unit's GPU time.
#[derive(Debug, Clone, PartialEq)]
pub struct Slicer {
    /// Estimated seconds per unit.
    unit_s: f64,
    /// Busy seconds done beyond (positive) or short of (negative) the targets so far.
    carry_s: f64,
}

/// The work of one slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlicePlan {
    /// Units to enqueue (0: idle the whole slice).
    pub units: u32,
    /// Busy seconds this slice should have.
    pub target_s: f64,
}

impl Slicer {
    /// Starts from a measured (or guessed) unit time; non-positive or non-finite values become
    /// 1 ms.
    pub fn new(unit: Duration) -> Self {
        let s = unit.as_secs_f64();
        Slicer {
            unit_s: if s.is_finite() && s > 0.0 { s } else { 1e-3 },
            carry_s: 0.0,
        }
    }

    /// The estimated time of one unit.
    pub fn unit(&self) -> Duration {
        Duration::from_secs_f64(self.unit_s)
    }

    /// Forgets the carry (after an idle period or a level change to 0).
    pub fn reset(&mut self) {
        self.carry_s = 0.0;
    }

    /// What to run in a slice at `level` (clamped to 0..=1).
    pub fn plan(&self, level: f64) -> SlicePlan {
        let level = if level.is_finite() {
            level.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let target_s = level * SLICE.as_secs_f64() - self.carry_s;
        if level <= 0.0 || target_s <= 0.0 {
            return SlicePlan {
                units: 0,
                target_s: target_s.max(0.0),
            };
        }
        let units = (target_s / self.unit_s).round().clamp(1.0, 10_000.0) as u32;
        SlicePlan { units, target_s }
    }

    /// Records a slice planned at `level`: `busy` is how long its work kept the GPU (host time
    /// from the first enqueue to the end of the stream wait). The slice lasted `max(SLICE, busy)`,
    /// of which `level` should have been busy; the difference is carried.
    pub fn done(&mut self, level: f64, plan: SlicePlan, busy: Duration) {
        let level = if level.is_finite() {
            level.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let busy_s = busy.as_secs_f64();
        let elapsed_s = busy_s.max(SLICE.as_secs_f64());
        let max = MAX_CARRY.as_secs_f64();
        self.observe(plan.units, busy);
        self.carry_s = (self.carry_s + busy_s - level * elapsed_s).clamp(-max, max);
    }

    /// Updates the unit estimate from `units` that took `busy` on the GPU.
    pub fn observe(&mut self, units: u32, busy: Duration) {
        if units == 0 {
            return;
        }
        let per = busy.as_secs_f64() / f64::from(units);
        if per.is_finite() && per > 0.0 {
            self.unit_s += EWMA * (per - self.unit_s);
        }
    }

    /// Units in one full-load batch (about [`BATCH`] of GPU time, at least 1).
    pub fn batch_units(&self) -> u32 {
        (BATCH.as_secs_f64() / self.unit_s)
            .round()
            .clamp(1.0, 10_000.0) as u32
    }
}
