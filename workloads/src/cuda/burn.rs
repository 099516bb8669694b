//! The GPU side of a worker ([`super::worker`]): the cuBLAS handle, the compare kernel, the
//! matrices and copy buffers, and the duty-cycled loop that runs them. Everything here runs on
//! the worker's thread, on its one stream.

use super::alloc::{AllocMode, Allocator, DevBuf};
use super::duty::{ends_slice_early, Slicer, SLICE};
use super::kernels;
use super::sizing::{gemm_flop, plan_buffers, shrink_order, usable_extra, BufferPlan};
use super::worker::{random_inputs, DeviceShared, Elem, Prepared, WorkerConfig, WorkerState};
use crate::backend::Kernel;
use cudarc::cublas::sys::{cublasMath_t, cublasOperation_t};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Every how many GEMMs the result is compared with the reference (a power of two: with an odd
/// number of C buffers besides the reference, the checks visit every buffer in turn). A compare
/// reads two matrices once, about 4 % of a GEMM's time at n = 8192, so this costs about 0.3 %.
pub const CHECK_EVERY: u64 = 16;
/// How often the wrong-element counter is read back.
const READ_EVERY: Duration = Duration::from_secs(1);
/// Longest park of an idle worker (it is also woken when its level changes).
const IDLE_PARK: Duration = Duration::from_millis(50);
/// Tries at smaller matrix orders before giving up on a slow device.
const MAX_SHRINKS: u32 = 4;

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// What does not depend on the matrices: stream, allocator, cuBLAS handle, compare kernel,
/// counter.
pub struct Engine {
    stream: Arc<CudaStream>,
    alloc: Allocator,
    blas: CudaBlas,
    compare: CudaFunction,
    wrong: DevBuf<u64>,
    sm_count: u32,
    max_ulps: u32,
}

impl Engine {
    pub fn new(
        ctx: &Arc<CudaContext>,
        stream: Arc<CudaStream>,
        alloc_mode: AllocMode,
        cfg: &WorkerConfig,
        ptx: Ptx,
    ) -> Result<Self, String> {
        let alloc = Allocator::new(Arc::clone(&stream), alloc_mode);
        let blas = CudaBlas::new(Arc::clone(&stream)).map_err(err("creating a cuBLAS handle"))?;
        if cfg.dtype == super::dtype::Dtype::Tf32 {
            // SAFETY: the handle is live; setting its math mode has no other precondition.
            unsafe {
                cudarc::cublas::sys::cublasSetMathMode(
                    *blas.handle(),
                    cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH,
                )
            }
            .result()
            .map_err(err("enabling TF32 tensor-core math"))?;
        }
        let module = match ctx.load_module(ptx) {
            Ok(m) => m,
            Err(e) => {
                // The PTX is newer than this driver can compile (an NVRTC from a later CUDA 13
                // release than the driver): machine code for this GPU loads all the same.
                let (major, minor) = ctx
                    .compute_capability()
                    .map_err(err("reading the compute capability"))?;
                let cubin = super::discover::compile_compare_cubin(major, minor).map_err(|c| {
                    format!("loading the compare kernel: {e}; compiling it for this GPU: {c}")
                })?;
                tracing::info!(
                    "the driver could not load the compare kernel's PTX ({e}); using machine \
                     code for sm_{major}{minor}"
                );
                ctx.load_module(Ptx::from_binary(cubin))
                    .map_err(err("loading the compare kernel's machine code"))?
            }
        };
        let compare = module
            .load_function(cfg.dtype.compare_kernel())
            .map_err(err("finding the compare kernel"))?;
        let sm = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(err("reading the multiprocessor count"))?;
        let wrong = alloc
            .zeros::<u64>(1)
            .map_err(err("allocating the wrong-element counter"))?;
        Ok(Engine {
            stream,
            alloc,
            blas,
            compare,
            wrong,
            sm_count: u32::try_from(sm).unwrap_or(1).max(1),
            max_ulps: cfg.dtype.max_ulps(),
        })
    }

    fn sync(&self) -> Result<(), String> {
        self.stream
            .synchronize()
            .map_err(err("waiting for the GPU"))
    }
}

/// A, B and the C buffers of order `n`; `c[0]` is the reference.
struct Matrices<T> {
    n: usize,
    a: DevBuf<T>,
    b: DevBuf<T>,
    c: Vec<DevBuf<T>>,
}

impl<T: Elem> Matrices<T> {
    fn new(engine: &Engine, n: usize) -> Result<Self, String> {
        let len = n * n;
        let alloc = &engine.alloc;
        let host_a: Vec<T> = random_inputs(len, 1).into_iter().map(T::from_f32).collect();
        let a = alloc
            .from_host(&host_a)
            .map_err(err("copying A to the GPU"))?;
        drop(host_a);
        let host_b: Vec<T> = random_inputs(len, 2).into_iter().map(T::from_f32).collect();
        let b = alloc
            .from_host(&host_b)
            .map_err(err("copying B to the GPU"))?;
        drop(host_b);
        // SAFETY: a C buffer is written by a GEMM (beta = 0, C not read) before anything reads it.
        let c0 = unsafe { alloc.uninit::<T>(len) }.map_err(err("allocating C"))?;
        engine
            .stream
            .synchronize()
            .map_err(err("waiting for the inputs"))?;
        Ok(Matrices {
            n,
            a,
            b,
            c: vec![c0],
        })
    }

    fn bytes(&self) -> usize {
        self.n * self.n * std::mem::size_of::<T>()
    }
}

/// A batch enqueued at full load and not yet waited for.
struct Inflight {
    event: CudaEvent,
    units: u32,
    kernel: Kernel,
}

/// A prepared worker.
pub struct Burn<T: Elem> {
    engine: Engine,
    m: Matrices<T>,
    copy: Option<(DevBuf<u8>, DevBuf<u8>)>,
    /// Launch geometry of the compare kernel.
    geometry: (u32, u32, u64),
    /// The next C buffer to write (1..c.len(); 0 only while preparing).
    next: usize,
    gemms: u64,
    flip: bool,
    prepared: Prepared,
    copy_time: Duration,
}

impl<T: Elem> Burn<T>
where
    CudaBlas: Gemm<T>,
{
    /// Sizes and allocates everything (see [`super::worker`]) and marks the worker ready.
    pub fn prepare(
        ctx: &Arc<CudaContext>,
        engine: Engine,
        cfg: &WorkerConfig,
        shared: &DeviceShared,
        stop: &AtomicBool,
    ) -> Result<Self, String> {
        let mut n = cfg.order.unwrap_or(cfg.dtype.default_matrix_order());
        let mut shrinks = 0;
        let (m, gemm_time) = loop {
            let mut m = Matrices::<T>::new(&engine, n)?;
            // Warm-up (the first call chooses the algorithm), then timing.
            for _ in 0..2 {
                gemm(&engine, &mut m, 0)?;
            }
            engine.sync()?;
            const TIMED: u32 = 4;
            let t = Instant::now();
            for _ in 0..TIMED {
                gemm(&engine, &mut m, 0)?;
            }
            engine.sync()?;
            let per = t.elapsed() / TIMED;
            let smaller = shrink_order(n, per, SLICE).filter(|_| cfg.order.is_none());
            match smaller {
                Some(s) if shrinks < MAX_SHRINKS && !stop.load(Ordering::Relaxed) => {
                    shrinks += 1;
                    n = s;
                }
                _ => break (m, per),
            }
        };
        let matrix_bytes = m.bytes();
        let (free, total) = ctx.mem_get_info().map_err(err("reading the free memory"))?;
        let plan = plan_buffers(free, total, matrix_bytes, cfg.max_c)?;
        let plain_alloc = engine.alloc.mode() == AllocMode::Plain;
        let mut burn = Burn {
            geometry: kernels::compare_geometry(engine.sm_count, matrix_bytes),
            engine,
            m,
            copy: None,
            next: 1,
            gemms: 0,
            flip: false,
            prepared: Prepared {
                order: n,
                c_buffers: 1,
                copy_bytes: 0,
                allocated_bytes: 3 * matrix_bytes,
                gemm_time,
                plain_alloc,
            },
            copy_time: Duration::from_millis(1),
        };
        burn.allocate(plan, stop)?;
        shared.flop_per_gemm.store(gemm_flop(n), Ordering::Relaxed);
        shared.set_state(WorkerState::Ready(burn.prepared));
        Ok(burn)
    }

    /// Allocates the planned C and copy buffers. Running out of memory part-way (another process
    /// took some) keeps what was allocated, as long as one C buffer besides the reference exists.
    fn allocate(&mut self, plan: BufferPlan, stop: &AtomicBool) -> Result<(), String> {
        let alloc = self.engine.alloc.clone();
        let len = self.m.n * self.m.n;
        if plan.copy_bytes > 0 {
            let x = alloc.zeros::<u8>(plan.copy_bytes);
            let y = alloc.zeros::<u8>(plan.copy_bytes);
            if let (Ok(x), Ok(y)) = (x, y) {
                self.copy = Some((x, y));
                self.prepared.copy_bytes = plan.copy_bytes;
                self.prepared.allocated_bytes += 2 * plan.copy_bytes;
            }
        }
        for _ in 0..plan.extra_c {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // SAFETY: written by a GEMM before it is read (see Matrices::new).
            match unsafe { alloc.uninit::<T>(len) } {
                Ok(c) => {
                    self.m.c.push(c);
                    self.prepared.allocated_bytes += self.m.bytes();
                }
                Err(e) if self.m.c.len() < 2 => {
                    return Err(format!("allocating the C buffers: {e}"));
                }
                Err(_) => break,
            }
        }
        // An odd number of buffers besides the reference, so that every CHECK_EVERY-th GEMM
        // lands on each of them in turn.
        while self.m.c.len() - 1 > usable_extra(self.m.c.len() - 1) {
            self.m.c.pop();
            self.prepared.allocated_bytes -= self.m.bytes();
        }
        self.prepared.c_buffers = self.m.c.len();
        self.engine.sync()?;
        if self.copy.is_some() {
            self.copy_once()?;
            self.engine.sync()?;
            let t = Instant::now();
            self.copy_once()?;
            self.copy_once()?;
            self.engine.sync()?;
            self.copy_time = t.elapsed() / 2;
        }
        Ok(())
    }

    /// One GEMM into the next C buffer, and every [`CHECK_EVERY`]-th time the compare of that
    /// buffer with the reference.
    fn gemm_once(&mut self) -> Result<(), String> {
        let index = self.next;
        gemm(&self.engine, &mut self.m, index)?;
        self.gemms += 1;
        if self.gemms.is_multiple_of(CHECK_EVERY) {
            self.compare(index)?;
        }
        self.next = if index + 1 < self.m.c.len() {
            index + 1
        } else {
            1
        };
        Ok(())
    }

    /// Launches the compare of C buffer `index` with the reference.
    fn compare(&mut self, index: usize) -> Result<(), String> {
        let (blocks, threads, n_vec) = self.geometry;
        let (Some(reference), Some(got)) = (self.m.c.first(), self.m.c.get(index)) else {
            return Err(format!("no C buffer {index}"));
        };
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let max_ulps = self.engine.max_ulps;
        let mut launch = self.engine.stream.launch_builder(&self.engine.compare);
        launch
            .arg(&**reference)
            .arg(&**got)
            .arg(&n_vec)
            .arg(&max_ulps)
            .arg(&mut *self.engine.wrong);
        // SAFETY: the kernel reads n_vec 16-byte words of two buffers of matrix_bytes (n_vec =
        // matrix_bytes / 16) and adds to one u64; the argument types match its signature.
        unsafe { launch.launch(cfg) }.map_err(err("launching the compare kernel"))?;
        Ok(())
    }

    /// One device-to-device copy between the two copy buffers, alternating direction.
    fn copy_once(&mut self) -> Result<(), String> {
        let stream = &self.engine.stream;
        let Some((x, y)) = self.copy.as_mut() else {
            return Err("this device has no copy buffers".into());
        };
        self.flip = !self.flip;
        let r = if self.flip {
            stream.memcpy_dtod(&**x, &mut **y)
        } else {
            stream.memcpy_dtod(&**y, &mut **x)
        };
        r.map_err(err("device-to-device copy"))
    }

    fn unit(&mut self, kernel: Kernel) -> Result<(), String> {
        match kernel {
            Kernel::Gemm => self.gemm_once(),
            Kernel::MemoryBandwidth => self.copy_once(),
        }
    }

    /// Counts `units` of `kernel` as completed.
    fn account(&self, shared: &DeviceShared, kernel: Kernel, units: u32) {
        let units = u64::from(units);
        match kernel {
            Kernel::Gemm => {
                shared.gemms.fetch_add(units, Ordering::Relaxed);
            }
            Kernel::MemoryBandwidth => {
                let bytes = 2 * self.prepared.copy_bytes as u64;
                shared.bytes.fetch_add(units * bytes, Ordering::Relaxed);
            }
        }
    }

    /// Reads the wrong-element counter (the stream must be drained) into `shared`.
    fn publish_wrong(&self, shared: &DeviceShared) -> Result<(), String> {
        let v = self
            .engine
            .stream
            .clone_dtoh(&*self.engine.wrong)
            .map_err(err("reading the wrong-element counter"))?;
        self.engine.sync()?;
        if let Some(&w) = v.first() {
            shared.wrong.fetch_max(w, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Waits for the batch in flight, if any, and counts it.
    fn drain(&self, inflight: &mut Option<Inflight>, shared: &DeviceShared) -> Result<(), String> {
        if let Some(b) = inflight.take() {
            b.event.synchronize().map_err(err("waiting for the GPU"))?;
            self.account(shared, b.kernel, b.units);
        }
        Ok(())
    }

    /// The burn loop: runs until `stop`, at the duty and kernel `shared` says.
    pub fn run(mut self, shared: &DeviceShared, stop: &AtomicBool) -> Result<(), String> {
        let slot = |k: Kernel| match k {
            Kernel::Gemm => 0,
            Kernel::MemoryBandwidth => 1,
        };
        let mut slicers = [
            Slicer::new(self.prepared.gemm_time),
            Slicer::new(self.copy_time),
        ];
        let mut inflight: Option<Inflight> = None;
        let mut last_done: Option<Instant> = None;
        let mut last_read = Instant::now();
        // Work was enqueued since the counter was last read: an idle worker reads it once, not
        // every park (a copy every 50 ms would keep an idle GPU from idling).
        let mut unread = false;
        while !stop.load(Ordering::Relaxed) {
            let kernel = shared.kernel();
            let duty = if kernel == Kernel::MemoryBandwidth && self.copy.is_none() {
                0.0
            } else {
                shared.duty()
            };
            let k = slot(kernel);
            if duty <= 0.0 {
                self.drain(&mut inflight, shared)?;
                if unread {
                    self.publish_wrong(shared)?;
                    unread = false;
                    last_read = Instant::now();
                }
                last_done = None;
                for s in &mut slicers {
                    s.reset();
                }
                thread::park_timeout(IDLE_PARK);
                continue;
            }
            if duty >= 1.0 {
                // Full load: one batch queued behind the one running; wait only for the older.
                let units = slicers[k].batch_units();
                for _ in 0..units {
                    self.unit(kernel)?;
                }
                unread = true;
                let event = self
                    .engine
                    .stream
                    .record_event(None)
                    .map_err(err("recording an event"))?;
                if let Some(prev) = inflight.replace(Inflight {
                    event,
                    units,
                    kernel,
                }) {
                    prev.event
                        .synchronize()
                        .map_err(err("waiting for the GPU"))?;
                    let now = Instant::now();
                    if let Some(t0) = last_done {
                        slicers[slot(prev.kernel)].observe(prev.units, now - t0);
                    }
                    last_done = Some(now);
                    self.account(shared, prev.kernel, prev.units);
                }
                if last_read.elapsed() >= READ_EVERY {
                    self.drain(&mut inflight, shared)?;
                    self.publish_wrong(shared)?;
                    unread = false;
                    last_read = Instant::now();
                    last_done = None;
                }
                continue;
            }
            // Part load: this slice's share of work, drained, then idle to the slice's end.
            self.drain(&mut inflight, shared)?;
            last_done = None;
            let start = Instant::now();
            let plan = slicers[k].plan(duty);
            for _ in 0..plan.units {
                self.unit(kernel)?;
            }
            if plan.units > 0 {
                self.engine.sync()?;
                self.account(shared, kernel, plan.units);
                unread = true;
            }
            slicers[k].done(duty, plan, start.elapsed());
            if last_read.elapsed() >= READ_EVERY {
                self.publish_wrong(shared)?;
                unread = false;
                last_read = Instant::now();
            }
            // Idle to the slice's end. Only a stop or another kernel ends it early: the power
            // controller changes the duty 25 times a second (and wakes the worker), and cutting
            // the idle part short each time would add busy time the slicer does not count.
            let deadline = start + SLICE;
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                thread::park_timeout(deadline - now);
                if ends_slice_early(shared.duty()) || shared.kernel() != kernel {
                    break;
                }
            }
        }
        self.drain(&mut inflight, shared)?;
        self.publish_wrong(shared)
    }
}

/// `C[index] = A × B` on the engine's stream.
fn gemm<T: Elem>(engine: &Engine, m: &mut Matrices<T>, index: usize) -> Result<(), String>
where
    CudaBlas: Gemm<T>,
{
    let n = i32::try_from(m.n).map_err(|_| format!("matrix order {} too large", m.n))?;
    let cfg = GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_N,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: n,
        n,
        k: n,
        alpha: T::from_f32(1.0),
        lda: n,
        ldb: n,
        beta: T::from_f32(0.0),
        ldc: n,
    };
    let c =
        m.c.get_mut(index)
            .ok_or_else(|| format!("no C buffer {index}"))?;
    // SAFETY: A, B and C are n × n matrices of T on this device, column-major with leading
    // dimension n, and C is neither A nor B.
    unsafe { engine.blas.gemm(cfg, &*m.a, &*m.b, &mut **c) }.map_err(err("cuBLAS GEMM"))
}
