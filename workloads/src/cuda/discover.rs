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
        // The driver's own word that the libcuda.so loaded is the toolkit's link-time stub.
        let stub_error = e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_STUB_LIBRARY;
        let hint = libs::driver_failure_hint(stub_error, libs::driver_stub_warning());
        CudaError::Unavailable(format!("the CUDA driver {what}: {e}; {hint}"))
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

/// The NVRTC option that compiles machine code for compute capability `major.minor`
/// (`--gpu-architecture=sm_90` on an H100/H200).
pub fn sass_arch_option(major: i32, minor: i32) -> String {
    format!("--gpu-architecture=sm_{major}{minor}")
}

/// Compiles the compare kernels to machine code (a cubin) for compute capability `major.minor`.
/// The fallback where the driver cannot load the PTX of [`compile_compare_kernel`]: an NVRTC of a
/// newer CUDA 13 release than the driver writes a PTX version the driver cannot JIT-compile, but
/// its machine code runs. NVRTC must be present; a panic in it (a missing symbol) is an error.
pub(super) fn compile_compare_cubin(major: i32, minor: i32) -> Result<Vec<u8>, String> {
    use cudarc::nvrtc::{result, sys};
    let arch = sass_arch_option(major, minor);
    let compile = || -> Result<Vec<u8>, String> {
        let src = std::ffi::CString::new(kernels::COMPARE_SRC)
            .map_err(|_| "the compare kernel's source holds a NUL byte".to_string())?;
        let prog = result::create_program(&src, None)
            .map_err(|e| format!("NVRTC could not create a program: {e}"))?;
        let built = (|| -> Result<Vec<u8>, String> {
            // SAFETY: `prog` is a live program; the options are plain ASCII.
            if let Err(e) = unsafe { result::compile_program(prog, &[arch.as_str()]) } {
                // SAFETY: as above; the log is a NUL-terminated string NVRTC wrote.
                let log = unsafe { result::get_program_log(prog) }
                    .ok()
                    .map(|l| l.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect())
                    .map(|b: Vec<u8>| String::from_utf8_lossy(&b).trim().to_string())
                    .unwrap_or_default();
                return Err(format!("NVRTC could not compile for {arch}: {e} {log}"));
            }
            let mut size: usize = 0;
            // SAFETY: `prog` was compiled; NVRTC writes the size, then that many bytes.
            unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }
                .result()
                .map_err(|e| format!("NVRTC has no machine code for {arch}: {e}"))?;
            let mut cubin = vec![0u8; size];
            // SAFETY: `cubin` holds the `size` bytes NVRTC writes.
            unsafe { sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr().cast()) }
                .result()
                .map_err(|e| format!("NVRTC has no machine code for {arch}: {e}"))?;
            Ok(cubin)
        })();
        // SAFETY: destroyed once, after its last use.
        let _ = unsafe { result::destroy_program(prog) };
        built
    };
    std::panic::catch_unwind(compile)
        .unwrap_or_else(|_| Err(format!("NVRTC failed while compiling for {arch}")))
}

/// The virtual architecture the PTX is compiled for when NVRTC's default is refused: Turing, the
/// oldest that CUDA 13 compiles for (its PTX is JIT-compiled onto any newer GPU, H200 included).
pub const PTX_FALLBACK_ARCH: &str = "--gpu-architecture=compute_75";

/// Compiles the compare kernels with NVRTC to PTX: with NVRTC's default architecture, and where
/// that fails, for [`PTX_FALLBACK_ARCH`].
pub(super) fn compile_compare_kernel() -> Result<cudarc::nvrtc::Ptx, CudaError> {
    use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
    let compile = |arch: Option<&str>| {
        let opts = CompileOptions {
            options: arch.map(|a| vec![a.to_string()]).unwrap_or_default(),
            ..CompileOptions::default()
        };
        match std::panic::catch_unwind(|| compile_ptx_with_opts(kernels::COMPARE_SRC, opts)) {
            Ok(Ok(ptx)) => Ok(ptx),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("NVRTC failed (a panic in the library or its loading)".to_string()),
        }
    };
    compile(None).or_else(|first| {
        compile(Some(PTX_FALLBACK_ARCH)).map_err(|second| {
            CudaError::Config(format!(
                "NVRTC could not compile the compare kernel: {first}; with \
                 {PTX_FALLBACK_ARCH}: {second}"
            ))
        })
    })
}
