//! [`CudaBackend`]: the NVIDIA GPU backend — cuBLAS GEMM burn, memory-bandwidth copies, targeted
//! power, corruption check and NVML sensors, driven through the [`crate::Backend`] trait.
//!
//! * The CUDA libraries (driver, cuBLAS, NVRTC) are loaded at run time by cudarc, NVML by
//!   nvml-wrapper: the binary builds and starts without them, and a host without them gets
//!   [`CudaError::Unavailable`] naming what is missing ([`libs`]), never a panic.
//! * One device per CUDA GPU (in CUDA's order, renumbered from 0 when `--devices` picks some),
//!   each matched to NVML by UUID for its sensors ([`crate::nvml`]).
//! * Per GPU a worker thread with its own context and stream ([`worker`], [`burn`]): GEMMs over
//!   buffers that fill most of the memory ([`sizing`]), in the chosen [`Dtype`], under a 5 ms duty
//!   cycle ([`duty`]), results compared on the GPU against a reference ([`kernels`]); or, with
//!   [`Kernel::MemoryBandwidth`], device-to-device copies.
//! * Device memory through [`alloc`]: cudarc's stream-ordered allocation, or plain `cuMemAlloc`
//!   where a sandboxed runtime refuses it.
//! * A control thread ([`monitor`]) runs the PI power controllers ([`control`]) at 25 Hz and counts
//!   XID errors.
//! * Collective phases through NCCL ([`nccl`]): a thread, stream and communicator per GPU beside
//!   the burn, one rank per GPU across the phase's members.
//! * The driver's, NVML's and cuBLAS's versions for the Hello ([`versions`]).
//!
//! The level set by [`crate::Backend::set_level`] is the ceiling of the duty: with a power target the
//! controller chooses the duty below it, and a level of 0 stops the device whatever the target.

pub mod alloc;
pub mod burn;
pub mod control;
pub mod discover;
mod driven;
pub mod dtype;
pub mod duty;
pub mod kernels;
pub mod libs;
pub mod monitor;
pub mod nccl;
pub mod sizing;
pub mod versions;
pub mod worker;

pub use discover::{availability, format_uuid, library_report, CudaDevice};
pub use driven::{gflops, power_holdable, rate};
pub use dtype::Dtype;
pub use worker::{Prepared, WorkerState};

use crate::backend::{BackendError, Kernel, SensorStatus};
use crate::nvml::{map, ExtendedReading, NvmlSensors};
use discover::{compile_compare_kernel, cuda_devices, open_driver_and_nvml, select};
use hallmark_protocol::{DeviceInfo, DeviceKind};
use monitor::{ControlledGpu, MonitorShared};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use worker::{DeviceShared, WorkerConfig};

/// How long dropping the backend waits for its threads.
pub const JOIN_WAIT: Duration = Duration::from_secs(5);
/// How long [`CudaBackend::new`] waits for every worker to allocate and calibrate.
pub const PREPARE_WAIT: Duration = Duration::from_secs(180);

/// Why the cuda backend cannot start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CudaError {
    /// Missing libraries, no driver, or no GPU: this host cannot run the cuda backend.
    #[error("{0}")]
    Unavailable(String),
    /// Options that do not fit this host.
    #[error("cuda backend: {0}")]
    Config(String),
    /// A GPU failed while the backend started.
    #[error("GPU {device} (CUDA device {ordinal}): {message}")]
    Device {
        device: u16,
        ordinal: usize,
        message: String,
    },
}

impl From<CudaError> for BackendError {
    fn from(e: CudaError) -> Self {
        match e {
            CudaError::Config(m) => BackendError::Config(m),
            other => BackendError::Unsupported(other.to_string()),
        }
    }
}

/// How the backend burns.
#[derive(Debug, Clone, PartialEq)]
pub struct CudaConfig {
    pub dtype: Dtype,
    /// CUDA ordinals to use, in this order (default: all).
    pub devices: Option<Vec<u16>>,
    /// A fixed matrix order (multiple of 256), or `None` for the dtype's default, halved on slow
    /// GPUs.
    pub matrix_order: Option<usize>,
    /// Most C buffers per GPU, the reference included.
    pub max_buffers: usize,
}

impl Default for CudaConfig {
    fn default() -> Self {
        CudaConfig {
            dtype: Dtype::default(),
            devices: None,
            matrix_order: None,
            max_buffers: sizing::MAX_C_BUFFERS,
        }
    }
}

/// A device's cumulative counters and the FLOPs of one of its GEMMs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counters {
    gemms: u64,
    flop_per_gemm: u64,
    bytes: u64,
    wrong: u64,
}

/// One GPU of the backend.
#[derive(Debug)]
struct Gpu {
    cuda: CudaDevice,
    nvml_index: Option<u32>,
    shared: Arc<DeviceShared>,
    energy_origin_mj: Option<u64>,
}

/// The cuda backend. Dropping it stops and joins its threads (waiting at most [`JOIN_WAIT`]).
#[derive(Debug)]
pub struct CudaBackend {
    inventory: Vec<DeviceInfo>,
    gpus: Vec<Gpu>,
    nvml: NvmlSensors,
    workers: Vec<JoinHandle<()>>,
    monitor: Option<JoinHandle<()>>,
    monitor_shared: Arc<MonitorShared>,
    stop: Arc<AtomicBool>,
    levels: Vec<f64>,
    kernel: Kernel,
    /// Kernels run since the previous `take_results` (GEMM, memory bandwidth).
    kernels_used: [bool; 2],
    results_mark: Option<(i64, Vec<Counters>)>,
    sensors: Vec<SensorStatus>,
    load: bool,
    dtype: Dtype,
    /// Collective phases through NCCL ([`nccl`]).
    nccl: nccl::NcclState,
    /// Driver, library and kernel versions, read once at start ([`versions`]).
    software: Vec<hallmark_protocol::SoftwareVersion>,
}

impl CudaBackend {
    /// Starts the backend: checks the libraries, finds the GPUs, starts a worker per GPU and
    /// waits until each has allocated its buffers and calibrated (at most [`PREPARE_WAIT`]), all at
    /// level 0.
    pub fn new(cfg: &CudaConfig) -> Result<Self, CudaError> {
        Self::start(cfg, true)
    }

    /// Inventory and sensors only, no load (for `--list-devices`): needs the driver library and
    /// NVML, not cuBLAS or NVRTC; allocates nothing. Setting a level above 0 is refused.
    pub fn sensors_only(cfg: &CudaConfig) -> Result<Self, CudaError> {
        Self::start(cfg, false)
    }

    fn start(cfg: &CudaConfig, load: bool) -> Result<Self, CudaError> {
        if let Some(n) = cfg.matrix_order {
            sizing::check_order(n).map_err(CudaError::Config)?;
        }
        if cfg.max_buffers < 2 {
            return Err(CudaError::Config(
                "at least 2 C buffers are needed (the reference and one checked)".into(),
            ));
        }
        let nvml = open_driver_and_nvml(load)?;
        let all = cuda_devices()?;
        if all.is_empty() {
            return Err(CudaError::Unavailable(
                "the CUDA driver sees no GPU; check CUDA_VISIBLE_DEVICES".into(),
            ));
        }
        let chosen = select(&all, cfg.devices.as_deref())?;
        let ptx = if load {
            Some(compile_compare_kernel()?)
        } else {
            None
        };
        let gpus: Vec<Gpu> = chosen
            .into_iter()
            .map(|cuda| {
                let nvml_index = nvml.index_of_uuid(&cuda.uuid);
                Gpu {
                    energy_origin_mj: nvml_index.and_then(|i| nvml.energy_mj(i)),
                    nvml_index,
                    shared: Arc::new(DeviceShared::default()),
                    cuda,
                }
            })
            .collect();
        let inventory = gpus
            .iter()
            .zip(0u16..)
            .map(|(g, index)| device_info(&nvml, g, index))
            .collect::<Vec<_>>();
        let stop = Arc::new(AtomicBool::new(false));
        let monitor_shared = Arc::new(MonitorShared::new(gpus.len()));
        let mut backend = CudaBackend {
            levels: vec![0.0; gpus.len()],
            inventory,
            gpus,
            nvml,
            workers: Vec::new(),
            monitor: None,
            monitor_shared,
            stop,
            kernel: Kernel::Gemm,
            kernels_used: [true, false],
            results_mark: None,
            sensors: Vec::new(),
            load,
            dtype: cfg.dtype,
            nccl: nccl::NcclState::default(),
            software: Vec::new(),
        };
        backend.software = versions::read(&backend.nvml);
        if let Some(ptx) = ptx {
            for (g, index) in backend.gpus.iter().zip(0u16..) {
                let wcfg = WorkerConfig {
                    ordinal: g.cuda.ordinal,
                    dtype: cfg.dtype,
                    order: cfg.matrix_order,
                    max_c: cfg.max_buffers,
                };
                let (s, stop, p) = (
                    Arc::clone(&g.shared),
                    Arc::clone(&backend.stop),
                    ptx.clone(),
                );
                let spawned = thread::Builder::new()
                    .name(format!("cuda-burn-{index}"))
                    .spawn(move || worker::run(s, stop, wcfg, p));
                match spawned {
                    Ok(h) => backend.workers.push(h),
                    // Dropping `backend` stops the workers already started.
                    Err(e) => {
                        return Err(CudaError::Config(format!(
                            "starting the worker of GPU {index}: {e}"
                        )))
                    }
                }
            }
        }
        backend.start_monitor()?;
        if load {
            backend.wait_prepared()?;
        }
        backend.sensors = backend.probe_sensors();
        Ok(backend)
    }

    fn start_monitor(&mut self) -> Result<(), CudaError> {
        let gpus: Vec<ControlledGpu> = self
            .gpus
            .iter()
            .enumerate()
            .map(|(i, g)| ControlledGpu {
                shared: Arc::clone(&g.shared),
                nvml_index: g.nvml_index,
                idle_w: self.inventory.get(i).and_then(|d| d.idle_power_w),
                limit_w: self.inventory.get(i).and_then(|d| d.power_limit_w),
                worker: self.workers.get(i).map(|h| h.thread().clone()),
            })
            .collect();
        let (sensors, shared, stop) = (
            self.nvml.clone(),
            Arc::clone(&self.monitor_shared),
            Arc::clone(&self.stop),
        );
        let handle = thread::Builder::new()
            .name("cuda-control".into())
            .spawn(move || monitor::run(sensors, gpus, shared, stop))
            .map_err(|e| CudaError::Config(format!("starting the control thread: {e}")))?;
        self.monitor = Some(handle);
        // Let it register the XID watch, so that `sensors()` can say whether it works.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.monitor_shared.started.load(Ordering::Acquire) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    fn wait_prepared(&self) -> Result<(), CudaError> {
        let deadline = Instant::now() + PREPARE_WAIT;
        loop {
            let mut all_ready = true;
            for (g, device) in self.gpus.iter().zip(0u16..) {
                match g.shared.state() {
                    WorkerState::Ready(_) => {}
                    WorkerState::Preparing => all_ready = false,
                    WorkerState::Failed(message) => {
                        return Err(CudaError::Device {
                            device,
                            ordinal: g.cuda.ordinal,
                            message,
                        })
                    }
                    WorkerState::Ended => {
                        return Err(CudaError::Device {
                            device,
                            ordinal: g.cuda.ordinal,
                            message: "the worker ended while preparing".into(),
                        })
                    }
                }
            }
            if all_ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CudaError::Config(format!(
                    "the GPUs were not ready after {} s (allocating and calibrating)",
                    PREPARE_WAIT.as_secs()
                )));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn probe_sensors(&self) -> Vec<SensorStatus> {
        self.gpus
            .iter()
            .zip(0u16..)
            .flat_map(|(g, device)| match g.nvml_index {
                Some(i) => {
                    let xid = self.monitor_shared.xid_status(usize::from(device));
                    self.nvml.sensors(i, device, xid)
                }
                None => map::absent_everywhere(
                    &[device],
                    &format!("NVML has no GPU with UUID {}", g.cuda.uuid),
                ),
            })
            .collect()
    }

    /// The element type of the burn.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// CUDA's view of each device, in the backend's order.
    pub fn cuda_devices(&self) -> Vec<CudaDevice> {
        self.gpus.iter().map(|g| g.cuda.clone()).collect()
    }

    /// What each worker settled on (matrix order, buffers); `None` before it is ready or in the
    /// sensors-only mode.
    pub fn prepared(&self) -> Vec<Option<Prepared>> {
        self.gpus
            .iter()
            .map(|g| match g.shared.state() {
                WorkerState::Ready(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// The readings a telemetry sample does not carry (ECC, PCIe, NVLink, XID, memory clock), per
    /// device. Takes about 20 ms per GPU.
    pub fn extended_readings(&self) -> Vec<ExtendedReading> {
        self.gpus
            .iter()
            .enumerate()
            .map(|(d, g)| match g.nvml_index {
                Some(i) => {
                    let xid = self
                        .monitor_shared
                        .xid_status(d)
                        .ok()
                        .map(|()| self.monitor_shared.xid(d));
                    self.nvml.extended(i, xid)
                }
                None => ExtendedReading::default(),
            })
            .collect()
    }

    /// What [`crate::Backend::software`] reports.
    pub(crate) fn software_versions(&self) -> &[hallmark_protocol::SoftwareVersion] {
        &self.software
    }

    /// The NVIDIA driver's version.
    pub fn driver_version(&self) -> Option<String> {
        self.nvml.driver_version()
    }

    fn wake(&self, device: Option<usize>) {
        for (i, h) in self.workers.iter().enumerate() {
            if device.is_none_or(|d| d == i) {
                h.thread().unpark();
            }
        }
    }

    fn counters(&self) -> Vec<Counters> {
        self.gpus
            .iter()
            .map(|g| Counters {
                gemms: g.shared.gemms.load(Ordering::Relaxed),
                flop_per_gemm: g.shared.flop_per_gemm.load(Ordering::Relaxed),
                bytes: g.shared.bytes.load(Ordering::Relaxed),
                wrong: g.shared.wrong.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn device(&self, device: u16) -> Result<&Gpu, BackendError> {
        self.gpus
            .get(usize::from(device))
            .ok_or(BackendError::NoSuchDevice {
                device,
                count: self.gpus.len(),
            })
    }
}

/// The inventory entry of `g`: NVML's identity and limits, CUDA's where NVML has none, and the
/// power measured now as the idle power.
fn device_info(nvml: &NvmlSensors, g: &Gpu, index: u16) -> DeviceInfo {
    let id = g.nvml_index.map(|i| nvml.identity(i)).unwrap_or_default();
    DeviceInfo {
        index,
        kind: DeviceKind::Gpu,
        model: id.name.unwrap_or_else(|| g.cuda.name.clone()),
        uuid: id.uuid.unwrap_or_else(|| g.cuda.uuid.clone()),
        serial: id.serial,
        memory_bytes: id
            .memory_bytes
            .or((g.cuda.memory_bytes > 0).then_some(g.cuda.memory_bytes)),
        power_limit_w: id.power_limit_w,
        idle_power_w: g.nvml_index.and_then(|i| nvml.power_w(i)),
        slowdown_temp_c: id.slowdown_temp_c,
        shutdown_temp_c: id.shutdown_temp_c,
        max_operating_temp_c: id.max_operating_temp_c,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_first_run;
