//! The authenticated TCP connections of one collective phase ([`Links`]: one stream per peer rank)
//! and blocking reads and writes on them that never wait past a deadline, with the errors they
//! end in ([`CollError`]).
//!
//! Every blocking call waits at most [`STALL`] without progress and never past the deadline (the
//! phase window's end): a peer that stops answering ends in an error naming it, never in a hang.

use hallmark_protocol::FabricMember;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Longest wait for a peer without any byte moving before it is declared unresponsive.
pub const STALL: Duration = Duration::from_secs(10);
/// A transfer cut by the window's end blames the peer only if it had been silent this long (else
/// the window was simply too short for the size).
pub const BLAME_IDLE: Duration = Duration::from_secs(1);

/// Which way the failed transfer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Recv,
    Send,
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dir::Recv => "receiving from",
            Dir::Send => "sending to",
        })
    }
}

/// How a transfer with a peer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkFail {
    #[error(
        "no progress for {} s: the peer stopped answering (a hung or overloaded process, or a broken link)",
        .0.as_secs()
    )]
    Stalled(Duration),
    #[error(
        "the phase window ended during the transfer, the peer silent for the last {} ms{}",
        .idle.as_millis(),
        if *.idle >= BLAME_IDLE { "" } else { " (the window was too short for this size: make the phase longer or lower max_bytes)" }
    )]
    WindowEnded { idle: Duration },
    #[error(
        "the peer closed the connection (its process ended, or it gave up after a fault of its own)"
    )]
    Closed,
    #[error("{0}")]
    Io(String),
}

/// Why a collective operation could not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollError {
    /// A read or write with the peer of rank `peer` failed.
    #[error("{dir} rank {peer}: {fail}")]
    Link {
        peer: usize,
        dir: Dir,
        fail: LinkFail,
    },
    /// The peer of rank `peer` sent a control message that does not fit this rank's schedule.
    #[error("rank {peer} is out of step: {detail}")]
    OutOfStep { peer: usize, detail: String },
    /// Something in this process failed (a thread, a missing connection): a bug in hallmark.
    #[error("{0}; this is a bug in hallmark")]
    Internal(String),
}

impl CollError {
    /// The rank to blame, if a peer is to blame.
    pub fn peer(&self) -> Option<usize> {
        match self {
            CollError::Link {
                fail: LinkFail::WindowEnded { idle },
                ..
            } if *idle < BLAME_IDLE => None,
            CollError::Link { peer, .. } | CollError::OutOfStep { peer, .. } => Some(*peer),
            CollError::Internal(_) => None,
        }
    }

    /// The error in words, peers named by node id and rank.
    pub fn describe(&self, members: &[FabricMember]) -> String {
        let name = |rank: usize| match members.get(rank) {
            Some(m) => format!("{} (rank {rank})", m.node_id),
            None => format!("rank {rank}"),
        };
        match self {
            CollError::Link { peer, dir, fail } => format!("{dir} {}: {fail}", name(*peer)),
            CollError::OutOfStep { peer, detail } => format!(
                "{} is out of step: {detail}; the members disagree on the phase's schedule \
                 (different hallmark versions or plans) or the stream is corrupted",
                name(*peer)
            ),
            CollError::Internal(_) => self.to_string(),
        }
    }
}

/// One TCP stream per peer rank (none for this rank itself), all authenticated for the phase.
#[derive(Debug)]
pub struct Links {
    streams: Vec<Option<TcpStream>>,
}

impl Links {
    /// Links from streams indexed by rank (`None` at this rank's own index).
    pub fn new(streams: Vec<Option<TcpStream>>) -> Links {
        Links { streams }
    }

    /// Links of a single-member phase: nobody to talk to.
    pub fn alone() -> Links {
        Links {
            streams: vec![None],
        }
    }

    fn stream(&self, peer: usize) -> Result<&TcpStream, CollError> {
        self.streams
            .get(peer)
            .and_then(Option::as_ref)
            .ok_or_else(|| CollError::Internal(format!("no connection to rank {peer}")))
    }

    /// Reads exactly `buf.len()` bytes from `peer`, waiting no longer than the deadline.
    pub fn read(&self, peer: usize, buf: &mut [u8], deadline: Instant) -> Result<(), CollError> {
        let mut s = self.stream(peer)?;
        let fail = |fail| CollError::Link {
            peer,
            dir: Dir::Recv,
            fail,
        };
        let mut pos = 0;
        let mut last = Instant::now();
        while pos < buf.len() {
            let wait = next_wait(deadline, last).map_err(fail)?;
            s.set_read_timeout(Some(wait))
                .map_err(|e| fail(LinkFail::Io(e.to_string())))?;
            match s.read(&mut buf[pos..]) {
                Ok(0) => return Err(fail(LinkFail::Closed)),
                Ok(k) => {
                    pos += k;
                    last = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(fail(timeout_kind(deadline, last))),
                Err(e) => return Err(fail(classify(e))),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` to `peer`, waiting no longer than the deadline.
    pub fn write(&self, peer: usize, buf: &[u8], deadline: Instant) -> Result<(), CollError> {
        let mut s = self.stream(peer)?;
        let fail = |fail| CollError::Link {
            peer,
            dir: Dir::Send,
            fail,
        };
        let mut pos = 0;
        let mut last = Instant::now();
        while pos < buf.len() {
            let wait = next_wait(deadline, last).map_err(fail)?;
            s.set_write_timeout(Some(wait))
                .map_err(|e| fail(LinkFail::Io(e.to_string())))?;
            match s.write(&buf[pos..]) {
                Ok(0) => return Err(fail(LinkFail::Closed)),
                Ok(k) => {
                    pos += k;
                    last = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(fail(timeout_kind(deadline, last))),
                Err(e) => return Err(fail(classify(e))),
            }
        }
        Ok(())
    }

    /// Shuts every connection down (after a fault): peers blocked on this rank see the end of
    /// the stream at once instead of waiting for a timeout, and so does this rank's own sender.
    pub fn shutdown_all(&self) {
        for s in self.streams.iter().flatten() {
            // Already closed by the peer is fine: nothing is left to tell it.
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// How long the next blocking call may wait: at most [`STALL`] since the last progress (`last`),
/// and not past the deadline.
fn next_wait(deadline: Instant, last: Instant) -> Result<Duration, LinkFail> {
    let now = Instant::now();
    let left = deadline.saturating_duration_since(now);
    if left < Duration::from_millis(1) {
        return Err(LinkFail::WindowEnded {
            idle: now.saturating_duration_since(last),
        });
    }
    let stall_left = (last + STALL).saturating_duration_since(now);
    if stall_left < Duration::from_millis(1) {
        return Err(LinkFail::Stalled(STALL));
    }
    Ok(left.min(stall_left))
}

fn timeout_kind(deadline: Instant, last: Instant) -> LinkFail {
    let now = Instant::now();
    if now + Duration::from_millis(1) >= deadline {
        LinkFail::WindowEnded {
            idle: now.saturating_duration_since(last),
        }
    } else {
        LinkFail::Stalled(STALL)
    }
}

/// A socket timeout reads as `WouldBlock` on Unix and `TimedOut` on Windows.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn classify(e: io::Error) -> LinkFail {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected => LinkFail::Closed,
        _ => LinkFail::Io(e.to_string()),
    }
}
