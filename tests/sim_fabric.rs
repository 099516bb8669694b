//! Collective phases through NCCL, as far as they can be tested without GPUs: the coordinator asks
//! the phase's first member for the NCCL unique id, passes it with every member's GPU count in the
//! phase order, and each probe hands the phase to its backend's GPUs instead of its data plane;
//! where no id comes the phase falls back to the data plane and says why. Deterministic: the
//! coordinator's and probes' machines under a simulated clock and network, with a stand-in "cuda"
//! backend (simulated devices) that records what it was asked to do.

mod common;

use common::simnet::Sim;
use hallmark_coordinator::fabric::FabricSubnet;
use hallmark_coordinator::machine::{Coordinator, CoordinatorConfig, Event};
use hallmark_coordinator::run::Outcome;
use hallmark_protocol::plan::parse_plan;
use hallmark_protocol::{
    CollectiveAlgorithm, CollectiveOp, CollectiveResult, CoordinatorMessage, DataPlaneAddr,
    DeviceInfo, FabricReport, Labels, NodeId, ProbeMessage, RefusalReason,
};
use hallmark_workloads::backend::{Backend, BackendError, NcclJob, NodeReading};
use hallmark_workloads::sim::SimBackend;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const S: i64 = 1_000_000_000;

/// Simulated devices that claim to be the cuda backend and take NCCL phases.
struct FakeGpus {
    sim: SimBackend,
    /// What the coordinator's id request gets: an id, or an error.
    id: Result<Vec<u8>, String>,
    jobs: Arc<Mutex<Vec<NcclJob>>>,
}

impl Backend for FakeGpus {
    fn name(&self) -> &'static str {
        "cuda"
    }
    fn inventory(&self) -> &[DeviceInfo] {
        self.sim.inventory()
    }
    fn set_level(&mut self, device: u16, level: f64) -> Result<(), BackendError> {
        self.sim.set_level(device, level)
    }
    fn sample(&mut self, now_ns: i64) -> Result<NodeReading, BackendError> {
        self.sim.sample(now_ns)
    }
    fn stop_all(&mut self) {
        self.sim.stop_all()
    }
    fn nccl_unique_id(&mut self) -> Result<Vec<u8>, BackendError> {
        self.id.clone().map_err(BackendError::Unsupported)
    }
    fn start_nccl(&mut self, job: NcclJob) -> Result<(), BackendError> {
        self.jobs.lock().unwrap().push(job);
        Ok(())
    }
    fn finish_nccl(&mut self, _wait: Duration) -> FabricReport {
        let jobs = self.jobs.lock().unwrap();
        let Some(job) = jobs.last() else {
            return FabricReport::default();
        };
        FabricReport {
            collectives: vec![CollectiveResult {
                op: CollectiveOp::AllReduce,
                algorithm: CollectiveAlgorithm::Nccl,
                size_bytes: 1 << 20,
                iterations: 5,
                world: job.setup.world(),
                mean_ns: 100_000,
                wrong_elements: 0,
            }],
            ..FabricReport::default()
        }
    }
}

fn plan(transport: &str) -> hallmark_protocol::plan::Plan {
    let text = format!(
        "name = \"nccl\"\nsample_hz = 2\n[expect]\nnodes = 3\ntimeout_s = 10\n[[phase]]\n\
         name = \"all-reduce\"\nduration_s = 2\n\
         workload = {{ kind = \"collective\", ops = [\"all-reduce\"], max_size = \"1MiB\", transport = \"{transport}\" }}\n"
    );
    parse_plan(&text, "nccl.toml").unwrap()
}

/// Three probes n1..n3 with 2 simulated devices each: `backend(i)` gives each its backend.
fn cluster(
    seed: u64,
    transport: &str,
    mut backend: impl FnMut(usize, SimBackend) -> Box<dyn Backend>,
) -> Sim {
    let mut sim = Sim::new(seed);
    // The simulated connections have no IP: the announced data planes must lie in a fabric subnet.
    sim.coordinator = Coordinator::new(CoordinatorConfig {
        fabric_subnets: vec!["10.0.0.0/24".parse().unwrap()],
        ..CoordinatorConfig::default()
    });
    for i in 1..=3 {
        let node = NodeId::new(format!("n{i}")).unwrap();
        let b = backend(i, SimBackend::standalone(node.clone(), 2).unwrap());
        let labels = Labels {
            hall: "h".into(),
            row: "r".into(),
            rack: "k".into(),
        };
        let mut hello = hallmark_probe::hello(node.clone(), labels, b.as_ref());
        // A data plane is what makes a probe a member of fabric phases (never used for NCCL).
        hello.data_plane = Some(DataPlaneAddr {
            ip: Some([10, 0, 0, i as u8].into()),
            port: 7000,
        });
        sim.add_probe(node.as_str(), hello, b);
    }
    let now = sim.now;
    sim.coordinator
        .start_run("run-1".into(), plan(transport), now);
    sim
}

fn reports(sim: &Sim) -> Vec<(String, FabricReport)> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseReport { node_id, report } => {
                Some((node_id.to_string(), report.fabric.clone()?))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_first_members_nccl_id_reaches_every_member_with_its_ranks() {
    let jobs: Vec<Arc<Mutex<Vec<NcclJob>>>> = (0..3).map(|_| Arc::default()).collect();
    let mut sim = cluster(0x1cc1, "auto", |i, sim| {
        Box::new(FakeGpus {
            sim,
            id: Ok(vec![i as u8; 128]),
            jobs: jobs[i - 1].clone(),
        })
    });
    let start = sim.now;
    sim.run_until(start + 20 * S);
    let (outcome, reason) = sim.finished().expect("the run finished");
    assert_eq!(outcome, Outcome::Complete, "{reason}");
    for (i, j) in jobs.iter().enumerate() {
        let j = j.lock().unwrap();
        assert_eq!(j.len(), 1, "n{} ran one NCCL phase", i + 1);
        let job = &j[0];
        // n1 made the id; members in node order, 2 GPUs each: n2's ranks are 2 and 3 of 6.
        assert_eq!(job.setup.unique_id, vec![1u8; 128]);
        assert_eq!(job.setup.gpus, vec![2, 2, 2]);
        assert_eq!(job.member, i);
        assert_eq!(job.setup.ranks_of(i), Some((2 * i as u32, 2)));
        assert_eq!(job.end.duration_since(job.start), Duration::from_secs(2));
    }
    let reps = reports(&sim);
    assert_eq!(reps.len(), 3);
    for (_, r) in &reps {
        assert_eq!(r.collectives[0].world, 6, "the bus factor's n is the GPUs");
        assert_eq!(r.collectives[0].algorithm, CollectiveAlgorithm::Nccl);
    }
    assert!(!sim
        .events
        .iter()
        .any(|e| matches!(e, Event::RunNote { .. })));
}

#[test]
fn without_an_id_the_phase_falls_back_to_the_data_plane_and_says_why() {
    let jobs: Arc<Mutex<Vec<NcclJob>>> = Arc::default();
    let mut sim = cluster(0x1cc2, "auto", |i, sim| {
        Box::new(FakeGpus {
            sim,
            id: if i == 1 {
                Err("libnccl.so.2 not found".into())
            } else {
                Ok(vec![0; 128])
            },
            jobs: jobs.clone(),
        })
    });
    let start = sim.now;
    sim.run_until(start + 20 * S);
    assert!(jobs.lock().unwrap().is_empty(), "no NCCL without an id");
    let note = sim.events.iter().find_map(|e| match e {
        Event::RunNote { message } => Some(message.clone()),
        _ => None,
    });
    let note = note.expect("a note says why");
    assert!(
        note.contains("n1 could not make an NCCL unique id") && note.contains("libnccl.so.2"),
        "{note}"
    );
    assert!(note.contains("over the data plane instead"), "{note}");
    // The probes here have no data plane of their own: each says so in its report.
    for (node, r) in reports(&sim) {
        assert!(
            r.faults[0].message.contains("no data plane"),
            "{node}: {r:?}"
        );
    }
}

#[test]
fn nccl_required_with_a_member_without_gpus_leaves_the_run_incomplete() {
    let mut sim = cluster(0x1cc3, "nccl", |i, sim| {
        if i == 3 {
            Box::new(sim) // the sim backend: no GPUs for NCCL
        } else {
            Box::new(FakeGpus {
                sim,
                id: Ok(vec![0; 128]),
                jobs: Arc::default(),
            })
        }
    });
    let start = sim.now;
    sim.run_until(start + 20 * S);
    let (outcome, reason) = sim.finished().expect("the run finished");
    assert_eq!(outcome, Outcome::Incomplete);
    assert!(
        reason.contains(
            "asks for NCCL but these members have no GPUs on the cuda backend: n3 (sim, 2 devices)"
        ),
        "{reason}"
    );
    // Nobody was asked for an id.
    assert!(!sim
        .events
        .iter()
        .any(|e| matches!(e, Event::RunNote { .. })));
}

/// What the coordinator answers a Hello from `remote` announcing its data plane at `announced`,
/// with `subnets` configured: the registered data-plane address, or the refusal.
fn hello_answer(
    remote: &str,
    announced: Option<&str>,
    subnets: &[&str],
) -> Result<Option<std::net::SocketAddr>, (RefusalReason, String)> {
    let config = CoordinatorConfig {
        fabric_subnets: subnets
            .iter()
            .map(|s| s.parse::<FabricSubnet>().unwrap())
            .collect(),
        ..CoordinatorConfig::default()
    };
    let mut c = Coordinator::new(config);
    let node = NodeId::new("n1").unwrap();
    c.on_connected(7, node.clone(), remote.to_string(), 0);
    let labels = Labels {
        hall: "h".into(),
        row: "r".into(),
        rack: "k".into(),
    };
    let backend = SimBackend::standalone(node.clone(), 1).unwrap();
    let mut hello = hallmark_probe::hello(node.clone(), labels, &backend);
    hello.data_plane = Some(DataPlaneAddr {
        ip: announced.map(|a| a.parse().unwrap()),
        port: 7000,
    });
    c.on_message(7, ProbeMessage::Hello(hello), 0);
    while let Some((_, msg)) = c.poll_transmit() {
        match msg {
            CoordinatorMessage::Refused(r) => return Err((r.reason, r.message)),
            CoordinatorMessage::Welcome(_) => {
                return Ok(c.probe(&node).and_then(|p| p.data_plane));
            }
            _ => {}
        }
    }
    panic!("the coordinator neither welcomed nor refused the Hello");
}

/// A probe may not point the other members' test traffic at an address it does not own: a Hello
/// announcing a data-plane IP other than its control connection's is refused, unless the IP lies
/// in a fabric subnet the operator configured.
#[test]
fn a_hello_announcing_a_foreign_data_plane_ip_is_refused_unless_in_a_fabric_subnet() {
    let ok = hello_answer("192.0.2.7:50000", Some("192.0.2.7"), &[]).unwrap();
    assert_eq!(ok, Some("192.0.2.7:7000".parse().unwrap()), "its own IP");
    let implied = hello_answer("192.0.2.7:50000", None, &[]).unwrap();
    assert_eq!(
        implied,
        Some("192.0.2.7:7000".parse().unwrap()),
        "no IP given"
    );
    let (reason, message) = hello_answer("192.0.2.7:50000", Some("198.51.100.9"), &[]).unwrap_err();
    assert_eq!(
        reason,
        RefusalReason::DataPlaneAddress {
            announced: "198.51.100.9".into(),
            control: "192.0.2.7:50000".into(),
        }
    );
    assert!(message.contains("--fabric-subnet"), "{message}");
    let (_, message) =
        hello_answer("192.0.2.7:50000", Some("198.51.100.9"), &["10.0.0.0/8"]).unwrap_err();
    assert!(message.contains("10.0.0.0/8"), "{message}");
    let inside = hello_answer("192.0.2.7:50000", Some("10.1.2.3"), &["10.0.0.0/8"]).unwrap();
    assert_eq!(
        inside,
        Some("10.1.2.3:7000".parse().unwrap()),
        "inside the subnet"
    );
    let v6 = hello_answer("[fd00::7]:50000", Some("fd00:1::7"), &["fd00:1::/64"]).unwrap();
    assert_eq!(v6, Some("[fd00:1::7]:7000".parse().unwrap()));
}
