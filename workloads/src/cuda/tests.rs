//! Tests of the cuda backend's pure parts (no GPU needed): dtypes, buffer sizing, the duty-cycle
//! slicer, the power controller against a simulated plant, the compare kernel's source and
//! geometry, result accounting, and the clear error where the CUDA libraries are missing.

use super::control::{PowerController, CONTROL_PERIOD};
use super::duty::{Slicer, BATCH, SLICE};
use super::libs::{self, Library};
use super::sizing::{check_order, gemm_flop, plan_buffers, shrink_order, MAX_C_BUFFERS};
use super::worker::{random_inputs, DeviceShared, WorkerState};
use super::*;
use std::time::Duration;

const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;

#[test]
fn dtypes_parse_and_describe_themselves() {
    for d in Dtype::ALL {
        assert_eq!(d.name().parse::<Dtype>(), Ok(d));
        assert_eq!(d.to_string(), d.name());
    }
    assert_eq!("BF16".parse::<Dtype>(), Ok(Dtype::Bf16));
    assert_eq!("half".parse::<Dtype>(), Ok(Dtype::Fp16));
    assert_eq!("f32".parse::<Dtype>(), Ok(Dtype::Fp32));
    let e = "fp8".parse::<Dtype>().unwrap_err().to_string();
    assert!(
        e.contains("fp8") && e.contains("bf16, fp16, fp32 or tf32"),
        "{e}"
    );
    assert_eq!(Dtype::default(), Dtype::Bf16);
    assert_eq!(Dtype::Bf16.element_bytes(), 2);
    assert_eq!(Dtype::Tf32.element_bytes(), 4);
    assert_eq!(Dtype::Bf16.default_matrix_order(), 8192);
    assert_eq!(Dtype::Fp32.default_matrix_order(), 4096);
    assert_eq!(Dtype::Tf32.compare_kernel(), kernels::COMPARE_F32);
    assert_eq!(Dtype::Fp16.compare_kernel(), kernels::COMPARE_F16);
    for d in Dtype::ALL {
        // Every default order passes the order check (multiple of 256) and fits the kernel's
        // 16-byte loads exactly.
        let n = d.default_matrix_order();
        assert_eq!(check_order(n), Ok(n));
        assert_eq!((n * n * d.element_bytes()) % 16, 0);
        assert_eq!(d.max_ulps(), 0, "{d}: the burn compares bits exactly");
    }
}

#[test]
fn buffers_fill_most_of_the_free_memory_and_leave_headroom() {
    // An H200: 141 GiB, 139 free after the context, bf16 8192² = 128 MiB per matrix.
    let total = 141 * GIB;
    let free = 139 * GIB;
    let matrix = 8192 * 8192 * 2;
    let p = plan_buffers(free, total, matrix, MAX_C_BUFFERS).unwrap();
    assert_eq!(p.copy_bytes, GIB);
    let headroom = (total as f64 * 0.10) as usize;
    assert!(p.bytes(matrix) <= free - headroom, "{p:?}");
    // Most of the rest is used: less than one matrix (plus the rounding of the copy buffers) is
    // left over.
    assert!(
        free - headroom - p.bytes(matrix) < matrix + 2 * MIB,
        "{p:?}"
    );
    assert!(p.extra_c > 900 && p.extra_c < MAX_C_BUFFERS, "{p:?}");

    // The cap holds the buffers at MAX_C_BUFFERS including the reference.
    let p = plan_buffers(free, total, 16 * MIB, MAX_C_BUFFERS).unwrap();
    assert_eq!(p.extra_c, MAX_C_BUFFERS - 1);
    let p = plan_buffers(free, total, 16 * MIB, 2).unwrap();
    assert_eq!(p.extra_c, 1);

    // A small GPU: the copy buffers shrink to a sixteenth of the budget each.
    let p = plan_buffers(6 * GIB, 16 * GIB, 64 * MIB, MAX_C_BUFFERS).unwrap();
    let budget = 6 * GIB - (16.0 * GIB as f64 * 0.10).ceil() as usize;
    assert!(
        p.copy_bytes <= budget / 16 && p.copy_bytes >= 2 * MIB,
        "{p:?}"
    );
    assert!(p.bytes(64 * MIB) <= budget);

    // Too little memory: a clear error with the numbers.
    let e = plan_buffers(GIB, 16 * GIB, 128 * MIB, MAX_C_BUFFERS).unwrap_err();
    assert!(
        e.contains("1.0 GiB free of 16.0 GiB") && e.contains("headroom"),
        "{e}"
    );
    // Room for a matrix but not the copy buffers: no copy buffers, the burn still runs.
    let headroom = (16.0 * GIB as f64 * 0.10).ceil() as usize;
    let p = plan_buffers(headroom + 130 * MIB, 16 * GIB, 128 * MIB, MAX_C_BUFFERS).unwrap();
    assert_eq!(p.copy_bytes, 0);
    assert_eq!(p.extra_c, 1);
    assert!(plan_buffers(GIB, GIB, 0, 4).is_err());
}

#[test]
fn gemms_are_sized_to_stay_well_under_a_slice() {
    assert_eq!(SLICE, Duration::from_millis(5));
    // ~1.5 ms for 8192² bf16 on an H200: kept.
    assert_eq!(shrink_order(8192, Duration::from_micros(1500), SLICE), None);
    // 4 ms of a 5 ms slice is too much: halved.
    assert_eq!(
        shrink_order(8192, Duration::from_millis(4), SLICE),
        Some(4096)
    );
    assert_eq!(shrink_order(1024, Duration::from_millis(40), SLICE), None);
    assert_eq!(gemm_flop(8192), 2 * 8192u64.pow(3));
    assert!(check_order(8192).is_ok());
    assert!(check_order(1000).unwrap_err().contains("multiple of 256"));
    assert!(check_order(0).is_err());
    assert!(check_order(65536).is_err());
}

#[test]
fn the_checks_visit_every_buffer() {
    use super::burn::CHECK_EVERY;
    use super::sizing::usable_extra;
    for extra in 1..200usize {
        let kept = usable_extra(extra);
        assert!(kept <= extra && kept >= extra.saturating_sub(1) && kept >= 1);
        // The round-robin of the worker: GEMM g writes buffer 1 + (g − 1) mod kept; every
        // CHECK_EVERY-th is checked.
        let mut seen = vec![false; kept + 1];
        for g in 1..=(CHECK_EVERY as usize * kept) {
            if g.is_multiple_of(CHECK_EVERY as usize) {
                seen[1 + (g - 1) % kept] = true;
            }
        }
        assert!(seen[1..].iter().all(|&s| s), "{extra} → {kept}");
    }
}

/// Runs the slicer like a worker does for `slices` slices at `level`, each unit taking `unit` on
/// the GPU, and returns the busy share of the time.
fn busy_share(level: f64, unit: Duration, slices: usize) -> f64 {
    let mut s = Slicer::new(Duration::from_millis(1));
    let (mut busy_total, mut time) = (0.0, 0.0);
    for i in 0..slices {
        let plan = s.plan(level);
        // A little launch overhead and jitter, deterministic.
        let jitter = 1.0 + 0.05 * ((i % 7) as f64 - 3.0) / 3.0;
        let busy = unit.as_secs_f64() * f64::from(plan.units) * jitter
            + if plan.units > 0 { 20e-6 } else { 0.0 };
        s.done(level, plan, Duration::from_secs_f64(busy));
        busy_total += busy;
        time += busy.max(SLICE.as_secs_f64());
    }
    busy_total / time
}

#[test]
fn the_duty_cycle_keeps_the_level_over_many_slices() {
    for unit_us in [300u64, 1500, 4000, 7000] {
        for level in [0.1, 0.25, 0.5, 0.75, 0.9] {
            let share = busy_share(level, Duration::from_micros(unit_us), 4000);
            assert!(
                (share - level).abs() < 0.03,
                "unit {unit_us} µs, level {level}: busy share {share}"
            );
        }
    }
    // Level 0 (or nonsense) plans nothing.
    let s = Slicer::new(Duration::from_millis(1));
    assert_eq!(s.plan(0.0).units, 0);
    assert_eq!(s.plan(f64::NAN).units, 0);
    assert_eq!(s.plan(-1.0).units, 0);
    // Full level plans a whole slice.
    let p = s.plan(1.0);
    assert_eq!(p.units, 5);
    assert!((p.target_s - SLICE.as_secs_f64()).abs() < 1e-12);
}

#[test]
fn the_slicer_learns_the_unit_time_and_sizes_full_load_batches() {
    let mut s = Slicer::new(Duration::from_millis(1));
    for _ in 0..40 {
        s.observe(2, Duration::from_micros(3000));
    }
    assert!(
        (s.unit().as_secs_f64() - 1.5e-3).abs() < 1e-5,
        "{:?}",
        s.unit()
    );
    assert_eq!(
        s.batch_units(),
        (BATCH.as_secs_f64() / 1.5e-3).round() as u32
    );
    // Nonsense measurements change nothing.
    let before = s.clone();
    s.observe(0, Duration::from_secs(1));
    s.observe(3, Duration::ZERO);
    assert_eq!(s, before);
    // A unit far longer than a batch still makes batches of one.
    let long = Slicer::new(Duration::from_millis(20));
    assert_eq!(long.batch_units(), 1);
    assert_eq!(Slicer::new(Duration::ZERO).unit(), Duration::from_millis(1));
}

/// A GPU's power as a first-order lag behind `idle + gain × duty`, with the ripple of the duty
/// cycle on the readings.
struct Plant {
    power: f64,
    idle: f64,
    gain: f64,
    tau_s: f64,
}

impl Plant {
    fn step(&mut self, duty: f64, dt_s: f64) {
        let target = self.idle + self.gain * duty;
        self.power += (target - self.power) * (1.0 - (-dt_s / self.tau_s).exp());
    }
    fn reading(&self, k: usize, duty: f64) -> f64 {
        // ±8 % of the dynamic part, changing sign from one reading to the next.
        let ripple =
            if k.is_multiple_of(2) { 0.08 } else { -0.08 } * self.gain * duty.min(1.0 - duty);
        self.power + ripple
    }
}

/// Runs `c` on `plant` for `seconds` towards `target`, with `ceiling`; returns the powers and
/// outputs at each tick.
fn simulate(
    c: &mut PowerController,
    plant: &mut Plant,
    seconds: f64,
    ceiling: f64,
) -> Vec<(f64, f64)> {
    let dt = CONTROL_PERIOD;
    let ticks = (seconds / dt.as_secs_f64()) as usize;
    let mut duty = c.output();
    let mut out = Vec::with_capacity(ticks);
    for k in 0..ticks {
        // The plant runs finer than the controller.
        for _ in 0..10 {
            plant.step(duty, dt.as_secs_f64() / 10.0);
        }
        duty = c.update(Some(plant.reading(k, duty)), dt, ceiling);
        assert!(
            (0.0..=ceiling).contains(&duty),
            "output {duty} outside 0..={ceiling}"
        );
        out.push((plant.power, duty));
    }
    out
}

#[test]
fn the_power_controller_settles_on_the_target_within_a_few_percent() {
    // Plants faster and slower than the loop, with gains 30 % off the controller's model.
    for (tau_s, gain_factor) in [(0.05, 1.0), (0.2, 0.7), (0.5, 1.3), (0.2, 1.0)] {
        let (idle, limit) = (90.0, 700.0);
        let mut plant = Plant {
            power: idle,
            idle,
            gain: (limit - idle) * gain_factor,
            tau_s,
        };
        for target in [450.0, 250.0, 600.0] {
            let reachable = target <= idle + plant.gain;
            let mut c = PowerController::new(target, idle, limit);
            let trace = simulate(&mut c, &mut plant, 6.0, 1.0);
            if !reachable {
                continue;
            }
            // After 3 s every tick is within 3 % of the target.
            let settled = &trace[trace.len() / 2..];
            for (p, _) in settled {
                assert!(
                    (p - target).abs() < 0.03 * target,
                    "tau {tau_s}, gain ×{gain_factor}, target {target}: power {p}"
                );
            }
        }
    }
}

#[test]
fn the_power_controller_does_not_wind_up_and_respects_its_ceiling() {
    let (idle, limit) = (90.0, 700.0);
    let mut plant = Plant {
        power: idle,
        idle,
        gain: limit - idle,
        tau_s: 0.2,
    };
    // An unreachable target holds the output at the ceiling...
    let mut c = PowerController::new(900.0, idle, limit);
    let trace = simulate(&mut c, &mut plant, 5.0, 1.0);
    assert!(trace[trace.len() - 10..].iter().all(|(_, u)| *u == 1.0));
    // ...and a reachable one afterwards is reached quickly: the integral did not wind up.
    c.set_target(300.0);
    let trace = simulate(&mut c, &mut plant, 2.5, 1.0);
    let (p, _) = trace[trace.len() - 1];
    assert!((p - 300.0).abs() < 0.03 * 300.0, "power {p}");
    // A ceiling below what the target needs caps the output there.
    let trace = simulate(&mut c, &mut plant, 2.0, 0.2);
    assert!(trace.iter().all(|(_, u)| *u <= 0.2));
    // Ceiling 0 (the level set to 0, e.g. by a safety interlock) stops the device.
    assert_eq!(c.update(Some(400.0), CONTROL_PERIOD, 0.0), 0.0);
    // No reading: the output holds (within the ceiling).
    let held = c.update(Some(200.0), CONTROL_PERIOD, 1.0);
    assert_eq!(c.update(None, CONTROL_PERIOD, 1.0), held);
    assert_eq!(c.update(Some(f64::NAN), CONTROL_PERIOD, 1.0), held);
    assert_eq!(c.update(None, CONTROL_PERIOD, f64::NAN), 0.0);
    // The feed-forward start is the straight line between idle and limit.
    let c = PowerController::new(395.0, 90.0, 700.0);
    assert!((c.output() - 0.5).abs() < 1e-9);
    assert_eq!(PowerController::new(50.0, 90.0, 700.0).output(), 0.0);
    assert_eq!(PowerController::new(5000.0, 90.0, 700.0).output(), 1.0);
}

#[test]
fn the_compare_kernel_source_is_self_contained_and_matches_its_names() {
    let src = kernels::COMPARE_SRC;
    for name in [
        kernels::COMPARE_BF16,
        kernels::COMPARE_F16,
        kernels::COMPARE_F32,
    ] {
        assert!(
            src.contains(&format!("extern \"C\" __global__ void {name}(")),
            "{name}"
        );
    }
    // NVRTC compiles it without any header or include path.
    assert!(!src.contains("#include"));
    assert_eq!(src.matches('{').count(), src.matches('}').count());
    assert_eq!(src.matches('(').count(), src.matches(')').count());
    assert!(!src.contains('\0'));
}

#[test]
fn the_machine_code_fallback_targets_the_gpu_and_never_panics() {
    // An H200 (compute capability 9.0) gets sm_90 machine code where its driver cannot load the
    // PTX.
    assert_eq!(discover::sass_arch_option(9, 0), "--gpu-architecture=sm_90");
    assert_eq!(
        discover::sass_arch_option(10, 0),
        "--gpu-architecture=sm_100"
    );
    // Without NVRTC (as on the machines the tests run on) it is an error, not a panic; with it,
    // a non-empty cubin.
    match discover::compile_compare_cubin(9, 0) {
        Ok(cubin) => assert!(!cubin.is_empty()),
        Err(e) => assert!(e.contains("sm_90") || e.contains("NVRTC"), "{e}"),
    }
}

#[test]
fn only_a_stop_cuts_an_idle_slice_short() {
    use super::duty::ends_slice_early;
    // The power controller's small changes wait for the next slice.
    for d in [0.01, 0.3, 0.7, 1.0] {
        assert!(!ends_slice_early(d), "{d}");
    }
    // A stop (or a duty that makes no sense) ends the idle slice at once.
    for d in [0.0, -0.5, f64::NAN] {
        assert!(ends_slice_early(d), "{d}");
    }
}

#[test]
fn the_compare_geometry_covers_the_buffer() {
    let (blocks, threads, n_vec) = kernels::compare_geometry(132, 8192 * 8192 * 2);
    assert_eq!(n_vec, 8192 * 8192 * 2 / 16);
    assert_eq!(threads, kernels::THREADS);
    assert_eq!(blocks, 132 * kernels::BLOCKS_PER_SM);
    let (blocks, _, n_vec) = kernels::compare_geometry(132, 1024);
    assert_eq!((blocks, n_vec), (1, 64));
    assert_eq!(kernels::compare_geometry(0, 4096).0, 1);
}

#[test]
fn inputs_are_deterministic_and_in_range() {
    let a = random_inputs(10_000, 1);
    assert_eq!(a, random_inputs(10_000, 1));
    assert_ne!(a, random_inputs(10_000, 2));
    assert!(a.iter().all(|x| (-1.0..1.0).contains(x)));
    let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / a.len() as f64;
    assert!(mean.abs() < 0.05, "{mean}");
}

#[test]
fn achieved_rates_come_from_completed_work() {
    // 300 GEMMs of 8192² in 0.5 s: 659.7 TFLOP/s.
    let g = gflops(300, 0, gemm_flop(8192), 0.5);
    assert!((g - 659_706.0).abs() < 1.0, "{g}");
    // Copies: 1 GiB buffers, each copy reads and writes 2 GiB; 1000 of them in 0.5 s.
    let bytes = 1000 * 2 * GIB as u64;
    assert!((rate(bytes, 0, 0.5) - 4294.967).abs() < 0.01);
    assert_eq!(rate(5, 0, 0.0), 0.0);
    assert_eq!(gflops(5, 0, gemm_flop(8192), 0.0), 0.0);
}

#[test]
fn shared_state_combines_level_and_controller() {
    let s = DeviceShared::default();
    assert_eq!(s.duty(), 0.0);
    s.set_level(0.8);
    assert_eq!(s.duty(), 0.8);
    s.set_control(0.3);
    assert_eq!(s.duty(), 0.3);
    s.set_control(1.0);
    s.set_level(f64::NAN);
    assert_eq!(s.duty(), 0.0);
    assert_eq!(s.kernel(), Kernel::Gemm);
    s.set_kernel(Kernel::MemoryBandwidth);
    assert_eq!(s.kernel(), Kernel::MemoryBandwidth);
    assert_eq!(s.state(), WorkerState::Preparing);
    assert_eq!(s.failure(), None);
    s.set_state(WorkerState::Failed("cuBLAS GEMM: oops".into()));
    assert_eq!(s.failure().as_deref(), Some("cuBLAS GEMM: oops"));
}

#[test]
fn uuids_and_device_selection() {
    let bytes: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ];
    assert_eq!(
        format_uuid(&bytes),
        "GPU-12345678-9abc-def0-0123-456789abcdef"
    );
    let all: Vec<CudaDevice> = (0..4)
        .map(|i| CudaDevice {
            ordinal: i,
            name: "H200".into(),
            uuid: format!("GPU-{i}"),
            memory_bytes: 1,
        })
        .collect();
    assert_eq!(select(&all, None).unwrap().len(), 4);
    let two = select(&all, Some(&[3, 1])).unwrap();
    assert_eq!(
        two.iter().map(|d| d.ordinal).collect::<Vec<_>>(),
        vec![3, 1]
    );
    let e = select(&all, Some(&[4])).unwrap_err().to_string();
    assert!(e.contains("no CUDA device 4") && e.contains("has 4"), "{e}");
    assert!(select(&all, Some(&[1, 1]))
        .unwrap_err()
        .to_string()
        .contains("twice"));
    assert!(select(&all, Some(&[])).is_err());
}

#[test]
fn missing_libraries_are_named_with_what_to_install() {
    let m = libs::missing_message(&[Library::Driver, Library::Nvml], Some("not found"));
    assert!(
        m.contains("libcuda.so.1") && m.contains("libnvidia-ml.so.1"),
        "{m}"
    );
    assert!(
        m.contains("NVIDIA driver") && m.contains("LD_LIBRARY_PATH"),
        "{m}"
    );
    assert!(
        m.contains("--backend cpu") && m.contains("(not found)"),
        "{m}"
    );
    let m = libs::missing_message(&[Library::Cublas], None);
    assert!(
        m.contains("libcublas.so.13") && m.contains("libcublasLt.so.13"),
        "{m}"
    );
    // Every Linux name cudarc tries, in its order, not only the CUDA 13 one (the names are
    // cudarc's, pinned in tests_first_run), and how many others it tries.
    let (tried, others) = libs::linux_names(&Library::Cublas.candidates());
    assert!(tried.starts_with("libcublas.so, .so.13, "), "{tried}");
    assert!(
        m.contains(&format!(
            "tried {tried} (and {others} Windows-style names), the first that loads is used"
        )),
        "{m}"
    );
    assert!(
        m.contains("an older major version that loads may lack functions"),
        "{m}"
    );
    // cudarc's candidate list holds the CUDA 13 name.
    assert!(Library::Cublas
        .candidates()
        .iter()
        .any(|c| c == "libcublas.so.13"));
    assert!(Library::Nvrtc
        .candidates()
        .iter()
        .any(|c| c == "libnvrtc.so.13"));
    assert!(Library::Driver
        .candidates()
        .iter()
        .any(|c| c == "libcuda.so.1"));
}

/// On a host without the NVIDIA driver (like the machines these tests run on), starting the
/// backend is a clear error naming the libraries, not a panic. On a GPU host it starts.
#[test]
fn without_the_driver_the_backend_is_unavailable_not_a_panic() {
    if libs::cuda_library_present(Library::Driver) {
        return; // a GPU host: gpu-check.sh exercises the backend there.
    }
    let cfg = CudaConfig::default();
    for r in [CudaBackend::new(&cfg), CudaBackend::sensors_only(&cfg)] {
        match r {
            Err(CudaError::Unavailable(m)) => {
                assert!(m.contains("libcuda.so.1"), "{m}");
                assert!(m.contains("install the NVIDIA driver"), "{m}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert!(matches!(availability(), Err(CudaError::Unavailable(_))));
    let report = library_report();
    assert_eq!(report.len(), Library::ALL.len());
    assert!(report.contains(&(Library::Driver, false)));
    // Options are checked before anything is loaded.
    let bad = CudaConfig {
        matrix_order: Some(1000),
        ..CudaConfig::default()
    };
    assert!(matches!(CudaBackend::new(&bad), Err(CudaError::Config(_))));
}
