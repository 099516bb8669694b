//! The run report (`hallmark_report`): the constructed run of `common` with a FAIL, a PASS and
//! an INCOMPLETE verdict, a run without telemetry, an unknown run; the page is self-contained and the
//! exports have the right headers and row counts.

#[path = "../../results/tests/common/mod.rs"]
mod common;

use common::*;
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::{ClockEstimate, Sample, TelemetryBatch, Workload};
use hallmark_report::FILES;
use hallmark_report::{write_report, write_report_with, ReportError, ReportOptions, SpecRef};
use hallmark_results::{
    Comparison, Evidence, PhaseRow, ProbeRow, RunStatus, Scope, Status, Store, StoreError,
    StoreExt, Verdict,
};

fn verdict(
    criterion: &str,
    scope: Scope,
    subject: &str,
    status: Status,
    measured: Option<f64>,
    limit: f64,
    detail: &str,
) -> Verdict {
    Verdict {
        criterion: criterion.into(),
        title: format!("title of {criterion}"),
        scope,
        subject: subject.into(),
        status,
        measured,
        limit: Some(limit),
        comparison: Comparison::AtMost,
        unit: if criterion.contains("temp") {
            "°C"
        } else {
            "kW"
        }
        .into(),
        evidence: Evidence {
            from_ns: Some(T0),
            to_ns: Some(T0 + 8000 * MS),
            subjects: vec!["r2n1".into(), "r2n2".into()],
            detail: detail.into(),
        },
    }
}

fn verdicts() -> Vec<Verdict> {
    vec![
        verdict(
            "rack-sustained-power",
            Scope::Rack,
            "rack-02",
            Status::Fail,
            Some(3.05),
            2.9,
            "highest 6 s mean of rack power, 60 bins of 100 ms",
        ),
        verdict(
            "rack-sustained-power",
            Scope::Rack,
            "rack-01",
            Status::Pass,
            Some(2.7),
            2.9,
            "highest 10 s mean of rack power",
        ),
        verdict(
            "rack-peak-power",
            Scope::Rack,
            "rack-01",
            Status::Pass,
            Some(3.0),
            4.5,
            "largest rack power of any bin",
        ),
        verdict(
            "gpu-max-temp",
            Scope::Device,
            "r2n2/0",
            Status::Incomplete,
            None,
            85.0,
            "no temperature after the probe was lost <script>",
        ),
    ]
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The page has no script and refers to nothing outside itself but the SVG namespace.
fn assert_self_contained(html: &str) {
    assert!(
        !html.to_lowercase().contains("<script"),
        "a script in the page"
    );
    let rest = html.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !rest.contains("http://") && !rest.contains("https://"),
        "an external reference"
    );
    assert!(!rest.contains("url("), "a CSS url()");
}

#[test]
fn report_of_constructed_run() {
    let dir = TempDir::new("report");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build(&mut store);
    let out = dir.path().join("report");
    let v = verdicts();
    let files = write_report(&store, run.as_str(), &v, &out).unwrap();
    assert_eq!(files.files.len(), FILES.len());
    for (f, name) in files.files.iter().zip(FILES) {
        assert_eq!(f, &out.join(name));
        assert!(f.is_file(), "{}", f.display());
    }
    assert_eq!(files.index(), out.join("index.html"));

    let html = read(&files.index());
    assert_self_contained(&html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<div class=\"overall fail\"><div class=\"word\">FAIL</div>"));
    // Power, floor map, temperature histogram, throttle timeline.
    assert_eq!(html.matches("<svg").count(), 4, "charts");
    for id in [
        "power",
        "floor",
        "temperature",
        "throttle",
        "energy",
        "inventory",
        "provenance",
    ] {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id}"
        );
    }
    // The failing rack, its evidence, the target and peak lines, the collapsed passes.
    assert!(html.contains("rack-02"));
    assert!(html.contains("highest 6 s mean of rack power, 60 bins of 100 ms"));
    assert!(
        html.contains("rack-02 FAIL"),
        "floor map caption names the failing rack"
    );
    assert!(html.contains("sustained target") && html.contains("≤ 2.9 kW · rack-sustained-power"));
    assert!(html.contains("peak limit") && html.contains("≤ 4.5 kW · rack-peak-power"));
    assert!(html.contains("<details><summary>2 PASS verdicts</summary>"));
    assert!(html.contains("no temperature after the probe was lost &lt;script&gt;"));
    assert!(html.contains("No interconnect phase in this run"));
    // Perf/W of the burn phase (150 GFLOP/s at 5.8125 kW) and n/a for the idle phase.
    assert!(html.contains(">25.8 MFLOP/s per W<") && html.contains(">n/a<"));
    // Hottest device and provenance.
    assert!(html.contains("r2n1/1") && html.contains(">91.0<"));
    assert!(html.contains("burn-then-idle") && html.contains(&run.to_string()));
    assert!(
        html.contains("max |offset| 0.003 ms ± up to 0.050 ms"),
        "clock offsets"
    );
    assert!(html.contains("The run is <b>incomplete</b> (probe r2n2 lost)"));

    // samples.csv: every stored sample, absent sensors empty.
    let samples = read(&out.join("samples.csv"));
    let mut lines = samples.lines();
    assert_eq!(
        lines.next(),
        Some(
            "run_id,node,rack,device,t_ns,power_w,energy_j,gpu_temp_c,mem_temp_c,sm_clock_mhz,\
             util_pct,throttle_reasons"
        )
    );
    let rows: Vec<&str> = lines.collect();
    let stored = store.run_summary(run.as_str()).unwrap().samples_stored;
    assert_eq!(rows.len() as u64, stored);
    assert_eq!(rows.len(), 940);
    assert!(rows.iter().all(|r| r.split(',').count() == 12));
    let first = format!("{},r1n1,rack-01,0,{T0},300,0,50,,1980,,0", run);
    assert_eq!(rows[0], first);
    let throttled = rows
        .iter()
        .filter(|r| {
            let bits: u64 = r.rsplit(',').next().unwrap().parse().unwrap();
            bits & 0x60 != 0
        })
        .inspect(|r| assert!(r.starts_with(&format!("{run},r2n1,rack-02,1,")), "{r}"))
        .count();
    assert_eq!(throttled, 15, "hw_thermal | sw_thermal = 0x60");
    assert!(
        rows.iter().any(|r| r.ends_with(",97")),
        "0x60 | GPU_IDLE, as an unsigned integer"
    );

    // summary.csv: one row per rack with its worst verdict.
    let summary = read(&out.join("summary.csv"));
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("run_id,hall,row,rack,nodes,peak_kw"));
    assert!(
        lines[1].contains(",rack-01,2,3,2.5,2.7,10,65.5,r1n2/0,0,PASS"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(",rack-02,2,") && lines[2].ends_with(",1.5,FAIL,true"),
        "{}",
        lines[2]
    );

    let vcsv = read(&out.join("verdicts.csv"));
    let lines: Vec<&str> = vcsv.lines().collect();
    assert_eq!(lines.len(), 1 + v.len());
    assert!(lines[1].starts_with(
        "rack-sustained-power,title of rack-sustained-power,rack,rack-02,FAIL,3.05,<=,2.9,kW,"
    ));
    assert!(lines[4].contains(",INCOMPLETE,,<=,85,"), "{}", lines[4]);
    assert!(lines[1].contains("\"highest 6 s mean of rack power, 60 bins of 100 ms\""));

    let json: serde_json::Value = serde_json::from_str(&read(&out.join("summary.json"))).unwrap();
    assert_eq!(json["overall"], "FAIL");
    assert_eq!(json["verdicts"].as_array().unwrap().len(), 4);
    assert_eq!(json["summary"]["run_id"], run.as_str());
    assert_eq!(json["summary"]["racks"].as_array().unwrap().len(), 2);

    // Written again into the same directory: replaced, not appended.
    write_report(&store, run.as_str(), &v, &out).unwrap();
    assert_eq!(read(&out.join("samples.csv")).lines().count(), 941);
}

#[test]
fn unjudged_report_says_so_and_names_the_spec_when_given() {
    let dir = TempDir::new("report-unjudged");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build(&mut store);
    let out = dir.path().join("r");
    write_report(&store, run.as_str(), &[], &out).unwrap();
    let html = read(&out.join("index.html"));
    assert_self_contained(&html);
    assert!(html.contains("<div class=\"overall incomplete\"><div class=\"word\">INCOMPLETE</div>"));
    assert!(html.contains("Not judged."));
    assert!(!html.contains("sustained target"));
    assert_eq!(read(&out.join("verdicts.csv")).lines().count(), 1);

    let options = ReportOptions {
        spec: Some(SpecRef {
            name: "acceptance-2026".into(),
            sha256: "ab".repeat(32),
        }),
    };
    write_report_with(&store, run.as_str(), &verdicts(), &out, &options).unwrap();
    let html = read(&out.join("index.html"));
    assert!(html.contains(&format!(
        "acceptance-2026 <code>sha256 {}</code>",
        "ab".repeat(32)
    )));
}

/// The page with everything inside `<details>…</details>` removed: what a reader sees unfolded.
fn unfolded(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find("<details>") {
        out.push_str(&rest[..i]);
        let mut depth = 0;
        let mut j = i;
        loop {
            let open = rest[j..].find("<details>").map(|k| j + k);
            let close = rest[j..].find("</details>").map(|k| j + k).expect("closed");
            match open.filter(|&o| o < close) {
                Some(o) => {
                    depth += 1;
                    j = o + "<details>".len();
                }
                None => {
                    depth -= 1;
                    j = close + "</details>".len();
                    if depth == 0 {
                        break;
                    }
                }
            }
        }
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

#[test]
fn many_failures_are_grouped_and_folded_so_the_charts_come_first() {
    let dir = TempDir::new("report-many");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build(&mut store);
    // 200 failing device verdicts over both racks, and 40 failing rack verdicts of 5 criteria.
    let mut v = Vec::new();
    for i in 0..200 {
        let node = NODES[i % 4].0;
        let mut x = verdict(
            "device-temp",
            Scope::Device,
            &format!("{node}/{}", i / 4),
            Status::Fail,
            Some(86.0 + i as f64 / 10.0),
            85.0,
            "max GPU temperature",
        );
        x.unit = "°C".into();
        v.push(x);
    }
    for c in 0..5 {
        for r in ["rack-01", "rack-02"] {
            v.push(verdict(
                &format!("rack-crit-{c}"),
                Scope::Rack,
                r,
                Status::Fail,
                Some(3.0),
                2.9,
                "rack power",
            ));
        }
    }
    let out = dir.path().join("r");
    write_report(&store, run.as_str(), &v, &out).unwrap();
    let html = read(&out.join("index.html"));
    let seen = unfolded(&html);
    let power = seen
        .find("<section id=\"power\"")
        .expect("power chart section");
    let before = &seen[..power];
    // Shown unfolded: a row per group (12) and the worst 5 verdicts, nothing more.
    let rows = before.matches("<tr class=\"fail\">").count();
    assert_eq!(rows, 5, "verdict rows before the first chart");
    assert!(
        before.len() < 40_000,
        "{} bytes before the first chart",
        before.len()
    );
    // Grouped by criterion and rack: device-temp has one group per rack, worst first.
    assert!(
        before.contains("device-temp</td><td>rack-02</td><td class=\"num fail\"><b>100</b>"),
        "grouped by rack"
    );
    assert!(before.contains("device-temp</td><td>rack-01</td><td class=\"num fail\"><b>100</b>"));
    assert!(
        html.contains("(210 verdicts in 12 groups)"),
        "groups counted: {}",
        &html[html.find("by criterion and rack").unwrap()..][..120]
    );
    assert!(
        before.contains("rack-crit-4</td><td>rack-02"),
        "12 groups listed"
    );
    assert!(!html.contains("more groups"));
    // The worst device verdict (105.9 °C) is shown unfolded; every verdict is still on the page.
    assert!(before.contains(">105.9<"), "worst first");
    let section = &html[html.find("<section id=\"verdicts\"").unwrap()
        ..html.find("<section id=\"power\"").unwrap()];
    assert_eq!(section.matches("<tr class=\"fail\">").count(), 210 + 5);
    assert!(!html.contains("<script"));
}

#[test]
fn a_simulated_run_says_so_in_the_page_and_every_export() {
    let dir = TempDir::new("report-simulated");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build(&mut store);
    let out = dir.path().join("r");
    let files = write_report(&store, run.as_str(), &verdicts(), &out).unwrap();
    let banner = "SIMULATED: 8 of 8 devices on 4 of 4 nodes are simulated";
    // What the report was written from, for the bundle's manifest without a second store read.
    assert_eq!(
        files.simulation,
        store.simulation(run.as_str()).unwrap(),
        "the report's simulation"
    );
    assert_eq!(files.simulation.simulated_devices, 8);
    assert!(files.simulation.banner().unwrap().starts_with(banner));
    assert_eq!(files.plan_name, "burn-then-idle");
    let html = read(&out.join("index.html"));
    assert!(
        html.contains(&format!("<div class=\"simulated\">{banner}")),
        "banner"
    );
    assert!(html.contains("FAIL (SIMULATED)</span></h1>"), "badge");
    let json: serde_json::Value = serde_json::from_str(&read(&out.join("summary.json"))).unwrap();
    assert!(json["simulated"].as_str().unwrap().starts_with(banner));
    assert_eq!(json["summary"]["simulation"]["simulated_devices"], 8);
    for file in ["summary.csv", "verdicts.csv"] {
        let csv = read(&out.join(file));
        assert!(
            csv.lines().next().unwrap().ends_with(",simulated"),
            "{file}"
        );
        assert!(csv.lines().skip(1).all(|l| l.ends_with(",true")), "{file}");
    }
    let text = hallmark_results::render_text(&store.run_summary(run.as_str()).unwrap());
    assert!(text.starts_with(&format!("*** {banner}")), "{text}");

    // One simulated node among real ones is enough, and the count says how many.
    let dir = TempDir::new("report-one-simulated");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build_on_real_devices(&mut store, 1);
    write_report(&store, run.as_str(), &verdicts(), &out).unwrap();
    assert!(read(&out.join("index.html"))
        .contains("SIMULATED: 2 of 8 devices on 1 of 4 nodes are simulated"));

    // A run of real devices only: no banner, `simulated` null and false.
    let dir = TempDir::new("report-real");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build_on_real_devices(&mut store, 0);
    let files = write_report(&store, run.as_str(), &verdicts(), &out).unwrap();
    assert!(!files.simulation.is_simulated());
    let html = read(&out.join("index.html"));
    assert!(!html.contains("SIMULATED"));
    let json: serde_json::Value = serde_json::from_str(&read(&out.join("summary.json"))).unwrap();
    assert!(json["simulated"].is_null());
    assert!(read(&out.join("verdicts.csv"))
        .lines()
        .skip(1)
        .all(|l| l.ends_with(",false")));
}

#[test]
fn phases_without_power_readings_show_a_dash_not_zero() {
    let dir = TempDir::new("report-nopower");
    let mut store = Store::open(dir.path()).unwrap();
    let run = build_without_node_power(&mut store);
    let out = dir.path().join("r");
    write_report(&store, run.as_str(), &[], &out).unwrap();
    let html = read(&out.join("index.html"));
    // The burn phase's row: energy kWh and mean kW are "–", not 0.000 / 0.0.
    let row = html
        .lines()
        .find(|l| l.starts_with("<tr><td>1</td><td>burn</td>"))
        .expect("phase row");
    assert!(!row.contains(">0.000<") && !row.contains(">0.0<"), "{row}");
    assert!(
        row.matches("<td class=\"num\">–</td>").count() >= 2,
        "{row}"
    );
    assert!(html.contains("no node reported power"), "energy total note");
    // The note names the mark the table shows.
    assert!(
        html.contains("; – where no node reported power"),
        "dash note"
    );
    let json: serde_json::Value = serde_json::from_str(&read(&out.join("summary.json"))).unwrap();
    let phases = json["summary"]["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 2);
    for p in phases {
        assert!(p["energy_kwh"].is_null() && p["mean_kw"].is_null(), "{p}");
    }
}

#[test]
fn run_without_telemetry_gives_a_report_that_says_so() {
    let dir = TempDir::new("report-empty");
    let mut store = Store::open(dir.path()).unwrap();
    let run = store.create_run(&new_run()).unwrap();
    store
        .add_probe(
            &run,
            &ProbeRow {
                clock: Some(ClockEstimate {
                    offset_ns: -2_000_000,
                    uncertainty_ns: 40_000,
                    rtt_ns: 80_000,
                    measured_at_ns: T0,
                }),
                ..probe_row("n1", "sim-hall-a", "row-a", "rack-01")
            },
        )
        .unwrap();
    store
        .add_phase(
            &run,
            &PhaseRow {
                phase_id: 1,
                name: "burn".into(),
                workload: Workload::Burn,
                pattern: Pattern::Steady { level: 1.0 },
                scheduled_start_ns: T0,
                duration_ms: 5000,
            },
        )
        .unwrap();
    store
        .finish_run(
            &run,
            T0 + 6000 * MS,
            RunStatus::Incomplete,
            Some("no telemetry"),
        )
        .unwrap();
    let out = dir.path().join("r");
    let files = write_report(&store, run.as_str(), &[], &out).unwrap();
    let html = read(&files.index());
    assert_self_contained(&html);
    assert!(html.contains("No node power was stored for this run"));
    assert!(html.contains("No device samples were stored for this run"));
    assert!(html.contains("No GPU temperature was stored for this run"));
    // Only the floor map is drawn: the rack exists, with no data.
    assert_eq!(html.matches("<svg").count(), 1);
    assert!(html.contains("no data"));
    assert!(html.contains("max |offset| 2.000 ms"));
    assert_eq!(read(&out.join("samples.csv")).lines().count(), 1);
    assert_eq!(read(&out.join("summary.csv")).lines().count(), 2);
}

#[test]
fn run_without_probes_and_unknown_run() {
    let dir = TempDir::new("report-bare");
    let mut store = Store::open(dir.path()).unwrap();
    let run = store.create_run(&new_run()).unwrap();
    let out = dir.path().join("r");
    write_report(&store, run.as_str(), &[], &out).unwrap();
    let html = read(&out.join("index.html"));
    assert!(html.contains("No probes registered in this run"));
    assert!(html.contains("No phases were stored for this run"));
    assert_eq!(html.matches("<svg").count(), 0);

    let err = write_report(&store, "20990101T000000Z-000000", &[], &out).unwrap_err();
    assert!(
        matches!(err, ReportError::Store(StoreError::UnknownRun { .. })),
        "{err}"
    );
}

#[test]
fn hostile_values_do_not_break_the_report() {
    let dir = TempDir::new("report-hostile");
    let mut store = Store::open(dir.path()).unwrap();
    let run = store.create_run(&new_run()).unwrap();
    let n = node("n1");
    store
        .add_probe(
            &run,
            &probe_row(n.as_str(), "hall \"a\"", "<row>", "rack&<i>evil</i>,x"),
        )
        .unwrap();
    store.add_devices(&run, &n, &[device_info(0)]).unwrap();
    // A phase that starts before the run and lasts far beyond it.
    store
        .add_phase(
            &run,
            &PhaseRow {
                phase_id: 1,
                name: "early".into(),
                workload: Workload::Burn,
                pattern: Pattern::Steady { level: 1.0 },
                scheduled_start_ns: T0 - 10_000 * MS,
                duration_ms: 20_000,
            },
        )
        .unwrap();
    let mut samples: Vec<Sample> = (0..20).map(|k| sample(0, 0, k)).collect();
    samples[3].gpu_temp_c = Some(f32::MAX);
    samples[4].power_w = Some(f32::NAN);
    samples[5].t_ns = i64::MAX / 2;
    samples[6].t_ns = i64::MIN / 2;
    samples[7].throttle_reasons = u64::MAX;
    let batch = TelemetryBatch {
        gaps: Vec::new(),
        seq: 0,
        node_power_w: vec![
            (T0, 1e30),
            (T0 + 100 * MS, f32::INFINITY),
            (i64::MAX / 2, 5.0),
        ],
        samples,
    };
    store.insert_batch(&run, &n, &batch, T0).unwrap();
    let out = dir.path().join("r");
    write_report(&store, run.as_str(), &verdicts(), &out).unwrap();
    let html = read(&out.join("index.html"));
    assert_self_contained(&html);
    assert!(!html.contains("<i>evil") && html.contains("rack&amp;&lt;i&gt;evil&lt;/i&gt;,x"));
    let csv = read(&out.join("samples.csv"));
    assert_eq!(csv.lines().count(), 21);
    assert!(
        csv.contains(&format!("{run},n1,\"rack&<i>evil</i>,x\",0,")),
        "quoted rack"
    );
    assert!(
        csv.contains(&format!(",{}", u64::MAX)),
        "all throttle bits, unsigned"
    );
    // The hall-sized temperature is in the CSV, not on the histogram's axis.
    assert!(csv.contains(",340282350000000000000000000000000000000,"));
}

#[test]
fn long_run_is_downsampled() {
    // 4 racks of one node, 40 minutes at 10 Hz: 24 000 instants per node.
    let dir = TempDir::new("report-long");
    let mut store = Store::open(dir.path()).unwrap();
    let run = store.create_run(&new_run()).unwrap();
    let nodes: Vec<_> = (0..4).map(|i| node(&format!("n{i}"))).collect();
    for (i, n) in nodes.iter().enumerate() {
        store
            .add_probe(
                &run,
                &probe_row(n.as_str(), "h", "row-a", &format!("rack-{i}")),
            )
            .unwrap();
        store.add_devices(&run, n, &[device_info(0)]).unwrap();
    }
    const SECONDS: i64 = 2400;
    for sec in 0..SECONDS / 10 {
        let batches: Vec<TelemetryBatch> = (0..4)
            .map(|i| {
                let ks = sec * 100..sec * 100 + 100;
                TelemetryBatch {
                    gaps: Vec::new(),
                    seq: sec as u64,
                    node_power_w: ks
                        .clone()
                        .map(|k| (T0 + k * 100 * MS, 1000.0 + (k % 7) as f32 * i as f32))
                        .collect(),
                    samples: ks.map(|k| sample(i, 0, k)).collect(),
                }
            })
            .collect();
        let refs: Vec<_> = nodes
            .iter()
            .zip(&batches)
            .map(|(n, b)| (n, b, T0))
            .collect();
        store.insert_batches(&run, &refs).unwrap();
    }
    store
        .finish_run(&run, T0 + SECONDS * 1000 * MS, RunStatus::Complete, None)
        .unwrap();
    let out = dir.path().join("r");
    write_report(&store, run.as_str(), &[], &out).unwrap();
    let html = read(&out.join("index.html"));
    assert!(html.len() < 1_000_000, "{} bytes", html.len());
    let longest = html
        .split("<polyline")
        .skip(1)
        .map(|p| {
            p.split("points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .map(|pts| pts.split_whitespace().count())
        .max()
        .unwrap();
    assert!((200..=2000).contains(&longest), "{longest} points");
    assert!(html.contains("each point is the mean over"));
    assert!(html.contains("time since run start (min)"));
    assert_eq!(
        read(&out.join("samples.csv")).lines().count(),
        1 + 4 * 24_000
    );
}
