//! The element types of the GEMM burn: bf16 (the default), fp16, fp32 and tf32, what each needs
//! (bytes per element, the default matrix order, the compare kernel and how exact it is), and how
//! they are spelled on the command line.

use std::fmt;
use std::str::FromStr;

/// What the GEMM burn multiplies. bf16 and fp16 run on the tensor cores with f32 accumulation;
/// fp32 is plain single precision; tf32 stores f32 but lets cuBLAS round the inputs to TF32 on
/// the tensor cores (`CUBLAS_TF32_TENSOR_OP_MATH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    Bf16,
    Fp16,
    Fp32,
    Tf32,
}

/// A dtype name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dtype `{0}`: use bf16, fp16, fp32 or tf32")]
pub struct UnknownDtype(pub String);

impl Dtype {
    pub const ALL: [Dtype; 4] = [Dtype::Bf16, Dtype::Fp16, Dtype::Fp32, Dtype::Tf32];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
            Dtype::Fp32 => "fp32",
            Dtype::Tf32 => "tf32",
        }
    }

    /// Bytes per stored element.
    pub fn element_bytes(self) -> usize {
        match self {
            Dtype::Bf16 | Dtype::Fp16 => 2,
            Dtype::Fp32 | Dtype::Tf32 => 4,
        }
    }

    /// The matrix order a worker starts from; it halves it while one GEMM takes too large a share
    /// of a duty-cycle slice ([`super::sizing::shrink_order`]). 8192 on the tensor-core types
    /// (about 1.1 TFLOP, ~1.5 ms on an H100/H200), 4096 for plain fp32 (no tensor cores).
    pub fn default_matrix_order(self) -> usize {
        match self {
            Dtype::Bf16 | Dtype::Fp16 | Dtype::Tf32 => 8192,
            Dtype::Fp32 => 4096,
        }
    }

    /// How many units in the last place a checked element may differ from the reference: 0 for
    /// every type. cuBLAS is deterministic on one device (same algorithm, same inputs, no
    /// atomics), so every GEMM of the burn gives the reference's bits exactly and any changed
    /// bit, the lowest included, is corruption. NaN is always wrong ([`super::kernels`]).
    pub fn max_ulps(self) -> u32 {
        match self {
            Dtype::Bf16 | Dtype::Fp16 | Dtype::Fp32 | Dtype::Tf32 => 0,
        }
    }

    /// The stored format the compare kernel reads ([`super::kernels::Format`]).
    pub fn format(self) -> super::kernels::Format {
        match self {
            Dtype::Bf16 => super::kernels::Format::BF16,
            Dtype::Fp16 => super::kernels::Format::F16,
            Dtype::Fp32 | Dtype::Tf32 => super::kernels::Format::F32,
        }
    }

    /// The compare kernel for this element type ([`super::kernels`]).
    pub fn compare_kernel(self) -> &'static str {
        match self {
            Dtype::Bf16 => super::kernels::COMPARE_BF16,
            Dtype::Fp16 => super::kernels::COMPARE_F16,
            Dtype::Fp32 | Dtype::Tf32 => super::kernels::COMPARE_F32,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Dtype {
    type Err = UnknownDtype;

    /// `bf16`, `fp16` (or `f16`, `half`), `fp32` (or `f32`, `float`), `tf32`; any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            "fp16" | "f16" | "half" | "float16" => Ok(Dtype::Fp16),
            "fp32" | "f32" | "float" | "float32" => Ok(Dtype::Fp32),
            "tf32" => Ok(Dtype::Tf32),
            _ => Err(UnknownDtype(s.to_string())),
        }
    }
}
