//! Streaming aggregates behind [`crate::RunSummary`]: time bins of node power, rack and hall power,
//! sustained windows, throttle counts and phase windows. Pure computation, no SQL.
//!
//! Definitions (also in `docs/SCHEMA.md`):
//! * A **bin** is one sample interval, `1 / sample_hz`, centred on the instants `started_at + k/sample_hz`
//!   of the run; a node's power in a bin is the mean of its node-power readings in it.
//! * **Rack power** in a bin is the sum of its nodes' power in that bin. A bin is *complete* for a rack
//!   when every node of the rack that reported node power at all has a reading in it.
//! * `peak_kw` is the largest rack power of any bin; `mean_kw` the mean over complete bins;
//!   `sustained_kw` the highest mean over `w` consecutive complete bins, `w` = 10 s of bins or the longest
//!   stretch of consecutive complete bins if that is shorter.

use std::collections::BTreeMap;

/// NVML clock-event (throttle) reason bits.
pub mod throttle {
    pub use hallmark_protocol::throttle::{
        APPLICATIONS_CLOCKS, DISPLAY_CLOCK, GPU_IDLE, HW_POWER_BRAKE, HW_SLOWDOWN, HW_THERMAL,
        SW_POWER_CAP, SW_THERMAL, SYNC_BOOST,
    };

    /// The bits that mean the device was slowed by heat or power (idle, application clocks, sync boost
    /// and display clocks are not throttling).
    pub const REASONS: [(u64, &str); 5] = [
        (SW_POWER_CAP, "sw_power_cap"),
        (HW_SLOWDOWN, "hw_slowdown"),
        (SW_THERMAL, "sw_thermal"),
        (HW_THERMAL, "hw_thermal"),
        (HW_POWER_BRAKE, "hw_power_brake"),
    ];

    /// All bits of [`REASONS`].
    pub const MASK: u64 = SW_POWER_CAP | HW_SLOWDOWN | SW_THERMAL | HW_THERMAL | HW_POWER_BRAKE;

    /// The bits that count as throttling in `throttle_s`: the device was slowed below what its power
    /// limit allows, by heat or by the power system. SW_POWER_CAP alone is left out: a GPU under full
    /// load holding its enforced power limit is doing what a burn asks of it (it is still counted per
    /// reason).
    pub const SLOWDOWN: u64 = HW_SLOWDOWN | SW_THERMAL | HW_THERMAL | HW_POWER_BRAKE;
}

/// Maps instants to bins of one sample interval.
#[derive(Debug, Clone, Copy)]
pub struct Bins {
    origin_ns: i64,
    width_ns: i64,
}

impl Bins {
    pub fn new(origin_ns: i64, sample_hz: f64) -> Bins {
        let width_ns = (1e9 / sample_hz).round().max(1.0) as i64;
        Bins {
            origin_ns,
            width_ns,
        }
    }

    /// The bin whose centre is nearest to `t_ns`.
    pub fn of(&self, t_ns: i64) -> i64 {
        // Saturating: instants come from probes and the file, and must not overflow.
        t_ns.saturating_sub(self.origin_ns)
            .saturating_add(self.width_ns / 2)
            .div_euclid(self.width_ns)
    }
}

/// Mean power per bin of one node, from readings in time order.
pub fn node_bins(bins: Bins, readings: impl IntoIterator<Item = (i64, f64)>) -> Vec<(i64, f64)> {
    let mut out: Vec<(i64, f64, u32)> = Vec::new();
    for (t, w) in readings {
        let b = bins.of(t);
        match out.last_mut() {
            Some(last) if last.0 == b => {
                last.1 += w;
                last.2 += 1;
            }
            _ => out.push((b, w, 1)),
        }
    }
    // Readings out of time order can repeat a bin: merge them.
    out.sort_by_key(|x| x.0);
    let mut merged: Vec<(i64, f64, u32)> = Vec::with_capacity(out.len());
    for x in out {
        match merged.last_mut() {
            Some(last) if last.0 == x.0 => {
                last.1 += x.1;
                last.2 += x.2;
            }
            _ => merged.push(x),
        }
    }
    merged
        .into_iter()
        .map(|(b, sum, n)| (b, sum / f64::from(n)))
        .collect()
}

/// Rack power figures, in kW.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RackPower {
    pub peak_kw: Option<f64>,
    pub mean_kw: Option<f64>,
    pub sustained_kw: Option<f64>,
    pub sustained_window_s: f64,
}

/// Sums node bins into group (rack or hall) bins: bin → (watts, nodes with data).
#[derive(Debug, Default)]
pub struct GroupBins {
    bins: BTreeMap<i64, (f64, usize)>,
    reporting: usize,
}

impl GroupBins {
    /// Adds one node's binned power; a node with no readings does not count as reporting.
    pub fn add_node(&mut self, node: &[(i64, f64)]) {
        if node.is_empty() {
            return;
        }
        self.reporting += 1;
        for &(b, w) in node {
            let e = self.bins.entry(b).or_insert((0.0, 0));
            e.0 += w;
            e.1 += 1;
        }
    }

    /// The largest group power of any bin, kW.
    pub fn peak_kw(&self) -> Option<f64> {
        self.bins
            .values()
            .map(|&(w, _)| w / 1000.0)
            .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.max(x))))
    }

    /// The complete bins (every reporting node has data), kW, in bin order.
    pub fn complete_kw(&self) -> std::collections::BTreeMap<i64, f64> {
        self.bins
            .iter()
            .filter(|(_, &(_, n))| n == self.reporting)
            .map(|(&b, &(w, _))| (b, w / 1000.0))
            .collect()
    }

    /// Peak, mean and sustained power (see the module docs).
    pub fn power(&self, sample_hz: f64, sustained_target_s: f64) -> RackPower {
        let complete: Vec<(i64, f64)> = self
            .bins
            .iter()
            .filter(|(_, &(_, n))| n == self.reporting)
            .map(|(&b, &(w, _))| (b, w / 1000.0))
            .collect();
        let mean_kw = if complete.is_empty() {
            None
        } else {
            Some(complete.iter().map(|x| x.1).sum::<f64>() / complete.len() as f64)
        };
        let target = ((sustained_target_s * sample_hz).round() as usize).max(1);
        let (sustained_kw, w) = sustained(&complete, target);
        RackPower {
            peak_kw: self.peak_kw(),
            mean_kw,
            sustained_kw,
            sustained_window_s: w as f64 / sample_hz,
        }
    }
}

/// Highest mean over `w` consecutive bins, `w` = `target` or the longest stretch of consecutive bins if
/// shorter; returns the mean and `w`. `series` is sorted by bin.
pub fn sustained(series: &[(i64, f64)], target: usize) -> (Option<f64>, usize) {
    // Stretches of consecutive bins.
    let mut runs: Vec<&[(i64, f64)]> = Vec::new();
    let mut start = 0;
    for i in 1..=series.len() {
        if i == series.len() || series[i - 1].0.checked_add(1) != Some(series[i].0) {
            if i > start {
                runs.push(&series[start..i]);
            }
            start = i;
        }
    }
    let longest = runs.iter().map(|r| r.len()).max().unwrap_or(0);
    let w = target.min(longest);
    if w == 0 {
        return (None, 0);
    }
    let mut best: Option<f64> = None;
    for run in runs.iter().filter(|r| r.len() >= w) {
        let mut prefix = Vec::with_capacity(run.len() + 1);
        prefix.push(0.0);
        for &(_, kw) in run.iter() {
            prefix.push(prefix[prefix.len() - 1] + kw);
        }
        for i in w..=run.len() {
            let mean = (prefix[i] - prefix[i - w]) / w as f64;
            best = Some(best.map_or(mean, |b: f64| b.max(mean)));
        }
    }
    (best, w)
}

/// Per-device sample aggregates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceAgg {
    pub samples: u64,
    pub max_gpu_temp_c: Option<f64>,
    /// Samples with any bit of [`throttle::SLOWDOWN`] set.
    pub throttled: u64,
    /// Samples with each bit of [`throttle::REASONS`] set, in that order.
    pub by_reason: [u64; throttle::REASONS.len()],
}

impl DeviceAgg {
    pub fn add(&mut self, gpu_temp_c: Option<f64>, reasons: u64) {
        self.samples += 1;
        if let Some(t) = gpu_temp_c {
            self.max_gpu_temp_c = Some(self.max_gpu_temp_c.map_or(t, |m| m.max(t)));
        }
        if reasons & throttle::SLOWDOWN != 0 {
            self.throttled += 1;
        }
        if reasons & throttle::MASK != 0 {
            for (i, (bit, _)) in throttle::REASONS.iter().enumerate() {
                if reasons & bit != 0 {
                    self.by_reason[i] += 1;
                }
            }
        }
    }
}

/// Finds the phases whose window `[start, end)` holds an instant.
#[derive(Debug)]
pub struct PhaseWindows {
    /// (start, end, phase position), sorted by start.
    windows: Vec<(i64, i64, usize)>,
    /// Largest end among `windows[..=i]`.
    max_end: Vec<i64>,
}

impl PhaseWindows {
    pub fn new(windows: impl IntoIterator<Item = (i64, i64)>) -> PhaseWindows {
        let mut windows: Vec<(i64, i64, usize)> = windows
            .into_iter()
            .enumerate()
            .map(|(i, (s, e))| (s, e, i))
            .collect();
        windows.sort_by_key(|w| w.0);
        let mut max_end = Vec::with_capacity(windows.len());
        let mut m = i64::MIN;
        for w in &windows {
            m = m.max(w.1);
            max_end.push(m);
        }
        PhaseWindows { windows, max_end }
    }

    /// Calls `f(position)` for every phase whose window holds `t_ns`.
    pub fn each(&self, t_ns: i64, mut f: impl FnMut(usize)) {
        let mut i = self.windows.partition_point(|w| w.0 <= t_ns);
        while i > 0 && self.max_end[i - 1] > t_ns {
            i -= 1;
            let (s, e, pos) = self.windows[i];
            if s <= t_ns && t_ns < e {
                f(pos);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_centre_on_sample_instants() {
        let b = Bins::new(1_000, 10.0);
        assert_eq!(b.of(1_000), 0);
        assert_eq!(b.of(1_000 + 49_999_999), 0);
        assert_eq!(b.of(1_000 + 50_000_000), 1);
        assert_eq!(b.of(1_000 - 50_000_000), 0);
        assert_eq!(b.of(1_000 - 50_000_001), -1);
    }

    #[test]
    fn node_bins_average_repeats() {
        let b = Bins::new(0, 10.0);
        let r = node_bins(
            b,
            [(0, 100.0), (10, 300.0), (100_000_000, 50.0), (5, 200.0)],
        );
        assert_eq!(r, vec![(0, 200.0), (1, 50.0)]);
    }

    #[test]
    fn sustained_uses_longest_stretch_when_short() {
        let s: Vec<(i64, f64)> = vec![(0, 1.0), (1, 3.0), (2, 5.0), (10, 9.0)];
        assert_eq!(sustained(&s, 2), (Some(4.0), 2));
        assert_eq!(sustained(&s, 100), (Some(3.0), 3));
        assert_eq!(sustained(&[], 5), (None, 0));
    }

    #[test]
    fn group_power_mean_over_complete_bins() {
        let mut g = GroupBins::default();
        g.add_node(&[(0, 1000.0), (1, 1000.0), (2, 1000.0)]);
        g.add_node(&[(0, 2000.0), (2, 4000.0)]);
        g.add_node(&[]);
        let p = g.power(1.0, 10.0);
        assert_eq!(p.peak_kw, Some(5.0));
        assert_eq!(p.mean_kw, Some(4.0));
        // Complete bins 0 and 2 are not consecutive: the window shrinks to one bin.
        assert_eq!(p.sustained_kw, Some(5.0));
        assert_eq!(p.sustained_window_s, 1.0);
    }

    #[test]
    fn throttle_counts_ignore_idle_and_the_power_cap_alone_and_count_each_reason() {
        let mut d = DeviceAgg::default();
        d.add(Some(50.0), throttle::GPU_IDLE);
        d.add(Some(80.0), throttle::HW_THERMAL | throttle::SW_THERMAL);
        d.add(None, throttle::SW_POWER_CAP | throttle::SYNC_BOOST);
        d.add(None, throttle::SW_POWER_CAP | throttle::HW_POWER_BRAKE);
        assert_eq!(d.samples, 4);
        assert_eq!(
            d.throttled, 2,
            "idle and the power cap alone are not throttling"
        );
        assert_eq!(d.by_reason, [2, 0, 1, 1, 1]);
        assert_eq!(d.max_gpu_temp_c, Some(80.0));
    }

    #[test]
    fn phase_windows_find_overlaps() {
        let p = PhaseWindows::new([(0, 10), (10, 20), (5, 100)]);
        let find = |t| {
            let mut v = Vec::new();
            p.each(t, |i| v.push(i));
            v.sort();
            v
        };
        assert_eq!(find(0), vec![0]);
        assert_eq!(find(7), vec![0, 2]);
        assert_eq!(find(10), vec![1, 2]);
        assert_eq!(find(50), vec![2]);
        assert_eq!(find(100), Vec::<usize>::new());
        assert_eq!(find(-1), Vec::<usize>::new());
    }
}
