//! The transfer engine the algorithms are written in: sends that do not block the caller,
//! receives straight into the output (or fused with the reduction), and the pieces of the output
//! buffer that move between the two.
//!
//! Full duplex with blocking sockets: above [`INLINE_MAX_BYTES`] a sender thread (one per size,
//! scoped) writes what the algorithm queues while the calling thread receives and reduces, so a
//! ring step sends to rank + 1 while it receives from rank − 1 and no chunk larger than the socket
//! buffers can deadlock two ranks writing to each other. The output buffer is cut into pieces of
//! at most [`PIECE_BYTES`] along its segments; a piece queued for sending is lent to the sender
//! thread (its `&mut [u8]` moves through a channel) and comes back when written, so the algorithm
//! can forward a piece as soon as it is received or reduced (pipelining) and the borrow checker
//! proves that nothing writes a piece while it is being sent. Received data is reduced in blocks
//! of [`STAGE_BYTES`] that stay in cache. Small sizes write inline: one message of a step always
//! fits the socket buffers, so the ranks cannot all block in a write.

use super::link::{CollError, Links};
use super::verify::Shape;
use std::ops::Range;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Largest piece of the output lent to the sender thread at once.
pub const PIECE_BYTES: usize = 512 << 10;
/// Bytes received before they are reduced (the staging buffer, cache-resident).
pub const STAGE_BYTES: usize = 128 << 10;
/// Message sizes up to this write inline, without a sender thread.
pub const INLINE_MAX_BYTES: u64 = 16 << 10;

/// How long the caller waits for the sender thread beyond the deadline (its own writes end by
/// the deadline, so this only catches a sender that is lost).
const SENDER_GRACE: Duration = Duration::from_secs(2);

/// The output buffer's pieces (byte ranges) and which pieces make each segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub pieces: Vec<Range<usize>>,
    pub seg_pieces: Vec<Range<usize>>,
    pub out_bytes: usize,
    pub in_bytes: usize,
}

impl Layout {
    pub fn new(shape: &Shape, piece_bytes: usize) -> Layout {
        let step = piece_bytes.max(4) / 4 * 4;
        let mut pieces = Vec::new();
        let mut seg_pieces = Vec::with_capacity(shape.segs.len());
        let mut at = 0;
        for &elems in &shape.segs {
            let first = pieces.len();
            let end = at + 4 * elems;
            while at < end {
                let next = (at + step).min(end);
                pieces.push(at..next);
                at = next;
            }
            seg_pieces.push(first..pieces.len());
        }
        Layout {
            pieces,
            seg_pieces,
            out_bytes: at,
            in_bytes: 4 * shape.in_elems,
        }
    }

    /// The piece ids of segment `seg` (taken modulo the segment count).
    pub fn seg(&self, seg: usize) -> Range<usize> {
        let n = self.seg_pieces.len().max(1);
        self.seg_pieces.get(seg % n).cloned().unwrap_or(0..0)
    }

    /// The byte range of segment `seg` in the output.
    pub fn seg_bytes(&self, seg: usize) -> Range<usize> {
        let ids = self.seg(seg);
        match (self.pieces.get(ids.start), ids.end.checked_sub(1)) {
            (Some(first), Some(last)) if !ids.is_empty() => {
                first.start..self.pieces.get(last).map_or(first.end, |p| p.end)
            }
            _ => 0..0,
        }
    }
}

/// What a received piece is added to.
#[derive(Debug, Clone, Copy)]
pub enum Base {
    /// The piece's own contents (`out += received`).
    Own,
    /// The input at this byte offset (`out = input + received`).
    Input(usize),
}

enum Data<'a> {
    Shared(&'a [u8]),
    Piece(usize, &'a mut [u8]),
}

struct Job<'a> {
    peers: Vec<usize>,
    data: Data<'a>,
}

struct Done<'a> {
    piece: Option<(usize, &'a mut [u8])>,
    result: Result<(), CollError>,
}

struct Chan<'a> {
    jobs: mpsc::Sender<Job<'a>>,
    done: mpsc::Receiver<Done<'a>>,
}

/// The buffers an operation works on, lent for one size.
pub struct Buffers<'a> {
    pub input: &'a [u8],
    pub out: &'a mut [u8],
    pub scratch: &'a mut [u8],
    pub stage: &'a mut [u8],
}

/// Runs `body` with a transfer engine over `bufs`; with `threaded` a sender thread runs beside it
/// for as long as `body` does.
pub fn with_xfer<'a, R>(
    links: &'a Links,
    layout: &'a Layout,
    bufs: Buffers<'a>,
    threaded: bool,
    deadline: Instant,
    body: impl FnOnce(&mut Xfer<'a>) -> Result<R, CollError>,
) -> Result<R, CollError> {
    if !threaded {
        let mut x = Xfer::new(links, layout, bufs, None, deadline)?;
        return body(&mut x);
    }
    thread::scope(|s| {
        let (job_tx, job_rx) = mpsc::channel::<Job<'a>>();
        let (done_tx, done_rx) = mpsc::channel::<Done<'a>>();
        let sender = thread::Builder::new()
            .name("collective-send".into())
            .spawn_scoped(s, move || sender_loop(links, job_rx, done_tx, deadline))
            .map_err(|e| CollError::Internal(format!("cannot start the sender thread: {e}")))?;
        let chan = Chan {
            jobs: job_tx,
            done: done_rx,
        };
        let result =
            Xfer::new(links, layout, bufs, Some(chan), deadline).and_then(|mut x| body(&mut x));
        if result.is_err() {
            // Unblocks a sender stuck writing to a peer that no longer reads.
            links.shutdown_all();
        }
        // The Xfer (and the job channel) is gone here, so the sender's loop ends.
        match sender.join() {
            Ok(()) => result,
            Err(_) => Err(CollError::Internal(
                "the collective sender thread panicked".into(),
            )),
        }
    })
}

fn sender_loop<'a>(
    links: &Links,
    jobs: mpsc::Receiver<Job<'a>>,
    done: mpsc::Sender<Done<'a>>,
    deadline: Instant,
) {
    let mut failed: Option<CollError> = None;
    for job in jobs.iter() {
        let result = match &failed {
            Some(e) => Err(e.clone()),
            None => {
                let bytes: &[u8] = match &job.data {
                    Data::Shared(b) => b,
                    Data::Piece(_, b) => b,
                };
                job.peers
                    .iter()
                    .try_for_each(|&p| links.write(p, bytes, deadline))
            }
        };
        if let Err(e) = &result {
            failed.get_or_insert_with(|| e.clone());
        }
        let piece = match job.data {
            Data::Piece(id, b) => Some((id, b)),
            Data::Shared(_) => None,
        };
        if done.send(Done { piece, result }).is_err() {
            break;
        }
    }
}

/// The transfer engine of one size on one rank (see the module doc).
pub struct Xfer<'a> {
    links: &'a Links,
    layout: &'a Layout,
    input: &'a [u8],
    pieces: Vec<Option<&'a mut [u8]>>,
    scratch: &'a mut [u8],
    stage: &'a mut [u8],
    chan: Option<Chan<'a>>,
    outstanding: usize,
    deadline: Instant,
}

impl<'a> Xfer<'a> {
    fn new(
        links: &'a Links,
        layout: &'a Layout,
        bufs: Buffers<'a>,
        chan: Option<Chan<'a>>,
        deadline: Instant,
    ) -> Result<Xfer<'a>, CollError> {
        let short = |what: &str, have: usize, need: usize| {
            CollError::Internal(format!(
                "the {what} buffer holds {have} bytes, {need} needed"
            ))
        };
        if bufs.out.len() < layout.out_bytes {
            return Err(short("output", bufs.out.len(), layout.out_bytes));
        }
        if bufs.input.len() < layout.in_bytes {
            return Err(short("input", bufs.input.len(), layout.in_bytes));
        }
        if bufs.stage.is_empty() {
            return Err(short("staging", 0, STAGE_BYTES));
        }
        let mut pieces = Vec::with_capacity(layout.pieces.len());
        let mut rest = bufs.out;
        let mut at = 0;
        for r in &layout.pieces {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(r.start - at);
            let (piece, tail) = tail.split_at_mut(r.len());
            pieces.push(Some(piece));
            rest = tail;
            at = r.end;
        }
        Ok(Xfer {
            links,
            layout,
            input: bufs.input,
            pieces,
            scratch: bufs.scratch,
            stage: bufs.stage,
            chan,
            outstanding: 0,
            deadline,
        })
    }

    pub fn layout(&self) -> &'a Layout {
        self.layout
    }

    fn submit(&mut self, peers: &[usize], data: Data<'a>) -> Result<(), CollError> {
        match &self.chan {
            None => {
                let bytes: &[u8] = match &data {
                    Data::Shared(b) => b,
                    Data::Piece(_, b) => b,
                };
                let sent = peers
                    .iter()
                    .try_for_each(|&p| self.links.write(p, bytes, self.deadline));
                if let Data::Piece(id, b) = data {
                    self.pieces[id] = Some(b);
                }
                sent
            }
            Some(c) => {
                let job = Job {
                    peers: peers.to_vec(),
                    data,
                };
                c.jobs.send(job).map_err(|_| {
                    CollError::Internal("the collective sender thread ended early".into())
                })?;
                self.outstanding += 1;
                Ok(())
            }
        }
    }

    /// Sends `range` of the input to each of `peers`, in order.
    pub fn send_input(&mut self, peers: &[usize], range: Range<usize>) -> Result<(), CollError> {
        if range.is_empty() || peers.is_empty() {
            return Ok(());
        }
        let input: &'a [u8] = self.input;
        let data = input.get(range.clone()).ok_or_else(|| {
            CollError::Internal(format!("input bytes {range:?} outside the input"))
        })?;
        self.submit(peers, Data::Shared(data))
    }

    /// Sends piece `id` to each of `peers`, in order (after it is back from an earlier send).
    pub fn send_piece(&mut self, peers: &[usize], id: usize) -> Result<(), CollError> {
        self.reclaim(id)?;
        if peers.is_empty() {
            return Ok(());
        }
        let Some(buf) = self.pieces[id].take() else {
            return Err(CollError::Internal(format!("piece {id} missing")));
        };
        self.submit(peers, Data::Piece(id, buf))
    }

    /// Receives piece `id` from `peer` straight into the output.
    pub fn recv_piece(&mut self, peer: usize, id: usize) -> Result<(), CollError> {
        self.reclaim(id)?;
        let buf = self.pieces[id].as_deref_mut().unwrap_or_default();
        self.links.read(peer, buf, self.deadline)
    }

    /// Receives piece `id` from `peer` and adds it to `base`, block by block.
    pub fn recv_reduce(&mut self, peer: usize, id: usize, base: Base) -> Result<(), CollError> {
        self.reclaim(id)?;
        let dst = self.pieces[id].as_deref_mut().unwrap_or_default();
        let step = self.stage.len();
        for (k, chunk) in dst.chunks_mut(step).enumerate() {
            let stage = &mut self.stage[..chunk.len()];
            self.links.read(peer, stage, self.deadline)?;
            match base {
                Base::Own => add_assign(chunk, stage),
                Base::Input(off) => {
                    let from = off + k * step;
                    let src = self.input.get(from..from + chunk.len()).ok_or_else(|| {
                        CollError::Internal(format!("input offset {from} outside the input"))
                    })?;
                    add_to(chunk, src, stage);
                }
            }
        }
        Ok(())
    }

    /// Receives `range` of the scratch buffer from `peer`.
    pub fn recv_scratch(&mut self, peer: usize, range: Range<usize>) -> Result<(), CollError> {
        let buf = self.scratch.get_mut(range.clone()).ok_or_else(|| {
            CollError::Internal(format!(
                "scratch bytes {range:?} outside the scratch buffer"
            ))
        })?;
        self.links.read(peer, buf, self.deadline)
    }

    /// Piece `id` = `base` + the scratch bytes at the piece's own offset.
    pub fn reduce_scratch(&mut self, id: usize, base: Base) -> Result<(), CollError> {
        self.reclaim(id)?;
        let r = self.layout.pieces[id].clone();
        let dst = self.pieces[id].as_deref_mut().unwrap_or_default();
        let add = self.scratch.get(r.clone()).ok_or_else(|| {
            CollError::Internal(format!("scratch bytes {r:?} outside the scratch buffer"))
        })?;
        match base {
            Base::Own => add_assign(dst, add),
            Base::Input(off) => {
                let src = self.input.get(off..off + r.len()).ok_or_else(|| {
                    CollError::Internal(format!("input offset {off} outside the input"))
                })?;
                add_to(dst, src, add);
            }
        }
        Ok(())
    }

    /// Piece `id` = the input from byte `input_off` on (a rank's own block).
    pub fn copy_input(&mut self, id: usize, input_off: usize) -> Result<(), CollError> {
        self.reclaim(id)?;
        let dst = self.pieces[id].as_deref_mut().unwrap_or_default();
        let src = self
            .input
            .get(input_off..input_off + dst.len())
            .ok_or_else(|| {
                CollError::Internal(format!("input offset {input_off} outside the input"))
            })?;
        dst.copy_from_slice(src);
        Ok(())
    }

    /// Waits until every queued send is written and every piece is back.
    pub fn flush(&mut self) -> Result<(), CollError> {
        while self.outstanding > 0 {
            self.wait_one()?;
        }
        Ok(())
    }

    fn reclaim(&mut self, id: usize) -> Result<(), CollError> {
        if id >= self.pieces.len() {
            return Err(CollError::Internal(format!(
                "piece {id} of {} requested",
                self.pieces.len()
            )));
        }
        while self.pieces[id].is_none() {
            self.wait_one()?;
        }
        Ok(())
    }

    fn wait_one(&mut self) -> Result<(), CollError> {
        let Some(c) = &self.chan else {
            return Err(CollError::Internal(
                "a piece was lost by an inline send".into(),
            ));
        };
        let wait = self.deadline.saturating_duration_since(Instant::now()) + SENDER_GRACE;
        match c.done.recv_timeout(wait) {
            Ok(d) => {
                self.outstanding = self.outstanding.saturating_sub(1);
                if let Some((id, b)) = d.piece {
                    if let Some(slot) = self.pieces.get_mut(id) {
                        *slot = Some(b);
                    }
                }
                d.result
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(CollError::Internal(
                "the collective sender thread did not finish its writes by the phase's end".into(),
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(CollError::Internal(
                "the collective sender thread ended early".into(),
            )),
        }
    }
}

/// `dst = a + b`, element-wise over little-endian f32 (a loop the compiler vectorises).
pub fn add_to(dst: &mut [u8], a: &[u8], b: &[u8]) {
    for ((d, x), y) in dst
        .chunks_exact_mut(4)
        .zip(a.chunks_exact(4))
        .zip(b.chunks_exact(4))
    {
        let v = f32::from_le_bytes([x[0], x[1], x[2], x[3]])
            + f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        d.copy_from_slice(&v.to_le_bytes());
    }
}

/// `dst += b`, element-wise over little-endian f32.
pub fn add_assign(dst: &mut [u8], b: &[u8]) {
    for (d, y) in dst.chunks_exact_mut(4).zip(b.chunks_exact(4)) {
        let v = f32::from_le_bytes([d[0], d[1], d[2], d[3]])
            + f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        d.copy_from_slice(&v.to_le_bytes());
    }
}
