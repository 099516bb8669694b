//! Tests of the latency mesh over loopback: whole meshes of 1 to 5 members on threads, a member
//! with another mesh's keys, a stranger forging pings, a dead peer, an early stop, and a peer that
//! answers late, out of order and twice. (The attacks
//! by a member holding its own keys are in the workspace's `tests/fabric.rs`.)

use super::packet::{self, Header, Kind};
use super::*;
use crate::fabric::auth::{random_mesh_keys, random_mesh_orders};
use hallmark_protocol::{FabricMember, FabricParams, LatencyPair, NodeId, PeerKey};
use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const PHASE_ID: u32 = 7;

fn node(i: usize) -> NodeId {
    NodeId::new(format!("node-{i:02}")).unwrap()
}

/// Every member's keys of a fresh mesh of `n`.
fn keys(n: usize) -> Vec<Vec<PeerKey>> {
    random_mesh_keys(n).unwrap()
}

fn planes(n: usize) -> Vec<DataPlane> {
    (0..n)
        .map(|_| DataPlane::bind("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect()
}

fn window(len: Duration) -> PhaseWindow {
    let start = Instant::now() + Duration::from_millis(50);
    PhaseWindow {
        phase_id: PHASE_ID,
        start,
        end: start + len,
    }
}

/// Every member's phase, with one mesh's keys.
fn phases(addrs: &[std::net::SocketAddr]) -> Vec<FabricPhase> {
    let members: Vec<FabricMember> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| FabricMember {
            node_id: node(i),
            addr: *a,
        })
        .collect();
    random_mesh_orders(&members, &FabricParams::Latency(LatencyParams::default())).unwrap()
}

/// Runs `run` for every (data plane, rank, phase) on its own thread; reports and return instants.
fn run_members(
    members: &[(&DataPlane, usize, &FabricPhase)],
    w: &PhaseWindow,
    stop: &AtomicBool,
) -> Vec<(FabricReport, Instant)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = members
            .iter()
            .map(|&(dp, rank, phase)| {
                s.spawn(move || {
                    let mac = PhaseMac::new(phase, rank, w.phase_id).unwrap();
                    let r = run(dp, rank, phase, &LatencyParams::default(), &mac, w, stop);
                    (r, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `n` members with the same key, all running the mesh over one window of `ms` milliseconds:
/// their reports (and when each returned) and the window.
fn honest_mesh(n: usize, ms: u64) -> (Vec<(FabricReport, Instant)>, PhaseWindow) {
    let dps = planes(n);
    let addrs: Vec<_> = dps.iter().map(|d| d.local_addr().unwrap()).collect();
    let phases = phases(&addrs);
    let w = window(Duration::from_millis(ms));
    let stop = AtomicBool::new(false);
    let members: Vec<_> = dps
        .iter()
        .enumerate()
        .map(|(i, d)| (d, i, &phases[i]))
        .collect();
    (run_members(&members, &w, &stop), w)
}

fn find(reports: &[(FabricReport, Instant)], src: usize, dst: usize) -> &LatencyPair {
    reports
        .iter()
        .flat_map(|(r, _)| &r.latency)
        .find(|p| p.src == node(src) && p.dst == node(dst))
        .unwrap_or_else(|| panic!("no pair {src}→{dst}"))
}

fn faults_naming(r: &FabricReport, peer: usize) -> usize {
    r.faults
        .iter()
        .filter(|f| f.peer.as_ref() == Some(&node(peer)) && f.message.contains(node(peer).as_str()))
        .count()
}

/// Every pair between distinct `ranks` was measured cleanly; returns (p50, p99) over all, ns.
fn check_clean(reports: &[(FabricReport, Instant)], ranks: &[usize]) -> (u64, u64) {
    let mut all = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for &i in ranks {
        for &j in ranks {
            if i == j {
                continue;
            }
            let p = find(reports, i, j);
            assert!(p.sent > 0, "{i}→{j}: nothing sent");
            assert!(
                p.lost * 100 <= p.sent,
                "{i}→{j}: {} of {} lost",
                p.lost,
                p.sent
            );
            let h = decode_histogram(&p.rtt_ns_hist).unwrap();
            assert_eq!(
                h.len(),
                p.sent - p.lost,
                "{i}→{j}: one round trip per answered ping"
            );
            let p50 = h.value_at_quantile(0.5);
            assert!((1_000..=10_000_000).contains(&p50), "{i}→{j}: p50 {p50} ns");
            all.add(&h).unwrap();
        }
    }
    (all.value_at_quantile(0.5), all.value_at_quantile(0.99))
}

#[test]
fn four_members_measure_all_twelve_directed_pairs() {
    let (reports, w) = honest_mesh(4, 1200);
    for (rank, (r, returned)) in reports.iter().enumerate() {
        assert_eq!(r.latency.len(), 3, "rank {rank}: {:?}", r.faults);
        assert!(r.faults.is_empty(), "rank {rank}: {:?}", r.faults);
        assert!(r.latency.iter().all(|p| p.src == node(rank)));
        assert!(*returned >= w.end && *returned < w.end + Duration::from_millis(100));
    }
    let (p50, p99) = check_clean(&reports, &[0, 1, 2, 3]);
    let sent: u64 = reports
        .iter()
        .flat_map(|(r, _)| &r.latency)
        .map(|p| p.sent)
        .sum();
    println!("4 members, loopback: {sent} round trips, p50 {p50} ns, p99 {p99} ns");
}

#[test]
fn five_members_cover_all_twenty_pairs_with_byes() {
    let (reports, _) = honest_mesh(5, 1000);
    let pairs: usize = reports.iter().map(|(r, _)| r.latency.len()).sum();
    assert_eq!(pairs, 20);
    for (r, _) in &reports {
        assert!(r.faults.is_empty(), "{:?}", r.faults);
    }
    check_clean(&reports, &[0, 1, 2, 3, 4]);
}

#[test]
fn two_members_and_one_member() {
    let (reports, _) = honest_mesh(2, 400);
    assert_eq!(
        reports.iter().map(|(r, _)| r.latency.len()).sum::<usize>(),
        2
    );
    check_clean(&reports, &[0, 1]);

    // One member: nothing to measure, back at once.
    let dps = planes(1);
    let alone = phases(&[dps[0].local_addr().unwrap()]).remove(0);
    let w = window(Duration::from_secs(5));
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let mac = PhaseMac::new(&alone, 0, w.phase_id).unwrap();
    let r = run(
        &dps[0],
        0,
        &alone,
        &LatencyParams::default(),
        &mac,
        &w,
        &stop,
    );
    assert_eq!(r, FabricReport::default());
    assert!(t.elapsed() < Duration::from_millis(100));
}

/// Sends `count` pings to `to` addressed to rank 0 from rank 1 under the key rank 1 would hold
/// in another mesh of 3, one per ms; returns how many answers came back.
fn forge_pings(to: std::net::SocketAddr, count: usize) -> usize {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mac = PhaseMac::from_keys(PHASE_ID, 1, 3, &keys(3)[1]).unwrap();
    let mut buf = [0u8; 64];
    let mut answers = 0;
    for seq in 0..count as u64 {
        let h = Header {
            kind: Kind::Ping,
            src: 1,
            dst: 0,
            phase_id: PHASE_ID,
            seq,
        };
        assert!(packet::write_header(&mut buf, &h) && packet::seal(&mac, 0, &mut buf));
        sock.send_to(&buf, to).unwrap();
        let mut rb = [0u8; 2048];
        if sock.recv_from(&mut rb).is_ok() {
            answers += 1;
        }
    }
    answers
}

#[test]
fn a_member_with_the_wrong_key_and_a_forger_get_no_answers() {
    let dps = planes(3);
    let addrs: Vec<_> = dps.iter().map(|d| d.local_addr().unwrap()).collect();
    let good = phases(&addrs);
    let bad = phases(&addrs);
    let w = window(Duration::from_millis(900));
    let stop = AtomicBool::new(false);
    let members = [
        (&dps[0], 0, &good[0]),
        (&dps[1], 1, &good[1]),
        (&dps[2], 2, &bad[2]),
    ];
    let (reports, forged_answers) = std::thread::scope(|s| {
        let forger = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            forge_pings(addrs[0], 200)
        });
        let reports = run_members(&members, &w, &stop);
        (reports, forger.join().unwrap())
    });
    assert_eq!(forged_answers, 0, "forged pings are never answered");
    check_clean(&reports, &[0, 1]);
    for (src, dst) in [(0, 2), (1, 2), (2, 0), (2, 1)] {
        let p = find(&reports, src, dst);
        assert!(p.sent > 0 && p.lost == p.sent, "{src}→{dst}: {p:?}");
        assert_eq!(decode_histogram(&p.rtt_ns_hist).unwrap().len(), 0);
        assert_eq!(
            faults_naming(&reports[src].0, dst),
            1,
            "{:?}",
            reports[src].0.faults
        );
    }
    assert!(reports[0].0.faults.iter().all(|f| f.peer == Some(node(2))));
}

#[test]
fn a_dead_peer_is_named_and_the_mesh_still_ends_on_time() {
    let dps = planes(2);
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let addrs = [
        dps[0].local_addr().unwrap(),
        dps[1].local_addr().unwrap(),
        dead,
    ];
    let phases = phases(&addrs);
    let w = window(Duration::from_millis(600));
    let stop = AtomicBool::new(false);
    let members = [(&dps[0], 0, &phases[0]), (&dps[1], 1, &phases[1])];
    let reports = run_members(&members, &w, &stop);
    check_clean(&reports, &[0, 1]);
    for (src, (r, returned)) in reports.iter().enumerate() {
        assert!(*returned < w.end + Duration::from_millis(100));
        assert_eq!(r.latency.len(), 2);
        let p = find(&reports, src, 2);
        assert_eq!(p.lost, p.sent, "{p:?}");
        assert!(faults_naming(r, 2) >= 1, "{:?}", r.faults);
    }
}

#[test]
fn stop_ends_the_mesh_early() {
    let dps = planes(2);
    let addrs: Vec<_> = dps.iter().map(|d| d.local_addr().unwrap()).collect();
    let phases = phases(&addrs);
    let w = window(Duration::from_secs(3));
    let stop = AtomicBool::new(false);
    let members = [(&dps[0], 0, &phases[0]), (&dps[1], 1, &phases[1])];
    let stop_at = w.start + Duration::from_millis(100);
    let reports = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(stop_at.saturating_duration_since(Instant::now()));
            stop.store(true, Ordering::Relaxed);
        });
        run_members(&members, &w, &stop)
    });
    for (_, returned) in &reports {
        assert!(*returned < stop_at + Duration::from_millis(100));
    }
    // The first initiator was pinging when stopped: its pair is reported, the ping in flight not
    // counted lost. The other's half-slot had not begun: nothing reported, no fault.
    let (first, second) = schedule(2)[0][0];
    let p = find(&reports, first, second);
    assert!(p.sent > 0 && p.lost == 0, "{p:?}");
    assert_eq!(decode_histogram(&p.rtt_ns_hist).unwrap().len(), p.sent);
    let later = &reports[second].0;
    assert!(
        later.latency.is_empty() && later.faults.is_empty(),
        "{later:?}"
    );
}

#[test]
fn garbage_is_not_a_histogram() {
    assert!(matches!(
        decode_histogram(b"not a histogram"),
        Err(LatencyError::Decode { .. })
    ));
    assert!(matches!(
        decode_histogram(&vec![0u8; MAX_ENCODED_HISTOGRAM + 1]),
        Err(LatencyError::TooLarge { .. })
    ));
}

/// A stand-in for rank 1 of a mesh of 2 that answers rank 0's pings out of order: it holds the
/// first ping, answers the second (sent once the first timed out) first, then the first, then the
/// second again (a duplicate), and every later ping at once. Returns what it saw: (first ping's
/// seq, second ping's seq, pings answered). Bounded by `until`.
fn reordering_peer(sock: &UdpSocket, mac: &PhaseMac, until: Instant) -> (u64, u64, u64) {
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut held: Option<(Vec<u8>, u64)> = None;
    let mut swapped = None;
    let mut answered = 0;
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        let Ok((len, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let pkt = &mut buf[..len];
        let h = packet::parse_header(pkt).unwrap();
        assert_eq!(h.kind, Kind::Ping);
        assert!(packet::verify(mac, 0, pkt));
        assert!(packet::ping_to_pong(mac, pkt, &h));
        match (&held, swapped) {
            (None, None) => held = Some((pkt.to_vec(), h.seq)),
            (Some((first, first_seq)), None) => {
                // The later ping's pong, then the earlier's, then the later's again.
                sock.send_to(pkt, from).unwrap();
                sock.send_to(first, from).unwrap();
                sock.send_to(pkt, from).unwrap();
                swapped = Some((*first_seq, h.seq));
                answered += 2;
            }
            _ => {
                sock.send_to(pkt, from).unwrap();
                answered += 1;
            }
        }
    }
    let (a, b) = swapped.expect("the mesh sent a second ping");
    (a, b, answered)
}

#[test]
fn a_reordered_late_pong_is_received_with_its_own_round_trip_and_a_duplicate_is_not_counted() {
    let dps = planes(1);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addrs = [dps[0].local_addr().unwrap(), peer.local_addr().unwrap()];
    let phases = phases(&addrs);
    let w = window(Duration::from_millis(800));
    let stop = AtomicBool::new(false);
    let peer_mac = PhaseMac::new(&phases[1], 1, PHASE_ID).unwrap();
    let (report, (first, second, answered)) = std::thread::scope(|s| {
        let fake = s.spawn(|| reordering_peer(&peer, &peer_mac, w.end + Duration::from_millis(50)));
        let mac = PhaseMac::new(&phases[0], 0, PHASE_ID).unwrap();
        let r = run(
            &dps[0],
            0,
            &phases[0],
            &LatencyParams::default(),
            &mac,
            &w,
            &stop,
        );
        (r, fake.join().unwrap())
    });
    assert!(second > first, "{first} then {second}");
    assert!(report.faults.is_empty(), "{:?}", report.faults);
    let p = find(&[(report, Instant::now())], 0, 1).clone();
    let counts = format!("sent {}, lost {}", p.sent, p.lost);
    // Every ping was answered within the half-slot: none is lost, the late one included.
    assert_eq!(p.sent, answered, "{counts}");
    assert_eq!(p.lost, 0, "{counts}");
    let h = decode_histogram(&p.rtt_ns_hist).unwrap();
    assert_eq!(
        h.len(),
        p.sent,
        "one round trip per ping, the duplicate not counted"
    );
    // The held ping's round trip is its own (sent before the timeout of 50 ms, answered after
    // the next ping): at least the timeout, not the next ping's short one.
    let timeout = u64::try_from(mesh::PONG_TIMEOUT.as_nanos()).unwrap();
    assert!(h.max() >= timeout, "max {} ns", h.max());
    assert!(h.count_between(timeout, u64::MAX) >= 1);
}
