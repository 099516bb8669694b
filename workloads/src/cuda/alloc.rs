//! Device memory for the burn and the NCCL sweep: stream-ordered or plain allocation.
//!
//! cudarc 0.19 allocates with `cuMemAllocAsync` (and frees with `cuMemFreeAsync`) whenever the
//! device reports memory pools (`CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED`, read once when the
//! context is made, with no way to turn it off), and with `cuMemAlloc` otherwise. Some container
//! runtimes (gVisor's GPU proxy, for one) report the pools but refuse the stream-ordered calls,
//! which used to fail the first GEMM. So the first user of a device (its burn worker, or an NCCL
//! phase's rank) allocates, clears and frees one small buffer the stream-ordered way; where that
//! fails, everything is allocated with `cuMemAlloc` and freed with `cuMemFree` here ([`DevBuf`]),
//! and the choice is reported (a warning in the log and `plain_alloc` in what the worker
//! prepared). The decision is made once per device and process ([`mode_for`]): every user of a GPU
//! shares its primary context, whose answer does not change. `HALLMARK_CUDA_ALLOC=plain` forces
//! plain allocation; `auto` (or unset) decides as above. The decision is [`choose`], a pure
//! function.

use cudarc::driver::{result, CudaSlice, CudaStream, DeviceRepr, DriverError, ValidAsZeroBits};
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

/// The environment variable that can force plain allocation.
pub const ALLOC_ENV: &str = "HALLMARK_CUDA_ALLOC";

/// How device memory is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocMode {
    /// cudarc's own choice: `cuMemAllocAsync` on a device with memory pools, else `cuMemAlloc`.
    Cudarc,
    /// `cuMemAlloc` and `cuMemFree`, whatever the device reports.
    Plain,
}

/// What [`ALLOC_ENV`] asks: `Ok(true)` for plain, `Ok(false)` for automatic (unset, empty or
/// `auto`), or an error naming the variable and the values it takes.
pub fn parse_override(value: Option<&str>) -> Result<bool, String> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("auto") => Ok(false),
        Some("plain") => Ok(true),
        Some(other) => Err(format!(
            "{ALLOC_ENV}={other} is not understood: use `plain` (cuMemAlloc always) or `auto`"
        )),
    }
}

/// Chooses the allocation: `pools` is what the device reports, `forced_plain` what
/// [`parse_override`] read, and `probe` tries one stream-ordered allocation (called only where
/// cudarc would use them). Returns the mode and, where it is not the usual one, why.
pub fn choose(
    pools: bool,
    forced_plain: bool,
    probe: impl FnOnce() -> Result<(), String>,
) -> (AllocMode, Option<String>) {
    if !pools {
        // cudarc allocates with cuMemAlloc itself.
        return (AllocMode::Cudarc, None);
    }
    if forced_plain {
        return (
            AllocMode::Plain,
            Some(format!(
                "{ALLOC_ENV}=plain: device memory is allocated with cuMemAlloc"
            )),
        );
    }
    match probe() {
        Ok(()) => (AllocMode::Cudarc, None),
        Err(e) => (
            AllocMode::Plain,
            Some(format!(
                "stream-ordered allocation (cuMemAllocAsync) is refused here ({e}), although the \
                 device reports memory pools; device memory is allocated with cuMemAlloc instead"
            )),
        ),
    }
}

/// Tries one stream-ordered allocation on `stream` (a small buffer allocated, cleared and freed,
/// the stream drained), and clears any error a failed free left in the context.
pub fn probe_stream_ordered(stream: &Arc<CudaStream>) -> Result<(), String> {
    let r = (|| -> Result<(), DriverError> {
        let buf = stream.alloc_zeros::<u8>(256)?;
        stream.synchronize()?;
        drop(buf);
        stream.synchronize()
    })();
    let stored = stream.context().check_err();
    r.and(stored).map_err(|e| e.to_string())
}

/// The mode for a worker's context: [`choose`] with what the device and [`ALLOC_ENV`] say.
fn decide(stream: &Arc<CudaStream>) -> Result<(AllocMode, Option<String>), String> {
    let forced = parse_override(std::env::var(ALLOC_ENV).ok().as_deref())?;
    let pools = stream.context().has_async_alloc();
    Ok(choose(pools, forced, || probe_stream_ordered(stream)))
}

/// The modes decided so far, by CUDA ordinal.
pub type Decided = Mutex<Vec<(usize, AllocMode)>>;

/// This process's decisions ([`mode_for`]).
static DECIDED: Decided = Mutex::new(Vec::new());

/// The mode for device `ordinal`, whose context `stream` is on: `decide`d (the probe run, the
/// note logged as a warning) by the device's first user, and remembered for every later one.
pub fn mode_for(ordinal: usize, stream: &Arc<CudaStream>) -> Result<AllocMode, String> {
    remembered(&DECIDED, ordinal, || {
        let (mode, note) = decide(stream)?;
        if let Some(note) = note {
            tracing::warn!("CUDA device {ordinal}: {note}");
        }
        Ok(mode)
    })
}

/// The mode `decided` holds for `ordinal`, or else what `decide` says, kept there (an error is
/// returned, not kept). Two first users deciding at once both probe; the first mode kept stands.
pub fn remembered(
    decided: &Decided,
    ordinal: usize,
    decide: impl FnOnce() -> Result<AllocMode, String>,
) -> Result<AllocMode, String> {
    // The list is plain data: a poisoned lock is taken over.
    let lock = || decided.lock().unwrap_or_else(|e| e.into_inner());
    let known = |d: &MutexGuard<'_, Vec<(usize, AllocMode)>>| {
        d.iter().find(|(o, _)| *o == ordinal).map(|&(_, m)| m)
    };
    if let Some(mode) = known(&lock()) {
        return Ok(mode);
    }
    // Decided without the lock held: the probe waits for the device, not for other devices.
    let mode = decide()?;
    let mut d = lock();
    if let Some(first) = known(&d) {
        return Ok(first);
    }
    d.push((ordinal, mode));
    Ok(mode)
}

/// A device buffer, allocated as its [`Allocator`] says and freed the same way.
#[derive(Debug)]
pub struct DevBuf<T> {
    slice: ManuallyDrop<CudaSlice<T>>,
    plain: bool,
}

impl<T> Deref for DevBuf<T> {
    type Target = CudaSlice<T>;
    fn deref(&self) -> &CudaSlice<T> {
        &self.slice
    }
}

impl<T> DerefMut for DevBuf<T> {
    fn deref_mut(&mut self) -> &mut CudaSlice<T> {
        &mut self.slice
    }
}

impl<T> Drop for DevBuf<T> {
    fn drop(&mut self) {
        // SAFETY: the slice is taken once, here, and not used afterwards.
        let slice = unsafe { ManuallyDrop::take(&mut self.slice) };
        if !self.plain {
            drop(slice);
            return;
        }
        let stream = Arc::clone(slice.stream());
        // Work on the buffer must finish before it is freed (cuMemFree does not wait for it).
        let _ = stream.synchronize();
        let ptr = slice.leak();
        // SAFETY: `ptr` came from cuMemAlloc in this context and nothing uses it any more.
        let _ = stream
            .context()
            .bind_to_thread()
            .and_then(|()| unsafe { result::free_sync(ptr) });
    }
}

/// Allocates on one stream in one [`AllocMode`].
#[derive(Debug, Clone)]
pub struct Allocator {
    stream: Arc<CudaStream>,
    mode: AllocMode,
}

impl Allocator {
    pub fn new(stream: Arc<CudaStream>, mode: AllocMode) -> Self {
        Allocator { stream, mode }
    }

    pub fn mode(&self) -> AllocMode {
        self.mode
    }

    /// `len` elements, not initialised.
    ///
    /// # Safety
    /// The buffer must be written before it is read.
    pub unsafe fn uninit<T: DeviceRepr>(&self, len: usize) -> Result<DevBuf<T>, DriverError> {
        match self.mode {
            AllocMode::Cudarc => Ok(DevBuf {
                slice: ManuallyDrop::new(self.stream.alloc::<T>(len)?),
                plain: false,
            }),
            AllocMode::Plain => {
                self.stream.context().bind_to_thread()?;
                let bytes = len.max(1) * std::mem::size_of::<T>().max(1);
                let ptr = result::malloc_sync(bytes)?;
                Ok(DevBuf {
                    slice: ManuallyDrop::new(self.stream.upgrade_device_ptr(ptr, len)),
                    plain: true,
                })
            }
        }
    }

    /// `len` elements set to zero.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<DevBuf<T>, DriverError> {
        // SAFETY: cleared before it is returned.
        let mut b = unsafe { self.uninit::<T>(len) }?;
        self.stream.memset_zeros(&mut *b)?;
        Ok(b)
    }

    /// A copy of `src`.
    pub fn from_host<T: DeviceRepr>(&self, src: &[T]) -> Result<DevBuf<T>, DriverError> {
        // SAFETY: written by the copy before it is returned.
        let mut b = unsafe { self.uninit::<T>(src.len()) }?;
        self.stream.memcpy_htod(src, &mut *b)?;
        Ok(b)
    }
}
