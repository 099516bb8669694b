//! `hallmark publish RUN... --out DIR [--key KEY]`: the runs side by side in one self-contained
//! directory for a paper or a web page (docs/PUBLISH.md). Each run is read from the store — its
//! summary, devices, facility readings, latest certification and per-subject metrics — into the
//! flat input of [`hallmark_report::publish`], which draws and writes everything.
//!
//! With `--key`, each run's signed bundle (its report, exports and spec, as `hallmark bundle`
//! writes it) goes into `DIR/bundles/RUN.hallmark` and every chart cites its SHA-256. Without, the
//! page says no bundle was written and cites the SHA-256 of the store's data file
//! (`hallmark.sqlite`; a PostgreSQL store has none to cite).

use super::evidence::{latest_certification, sign_run};
use super::results::{self, ResultsArg};
use anyhow::{bail, Context};
use clap::Args;
use hallmark_bundle::{load_signing_key, SigningKey};
use hallmark_protocol::facility::SourceKind;
use hallmark_report::publish::{
    check_out_dir, sha256_file, write_publication, BundleRef, BusBw, DataRef, Figures, GpuFigures,
    Meter, MeterKind, Method, PairLatency, PublishRun, RackFigures, SystemDescription,
};
use hallmark_report::SpecRef;
use hallmark_results::regress::metric_values;
use hallmark_results::{Certification, MetricValue, RunSummary, Scope, StoreExt, SubjectKind};
use hallmark_store::location::Location;
use hallmark_store::{Store, DB_FILE};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The runs (ids, unique prefixes or `latest`), in the order they are shown.
    #[arg(required = true)]
    runs: Vec<String>,
    /// The directory to write: absent, empty, or an earlier publication (whose files are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Sign each run's bundle with this key (signing.key from `hallmark keygen`) and write it into
    /// DIR/bundles/; without it, the page cites the SHA-256 of the store's data file instead.
    #[arg(long)]
    key: Option<PathBuf>,
    #[command(flatten)]
    results: ResultsArg,
}

pub fn run(a: PublishArgs) -> anyhow::Result<ExitCode> {
    let store = results::open_read_only(&a.results.location)?;
    let key = a.key.as_deref().map(load_signing_key).transpose()?;
    let mut ids: Vec<String> = Vec::new();
    for r in &a.runs {
        let id = store.resolve_run(r)?.as_str().to_string();
        if ids.contains(&id) {
            bail!("run {id} is named twice ({r}); name each run once");
        }
        ids.push(id);
    }
    let names: Vec<String> = ids.iter().map(|id| format!("{id}.hallmark")).collect();
    let cited: Vec<&str> = if key.is_some() {
        names.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    check_out_dir(&a.out, &cited)
        .with_context(|| format!("publishing into {}", a.out.display()))?;
    let data = match &key {
        Some(_) => None,
        None => data_ref(&a.results.location)?,
    };

    let mut runs = Vec::with_capacity(ids.len());
    for (id, name) in ids.iter().zip(&names) {
        let mut run = gather(&store, id).with_context(|| format!("reading run {id}"))?;
        match &key {
            Some(k) => run.bundle = Some(bundle(&store, id, k, &a.out, name)?),
            None => run.data = data.clone(),
        }
        runs.push(run);
    }
    let p = write_publication(&runs, &a.out)
        .with_context(|| format!("writing the publication into {}", a.out.display()))?;
    for r in &runs {
        if let Some(banner) = &r.simulated {
            eprintln!("warning: {} ({}): {banner}", r.name, r.run_id);
        }
    }
    for f in &p.flags {
        eprintln!("note: {}", f.message);
    }
    if key.is_none() {
        eprintln!(
            "note: no bundles written (no --key); the page cites {}",
            match &data {
                Some(d) => format!("the SHA-256 of the {}", d.what),
                None => "the run ids only (a PostgreSQL store has no data file)".into(),
            }
        );
    }
    println!(
        "wrote {}: {} runs side by side, {} charts, {} files",
        p.index().display(),
        runs.len(),
        p.charts.len(),
        p.files.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The store's data file and its SHA-256: a SQLite store's `hallmark.sqlite`; `None` for
/// PostgreSQL.
fn data_ref(location: &Location) -> anyhow::Result<Option<DataRef>> {
    match location {
        Location::Dir(dir) => {
            let path = dir.join(DB_FILE);
            let sha256 = sha256_file(&path)
                .with_context(|| format!("hashing the store's data file {}", path.display()))?;
            Ok(Some(DataRef {
                what: format!("store data file {DB_FILE} (every run in it, as published)"),
                sha256,
            }))
        }
        Location::Postgres(_) => Ok(None),
    }
}

/// Writes run `id`'s signed bundle (as `hallmark bundle` does) to `out/bundles/name`.
fn bundle(
    store: &Store,
    id: &str,
    key: &SigningKey,
    out: &Path,
    name: &str,
) -> anyhow::Result<BundleRef> {
    let dir = out.join("bundles");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    sign_run(store, id, key, &path)?;
    let sha256 =
        sha256_file(&path).with_context(|| format!("hashing the bundle {}", path.display()))?;
    Ok(BundleRef {
        file: name.to_string(),
        sha256,
    })
}

/// The GPU driver versions the run's probes listed, each once: the NVIDIA driver's ("NVIDIA
/// 580.65.06") and the CUDA version it supports ("CUDA 13.0"); none for a run without GPUs.
fn drivers(probes: &[hallmark_store::ContextProbe]) -> Vec<String> {
    let named = [("nvml_driver", "NVIDIA"), ("cuda_driver", "CUDA")];
    let mut out = Vec::new();
    for (name, label) in named {
        let versions: BTreeSet<&str> = probes
            .iter()
            .flat_map(|p| &p.software)
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        out.extend(versions.into_iter().map(|v| format!("{label} {v}")));
    }
    out
}

/// One run as the publication takes it.
fn gather(store: &Store, id: &str) -> anyhow::Result<PublishRun> {
    let s = store.run_summary(id)?;
    let devices = store.devices(id)?;
    let probes = store.probes(id)?;
    // The metrics stored with the run, what `compare` and `history` read too.
    let (metrics, _) = metric_values(store, id)?;
    let cert = latest_certification(store, id)?;
    let mut verdicts: BTreeMap<String, usize> = BTreeMap::new();
    for v in cert.iter().flat_map(|c| &c.verdicts) {
        *verdicts.entry(v.status.as_str().to_string()).or_default() += 1;
    }
    let mut models: BTreeMap<String, usize> = BTreeMap::new();
    for d in &devices {
        *models.entry(d.model.clone()).or_default() += 1;
    }
    let backends: BTreeSet<String> = probes.iter().map(|p| p.backend.clone()).collect();
    let kinds: BTreeSet<&str> = devices.iter().map(|d| d.kind.as_str()).collect();
    let system = SystemDescription {
        device_models: models,
        nodes: probes.len(),
        racks: s.racks.len(),
        backends: backends.into_iter().collect(),
        drivers: drivers(&store.run_context(id)?.probes),
        notes: vec![("hallmark version".into(), s.hallmark_version.clone())],
    };
    let method = method(store, id, &s, &metrics, devices.len(), &kinds)?;
    Ok(PublishRun {
        run_id: s.run_id.clone(),
        name: s.name.clone(),
        plan_name: s.plan_name.clone(),
        plan_sha256: s.plan_sha256.clone(),
        hall: s.hall.clone().unwrap_or_else(|| "real hardware".into()),
        started_at_ns: s.started_at_ns,
        simulated: s.simulation.banner(),
        spec: cert.as_ref().map(|c| SpecRef {
            name: c.spec_name.clone(),
            sha256: c.spec_sha256.clone(),
        }),
        bundle: None,
        data: None,
        method,
        system,
        figures: figures(&s, &metrics, cert.as_ref()),
        verdicts,
    })
}

/// The GPU-side sensor, in words, from the device kinds of the run.
fn sensor(kinds: &BTreeSet<&str>) -> Option<String> {
    let words: Vec<&str> = kinds
        .iter()
        .map(|k| match *k {
            "gpu" => "NVML power (GPU-side)",
            "simulated_gpu" => "simulated GPU model (no sensor)",
            "cpu_socket" => "RAPL package power (CPU socket)",
            other => other,
        })
        .collect();
    (!words.is_empty()).then(|| words.join(" + "))
}

/// How the run was measured.
fn method(
    store: &Store,
    id: &str,
    s: &RunSummary,
    metrics: &[MetricValue],
    devices_total: usize,
    kinds: &BTreeSet<&str>,
) -> anyhow::Result<Method> {
    let instrumented: BTreeSet<&str> = metrics
        .iter()
        .filter(|m| m.kind == SubjectKind::Device && m.metric == "mean_power_w")
        .filter(|m| m.value.is_some())
        .map(|m| m.subject.as_str())
        .collect();
    let thermal: BTreeSet<&str> = metrics
        .iter()
        .filter(|m| m.metric == "thermal_resistance_k_per_w" && m.value.is_some())
        .map(|m| m.unit.as_str())
        .collect();
    let run_s = s
        .ended_at_ns
        .map(|e| (e - s.started_at_ns) as f64 / 1e9)
        .filter(|v| *v > 0.0);
    // The duration times the share of the expected samples that were stored.
    let covered_s = run_s.and_then(|r| {
        (s.samples_expected > 0)
            .then(|| r * (s.samples_stored as f64 / s.samples_expected as f64).min(1.0))
    });
    Ok(Method {
        gpu_sensor: sensor(kinds),
        gpu_sample_hz: Some(s.sample_hz).filter(|v| v.is_finite() && *v > 0.0),
        thermal_method: (!thermal.is_empty())
            .then(|| thermal.into_iter().collect::<Vec<_>>().join(" and ")),
        devices_instrumented: instrumented.len(),
        devices_total,
        run_s,
        covered_s,
        meters: meters(store, id, s)?,
        racks_total: s.racks.len(),
    })
}

/// The facility meters that read during the run, with each kind's median reading rate.
fn meters(store: &Store, id: &str, s: &RunSummary) -> anyhow::Result<Vec<Meter>> {
    let Some(f) = &s.facility else {
        return Ok(Vec::new());
    };
    // Instants of the readings with a value of each series: one source's quantity at one point
    // (a source reads its quantities one after another, not at one instant).
    type Key = (&'static str, String, &'static str, String);
    let mut times: BTreeMap<Key, Vec<i64>> = BTreeMap::new();
    for r in store.facility_readings(id)? {
        let r = r.reading;
        if r.value.is_some_and(f64::is_finite) {
            times
                .entry((r.kind.as_str(), r.source, r.quantity.as_str(), r.point))
                .or_default()
                .push(r.t_ns);
        }
    }
    // The median over the kind's series of each one's median rate.
    let rate = |kind: SourceKind| -> Option<f64> {
        let mut per_source: Vec<f64> = times
            .iter()
            .filter(|((k, ..), _)| *k == kind.as_str())
            .filter_map(|(_, t)| median_interval_s(t))
            .map(|s| 1.0 / s)
            .collect();
        per_source.sort_by(f64::total_cmp);
        per_source.get(per_source.len() / 2).copied()
    };
    let mut out = Vec::new();
    let pdus: BTreeSet<&str> = f
        .racks
        .iter()
        .flat_map(|r| r.pdus.iter().map(String::as_str))
        .collect();
    if !pdus.is_empty() {
        out.push(Meter {
            kind: MeterKind::Pdu,
            count: pdus.len(),
            racks: f.racks.iter().filter(|r| !r.pdus.is_empty()).count(),
            sample_hz: rate(SourceKind::Pdu),
        });
    }
    let cdus: BTreeSet<&str> = f
        .racks
        .iter()
        .flat_map(|r| r.cdus.iter().map(String::as_str))
        .collect();
    if !cdus.is_empty() {
        out.push(Meter {
            kind: MeterKind::Cdu,
            count: cdus.len(),
            racks: f.racks.iter().filter(|r| !r.cdus.is_empty()).count(),
            sample_hz: rate(SourceKind::Cdu),
        });
    }
    let chassis: usize = f.racks.iter().map(|r| r.chassis_nodes).sum();
    if chassis > 0 {
        out.push(Meter {
            kind: MeterKind::Bmc,
            count: chassis,
            racks: f.racks.iter().filter(|r| r.chassis_nodes > 0).count(),
            sample_hz: rate(SourceKind::Chassis),
        });
    }
    Ok(out)
}

/// The median interval between distinct instants, seconds; `None` below two instants.
fn median_interval_s(t: &[i64]) -> Option<f64> {
    let mut t = t.to_vec();
    t.sort_unstable();
    t.dedup();
    let mut gaps: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2)
        .map(|g| *g as f64 / 1e9)
        .filter(|g| *g > 0.0)
}

/// The value of `metric` for each subject of `kind`, in the metrics' order.
fn by_subject<'a>(
    metrics: &'a [MetricValue],
    kind: SubjectKind,
    metric: &'a str,
) -> impl Iterator<Item = (&'a str, Option<f64>)> + 'a {
    metrics
        .iter()
        .filter(move |m| m.kind == kind && m.metric == metric)
        .map(|m| (m.subject.as_str(), m.value))
}

/// The distributions of the run.
fn figures(s: &RunSummary, metrics: &[MetricValue], cert: Option<&Certification>) -> Figures {
    // Devices: every device with any per-device metric, in the metrics' order.
    let mut gpus: BTreeMap<&str, GpuFigures> = BTreeMap::new();
    let labels = rack_labels(s);
    let rack_of: BTreeMap<&str, &str> = s
        .racks
        .iter()
        .zip(&labels)
        .flat_map(|(r, l)| r.nodes.iter().map(move |n| (n.as_str(), l.as_str())))
        .collect();
    for m in metrics.iter().filter(|m| m.kind == SubjectKind::Device) {
        let g = gpus
            .entry(m.subject.as_str())
            .or_insert_with(|| GpuFigures {
                device: m.subject.clone(),
                rack: m
                    .subject
                    .rsplit_once('/')
                    .and_then(|(node, _)| rack_of.get(node))
                    .map(|r| r.to_string()),
                ..GpuFigures::default()
            });
        match m.metric.as_str() {
            "sustained_tflops" => g.tflops = m.value,
            "mean_power_w" => g.power_w = m.value,
            "throttle_s" => g.throttle_s = m.value,
            "thermal_resistance_k_per_w" => g.thermal_resistance_k_per_w = m.value,
            _ => {}
        }
    }
    let design = design_kw(s, cert);
    let racks = s
        .racks
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (r, rack))| RackFigures {
            rack,
            kw: r.sustained_kw,
            design_kw: design.get(&i).copied(),
        })
        .collect();
    let busbw = by_subject(metrics, SubjectKind::Collective, "busbw_gbps")
        .filter_map(|(subject, v)| {
            let (op, size) = subject.rsplit_once('/')?;
            Some(BusBw {
                collective: op.to_string(),
                bytes: size.parse().ok()?,
                subject: "hall".into(),
                gb_s: v,
            })
        })
        .collect();
    let p99: BTreeMap<&str, Option<f64>> =
        by_subject(metrics, SubjectKind::Pair, "latency_p99_us").collect();
    let latency = by_subject(metrics, SubjectKind::Pair, "latency_p50_us")
        .map(|(pair, p50)| PairLatency {
            pair: pair.to_string(),
            p50_us: p50,
            p99_us: p99.get(pair).copied().flatten(),
        })
        .collect();
    Figures {
        gpus: gpus.into_values().collect(),
        racks,
        busbw,
        latency,
    }
}

/// Each rack's label: its name, or `row/rack` where a name is used in two rows.
fn rack_labels(s: &RunSummary) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let unique = s.racks.iter().all(|r| seen.insert(r.rack.as_str()));
    s.racks
        .iter()
        .map(|r| {
            if unique {
                r.rack.clone()
            } else {
                format!("{}/{}", r.row, r.rack)
            }
        })
        .collect()
}

/// Each rack's design power, by its index in the summary: the limit of the rack sustained-power
/// criterion of the spec it was judged against, kW (a verdict names a rack `rack` or `row/rack`).
fn design_kw(s: &RunSummary, cert: Option<&Certification>) -> BTreeMap<usize, f64> {
    let mut out = BTreeMap::new();
    for v in cert.iter().flat_map(|c| &c.verdicts) {
        let text = format!("{} {}", v.criterion, v.title).to_lowercase();
        // The GPU-side target (`sustained_power`), not the PDU's (`pdu_sustained_power`).
        if v.scope != Scope::Rack || !text.contains("sustain") || text.contains("pdu") {
            continue;
        }
        let scale = match v.unit.trim() {
            u if u.eq_ignore_ascii_case("kw") => 1.0,
            "W" | "w" => 1e-3,
            _ => continue,
        };
        let Some(kw) = v.limit.map(|l| l * scale).filter(|l| l.is_finite()) else {
            continue;
        };
        for (i, r) in s.racks.iter().enumerate() {
            if v.subject == r.rack || v.subject == format!("{}/{}", r.row, r.rack) {
                out.insert(i, kw);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::drivers;
    use hallmark_store::ContextProbe;

    fn probe(node: &str, software: &[(&str, &str)]) -> ContextProbe {
        ContextProbe {
            node_id: node.into(),
            backend: "cuda".into(),
            hallmark_version: "0.1.0".into(),
            hall: "h".into(),
            row: "r".into(),
            rack: "k".into(),
            software: software
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_drivers_are_the_versions_the_probes_listed_each_once() {
        let a = [
            ("cublas", "13.0.2"),
            ("cuda_driver", "13.0"),
            ("nvml_driver", "580.65.06"),
        ];
        let b = [("cuda_driver", "13.0"), ("nvml_driver", "580.82.07")];
        let probes = [probe("n1", &a), probe("n2", &a), probe("n3", &b)];
        assert_eq!(
            drivers(&probes),
            ["NVIDIA 580.65.06", "NVIDIA 580.82.07", "CUDA 13.0"]
        );
        assert!(drivers(&[probe("s1", &[("simulator", "0.1.0")])]).is_empty());
    }
}
