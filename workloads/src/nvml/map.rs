//! From NVML's raw answers to the backend's readings and sensor table (pure, unit-tested with
//! plain values).
//!
//! Every value that could not be read stays `None` — never 0 — and [`status`] records why, so
//! `--list-devices` shows each sensor as present or absent with its reason. When NVML itself
//! cannot be loaded, [`absent_everywhere`] marks every sensor of every device absent with that
//! reason.

use crate::backend::{DeviceReading, SensorStatus};
use nvml_wrapper::enums::device::SampleValue;

/// The sensors read per GPU, in the order `--list-devices` shows them, with where each comes from.
pub const SENSORS: [(&str, &str); 14] = [
    // The detail says which source answered ([`PowerSource`]).
    ("power", "NVML power"),
    (
        "energy counter",
        "NVML total energy consumption (mJ since driver load)",
    ),
    ("GPU temperature", "NVML temperature (GPU sensor)"),
    ("memory temperature", "NVML field NVML_FI_DEV_MEMORY_TEMP"),
    ("SM clock", "NVML current clock (SM)"),
    ("memory clock", "NVML current clock (memory)"),
    ("utilisation", "NVML utilisation rates (GPU)"),
    ("throttle reasons", "NVML current clock-event reasons"),
    (
        "ECC volatile corrected",
        "NVML total ECC errors (corrected, volatile)",
    ),
    (
        "ECC volatile uncorrected",
        "NVML total ECC errors (uncorrected, volatile)",
    ),
    ("XID events", "NVML event set (critical XID errors)"),
    ("PCIe throughput", "NVML PCIe throughput counters (TX/RX)"),
    ("PCIe replay counter", "NVML PCIe replay counter"),
    (
        "NVLink counters",
        "NVML NVLink fields (link count, throughput, error totals)",
    ),
];

/// What NVML answered for the values a telemetry `Sample` carries, for one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawReading {
    pub power_w: Option<f64>,
    /// Energy counter, mJ since the driver loaded.
    pub energy_mj: Option<u64>,
    pub gpu_temp_c: Option<f64>,
    pub mem_temp_c: Option<f64>,
    pub sm_clock_mhz: Option<u32>,
    pub util_pct: Option<f64>,
    /// Clock-event reason bits; `None` when they could not be read.
    pub throttle_reasons: Option<u64>,
}

/// Everything else NVML reads for one device: shown by `--list-devices` and `bench gemm`, and
/// serialisable so that telemetry can carry it later. Counters are cumulative since the driver
/// loaded (ECC volatile counts, NVLink KiB and errors) or since the backend started (XID events).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ExtendedReading {
    pub mem_clock_mhz: Option<u32>,
    pub ecc_corrected_volatile: Option<u64>,
    pub ecc_uncorrected_volatile: Option<u64>,
    /// PCIe throughput over NVML's 20 ms window, KiB/s.
    pub pcie_tx_kib_s: Option<u32>,
    pub pcie_rx_kib_s: Option<u32>,
    pub pcie_replays: Option<u64>,
    pub nvlink_links: Option<u64>,
    /// NVLink data sent and received over all links, KiB since the driver loaded.
    pub nvlink_tx_kib: Option<u64>,
    pub nvlink_rx_kib: Option<u64>,
    /// NVLink CRC (flit and data), replay and recovery error totals over all links.
    pub nvlink_crc_errors: Option<u64>,
    pub nvlink_replay_errors: Option<u64>,
    pub nvlink_recovery_errors: Option<u64>,
    /// Critical XID errors seen since the backend started, and the last one's number.
    pub xid_events: Option<u64>,
    pub last_xid: Option<u64>,
}

/// A field value as `f64` (any of NVML's value types).
pub fn field_f64(v: &SampleValue) -> f64 {
    match *v {
        SampleValue::F64(x) => x,
        SampleValue::U32(x) => f64::from(x),
        SampleValue::U64(x) => x as f64,
        SampleValue::I64(x) => x as f64,
    }
}

/// A field value as `u64`; negative and non-finite values are `None`.
pub fn field_u64(v: &SampleValue) -> Option<u64> {
    match *v {
        SampleValue::F64(x) if x.is_finite() && x >= 0.0 => Some(x as u64),
        SampleValue::F64(_) => None,
        SampleValue::U32(x) => Some(u64::from(x)),
        SampleValue::U64(x) => Some(x),
        SampleValue::I64(x) => u64::try_from(x).ok(),
    }
}

/// mW to W.
pub fn milliwatts(mw: f64) -> f64 {
    mw / 1000.0
}

/// Where a GPU's power reading comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerSource {
    /// The field `NVML_FI_DEV_POWER_INSTANT`: the power now.
    Instant,
    /// `nvmlDeviceGetPowerUsage`: on Ampere and newer a one-second average. Read where the
    /// instant field is refused (older drivers, vGPU, sandboxed runtimes); the power controller
    /// then sees the power about half a second late.
    Average,
}

impl PowerSource {
    /// Where the value comes from, for the sensor table.
    pub fn describe(self) -> &'static str {
        match self {
            PowerSource::Instant => "NVML field NVML_FI_DEV_POWER_INSTANT (instant)",
            PowerSource::Average => "NVML power usage (1 s average)",
        }
    }
}

/// A GPU's power in W and where it came from: the instant field where it answers, else the
/// one-second average (`average`, W, asked only then). Both refused: why, for each.
pub fn choose_power(
    instant: Result<f64, String>,
    average: impl FnOnce() -> Result<f64, String>,
) -> Result<(f64, PowerSource), String> {
    match instant {
        // A powered GPU never draws 0 W: a 0 from the field is a driver that does not fill it.
        Ok(w) if w.is_finite() && w > 0.0 => Ok((w, PowerSource::Instant)),
        first => {
            let first = match first {
                Ok(w) => format!("it read {w}"),
                Err(e) => e,
            };
            match average() {
                Ok(w) if w.is_finite() && w > 0.0 => Ok((w, PowerSource::Average)),
                Ok(w) => Err(format!(
                    "instant power field: {first}; power usage: it read {w}"
                )),
                Err(e) => Err(format!("instant power field: {first}; power usage: {e}")),
            }
        }
    }
}

/// The sensor-table detail of a power reading: the source, the value, and where the average
/// stands in, why the instant field did not answer.
pub fn power_detail(
    reading: Result<(f64, PowerSource), String>,
    instant_error: Option<&str>,
) -> Result<String, String> {
    let (w, source) = reading?;
    let mut d = answered(source.describe(), format!("{w:.1} W"));
    if let (PowerSource::Average, Some(e)) = (source, instant_error) {
        d.push_str(&format!(" (the instant field was refused: {e})"));
    }
    Ok(d)
}

/// Energy in J between the counter's value at `origin_mj` and `now_mj`. `None` when either is
/// missing, or when the counter went backwards (the driver reloaded): unknown, not 0.
pub fn energy_since(origin_mj: Option<u64>, now_mj: Option<u64>) -> Option<f64> {
    let (o, n) = (origin_mj?, now_mj?);
    (n >= o).then(|| (n - o) as f64 / 1000.0)
}

/// The reading the probe samples, from NVML's answers. Throttle reasons that could not be read
/// are 0 here (the protocol carries a mask, not an option); `sensors()` says they are absent.
pub fn device_reading(
    device: u16,
    raw: &RawReading,
    energy_origin_mj: Option<u64>,
) -> DeviceReading {
    DeviceReading {
        device,
        power_w: raw.power_w,
        energy_j: energy_since(energy_origin_mj, raw.energy_mj),
        gpu_temp_c: raw.gpu_temp_c,
        mem_temp_c: raw.mem_temp_c,
        sm_clock_mhz: raw.sm_clock_mhz,
        util_pct: raw.util_pct,
        throttle_reasons: raw.throttle_reasons.unwrap_or(0),
        shut_down: false,
    }
}

/// A reading with every sensor absent (the device has no NVML counterpart, or NVML failed).
pub fn absent_reading(device: u16) -> DeviceReading {
    device_reading(device, &RawReading::default(), None)
}

/// One sensor's status: `Ok(detail)` when it answered (detail: where it is read), `Err(why)`
/// when it did not.
pub fn status(name: &str, device: Option<u16>, probe: Result<String, String>) -> SensorStatus {
    let (available, detail) = match probe {
        Ok(d) => (true, d),
        Err(why) => (false, why),
    };
    SensorStatus {
        name: name.to_string(),
        device,
        available,
        detail,
    }
}

/// Every sensor of every device in `devices` absent, because of `why` (NVML failed to load or
/// to initialise, or the device is not NVML's).
pub fn absent_everywhere(devices: &[u16], why: &str) -> Vec<SensorStatus> {
    devices
        .iter()
        .flat_map(|&d| {
            SENSORS
                .iter()
                .map(move |(name, _)| status(name, Some(d), Err(why.to_string())))
        })
        .collect()
}

/// The detail of an answered sensor: where it comes from, with `value` as read.
pub fn answered(source: &str, value: impl std::fmt::Display) -> String {
    format!("{source}: {value}")
}
