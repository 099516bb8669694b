#![allow(dead_code)]

//! Deterministic test series: a splitmix64 generator (no `rand`), noise from it, steps.

/// splitmix64 (Steele, Lea and Flood): a 64-bit state, one multiply-xorshift output per step.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal noise with standard deviation `sigma`: the sum of four uniforms, centred
    /// and scaled (Irwin–Hall; no transcendental functions, so the same bits everywhere).
    pub fn noise(&mut self, sigma: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.uniform()).sum();
        (s - 2.0) * 3f64.sqrt() * sigma
    }
}

/// Levels given as `(length, level)` segments, plus noise of `sigma` from `seed`.
pub fn steps(seed: u64, segments: &[(usize, f64)], sigma: f64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    for &(len, level) in segments {
        for _ in 0..len {
            out.push(level + rng.noise(sigma));
        }
    }
    out
}
