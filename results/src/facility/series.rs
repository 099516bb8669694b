//! One source's readings of one quantity at one point, as a series: the readings with a value in
//! time order, the source's median interval, whether it was stale or unreadable in a window, and
//! the series held over the run's bins.
//!
//! * **Median interval** `m`: the median of the intervals between consecutive readings with a value
//!   (at least two readings needed).
//! * **Stale** in a window `[a, b)`: no reading with a value in it, or a stretch of more than `3 m`
//!   without one — between the last reading before `a` (else `a`) and the first in the window,
//!   between two readings, or from the last one to `b`. A source with fewer than two readings has no
//!   interval to judge by and is stale.
//! * **Unreadable**: readings were attempted (`value` absent, with the collector's `note`) and none
//!   in the window had a value.
//! * **Held**: a reading stands for the bins after the previous reading's up to its own, for at
//!   most `3 m` (meters update every 0.25–5 s and are polled about as often, so a reading is up to
//!   one interval old when it is taken: it stands for the interval that ends at it, not for the
//!   one after; the run's bins are one sample interval).

use std::collections::BTreeMap;

use crate::aggregate::Bins;
use hallmark_protocol::facility::FacilityReading;

/// Readings without a value for longer than this many median intervals make a source stale.
pub const STALE_INTERVALS: i64 = 3;

/// One source's readings of one quantity at one point.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub source: String,
    /// Instants of the readings with a finite value, ascending, and their values.
    pub t: Vec<i64>,
    pub v: Vec<f64>,
    /// Instants of the readings without a value, and the first note given for one.
    pub absent: Vec<i64>,
    pub absent_note: Option<String>,
    /// Median interval between readings with a value, ns.
    pub median_ns: Option<i64>,
}

impl Series {
    /// The series of the readings given (all of one source, quantity and point).
    pub fn new<'a>(
        source: &str,
        readings: impl IntoIterator<Item = &'a FacilityReading>,
    ) -> Series {
        let mut s = Series {
            source: source.to_string(),
            ..Series::default()
        };
        let mut valid: Vec<(i64, f64)> = Vec::new();
        for r in readings {
            match r.value.filter(|x| x.is_finite()) {
                Some(x) => valid.push((r.t_ns, x)),
                None => {
                    s.absent.push(r.t_ns);
                    if s.absent_note.is_none() {
                        s.absent_note = r.note.clone();
                    }
                }
            }
        }
        valid.sort_by_key(|x| x.0);
        valid.dedup_by_key(|x| x.0);
        s.t = valid.iter().map(|x| x.0).collect();
        s.v = valid.iter().map(|x| x.1).collect();
        s.absent.sort_unstable();
        let mut gaps: Vec<i64> = s.t.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        s.median_ns = (!gaps.is_empty()).then(|| gaps[gaps.len() / 2]);
        s
    }

    /// Why the series cannot be trusted in `[a, b)`, or `None` when it can.
    pub fn problem(&self, a: i64, b: i64) -> Option<String> {
        let first = self.t.partition_point(|&t| t < a);
        let end = self.t.partition_point(|&t| t < b);
        let absent_in = self.absent.iter().filter(|&&t| a <= t && t < b).count();
        if first == end {
            return Some(if absent_in > 0 {
                format!(
                    "`{}` is unreadable: {absent_in} readings without a value ({})",
                    self.source,
                    self.absent_note.as_deref().unwrap_or("no reason given")
                )
            } else {
                format!("`{}` has no reading in the window", self.source)
            });
        }
        let Some(m) = self.median_ns else {
            return Some(format!(
                "`{}` has a single reading: no interval to tell whether it updates",
                self.source
            ));
        };
        let limit = m.saturating_mul(STALE_INTERVALS);
        let start = if first > 0 { self.t[first - 1] } else { a };
        let mut prev = start;
        let mut worst = 0i64;
        for &t in &self.t[first..end] {
            worst = worst.max(t - prev);
            prev = t;
        }
        worst = worst.max(b - prev);
        (worst > limit).then(|| {
            format!(
                "`{}` is stale: {:.1} s without a reading, more than {STALE_INTERVALS} × its median interval of {:.2} s",
                self.source,
                worst as f64 / 1e9,
                m as f64 / 1e9
            )
        })
    }

    /// The series over the run's bins: each reading stands for the bins after the previous
    /// reading's up to its own, for at most [`STALE_INTERVALS`] median intervals (the first
    /// reading for one interval; just its own bin when there is no interval).
    pub fn held(&self, bins: Bins, width_ns: i64) -> BTreeMap<i64, f64> {
        let mut out = BTreeMap::new();
        let hold = self
            .median_ns
            .map_or(width_ns, |m| m.saturating_mul(STALE_INTERVALS));
        let first_hold = self.median_ns.unwrap_or(0);
        let mut prev_bin: Option<i64> = None;
        for (&t, &v) in self.t.iter().zip(&self.v) {
            let own = bins.of(t);
            let from = match prev_bin {
                Some(p) => (p + 1).max(bins.of(t.saturating_sub(hold)) + 1),
                None if first_hold > 0 => bins.of(t.saturating_sub(first_hold)) + 1,
                None => own,
            };
            for b in from.min(own)..=own {
                out.insert(b, v);
            }
            prev_bin = Some(own);
        }
        out
    }
}

/// Bin-wise sum of several held series: a bin only where every series has a value.
pub fn sum_all(series: &[BTreeMap<i64, f64>]) -> BTreeMap<i64, f64> {
    let Some((first, rest)) = series.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter_map(|(&b, &v)| {
            rest.iter()
                .try_fold(v, |acc, s| s.get(&b).map(|x| acc + x))
                .map(|sum| (b, sum))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallmark_protocol::facility::{FacilityQuantity, SourceKind, Subject};

    fn r(t_s: f64, v: Option<f64>) -> FacilityReading {
        FacilityReading {
            source: "pdu".into(),
            kind: SourceKind::Pdu,
            subject: Subject::Rack("r1".into()),
            point: String::new(),
            quantity: FacilityQuantity::PowerW,
            uri: "u".into(),
            t_ns: (t_s * 1e9) as i64,
            value: v,
            device_time_ns: None,
            latency_us: None,
            note: v.is_none().then(|| "timeout".to_string()),
        }
    }

    #[test]
    fn a_gap_of_more_than_three_intervals_is_stale_and_absent_values_are_unreadable() {
        let rs: Vec<_> = (0..10).map(|i| r(i as f64, Some(1.0))).collect();
        let s = Series::new("pdu", &rs);
        assert_eq!(s.median_ns, Some(1_000_000_000));
        assert_eq!(s.problem(0, 9_500_000_000), None);
        // Ending 4 s after the last reading: stale.
        assert!(s.problem(0, 13_100_000_000).unwrap().contains("stale"));
        let mut rs: Vec<_> = (0..4).map(|i| r(i as f64, Some(1.0))).collect();
        rs.extend((4..10).map(|i| r(i as f64, None)));
        let s = Series::new("pdu", &rs);
        assert!(s.problem(0, 9_000_000_000).unwrap().contains("stale"));
        let p = s.problem(5_000_000_000, 9_000_000_000).unwrap();
        assert!(p.contains("unreadable") && p.contains("timeout"), "{p}");
        assert!(Series::new("x", &[])
            .problem(0, 1)
            .unwrap()
            .contains("no reading"));
    }

    #[test]
    fn held_series_stop_after_three_intervals_and_sums_need_every_series() {
        let bins = Bins::new(0, 10.0);
        let s = Series::new(
            "a",
            &[
                r(10.0, Some(1.0)),
                r(11.0, Some(2.0)),
                r(12.0, Some(3.0)),
                r(30.0, Some(5.0)),
            ],
        );
        assert_eq!(s.median_ns, Some(1_000_000_000));
        let h = s.held(bins, 100_000_000);
        // The first reading stands for one interval before it, each later one for the bins since
        // the previous reading's.
        assert_eq!(h.get(&90), None);
        assert_eq!(h.get(&91), Some(&1.0));
        assert_eq!(h.get(&100), Some(&1.0));
        assert_eq!(h.get(&101), Some(&2.0));
        assert_eq!(h.get(&110), Some(&2.0));
        assert_eq!(h.get(&111), Some(&3.0));
        assert_eq!(h.get(&120), Some(&3.0));
        // After 18 s without a reading, the next one reaches back 3 intervals only.
        assert_eq!(h.get(&121), None);
        assert_eq!(h.get(&270), None);
        assert_eq!(h.get(&271), Some(&5.0));
        assert_eq!(h.get(&300), Some(&5.0));
        assert_eq!(h.get(&301), None);
        let a: BTreeMap<i64, f64> = [(0, 1.0), (1, 1.0)].into();
        let b: BTreeMap<i64, f64> = [(1, 2.0), (2, 2.0)].into();
        assert_eq!(sum_all(&[a, b]), [(1, 3.0)].into());
    }
}
