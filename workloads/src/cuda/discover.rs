//! Finding the GPUs: which libraries load, what the CUDA driver and NVML see, which GPUs the
//! options pick, and the compare kernel compiled with NVRTC. Every call into cudarc here is
//! guarded, since cudarc panics where a library is missing.

use super::libs::{self, Library};
use super::{kernels, CudaError};
use crate::nvml::{NvmlInitError, NvmlSensors};

/// One GPU as the CUDA driver lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CudaDevice {
    pub ordinal: usize,
    pub name: String,
    /// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as NVML spells it.
    pub uuid: String,
    pub memory_bytes: u64,
}

/// A CUDA UUID's 16 bytes as NVML prints them.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Checks that the driver library and NVML load and returns NVML, or says what is missing.
pub(super) fn open_driver_and_nvml(need_compute: bool) -> Result<NvmlSensors, CudaError> {
    let mut missing: Vec<Library> = if need_compute {
        libs::missing_cuda_libraries()
    } else {
        [Library::Driver]
            .into_iter()
            .filter(|&l| !libs::cuda_library_present(l))
            .collect()
    };
    let nvml = NvmlSensors::init();
    let nvml_load_error = match &nvml {
        Err(NvmlInitError::Load(e)) => {
            missing.push(Library::Nvml);
            Some(e.clone())
        }
        _ => None,
    };
    if !missing.is_empty() {
        return Err(CudaError::Unavailable(libs::missing_message(
            &missing,
            nvml_load_error.as_deref(),
        )));
    }
    nvml.map_err(|e| CudaError::Unavailable(e.to_string()))
}

/// The GPUs the CUDA driver sees (after `CUDA_VISIBLE_DEVICES`). The driver library must be
/// present ([`libs::cuda_library_present`]); cudarc would panic otherwise. A panic in cudarc all
/// the same (a driver too old for a symbol of the CUDA 13 bindings) is an error here.
pub(super) fn cuda_devices() -> Result<Vec<CudaDevice>, CudaError> {
    if !libs::cuda_library_present(Library::Driver) {
        return Err(CudaError::Unavailable(libs::missing_message(
            &[Library::Driver],
            None,
        )));
    }
    std::panic::catch_unwind(enumerate_devices).unwrap_or_else(|_| {
        Err(CudaError::Unavailable(
            "the CUDA driver library lacks a function of the CUDA 13 API; install the NVIDIA \
             driver 580 or newer"
                .into(),
        ))
    })
}

fn enumerate_devices() -> Result<Vec<CudaDevice>, CudaError> {
    use cudarc::driver::result;
    let unavailable = |what: &str, e: result::DriverError| {
        CudaError::Unavailable(format!(
            "the CUDA driver {what}: {e}; check that the NVIDIA kernel driver is loaded \
             (nvidia-smi works) and that CUDA_VISIBLE_DEVICES names GPUs that exist"
        ))
    };
    result::init().map_err(|e| unavailable("did not initialise", e))?;
    let count = result::device::get_count().map_err(|e| unavailable("cannot count GPUs", e))?;
    let mut out = Vec::new();
    for ordinal in 0..count.max(0) {
        let dev = result::device::get(ordinal).map_err(|e| unavailable("lost a GPU", e))?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "NVIDIA GPU".into());
        let uuid = result::device::get_uuid(dev)
            .map(|u| format_uuid(&u.bytes.map(|b| b as u8)))
            .unwrap_or_default();
        // SAFETY: `dev` is a device handle the driver just returned.
        let memory_bytes = unsafe { result::device::total_mem(dev) }.unwrap_or(0) as u64;
        out.push(CudaDevice {
            ordinal: ordinal as usize,
            name,
            uuid,
            memory_bytes,
        });
    }
    Ok(out)
}

/// Whether this host can run the cuda backend: the driver library and NVML load and the driver
/// sees at least one GPU. `Ok(n)`: n GPUs. This is what `--backend auto` asks.
pub fn availability() -> Result<usize, CudaError> {
    let nvml = open_driver_and_nvml(false)?;
    let n = cuda_devices()?.len();
    if n == 0 {
        let nvml_count = nvml.device_count().unwrap_or(0);
        return Err(CudaError::Unavailable(format!(
            "the CUDA driver sees no GPU (NVML sees {nvml_count}); check CUDA_VISIBLE_DEVICES"
        )));
    }
    Ok(n)
}

/// Which of the libraries the backend uses load here, for `--list-devices`.
pub fn library_report() -> Vec<(Library, bool)> {
    Library::ALL
        .into_iter()
        .map(|l| {
            let present = match l {
                Library::Nvml => !matches!(NvmlSensors::init(), Err(NvmlInitError::Load(_))),
                other => libs::cuda_library_present(other),
            };
            (l, present)
        })
        .collect()
}

/// The devices `wanted` (CUDA ordinals, in that order) of `all`, or all of them.
pub(super) fn select(
    all: &[CudaDevice],
    wanted: Option<&[u16]>,
) -> Result<Vec<CudaDevice>, CudaError> {
    let Some(wanted) = wanted else {
        return Ok(all.to_vec());
    };
    if wanted.is_empty() {
        return Err(CudaError::Config("--devices names no GPU".into()));
    }
    let mut out: Vec<CudaDevice> = Vec::new();
    for &w in wanted {
        let d = all
            .iter()
            .find(|d| d.ordinal == usize::from(w))
            .ok_or_else(|| {
                CudaError::Config(format!(
                    "there is no CUDA device {w}: this node has {} (numbered from 0)",
                    all.len()
                ))
            })?;
        if out.iter().any(|o| o.ordinal == d.ordinal) {
            return Err(CudaError::Config(format!("CUDA device {w} is named twice")));
        }
        out.push(d.clone());
    }
    Ok(out)
}

/// Compiles the compare kernels with NVRTC.
pub(super) fn compile_compare_kernel() -> Result<cudarc::nvrtc::Ptx, CudaError> {
    let compiled = std::panic::catch_unwind(|| cudarc::nvrtc::compile_ptx(kernels::COMPARE_SRC));
    match compiled {
        Ok(Ok(ptx)) => Ok(ptx),
        Ok(Err(e)) => Err(CudaError::Config(format!(
            "NVRTC could not compile the compare kernel: {e}"
        ))),
        Err(_) => Err(CudaError::Config(
            "NVRTC failed while compiling the compare kernel".into(),
        )),
    }
}
