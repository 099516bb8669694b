//! Per metric, which way is better and the noise threshold used when its history is too short
//! to give one: data, not code, so that a metric added later is one row.
//!
//! The defaults are stated choices, not measurements: each is a run-to-run change that a
//! healthy hall should stay within (GEMM throughput and power under a fixed load vary by about
//! a percent between runs; temperatures, throttling and tail latencies more). They hold only
//! until a subject has [`crate::threshold::MIN_HISTORY_DELTAS`] relative changes of history,
//! after which its own noise decides.

use serde::{Deserialize, Serialize};

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// More is better (TFLOP/s, bus bandwidth, GFLOP/s per W).
    Higher,
    /// Less is better (thermal resistance, power at a given load, latency, throttle time).
    Lower,
}

/// How a metric is judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricPolicy {
    pub better: Better,
    /// Noise threshold, in percent of the base value, used while the history is short.
    pub default_threshold_pct: f64,
}

/// The metrics of issue 11 item 1, by the name the comparison uses.
pub const KNOWN_METRICS: &[(&str, MetricPolicy)] = &[
    ("sustained_tflops", policy(Better::Higher, 2.0)),
    ("mean_power_w", policy(Better::Lower, 3.0)),
    // Steady-state GPU temperature rise over coolant supply per watt (K/W): the
    // clogged-cold-plate detector.
    ("thermal_resistance_k_per_w", policy(Better::Lower, 5.0)),
    ("throttle_s", policy(Better::Lower, 10.0)),
    // Any wrong element is a change: from 0 every increase is infinitely large (see
    // threshold::judge), and between non-zero counts 0 % is the threshold.
    ("wrong_elements", policy(Better::Lower, 0.0)),
    ("idle_power_w", policy(Better::Lower, 5.0)),
    ("full_load_power_w", policy(Better::Lower, 3.0)),
    ("latency_p50_us", policy(Better::Lower, 10.0)),
    ("latency_p99_us", policy(Better::Lower, 20.0)),
    ("busbw_gbps", policy(Better::Higher, 5.0)),
    ("gflops_per_w", policy(Better::Higher, 3.0)),
    // The facility's figures per rack over the full-load phases (hallmark_results::metrics).
    // The rack PDUs' mean power, W: as full_load_power_w.
    ("pdu_full_load_power_w", policy(Better::Lower, 3.0)),
    // The mean heat the rack's CDU reports removed, W: more heat at the same load is more power
    // drawn; a meter's accuracy and the loop's lag widen it beyond the PDU's.
    ("cdu_heat_removed_w", policy(Better::Lower, 5.0)),
    // The loop's mean return − supply, K: at the same heat, a larger ΔT is less flow (a pump, a
    // valve, a clogged filter). Sensor resolution is a few tenths of a kelvin.
    ("coolant_delta_t_k", policy(Better::Lower, 10.0)),
    // Heat removed ÷ PDU power, %: less captured by the liquid is more left to the air.
    ("heat_capture_pct", policy(Better::Higher, 5.0)),
    // The worst ratio of the energy balance (a downstream level over the one above it), %: a
    // rising ratio is a meter drifting or a load bypassing the PDU.
    ("energy_balance_pct", policy(Better::Lower, 3.0)),
];

const fn policy(better: Better, default_threshold_pct: f64) -> MetricPolicy {
    MetricPolicy {
        better,
        default_threshold_pct,
    }
}

/// The policy of a known metric.
pub fn known_metric(name: &str) -> Option<MetricPolicy> {
    KNOWN_METRICS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
}

/// The policy of a metric as `hallmark_results::metrics` names it: the base name before the
/// first `.` (`throttle_s.sw_thermal` → `throttle_s`); `None` for an unknown base name.
pub fn policy_of(metric: &str) -> Option<MetricPolicy> {
    let base = metric.split_once('.').map_or(metric, |(base, _)| base);
    known_metric(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        for (i, (name, p)) in KNOWN_METRICS.iter().enumerate() {
            assert!(p.default_threshold_pct >= 0.0 && p.default_threshold_pct.is_finite());
            assert!(
                KNOWN_METRICS[i + 1..].iter().all(|(n, _)| n != name),
                "{name} twice"
            );
        }
        assert_eq!(
            known_metric("sustained_tflops").unwrap().better,
            Better::Higher
        );
        assert_eq!(
            known_metric("thermal_resistance_k_per_w").unwrap().better,
            Better::Lower
        );
        assert_eq!(known_metric("no_such_metric"), None);
    }

    #[test]
    fn policy_of_strips_the_qualifier() {
        let throttle = known_metric("throttle_s");
        assert!(throttle.is_some());
        assert_eq!(policy_of("throttle_s"), throttle);
        assert_eq!(policy_of("throttle_s.sw_thermal"), throttle);
        assert_eq!(
            policy_of("busbw_gbps.all_reduce.1048576"),
            known_metric("busbw_gbps")
        );
        assert_eq!(
            policy_of("heat_capture_pct").map(|p| p.better),
            Some(Better::Higher)
        );
        assert_eq!(policy_of("no_such_metric.x"), None);
        assert_eq!(policy_of(".throttle_s"), None);
        assert_eq!(policy_of(""), None);
    }
}
