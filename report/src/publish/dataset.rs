//! The charts of a publication as data: for each distribution (per-GPU TFLOP/s, W, GFLOP/s per W,
//! throttle time and thermal resistance over coolant; rack kW and its share of design; busbw per collective
//! at each message size; pair latency p50 and p99) one row per run with its values, how many of its
//! subjects have none, and the five-number summary. A chart no run has any value for is left out.

use super::model::{finite, PublishRun};
use super::stats::BoxStats;

/// One chart.
pub(crate) struct ChartData {
    /// File stem: `charts/{id}.svg`; also the chart's key in the CSV and JSON.
    pub id: String,
    pub title: String,
    /// The title in a table's row label (shorter where the title is long).
    pub short: String,
    /// The value axis, with its unit.
    pub axis: String,
    pub unit: &'static str,
    /// What one value is, for the caption.
    pub what: String,
    pub groups: Vec<Group>,
    /// A vertical reference line across the plot, with its label.
    pub reference: Option<(f64, String)>,
    /// What the red ticks on a row are, when a row has any.
    pub marks_are: Option<&'static str>,
    /// A logarithmic value axis (over whole decades) instead of a linear one.
    pub log: bool,
}

/// Rows under one heading (a message size), or the chart's only group (`label` `None`).
pub(crate) struct Group {
    pub label: Option<String>,
    /// One per run, in the order of the runs.
    pub rows: Vec<Row>,
}

pub(crate) struct Row {
    /// Index of the run.
    pub run: usize,
    /// The finite values.
    pub values: Vec<f64>,
    /// Subjects listed with no value.
    pub absent: usize,
    /// Red ticks on the row (a rack design power).
    pub marks: Vec<f64>,
    pub stats: Option<BoxStats>,
}

impl Row {
    fn new(run: usize, all: impl Iterator<Item = Option<f64>>) -> Row {
        let mut values = Vec::new();
        let mut absent = 0;
        for v in all {
            match finite(v) {
                Some(v) => values.push(v),
                None => absent += 1,
            }
        }
        let stats = BoxStats::of(&values);
        Row {
            run,
            values,
            absent,
            marks: Vec::new(),
            stats,
        }
    }
}

impl ChartData {
    fn has_values(&self) -> bool {
        self.groups
            .iter()
            .any(|g| g.rows.iter().any(|r| !r.values.is_empty()))
    }

    fn single(
        id: &str,
        title: &str,
        axis: &str,
        unit: &'static str,
        what: &str,
        rows: Vec<Row>,
    ) -> ChartData {
        ChartData {
            id: id.into(),
            title: title.into(),
            short: title.into(),
            axis: axis.into(),
            unit,
            what: what.into(),
            groups: vec![Group { label: None, rows }],
            reference: None,
            marks_are: None,
            log: false,
        }
    }
}

/// A message size as `8 B`, `64 KiB`, `1 MiB`, `1.5 GiB`.
pub(crate) fn bytes_label(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b as f64;
    let mut i = 0;
    while x >= 1024.0 && i + 1 < UNITS.len() {
        x /= 1024.0;
        i += 1;
    }
    if x.fract() == 0.0 {
        format!("{x:.0} {}", UNITS[i])
    } else {
        format!("{x:.1} {}", UNITS[i])
    }
}

/// A file-name-safe form of `s`: lowercase letters, digits and `-`.
pub(crate) fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches('-');
    if t.is_empty() {
        "x".into()
    } else {
        t.into()
    }
}

/// Every chart with at least one value, in page order.
pub(crate) fn charts(runs: &[PublishRun]) -> Vec<ChartData> {
    let gpu = |f: &dyn Fn(&super::model::GpuFigures) -> Option<f64>| -> Vec<Row> {
        runs.iter()
            .enumerate()
            .map(|(i, r)| Row::new(i, r.figures.gpus.iter().map(f)))
            .collect()
    };
    let mut out = vec![
        ChartData::single(
            "gpu-tflops",
            "Sustained TFLOP/s per GPU",
            "sustained TFLOP/s",
            "TFLOP/s",
            "one GPU's sustained TFLOP/s",
            gpu(&|g| g.tflops),
        ),
        ChartData::single(
            "gpu-power",
            "Mean power per GPU",
            "mean GPU power (W)",
            "W",
            "one GPU's mean power under load",
            gpu(&|g| g.power_w),
        ),
        ChartData::single(
            "gpu-gflops-per-w",
            "Energy efficiency per GPU",
            "GFLOP/s per W",
            "GFLOP/s/W",
            "one GPU's sustained TFLOP/s × 1000 / its mean power",
            gpu(&|g| g.gflops_per_w()),
        ),
    ];
    out.extend(rack_charts(runs));
    out.push(ChartData::single(
        "gpu-throttle",
        "Throttle time per GPU",
        "seconds throttled",
        "s",
        "one GPU's seconds with a slowdown reason set",
        gpu(&|g| g.throttle_s),
    ));
    out.push(ChartData::single(
        "gpu-thermal-resistance",
        "GPU temperature over coolant supply per watt",
        "thermal resistance (K/W)",
        "K/W",
        "one GPU's thermal resistance: its steady temperature's rise over the coolant supply per \
         watt of its power (how each run measured it: its method above)",
        gpu(&|g| g.thermal_resistance_k_per_w),
    ));
    out.extend(busbw_charts(runs));
    out.extend(latency_charts(runs));
    out.retain(ChartData::has_values);
    out
}

/// Rack power, and rack power as a share of the design power with the 100 % line.
fn rack_charts(runs: &[PublishRun]) -> Vec<ChartData> {
    let mut out = Vec::new();
    let mut rack_kw: Vec<Row> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| Row::new(i, r.figures.racks.iter().map(|x| x.kw)))
        .collect();
    for (row, r) in rack_kw.iter_mut().zip(runs) {
        let mut marks: Vec<f64> = r
            .figures
            .racks
            .iter()
            .filter_map(|x| finite(x.design_kw))
            .collect();
        marks.sort_by(f64::total_cmp);
        marks.dedup();
        row.marks = marks;
    }
    let mut kw = ChartData::single(
        "rack-kw",
        "Sustained power per rack",
        "sustained rack power (kW)",
        "kW",
        "one rack's sustained power",
        rack_kw,
    );
    kw.marks_are = Some("the racks' design power");
    out.push(kw);
    let mut pct = ChartData::single(
        "rack-design-pct",
        "Rack power against design",
        "sustained rack power (% of the rack's design power)",
        "%",
        "one rack's sustained power as a percentage of its design power",
        runs.iter()
            .enumerate()
            .map(|(i, r)| Row::new(i, r.figures.racks.iter().map(|x| x.pct_of_design())))
            .collect(),
    );
    pct.reference = Some((100.0, "design".into()));
    out.push(pct);
    out
}

/// Node-pair latency, median and 99th percentile.
fn latency_charts(runs: &[PublishRun]) -> Vec<ChartData> {
    let rows = |f: fn(&super::model::PairLatency) -> Option<f64>| -> Vec<Row> {
        runs.iter()
            .enumerate()
            .map(|(i, r)| Row::new(i, r.figures.latency.iter().map(f)))
            .collect()
    };
    vec![
        ChartData::single(
            "latency-p50",
            "Node-pair latency, median",
            "latency p50 (µs)",
            "µs",
            "one node pair's median latency",
            rows(|x| x.p50_us),
        ),
        ChartData::single(
            "latency-p99",
            "Node-pair latency, 99th percentile",
            "latency p99 (µs)",
            "µs",
            "one node pair's 99th-percentile latency",
            rows(|x| x.p99_us),
        ),
    ]
}

/// One chart per collective, a group per message size any run measured it at.
fn busbw_charts(runs: &[PublishRun]) -> Vec<ChartData> {
    let mut collectives: Vec<&str> = runs
        .iter()
        .flat_map(|r| r.figures.busbw.iter().map(|b| b.collective.as_str()))
        .collect();
    collectives.sort_unstable();
    collectives.dedup();
    let mut used: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for c in collectives {
        let mut id = format!("busbw-{}", slug(c));
        if used.contains(&id) {
            id = format!("{id}-{}", used.len() + 1);
        }
        used.push(id.clone());
        let mut sizes: Vec<u64> = runs
            .iter()
            .flat_map(|r| r.figures.busbw.iter())
            .filter(|b| b.collective == c)
            .map(|b| b.bytes)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let groups = sizes
            .iter()
            .map(|&size| Group {
                label: Some(bytes_label(size)),
                rows: runs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        Row::new(
                            i,
                            r.figures
                                .busbw
                                .iter()
                                .filter(|b| b.collective == c && b.bytes == size)
                                .map(|b| b.gb_s),
                        )
                    })
                    .collect(),
            })
            .collect();
        out.push(ChartData {
            id,
            title: format!("Bus bandwidth of {c} by message size"),
            short: format!("{c} bus bandwidth"),
            axis: "bus bandwidth (GB/s)".into(),
            unit: "GB/s",
            what: format!("one measurement of {c}'s bus bandwidth at that size"),
            groups,
            reference: None,
            marks_are: None,
            log: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_slugs() {
        assert_eq!(bytes_label(8), "8 B");
        assert_eq!(bytes_label(1 << 20), "1 MiB");
        assert_eq!(bytes_label(3 << 29), "1.5 GiB");
        assert_eq!(slug("All_Reduce (NCCL)"), "all-reduce-nccl");
        assert_eq!(slug("//"), "x");
    }
}
