//! The publication's data: `data/runs.csv` (one row per run: ids, plan, spec, trace, method,
//! quality level), `data/gpus.csv`, `data/racks.csv`, `data/busbw.csv`, `data/latency.csv` (the
//! figures as given, one row per subject with its run id), `data/stats.csv` (each chart's
//! five-number summaries), `data/verdicts.csv`, and `data/publication.json` with all of it.
//!
//! CSV as the report writes it: RFC 4180 quoting, a header line, absent values as empty fields,
//! numbers as Rust prints them (the shortest text that reads back to the same `f64`).

use super::dataset::ChartData;
use super::flags::Flag;
use super::model::{
    finite, BundleRef, DataRef, Figures, MeterKind, Method, PublishRun, SystemDescription,
};
use super::quality::Quality;
use super::stats::BoxStats;
use crate::export::csv_field;
use hallmark_store::time::format_utc;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The `format` of `publication.json`; an earlier publication is recognised by it.
pub const FORMAT: &str = "hallmark-publication/1";

fn opt(v: Option<f64>) -> String {
    finite(v).map(|v| v.to_string()).unwrap_or_default()
}

fn line(out: &mut String, fields: &[String]) {
    let f: Vec<String> = fields.iter().map(|s| csv_field(s)).collect();
    out.push_str(&f.join(","));
    out.push('\n');
}

/// `data/runs.csv`.
pub(crate) fn runs_csv(runs: &[PublishRun], quality: &[Quality]) -> String {
    let mut out = String::from(
        "run_id,name,hall,plan_name,plan_sha256,started_utc,simulated,spec_name,spec_sha256,\
         bundle_file,bundle_sha256,data,data_sha256,quality_level,gpu_sensor,gpu_sample_hz,\
         devices_instrumented,devices_total,run_s,covered_s,thermal_method,racks_total,pdu_racks,pdu_hz,cdu_count,\
         cdu_hz,bmc_count,bmc_hz\n",
    );
    for (r, q) in runs.iter().zip(quality) {
        let m = &r.method;
        let meter = |k: MeterKind| m.meters.iter().find(|x| x.kind == k);
        let mut f = vec![
            r.run_id.clone(),
            r.name.clone(),
            r.hall.clone(),
            r.plan_name.clone(),
            r.plan_sha256.clone(),
            format_utc(r.started_at_ns),
            r.simulated.clone().unwrap_or_default(),
            r.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            r.spec
                .as_ref()
                .map(|s| s.sha256.clone())
                .unwrap_or_default(),
            r.bundle
                .as_ref()
                .map(|b| b.file.clone())
                .unwrap_or_default(),
            r.bundle
                .as_ref()
                .map(|b| b.sha256.clone())
                .unwrap_or_default(),
            r.data.as_ref().map(|d| d.what.clone()).unwrap_or_default(),
            r.data
                .as_ref()
                .map(|d| d.sha256.clone())
                .unwrap_or_default(),
            q.level.to_string(),
            m.gpu_sensor.clone().unwrap_or_default(),
            opt(m.gpu_sample_hz),
            m.devices_instrumented.to_string(),
            m.devices_total.to_string(),
            opt(m.run_s),
            opt(m.covered_s),
            m.thermal_method.clone().unwrap_or_default(),
            m.racks_total.to_string(),
            meter(MeterKind::Pdu)
                .map(|x| x.racks.to_string())
                .unwrap_or_default(),
            opt(meter(MeterKind::Pdu).and_then(|x| x.sample_hz)),
        ];
        for k in [MeterKind::Cdu, MeterKind::Bmc] {
            f.push(meter(k).map(|x| x.count.to_string()).unwrap_or_default());
            f.push(opt(meter(k).and_then(|x| x.sample_hz)));
        }
        line(&mut out, &f);
    }
    out
}

/// `data/gpus.csv`.
pub(crate) fn gpus_csv(runs: &[PublishRun]) -> String {
    let mut out = String::from(
        "run_id,device,rack,tflops,power_w,gflops_per_w,throttle_s,thermal_resistance_k_per_w\n",
    );
    for r in runs {
        for g in &r.figures.gpus {
            line(
                &mut out,
                &[
                    r.run_id.clone(),
                    g.device.clone(),
                    g.rack.clone().unwrap_or_default(),
                    opt(g.tflops),
                    opt(g.power_w),
                    opt(g.gflops_per_w()),
                    opt(g.throttle_s),
                    opt(g.thermal_resistance_k_per_w),
                ],
            );
        }
    }
    out
}

/// `data/racks.csv`.
pub(crate) fn racks_csv(runs: &[PublishRun]) -> String {
    let mut out = String::from("run_id,rack,kw,design_kw,pct_of_design\n");
    for r in runs {
        for x in &r.figures.racks {
            line(
                &mut out,
                &[
                    r.run_id.clone(),
                    x.rack.clone(),
                    opt(x.kw),
                    opt(x.design_kw),
                    opt(x.pct_of_design()),
                ],
            );
        }
    }
    out
}

/// `data/busbw.csv`.
pub(crate) fn busbw_csv(runs: &[PublishRun]) -> String {
    let mut out = String::from("run_id,collective,bytes,subject,busbw_gb_s\n");
    for r in runs {
        for b in &r.figures.busbw {
            line(
                &mut out,
                &[
                    r.run_id.clone(),
                    b.collective.clone(),
                    b.bytes.to_string(),
                    b.subject.clone(),
                    opt(b.gb_s),
                ],
            );
        }
    }
    out
}

/// `data/latency.csv`.
pub(crate) fn latency_csv(runs: &[PublishRun]) -> String {
    let mut out = String::from("run_id,pair,p50_us,p99_us\n");
    for r in runs {
        for l in &r.figures.latency {
            line(
                &mut out,
                &[
                    r.run_id.clone(),
                    l.pair.clone(),
                    opt(l.p50_us),
                    opt(l.p99_us),
                ],
            );
        }
    }
    out
}

/// `data/stats.csv`: one row per chart, group and run.
pub(crate) fn stats_csv(runs: &[PublishRun], charts: &[ChartData]) -> String {
    let mut out =
        String::from("chart,group,run_id,n,without_value,min,q1,median,q3,max,mean,unit\n");
    for c in charts {
        for g in &c.groups {
            for row in &g.rows {
                let Some(r) = runs.get(row.run) else { continue };
                let s = row.stats.as_ref();
                let st = |f: fn(&BoxStats) -> f64| opt(s.map(f));
                line(
                    &mut out,
                    &[
                        c.id.clone(),
                        g.label.clone().unwrap_or_default(),
                        r.run_id.clone(),
                        row.values.len().to_string(),
                        row.absent.to_string(),
                        st(|s| s.min),
                        st(|s| s.q1),
                        st(|s| s.median),
                        st(|s| s.q3),
                        st(|s| s.max),
                        st(|s| s.mean),
                        c.unit.to_string(),
                    ],
                );
            }
        }
    }
    out
}

/// `data/verdicts.csv`: a run not judged has no row.
pub(crate) fn verdicts_csv(runs: &[PublishRun]) -> String {
    let mut out = String::from("run_id,spec_sha256,status,count\n");
    for r in runs {
        for (st, n) in &r.verdicts {
            let spec = r
                .spec
                .as_ref()
                .map(|s| s.sha256.clone())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{},{},{},{n}",
                csv_field(&r.run_id),
                csv_field(&spec),
                csv_field(st)
            );
        }
    }
    out
}

#[derive(Serialize)]
struct SpecDoc<'a> {
    name: &'a str,
    sha256: &'a str,
}

#[derive(Serialize)]
struct RunDoc<'a> {
    run_id: &'a str,
    name: &'a str,
    hall: &'a str,
    plan_name: &'a str,
    plan_sha256: &'a str,
    started_at_ns: i64,
    started_utc: String,
    /// The SIMULATED banner, `null` for a real run.
    simulated: Option<&'a str>,
    spec: Option<SpecDoc<'a>>,
    bundle: Option<&'a BundleRef>,
    data: Option<&'a DataRef>,
    method: &'a Method,
    quality: &'a Quality,
    system: &'a SystemDescription,
    verdicts: &'a BTreeMap<String, usize>,
    figures: &'a Figures,
}

#[derive(Serialize)]
struct RowDoc<'a> {
    run_id: &'a str,
    n: usize,
    without_value: usize,
    stats: Option<&'a BoxStats>,
}

#[derive(Serialize)]
struct GroupDoc<'a> {
    label: Option<&'a str>,
    rows: Vec<RowDoc<'a>>,
}

#[derive(Serialize)]
struct ChartDoc<'a> {
    id: &'a str,
    title: &'a str,
    axis: &'a str,
    unit: &'a str,
    file: String,
    /// Whether a simulated run is drawn in it (and the chart says SIMULATED).
    simulated: bool,
    groups: Vec<GroupDoc<'a>>,
}

#[derive(Serialize)]
struct Doc<'a> {
    format: &'static str,
    generator: String,
    runs: Vec<RunDoc<'a>>,
    flags: &'a [Flag],
    charts: Vec<ChartDoc<'a>>,
    /// Every file of the publication, relative to its directory.
    files: &'a [String],
}

/// `data/publication.json`.
pub(crate) fn publication_json(
    runs: &[PublishRun],
    quality: &[Quality],
    flags: &[Flag],
    charts: &[ChartData],
    files: &[String],
) -> serde_json::Result<String> {
    let doc = Doc {
        format: FORMAT,
        generator: format!("hallmark {}", env!("CARGO_PKG_VERSION")),
        runs: runs
            .iter()
            .zip(quality)
            .map(|(r, q)| RunDoc {
                run_id: &r.run_id,
                name: &r.name,
                hall: &r.hall,
                plan_name: &r.plan_name,
                plan_sha256: &r.plan_sha256,
                started_at_ns: r.started_at_ns,
                started_utc: format_utc(r.started_at_ns),
                simulated: r.simulated.as_deref(),
                spec: r.spec.as_ref().map(|s| SpecDoc {
                    name: &s.name,
                    sha256: &s.sha256,
                }),
                bundle: r.bundle.as_ref(),
                data: r.data.as_ref(),
                method: &r.method,
                quality: q,
                system: &r.system,
                verdicts: &r.verdicts,
                figures: &r.figures,
            })
            .collect(),
        flags,
        charts: charts
            .iter()
            .map(|c| ChartDoc {
                id: &c.id,
                title: &c.title,
                axis: &c.axis,
                unit: c.unit,
                file: format!("charts/{}.svg", c.id),
                simulated: runs.iter().any(|r| r.simulated.is_some()),
                groups: c
                    .groups
                    .iter()
                    .map(|g| GroupDoc {
                        label: g.label.as_deref(),
                        rows: g
                            .rows
                            .iter()
                            .filter_map(|row| {
                                runs.get(row.run).map(|r| RowDoc {
                                    run_id: &r.run_id,
                                    n: row.values.len(),
                                    without_value: row.absent,
                                    stats: row.stats.as_ref(),
                                })
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        files,
    };
    let mut s = serde_json::to_string_pretty(&doc)?;
    s.push('\n');
    Ok(s)
}
