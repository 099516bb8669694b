//! Which of the libraries the CUDA backend loads at run time are present.
//!
//! cudarc loads the CUDA libraries lazily and **panics** on the first call when one is missing,
//! so every path into it is guarded here first: each library is opened once (and closed again)
//! by the same names cudarc looks for. NVML is loaded by nvml-wrapper, which returns an error
//! instead ([`crate::nvml`]).
//!
//! cudarc 0.19 (`get_lib_name_candidates`) tries, for a library `X`: `libX.so`, then Windows-style
//! names (`libX64_13.so`, …), then `libX.so.13`, `.so.12`, `.so.11`, `.so.10`, `.so.9` and `.so.1`,
//! and uses the first that loads. Its bindings are CUDA 13's: an older library that loads (a
//! `libcublas.so.12`) may lack a function and fail on first use, so the messages here name what
//! is tried and what is expected. A `libcuda.so` from the toolkit's `stubs/` directory (meant for
//! linking only) loads but has no driver behind it; [`stub_warning`] says so.

use std::fmt;

/// One library the backend needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// The driver API, `libcuda.so.1` (installed with the NVIDIA driver).
    Driver,
    /// cuBLAS, `libcublas.so.13`, which loads `libcublasLt.so.13` (CUDA toolkit or the
    /// `nvidia-cublas` wheels).
    Cublas,
    /// The run-time compiler NVRTC, `libnvrtc.so.13` (CUDA toolkit).
    Nvrtc,
    /// NVML, `libnvidia-ml.so.1` (installed with the NVIDIA driver).
    Nvml,
    /// NCCL, for collectives between the GPUs (optional: only NCCL phases need it). cudarc
    /// loads it as `libnccl.so`, the name the development package links, not the run-time
    /// package's `libnccl.so.2` (see [`super::nccl`]).
    Nccl,
}

impl Library {
    pub const ALL: [Library; 5] = [
        Library::Driver,
        Library::Cublas,
        Library::Nvrtc,
        Library::Nvml,
        Library::Nccl,
    ];

    /// The file the backend expects on a CUDA 13 host.
    pub fn file(self) -> &'static str {
        match self {
            Library::Driver => "libcuda.so.1",
            Library::Cublas => "libcublas.so.13 (and libcublasLt.so.13)",
            Library::Nvrtc => "libnvrtc.so.13",
            Library::Nvml => "libnvidia-ml.so.1",
            Library::Nccl => "libnccl.so (NCCL 2.14 or newer)",
        }
    }

    /// Where it comes from.
    pub fn provider(self) -> &'static str {
        match self {
            Library::Driver | Library::Nvml => "the NVIDIA driver (580 or newer)",
            Library::Cublas | Library::Nvrtc => "the CUDA 13 toolkit's run-time libraries",
            Library::Nccl => "NCCL's development package (libnccl-dev or nccl-devel), or a link named libnccl.so to the run-time package's libnccl.so.2",
        }
    }

    /// The base name cudarc tries in its candidate list (`cuda`, `cublas`, `nvrtc`, `nccl`).
    fn cudarc_name(self) -> Option<&'static str> {
        match self {
            Library::Driver => Some("cuda"),
            Library::Cublas => Some("cublas"),
            Library::Nvrtc => Some("nvrtc"),
            Library::Nccl => Some("nccl"),
            Library::Nvml => None,
        }
    }

    /// Every file name tried for this library.
    pub fn candidates(self) -> Vec<String> {
        match self.cudarc_name() {
            Some(name) => cudarc::get_lib_name_candidates(name),
            None => crate::nvml::LIBRARY_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl fmt::Display for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file())
    }
}

/// Whether the CUDA library `lib` can be loaded here (NVML is checked by initialising it), by the
/// names cudarc tries.
pub fn cuda_library_present(lib: Library) -> bool {
    // cudarc's own checks: they only try to open the candidates. A panic in there (there is none
    // in 0.19) is taken as absence rather than allowed to take the process down.
    let check = || -> bool {
        // SAFETY: each function only dlopens and closes candidate file names.
        unsafe {
            match lib {
                Library::Driver => cudarc::driver::sys::is_culib_present(),
                Library::Cublas => cudarc::cublas::sys::is_culib_present(),
                Library::Nvrtc => cudarc::nvrtc::sys::is_culib_present(),
                Library::Nccl => cudarc::nccl::sys::is_culib_present(),
                Library::Nvml => false,
            }
        }
    };
    std::panic::catch_unwind(check).unwrap_or(false)
}

/// The CUDA libraries (driver, cuBLAS, NVRTC) that cannot be loaded here.
pub fn missing_cuda_libraries() -> Vec<Library> {
    [Library::Driver, Library::Cublas, Library::Nvrtc]
        .into_iter()
        .filter(|&l| !cuda_library_present(l))
        .collect()
}

/// The names of `tried` a person would look for on Linux, shortened after the first
/// (`libcublas.so, .so.13, .so.12`), and how many Windows-style names were left out.
pub fn linux_names(tried: &[String]) -> (String, usize) {
    let shown: Vec<&str> = tried
        .iter()
        .map(String::as_str)
        .filter(|n| n.contains(".so") && !n.contains("64") && !n.contains("32"))
        .collect();
    let base = shown.first().map(|b| b.split(".so").next().unwrap_or(b));
    let parts: Vec<String> = shown
        .iter()
        .enumerate()
        .map(|(i, n)| match base {
            Some(b) if i > 0 && n.starts_with(&format!("{b}.so")) => n[b.len()..].to_string(),
            _ => n.to_string(),
        })
        .collect();
    (parts.join(", "), tried.len() - shown.len())
}

/// The message for libraries that are missing: what was looked for (every name cudarc tries),
/// where it comes from, and how to make it found.
pub fn missing_message(missing: &[Library], nvml_error: Option<&str>) -> String {
    let mut out = String::from("the cuda backend cannot load ");
    let names: Vec<String> = missing.iter().map(|l| l.file().to_string()).collect();
    out.push_str(&names.join(", "));
    for lib in missing {
        let (shown, others) = linux_names(&lib.candidates());
        out.push_str(&format!(
            "\n  {}: from {}; tried {shown}{}, the first that loads is used",
            lib.file(),
            lib.provider(),
            if others > 0 {
                format!(" (and {others} Windows-style names)")
            } else {
                String::new()
            }
        ));
        if *lib == Library::Nvml {
            if let Some(e) = nvml_error {
                out.push_str(&format!(" ({e})"));
            }
        }
    }
    out.push_str(
        "\n  install the NVIDIA driver (580 or newer) and the CUDA 13 run-time libraries (cuBLAS, \
         NVRTC; an older major version that loads may lack functions of the CUDA 13 API), or add \
         the directory that holds them to LD_LIBRARY_PATH; on a machine without NVIDIA GPUs use \
         --backend cpu",
    );
    if let Some(w) = driver_stub_warning() {
        out.push_str("\n  ");
        out.push_str(&w);
    }
    out
}

/// The path of the loaded `libcuda.so*` in a `/proc/self/maps` text, if one is mapped.
pub fn loaded_driver_path(maps: &str) -> Option<&str> {
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            p.starts_with('/')
                && p.rsplit('/')
                    .next()
                    .is_some_and(|f| f.starts_with("libcuda.so"))
        })
}

/// What a toolkit stub of `libcuda.so` is, and what to do about it (the end of every stub message).
const STUB_FIX: &str = "it is for linking only and has no driver behind it (cuInit fails with \
                        CUDA_ERROR_STUB_LIBRARY); take that directory off LD_LIBRARY_PATH so that \
                        the NVIDIA driver's libcuda.so.1 is loaded";

/// Whether `path` lies in a directory named `stubs` (where the CUDA toolkit keeps its link-time
/// `libcuda.so`).
fn in_stubs(path: &str) -> bool {
    path.split('/').any(|c| c == "stubs")
}

/// A warning when the driver library is, or may be, the CUDA toolkit's stub: `loaded` is the path
/// of the loaded `libcuda.so*` (from [`loaded_driver_path`]), `ld_library_path` the variable, and
/// `has_libcuda` whether a directory holds a `libcuda.so*`.
pub fn stub_warning(
    loaded: Option<&str>,
    ld_library_path: Option<&str>,
    has_libcuda: impl Fn(&str) -> bool,
) -> Option<String> {
    if let Some(p) = loaded.filter(|p| in_stubs(p)) {
        return Some(format!(
            "warning: the loaded CUDA driver library {p} is the CUDA toolkit's stub: {STUB_FIX}"
        ));
    }
    let dir = ld_library_path?
        .split(':')
        .find(|d| !d.is_empty() && in_stubs(d) && has_libcuda(d))?;
    Some(format!(
        "warning: LD_LIBRARY_PATH holds {dir}, whose libcuda.so is the CUDA toolkit's stub and \
         is found before the driver's (cudarc tries libcuda.so first): {STUB_FIX}"
    ))
}

/// [`stub_warning`] for this process: its mapped libraries and its `LD_LIBRARY_PATH`.
pub fn driver_stub_warning() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let ld = std::env::var("LD_LIBRARY_PATH").ok();
    stub_warning(loaded_driver_path(&maps), ld.as_deref(), |d| {
        std::fs::read_dir(d).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libcuda.so"))
        })
    })
}

/// What to do when the CUDA driver does not initialise or count its GPUs. Where the driver
/// library is the toolkit's stub, taking it off `LD_LIBRARY_PATH` is the fix: `warning` (from
/// [`driver_stub_warning`]) names the file or directory, and where nothing names it but the driver
/// answered `CUDA_ERROR_STUB_LIBRARY` (`stub_error`) the message says so without a path.
/// Otherwise: check the kernel driver and `CUDA_VISIBLE_DEVICES`.
pub fn driver_failure_hint(stub_error: bool, warning: Option<String>) -> String {
    match warning {
        Some(w) => w,
        None if stub_error => format!(
            "the loaded libcuda.so is the CUDA toolkit's stub, from a stubs/ directory: {STUB_FIX}"
        ),
        None => "check that the NVIDIA kernel driver is loaded (nvidia-smi works) and that \
                 CUDA_VISIBLE_DEVICES names GPUs that exist"
            .to_string(),
    }
}
