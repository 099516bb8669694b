//! [`CpuBackend`]: a real CPU burn driven through the [`Backend`] trait.
//!
//! One device per CPU socket ([`topology`]). Worker threads (default: one per available core) each
//! run single-threaded f32 GEMM on fixed `n × n` matrices ([`DEFAULT_N`] = 512, 3 MiB for A, B and C,
//! cache-resident) in a loop under a 10 ms duty cycle set by their socket's level, and count the
//! floating-point work done (2·n³ per GEMM) and the wrong elements the result check finds
//! ([`worker`]). The kernel is the `gemm` crate (faer's), which dispatches at run time to the CPU's
//! widest SIMD (AVX2+FMA here; AVX-512 kernels need its `x86-v4` feature).
//!
//! # Sensors
//! Each socket device is read through [`HostSensors`] ([`crate::host`]) at every
//! [`Backend::sample`], which never sleeps:
//! * `power_w` is RAPL package power **plus DRAM power** where the package has a readable `dram`
//!   zone, the package alone where it has none (`sensors()` says which for each device); `None`
//!   where RAPL cannot be read (no powercap tree, as in VMs, or root-only counters).
//! * `energy_j` is the RAPL energy on the same terms, accumulated since the backend was made.
//! * `gpu_temp_c` (the device's main temperature) is, for a CPU socket, its **package
//!   temperature** from hwmon (`coretemp Package id N`; AMD's node-wide `k10temp` on a one-socket
//!   node); `mem_temp_c` and `sm_clock_mhz` are `None`.
//! * `util_pct` is the measured utilisation of the socket's logical CPUs (sysinfo, refreshed at most
//!   every [`crate::host::system::REFRESH_INTERVAL`]; `None` in the first such interval, before two
//!   readings exist). Only where sysinfo cannot read utilisation at all is it the applied load
//!   level, and `sensors()` says so.
//! * `node_power_w` stays `None`: RAPL measures packages and memory, not the node at the wall.

pub mod topology;
pub mod worker;

use crate::backend::{
    check_level, Backend, BackendError, DeviceReading, NodeReading, SensorStatus,
};
use crate::host::rapl::{is_dram, is_package};
use crate::host::{HostOptions, HostSensors};
use hallmark_protocol::{DeviceInfo, DeviceResult};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use worker::{DeviceShared, Shared};

/// Default matrix order.
pub const DEFAULT_N: usize = 512;
/// How long dropping the backend waits for its workers to end.
pub const JOIN_WAIT: Duration = Duration::from_secs(2);

/// The CPU burn backend. Dropping it stops and joins its workers (waiting at most [`JOIN_WAIT`]).
#[derive(Debug)]
pub struct CpuBackend {
    inventory: Vec<DeviceInfo>,
    shared: Arc<Shared>,
    /// Each worker and the device it loads.
    workers: Vec<(JoinHandle<()>, u16)>,
    levels: Vec<f64>,
    /// The instant and each device's cumulative (flop, wrong) at the previous `take_results`.
    results_mark: Option<(i64, Vec<(u64, u64)>)>,
    /// RAPL, utilisation and temperatures, one socket per device.
    host: HostSensors,
    /// The kernel release and CPU microcode, read once at start ([`crate::software::host`]).
    software: Vec<hallmark_protocol::SoftwareVersion>,
}

impl CpuBackend {
    /// Starts `threads` workers (default: [`thread::available_parallelism`]) on [`DEFAULT_N`]
    /// matrices, all at level 0 (parked).
    pub fn new(threads: Option<usize>) -> Result<Self, BackendError> {
        CpuBackend::with_matrix_order(threads, DEFAULT_N)
    }

    /// As [`CpuBackend::new`] with `n × n` matrices (1..=4096).
    pub fn with_matrix_order(threads: Option<usize>, n: usize) -> Result<Self, BackendError> {
        CpuBackend::with_options(threads, n, HostOptions::default())
    }

    /// As [`CpuBackend::with_matrix_order`], reading the host sensors as `host` says (another
    /// powercap root, another clock).
    pub fn with_options(
        threads: Option<usize>,
        n: usize,
        host: HostOptions,
    ) -> Result<Self, BackendError> {
        if !(1..=4096).contains(&n) {
            return Err(BackendError::Config(format!(
                "matrix order {n} is outside 1..=4096"
            )));
        }
        let threads = match threads {
            Some(0) => return Err(BackendError::Config("0 worker threads".into())),
            Some(t) => t,
            None => thread::available_parallelism().map_or(1, |p| p.get()),
        };
        let cpus = topology::cpu_packages(Path::new("/sys/devices/system/cpu"));
        let sockets = topology::sockets(&cpus);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok();
        let software =
            crate::software::host(Path::new(crate::software::OSRELEASE), cpuinfo.as_deref());
        let cpuinfo = cpuinfo.unwrap_or_default();
        let inventory = topology::inventory(&sockets, &topology::model_name(&cpuinfo));
        let shared = Arc::new(Shared {
            devices: sockets.iter().map(|_| DeviceShared::default()).collect(),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        });
        let mut backend = CpuBackend {
            inventory,
            shared: Arc::clone(&shared),
            workers: Vec::with_capacity(threads),
            levels: vec![0.0; sockets.len()],
            results_mark: None,
            host: HostSensors::new(sockets.clone(), cpus.clone(), host),
            software,
        };
        for w in 0..threads {
            let device = topology::worker_device(w, &cpus, &sockets);
            let s = Arc::clone(&shared);
            let spawned = thread::Builder::new()
                .name(format!("cpu-burn-{w}"))
                .spawn(move || {
                    let body = || worker::run(Arc::clone(&s), usize::from(device), n, w as u64);
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
                        s.failed.store(true, Ordering::Relaxed);
                    }
                });
            match spawned {
                Ok(handle) => backend.workers.push((handle, device)),
                // Dropping `backend` stops the workers already started.
                Err(e) => return Err(BackendError::Config(format!("starting worker {w}: {e}"))),
            }
        }
        Ok(backend)
    }

    /// Worker threads running.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Test hook: the next check of one of `device`'s workers runs against a spoilt reference.
    #[cfg(test)]
    fn corrupt_reference(&self, device: u16) {
        if let Some(d) = self.shared.devices.get(usize::from(device)) {
            d.corrupt_reference.store(true, Ordering::Relaxed);
        }
    }

    fn wake(&self, device: Option<u16>) {
        for (handle, d) in &self.workers {
            if device.is_none_or(|x| x == *d) {
                handle.thread().unpark();
            }
        }
    }

    fn counters(&self) -> Vec<(u64, u64)> {
        self.shared
            .devices
            .iter()
            .map(|d| {
                (
                    d.flop.load(Ordering::Relaxed),
                    d.wrong.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn software(&self) -> Vec<hallmark_protocol::SoftwareVersion> {
        self.software.clone()
    }

    fn inventory(&self) -> &[DeviceInfo] {
        &self.inventory
    }

    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError> {
        let count = self.levels.len();
        let level = check_level(device, level)?;
        let (Some(slot), Some(shared)) = (
            self.levels.get_mut(usize::from(device)),
            self.shared.devices.get(usize::from(device)),
        ) else {
            return Err(BackendError::NoSuchDevice { device, count });
        };
        *slot = level;
        shared.set_level(level);
        self.wake(Some(device));
        Ok(())
    }

    /// Reads the host sensors (see the module docs for what each field is); what cannot be read is
    /// `None`. Never sleeps. Fails if a worker has ended abnormally.
    fn sample(&mut self, _now_ns: i64) -> Result<NodeReading, BackendError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(BackendError::Read(
                "a CPU burn worker ended abnormally".into(),
            ));
        }
        let host = self.host.read();
        let devices = self
            .levels
            .iter()
            .zip(0u16..)
            .map(|(&level, device)| {
                let i = usize::from(device);
                let socket = host.per_socket.get(i);
                let util_pct = match self.host.util_unreadable(i) {
                    Some(_) => Some(level * 100.0),
                    None => socket.and_then(|s| s.util_pct),
                };
                DeviceReading {
                    device,
                    power_w: socket.and_then(|s| s.power_w()),
                    energy_j: socket.and_then(|s| s.energy_j()),
                    gpu_temp_c: socket.and_then(|s| s.temp_c),
                    mem_temp_c: None,
                    sm_clock_mhz: None,
                    util_pct,
                    throttle_reasons: 0,
                    shut_down: false,
                }
            })
            .collect();
        Ok(NodeReading {
            devices,
            node_power_w: None,
        })
    }

    /// The host sensors' statuses, and per device what its power and utilisation are made of.
    fn sensors(&self) -> Vec<SensorStatus> {
        let mut out = self.host.sensors();
        let rapl = self.host.rapl();
        for (i, &p) in self.host.sockets().iter().enumerate() {
            let device = u16::try_from(i).ok();
            let (packages, drams) = (
                rapl.package_sum(p, is_package).2,
                rapl.package_sum(p, is_dram).2,
            );
            let (available, detail) = match (packages, drams) {
                (0, _) => (
                    false,
                    format!("absent: no readable RAPL zone for package-{p} (see its RAPL entries)"),
                ),
                (_, 0) => (
                    true,
                    format!("RAPL package-{p} alone (no readable dram zone)"),
                ),
                _ => (true, format!("RAPL package-{p} + dram")),
            };
            out.push(SensorStatus {
                name: "power and energy".into(),
                device,
                available,
                detail,
            });
            let (available, detail) = match self.host.util_unreadable(i) {
                Some(why) => (
                    false,
                    format!("not measured: the applied load level is reported instead ({why})"),
                ),
                None => (
                    true,
                    "measured: the socket's CPU utilisation from sysinfo".to_string(),
                ),
            };
            out.push(SensorStatus {
                name: "utilisation".into(),
                device,
                available,
                detail,
            });
        }
        out
    }

    fn stop_all(&mut self) {
        for (slot, shared) in self.levels.iter_mut().zip(&self.shared.devices) {
            *slot = 0.0;
            shared.set_level(0.0);
        }
        self.wake(None);
    }

    /// Achieved GFLOP/s (GEMM work finished since the previous call over the probe-clock time
    /// between the calls) and the wrong elements found since the previous call. The first call
    /// starts counting and returns nothing, as does an instant not after the previous one.
    fn take_results(&mut self, now_ns: i64) -> Vec<DeviceResult> {
        let counters = self.counters();
        let previous = self.results_mark.replace((now_ns, counters.clone()));
        let Some((since, before)) = previous else {
            return Vec::new();
        };
        let seconds = now_ns.saturating_sub(since) as f64 / 1e9;
        if seconds <= 0.0 {
            return Vec::new();
        }
        counters
            .iter()
            .zip(before)
            .zip(0u16..)
            .map(|((&(flop, wrong), (flop0, wrong0)), device)| DeviceResult {
                device,
                gflops: Some(flop.saturating_sub(flop0) as f64 / seconds / 1e9),
                mem_bandwidth_gbps: None,
                wrong_elements: wrong.saturating_sub(wrong0),
            })
            .collect()
    }
}

impl Drop for CpuBackend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.wake(None);
        let deadline = Instant::now() + JOIN_WAIT;
        while Instant::now() < deadline && !self.workers.iter().all(|(h, _)| h.is_finished()) {
            thread::sleep(Duration::from_millis(1));
        }
        for (handle, _) in self.workers.drain(..) {
            if handle.is_finished() {
                let _ = handle.join();
            }
            // A worker still running past the deadline is left to end on its own (detached).
        }
    }
}

#[cfg(test)]
mod tests;
