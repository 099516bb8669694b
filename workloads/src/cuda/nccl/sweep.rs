//! One local GPU's rank of an NCCL phase, on its own thread: its context and a stream of its own
//! (not the burn's; the highest priority, so NCCL's kernels are not queued behind GEMMs), the
//! communicator, buffers for the largest agreed size, and the sweep.
//!
//! Every rank must issue the same NCCL calls in the same order or the collectives hang, so every
//! decision is an **agreement**: a one-element all-reduce (MIN) of each rank's proposal. First the
//! number of sizes every rank's free memory holds; then per size whether to run it (the window,
//! a stop, a failed rank: [`Halt`]) and, after the warm-up, how many timed iterations.
//!
//! Per size: the input pattern of the host collectives (iteration 1) is filled on the host and
//! copied in, one warm-up, the agreement on the count, the output filled with NaN, the timed
//! iterations back to back between two CUDA events, the output copied back and checked exactly.
//! Waiting is polling ([`Comm::settle`], [`Rank::drain`]): when the phase's end passes, the phase is
//! stopped or NCCL reports an error, the communicator is aborted and the fault names the step.

use super::comm::{Call, Comm, Failure, Watch, POLL};
use super::merge::{Ended, GpuOutcome, SizeResult};
use super::plan::{
    geometry, mean_ns, propose_go, propose_iterations, Estimate, Geometry, Halt, Plan,
    NCCL_RESERVE_BYTES,
};
use super::verify::{count_wrong, fill_input};
use crate::cuda::alloc::{self, Allocator, DevBuf};
use crate::fabric::collective::size_name;
use cudarc::driver::{
    result, sys::CUdeviceptr, sys::CUevent_flags, CudaContext, CudaEvent, CudaStream, DevicePtr,
};
use hallmark_protocol::CollectiveOp;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything one GPU's thread needs.
#[derive(Debug)]
pub struct RankJob {
    /// The GPU's index in the backend and its CUDA ordinal.
    pub gpu: usize,
    pub ordinal: usize,
    pub rank: u32,
    pub world: u32,
    pub id: [u8; 128],
    pub ops: Vec<CollectiveOp>,
    /// The plan's fixed timed iterations, if any.
    pub iterations: Option<u32>,
    pub plan: Plan,
    pub start: Instant,
    pub end: Instant,
    pub stop: Arc<AtomicBool>,
    pub slot: Arc<Mutex<GpuOutcome>>,
}

/// Runs `f` on the outcome (a poisoned lock is taken over: the outcome is plain data).
pub fn with_outcome<R>(slot: &Mutex<GpuOutcome>, f: impl FnOnce(&mut GpuOutcome) -> R) -> R {
    match slot.lock() {
        Ok(mut o) => f(&mut o),
        Err(e) => f(&mut e.into_inner()),
    }
}

/// The thread's body: runs the rank and leaves how it ended in the outcome. A panic inside (a
/// function missing from an old NCCL, which cudarc reports by panicking) is a fault.
pub fn run(job: RankJob) {
    let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&job)));
    let ended = ended.unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        with_outcome(&job.slot, |o| {
            o.faults.push(format!(
                "the NCCL thread stopped: {what} (a libnccl older than {}.{} lacks functions hallmark calls)",
                super::plan::MIN_VERSION.0,
                super::plan::MIN_VERSION.1
            ))
        });
        Ended::Halted(Halt::Failed)
    });
    with_outcome(&job.slot, |o| o.ended = ended);
}

fn fault(job: &RankJob, message: String) {
    tracing::warn!("NCCL rank {} (GPU {}): {message}", job.rank, job.gpu);
    with_outcome(&job.slot, |o| o.faults.push(message));
}

fn halt_of(f: &Failure) -> Halt {
    match f {
        Failure::Stopped => Halt::Stopped,
        _ => Halt::Failed,
    }
}

fn body(job: &RankJob) -> Ended {
    let watch = Watch {
        end: job.end,
        stop: &job.stop,
    };
    // Started early: wait for the window, in steps so that a stop is seen.
    while Instant::now() < job.start && !job.stop.load(Ordering::Relaxed) {
        let left = job.start.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(10)));
    }
    if job.stop.load(Ordering::Relaxed) {
        return Ended::Halted(Halt::Stopped);
    }
    let gpu = match Gpu::open(job.ordinal) {
        Ok(g) => g,
        Err(e) => {
            fault(
                job,
                format!("preparing CUDA device {} for NCCL: {e}", job.ordinal),
            );
            return Ended::Halted(Halt::Failed);
        }
    };
    let comm = match Comm::init(&job.id, job.world as usize, job.rank as usize, &watch) {
        Ok(c) => c,
        Err(f) => {
            let hint = match f {
                Failure::Deadline => {
                    " (a rank did not join: a member without NCCL or whose phase failed, a \
                     firewall between the nodes, or NCCL_SOCKET_IFNAME naming no interface the \
                     others reach)"
                }
                _ => "",
            };
            fault(
                job,
                format!("{}; communicator aborted{hint}", f.describe("NCCL init")),
            );
            return Ended::Halted(halt_of(&f));
        }
    };
    let mut rank = Rank {
        job,
        watch,
        gpu,
        comm,
        bufs: None,
        broken: false,
    };
    let ended = rank.sweep();
    rank.close();
    ended
}

/// The CUDA side of one GPU: its context, the NCCL stream, timing events and the agreement's
/// two i32 (proposal, agreed).
struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    t0: CudaEvent,
    t1: CudaEvent,
    mark: CudaEvent,
    /// How device memory is allocated ([`crate::cuda::alloc`]).
    alloc: Allocator,
    flag: DevBuf<i32>,
    flag_ptr: CUdeviceptr,
}

impl Gpu {
    fn open(ordinal: usize) -> Result<Gpu, String> {
        let e = |what: &'static str| move |e: result::DriverError| format!("{what}: {e}");
        let ctx = CudaContext::new(ordinal).map_err(e("binding its context"))?;
        // SAFETY: every buffer of this thread is used on its one stream, in order.
        unsafe { ctx.disable_event_tracking() };
        let stream = match result::stream::get_priority_range() {
            Ok((_, greatest)) => ctx.new_stream_with_priority(greatest),
            Err(_) => ctx.new_stream(),
        }
        .map_err(e("creating its NCCL stream"))?;
        let timing = Some(CUevent_flags::CU_EVENT_DEFAULT);
        let t0 = ctx.new_event(timing).map_err(e("creating an event"))?;
        let t1 = ctx.new_event(timing).map_err(e("creating an event"))?;
        let mark = ctx.new_event(None).map_err(e("creating an event"))?;
        let mode = alloc::mode_for(ordinal, &stream)?;
        let alloc = Allocator::new(Arc::clone(&stream), mode);
        let flag = alloc
            .zeros::<i32>(2)
            .map_err(e("allocating the agreement flag"))?;
        let flag_ptr = flag.device_ptr(&stream).0;
        Ok(Gpu {
            ctx,
            stream,
            t0,
            t1,
            mark,
            alloc,
            flag,
            flag_ptr,
        })
    }
}

/// The sweep's device buffers for the largest agreed size, and one host buffer for the input
/// pattern and then the output copied back.
struct Buffers {
    send: DevBuf<u8>,
    out: DevBuf<u8>,
    send_ptr: CUdeviceptr,
    out_ptr: CUdeviceptr,
    host: Vec<u8>,
}

/// How one size ended short of a result.
enum Cut {
    Halted(Halt),
    Failed(Failure, String),
}

struct Rank<'a> {
    job: &'a RankJob,
    watch: Watch<'a>,
    gpu: Gpu,
    comm: Comm,
    bufs: Option<Buffers>,
    /// The communicator failed and must be aborted.
    broken: bool,
}

fn cuda(e: result::DriverError) -> Failure {
    Failure::Cuda(e.to_string())
}

impl Rank<'_> {
    fn stopped(&self) -> bool {
        self.watch.stop.load(Ordering::Relaxed)
    }

    fn left(&self) -> Duration {
        self.job.end.saturating_duration_since(Instant::now())
    }

    /// Waits (polling) until the stream has run everything queued so far.
    fn drain(&self) -> Result<(), Failure> {
        self.gpu.mark.record(&self.gpu.stream).map_err(cuda)?;
        loop {
            if self.gpu.mark.try_is_complete().map_err(cuda)? {
                return Ok(());
            }
            self.comm.check()?;
            self.watch.check()?;
            std::thread::sleep(POLL);
        }
    }

    /// The minimum of every rank's `proposal`.
    fn agree(&mut self, proposal: i32) -> Result<i32, Failure> {
        let stream = Arc::clone(&self.gpu.stream);
        stream
            .memcpy_htod(&[proposal], &mut *self.gpu.flag)
            .map_err(cuda)?;
        let call = Call::MinI32 {
            send: self.gpu.flag_ptr,
            recv: self.gpu.flag_ptr + 4,
        };
        // SAFETY: the flag buffer holds two i32 of this device and lives as long as `self`.
        unsafe { self.comm.enqueue(&call, stream.cu_stream(), &self.watch) }?;
        self.drain()?;
        let mut both = [0i32; 2];
        stream
            .memcpy_dtoh(&*self.gpu.flag, &mut both)
            .map_err(cuda)?;
        self.drain()?;
        Ok(both[1])
    }

    /// Records a failed step: the fault names it; the communicator will be aborted.
    fn fail(&mut self, f: &Failure, what: &str) -> Ended {
        self.broken = true;
        fault(
            self.job,
            format!("{}; communicators aborted", f.describe(what)),
        );
        Ended::Halted(halt_of(f))
    }

    fn sweep(&mut self) -> Ended {
        let job = self.job;
        let (n, r) = (job.world as usize, job.rank as usize);
        let plan = &job.plan;
        let hold = match self.gpu.ctx.mem_get_info() {
            Ok((free, total)) => {
                let hold = plan.holdable(&job.ops, n, r, free as u64, NCCL_RESERVE_BYTES);
                if hold < plan.sizes.len() {
                    fault(
                        job,
                        memory_message(plan, &job.ops, n, r, hold, free as u64, total as u64),
                    );
                }
                hold
            }
            Err(e) => {
                fault(job, format!("reading the free GPU memory: {e}"));
                0
            }
        };
        let k = match self.agree(i32::try_from(hold).unwrap_or(i32::MAX)) {
            Ok(v) => usize::try_from(v).unwrap_or(0).min(plan.sizes.len()),
            Err(f) => return self.fail(&f, "the agreement on the sizes"),
        };
        with_outcome(&job.slot, |o| o.agreed_sizes = Some(k));
        if k > 0 {
            if let Err(e) = self.allocate(k) {
                fault(job, e);
            }
        }
        for &op in &job.ops {
            let mut est: Option<Estimate> = None;
            for &size in plan.sizes.iter().take(k) {
                let Some(g) = geometry(op, n, r, size) else {
                    continue; // too small for the world: skipped on every rank
                };
                let what = format!("{} of {}", op.name(), size_name(size));
                let proposal = if self.bufs.is_none() {
                    Halt::Failed.code()
                } else if self.stopped() {
                    Halt::Stopped.code()
                } else {
                    propose_go(est, self.left())
                };
                match self.agree(proposal) {
                    Ok(v) => {
                        if let Some(h) = Halt::from_agreed(v) {
                            return Ended::Halted(h);
                        }
                    }
                    Err(f) => return self.fail(&f, &format!("{what} (agreeing to run it)")),
                }
                match self.run_size(op, size, &g, &mut est) {
                    Ok(res) => with_outcome(&job.slot, |o| o.results.push(res)),
                    Err(Cut::Halted(h)) => return Ended::Halted(h),
                    Err(Cut::Failed(f, stage)) => {
                        return self.fail(&f, &format!("{what} ({stage})"))
                    }
                }
            }
        }
        Ended::Complete
    }

    /// Device and host buffers for the first `k` sizes.
    fn allocate(&mut self, k: usize) -> Result<(), String> {
        let job = self.job;
        let (send_b, out_b) = job
            .plan
            .buffers(&job.ops, job.world as usize, job.rank as usize, k);
        let bytes = |b: u64, what: &str| {
            usize::try_from(b).map_err(|_| format!("the {what} buffer of {b} bytes is too large"))
        };
        let (send_b, out_b) = (bytes(send_b, "send")?, bytes(out_b, "output")?);
        let host = |len: usize, what: &str| {
            let mut v: Vec<u8> = Vec::new();
            v.try_reserve_exact(len).map_err(|e| {
                format!(
                    "cannot allocate the host {what} buffer ({}): {e}; lower the plan's max_bytes",
                    size_name(len as u64)
                )
            })?;
            v.resize(len, 0);
            Ok::<_, String>(v)
        };
        let dev = |len: usize, what: &str| {
            // SAFETY: filled before it is read (the input) or written by NCCL and NaN first (the
            // output).
            unsafe { self.gpu.alloc.uninit::<u8>(len.max(4)) }.map_err(|e| {
                format!(
                    "allocating the {what} buffer ({}) on the GPU: {e}; lower the plan's max_bytes",
                    size_name(len as u64)
                )
            })
        };
        let send = dev(send_b, "send")?;
        let out = dev(out_b, "output")?;
        let send_ptr = send.device_ptr(&self.gpu.stream).0;
        let out_ptr = out.device_ptr(&self.gpu.stream).0;
        self.bufs = Some(Buffers {
            host: host(send_b.max(out_b), "staging")?,
            send,
            out,
            send_ptr,
            out_ptr,
        });
        Ok(())
    }

    /// The NCCL call of `op` with `g`'s counts on the sweep's buffers.
    fn call(&self, op: CollectiveOp, g: &Geometry, b: &Buffers) -> Call {
        let (send, out, count) = (b.send_ptr, b.out_ptr, g.nccl_count);
        match op {
            CollectiveOp::AllReduce => Call::AllReduce {
                send,
                recv: out,
                count,
            },
            CollectiveOp::AllGather => Call::AllGather {
                send,
                recv: out,
                count,
            },
            CollectiveOp::ReduceScatter => Call::ReduceScatter {
                send,
                recv: out + g.recv_offset as u64 * 4,
                count,
            },
            CollectiveOp::Broadcast => Call::Broadcast {
                send,
                recv: out,
                count,
            },
            CollectiveOp::AllToAll => Call::AllToAll {
                send,
                recv: out,
                chunk: count,
                world: self.job.world as usize,
            },
        }
    }

    /// `iters` calls back to back between the timing events; their time in ms.
    fn timed(&self, call: &Call, iters: u32) -> Result<f32, (Failure, String)> {
        let s = &self.gpu.stream;
        let at = |k: u32| format!("timed iteration {} of {iters}", k + 1);
        self.gpu.t0.record(s).map_err(|e| (cuda(e), at(0)))?;
        for k in 0..iters {
            // SAFETY: the buffers of `call` are this device's and live as long as `self`.
            unsafe { self.comm.enqueue(call, s.cu_stream(), &self.watch) }
                .map_err(|f| (f, at(k)))?;
        }
        self.gpu.t1.record(s).map_err(|e| (cuda(e), at(iters)))?;
        let stage = || format!("waiting for the {iters} timed iterations");
        self.drain().map_err(|f| (f, stage()))?;
        self.gpu
            .t0
            .elapsed_ms(&self.gpu.t1)
            .map_err(|e| (cuda(e), stage()))
    }

    /// One size after the agreement to run it.
    fn run_size(
        &mut self,
        op: CollectiveOp,
        size: u64,
        g: &Geometry,
        est: &mut Option<Estimate>,
    ) -> Result<SizeResult, Cut> {
        let Some(mut b) = self.bufs.take() else {
            return Err(Cut::Halted(Halt::Failed));
        };
        let out = self.measure(op, size, g, est, &mut b);
        self.bufs = Some(b);
        out
    }

    /// Fill, warm-up, agreement on the count, NaN, timed iterations, check.
    fn measure(
        &mut self,
        op: CollectiveOp,
        size: u64,
        g: &Geometry,
        est: &mut Option<Estimate>,
        b: &mut Buffers,
    ) -> Result<SizeResult, Cut> {
        let at = |stage: &'static str| move |f: Failure| Cut::Failed(f, stage.to_string());
        let stream = Arc::clone(&self.gpu.stream);
        let (in_bytes, out_bytes) = (g.send_elems * 4, g.out_elems * 4);
        if in_bytes > b.send.len()
            || out_bytes > b.out.len()
            || in_bytes.max(out_bytes) > b.host.len()
        {
            // The buffers were sized from the same geometry; this is a bug, not a peer's doing.
            return Err(Cut::Failed(
                Failure::Cuda(format!(
                    "the buffers ({} in, {} out) are smaller than the size needs ({in_bytes} in, {out_bytes} out)",
                    b.send.len(),
                    b.out.len()
                )),
                "sizing the buffers".into(),
            ));
        }

        let t = Instant::now();
        fill_input(&g.shape, 1, &mut b.host[..in_bytes], false);
        if in_bytes > 0 {
            stream
                .memcpy_htod(&b.host[..in_bytes], &mut *b.send)
                .map_err(|e| Cut::Failed(cuda(e), "copying the input to the GPU".into()))?;
        }
        let mut aux = t.elapsed();
        let call = self.call(op, g, b);

        let warm_ms = self
            .timed(&call, 1)
            .map_err(|(f, _)| Cut::Failed(f, "warm-up".into()))?;
        let warm = Duration::from_nanos(mean_ns(warm_ms, 1));
        let proposal = if self.stopped() {
            Halt::Stopped.code()
        } else {
            propose_iterations(self.job.iterations, warm, aux, self.left())
        };
        let agreed = self
            .agree(proposal)
            .map_err(at("agreeing on the timed iterations"))?;
        if let Some(h) = Halt::from_agreed(agreed) {
            return Err(Cut::Halted(h));
        }
        // At most this rank's own proposal (the agreement is a minimum), so within the plan's
        // bounds.
        let iters = u32::try_from(agreed).unwrap_or(1).max(1);

        // SAFETY: `out_ptr` holds at least `out_bytes` bytes of this device (checked above).
        unsafe { result::memset_d8_async(b.out_ptr, 0xFF, out_bytes, stream.cu_stream()) }
            .map_err(|e| Cut::Failed(cuda(e), "filling the output with NaN".into()))?;
        let ms = self
            .timed(&call, iters)
            .map_err(|(f, s)| Cut::Failed(f, s))?;

        let t = Instant::now();
        let view = b
            .out
            .try_slice(..out_bytes)
            .ok_or_else(|| Cut::Failed(Failure::Cuda("output view".into()), "the check".into()))?;
        stream
            .memcpy_dtoh(&view, &mut b.host[..out_bytes])
            .map_err(|e| Cut::Failed(cuda(e), "copying the output back".into()))?;
        self.drain().map_err(at("copying the output back"))?;
        let wrong = count_wrong(&g.shape, 1, &b.host[..out_bytes]);
        aux += t.elapsed();
        let mean = mean_ns(ms, iters);
        *est = Some(Estimate {
            mean: Duration::from_nanos(mean),
            aux,
        });
        Ok(SizeResult {
            op,
            size_bytes: size,
            iterations: iters,
            mean_ns: mean,
            wrong_elements: wrong,
        })
    }

    /// Ends the communicator: finalised after a clean sweep, aborted after a failure.
    fn close(self) {
        let Rank {
            job,
            watch,
            gpu,
            comm,
            bufs,
            broken,
        } = self;
        if broken {
            drop(comm);
        } else if let Err(f) = comm.finish(&watch) {
            tracing::warn!(
                "NCCL rank {} (GPU {}): {}; aborted",
                job.rank,
                job.gpu,
                f.describe("closing the communicator")
            );
        }
        // The buffers go after the communicator that may have used them, then the stream.
        drop(bufs);
        drop(gpu);
    }
}

/// The fault of a GPU whose free memory holds only the first `hold` sizes.
pub(super) fn memory_message(
    plan: &Plan,
    ops: &[CollectiveOp],
    n: usize,
    r: usize,
    hold: usize,
    free: u64,
    total: u64,
) -> String {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let (send, out) = plan.buffers(ops, n, r, hold + 1);
    let first = plan.sizes.get(hold).copied().unwrap_or(0);
    let advice = match hold.checked_sub(1).and_then(|i| plan.sizes.get(i)) {
        Some(&s) => format!("lower the plan's max_bytes to {} or less", size_name(s)),
        None => {
            "no size fits: free GPU memory (a burn level of 0 does not free the burn's buffers)"
                .to_string()
        }
    };
    format!(
        "only {:.2} GiB of the GPU's {:.1} GiB are free after NCCL's setup (the GEMM burn holds \
         most of the rest); sizes from {} need {:.2} GiB of buffers and {} MiB are kept for NCCL; \
         {advice}",
        gib(free),
        gib(total),
        size_name(first),
        gib(send.saturating_add(out)),
        NCCL_RESERVE_BYTES >> 20,
    )
}
