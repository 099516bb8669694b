//! Tests of the NVML mapping with plain values (no driver needed), and of loading NVML where
//! there is none.

use super::map::*;
use super::*;

#[test]
fn field_values_convert_whatever_their_type() {
    assert_eq!(field_f64(&SampleValue::U32(412_000)), 412_000.0);
    assert_eq!(field_f64(&SampleValue::U64(7)), 7.0);
    assert_eq!(field_f64(&SampleValue::I64(-3)), -3.0);
    assert_eq!(field_f64(&SampleValue::F64(1.5)), 1.5);
    assert_eq!(field_u64(&SampleValue::I64(-3)), None);
    assert_eq!(field_u64(&SampleValue::F64(f64::NAN)), None);
    assert_eq!(field_u64(&SampleValue::F64(12.9)), Some(12));
    assert_eq!(field_u64(&SampleValue::U32(18)), Some(18));
    assert_eq!(milliwatts(699_500.0), 699.5);
}

#[test]
fn energy_is_counted_from_the_origin_and_unknown_when_it_cannot_be() {
    assert_eq!(energy_since(Some(1_000), Some(4_500)), Some(3.5));
    assert_eq!(energy_since(Some(1_000), Some(1_000)), Some(0.0));
    // The counter went backwards (driver reloaded): unknown, not 0 or negative.
    assert_eq!(energy_since(Some(5_000), Some(1_000)), None);
    assert_eq!(energy_since(None, Some(1_000)), None);
    assert_eq!(energy_since(Some(1_000), None), None);
}

#[test]
fn readings_keep_absent_values_absent() {
    let raw = RawReading {
        power_w: Some(612.5),
        energy_mj: Some(10_000),
        gpu_temp_c: Some(61.0),
        mem_temp_c: None,
        sm_clock_mhz: Some(1980),
        util_pct: Some(100.0),
        throttle_reasons: Some(crate::throttle::SW_POWER_CAP),
    };
    let r = device_reading(3, &raw, Some(4_000));
    assert_eq!(r.device, 3);
    assert_eq!(r.power_w, Some(612.5));
    assert_eq!(r.energy_j, Some(6.0));
    assert_eq!(r.gpu_temp_c, Some(61.0));
    assert_eq!(r.mem_temp_c, None);
    assert_eq!(r.sm_clock_mhz, Some(1980));
    assert_eq!(r.throttle_reasons, crate::throttle::SW_POWER_CAP);
    assert!(!r.shut_down);

    // NVML failed for everything: every value absent, none 0.
    let r = absent_reading(1);
    assert_eq!(
        (r.power_w, r.energy_j, r.gpu_temp_c, r.mem_temp_c),
        (None, None, None, None)
    );
    assert_eq!((r.sm_clock_mhz, r.util_pct), (None, None));
    assert_eq!(r.throttle_reasons, 0);
}

#[test]
fn an_nvml_failure_marks_every_sensor_absent_with_the_reason() {
    let why = "NVML (libnvidia-ml.so.1) cannot be loaded";
    let s = absent_everywhere(&[0, 1], why);
    assert_eq!(s.len(), 2 * SENSORS.len());
    assert!(s.iter().all(|x| !x.available && x.detail == why));
    assert_eq!(s[0].device, Some(0));
    assert_eq!(s[SENSORS.len()].device, Some(1));
    let names: Vec<&str> = s[..SENSORS.len()].iter().map(|x| x.name.as_str()).collect();
    for wanted in [
        "power",
        "energy counter",
        "GPU temperature",
        "memory temperature",
        "throttle reasons",
        "XID events",
        "NVLink counters",
        "PCIe replay counter",
        "ECC volatile uncorrected",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    assert!(absent_everywhere(&[], why).is_empty());
}

#[test]
fn a_sensor_status_says_where_it_is_read_or_why_not() {
    let ok = status("power", Some(2), Ok(answered("NVML field", "412.0 W")));
    assert!(ok.available);
    assert_eq!(ok.detail, "NVML field: 412.0 W");
    let no = status("NVLink counters", Some(2), Err("no NVLink links".into()));
    assert!(!no.available);
    assert_eq!(no.detail, "no NVLink links");
}

#[test]
fn extended_readings_default_to_absent() {
    let e = ExtendedReading {
        ecc_uncorrected_volatile: Some(0),
        nvlink_links: Some(18),
        ..ExtendedReading::default()
    };
    let debug = format!("{e:?}");
    assert!(debug.contains("nvlink_links: Some(18)"), "{debug}");
    assert_eq!(e.pcie_replays, None);
}

/// Where the driver is not installed (as on the machines the tests run on), loading NVML is an
/// error naming the library, never a panic.
#[test]
fn without_the_driver_nvml_is_an_error_naming_the_library() {
    match NvmlSensors::init() {
        Ok(n) => {
            // A GPU host: NVML answers.
            assert!(n.device_count().is_ok());
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains("libnvidia-ml.so.1"), "{m}");
            assert!(matches!(e, NvmlInitError::Load(_)), "{e:?}");
        }
    }
}

#[test]
fn power_falls_back_to_the_average_and_says_so() {
    // The instant field answers: it is used, and the average is not even asked.
    let r = choose_power(Ok(612.5), || panic!("the average is not read"));
    assert_eq!(r, Ok((612.5, PowerSource::Instant)));
    // Refused (an older driver, vGPU, a sandbox): the 1 s average stands in, and says so.
    let refused = "NVML: the requested operation is not available on the target device";
    let r = choose_power(Err(refused.into()), || Ok(598.0));
    assert_eq!(r, Ok((598.0, PowerSource::Average)));
    let d = power_detail(r, Some(refused)).unwrap();
    assert!(
        d.starts_with("NVML power usage (1 s average): 598.0 W"),
        "{d}"
    );
    assert!(
        d.contains("the instant field was refused: NVML: the requested"),
        "{d}"
    );
    let d = power_detail(Ok((612.5, PowerSource::Instant)), None).unwrap();
    assert_eq!(d, "NVML field NVML_FI_DEV_POWER_INSTANT (instant): 612.5 W");
    // A nonsense instant value is not used either.
    let r = choose_power(Ok(f64::NAN), || Ok(301.0));
    assert_eq!(r, Ok((301.0, PowerSource::Average)));
    // A powered GPU never draws 0 W: a field left at 0 is no reading, and neither is an
    // average of 0 (absent, never 0).
    let r = choose_power(Ok(0.0), || Ok(287.0));
    assert_eq!(r, Ok((287.0, PowerSource::Average)));
    assert!(choose_power(Ok(0.0), || Ok(0.0)).is_err());
    // Neither answers: absent, with both reasons, never 0.
    let e = choose_power(Err("not supported".into()), || Err("no permission".into()));
    let e = e.unwrap_err();
    assert!(e.contains("instant power field: not supported"), "{e}");
    assert!(e.contains("power usage: no permission"), "{e}");
    assert!(power_detail(Err(e.clone()), None).is_err());
}
