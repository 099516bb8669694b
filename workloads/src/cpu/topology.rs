//! What the CPU backend's devices are: one per CPU socket, read from Linux's sysfs and `/proc/cpuinfo`.
//!
//! Sockets come from `/sys/devices/system/cpu/cpuN/topology/physical_package_id`; where none can be
//! read (another OS, a container hiding sysfs) the node counts as one socket. The model is the first
//! `model name` of `/proc/cpuinfo`, or "unknown CPU".

use hallmark_protocol::{DeviceInfo, DeviceKind};
use std::path::Path;

/// The node's CPUs as (cpu number, physical package id), sorted by cpu number. Empty where sysfs
/// tells nothing.
pub fn cpu_packages(sysfs_cpu: &Path) -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir(sysfs_cpu) else {
        return Vec::new();
    };
    let mut cpus: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let cpu: u32 = name.to_str()?.strip_prefix("cpu")?.parse().ok()?;
            let id = std::fs::read_to_string(e.path().join("topology/physical_package_id")).ok()?;
            Some((cpu, id.trim().parse().ok()?))
        })
        .collect();
    cpus.sort_unstable();
    cpus
}

/// The distinct package ids, sorted: device `i` is socket `sockets[i]`. One socket (id 0) where
/// `cpus` is empty.
pub fn sockets(cpus: &[(u32, u32)]) -> Vec<u32> {
    let mut ids: Vec<u32> = cpus.iter().map(|&(_, p)| p).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        ids.push(0);
    }
    ids
}

/// The device (index into `sockets`) that worker `worker` loads: workers go round the CPUs in
/// order, so with one worker per CPU each socket gets as many workers as it has CPUs. Workers are
/// not pinned; the OS places them.
pub fn worker_device(worker: usize, cpus: &[(u32, u32)], sockets: &[u32]) -> u16 {
    if cpus.is_empty() {
        return 0;
    }
    let package = cpus[worker % cpus.len()].1;
    sockets.iter().position(|&s| s == package).unwrap_or(0) as u16
}

/// The first `model name` of a `/proc/cpuinfo` text, or "unknown CPU".
pub fn model_name(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "model name")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// The inventory: one [`DeviceKind::CpuSocket`] per socket. Power limits and temperature thresholds
/// are not known for CPU sockets, so those figures are `None`.
pub fn inventory(sockets: &[u32], model: &str) -> Vec<DeviceInfo> {
    sockets
        .iter()
        .zip(0u16..)
        .map(|(&package, index)| DeviceInfo {
            index,
            kind: DeviceKind::CpuSocket,
            model: model.to_string(),
            uuid: format!("cpu-socket-{package}"),
            serial: None,
            memory_bytes: None,
            power_limit_w: None,
            idle_power_w: None,
            slowdown_temp_c: None,
            shutdown_temp_c: None,
            max_operating_temp_c: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_name_is_read_or_unknown() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 9654\nmodel name\t: other\n";
        assert_eq!(model_name(text), "AMD EPYC 9654");
        assert_eq!(model_name("processor : 0\n"), "unknown CPU");
        assert_eq!(model_name("model name :   \n"), "unknown CPU");
    }

    #[test]
    fn workers_spread_over_sockets_and_missing_sysfs_means_one() {
        let cpus = [(0, 0), (1, 1), (2, 0), (3, 1)];
        let s = sockets(&cpus);
        assert_eq!(s, vec![0, 1]);
        let devices: Vec<u16> = (0..6).map(|w| worker_device(w, &cpus, &s)).collect();
        assert_eq!(devices, vec![0, 1, 0, 1, 0, 1]);
        assert_eq!(sockets(&[]), vec![0]);
        assert_eq!(worker_device(5, &[], &[0]), 0);
        assert!(cpu_packages(Path::new("/nonexistent/cpu")).is_empty());
        let inv = inventory(&s, "m");
        assert_eq!(inv.len(), 2);
        assert_eq!(inv[1].kind, DeviceKind::CpuSocket);
        assert_eq!(inv[1].power_limit_w, None);
    }
}
