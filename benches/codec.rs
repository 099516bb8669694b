//! Codec throughput: encode and decode of realistic protocol messages.
//!
//! Run with `cargo bench --bench codec` (release build). `-- --quick` (or `HALLMARK_BENCH_QUICK=1`)
//! runs every measurement briefly, for a smoke test; its numbers are not for the record.
//!
//! Each measurement runs for a fixed time after a warm-up, is repeated, and the median repetition is
//! reported. Encoding goes through `encode_frame_into` into a reused buffer, as `FramedSend` does;
//! decoding pushes one whole frame into a `FrameDecoder` and takes the message out with
//! `next_message`, as the receiver does for a frame that arrives in one read.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use hallmark_protocol::codec::{encode_frame_into, FrameDecoder, MAX_FRAME_LEN};
use hallmark_protocol::{
    ClockPing, ClockPong, CoordinatorMessage, ProbeMessage, Sample, TelemetryBatch,
};
use serde::{de::DeserializeOwned, Serialize};

/// How long each measurement runs.
struct Timing {
    warmup: Duration,
    measure: Duration,
    repeats: usize,
}

impl Timing {
    fn from_args() -> Timing {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var("HALLMARK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Timing {
                warmup: Duration::from_millis(20),
                measure: Duration::from_millis(100),
                repeats: 3,
            }
        } else {
            Timing {
                warmup: Duration::from_millis(500),
                measure: Duration::from_secs(2),
                repeats: 5,
            }
        }
    }
}

/// A coordinator-clock instant in late 2026, ns since the UNIX epoch.
const T0_NS: i64 = 1_795_000_000_000_000_000;

/// One node for one second at 10 Hz with 8 GPUs under full load: 80 samples, every sensor read.
fn telemetry_batch() -> TelemetryBatch {
    const HZ: i64 = 10;
    const GPUS: u16 = 8;
    let period_ns = 1_000_000_000 / HZ;
    let mut samples = Vec::with_capacity((HZ as usize) * usize::from(GPUS));
    let mut node_power_w = Vec::with_capacity(HZ as usize);
    for tick in 0..HZ {
        // Sample instants carry the jitter of a real sampling loop, not round numbers.
        let t_ns = T0_NS + tick * period_ns + 173_219 + tick * 4_127;
        let mut node_w = 1_850.0f32; // CPUs, fans, NICs, PSU losses
        for device in 0..GPUS {
            let d = f32::from(device);
            let k = tick as f32;
            let power_w = 652.4 + 9.7 * d - 3.1 * k + 0.37 * d * k;
            node_w += power_w;
            samples.push(Sample {
                t_ns: t_ns + i64::from(device) * 11_503,
                device,
                power_w: Some(power_w),
                energy_j: Some(1_734_512.875 + 3_517.25 * f64::from(device) + 65.24 * k as f64),
                gpu_temp_c: Some(71.0 + 0.5 * d + 0.1 * k),
                mem_temp_c: Some(79.0 + 0.75 * d),
                sm_clock_mhz: Some(1_980 - u32::from(device) * 15 - tick as u32 * 2),
                util_pct: Some(100.0 - 0.5 * (d % 3.0)),
                // SW power cap (0x4) on some devices, none on the others.
                throttle_reasons: if device % 3 == 0 { 0x4 } else { 0 },
            });
        }
        node_power_w.push((t_ns, node_w));
    }
    TelemetryBatch {
        gaps: Vec::new(),
        seq: 86_412,
        node_power_w,
        samples,
    }
}

fn clock_ping() -> CoordinatorMessage {
    CoordinatorMessage::ClockPing(ClockPing {
        seq: 1_207,
        t1: T0_NS + 123_456_789,
    })
}

fn clock_pong() -> ProbeMessage {
    ProbeMessage::ClockPong(ClockPong {
        seq: 1_207,
        t1: T0_NS + 123_456_789,
        t2: T0_NS + 123_498_311 + 2_417_903,
        t3: T0_NS + 123_501_877 + 2_417_903,
    })
}

/// Runs `step` (which does `per_call` messages) repeatedly for `dur`; returns messages per second.
fn run_for(dur: Duration, per_call: u64, step: &mut impl FnMut()) -> f64 {
    // Check the clock only every few calls so that reading it stays out of the measurement.
    let mut batch = 1u64;
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        for _ in 0..batch {
            step();
        }
        calls += batch;
        let elapsed = start.elapsed();
        if elapsed >= dur {
            return (calls * per_call) as f64 / elapsed.as_secs_f64();
        }
        if elapsed < dur / 100 {
            batch = (batch * 2).min(1 << 20);
        }
    }
}

/// Warm-up, then `repeats` timed runs; the median rate in messages per second.
fn measure(t: &Timing, mut step: impl FnMut()) -> f64 {
    run_for(t.warmup, 1, &mut step);
    let mut rates: Vec<f64> = (0..t.repeats)
        .map(|_| run_for(t.measure, 1, &mut step))
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

struct Row {
    name: &'static str,
    frame_bytes: usize,
    encode_per_s: f64,
    decode_per_s: f64,
}

fn bench<M>(t: &Timing, name: &'static str, msg: &M) -> Row
where
    M: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut frame = Vec::new();
    encode_frame_into(msg, MAX_FRAME_LEN, &mut frame).expect("message encodes");
    let frame_bytes = frame.len();

    // The frame decodes back to the same message: the benchmark measures a working round trip.
    let mut check = FrameDecoder::new(MAX_FRAME_LEN);
    check.push(&frame).expect("frame is accepted");
    let back: M = check
        .next_message()
        .expect("frame decodes")
        .expect("one whole frame");
    assert_eq!(&back, msg, "{name} does not survive encode/decode");

    let mut buf = Vec::with_capacity(4096);
    let encode_per_s = measure(t, || {
        buf.clear();
        encode_frame_into(black_box(msg), MAX_FRAME_LEN, &mut buf).expect("message encodes");
        black_box(&buf);
    });

    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    let decode_per_s = measure(t, || {
        decoder.push(black_box(&frame)).expect("frame is accepted");
        let m: Option<M> = decoder.next_message().expect("frame decodes");
        black_box(m);
    });

    Row {
        name,
        frame_bytes,
        encode_per_s,
        decode_per_s,
    }
}

fn main() {
    let t = Timing::from_args();
    println!(
        "codec: {} ms warm-up, {} x {} ms per measurement, median reported",
        t.warmup.as_millis(),
        t.repeats,
        t.measure.as_millis()
    );

    let batch = telemetry_batch();
    let samples = batch.samples.len();
    let telemetry = ProbeMessage::Telemetry(batch);
    let rows = [
        bench(&t, "Telemetry (1 s, 10 Hz x 8 GPUs)", &telemetry),
        bench(&t, "ClockPing", &clock_ping()),
        bench(&t, "ClockPong", &clock_pong()),
        bench(
            &t,
            "Hello (8 GPUs)",
            &ProbeMessage::Hello(common::hello_8_gpus()),
        ),
    ];

    println!();
    println!("| message | bytes/frame | encode msg/s | encode MB/s | decode msg/s | decode MB/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        let mb = |rate: f64| rate * r.frame_bytes as f64 / 1e6;
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.0} | {:.1} |",
            r.name,
            r.frame_bytes,
            r.encode_per_s,
            mb(r.encode_per_s),
            r.decode_per_s,
            mb(r.decode_per_s)
        );
    }
    let tel = &rows[0];
    println!();
    println!(
        "telemetry: {} samples in a {}-byte frame = {:.2} bytes per sample on the wire \
         (node power included); {:.0} samples/s encoded, {:.0} samples/s decoded",
        samples,
        tel.frame_bytes,
        tel.frame_bytes as f64 / samples as f64,
        tel.encode_per_s * samples as f64,
        tel.decode_per_s * samples as f64
    );
}
