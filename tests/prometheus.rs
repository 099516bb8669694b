//! `--metrics`: a simulated run serves its live metrics; `promtool check metrics` accepts the text,
//! a real Prometheus server (Debian package `prometheus`, installed by `.ci/run`) scrapes the
//! running coordinator every second, and a rack's power is read back through Prometheus' query API.
//! A wrong `--metrics` address is refused at start. Without `prometheus` and `promtool` the test
//! skips outside CI and fails in CI.

mod common;

use common::prereq;
use common::process::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback (bound and released; the test binds it again at once).
fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET path` on `addr` over plain HTTP/1.1; `None` when nothing answers yet.
fn get(addr: SocketAddr, path: &str, accept: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.to_owned(), body.to_owned()))
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        prereq::missing(&format!(
            "{tool} is not installed (Debian package prometheus; .ci/run installs it)"
        ));
    }
    ok
}

const PLAN: &str = "name = \"metrics\"\nsample_hz = 10.0\n[expect]\nnodes = 4\ndevices_per_node = 8\n\
     timeout_s = 60\n[[phase]]\nname = \"idle\"\nworkload = \"idle\"\nduration_s = 2\n[[phase]]\n\
     name = \"burn\"\nworkload = \"burn\"\nduration_s = 40\npattern = { kind = \"steady\", level = 1.0 }\n";

#[test]
fn prometheus_scrapes_a_running_coordinator_and_reads_a_racks_power_back() {
    if !have("prometheus") || !have("promtool") {
        return;
    }
    let dir = tempdir("prometheus");
    std::fs::write(dir.join("plan.toml"), PLAN).unwrap();
    let metrics = free_tcp();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let run = Killed(
        hallmark()
            .args([
                "run",
                "plan.toml",
                "--simulate",
                hall,
                "--results",
                "results",
                "-q",
            ])
            .args(["--metrics", &metrics.to_string()])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The endpoint answers, in both formats.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        match get(metrics, "/metrics", "text/plain") {
            Some((head, body)) if body.contains("hallmark_rack_power_watts{") => {
                assert!(head.contains("text/plain; version=0.0.4"), "{head}");
                break body;
            }
            _ if Instant::now() > deadline => panic!("no rack power at http://{metrics}/metrics"),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&checked.stderr).into_owned()
        + &String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
    let (head, open) = get(
        metrics,
        "/metrics",
        "application/openmetrics-text;version=1.0.0",
    )
    .unwrap();
    assert!(
        head.contains("application/openmetrics-text") && open.ends_with("# EOF\n"),
        "{head}"
    );
    let (head, _) = get(metrics, "/nope", "*/*").unwrap();
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // A real Prometheus server scrapes it every second.
    let web = free_tcp();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hallmark\n    static_configs:\n      \
         - targets: ['{metrics}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let query = "/api/v1/query?query=hallmark_rack_power_watts%7Brack%3D%22row1-rack01%22%7D";
    let deadline = Instant::now() + Duration::from_secs(30);
    let watts = loop {
        let answer = get(web, query, "application/json").map(|(_, b)| b);
        let value = answer.as_deref().and_then(|body| {
            let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
            let sample = v["data"]["result"].as_array()?.first()?.clone();
            assert_eq!(sample["metric"]["hall"], "small-hall", "{sample}");
            assert_eq!(sample["metric"]["job"], "hallmark", "{sample}");
            sample["value"][1].as_str()?.parse::<f64>().ok()
        });
        match value {
            Some(w) => break w,
            None if Instant::now() > deadline => {
                panic!("Prometheus never returned the rack's power: {answer:?}")
            }
            None => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    // Two nodes of the small hall at full load: each draws kilowatts, the rack some ten.
    assert!(
        (1_000.0..200_000.0).contains(&watts),
        "rack power read back through Prometheus: {watts} W"
    );
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_metrics_address_that_cannot_be_bound_is_refused_at_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempdir("metrics-taken");
    std::fs::write(dir.join("plan.toml"), PLAN).unwrap();
    let hall = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hall-small.toml");
    let started = Instant::now();
    let out = hallmark()
        .args([
            "run",
            "plan.toml",
            "--simulate",
            hall,
            "--results",
            "results",
        ])
        .args(["--metrics", &addr])
        .current_dir(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("cannot serve metrics on {addr}")) && err.contains("--metrics"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused at start, not after the run"
    );
    let out = run(&[
        "coordinator",
        "--metrics",
        "not-an-address",
        "--ca",
        "x",
        "--cert",
        "x",
        "--key",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_grafana_dashboards_queries_are_valid_promql() {
    if !have("promtool") {
        return;
    }
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/hallmark.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            // Grafana's variables, as an "All" selection expands them.
            let expr = t["expr"].as_str().unwrap().replace("$job", ".*");
            let expr = expr.replace("$hall", ".*").replace("$rack", ".*");
            n += 1;
            rules.push_str(&format!(
                "      - record: dashboard:q{n}\n        expr: '{}'\n",
                expr.replace('\'', "''")
            ));
        }
    }
    let dir = tempdir("grafana-rules");
    std::fs::write(dir.join("rules.yml"), &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(dir.join("rules.yml"))
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "promtool check rules:\n{said}\n{rules}"
    );
    assert!(said.contains(&format!("{n} rules found")), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}
