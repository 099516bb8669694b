//! Which of the libraries the CUDA backend loads at run time are present.
//!
//! cudarc loads the CUDA libraries lazily and **panics** on the first call when one is missing,
//! so every path into it is guarded here first: each library is opened once (and closed again)
//! by the same names cudarc looks for. NVML is loaded by nvml-wrapper, which returns an error
//! instead ([`crate::nvml`]).

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

/// The message for libraries that are missing: what was looked for, where it comes from, and
/// how to make it found.
pub fn missing_message(missing: &[Library], nvml_error: Option<&str>) -> String {
    let mut out = String::from("the cuda backend cannot load ");
    let names: Vec<String> = missing.iter().map(|l| l.file().to_string()).collect();
    out.push_str(&names.join(", "));
    for lib in missing {
        let tried = lib.candidates();
        // The Linux names first (cudarc also tries Windows-style names such as libcuda64_13.so).
        let shown: Vec<&str> = tried
            .iter()
            .map(String::as_str)
            .filter(|n| !n.contains("64"))
            .collect();
        out.push_str(&format!(
            "\n  {}: from {}; looked for {}{}",
            lib.file(),
            lib.provider(),
            shown.join(", "),
            if tried.len() > shown.len() {
                format!(" and {} other names", tried.len() - shown.len())
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
         NVRTC), or add the directory that holds them to LD_LIBRARY_PATH; on a machine without \
         NVIDIA GPUs use --backend cpu",
    );
    out
}
