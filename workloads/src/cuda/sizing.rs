//! How much a GPU worker allocates and how large its GEMMs are (pure arithmetic, unit-tested).
//!
//! A worker first makes A, B and the reference C₀ at the dtype's default order and times a few
//! GEMMs; while one GEMM takes more than [`MAX_GEMM_SHARE`] of a duty-cycle slice it halves the
//! order ([`shrink_order`]). Then [`plan_buffers`] sizes the rest from the free memory the driver
//! reports: [`HEADROOM`] of the total stays free (cuBLAS workspace, the driver, other tenants), two
//! copy buffers for the memory-bandwidth workload take up to [`COPY_BYTES_MAX`] each, and the rest
//! is C buffers (at most [`MAX_C_BUFFERS`] including C₀) that the burn writes in turn and checks
//! against C₀.

use std::time::Duration;

/// Share of the device's total memory left free.
pub const HEADROOM: f64 = 0.10;
/// Most C buffers per device, the reference included.
pub const MAX_C_BUFFERS: usize = 1024;
/// Largest copy buffer of the memory-bandwidth workload (two are allocated).
pub const COPY_BYTES_MAX: usize = 1 << 30;
/// Smallest copy buffer worth measuring bandwidth with.
pub const COPY_BYTES_MIN: usize = 2 << 20;
/// Copy buffers are a multiple of this.
const COPY_ALIGN: usize = 2 << 20;
/// A GEMM may take at most this share of a slice; above it the order is halved.
pub const MAX_GEMM_SHARE: f64 = 0.6;
/// Smallest order [`shrink_order`] goes down to.
pub const MIN_ORDER: usize = 1024;

/// What a worker allocates besides A, B and C₀.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferPlan {
    /// C buffers besides the reference C₀ (at least 1).
    pub extra_c: usize,
    /// Bytes of each of the two copy buffers (0: no memory-bandwidth workload on this device).
    pub copy_bytes: usize,
}

impl BufferPlan {
    /// Bytes the plan allocates.
    pub fn bytes(&self, matrix_bytes: usize) -> usize {
        self.extra_c
            .saturating_mul(matrix_bytes)
            .saturating_add(self.copy_bytes.saturating_mul(2))
    }
}

/// Plans the allocations after A, B and C₀ (`matrix_bytes` each) exist, from the driver's
/// `free` and `total` bytes at that moment. `max_c` caps the C buffers, C₀ included.
pub fn plan_buffers(
    free: usize,
    total: usize,
    matrix_bytes: usize,
    max_c: usize,
) -> Result<BufferPlan, String> {
    if matrix_bytes == 0 {
        return Err("matrix of 0 bytes".into());
    }
    let headroom = (total as f64 * HEADROOM).ceil() as usize;
    let budget = free.saturating_sub(headroom);
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    if budget < matrix_bytes {
        return Err(format!(
            "{:.1} GiB free of {:.1} GiB, of which {:.1} GiB stay free as headroom: not enough for \
             one more {:.2} GiB matrix; free GPU memory (other processes?) or choose a smaller \
             matrix order",
            gib(free),
            gib(total),
            gib(headroom),
            gib(matrix_bytes)
        ));
    }
    // The copy buffers take at most a sixteenth of the budget each, so the burn keeps most of it.
    let copy = (budget / 16).min(COPY_BYTES_MAX) / COPY_ALIGN * COPY_ALIGN;
    let copy_bytes = if copy >= COPY_BYTES_MIN && budget - 2 * copy >= matrix_bytes {
        copy
    } else {
        0
    };
    let room = (budget - 2 * copy_bytes) / matrix_bytes;
    let extra_c = room.min(max_c.saturating_sub(1)).max(1);
    Ok(BufferPlan {
        extra_c,
        copy_bytes,
    })
}

/// The order to try next when one GEMM of order `n` took `gemm`: half of it while the GEMM takes
/// more than [`MAX_GEMM_SHARE`] of `slice` and the half is at least [`MIN_ORDER`]; `None` to keep
/// `n`.
pub fn shrink_order(n: usize, gemm: Duration, slice: Duration) -> Option<usize> {
    let too_long = gemm.as_secs_f64() > MAX_GEMM_SHARE * slice.as_secs_f64();
    (too_long && n / 2 >= MIN_ORDER).then_some(n / 2)
}

/// How many of `extra` C buffers (besides the reference) to keep: an odd number (or 1), so that
/// checking every 2ᵏ-th GEMM of the round-robin over them visits every buffer in turn.
pub fn usable_extra(extra: usize) -> usize {
    if extra > 1 && extra.is_multiple_of(2) {
        extra - 1
    } else {
        extra
    }
}

/// Floating-point operations of one `n × n × n` GEMM: 2n³.
pub fn gemm_flop(n: usize) -> u64 {
    2 * (n as u64).pow(3)
}

/// Checks a requested matrix order: a multiple of 256 within 256..=32768 (so that rows stay
/// aligned for the tensor cores and the compare kernel's 16-byte loads).
pub fn check_order(n: usize) -> Result<usize, String> {
    if (256..=32768).contains(&n) && n.is_multiple_of(256) {
        Ok(n)
    } else {
        Err(format!(
            "matrix order {n} must be a multiple of 256 within 256..=32768"
        ))
    }
}
