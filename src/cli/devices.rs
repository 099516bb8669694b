//! Opening a real device backend by name (`cpu`, `cuda`, or `auto`: cuda where the NVIDIA driver
//! and a GPU are there, else cpu) for `hallmark probe` and `hallmark bench`, and
//! `hallmark probe --list-devices`: the inventory, the sensor table and one reading, as text or
//! one JSON object.

use anyhow::Context;
use hallmark_protocol::DeviceInfo;
use hallmark_workloads::cpu::CpuBackend;
use hallmark_workloads::cuda::libs::Library;
use hallmark_workloads::cuda::{self, CudaBackend, CudaConfig, CudaError, Dtype};
use hallmark_workloads::{Backend, DeviceReading, SensorStatus};
use serde_json::{json, Value};
use std::process::ExitCode;
use tracing::info;

/// Exit code when the cuda backend cannot run here: the CUDA or NVML libraries are missing, the
/// driver does not initialise, or there is no GPU.
pub const EXIT_NO_CUDA: u8 = 4;

/// A real backend to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Real {
    Cpu,
    Cuda,
    /// cuda where [`cuda::availability`] says so, else cpu.
    Auto,
}

/// What to open it with.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// cpu: worker threads (default: every core).
    pub threads: Option<usize>,
    /// cuda: what the burn multiplies and which GPUs (CUDA ordinals) it loads.
    pub cuda: CudaConfig,
    /// cuda: inventory and sensors only, nothing allocated (`--list-devices`).
    pub sensors_only: bool,
}

/// A backend opened, keeping the cuda backend's own type for what only it reports.
pub enum Opened {
    Cpu(Box<CpuBackend>),
    Cuda(Box<CudaBackend>),
}

impl Opened {
    pub fn backend(&mut self) -> &mut dyn Backend {
        match self {
            Opened::Cpu(b) => b.as_mut(),
            Opened::Cuda(b) => b.as_mut(),
        }
    }

    pub fn backend_ref(&self) -> &dyn Backend {
        match self {
            Opened::Cpu(b) => b.as_ref(),
            Opened::Cuda(b) => b.as_ref(),
        }
    }

    pub fn cuda(&self) -> Option<&CudaBackend> {
        match self {
            Opened::Cuda(b) => Some(b),
            Opened::Cpu(_) => None,
        }
    }

    pub fn into_box(self) -> Box<dyn Backend> {
        match self {
            Opened::Cpu(b) => b,
            Opened::Cuda(b) => b,
        }
    }
}

/// Why a backend did not open.
#[derive(Debug)]
pub enum OpenError {
    /// The cuda backend cannot run on this host ([`EXIT_NO_CUDA`]).
    NoCuda(CudaError),
    Other(anyhow::Error),
}

impl OpenError {
    /// Prints the error and gives the exit code for it.
    pub fn report(self) -> ExitCode {
        match self {
            OpenError::NoCuda(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_NO_CUDA)
            }
            OpenError::Other(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

/// How `auto` was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoChoice {
    pub chose: Real,
    pub why: String,
}

/// Decides `auto`: cuda where the driver library and NVML load and the driver sees a GPU, else
/// cpu. Logs which and why.
pub fn resolve_auto() -> AutoChoice {
    let choice = match cuda::availability() {
        Ok(n) => AutoChoice {
            chose: Real::Cuda,
            why: format!("the NVIDIA driver and NVML load and {n} GPU(s) are visible"),
        },
        Err(e) => AutoChoice {
            chose: Real::Cpu,
            why: format!("no usable NVIDIA GPU: {}", first_line(&e.to_string())),
        },
    };
    let name = if choice.chose == Real::Cuda {
        "cuda"
    } else {
        "cpu"
    };
    info!("backend auto: {name}, because {}", choice.why);
    choice
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Opens `kind` (`Auto` resolved first). The second value says how `auto` was decided.
pub fn open(kind: Real, opts: &OpenOptions) -> Result<(Opened, Option<AutoChoice>), OpenError> {
    let (kind, auto) = match kind {
        Real::Auto => {
            let c = resolve_auto();
            (c.chose, Some(c))
        }
        k => (k, None),
    };
    let mut opts = opts.clone();
    if auto.is_some() && kind == Real::Cuda && opts.threads.take().is_some() {
        info!("--threads is for the cpu backend: ignored, auto chose cuda");
    }
    let opts = &opts;
    let opened = match kind {
        Real::Cpu => {
            if opts.cuda.devices.is_some() {
                let why = auto
                    .as_ref()
                    .map_or_else(String::new, |a| format!(" (auto chose cpu: {})", a.why));
                return Err(OpenError::Other(anyhow::anyhow!(
                    "--devices picks GPUs: it is for the cuda backend{why}; the cpu backend loads \
                     every socket and --threads sets its workers"
                )));
            }
            let b = CpuBackend::new(opts.threads)
                .context("starting the cpu backend")
                .map_err(OpenError::Other)?;
            Opened::Cpu(Box::new(b))
        }
        Real::Cuda | Real::Auto => {
            if opts.threads.is_some() {
                return Err(OpenError::Other(anyhow::anyhow!(
                    "--threads is for the cpu backend"
                )));
            }
            let started = if opts.sensors_only {
                CudaBackend::sensors_only(&opts.cuda)
            } else {
                CudaBackend::new(&opts.cuda)
            };
            match started {
                Ok(b) => {
                    if !opts.sensors_only {
                        for (d, p) in b.prepared().iter().enumerate() {
                            if let Some(p) = p {
                                info!(
                                    "GPU {d}: {} GEMMs of order {}, {} C buffers, {:.1} GiB \
                                     allocated, {:.2} ms per GEMM",
                                    b.dtype(),
                                    p.order,
                                    p.c_buffers,
                                    p.allocated_bytes as f64 / (1u64 << 30) as f64,
                                    p.gemm_time.as_secs_f64() * 1e3
                                );
                            }
                        }
                    }
                    Opened::Cuda(Box::new(b))
                }
                Err(e @ CudaError::Unavailable(_)) => return Err(OpenError::NoCuda(e)),
                Err(e) => {
                    return Err(OpenError::Other(
                        anyhow::Error::new(e).context("starting the cuda backend"),
                    ))
                }
            }
        }
    };
    Ok((opened, auto))
}

/// A reading as JSON (absent values are `null`).
pub fn reading_json(r: &DeviceReading) -> Value {
    json!({
        "device": r.device,
        "power_w": r.power_w,
        "energy_j": r.energy_j,
        "gpu_temp_c": r.gpu_temp_c,
        "mem_temp_c": r.mem_temp_c,
        "sm_clock_mhz": r.sm_clock_mhz,
        "util_pct": r.util_pct,
        "throttle_bits": r.throttle_reasons,
        "throttle_reasons": hallmark_workloads::throttle::names(r.throttle_reasons),
        "shut_down": r.shut_down,
    })
}

/// `parts` joined by commas, or "none read".
fn listed_or_none(parts: &[String]) -> String {
    if parts.is_empty() {
        "none read".into()
    } else {
        parts.join(", ")
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>, unit: &str) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v}{unit}"))
}

fn opt1(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}{unit}"))
}

/// One line per device of an inventory.
pub fn inventory_lines(devices: &[DeviceInfo]) -> Vec<String> {
    devices
        .iter()
        .map(|d| {
            format!(
                "  {:>2}  {}  {}  serial {}  memory {}  power limit {}  idle {}  slowdown {}  \
                 shutdown {}  max operating {}",
                d.index,
                d.model,
                d.uuid,
                d.serial.as_deref().unwrap_or("-"),
                opt1(
                    d.memory_bytes.map(|b| b as f64 / (1u64 << 30) as f64),
                    " GiB"
                ),
                opt1(d.power_limit_w, " W"),
                opt1(d.idle_power_w, " W"),
                opt1(d.slowdown_temp_c, " °C"),
                opt1(d.shutdown_temp_c, " °C"),
                opt1(d.max_operating_temp_c, " °C"),
            )
        })
        .collect()
}

/// The sensor table as text.
pub fn sensor_lines(sensors: &[SensorStatus]) -> Vec<String> {
    let mut out = vec![format!(
        "  {:<6}  {:<26}  {:<9}  detail",
        "device", "sensor", "available"
    )];
    out.extend(sensors.iter().map(|s| {
        format!(
            "  {:<6}  {:<26}  {:<9}  {}",
            s.device
                .map_or_else(|| "node".to_string(), |d| d.to_string()),
            s.name,
            if s.available { "yes" } else { "no" },
            s.detail
        )
    }));
    out
}

fn reading_line(r: &DeviceReading) -> String {
    format!(
        "  {:>2}  power {}  energy {}  temperature {}  memory {}  SM {}  util {}  throttle {}",
        r.device,
        opt1(r.power_w, " W"),
        opt1(r.energy_j, " J"),
        opt1(r.gpu_temp_c, " °C"),
        opt1(r.mem_temp_c, " °C"),
        opt(r.sm_clock_mhz, " MHz"),
        opt1(r.util_pct, " %"),
        hallmark_workloads::throttle::describe(r.throttle_reasons)
    )
}

/// `probe --list-devices` on a real backend: prints the inventory, the software versions the
/// Hello would list, the sensors and one reading (text, or one JSON object with `json`).
pub fn list(kind: Real, threads: Option<usize>, dtype: Dtype, json: bool) -> ExitCode {
    let opts = OpenOptions {
        threads,
        cuda: CudaConfig {
            dtype,
            ..CudaConfig::default()
        },
        sensors_only: true,
    };
    let libraries: Option<Vec<(Library, bool)>> =
        matches!(kind, Real::Cuda | Real::Auto).then(cuda::library_report);
    let (mut opened, auto) = match open(kind, &opts) {
        Ok(o) => o,
        Err(e) => return e.report(),
    };
    let reading = opened.backend().sample(0);
    let b = opened.backend_ref();
    let (inventory, sensors, software) = (b.inventory().to_vec(), b.sensors(), b.software());
    let extended = opened.cuda().map(|c| c.extended_readings());
    let driver = opened.cuda().and_then(|c| c.driver_version());
    let name = opened.backend_ref().name();
    // Where the CUDA libraries were looked at: a warning if the driver library loaded, or the
    // one LD_LIBRARY_PATH finds first, is the CUDA toolkit's stub libcuda.so (for linking only,
    // with no driver behind it).
    let driver_warning = if libraries.is_some() {
        cuda::libs::driver_stub_warning()
    } else {
        None
    };
    if json {
        let mut v = json!({
            "backend": name,
            "devices": inventory,
            "sensors": sensors,
            "readings": match &reading {
                Ok(r) => r.devices.iter().map(reading_json).collect::<Vec<_>>(),
                Err(_) => Vec::new(),
            },
            "reading_error": reading.as_ref().err().map(|e| e.to_string()),
            "node_power_w": reading.as_ref().ok().and_then(|r| r.node_power_w),
            "software": software,
        });
        if let Some(o) = v.as_object_mut() {
            if let Some(a) = &auto {
                o.insert("auto".into(), json!({"chose": name, "why": a.why.clone()}));
            }
            if let Some(e) = &extended {
                o.insert("extended".into(), json!(e));
            }
            if let Some(d) = &driver {
                o.insert("driver_version".into(), json!(d));
            }
            if let Some(l) = &libraries {
                let libs: Vec<Value> = l
                    .iter()
                    .map(|(lib, present)| json!({"library": lib.file(), "present": present}))
                    .collect();
                o.insert("libraries".into(), Value::Array(libs));
            }
            if let Some(w) = &driver_warning {
                o.insert("driver_warning".into(), json!(w));
            }
        }
        println!("{v}");
        return ExitCode::SUCCESS;
    }
    let mut out = Vec::new();
    out.push(format!(
        "backend {name}{}{}: {} device(s)",
        auto.as_ref()
            .map_or_else(String::new, |a| format!(" (auto: {})", a.why)),
        driver
            .as_ref()
            .map_or_else(String::new, |d| format!(", NVIDIA driver {d}")),
        inventory.len()
    ));
    out.extend(inventory_lines(&inventory));
    let versions: Vec<String> = software
        .iter()
        .map(|s| format!("{} {}", s.name, s.version))
        .collect();
    out.push(format!("software: {}", listed_or_none(&versions)));
    out.push("sensors:".into());
    out.extend(sensor_lines(&sensors));
    match &reading {
        Ok(r) => {
            out.push("readings now:".into());
            out.extend(r.devices.iter().map(reading_line));
            if let Some(p) = r.node_power_w {
                out.push(format!("  node power {p:.1} W"));
            }
        }
        Err(e) => out.push(format!("readings: failed: {e}")),
    }
    if let Some(ext) = &extended {
        out.push("other counters:".into());
        for (i, e) in ext.iter().enumerate() {
            out.push(format!(
                "  {i:>2}  memory clock {}  ECC volatile corrected {} uncorrected {}  PCIe TX {} \
                 RX {}  replays {}  NVLink links {} TX {} RX {} CRC errors {} replays {} \
                 recoveries {}  XID events {} (last {})",
                opt(e.mem_clock_mhz, " MHz"),
                opt(e.ecc_corrected_volatile, ""),
                opt(e.ecc_uncorrected_volatile, ""),
                opt(e.pcie_tx_kib_s, " KiB/s"),
                opt(e.pcie_rx_kib_s, " KiB/s"),
                opt(e.pcie_replays, ""),
                opt(e.nvlink_links, ""),
                opt(e.nvlink_tx_kib, " KiB"),
                opt(e.nvlink_rx_kib, " KiB"),
                opt(e.nvlink_crc_errors, ""),
                opt(e.nvlink_replay_errors, ""),
                opt(e.nvlink_recovery_errors, ""),
                opt(e.xid_events, ""),
                opt(e.last_xid, ""),
            ));
        }
    }
    if let Some(l) = &libraries {
        let parts: Vec<String> = l
            .iter()
            .map(|(lib, p)| format!("{} {}", lib.file(), if *p { "yes" } else { "no" }))
            .collect();
        out.push(format!("libraries: {}", parts.join(", ")));
    }
    if let Some(w) = &driver_warning {
        out.push(w.clone());
    }
    println!("{}", out.join("\n"));
    ExitCode::SUCCESS
}
