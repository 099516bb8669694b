//! The corruption-check kernels, compiled at run time with NVRTC, and their CPU model.
//!
//! `hm_compare_*(want, got, n_vec, max_ulps, wrong)` compares `got` element-wise with the
//! reference `want` and adds the number of wrong elements to `*wrong`. The comparison is on the
//! stored bits, in units in the last place (ulp) of the stored type: each value's bits are mapped
//! to an integer that counts representable values from zero (sign and magnitude: `−m` for a
//! negative value of magnitude bits `m`, so +0 and −0 are both 0 and neighbours differ by 1), and
//! an element is wrong when either value is NaN or the two integers are more than `max_ulps`
//! apart. The burn passes 0 ([`super::Dtype::max_ulps`]): cuBLAS gives bitwise-identical results
//! for the same GEMM on one GPU, so any changed bit is corruption. Both buffers are read 16 bytes
//! at a time (`n_vec` = bytes / 16; the matrices are multiples of 256 × 256 elements, so nothing
//! is left over), and each thread adds its count with one atomic only when it found something.
//!
//! The source needs no headers (integer arithmetic on the bits only), so it compiles with NVRTC
//! alone. [`compare_words`] is the same computation on the CPU, word for word, for the tests.

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

/// CUDA C++ source of the three kernels. Keep it in step with [`Format`] and [`is_wrong`].
pub const COMPARE_SRC: &str = r#"
struct alignas(16) hm_v4 { unsigned int x, y, z, w; };

// One element, its stored bits in the low bits of `got` and `want` (sign bit `sign`, exponent
// mask `exp`, mantissa mask `mant`): 1 when either is NaN or their ordered values are more than
// max_ulps apart.
__device__ __forceinline__ unsigned long long hm_bad(unsigned int got, unsigned int want,
                                                     unsigned int sign, unsigned int exp,
                                                     unsigned int mant, unsigned int max_ulps) {
    unsigned int gm = got & (sign - 1u), wm = want & (sign - 1u);
    // NaN: all exponent bits set and a mantissa bit set.
    if (((gm & exp) == exp && (gm & mant) != 0u) || ((wm & exp) == exp && (wm & mant) != 0u)) {
        return 1ull;
    }
    long long g = (got & sign) ? -(long long)gm : (long long)gm;
    long long w = (want & sign) ? -(long long)wm : (long long)wm;
    long long d = g - w;
    unsigned long long dist = (unsigned long long)(d < 0 ? -d : d);
    return dist > (unsigned long long)max_ulps ? 1ull : 0ull;
}

extern "C" __global__ void hm_compare_bf16(const hm_v4* __restrict__ want,
                                const hm_v4* __restrict__ got,
                                unsigned long long n_vec, unsigned int max_ulps,
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
            // Two 16-bit values per word, the low half first.
            bad += hm_bad(gv[j] & 0xffffu, rv[j] & 0xffffu, 0x8000u, 0x7f80u, 0x7fu, max_ulps);
            bad += hm_bad(gv[j] >> 16, rv[j] >> 16, 0x8000u, 0x7f80u, 0x7fu, max_ulps);
        }
    }
    if (bad != 0ull) {
        atomicAdd(wrong, bad);
    }
}

extern "C" __global__ void hm_compare_f16(const hm_v4* __restrict__ want,
                                const hm_v4* __restrict__ got,
                                unsigned long long n_vec, unsigned int max_ulps,
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
            // Two 16-bit values per word, the low half first.
            bad += hm_bad(gv[j] & 0xffffu, rv[j] & 0xffffu, 0x8000u, 0x7c00u, 0x3ffu, max_ulps);
            bad += hm_bad(gv[j] >> 16, rv[j] >> 16, 0x8000u, 0x7c00u, 0x3ffu, max_ulps);
        }
    }
    if (bad != 0ull) {
        atomicAdd(wrong, bad);
    }
}

extern "C" __global__ void hm_compare_f32(const hm_v4* __restrict__ want,
                                const hm_v4* __restrict__ got,
                                unsigned long long n_vec, unsigned int max_ulps,
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
            bad += hm_bad(gv[j], rv[j], 0x80000000u, 0x7f800000u, 0x7fffffu, max_ulps);
        }
    }
    if (bad != 0ull) {
        atomicAdd(wrong, bad);
    }
}
"#;

/// A stored floating-point format as the compare kernels see it: its sign, exponent and mantissa
/// masks (the arguments of `hm_bad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub sign: u32,
    pub exp: u32,
    pub mant: u32,
}

impl Format {
    pub const BF16: Format = Format {
        sign: 0x8000,
        exp: 0x7f80,
        mant: 0x007f,
    };
    pub const F16: Format = Format {
        sign: 0x8000,
        exp: 0x7c00,
        mant: 0x03ff,
    };
    pub const F32: Format = Format {
        sign: 0x8000_0000,
        exp: 0x7f80_0000,
        mant: 0x007f_ffff,
    };

    /// Bits per element.
    pub fn bits(self) -> u32 {
        if self.sign == Self::F32.sign {
            32
        } else {
            16
        }
    }
}

/// CPU model of `hm_bad`: whether the element with stored bits `got` is wrong against `want`.
pub fn is_wrong(got: u32, want: u32, f: Format, max_ulps: u32) -> bool {
    let magnitude = f.sign - 1;
    let (gm, wm) = (got & magnitude, want & magnitude);
    let nan = |m: u32| m & f.exp == f.exp && m & f.mant != 0;
    if nan(gm) || nan(wm) {
        return true;
    }
    let ordered = |bits: u32, m: u32| {
        if bits & f.sign != 0 {
            -i64::from(m)
        } else {
            i64::from(m)
        }
    };
    ordered(got, gm).abs_diff(ordered(want, wm)) > u64::from(max_ulps)
}

/// CPU model of a whole kernel over 32-bit words (four per 16-byte load): the number of wrong
/// elements of `got` against `want`, 16-bit formats unpacked low half first as the kernel does.
pub fn compare_words(want: &[u32], got: &[u32], f: Format, max_ulps: u32) -> u64 {
    want.iter()
        .zip(got)
        .map(|(&w, &g)| {
            if f.bits() == 32 {
                u64::from(is_wrong(g, w, f, max_ulps))
            } else {
                u64::from(is_wrong(g & 0xffff, w & 0xffff, f, max_ulps))
                    + u64::from(is_wrong(g >> 16, w >> 16, f, max_ulps))
            }
        })
        .sum()
}

/// Launch geometry of a compare over `bytes` bytes on a device with `sm_count` multiprocessors:
/// `(blocks, threads, n_vec)`. Grid-stride, so a few blocks per SM cover any size.
pub fn compare_geometry(sm_count: u32, bytes: usize) -> (u32, u32, u64) {
    let n_vec = (bytes / 16) as u64;
    let wanted = n_vec.div_ceil(u64::from(THREADS)).max(1);
    let cap = u64::from(sm_count.max(1)) * u64::from(BLOCKS_PER_SM);
    (wanted.min(cap) as u32, THREADS, n_vec)
}
