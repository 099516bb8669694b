//! Host sensors of a CPU node: RAPL energy and power per package, CPU utilisation and CPU
//! temperatures, read by [`HostSensors`] without ever sleeping.
//!
//! * [`rapl`] — package, DRAM, core, uncore and platform energy counters from the powercap sysfs
//!   tree (root injectable, default `/sys/class/powercap`): energy accumulated across counter
//!   wrap-arounds since the reader started, power as Δenergy / Δt between reads.
//! * [`system`] — sysinfo: global and per-logical-CPU utilisation (refreshed at most every
//!   [`system::REFRESH_INTERVAL`], the last values reused in between) and package temperatures
//!   mapped to sockets by their hwmon labels.
//! * [`sysfs`] — reading one-value attribute files with typed errors.
//!
//! A sensor that cannot be read is `None` in a [`HostReading`], never 0, and
//! [`HostSensors::sensors`] says why (missing, permission denied, malformed, not exposed).
//! Sockets are CPU packages by physical package id, as in the cpu backend's topology: device `i`
//! is `sockets[i]`. Times come from a [`TimeSource`] ([`MonotonicClock`] by default; tests inject a
//! [`ManualClock`]). RAPL measures the CPU packages and their memory, not the node at the wall.

pub mod rapl;
pub mod sysfs;
pub mod system;

use crate::backend::SensorStatus;
use rapl::{is_dram, is_package, Rapl, ZoneKind};
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use system::{map_temperatures, CpuLoad, CpuTemps, Temp, REFRESH_INTERVAL};

/// A monotonic time source: time since some fixed origin.
pub trait TimeSource: Send + Sync + Debug {
    fn now(&self) -> Duration;
}

/// The process's monotonic clock, from when it was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    pub fn new() -> MonotonicClock {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock::new()
    }
}

impl TimeSource for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to (tests, replays).
#[derive(Debug, Default)]
pub struct ManualClock {
    ns: AtomicU64,
}

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl TimeSource for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.ns.load(Ordering::Relaxed))
    }
}

/// Where [`HostSensors`] reads from and how it tells time.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The powercap class directory (default [`rapl::DEFAULT_POWERCAP_ROOT`]).
    pub powercap_root: PathBuf,
    pub clock: Arc<dyn TimeSource>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            powercap_root: PathBuf::from(rapl::DEFAULT_POWERCAP_ROOT),
            clock: Arc::new(MonotonicClock::new()),
        }
    }
}

/// One socket's readings. Energies are since the sensors were made; `None` is "not measured".
#[derive(Debug, Clone, PartialEq)]
pub struct SocketReading {
    /// The physical package id.
    pub package_id: u32,
    /// RAPL package power (the dies summed), W.
    pub package_power_w: Option<f64>,
    pub package_energy_j: Option<f64>,
    /// RAPL DRAM power of this package's memory, W.
    pub dram_power_w: Option<f64>,
    pub dram_energy_j: Option<f64>,
    /// The socket has a readable DRAM zone (its DRAM figures are missing only while it fails).
    pub has_dram: bool,
    /// Package temperature, °C.
    pub temp_c: Option<f64>,
    /// Mean utilisation of the package's logical CPUs, percent.
    pub util_pct: Option<f64>,
}

impl SocketReading {
    /// Package + DRAM power where the socket has a DRAM zone, the package alone where it has none;
    /// `None` if a part is missing.
    pub fn power_w(&self) -> Option<f64> {
        match self.has_dram {
            true => Some(self.package_power_w? + self.dram_power_w?),
            false => self.package_power_w,
        }
    }

    /// Energy on the same terms as [`SocketReading::power_w`], J.
    pub fn energy_j(&self) -> Option<f64> {
        match self.has_dram {
            true => Some(self.package_energy_j? + self.dram_energy_j?),
            false => self.package_energy_j,
        }
    }
}

/// One readable RAPL zone's readings.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneReading {
    /// `RAPL package-0`, `RAPL package-0 dram`, `RAPL psys`.
    pub label: String,
    pub package: Option<u32>,
    pub power_w: Option<f64>,
    pub energy_j: Option<f64>,
}

/// Everything [`HostSensors`] read at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct HostReading {
    /// Node-wide CPU utilisation, percent.
    pub cpu_util_pct: Option<f64>,
    /// Each logical CPU's utilisation as (cpu number, percent).
    pub per_cpu_util_pct: Vec<(u32, f64)>,
    /// A node-wide CPU temperature (see [`system`]), °C.
    pub node_temp_c: Option<f64>,
    /// One per socket, in the order of the sockets given to [`HostSensors::new`].
    pub per_socket: Vec<SocketReading>,
    /// Every readable RAPL zone, including core, uncore and psys.
    pub zones: Vec<ZoneReading>,
}

/// The host sensors of one node.
#[derive(Debug)]
pub struct HostSensors {
    sockets: Vec<u32>,
    /// The logical CPUs sysinfo lists, by socket index.
    socket_cpus: Vec<Vec<u32>>,
    clock: Arc<dyn TimeSource>,
    rapl: Rapl,
    load: CpuLoad,
    temps: CpuTemps,
}

impl HostSensors {
    /// Finds the sensors and takes the first readings (the start of RAPL energy and of CPU usage).
    /// `sockets[i]` is the physical package id of socket `i`; `cpus` maps logical CPUs to packages
    /// (empty: unknown, and then a one-socket node's CPUs are all its socket's). Never fails: what
    /// cannot be read is reported by [`HostSensors::sensors`].
    pub fn new(sockets: Vec<u32>, cpus: Vec<(u32, u32)>, options: HostOptions) -> HostSensors {
        let now = options.clock.now();
        let load = CpuLoad::new(now);
        let listed = load.cpu_numbers();
        let socket_cpus = sockets
            .iter()
            .map(|&package| match (cpus.is_empty(), sockets.len()) {
                (true, 1) => listed.clone(),
                _ => listed
                    .iter()
                    .copied()
                    .filter(|n| cpus.iter().any(|&(c, p)| c == *n && p == package))
                    .collect(),
            })
            .collect();
        let sensors = HostSensors {
            rapl: Rapl::discover(&options.powercap_root, now),
            load,
            temps: CpuTemps::new(now),
            sockets,
            socket_cpus,
            clock: options.clock,
        };
        for s in sensors.sensors().iter().filter(|s| !s.available) {
            tracing::debug!("host sensor {} absent: {}", s.name, s.detail);
        }
        sensors
    }

    /// The physical package ids of the sockets, by device index.
    pub fn sockets(&self) -> &[u32] {
        &self.sockets
    }

    /// The RAPL reader.
    pub fn rapl(&self) -> &Rapl {
        &self.rapl
    }

    /// The logical CPUs of socket `i` that sysinfo lists (found once, when the sensors are made).
    pub fn socket_cpus(&self, i: usize) -> &[u32] {
        self.socket_cpus.get(i).map_or(&[], Vec::as_slice)
    }

    /// Why socket `i`'s utilisation cannot be measured at all (as opposed to "not yet": usage
    /// needs two refreshes [`REFRESH_INTERVAL`] apart), if it cannot.
    pub fn util_unreadable(&self, i: usize) -> Option<String> {
        if let Some(e) = self.load.unreadable() {
            return Some(e);
        }
        let package = self.sockets.get(i).copied().unwrap_or_default();
        self.socket_cpus(i).is_empty().then(|| {
            format!("sysinfo lists no logical CPU of physical package {package} (topology unknown)")
        })
    }

    /// Reads every sensor now (RAPL every call; sysinfo at most every [`REFRESH_INTERVAL`]).
    /// Never sleeps.
    pub fn read(&mut self) -> HostReading {
        let now = self.clock.now();
        self.rapl.read(now);
        self.load.refresh(now);
        self.temps.refresh(now);
        let per_cpu = self.load.per_cpu_pct();
        // Per socket: (sum of usage, CPUs counted).
        let mut usage = vec![(0.0_f64, 0_usize); self.sockets.len()];
        for (cpu, pct) in &per_cpu {
            let socket = self.socket_cpus.iter().position(|s| s.contains(cpu));
            if let Some(u) = socket.and_then(|i| usage.get_mut(i)) {
                *u = (u.0 + pct, u.1 + 1);
            }
        }
        let (temps, node_temp) = map_temperatures(&self.temps.readings(), &self.sockets);
        let per_socket = self
            .sockets
            .iter()
            .zip(temps)
            .enumerate()
            .map(|(i, (&package, temp))| {
                let (package_power_w, package_energy_j, _) =
                    self.rapl.package_sum(package, is_package);
                let (dram_power_w, dram_energy_j, drams) = self.rapl.package_sum(package, is_dram);
                let util_pct = usage
                    .get(i)
                    .filter(|(_, n)| *n > 0)
                    .map(|&(sum, n)| sum / n as f64);
                SocketReading {
                    package_id: package,
                    package_power_w,
                    package_energy_j,
                    dram_power_w,
                    dram_energy_j,
                    has_dram: drams > 0,
                    temp_c: temp.map(|t| t.celsius),
                    util_pct,
                }
            })
            .collect();
        let zones = self
            .rapl
            .zones()
            .iter()
            .map(|z| ZoneReading {
                label: z.label(),
                package: z.package,
                power_w: z.power_w(),
                energy_j: z.energy_j(),
            })
            .collect();
        HostReading {
            cpu_util_pct: self.load.global_pct(),
            per_cpu_util_pct: per_cpu,
            node_temp_c: node_temp.map(|t| t.celsius),
            per_socket,
            zones,
        }
    }

    fn device_of(&self, package: Option<u32>) -> Option<u16> {
        let i = self.sockets.iter().position(|&s| Some(s) == package)?;
        u16::try_from(i).ok()
    }

    /// Every host sensor and whether it can be read here, with where from or why not.
    pub fn sensors(&self) -> Vec<SensorStatus> {
        let mut out = Vec::new();
        let status = |name: String, device, available, detail: String| SensorStatus {
            name,
            device,
            available,
            detail,
        };
        for z in self.rapl.zones() {
            let (available, detail) = match z.error() {
                Some(e) => (false, format!("the last read failed: {e}")),
                None => (
                    true,
                    format!(
                        "energy counter {} (wraps at {} µJ)",
                        z.energy_path.display(),
                        z.max_range_uj
                    ),
                ),
            };
            out.push(status(
                z.label(),
                self.device_of(z.package),
                available,
                detail,
            ));
        }
        for a in self.rapl.absent() {
            let detail = format!("absent: {}", a.reason);
            out.push(status(a.label(), self.device_of(a.package), false, detail));
        }
        let tree = self.rapl.describe_tree_error();
        let tree_useless = self.rapl.zones().is_empty() && self.rapl.absent().is_empty();
        for (i, &p) in self.sockets.iter().enumerate() {
            let device = u16::try_from(i).ok();
            let has = |want: fn(&ZoneKind) -> bool| {
                self.rapl.package_sum(p, want).2 > 0 || !self.rapl.absent_of(p, want).is_empty()
            };
            if !has(is_package) {
                let detail = match tree_useless {
                    true => format!("absent: {tree}"),
                    false => format!(
                        "absent: no RAPL zone named package-{p} under {}",
                        self.rapl.root().display()
                    ),
                };
                out.push(status(format!("RAPL package-{p}"), device, false, detail));
            }
            if !has(is_dram) {
                let detail = match tree_useless {
                    true => format!("absent: {tree}"),
                    false => format!(
                        "absent: package-{p} has no dram subzone (this CPU or kernel does not \
                         expose DRAM energy)"
                    ),
                };
                out.push(status(
                    format!("RAPL package-{p} dram"),
                    device,
                    false,
                    detail,
                ));
            }
        }
        out.extend(self.util_statuses());
        out.extend(self.temp_statuses());
        out
    }

    fn util_statuses(&self) -> Vec<SensorStatus> {
        let every = REFRESH_INTERVAL.as_millis();
        let mut out = vec![SensorStatus {
            name: "CPU utilisation".into(),
            device: None,
            available: self.load.unreadable().is_none(),
            detail: match self.load.unreadable() {
                Some(e) => format!("absent: {e}"),
                None => format!("sysinfo (/proc/stat), refreshed at most every {every} ms"),
            },
        }];
        for (i, &p) in self.sockets.iter().enumerate() {
            let reason = self.util_unreadable(i);
            out.push(SensorStatus {
                name: "CPU utilisation".into(),
                device: u16::try_from(i).ok(),
                available: reason.is_none(),
                detail: match reason {
                    Some(e) => format!("absent: {e}"),
                    None => format!(
                        "sysinfo: mean of the {} logical CPUs of physical package {p}, refreshed \
                         at most every {every} ms",
                        self.socket_cpus(i).len()
                    ),
                },
            });
        }
        out
    }

    fn temp_statuses(&self) -> Vec<SensorStatus> {
        let (per_socket, node) = map_temperatures(&self.temps.readings(), &self.sockets);
        let none = self.temps.unreadable();
        let why = |what: String| match &none {
            Some(e) => format!("absent: {e}"),
            None => format!("absent: {what}"),
        };
        let from = |t: &Temp| format!("hwmon sensor \"{}\" (sysinfo)", t.label);
        let mut out = vec![SensorStatus {
            name: "CPU temperature".into(),
            device: None,
            available: node.is_some(),
            detail: match &node {
                Some(t) => from(t),
                None => why(
                    "no hwmon sensor is a CPU package temperature (coretemp \"Package id N\", \
                     k10temp or zenpower Tdie/Tctl)"
                        .into(),
                ),
            },
        }];
        for (i, (&p, t)) in self.sockets.iter().zip(&per_socket).enumerate() {
            out.push(SensorStatus {
                name: "package temperature".into(),
                device: u16::try_from(i).ok(),
                available: t.is_some(),
                detail: match (t, &node) {
                    (Some(t), _) => from(t),
                    (None, Some(n)) => why(format!(
                        "\"{}\" is node-wide and does not say which of the {} sockets it measures",
                        n.label,
                        self.sockets.len()
                    )),
                    (None, None) => why(format!("no hwmon sensor is labelled Package id {p}")),
                },
            });
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests;
