//! One NCCL communicator, owned by the thread of its GPU, through cudarc's raw bindings
//! (`cudarc::nccl::sys`; cudarc's safe `Comm` blocks in its init and has no abort).
//!
//! The communicator is **non-blocking** (`ncclConfig_t::blocking = 0`, NCCL 2.14 and newer): its
//! init, every collective and every group end return at once, `ncclInProgress` while NCCL still
//! works in the background, and [`Comm::settle`] polls `ncclCommGetAsyncError` until the call is
//! through. Every wait here polls, checking the phase's end and the stop flag ([`Watch`]) between
//! polls, so the owning thread never blocks inside NCCL: when the end passes, the phase is stopped or
//! NCCL reports an error, the caller drops the communicator, which aborts it (`ncclCommAbort`), and
//! NCCL's kernels waiting on a dead peer exit. A normal end finalises it (`ncclCommFinalize`, which
//! completes what is in flight) and destroys it.
//!
//! The functions are looked up in the library on first use; cudarc panics on a missing symbol
//! (an NCCL older than the bindings), which the thread's `catch_unwind` turns into a fault.

use cudarc::driver::sys::CUdeviceptr;
use cudarc::nccl::sys;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Pause between two polls of an operation in progress.
pub const POLL: Duration = Duration::from_micros(50);

/// `ncclSuccess` and `ncclInProgress`.
const SUCCESS: u32 = 0;
const IN_PROGRESS: u32 = 7;

/// `NCCL_CONFIG_UNDEF_INT`: leave the field to NCCL.
const UNDEF_INT: c_int = c_int::MIN;
/// `NCCL_VERSION(2, 30, 0)`: the header version of cudarc's bindings, as `NCCL_CONFIG_INITIALIZER`
/// writes it. An older library reads only the fields it knows (the config carries its size).
const CONFIG_VERSION: u32 = 23000;
/// `NCCL_API_MAGIC`.
const CONFIG_MAGIC: u32 = 0xcafe_beef;

/// When waiting must end: the phase's end, or the stop flag.
#[derive(Debug, Clone, Copy)]
pub struct Watch<'a> {
    pub end: Instant,
    pub stop: &'a AtomicBool,
}

impl Watch<'_> {
    /// `Err` once the phase is stopped or its end has passed.
    pub fn check(&self) -> Result<(), Failure> {
        if self.stop.load(Ordering::Relaxed) {
            Err(Failure::Stopped)
        } else if Instant::now() >= self.end {
            Err(Failure::Deadline)
        } else {
            Ok(())
        }
    }
}

/// Why an NCCL step did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// NCCL returned or reported an error (its `ncclResult_t` and last error text).
    Nccl { code: u32, detail: String },
    /// A CUDA call of the thread failed.
    Cuda(String),
    /// The phase's end passed first.
    Deadline,
    /// The phase was stopped.
    Stopped,
}

impl Failure {
    /// "`what` …": what happened to the step named `what`.
    pub fn describe(&self, what: &str) -> String {
        match self {
            Failure::Nccl { code, detail } => {
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                };
                format!("{what} failed: NCCL {}{detail}", result_name(*code))
            }
            Failure::Cuda(e) => format!("{what} failed: {e}"),
            Failure::Deadline => format!("{what} did not complete before the phase's end"),
            Failure::Stopped => format!("{what} was cut short: the phase was stopped"),
        }
    }
}

/// What an `ncclResult_t` means.
pub fn result_name(code: u32) -> String {
    let name = match code {
        0 => "success",
        1 => "unhandled CUDA error",
        2 => "system error (a socket, memory or the network plugin)",
        3 => "internal error",
        4 => "invalid argument",
        5 => "invalid usage",
        6 => "remote error (a peer failed or its connection broke)",
        7 => "in progress",
        8 => "timeout",
        other => return format!("error {other}"),
    };
    name.to_string()
}

/// The config of a non-blocking communicator, everything else left to NCCL (what
/// `NCCL_CONFIG_INITIALIZER` writes, then `blocking = 0`).
pub fn nonblocking_config() -> sys::ncclConfig_t {
    sys::ncclConfig_t {
        size: std::mem::size_of::<sys::ncclConfig_t>(),
        magic: CONFIG_MAGIC,
        version: CONFIG_VERSION,
        blocking: 0,
        cgaClusterSize: UNDEF_INT,
        minCTAs: UNDEF_INT,
        maxCTAs: UNDEF_INT,
        netName: std::ptr::null(),
        splitShare: UNDEF_INT,
        trafficClass: UNDEF_INT,
        commName: std::ptr::null(),
        collnetEnable: UNDEF_INT,
        CTAPolicy: UNDEF_INT,
        shrinkShare: UNDEF_INT,
        nvlsCTAs: UNDEF_INT,
        nChannelsPerNetPeer: UNDEF_INT,
        nvlinkCentricSched: UNDEF_INT,
        graphUsageMode: UNDEF_INT,
        numRmaCtx: UNDEF_INT,
        maxP2pPeers: UNDEF_INT,
    }
}

/// An `ncclUniqueId` from its 128 bytes.
pub fn unique_id(bytes: &[u8; 128]) -> sys::ncclUniqueId {
    let mut internal: [c_char; 128] = [0; 128];
    for (d, s) in internal.iter_mut().zip(bytes) {
        *d = c_char::from_ne_bytes([*s]);
    }
    sys::ncclUniqueId { internal }
}

/// The 128 bytes of an `ncclUniqueId` (`c_char` is signed on x86-64, unsigned on aarch64).
pub fn id_bytes(id: &sys::ncclUniqueId) -> Vec<u8> {
    id.internal.iter().map(|c| c.to_ne_bytes()[0]).collect()
}

/// NCCL's version code (`ncclGetVersion`). The library must be present.
pub fn library_version() -> Result<i32, u32> {
    let mut v: c_int = 0;
    // SAFETY: writes one int.
    let r = unsafe { sys::ncclGetVersion(&mut v) } as u32;
    if r == SUCCESS {
        Ok(v)
    } else {
        Err(r)
    }
}

/// A fresh `ncclUniqueId` (`ncclGetUniqueId`: starts NCCL's bootstrap root on this host, which
/// waits for the ranks of the communicator made with it).
pub fn new_unique_id() -> Result<sys::ncclUniqueId, u32> {
    let mut id = sys::ncclUniqueId { internal: [0; 128] };
    // SAFETY: writes the 128-byte id.
    let r = unsafe { sys::ncclGetUniqueId(&mut id) } as u32;
    if r == SUCCESS {
        Ok(id)
    } else {
        Err(r)
    }
}

/// NCCL's text for its last error, or "".
fn last_error(comm: sys::ncclComm_t) -> String {
    // SAFETY: returns a pointer to a NUL-terminated string owned by NCCL (or null).
    let p = unsafe { sys::ncclGetLastError(comm) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated, valid until the next NCCL call on this thread.
    unsafe { CStr::from_ptr(p) }
        .to_string_lossy()
        .trim()
        .to_string()
}

/// One rank's communicator. Dropping it without [`Comm::finish`] aborts it.
#[derive(Debug)]
pub struct Comm {
    raw: sys::ncclComm_t,
}

impl Comm {
    /// Starts the communicator of `rank` among `world` ranks on the CUDA device current on this
    /// thread, and waits (polling) until NCCL has connected it. On an error the communicator made
    /// so far is aborted.
    pub fn init(
        id: &[u8; 128],
        world: usize,
        rank: usize,
        watch: &Watch<'_>,
    ) -> Result<Comm, Failure> {
        let bad = |what: &str| Failure::Nccl {
            code: 4,
            detail: format!("{what} does not fit NCCL's int"),
        };
        let nranks = c_int::try_from(world).map_err(|_| bad("the world size"))?;
        let me = c_int::try_from(rank).map_err(|_| bad("the rank"))?;
        let mut config = nonblocking_config();
        let mut raw: sys::ncclComm_t = std::ptr::null_mut();
        // SAFETY: `raw` and `config` outlive the call; NCCL copies the config.
        let r = unsafe {
            sys::ncclCommInitRankConfig(&mut raw, nranks, unique_id(id), me, &mut config)
        } as u32;
        if raw.is_null() {
            return Err(Failure::Nccl {
                code: if r == SUCCESS { 3 } else { r },
                detail: format!(
                    "ncclCommInitRankConfig gave no communicator; {}",
                    last_error(raw)
                ),
            });
        }
        let comm = Comm { raw };
        comm.submitted(r, watch)?;
        Ok(comm)
    }

    /// The communicator's state: `ncclSuccess`, `ncclInProgress`, or its error.
    fn async_state(&self) -> u32 {
        let mut state: u32 = SUCCESS;
        // SAFETY: `raw` is a live communicator; NCCL writes one `ncclResult_t` (a C enum, 4
        // bytes), read here as a plain u32 so that no value can be an invalid Rust enum.
        let r = unsafe {
            sys::ncclCommGetAsyncError(
                self.raw,
                (&mut state as *mut u32).cast::<sys::ncclResult_t>(),
            )
        } as u32;
        if r == SUCCESS {
            state
        } else {
            r
        }
    }

    fn error(&self, code: u32) -> Failure {
        Failure::Nccl {
            code,
            detail: last_error(self.raw),
        }
    }

    /// Waits (polling) until the last call is through; `Err` on an NCCL error, the phase's end
    /// or a stop.
    pub fn settle(&self, watch: &Watch<'_>) -> Result<(), Failure> {
        loop {
            match self.async_state() {
                SUCCESS => return Ok(()),
                IN_PROGRESS => {
                    watch.check()?;
                    std::thread::sleep(POLL);
                }
                code => return Err(self.error(code)),
            }
        }
    }

    /// `Err` if NCCL has reported an error on this communicator (a broken peer connection while
    /// work is queued).
    pub fn check(&self) -> Result<(), Failure> {
        match self.async_state() {
            SUCCESS | IN_PROGRESS => Ok(()),
            code => Err(self.error(code)),
        }
    }

    /// The result of a call: through, in progress (then settled), or an error.
    fn submitted(&self, r: u32, watch: &Watch<'_>) -> Result<(), Failure> {
        match r {
            SUCCESS => Ok(()),
            IN_PROGRESS => self.settle(watch),
            code => Err(self.error(code)),
        }
    }

    /// Enqueues one collective or a group of sends and receives on `stream` (see [`Call`]).
    ///
    /// # Safety
    /// The device pointers of `call` must be allocations of this communicator's device, large
    /// enough for the counts, alive until the stream has run the operation; `stream` must be a
    /// live stream of that device.
    pub unsafe fn enqueue(
        &self,
        call: &Call,
        stream: cudarc::driver::sys::CUstream,
        watch: &Watch<'_>,
    ) -> Result<(), Failure> {
        let s = stream as sys::cudaStream_t;
        let f32t = sys::ncclDataType_t::ncclFloat32;
        let sum = sys::ncclRedOp_t::ncclSum;
        let src = |p: CUdeviceptr| p as *const c_void;
        let dst = |p: CUdeviceptr| p as *mut c_void;
        let r = match *call {
            Call::AllReduce { send, recv, count } => {
                sys::ncclAllReduce(src(send), dst(recv), count, f32t, sum, self.raw, s)
            }
            Call::AllGather { send, recv, count } => {
                sys::ncclAllGather(src(send), dst(recv), count, f32t, self.raw, s)
            }
            Call::ReduceScatter { send, recv, count } => {
                sys::ncclReduceScatter(src(send), dst(recv), count, f32t, sum, self.raw, s)
            }
            Call::Broadcast { send, recv, count } => {
                sys::ncclBroadcast(src(send), dst(recv), count, f32t, 0, self.raw, s)
            }
            Call::AllToAll {
                send,
                recv,
                chunk,
                world,
            } => return self.all_to_all(send, recv, chunk, world, s, watch),
            Call::MinI32 { send, recv } => sys::ncclAllReduce(
                src(send),
                dst(recv),
                1,
                sys::ncclDataType_t::ncclInt32,
                sys::ncclRedOp_t::ncclMin,
                self.raw,
                s,
            ),
        } as u32;
        self.submitted(r, watch)
    }

    /// All-to-all as one group of a send and a receive of `chunk` elements per peer.
    unsafe fn all_to_all(
        &self,
        send: CUdeviceptr,
        recv: CUdeviceptr,
        chunk: usize,
        world: usize,
        s: sys::cudaStream_t,
        watch: &Watch<'_>,
    ) -> Result<(), Failure> {
        let f32t = sys::ncclDataType_t::ncclFloat32;
        let bytes = (chunk as u64).saturating_mul(4);
        let r = sys::ncclGroupStart() as u32;
        if r != SUCCESS {
            return Err(self.error(r));
        }
        let mut first_error = SUCCESS;
        for q in 0..world {
            let Ok(peer) = c_int::try_from(q) else {
                first_error = 4;
                break;
            };
            let off = (q as u64).saturating_mul(bytes);
            let a = sys::ncclSend(
                (send + off) as *const c_void,
                chunk,
                f32t,
                peer,
                self.raw,
                s,
            ) as u32;
            let b =
                sys::ncclRecv((recv + off) as *mut c_void, chunk, f32t, peer, self.raw, s) as u32;
            for r in [a, b] {
                if r != SUCCESS && r != IN_PROGRESS && first_error == SUCCESS {
                    first_error = r;
                }
            }
        }
        // The group is always closed, also after an error inside it.
        let end = sys::ncclGroupEnd() as u32;
        if first_error != SUCCESS {
            return Err(self.error(first_error));
        }
        self.submitted(end, watch)
    }

    /// Finalises (completing what is in flight, by the phase's end) and destroys the
    /// communicator; aborts it if that fails.
    pub fn finish(self, watch: &Watch<'_>) -> Result<(), Failure> {
        // SAFETY: a live communicator, owned here.
        let r = unsafe { sys::ncclCommFinalize(self.raw) } as u32;
        self.submitted(r, watch)?; // on Err, dropping `self` aborts
        let raw = self.raw;
        std::mem::forget(self);
        // SAFETY: finalised; destroyed once (the Drop that would abort it was forgotten).
        let r = unsafe { sys::ncclCommDestroy(raw) } as u32;
        if r == SUCCESS {
            Ok(())
        } else {
            Err(Failure::Nccl {
                code: r,
                detail: "destroying the communicator".into(),
            })
        }
    }
}

impl Drop for Comm {
    fn drop(&mut self) {
        // SAFETY: a live communicator, aborted once; the abort ends its kernels and frees it.
        let r = unsafe { sys::ncclCommAbort(self.raw) } as u32;
        if r != SUCCESS {
            tracing::warn!("aborting an NCCL communicator failed: {}", result_name(r));
        }
    }
}

/// One NCCL call on device pointers (f32 elements unless named otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Sum of `count` elements.
    AllReduce {
        send: CUdeviceptr,
        recv: CUdeviceptr,
        count: usize,
    },
    /// `count` elements from each rank, gathered in rank order.
    AllGather {
        send: CUdeviceptr,
        recv: CUdeviceptr,
        count: usize,
    },
    /// Sum of `count` × ranks elements, `count` of them to each rank.
    ReduceScatter {
        send: CUdeviceptr,
        recv: CUdeviceptr,
        count: usize,
    },
    /// `count` elements from rank 0.
    Broadcast {
        send: CUdeviceptr,
        recv: CUdeviceptr,
        count: usize,
    },
    /// `chunk` elements to and from every rank (block q of each buffer is rank q's).
    AllToAll {
        send: CUdeviceptr,
        recv: CUdeviceptr,
        chunk: usize,
        world: usize,
    },
    /// The minimum of one i32 over all ranks (the sweep's agreements).
    MinI32 {
        send: CUdeviceptr,
        recv: CUdeviceptr,
    },
}
