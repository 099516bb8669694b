//! Tests of the columnar codec: round trips (bit-exact), corrupt and truncated blobs, and the size
//! of the demo's telemetry.

use super::demo_data::demo_batches;
use super::*;
use proptest::prelude::*;

/// A sample as its stored bits (so that -0.0 and 0.0 differ, and NaN compares).
type Bits = (
    i64,
    u16,
    Option<u32>,
    Option<u64>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    u64,
);

fn bits(s: &Sample) -> Bits {
    let b = |v: Option<f32>| v.map(f32::to_bits);
    (
        s.t_ns,
        s.device,
        b(s.power_w),
        s.energy_j.map(f64::to_bits),
        b(s.gpu_temp_c),
        b(s.mem_temp_c),
        s.sm_clock_mhz,
        b(s.util_pct),
        s.throttle_reasons,
    )
}

/// What the store keeps of a sample: non-finite readings become absent.
fn stored(s: &Sample) -> Bits {
    let f = |v: Option<f32>| v.filter(|x| x.is_finite());
    bits(&Sample {
        power_w: f(s.power_w),
        energy_j: s.energy_j.filter(|x| x.is_finite()),
        gpu_temp_c: f(s.gpu_temp_c),
        mem_temp_c: f(s.mem_temp_c),
        util_pct: f(s.util_pct),
        ..s.clone()
    })
}

fn encode(samples: &[Sample]) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new().encode_samples(samples, &mut out).unwrap();
    out
}

fn decode(blob: &[u8]) -> Result<Vec<Sample>, DecodeError> {
    let mut out = Vec::new();
    Decoder::new().decode_samples(blob, &mut out)?;
    Ok(out)
}

fn f32_any() -> impl Strategy<Value = Option<f32>> {
    prop_oneof![
        Just(None),
        Just(Some(-0.0f32)),
        Just(Some(0.0f32)),
        Just(Some(f32::NAN)),
        Just(Some(f32::NEG_INFINITY)),
        (0.0f32..120.0).prop_map(Some),
        any::<u32>().prop_map(|b| Some(f32::from_bits(b))),
    ]
}

fn f64_any() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        Just(Some(-0.0f64)),
        Just(Some(f64::INFINITY)),
        (0.0f64..1e9).prop_map(Some),
        any::<u64>().prop_map(|b| Some(f64::from_bits(b))),
    ]
}

fn instant() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0i64),
        (0i64..5).prop_map(|k| 1_795_918_500_000_000_000 + k * 100_000_000),
        any::<i64>(),
    ]
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        instant(),
        prop_oneof![0u16..8, Just(u16::MAX), any::<u16>()],
        (f32_any(), f64_any(), f32_any(), f32_any()),
        (
            proptest::option::of(any::<u32>()),
            f32_any(),
            prop_oneof![Just(0u64), any::<u64>()],
        ),
    )
        .prop_map(|(t_ns, device, (p, e, g, m), (c, u, th))| Sample {
            t_ns,
            device,
            power_w: p,
            energy_j: e,
            gpu_temp_c: g,
            mem_temp_c: m,
            sm_clock_mhz: c,
            util_pct: u,
            throttle_reasons: th,
        })
}

/// Batches with runs of equal instants (as probes send), and arbitrary ones.
fn samples() -> impl Strategy<Value = Vec<Sample>> {
    prop_oneof![
        proptest::collection::vec(sample(), 0..200),
        proptest::collection::vec(sample(), 1..40).prop_map(|v| {
            let t0 = v[0].t_ns;
            v.into_iter()
                .enumerate()
                .map(|(i, s)| Sample {
                    t_ns: t0.wrapping_add((i / 8) as i64 * 100_000_000),
                    device: (i % 8) as u16,
                    ..s
                })
                .collect()
        }),
    ]
}

/// The ways a blob is damaged: a flipped byte, a cut, an inserted byte.
#[derive(Debug, Clone)]
enum Damage {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, u8),
}

fn damage(mut blob: Vec<u8>, d: &Damage) -> Vec<u8> {
    match *d {
        Damage::Flip(i, x) if !blob.is_empty() => {
            let i = i % blob.len();
            blob[i] ^= x.max(1);
        }
        Damage::Cut(i) => blob.truncate(i % (blob.len() + 1)),
        Damage::Insert(i, x) => blob.insert(i % (blob.len() + 1), x),
        Damage::Flip(..) => {}
    }
    blob
}

fn damages() -> impl Strategy<Value = Vec<Damage>> {
    proptest::collection::vec(
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Damage::Flip(i, x)),
            any::<usize>().prop_map(Damage::Cut),
            (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Damage::Insert(i, x)),
        ],
        1..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn samples_round_trip_bit_for_bit(samples in samples()) {
        let blob = encode(&samples);
        prop_assert_eq!(sample_count(&blob).unwrap(), samples.len());
        let back = decode(&blob).unwrap();
        let want: Vec<Bits> = samples.iter().map(stored).collect();
        let got: Vec<Bits> = back.iter().map(bits).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn node_power_round_trips_bit_for_bit(
        readings in proptest::collection::vec((instant(), f32_any().prop_map(|v| v.unwrap_or(1.0))), 0..100)
    ) {
        let mut blob = Vec::new();
        Encoder::new().encode_node_power(&readings, &mut blob).unwrap();
        let mut back = Vec::new();
        Decoder::new().decode_node_power(&blob, &mut back).unwrap();
        let want: Vec<(i64, Option<u32>)> = readings
            .iter()
            .map(|&(t, w)| (t, Some(w).filter(|w| w.is_finite()).map(f32::to_bits)))
            .collect();
        let got: Vec<(i64, Option<u32>)> =
            back.iter().map(|&(t, w)| (t, w.map(f32::to_bits))).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn damaged_blobs_give_errors_or_bounded_samples_never_panics(
        samples in samples(),
        power in proptest::collection::vec((instant(), any::<f32>()), 0..30),
        ds in damages(),
    ) {
        let mut blob = encode(&samples);
        let mut pblob = Vec::new();
        Encoder::new().encode_node_power(&power, &mut pblob).unwrap();
        for d in &ds {
            blob = damage(blob, d);
            pblob = damage(pblob, d);
        }
        let before = vec![samples.first().cloned().unwrap_or(Sample {
            t_ns: 1, device: 1, power_w: None, energy_j: None, gpu_temp_c: None,
            mem_temp_c: None, sm_clock_mhz: None, util_pct: None, throttle_reasons: 0,
        })];
        let mut out = before.clone();
        match Decoder::new().decode_samples(&blob, &mut out) {
            Ok(()) => prop_assert!(out.len() - 1 <= blob.len() * 16),
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                let (got, want): (Vec<Bits>, Vec<Bits>) =
                    (out.iter().map(bits).collect(), before.iter().map(bits).collect());
                prop_assert_eq!(got, want, "an error leaves the output as it was");
            }
        }
        let mut pout = Vec::new();
        if Decoder::new().decode_node_power(&pblob, &mut pout).is_ok() {
            prop_assert!(pout.len() <= pblob.len() * 16);
        }
    }

    #[test]
    fn every_cut_of_a_blob_is_an_error(samples in samples()) {
        let blob = encode(&samples);
        for len in 0..blob.len() {
            prop_assert!(decode(&blob[..len]).is_err(), "cut at {len} of {}", blob.len());
        }
    }
}

#[test]
fn version_kind_and_emptiness_are_checked_first() {
    let blob = encode(&[]);
    assert_eq!(blob, [FORMAT_VERSION, KIND_SAMPLES, 0]);
    assert_eq!(decode(&blob).unwrap(), Vec::new());
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
    let e = decode(&[2, KIND_SAMPLES, 0]).unwrap_err();
    assert_eq!(e, DecodeError::UnknownVersion { found: 2 });
    assert!(e.to_string().contains("version 2"), "{e}");
    let mut out = Vec::new();
    let e = Decoder::new()
        .decode_node_power(&blob, &mut out)
        .unwrap_err();
    assert!(
        matches!(e, DecodeError::WrongKind { found: b'S', .. }),
        "{e}"
    );
    // Trailing bytes.
    assert!(matches!(
        decode(&[FORMAT_VERSION, KIND_SAMPLES, 0, 0]),
        Err(DecodeError::Invalid { offset: 3, .. })
    ));
}

#[test]
fn counts_are_capped_by_the_blob_size_before_anything_is_allocated() {
    // A 7-byte blob declaring a billion samples.
    let mut blob = vec![FORMAT_VERSION, KIND_SAMPLES];
    stream::put_varint(&mut blob, 1_000_000_000);
    let e = decode(&blob).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::TooMany {
                count: 1_000_000_000,
                limit: 112,
                ..
            }
        ),
        "{e}"
    );
    // The encoder refuses what the decoder would.
    let mut out = Vec::new();
    assert!(header(&mut out, KIND_SAMPLES, "samples", MAX_ITEMS + 1).is_err());
    assert!(header(&mut out, KIND_SAMPLES, "samples", MAX_ITEMS).is_ok());
}

#[test]
fn identical_samples_stay_within_the_size_cap() {
    // The most compressible batch there is: the anchor stream keeps 1 byte per 16 samples.
    let s = Sample {
        t_ns: 7,
        device: 3,
        power_w: Some(1.0),
        energy_j: None,
        gpu_temp_c: None,
        mem_temp_c: None,
        sm_clock_mhz: Some(1),
        util_pct: None,
        throttle_reasons: 0,
    };
    let samples = vec![s; 50_000];
    let blob = encode(&samples);
    assert!(blob.len() * 16 >= samples.len(), "{} bytes", blob.len());
    assert_eq!(decode(&blob).unwrap(), samples);
    let power: Vec<(i64, f32)> = vec![(5, 2.0); 50_000];
    let mut pblob = Vec::new();
    Encoder::new()
        .encode_node_power(&power, &mut pblob)
        .unwrap();
    let mut back = Vec::new();
    Decoder::new().decode_node_power(&pblob, &mut back).unwrap();
    assert_eq!(back.len(), power.len());
}

#[test]
fn decoding_appends_to_a_reused_buffer() {
    let batches = demo_batches(Some(1));
    let mut dec = Decoder::new();
    let mut enc = Encoder::new();
    let mut out = Vec::new();
    let mut want = Vec::new();
    let mut blob = Vec::new();
    for b in batches.iter().take(5) {
        blob.clear();
        enc.encode_samples(&b.samples, &mut blob).unwrap();
        dec.decode_samples(&blob, &mut out).unwrap();
        want.extend(b.samples.iter().map(bits));
    }
    assert_eq!(out.iter().map(bits).collect::<Vec<_>>(), want);
}

/// The issue's bound: 15 MiB per million samples, node power included.
const MAX_BYTES_PER_SAMPLE: f64 = 15.0 * 1024.0 * 1024.0 / 1e6;

#[test]
fn demo_telemetry_round_trips_within_the_issues_size_bound() {
    let batches = demo_batches(None);
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let (mut samples, mut bytes) = (0usize, 0usize);
    let (mut blob, mut back, mut power) = (Vec::new(), Vec::new(), Vec::new());
    for b in &batches {
        assert_eq!(b.samples.len(), 80, "a demo batch: 10 instants × 8 devices");
        blob.clear();
        enc.encode_samples(&b.samples, &mut blob).unwrap();
        bytes += blob.len();
        back.clear();
        dec.decode_samples(&blob, &mut back).unwrap();
        assert_eq!(back, b.samples);
        blob.clear();
        enc.encode_node_power(&b.node_power_w, &mut blob).unwrap();
        bytes += blob.len();
        power.clear();
        dec.decode_node_power(&blob, &mut power).unwrap();
        assert!(power
            .iter()
            .zip(&b.node_power_w)
            .all(|(a, b)| a.0 == b.0 && a.1 == Some(b.1)));
        samples += b.samples.len();
    }
    assert_eq!(
        samples,
        80 * 8 * 600,
        "the demo: 80 nodes × 8 GPUs × 10 Hz × 60 s"
    );
    let per_sample = bytes as f64 / samples as f64;
    println!("demo telemetry: {samples} samples, {bytes} bytes, {per_sample:.2} bytes/sample");
    assert!(
        per_sample <= MAX_BYTES_PER_SAMPLE,
        "{per_sample:.2} bytes/sample > {MAX_BYTES_PER_SAMPLE:.2}"
    );
}
