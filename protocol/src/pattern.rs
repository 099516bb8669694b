//! Load patterns: the load level (0.0 = idle, 1.0 = full) a phase applies over time.
//!
//! Every probe evaluates the same pattern against the same coordinator-clock start instant, so that
//! rack-wide steps and square waves line up across nodes.

use serde::{Deserialize, Serialize};

/// Load level over a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Pattern {
    /// A constant level.
    Steady { level: f64 },
    /// Linear from `from` to `to` over the phase's duration.
    Ramp { from: f64, to: f64 },
    /// Each level held for `step_ms`, in order; the last one is held to the end of the phase.
    Steps { levels: Vec<f64>, step_ms: u64 },
    /// `high` for `duty` of each period, then `low`.
    Square {
        low: f64,
        high: f64,
        period_ms: u64,
        duty: f64,
    },
    /// A 50 % square wave between `low` and `high` whose frequency moves linearly from `start_hz` to
    /// `end_hz` over the phase (a chirp): finds the frequencies at which the power system resonates.
    Sweep {
        low: f64,
        high: f64,
        start_hz: f64,
        end_hz: f64,
    },
}

/// Why a pattern cannot be run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatternError {
    #[error("level {value} of `{field}` is outside 0.0..=1.0")]
    Level { field: &'static str, value: f64 },
    #[error("`{field}` must be positive, got {value}")]
    NotPositive { field: &'static str, value: f64 },
    #[error("`duty` must be within 0.0..=1.0, got {0}")]
    Duty(f64),
    #[error("`levels` must name at least one level")]
    NoLevels,
}

fn level(field: &'static str, value: f64) -> Result<(), PatternError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(PatternError::Level { field, value })
    }
}

fn positive(field: &'static str, value: f64) -> Result<(), PatternError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(PatternError::NotPositive { field, value })
    }
}

impl Pattern {
    /// Checks levels, periods and frequencies.
    pub fn validate(&self) -> Result<(), PatternError> {
        match self {
            Pattern::Steady { level: l } => level("level", *l),
            Pattern::Ramp { from, to } => level("from", *from).and(level("to", *to)),
            Pattern::Steps { levels, step_ms } => {
                if levels.is_empty() {
                    return Err(PatternError::NoLevels);
                }
                levels.iter().try_for_each(|l| level("levels", *l))?;
                positive("step_ms", *step_ms as f64)
            }
            Pattern::Square {
                low,
                high,
                period_ms,
                duty,
            } => {
                level("low", *low)?;
                level("high", *high)?;
                positive("period_ms", *period_ms as f64)?;
                if (0.0..=1.0).contains(duty) {
                    Ok(())
                } else {
                    Err(PatternError::Duty(*duty))
                }
            }
            Pattern::Sweep {
                low,
                high,
                start_hz,
                end_hz,
            } => {
                level("low", *low)?;
                level("high", *high)?;
                positive("start_hz", *start_hz)?;
                positive("end_hz", *end_hz)
            }
        }
    }

    /// The level at `elapsed_ns` into a phase of `duration_ns`. Before the start it is 0; the result
    /// is always within 0.0..=1.0.
    pub fn level_at(&self, elapsed_ns: i64, duration_ns: i64) -> f64 {
        if elapsed_ns < 0 {
            return 0.0;
        }
        let t = elapsed_ns as f64 / 1e9;
        let total = (duration_ns.max(1)) as f64 / 1e9;
        let v = match self {
            Pattern::Steady { level } => *level,
            Pattern::Ramp { from, to } => from + (to - from) * (t / total).min(1.0),
            Pattern::Steps { levels, step_ms } => {
                let i = (elapsed_ns / (*step_ms as i64 * 1_000_000).max(1)) as usize;
                levels
                    .get(i.min(levels.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(0.0)
            }
            Pattern::Square {
                low,
                high,
                period_ms,
                duty,
            } => {
                let period = (*period_ms as i64 * 1_000_000).max(1);
                let phase = (elapsed_ns % period) as f64 / period as f64;
                if phase < *duty {
                    *high
                } else {
                    *low
                }
            }
            Pattern::Sweep {
                low,
                high,
                start_hz,
                end_hz,
            } => {
                let cycles = start_hz * t + (end_hz - start_hz) * t * t / (2.0 * total);
                if cycles.fract() < 0.5 {
                    *high
                } else {
                    *low
                }
            }
        };
        v.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const S: i64 = 1_000_000_000;

    #[test]
    fn levels_follow_the_pattern() {
        let ramp = Pattern::Ramp { from: 0.0, to: 1.0 };
        assert_eq!(ramp.level_at(5 * S, 10 * S), 0.5);
        assert_eq!(ramp.level_at(20 * S, 10 * S), 1.0);
        let steps = Pattern::Steps {
            levels: vec![0.25, 0.5, 1.0],
            step_ms: 1000,
        };
        assert_eq!(steps.level_at(S / 2, 10 * S), 0.25);
        assert_eq!(steps.level_at(S + 1, 10 * S), 0.5);
        assert_eq!(steps.level_at(9 * S, 10 * S), 1.0);
        let sq = Pattern::Square {
            low: 0.1,
            high: 0.9,
            period_ms: 100,
            duty: 0.25,
        };
        assert_eq!(sq.level_at(10_000_000, S), 0.9);
        assert_eq!(sq.level_at(30_000_000, S), 0.1);
        assert_eq!(sq.level_at(110_000_000, S), 0.9);
        assert_eq!(sq.level_at(-1, S), 0.0);
    }

    #[test]
    fn sweep_speeds_up() {
        let sweep = Pattern::Sweep {
            low: 0.0,
            high: 1.0,
            start_hz: 1.0,
            end_hz: 21.0,
        };
        let edges = |from: i64, to: i64| {
            let mut n = 0;
            let mut last = sweep.level_at(from, 10 * S);
            let mut t = from;
            while t < to {
                let l = sweep.level_at(t, 10 * S);
                if l != last {
                    n += 1;
                    last = l;
                }
                t += 1_000_000;
            }
            n
        };
        // ~1–3 Hz in the first second, ~19–21 Hz in the last: about 2 vs 40 edges.
        let (early, late) = (edges(0, S), edges(9 * S, 10 * S));
        assert!(early <= 6 && late >= 36, "early {early}, late {late}");
    }

    #[test]
    fn validation_rejects_out_of_range_values() {
        assert!(Pattern::Steady { level: 1.5 }.validate().is_err());
        assert!(Pattern::Steps {
            levels: vec![],
            step_ms: 1
        }
        .validate()
        .is_err());
        assert!(Pattern::Square {
            low: 0.0,
            high: 1.0,
            period_ms: 0,
            duty: 0.5
        }
        .validate()
        .is_err());
        assert!(Pattern::Steady { level: 0.7 }.validate().is_ok());
    }
}
