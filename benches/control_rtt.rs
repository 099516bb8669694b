//! Control round trip over loopback QUIC: one clock-sync exchange (ClockPing → ClockPong) at a time.
//!
//! Run with `cargo bench --bench control_rtt` (release build). `-- --quick` (or
//! `HALLMARK_BENCH_QUICK=1`) does 2 000 exchanges instead of 20 000, for a smoke test;
//! `HALLMARK_RTT_EXCHANGES=N` sets the number of measured exchanges; other arguments select
//! configurations by a part of their name (`-- headline`, `-- UDP`). `HALLMARK_RTT_CPUS=A,B` pins
//! the coordinator's thread to CPU A and the probe's to CPU B in the two-thread configurations
//! (Linux); to run everything on one CPU, start the bench under `taskset -c 0`.
//!
//! The roles are those of a real run: the coordinator is the QUIC server, the probe the client that
//! opens the control stream and sends its Hello; then the coordinator sends `ClockPing` frames and
//! the probe answers each with a `ClockPong` carrying its own receive and send instants, like the
//! probe's session does. The transport is the real one: an ephemeral CA, mutual TLS 1.3 through
//! `tls::server_config`/`tls::client_config` with the default `TransportOptions`, and the framed
//! streams of `hallmark_transport::framed`. The coordinator times each exchange from just before it
//! encodes the ping to just after it decoded the pong, and records it in an HDR histogram (ns,
//! 3 significant digits).
//!
//! Configurations:
//! * `2 threads x current_thread` (headline): coordinator and probe each on their own single-threaded
//!   tokio runtime in their own OS thread, as two processes on two machines would run.
//! * `1 multi_thread runtime`: both ends as tasks of one multi-threaded runtime (one worker per core).
//! * `1 current_thread runtime`: both ends as tasks of one single-threaded runtime (no cross-thread
//!   wake-ups, but the two ends never run at the same time).
//! * Reference rows without QUIC or TLS: the same frames as plain UDP datagrams, once with blocking
//!   std sockets and once through tokio (two threads, current_thread each), to split the QUIC/TLS
//!   cost from the runtime's.
//!
//! Every wait is bounded: a configuration that does not finish within its time limit fails the run.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hallmark_protocol::codec::encode_frame;
use hallmark_protocol::{ClockPing, ClockPong, CoordinatorMessage, NodeId, ProbeMessage};
use hallmark_transport::clock::WallClock;
use hallmark_transport::framed::{FramedRecv, FramedSend};
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::{client_config, server_config, Identity, TransportOptions};
use hdrhistogram::Histogram;

/// Upper bound of one configuration, set-up and tear-down included.
const LIMIT: Duration = Duration::from_secs(120);
/// The measuring loop stops early (with fewer exchanges, reported) after this long.
const MEASURE_LIMIT: Duration = Duration::from_secs(60);
/// Upper bound of a clean shutdown.
const SHUTDOWN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
struct Counts {
    warmup: u32,
    measured: u32,
    /// CPUs to pin the coordinator's and the probe's thread to in the two-thread configurations.
    cpus: Option<(usize, usize)>,
}

impl Counts {
    fn from_args() -> Result<Counts> {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("HALLMARK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut c = if quick {
            Counts {
                warmup: 200,
                measured: 2_000,
                cpus: None,
            }
        } else {
            Counts {
                warmup: 1_000,
                measured: 20_000,
                cpus: None,
            }
        };
        if let Ok(n) = std::env::var("HALLMARK_RTT_EXCHANGES") {
            c.measured = n
                .parse()
                .with_context(|| format!("HALLMARK_RTT_EXCHANGES={n:?} is not a count"))?;
        }
        if let Ok(v) = std::env::var("HALLMARK_RTT_CPUS") {
            let bad = || anyhow!("HALLMARK_RTT_CPUS={v:?} is not two CPU numbers such as 0,1");
            let (a, b) = v.split_once(',').ok_or_else(bad)?;
            c.cpus = Some((
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ));
        }
        Ok(c)
    }

    fn total(&self) -> u32 {
        self.warmup + self.measured
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Both sides' QUIC configurations from a fresh CA.
struct Pki {
    server: quinn::ServerConfig,
    client: quinn::ClientConfig,
}

impl Pki {
    fn new() -> Result<Pki> {
        let ca = Ca::generate()?;
        let c = ca.issue_coordinator(&[])?;
        let coordinator = Identity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem)?;
        let n = ca.issue_node(&NodeId::new("bench-probe")?)?;
        let probe = Identity::from_pem(ca.cert_pem(), &n.cert_pem, &n.key_pem)?;
        let opts = TransportOptions::default();
        Ok(Pki {
            server: server_config(&coordinator, &opts)?,
            client: client_config(&probe, &opts)?,
        })
    }
}

/// The coordinator's side: accept the probe, read its Hello, then time `counts.total()` exchanges.
async fn coordinator(endpoint: quinn::Endpoint, counts: Counts) -> Result<Histogram<u64>> {
    let incoming = endpoint.accept().await.context("endpoint closed")?;
    let conn = incoming.await.context("handshake")?;
    let (send, recv) = conn
        .accept_bi()
        .await
        .context("accepting the control stream")?;
    let (mut tx, mut rx) = (FramedSend::new(send), FramedRecv::new(recv));
    match rx.recv::<ProbeMessage>().await? {
        Some(ProbeMessage::Hello(_)) => {}
        other => bail!("expected a Hello, got {other:?}"),
    }
    let clock = WallClock::new();
    let mut hist = histogram();
    let started = Instant::now();
    for seq in 0..counts.total() {
        let t0 = Instant::now();
        let ping = ClockPing {
            seq,
            t1: clock.now_ns(),
        };
        tx.send(&CoordinatorMessage::ClockPing(ping)).await?;
        match rx.recv::<ProbeMessage>().await? {
            Some(ProbeMessage::ClockPong(p)) if p.seq == seq && p.t1 == ping.t1 => {}
            other => bail!("expected the ClockPong of ping {seq}, got {other:?}"),
        }
        let ns = t0.elapsed().as_nanos();
        if seq >= counts.warmup {
            hist.saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
        }
        if started.elapsed() > MEASURE_LIMIT {
            eprintln!("  stopped after {MEASURE_LIMIT:?}: {} exchanges", seq + 1);
            break;
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN, tx.finish()).await;
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(SHUTDOWN, endpoint.wait_idle()).await;
    Ok(hist)
}

/// The probe's side: connect, send the Hello, answer pings until the coordinator ends the stream.
async fn probe(endpoint: quinn::Endpoint, addr: SocketAddr) -> Result<u32> {
    let conn = endpoint
        .connect(addr, "localhost")?
        .await
        .context("handshake")?;
    let (send, recv) = conn.open_bi().await?;
    let (mut tx, mut rx) = (FramedSend::new(send), FramedRecv::new(recv));
    tx.send(&ProbeMessage::Hello(common::hello_8_gpus()))
        .await?;
    let clock = WallClock::new();
    let mut answered = 0;
    loop {
        match rx.recv::<CoordinatorMessage>().await {
            Ok(Some(CoordinatorMessage::ClockPing(ping))) => {
                let t2 = clock.now_ns();
                let pong = ClockPong {
                    seq: ping.seq,
                    t1: ping.t1,
                    t2,
                    t3: clock.now_ns(),
                };
                tx.send(&ProbeMessage::ClockPong(pong)).await?;
                answered += 1;
            }
            Ok(Some(other)) => bail!("unexpected {other:?}"),
            // The coordinator ended the stream, or closed the connection right after.
            Ok(None) | Err(_) => break,
        }
    }
    conn.close(0u32.into(), b"bye");
    let _ = tokio::time::timeout(SHUTDOWN, endpoint.wait_idle()).await;
    Ok(answered)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn client_endpoint(pki: &Pki) -> Result<quinn::Endpoint> {
    let mut e = quinn::Endpoint::client(loopback())?;
    e.set_default_client_config(pki.client.clone());
    Ok(e)
}

/// Both ends in one runtime, as two tasks.
fn quic_one_runtime(rt: tokio::runtime::Runtime, counts: Counts) -> Result<Histogram<u64>> {
    let pki = Pki::new()?;
    rt.block_on(async {
        tokio::time::timeout(LIMIT, async {
            let server = quinn::Endpoint::server(pki.server.clone(), loopback())?;
            let addr = server.local_addr()?;
            let client = client_endpoint(&pki)?;
            let c = tokio::spawn(coordinator(server, counts));
            let p = tokio::spawn(probe(client, addr));
            let hist = c.await??;
            p.await??;
            Ok(hist)
        })
        .await
        .map_err(|_| anyhow!("did not finish within {LIMIT:?}"))?
    })
}

fn current_thread() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Pins the calling thread to `cpu`.
#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: `set` is a plain bit set that lives across the call; pid 0 is the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "cannot pin a thread to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_cpu: usize) -> Result<()> {
    bail!("HALLMARK_RTT_CPUS is only supported on Linux")
}

/// Runs `server` and `client` in two OS threads, pinned to `cpus` when given; `server` hands its
/// address to `client`.
fn two_threads<S, C>(cpus: Option<(usize, usize)>, server: S, client: C) -> Result<Histogram<u64>>
where
    S: FnOnce(mpsc::Sender<SocketAddr>) -> Result<Histogram<u64>> + Send + 'static,
    C: FnOnce(SocketAddr) -> Result<()> + Send + 'static,
{
    let (addr_tx, addr_rx) = mpsc::channel();
    let s = std::thread::Builder::new()
        .name("coordinator".into())
        .spawn(move || {
            if let Some((cpu, _)) = cpus {
                pin_to(cpu)?;
            }
            server(addr_tx)
        })?;
    let Ok(addr) = addr_rx.recv_timeout(LIMIT) else {
        // The server failed before it could listen: its error says why.
        let failed = s.join().map_err(|_| anyhow!("server thread panicked"))?;
        return failed.and_then(|_| Err(anyhow!("server did not start")));
    };
    let c = std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            if let Some((_, cpu)) = cpus {
                pin_to(cpu)?;
            }
            client(addr)
        })?;
    let hist = s.join().map_err(|_| anyhow!("server thread panicked"))?;
    c.join().map_err(|_| anyhow!("client thread panicked"))??;
    hist
}

/// Coordinator and probe each on their own current_thread runtime in their own OS thread.
fn quic_two_threads(counts: Counts) -> Result<Histogram<u64>> {
    let pki = Pki::new()?;
    let Pki {
        server: server_cfg,
        client: client_cfg,
    } = pki;
    two_threads(
        counts.cpus,
        move |addr_tx| {
            current_thread()?.block_on(async move {
                let server = quinn::Endpoint::server(server_cfg, loopback())?;
                addr_tx.send(server.local_addr()?)?;
                tokio::time::timeout(LIMIT, coordinator(server, counts))
                    .await
                    .map_err(|_| anyhow!("coordinator did not finish within {LIMIT:?}"))?
            })
        },
        move |addr| {
            current_thread()?.block_on(async move {
                let mut e = quinn::Endpoint::client(loopback())?;
                e.set_default_client_config(client_cfg);
                tokio::time::timeout(LIMIT, probe(e, addr))
                    .await
                    .map_err(|_| anyhow!("probe did not finish within {LIMIT:?}"))??;
                Ok(())
            })
        },
    )
}

/// The frames of one exchange, as plain datagrams for the reference rows.
fn frames() -> Result<(Vec<u8>, Vec<u8>)> {
    let ping = encode_frame(&CoordinatorMessage::ClockPing(ClockPing {
        seq: 1,
        t1: WallClock::new().now_ns(),
    }))?;
    let pong = encode_frame(&ProbeMessage::ClockPong(ClockPong {
        seq: 1,
        t1: 1,
        t2: WallClock::new().now_ns(),
        t3: WallClock::new().now_ns(),
    }))?;
    Ok((ping, pong))
}

/// Reference: the same frames over plain UDP with blocking std sockets, two threads.
fn udp_std(counts: Counts) -> Result<Histogram<u64>> {
    let (ping, pong) = frames()?;
    let pong_len = pong.len();
    two_threads(
        counts.cpus,
        move |addr_tx| {
            let sock = UdpSocket::bind(loopback())?;
            sock.set_read_timeout(Some(SHUTDOWN))?;
            addr_tx.send(sock.local_addr()?)?;
            let mut buf = [0u8; 2048];
            let (_, peer) = sock.recv_from(&mut buf)?; // the client's hello
            sock.connect(peer)?;
            let mut hist = histogram();
            for i in 0..counts.total() {
                let t0 = Instant::now();
                sock.send(&ping)?;
                let n = sock.recv(&mut buf)?;
                if n != pong_len {
                    bail!("short pong");
                }
                if i >= counts.warmup {
                    hist.saturating_record(t0.elapsed().as_nanos() as u64);
                }
            }
            sock.send(b"")?; // stop
            Ok(hist)
        },
        move |addr| {
            let sock = UdpSocket::bind(loopback())?;
            sock.set_read_timeout(Some(LIMIT))?;
            sock.connect(addr)?;
            sock.send(b"hello")?;
            let mut buf = [0u8; 2048];
            while sock.recv(&mut buf)? > 0 {
                sock.send(&pong)?;
            }
            Ok(())
        },
    )
}

/// Reference: the same frames over plain UDP through tokio, two threads with a current_thread
/// runtime each.
fn udp_tokio(counts: Counts) -> Result<Histogram<u64>> {
    let (ping, pong) = frames()?;
    let pong_len = pong.len();
    two_threads(
        counts.cpus,
        move |addr_tx| {
            current_thread()?.block_on(async move {
                let sock = tokio::net::UdpSocket::bind(loopback()).await?;
                addr_tx.send(sock.local_addr()?)?;
                tokio::time::timeout(LIMIT, async {
                    let mut buf = [0u8; 2048];
                    let (_, peer) = sock.recv_from(&mut buf).await?;
                    sock.connect(peer).await?;
                    let mut hist = histogram();
                    for i in 0..counts.total() {
                        let t0 = Instant::now();
                        sock.send(&ping).await?;
                        let n = sock.recv(&mut buf).await?;
                        if n != pong_len {
                            bail!("short pong");
                        }
                        if i >= counts.warmup {
                            hist.saturating_record(t0.elapsed().as_nanos() as u64);
                        }
                    }
                    sock.send(b"").await?;
                    Ok(hist)
                })
                .await
                .map_err(|_| anyhow!("did not finish within {LIMIT:?}"))?
            })
        },
        move |addr| {
            current_thread()?.block_on(async move {
                let sock = tokio::net::UdpSocket::bind(loopback()).await?;
                sock.connect(addr).await?;
                tokio::time::timeout(LIMIT, async {
                    sock.send(b"hello").await?;
                    let mut buf = [0u8; 2048];
                    while sock.recv(&mut buf).await? > 0 {
                        sock.send(&pong).await?;
                    }
                    Ok::<_, anyhow::Error>(())
                })
                .await
                .map_err(|_| anyhow!("did not finish within {LIMIT:?}"))?
            })
        },
    )
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

fn print_row(name: &str, h: &Histogram<u64>) {
    let q = |q: f64| us(h.value_at_quantile(q));
    println!(
        "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        name,
        h.len(),
        us(h.min()),
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        us(h.max()),
        h.mean() / 1_000.0
    );
}

/// One configuration's measurement.
type Run = Box<dyn FnOnce() -> Result<Histogram<u64>>>;

fn main() -> Result<()> {
    let counts = Counts::from_args()?;
    println!(
        "control_rtt: {} warm-up + {} measured exchanges per configuration, one at a time; µs",
        counts.warmup, counts.measured
    );
    match counts.cpus {
        Some((a, b)) => {
            println!("two-thread configurations: coordinator on CPU {a}, probe on CPU {b}")
        }
        None => println!("two-thread configurations: threads placed by the scheduler"),
    }
    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let runs: [(&str, Run); 5] = [
        (
            "QUIC+mTLS, 2 threads x current_thread (headline)",
            Box::new(move || quic_two_threads(counts)),
        ),
        (
            "QUIC+mTLS, 1 multi_thread runtime",
            Box::new(move || quic_one_runtime(multi, counts)),
        ),
        (
            "QUIC+mTLS, 1 current_thread runtime",
            Box::new(move || quic_one_runtime(current_thread()?, counts)),
        ),
        (
            "plain UDP, tokio, 2 threads x current_thread",
            Box::new(move || udp_tokio(counts)),
        ),
        (
            "plain UDP, blocking std sockets, 2 threads",
            Box::new(move || udp_std(counts)),
        ),
    ];
    // Like libtest: arguments that are not flags select configurations by a part of their name.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mut results = Vec::new();
    for (name, run) in runs {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        eprintln!("running: {name}");
        let started = Instant::now();
        let hist = run().with_context(|| name.to_string())?;
        eprintln!("  {:.1} s", started.elapsed().as_secs_f64());
        results.push((name, hist));
    }
    println!();
    println!("| configuration | n | min | p50 | p90 | p99 | p99.9 | max | mean |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, hist) in &results {
        print_row(name, hist);
    }
    Ok(())
}
