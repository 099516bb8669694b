//! A publication: runs (of one hall or of several) side by side in one self-contained directory, for
//! a paper or a web page (docs/PUBLISH.md).
//!
//! [`write_publication`] takes flat [`PublishRun`]s (the command fills them from the store) and
//! writes:
//!
//! - `index.html`: what differs between the runs ([`flags`]), each system and its measurement method
//!   with its quality level ([`quality`]), verdict counts, and every distribution as a
//!   box-and-whisker chart over the individual values, one row per run, with the run ids and
//!   bundle hashes it is drawn from under it and a SIMULATED mark on any chart with a simulated run;
//! - `charts/*.svg`: each chart standalone, the same drawing;
//! - `data/*.csv` and `data/publication.json`: every number, each row with its run id.
//!
//! The same input writes the same bytes. The directory must be absent, empty, or an earlier
//! publication (recognised by its `data/publication.json`, whose files are replaced); bundles the
//! runs cite must already be in `bundles/`, with the SHA-256 stated for them ([`check_out_dir`]
//! lets the caller check the directory before writing them; [`sha256_file`] hashes a file).

mod dataset;
mod export;
mod files;
mod flags;
mod model;
mod page;
mod quality;
mod stats;
mod svg;
mod tables;

pub use export::FORMAT;
pub use files::sha256_file;
pub use flags::{flags, Flag};
pub use model::{
    BundleRef, BusBw, DataRef, Figures, GpuFigures, Meter, MeterKind, Method, PairLatency,
    PublishRun, RackFigures, SystemDescription,
};
pub use quality::{quality, Level, Quality, DEVICE_HZ};
pub use stats::BoxStats;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Why a publication could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("nothing to publish: name at least one run")]
    NoRuns,

    #[error("run {run_id} is named twice; name each run once")]
    DuplicateRun { run_id: String },

    #[error(
        "the bundle file name {file:?} of run {run_id} is not a plain file name; \
         name the file inside the publication's bundles/ directory, without directories"
    )]
    BundleName { run_id: String, file: String },

    #[error(
        "the bundle {path} of run {run_id} is cited but not there; write the bundle into the \
         publication's bundles/ directory first"
    )]
    MissingBundle { run_id: String, path: PathBuf },

    #[error(
        "the bundle {path} of run {run_id} has SHA-256 {found}, not the {stated} stated for it; \
         write the bundle again"
    )]
    BundleHash {
        run_id: String,
        path: PathBuf,
        stated: String,
        found: String,
    },

    #[error("{dir} exists and is not a directory; choose a directory for --out")]
    NotADirectory { dir: PathBuf },

    #[error(
        "{dir} is not empty and holds no earlier publication (it has {first}{}); choose a new or \
         empty directory, or move what is there",
        if *more > 0 { format!(" and {more} more") } else { String::new() }
    )]
    NotEmpty {
        dir: PathBuf,
        first: String,
        more: usize,
    },

    #[error("cannot read {path}: {source}; check that it exists and is readable")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot remove the earlier publication's file {path}: {source}; check the directory's permissions")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {path}: {source}; check that the directory is writable and has space")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot encode the publication's JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("cannot draw the {chart} chart: {detail}")]
    Chart { chart: String, detail: String },
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub dir: PathBuf,
    /// Every file of the publication, relative to `dir`, `/`-separated, sorted (the cited bundles
    /// included).
    pub files: Vec<String>,
    /// The chart ids, in page order (`charts/{id}.svg`).
    pub charts: Vec<String>,
    /// What differs between the runs, as the page says it.
    pub flags: Vec<Flag>,
    /// Each run's quality level, in the order of the runs.
    pub quality: Vec<Quality>,
}

impl Publication {
    /// The page, `dir/index.html`.
    pub fn index(&self) -> PathBuf {
        self.dir.join("index.html")
    }
}

/// The runs as the page and the charts name them: a name that two runs share gets the last part of
/// each one's run id (`publish (9320b0)`), so that no two columns or rows read the same.
fn shown(runs: &[PublishRun]) -> Vec<PublishRun> {
    runs.iter()
        .map(|r| {
            let mut r = r.clone();
            if runs.iter().filter(|x| x.name == r.name).count() > 1 {
                let tail = r.run_id.rsplit('-').next().unwrap_or(&r.run_id);
                r.name = format!("{} ({tail})", r.name);
            }
            r
        })
        .collect()
}

fn bundle_names(runs: &[PublishRun]) -> Result<BTreeSet<String>, PublishError> {
    let mut out = BTreeSet::new();
    for r in runs {
        if let Some(b) = &r.bundle {
            if !files::plain_name(&b.file) {
                return Err(PublishError::BundleName {
                    run_id: r.run_id.clone(),
                    file: b.file.clone(),
                });
            }
            out.insert(b.file.clone());
        }
    }
    Ok(out)
}

/// Checks that `out` may receive a publication of runs citing the bundles named `bundles` (file
/// names inside `out/bundles/`), without writing anything: `out` is absent, empty, or an earlier
/// publication with those bundles beside it.
pub fn check_out_dir(out: &Path, bundles: &[&str]) -> Result<(), PublishError> {
    let set: BTreeSet<String> = bundles.iter().map(|s| s.to_string()).collect();
    files::check(out, &set).map(|_| ())
}

/// Refuses what cannot be published: no runs, a run twice, a bundle name with a directory, no
/// font. Returns the bundles' file names.
fn check_runs(runs: &[PublishRun]) -> Result<BTreeSet<String>, PublishError> {
    if runs.is_empty() {
        return Err(PublishError::NoRuns);
    }
    let mut seen = BTreeSet::new();
    for r in runs {
        if !seen.insert(r.run_id.as_str()) {
            return Err(PublishError::DuplicateRun {
                run_id: r.run_id.clone(),
            });
        }
    }
    let bundles = bundle_names(runs)?;
    if !crate::style::font_ready() {
        return Err(PublishError::Chart {
            chart: "any".into(),
            detail: "the embedded font could not be loaded".into(),
        });
    }
    Ok(bundles)
}

/// Checks that each cited bundle is in `out/bundles/` with the SHA-256 stated.
fn verify_bundles(runs: &[PublishRun], out: &Path) -> Result<(), PublishError> {
    for r in runs {
        if let Some(b) = &r.bundle {
            let path = out.join("bundles").join(&b.file);
            if !path.is_file() {
                return Err(PublishError::MissingBundle {
                    run_id: r.run_id.clone(),
                    path,
                });
            }
            let found = files::sha256_file(&path).map_err(|source| PublishError::Read {
                path: path.clone(),
                source,
            })?;
            if !found.eq_ignore_ascii_case(&b.sha256) {
                return Err(PublishError::BundleHash {
                    run_id: r.run_id.clone(),
                    path,
                    stated: b.sha256.clone(),
                    found,
                });
            }
        }
    }
    Ok(())
}

/// Writes the publication of `runs` into `out` (see the module documentation).
pub fn write_publication(runs: &[PublishRun], out: &Path) -> Result<Publication, PublishError> {
    let bundles = check_runs(runs)?;
    let old = files::check(out, &bundles)?;
    verify_bundles(runs, out)?;
    let keep: BTreeSet<String> = bundles.iter().map(|b| format!("bundles/{b}")).collect();
    files::clear(out, &old, &keep)?;
    for d in ["charts", "data"] {
        files::mkdir(&out.join(d))?;
    }

    let quality: Vec<Quality> = runs.iter().map(|r| quality::quality(&r.method)).collect();
    let flags = flags::flags(runs);
    let shown = shown(runs);
    let labels: Vec<svg::RunLabel> = shown
        .iter()
        .map(|r| svg::RunLabel {
            name: r.name.clone(),
            hall: r.hall.clone(),
            run_id: r.run_id.clone(),
            simulated: r.simulated.is_some(),
            trace: page::trace_text(r),
        })
        .collect();
    let charts = dataset::charts(runs);
    let mut svgs = Vec::with_capacity(charts.len());
    for c in &charts {
        svgs.push(svg::draw(c, &labels).map_err(|e| PublishError::Chart {
            chart: c.title.clone(),
            detail: e.to_string(),
        })?);
    }

    let data: [(&str, String); 7] = [
        ("data/runs.csv", export::runs_csv(runs, &quality)),
        ("data/gpus.csv", export::gpus_csv(runs)),
        ("data/racks.csv", export::racks_csv(runs)),
        ("data/busbw.csv", export::busbw_csv(runs)),
        ("data/latency.csv", export::latency_csv(runs)),
        ("data/verdicts.csv", export::verdicts_csv(runs)),
        ("data/stats.csv", export::stats_csv(runs, &charts)),
    ];
    let mut names: Vec<String> = vec!["index.html".into(), files::MANIFEST.into()];
    names.extend(charts.iter().map(|c| format!("charts/{}.svg", c.id)));
    names.extend(data.iter().map(|(n, _)| n.to_string()));
    names.extend(keep.iter().cloned());
    names.sort();

    for (c, drawn) in charts.iter().zip(&svgs) {
        let doc = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{drawn}");
        files::write(out, &format!("charts/{}.svg", c.id), doc.as_bytes())?;
    }
    for (name, text) in &data {
        files::write(out, name, text.as_bytes())?;
    }
    let json = export::publication_json(runs, &quality, &flags, &charts, &names)?;
    files::write(out, files::MANIFEST, json.as_bytes())?;
    let html = page::page(&shown, &quality, &flags, &charts, &svgs, &names);
    files::write(out, "index.html", html.as_bytes())?;

    Ok(Publication {
        dir: out.to_path_buf(),
        files: names,
        charts: charts.iter().map(|c| c.id.clone()).collect(),
        flags,
        quality,
    })
}
