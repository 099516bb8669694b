//! Attacks on the data plane by a member that holds only its own pair keys, and by strangers,
//! through the real data plane on loopback: honest members run fabric phases with the probe's own
//! code (`FabricTask` on a `DataPlane`), with keys derived by the coordinator's own code
//! (`PhaseKey::keys_for`); the attacker crafts packets and handshakes with the project's packet
//! format and MACs under the keys it was given. Each test also runs a control (the same exchange
//! done honestly is accepted), so that a rejection is not just a broken harness.

use hallmark_coordinator::fabric::PhaseKey;
use hallmark_protocol::{
    CollectiveAlgorithm, CollectiveOp, CollectiveParams, CollectiveTransport, FabricMember,
    FabricParams, FabricPhase, FabricReport, LatencyPair, LatencyParams, NodeId,
};
use hallmark_workloads::fabric::auth::{random_bytes, PhaseMac, TAG_LEN};
use hallmark_workloads::fabric::latency::packet::{self, Header, Kind};
use hallmark_workloads::fabric::{DataPlane, FabricTask, PhaseWindow};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PHASE_ID: u32 = 11;

fn node(i: usize) -> NodeId {
    NodeId::new(format!("n{i}")).unwrap()
}

fn members(addrs: &[SocketAddr]) -> Vec<FabricMember> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| FabricMember {
            node_id: node(i),
            addr: *a,
        })
        .collect()
}

/// A phase's key and members, as the coordinator holds them.
struct Phase {
    key: PhaseKey,
    members: Vec<FabricMember>,
    params: FabricParams,
}

impl Phase {
    fn new(addrs: &[SocketAddr], params: FabricParams) -> Phase {
        Phase {
            key: PhaseKey::from_bytes(random_bytes::<32>().unwrap()),
            members: members(addrs),
            params,
        }
    }

    /// Member `rank`'s order: the members and only its own keys.
    fn order(&self, rank: usize) -> FabricPhase {
        FabricPhase {
            keys: self.key.keys_for(PHASE_ID, &self.members, rank),
            members: self.members.clone(),
            params: self.params.clone(),
            nccl: None,
        }
    }

    /// What member `rank` can compute: MACs under its own keys only.
    fn mac(&self, rank: usize) -> PhaseMac {
        PhaseMac::new(&self.order(rank), rank, PHASE_ID).unwrap()
    }

    /// Runs member `rank` honestly on `dp` within `w`.
    fn spawn(&self, dp: &Arc<DataPlane>, rank: usize, w: PhaseWindow) -> FabricTask {
        FabricTask::spawn(dp.clone(), node(rank), self.order(rank), w).unwrap()
    }
}

fn window(len: Duration) -> PhaseWindow {
    let start = Instant::now() + Duration::from_millis(100);
    PhaseWindow {
        phase_id: PHASE_ID,
        start,
        end: start + len,
    }
}

fn latency() -> FabricParams {
    FabricParams::Latency(LatencyParams::default())
}

fn collective() -> FabricParams {
    FabricParams::Collective(CollectiveParams {
        ops: vec![CollectiveOp::AllReduce],
        min_bytes: 8,
        max_bytes: 8,
        algorithm: CollectiveAlgorithm::Auto,
        transport: CollectiveTransport::DataPlane,
        iterations: Some(1),
    })
}

fn udp() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn data_plane() -> Arc<DataPlane> {
    Arc::new(DataPlane::bind("127.0.0.1:0".parse().unwrap()).unwrap())
}

fn pair(r: &FabricReport, src: usize, dst: usize) -> &LatencyPair {
    r.latency
        .iter()
        .find(|p| p.src == node(src) && p.dst == node(dst))
        .unwrap_or_else(|| panic!("no pair {src}→{dst} in {r:?}"))
}

/// Member 0 runs the latency mesh honestly with members 1 and 2, whose registered addresses are
/// sockets this test holds. Every ping 0 sends to member 1's address is answered with a pong
/// "from member 1" sealed by `mac` (whoever's keys those are) and sent from `answer_from`
/// (member 1's registered socket when `from_registered`, another socket otherwise). Returns
/// member 0's measurement of the pair 0 → 1.
fn forge_pongs(answer_as: usize, from_registered: bool) -> LatencyPair {
    let dp0 = data_plane();
    let (reg1, reg2, other) = (udp(), udp(), udp());
    let addrs = [
        dp0.local_addr().unwrap(),
        reg1.local_addr().unwrap(),
        reg2.local_addr().unwrap(),
    ];
    let phase = Phase::new(&addrs, latency());
    let mac = phase.mac(answer_as);
    let w = window(Duration::from_millis(1200));
    let task = phase.spawn(&dp0, 0, w);
    reg1.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let answer_from = if from_registered { &reg1 } else { &other };
    let mut buf = [0u8; 2048];
    // Bounded by the window's end.
    while Instant::now() < w.end + Duration::from_millis(50) {
        let Ok((len, from)) = reg1.recv_from(&mut buf) else {
            continue;
        };
        let pkt = &mut buf[..len];
        let Ok(h) = packet::parse_header(pkt) else {
            continue;
        };
        if h.kind == Kind::Ping && h.src == 0 && h.dst == 1 {
            // The pong of member 1 → 0, sealed under the key `answer_as` shares with member 0.
            assert!(packet::ping_to_pong(&mac, pkt, &h));
            let _ = answer_from.send_to(pkt, from);
        }
    }
    let report = task.join();
    pair(&report, 0, 1).clone()
}

/// Member 2 holds the keys of {0, 2} and {1, 2}, not of {0, 1}: a pong it forges "from member
/// 1" — even sent from member 1's own address — is dropped, and member 0 counts every ping to 1
/// lost. Control: the same pongs sealed by member 1 are accepted.
#[test]
fn a_member_cannot_forge_a_pong_between_two_others() {
    let forged = forge_pongs(2, true);
    assert!(
        forged.sent > 0 && forged.lost == forged.sent,
        "forged pongs must not be accepted: {} of {} pings answered",
        forged.sent - forged.lost,
        forged.sent
    );
    let honest = forge_pongs(1, true);
    assert!(
        honest.sent > 10 && honest.lost * 10 < honest.sent,
        "the control (member 1's own pongs) must be accepted: {} of {} lost",
        honest.lost,
        honest.sent
    );
}

/// A pong under the right pair key that comes from another address than the peer's registered
/// data plane is dropped.
#[test]
fn a_pong_from_another_address_than_the_peers_is_not_accepted() {
    let p = forge_pongs(1, false);
    assert!(
        p.sent > 0 && p.lost == p.sent,
        "{} of {} pings answered",
        p.sent - p.lost,
        p.sent
    );
}

/// Member 0 running the mesh with member 1, whose registered address is `reg1`, held by this
/// test, which also holds member 1's keys (and so can send member 1's pings from anywhere).
struct Responder {
    dp0: Arc<DataPlane>,
    reg1: UdpSocket,
    phase: Phase,
    w: PhaseWindow,
    task: Option<FabricTask>,
}

impl Responder {
    fn start() -> Responder {
        let dp0 = data_plane();
        let reg1 = udp();
        let addrs = [dp0.local_addr().unwrap(), reg1.local_addr().unwrap()];
        let phase = Phase::new(&addrs, latency());
        let w = window(Duration::from_millis(1500));
        let task = Some(phase.spawn(&dp0, 0, w));
        std::thread::sleep(w.start.saturating_duration_since(Instant::now()));
        Responder {
            dp0,
            reg1,
            phase,
            w,
            task,
        }
    }

    /// A ping of member 1 to member 0 with sequence number `seq`, sealed under their key.
    fn ping(&self, seq: u64) -> Vec<u8> {
        let mut pkt = vec![0u8; packet::packet_len(64)];
        let h = Header {
            kind: Kind::Ping,
            src: 1,
            dst: 0,
            phase_id: PHASE_ID,
            seq,
        };
        assert!(
            packet::write_header(&mut pkt, &h) && packet::seal(&self.phase.mac(1), 0, &mut pkt)
        );
        pkt
    }

    /// Sends `pkt` from `from`; whether its pong (`seq`) came back to `reg1` or to `from`.
    fn answered(&self, pkt: &[u8], seq: u64, from: &UdpSocket) -> bool {
        from.send_to(pkt, self.dp0.local_addr().unwrap()).unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut buf = [0u8; 2048];
        let mut got = false;
        // Bounded: 200 ms, 2 ms reads.
        while Instant::now() < deadline {
            for s in [&self.reg1, from] {
                s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
                if let Ok((len, _)) = s.recv_from(&mut buf) {
                    if let Ok(h) = packet::parse_header(&buf[..len]) {
                        got |= h.kind == Kind::Pong && h.seq == seq && h.dst == 1;
                    }
                }
            }
        }
        assert!(Instant::now() < self.w.end, "the test ran past the phase");
        got
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.stop();
            let _ = t.join();
        }
    }
}

/// A ping captured and sent again (or an older one) gets no answer: member 0 answers each
/// member's pings only with rising sequence numbers. Control: a fresh one is answered.
#[test]
fn a_replayed_ping_is_not_answered() {
    let r = Responder::start();
    let first = r.ping(1000);
    assert!(r.answered(&first, 1000, &r.reg1), "control: a fresh ping");
    assert!(!r.answered(&first, 1000, &r.reg1), "the same ping again");
    assert!(!r.answered(&r.ping(999), 999, &r.reg1), "an older ping");
    assert!(
        r.answered(&r.ping(1001), 1001, &r.reg1),
        "control: the next ping"
    );
}

/// A ping under the right pair key from another address than the sender's registered one gets
/// no answer, neither to where it came from nor to the registered address: the data plane cannot
/// be used to reflect traffic at a third host. Control: from the registered address it is.
#[test]
fn a_ping_from_another_address_than_the_senders_is_not_answered() {
    let r = Responder::start();
    let elsewhere = udp();
    assert!(
        !r.answered(&r.ping(5), 5, &elsewhere),
        "from another address"
    );
    assert!(
        r.answered(&r.ping(6), 6, &r.reg1),
        "control: from the registered address"
    );
}

/// The collective handshake's hello (`workloads/src/fabric/collective/mesh.rs`).
fn hello(from: u32, to: u32, nonce: &[u8; 16]) -> Vec<u8> {
    let mut h = b"HMCOLL01".to_vec();
    for w in [PHASE_ID, from, to] {
        h.extend_from_slice(&w.to_be_bytes());
    }
    h.extend_from_slice(nonce);
    h
}

const ACK: u8 = 0xA5;

/// Dials `to`'s data plane claiming rank `claim`, proves it with `mac`'s key shared with rank
/// `to`, and returns the stream and whether the acceptor sent the accept byte.
fn handshake(addr: SocketAddr, claim: u32, to: usize, mac: &PhaseMac) -> (TcpStream, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let h = hello(claim, to as u32, &random_bytes::<16>().unwrap());
    s.write_all(&h).unwrap();
    let mut challenge = [0u8; 16 + TAG_LEN];
    if s.read_exact(&mut challenge).is_err() {
        return (s, false);
    }
    let tag = mac.tag(to, &[b"client", &h, &challenge[..16]]).unwrap();
    if s.write_all(&tag).is_err() {
        return (s, false);
    }
    let mut ack = [0u8; 1];
    let accepted = s.read_exact(&mut ack).is_ok() && ack[0] == ACK;
    (s, accepted)
}

/// A collective phase of three: rank 2 runs honestly, ranks 0 and 1 are registered on loopback
/// (the test speaks for rank 0 with rank 0's keys; rank 1 never comes).
fn collective_target() -> (Phase, Arc<DataPlane>, PhaseWindow, FabricTask) {
    let dp2 = data_plane();
    let (r0, r1) = (udp(), udp());
    let addrs = [
        r0.local_addr().unwrap(),
        r1.local_addr().unwrap(),
        dp2.local_addr().unwrap(),
    ];
    let phase = Phase::new(&addrs, collective());
    let w = window(Duration::from_millis(2500));
    let task = phase.spawn(&dp2, 2, w);
    (phase, dp2, w, task)
}

fn names(r: &FabricReport, n: usize) -> bool {
    r.faults.iter().any(|f| f.peer == Some(node(n)))
}

/// Rank 0 holds the key of {0, 2}, not of {1, 2}: claiming rank 1 in its hello to rank 2, its
/// proof fails and rank 2 closes without accepting; rank 2 still counts rank 1 missing. Control:
/// as itself, rank 0 is accepted.
#[test]
fn a_member_cannot_claim_another_members_rank_in_the_tcp_handshake() {
    let (phase, dp2, _w, task) = collective_target();
    let mac0 = phase.mac(0);
    let (_s, forged) = handshake(dp2.local_addr().unwrap(), 1, 2, &mac0);
    assert!(!forged, "rank 0 passing for rank 1 must be refused");
    let (_s0, honest) = handshake(dp2.local_addr().unwrap(), 0, 2, &mac0);
    assert!(honest, "control: rank 0 as itself is accepted");
    let report = task.join();
    assert!(
        names(&report, 1),
        "rank 1 never connected: {:?}",
        report.faults
    );
    assert!(!names(&report, 0), "rank 0 did: {:?}", report.faults);
}

/// Once rank 0 has an authenticated stream to rank 2, a second authenticated connection for the
/// same pair is refused and the first stays open: an authenticated stream is never replaced.
#[test]
fn a_second_authenticated_stream_for_a_pair_does_not_replace_the_first() {
    let (phase, dp2, _w, task) = collective_target();
    let mac0 = phase.mac(0);
    let (mut first, ok) = handshake(dp2.local_addr().unwrap(), 0, 2, &mac0);
    assert!(ok, "the first stream is accepted");
    let (_second, again) = handshake(dp2.local_addr().unwrap(), 0, 2, &mac0);
    assert!(!again, "a second stream for the same pair must be refused");
    first
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 1];
    match first.read(&mut b) {
        Ok(0) => panic!("the first stream was closed"),
        Err(e) if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut => {
            panic!("the first stream failed: {e}")
        }
        _ => {}
    }
    let report = task.join();
    assert!(
        !names(&report, 0),
        "rank 0 stays connected: {:?}",
        report.faults
    );
    assert!(names(&report, 1), "{:?}", report.faults);
}

/// How long rank 1 (running a collective phase, waiting for rank 0 registered at `rank0_ip`)
/// keeps a silent connection from 127.0.0.1 open, up to 1.5 s.
fn silent_connection_kept(rank0_ip: [u8; 4]) -> Duration {
    let dp1 = data_plane();
    let addrs = [SocketAddr::from((rank0_ip, 9)), dp1.local_addr().unwrap()];
    let phase = Phase::new(&addrs, collective());
    let w = window(Duration::from_millis(2500));
    let task = phase.spawn(&dp1, 1, w);
    std::thread::sleep(
        w.start.saturating_duration_since(Instant::now()) + Duration::from_millis(50),
    );
    let mut s = TcpStream::connect(dp1.local_addr().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let t = Instant::now();
    let mut b = [0u8; 1];
    let _ = s.read(&mut b);
    let kept = t.elapsed();
    task.stop();
    let _ = task.join();
    kept
}

/// A connection from an IP that is no member's that may dial this rank is closed at once: it gets
/// no handshake slot (a slot is held up to 2 s for a silent peer). Control: from a member's IP,
/// the silent connection holds its slot.
#[test]
fn a_strangers_tcp_connection_gets_no_handshake_slot() {
    let stranger = silent_connection_kept([127, 0, 0, 2]);
    assert!(
        stranger < Duration::from_millis(500),
        "a stranger's connection was kept {stranger:?}"
    );
    let member = silent_connection_kept([127, 0, 0, 1]);
    assert!(
        member >= Duration::from_millis(1000),
        "control: a member's connection holds its slot, kept only {member:?}"
    );
}
