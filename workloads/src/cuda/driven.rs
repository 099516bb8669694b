//! [`CudaBackend`] as the probe's phase runner drives it: the [`Backend`] trait (levels, samples,
//! kernel, power targets, results, NCCL phases) and the bounded stop when it is dropped.

use super::{CudaBackend, JOIN_WAIT};
use crate::backend::{
    check_level, Backend, BackendError, DeviceReading, Kernel, NcclJob, NodeReading, SensorStatus,
};
use crate::nvml::map;
use hallmark_protocol::{DeviceInfo, DeviceResult, FabricReport};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

impl Backend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    /// The CUDA driver's, NVML's and cuBLAS's versions and the host's ([`super::versions`]).
    fn software(&self) -> Vec<hallmark_protocol::SoftwareVersion> {
        self.software_versions().to_vec()
    }

    fn inventory(&self) -> &[DeviceInfo] {
        &self.inventory
    }

    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError> {
        let level = check_level(device, level)?;
        let g = self.device(device)?;
        if !self.load && level > 0.0 {
            return Err(BackendError::Unsupported(
                "this cuda backend was opened for its sensors only".into(),
            ));
        }
        g.shared.set_level(level);
        if let Some(slot) = self.levels.get_mut(usize::from(device)) {
            *slot = level;
        }
        self.wake(Some(usize::from(device)));
        Ok(())
    }

    /// NVML readings of every GPU; fails if a worker has stopped on an error.
    fn sample(&mut self, _now_ns: i64) -> Result<NodeReading, BackendError> {
        for (g, device) in self.gpus.iter().zip(0u16..) {
            if let Some(m) = g.shared.failure() {
                return Err(BackendError::Read(format!(
                    "GPU {device} (CUDA device {}): {m}",
                    g.cuda.ordinal
                )));
            }
        }
        let devices: Vec<DeviceReading> = self
            .gpus
            .iter()
            .zip(0u16..)
            .map(|(g, device)| match g.nvml_index {
                Some(i) => map::device_reading(device, &self.nvml.read(i), g.energy_origin_mj),
                None => map::absent_reading(device),
            })
            .collect();
        Ok(NodeReading {
            devices,
            node_power_w: None,
        })
    }

    fn stop_all(&mut self) {
        {
            let mut targets = self.monitor_shared.targets();
            for t in targets.iter_mut() {
                *t = None;
            }
            for g in &self.gpus {
                g.shared.set_level(0.0);
                g.shared.set_control(1.0);
            }
        }
        for l in &mut self.levels {
            *l = 0.0;
        }
        self.wake(None);
    }

    fn sensors(&self) -> Vec<SensorStatus> {
        self.sensors.clone()
    }

    /// GEMM burn, or device-to-device copies; every GPU must have its copy buffers for the
    /// latter.
    fn set_kernel(&mut self, kernel: Kernel) -> Result<(), BackendError> {
        if kernel == Kernel::MemoryBandwidth && self.load {
            for (p, device) in self.prepared().iter().zip(0u16..) {
                if p.is_none_or(|p| p.copy_bytes == 0) {
                    return Err(BackendError::Unsupported(format!(
                        "GPU {device} has no room for the memory-bandwidth buffers"
                    )));
                }
            }
        }
        self.kernel = kernel;
        self.kernels_used[usize::from(kernel == Kernel::MemoryBandwidth)] = true;
        for g in &self.gpus {
            g.shared.set_kernel(kernel);
        }
        self.wake(None);
        Ok(())
    }

    /// Holds `device` at `watts` (see the module docs: the level is the ceiling). Needs the
    /// device's power (the instant field, or where that is refused the 1 s average) and enforced
    /// power limit from NVML.
    fn set_power_target(&mut self, device: u16, watts: Option<f64>) -> Result<(), BackendError> {
        let index = usize::from(device);
        let g = self.device(device)?;
        if let Some(w) = watts {
            if !(w.is_finite() && w > 0.0) {
                return Err(BackendError::Config(format!(
                    "power target {w} W of device {device} must be a positive number of watts"
                )));
            }
            let source = match g.nvml_index {
                Some(i) => self.nvml.power(i).map(|(_, source)| source),
                None => Err(format!("NVML has no GPU with UUID {}", g.cuda.uuid)),
            };
            let limit = self.inventory.get(index).and_then(|d| d.power_limit_w);
            if let Some(warning) =
                power_holdable(device, w, source, limit).map_err(BackendError::Unsupported)?
            {
                tracing::warn!("{warning}");
            }
        }
        let mut targets = self.monitor_shared.targets();
        if let Some(t) = targets.get_mut(index) {
            *t = watts;
        }
        if watts.is_none() {
            g.shared.set_control(1.0);
        }
        drop(targets);
        self.wake(Some(index));
        Ok(())
    }

    /// An `ncclUniqueId` for a phase whose first member this node is (see [`super::nccl`]);
    /// a clear error where libnccl is missing or older than 2.14.
    fn nccl_unique_id(&mut self) -> Result<Vec<u8>, BackendError> {
        self.nccl.unique_id()
    }

    /// One thread, stream and communicator per GPU (rank `first + i` for GPU `i`), beside the
    /// burn; returns at once.
    fn start_nccl(&mut self, job: NcclJob) -> Result<(), BackendError> {
        if !self.load {
            return Err(BackendError::Unsupported(
                "this cuda backend was opened for its sensors only".into(),
            ));
        }
        let ordinals: Vec<usize> = self.gpus.iter().map(|g| g.cuda.ordinal).collect();
        self.nccl.start(job, &ordinals)
    }

    fn stop_nccl(&mut self) {
        self.nccl.stop();
    }

    fn nccl_done(&self) -> bool {
        self.nccl.is_done()
    }

    fn finish_nccl(&mut self, wait: Duration) -> FabricReport {
        self.nccl.finish(wait)
    }

    /// Achieved GFLOP/s (GEMMs completed since the previous call, times the FLOPs of one, over the
    /// probe-clock time between the calls), GB/s of the copies (read + written) where the
    /// memory-bandwidth workload ran, and the wrong elements the checks found. The first call
    /// starts counting.
    fn take_results(&mut self, now_ns: i64) -> Vec<DeviceResult> {
        let counters = self.counters();
        let used = self.kernels_used;
        self.kernels_used = [
            self.kernel == Kernel::Gemm,
            self.kernel == Kernel::MemoryBandwidth,
        ];
        let previous = self.results_mark.replace((now_ns, counters.clone()));
        let Some((since, before)) = previous else {
            return Vec::new();
        };
        let seconds = now_ns.saturating_sub(since) as f64 / 1e9;
        if seconds <= 0.0 || !self.load {
            return Vec::new();
        }
        counters
            .iter()
            .zip(before)
            .zip(0u16..)
            .map(|((now, before), device)| DeviceResult {
                device,
                gflops: used[0]
                    .then(|| gflops(now.gemms, before.gemms, now.flop_per_gemm, seconds)),
                mem_bandwidth_gbps: used[1].then(|| rate(now.bytes, before.bytes, seconds)),
                wrong_elements: now.wrong.wrapping_sub(before.wrong),
            })
            .collect()
    }
}

/// Whether `device` can be held at `w` W: the controller needs its power from NVML (`source`:
/// where it is read, or why not) and its enforced power limit. `Ok` holds a warning where the
/// power is the 1 s average; `Err` says why not and what to run instead.
pub fn power_holdable(
    device: u16,
    w: f64,
    source: Result<crate::nvml::PowerSource, String>,
    limit: Option<f64>,
) -> Result<Option<String>, String> {
    let missing = match (source, limit) {
        (Ok(crate::nvml::PowerSource::Instant), Some(_)) => return Ok(None),
        (Ok(crate::nvml::PowerSource::Average), Some(_)) => {
            return Ok(Some(format!(
                "GPU {device}: holding {w} W from NVML's 1 s average power (the instant field is \
                 refused here), so the controller sees changes late"
            )))
        }
        (Err(e), _) => format!("no power ({e})"),
        (Ok(_), None) => "no enforced power limit".to_string(),
    };
    Err(format!(
        "GPU {device}: NVML reads {missing}, so its power cannot be held; `hallmark probe \
         --list-devices` shows what NVML answers, and a `burn` phase (a load level, no power \
         target) runs without it"
    ))
}

/// Units per second ×10⁻⁹ between two readings of a cumulative counter `seconds` apart. The
/// counters only grow, so the difference is taken modulo 2⁶⁴: a counter that wrapped between the
/// readings still gives the work done in between, never 0.
pub fn rate(now: u64, before: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        now.wrapping_sub(before) as f64 / seconds / 1e9
    } else {
        0.0
    }
}

/// GFLOP/s from two readings of a GEMM counter `seconds` apart, each GEMM `flop_per_gemm` FLOPs;
/// the product is taken in f64 (GEMMs × FLOPs would pass 2⁶⁴ after hours at full speed).
pub fn gflops(gemms_now: u64, gemms_before: u64, flop_per_gemm: u64, seconds: f64) -> f64 {
    rate(gemms_now, gemms_before, seconds) * flop_per_gemm as f64
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake(None);
        if let Some(m) = &self.monitor {
            m.thread().unpark();
        }
        let deadline = Instant::now() + JOIN_WAIT;
        self.nccl.shutdown(deadline);
        let all_done = |b: &CudaBackend| {
            b.workers.iter().all(|h| h.is_finished())
                && b.monitor.as_ref().is_none_or(|h| h.is_finished())
        };
        while Instant::now() < deadline && !all_done(self) {
            thread::sleep(Duration::from_millis(1));
        }
        for h in self.workers.drain(..).chain(self.monitor.take()) {
            if h.is_finished() {
                let _ = h.join();
            }
            // A thread still running past the deadline is left to end on its own (detached).
        }
    }
}
