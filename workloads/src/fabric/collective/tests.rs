//! Tests of the collectives: members on loopback threads, each with its own data plane, running
//! whole sweeps; strangers on the listener; a member that never shows up; one that stops
//! answering; a corrupted contribution.

use super::mesh::{hello, HELLO_LEN};
use super::sweep::{CORRUPT, VANISH};
use super::*;
use crate::fabric::auth::{random_mesh_keys, random_mesh_orders, PhaseMac, TAG_LEN};
use hallmark_protocol::{CollectiveAlgorithm, CollectiveOp, FabricMember, FabricParams, NodeId};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicU32;

/// Every test gets its own phase ids, so the test hooks never reach another test's members.
static NEXT_PHASE: AtomicU32 = AtomicU32::new(7000);

struct Cluster {
    dps: Vec<DataPlane>,
    /// Each member's phase (its own keys) and MACs, by rank.
    phases: Vec<FabricPhase>,
    params: CollectiveParams,
    window: PhaseWindow,
    macs: Vec<PhaseMac>,
}

fn cluster(n: usize, params: CollectiveParams, window: Duration) -> Cluster {
    let dps: Vec<DataPlane> = (0..n)
        .map(|_| DataPlane::bind("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    let members: Vec<FabricMember> = dps
        .iter()
        .enumerate()
        .map(|(r, dp)| FabricMember {
            node_id: NodeId::new(format!("node-{r}")).unwrap(),
            addr: dp.local_addr().unwrap(),
        })
        .collect();
    let phase_id = NEXT_PHASE.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now() + Duration::from_millis(20);
    let phases = random_mesh_orders(&members, &FabricParams::Collective(params.clone())).unwrap();
    Cluster {
        macs: (0..n)
            .map(|r| PhaseMac::new(&phases[r], r, phase_id).unwrap())
            .collect(),
        phases,
        params,
        dps,
        window: PhaseWindow {
            phase_id,
            start,
            end: start + window,
        },
    }
}

impl Cluster {
    /// Runs every rank not in `absent` on its own thread; their reports and return instants.
    fn run(&self, absent: &[usize]) -> Vec<Option<(FabricReport, Instant)>> {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.dps.len())
                .map(|r| {
                    (!absent.contains(&r)).then(|| {
                        let stop = &stop;
                        s.spawn(move || {
                            let rep = run(
                                &self.dps[r],
                                r,
                                &self.phases[r],
                                &self.params,
                                &self.macs[r],
                                &self.window,
                                stop,
                            );
                            (rep, Instant::now())
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.map(|h| h.join().unwrap()))
                .collect()
        })
    }
}

fn params(ops: &[CollectiveOp], min: u64, max: u64, algo: CollectiveAlgorithm) -> CollectiveParams {
    CollectiveParams {
        ops: ops.to_vec(),
        min_bytes: min,
        max_bytes: max,
        algorithm: algo,
        transport: hallmark_protocol::CollectiveTransport::DataPlane,
        iterations: None,
    }
}

/// Every rank measured every (op, size), with at least one iteration and a clean check.
fn assert_all_clean(reports: &[Option<(FabricReport, Instant)>], p: &CollectiveParams) {
    let sizes = sizes(p.min_bytes, p.max_bytes);
    for (r, rep) in reports.iter().enumerate() {
        let (rep, _) = rep.as_ref().unwrap();
        assert!(rep.faults.is_empty(), "rank {r}: {:?}", rep.faults);
        assert_eq!(rep.collectives.len(), p.ops.len() * sizes.len(), "rank {r}");
        let mut it = rep.collectives.iter();
        for &op in &p.ops {
            for &size in &sizes {
                let c = it.next().unwrap();
                assert_eq!((c.op, c.size_bytes), (op, size), "rank {r}");
                assert_eq!(c.algorithm, p.algorithm.resolve(size));
                assert!(c.iterations >= 1 && c.iterations <= MAX_ITERS);
                assert!(c.mean_ns > 0);
                assert_eq!(c.wrong_elements, 0, "rank {r}: {c:?}");
            }
        }
    }
}

#[test]
fn four_ranks_run_every_operation_with_both_algorithms_from_8_b_to_1_mib() {
    for algo in [
        CollectiveAlgorithm::Ring,
        CollectiveAlgorithm::LatencyOptimal,
    ] {
        let p = params(&CollectiveOp::ALL, 8, 1 << 20, algo);
        let c = cluster(4, p.clone(), Duration::from_secs(60));
        let reports = c.run(&[]);
        assert_all_clean(&reports, &p);
    }
}

#[test]
fn three_ranks_handle_counts_not_divisible_by_three() {
    // Counts 3, 6, 12, ..., 3·2^k with a 12-byte start; 2, 4, 8, ... with an 8-byte one: both
    // divisible and not, and segments of zero elements at 8 B.
    for (min, max) in [(8, 64 << 10), (12, 96 << 10), (20, 40)] {
        for algo in [
            CollectiveAlgorithm::Ring,
            CollectiveAlgorithm::LatencyOptimal,
        ] {
            let p = params(&CollectiveOp::ALL, min, max, algo);
            let c = cluster(3, p.clone(), Duration::from_secs(60));
            assert_all_clean(&c.run(&[]), &p);
        }
    }
}

#[test]
fn five_and_two_ranks_and_auto_work_too() {
    for n in [2, 5] {
        let p = params(&CollectiveOp::ALL, 8, 128 << 10, CollectiveAlgorithm::Auto);
        let c = cluster(n, p.clone(), Duration::from_secs(60));
        assert_all_clean(&c.run(&[]), &p);
    }
}

#[test]
fn a_single_member_runs_locally() {
    let p = params(&CollectiveOp::ALL, 8, 64 << 10, CollectiveAlgorithm::Auto);
    let c = cluster(1, p.clone(), Duration::from_secs(30));
    assert_all_clean(&c.run(&[]), &p);
}

/// Connects to `addr`, sends `hello` (and, once the 32-byte challenge is in, `client_tag`), and
/// returns every byte the acceptor sent before it closed.
fn stranger(addr: SocketAddr, hello: &[u8], client_tag: Option<[u8; TAG_LEN]>) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(hello).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let mut tag_sent = false;
    // Bounded: the acceptor closes, or the 10 s read timeout ends it.
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
        if let (Some(tag), false, true) = (client_tag, tag_sent, got.len() >= 32) {
            tag_sent = true;
            if s.write_all(&tag).is_err() {
                break;
            }
        }
    }
    got
}

#[test]
fn strangers_on_the_listener_are_refused_and_disturb_nobody() {
    let p = params(
        &[CollectiveOp::AllReduce, CollectiveOp::AllToAll],
        8,
        64 << 10,
        CollectiveAlgorithm::Auto,
    );
    let c = cluster(3, p.clone(), Duration::from_secs(60));
    let target = c.phases[2].members[2].addr;
    let phase_id = c.window.phase_id;
    std::thread::scope(|s| {
        // A hello from an earlier phase, as left in the backlog: dropped unanswered.
        let old = s.spawn(move || stranger(target, &hello(phase_id - 1, 0, 2, &[1; 16]), None));
        // The right phase and a member's rank, but another mesh's key: the acceptor answers
        // the challenge, refuses the client's tag, and closes without the accept byte.
        let other = random_mesh_keys(3).unwrap();
        let wrong = PhaseMac::from_keys(phase_id, 1, 3, &other[1]).unwrap();
        let h = hello(phase_id, 1, 2, &[2; 16]);
        let tag = wrong.tag(2, &[b"client", &h[..], &[0u8; 16][..]]).unwrap();
        let forged = s.spawn(move || stranger(target, &h, Some(tag)));
        // Silence and garbage.
        let silent = s.spawn(move || {
            let _s = TcpStream::connect(target).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        let garbage = s.spawn(move || stranger(target, &[0x55; HELLO_LEN], None));
        // All four wait in the listen backlog before the members start.
        std::thread::sleep(Duration::from_millis(100));

        let reports = c.run(&[]);
        assert_all_clean(&reports, &p);
        assert!(
            old.join().unwrap().is_empty(),
            "an old phase's hello gets no answer"
        );
        let f = forged.join().unwrap();
        assert!(
            f.len() <= 32,
            "at most the challenge, never the accept byte: {f:?}"
        );
        assert!(garbage.join().unwrap().is_empty());
        silent.join().unwrap();
    });
}

#[test]
fn a_member_that_never_shows_up_is_named_by_the_window_end() {
    let p = params(
        &[CollectiveOp::AllReduce],
        8,
        1 << 10,
        CollectiveAlgorithm::Auto,
    );
    let c = cluster(3, p, Duration::from_millis(1500));
    // Rank 1's data plane listens (connects succeed) but nothing answers there.
    let reports = c.run(&[1]);
    for r in [0, 2] {
        let (rep, at) = reports[r].as_ref().unwrap();
        assert!(
            *at <= c.window.end + Duration::from_millis(300),
            "rank {r} returned {:?} after the window's end",
            at.saturating_duration_since(c.window.end)
        );
        assert!(rep.collectives.is_empty());
        assert_eq!(rep.faults.len(), 1, "rank {r}: {:?}", rep.faults);
        assert_eq!(rep.faults[0].peer.as_ref().unwrap().as_str(), "node-1");
        assert!(
            rep.faults[0].message.contains("node-1"),
            "{}",
            rep.faults[0].message
        );
    }
}

#[test]
fn a_member_that_closes_mid_sweep_is_named_and_nobody_hangs() {
    let p = params(
        &[CollectiveOp::AllReduce],
        8,
        256 << 10,
        CollectiveAlgorithm::Ring,
    );
    let c = cluster(4, p, Duration::from_secs(60));
    VANISH
        .lock()
        .unwrap()
        .push((c.window.phase_id, 2, 64 << 10, true));
    let t = Instant::now();
    let reports = c.run(&[]);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "ended by closures, not the window"
    );
    let mut named = 0;
    for r in [0, 1, 3] {
        let (rep, _) = reports[r].as_ref().unwrap();
        assert_eq!(rep.collectives.len(), 13, "rank {r}: 8 B … 32 KiB measured");
        assert!(!rep.faults.is_empty(), "rank {r}");
        let f = &rep.faults[0];
        assert!(f.peer.is_some(), "rank {r}: {f:?}");
        if f.peer.as_ref().unwrap().as_str() == "node-2" {
            named += 1;
            assert!(f.message.contains("all-reduce of 64 KiB"), "{}", f.message);
        }
    }
    assert!(named >= 1, "{reports:?}");
}

#[test]
fn a_member_that_goes_silent_mid_sweep_is_named_by_its_successor() {
    let p = params(
        &[CollectiveOp::AllReduce],
        8,
        64 << 10,
        CollectiveAlgorithm::Ring,
    );
    let c = cluster(3, p, Duration::from_millis(3000));
    VANISH
        .lock()
        .unwrap()
        .push((c.window.phase_id, 1, 1 << 10, false));
    let reports = c.run(&[]);
    // Rank 2 receives from rank 1 in the ring: it waits on rank 1 and names it.
    let (rep, at) = reports[2].as_ref().unwrap();
    assert!(*at <= c.window.end + Duration::from_millis(300));
    assert_eq!(rep.collectives.len(), 7, "8 B … 512 B measured");
    let f = &rep.faults[0];
    assert_eq!(f.peer.as_ref().unwrap().as_str(), "node-1", "{f:?}");
    assert!(
        f.message.contains("all-reduce of 1 KiB (ring)"),
        "{}",
        f.message
    );
    let (rep0, at0) = reports[0].as_ref().unwrap();
    assert!(*at0 <= c.window.end + Duration::from_millis(300));
    assert!(!rep0.faults.is_empty());
}

#[test]
fn a_corrupted_contribution_shows_on_every_rank_that_receives_it() {
    for algo in [
        CollectiveAlgorithm::Ring,
        CollectiveAlgorithm::LatencyOptimal,
    ] {
        let p = params(&[CollectiveOp::AllReduce], 16, 128 << 10, algo);
        let c = cluster(4, p, Duration::from_secs(60));
        CORRUPT.lock().unwrap().push((c.window.phase_id, 1));
        for (r, rep) in c.run(&[]).iter().enumerate() {
            let (rep, _) = rep.as_ref().unwrap();
            assert!(rep.faults.is_empty(), "{:?}", rep.faults);
            assert_eq!(rep.collectives.len(), 14);
            for res in &rep.collectives {
                assert_eq!(res.wrong_elements, 1, "rank {r}: {res:?}");
            }
        }
    }
}

#[test]
fn a_stop_ends_the_sweep_at_the_next_size_on_every_rank() {
    let p = params(&CollectiveOp::ALL, 8, 1 << 20, CollectiveAlgorithm::Auto);
    let c = cluster(3, p, Duration::from_secs(60));
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let reports: Vec<FabricReport> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|r| {
                let (c, stop) = (&c, &stop);
                s.spawn(move || {
                    run(
                        &c.dps[r],
                        r,
                        &c.phases[r],
                        &c.params,
                        &c.macs[r],
                        &c.window,
                        stop,
                    )
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(t.elapsed() < Duration::from_secs(5));
    let n0 = reports[0].collectives.len();
    assert!(n0 < 5 * 18, "stopped before the end");
    for rep in &reports {
        assert_eq!(
            rep.collectives.len(),
            n0,
            "every rank ends at the same size"
        );
        assert_eq!(rep.faults.len(), 1);
        assert!(rep.faults[0].peer.is_none());
        assert!(
            rep.faults[0].message.contains("stopped"),
            "{}",
            rep.faults[0].message
        );
    }
}

#[test]
fn size_names_read_like_people_write_them() {
    assert_eq!(size_name(8), "8 B");
    assert_eq!(size_name(64 << 10), "64 KiB");
    assert_eq!(size_name(256 << 20), "256 MiB");
    assert_eq!(size_name(3000), "3000 B");
}
