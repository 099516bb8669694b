//! `hallmark bench`: quick single-node checks without a coordinator.
//!
//! `bench gemm` loads this node's devices (cpu or cuda) for a few seconds — steady at full load,
//! or a square wave between full and zero load — and prints what they achieved: GFLOP/s per
//! device and in total (GB/s for the memory-bandwidth kernel), the wrong elements of the result
//! checks, and from the sensors mean and peak power against the enforced limit, the highest
//! temperatures, the SM clock range and the throttle reasons seen.
//!
//! `bench latency` and `bench collective` ([`super::bench_fabric`]) check the fabric workloads
//! between probes started in this process.

use super::devices::{self, OpenOptions, Real};
use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use hallmark_protocol::DeviceResult;
use hallmark_workloads::cuda::{CudaConfig, Dtype};
use hallmark_workloads::{throttle, Kernel, NodeReading};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long the devices get, after the load stops, to finish what is in flight and report their
/// last result checks.
const DRAIN: Duration = Duration::from_millis(50);

/// Exit code when a result check found wrong elements.
pub const EXIT_WRONG_ELEMENTS: u8 = 5;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load this node's devices with the GEMM burn for a few seconds and print the achieved
    /// GFLOP/s, the result checks and (where sensors exist) power, temperatures and throttling.
    Gemm(GemmArgs),
    /// Start N probes in this process, each with its own data plane on loopback, run the latency
    /// mesh between them through the coordinator and print the round-trip percentiles.
    Latency(super::bench_fabric::LatencyArgs),
    /// Start N probes (ranks) in this process and run one collective operation between them over
    /// their data planes; print time, algbw and busbw (nccl-tests' definitions) and the checks.
    Collective(super::bench_fabric::CollectiveArgs),
    /// A fleet load generator: a coordinator here and N probes (real QUIC, own certificates,
    /// simulated devices) started at once in a second process; prints registration time, samples
    /// stored and lost, the coordinator's CPU and memory, and failed handshakes by cause.
    Fleet(super::bench_fleet::FleetArgs),
    /// The probe process of `bench fleet` (started by it, not by hand).
    #[command(hide = true)]
    FleetProbes(super::bench_fleet_probes::FleetProbesArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchBackend {
    /// cuda where the NVIDIA driver and a GPU are there, else cpu.
    Auto,
    /// The CPUs (fp32 only).
    Cpu,
    /// NVIDIA GPUs.
    Cuda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadPattern {
    /// Full load for the whole time.
    Steady,
    /// Full load for half of each --period-ms, no load for the other half.
    Square,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchKernel {
    /// Matrix multiplication (GFLOP/s).
    Gemm,
    /// Device-memory copies (GB/s read + written; cuda only).
    MemoryBandwidth,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 done and every result check clean, 1 error, 4 the cuda \
backend cannot run here (CUDA or NVML libraries missing, driver not loaded, or no GPU), 5 a \
result check found wrong elements."
)]
pub struct GemmArgs {
    /// Device backend.
    #[arg(long, value_enum, default_value_t = BenchBackend::Auto)]
    backend: BenchBackend,
    /// What the GEMMs multiply: bf16, fp16, fp32 or tf32 [default: bf16 on cuda; the cpu backend
    /// does fp32 only].
    #[arg(long)]
    dtype: Option<Dtype>,
    /// How long to load, s.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Worker threads of the cpu backend (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// GPUs to load, as CUDA numbers them (e.g. 0,2,3; default: all).
    #[arg(long, value_delimiter = ',')]
    devices: Option<Vec<u16>>,
    /// Load pattern.
    #[arg(long, value_enum, default_value_t = LoadPattern::Steady)]
    pattern: LoadPattern,
    /// Period of the square wave, ms (full load for the first half, none for the second).
    #[arg(long, default_value_t = 100)]
    period_ms: u64,
    /// What the devices run.
    #[arg(long, value_enum, default_value_t = BenchKernel::Gemm)]
    kernel: BenchKernel,
    /// Matrix order of the cuda GEMMs (a multiple of 256; default: 8192 for the 16-bit types and
    /// tf32, 4096 for fp32, halved on GPUs too slow for it).
    #[arg(long)]
    matrix: Option<usize>,
    /// Sensor readings per second.
    #[arg(long, default_value_t = 20)]
    sample_hz: u32,
    /// Power and clock statistics leave out the first this many seconds (the ramp up).
    #[arg(long, default_value_t = 1.0)]
    settle_s: f64,
}

/// Dispatches a `bench` command. `bench gemm` blocks (it drives the backend from this thread):
/// it runs with the async runtime told so.
pub async fn run(c: BenchCommand) -> anyhow::Result<ExitCode> {
    match c {
        BenchCommand::Gemm(a) => tokio::task::block_in_place(|| gemm(a)),
        BenchCommand::Latency(a) => super::bench_fabric::latency(a).await,
        BenchCommand::Collective(a) => super::bench_fabric::collective(a).await,
        BenchCommand::Fleet(a) => super::bench_fleet::fleet(a).await,
        BenchCommand::FleetProbes(a) => super::bench_fleet_probes::run(a).await,
    }
}

/// What the sensors showed for one device over the run.
#[derive(Debug, Default, Clone)]
struct Stats {
    samples: u32,
    power_sum: f64,
    power_n: u32,
    peak_power: Option<f64>,
    high_sum: f64,
    high_n: u32,
    low_sum: f64,
    low_n: u32,
    max_gpu_temp: Option<f64>,
    max_mem_temp: Option<f64>,
    min_sm: Option<u32>,
    max_sm: Option<u32>,
    throttle: u64,
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

impl Stats {
    fn add(&mut self, r: &hallmark_workloads::DeviceReading, settled: bool, high: bool) {
        self.samples += 1;
        self.throttle |= r.throttle_reasons;
        self.max_gpu_temp = max_opt(self.max_gpu_temp, r.gpu_temp_c);
        self.max_mem_temp = max_opt(self.max_mem_temp, r.mem_temp_c);
        if !settled {
            return;
        }
        if let Some(p) = r.power_w {
            self.power_sum += p;
            self.power_n += 1;
            self.peak_power = max_opt(self.peak_power, Some(p));
            if high {
                self.high_sum += p;
                self.high_n += 1;
            } else {
                self.low_sum += p;
                self.low_n += 1;
            }
        }
        if let Some(c) = r.sm_clock_mhz {
            self.min_sm = Some(self.min_sm.map_or(c, |m| m.min(c)));
            self.max_sm = Some(self.max_sm.map_or(c, |m| m.max(c)));
        }
    }

    fn mean_power(&self) -> Option<f64> {
        (self.power_n > 0).then(|| self.power_sum / f64::from(self.power_n))
    }
}

/// Whether the square wave is in its full-load half at `t` since the start.
fn square_high(t: Duration, period: Duration) -> bool {
    let p = period.as_nanos();
    p < 2 || t.as_nanos() % p < p / 2
}

fn check_args(a: &GemmArgs) -> anyhow::Result<()> {
    if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 86_400.0) {
        bail!("--seconds {} must be within (0, 86400]", a.seconds);
    }
    if !(a.settle_s.is_finite() && a.settle_s >= 0.0) {
        bail!("--settle-s {} must be 0 or more", a.settle_s);
    }
    if !(1..=1000).contains(&a.sample_hz) {
        bail!("--sample-hz {} must be within 1..=1000", a.sample_hz);
    }
    if a.pattern == LoadPattern::Square && !(2..=3_600_000).contains(&a.period_ms) {
        bail!(
            "--period-ms {} must be within 2..=3600000 (2 ms: the shortest square wave the 5 ms \
             duty-cycle slices can still follow is about 10 ms)",
            a.period_ms
        );
    }
    Ok(())
}

fn gemm(a: GemmArgs) -> anyhow::Result<ExitCode> {
    check_args(&a)?;
    let real = match a.backend {
        BenchBackend::Auto => Real::Auto,
        BenchBackend::Cpu => Real::Cpu,
        BenchBackend::Cuda => Real::Cuda,
    };
    if real == Real::Cpu {
        if let Some(d) = a.dtype.filter(|d| *d != Dtype::Fp32) {
            bail!(
                "the cpu backend multiplies fp32 only, not {d}: use --dtype fp32 or --backend cuda"
            );
        }
        if a.kernel == BenchKernel::MemoryBandwidth {
            bail!("the memory-bandwidth kernel is for --backend cuda");
        }
        if a.matrix.is_some() {
            bail!("--matrix is for --backend cuda");
        }
    }
    let opts = OpenOptions {
        threads: a.threads,
        cuda: CudaConfig {
            dtype: a.dtype.unwrap_or_default(),
            devices: a.devices.clone(),
            matrix_order: a.matrix,
            ..CudaConfig::default()
        },
        sensors_only: false,
    };
    let (mut opened, auto) = match devices::open(real, &opts) {
        Ok(o) => o,
        Err(e) => return Ok(e.report()),
    };
    let is_cuda = opened.cuda().is_some();
    if !is_cuda {
        // auto may have fallen back to cpu: its checks apply now.
        if let Some(d) = a.dtype.filter(|d| *d != Dtype::Fp32) {
            bail!("the cpu backend multiplies fp32 only, not {d}");
        }
        if a.kernel == BenchKernel::MemoryBandwidth {
            bail!("the memory-bandwidth kernel is for --backend cuda");
        }
    }
    let dtype = if is_cuda {
        opts.cuda.dtype
    } else {
        Dtype::Fp32
    };
    let backend = opened.backend();
    if a.kernel == BenchKernel::MemoryBandwidth {
        backend.set_kernel(Kernel::MemoryBandwidth)?;
    }
    let count = backend.inventory().len();
    let u16_count = u16::try_from(count).unwrap_or(u16::MAX);
    let period = Duration::from_millis(a.period_ms);
    let total = Duration::from_secs_f64(a.seconds);
    let settle = Duration::from_secs_f64(a.settle_s.min(a.seconds / 2.0));
    let sample_every = Duration::from_secs_f64(1.0 / f64::from(a.sample_hz));
    let mut stats = vec![Stats::default(); count];
    let origin = Instant::now();
    let ns = |t: Instant| i64::try_from(t.duration_since(origin).as_nanos()).unwrap_or(i64::MAX);
    let set_all = |b: &mut dyn hallmark_workloads::Backend, level: f64| -> anyhow::Result<()> {
        for d in 0..u16_count {
            b.set_level(d, level)?;
        }
        Ok(())
    };
    backend.take_results(ns(origin));
    set_all(backend, 1.0)?;
    let mut high = true;
    let mut next_sample = origin;
    let mut next_toggle = origin + period / 2;
    let end = origin + total;
    let mut failure: Option<String> = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if a.pattern == LoadPattern::Square && now >= next_toggle {
            high = !high;
            set_all(backend, if high { 1.0 } else { 0.0 })?;
            next_toggle += period / 2;
            continue;
        }
        if now >= next_sample {
            match backend.sample(ns(now)) {
                Ok(NodeReading { devices, .. }) => {
                    let settled = now.duration_since(origin) >= settle;
                    let in_high = a.pattern == LoadPattern::Steady
                        || square_high(now.duration_since(origin), period);
                    for r in &devices {
                        if let Some(s) = stats.get_mut(usize::from(r.device)) {
                            s.add(r, settled, in_high);
                        }
                    }
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
            next_sample += sample_every;
            if next_sample < now {
                next_sample = now + sample_every;
            }
            continue;
        }
        let mut wake = next_sample.min(end);
        if a.pattern == LoadPattern::Square {
            wake = wake.min(next_toggle);
        }
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    // The load stops first and the devices get a moment to finish what is in flight and hand over
    // their last result checks (a GPU worker reads its wrong-element counter when it goes idle); the
    // rate is still taken over the loaded time, up to `ended`.
    let ended = Instant::now();
    let _ = set_all(backend, 0.0);
    std::thread::sleep(DRAIN);
    let results = backend.take_results(ns(ended));
    backend.stop_all();
    if let Some(f) = failure {
        bail!("the load stopped: {f}");
    }
    let inventory = backend.inventory().to_vec();
    let prepared = opened.cuda().map(|c| c.prepared());
    // Where each device's power was read from (the instant field or NVML's 1 s average).
    let sensors = opened.backend_ref().sensors();
    let power_source = |d: u16| {
        sensors
            .iter()
            .find(|s| s.name == "power" && s.device == Some(d))
            .map(|s| s.detail.clone())
    };
    let extended = opened.cuda().map(|c| c.extended_readings());
    let driver = opened.cuda().and_then(|c| c.driver_version());
    let backend_name = opened.backend_ref().name();

    let result_of =
        |d: usize| -> Option<&DeviceResult> { results.iter().find(|r| usize::from(r.device) == d) };
    let sum = |f: fn(&DeviceResult) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = results.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    };
    let total_gflops = sum(|r| r.gflops);
    let total_gbps = sum(|r| r.mem_bandwidth_gbps);
    let wrong: u64 = results.iter().map(|r| r.wrong_elements).sum();

    let devices_json: Vec<Value> = inventory
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let r = result_of(i);
            let s = stats.get(i).cloned().unwrap_or_default();
            let p = prepared.as_ref().and_then(|p| p.get(i).copied().flatten());
            let mean = s.mean_power();
            json!({
                "index": d.index,
                "model": d.model,
                "uuid": d.uuid,
                "gflops": r.and_then(|r| r.gflops),
                "tflops": r.and_then(|r| r.gflops).map(|g| g / 1000.0),
                "mem_bandwidth_gbps": r.and_then(|r| r.mem_bandwidth_gbps),
                "wrong_elements": r.map_or(0, |r| r.wrong_elements),
                "matrix_order": p.map(|p| p.order),
                "c_buffers": p.map(|p| p.c_buffers),
                "allocated_gib": p.map(|p| p.allocated_bytes as f64 / (1u64 << 30) as f64),
                "plain_alloc": p.map(|p| p.plain_alloc),
                "power_source": power_source(d.index),
                "power_limit_w": d.power_limit_w,
                "idle_power_w": d.idle_power_w,
                "mean_power_w": mean,
                "peak_power_w": s.peak_power,
                "mean_power_over_limit": mean.zip(d.power_limit_w).map(|(m, l)| m / l),
                "max_gpu_temp_c": s.max_gpu_temp,
                "max_mem_temp_c": s.max_mem_temp,
                "slowdown_temp_c": d.slowdown_temp_c,
                "shutdown_temp_c": d.shutdown_temp_c,
                "min_sm_clock_mhz": s.min_sm,
                "max_sm_clock_mhz": s.max_sm,
                "throttle_bits": s.throttle,
                "throttle_reasons": throttle::names(s.throttle),
                "power_brake_seen": s.throttle & throttle::HW_POWER_BRAKE != 0,
                "samples": s.samples,
                "square": (a.pattern == LoadPattern::Square).then(|| json!({
                    "high_mean_power_w": (s.high_n > 0).then(|| s.high_sum / f64::from(s.high_n)),
                    "low_mean_power_w": (s.low_n > 0).then(|| s.low_sum / f64::from(s.low_n)),
                })),
                "extended": extended.as_ref().and_then(|e| e.get(i)),
            })
        })
        .collect();
    let summary = json!({
        "backend": backend_name,
        "auto": auto.as_ref().map(|c| c.why.clone()),
        "driver_version": driver,
        "kernel": match a.kernel { BenchKernel::Gemm => "gemm", BenchKernel::MemoryBandwidth => "memory-bandwidth" },
        "dtype": dtype.name(),
        "pattern": match a.pattern { LoadPattern::Steady => "steady", LoadPattern::Square => "square" },
        "period_ms": (a.pattern == LoadPattern::Square).then_some(a.period_ms),
        "seconds": ended.duration_since(origin).as_secs_f64(),
        "settle_s": settle.as_secs_f64(),
        "gflops": total_gflops,
        "tflops": total_gflops.map(|g| g / 1000.0),
        "mem_bandwidth_gbps": total_gbps,
        "wrong_elements": wrong,
        "devices": devices_json,
    });
    if a.json {
        println!("{summary}");
    } else {
        print_text(&summary);
    }
    Ok(if wrong > 0 {
        ExitCode::from(EXIT_WRONG_ELEMENTS)
    } else {
        ExitCode::SUCCESS
    })
}

fn num(v: &Value, digits: usize, unit: &str) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}{unit}"))
}

/// The summary as text.
fn print_text(s: &Value) {
    let mut out = vec![format!(
        "bench gemm: {} backend, {} {} ({}), {:.1} s{}",
        s["backend"].as_str().unwrap_or("?"),
        s["kernel"].as_str().unwrap_or("?"),
        s["dtype"].as_str().unwrap_or("?"),
        s["pattern"].as_str().unwrap_or("?"),
        s["seconds"].as_f64().unwrap_or(0.0),
        s["driver_version"]
            .as_str()
            .map_or_else(String::new, |d| format!(", NVIDIA driver {d}")),
    )];
    let empty = Vec::new();
    for d in s["devices"].as_array().unwrap_or(&empty) {
        let throttles: Vec<&str> = d["throttle_reasons"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push(format!(
            "  {:>2} {}: {} GFLOP/s{}  wrong elements {}  n={}  power mean {} peak {} of limit {} \
             ({})  max temp GPU {} memory {}  SM {}–{} MHz  throttle {}",
            d["index"],
            d["model"].as_str().unwrap_or("?"),
            num(&d["gflops"], 1, ""),
            if d["mem_bandwidth_gbps"].is_null() {
                String::new()
            } else {
                format!("  {} GB/s", num(&d["mem_bandwidth_gbps"], 1, ""))
            },
            d["wrong_elements"],
            d["matrix_order"],
            num(&d["mean_power_w"], 1, " W"),
            num(&d["peak_power_w"], 1, " W"),
            num(&d["power_limit_w"], 0, " W"),
            d["mean_power_over_limit"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |x| format!("{:.1} %", 100.0 * x)),
            num(&d["max_gpu_temp_c"], 0, " °C"),
            num(&d["max_mem_temp_c"], 0, " °C"),
            d["min_sm_clock_mhz"],
            d["max_sm_clock_mhz"],
            if throttles.is_empty() {
                "none".to_string()
            } else {
                throttles.join("|")
            },
        ));
        if let Some(sq) = d["square"].as_object() {
            out.push(format!(
                "      square wave: mean power {} in the loaded halves, {} in the idle halves",
                num(&sq["high_mean_power_w"], 1, " W"),
                num(&sq["low_mean_power_w"], 1, " W"),
            ));
        }
    }
    out.push(format!(
        "  total: {} GFLOP/s ({} TFLOP/s){}, wrong elements {}",
        num(&s["gflops"], 1, ""),
        num(&s["tflops"], 2, ""),
        if s["mem_bandwidth_gbps"].is_null() {
            String::new()
        } else {
            format!(", {} GB/s", num(&s["mem_bandwidth_gbps"], 1, ""))
        },
        s["wrong_elements"],
    ));
    println!("{}", out.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_square_wave_is_loaded_in_the_first_half_of_each_period() {
        let p = Duration::from_millis(100);
        assert!(square_high(Duration::ZERO, p));
        assert!(square_high(Duration::from_millis(49), p));
        assert!(!square_high(Duration::from_millis(50), p));
        assert!(!square_high(Duration::from_millis(99), p));
        assert!(square_high(Duration::from_millis(100), p));
        assert!(square_high(Duration::from_millis(5), Duration::ZERO));
    }

    #[test]
    fn stats_keep_absent_power_absent_and_split_the_square_halves() {
        let mut s = Stats::default();
        let r = |p: Option<f64>| hallmark_workloads::DeviceReading {
            device: 0,
            power_w: p,
            energy_j: None,
            gpu_temp_c: Some(50.0),
            mem_temp_c: None,
            sm_clock_mhz: Some(1500),
            util_pct: None,
            throttle_reasons: throttle::SW_POWER_CAP,
            shut_down: false,
        };
        s.add(&r(Some(900.0)), false, true); // before settling: not in the power statistics
        assert_eq!(s.mean_power(), None);
        s.add(&r(Some(600.0)), true, true);
        s.add(&r(Some(200.0)), true, false);
        s.add(&r(None), true, true);
        assert_eq!(s.mean_power(), Some(400.0));
        assert_eq!(s.peak_power, Some(600.0));
        assert_eq!((s.high_n, s.low_n), (1, 1));
        assert_eq!(s.samples, 4);
        assert_eq!(s.max_gpu_temp, Some(50.0));
        assert_eq!(s.max_mem_temp, None);
        assert_eq!(s.throttle, throttle::SW_POWER_CAP);
    }
}
