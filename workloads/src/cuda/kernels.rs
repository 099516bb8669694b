//! The corruption-check kernels, compiled at run time with NVRTC.
//!
//! `hm_compare_*(want, got, n_vec, tol, wrong)` compares `got` element-wise with the reference
//! `want` and adds the number of wrong elements to `*wrong`: an element is wrong when
//! `|got − want| > tol × max(1, |want|)`, or when either is NaN (every comparison with NaN is
//! false, so `!(diff <= bound)` counts it). Both buffers are read 16 bytes at a time
//! (`n_vec` = bytes / 16; the matrices are multiples of 256 × 256 elements, so nothing is left
//! over), and each thread adds its count with one atomic only when it found something.
//!
//! The source needs no headers: 16-bit values are widened by hand (bf16: shift into the top half
//! of an f32; fp16: the PTX `cvt.f32.f16` instruction), so it compiles with NVRTC alone.

/// The bf16 kernel's name.
pub const COMPARE_BF16: &str = "hm_compare_bf16";
/// The fp16 kernel's name.
pub const COMPARE_F16: &str = "hm_compare_f16";
/// The f32 kernel's name (fp32 and tf32 buffers).
pub const COMPARE_F32: &str = "hm_compare_f32";
/// Threads per block.
pub const THREADS: u32 = 256;
/// Blocks per streaming multiprocessor.
pub const BLOCKS_PER_SM: u32 = 4;

/// CUDA C++ source of the three kernels.
pub const COMPARE_SRC: &str = r#"
struct alignas(16) hm_v4 { unsigned int x, y, z, w; };

__device__ __forceinline__ unsigned long long hm_bad(float got, float want, float tol) {
    // NaN in either makes the comparison false: counted as wrong.
    return !(fabsf(got - want) <= tol * fmaxf(1.0f, fabsf(want))) ? 1ull : 0ull;
}

__device__ __forceinline__ float hm_bf16_lo(unsigned int w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hm_bf16_hi(unsigned int w) { return __uint_as_float(w & 0xffff0000u); }

__device__ __forceinline__ float hm_f16(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

extern "C" __global__ void hm_compare_bf16(const hm_v4* __restrict__ want,
                                const hm_v4* __restrict__ got,
                                unsigned long long n_vec, float tol,
                                unsigned long long* wrong) {
    unsigned long long bad = 0;
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         i < n_vec; i += stride) {
        hm_v4 g = got[i];
        hm_v4 r = want[i];
        unsigned int gv[4] = {g.x, g.y, g.z, g.w};
        unsigned int rv[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            bad += hm_bad(hm_bf16_lo(gv[j]), hm_bf16_lo(rv[j]), tol);
            bad += hm_bad(hm_bf16_hi(gv[j]), hm_bf16_hi(rv[j]), tol);
        }
    }
    if (bad != 0ull) {
        atomicAdd(wrong, bad);
    }
}

extern "C" __global__ void hm_compare_f16(const hm_v4* __restrict__ want,
                                const hm_v4* __restrict__ got,
                                unsigned long long n_vec, float tol,
                                unsigned long long* wrong) {
    unsigned long long bad = 0;
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         i < n_vec; i += stride) {
        hm_v4 g = got[i];
        hm_v4 r = want[i];
        unsigned int gv[4] = {g.x, g.y, g.z, g.w};
        unsigned int rv[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            bad += hm_bad(hm_f16((unsigned short)(gv[j] & 0xffffu)),
                          hm_f16((unsigned short)(rv[j] & 0xffffu)), tol);
            bad += hm_bad(hm_f16((unsigned short)(gv[j] >> 16)),
                          hm_f16((unsigned short)(rv[j] >> 16)), tol);
        }
    }
    if (bad != 0ull) {
        atomicAdd(wrong, bad);
    }
}

extern "C" __global__ void hm_compare_f32(const hm_v4* __restrict__ want,
                                const hm_v4* __restrict__ got,
                                unsigned long long n_vec, float tol,
                                unsigned long long* wrong) {
    unsigned long long bad = 0;
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         i < n_vec; i += stride) {
        hm_v4 g = got[i];
        hm_v4 r = want[i];
        unsigned int gv[4] = {g.x, g.y, g.z, g.w};
        unsigned int rv[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            bad += hm_bad(__uint_as_float(gv[j]), __uint_as_float(rv[j]), tol);
        }
    }
    if (bad != 0ull) {
        atomicAdd(wrong, bad);
    }
}
"#;

/// Launch geometry of a compare over `bytes` bytes on a device with `sm_count` multiprocessors:
/// `(blocks, threads, n_vec)`. Grid-stride, so a few blocks per SM cover any size.
pub fn compare_geometry(sm_count: u32, bytes: usize) -> (u32, u32, u64) {
    let n_vec = (bytes / 16) as u64;
    let wanted = n_vec.div_ceil(u64::from(THREADS)).max(1);
    let cap = u64::from(sm_count.max(1)) * u64::from(BLOCKS_PER_SM);
    (wanted.min(cap) as u32, THREADS, n_vec)
}

/// Host model of one element's test, for the unit tests: whether `got` is wrong against `want`.
pub fn is_wrong(got: f32, want: f32, tol: f32) -> bool {
    let bound = tol * want.abs().max(1.0);
    // NaN compares as unordered: wrong, as in the kernel.
    !matches!(
        (got - want).abs().partial_cmp(&bound),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}
