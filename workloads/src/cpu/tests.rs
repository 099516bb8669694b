//! Tests of [`CpuBackend`] with one worker on small matrices (so that debug builds stay quick).
//! The burn tests hold one lock so that they don't compete for the cores with one another.

use super::*;
use hallmark_protocol::DeviceKind;
use std::sync::Mutex;

/// Small enough for an unoptimised build to finish many GEMMs in a few ms.
const TEST_N: usize = 96;
static BURN: Mutex<()> = Mutex::new(());

fn backend() -> CpuBackend {
    CpuBackend::with_matrix_order(Some(1), TEST_N).unwrap()
}

/// The probe's clock stand-in: ns since `origin`.
fn ns(origin: Instant) -> i64 {
    origin.elapsed().as_nanos() as i64
}

/// Runs `b` at `level` for `ms` and returns device 0's result over that span.
fn measure(b: &mut CpuBackend, level: f64, ms: u64) -> DeviceResult {
    let origin = Instant::now();
    b.set_level(0, level).unwrap();
    b.take_results(ns(origin));
    thread::sleep(Duration::from_millis(ms));
    let mut r = b.take_results(ns(origin));
    assert_eq!(r.len(), 1);
    r.remove(0)
}

#[test]
fn full_load_does_work_and_checks_clean() {
    let _g = BURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = backend();
    assert_eq!(b.threads(), 1);
    let r = measure(&mut b, 1.0, 300);
    let gflops = r.gflops.unwrap();
    // The gemm crates are optimised in every profile (root Cargo.toml); unoptimised they would
    // run at ~0.4 GFLOP/s here, optimised at tens even on 96×96.
    assert!(gflops > 1.0, "{gflops} GFLOP/s");
    assert_eq!(r.wrong_elements, 0);
    assert!(b.sample(0).is_ok());
}

#[test]
fn level_zero_does_no_work() {
    let _g = BURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = backend();
    let r = measure(&mut b, 0.0, 150);
    assert!(r.gflops.unwrap() < 0.01, "{r:?}");
    // And stop_all takes a loaded device down to nothing at once.
    let origin = Instant::now();
    b.set_level(0, 1.0).unwrap();
    thread::sleep(Duration::from_millis(50));
    b.stop_all();
    thread::sleep(Duration::from_millis(20)); // the GEMM in flight ends
    b.take_results(ns(origin));
    thread::sleep(Duration::from_millis(100));
    let r = b.take_results(ns(origin));
    assert!(r[0].gflops.unwrap() < 0.01, "{r:?}");
}

#[test]
fn half_level_does_about_half_the_work() {
    let _g = BURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = backend();
    let full = measure(&mut b, 1.0, 400).gflops.unwrap();
    let half = measure(&mut b, 0.5, 400).gflops.unwrap();
    let ratio = half / full;
    assert!((0.3..0.7).contains(&ratio), "{half} / {full} = {ratio}");
}

#[test]
fn a_corrupted_reference_shows_as_wrong_elements() {
    let _g = BURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = backend();
    b.corrupt_reference(0);
    let r = measure(&mut b, 1.0, 200);
    assert!(r.wrong_elements >= 1, "{r:?}");
    // One spoilt element: each check from then on finds exactly that one wrong element.
    b.stop_all();
    thread::sleep(Duration::from_millis(50));
    let d = &b.shared.devices[0];
    let gemms = d.flop.load(Ordering::Relaxed) / (2 * (TEST_N as u64).pow(3));
    let wrong = d.wrong.load(Ordering::Relaxed);
    assert!(
        wrong >= r.wrong_elements && wrong <= gemms / worker::CHECK_EVERY,
        "{wrong} of {gemms}"
    );
}

#[test]
fn first_take_results_starts_counting() {
    let mut b = backend();
    assert!(b.take_results(5).is_empty());
    assert!(b.take_results(5).is_empty(), "no time passed");
    let r = b.take_results(1_000_000_005);
    assert_eq!(r[0].device, 0);
    assert_eq!(r[0].wrong_elements, 0);
}

#[test]
fn readings_inventory_and_errors() {
    let mut b = backend();
    assert_eq!(b.name(), "cpu");
    let inv = b.inventory().to_vec();
    assert!(!inv.is_empty());
    assert!(inv.iter().all(|d| d.kind == DeviceKind::CpuSocket
        && d.power_limit_w.is_none()
        && d.shutdown_temp_c.is_none()
        && !d.model.is_empty()));
    b.set_level(0, 0.25).unwrap();
    let r = b.sample(0).unwrap();
    assert_eq!(r.devices.len(), inv.len());
    // Utilisation is measured (none yet: sysinfo needs two readings 210 ms apart), or, where
    // sysinfo cannot read it, the applied level.
    let measured = utilisation_measured(&b, 0);
    let expect = if measured { None } else { Some(25.0) };
    assert_eq!(r.devices[0].util_pct, expect);
    assert_eq!(r.devices[0].sm_clock_mhz, None);
    assert_eq!(r.devices[0].mem_temp_c, None);
    assert_eq!(r.node_power_w, None, "RAPL is not wall power");
    b.stop_all();
    let expect = if measured { None } else { Some(0.0) };
    assert_eq!(b.sample(1).unwrap().devices[0].util_pct, expect);

    let missing = inv.len() as u16;
    assert_eq!(
        b.set_level(missing, 0.5),
        Err(BackendError::NoSuchDevice {
            device: missing,
            count: inv.len()
        })
    );
    assert!(matches!(
        b.set_level(0, 1.5),
        Err(BackendError::BadLevel { device: 0, .. })
    ));
    assert!(b.set_level(0, f64::NAN).is_err());
    assert!(matches!(
        CpuBackend::new(Some(0)),
        Err(BackendError::Config(_))
    ));
    assert!(matches!(
        CpuBackend::with_matrix_order(Some(1), 0),
        Err(BackendError::Config(_))
    ));
    // Dropping stops and joins at once, loaded or not.
    b.set_level(0, 1.0).unwrap();
    let t = Instant::now();
    drop(b);
    assert!(t.elapsed() < Duration::from_millis(500));
}

/// Whether device `device`'s utilisation is measured (rather than the applied level).
fn utilisation_measured(b: &CpuBackend, device: u16) -> bool {
    b.sensors()
        .iter()
        .find(|s| s.name == "utilisation" && s.device == Some(device))
        .map(|s| s.available)
        .unwrap()
}

#[test]
fn without_powercap_power_is_none_and_sensors_say_why() {
    let mut b = backend();
    let r = b.sample(0).unwrap();
    let sensors = b.sensors();
    for d in &r.devices {
        let power = sensors
            .iter()
            .find(|s| s.name == "power and energy" && s.device == Some(d.device))
            .unwrap();
        if d.power_w.is_none() {
            assert!(
                !power.available && power.detail.starts_with("absent"),
                "{power:?}"
            );
            assert_eq!(d.energy_j, None);
        }
        let temp = sensors
            .iter()
            .find(|s| s.name == "package temperature" && s.device == Some(d.device))
            .unwrap();
        assert_eq!(d.gpu_temp_c.is_some(), temp.available, "{temp:?}");
        assert_ne!(d.gpu_temp_c, Some(0.0));
    }
    if !Path::new(crate::host::rapl::DEFAULT_POWERCAP_ROOT).exists() {
        // As on the VMs this is developed on: no RAPL at all.
        assert!(r.devices.iter().all(|d| d.power_w.is_none()));
        let rapl: Vec<_> = sensors
            .iter()
            .filter(|s| s.name.starts_with("RAPL"))
            .collect();
        assert_eq!(rapl.len(), 2 * r.devices.len(), "{rapl:#?}");
        assert!(
            rapl.iter()
                .all(|s| !s.available && s.detail.contains("no powercap tree")),
            "{rapl:#?}"
        );
    }
}

#[test]
fn power_and_energy_come_from_rapl_package_plus_dram() {
    use crate::host::{HostOptions, ManualClock};
    let dir = crate::host::tests::TempDir::new("cpu-backend");
    let root = dir.path();
    let zone = |d: &str, name: &str, uj: u64| {
        let p = root.join(d);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("name"), name).unwrap();
        std::fs::write(p.join("energy_uj"), uj.to_string()).unwrap();
        std::fs::write(p.join("max_energy_range_uj"), "262143328850").unwrap();
    };
    let sockets = topology::sockets(&topology::cpu_packages(Path::new(
        "/sys/devices/system/cpu",
    )));
    for (i, p) in sockets.iter().enumerate() {
        zone(&format!("intel-rapl:{i}"), &format!("package-{p}"), 1_000);
        zone(&format!("intel-rapl:{i}:0"), "dram", 2_000);
    }
    let clock = Arc::new(ManualClock::new());
    let options = HostOptions {
        powercap_root: root.to_path_buf(),
        clock: clock.clone(),
    };
    let mut b = CpuBackend::with_options(Some(1), TEST_N, options).unwrap();
    let r = b.sample(0).unwrap();
    assert_eq!(r.devices[0].power_w, None, "one read gives no power");
    assert_eq!(r.devices[0].energy_j, Some(0.0));
    clock.advance(Duration::from_secs(4));
    for i in 0..sockets.len() {
        let write = |d: String, uj: u64| {
            std::fs::write(root.join(d).join("energy_uj"), uj.to_string()).unwrap()
        };
        write(format!("intel-rapl:{i}"), 1_000 + 400_000_000); // 100 W
        write(format!("intel-rapl:{i}:0"), 2_000 + 40_000_000); // 10 W
    }
    let r = b.sample(4_000_000_000).unwrap();
    for d in &r.devices {
        assert_eq!(d.power_w, Some(110.0), "{d:?}");
        assert_eq!(d.energy_j, Some(440.0), "{d:?}");
    }
    assert_eq!(r.node_power_w, None);
    let sensors = b.sensors();
    let power = sensors
        .iter()
        .find(|s| s.name == "power and energy" && s.device == Some(0))
        .unwrap();
    assert!(
        power.available && power.detail.ends_with("+ dram"),
        "{power:?}"
    );
}

#[test]
fn utilisation_is_measured_once_sysinfo_has_two_readings() {
    let _g = BURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = backend();
    if !utilisation_measured(&b, 0) {
        eprintln!("skipped: sysinfo cannot read CPU utilisation here");
        return;
    }
    b.set_level(0, 1.0).unwrap();
    thread::sleep(crate::host::system::REFRESH_INTERVAL + Duration::from_millis(20));
    let r = b.sample(0).unwrap();
    let u = r.devices[0].util_pct.unwrap();
    assert!((0.0..=100.0).contains(&u), "{u}");
    // Sampling again at once reuses the reading rather than waiting.
    let t = Instant::now();
    assert_eq!(b.sample(1).unwrap().devices[0].util_pct, Some(u));
    assert!(t.elapsed() < Duration::from_millis(100));
}
