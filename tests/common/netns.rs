//! Network namespaces for end-to-end tests: a private switched LAN of namespaces ([`Lab`]) whose
//! addresses exist only inside them, and a slow link: a host whose cable to the switch is a
//! user-space wire that delays every Ethernet frame, both ways ([`DelayWire`]; this kernel has no
//! `tc netem`).
//!
//! Topology: a "switch" namespace holding a Linux bridge `br0`; every host namespace gets one link
//! to it and one address of a /24. An ordinary host's link is a veth pair, `eth0` inside the host
//! and a port of the bridge in the switch. A slow host's link is two TAP devices, `eth0` inside the
//! host and a port of the bridge in the switch, joined by a thread that reads each frame from one
//! and writes it to the other `delay` later. The frames pass unchanged (addresses, ports, ARP), as
//! over a long cable, so address checks on either side see the real peer. TAPs without offloads
//! get whole, checksummed frames from the kernel (no segmentation offload to undo), and they exist
//! only while the wire holds them open: stopping the wire removes them.
//!
//! Nothing is created in, or changed about, the namespace the test runs in: veths are created in
//! the switch namespace with their peer placed straight into the host's, TAPs are opened from a
//! thread that has entered the namespace they belong to. [`Lab`] owns the wires it made: its `Drop`
//! stops and joins them, then deletes every namespace it made (the links and the bridge go with
//! them), on panic too, so no wire's thread outlives the lab or the test.
//!
//! Everything here needs root (`ip netns add`), and a slow host `/dev/net/tun`; [`Lab::create`]
//! and [`tap_available`] say why they cannot run instead, and the test then skips (fails in CI).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
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
    /// The slow links, by the namespace of their host; stopped before any namespace is deleted.
    wires: Vec<(String, DelayWire)>,
}

impl Lab {
    /// The switch namespace with its bridge. `Err` is the reason to skip: the preconditions, a
    /// first `ip netns add` refused (no CAP_SYS_ADMIN in a container), no bridge support.
    pub fn create() -> Result<Lab, String> {
        if let Some(why) = unavailable() {
            return Err(why);
        }
        // Short and unique per lab (tests of one process run in parallel): namespace names are
        // files under /run/netns. The trailing `-` keeps lab 1's prefix from matching lab 10's.
        static LABS: AtomicUsize = AtomicUsize::new(0);
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("hm{}-{n}-", std::process::id());
        let switch = format!("{prefix}sw");
        // A namespace left by an earlier process with the same pid would make `add` fail.
        let _ = ip(&["netns", "del", &switch]);
        ip(&["netns", "add", &switch]).map_err(|e| format!("cannot create a namespace: {e}"))?;
        let lab = Lab {
            prefix,
            switch: switch.clone(),
            made: vec![switch.clone()],
            hosts: 0,
            wires: Vec::new(),
        };
        let bridge = ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])
            .and_then(|()| ip(&["-n", &switch, "link", "set", "br0", "up"]));
        bridge.map_err(|e| format!("cannot create a Linux bridge in a namespace: {e}"))?;
        Ok(lab)
    }

    /// A host namespace `<prefix><name>` on the LAN with `addr/24` on its `eth0` and `lo` up;
    /// returns the namespace's name. Panics (the test fails, `Drop` cleans up) if `ip` refuses.
    pub fn host(&mut self, name: &str, addr: Ipv4Addr) -> String {
        let (ns, port) = self.new_host(name);
        let sw = self.switch.clone();
        must(ip(&[
            "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]));
        self.connect(&ns, &port, addr);
        ns
    }

    /// Like [`Lab::host`], but the host's link to the switch is a [`DelayWire`] that delays every
    /// frame by `delay` each way and stops after `limit` at most, or when
    /// [`Lab::finish_wire`] or the lab's `Drop` stops it; returns the namespace's name. Panics (the
    /// test fails, `Drop` cleans up) if a TAP cannot be made or `ip` refuses.
    pub fn slow_host(
        &mut self,
        name: &str,
        addr: Ipv4Addr,
        delay: Duration,
        limit: Duration,
    ) -> String {
        let (ns, port) = self.new_host(name);
        let (host_ns, switch_ns) = (netns_path(&ns), netns_path(&self.switch));
        let port_name = port.clone();
        // setns moves only the calling thread: a thread of its own enters each namespace in turn.
        let opened = std::thread::spawn(move || {
            let host_end = enter_netns(&host_ns).and_then(|()| open_tap("eth0"))?;
            let switch_end = enter_netns(&switch_ns).and_then(|()| open_tap(&port_name))?;
            Ok::<_, String>((host_end, switch_end))
        })
        .join()
        .unwrap_or_else(|_| Err("the thread opening the TAPs panicked".into()));
        let (host_end, switch_end) = opened.unwrap_or_else(|e| {
            panic!("setting up the test's network namespaces: slow link of {ns}: {e}")
        });
        // Both ends up before the wire runs: a TAP that is down refuses writes. What either end
        // sends meanwhile waits in its queue.
        self.connect(&ns, &port, addr);
        let wire = DelayWire::start(host_end, switch_end, delay, limit);
        self.wires.push((ns.clone(), wire));
        ns
    }

    /// A handle that lives exactly as long as the thread of `ns`'s slow link (`None` once it has
    /// ended). Panics if `ns` has no slow link.
    pub fn wire_thread(&self, ns: &str) -> Weak<()> {
        match self.wires.iter().find(|(n, _)| n == ns) {
            Some((_, w)) => w.running.clone(),
            None => panic!("{ns} has no slow link"),
        }
    }

    /// Stops the slow link of host namespace `ns` (the host loses its link) and returns what it
    /// did. Panics if `ns` has no slow link, or with the wire thread's panic if it had one.
    pub fn finish_wire(&mut self, ns: &str) -> WireStats {
        let Some(at) = self.wires.iter().position(|(n, _)| n == ns) else {
            panic!("{ns} has no slow link");
        };
        self.wires.swap_remove(at).1.finish()
    }

    /// Adds the namespace of host `name`; returns it and the name of its port on the bridge.
    fn new_host(&mut self, name: &str) -> (String, String) {
        let ns = format!("{}{name}", self.prefix);
        let _ = ip(&["netns", "del", &ns]);
        must(ip(&["netns", "add", &ns]));
        self.made.push(ns.clone());
        self.hosts += 1;
        // The switch's end of the link; interface names are per namespace and at most 15 bytes.
        (ns, format!("v{}", self.hosts))
    }

    /// Puts `port` on the bridge and brings it up; gives the host `addr/24` on `eth0`, brings
    /// that and `lo` up.
    fn connect(&self, ns: &str, port: &str, addr: Ipv4Addr) {
        let sw = &self.switch;
        must(ip(&["-n", sw, "link", "set", port, "master", "br0"]));
        must(ip(&["-n", sw, "link", "set", port, "up"]));
        must(ip(&["-n", ns, "link", "set", "lo", "up"]));
        let cidr = format!("{addr}/24");
        must(ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"]));
        must(ip(&["-n", ns, "link", "set", "eth0", "up"]));
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
        // The wires first (each joined: its thread ends here), so none runs on in a namespace
        // being deleted.
        self.wires.clear();
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

/// Whether a slow link can be made here: `/dev/net/tun` opens read-write. `Err` says why not.
pub fn tap_available() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN)
        .map(drop)
        .map_err(|e| format!("a slow link needs TAP devices, and {TUN} cannot be opened: {e}"))
}

const TUN: &str = "/dev/net/tun";

fn netns_path(ns: &str) -> String {
    format!("/run/netns/{ns}")
}

/// Moves the calling thread into the network namespace at `path`.
fn enter_netns(path: &str) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    // SAFETY: a valid open descriptor of a network namespace file; affects this thread only.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "setns({path}) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// A non-blocking TAP device `name` (no packet-info header, no offloads) in the calling thread's
/// network namespace; it exists while the returned file is open.
fn open_tap(name: &str) -> Result<File, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(TUN)
        .map_err(|e| format!("cannot open {TUN}: {e}"))?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(format!("interface name {name:?} is too long"));
    }
    for (d, b) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = b as libc::c_char;
    }
    // 0x1002: fits a c_short.
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is, live for the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc != 0 {
        return Err(format!(
            "TUNSETIFF {name} (TAP) failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(f)
}

/// The longest the wire's thread sleeps before it looks at its stop flag and deadline.
const WIRE_POLL: Duration = Duration::from_millis(20);
/// Frames in flight on the wire at once, each way; more are dropped (and counted).
const WIRE_QUEUE: usize = 4096;
/// Frames read from one end per turn of the loop.
const WIRE_BURST: usize = 256;
/// Read buffer: larger than any frame of a 1500-byte MTU TAP.
const FRAME_BUF: usize = 65536;

/// What a wire did.
#[derive(Debug, Default, Clone)]
pub struct WireStats {
    /// Frames delivered from the switch to the host, and from the host to the switch.
    pub to_host: u64,
    pub from_host: u64,
    /// Frames dropped: a full queue, a failed read or write; and why the first one was.
    pub dropped: u64,
    pub first_drop: Option<String>,
}

impl WireStats {
    fn drop_frame(&mut self, why: impl FnOnce() -> String) {
        self.dropped += 1;
        if self.first_drop.is_none() {
            self.first_drop = Some(why());
        }
    }
}

struct InFlight {
    due: Instant,
    frame: Vec<u8>,
}

/// One direction of the wire: frames read from `from`, written to `to` once due.
struct Lane<'a> {
    name: &'static str,
    from: &'a File,
    to: &'a File,
    queue: VecDeque<InFlight>,
}

/// A slow link between a host and the switch ([`Lab::slow_host`]): a thread that reads every
/// frame from either TAP and writes it to the other `delay` later, unchanged. It runs until stopped
/// (dropped, [`DelayWire::finish`]) or for `limit` at most; then the TAPs, and with them the
/// host's link, go away. Its [`Lab`] holds it, so it is stopped before the lab's namespaces go.
struct DelayWire {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<WireStats>>,
    /// Upgradable while the thread runs (it holds the only `Arc`).
    running: Weak<()>,
}

impl DelayWire {
    fn start(host_end: File, switch_end: File, delay: Duration, limit: Duration) -> DelayWire {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let end = Instant::now() + limit;
        let token = Arc::new(());
        let running = Arc::downgrade(&token);
        let thread = std::thread::spawn(move || {
            let _token = token;
            let mut up = Lane {
                name: "host to switch",
                from: &host_end,
                to: &switch_end,
                queue: VecDeque::new(),
            };
            let mut down = Lane {
                name: "switch to host",
                from: &switch_end,
                to: &host_end,
                queue: VecDeque::new(),
            };
            wire_loop(&mut up, &mut down, delay, end, &flag)
        });
        DelayWire {
            stop,
            thread: Some(thread),
            running,
        }
    }

    /// Stops the wire (the slow host loses its link) and returns what it did; a panic of its
    /// thread is raised here, never read as a wire that carried nothing.
    fn finish(mut self) -> WireStats {
        match self.stop_thread() {
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            Some(Ok(stats)) => stats,
            None => WireStats::default(),
        }
    }

    /// Asks the thread to stop and waits for it (at most one poll interval and a burst).
    fn stop_thread(&mut self) -> Option<std::thread::Result<WireStats>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map(JoinHandle::join)
    }
}

impl Drop for DelayWire {
    fn drop(&mut self) {
        // Also while a test unwinds: the thread is joined, its panic (if any) dropped.
        let _ = self.stop_thread();
    }
}

fn wire_loop(
    up: &mut Lane,
    down: &mut Lane,
    delay: Duration,
    end: Instant,
    stop: &AtomicBool,
) -> WireStats {
    let mut stats = WireStats::default();
    let mut buf = vec![0u8; FRAME_BUF];
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let now = Instant::now();
        stats.from_host += up.deliver(now, &mut stats);
        stats.to_host += down.deliver(now, &mut stats);
        // A constant delay keeps each queue in due order: the next due is at a front.
        let next = [&up.queue, &down.queue]
            .iter()
            .filter_map(|q| q.front())
            .map(|f| f.due.saturating_duration_since(now))
            .min();
        wait_readable(
            &[up.from, down.from],
            next.unwrap_or(WIRE_POLL).min(WIRE_POLL),
        );
        up.take(&mut buf, delay, &mut stats);
        down.take(&mut buf, delay, &mut stats);
    }
    stats
}

impl Lane<'_> {
    /// Writes every frame due by `now`; returns how many went out.
    fn deliver(&mut self, now: Instant, stats: &mut WireStats) -> u64 {
        let mut sent = 0;
        while self.queue.front().is_some_and(|f| f.due <= now) {
            let Some(f) = self.queue.pop_front() else {
                break;
            };
            // A TAP takes a whole frame per write.
            match self.to.write(&f.frame) {
                Ok(n) if n == f.frame.len() => sent += 1,
                Ok(n) => stats.drop_frame(|| {
                    let len = f.frame.len();
                    format!("{}: wrote {n} of a {len}-byte frame", self.name)
                }),
                Err(e) => stats.drop_frame(|| format!("{}: write: {e}", self.name)),
            }
        }
        sent
    }

    /// Reads what has arrived (at most a burst) and queues it, due `delay` from now.
    fn take(&mut self, buf: &mut [u8], delay: Duration, stats: &mut WireStats) {
        for _ in 0..WIRE_BURST {
            let n = match self.from.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    stats.drop_frame(|| format!("{}: read: {e}", self.name));
                    break;
                }
            };
            match buf.get(..n) {
                Some(frame) if self.queue.len() < WIRE_QUEUE => self.queue.push_back(InFlight {
                    due: Instant::now() + delay,
                    frame: frame.to_vec(),
                }),
                _ => stats.drop_frame(|| format!("{}: {WIRE_QUEUE} frames in flight", self.name)),
            }
        }
    }
}

/// Blocks until one of the files is readable or `wait` has passed (nanosecond timeout: `ppoll`).
fn wait_readable(files: &[&File], wait: Duration) {
    let mut fds: Vec<libc::pollfd> = files
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
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
