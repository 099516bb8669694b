//! The mesh of one collective phase: every pair of members connected once by TCP, each connection
//! authenticated by a challenge–response under the pair's key before any data moves.
//!
//! The lower rank connects to the higher rank's data-plane address; the higher accepts on the
//! probe's shared listener. Handshake (tags are [`PhaseMac`] tags under the key of the pair
//! {from_rank, to_rank}, 16 bytes):
//!
//! ```text
//! client → server  hello = "HMCOLL01" | phase_id u32 | from_rank u32 | to_rank u32 | nonce_c (16)
//! server → client  nonce_s (16) | tag("server" | hello | nonce_s)
//! client → server  tag("client" | hello | nonce_s)
//! server → client  0xA5 (accepted)
//! ```
//!
//! The server proves it holds the pair's key over the client's fresh nonce, the client over the
//! server's; the labels keep one side's tag from serving as the other's. Only the two members of
//! the pair hold its key, so a member cannot pass for another rank. The acceptor closes at once,
//! without giving it a handshake slot, a connection from an IP that is no lower-ranked member's
//! registered data-plane IP (a stranger); it drops a connection whose hello is malformed, names
//! another phase (an old connection left in the listen backlog), is not addressed to this rank,
//! comes from a rank that should not connect to it or from another IP than that rank's, names a
//! rank that already has an authenticated stream here (an authenticated stream is never
//! replaced), or whose tag fails, and keeps accepting. Every socket is non-blocking during the
//! handshakes, so a silent or hostile connection delays nobody; connects are retried until the
//! deadline (a peer may start a few ms late, or still be finishing its previous phase).

use super::link::Links;
use crate::fabric::auth::{random_bytes, PhaseMac, TAG_LEN};
use crate::fabric::DataPlane;
use hallmark_protocol::{FabricFault, FabricMember};
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"HMCOLL01";
const NONCE_LEN: usize = 16;
/// Bytes of a hello.
pub const HELLO_LEN: usize = 8 + 4 + 4 + 4 + NONCE_LEN;
const ACK: u8 = 0xA5;
/// How long an accepted connection may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a dialled peer may take to answer: longer, since the connection may wait in its
/// listen backlog until it starts the phase.
const CLIENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest blocking connect attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause before connecting again after a refused or failed attempt.
const RETRY_DELAY: Duration = Duration::from_millis(20);
/// Sleep of the setup loop when nothing moved.
const IDLE_SLEEP: Duration = Duration::from_millis(1);

/// The hello a client at rank `from` sends to rank `to`.
pub fn hello(phase_id: u32, from: usize, to: usize, nonce: &[u8; NONCE_LEN]) -> [u8; HELLO_LEN] {
    let mut h = [0u8; HELLO_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&phase_id.to_be_bytes());
    h[12..16].copy_from_slice(&(from as u32).to_be_bytes());
    h[16..20].copy_from_slice(&(to as u32).to_be_bytes());
    h[20..].copy_from_slice(nonce);
    h
}

enum Role {
    Client {
        peer: usize,
        hello: [u8; HELLO_LEN],
    },
    Server {
        hello: [u8; HELLO_LEN],
        nonce: [u8; NONCE_LEN],
        from: usize,
        /// The IP the connection comes from.
        ip: IpAddr,
    },
}

/// One handshake in progress on a non-blocking socket.
struct Handshake {
    stream: TcpStream,
    role: Role,
    out: Vec<u8>,
    sent: usize,
    inb: Vec<u8>,
    need: usize,
    stage: u8,
    expires: Instant,
}

enum Pump {
    /// Waiting for the socket; whether any byte moved.
    Waiting(bool),
    Done,
    Failed(String),
}

struct Ctx<'a> {
    mac: &'a PhaseMac,
    rank: usize,
    members: &'a [FabricMember],
}

impl Handshake {
    fn client(stream: TcpStream, ctx: &Ctx, peer: usize) -> io::Result<Handshake> {
        stream.set_nonblocking(true)?;
        let nonce = random_bytes::<NONCE_LEN>().map_err(io::Error::other)?;
        let hello = hello(ctx.mac.phase_id(), ctx.rank, peer, &nonce);
        Ok(Handshake {
            stream,
            role: Role::Client { peer, hello },
            out: hello.to_vec(),
            sent: 0,
            inb: Vec::new(),
            need: NONCE_LEN + TAG_LEN,
            stage: 0,
            expires: Instant::now() + CLIENT_HANDSHAKE_TIMEOUT,
        })
    }

    fn server(stream: TcpStream, ip: IpAddr) -> io::Result<Handshake> {
        stream.set_nonblocking(true)?;
        Ok(Handshake {
            stream,
            role: Role::Server {
                hello: [0; HELLO_LEN],
                nonce: [0; NONCE_LEN],
                from: 0,
                ip,
            },
            out: Vec::new(),
            sent: 0,
            inb: Vec::new(),
            need: HELLO_LEN,
            stage: 0,
            expires: Instant::now() + HANDSHAKE_TIMEOUT,
        })
    }

    /// Moves what the socket allows; never blocks. `streams`: the authenticated streams so far,
    /// by rank.
    fn pump(&mut self, ctx: &Ctx, streams: &[Option<TcpStream>]) -> Pump {
        let mut moved = false;
        loop {
            while self.sent < self.out.len() {
                match (&self.stream).write(&self.out[self.sent..]) {
                    Ok(0) => return Pump::Failed("the connection closed".into()),
                    Ok(k) => {
                        self.sent += k;
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Pump::Waiting(moved),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Pump::Failed(e.to_string()),
                }
            }
            while self.inb.len() < self.need {
                let mut tmp = [0u8; HELLO_LEN];
                let want = (self.need - self.inb.len()).min(tmp.len());
                match (&self.stream).read(&mut tmp[..want]) {
                    Ok(0) => return Pump::Failed("the connection closed during the handshake (the peer refused it: another phase, or not the key this member shares with it?)".into()),
                    Ok(k) => {
                        self.inb.extend_from_slice(&tmp[..k]);
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Pump::Waiting(moved)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Pump::Failed(e.to_string()),
                }
            }
            match self.advance(ctx, streams) {
                Ok(true) => return Pump::Done,
                Ok(false) => {}
                Err(msg) => return Pump::Failed(msg),
            }
        }
    }

    /// The next message once the current one is written and the expected bytes are in.
    fn advance(&mut self, ctx: &Ctx, streams: &[Option<TcpStream>]) -> Result<bool, String> {
        let mac = ctx.mac;
        let taken = |from: usize| -> Result<(), String> {
            if streams.get(from).is_some_and(Option::is_some) {
                return Err(format!(
                    "rank {from} already has an authenticated connection here; a second one is \
                     refused (an authenticated stream is never replaced)"
                ));
            }
            Ok(())
        };
        let inb = std::mem::take(&mut self.inb);
        self.out.clear();
        self.sent = 0;
        match (&mut self.role, self.stage) {
            (Role::Client { hello, peer }, 0) => {
                let (nonce_s, tag) = inb.split_at(NONCE_LEN);
                if !mac.verify(*peer, &[b"server", &hello[..], nonce_s], tag) {
                    return Err("the peer failed authentication: it does not hold the key this member shares with it (another phase, another run, or not that member)".into());
                }
                let t = mac
                    .tag(*peer, &[b"client", &hello[..], nonce_s])
                    .ok_or_else(|| format!("no key for rank {peer}"))?;
                self.out.extend_from_slice(&t);
                self.need = 1;
                self.stage = 1;
                Ok(false)
            }
            (Role::Client { .. }, _) => {
                if inb.first() == Some(&ACK) {
                    Ok(true)
                } else {
                    Err("the peer answered the handshake with an unknown byte".into())
                }
            }
            (
                Role::Server {
                    hello,
                    nonce,
                    from,
                    ip,
                },
                0,
            ) => {
                let got: [u8; HELLO_LEN] = inb
                    .as_slice()
                    .try_into()
                    .map_err(|_| "short hello".to_string())?;
                *from = check_hello(&got, *ip, ctx)?;
                taken(*from)?;
                *hello = got;
                *nonce = random_bytes::<NONCE_LEN>().map_err(|e| e.to_string())?;
                let t = mac
                    .tag(*from, &[b"server", &hello[..], &nonce[..]])
                    .ok_or_else(|| format!("no key for rank {from}"))?;
                self.out.extend_from_slice(nonce);
                self.out.extend_from_slice(&t);
                self.need = TAG_LEN;
                self.stage = 1;
                Ok(false)
            }
            (
                Role::Server {
                    hello, nonce, from, ..
                },
                1,
            ) => {
                if !mac.verify(*from, &[b"client", &hello[..], &nonce[..]], &inb) {
                    return Err(format!(
                        "the client failed authentication as rank {from} (it does not hold the \
                         key of that rank's pair with this one)"
                    ));
                }
                taken(*from)?;
                self.out.push(ACK);
                self.need = 0;
                self.stage = 2;
                Ok(false)
            }
            (Role::Server { .. }, _) => Ok(true),
        }
    }

    /// The stream, made blocking for the data transfers.
    fn into_stream(self) -> io::Result<TcpStream> {
        self.stream.set_nonblocking(false)?;
        self.stream.set_nodelay(true)?;
        Ok(self.stream)
    }
}

/// The rank a hello comes from, if the hello is one this rank should accept from a connection
/// from `ip`.
fn check_hello(h: &[u8; HELLO_LEN], ip: IpAddr, ctx: &Ctx) -> Result<usize, String> {
    let word = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    if &h[..8] != MAGIC {
        return Err("not a hallmark collective hello".into());
    }
    let phase = word(8);
    if phase != ctx.mac.phase_id() {
        return Err(format!(
            "a hello for phase {phase} during phase {}",
            ctx.mac.phase_id()
        ));
    }
    let (from, to) = (word(12) as usize, word(16) as usize);
    if to != ctx.rank || from >= ctx.rank || from >= ctx.members.len() {
        return Err(format!(
            "a hello from rank {from} to rank {to} reached rank {}",
            ctx.rank
        ));
    }
    let registered = ctx.members[from].addr.ip();
    if registered.to_canonical() != ip.to_canonical() {
        return Err(format!(
            "a hello claiming rank {from} came from {ip}, not from that rank's data-plane IP \
             {registered}"
        ));
    }
    Ok(from)
}

/// Whether a connection from `ip` may have a handshake slot: only the IPs of the members that
/// dial this rank (the lower ranks) may.
fn may_dial_me(ip: IpAddr, ctx: &Ctx) -> bool {
    let ip = ip.to_canonical();
    ctx.members
        .iter()
        .take(ctx.rank)
        .any(|m| m.addr.ip().to_canonical() == ip)
}

/// A connection this rank opens, and its attempts so far.
struct Outgoing {
    peer: usize,
    next_try: Instant,
    pending: Option<Handshake>,
    last_error: Option<String>,
}

/// Connects this rank to every other member, authenticated, by `deadline`; or names every member
/// it could not connect to.
pub fn connect(
    dp: &DataPlane,
    rank: usize,
    members: &[FabricMember],
    mac: &PhaseMac,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<Links, Vec<FabricFault>> {
    let n = members.len();
    let ctx = Ctx { mac, rank, members };
    let mut streams: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let now = Instant::now();
    let mut outgoing: Vec<Outgoing> = (rank + 1..n)
        .map(|peer| Outgoing {
            peer,
            next_try: now,
            pending: None,
            last_error: None,
        })
        .collect();
    let mut incoming: Vec<Handshake> = Vec::new();
    let max_incoming = 4 * n + 16;
    let mut listen_error: Option<String> = None;

    loop {
        let connected = streams.iter().filter(|s| s.is_some()).count();
        if connected + 1 >= n {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            return Err(vec![FabricFault {
                peer: None,
                message:
                    "the phase was stopped before every member was connected; no collective ran"
                        .into(),
            }]);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(missing(members, rank, &streams, &outgoing, listen_error));
        }
        let mut moved = false;

        // Accept what is waiting. The listener is shared by every phase: set it non-blocking
        // each time rather than trust its mode.
        match dp.tcp().set_nonblocking(true) {
            Ok(()) => loop {
                match dp.tcp().accept() {
                    Ok((s, from)) => {
                        moved = true;
                        if !may_dial_me(from.ip(), &ctx) {
                            // A stranger: closed at once, no handshake slot.
                            tracing::debug!(
                                phase = mac.phase_id(),
                                rank,
                                %from,
                                "collective mesh: closed a connection from an address that is no \
                                 lower-ranked member's data plane"
                            );
                            continue;
                        }
                        if incoming.len() < max_incoming {
                            if let Ok(h) = Handshake::server(s, from.ip()) {
                                incoming.push(h);
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        listen_error = Some(e.to_string());
                        break;
                    }
                }
            },
            Err(e) => listen_error = Some(e.to_string()),
        }

        for o in &mut outgoing {
            if streams[o.peer].is_some() || o.pending.is_some() || now < o.next_try {
                continue;
            }
            let left = deadline.saturating_duration_since(now);
            if left < Duration::from_millis(1) {
                continue;
            }
            let addr = members[o.peer].addr;
            match TcpStream::connect_timeout(&addr, left.min(CONNECT_TIMEOUT)) {
                Ok(s) => match Handshake::client(s, &ctx, o.peer) {
                    Ok(h) => {
                        moved = true;
                        o.pending = Some(h);
                    }
                    Err(e) => {
                        o.last_error = Some(e.to_string());
                        o.next_try = Instant::now() + RETRY_DELAY;
                    }
                },
                Err(e) => {
                    o.last_error = Some(format!("connecting to {addr}: {e}"));
                    o.next_try = Instant::now() + RETRY_DELAY;
                }
            }
        }

        for o in &mut outgoing {
            let Some(h) = o.pending.as_mut() else {
                continue;
            };
            let result = h.pump(&ctx, &streams);
            let peer = o.peer;
            let failure = match result {
                Pump::Waiting(m) => {
                    moved |= m;
                    if Instant::now() < h.expires {
                        continue;
                    }
                    format!(
                        "no answer to the handshake within {} s (the node has not started this phase, or is not a hallmark probe)",
                        CLIENT_HANDSHAKE_TIMEOUT.as_secs()
                    )
                }
                Pump::Done => {
                    moved = true;
                    match o.pending.take().map(Handshake::into_stream) {
                        Some(Ok(s)) => {
                            streams[peer] = Some(s);
                            continue;
                        }
                        Some(Err(e)) => e.to_string(),
                        None => continue,
                    }
                }
                Pump::Failed(msg) => msg,
            };
            tracing::debug!(
                phase = mac.phase_id(),
                rank,
                peer,
                "collective mesh: connecting to rank {peer} failed, retrying: {failure}"
            );
            o.pending = None;
            o.last_error = Some(failure);
            o.next_try = Instant::now() + RETRY_DELAY;
        }

        let mut i = 0;
        while i < incoming.len() {
            match incoming[i].pump(&ctx, &streams) {
                Pump::Waiting(m) => {
                    moved |= m;
                    if Instant::now() >= incoming[i].expires {
                        let h = incoming.swap_remove(i);
                        tracing::debug!(
                            phase = mac.phase_id(),
                            rank,
                            from = ?h.stream.peer_addr().ok(),
                            "collective mesh: dropped a connection silent for {} s",
                            HANDSHAKE_TIMEOUT.as_secs()
                        );
                    } else {
                        i += 1;
                    }
                }
                Pump::Done => {
                    moved = true;
                    let h = incoming.swap_remove(i);
                    let from = match h.role {
                        Role::Server { from, .. } => from,
                        Role::Client { peer, .. } => peer,
                    };
                    // Never replaces an authenticated stream (the handshake refused a second
                    // one for the same rank before its end; this is the last check).
                    if streams[from].is_none() {
                        if let Ok(s) = h.into_stream() {
                            streams[from] = Some(s);
                        }
                    }
                }
                // Refused: an old phase's connection, another key, a stranger. Keep accepting.
                Pump::Failed(why) => {
                    let h = incoming.swap_remove(i);
                    tracing::debug!(
                        phase = mac.phase_id(),
                        rank,
                        from = ?h.stream.peer_addr().ok(),
                        "collective mesh: refused a connection: {why}"
                    );
                }
            }
        }

        if !moved {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
    tracing::debug!(
        phase = mac.phase_id(),
        rank,
        "collective mesh: all {n} members connected"
    );
    Ok(Links::new(streams))
}

/// One fault per member this rank is not connected to.
fn missing(
    members: &[FabricMember],
    rank: usize,
    streams: &[Option<TcpStream>],
    outgoing: &[Outgoing],
    listen_error: Option<String>,
) -> Vec<FabricFault> {
    let me = members
        .get(rank)
        .map(|m| m.node_id.to_string())
        .unwrap_or_default();
    let mut faults = Vec::new();
    for (j, m) in members.iter().enumerate() {
        if j == rank || streams.get(j).is_some_and(Option::is_some) {
            continue;
        }
        let message = if j > rank {
            let last = match outgoing.iter().find(|o| o.peer == j) {
                Some(o) if o.pending.is_some() => "TCP connected, but the handshake got no answer \
                    (the node has not started this phase, or is not a hallmark probe)"
                    .to_string(),
                Some(o) => o
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no attempt was made".into()),
                None => "no attempt was made".into(),
            };
            format!(
                "collective mesh: {me} could not connect to {} (rank {j}) at {} within the phase window: {last}",
                m.node_id, m.addr
            )
        } else {
            let listen = listen_error
                .as_ref()
                .map(|e| format!(" (accepting failed here: {e})"))
                .unwrap_or_default();
            format!(
                "collective mesh: {} (rank {j}) never completed an authenticated connection to {me}'s data plane within the phase window{listen}; it may be down, late, unreachable, or hold another key for the pair (another phase or run)",
                m.node_id
            )
        };
        faults.push(FabricFault {
            peer: Some(m.node_id.clone()),
            message,
        });
    }
    faults
}
