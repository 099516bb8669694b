//! CPU utilisation and CPU temperatures through `sysinfo`.
//!
//! # Utilisation
//! sysinfo computes usage from the difference between two reads of `/proc/stat`, which must be at
//! least [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] apart. [`CpuLoad::refresh`] never sleeps: it
//! refreshes when [`REFRESH_INTERVAL`] (that minimum plus a margin) has passed since the previous
//! refresh and otherwise keeps the last values. Usage is `None` until the second refresh. A socket's
//! utilisation is the mean over the logical CPUs of its physical package (sysinfo names them
//! `cpuN`; the package of CPU N comes from the cpu backend's topology).
//!
//! # Temperatures
//! sysinfo lists hwmon sensors with the label `"<chip> <channel label>"`. A label that names a
//! package gives that socket's temperature: `coretemp Package id N` (Intel; N is the physical
//! package id). AMD's `k10temp`/`zenpower` `Tdie` (preferred) or `Tctl` do not say which socket
//! they belong to, and sysinfo merges chips with equal labels, so they give a node-wide CPU
//! temperature, which is the socket's own only on a one-socket node. No matching sensor → `None`,
//! with the reason in the sensor list.

use std::time::Duration;
use sysinfo::{Components, System, MINIMUM_CPU_UPDATE_INTERVAL};

/// How often CPU usage and temperatures are refreshed at most: sysinfo's minimum between two CPU
/// refreshes plus a margin, so that sysinfo's own check (made on its clock) never skips a refresh
/// this module counts.
pub const REFRESH_INTERVAL: Duration =
    Duration::from_millis(MINIMUM_CPU_UPDATE_INTERVAL.as_millis() as u64 + 10);

/// What a temperature label says about where it is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempSource {
    /// The package with this physical package id.
    Package(u32),
    /// The node's CPU(s), without saying which socket; lower rank is preferred.
    Node { rank: u8 },
}

/// Classifies a sysinfo component label; `None` for sensors that are not CPU package temperatures
/// (cores, chipset, NVMe, GPUs…).
pub fn classify(label: &str) -> Option<TempSource> {
    if let Some(rest) = label.strip_prefix("coretemp Package id ") {
        let id = rest.split_whitespace().next()?.parse().ok()?;
        return Some(TempSource::Package(id));
    }
    let mut words = label.split_whitespace();
    let (chip, channel) = (words.next()?, words.next()?);
    match (chip, channel) {
        ("k10temp" | "zenpower", "Tdie") => Some(TempSource::Node { rank: 0 }),
        ("k10temp" | "zenpower", "Tctl") => Some(TempSource::Node { rank: 1 }),
        _ => None,
    }
}

/// A temperature and the label it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Temp {
    pub celsius: f64,
    pub label: String,
}

/// Maps `(label, temperature)` pairs to the sockets (`sockets[i]` = physical package id of
/// device i) and a node-wide CPU temperature. Non-finite temperatures are ignored. The node-wide
/// value is the best-ranked node sensor, or, without one, the hottest socket.
pub fn map_temperatures(
    readings: &[(String, Option<f32>)],
    sockets: &[u32],
) -> (Vec<Option<Temp>>, Option<Temp>) {
    let mut per_socket: Vec<Option<Temp>> = vec![None; sockets.len()];
    let mut node: Option<(u8, Temp)> = None;
    for (label, t) in readings {
        let Some(celsius) = t.map(f64::from).filter(|c| c.is_finite()) else {
            continue;
        };
        let temp = Temp {
            celsius,
            label: label.clone(),
        };
        match classify(label) {
            Some(TempSource::Package(id)) => {
                if let Some(slot) = sockets
                    .iter()
                    .position(|&s| s == id)
                    .and_then(|i| per_socket.get_mut(i))
                {
                    *slot = Some(temp);
                }
            }
            Some(TempSource::Node { rank }) if node.as_ref().is_none_or(|(r, _)| rank < *r) => {
                node = Some((rank, temp));
            }
            Some(TempSource::Node { .. }) | None => {}
        }
    }
    let node = node.map(|(_, t)| t).or_else(|| {
        per_socket
            .iter()
            .flatten()
            .max_by(|a, b| a.celsius.total_cmp(&b.celsius))
            .cloned()
    });
    if sockets.len() == 1 {
        if let (Some(slot), Some(n)) = (per_socket.first_mut(), &node) {
            if slot.is_none() {
                *slot = Some(n.clone());
            }
        }
    }
    (per_socket, node)
}

/// CPU utilisation through sysinfo, refreshed at most every [`REFRESH_INTERVAL`].
#[derive(Debug)]
pub struct CpuLoad {
    system: Result<System, String>,
    last_refresh: Option<Duration>,
    refreshes: u32,
}

impl CpuLoad {
    /// Takes the first CPU reading (which gives no usage yet) at `now`.
    pub fn new(now: Duration) -> CpuLoad {
        let system = System::new().map_err(|e| format!("sysinfo cannot read this system: {e}"));
        let mut load = CpuLoad {
            system,
            last_refresh: None,
            refreshes: 0,
        };
        load.refresh(now);
        load
    }

    /// Refreshes if [`REFRESH_INTERVAL`] has passed since the previous refresh (never sleeps).
    pub fn refresh(&mut self, now: Duration) {
        let due = self
            .last_refresh
            .is_none_or(|t| now.checked_sub(t).is_some_and(|d| d >= REFRESH_INTERVAL));
        if !due {
            return;
        }
        if let Ok(system) = &mut self.system {
            system.refresh_cpu_usage();
            self.refreshes = self.refreshes.saturating_add(1);
        }
        self.last_refresh = Some(now);
    }

    /// Why usage cannot be read at all (not merely "not yet"), if it cannot.
    pub fn unreadable(&self) -> Option<String> {
        match &self.system {
            Err(e) => Some(e.clone()),
            Ok(s) if s.cpus().is_empty() => {
                Some("sysinfo lists no CPUs (/proc/stat cannot be read)".into())
            }
            Ok(_) => None,
        }
    }

    /// Whether two refreshes have happened, so usage figures are measured.
    pub fn ready(&self) -> bool {
        self.refreshes >= 2 && self.unreadable().is_none()
    }

    /// Node-wide usage in percent; `None` until [`CpuLoad::ready`].
    pub fn global_pct(&self) -> Option<f64> {
        match &self.system {
            Ok(s) if self.ready() => Some(f64::from(s.global_cpu_usage())),
            _ => None,
        }
    }

    /// Usage of each logical CPU as (cpu number, percent); empty until [`CpuLoad::ready`].
    pub fn per_cpu_pct(&self) -> Vec<(u32, f64)> {
        match &self.system {
            Ok(s) if self.ready() => s
                .cpus()
                .iter()
                .filter_map(|c| {
                    let n = c.name().strip_prefix("cpu")?.parse().ok()?;
                    Some((n, f64::from(c.usage())))
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The logical CPUs sysinfo lists, by number.
    pub fn cpu_numbers(&self) -> Vec<u32> {
        match &self.system {
            Ok(s) => s
                .cpus()
                .iter()
                .filter_map(|c| c.name().strip_prefix("cpu")?.parse().ok())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// CPU temperatures through sysinfo's component list, refreshed at most every
/// [`REFRESH_INTERVAL`].
#[derive(Debug)]
pub struct CpuTemps {
    components: Result<Components, String>,
    last_refresh: Duration,
}

impl CpuTemps {
    /// Lists the temperature sensors at `now`.
    pub fn new(now: Duration) -> CpuTemps {
        CpuTemps {
            components: Components::new_with_refreshed_list()
                .map_err(|e| format!("sysinfo cannot list temperature sensors: {e}")),
            last_refresh: now,
        }
    }

    /// Re-reads the temperatures if [`REFRESH_INTERVAL`] has passed (never sleeps).
    pub fn refresh(&mut self, now: Duration) {
        let due = now
            .checked_sub(self.last_refresh)
            .is_some_and(|d| d >= REFRESH_INTERVAL);
        if let (true, Ok(c)) = (due, &mut self.components) {
            c.refresh(false);
            self.last_refresh = now;
        }
    }

    /// Every listed sensor as (label, temperature).
    pub fn readings(&self) -> Vec<(String, Option<f32>)> {
        match &self.components {
            Ok(c) => c
                .iter()
                .map(|c| (c.label().to_string(), c.temperature()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Why there are no temperatures at all, if there are none.
    pub fn unreadable(&self) -> Option<String> {
        match &self.components {
            Err(e) => Some(e.clone()),
            Ok(c) if c.is_empty() => Some(
                "no temperature sensors are exposed (no hwmon or thermal zones in sysfs, as in \
                 most VMs)"
                    .into(),
            ),
            Ok(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(label: &str, t: Option<f32>) -> (String, Option<f32>) {
        (label.to_string(), t)
    }

    #[test]
    fn labels_map_to_sockets_or_the_node() {
        assert_eq!(
            classify("coretemp Package id 1"),
            Some(TempSource::Package(1))
        );
        assert_eq!(classify("coretemp Core 3"), None);
        assert_eq!(classify("coretemp Package id x"), None);
        assert_eq!(classify("k10temp Tctl"), Some(TempSource::Node { rank: 1 }));
        assert_eq!(
            classify("zenpower Tdie"),
            Some(TempSource::Node { rank: 0 })
        );
        assert_eq!(classify("k10temp Tccd1"), None);
        assert_eq!(classify("nvme Composite"), None);
        assert_eq!(classify(""), None);

        // Two Intel sockets: each its own; the node figure is the hottest.
        let (s, n) = map_temperatures(
            &[
                r("coretemp Package id 0", Some(51.0)),
                r("coretemp Package id 1", Some(63.0)),
                r("coretemp Core 0", Some(90.0)),
                r("acpitz temp1", Some(27.8)),
            ],
            &[0, 1],
        );
        assert_eq!(s[0].as_ref().map(|t| t.celsius), Some(51.0));
        assert_eq!(s[1].as_ref().map(|t| t.celsius), Some(63.0));
        assert_eq!(n.map(|t| t.label), Some("coretemp Package id 1".into()));

        // One AMD socket: Tdie preferred over Tctl, and it is socket 0's.
        let (s, n) = map_temperatures(
            &[r("k10temp Tctl", Some(70.0)), r("k10temp Tdie", Some(60.0))],
            &[0],
        );
        assert_eq!(s[0].as_ref().map(|t| t.celsius), Some(60.0));
        assert_eq!(n.map(|t| t.celsius), Some(60.0));

        // Two AMD sockets: the label does not say which, so no socket gets it.
        let (s, n) = map_temperatures(&[r("k10temp Tctl", Some(70.0))], &[0, 1]);
        assert_eq!(s, vec![None, None]);
        assert_eq!(n.map(|t| t.celsius), Some(70.0));

        // Unreadable or non-finite values are absent, not 0.
        let (s, n) = map_temperatures(
            &[
                r("coretemp Package id 0", None),
                r("k10temp Tctl", Some(f32::NAN)),
            ],
            &[0],
        );
        assert_eq!(s, vec![None]);
        assert_eq!(n, None);
    }
}
