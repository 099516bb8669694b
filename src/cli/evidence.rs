//! The evidence a commissioning engineer hands over: `hallmark report RUN --out DIR` (a
//! self-contained HTML report with charts, plus JSON and CSV exports), `hallmark keygen --out DIR`,
//! `hallmark bundle RUN --key KEY --out FILE` (the run's files with a SHA-256 each and an Ed25519
//! signature over the manifest) and `hallmark verify FILE --pubkey PUB`.

use super::results::{self, ResultsArg};
use anyhow::{bail, Context};
use clap::Args;
use hallmark_bundle::{
    fingerprint, keygen, load_public_key, load_signing_key, verify_bundle, write_bundle_with,
    BundleFile, Manifest, SigningKey, StagingDir,
};
use hallmark_report::{write_report_with, ReportFiles, ReportOptions, SpecRef};
use hallmark_results::{Certification, StoreExt};
use hallmark_store::location::Location;
use hallmark_store::Store;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run id (or a unique prefix, or `latest`).
    run: String,
    /// Directory to write index.html and the exports into (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    results: ResultsArg,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory to write signing.key (mode 0600) and signing.pub into.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The run id (or a unique prefix, or `latest`).
    run: String,
    /// The signing key (signing.key from `hallmark keygen`).
    #[arg(long)]
    key: PathBuf,
    /// The bundle file to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    results: ResultsArg,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle file.
    file: PathBuf,
    /// The public key (signing.pub) of whoever signed it.
    #[arg(long)]
    pubkey: PathBuf,
}

/// The latest certification of a run, if it has one.
pub(crate) fn latest_certification(
    store: &Store,
    run_id: &str,
) -> anyhow::Result<Option<Certification>> {
    let mut all = store
        .certifications(run_id)
        .with_context(|| format!("reading the verdicts of run {run_id}"))?;
    all.sort_by_key(|c| c.certified_at_ns);
    Ok(all.pop())
}

/// A report written for a run.
pub(crate) struct Written {
    files: ReportFiles,
    run_id: String,
    certification: Option<Certification>,
}

/// Writes the report of `run` in the store `location` into `out`.
fn write(location: &Location, run: &str, out: &Path) -> anyhow::Result<Written> {
    let store = results::open_read_only(location)?;
    let run_id = store.resolve_run(run)?.as_str().to_string();
    write_from(&store, run_id, out)
}

/// Writes the report of run `run_id` (resolved) into `out`, with its latest certification.
fn write_from(store: &Store, run_id: String, out: &Path) -> anyhow::Result<Written> {
    let certification = latest_certification(store, &run_id)?;
    let verdicts = certification
        .as_ref()
        .map_or(&[][..], |c| c.verdicts.as_slice());
    let options = ReportOptions {
        spec: certification.as_ref().map(|c| SpecRef {
            name: c.spec_name.clone(),
            sha256: c.spec_sha256.clone(),
        }),
    };
    let files = write_report_with(store, &run_id, verdicts, out, &options)
        .with_context(|| format!("writing the report of run {run_id} into {}", out.display()))?;
    Ok(Written {
        files,
        run_id,
        certification,
    })
}

/// Writes run `run_id`'s signed bundle to `file`: its report and exports, written into a fresh
/// private directory (random name, mode 0700, so nothing that is signed passes through a path
/// another local user could predict or pre-create), and the spec of its latest certification.
/// Returns the manifest and the report's files as written.
pub(crate) fn sign_run(
    store: &Store,
    run_id: &str,
    key: &SigningKey,
    file: &Path,
) -> anyhow::Result<(Manifest, Written)> {
    let staging = StagingDir::new(&std::env::temp_dir(), "hallmark-bundle")
        .context("making a private staging directory for the bundle")?;
    let w = write_from(store, run_id.to_string(), staging.path())?;
    let mut members = Vec::new();
    for path in &w.files.files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            bail!("report file {} has no usable name", path.display());
        };
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        members.push(BundleFile::new(format!("report/{name}"), bytes));
    }
    if let Some(c) = &w.certification {
        members.push(BundleFile::new(
            "spec.toml",
            c.spec_toml.clone().into_bytes(),
        ));
    }
    let simulated = w.files.simulation.banner();
    let manifest = write_bundle_with(file, &w.run_id, simulated, &members, key)
        .with_context(|| format!("writing the bundle {}", file.display()))?;
    drop(staging);
    Ok((manifest, w))
}

pub fn report(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let w = write(&a.results.location, &a.run, &a.out)?;
    if let Some(banner) = w.files.simulation.banner() {
        eprintln!("warning: {banner}");
    }
    if w.certification.is_none() {
        eprintln!(
            "note: run {} has not been certified; the report has no verdicts \
             (hallmark certify {} --spec SPEC)",
            w.run_id, w.run_id
        );
    }
    for f in &w.files.files {
        println!("wrote {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn keygen_cmd(a: KeygenArgs) -> anyhow::Result<ExitCode> {
    let (key, public) =
        keygen(&a.out).with_context(|| format!("making a key pair in {}", a.out.display()))?;
    println!(
        "wrote {} (keep it secret) and {}",
        key.display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn bundle(a: BundleArgs) -> anyhow::Result<ExitCode> {
    let key = load_signing_key(&a.key)?;
    let store = results::open_read_only(&a.results.location)?;
    let run_id = store.resolve_run(&a.run)?;
    let (manifest, w) = sign_run(&store, run_id.as_str(), &key, &a.out)?;
    if let Some(banner) = &manifest.simulated {
        println!("*** {banner} ***");
    }
    println!(
        "wrote {}: run {} (plan {}), {} files, signed by key {}",
        a.out.display(),
        w.run_id,
        w.files.plan_name,
        manifest.files.len(),
        fingerprint(&key.verifying_key())
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let public = load_public_key(&a.pubkey)?;
    match verify_bundle(&a.file, &public) {
        Ok(m) => {
            println!(
                "OK: {} is intact and signed by key {} — run {}, written {} by hallmark {}, {} files:",
                a.file.display(),
                fingerprint(&public),
                m.run_id,
                m.created_at,
                m.hallmark_version,
                m.files.len()
            );
            for f in &m.files {
                println!("  {:<28} {:>12} bytes  sha256 {}", f.name, f.size, f.sha256);
            }
            if let Some(banner) = &m.simulated {
                println!("*** {banner} ***");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("FAILED: {}: {e}", a.file.display());
            Ok(ExitCode::from(1))
        }
    }
}
