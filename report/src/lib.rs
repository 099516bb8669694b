//! The run report: `DIR/index.html`, one self-contained page (inline CSS and SVG charts drawn with
//! plotters; no scripts, nothing fetched from anywhere), plus the exports `summary.json`,
//! `summary.csv`, `samples.csv`, `verdicts.csv`, `latency.csv` and `collectives.csv` ([`FILES`];
//! a signed bundle carries whatever [`ReportFiles::files`] lists).
//!
//! [`write_report`] takes the verdicts as given (it does not read or judge them itself), reads the
//! run's summary ([`hallmark_results::RunSummary`]) and its time series through the store's typed
//! reads and its one telemetry scan (`data.rs`, `samples.rs`; no SQL here), and returns the files it
//! wrote for a signed bundle.
//!
//! The page, top to bottom: the overall verdict, counts per criterion, the failures grouped by
//! criterion and rack with the worst few in full and the rest folded (`verdicts.rs`); rack power
//! over time with phases, the sustained target and the peak limit (`charts.rs`); the hall floor map
//! and the GPU temperature distribution with the hottest devices (`floor.rs`); the throttle
//! timeline; energy and perf/W per phase; the interconnect (latency heat map, worst pairs, busbw by
//! message size and the collective tables, `fabric.rs`; a note when the run has no fabric phase);
//! the plan's history up to the run with its change points (`history.rs`, also the page of
//! `hallmark history --html`); data completeness; inventory and provenance (`tables.rs`). Time series are bucketed to at most
//! 2000 points per line, so a long run stays a small page.

mod charts;
mod data;
mod export;
mod extra;
mod fabric;
mod fabric_charts;
mod facility;
mod floor;
pub mod history;
mod html;
mod outliers;
pub mod publish;
mod samples;
mod style;
mod tables;
mod verdicts;

pub use publish::{write_publication, Publication, PublishError, PublishRun};

use charts::{PhaseSpan, RackLabel};
use data::Timeline;
use hallmark_results::verdict::{overall, Comparison, Verdict};
use hallmark_store::Store;
use hallmark_store::StoreError;
use html::{figure, Section};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// File names written into the report directory, in this order.
pub const FILES: [&str; 7] = [
    "index.html",
    "summary.json",
    "summary.csv",
    "samples.csv",
    "verdicts.csv",
    "latency.csv",
    "collectives.csv",
];

/// Points of the power chart, all racks together (each line has 200 to 2000): keeps the page small
/// for large halls and long runs.
const POWER_POINTS: usize = 100_000;

/// Time buckets of the throttle timeline, all racks together (each band has 100 to 600).
const THROTTLE_CELLS: usize = 20_000;

/// The spec the verdicts were judged against, for the provenance section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecRef {
    pub name: String,
    /// SHA-256 of the spec file, lowercase hex.
    pub sha256: String,
}

/// What [`write_report_with`] adds to [`write_report`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOptions {
    pub spec: Option<SpecRef>,
}

/// The files a report consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub dir: PathBuf,
    /// Every file written, `dir` joined with each of [`FILES`].
    pub files: Vec<PathBuf>,
    /// The run's plan name and how much of it was simulated, from the summary the report was
    /// written from (so a caller need not read the store again).
    pub plan_name: String,
    pub simulation: hallmark_results::Simulation,
}

impl ReportFiles {
    /// The page, `dir/index.html`.
    pub fn index(&self) -> PathBuf {
        self.dir.join(FILES[0])
    }
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("cannot write the report file {path}: {source}; check that the directory is writable and has space")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot encode {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("cannot draw the {chart} chart: {detail}")]
    Chart { chart: &'static str, detail: String },
}

/// Writes the report of run `run_id` (a full id, see [`Store::resolve_run`]) into `out_dir` (created
/// if needed; files of an earlier report there are replaced) and returns the files written.
pub fn write_report(
    store: &Store,
    run_id: &str,
    verdicts: &[Verdict],
    out_dir: &Path,
) -> Result<ReportFiles, ReportError> {
    write_report_with(store, run_id, verdicts, out_dir, &ReportOptions::default())
}

fn create(path: &Path) -> Result<BufWriter<File>, ReportError> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|source| ReportError::Write {
            path: path.to_path_buf(),
            source,
        })
}

fn write_err(path: PathBuf) -> impl FnOnce(std::io::Error) -> ReportError {
    move |source| ReportError::Write { path, source }
}

fn finish(mut w: BufWriter<File>, path: &Path) -> Result<(), ReportError> {
    w.flush()
        .and_then(|_| w.get_ref().sync_all())
        .map_err(|source| ReportError::Write {
            path: path.to_path_buf(),
            source,
        })
}

fn chart<T>(chart: &'static str, r: charts::DrawResult<T>) -> Result<T, ReportError> {
    r.map_err(|e| ReportError::Chart {
        chart,
        detail: e.to_string(),
    })
}

/// What the limit lines of the power chart are.
fn limits_note(targets: &[verdicts::PowerLimit], peaks: &[verdicts::PowerLimit]) -> &'static str {
    match (targets.is_empty(), peaks.is_empty()) {
        (false, false) => {
            "Red: the peak limit; dashed green: the sustained-power target (from the verdicts)."
        }
        (false, true) => "Dashed green: the sustained-power target (from the verdicts).",
        (true, false) => "Red: the peak limit.",
        (true, true) => {
            "No limit lines: no rack power criterion in the verdicts and no max_rack_kw in the plan."
        }
    }
}

/// [`write_report`] with options (the spec the verdicts come from).
pub fn write_report_with(
    store: &Store,
    run_id: &str,
    verdicts: &[Verdict],
    out_dir: &Path,
    options: &ReportOptions,
) -> Result<ReportFiles, ReportError> {
    let s = hallmark_results::run_summary(store, run_id)?;
    let ctx = data::context(store, run_id)?;
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    if !style::font_ready() {
        return Err(ReportError::Chart {
            chart: "any",
            detail: "the embedded font could not be loaded".into(),
        });
    }
    let path = |i: usize| out_dir.join(FILES[i]);

    // Racks in summary order; each probe's rack.
    let rack_index: HashMap<(&str, &str, &str), usize> = s
        .racks
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.hall.as_str(), r.row.as_str(), r.rack.as_str()), i))
        .collect();
    let rack_of: Vec<usize> = ctx
        .probes
        .iter()
        .map(|p| {
            rack_index
                .get(&(p.hall.as_str(), p.row.as_str(), p.rack.as_str()))
                .copied()
                .unwrap_or(usize::MAX)
        })
        .collect();
    let labels: Vec<RackLabel> = s
        .racks
        .iter()
        .map(|r| RackLabel {
            name: r.rack.clone(),
            status: verdicts::rack_status(verdicts, r),
        })
        .collect();

    // The time axis: the run, or its phases, or its data.
    let phase_end = s
        .phases
        .iter()
        .map(|p| {
            p.scheduled_start_ns.saturating_add(
                i64::try_from(p.duration_ms)
                    .unwrap_or(i64::MAX / 2)
                    .saturating_mul(1_000_000),
            )
        })
        .max();
    let end = [s.ended_at_ns, phase_end]
        .into_iter()
        .flatten()
        .max()
        .or(ctx.last_data_ns)
        .unwrap_or(s.started_at_ns);
    let racks = s.racks.len();
    let power_tl = Timeline::new(
        s.started_at_ns,
        end,
        s.sample_hz,
        (POWER_POINTS / racks.max(1)).clamp(200, 2000),
    );
    let throttle_tl = Timeline::new(
        s.started_at_ns,
        end,
        s.sample_hz,
        (THROTTLE_CELLS / racks.max(1)).clamp(100, 600),
    );
    let phases: Vec<PhaseSpan> = s
        .phases
        .iter()
        .map(|p| PhaseSpan {
            name: p.name.clone(),
            from_s: power_tl.rel_s(p.scheduled_start_ns),
            to_s: power_tl.rel_s(p.scheduled_start_ns) + p.duration_ms as f64 / 1e3,
        })
        .collect();

    // samples.csv, streamed, and what the charts need from the samples.
    let mut w = create(&path(3))?;
    let stats = samples::scan(
        store,
        run_id,
        &ctx.probes,
        &rack_of,
        racks,
        &throttle_tl,
        &mut w,
    )
    .map_err(|e| match e {
        samples::ScanError::Store(e) => ReportError::Store(e),
        samples::ScanError::Write(source) => ReportError::Write {
            path: path(3),
            source,
        },
    })?;
    finish(w, &path(3))?;

    let power = data::rack_power(store, run_id, &ctx.probes, &rack_of, racks, &power_tl)?;
    let targets = verdicts::power_limits(verdicts, "sustain");
    let mut peaks = verdicts::power_limits(verdicts, "peak");
    if peaks.is_empty() {
        let plan = hallmark_protocol::plan::parse_plan(&ctx.plan_toml, "plan").ok();
        if let Some(kw) = plan
            .and_then(|p| p.limits.max_rack_kw)
            .filter(|v| v.is_finite())
        {
            peaks.push(verdicts::PowerLimit {
                kw,
                label: verdicts::limit_label(Comparison::AtMost, kw, "plan max_rack_kw"),
            });
        }
    }

    let mut sections = Vec::new();
    let spec = options
        .spec
        .as_ref()
        .map(|x| format!("{} (sha256 {})", x.name, x.sha256));
    sections.push(Section {
        id: "verdicts",
        title: "Verdict",
        body: verdicts::section(verdicts, &s.racks, s.started_at_ns, spec.as_deref()),
    });
    let svg = chart(
        "rack power",
        charts::power_chart(&power_tl, &labels, &power, &phases, &targets, &peaks),
    )?;
    let bucket = if power_tl.width_ns as f64 > 1e9 / s.sample_hz * 1.5 {
        format!(
            "each point is the mean over {:.1} s",
            power_tl.width_ns as f64 / 1e9
        )
    } else {
        "one point per sample interval".to_string()
    };
    sections.push(Section {
        id: "power",
        title: "Rack power over time",
        body: figure(
            svg,
            &format!(
                "Sum of node power per rack (kW); {bucket}; a break in a line is missing telemetry. \
                 Shaded: the plan's phases. {}",
                limits_note(&targets, &peaks)
            ),
            "No node power was stored for this run: no telemetry to chart.",
        ),
    });
    if let Some(sec) = facility::section(store, &s, &power_tl, &power, &phases)? {
        sections.push(sec);
    }
    sections.push(extra::floor_section(&s, &labels, &targets)?);
    sections.push(extra::temperature_section(&s, &ctx, &stats)?);
    let svg = chart(
        "throttle timeline",
        charts::throttle_chart(&throttle_tl, &labels, &stats.throttle, &phases),
    )?;
    sections.push(Section {
        id: "throttle",
        title: "Thermal throttling over time",
        body: figure(
            svg,
            "Per rack: the share of its device samples with a thermal throttle bit (sw_thermal or \
             hw_thermal) set. White: none; <span class=\"ramp\"></span> 0 → 100 %; grey: no samples. \
             The power cap alone is not throttling.",
            "No device samples were stored for this run: no telemetry to chart.",
        ),
    });
    sections.push(Section {
        id: "energy",
        title: "Energy and perf/W per phase",
        body: tables::phases(&s),
    });
    sections.push(fabric::section(&s, ctx.legacy_histograms)?);
    sections.push(outliers::section(&s));
    sections.push(history::section(store, &s)?);
    sections.push(Section {
        id: "data",
        title: "Data completeness",
        body: tables::completeness(&s),
    });
    sections.push(Section {
        id: "inventory",
        title: "Inventory",
        body: tables::inventory(&s, &ctx),
    });
    let spec_ref = options
        .spec
        .as_ref()
        .map(|x| (x.name.as_str(), x.sha256.as_str()));
    sections.push(Section {
        id: "provenance",
        title: "Provenance",
        body: tables::provenance(&s, &ctx, spec_ref),
    });

    let page = html::page(
        &s,
        (!verdicts.is_empty()).then(|| overall(verdicts)),
        ctx.devices.len(),
        &sections,
        &FILES[1..],
    );
    let mut w = create(&path(0))?;
    w.write_all(page.as_bytes()).map_err(write_err(path(0)))?;
    finish(w, &path(0))?;

    let mut w = create(&path(1))?;
    export::summary_json(&s, verdicts, &mut w).map_err(|source| ReportError::Json {
        path: path(1),
        source,
    })?;
    finish(w, &path(1))?;
    let mut w = create(&path(2))?;
    export::summary_csv(&s, verdicts, &mut w).map_err(write_err(path(2)))?;
    finish(w, &path(2))?;
    let mut w = create(&path(4))?;
    export::verdicts_csv(verdicts, s.simulation.is_simulated(), &mut w)
        .map_err(write_err(path(4)))?;
    finish(w, &path(4))?;
    let mut w = create(&path(5))?;
    fabric::latency_csv(&s, &mut w).map_err(write_err(path(5)))?;
    finish(w, &path(5))?;
    let mut w = create(&path(6))?;
    fabric::collectives_csv(&s, &mut w).map_err(write_err(path(6)))?;
    finish(w, &path(6))?;

    Ok(ReportFiles {
        dir: out_dir.to_path_buf(),
        files: (0..FILES.len()).map(path).collect(),
        plan_name: s.plan_name,
        simulation: s.simulation,
    })
}
