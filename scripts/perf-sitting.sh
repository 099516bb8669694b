#!/usr/bin/env bash
# One sitting of hallmark's fabric and CPU benchmarks against their peers, back to back on this
# machine (docs/PERFORMANCE.md):
#   latency:    sockperf UDP ping-pong (round trips)      vs  hallmark bench latency (2 and 4 probes)
#   collective: Open MPI MPI_Allreduce over TCP, 4 ranks  vs  hallmark bench collective, 64 MiB
#   gemm:       numpy (OpenBLAS) SGEMM, n = 512           vs  hallmark bench gemm --backend cpu
# Each peer runs before and after its hallmark counterpart, so drift within the sitting shows.
#
#   cargo build --release && scripts/perf-sitting.sh [SECONDS]     # default 10 s per latency run
#
# Uses target/release/hallmark (or $HALLMARK). The peer scripts in scripts/peers/ install sockperf,
# Open MPI, mpi4py and numpy where missing. Prints one line per measurement and a table last.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${HALLMARK:-$root/target/release/hallmark}
secs=${1:-10}
[[ -x $bin ]] || { echo "$0: no hallmark binary at $bin; run 'cargo build --release' first" >&2; exit 2; }
command -v jq >/dev/null || { echo "$0: needs jq (Debian package jq)" >&2; exit 2; }

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
rows=()
row() { rows+=("$(printf '%-44s %14s %14s' "$1" "$2" "$3")"); echo "$1: $2 $3"; }

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"

sock() {
    local r; r=$("$here/peers/sockperf-pingpong.sh" -t "$secs" | tail -n 1)
    row "sockperf UDP ping-pong 64 B ($1)" "p50 $(echo "$r" | field p50_us) µs" "p99 $(echo "$r" | field p99_us) µs"
}
lat() {
    local j; j=$("$bin" -q bench latency --probes "$1" --seconds "$secs" --json)
    row "hallmark bench latency --probes $1" "p50 $(jq -r '.p50_us' <<<"$j") µs" "p99 $(jq -r '.p99_us' <<<"$j") µs"
}
mpi() {
    local r; r=$("$here/peers/mpi-allreduce.sh" -n 4 -b 67108864 -i 20 | tail -n 1)
    row "MPI_Allreduce TCP 4 ranks 64 MiB ($1)" "$(echo "$r" | field busbw_gbps) GB/s" "$(echo "$r" | field time_us) µs"
}
coll() {
    local j; j=$("$bin" -q bench collective --op all-reduce --ranks 4 --size 64MiB --iterations 20 --seconds 40 --json)
    row "hallmark bench collective all-reduce 64 MiB" "$(jq -r '.busbw_gbps * 1000 | round / 1000' <<<"$j") GB/s" "$(jq -r '.time_us | round' <<<"$j") µs"
    [[ $(jq -r '.wrong_elements' <<<"$j") == 0 ]] || echo "WRONG ELEMENTS: $j" >&2
}
numpy_gemm() {
    local py="${XDG_CACHE_HOME:-$HOME/.cache}/hallmark-peers/venv/bin/python"
    [[ -x $py ]] || py=python3
    local g; g=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$(nproc)" "$py" -c "
import numpy as np, time
n=512; a=np.random.rand(n,n).astype(np.float32); b=np.random.rand(n,n).astype(np.float32)
for _ in range(50): a@b
k=0; t0=time.perf_counter()
while time.perf_counter()-t0<$secs: a@b; k+=1
print(round(2*n**3*k/(time.perf_counter()-t0)/1e9, 1))")
    row "numpy SGEMM n=512, $(nproc) threads ($1)" "$g GFLOP/s" ""
}
gemm() {
    local j; j=$("$bin" -q bench gemm --backend cpu --seconds "$secs" --json)
    row "hallmark bench gemm --backend cpu" "$(jq -r '.gflops | . * 10 | round / 10' <<<"$j") GFLOP/s" "wrong $(jq -r '.wrong_elements' <<<"$j")"
}

sock before; lat 2; lat 4; sock after
mpi before; coll; mpi after
numpy_gemm before; gemm; numpy_gemm after

echo
printf '%-44s %14s %14s\n' measurement value "second value"
printf '%s\n' "${rows[@]}"
