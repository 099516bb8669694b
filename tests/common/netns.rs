//! Network namespaces for end-to-end tests: a private switched LAN of namespaces ([`Lab`]) whose
//! addresses exist only inside them, and a user-space UDP relay that delays every datagram
//! ([`DelayRelay`]), the slow link of a test (this kernel has no `tc netem`).
//!
//! Topology: a "switch" namespace holding a Linux bridge `br0`; every host namespace gets one veth
//! pair, `eth0` inside the host and a port of the bridge in the switch, and one address of a /24.
//! Nothing is created in, or changed about, the namespace the test runs in: veths are created in the
//! switch namespace with their peer placed straight into the host's. [`Lab`]'s `Drop` deletes
//! every namespace it made (the veths and the bridge go with them), on panic too.
//!
//! Everything here needs root (`ip netns add`); [`Lab::create`] says why it cannot run instead,
//! and the test then skips.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Set to `1` to skip the namespace tests whatever the machine allows.
pub const SKIP_ENV: &str = "HALLMARK_SKIP_NETNS";

/// Runs `ip ARGS`; the error is the command line and what `ip` printed.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why namespace tests cannot run here, checked without creating anything: the skip variable, not
/// root, no `ip`.
fn unavailable() -> Option<String> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        return Some(format!("{SKIP_ENV}=1 is set"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some(format!(
            "network namespaces need root (`ip netns add`), and this test runs as uid {euid}"
        ));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`ip -V` failed ({})", o.status)),
        Err(e) => Some(format!("the `ip` command (iproute2) is not available: {e}")),
    }
}

/// A switched LAN of network namespaces, deleted when dropped.
pub struct Lab {
    prefix: String,
    switch: String,
    /// Every namespace made, the switch first.
    made: Vec<String>,
    hosts: usize,
}

impl Lab {
    /// The switch namespace with its bridge. `Err` is the reason to skip: the preconditions, a
    /// first `ip netns add` refused (no CAP_SYS_ADMIN in a container), no bridge support.
    pub fn create() -> Result<Lab, String> {
        if let Some(why) = unavailable() {
            return Err(why);
        }
        // Short and unique per test process: namespace names are files under /run/netns.
        let prefix = format!("hm{}", std::process::id());
        let switch = format!("{prefix}sw");
        // A namespace left by an earlier process with the same pid would make `add` fail.
        let _ = ip(&["netns", "del", &switch]);
        ip(&["netns", "add", &switch]).map_err(|e| format!("cannot create a namespace: {e}"))?;
        let lab = Lab {
            prefix,
            switch: switch.clone(),
            made: vec![switch.clone()],
            hosts: 0,
        };
        let bridge = ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])
            .and_then(|()| ip(&["-n", &switch, "link", "set", "br0", "up"]));
        bridge.map_err(|e| format!("cannot create a Linux bridge in a namespace: {e}"))?;
        Ok(lab)
    }

    /// A host namespace `<prefix><name>` on the LAN with `addr/24` on its `eth0` and `lo` up;
    /// returns the namespace's name. Panics (the test fails, `Drop` cleans up) if `ip` refuses.
    pub fn host(&mut self, name: &str, addr: Ipv4Addr) -> String {
        let ns = format!("{}{name}", self.prefix);
        let _ = ip(&["netns", "del", &ns]);
        must(ip(&["netns", "add", &ns]));
        self.made.push(ns.clone());
        self.hosts += 1;
        // The switch's end of the veth; interface names are per namespace and at most 15 bytes.
        let port = format!("v{}", self.hosts);
        let sw = self.switch.clone();
        must(ip(&[
            "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]));
        must(ip(&["-n", &sw, "link", "set", &port, "master", "br0"]));
        must(ip(&["-n", &sw, "link", "set", &port, "up"]));
        must(ip(&["-n", &ns, "link", "set", "lo", "up"]));
        must(ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]));
        must(ip(&["-n", &ns, "link", "set", "eth0", "up"]));
        ns
    }

    /// `ip netns exec NS PROGRAM` (which execs PROGRAM: the child's pid is the program's).
    pub fn exec(&self, ns: &str, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Deletes every namespace now; returns those of this lab still listed afterwards.
    pub fn close(mut self) -> Vec<String> {
        self.delete_all();
        let out = Command::new("ip").args(["netns", "list"]).output();
        let listed = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        listed
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&self.prefix))
            .map(str::to_string)
            .collect()
    }

    fn delete_all(&mut self) {
        // Hosts first, then the switch; deleting a namespace deletes its veths and bridge.
        while let Some(ns) = self.made.pop() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("netns cleanup: {e}");
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.delete_all();
    }
}

fn must(r: Result<(), String>) {
    if let Err(e) = r {
        panic!("setting up the test's network namespaces: {e}");
    }
}

/// The longest a relay thread sleeps before it looks at its stop flag and deadline.
const RELAY_POLL: Duration = Duration::from_millis(20);
/// Senders (each with its own upstream socket) a relay serves; datagrams from more are dropped.
const RELAY_SENDERS: usize = 16;
/// Datagrams a relay holds at once; more are dropped.
const RELAY_QUEUE: usize = 4096;
/// Datagrams read from one socket per turn of the loop.
const RELAY_BURST: usize = 256;

/// What a relay did.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayStats {
    /// Datagrams forwarded to the upstream address, and answers forwarded back to their senders.
    pub to_upstream: u64,
    pub to_senders: u64,
    /// Datagrams dropped: queue full, too many senders, send errors, receive errors.
    pub dropped: u64,
}

/// Where a queued datagram goes.
#[derive(Debug)]
enum Via {
    /// Back to a sender, from the listening socket.
    Down(SocketAddr),
    /// To the upstream address, from that sender's upstream socket.
    Up(usize),
}

struct Queued {
    due: Instant,
    via: Via,
    data: Vec<u8>,
}

/// A UDP relay running in a network namespace on its own thread: every datagram to `listen` goes
/// on to `upstream` `delay` later, from an upstream socket of its own per original sender, and
/// whatever comes back on that socket goes back to the sender `delay` later, from `listen`. It
/// runs until stopped (dropped, [`DelayRelay::finish`]) or for `limit` at most.
pub struct DelayRelay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<RelayStats>>,
}

impl DelayRelay {
    /// Starts the relay in namespace `netns` (a name `ip netns` knows) and waits until its socket
    /// is bound; the error says what failed.
    pub fn start(
        netns: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
        limit: Duration,
    ) -> Result<DelayRelay, String> {
        let path = format!("/run/netns/{netns}");
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // setns(CLONE_NEWNET) moves only the calling thread into the namespace.
            let bound = enter_netns(&path).and_then(|()| {
                let s = UdpSocket::bind(listen)
                    .map_err(|e| format!("relay: cannot bind {listen} in {path}: {e}"))?;
                s.set_nonblocking(true)
                    .map_err(|e| format!("relay: {listen}: {e}"))?;
                Ok(s)
            });
            match bound {
                Ok(down) => {
                    let _ = ready_tx.send(Ok(()));
                    relay_loop(&down, upstream, delay, Instant::now() + limit, &flag)
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    RelayStats::default()
                }
            }
        });
        let relay = DelayRelay {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(relay),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(format!("relay in {netns}: not ready within 5 s ({e})")),
        }
    }

    /// Stops the relay and returns what it did.
    pub fn finish(mut self) -> RelayStats {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> RelayStats {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_default(),
            None => RelayStats::default(),
        }
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn enter_netns(path: &str) -> Result<(), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("relay: cannot open {path}: {e}"))?;
    // SAFETY: a valid open descriptor of a network namespace file; affects this thread only.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "relay: setns({path}) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn relay_loop(
    down: &UdpSocket,
    upstream: SocketAddr,
    delay: Duration,
    end: Instant,
    stop: &AtomicBool,
) -> RelayStats {
    let mut stats = RelayStats::default();
    // (original sender, its upstream socket, connected to `upstream`).
    let mut ups: Vec<(SocketAddr, UdpSocket)> = Vec::new();
    // A constant delay keeps the queue in due order.
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut buf = vec![0u8; 65536];
    let local_ip = down.local_addr().map(|a| a.ip()).ok();
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let now = Instant::now();
        while queue.front().is_some_and(|q| q.due <= now) {
            let Some(q) = queue.pop_front() else { break };
            let sent = match q.via {
                Via::Down(to) => down.send_to(&q.data, to).map(|_| stats.to_senders += 1),
                Via::Up(i) => match ups.get(i) {
                    Some((_, s)) => s.send(&q.data).map(|_| stats.to_upstream += 1),
                    None => Err(ErrorKind::NotFound.into()),
                },
            };
            if sent.is_err() {
                stats.dropped += 1;
            }
        }
        let wait = queue
            .front()
            .map_or(RELAY_POLL, |q| q.due.saturating_duration_since(now))
            .min(RELAY_POLL);
        wait_readable(down, &ups, wait);
        // From senders: queued for upstream.
        for _ in 0..RELAY_BURST {
            let (n, from) = match down.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    stats.dropped += 1;
                    break;
                }
            };
            let idx = match ups.iter().position(|(s, _)| *s == from) {
                Some(i) => Some(i),
                None if ups.len() < RELAY_SENDERS => upstream_socket(local_ip, upstream).map(|s| {
                    ups.push((from, s));
                    ups.len() - 1
                }),
                None => None,
            };
            match (idx, buf.get(..n)) {
                (Some(i), Some(data)) if queue.len() < RELAY_QUEUE => queue.push_back(Queued {
                    due: Instant::now() + delay,
                    via: Via::Up(i),
                    data: data.to_vec(),
                }),
                _ => stats.dropped += 1,
            }
        }
        // Answers from upstream: queued for their sender.
        for (sender, s) in &ups {
            for _ in 0..RELAY_BURST {
                let n = match s.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // An ICMP error from upstream (not listening yet): the datagram is lost.
                    Err(_) => {
                        stats.dropped += 1;
                        break;
                    }
                };
                match buf.get(..n) {
                    Some(data) if queue.len() < RELAY_QUEUE => queue.push_back(Queued {
                        due: Instant::now() + delay,
                        via: Via::Down(*sender),
                        data: data.to_vec(),
                    }),
                    _ => stats.dropped += 1,
                }
            }
        }
    }
    stats
}

/// A non-blocking socket on the relay's address, connected to `upstream`.
fn upstream_socket(ip: Option<std::net::IpAddr>, upstream: SocketAddr) -> Option<UdpSocket> {
    let s = UdpSocket::bind(SocketAddr::new(ip?, 0)).ok()?;
    s.connect(upstream).ok()?;
    s.set_nonblocking(true).ok()?;
    Some(s)
}

/// Blocks until one of the sockets is readable or `wait` has passed (nanosecond timeout: `ppoll`).
fn wait_readable(down: &UdpSocket, ups: &[(SocketAddr, UdpSocket)], wait: Duration) {
    let mut fds: Vec<libc::pollfd> = std::iter::once(down.as_raw_fd())
        .chain(ups.iter().map(|(_, s)| s.as_raw_fd()))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(wait.as_secs()).unwrap_or(0),
        // Below 10⁹: fits a c_long of any width.
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds and `ts` a valid timespec, both live
    // for the call; a null signal mask leaves the mask unchanged.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        );
    }
}
