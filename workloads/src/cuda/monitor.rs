//! The cuda backend's control thread: the power controllers and the XID watch.
//!
//! Every [`CONTROL_PERIOD`] (25 Hz) it reads the power of each GPU that has a power target (the
//! instant field, or where NVML refuses it the one-second average) and sets that worker's duty
//! from its [`PowerController`]; between ticks it waits on the NVML event set for critical XID
//! errors and counts them per GPU. Targets are changed by the backend
//! under the same lock the thread holds while it applies outputs, so a target removed is never
//! overwritten by a late output.

use super::control::{PowerController, CONTROL_PERIOD};
use super::worker::DeviceShared;
use crate::nvml::NvmlSensors;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Longest single wait for an XID event, so that a stop is noticed quickly.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// One GPU as the control thread sees it.
#[derive(Debug, Clone)]
pub struct ControlledGpu {
    pub shared: Arc<DeviceShared>,
    /// NVML's index of the GPU, if NVML knows it.
    pub nvml_index: Option<u32>,
    pub idle_w: Option<f64>,
    pub limit_w: Option<f64>,
    /// The worker thread, woken when its duty changes.
    pub worker: Option<Thread>,
}

/// What the backend and the control thread share.
#[derive(Debug, Default)]
pub struct MonitorShared {
    /// Power target per device, W.
    targets: Mutex<Vec<Option<f64>>>,
    /// Critical XID errors counted per device.
    pub xid_count: Vec<AtomicU64>,
    /// The last XID number + 1 per device (0: none yet).
    pub xid_last: Vec<AtomicU64>,
    /// Per device: whether XID events are watched, or why not (set once at start).
    pub xid_status: Mutex<Vec<Result<(), String>>>,
    /// The thread has set up its XID watch.
    pub started: AtomicBool,
}

impl MonitorShared {
    pub fn new(devices: usize) -> Self {
        MonitorShared {
            targets: Mutex::new(vec![None; devices]),
            xid_count: (0..devices).map(|_| AtomicU64::new(0)).collect(),
            xid_last: (0..devices).map(|_| AtomicU64::new(0)).collect(),
            xid_status: Mutex::new(vec![Err("not watched yet".into()); devices]),
            started: AtomicBool::new(false),
        }
    }

    /// The targets, locked.
    pub fn targets(&self) -> MutexGuard<'_, Vec<Option<f64>>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// XID events seen on `device` and the last one's number.
    pub fn xid(&self, device: usize) -> (u64, Option<u64>) {
        let n = self
            .xid_count
            .get(device)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        let last = self
            .xid_last
            .get(device)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        (n, last.checked_sub(1))
    }

    /// Whether `device`'s XID events are watched.
    pub fn xid_status(&self, device: usize) -> Result<(), String> {
        let s = self.xid_status.lock().unwrap_or_else(|e| e.into_inner());
        s.get(device)
            .cloned()
            .unwrap_or_else(|| Err("no such device".into()))
    }
}

/// The thread's body; returns when `stop` is set.
pub fn run(
    sensors: NvmlSensors,
    gpus: Vec<ControlledGpu>,
    shared: Arc<MonitorShared>,
    stop: Arc<AtomicBool>,
) {
    let indices: Vec<u32> = gpus.iter().filter_map(|g| g.nvml_index).collect();
    let watch = sensors.watch_xid(&indices);
    {
        let mut status = shared.xid_status.lock().unwrap_or_else(|e| e.into_inner());
        for (slot, g) in status.iter_mut().zip(&gpus) {
            *slot = match g.nvml_index {
                Some(i) => watch.status(i),
                None => Err("no NVML device with this GPU's UUID".into()),
            };
        }
    }
    shared.started.store(true, Ordering::Release);
    let mut controllers: Vec<Option<PowerController>> = vec![None; gpus.len()];
    let mut last_tick = Instant::now();
    let mut next_tick = last_tick + CONTROL_PERIOD;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_tick {
            control_step(&sensors, &gpus, &shared, &mut controllers, now - last_tick);
            last_tick = now;
            next_tick = (next_tick + CONTROL_PERIOD).max(now + CONTROL_PERIOD / 2);
        }
        let wait = next_tick
            .saturating_duration_since(Instant::now())
            .min(MAX_WAIT);
        let started = Instant::now();
        let event = if watch.active() {
            watch.wait(u32::try_from(wait.as_millis()).unwrap_or(100).max(1))
        } else {
            None
        };
        if let Some((index, xid)) = event {
            if let Some(d) = gpus.iter().position(|g| g.nvml_index == Some(index)) {
                if let Some(c) = shared.xid_count.get(d) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                if let (Some(l), Some(x)) = (shared.xid_last.get(d), xid) {
                    l.store(x.saturating_add(1), Ordering::Relaxed);
                }
                tracing::warn!("GPU {d}: critical XID error {xid:?}");
            }
        } else if let Some(rest) = wait.checked_sub(started.elapsed()) {
            // No watch, or it failed at once: sleep instead of spinning.
            thread::park_timeout(rest);
        }
    }
}

/// One control tick: every GPU with a target gets a new duty; a GPU whose target went away gets
/// its full duty back.
fn control_step(
    sensors: &NvmlSensors,
    gpus: &[ControlledGpu],
    shared: &MonitorShared,
    controllers: &mut [Option<PowerController>],
    dt: Duration,
) {
    let targets = shared.targets();
    for ((gpu, target), controller) in gpus.iter().zip(targets.iter()).zip(controllers.iter_mut()) {
        let before = gpu.shared.control();
        match target {
            None => {
                if controller.take().is_some() {
                    gpu.shared.set_control(1.0);
                }
            }
            Some(t) => {
                let limit = gpu.limit_w.unwrap_or(*t);
                let idle = gpu.idle_w.unwrap_or(0.15 * limit);
                let c = controller.get_or_insert_with(|| PowerController::new(*t, idle, limit));
                if c.target_w() != *t {
                    c.set_target(*t);
                }
                let p = gpu.nvml_index.and_then(|i| sensors.power_w(i));
                let duty = c.update(p, dt, gpu.shared.level());
                gpu.shared.set_control(duty);
            }
        }
        if gpu.shared.control() != before {
            if let Some(w) = &gpu.worker {
                w.unpark();
            }
        }
    }
}
