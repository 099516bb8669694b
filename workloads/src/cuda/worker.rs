//! One GPU's worker thread: its own CUDA context and stream, a cuBLAS GEMM burn over buffers that
//! fill most of the device's memory, the corruption check, the memory-bandwidth copies, all under
//! the duty cycle of [`super::duty`].
//!
//! # Preparation
//! The worker makes A and B (random values in [-1, 1), the same on every device) and the
//! reference C₀ = A × B at the dtype's default order, times a few GEMMs and halves the order while
//! one takes too long for a slice ([`super::sizing::shrink_order`]). Then it allocates the C
//! buffers and two copy buffers as [`super::sizing::plan_buffers`] says, times one copy, and
//! reports [`Prepared`].
//!
//! # The burn
//! GEMM `k` writes A × B into C buffer `1 + k mod (count − 1)`, so the work walks over all of
//! them. Every [`super::burn::CHECK_EVERY`]-th GEMM is followed by the compare kernel
//! ([`super::kernels`]), which counts the elements of that buffer whose bits differ from C₀'s
//! (or are NaN) into a device counter; the host reads the counter about once a second, when the
//! stream has drained. The number of buffers besides C₀ is odd, so the checks
//! visit every buffer in turn. Work is counted when it has completed on the GPU: GEMMs (2n³ FLOPs
//! each, multiplied out in f64 when a rate is taken), and for the memory-bandwidth workload 2 ×
//! the copy size per device-to-device copy (read + written).

use super::burn::{Burn, Engine};
use super::dtype::Dtype;
use crate::backend::Kernel;
use cudarc::driver::{CudaContext, DeviceRepr, ValidAsZeroBits};
use cudarc::nvrtc::Ptx;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a worker settled on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prepared {
    /// Matrix order n of the GEMMs.
    pub order: usize,
    /// C buffers, the reference included.
    pub c_buffers: usize,
    /// Bytes of each copy buffer (0: no memory-bandwidth workload).
    pub copy_bytes: usize,
    /// Bytes allocated in all.
    pub allocated_bytes: usize,
    /// GPU time of one GEMM when prepared.
    pub gemm_time: Duration,
    /// Device memory is allocated with plain `cuMemAlloc` because stream-ordered allocation was
    /// refused or `HALLMARK_CUDA_ALLOC=plain` asked for it ([`super::alloc`]).
    pub plain_alloc: bool,
}

/// Where a worker is.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerState {
    Preparing,
    Ready(Prepared),
    /// It stopped on an error (or never started); the message says what failed.
    Failed(String),
    /// It ended because the backend stopped it.
    Ended,
}

/// What the backend, the control thread and one worker share.
#[derive(Debug)]
pub struct DeviceShared {
    /// The level set by `set_level` (f64 bits): the ceiling of the duty.
    level: AtomicU64,
    /// The power controller's output (f64 bits); 1.0 without a power target.
    control: AtomicU64,
    kernel: AtomicU8,
    /// GEMMs completed, cumulative. GEMMs are counted rather than FLOPs: at 780 TFLOP/s a FLOP
    /// counter of 64 bits wraps after about 6.6 hours; this one after 10¹¹ years.
    pub gemms: AtomicU64,
    /// FLOPs of one GEMM at the order the worker settled on (0 until it is prepared).
    pub flop_per_gemm: AtomicU64,
    /// Bytes moved by completed copies (read + written), cumulative.
    pub bytes: AtomicU64,
    /// Wrong elements found, cumulative.
    pub wrong: AtomicU64,
    state: Mutex<WorkerState>,
}

impl Default for DeviceShared {
    fn default() -> Self {
        DeviceShared {
            level: AtomicU64::new(0f64.to_bits()),
            control: AtomicU64::new(1f64.to_bits()),
            kernel: AtomicU8::new(0),
            gemms: AtomicU64::new(0),
            flop_per_gemm: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            wrong: AtomicU64::new(0),
            state: Mutex::new(WorkerState::Preparing),
        }
    }
}

impl DeviceShared {
    pub fn level(&self) -> f64 {
        f64::from_bits(self.level.load(Ordering::Relaxed))
    }

    pub fn set_level(&self, level: f64) {
        self.level.store(level.to_bits(), Ordering::Relaxed);
    }

    pub fn control(&self) -> f64 {
        f64::from_bits(self.control.load(Ordering::Relaxed))
    }

    pub fn set_control(&self, duty: f64) {
        self.control.store(duty.to_bits(), Ordering::Relaxed);
    }

    /// The duty the worker applies: the level, lowered by the power controller if one runs.
    pub fn duty(&self) -> f64 {
        let (level, control) = (self.level(), self.control());
        if level.is_finite() && control.is_finite() {
            level.min(control).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    pub fn kernel(&self) -> Kernel {
        match self.kernel.load(Ordering::Relaxed) {
            1 => Kernel::MemoryBandwidth,
            _ => Kernel::Gemm,
        }
    }

    pub fn set_kernel(&self, kernel: Kernel) {
        let k = match kernel {
            Kernel::Gemm => 0,
            Kernel::MemoryBandwidth => 1,
        };
        self.kernel.store(k, Ordering::Relaxed);
    }

    pub fn state(&self) -> WorkerState {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn set_state(&self, state: WorkerState) {
        match self.state.lock() {
            Ok(mut s) => *s = state,
            Err(e) => *e.into_inner() = state,
        }
    }

    /// The worker's error, if it failed.
    pub fn failure(&self) -> Option<String> {
        match self.state() {
            WorkerState::Failed(m) => Some(m),
            _ => None,
        }
    }
}

/// What one worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// CUDA device ordinal.
    pub ordinal: usize,
    pub dtype: Dtype,
    /// A fixed matrix order (no halving), or `None` for the dtype's default.
    pub order: Option<usize>,
    /// Most C buffers, the reference included.
    pub max_c: usize,
}

/// The worker thread's body: prepares, then burns until `stop`. Its end (or failure) is left in
/// `shared`'s state; a panic inside is caught and reported as a failure.
pub fn run(shared: Arc<DeviceShared>, stop: Arc<AtomicBool>, cfg: WorkerConfig, ptx: Ptx) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        body(&shared, &stop, &cfg, ptx)
    }));
    let state = match outcome {
        Ok(Ok(())) => WorkerState::Ended,
        Ok(Err(e)) => WorkerState::Failed(e),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            WorkerState::Failed(format!("the worker stopped: {what}"))
        }
    };
    shared.set_state(state);
}

fn body(
    shared: &DeviceShared,
    stop: &AtomicBool,
    cfg: &WorkerConfig,
    ptx: Ptx,
) -> Result<(), String> {
    let ctx = CudaContext::new(cfg.ordinal).map_err(|e| format!("creating its context: {e}"))?;
    // SAFETY: every buffer of this context is made and used by this thread on its one stream, in
    // order, so cudarc's cross-stream event tracking is not needed (and costs driver calls on
    // every GEMM).
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx
        .new_stream()
        .map_err(|e| format!("creating its stream: {e}"))?;
    let mode = super::alloc::mode_for(cfg.ordinal, &stream)?;
    let engine = Engine::new(&ctx, stream, mode, cfg, ptx)?;
    match cfg.dtype {
        Dtype::Bf16 => {
            Burn::<half::bf16>::prepare(&ctx, engine, cfg, shared, stop)?.run(shared, stop)
        }
        Dtype::Fp16 => {
            Burn::<half::f16>::prepare(&ctx, engine, cfg, shared, stop)?.run(shared, stop)
        }
        Dtype::Fp32 | Dtype::Tf32 => {
            Burn::<f32>::prepare(&ctx, engine, cfg, shared, stop)?.run(shared, stop)
        }
    }
}

/// An element type the burn multiplies.
pub trait Elem: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + 'static {
    fn from_f32(x: f32) -> Self;
}

impl Elem for half::bf16 {
    fn from_f32(x: f32) -> Self {
        half::bf16::from_f32(x)
    }
}

impl Elem for half::f16 {
    fn from_f32(x: f32) -> Self {
        half::f16::from_f32(x)
    }
}

impl Elem for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }
}

/// `len` values in [-1, 1), deterministic in `seed` (xorshift64*).
pub fn random_inputs(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
            x as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}
