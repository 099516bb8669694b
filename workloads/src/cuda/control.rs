//! The targeted-power controller: a PI controller from measured power to a duty cycle (pure,
//! unit-tested against a simulated first-order plant).
//!
//! The control thread ([`super::monitor`]) calls [`PowerController::update`] every
//! [`CONTROL_PERIOD`] (25 Hz) with the device's NVML instant power. Measurements pass through a
//! first-order low-pass filter ([`FILTER_TAU`]) first: the 5 ms duty-cycle slices make the
//! instant power ripple, and a reading taken at 25 Hz would alias that ripple into the loop.
//!
//! The error is normalised by the device's dynamic range (`scale_w`: enforced limit − idle
//! power), so one set of gains fits any GPU. The output is clamped to `0..=ceiling` (the level set
//! with `set_level`, so a level of 0 still stops the device), and the integral term only
//! integrates while that does not push the output further into a clamp (conditional integration,
//! the anti-windup): a target the device cannot reach holds the output at the clamp, and a
//! reachable target afterwards is followed at once.

use std::time::Duration;

/// How often the controller runs.
pub const CONTROL_PERIOD: Duration = Duration::from_millis(40);
/// Time constant of the measurement filter.
pub const FILTER_TAU: Duration = Duration::from_millis(80);
/// Proportional gain (duty per unit of normalised error).
pub const KP: f64 = 0.35;
/// Integral gain (duty per second per unit of normalised error).
pub const KI: f64 = 2.5;

/// One device's controller.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerController {
    target_w: f64,
    /// W per unit of duty: enforced limit − idle power.
    scale_w: f64,
    integral: f64,
    filtered_w: Option<f64>,
    output: f64,
}

impl PowerController {
    /// A controller holding `target_w` on a device whose power spans `idle_w` (no load) to
    /// `limit_w` (full load). It starts from the duty the straight line between them predicts
    /// (feed-forward), so the first seconds are close already.
    pub fn new(target_w: f64, idle_w: f64, limit_w: f64) -> Self {
        let scale_w = (limit_w - idle_w).max(1.0);
        let start = ((target_w - idle_w) / scale_w).clamp(0.0, 1.0);
        PowerController {
            target_w,
            scale_w,
            integral: if start.is_finite() { start } else { 0.0 },
            filtered_w: None,
            output: if start.is_finite() { start } else { 0.0 },
        }
    }

    pub fn target_w(&self) -> f64 {
        self.target_w
    }

    /// Changes the target, keeping the state (a step in the target is followed smoothly).
    pub fn set_target(&mut self, target_w: f64) {
        self.target_w = target_w;
    }

    /// The last output.
    pub fn output(&self) -> f64 {
        self.output
    }

    /// The filtered power, once a measurement came.
    pub fn filtered_w(&self) -> Option<f64> {
        self.filtered_w
    }

    /// One step: `measured_w` is the latest power reading (`None`: no reading, the output holds),
    /// `dt` the time since the previous step, `ceiling` the highest duty allowed (0..=1). Returns
    /// the duty to apply, always within `0..=ceiling`.
    pub fn update(&mut self, measured_w: Option<f64>, dt: Duration, ceiling: f64) -> f64 {
        let ceiling = if ceiling.is_finite() {
            ceiling.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let dt_s = dt.as_secs_f64().clamp(0.0, 1.0);
        let Some(p) = measured_w.filter(|p| p.is_finite()) else {
            self.output = self.output.clamp(0.0, ceiling);
            return self.output;
        };
        let alpha = dt_s / (dt_s + FILTER_TAU.as_secs_f64());
        let filtered = match self.filtered_w {
            Some(f) => f + alpha * (p - f),
            None => p,
        };
        self.filtered_w = Some(filtered);
        let error = (self.target_w - filtered) / self.scale_w;
        let proportional = KP * error;
        let candidate = self.integral + KI * error * dt_s;
        let unclamped = proportional + candidate;
        let winding_up = (unclamped > ceiling && error > 0.0) || (unclamped < 0.0 && error < 0.0);
        if !winding_up {
            self.integral = candidate;
        }
        self.integral = self.integral.clamp(0.0, ceiling);
        self.output = (proportional + self.integral).clamp(0.0, ceiling);
        self.output
    }
}
