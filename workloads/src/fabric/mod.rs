//! The fabric (interconnect) workloads and the probe's data plane.
//!
//! A probe binds one [`DataPlane`] for its whole life: a UDP socket and a TCP listener on the same
//! port, whose address it announces in its Hello. For a `latency` or `collective` phase the
//! coordinator sends every member a [`FabricPhase`] (members in rank order, the member's own pair
//! keys, the parameters); [`FabricTask::spawn`] runs the phase on its own thread, off the async
//! runtime, within the phase's [`PhaseWindow`], and [`FabricTask::join`] returns what it measured.
//!
//! * [`auth`] — the per-pair MACs (HMAC-SHA256 under the key of the pair of members) that every
//!   test packet and TCP handshake carries: a probe talks only to the members named for the phase,
//!   and no member can speak for another.
//! * [`latency`] — the latency mesh: every directed pair ping-pongs over UDP in a round-robin
//!   schedule (each probe in one exchange at a time), round trips into HDR histograms.
//! * [`collective`] — all-reduce, all-gather, reduce-scatter, broadcast and all-to-all over a size
//!   sweep on authenticated TCP connections, ring and latency-optimal algorithms, every result
//!   checked.
//!
//! Every socket operation has a deadline no later than the phase's end, so a dead or slow peer
//! ends in a [`FabricFault`] naming it, never in a hang.

pub mod auth;
pub mod collective;
pub mod latency;

use hallmark_protocol::{FabricFault, FabricParams, FabricPhase, FabricReport, NodeId};
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use auth::PhaseMac;

/// Attempts at finding a port free for both UDP and TCP when the OS picks it.
const BIND_ATTEMPTS: usize = 32;

/// A probe's data-plane sockets: UDP (latency test packets) and TCP (collectives) on one port.
#[derive(Debug)]
pub struct DataPlane {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl DataPlane {
    /// Binds both sockets on `addr`; with port 0 the OS picks a port that is free for both.
    pub fn bind(addr: SocketAddr) -> io::Result<DataPlane> {
        let attempts = if addr.port() == 0 { BIND_ATTEMPTS } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let tcp = TcpListener::bind(addr)?;
            let local = tcp.local_addr()?;
            match UdpSocket::bind(local) {
                Ok(udp) => return Ok(DataPlane { udp, tcp }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn udp(&self) -> &UdpSocket {
        &self.udp
    }

    pub fn tcp(&self) -> &TcpListener {
        &self.tcp
    }
}

/// A fabric phase's window on this process's monotonic clock. The members agree on it to within
/// their clock-sync uncertainty: every probe converts the same coordinator-clock start instant.
#[derive(Debug, Clone, Copy)]
pub struct PhaseWindow {
    pub phase_id: u32,
    pub start: Instant,
    pub end: Instant,
}

/// Runs one fabric phase on this thread until it is done, `stop` is set or the window ends.
pub fn run_phase(
    dp: &DataPlane,
    me: &NodeId,
    phase: &FabricPhase,
    window: &PhaseWindow,
    stop: &AtomicBool,
) -> FabricReport {
    let Some(rank) = phase.rank_of(me) else {
        return FabricReport {
            faults: vec![FabricFault {
                peer: None,
                message: format!(
                    "node {me} is not among the phase's {} members; the coordinator's phase order is inconsistent",
                    phase.members.len()
                ),
            }],
            ..FabricReport::default()
        };
    };
    let mac = match PhaseMac::new(phase, rank, window.phase_id) {
        Ok(m) => m,
        Err(message) => {
            return FabricReport {
                faults: vec![FabricFault {
                    peer: None,
                    message,
                }],
                ..FabricReport::default()
            }
        }
    };
    match &phase.params {
        FabricParams::Latency(p) => latency::run(dp, rank, phase, p, &mac, window, stop),
        FabricParams::Collective(p) => collective::run(dp, rank, phase, p, &mac, window, stop),
    }
}

/// A fabric phase running on its own thread.
#[derive(Debug)]
pub struct FabricTask {
    handle: JoinHandle<FabricReport>,
    stop: Arc<AtomicBool>,
}

impl FabricTask {
    /// Starts the phase on a new thread.
    pub fn spawn(
        dp: Arc<DataPlane>,
        me: NodeId,
        phase: FabricPhase,
        window: PhaseWindow,
    ) -> io::Result<FabricTask> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("fabric-{}", window.phase_id))
            .spawn(move || run_phase(&dp, &me, &phase, &window, &flag))?;
        Ok(FabricTask { handle, stop })
    }

    /// Asks the phase to end now (abort, safety stop); it returns what it measured so far.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the phase's report. A panic on the fabric thread is reported as a fault.
    pub fn join(self) -> FabricReport {
        match self.handle.join() {
            Ok(r) => r,
            Err(_) => FabricReport {
                faults: vec![FabricFault {
                    peer: None,
                    message: "the fabric thread panicked; this is a bug in hallmark".into(),
                }],
                ..FabricReport::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_plane_binds_udp_and_tcp_on_one_port() {
        let dp = DataPlane::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let a = dp.local_addr().unwrap();
        assert_ne!(a.port(), 0);
        assert_eq!(dp.udp().local_addr().unwrap(), a);
    }
}
