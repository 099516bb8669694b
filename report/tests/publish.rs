//! A publication (`hallmark_report::publish`) of crafted runs: its files, SVGs that parse as XML
//! (a small checker here), SIMULATED on every chart with a simulated run and on none without one,
//! different specs and methods flagged, absent values as `–` and empty fields, never 0, the CSV read
//! back to the figures given, the same bytes twice, and the output directory's rules.

mod publish_support;

use publish_support::{csv, num, read, tree, xml_root, TempDir};

use hallmark_report::publish::{
    check_out_dir, write_publication, BundleRef, BusBw, DataRef, Figures, GpuFigures, Level, Meter,
    MeterKind, Method, PairLatency, PublishError, PublishRun, RackFigures, SystemDescription,
};
use hallmark_report::SpecRef;
use std::collections::BTreeMap;
use std::path::Path;

fn method(all: bool) -> Method {
    Method {
        gpu_sensor: Some("NVML power, instant field".into()),
        gpu_sample_hz: Some(10.0),
        thermal_method: Some("over CDU supply".into()),
        devices_instrumented: if all { 8 } else { 1 },
        devices_total: 8,
        run_s: Some(600.0),
        covered_s: Some(598.0),
        meters: if all {
            vec![
                Meter {
                    kind: MeterKind::Pdu,
                    count: 4,
                    racks: 2,
                    sample_hz: Some(1.0),
                },
                Meter {
                    kind: MeterKind::Cdu,
                    count: 2,
                    racks: 2,
                    sample_hz: Some(0.5),
                },
            ]
        } else {
            Vec::new()
        },
        racks_total: 2,
    }
}

/// A run named `name` with 8 GPUs around `tflops`, two racks, latency pairs unless `no_latency`.
fn run(name: &str, id: &str, tflops: f64, spec: &str, simulated: bool) -> PublishRun {
    let gpus = (0..8)
        .map(|i| GpuFigures {
            device: format!("n{}/{}", i / 4, i % 4),
            rack: Some(format!("rack-{}", i / 4 + 1)),
            tflops: Some(tflops + f64::from(i) * 0.37),
            // One GPU without a power reading: absent, never 0.
            power_w: (i != 3).then(|| 690.0 + f64::from(i) * 1.1),
            throttle_s: Some(if i == 7 { 12.5 } else { 0.0 }),
            thermal_resistance_k_per_w: Some(0.045 + f64::from(i) * 0.0005),
        })
        .collect();
    let mut verdicts = BTreeMap::new();
    verdicts.insert("PASS".to_string(), 11);
    verdicts.insert("FAIL".to_string(), 1);
    PublishRun {
        run_id: id.into(),
        name: name.into(),
        plan_name: "weekly".into(),
        plan_sha256: "a".repeat(64),
        hall: format!("hall of {name}"),
        started_at_ns: 1_795_918_500_250_000_000,
        simulated: simulated
            .then(|| "SIMULATED: 8 of 8 devices on 2 of 2 nodes are simulated".to_string()),
        spec: Some(SpecRef {
            name: spec.into(),
            sha256: format!("{:0>64}", spec.len()),
        }),
        bundle: None,
        data: Some(DataRef {
            what: "run data file hallmark.sqlite".into(),
            sha256: "d".repeat(64),
        }),
        method: method(true),
        system: SystemDescription {
            device_models: [("NVIDIA H200".to_string(), 8)].into_iter().collect(),
            nodes: 2,
            racks: 2,
            backends: vec!["cuda".into()],
            drivers: vec!["580.65".into()],
            notes: vec![(
                "cooling".into(),
                "direct liquid, \"rear door\" <none>".into(),
            )],
        },
        figures: Figures {
            gpus,
            racks: vec![
                RackFigures {
                    rack: "rack-1".into(),
                    kw: Some(38.5),
                    design_kw: Some(40.0),
                },
                RackFigures {
                    rack: "rack, 2".into(),
                    kw: Some(41.25),
                    design_kw: None,
                },
            ],
            busbw: [1u64 << 20, 1 << 30]
                .iter()
                .flat_map(|&b| {
                    (0..3).map(move |k| BusBw {
                        collective: "all_reduce".into(),
                        bytes: b,
                        subject: format!("rep {k}"),
                        gb_s: Some(if b > 1 << 20 { 380.0 } else { 40.0 } + f64::from(k)),
                    })
                })
                .collect(),
            latency: vec![
                PairLatency {
                    pair: "n0↔n1".into(),
                    p50_us: Some(4.25),
                    p99_us: Some(9.5),
                },
                PairLatency {
                    pair: "n1↔n0".into(),
                    p50_us: Some(4.5),
                    p99_us: None,
                },
            ],
        },
        verdicts,
    }
}

fn three_runs() -> Vec<PublishRun> {
    let a = run("alpha", "20261129T021500Z-aaaaaa", 600.0, "spec-v1", false);
    let mut b = run(
        "beta",
        "20261129T031500Z-bbbbbb",
        580.0,
        "spec-version-2",
        true,
    );
    b.method = method(false);
    b.figures.latency.clear();
    b.verdicts.clear();
    b.spec = None;
    let c = run("gamma", "20261129T041500Z-cccccc", 610.0, "spec-v1", false);
    vec![a, b, c]
}

#[test]
fn a_publication_has_its_files_and_every_chart_is_traceable() {
    let t = TempDir::new("files");
    let runs = three_runs();
    let p = write_publication(&runs, &t.0).unwrap();
    assert_eq!(tree(&t.0), p.files);
    let charts = [
        "gpu-tflops",
        "gpu-power",
        "gpu-gflops-per-w",
        "rack-kw",
        "rack-design-pct",
        "gpu-throttle",
        "gpu-thermal-resistance",
        "busbw-all-reduce",
        "latency-p50",
        "latency-p99",
    ];
    assert_eq!(p.charts, charts);
    for f in [
        "index.html",
        "data/publication.json",
        "data/runs.csv",
        "data/gpus.csv",
        "data/stats.csv",
    ] {
        assert!(p.files.iter().any(|x| x == f), "{f} missing: {:?}", p.files);
    }
    let html = read(&t.0, "index.html");
    // Self-contained: no scripts, nothing fetched; the only URL is the SVG namespace.
    assert!(!html.contains("<script") && !html.contains("https://") && !html.contains("src="));
    assert_eq!(
        html.matches("http://").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    for id in charts {
        let svg = read(&t.0, &format!("charts/{id}.svg"));
        assert_eq!(xml_root(&svg), Ok("svg".to_string()), "{id}");
        // The same drawing inline in the page.
        let body = svg
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .unwrap();
        assert!(html.contains(body), "{id} is not inline as written");
        for r in &runs {
            assert!(svg.contains(&r.run_id), "{id} does not cite {}", r.run_id);
            assert!(
                svg.contains(&"d".repeat(64)),
                "{id} does not cite the data hash"
            );
        }
    }
    // Quality levels: alpha and gamma every device with PDUs on every rack, beta one device of 8.
    let levels: Vec<Level> = p.quality.iter().map(|q| q.level).collect();
    assert_eq!(levels, [Level::L3, Level::L1, Level::L3]);
    assert!(
        html.contains("short of the next level: no rack PDU meter, L2 needs PDUs on 1 of 2 racks")
    );
    let json: serde_json::Value =
        serde_json::from_str(&read(&t.0, "data/publication.json")).unwrap();
    assert_eq!(json["format"], "hallmark-publication/1");
    assert!(json["runs"][1]["simulated"].as_str().is_some());
    assert_eq!(json["runs"][0]["simulated"], serde_json::Value::Null);
    assert_eq!(
        json["runs"][0]["figures"]["gpus"][3]["power_w"],
        serde_json::Value::Null
    );
    assert_eq!(json["files"].as_array().unwrap().len(), p.files.len());
}

#[test]
fn simulated_is_on_every_chart_of_a_simulated_run_and_on_none_of_real_ones() {
    let t = TempDir::new("sim");
    let p = write_publication(&three_runs(), &t.0).unwrap();
    for id in &p.charts {
        let svg = read(&t.0, &format!("charts/{id}.svg"));
        assert!(
            svg.contains("SIMULATED: 1 of these runs (beta) are simulated"),
            "{id}"
        );
        assert!(svg.contains("20261129T031500Z-bbbbbb · SIMULATED"), "{id}");
    }
    let real = TempDir::new("real");
    let runs: Vec<PublishRun> = three_runs()
        .into_iter()
        .filter(|r| r.simulated.is_none())
        .collect();
    let p = write_publication(&runs, &real.0).unwrap();
    assert_eq!(p.charts.len(), 10);
    for f in &p.files {
        assert!(
            !read(&real.0, f).contains("SIMULATED"),
            "{f} says SIMULATED of real runs"
        );
    }
    let only = TempDir::new("only-sim");
    let p = write_publication(&three_runs()[1..2], &only.0).unwrap();
    for id in &p.charts {
        let svg = read(&only.0, &format!("charts/{id}.svg"));
        assert!(
            svg.contains("SIMULATED: every run in this chart is simulated"),
            "{id}"
        );
    }
}

#[test]
fn different_specs_methods_and_simulation_are_flagged_and_like_for_like_is_not() {
    let t = TempDir::new("flags");
    let p = write_publication(&three_runs(), &t.0).unwrap();
    let kinds: Vec<&str> = p.flags.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["spec", "method", "quality", "simulated"]);
    assert!(p.flags[1].message.starts_with("Different facility meters"));
    assert!(p.flags[0]
        .message
        .contains("beta (20261129T031500Z-bbbbbb): not judged"));
    let html = read(&t.0, "index.html");
    assert!(html.contains("Not like for like"));
    assert!(html.contains("Judged against different specs"));
    assert!(html.contains("Different measurement quality levels"));

    let mut runs = three_runs();
    runs[2].spec = Some(SpecRef {
        name: "spec-v1".into(),
        sha256: "f".repeat(64),
    });
    runs[2].method.gpu_sample_hz = Some(1.0);
    runs[2].plan_sha256 = "b".repeat(64);
    let same = [runs[0].clone(), runs[2].clone()];
    let kinds: Vec<String> = hallmark_report::publish::flags(&same)
        .into_iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, ["spec", "plan", "method"]);

    let like = TempDir::new("like");
    let p =
        write_publication(&[three_runs()[0].clone(), three_runs()[2].clone()], &like.0).unwrap();
    assert!(p.flags.is_empty());
    assert!(read(&like.0, "index.html").contains("Like for like"));
}

#[test]
fn absent_values_are_dashes_and_empty_fields_never_zero() {
    let t = TempDir::new("absent");
    write_publication(&three_runs(), &t.0).unwrap();
    let html = read(&t.0, "index.html");
    // beta measured no latency: n 0, every statistic a dash; its SVG row says so.
    let beta_row = "<td><span class=\"swatch\" style=\"background:#f28e2b\"></span>beta</td><td class=\"num\">0</td><td class=\"num\">0</td><td class=\"num\">–</td><td class=\"num\">–</td><td class=\"num\">–</td><td class=\"num\">–</td><td class=\"num\">–</td><td class=\"num\">–</td></tr>";
    assert!(html.contains(beta_row), "beta's latency row");
    assert!(read(&t.0, "charts/latency-p50.svg").contains("not measured: no value in this run"));
    // beta was not judged: its verdict counts are dashes; alpha's WARN count is a real 0.
    assert!(html.contains("<tr><th scope=\"row\">WARN</th><td class=\"num\">0</td><td class=\"num\">–</td><td class=\"num\">0</td></tr>"));
    // The p99 of one pair is absent: n 1, one without value.
    let stats = csv(&read(&t.0, "data/stats.csv"));
    let p99 = stats
        .iter()
        .find(|r| r[0] == "latency-p99" && r[2] == "20261129T021500Z-aaaaaa")
        .unwrap();
    assert_eq!((p99[3].as_str(), p99[4].as_str()), ("1", "1"));
    let beta = stats
        .iter()
        .find(|r| r[0] == "latency-p50" && r[2] == "20261129T031500Z-bbbbbb")
        .unwrap();
    assert_eq!(&beta[5..11], ["", "", "", "", "", ""]);
    let gpus = csv(&read(&t.0, "data/gpus.csv"));
    assert_eq!(gpus[4][4], "", "GPU 3's power is absent");
    assert_eq!(gpus[4][5], "", "so is its GFLOP/s per W");
    let racks = csv(&read(&t.0, "data/racks.csv"));
    assert_eq!(
        racks[2],
        ["20261129T021500Z-aaaaaa", "rack, 2", "41.25", "", ""]
    );
    assert_eq!(racks[1][4], "96.25");
    // beta has no verdict rows.
    assert!(!read(&t.0, "data/verdicts.csv").contains("bbbbbb"));
}

#[test]
fn the_csv_reads_back_to_the_figures_given() {
    let t = TempDir::new("csv");
    let runs = three_runs();
    write_publication(&runs, &t.0).unwrap();
    let gpus = csv(&read(&t.0, "data/gpus.csv"));
    assert_eq!(
        gpus[0].join(","),
        "run_id,device,rack,tflops,power_w,gflops_per_w,throttle_s,thermal_resistance_k_per_w"
    );
    let mut rows = gpus[1..].iter();
    for r in &runs {
        for g in &r.figures.gpus {
            let row = rows.next().unwrap();
            assert_eq!(row[0], r.run_id);
            let back = GpuFigures {
                device: row[1].clone(),
                rack: (!row[2].is_empty()).then(|| row[2].clone()),
                tflops: num(&row[3]),
                power_w: num(&row[4]),
                throttle_s: num(&row[6]),
                thermal_resistance_k_per_w: num(&row[7]),
            };
            assert_eq!(&back, g);
            assert_eq!(num(&row[5]), g.gflops_per_w());
        }
    }
    assert!(rows.next().is_none());
    let racks = csv(&read(&t.0, "data/racks.csv"));
    let back: Vec<RackFigures> = racks[1..]
        .iter()
        .map(|r| RackFigures {
            rack: r[1].clone(),
            kw: num(&r[2]),
            design_kw: num(&r[3]),
        })
        .collect();
    let given: Vec<RackFigures> = runs.iter().flat_map(|r| r.figures.racks.clone()).collect();
    assert_eq!(back, given);
    let busbw = csv(&read(&t.0, "data/busbw.csv"));
    let back: Vec<BusBw> = busbw[1..]
        .iter()
        .map(|r| BusBw {
            collective: r[1].clone(),
            bytes: r[2].parse().unwrap(),
            subject: r[3].clone(),
            gb_s: num(&r[4]),
        })
        .collect();
    assert_eq!(
        back,
        runs.iter()
            .flat_map(|r| r.figures.busbw.clone())
            .collect::<Vec<_>>()
    );
    let lat = csv(&read(&t.0, "data/latency.csv"));
    let back: Vec<PairLatency> = lat[1..]
        .iter()
        .map(|r| PairLatency {
            pair: r[1].clone(),
            p50_us: num(&r[2]),
            p99_us: num(&r[3]),
        })
        .collect();
    assert_eq!(
        back,
        runs.iter()
            .flat_map(|r| r.figures.latency.clone())
            .collect::<Vec<_>>()
    );
    let run_rows = csv(&read(&t.0, "data/runs.csv"));
    assert_eq!(run_rows.len(), 4);
    assert_eq!(run_rows[2][13], "L1");
    assert_eq!(run_rows[1][20], "over CDU supply");
    // The quartiles of alpha's TFLOP/s: 600 + 0.37·i, i = 0..8 (type 7: 600.6475, 601.295, 601.9425).
    let stats = csv(&read(&t.0, "data/stats.csv"));
    let a = stats
        .iter()
        .find(|r| r[0] == "gpu-tflops" && r[2] == runs[0].run_id)
        .unwrap();
    let q: Vec<f64> = a[6..9].iter().map(|s| s.parse().unwrap()).collect();
    assert!(
        (q[0] - 600.6475).abs() < 1e-9
            && (q[1] - 601.295).abs() < 1e-9
            && (q[2] - 601.9425).abs() < 1e-9,
        "{q:?}"
    );
}

#[test]
fn the_same_runs_write_the_same_bytes() {
    let (a, b) = (TempDir::new("det-a"), TempDir::new("det-b"));
    let pa = write_publication(&three_runs(), &a.0).unwrap();
    write_publication(&three_runs(), &b.0).unwrap();
    for f in &pa.files {
        assert_eq!(
            std::fs::read(a.0.join(f)).unwrap(),
            std::fs::read(b.0.join(f)).unwrap(),
            "{f}"
        );
    }
    // Written again over itself: the same again.
    let before: Vec<Vec<u8>> = pa
        .files
        .iter()
        .map(|f| std::fs::read(a.0.join(f)).unwrap())
        .collect();
    write_publication(&three_runs(), &a.0).unwrap();
    let after: Vec<Vec<u8>> = pa
        .files
        .iter()
        .map(|f| std::fs::read(a.0.join(f)).unwrap())
        .collect();
    assert!(before == after);
}

#[test]
fn the_output_directory_rules() {
    assert!(matches!(
        write_publication(&[], Path::new("unused")),
        Err(PublishError::NoRuns)
    ));
    let runs = three_runs();
    let twice = [runs[0].clone(), runs[0].clone()];
    let t = TempDir::new("rules");
    assert!(matches!(
        write_publication(&twice, &t.0),
        Err(PublishError::DuplicateRun { .. })
    ));

    // A directory with someone else's files is refused, naming one.
    std::fs::create_dir_all(t.0.join("charts")).unwrap();
    std::fs::write(t.0.join("notes.txt"), "mine").unwrap();
    std::fs::write(t.0.join("charts/old.svg"), "<svg/>").unwrap();
    let e = write_publication(&runs, &t.0).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PublishError::NotEmpty { more: 1, .. }), "{msg}");
    assert!(
        msg.contains("charts/old.svg and 1 more")
            && msg.contains("choose a new or empty directory"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(t.0.join("notes.txt")).unwrap(),
        "mine"
    );

    // An earlier publication is replaced: a chart no longer drawn goes.
    let pub_dir = TempDir::new("again");
    write_publication(&runs, &pub_dir.0).unwrap();
    assert!(pub_dir.0.join("charts/latency-p50.svg").exists());
    let mut fewer = runs.clone();
    for r in &mut fewer {
        r.figures.latency.clear();
    }
    let p = write_publication(&fewer, &pub_dir.0).unwrap();
    assert!(!pub_dir.0.join("charts/latency-p50.svg").exists());
    assert_eq!(tree(&pub_dir.0), p.files);

    // A file as --out, and a path under a file.
    let file = TempDir::new("file");
    std::fs::write(&file.0, "x").unwrap();
    assert!(matches!(
        write_publication(&runs, &file.0),
        Err(PublishError::NotADirectory { .. })
    ));
    let e = write_publication(&runs, &file.0.join("sub")).unwrap_err();
    assert!(
        e.to_string()
            .contains(&file.0.join("sub").display().to_string()),
        "{e}"
    );
    let _ = std::fs::remove_file(&file.0);
}

#[test]
fn bundles_are_cited_and_must_be_there() {
    let t = TempDir::new("bundles");
    let mut runs = three_runs();
    // SHA-256 of the bytes `bundle`.
    let sha = "1e6ed65d77d6364eeaed5a745ba5c4985ae2b700dd85d7cf7f027bdf294a33fc";
    runs[0].bundle = Some(BundleRef {
        file: "alpha.hallmark".into(),
        sha256: sha.into(),
    });
    check_out_dir(&t.0, &["alpha.hallmark"]).unwrap();
    let e = write_publication(&runs, &t.0).unwrap_err();
    assert!(matches!(e, PublishError::MissingBundle { .. }), "{e}");
    std::fs::create_dir_all(t.0.join("bundles")).unwrap();
    std::fs::write(t.0.join("bundles/alpha.hallmark"), "bundle").unwrap();
    check_out_dir(&t.0, &["alpha.hallmark"]).unwrap();
    assert!(
        check_out_dir(&t.0, &[]).is_err(),
        "an uncited bundle is not ours"
    );
    let p = write_publication(&runs, &t.0).unwrap();
    assert!(p.files.contains(&"bundles/alpha.hallmark".to_string()));
    let svg = read(&t.0, "charts/gpu-tflops.svg");
    assert!(svg.contains(&format!("bundle alpha.hallmark sha256 {sha}")));
    assert!(svg.contains("bundle not written; run data file hallmark.sqlite sha256"));
    assert!(read(&t.0, "index.html").contains("<a href=\"bundles/alpha.hallmark\">"));
    // Written again: the bundle stays, it is cited again.
    write_publication(&runs, &t.0).unwrap();
    assert_eq!(read(&t.0, "bundles/alpha.hallmark"), "bundle");
    runs[0].bundle.as_mut().unwrap().sha256 = "e".repeat(64);
    let e = write_publication(&runs, &t.0).unwrap_err();
    assert!(matches!(e, PublishError::BundleHash { .. }), "{e}");
    assert!(e.to_string().contains(sha), "{e}");
    runs[0].bundle.as_mut().unwrap().file = "../x".into();
    assert!(matches!(
        write_publication(&runs, &t.0),
        Err(PublishError::BundleName { .. })
    ));
}

#[test]
fn the_xml_check_refuses_what_is_not_xml() {
    assert_eq!(xml_root("<a><b/>x &amp; &#38;</a>"), Ok("a".into()));
    for bad in [
        "<a><b></a>",
        "<a x=1/>",
        "<a>&foo;</a>",
        "<a></a><b/>",
        "<a>",
        "x<a/>",
        "<a x=\"<\"/>",
    ] {
        assert!(xml_root(bad).is_err(), "{bad}");
    }
}
