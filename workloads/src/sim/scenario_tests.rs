//! Whole-plan tests: the demo plan's level profile run against nodes of the built-in demo hall.

use super::conditions::{RunConditions, SUPPLY_DRIFT_MAX_K, SUPPLY_OFFSET_MAX_K};
use super::hall::HallSpec;
use super::node::SimBackend;
use crate::backend::{throttle, Backend};
use hallmark_protocol::pattern::Pattern;
use hallmark_protocol::NodeId;

const S: i64 = 1_000_000_000;

/// (pattern, seconds): ramp 0→1, full load, square wave 0.2/1.0 with a 1 s period.
fn plan(ramp: i64, steady: i64, square: i64) -> Vec<(Pattern, i64)> {
    vec![
        (Pattern::Ramp { from: 0.0, to: 1.0 }, ramp),
        (Pattern::Steady { level: 1.0 }, steady),
        (
            Pattern::Square {
                low: 0.2,
                high: 1.0,
                period_ms: 1000,
                duty: 0.5,
            },
            square,
        ),
    ]
}

/// What a node did over a plan.
#[derive(Debug, Default)]
struct Trace {
    first_thermal_s: Option<f64>,
    max_temp_c: f64,
    max_supply_c: f64,
    /// Lowest power of a thermally throttled device at full load.
    min_throttled_power_w: Option<f64>,
    shut_down: bool,
}

/// Runs `phases` on every backend in lockstep, sampling at 10 Hz; returns one trace per backend.
fn run(backends: &mut [SimBackend], phases: &[(Pattern, i64)], verbose: bool) -> Vec<Trace> {
    let mut traces: Vec<Trace> = backends.iter().map(|_| Trace::default()).collect();
    let step = S / 10;
    let mut t0 = 0;
    for (pattern, seconds) in phases {
        let duration = seconds * S;
        let mut elapsed = 0;
        while elapsed < duration {
            let level = pattern.level_at(elapsed, duration);
            let now = t0 + elapsed;
            for (b, tr) in backends.iter_mut().zip(traces.iter_mut()) {
                for d in 0..b.inventory().len() as u16 {
                    b.set_level(d, level).unwrap();
                }
                let r = b.sample(now).unwrap();
                tr.max_supply_c = tr.max_supply_c.max(b.supply_c());
                for d in &r.devices {
                    let temp = d.gpu_temp_c.unwrap_or(0.0);
                    tr.max_temp_c = tr.max_temp_c.max(temp);
                    tr.shut_down |= d.shut_down;
                    if d.throttle_reasons & throttle::THERMAL != 0 {
                        tr.first_thermal_s.get_or_insert(now as f64 / 1e9);
                        if level == 1.0 {
                            let p = d.power_w.unwrap_or(0.0);
                            let min = tr.min_throttled_power_w.get_or_insert(p);
                            *min = min.min(p);
                        }
                    }
                }
                if verbose && elapsed % S == 0 {
                    let hottest = r
                        .devices
                        .iter()
                        .max_by(|a, b| a.gpu_temp_c.partial_cmp(&b.gpu_temp_c).unwrap())
                        .unwrap();
                    println!(
                        "{:>5.1}s {} lvl {level:.2} rack {:6.1} kW supply {:5.1} °C hottest {:5.1} °C {:6.0} W {:4} MHz {}",
                        now as f64 / 1e9,
                        b.node_id(),
                        b.rack_heat_w() / 1e3,
                        b.supply_c(),
                        hottest.gpu_temp_c.unwrap(),
                        hottest.power_w.unwrap(),
                        hottest.sm_clock_mhz.unwrap(),
                        throttle::describe(hottest.throttle_reasons)
                    );
                }
            }
            elapsed += step;
        }
        t0 += duration;
    }
    traces
}

fn demo_pair() -> Vec<SimBackend> {
    let hall = HallSpec::demo();
    ["row1-rack01-n01", "row2-rack03-n01"]
        .iter()
        .map(|id| hall.backend_scaled(&NodeId::new(*id).unwrap()).unwrap())
        .collect()
}

#[test]
fn demo_plan_throttles_the_undersized_rack_only() {
    let mut nodes = demo_pair();
    let traces = run(&mut nodes, &plan(15, 30, 15), false);
    let (healthy, faulty) = (&traces[0], &traces[1]);
    assert_eq!(healthy.first_thermal_s, None, "{healthy:?}");
    assert!(healthy.max_temp_c < 85.0, "{healthy:?}");
    assert_eq!(healthy.max_supply_c, 30.0);
    let at = faulty
        .first_thermal_s
        .expect("the undersized rack throttles");
    assert!(
        at > 15.0 && at < 45.0,
        "throttled at {at} s, outside the full-load phase"
    );
    assert!(faulty.max_supply_c > 45.0, "{faulty:?}");
    // Clocks, and so power, drop while throttled; the controller holds it below shutdown.
    assert!(
        faulty.min_throttled_power_w.is_some_and(|p| p < 900.0),
        "{faulty:?}"
    );
    // ... and below the probe's interlock (shutdown − 3 K = 92 °C).
    assert!(faulty.max_temp_c < 91.0, "{faulty:?}");
    assert!(!faulty.shut_down && !healthy.shut_down);
}

#[test]
fn quick_plan_shows_the_undersized_rack_hotter() {
    let mut nodes = demo_pair();
    let traces = run(&mut nodes, &plan(3, 8, 4), false);
    let (healthy, faulty) = (&traces[0], &traces[1]);
    assert_eq!(healthy.first_thermal_s, None);
    assert!(faulty.max_temp_c > healthy.max_temp_c + 7.0, "{traces:?}");
}

#[test]
fn shared_rack_loop_behaves_like_the_scaled_one() {
    let hall = HallSpec::demo();
    let loops = hall.coolant_loops();
    let mut rack: Vec<SimBackend> = (1..=10)
        .map(|n| {
            let id = NodeId::new(HallSpec::node_name(2, 3, n)).unwrap();
            hall.backend_shared(&id, &loops).unwrap()
        })
        .collect();
    let mut alone = vec![hall
        .backend_scaled(&NodeId::new("row2-rack03-n01").unwrap())
        .unwrap()];
    let shared = run(&mut rack, &plan(15, 30, 15), false);
    let scaled = run(&mut alone, &plan(15, 30, 15), false);
    assert!(
        (shared[0].max_supply_c - scaled[0].max_supply_c).abs() < 1.0,
        "{} vs {}",
        shared[0].max_supply_c,
        scaled[0].max_supply_c
    );
    assert!(shared.iter().all(|t| t.first_thermal_s.is_some()));
}

/// The traces of the demo hall's healthy nodes and of its undersized rack's.
struct HallTraces {
    healthy: Vec<Trace>,
    faulty: Vec<Trace>,
}

/// Runs phases `p` on the whole demo hall (80 nodes on shared rack loops) under `run`.
fn whole_demo_hall(run_conditions: RunConditions, p: &[(Pattern, i64)]) -> HallTraces {
    let hall = HallSpec::demo();
    let (_, all) = hall.backends_for_run(run_conditions).unwrap();
    let (nodes, mut backends): (Vec<_>, Vec<SimBackend>) = all.into_iter().unzip();
    let traces = run(&mut backends, p, false);
    let (faulty, healthy): (Vec<_>, Vec<_>) = nodes
        .iter()
        .zip(traces)
        .partition(|(n, _)| n.labels.rack == "row2-rack03");
    HallTraces {
        healthy: healthy.into_iter().map(|(_, t)| t).collect(),
        faulty: faulty.into_iter().map(|(_, t)| t).collect(),
    }
}

/// The hottest temperature any of `traces` read.
fn max(traces: &[Trace]) -> f64 {
    traces.iter().map(|t| t.max_temp_c).fold(0.0, f64::max)
}

/// Whatever the run seed, the demo hall's fault makes the same regression appear: the undersized
/// rack throttles within the full plan's steady phase and only it does; the healthy racks' supply
/// stays within the stated bound of the setpoint. The figures differ a little between seeds.
#[test]
fn every_run_seed_shows_the_undersized_rack_and_only_it() {
    let bound = SUPPLY_OFFSET_MAX_K + SUPPLY_DRIFT_MAX_K;
    let mut hottest = Vec::new();
    for seed in [0, 1, 2] {
        let traces = whole_demo_hall(RunConditions::Seeded(seed), &plan(15, 30, 15));
        let (healthy, faulty) = (&traces.healthy, &traces.faulty);
        assert!(
            healthy.iter().all(|t| t.first_thermal_s.is_none()),
            "seed {seed}: a healthy rack throttled"
        );
        assert!(max(healthy) < 85.0, "seed {seed}: {}", max(healthy));
        for t in healthy {
            assert!((t.max_supply_c - 30.0).abs() <= bound, "seed {seed}: {t:?}");
        }
        let starts: Vec<f64> = faulty.iter().filter_map(|t| t.first_thermal_s).collect();
        assert_eq!(starts.len(), 10, "seed {seed}: {starts:?}");
        assert!(
            starts.iter().all(|s| (15.0..45.0).contains(s)),
            "{starts:?}"
        );
        assert!(faulty.iter().all(|t| !t.shut_down && t.max_temp_c < 91.0));
        println!(
            "run seed {seed}: healthy max {:.1} °C, faulty rack max {:.1} °C, supply max {:.1} °C, \
             first throttle {:.1}–{:.1} s",
            max(healthy),
            max(faulty),
            faulty[0].max_supply_c,
            starts.iter().copied().fold(f64::MAX, f64::min),
            starts.iter().copied().fold(f64::MIN, f64::max)
        );
        hottest.push(max(healthy));
    }
    // A little, not a lot: the healthy racks' hottest reading moves by well under 2 K.
    assert!(
        hottest[0] != hottest[1] && hottest[1] != hottest[2],
        "{hottest:?}"
    );
    let spread = hottest.iter().copied().fold(f64::MIN, f64::max)
        - hottest.iter().copied().fold(f64::MAX, f64::min);
    assert!(spread < 2.0, "{hottest:?}");
}

/// The whole demo hall (80 nodes on shared rack loops) under the demo plan and its quick form: the
/// undersized rack throttles within the full plan's steady phase and only it does, and it is clearly
/// hotter in the quick plan. `-- --nocapture` prints the timeline the constants were tuned by.
#[test]
fn the_whole_demo_hall_under_the_demo_plans() {
    for (name, p) in [("full", plan(15, 30, 15)), ("quick", plan(3, 8, 4))] {
        let traces = whole_demo_hall(RunConditions::Nominal, &p);
        let (healthy, faulty) = (&traces.healthy, &traces.faulty);
        let starts: Vec<f64> = faulty.iter().filter_map(|t| t.first_thermal_s).collect();
        println!(
            "{name} plan: healthy max {:.1} °C, faulty rack max {:.1} °C, supply max {:.1} °C, \
             throttled nodes {}/{} from {:?} s",
            max(healthy),
            max(faulty),
            faulty[0].max_supply_c,
            starts.len(),
            faulty.len(),
            starts.iter().copied().reduce(f64::min)
        );
        assert_eq!(faulty.len(), 10);
        assert_eq!(healthy.len(), 70);
        assert!(
            healthy.iter().all(|t| t.first_thermal_s.is_none()),
            "{name}: a healthy rack throttled"
        );
        assert!(
            max(healthy) < 85.0,
            "{name}: healthy GPUs stay below max-operating"
        );
        assert!(faulty.iter().all(|t| !t.shut_down));
        if name == "full" {
            assert_eq!(
                starts.len(),
                10,
                "every node of the undersized rack throttles"
            );
            // Within the steady phase (15–45 s).
            assert!(
                starts.iter().all(|s| (15.0..45.0).contains(s)),
                "{starts:?}"
            );
        } else {
            assert!(
                max(faulty) > max(healthy) + 5.0,
                "the undersized rack stands out"
            );
        }
    }
}

/// The demo hall at full load as its CDUs see it: a healthy rack's CDU passes all the heat its
/// loop takes to the facility water; the undersized rack's passes on much less while its loop
/// warms (the difference heats the loop), which the facility's cross-checks can see.
#[test]
fn the_undersized_racks_cdu_passes_on_less_heat_while_its_loop_warms() {
    let hall = HallSpec::demo();
    let loops = hall.coolant_loops();
    let mut nodes: Vec<SimBackend> = [(1, 1), (2, 3)]
        .iter()
        .flat_map(|&(row, rack)| (1..=10).map(move |n| HallSpec::node_name(row, rack, n)))
        .map(|id| {
            hall.backend_shared(&NodeId::new(id).unwrap(), &loops)
                .unwrap()
        })
        .collect();
    let mut largest_gap_kw: f64 = 0.0;
    for step in 0..=300 {
        for b in &mut nodes {
            for d in 0..8 {
                b.set_level(d, 1.0).unwrap();
            }
            b.sample(step * S / 10).unwrap();
        }
        let healthy = super::coolant::shared_figures(&loops["row1-rack01"]);
        assert!(
            (healthy.primary_heat_kw - healthy.captured_kw).abs() < 1e-9,
            "{healthy:?}"
        );
        let faulty = super::coolant::shared_figures(&loops["row2-rack03"]);
        largest_gap_kw = largest_gap_kw.max(faulty.captured_kw - faulty.primary_heat_kw);
    }
    // At first 0.9 · (≈100 − 75) kW goes into warming the loop.
    assert!(largest_gap_kw > 15.0, "{largest_gap_kw}");
}
