//! Load generators and device backends.
//!
//! * [`backend`] — the [`backend::Backend`] trait the probe's phase runner drives (set load levels,
//!   sample every device at an instant, stop everything), its readings and errors.
//! * [`throttle`] — NVML's clock-event reason bits and their names.
//! * [`sim`] — the simulated backend: GPU physics, rack coolant loops, hall files (TOML) and
//!   [`sim::SimBackend`].
//! * [`cpu`] — the CPU burn backend [`cpu::CpuBackend`]: single-threaded SGEMM workers per socket under
//!   a duty cycle, counting the work done and checking results against a reference.
//!
//! * [`host`] — host sensors of a CPU node, [`host::HostSensors`]: RAPL package and DRAM energy and
//!   power from the powercap sysfs tree, CPU utilisation and package temperatures through sysinfo;
//!   what cannot be read is `None` with the reason in its sensor list.
//!
//! * [`cuda`] — the NVIDIA GPU backend [`cuda::CudaBackend`] (cudarc, loaded at run time): a worker
//!   thread per GPU running cuBLAS GEMMs (bf16, fp16, fp32, tf32) or device-memory copies under a
//!   5 ms duty cycle, results checked on the GPU, and a PI controller that holds a power target.
//! * [`nvml`] — NVML sensors of NVIDIA GPUs ([`nvml::NvmlSensors`]): instant power, energy,
//!   temperatures, clocks, utilisation, throttle reasons, ECC, XID, PCIe and NVLink counters.
//!
//! * [`software`] — the versions of the software under the load (kernel, CUDA driver, cuBLAS)
//!   that a backend reports in the Hello.
//!
//! * [`fabric`] — the probe's data plane and the fabric workloads: the latency mesh and collectives
//!   between probes, authenticated per phase.
//!
//! The pattern controller and the real backends (cpu, cuda) grow here.

pub mod backend;
pub mod cpu;
pub mod cuda;
pub mod fabric;
pub mod host;
pub mod nvml;
pub mod sim;
pub mod software;
/// NVML's clock-event reason bits (defined with the protocol's `Sample`, which carries them).
pub use hallmark_protocol::throttle;

pub use backend::{
    Backend, BackendError, DeviceReading, Kernel, NcclJob, NodeReading, SensorStatus,
};
