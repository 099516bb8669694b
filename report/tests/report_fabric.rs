//! The report of a run with fabric phases: the interconnect section (latency heat map, worst
//! pairs, the node they share, busbw charts per op, the nccl-tests-style tables, faults) and the
//! exports `latency.csv` and `collectives.csv`.

#[path = "../../results/tests/fabric_support/mod.rs"]
mod fabric_support;
#[path = "../../results/tests/spec_support/mod.rs"]
mod spec_support;

use fabric_support::{Fabric, MIB};
use hallmark_protocol::CollectiveOp;
use hallmark_report::write_report;
use hallmark_report::FILES;
use hallmark_results::spec::{evaluate, parse_spec};
use hallmark_results::Store;
use spec_support::{Run, TempDir};

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_interconnect_section_and_its_exports() {
    let dir = TempDir::new("report-fabric");
    let mut store = Store::open(dir.path()).unwrap();
    let run = Run::default().store(&mut store);
    let fabric = Fabric {
        // r2n1 is slow; r1n2 → r2n2 loses every packet; r2n2 → r1n1 is not reported.
        rtt: Box::new(|s, d| match (s, d) {
            (3, 0) => None,
            (1, 3) => Some(Vec::new()),
            (2, _) | (_, 2) => Some(vec![(80_000, 100)]),
            _ => Some(vec![(fabric_support::default_rtt(s, d), 100)]),
        }),
        lost: Box::new(|s, d| if (s, d) == (1, 3) { 20 } else { 0 }),
        collective: Box::new(|n, op, size| {
            let wrong = u64::from((n, op, size) == (2, CollectiveOp::AllGather, MIB)) * 3;
            Some(((size as f64 / (64 * MIB) as f64 * 10e6) as u64, wrong))
        }),
        faults: vec![(1, Some(3), "no answer from <r2n2>")],
        ..Fabric::default()
    };
    fabric.store(&mut store, &run);
    let spec = parse_spec(
        "name = \"t\"\n[[criterion]]\nid = \"p99\"\nkind = \"latency_p99\"\nmax = \"50 µs\"\n\
         [[criterion]]\nid = \"busbw\"\nkind = \"collective_busbw\"\nmin = \"9 GB/s\"\nsize = \"64 MiB\"\n",
        "t.toml",
    )
    .unwrap();
    let verdicts = evaluate(&store, run.as_str(), &spec).unwrap();
    let out = dir.path().join("report");
    let files = write_report(&store, run.as_str(), &verdicts, &out).unwrap();
    assert_eq!(files.files.len(), FILES.len());
    assert!(FILES.contains(&"latency.csv") && FILES.contains(&"collectives.csv"));

    let html = read(&files.index());
    assert!(!html.to_lowercase().contains("<script"));
    assert!(!html.contains("No interconnect phase in this run"));
    assert!(html.contains("<section id=\"interconnect\">"));
    // Power, floor, temperature, throttle, the heat map and a busbw chart per op (2).
    assert_eq!(html.matches("<svg").count(), 7, "charts");
    for text in [
        "Latency mesh: phase mesh (4 members)",
        "11 of 12 directed pairs measured",
        "Pairs involving <b>r2n1</b> are the slowest",
        "Every packet lost</b> on 1 pair(s): r1n2→r2n2",
        "1 expected pair(s) not measured: r2n2→r1n1",
        "all-reduce: bus bandwidth by message size",
        "all-gather: bus bandwidth by message size",
        "Collectives: phase allreduce (4 ranks)",
        "no answer from &lt;r2n2&gt;",
        "every packet lost",
    ] {
        assert!(html.contains(text), "missing {text:?}");
    }
    // The all-reduce row at 64 MiB: 10 ms, 6.711 GB/s algbw, 10.066 GB/s busbw.
    assert!(html.contains(
        "<td class=\"num\">67108864</td><td class=\"num\">16777216</td><td>all-reduce</td>\
         <td>ring</td><td class=\"num\">10000.00</td><td class=\"num\">6.711</td>\
         <td class=\"num\">10.066</td><td class=\"num\">0</td>"
    ));
    assert!(html.contains("<tr class=\"fail\"><td class=\"num\">1048576</td>"));

    let latency = read(&out.join("latency.csv"));
    let lines: Vec<&str> = latency.lines().collect();
    assert_eq!(
        lines[0],
        "run_id,phase_id,phase,src,dst,sent,lost,round_trips,p50_us,p99_us,p999_us,max_us"
    );
    assert_eq!(lines.len(), 12, "11 pairs");
    assert!(lines.contains(&format!("{run},3,mesh,r1n2,r2n2,20,20,0,,,,").as_str()));
    let row = lines.iter().find(|l| l.contains(",r1n1,r1n2,")).unwrap();
    assert!(
        row.starts_with(&format!("{run},3,mesh,r1n1,r1n2,100,0,100,11.007,")),
        "{row}"
    );

    let collectives = read(&out.join("collectives.csv"));
    let lines: Vec<&str> = collectives.lines().collect();
    assert_eq!(lines.len(), 7, "2 ops × 3 sizes");
    assert!(lines[0].starts_with("run_id,phase_id,phase,op,algorithm,size_bytes,count,ranks"));
    assert!(
        lines[3].starts_with(&format!(
        "{run},4,allreduce,all-reduce,ring,67108864,16777216,4,4,20,10000,6.7108864,10.0663296,0,"
    )),
        "{}",
        lines[3]
    );
    assert!(lines[4].contains(",all-gather,ring,1048576,") && lines[4].contains(",3,"));
}
