//! The versions of the software under a backend's load, as [`crate::Backend::software`] reports
//! them in the probe's Hello: only what was read, never a made-up value.
//!
//! Names, one per entry: `kernel` (Linux's release, `/proc/sys/kernel/osrelease`), `cpu_microcode`
//! (the first `microcode` of `/proc/cpuinfo`), `cuda_driver` (the CUDA version the driver
//! supports, `cuDriverGetVersion`, e.g. "13.0"), `nvml_driver` (the NVIDIA driver's own version
//! string from NVML, e.g. "580.65.06"), `cublas` (cuBLAS's major.minor.patch) and `simulator` (the
//! simulation model's version: that of this crate). The CPU model is not one of them: the
//! inventory carries it as each socket's model.

use hallmark_protocol::facility::bounded_text;
use hallmark_protocol::{SoftwareVersion, MAX_SOFTWARE_TEXT_BYTES};
use std::path::Path;

/// Linux's kernel release file.
pub const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// An entry named `name` with `version` trimmed and cut to the Hello's bound, or `None` when
/// nothing is left of it.
pub fn entry(name: &str, version: &str) -> Option<SoftwareVersion> {
    let version = version.trim();
    if version.is_empty() {
        return None;
    }
    Some(SoftwareVersion {
        name: name.to_string(),
        version: bounded_text(version.to_string(), MAX_SOFTWARE_TEXT_BYTES),
    })
}

/// A CUDA version number as the driver API encodes it (`1000 × major + 10 × minor`) as text:
/// 12080 → "12.8", 13000 → "13.0". `None` for a number that is not a version (0 or below).
pub fn cuda_version_text(v: i32) -> Option<String> {
    (v > 0).then(|| format!("{}.{}", v / 1000, (v % 1000) / 10))
}

/// cuBLAS's version from its three library properties: "13.0.2". `None` when one is negative.
pub fn cublas_version_text(major: i32, minor: i32, patch: i32) -> Option<String> {
    (major >= 0 && minor >= 0 && patch >= 0).then(|| format!("{major}.{minor}.{patch}"))
}

/// The first `microcode` field of a `/proc/cpuinfo` text.
pub fn microcode(cpuinfo: &str) -> Option<&str> {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "microcode")
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The host's own entries: the kernel release read from `osrelease` and the CPU microcode from
/// the `cpuinfo` text, each only if it could be read.
pub fn host(osrelease: &Path, cpuinfo: Option<&str>) -> Vec<SoftwareVersion> {
    let kernel = std::fs::read_to_string(osrelease).ok();
    let mut out: Vec<SoftwareVersion> = kernel
        .as_deref()
        .and_then(|k| entry("kernel", k))
        .into_iter()
        .collect();
    out.extend(
        cpuinfo
            .and_then(microcode)
            .and_then(|m| entry("cpu_microcode", m)),
    );
    out
}

/// What the simulated backend reports: the simulation model's version (this crate's).
pub fn simulator() -> Vec<SoftwareVersion> {
    entry("simulator", env!("CARGO_PKG_VERSION"))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_versions_read_as_major_dot_minor() {
        assert_eq!(cuda_version_text(12080).as_deref(), Some("12.8"));
        assert_eq!(cuda_version_text(13000).as_deref(), Some("13.0"));
        assert_eq!(cuda_version_text(11040).as_deref(), Some("11.4"));
        assert_eq!(cuda_version_text(12090).as_deref(), Some("12.9"));
        assert_eq!(cuda_version_text(0), None);
        assert_eq!(cuda_version_text(-1), None);
        assert_eq!(cublas_version_text(13, 0, 2).as_deref(), Some("13.0.2"));
        assert_eq!(cublas_version_text(13, -1, 2), None);
    }

    #[test]
    fn entries_are_trimmed_bounded_and_never_empty() {
        let e = entry("kernel", "6.8.0-49-generic\n").unwrap();
        assert_eq!(
            (e.name.as_str(), e.version.as_str()),
            ("kernel", "6.8.0-49-generic")
        );
        assert_eq!(entry("kernel", " \n"), None);
        let long = entry("x", &"é".repeat(MAX_SOFTWARE_TEXT_BYTES)).unwrap();
        assert_eq!(long.version.len(), MAX_SOFTWARE_TEXT_BYTES);
    }

    #[test]
    fn host_entries_come_from_the_files_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("hallmark-sw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rel = dir.join("osrelease");
        std::fs::write(&rel, "6.1.0-test\n").unwrap();
        let cpuinfo = "processor\t: 0\nmodel name\t: Some CPU\nmicrocode\t: 0x2b000603\n";
        let got = host(&rel, Some(cpuinfo));
        let pairs: Vec<(&str, &str)> = got
            .iter()
            .map(|s| (s.name.as_str(), s.version.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("kernel", "6.1.0-test"), ("cpu_microcode", "0x2b000603")]
        );
        assert!(host(&dir.join("absent"), Some("model name : x\n")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_simulator_reports_its_model_version() {
        let s = simulator();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "simulator");
        assert_eq!(s[0].version, env!("CARGO_PKG_VERSION"));
    }
}
