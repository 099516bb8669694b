//! `hallmark bench fleet`: a fleet load generator. A coordinator runs in this process (a real
//! [`ServerHandle`] storing into a run store in a temporary directory); N lightweight probes run in
//! another process, this binary re-executed as the hidden `bench fleet-probes`
//! ([`super::bench_fleet_probes`]), all on that process's one tokio runtime, each a real QUIC
//! connection with its own mutual-TLS certificate from an ephemeral CA made here and handed over
//! through a file in the temporary directory. All N start at once (a registration storm); a
//! one-phase plan (steady burn on D simulated devices per probe, sampled at H Hz, S seconds) runs
//! once all N are registered or the registration wait ends.
//!
//! Reported: the time from the probes' start until the coordinator saw all N registered, samples
//! expected (N·D·H·S) against samples stored (read back from the store; any difference is a loss
//! and fails the bench), the coordinator process's CPU share and peak memory over the run, and
//! every failed connection attempt by cause (from the probe process's report, and the
//! coordinator's refusals from its events), and the machine's UDP datagrams sent and dropped for
//! full receive buffers over the same time ([`super::bench_fleet_udp`]). Every wait is bounded,
//! and the probe process is killed on any way out of this command.

use super::bench_fleet_probes::{peak_rss_mb, unix_now_ns, FleetNode, FleetReport, FleetSpec};
use super::bench_fleet_udp::UdpCounters;
use super::execute::{execute, RunRequest};
use anyhow::{bail, Context};
use clap::Args;
use hallmark_coordinator::{
    Event, LoadRefusals, ServerHandle, ServerOptions, DEFAULT_MAX_HANDSHAKES,
};
use hallmark_protocol::plan::{parse_plan, MAX_SAMPLE_HZ, MIN_SAMPLE_HZ};
use hallmark_protocol::NodeId;
use hallmark_store::location::Location;
use hallmark_transport::pki::Ca;
use hallmark_transport::tls::Identity;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most probes one fleet bench starts (each holds a UDP socket in the probe process).
pub const MAX_FLEET_PROBES: usize = 20_000;
/// Most simulated devices per probe.
pub const MAX_FLEET_DEVICES: u16 = 16;
/// Longest wait for the probe process to report and exit once told to stop.
const CHILD_EXIT_LIMIT: Duration = Duration::from_secs(40);

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Probes to start at the same moment in the probe process (1 to 20000).
    #[arg(long)]
    probes: usize,
    /// Simulated devices per probe (1 to 16).
    #[arg(long, default_value_t = 8)]
    devices: u16,
    /// Samples per second per device (the plan's sample_hz, 0.5 to 100).
    #[arg(long, default_value_t = 10.0)]
    hz: f64,
    /// Length of the steady burn, s (0.5 to 3600).
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Longest wait for all probes to register before the burn starts anyway, s (1 to 3600).
    #[arg(long, default_value_t = 120.0)]
    register_timeout: f64,
    /// Most TLS handshakes the coordinator does at once; more are told to retry ("coordinator
    /// busy") before any cryptography (1 to 100000; the coordinator's default when not given).
    #[arg(long, default_value_t = DEFAULT_MAX_HANDSHAKES)]
    max_handshakes: usize,
    /// Each probe waits a random part of this before its first connection attempt, s (0 to 600;
    /// 0: all start at once, the storm).
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = super::probe::parse_start_jitter)]
    start_jitter: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What the bench measured.
struct Measured {
    registered: usize,
    registration_s: Option<f64>,
    samples_stored: u64,
    store_expected: u64,
    burn_s: f64,
    run_status: String,
    cpu_pct: Option<f64>,
    probes_cpu_pct: Option<f64>,
    /// From the probes' start to the run's end, s.
    wall_s: f64,
    /// The machine's UDP counters over `wall_s` (`None`: not Linux).
    udp: Option<UdpCounters>,
    refusals: BTreeMap<String, u64>,
    /// Connections the coordinator turned away before their handshake (busy), by cause.
    load_refusals: LoadRefusals,
    events_missed: u64,
    child: FleetReport,
    child_pid: u32,
}

pub async fn fleet(a: FleetArgs) -> anyhow::Result<ExitCode> {
    check(&a)?;
    let dir = temporary_dir()?;
    let outcome = measure(&a, &dir).await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(
            "could not remove the temporary directory {}: {e}",
            dir.display()
        );
    }
    let m = outcome?;
    print(&a, &m)
}

fn check(a: &FleetArgs) -> anyhow::Result<()> {
    if !(1..=MAX_FLEET_PROBES).contains(&a.probes) {
        bail!("--probes {}: give 1 to {MAX_FLEET_PROBES}", a.probes);
    }
    if !(1..=MAX_FLEET_DEVICES).contains(&a.devices) {
        bail!("--devices {}: give 1 to {MAX_FLEET_DEVICES}", a.devices);
    }
    if !(a.hz.is_finite() && (MIN_SAMPLE_HZ..=MAX_SAMPLE_HZ).contains(&a.hz)) {
        bail!("--hz {}: give {MIN_SAMPLE_HZ} to {MAX_SAMPLE_HZ}", a.hz);
    }
    if !(a.seconds.is_finite() && (0.5..=3600.0).contains(&a.seconds)) {
        bail!("--seconds {}: give 0.5 to 3600", a.seconds);
    }
    if !(1..=100_000).contains(&a.max_handshakes) {
        bail!("--max-handshakes {}: give 1 to 100000", a.max_handshakes);
    }
    if !(a.register_timeout.is_finite() && (1.0..=3600.0).contains(&a.register_timeout)) {
        bail!("--register-timeout {}: give 1 to 3600", a.register_timeout);
    }
    Ok(())
}

/// N·D·H·S.
fn samples_expected(a: &FleetArgs) -> u64 {
    (a.probes as f64 * f64::from(a.devices) * a.hz * a.seconds).round() as u64
}

async fn measure(a: &FleetArgs, dir: &Path) -> anyhow::Result<Measured> {
    let ca = Ca::generate().context("making an ephemeral CA")?;
    let server_cert = ca
        .issue_coordinator(&["127.0.0.1".to_string()])
        .context("issuing the coordinator certificate")?;
    let identity = Identity::from_pem(ca.cert_pem(), &server_cert.cert_pem, &server_cert.key_pem)?;
    let mut opts = ServerOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    // The default admits 4096 connections at once; a larger fleet is admitted whole.
    opts.max_connections = opts.max_connections.max(a.probes + a.probes / 10 + 16);
    opts.max_handshakes = a.max_handshakes;
    let server = ServerHandle::start(&identity, opts)
        .await
        .context("starting the coordinator")?;
    let spec_path = write_spec(a, &ca, server.local_addr(), dir)?;
    let store = Location::Dir(dir.join("store"));
    std::fs::create_dir_all(dir.join("store")).context("creating the run store")?;
    let result = with_probes(a, &server, &spec_path, &store).await;
    if let Err(e) = server.shutdown().await {
        tracing::warn!("stopping the coordinator: {e}");
    }
    result
}

/// Issues every probe's certificate and writes the spec the probe process reads.
fn write_spec(a: &FleetArgs, ca: &Ca, addr: SocketAddr, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut nodes = Vec::with_capacity(a.probes);
    for i in 0..a.probes {
        let node_id = NodeId::new(format!("fleet-{:05}", i + 1))?;
        let issued = ca
            .issue_node(&node_id)
            .with_context(|| format!("issuing a certificate for {node_id}"))?;
        nodes.push(FleetNode {
            node_id: node_id.as_str().to_string(),
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        });
    }
    let spec = FleetSpec {
        coordinator: addr.to_string(),
        ca_pem: ca.cert_pem().to_string(),
        devices: a.devices,
        // The probe process stops by itself after the longest the bench can take.
        deadline_s: a.register_timeout + a.seconds + 180.0,
        start_jitter_s: a.start_jitter.as_secs_f64(),
        nodes,
    };
    let path = dir.join("fleet-spec.json");
    std::fs::write(&path, serde_json::to_vec(&spec)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Starts the probe process, runs the plan and collects what the probe process reports. The
/// process is killed when this returns early (its handle kills on drop).
async fn with_probes(
    a: &FleetArgs,
    server: &ServerHandle,
    spec: &Path,
    store: &Location,
) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe().context("finding this program to start the probe process")?;
    let cpu_start = process_cpu_s("self");
    let udp_start = UdpCounters::read();
    let wall_start = Instant::now();
    let mut child = Child(
        std::process::Command::new(exe)
            .args(["--quiet", "bench", "fleet-probes", "--spec"])
            .arg(spec)
            // glibc's malloc serves an allocation above this from fresh zero pages (mmap) and
            // returns it to the system when freed. Without it, the threshold rises to the size of
            // the first such block freed (up to 32 MiB), after which each probe's 2.9 MiB receive
            // buffer is carved from a heap and, on a worker thread's arena, cleared in full by
            // calloc: all of it resident at once.
            .env("MALLOC_MMAP_THRESHOLD_", "262144")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the probe process")?,
    );
    let child_pid = child.0.id();
    let refusals = tokio::spawn(count_refusals(server.subscribe()));
    let (source, plan) = plan(a)?;
    let all_at = AtomicI64::new(0);
    let most = AtomicUsize::new(0);
    let watch = server.wait_for(Duration::from_secs_f64(a.register_timeout), |p| {
        most.fetch_max(p.len(), Ordering::Relaxed);
        let all = p.len() >= a.probes;
        if all && all_at.load(Ordering::Relaxed) == 0 {
            all_at.store(unix_now_ns(), Ordering::Relaxed);
        }
        all
    });
    let request = RunRequest {
        plan,
        plan_source: source,
        hall: None,
        results: store,
        progress: false,
    };
    let (_, summary) = tokio::join!(watch, execute(server, request));
    let wall = wall_start.elapsed().as_secs_f64();
    let udp = udp_start.zip(UdpCounters::read()).map(|(s, e)| s.since(e));
    let cpu_pct = cpu_start
        .zip(process_cpu_s("self"))
        .map(|(s, e)| 100.0 * (e - s) / wall);
    let probes_cpu_pct = process_cpu_s(&child_pid.to_string()).map(|c| 100.0 * c / wall);
    let summary = summary?;
    // Stop the probe process (its stdin closes) and read its report, bounded.
    drop(child.0.stdin.take());
    let mut out = child
        .0
        .stdout
        .take()
        .context("the probe process's stdout")?;
    let reading = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut text = String::new();
        out.read_to_string(&mut text).map(|_| text)
    });
    let text = match tokio::time::timeout(CHILD_EXIT_LIMIT, reading).await {
        Ok(r) => r
            .context("reading the probe process's report")?
            .context("reading the probe process's report")?,
        Err(_) => bail!(
            "the probe process did not report within {} s of being told to stop; it is killed",
            CHILD_EXIT_LIMIT.as_secs()
        ),
    };
    let status = child.wait(Duration::from_secs(5)).await?;
    if !status.success() {
        bail!("the probe process failed ({status}); its errors are above");
    }
    let child_report: FleetReport = serde_json::from_str(text.trim())
        .with_context(|| format!("parsing the probe process's report {text:?}"))?;
    refusals.abort();
    let (refusals, events_missed) = refusals.await.unwrap_or_default();
    let registered_at = all_at.load(Ordering::Relaxed);
    let burn = summary.phases.first();
    Ok(Measured {
        registered: most.load(Ordering::Relaxed),
        registration_s: (registered_at != 0)
            .then(|| (registered_at - child_report.started_at_unix_ns).max(0) as f64 / 1e9),
        samples_stored: burn.map_or(0, |p| p.samples_stored),
        store_expected: burn.map_or(0, |p| p.samples_expected),
        burn_s: burn.map_or(0.0, |p| p.duration_ms as f64 / 1e3),
        run_status: summary.status.to_string(),
        cpu_pct,
        probes_cpu_pct,
        wall_s: wall,
        udp,
        refusals,
        load_refusals: server.load_refusals(),
        events_missed,
        child: child_report,
        child_pid,
    })
}

/// The probe process, killed and reaped when dropped unless it has been waited for.
struct Child(std::process::Child);

impl Child {
    /// Waits for the process to exit, at most `limit` (then it is killed on drop).
    async fn wait(&mut self, limit: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let until = Instant::now() + limit;
        // Bounded by `until`.
        loop {
            if let Some(status) = self.0.try_wait().context("waiting for the probe process")? {
                return Ok(status);
            }
            if Instant::now() >= until {
                bail!(
                    "the probe process did not exit within {} s of reporting; it is killed",
                    limit.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The plan: wait for every probe (at most --register-timeout), then one steady burn.
fn plan(a: &FleetArgs) -> anyhow::Result<(String, hallmark_protocol::plan::Plan)> {
    let source = format!(
        "name = \"bench-fleet\"\nsample_hz = {}\n\n[expect]\nnodes = {}\ndevices_per_node = {}\n\
         timeout_s = {}\n\n[[phase]]\nname = \"burn\"\nworkload = \"burn\"\nduration_s = {}\n\
         pattern = {{ kind = \"steady\", level = 1.0 }}\n",
        a.hz, a.probes, a.devices, a.register_timeout, a.seconds
    );
    let plan = parse_plan(&source, "bench-fleet").context("the bench's plan")?;
    Ok((source, plan))
}

/// Counts the coordinator's refusals by reason until aborted; also how many events this
/// listener missed (it fell behind).
async fn count_refusals(
    mut events: tokio::sync::broadcast::Receiver<Event>,
) -> (BTreeMap<String, u64>, u64) {
    use tokio::sync::broadcast::error::RecvError;
    let mut counts = BTreeMap::new();
    let mut missed = 0;
    loop {
        match events.recv().await {
            Ok(Event::Refused { refusal, .. }) => {
                let reason = format!("{:?}", refusal.reason);
                let kind = reason
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or("")
                    .to_string();
                *counts.entry(kind).or_insert(0) += 1;
            }
            Ok(Event::ProtocolError { .. }) => {
                *counts.entry("ProtocolError".into()).or_insert(0) += 1
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => missed += n,
            Err(RecvError::Closed) => return (counts, missed),
        }
    }
}

/// User plus system CPU time of a process (`self` or a pid), s; `None` where /proc says nothing.
fn process_cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks()?)
}

fn clock_ticks() -> Option<f64> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf reads a constant.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (t > 0).then_some(t as f64)
    }
    #[cfg(not(unix))]
    None
}

fn print(a: &FleetArgs, m: &Measured) -> anyhow::Result<ExitCode> {
    let expected = samples_expected(a);
    let lost = expected.saturating_sub(m.samples_stored);
    let per_s = (m.burn_s > 0.0).then(|| m.samples_stored as f64 / m.burn_s);
    let rss = peak_rss_mb();
    let udp_per_probe_s = m
        .udp
        .filter(|_| m.wall_s > 0.0)
        .map(|u| u.sent as f64 / a.probes as f64 / m.wall_s);
    let pass = m.registered == a.probes && lost == 0 && m.samples_stored >= expected;
    let c = &m.child;
    if a.json {
        let out = json!({
            "probes": a.probes,
            "devices": a.devices,
            "hz": a.hz,
            "seconds": a.seconds,
            "registered": m.registered,
            "registration_s": m.registration_s,
            "samples_expected": expected,
            "samples_expected_by_store": m.store_expected,
            "samples_stored": m.samples_stored,
            "samples_lost": lost,
            "samples_per_s": per_s,
            "coordinator_cpu_pct": m.cpu_pct,
            "coordinator_rss_mb": rss,
            "probes_cpu_pct": m.probes_cpu_pct,
            "probes_rss_mb": c.peak_rss_mb,
            "udp_datagrams_sent": m.udp.map(|u| u.sent),
            "udp_datagrams_per_probe_s": udp_per_probe_s,
            "udp_receive_buffer_errors": m.udp.map(|u| u.receive_buffer_errors),
            "run_status": m.run_status,
            "pass": pass,
            "handshake_failures": {
                "retried_timeout": c.retried.timeout,
                "retried_reset": c.retried.reset,
                "retried_busy": c.retried.busy,
                "retried_other": c.retried.other,
                "retried_other_kinds": c.retried.other_kinds,
                "certificate_rejected": c.fatal.certificate_rejected,
                "coordinator_not_trusted": c.fatal.coordinator_not_trusted,
                "refused": c.fatal.refused,
                "fatal_other": c.fatal.other,
            },
            "coordinator_refusals": m.refusals,
            "coordinator_busy_refusals": {
                "handshakes_in_flight": m.load_refusals.handshakes_in_flight,
                "connections_open": m.load_refusals.connections_open,
                "resent_initials": m.load_refusals.resent_initials,
            },
            "max_handshakes": a.max_handshakes,
            "start_jitter_s": a.start_jitter.as_secs_f64(),
            "coordinator_events_missed": m.events_missed,
            "probes_not_stopped": c.not_stopped,
            "probe_identities_s": c.identities_s,
            "child_pid": m.child_pid,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let num = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
        println!(
            "fleet: {} probes × {} devices × {} Hz × {} s (probes in another process, one runtime)",
            a.probes, a.devices, a.hz, a.seconds
        );
        println!(
            "registered: {} of {} in {} s",
            m.registered,
            a.probes,
            num(m.registration_s, 2)
        );
        println!(
            "samples: {} stored of {} expected ({} lost), {} per s; run {}",
            m.samples_stored,
            expected,
            lost,
            num(per_s, 0),
            m.run_status
        );
        println!(
            "coordinator: {} % CPU (100 % = one core), peak RSS {} MiB; probe process {} % CPU, peak RSS {} MiB",
            num(m.cpu_pct, 1),
            num(rss, 1),
            num(m.probes_cpu_pct, 1),
            num(c.peak_rss_mb, 1)
        );
        println!(
            "UDP on this machine over {} s: {} datagrams sent, {} per probe per s; {} dropped for full receive buffers",
            num(Some(m.wall_s), 1),
            m.udp.map_or("-".to_string(), |u| u.sent.to_string()),
            num(udp_per_probe_s, 2),
            m.udp
                .map_or("-".to_string(), |u| u.receive_buffer_errors.to_string())
        );
        println!(
            "failed connection attempts: retried {} busy, {} timeout, {} reset, {} other; fatal {} certificate rejected, {} coordinator not trusted, {} refused, {} other",
            c.retried.busy,
            c.retried.timeout,
            c.retried.reset,
            c.retried.other,
            c.fatal.certificate_rejected,
            c.fatal.coordinator_not_trusted,
            c.fatal.refused,
            c.fatal.other
        );
        for (msg, n) in &c.retried.other_kinds {
            println!("  {n} × {msg}");
        }
        println!(
            "coordinator turned away (busy, told to retry): {} over {} handshakes in flight, {} over the connection cap, {} copies of a refused attempt",
            m.load_refusals.handshakes_in_flight,
            a.max_handshakes,
            m.load_refusals.connections_open,
            m.load_refusals.resent_initials
        );
        if !m.refusals.is_empty() {
            println!("coordinator refusals: {:?}", m.refusals);
        }
        println!(
            "{}",
            if pass {
                "PASS: every probe registered, no sample lost"
            } else {
                "FAIL: see above"
            }
        );
    }
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn temporary_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "hallmark-fleet-{}-{}",
        std::process::id(),
        unix_now_ns()
    ));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating a temporary directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // It holds the probes' private keys.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(dir)
}
