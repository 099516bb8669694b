//! One collector polling 1 000 Redfish rack PDUs at 1 Hz (docs/PERFORMANCE.md).
//!
//! `cargo bench -p hallmark-facility --bench collector_poll` starts a Redfish service in a child
//! process (this binary again, so its CPU is not counted here): `HALLMARK_BENCH_ORIGINS` origins
//! on loopback (default 1000, each its own port, as each PDU is its own service in a hall), the
//! sources spread over them, each a rack PDU whose `Metrics` the collector GETs every second. It
//! runs the collector for `HALLMARK_BENCH_SECONDS` (default 30) and prints the collector
//! process's CPU share of one core after a 5 s warm-up, the polls per second, and the poll
//! latency p50/p99 from the readings' `latency_us`.
//!
//! `HALLMARK_BENCH_SOURCES` sets the number of sources (default 1000);
//! `HALLMARK_BENCH_RUNTIME=current` runs the collector on a current-thread tokio runtime instead
//! of the default multi-thread one.

use hallmark_facility::{Collector, FacilityConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SERVER_ENV: &str = "HALLMARK_BENCH_REDFISH_SERVER";
const WARM_UP: Duration = Duration::from_secs(5);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        server(env_usize("HALLMARK_BENCH_ORIGINS", 1000));
        return;
    }
    let sources = env_usize("HALLMARK_BENCH_SOURCES", 1000);
    let origins = env_usize("HALLMARK_BENCH_ORIGINS", 1000).clamp(1, sources.max(1));
    let seconds = env_usize("HALLMARK_BENCH_SECONDS", 30).max(6) as u64;
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(SERVER_ENV, "1")
        .env("HALLMARK_BENCH_ORIGINS", origins.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the Redfish service process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the service's ports");
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().expect("a port"))
        .collect();
    assert_eq!(ports.len(), origins, "{line}");
    let mut toml = String::from("[defaults]\ninterval_s = 1.0\ntimeout_s = 2.0\n");
    for i in 0..sources {
        toml.push_str(&format!(
            "[[redfish]]\nname = \"pdu-{i}\"\nurl = \"http://127.0.0.1:{}\"\nresource = \"/redfish/v1/PowerEquipment/RackPDUs/{i}\"\nrack = \"r{i}\"\n",
            ports[i % origins]
        ));
    }
    let config = FacilityConfig::parse(&toml, "bench.toml", std::path::Path::new("."), &|_| None)
        .expect("the bench's facility file");
    // HALLMARK_BENCH_RUNTIME=current: the collector on a current-thread runtime of its own.
    let current = std::env::var("HALLMARK_BENCH_RUNTIME").is_ok_and(|v| v == "current");
    let rt = if current {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Runtime::new().unwrap()
    };
    let (polls, latencies, cpu_s, wall_s) = rt.block_on(run(config, seconds));
    drop(child.stdin.take());
    let _ = child.wait();
    let mut lat = latencies;
    lat.sort_unstable();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "collector_poll: {sources} Redfish PDUs on {origins} origins at 1 Hz, {seconds} s ({:.0} s measured after a {} s warm-up), {} runtime",
        wall_s,
        WARM_UP.as_secs(),
        if current { "current-thread" } else { "multi-thread" }
    );
    println!(
        "  polls/s {:.1} (readable {}), CPU {:.1} % of one core, poll latency p50 {:.2} ms, p99 {:.2} ms",
        polls as f64 / wall_s,
        lat.len(),
        100.0 * cpu_s / wall_s,
        q(0.50) as f64 / 1000.0,
        q(0.99) as f64 / 1000.0
    );
}

fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// This process's CPU time (user + system), seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0);
    ticks / hz
}

/// Runs the collector for `seconds`; returns the polls and the latencies (µs) of readable PDU
/// power readings after the warm-up, the CPU seconds and the wall seconds after it.
async fn run(config: FacilityConfig, seconds: u64) -> (u64, Vec<u32>, f64, f64) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let collector = Collector::new(&config).expect("the collector");
    let started = Instant::now();
    let warm_ns = wall_ns() + WARM_UP.as_nanos() as i64;
    let stop = tokio::time::sleep(Duration::from_secs(seconds));
    let task = tokio::spawn(collector.run(Arc::new(wall_ns), tx, stop));
    let mut latencies = Vec::new();
    let mut polls = 0u64;
    let mut cpu0 = None;
    let mut t0 = started;
    while let Some(batch) = rx.recv().await {
        if cpu0.is_none() && started.elapsed() >= WARM_UP {
            cpu0 = Some(cpu_seconds());
            t0 = Instant::now();
        }
        for r in batch {
            if r.point.is_empty()
                && r.quantity == hallmark_protocol::facility::FacilityQuantity::PowerW
                && r.t_ns >= warm_ns
            {
                polls += 1;
                if let (Some(_), Some(l)) = (r.value, r.latency_us) {
                    latencies.push(l);
                }
            }
        }
    }
    let cpu1 = cpu_seconds();
    let wall = t0.elapsed().as_secs_f64();
    let stats = task.await.unwrap();
    eprintln!("collector: {stats:?}");
    (polls, latencies, cpu1 - cpu0.unwrap_or(0.0), wall)
}

/// The Redfish service: `origins` listeners on loopback; every PDU's resource links its
/// `Metrics`, which reads 6438 W. Prints the ports on one line, serves until stdin closes.
fn server(origins: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ports = Vec::new();
        for _ in 0..origins {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports.push(l.local_addr().unwrap().port());
            tokio::spawn(accept(l));
        }
        let line: Vec<String> = ports.iter().map(u16::to_string).collect();
        let mut out = std::io::stdout();
        writeln!(out, "{}", line.join(" ")).unwrap();
        out.flush().unwrap();
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
    });
}

async fn accept(l: tokio::net::TcpListener) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    while let Ok((stream, _)) = l.accept().await {
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                |req: hyper::Request<hyper::body::Incoming>| async move {
                    let path = req.uri().path().to_string();
                    let body = if path.ends_with("/Metrics") {
                        r#"{"PowerWatts": {"Reading": 6438}, "EnergykWh": {"Reading": 56438}}"#
                            .to_string()
                    } else {
                        format!(r#"{{"Id": "pdu", "Metrics": {{"@odata.id": "{path}/Metrics"}}}}"#)
                    };
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
