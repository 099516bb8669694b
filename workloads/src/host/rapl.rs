//! RAPL energy counters from the Linux powercap sysfs tree (default [`DEFAULT_POWERCAP_ROOT`]).
//!
//! # Zones
//! The kernel's RAPL driver lists its zones under the powercap class as `intel-rapl:N` (one per CPU
//! package, `name` = `package-N`, or `package-N-die-M` on multi-die packages; `psys` for the
//! platform zone of some client machines) and `intel-rapl:N:M` (subzones of zone `N`: `dram`,
//! `core`, `uncore`). AMD CPUs are served by the same driver under the same names; a tree that names
//! its zones `amd-rapl:N[:M]` is read the same way. `intel-rapl-mmio:*` zones repeat the package
//! zone through another interface and are skipped, so energy is not counted twice. The number in
//! `package-N` is the CPU's physical package id, the same id as the cpu backend's sockets.
//!
//! # Counters
//! Each zone's `energy_uj` is a µJ counter that wraps at `max_energy_range_uj`: a reading lower than
//! the one before means it wrapped, and the energy in between is `max − previous + current`. Energy
//! is accumulated from the first read (when [`Rapl::discover`] runs), so it is "energy since the
//! reader started"; power is Δenergy / Δt between two reads at least [`MIN_POWER_WINDOW`] apart
//! (closer reads return the previous power), `None` until two reads exist. Times come from the
//! caller, so tests inject them.
//!
//! # Absence
//! Zones are found once, at discovery. A zone whose `name`, `energy_uj` or `max_energy_range_uj`
//! is missing, unreadable (these files are root-only on most kernels) or malformed is absent: it is
//! listed with the reason ([`Rapl::absent`]) and never read as 0 W. A zone whose counter fails to
//! read later reads `None` while it fails and carries the error.

use super::sysfs::{read_text, read_u64, SysfsError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Linux exposes the powercap class.
pub const DEFAULT_POWERCAP_ROOT: &str = "/sys/class/powercap";
/// The zone-name prefixes read (the part of a zone directory's name before the first `:`).
pub const ZONE_PREFIXES: [&str; 2] = ["intel-rapl", "amd-rapl"];
/// The shortest interval power is computed over; closer reads reuse the previous power. RAPL
/// counters update about every millisecond, so this keeps the quantisation error under ~5 %.
pub const MIN_POWER_WINDOW: Duration = Duration::from_millis(20);

/// What a zone measures, from its `name` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneKind {
    /// A CPU package (`package-N`), or one die of it (`package-N-die-M`).
    Package { die: Option<u32> },
    /// The memory attached to a package (`dram`).
    Dram,
    /// The cores of a package (`core`, "PP0").
    Core,
    /// The uncore or integrated graphics of a package (`uncore`, "PP1").
    Uncore,
    /// The whole platform (`psys`).
    Psys,
    /// A name this reader does not interpret; read and listed, attributed to no socket sum.
    Other,
}

impl ZoneKind {
    /// The kind and physical package id a zone's `name` says. `None`: a top-level name that looks
    /// like a package but does not parse.
    fn parse(name: &str) -> Option<(ZoneKind, Option<u32>)> {
        if let Some(rest) = name.strip_prefix("package-") {
            let (package, die) = match rest.split_once("-die-") {
                Some((p, d)) => (p, Some(d.parse().ok()?)),
                None => (rest, None),
            };
            return Some((ZoneKind::Package { die }, Some(package.parse().ok()?)));
        }
        let kind = match name {
            "dram" => ZoneKind::Dram,
            "core" => ZoneKind::Core,
            "uncore" => ZoneKind::Uncore,
            "psys" => ZoneKind::Psys,
            _ => ZoneKind::Other,
        };
        Some((kind, None))
    }
}

/// One readable RAPL zone and its accumulated energy.
#[derive(Debug, Clone)]
pub struct RaplZone {
    /// The directory name, e.g. `intel-rapl:0:0`.
    pub dir: String,
    /// The `energy_uj` file.
    pub energy_path: PathBuf,
    /// The zone's `name`, e.g. `package-0`, `dram`.
    pub name: String,
    pub kind: ZoneKind,
    /// The physical package id (a subzone's is its parent's); `None` for psys and unknown zones.
    pub package: Option<u32>,
    /// Where the counter wraps, µJ.
    pub max_range_uj: u64,
    last_raw: u64,
    accumulated_uj: u64,
    /// (time, accumulated µJ) at the start of the current power window.
    power_mark: (Duration, u64),
    power_w: Option<f64>,
    /// The error of the most recent read, if it failed.
    error: Option<SysfsError>,
}

impl RaplZone {
    /// The label used in sensor lists and logs: `RAPL package-0`, `RAPL package-0 dram`.
    pub fn label(&self) -> String {
        match (&self.kind, self.package) {
            (ZoneKind::Package { .. }, _) | (_, None) => format!("RAPL {}", self.name),
            (_, Some(p)) => format!("RAPL package-{p} {}", self.name),
        }
    }

    /// Energy since discovery, J; `None` while the counter fails to read.
    pub fn energy_j(&self) -> Option<f64> {
        match self.error {
            Some(_) => None,
            None => Some(self.accumulated_uj as f64 / 1e6),
        }
    }

    /// Power over the last window, W; `None` before two reads or while the counter fails to read.
    pub fn power_w(&self) -> Option<f64> {
        match self.error {
            Some(_) => None,
            None => self.power_w,
        }
    }

    /// Why the most recent read failed.
    pub fn error(&self) -> Option<&SysfsError> {
        self.error.as_ref()
    }

    /// Reads the counter at `now`: accumulates across a wrap-around, updates power.
    fn read(&mut self, now: Duration) {
        let raw = match read_u64(&self.energy_path) {
            Ok(raw) => raw,
            Err(e) => {
                if self.error.as_ref() != Some(&e) {
                    tracing::warn!("{}: {e}", self.label());
                }
                self.error = Some(e);
                return;
            }
        };
        if self.error.take().is_some() {
            tracing::info!("{}: readable again", self.label());
        }
        let delta = if raw >= self.last_raw {
            raw - self.last_raw
        } else {
            // Wrapped at max_energy_range_uj.
            self.max_range_uj
                .saturating_sub(self.last_raw)
                .saturating_add(raw)
        };
        self.last_raw = raw;
        self.accumulated_uj = self.accumulated_uj.saturating_add(delta);
        let (t0, e0) = self.power_mark;
        if let Some(dt) = now.checked_sub(t0).filter(|dt| *dt >= MIN_POWER_WINDOW) {
            let joules = self.accumulated_uj.saturating_sub(e0) as f64 / 1e6;
            self.power_w = Some(joules / dt.as_secs_f64());
            self.power_mark = (now, self.accumulated_uj);
        }
    }
}

/// A zone found in the tree that cannot be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsentZone {
    pub dir: String,
    /// Its `name`, where that could be read.
    pub name: Option<String>,
    /// Its physical package id, where known.
    pub package: Option<u32>,
    pub reason: SysfsError,
}

impl AbsentZone {
    /// The label used in sensor lists: `RAPL package-0 dram`, or the directory where the name is
    /// unknown.
    pub fn label(&self) -> String {
        match (&self.name, self.package) {
            (Some(n), Some(p)) if !n.starts_with("package-") => format!("RAPL package-{p} {n}"),
            (Some(n), _) => format!("RAPL {n}"),
            (None, _) => format!("RAPL {}", self.dir),
        }
    }
}

/// The RAPL zones of a powercap tree.
#[derive(Debug, Clone)]
pub struct Rapl {
    root: PathBuf,
    zones: Vec<RaplZone>,
    absent: Vec<AbsentZone>,
    /// Why the tree itself could not be listed.
    tree_error: Option<SysfsError>,
}

/// A zone directory name split: (prefix, zone number, subzone number).
fn parse_dir(name: &str) -> Option<(&str, u32, Option<u32>)> {
    let mut parts = name.split(':');
    let prefix = parts.next()?;
    if !ZONE_PREFIXES.contains(&prefix) {
        return None;
    }
    let zone = parts.next()?.parse().ok()?;
    let sub = match parts.next() {
        Some(s) => Some(s.parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((prefix, zone, sub))
}

impl Rapl {
    /// Lists the RAPL zones under `root` and reads each once (at `now`), which starts its energy
    /// count. Never fails: what cannot be read is recorded as absent.
    pub fn discover(root: &Path, now: Duration) -> Rapl {
        let mut rapl = Rapl {
            root: root.to_path_buf(),
            zones: Vec::new(),
            absent: Vec::new(),
            tree_error: None,
        };
        let entries = match std::fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) => {
                rapl.tree_error = Some(SysfsError::from_io(root, &e));
                tracing::debug!("no RAPL: {}", rapl.describe_tree_error());
                return rapl;
            }
        };
        let mut dirs: Vec<(String, &'static str, u32, Option<u32>)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (prefix, zone, sub) = parse_dir(&name)?;
                let prefix = ZONE_PREFIXES.iter().find(|p| **p == prefix)?;
                Some((name, *prefix, zone, sub))
            })
            .collect();
        // Top-level zones first (their packages name their subzones'), then in numeric order.
        dirs.sort_by_key(|(_, prefix, zone, sub)| (sub.is_some(), *prefix, *zone, *sub));
        for (dir, prefix, zone, sub) in dirs {
            let parent_package = match sub {
                None => None,
                Some(_) => rapl
                    .zones
                    .iter()
                    .map(|z| (&z.dir, z.package))
                    .chain(rapl.absent.iter().map(|a| (&a.dir, a.package)))
                    .find(|(d, _)| **d == format!("{prefix}:{zone}"))
                    .and_then(|(_, p)| p),
            };
            match rapl.open_zone(&dir, sub.is_some(), parent_package, now) {
                Ok(z) => rapl.zones.push(z),
                Err(a) => {
                    tracing::debug!("{} absent: {}", a.label(), a.reason);
                    rapl.absent.push(a);
                }
            }
        }
        tracing::debug!(
            "RAPL under {}: {} zones readable, {} absent",
            root.display(),
            rapl.zones.len(),
            rapl.absent.len()
        );
        rapl
    }

    fn open_zone(
        &self,
        dir: &str,
        subzone: bool,
        parent_package: Option<u32>,
        now: Duration,
    ) -> Result<RaplZone, AbsentZone> {
        let path = self.root.join(dir);
        let absent = |name: Option<String>, package, reason| AbsentZone {
            dir: dir.to_string(),
            name,
            package,
            reason,
        };
        let name = read_text(&path.join("name")).map_err(|e| absent(None, parent_package, e))?;
        let (kind, own_package) = ZoneKind::parse(&name).ok_or_else(|| {
            let content = name.chars().take(40).collect();
            let path = path.join("name").display().to_string();
            absent(None, None, SysfsError::Malformed { path, content })
        })?;
        let package = if subzone { parent_package } else { own_package };
        let max_range_uj = read_u64(&path.join("max_energy_range_uj"))
            .map_err(|e| absent(Some(name.clone()), package, e))?;
        let energy_path = path.join("energy_uj");
        let raw = read_u64(&energy_path).map_err(|e| absent(Some(name.clone()), package, e))?;
        Ok(RaplZone {
            dir: dir.to_string(),
            energy_path,
            name,
            kind,
            package,
            max_range_uj,
            last_raw: raw,
            accumulated_uj: 0,
            power_mark: (now, 0),
            power_w: None,
            error: None,
        })
    }

    /// Reads every readable zone at `now` (monotonic, from the same origin as discovery's).
    pub fn read(&mut self, now: Duration) {
        for z in &mut self.zones {
            z.read(now);
        }
    }

    /// The tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The zones that were readable at discovery.
    pub fn zones(&self) -> &[RaplZone] {
        &self.zones
    }

    /// The zones found but not readable, with the reasons.
    pub fn absent(&self) -> &[AbsentZone] {
        &self.absent
    }

    /// Why the tree could not be listed, if it could not.
    pub fn tree_error(&self) -> Option<&SysfsError> {
        self.tree_error.as_ref()
    }

    /// A sentence on why the tree gives nothing: missing, unreadable, or holding no RAPL zone.
    pub fn describe_tree_error(&self) -> String {
        let root = self.root.display();
        match &self.tree_error {
            Some(SysfsError::Missing { .. }) => format!(
                "no powercap tree at {root} (the kernel's RAPL driver is not loaded, or this is a \
                 VM that does not expose RAPL; try `modprobe intel_rapl_msr`)"
            ),
            Some(e) => format!("the powercap tree cannot be listed: {e}"),
            None if self.zones.is_empty() && self.absent.is_empty() => {
                format!("the powercap tree at {root} holds no RAPL zone")
            }
            None => format!("the powercap tree at {root} has RAPL zones"),
        }
    }

    /// Sum over the readable zones of `package` of kind `want` (dies of a package are summed):
    /// (power W, energy J, how many zones). `None` for a value when any contributing zone lacks it;
    /// zero zones give `(None, None, 0)`.
    pub fn package_sum(
        &self,
        package: u32,
        want: fn(&ZoneKind) -> bool,
    ) -> (Option<f64>, Option<f64>, usize) {
        let zones: Vec<&RaplZone> = self
            .zones
            .iter()
            .filter(|z| z.package == Some(package) && want(&z.kind))
            .collect();
        if zones.is_empty() {
            return (None, None, 0);
        }
        let power = zones.iter().map(|z| z.power_w()).sum::<Option<f64>>();
        let energy = zones.iter().map(|z| z.energy_j()).sum::<Option<f64>>();
        (power, energy, zones.len())
    }

    /// Absent zones of `package` of kind `want` (by name), with reasons.
    pub fn absent_of(&self, package: u32, want: fn(&ZoneKind) -> bool) -> Vec<&AbsentZone> {
        self.absent
            .iter()
            .filter(|a| {
                a.package == Some(package)
                    && a.name
                        .as_deref()
                        .and_then(ZoneKind::parse)
                        .is_some_and(|(k, _)| want(&k))
            })
            .collect()
    }
}

/// A package zone (or one of its dies).
pub fn is_package(kind: &ZoneKind) -> bool {
    matches!(kind, ZoneKind::Package { .. })
}

/// A DRAM subzone.
pub fn is_dram(kind: &ZoneKind) -> bool {
    *kind == ZoneKind::Dram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_directories_parse() {
        assert_eq!(
            ZoneKind::parse("package-1"),
            Some((ZoneKind::Package { die: None }, Some(1)))
        );
        assert_eq!(
            ZoneKind::parse("package-0-die-1"),
            Some((ZoneKind::Package { die: Some(1) }, Some(0)))
        );
        assert_eq!(ZoneKind::parse("package-x"), None);
        assert_eq!(ZoneKind::parse("package-0-die-"), None);
        assert_eq!(ZoneKind::parse("dram"), Some((ZoneKind::Dram, None)));
        assert_eq!(ZoneKind::parse("psys"), Some((ZoneKind::Psys, None)));
        assert_eq!(ZoneKind::parse("gpu"), Some((ZoneKind::Other, None)));
        assert_eq!(parse_dir("intel-rapl:0"), Some(("intel-rapl", 0, None)));
        assert_eq!(
            parse_dir("intel-rapl:1:0"),
            Some(("intel-rapl", 1, Some(0)))
        );
        assert_eq!(parse_dir("amd-rapl:2"), Some(("amd-rapl", 2, None)));
        assert_eq!(parse_dir("intel-rapl-mmio:0"), None);
        assert_eq!(parse_dir("intel-rapl"), None);
        assert_eq!(parse_dir("intel-rapl:a"), None);
        assert_eq!(parse_dir("intel-rapl:0:0:0"), None);
        assert_eq!(parse_dir("dtpm"), None);
    }
}
