//! The cpu backend at full load: achieved GFLOP/s of its SGEMM burn (512×512 f32, results checked),
//! for 1 thread and for every core. Compare with OpenBLAS through numpy on the same cores; the
//! commands are in docs/PERFORMANCE.md.
//!
//! `cargo bench -p hallmark-workloads --bench cpu_gemm [-- SECONDS]`

use hallmark_workloads::backend::Backend;
use hallmark_workloads::cpu::CpuBackend;
use std::time::{Duration, Instant};

fn measure(threads: usize, seconds: f64) -> Result<(f64, u64), String> {
    let mut b = CpuBackend::new(Some(threads)).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let ns = |t: Instant| t.duration_since(t0).as_nanos() as i64;
    for d in 0..b.inventory().len() as u16 {
        b.set_level(d, 1.0).map_err(|e| e.to_string())?;
    }
    // Warm up, then count.
    std::thread::sleep(Duration::from_millis(500));
    b.take_results(ns(Instant::now()));
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let results = b.take_results(ns(Instant::now()));
    b.stop_all();
    let gflops = results.iter().filter_map(|r| r.gflops).sum();
    let wrong = results.iter().map(|r| r.wrong_elements).sum();
    Ok((gflops, wrong))
}

fn main() {
    let seconds = std::env::args()
        .filter_map(|a| a.parse::<f64>().ok())
        .next()
        .unwrap_or(3.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("cpu backend, SGEMM 512×512 f32, level 1, {seconds} s after 0.5 s warm-up");
    for threads in [1, cores] {
        match measure(threads, seconds) {
            Ok((g, wrong)) => {
                println!("  {threads} thread(s): {g:8.1} GFLOP/s, {wrong} wrong elements")
            }
            Err(e) => println!("  {threads} thread(s): failed: {e}"),
        }
        if cores == 1 {
            break;
        }
    }
}
