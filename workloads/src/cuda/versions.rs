//! The versions the cuda backend reports in the Hello ([`crate::software`] names them): the CUDA
//! version the driver supports (`cuDriverGetVersion`), the NVIDIA driver's version string from
//! NVML (`nvmlSystemGetDriverVersion`), cuBLAS's version (`cublasGetProperty`, when cuBLAS is
//! present: a sensors-only backend does not need it) and the host's kernel release and CPU
//! microcode. Each only if its call succeeds.
//!
//! cudarc resolves a symbol on its first call and panics when the library lacks it, so each call
//! into it runs under `catch_unwind` and a panic there is a version not read.

use super::libs::{self, Library};
use crate::nvml::NvmlSensors;
use crate::software::{self, cublas_version_text, cuda_version_text, entry};
use hallmark_protocol::SoftwareVersion;
use std::path::Path;

/// Everything the cuda backend can read of its software.
pub(super) fn read(nvml: &NvmlSensors) -> Vec<SoftwareVersion> {
    let mut out = Vec::new();
    out.extend(driver_cuda_version().and_then(|v| entry("cuda_driver", &v)));
    out.extend(nvml.driver_version().and_then(|v| entry("nvml_driver", &v)));
    out.extend(cublas_version().and_then(|v| entry("cublas", &v)));
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok();
    out.extend(software::host(
        Path::new(software::OSRELEASE),
        cpuinfo.as_deref(),
    ));
    out
}

/// The CUDA version the driver supports, e.g. "13.0".
fn driver_cuda_version() -> Option<String> {
    if !libs::cuda_library_present(Library::Driver) {
        return None;
    }
    let call = || {
        let mut v: std::ffi::c_int = 0;
        // SAFETY: `v` is a valid place for the driver to write one int.
        let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
        (r == cudarc::driver::sys::CUresult::CUDA_SUCCESS).then_some(v)
    };
    std::panic::catch_unwind(call)
        .ok()
        .flatten()
        .and_then(cuda_version_text)
}

/// cuBLAS's version, e.g. "13.0.2".
fn cublas_version() -> Option<String> {
    use cudarc::cublas::sys::{cublasGetProperty, cublasStatus_t, libraryPropertyType};
    if !libs::cuda_library_present(Library::Cublas) {
        return None;
    }
    let property = |p: libraryPropertyType| {
        let mut v: std::ffi::c_int = 0;
        // SAFETY: `v` is a valid place for cuBLAS to write one int; no handle is needed.
        let r = unsafe { cublasGetProperty(p, &mut v) };
        (r == cublasStatus_t::CUBLAS_STATUS_SUCCESS).then_some(v)
    };
    let call = || {
        Some((
            property(libraryPropertyType::MAJOR_VERSION)?,
            property(libraryPropertyType::MINOR_VERSION)?,
            property(libraryPropertyType::PATCH_LEVEL)?,
        ))
    };
    let (major, minor, patch) = std::panic::catch_unwind(call).ok().flatten()?;
    cublas_version_text(major, minor, patch)
}
