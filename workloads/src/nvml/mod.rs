//! NVML sensors of NVIDIA GPUs (nvml-wrapper), for the cuda backend.
//!
//! [`NvmlSensors`] loads `libnvidia-ml.so.1` at run time (an error, never a panic, where it is
//! missing) and reads, per GPU:
//! - what a telemetry `Sample` carries ([`NvmlSensors::read`]): power, from the field
//!   `NVML_FI_DEV_POWER_INSTANT`, and where that is refused (older drivers, vGPU, sandboxed
//!   runtimes) from `power_usage()`, a one-second average on Ampere and newer ([`PowerSource`];
//!   the sensor table says which answered),
//!   the energy counter (`total_energy_consumption`, mJ), GPU and memory temperature, SM clock,
//!   utilisation and the clock-event (throttle) reason bits
//!   (`nvmlDeviceGetCurrentClocksEventReasons`, or its older name where a library lacks it);
//! - the rest ([`NvmlSensors::extended`], an [`ExtendedReading`]): memory clock, volatile ECC
//!   counts, PCIe throughput and replays, NVLink link count, data and error totals (the NVLink
//!   throughput fields are read over all links with scope `UINT_MAX`, which nvml-wrapper cannot
//!   pass, so that one call goes to the library directly), and XID events (an NVML event set,
//!   [`XidWatch`], polled by the cuda backend's control thread);
//! - identity and limits ([`NvmlSensors::identity`]): name, UUID, serial, memory, enforced power
//!   limit, and the slowdown, shutdown and maximum operating temperatures as the device reports
//!   them.
//!
//! Every value that cannot be read is `None`, and [`NvmlSensors::sensors`] says which sensors
//! answer and why the others do not ([`map`]).

pub mod map;

pub use map::{ExtendedReading, PowerSource, RawReading};

use crate::backend::SensorStatus;
use map::{
    answered, choose_power, field_f64, field_u64, milliwatts, power_detail, status, SENSORS,
};
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::FieldValueSample;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id as fid;
use nvml_wrapper::{Device, EventSet, Nvml};
use std::ffi::OsStr;
use std::fmt;
use std::sync::Arc;

/// The file names NVML is loaded by, in order: the driver installs the first; the second exists
/// where the development package is installed.
pub const LIBRARY_NAMES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// Why NVML is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NvmlInitError {
    #[error(
        "NVML (libnvidia-ml.so.1) cannot be loaded: {0}; it is installed with the NVIDIA driver"
    )]
    Load(String),
    #[error(
        "NVML loaded but did not initialise: {0}; check that the NVIDIA kernel driver is loaded \
         (nvidia-smi works)"
    )]
    Init(String),
}

/// Identity and limits of one GPU as NVML reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub serial: Option<String>,
    pub memory_bytes: Option<u64>,
    pub power_limit_w: Option<f64>,
    pub slowdown_temp_c: Option<f64>,
    pub shutdown_temp_c: Option<f64>,
    pub max_operating_temp_c: Option<f64>,
}

/// A loaded and initialised NVML; cheap to clone (one library, shared).
#[derive(Clone)]
pub struct NvmlSensors {
    nvml: Arc<Nvml>,
}

impl fmt::Debug for NvmlSensors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NvmlSensors").finish_non_exhaustive()
    }
}

/// `e` as text.
fn why(e: NvmlError) -> String {
    format!("NVML: {e}")
}

impl NvmlSensors {
    /// Loads NVML by each of [`LIBRARY_NAMES`] in turn and initialises it.
    pub fn init() -> Result<Self, NvmlInitError> {
        let mut load_errors = Vec::new();
        for name in LIBRARY_NAMES {
            match Nvml::builder().lib_path(OsStr::new(name)).init() {
                Ok(nvml) => {
                    return Ok(NvmlSensors {
                        nvml: Arc::new(nvml),
                    })
                }
                Err(NvmlError::LibloadingError(e)) => load_errors.push(e.to_string()),
                Err(e) => return Err(NvmlInitError::Init(e.to_string())),
            }
        }
        Err(NvmlInitError::Load(load_errors.join("; ")))
    }

    /// The number of GPUs NVML sees.
    pub fn device_count(&self) -> Result<u32, String> {
        self.nvml.device_count().map_err(why)
    }

    /// The driver's version, e.g. `580.65.06`.
    pub fn driver_version(&self) -> Option<String> {
        self.nvml.sys_driver_version().ok()
    }

    fn device(&self, index: u32) -> Result<Device<'_>, String> {
        self.nvml.device_by_index(index).map_err(why)
    }

    /// NVML's index of the GPU with this UUID (`GPU-…`).
    pub fn index_of_uuid(&self, uuid: &str) -> Option<u32> {
        self.nvml.device_by_uuid(uuid).ok()?.index().ok()
    }

    /// Identity and limits of GPU `index`.
    pub fn identity(&self, index: u32) -> Identity {
        let Ok(d) = self.device(index) else {
            return Identity::default();
        };
        let threshold = |t: TemperatureThreshold| d.temperature_threshold(t).ok().map(f64::from);
        Identity {
            name: d.name().ok(),
            uuid: d.uuid().ok(),
            serial: d.serial().ok().filter(|s| !s.trim().is_empty()),
            memory_bytes: d.memory_info().ok().map(|m| m.total),
            power_limit_w: d
                .enforced_power_limit()
                .ok()
                .map(|mw| milliwatts(f64::from(mw))),
            slowdown_temp_c: threshold(TemperatureThreshold::Slowdown),
            shutdown_temp_c: threshold(TemperatureThreshold::Shutdown),
            max_operating_temp_c: threshold(TemperatureThreshold::GpuMax),
        }
    }

    /// Field values of `d`, one result per id, in order.
    fn fields(d: &Device<'_>, ids: &[u32]) -> Vec<Result<SampleValue, String>> {
        let wanted: Vec<FieldId> = ids.iter().map(|&i| FieldId(i)).collect();
        let mut out: Vec<Result<SampleValue, String>> = match d.field_values_for(&wanted) {
            Ok(values) => values
                .into_iter()
                .map(|r| {
                    r.map_err(why)
                        .and_then(|s: FieldValueSample| s.value.map_err(why))
                })
                .collect(),
            Err(e) => vec![Err(why(e)); ids.len()],
        };
        out.resize_with(ids.len(), || Err("NVML returned fewer fields".into()));
        out
    }

    /// The instant power field of `d`, W.
    fn instant_field(d: &Device<'_>) -> Result<f64, String> {
        let v = Self::fields(d, &[fid::NVML_FI_DEV_POWER_INSTANT]);
        match v.into_iter().next() {
            Some(Ok(v)) => Ok(milliwatts(field_f64(&v))),
            Some(Err(e)) => Err(e),
            None => Err("no answer".into()),
        }
    }

    /// The power of `d` ([`choose_power`]); `instant` is its instant field, read already.
    fn power_of(
        d: &Device<'_>,
        instant: Result<f64, String>,
    ) -> Result<(f64, PowerSource), String> {
        choose_power(instant, || {
            d.power_usage()
                .map(|mw| milliwatts(f64::from(mw)))
                .map_err(why)
        })
    }

    /// The power of GPU `index`, W, and where it came from: the instant field, or where that is
    /// refused the one-second average.
    pub fn power(&self, index: u32) -> Result<(f64, PowerSource), String> {
        let d = self.device(index)?;
        Self::power_of(&d, Self::instant_field(&d))
    }

    /// [`Self::power`] in W, `None` where neither source answers.
    pub fn power_w(&self, index: u32) -> Option<f64> {
        self.power(index).ok().map(|(w, _)| w)
    }

    /// The energy counter of GPU `index`, mJ since the driver loaded.
    pub fn energy_mj(&self, index: u32) -> Option<u64> {
        self.device(index).ok()?.total_energy_consumption().ok()
    }

    /// What a telemetry sample carries, for GPU `index`.
    pub fn read(&self, index: u32) -> RawReading {
        let Ok(d) = self.device(index) else {
            return RawReading::default();
        };
        let f = Self::fields(
            &d,
            &[fid::NVML_FI_DEV_POWER_INSTANT, fid::NVML_FI_DEV_MEMORY_TEMP],
        );
        let value = |i: usize| f.get(i).and_then(|r| r.as_ref().ok()).map(field_f64);
        let instant = value(0)
            .map(milliwatts)
            .ok_or_else(|| "no answer".to_string());
        RawReading {
            power_w: Self::power_of(&d, instant).ok().map(|(w, _)| w),
            energy_mj: d.total_energy_consumption().ok(),
            gpu_temp_c: d.temperature(TemperatureSensor::Gpu).ok().map(f64::from),
            mem_temp_c: value(1),
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            util_pct: d.utilization_rates().ok().map(|u| f64::from(u.gpu)),
            throttle_reasons: self.clock_event_reasons(&d).ok(),
        }
    }

    /// The clock-event ("throttle") reason bits of `d`, all of them: read with
    /// `nvmlDeviceGetCurrentClocksEventReasons`, the current name, and where a library lacks it
    /// with the older `nvmlDeviceGetCurrentClocksThrottleReasons` (which nvml-wrapper calls; it
    /// drops bits it does not know).
    fn clock_event_reasons(&self, d: &Device<'_>) -> Result<u64, String> {
        if let Ok(sym) = self
            .nvml
            .lib()
            .nvmlDeviceGetCurrentClocksEventReasons
            .as_ref()
        {
            let mut bits: std::ffi::c_ulonglong = 0;
            // SAFETY: the handle is a live device of this NVML; NVML writes one integer.
            let ret = unsafe { sym(d.handle(), &mut bits) };
            return nvml_wrapper::error::nvml_try(ret)
                .map(|()| bits)
                .map_err(why);
        }
        d.current_throttle_reasons().map(|r| r.bits()).map_err(why)
    }

    /// NVLink data KiB sent and received over all links (scope `UINT_MAX`: the sum of the links).
    fn nvlink_throughput(&self, d: &Device<'_>) -> (Option<u64>, Option<u64>) {
        use nvml_wrapper_sys::bindings::{nvmlFieldValue_t, nvmlReturn_enum_NVML_SUCCESS};
        let Ok(sym) = self.nvml.lib().nvmlDeviceGetFieldValues.as_ref() else {
            return (None, None);
        };
        // SAFETY: an all-zero nvmlFieldValue_t is valid (plain integers and a union of numbers).
        let mut values: [nvmlFieldValue_t; 2] = unsafe { std::mem::zeroed() };
        values[0].fieldId = fid::NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX;
        values[1].fieldId = fid::NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX;
        for v in &mut values {
            v.scopeId = u32::MAX;
        }
        // SAFETY: the handle is a live device of this NVML; `values` holds the 2 entries passed.
        let ret = unsafe { sym(d.handle(), 2, values.as_mut_ptr()) };
        if ret != nvmlReturn_enum_NVML_SUCCESS {
            return (None, None);
        }
        let read = |v: nvmlFieldValue_t| {
            FieldValueSample::try_from(v)
                .ok()
                .and_then(|s| s.value.ok())
                .and_then(|v| field_u64(&v))
        };
        (read(values[0]), read(values[1]))
    }

    /// Everything else for GPU `index`; `xid` is what the XID watch counted for it (`None`: not
    /// watched). Takes about 20 ms (NVML samples PCIe throughput over that long).
    pub fn extended(&self, index: u32, xid: Option<(u64, Option<u64>)>) -> ExtendedReading {
        let Ok(d) = self.device(index) else {
            return ExtendedReading::default();
        };
        let f = Self::fields(
            &d,
            &[
                fid::NVML_FI_DEV_NVLINK_LINK_COUNT,
                fid::NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL,
                fid::NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
                fid::NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL,
                fid::NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
            ],
        );
        let value = |i: usize| f.get(i).and_then(|r| r.as_ref().ok()).and_then(field_u64);
        let links = value(0);
        let has_links = links.is_some_and(|l| l > 0);
        let (tx, rx) = if has_links {
            self.nvlink_throughput(&d)
        } else {
            (None, None)
        };
        let on_links = |v: Option<u64>| v.filter(|_| has_links);
        let crc = match (value(1), value(2)) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            (a, b) => a.or(b),
        };
        ExtendedReading {
            mem_clock_mhz: d.clock_info(Clock::Memory).ok(),
            ecc_corrected_volatile: d
                .total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
                .ok(),
            ecc_uncorrected_volatile: d
                .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
                .ok(),
            pcie_tx_kib_s: d.pcie_throughput(PcieUtilCounter::Send).ok(),
            pcie_rx_kib_s: d.pcie_throughput(PcieUtilCounter::Receive).ok(),
            pcie_replays: d.pcie_replay_counter().ok().map(u64::from),
            nvlink_links: links,
            nvlink_tx_kib: tx,
            nvlink_rx_kib: rx,
            nvlink_crc_errors: on_links(crc),
            nvlink_replay_errors: on_links(value(3)),
            nvlink_recovery_errors: on_links(value(4)),
            xid_events: xid.map(|(n, _)| n),
            last_xid: xid.and_then(|(_, last)| last),
        }
    }

    /// Which sensors of GPU `index` answer (the backend numbers it `device`); `xid` says whether
    /// XID events are watched for it.
    pub fn sensors(&self, index: u32, device: u16, xid: Result<(), String>) -> Vec<SensorStatus> {
        let d = match self.device(index) {
            Ok(d) => d,
            Err(e) => return map::absent_everywhere(&[device], &e),
        };
        let src = |i: usize| SENSORS.get(i).map_or("", |(_, s)| *s);
        let f = Self::fields(
            &d,
            &[
                fid::NVML_FI_DEV_POWER_INSTANT,
                fid::NVML_FI_DEV_MEMORY_TEMP,
                fid::NVML_FI_DEV_NVLINK_LINK_COUNT,
            ],
        );
        let field = |i: usize| f.get(i).cloned().unwrap_or_else(|| Err("no answer".into()));
        let probes: [Result<String, String>; 14] = [
            {
                let instant = field(0).map(|v| milliwatts(field_f64(&v)));
                let refused = instant.as_ref().err().cloned();
                power_detail(Self::power_of(&d, instant), refused.as_deref())
            },
            d.total_energy_consumption()
                .map(|mj| answered(src(1), format!("{:.1} kJ", mj as f64 / 1e6)))
                .map_err(why),
            d.temperature(TemperatureSensor::Gpu)
                .map(|t| answered(src(2), format!("{t} °C")))
                .map_err(why),
            field(1).map(|v| answered(src(3), format!("{} °C", field_f64(&v)))),
            d.clock_info(Clock::SM)
                .map(|c| answered(src(4), format!("{c} MHz")))
                .map_err(why),
            d.clock_info(Clock::Memory)
                .map(|c| answered(src(5), format!("{c} MHz")))
                .map_err(why),
            d.utilization_rates()
                .map(|u| answered(src(6), format!("{} %", u.gpu)))
                .map_err(why),
            self.clock_event_reasons(&d)
                .map(|bits| answered(src(7), crate::throttle::describe(bits))),
            d.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
                .map(|n| answered(src(8), n))
                .map_err(why),
            d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
                .map(|n| answered(src(9), n))
                .map_err(why),
            xid.map(|()| src(10).to_string()),
            d.pcie_throughput(PcieUtilCounter::Send)
                .map(|kib| answered(src(11), format!("TX {kib} KiB/s")))
                .map_err(why),
            d.pcie_replay_counter()
                .map(|n| answered(src(12), n))
                .map_err(why),
            match field(2) {
                Ok(v) => match field_u64(&v) {
                    Some(n) if n > 0 => Ok(answered(src(13), format!("{n} links"))),
                    _ => Err("no NVLink links on this device".to_string()),
                },
                Err(e) => Err(e),
            },
        ];
        SENSORS
            .iter()
            .zip(probes)
            .map(|((name, _), probe)| status(name, Some(device), probe))
            .collect()
    }

    /// Starts watching critical XID errors of the GPUs `indices` (NVML's).
    pub fn watch_xid(&self, indices: &[u32]) -> XidWatch<'_> {
        XidWatch::new(&self.nvml, indices)
    }
}

/// An NVML event set of critical XID errors over some GPUs. It borrows the NVML it was made
/// from, so it lives in the thread that polls it.
pub struct XidWatch<'a> {
    set: Option<EventSet<'a>>,
    /// Per GPU (NVML index): watched, or why not.
    pub registered: Vec<(u32, Result<(), String>)>,
}

impl<'a> XidWatch<'a> {
    fn new(nvml: &'a Nvml, indices: &[u32]) -> Self {
        let mut registered: Vec<(u32, Result<(), String>)> = Vec::new();
        let mut watched: Vec<u32> = Vec::new();
        let mut set = nvml.create_event_set().ok();
        for &index in indices {
            let outcome = (|| -> Result<(), String> {
                let d = nvml.device_by_index(index).map_err(why)?;
                let supported = d.supported_event_types().map_err(why)?;
                if !supported.contains(EventTypes::CRITICAL_XID_ERROR) {
                    return Err("this device does not report XID events".into());
                }
                let s = set
                    .take()
                    .ok_or_else(|| "NVML could not make an event set".to_string())?;
                match d.register_events(EventTypes::CRITICAL_XID_ERROR, s) {
                    Ok(s) => {
                        set = Some(s);
                        Ok(())
                    }
                    Err(e) => {
                        // NVML released the set: make a new one with the devices watched so far.
                        set = Self::rebuild(nvml, &watched);
                        Err(format!("NVML: {}", e.error))
                    }
                }
            })();
            if outcome.is_ok() {
                watched.push(index);
            }
            registered.push((index, outcome));
        }
        XidWatch {
            set: set.filter(|_| !watched.is_empty()),
            registered,
        }
    }

    fn rebuild(nvml: &'a Nvml, watched: &[u32]) -> Option<EventSet<'a>> {
        let mut set = nvml.create_event_set().ok()?;
        for &index in watched {
            let d = nvml.device_by_index(index).ok()?;
            set = d
                .register_events(EventTypes::CRITICAL_XID_ERROR, set)
                .ok()?;
        }
        Some(set)
    }

    /// Whether any GPU is watched.
    pub fn active(&self) -> bool {
        self.set.is_some()
    }

    /// Whether GPU `index` (NVML's) is watched, or why not.
    pub fn status(&self, index: u32) -> Result<(), String> {
        self.registered
            .iter()
            .find(|(i, _)| *i == index)
            .map_or_else(|| Err("not watched".into()), |(_, r)| r.clone())
    }

    /// Waits up to `timeout_ms` for an XID event: `(NVML index, XID number if known)`. `None`
    /// after the timeout, on an error, or at once when nothing is watched.
    pub fn wait(&self, timeout_ms: u32) -> Option<(u32, Option<u64>)> {
        let set = self.set.as_ref()?;
        let event = set.wait(timeout_ms).ok()?;
        if !event.event_type.contains(EventTypes::CRITICAL_XID_ERROR) {
            return None;
        }
        let index = event.device.index().ok()?;
        let xid = match event.event_data {
            Some(XidError::Value(x)) => Some(x),
            _ => None,
        };
        Some((index, xid))
    }
}

#[cfg(test)]
mod tests;
