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
//! The pattern controller and the real backends (cpu, cuda) grow here.

pub mod backend;
pub mod cpu;
pub mod sim;
/// NVML's clock-event reason bits (defined with the protocol's `Sample`, which carries them).
pub use hallmark_protocol::throttle;

pub use backend::{Backend, BackendError, DeviceReading, NodeReading};
