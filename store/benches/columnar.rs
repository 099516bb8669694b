//! Bench of the columnar telemetry codec on the demo's telemetry: the simulated demo hall (80 nodes ×
//! 8 GPUs) running the demo plan (60 s at 10 Hz, 384 000 samples in 4 800 batches of 80 samples and
//! 10 node-power readings). Encodes and decodes every batch several times with reused buffers and
//! prints samples/s (best of the rounds, node power included in the time) and bytes/sample. For
//! comparison, what deflate (fastest level) on top of every blob would save and cost.
//!
//! `cargo bench -p hallmark-store --bench columnar` (release).

#[path = "../src/columnar/demo_data.rs"]
mod demo_data;

use flate2::{write::DeflateEncoder, Compression};
use hallmark_store::columnar::{Decoder, Encoder};
use std::io::Write;
use std::time::Instant;

const ROUNDS: usize = 5;

fn main() {
    let started = Instant::now();
    let batches = demo_data::demo_batches(None);
    let samples: usize = batches.iter().map(|b| b.samples.len()).sum();
    println!(
        "columnar: demo hall × demo plan = {samples} samples in {} batches (simulated in {:.2} s)",
        batches.len(),
        started.elapsed().as_secs_f64()
    );

    let mut enc = Encoder::new();
    let mut blobs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut best_encode = f64::INFINITY;
    for _ in 0..ROUNDS {
        let mut out = Vec::with_capacity(batches.len());
        let t = Instant::now();
        for b in &batches {
            let (mut s, mut p) = (Vec::new(), Vec::new());
            enc.encode_samples(&b.samples, &mut s)
                .expect("encode samples");
            enc.encode_node_power(&b.node_power_w, &mut p)
                .expect("encode node power");
            out.push((s, p));
        }
        best_encode = best_encode.min(t.elapsed().as_secs_f64());
        blobs = out;
    }
    let sample_bytes: usize = blobs.iter().map(|b| b.0.len()).sum();
    let power_bytes: usize = blobs.iter().map(|b| b.1.len()).sum();

    let mut dec = Decoder::new();
    let (mut out, mut power) = (Vec::new(), Vec::new());
    let mut best_decode = f64::INFINITY;
    let mut checksum = 0u64;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for (s, p) in &blobs {
            out.clear();
            power.clear();
            dec.decode_samples(s, &mut out).expect("decode samples");
            dec.decode_node_power(p, &mut power)
                .expect("decode node power");
            checksum = checksum.wrapping_add(out.len() as u64 + power.len() as u64);
        }
        best_decode = best_decode.min(t.elapsed().as_secs_f64());
    }
    assert_eq!(
        checksum,
        ROUNDS as u64
            * (samples + batches.iter().map(|b| b.node_power_w.len()).sum::<usize>()) as u64
    );

    // Deflate (fastest level) on top of each blob: the bytes it would save, the time it would add.
    let t = Instant::now();
    let mut deflated = 0usize;
    for (s, p) in &blobs {
        for blob in [s, p] {
            let mut z = DeflateEncoder::new(Vec::new(), Compression::fast());
            z.write_all(blob).expect("deflate into memory");
            deflated += z.finish().expect("deflate into memory").len();
        }
    }
    let deflate_s = t.elapsed().as_secs_f64();

    let per = |b: usize| b as f64 / samples as f64;
    println!(
        "  encode: {:.2} M samples/s ({:.0} ns/sample), best of {ROUNDS}",
        samples as f64 / best_encode / 1e6,
        best_encode * 1e9 / samples as f64
    );
    println!(
        "  decode: {:.2} M samples/s ({:.0} ns/sample), best of {ROUNDS}",
        samples as f64 / best_decode / 1e6,
        best_decode * 1e9 / samples as f64
    );
    println!(
        "  size: {:.2} bytes/sample ({:.2} samples blobs + {:.2} node power) = {:.2} MiB per million samples",
        per(sample_bytes + power_bytes),
        per(sample_bytes),
        per(power_bytes),
        per(sample_bytes + power_bytes) * 1e6 / (1024.0 * 1024.0)
    );
    println!(
        "  deflate (fast) on top: {:.2} bytes/sample, +{:.0} ns/sample to encode",
        per(deflated),
        deflate_s * 1e9 / samples as f64
    );
}
