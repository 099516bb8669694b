//! The interface between the probe's phase runner and whatever loads and measures the devices.
//!
//! A [`Backend`] is driven from one thread at the sample rate: the runner sets each device's load level
//! from the phase's pattern, then calls [`Backend::sample`] with the probe's clock, which brings the
//! backend up to that instant (the simulation integrates its physics there) and reads every device.
//! Sensors that cannot be read are `None`, never 0.

use hallmark_protocol::{CollectiveParams, DeviceInfo, DeviceResult, FabricReport, NcclSetup};
use std::time::{Duration, Instant};

pub use crate::throttle;

/// Why a backend could not do what it was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    #[error(
        "device {device} does not exist on this node (it has {count} devices, numbered from 0)"
    )]
    NoSuchDevice { device: u16, count: usize },
    #[error("load level {level} of device {device} is outside 0.0..=1.0")]
    BadLevel { device: u16, level: f64 },
    #[error("backend configuration: {0}")]
    Config(String),
    #[error("reading the devices failed: {0}")]
    Read(String),
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// One device's readings at one instant. Power in W, energy in J (since the backend started),
/// temperatures in °C, the SM clock in MHz, utilisation in percent (0–100).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceReading {
    pub device: u16,
    pub power_w: Option<f64>,
    pub energy_j: Option<f64>,
    pub gpu_temp_c: Option<f64>,
    pub mem_temp_c: Option<f64>,
    pub sm_clock_mhz: Option<u32>,
    pub util_pct: Option<f64>,
    /// NVML clock-event reason bits ([`throttle`]).
    pub throttle_reasons: u64,
    /// The device shut itself down (at its shutdown temperature) and carries no load any more.
    pub shut_down: bool,
}

impl DeviceReading {
    /// The telemetry sample the probe sends for this reading, stamped `t_ns` (coordinator clock);
    /// the wire carries power, temperatures and utilisation as `f32`.
    pub fn to_sample(&self, t_ns: i64) -> hallmark_protocol::Sample {
        hallmark_protocol::Sample {
            t_ns,
            device: self.device,
            power_w: self.power_w.map(|v| v as f32),
            energy_j: self.energy_j,
            gpu_temp_c: self.gpu_temp_c.map(|v| v as f32),
            mem_temp_c: self.mem_temp_c.map(|v| v as f32),
            sm_clock_mhz: self.sm_clock_mhz,
            util_pct: self.util_pct.map(|v| v as f32),
            throttle_reasons: self.throttle_reasons,
        }
    }
}

/// Every device of a node at one instant, and the node's power at the wall where known.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReading {
    pub devices: Vec<DeviceReading>,
    pub node_power_w: Option<f64>,
}

/// One sensor a backend reads, and whether it works on this machine (`--list-devices`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SensorStatus {
    /// What is measured, e.g. `power (instant)`, `energy counter`, `RAPL package-0`.
    pub name: String,
    /// The device it belongs to; `None` for a node-wide sensor.
    pub device: Option<u16>,
    pub available: bool,
    /// Where it is read from, or why it cannot be read.
    pub detail: String,
}

/// A collective phase through NCCL between the GPUs of its members (one rank per GPU).
#[derive(Debug, Clone)]
pub struct NcclJob {
    pub phase_id: u32,
    pub params: CollectiveParams,
    pub setup: NcclSetup,
    /// This node's position among the members: its ranks are `setup.ranks_of(member)`.
    pub member: usize,
    /// The phase's window on this process's monotonic clock; the work ends by `end`.
    pub start: Instant,
    pub end: Instant,
}

/// What a loaded device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Matrix multiplication (GEMM): the compute burn, the default.
    Gemm,
    /// Streaming copies through device memory: the memory-bandwidth workload.
    MemoryBandwidth,
}

/// Loads a node's devices and reads them. Blocking; called from one thread at the sample rate.
pub trait Backend: Send {
    /// The backend's name as the Hello reports it: `sim`, `cpu`, `cuda`.
    fn name(&self) -> &'static str;
    /// The devices this backend loads, indexed as [`Backend::set_level`] numbers them.
    fn inventory(&self) -> &[DeviceInfo];
    /// Applies a load level 0.0..=1.0 to one device (it holds until changed).
    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError>;
    /// Brings the backend to instant `now_ns` (the probe's clock, ns; monotonic) and reads every device.
    fn sample(&mut self, now_ns: i64) -> Result<NodeReading, BackendError>;
    /// Stops all load at once (safety interlock); levels go to 0.
    fn stop_all(&mut self);

    /// The sensors this backend reads and whether each works here. Absent sensors are reported in
    /// samples as `None`.
    fn sensors(&self) -> Vec<SensorStatus> {
        Vec::new()
    }

    /// Versions of the software under the load (driver, libraries, kernel) that this backend
    /// could read, for the Hello ([`crate::software`] names them). Nothing by default: a version
    /// that was not read is not listed.
    fn software(&self) -> Vec<hallmark_protocol::SoftwareVersion> {
        Vec::new()
    }

    /// Chooses what every device runs from now on (levels are kept). A backend that has only the
    /// GEMM burn refuses the others.
    fn set_kernel(&mut self, kernel: Kernel) -> Result<(), BackendError> {
        match kernel {
            Kernel::Gemm => Ok(()),
            other => Err(BackendError::Unsupported(format!(
                "the {} backend has no {other:?} kernel",
                self.name()
            ))),
        }
    }

    /// Makes an NCCL unique id (the 128 bytes of `ncclUniqueId`) for a collective phase whose first
    /// member this node is; its bootstrap must stay reachable until the phase. Backends without
    /// GPUs refuse.
    fn nccl_unique_id(&mut self) -> Result<Vec<u8>, BackendError> {
        Err(BackendError::Unsupported(format!(
            "the {} backend has no GPUs for NCCL",
            self.name()
        )))
    }

    /// Starts a collective phase through NCCL on this node's GPUs and returns at once; the work
    /// runs on the backend's own threads until it is done, `stop_nccl` is called or `job.end`.
    fn start_nccl(&mut self, job: NcclJob) -> Result<(), BackendError> {
        let _ = job;
        Err(BackendError::Unsupported(format!(
            "the {} backend has no GPUs for NCCL",
            self.name()
        )))
    }

    /// Asks the running NCCL phase to end now (abort, interlock).
    fn stop_nccl(&mut self) {}

    /// Whether the NCCL phase's threads have all ended (or none runs), so that
    /// [`Backend::finish_nccl`] with no wait returns its full report without blocking.
    fn nccl_done(&self) -> bool {
        true
    }

    /// The NCCL phase's results (one per op and size: the slowest of this node's GPUs), waiting at
    /// most `wait` for its threads; what could not be done is in the report's faults.
    fn finish_nccl(&mut self, wait: Duration) -> FabricReport {
        let _ = wait;
        FabricReport::default()
    }

    /// Holds `device` at `watts` by closed-loop control of its load level (`None`: back to open
    /// loop, the level set by [`Backend::set_level`]). A backend that cannot measure power fast
    /// enough to control it refuses.
    fn set_power_target(&mut self, device: u16, watts: Option<f64>) -> Result<(), BackendError> {
        let _ = device;
        match watts {
            None => Ok(()),
            Some(_) => Err(BackendError::Unsupported(format!(
                "the {} backend cannot hold a power target",
                self.name()
            ))),
        }
    }

    /// What the load achieved on each device since the previous call (or since the backend was
    /// made), up to `now_ns`: achieved GFLOP/s and the result check. The phase runner calls it
    /// when a phase starts (to begin counting) and when it ends. A backend that measures nothing
    /// returns no results; a value it cannot measure is `None`, never 0.
    fn take_results(&mut self, now_ns: i64) -> Vec<DeviceResult> {
        let _ = now_ns;
        Vec::new()
    }
}

/// Checks a load level for device `device`: finite and within 0.0..=1.0.
pub fn check_level(device: u16, level: f64) -> Result<f64, BackendError> {
    if (0.0..=1.0).contains(&level) {
        Ok(level)
    } else {
        Err(BackendError::BadLevel { device, level })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_outside_the_unit_interval_are_refused() {
        assert_eq!(check_level(0, 0.5), Ok(0.5));
        assert!(check_level(1, -0.1).is_err());
        assert!(check_level(1, 1.0001).is_err());
        assert!(check_level(1, f64::NAN).is_err());
        let e = check_level(3, 2.0).unwrap_err().to_string();
        assert!(e.contains("device 3") && e.contains("0.0..=1.0"), "{e}");
    }
}
