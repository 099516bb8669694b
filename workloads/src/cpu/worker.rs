//! One burn worker: single-threaded SGEMM on fixed matrices in a loop, under a duty cycle, with a
//! result check against a reference computed at start.
//!
//! # Duty cycle
//! Time is cut into [`SLICE`]s of 10 ms. At level `L` a worker runs GEMMs for `L × 10 ms` of each slice
//! and sleeps the rest. A GEMM is never cut short, so a slice's busy time overshoots its target by up
//! to one GEMM; the overshoot is carried into the next slices' targets, so the long-run share of busy
//! time is `L` even where one GEMM takes longer than a slice. At level 0 the worker parks until the
//! level changes or the backend stops.
//!
//! # Result check
//! The inputs never change and every GEMM runs the same kernel on the same thread with the same
//! blocking, so every result must equal the reference bit for bit: the tolerance is zero. Every
//! [`CHECK_EVERY`]-th result is compared element-wise; an element that differs, or is NaN, is wrong.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// One duty-cycle slice.
pub const SLICE: Duration = Duration::from_millis(10);
/// Every how many GEMMs a result is checked against the reference.
pub const CHECK_EVERY: u64 = 16;
/// Longest park of an idle worker before it looks at its level again (it is also woken on change).
const IDLE_PARK: Duration = Duration::from_millis(100);
/// Most busy time a worker carries over into later slices, s.
const MAX_CARRY_S: f64 = 1.0;

/// What the backend and the workers of one device share.
#[derive(Debug, Default)]
pub struct DeviceShared {
    /// The applied level, as `f64` bits.
    level: AtomicU64,
    /// Floating-point operations done, cumulative.
    pub flop: AtomicU64,
    /// Wrong elements found, cumulative.
    pub wrong: AtomicU64,
    /// Test hook: the next worker to see it spoils one element of its reference.
    #[cfg(test)]
    pub corrupt_reference: AtomicBool,
}

impl DeviceShared {
    pub fn level(&self) -> f64 {
        f64::from_bits(self.level.load(Ordering::Relaxed))
    }

    pub fn set_level(&self, level: f64) {
        self.level.store(level.to_bits(), Ordering::Relaxed);
    }
}

/// What all workers share.
#[derive(Debug)]
pub struct Shared {
    pub devices: Vec<DeviceShared>,
    pub stop: AtomicBool,
    /// A worker ended abnormally (it should never).
    pub failed: AtomicBool,
}

/// Column-major `n × n` inputs, filled deterministically with values in [-1, 1).
fn inputs(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
        x as f32 / (1u64 << 23) as f32 - 1.0
    };
    let a = (0..n * n).map(|_| next()).collect();
    let b = (0..n * n).map(|_| next()).collect();
    (a, b)
}

/// `c = a × b` for column-major `n × n` matrices, single-threaded.
fn sgemm(n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    let len = n * n;
    if a.len() != len || b.len() != len || c.len() != len {
        return;
    }
    let s = n as isize;
    // SAFETY: all three buffers hold n × n elements, column-major (column stride n, row stride 1),
    // and `c` is borrowed mutably, so it aliases neither input. `read_dst` is false: `c` is only
    // written.
    unsafe {
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            s,
            1,
            false,
            a.as_ptr(),
            s,
            1,
            b.as_ptr(),
            s,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Elements of `got` that differ from `want` (bitwise-equal values only pass; NaN never does).
pub fn wrong_elements(got: &[f32], want: &[f32]) -> u64 {
    got.iter().zip(want).filter(|(g, w)| g != w).count() as u64
}

/// A worker's body: burns for device `device` until `shared.stop`.
pub fn run(shared: Arc<Shared>, device: usize, n: usize, seed: u64) {
    let Some(dev) = shared.devices.get(device) else {
        return;
    };
    let (a, b) = inputs(n, seed);
    let mut reference = vec![0.0f32; n * n];
    sgemm(n, &a, &b, &mut reference);
    let mut c = vec![0.0f32; n * n];
    let flop_per_gemm = 2 * (n as u64).pow(3);
    let mut gemms: u64 = 0;
    let mut carry_s = 0.0f64;
    while !shared.stop.load(Ordering::Relaxed) {
        let level = dev.level();
        if level <= 0.0 {
            carry_s = 0.0;
            thread::park_timeout(IDLE_PARK);
            continue;
        }
        let start = Instant::now();
        let target_s = level * SLICE.as_secs_f64() - carry_s;
        let mut busy_s = 0.0;
        while busy_s < target_s && !shared.stop.load(Ordering::Relaxed) {
            sgemm(n, &a, &b, &mut c);
            dev.flop.fetch_add(flop_per_gemm, Ordering::Relaxed);
            gemms += 1;
            if gemms.is_multiple_of(CHECK_EVERY) {
                #[cfg(test)]
                if dev.corrupt_reference.swap(false, Ordering::Relaxed) {
                    if let Some(x) = reference.first_mut() {
                        *x += 1.0;
                    }
                }
                let wrong = wrong_elements(&c, &reference);
                if wrong > 0 {
                    dev.wrong.fetch_add(wrong, Ordering::Relaxed);
                }
            }
            busy_s = start.elapsed().as_secs_f64();
        }
        carry_s = (busy_s - target_s).clamp(0.0, MAX_CARRY_S);
        if level < 1.0 {
            let deadline = start + SLICE;
            // Parking lets a stop or a level change wake the worker early.
            while !shared.stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                thread::park_timeout(deadline - now);
                if dev.level() != level {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgemm_matches_a_naive_product_and_repeats_bitwise() {
        let n = 24;
        let (a, b) = inputs(n, 3);
        assert!(a.iter().chain(&b).all(|x| (-1.0..1.0).contains(x)));
        let mut c = vec![0.0f32; n * n];
        sgemm(n, &a, &b, &mut c);
        for i in 0..n {
            for j in 0..n {
                let want: f64 = (0..n)
                    .map(|k| f64::from(a[i + k * n]) * f64::from(b[k + j * n]))
                    .sum();
                assert!((f64::from(c[i + j * n]) - want).abs() < 1e-4);
            }
        }
        let mut again = vec![1.0f32; n * n];
        sgemm(n, &a, &b, &mut again);
        assert_eq!(wrong_elements(&again, &c), 0);
        again[5] = f32::NAN;
        again[7] = f32::from_bits(again[7].to_bits() ^ 1); // one ulp off
        assert_eq!(wrong_elements(&again, &c), 2);
    }
}
