//! Tests of what the first GPU run depends on and a machine without a GPU can check: the compare
//! kernel's CPU model on crafted bits (and that the kernel source holds the same masks), rates
//! from GEMM counters past 2⁶⁴ FLOPs, the allocation fallback's decision (once per device), the
//! library names tried, the toolkit-stub warning and hint, and when a power target can be held.

use super::libs::{self, Library};
use super::sizing::gemm_flop;
use super::*;

/// Stored bits of `x` in `f`.
fn bits(x: f32, f: kernels::Format) -> u32 {
    use kernels::Format;
    match f {
        Format::BF16 => u32::from(half::bf16::from_f32(x).to_bits()),
        Format::F16 => u32::from(half::f16::from_f32(x).to_bits()),
        _ => x.to_bits(),
    }
}

#[test]
fn the_compare_counts_any_changed_bit_and_every_nan() {
    use kernels::{is_wrong, Format};
    for f in [Format::BF16, Format::F16, Format::F32] {
        let b = |x: f32| bits(x, f);
        let one = b(30.0);
        // Equal: right. The next representable value up or down: wrong at 0 ulps, right at 1.
        assert!(!is_wrong(one, one, f, 0));
        for next in [one + 1, one - 1] {
            assert!(is_wrong(next, one, f, 0), "{f:?}");
            assert!(!is_wrong(next, one, f, 1), "{f:?}");
        }
        assert!(is_wrong(one + 2, one, f, 1), "{f:?}");
        // A flipped sign or exponent bit is far outside any tolerance.
        assert!(is_wrong(b(-30.0), one, f, 1000));
        assert!(is_wrong(one ^ (f.exp & !(f.exp >> 1)), one, f, 1000));
        // +0 and −0 are the same value; the smallest values of either sign are 2 apart.
        assert!(!is_wrong(f.sign, 0, f, 0), "{f:?}");
        assert!(is_wrong(f.sign | 1, 1, f, 1), "{f:?}");
        assert!(!is_wrong(f.sign | 1, 1, f, 2), "{f:?}");
        // NaN in either, quiet or signalling, any sign, even against itself: wrong.
        let nans = [
            f.exp | 1,
            f.exp | f.mant,
            f.sign | f.exp | (f.mant & !(f.mant >> 1)),
        ];
        for nan in nans {
            assert!(is_wrong(nan, one, f, u32::MAX), "{f:?} {nan:#x}");
            assert!(is_wrong(one, nan, f, u32::MAX), "{f:?} {nan:#x}");
            assert!(is_wrong(nan, nan, f, u32::MAX), "{f:?} {nan:#x}");
        }
        // Infinity is a value (the next one after the largest finite), not NaN.
        assert!(!is_wrong(f.exp, f.exp, f, 0));
        assert!(is_wrong(f.exp, f.exp - 1, f, 0));
        assert!(!is_wrong(f.exp, f.exp - 1, f, 1));
    }
    // The old f32 tolerance (1e-5 relative) let about 150 ulps through at 30; bits now count.
    let want = 30.0f32;
    let got = f32::from_bits(want.to_bits() + 100);
    assert!(got != want && (got - want).abs() <= 1e-5 * want);
    assert!(is_wrong(
        got.to_bits(),
        want.to_bits(),
        Format::F32,
        Dtype::Fp32.max_ulps()
    ));
}

#[test]
fn the_kernel_model_unpacks_words_as_the_kernel_does() {
    use kernels::{compare_words, Format};
    // 16-bit formats: two values per 32-bit word, low half first; one 16-byte load is 4 words.
    let pack = |lo: u32, hi: u32| lo | (hi << 16);
    let f = Format::BF16;
    let x = bits(1.5, f);
    let want = vec![pack(x, x); 8];
    let mut got = want.clone();
    assert_eq!(compare_words(&want, &got, f, 0), 0);
    got[0] = pack(x + 1, x); // the low half off by one ulp
    got[5] = pack(x, f.exp | 1); // the high half NaN
    got[7] = pack(x ^ f.sign, x ^ f.sign); // both halves negated
    assert_eq!(compare_words(&want, &got, f, 0), 4);
    assert_eq!(compare_words(&want, &got, f, 1), 3);
    // f32: one value per word.
    let f = Format::F32;
    let want: Vec<u32> = [1.0f32, -2.0, 0.0, 3.5]
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let mut got = want.clone();
    got[2] = (-0.0f32).to_bits();
    assert_eq!(compare_words(&want, &got, f, 0), 0);
    got[1] = f32::NAN.to_bits();
    got[3] += 1;
    assert_eq!(compare_words(&want, &got, f, 0), 2);
    // The kernel each dtype's burn launches holds the masks of the format the model reads for
    // that dtype, one element per stored value.
    let src = kernels::COMPARE_SRC;
    for d in Dtype::ALL {
        let (name, f) = (d.compare_kernel(), d.format());
        assert_eq!(f.bits() as usize, 8 * d.element_bytes(), "{d}");
        let start = src.find(&format!("void {name}(")).unwrap();
        let body = &src[start..];
        let body = &body[..body.find("atomicAdd").unwrap()];
        let masks = format!("{:#x}u, {:#x}u, {:#x}u, max_ulps", f.sign, f.exp, f.mant);
        assert!(body.contains(&masks), "{name}: {masks}");
        let calls = if f.bits() == 32 { 1 } else { 2 };
        assert_eq!(body.matches("bad += hm_bad(").count(), calls, "{name}");
    }
}

#[test]
fn a_long_burn_at_full_speed_never_reads_zero() {
    // An H200 at 780 TFLOP/s for 7 hours: 1.97e19 FLOPs, past 2⁶⁴ (1.84e19), where a FLOP
    // counter wrapped and the window read 0 GFLOP/s. Counted in GEMMs of 8192² (1.1 TFLOP), the
    // same burn is 1.8e7 GEMMs, and the rate of the last minute is still 780 TFLOP/s.
    let per = gemm_flop(8192);
    let per_s = 780e12 / per as f64;
    let at = |s: f64| (per_s * s) as u64;
    let (before, now) = (at(7.0 * 3600.0 - 60.0), at(7.0 * 3600.0));
    assert!(
        now as f64 * per as f64 > u64::MAX as f64,
        "the FLOPs pass 2⁶⁴"
    );
    let g = gflops(now, before, per, 60.0);
    assert!((g / 780e3 - 1.0).abs() < 1e-3, "{g}");
    // Even a counter that wraps between two readings gives the work in between.
    let g = gflops(5, u64::MAX - 4, per, 1.0);
    assert!((g - 10.0 * per as f64 / 1e9).abs() < 1e-6, "{g}");
    assert!((rate(3, u64::MAX, 1.0) - 4e-9).abs() < 1e-18);
}

#[test]
fn the_names_tried_are_cudarcs_and_a_stub_driver_is_named() {
    let tried = Library::Driver.candidates();
    assert_eq!(tried, cudarc::get_lib_name_candidates("cuda"));
    let (shown, others) = libs::linux_names(&tried);
    assert_eq!(
        shown,
        "libcuda.so, .so.13, .so.12, .so.11, .so.10, .so.9, .so.1"
    );
    assert_eq!(others, tried.len() - 7);
    assert_eq!(libs::linux_names(&[]), (String::new(), 0));

    let maps = "7f00-7f10 r-xp 00000000 08:01 42 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
                7f20-7f30 r-xp 00000000 08:01 43 /usr/local/cuda/lib64/stubs/libcuda.so\n\
                7f40-7f50 rw-p 00000000 00:00 0 \n";
    assert_eq!(
        libs::loaded_driver_path(maps),
        Some("/usr/local/cuda/lib64/stubs/libcuda.so")
    );
    assert_eq!(
        libs::loaded_driver_path("7f40-7f50 rw-p 0 0:0 0 [heap]"),
        None
    );
    let none = |_: &str| false;
    let w = libs::stub_warning(libs::loaded_driver_path(maps), None, none).unwrap();
    assert!(
        w.contains("/usr/local/cuda/lib64/stubs/libcuda.so is the CUDA toolkit's stub"),
        "{w}"
    );
    assert!(
        w.contains("CUDA_ERROR_STUB_LIBRARY") && w.contains("LD_LIBRARY_PATH"),
        "{w}"
    );
    // The driver's own library: no warning.
    let real = "7f20-7f30 r-xp 0 08:01 43 /usr/lib/x86_64-linux-gnu/libcuda.so.580.95.05";
    assert_eq!(
        libs::stub_warning(libs::loaded_driver_path(real), None, none),
        None
    );
    // Not loaded yet, but a stubs directory with a libcuda.so on the path comes first.
    let path = "/opt/a:/usr/local/cuda/lib64/stubs:/usr/lib";
    let stubs_only = |d: &str| d.ends_with("/stubs");
    let w = libs::stub_warning(None, Some(path), stubs_only).unwrap();
    assert!(
        w.contains("LD_LIBRARY_PATH holds /usr/local/cuda/lib64/stubs"),
        "{w}"
    );
    assert_eq!(libs::stub_warning(None, Some(path), none), None);
    assert_eq!(
        libs::stub_warning(None, Some("/opt/stubsx:"), |_| true),
        None
    );

    // A driver that does not initialise: the stub warning where there is one, else the driver's
    // own stub error turned into the same fix, else what to check.
    let named = libs::stub_warning(libs::loaded_driver_path(maps), None, none);
    assert_eq!(
        libs::driver_failure_hint(true, named.clone()),
        named.unwrap()
    );
    let h = libs::driver_failure_hint(true, None);
    assert!(
        h.contains("toolkit's stub, from a stubs/ directory")
            && h.contains("take that directory off LD_LIBRARY_PATH"),
        "{h}"
    );
    let h = libs::driver_failure_hint(false, None);
    assert!(
        h.contains("nvidia-smi") && h.contains("CUDA_VISIBLE_DEVICES"),
        "{h}"
    );
}

#[test]
fn stream_ordered_allocation_falls_back_to_plain_where_it_is_refused() {
    use super::alloc::{choose, parse_override, AllocMode, ALLOC_ENV};
    let refused = || Err("CUDA_ERROR_NOT_SUPPORTED, operation not supported".to_string());
    let never = || -> Result<(), String> { panic!("no probe without memory pools") };
    // Memory pools that work: cudarc's stream-ordered allocation, no note.
    assert_eq!(choose(true, false, || Ok(())), (AllocMode::Cudarc, None));
    // Memory pools reported but refused (a sandboxed runtime): plain, with a note that says why.
    let (mode, note) = choose(true, false, refused);
    assert_eq!(mode, AllocMode::Plain);
    let note = note.unwrap();
    assert!(
        note.contains("cuMemAllocAsync") && note.contains("NOT_SUPPORTED"),
        "{note}"
    );
    assert!(note.contains("allocated with cuMemAlloc instead"), "{note}");
    // No memory pools: cudarc allocates plainly itself; nothing is probed.
    assert_eq!(choose(false, false, never), (AllocMode::Cudarc, None));
    assert_eq!(choose(false, true, never), (AllocMode::Cudarc, None));
    // Forced: plain without probing, and the note names the variable.
    let (mode, note) = choose(true, true, never);
    assert_eq!(mode, AllocMode::Plain);
    assert!(note.unwrap().contains(&format!("{ALLOC_ENV}=plain")));
    // The variable's values.
    for (v, plain) in [
        (None, false),
        (Some(""), false),
        (Some("auto"), false),
        (Some(" Plain "), true),
    ] {
        assert_eq!(parse_override(v), Ok(plain), "{v:?}");
    }
    let e = parse_override(Some("async")).unwrap_err();
    assert!(
        e.contains(ALLOC_ENV) && e.contains("async") && e.contains("`plain`"),
        "{e}"
    );
}

#[test]
fn the_allocation_is_decided_once_per_device() {
    use super::alloc::{remembered, AllocMode, Decided};
    use std::cell::Cell;
    let decided = Decided::default();
    let probes = Cell::new(0);
    let probe = |mode: AllocMode| {
        let probes = &probes;
        move || {
            probes.set(probes.get() + 1);
            Ok(mode)
        }
    };
    // The first user of GPU 0 probes; later ones (the next NCCL phase) reuse its answer.
    assert_eq!(
        remembered(&decided, 0, probe(AllocMode::Plain)),
        Ok(AllocMode::Plain)
    );
    assert_eq!(
        remembered(&decided, 0, probe(AllocMode::Cudarc)),
        Ok(AllocMode::Plain)
    );
    assert_eq!(probes.get(), 1);
    // Another GPU decides for itself.
    assert_eq!(
        remembered(&decided, 1, probe(AllocMode::Cudarc)),
        Ok(AllocMode::Cudarc)
    );
    assert_eq!(probes.get(), 2);
    // An error (HALLMARK_CUDA_ALLOC misspelt) is returned each time, not remembered.
    let refused = || {
        Err(format!(
            "{}=async is not understood",
            super::alloc::ALLOC_ENV
        ))
    };
    assert!(remembered(&decided, 2, refused).is_err());
    assert_eq!(
        remembered(&decided, 2, probe(AllocMode::Plain)),
        Ok(AllocMode::Plain)
    );
    assert_eq!(probes.get(), 3);
    assert_eq!(
        remembered(&decided, 1, probe(AllocMode::Plain)),
        Ok(AllocMode::Cudarc)
    );
    assert_eq!(probes.get(), 3);
}

#[test]
fn a_power_target_needs_power_and_a_limit_and_says_what_to_run_instead() {
    use crate::nvml::PowerSource;
    assert_eq!(
        power_holdable(0, 600.0, Ok(PowerSource::Instant), Some(700.0)),
        Ok(None)
    );
    // From the 1 s average: held, with a warning that says so.
    let w = power_holdable(1, 600.0, Ok(PowerSource::Average), Some(700.0))
        .unwrap()
        .unwrap();
    assert!(
        w.starts_with("GPU 1: holding 600 W from NVML's 1 s average"),
        "{w}"
    );
    // No power, or no limit: refused, saying why, where to look and what runs without it.
    let e = power_holdable(
        2,
        600.0,
        Err("NVML has no GPU with UUID x".into()),
        Some(700.0),
    )
    .unwrap_err();
    assert!(
        e.starts_with("GPU 2: NVML reads no power (NVML has no GPU with UUID x)"),
        "{e}"
    );
    let e = power_holdable(3, 600.0, Ok(PowerSource::Instant), None).unwrap_err();
    assert!(e.contains("no enforced power limit"), "{e}");
    assert!(
        e.contains("hallmark probe --list-devices") && e.contains("a `burn` phase"),
        "{e}"
    );
}
