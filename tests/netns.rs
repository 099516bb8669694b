//! The latency mesh across network namespaces, with one slow link: a coordinator and five probes,
//! each in its own namespace on a private bridged /24 (addresses that exist only inside the
//! namespaces), the real binary over real links. The last probe (p5) hangs off the switch by a
//! slow link, a user-space wire that delays every Ethernet frame by 5 ms each way and passes it on
//! unchanged (`common::netns::Lab::slow_host`; this kernel has no `tc netem`). Addresses stay the real
//! ones end to end, so the fabric's address checks (pongs only from the peer's registered address,
//! answers only to the sender's, announced data-plane IP = control connection's IP) hold as on a
//! real hall. The mesh must find every pair involving p5 slow (≥ 2 × 5 ms: a round trip crosses the
//! link twice, in whichever direction the ping goes) and the rest fast, list them as the worst
//! pairs, and name p5 as the slow node, in the JSON summary and in `hallmark runs show`. No pair
//! may be missing or lose all its pings, and the link may drop no frame. p5's control connection
//! crosses the slow link too, as it would on a real hall.
//!
//! Needs root, `ip` (iproute2) and `/dev/net/tun`; otherwise, or with `HALLMARK_SKIP_NETNS=1`,
//! it prints `skipped: …` to stderr and passes, except in CI (`CI=true`), where it fails
//! (`common::prereq`). Run it with `cargo test --test netns -- --nocapture`.

mod common;

use common::netns::{tap_available, Lab};
use common::process::run;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The slow link's delay each way: a round trip across it waits this twice.
const DELAY: Duration = Duration::from_millis(5);
/// The longest the slow link runs: past the whole test's bounds (35 s for the run).
const WIRE_LIMIT: Duration = Duration::from_secs(60);
const COORDINATOR_PORT: u16 = 7400;
const DATA_PORT: u16 = 7000;
/// The probes; the last one is behind the slow link.
const PROBES: [&str; 5] = ["p1", "p2", "p3", "p4", "p5"];
const SLOW: &str = "p5";
/// The latency phase, s: 5 rounds of 2 half-slots, 0.8 s per directed pair.
const PHASE_S: u32 = 8;

/// 10.77.7.HOST: the coordinator is .1, probe `pK` is .(10+K).
fn addr(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 7, host)
}

fn probe_addr(k: usize) -> Ipv4Addr {
    addr(10 + u8::try_from(k).unwrap())
}

/// Kills and reaps the child when dropped (`ip netns exec` execs the program: same pid).
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().expect("child status") {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The last lines of every process's log in `dir`, for failure messages.
fn logs(dir: &Path) -> String {
    let mut s = String::new();
    for name in std::iter::once("coordinator").chain(PROBES) {
        let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines.len().saturating_sub(15);
        s.push_str(&format!("--- {name}.log\n{}\n", lines[tail..].join("\n")));
    }
    s
}

/// A CA, the coordinator's certificate valid for its namespace address, one per probe.
fn certs(dir: &Path) {
    let d = dir.to_str().unwrap();
    let out = run(&["certs", "init", "--out", d, "--san", &addr(1).to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nodes = dir.join("nodes");
    for node in PROBES {
        let out = run(&[
            "certs",
            "issue",
            "--ca",
            d,
            "--node",
            node,
            "--out",
            nodes.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A lab that can have slow links; `None` (the test returns) where this machine cannot make one,
/// after `common::prereq` has said why (a failure in CI).
fn lab() -> Option<Lab> {
    match Lab::create().and_then(|lab| tap_available().map(|()| lab)) {
        Ok(lab) => Some(lab),
        Err(why) => {
            common::prereq::missing(&why);
            None
        }
    }
}

/// A lab stops and joins its slow links when it is closed or dropped (on a panic too): no wire's
/// thread outlives the lab, though each here would otherwise run for a minute.
#[test]
fn a_lab_ends_its_slow_links_when_it_goes() {
    let lab_with_a_wire = || -> Option<(Lab, std::sync::Weak<()>)> {
        let mut lab = lab()?;
        let ns = lab.slow_host("s", addr(9), DELAY, WIRE_LIMIT);
        let thread = lab.wire_thread(&ns);
        assert!(thread.upgrade().is_some(), "the wire runs");
        Some((lab, thread))
    };
    let Some((lab, thread)) = lab_with_a_wire() else {
        return;
    };
    let left = lab.close();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    assert!(
        thread.upgrade().is_none(),
        "the wire's thread outlived its lab"
    );
    let (lab, thread) = lab_with_a_wire().expect("a second lab");
    drop(lab);
    assert!(
        thread.upgrade().is_none(),
        "the wire's thread outlived its lab"
    );
}

#[test]
fn a_slow_link_into_one_probe_is_named_by_the_latency_mesh_across_namespaces() {
    let started = Instant::now();
    let Some(mut lab) = lab() else {
        return;
    };
    let coord_ns = lab.host("c", addr(1));
    let mut probe_ns: Vec<String> = (1..PROBES.len())
        .map(|k| lab.host(&format!("p{k}"), probe_addr(k)))
        .collect();
    // The slow link: the last probe's cable to the switch delays every frame, both ways.
    let slow_ns = lab.slow_host(SLOW, probe_addr(PROBES.len()), DELAY, WIRE_LIMIT);
    probe_ns.push(slow_ns.clone());

    let dir = common::process::tempdir("netns");
    certs(&dir);
    std::fs::write(
        dir.join("plan.toml"),
        format!(
            "name = \"netns-latency\"\nsample_hz = 1.0\n[expect]\nnodes = {}\ntimeout_s = 30\n\
             [[phase]]\nname = \"mesh\"\nworkload = \"latency\"\nduration_s = {PHASE_S}\n",
            PROBES.len()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_hallmark");
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let log = |name: &str| std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let coordinator_at = SocketAddr::new(addr(1).into(), COORDINATOR_PORT).to_string();
    let results = path("results");

    let mut coordinator = Proc(
        lab.exec(&coord_ns, bin)
            .env_remove("RUST_LOG")
            .args(["run", &path("plan.toml"), "--listen", &coordinator_at])
            .args(["--ca", &path("ca.pem"), "--cert", &path("coordinator.pem")])
            .args(["--key", &path("coordinator-key.pem"), "--results", &results])
            .args(["--status-file", &path("status.json"), "--json"])
            .stdout(std::fs::File::create(dir.join("out.json")).unwrap())
            .stderr(log("coordinator"))
            .spawn()
            .unwrap(),
    );
    // The coordinator writes its status file once its endpoint is bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("status.json").exists() {
        assert!(
            Instant::now() < deadline && coordinator.0.try_wait().unwrap().is_none(),
            "the coordinator did not start listening in namespace {coord_ns}\n{}",
            logs(&dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut probes = Vec::new();
    for (i, node) in PROBES.iter().enumerate() {
        let mut c = lab.exec(&probe_ns[i], bin);
        c.env_remove("RUST_LOG")
            .args(["probe", "--coordinator", &coordinator_at])
            .args(["--ca", &path("ca.pem")])
            .args(["--cert", &path(&format!("nodes/{node}.pem"))])
            .args(["--key", &path(&format!("nodes/{node}-key.pem"))])
            .args(["--node", node, "--rack", "r1"])
            .args(["--backend", "sim", "--devices", "1"])
            .args([
                "--data-listen",
                &format!("{}:{DATA_PORT}", probe_addr(i + 1)),
            ]);
        probes.push(Proc(
            c.stdout(Stdio::null()).stderr(log(node)).spawn().unwrap(),
        ));
    }

    let status = wait_exit(&mut coordinator.0, Duration::from_secs(35));
    let out = std::fs::read_to_string(dir.join("out.json")).unwrap_or_default();
    let Some(status) = status else {
        panic!("the run did not finish in 35 s\n{}", logs(&dir));
    };
    assert!(status.success(), "{status:?}: {out}\n{}", logs(&dir));
    drop(probes);
    let stats = lab.finish_wire(&slow_ns);

    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("one JSON object on stdout ({e}): {out}\n{}", logs(&dir)));
    assert_eq!(v["status"], "complete", "{v}");
    let fabric = v["fabric"].as_array().expect("fabric phases");
    let phase = fabric
        .iter()
        .find(|p| p["workload"] == "latency")
        .unwrap_or_else(|| panic!("no latency phase: {v}"));
    let l = &phase["latency"];
    let pairs = PROBES.len() * (PROBES.len() - 1);
    assert_eq!(l["pairs_expected"], pairs, "{phase}");
    assert_eq!(l["pairs_reported"], pairs, "{phase}");
    assert!(l["missing"].as_array().unwrap().is_empty(), "{phase}");
    assert!(l["all_lost"].as_array().unwrap().is_empty(), "{phase}");

    // Every pair's round trips: (p50 µs, p99 µs, count, pings lost).
    let mut rtt: BTreeMap<(String, String), (f64, f64, u64, u64)> = BTreeMap::new();
    for p in l["pairs"].as_array().unwrap() {
        let (src, dst) = (p["src"].as_str().unwrap(), p["dst"].as_str().unwrap());
        let r = &p["rtt"];
        let Some(p50) = r["p50_us"].as_f64() else {
            panic!("{src}→{dst}: no round trip came back: {p}");
        };
        let row = (
            p50,
            r["p99_us"].as_f64().unwrap(),
            r["count"].as_u64().unwrap(),
            p["lost"].as_u64().unwrap(),
        );
        rtt.insert((src.into(), dst.into()), row);
    }
    eprintln!("slow link {stats:?}; per pair: p50 / p99 µs, round trips, lost");
    for ((src, dst), (p50, p99, n, lost)) in &rtt {
        eprintln!("  {src}→{dst}  {p50:>9.1} / {p99:>9.1}  {n:>6}  {lost}");
    }
    assert_eq!(rtt.len(), pairs, "{phase}");
    // Every round trip of a pair involving the slow probe crosses its link twice: ≥ 2 × DELAY,
    // into it and from it alike. The others never touch that link.
    let delay_us = DELAY.as_secs_f64() * 1e6;
    let involves_slow = |(src, dst): &(String, String)| src == SLOW || dst == SLOW;
    for (pair, (p50, _, _, _)) in &rtt {
        if involves_slow(pair) {
            assert!(*p50 >= 2.0 * delay_us, "{pair:?}: p50 {p50} µs: {phase}");
        } else {
            assert!(*p50 < delay_us / 2.0, "{pair:?}: p50 {p50} µs: {phase}");
        }
    }
    let p50s = |slow: bool| -> Vec<f64> {
        let mut v: Vec<f64> = (rtt.iter())
            .filter(|(pair, _)| involves_slow(pair) == slow)
            .map(|(_, r)| r.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (slow_p50, fast_p50) = (p50s(true), p50s(false));
    eprintln!(
        "p50 µs, median of pairs involving {SLOW}: {:.1}, of the others: {:.1}",
        slow_p50[slow_p50.len() / 2],
        fast_p50[fast_p50.len() / 2]
    );
    // The worst pairs by p99 are pairs involving the slow probe (there are more of those, 8, than
    // the summary lists), and it is named.
    let worst: Vec<(String, String)> = l["worst"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let end = |k: &str| p[k].as_str().unwrap().to_string();
            (end("src"), end("dst"))
        })
        .collect();
    eprintln!("worst pairs: {worst:?}; slow node: {}", l["slow_node"]);
    let slow_pairs = 2 * (PROBES.len() - 1);
    assert_eq!(slow_p50.len(), slow_pairs, "{phase}");
    assert!(worst.len() >= PROBES.len() - 1, "{phase}");
    assert!(worst.iter().take(slow_pairs).all(involves_slow), "{phase}");
    assert_eq!(l["slow_node"]["node"], SLOW, "{phase}");
    // Both ways carried frames, and the wire lost none.
    assert!(stats.to_host > 0 && stats.from_host > 0, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");

    // The run's text names the slow probe too.
    let run_id = v["run_id"].as_str().unwrap();
    let shown = run(&["runs", "show", run_id, "--results", &results]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        text.contains(&format!("pairs involving {SLOW} are the slowest")),
        "{text}"
    );

    drop(coordinator);
    let left = lab.close();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "netns latency test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
