#!/usr/bin/env bash
# gpu-check.sh — checks the cuda backend on a machine with NVIDIA GPUs, in about 7 minutes, or
# about 4 with --short.
#
# Usage: scripts/gpu-check.sh [--short] [--out DIR]
#   --out DIR  where the results go (default: $OUT where that is set, as on the device tool, else
#              $GPU_CHECK_DIR, else a new temporary directory). Everything is written under
#              DIR/gpu-check/ (JSON results, logs, the console output, summary.txt) and packed
#              into DIR/gpu-check.tar.gz at the end, however the script ends, so that one file
#              holds it all.
#   --short    shorter steps (square wave 10 s, steady burn and torch 30 s, memory bandwidth 5 s,
#              no NCCL step unless NCCL_S is set, tighter time limits): about 4 minutes in all.
#
# Runs the hallmark binary $HALLMARK (a path, relative or absolute, or a name on PATH; default
# target/dist/hallmark, else target/release/hallmark):
#   1. nvidia-smi -L (if present);
#   2. hallmark probe --list-devices --backend cuda --json (inventory, sensors, one reading);
#   3. a square wave: bench gemm bf16, full load for half of each period, none for the other half
#      (SQUARE_S seconds, PERIOD_MS period);
#   4. torch.matmul bf16 on GPU 0 at the bench's matrix order for STEADY_S seconds, where
#      `python3 -c 'import torch'` works (the reference TFLOP/s);
#   5. the steady burn: bench gemm bf16 at full load for STEADY_S seconds (all GPUs);
#   6. the memory-bandwidth kernel for MEMBW_S seconds (0 skips it);
#   7. collectives through NCCL between this node's GPUs (one rank per GPU) for NCCL_S seconds (0
#      skips it): a coordinator (`hallmark run --listen 127.0.0.1`) and one cuda probe as separate
#      processes with throw-away certificates, a plan of one collective phase with
#      transport = "nccl", 8 B to 64 MiB. On a node with one GPU this only checks the plumbing
#      (NCCL loads, a communicator of one rank forms, the results come back): the bus bandwidth
#      of one rank is 0 by definition;
# and prints what each showed, then a summary table last (metric, value, goal, ok?; also kept in
# summary.txt) and one line naming the archive. The summary is printed (and packed) whatever
# happened before, also where the cuda backend does not start.
# Libraries: where cuBLAS, NVRTC or NCCL are not installed system-wide, the directories of the
# Python wheels that hold them (nvidia-cublas, nvidia-cuda-nvrtc, nvidia-nccl, as PyTorch
# installs them) are put on LD_LIBRARY_PATH; where only libnccl.so.2 exists, a libnccl.so link to
# it in the results directory is too (cudarc looks for libnccl.so).
#   - TFLOP/s of GPU 0 ≥ 0.97 × torch bf16 TFLOP/s;
#   - mean power ≥ 0.98 × the enforced power limit over the steady burn (every GPU);
#   - no HW_POWER_BRAKE throttle bit in either burn;
#   - 0 wrong elements in either burn and in the NCCL collectives.
# Exit status: 0 when every goal that could be measured is met, 1 otherwise, 2 when a step failed
# (the cuda backend does not start, a bench gave no result) or the arguments are wrong.
#
# It only reads the GPUs: it never changes clocks, power limits, persistence or compute modes, and
# never resets a GPU.
#
# Environment: HALLMARK (binary), STEADY_S (default 60), SQUARE_S (20), PERIOD_MS (50),
# MEMBW_S (10), NCCL_S (30), OUT or GPU_CHECK_DIR (see --out).
# Every step is bounded in time (`timeout`, where it exists): a hung step is reported, not waited for.

set -euo pipefail

ARGS=("$@")
SHORT=0
OUT_ARG=""
while [[ $# -gt 0 ]]; do
    case "$1" in
    --short) SHORT=1 ;;
    --out)
        if [[ $# -lt 2 || -z "$2" ]]; then
            echo "error: --out needs a directory (scripts/gpu-check.sh [--short] [--out DIR])" >&2
            exit 2
        fi
        OUT_ARG="$2"
        shift
        ;;
    --out=*) OUT_ARG="${1#--out=}" ;;
    -h | --help)
        sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "error: unknown argument '$1' (scripts/gpu-check.sh [--short] [--out DIR])" >&2
        exit 2
        ;;
    esac
    shift
done

if [[ "$SHORT" -eq 1 ]]; then
    STEADY_S="${STEADY_S:-30}"
    SQUARE_S="${SQUARE_S:-10}"
    MEMBW_S="${MEMBW_S:-5}"
    NCCL_S="${NCCL_S:-0}"
    # Time a bench may take beyond its --seconds: starting the backend (allocating most of the
    # GPU memory, timing the GEMMs) and stopping it.
    START_S=75
    LIST_S=45
else
    STEADY_S="${STEADY_S:-60}"
    SQUARE_S="${SQUARE_S:-20}"
    MEMBW_S="${MEMBW_S:-10}"
    NCCL_S="${NCCL_S:-30}"
    START_S=150
    LIST_S=120
fi
PERIOD_MS="${PERIOD_MS:-50}"

# Where the results go: DIR/gpu-check/, packed into DIR/gpu-check.tar.gz.
BASE="${GPU_CHECK_BASE:-${OUT_ARG:-${OUT:-${GPU_CHECK_DIR:-}}}}"
if [[ -z "$BASE" ]]; then
    BASE="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
fi
mkdir -p "$BASE/gpu-check"
BASE="$(cd "$BASE" && pwd)"
DIR="$BASE/gpu-check"
ARCHIVE="$BASE/gpu-check.tar.gz"

# The binary: a path (made absolute, so that it works from any directory) or a name on PATH.
if [[ -z "${HALLMARK:-}" ]]; then
    HALLMARK=target/dist/hallmark
    [[ -x "$HALLMARK" ]] || HALLMARK=target/release/hallmark
fi
if [[ "$HALLMARK" != */* ]]; then
    HALLMARK="$(command -v "$HALLMARK" || echo "$HALLMARK")"
fi
if [[ "$HALLMARK" == */* && -e "$HALLMARK" ]]; then
    HALLMARK="$(cd "$(dirname "$HALLMARK")" && pwd)/$(basename "$HALLMARK")"
fi

# Packs the results directory into one archive (called once, after everything else).
pack() {
    if tar -czf "$ARCHIVE.tmp" -C "$BASE" gpu-check 2>"$BASE/pack.log"; then
        mv -f "$ARCHIVE.tmp" "$ARCHIVE"
        rm -f "$BASE/pack.log"
        echo "gpu-check: results packed into $ARCHIVE"
    else
        echo "gpu-check: could not pack $DIR: $(tail -n 1 "$BASE/pack.log")" >&2
    fi
}

# The checks, their output also kept in $DIR/output.log; then the archive, whatever they ended
# with. (The checks run in the pipeline's subshell; their exit status is kept.)
if [[ -z "${GPU_CHECK_INNER:-}" ]]; then
    set +e
    GPU_CHECK_INNER=1 GPU_CHECK_BASE="$BASE" HALLMARK="$HALLMARK" \
        bash "${BASH_SOURCE[0]}" "${ARGS[@]}" 2>&1 | tee "$DIR/output.log"
    status=${PIPESTATUS[0]}
    set -e
    pack
    exit "$status"
fi
say() { printf '\n== %s\n' "$*"; }

# Runs a command for at most $1 seconds where `timeout` exists (status 124 when it ran out).
bounded() {
    local limit="$1"
    shift
    if command -v timeout >/dev/null 2>&1; then
        timeout --kill-after=10 "$limit" "$@"
    else
        "$@"
    fi
}

if [[ ! -x "$HALLMARK" ]]; then
    echo "error: $HALLMARK is not an executable; build it with 'cargo build --profile dist' (or --release) or set HALLMARK" >&2
    exit 2
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "error: python3 is needed to read the JSON results; install it (or put it on PATH)" >&2
    exit 2
fi
echo "gpu-check: $(bounded 30 "$HALLMARK" --version || echo "hallmark (no --version)")$([[ "$SHORT" -eq 1 ]] && echo " (short)"), results in $DIR"

# Background processes of the NCCL step, ended however the script ends (silently: the summary
# table stays the last output).
BG_PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${BG_PIDS[@]:-}"; do
        [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null
    done
    return 0
}
trap cleanup EXIT

# The loader's cache, read once (no pipeline: under `set -o pipefail` an early-closing reader
# would fail the script).
LDCACHE="$( (ldconfig -p || /sbin/ldconfig -p) 2>/dev/null || true)"

# Whether the loader finds library file $1: in its cache or a directory of LD_LIBRARY_PATH.
findable() {
    local d
    if grep -qF -- "$1 (" <<<"$LDCACHE"; then
        return 0
    fi
    local IFS=:
    for d in ${LD_LIBRARY_PATH:-}; do
        if [[ -n "$d" && -e "$d/$1" ]]; then
            return 0
        fi
    done
    return 1
}

# The lib directories of the `nvidia` Python wheels (nvidia-cublas, -cuda-nvrtc, -nccl, ...),
# read into WHEEL_DIRS by the first call of read_wheel_dirs (bounded: an import that hangs must
# not hang the check), empty where there are none.
WHEEL_DIRS=""
WHEEL_DIRS_READ=0
read_wheel_dirs() {
    if [[ "$WHEEL_DIRS_READ" -eq 1 ]]; then
        return 0
    fi
    WHEEL_DIRS_READ=1
    WHEEL_DIRS="$(bounded 30 python3 - 2>/dev/null <<'PY' || true
import os
try:
    import nvidia
except Exception:
    raise SystemExit(0)
for base in list(getattr(nvidia, "__path__", [])):
    try:
        subs = sorted(os.listdir(base))
    except OSError:
        continue
    for sub in subs:
        lib = os.path.join(base, sub, "lib")
        if os.path.isdir(lib):
            print(lib)
PY
)"
}

add_lib_dir() {
    case ":${LD_LIBRARY_PATH:-}:" in
    *":$1:"*) ;;
    *) export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$1" ;;
    esac
}

# Makes one of the library files $@ findable, the first named first: as it is, or from a wheel's
# directory.
provide() {
    local n d
    for n in "$@"; do
        if findable "$n"; then
            return 0
        fi
        read_wheel_dirs
        for d in $WHEEL_DIRS; do
            if [[ -e "$d/$n" ]]; then
                add_lib_dir "$d"
                echo "(using $d/$n from a Python wheel)"
                return 0
            fi
        done
    done
    echo "(none of $* found; the backend will say what is missing)"
    return 0
}

provide libcublas.so.13 libcublas.so.12 libcublas.so
provide libnvrtc.so.13 libnvrtc.so.12 libnvrtc.so
# cudarc 0.19 opens libnccl.so (or .so.1x); the run-time package and the wheels ship libnccl.so.2.
if ! findable libnccl.so; then
    so2="$(awk '/libnccl\.so\.2 /{ if (!f) print $NF; f = 1 }' <<<"$LDCACHE")"
    if [[ -z "$so2" ]]; then
        ldp="${LD_LIBRARY_PATH:-}"
        read_wheel_dirs
        for d in ${ldp//:/ } $WHEEL_DIRS; do
            if [[ -e "$d/libnccl.so.2" ]]; then
                so2="$d/libnccl.so.2"
                break
            fi
        done
    fi
    if [[ -n "$so2" ]]; then
        mkdir -p "$DIR/lib"
        ln -sf "$so2" "$DIR/lib/libnccl.so"
        add_lib_dir "$DIR/lib"
        echo "(linked $DIR/lib/libnccl.so -> $so2)"
    fi
fi

# Runs hallmark for at most $2 seconds with the other arguments, JSON to $DIR/$1.json, stderr to
# $DIR/$1.log; never aborts the script: the exit status is left in $DIR/$1.rc.
run_json() {
    local name="$1" limit="$2"
    shift 2
    local rc=0
    bounded "$limit" "$HALLMARK" "$@" >"$DIR/$name.json" 2>"$DIR/$name.log" || rc=$?
    echo "$rc" >"$DIR/$name.rc"
    if [[ "$rc" -ne 0 ]]; then
        echo "hallmark $* exited $rc$([[ "$rc" -eq 124 ]] && echo " (ran past ${limit} s)"):"
        tail -n 20 "$DIR/$name.log"
    fi
    return 0
}

rc_of() { cat "$DIR/$1.rc" 2>/dev/null || echo 99; }

say "nvidia-smi -L"
if command -v nvidia-smi >/dev/null 2>&1; then
    smi_rc=0
    bounded 30 nvidia-smi -L >"$DIR/nvidia-smi.txt" 2>&1 || smi_rc=$?
    cat "$DIR/nvidia-smi.txt"
    if [[ "$smi_rc" -ne 0 ]]; then
        echo "(nvidia-smi -L exited $smi_rc$([[ "$smi_rc" -eq 124 ]] && echo ": it ran past 30 s"))"
    fi
else
    echo "(nvidia-smi not found)"
fi

say "probe --list-devices --backend cuda --json"
run_json list "$LIST_S" probe --list-devices --backend cuda --json
# GPUs the backend sees (0 where it does not start): every GPU step below needs at least one.
GPUS=0
if [[ "$(rc_of list)" -ne 0 ]]; then
    echo "error: the cuda backend does not start here (exit $(rc_of list)): no GPU step runs; see the summary" >&2
    head -n 1 "$DIR/list.log" >"$DIR/list.why" 2>/dev/null || true
elif python3 - "$DIR/list.json" "$DIR/gpus" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
open(sys.argv[2], "w").write(str(len(v["devices"])))
print(f"driver {v.get('driver_version')}, {len(v['devices'])} GPU(s)")
for d in v["devices"]:
    gib = (d.get("memory_bytes") or 0) / 2**30
    print(f"  {d['index']}: {d['model']} {d['uuid']} serial {d.get('serial')} {gib:.1f} GiB, "
          f"limit {d.get('power_limit_w')} W, idle {d.get('idle_power_w')} W, slowdown "
          f"{d.get('slowdown_temp_c')} °C, shutdown {d.get('shutdown_temp_c')} °C, max operating "
          f"{d.get('max_operating_temp_c')} °C")
absent = [s for s in v["sensors"] if not s["available"]]
print(f"sensors: {len(v['sensors']) - len(absent)} of {len(v['sensors'])} answer")
for s in absent:
    print(f"  absent on GPU {s['device']}: {s['name']}: {s['detail']}")
for r in v.get("readings", []):
    print(f"  reading {r}")
for i, e in enumerate(v.get("extended") or []):
    print(f"  other counters of GPU {i}: {e}")
for s in v["sensors"]:
    if s["name"] == "power" and s["available"]:
        print(f"  power of GPU {s['device']}: {s['detail']}")
for l in v.get("libraries") or []:
    print(f"  {l['library']}: {'present' if l['present'] else 'MISSING'}")
if v.get("driver_warning"):
    print(f"  {v['driver_warning']}")
PY
then
    GPUS="$(cat "$DIR/gpus" 2>/dev/null || echo 0)"
else
    echo "(could not read the device list)"
fi
if [[ "$(rc_of list)" -eq 0 && "$GPUS" -eq 0 ]]; then
    echo "error: the cuda backend started but lists no GPU: no GPU step runs; check that nvidia-smi lists GPUs and that CUDA_VISIBLE_DEVICES names some" >&2
fi

TORCH="not run"
# The GPU steps, where the backend lists at least one GPU (the block is not indented: it holds
# Python here-documents).
if [[ "$GPUS" -gt 0 ]]; then

say "bench gemm bf16, square wave: ${SQUARE_S} s, period ${PERIOD_MS} ms"
run_json square $((SQUARE_S + START_S)) bench gemm --backend cuda --dtype bf16 --seconds "$SQUARE_S" \
    --pattern square --period-ms "$PERIOD_MS" --json

# Prints one bench result; the matrix order of GPU 0 goes to $DIR/$1.order.
show_bench() {
    python3 - "$DIR/$1.json" "$DIR/$1.order" <<'PY'
import json, sys
try:
    v = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"(no result: {e})")
    sys.exit(0)
print(f"{v['backend']} {v['kernel']} {v['dtype']} {v['pattern']} for {v['seconds']:.1f} s: "
      f"{v['tflops'] or 0:.1f} TFLOP/s in total, {v['wrong_elements']} wrong elements"
      + (f", {v['mem_bandwidth_gbps']:.0f} GB/s" if v.get("mem_bandwidth_gbps") else ""))
for d in v["devices"]:
    line = (f"  GPU {d['index']}: {d['tflops'] or 0:.1f} TFLOP/s, n={d['matrix_order']}, "
            f"{d['c_buffers']} C buffers ({d['allocated_gib'] or 0:.1f} GiB), power mean "
            f"{d['mean_power_w']} W peak {d['peak_power_w']} W of limit {d['power_limit_w']} W, "
            f"max temp GPU {d['max_gpu_temp_c']} °C memory {d['max_mem_temp_c']} °C, SM "
            f"{d['min_sm_clock_mhz']}-{d['max_sm_clock_mhz']} MHz, throttle "
            f"{'|'.join(d['throttle_reasons']) or 'none'}, wrong elements {d['wrong_elements']}")
    if d.get("mem_bandwidth_gbps"):
        line += f", {d['mem_bandwidth_gbps']:.0f} GB/s"
    print(line)
    if d.get("square"):
        s = d["square"]
        print(f"    square wave: mean power {s['high_mean_power_w']} W loaded, "
              f"{s['low_mean_power_w']} W idle")
if v["devices"]:
    open(sys.argv[2], "w").write(str(v["devices"][0]["matrix_order"] or 8192))
PY
}
show_bench square || echo "(could not read the square-wave result)"

ORDER="$(cat "$DIR/square.order" 2>/dev/null || echo 8192)"
TORCH="no"
if bounded "$LIST_S" python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    TORCH="yes"
    say "torch.matmul bf16 on GPU 0: n=${ORDER}, ${STEADY_S} s"
    bounded $((STEADY_S + START_S)) python3 - "$ORDER" "$STEADY_S" >"$DIR/torch.json" 2>"$DIR/torch.log" <<'PY' || TORCH="failed"
import json, sys, time
import torch
n, seconds = int(sys.argv[1]), float(sys.argv[2])
torch.cuda.set_device(0)
a = torch.rand(n, n, device="cuda", dtype=torch.bfloat16) * 2 - 1
b = torch.rand(n, n, device="cuda", dtype=torch.bfloat16) * 2 - 1
c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
for _ in range(5):
    torch.matmul(a, b, out=c)
torch.cuda.synchronize()
iters, start = 0, time.perf_counter()
while True:
    for _ in range(20):
        torch.matmul(a, b, out=c)
    iters += 20
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    if elapsed >= seconds:
        break
print(json.dumps({"tflops": 2 * n**3 * iters / elapsed / 1e12, "n": n, "seconds": elapsed,
                  "torch": torch.__version__, "cuda": torch.version.cuda}))
PY
    if [[ "$TORCH" == "yes" ]]; then
        cat "$DIR/torch.json"
    else
        echo "torch failed:"
        tail -n 20 "$DIR/torch.log"
    fi
else
    say "torch: not available here (python3 -c 'import torch' with CUDA fails): no reference"
fi

say "bench gemm bf16, steady: ${STEADY_S} s"
run_json steady $((STEADY_S + START_S)) bench gemm --backend cuda --dtype bf16 --seconds "$STEADY_S" --json
show_bench steady || echo "(could not read the steady result)"

if [[ "$MEMBW_S" != "0" ]]; then
    say "bench gemm --kernel memory-bandwidth: ${MEMBW_S} s"
    run_json membw $((MEMBW_S + START_S)) bench gemm --backend cuda --kernel memory-bandwidth \
        --seconds "$MEMBW_S" --json
    show_bench membw || echo "(could not read the memory-bandwidth result)"
fi

# Ends process $1: SIGTERM, then SIGKILL if it has not ended after 30 s.
stop_pid() {
    local pid="$1"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# The NCCL step; returns early (the summary then says there is no NCCL result) when a part of it
# cannot start.
nccl_step() {
    local nccl_dir="$DIR/nccl" port run_pid probe_pid
    mkdir -p "$nccl_dir"
    port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || {
        echo "(no free UDP port for the coordinator)"
        return 0
    }
    if ! bounded 60 "$HALLMARK" certs init --out "$nccl_dir/pki" >"$nccl_dir/certs.log" 2>&1 ||
        ! bounded 60 "$HALLMARK" certs issue --ca "$nccl_dir/pki" --node gpu-check-node \
            --out "$nccl_dir/pki/nodes" >>"$nccl_dir/certs.log" 2>&1; then
        echo "(the throw-away certificates could not be made:)"
        tail -n 5 "$nccl_dir/certs.log"
        return 0
    fi
    printf '%s\n' 'name = "gpu-check-nccl"' 'sample_hz = 2.0' '[expect]' 'nodes = 1' 'timeout_s = 60' \
        '[[phase]]' 'name = "nccl"' \
        'workload = { kind = "collective", min_size = "8B", max_size = "64MiB", transport = "nccl" }' \
        "duration_s = $NCCL_S" >"$nccl_dir/plan.toml"
    # One member: its probe's GPUs are all the ranks (the run is INCOMPLETE by design, since a
    # fabric phase wants two members; the NCCL numbers are what this step is for).
    "$HALLMARK" run "$nccl_dir/plan.toml" --listen "127.0.0.1:$port" --ca "$nccl_dir/pki/ca.pem" \
        --cert "$nccl_dir/pki/coordinator.pem" --key "$nccl_dir/pki/coordinator-key.pem" \
        --results "$nccl_dir/results" --json >"$DIR/nccl.json" 2>"$nccl_dir/run.log" &
    run_pid=$!
    BG_PIDS+=("$run_pid")
    "$HALLMARK" probe \
        --coordinator "127.0.0.1:$port" --ca "$nccl_dir/pki/ca.pem" \
        --cert "$nccl_dir/pki/nodes/gpu-check-node.pem" \
        --key "$nccl_dir/pki/nodes/gpu-check-node-key.pem" \
        --node gpu-check-node --rack gpu-check --backend cuda >"$nccl_dir/probe.out" \
        2>"$nccl_dir/probe.log" &
    probe_pid=$!
    BG_PIDS+=("$probe_pid")
    # Bounded: the registration wait (the probe's backend starts first), the phase and slack.
    for _ in $(seq 1 $((NCCL_S + 90))); do
        kill -0 "$run_pid" 2>/dev/null || break
        sleep 1
    done
    stop_pid "$run_pid"
    stop_pid "$probe_pid"
    python3 - "$DIR/nccl.json" <<'PY' || echo "(no NCCL result; see $nccl_dir/run.log and probe.log)"
import json, sys
v = json.load(open(sys.argv[1]))
for p in v.get("fabric", []):
    for c in p["collectives"]:
        print(f"  {c['op']:>14} {c['size_bytes']:>10} B  {c['algorithm']:>5}  world {c['ranks']}  "
              f"{c['time_us']:>10.1f} µs  busbw {c['busbw_gb_s']:.2f} GB/s  wrong {c['wrong_elements']}")
    for f in p["faults"]:
        print(f"  fault on {f['node']}: {f['message']}")
PY
    return 0
}

if [[ "$NCCL_S" != "0" ]]; then
    say "collectives through NCCL between this node's GPUs: ${NCCL_S} s"
    if [[ "$GPUS" -eq 1 ]]; then
        echo "(one GPU: this only checks the plumbing — NCCL loads, a communicator of one rank"
        echo " forms, results come back; the bus bandwidth of one rank is 0 by definition)"
    fi
    nccl_step
fi

fi # the GPU steps

say "summary"
set +e
python3 - "$DIR" "$TORCH" "$(rc_of list)" "$GPUS" <<'PY' | tee "$DIR/summary.txt"
import json, os, sys
d, torch_state, rc_list, gpus = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4] or 0)

def load(name):
    try:
        return json.load(open(os.path.join(d, name + ".json")))
    except Exception:
        return None

def rc(name):
    try:
        return open(os.path.join(d, name + ".rc")).read().strip()
    except OSError:
        return "not run"

def most(values, default=None):
    """max() of the values that are not None; `default` where there are none."""
    v = [x for x in values if x is not None]
    return max(v) if v else default

steady, square, torch, membw = load("steady"), load("square"), load("torch"), load("membw")
rows, failed, broken = [], False, False

def row(metric, value, goal, ok):
    global failed
    if ok is False:
        failed = True
    mark = {True: "ok", False: "FAIL", None: "n/a" if goal else ""}[ok]
    rows.append((metric, value, goal, mark))

if rc_list != "0" or gpus == 0:
    broken = True
    why = ""
    try:
        why = open(os.path.join(d, "list.why")).read().strip()
    except OSError:
        pass
    row("cuda backend", (f"does not start (exit {rc_list})" if rc_list != "0" else "lists no GPU")
        + (f": {why}" if why else ""), "starts", False)

def devices(run):
    return (run or {}).get("devices") or []

if gpus > 0 and steady is None:
    broken = True
    row("steady burn", f"no result (exit {rc('steady')})", "runs", False)
elif steady is not None:
    g0 = devices(steady)[0] if devices(steady) else {}
    ours = g0.get("tflops")
    row("bf16 TFLOP/s, GPU 0 (steady)", f"{ours:.1f}" if ours else "-", "", None)
    total = steady.get("tflops")
    row("bf16 TFLOP/s, all GPUs", f"{total:.1f}" if total else "-", "", None)
    if torch_state == "yes" and torch and ours:
        ratio = ours / torch["tflops"]
        row("vs torch.matmul bf16", f"{ours:.1f} / {torch['tflops']:.1f} = {ratio:.3f}",
            ">= 0.97", ratio >= 0.97)
    else:
        row("vs torch.matmul bf16", f"torch {torch_state}", ">= 0.97", None)
    worst = None
    for g in devices(steady):
        r = g.get("mean_power_over_limit")
        if r is not None and (worst is None or r < worst[0]):
            worst = (r, g)
    if worst:
        r, g = worst
        row("mean power / enforced limit (worst GPU)",
            f"GPU {g['index']}: {g['mean_power_w']:.1f} / {g['power_limit_w']:.0f} W = {r:.3f}",
            ">= 0.98", r >= 0.98)
    else:
        row("mean power / enforced limit", "no power reading", ">= 0.98", False)
    sources = sorted({(g.get("power_source") or "-").split(":")[0] for g in devices(steady)})
    row("power read from", ", ".join(sources) or "-", "", None)
    peak = most(g.get("peak_power_w") for g in devices(steady))
    row("peak power (steady)", f"{peak:.1f} W" if peak is not None else "-", "", None)
    tmax = most(g.get("max_gpu_temp_c") for g in devices(steady))
    mmax = most(g.get("max_mem_temp_c") for g in devices(steady))
    temp = lambda t: f"{t:.0f}" if t is not None else "-"
    row("max GPU / memory temperature", f"{temp(tmax)} / {temp(mmax)} °C", "", None)
    reasons = sorted({r for g in devices(steady) for r in g.get("throttle_reasons") or []})
    row("throttle reasons seen (steady)", "|".join(reasons) or "none", "", None)
    plain = [g["index"] for g in devices(steady) if g.get("plain_alloc")]
    if plain:
        row("device memory allocation", f"plain cuMemAlloc on GPU(s) {plain} (see the logs)", "",
            None)
runs = [x for x in (steady, square) if x is not None]
brake = any(g.get("power_brake_seen") for x in runs for g in devices(x))
row("HW_POWER_BRAKE throttle bit", "seen" if brake else ("not seen" if runs else "-"), "not seen",
    (not brake) if runs else None)
if gpus > 0 and square is None:
    broken = True
    row("square wave", f"no result (exit {rc('square')})", "runs", False)
elif square is not None:
    for g in devices(square):
        s = g.get("square") or {}
        hi, lo = s.get("high_mean_power_w"), s.get("low_mean_power_w")
        row(f"square wave {square.get('period_ms')} ms, GPU {g['index']}",
            f"{hi:.0f} W loaded / {lo:.0f} W idle" if hi and lo else "-", "", None)
wrong = sum(x.get("wrong_elements") or 0 for x in runs)
row("wrong elements (steady + square)", str(wrong) if runs else "-", "0",
    (wrong == 0) if runs else None)
if membw:
    bw = membw.get("mem_bandwidth_gbps")
    row("memory bandwidth (copies, all GPUs)", f"{bw:.0f} GB/s" if bw else "-", "", None)
nccl = load("nccl")
if nccl is not None:
    rows_n = [c for p in nccl.get("fabric", []) for c in p["collectives"]]
    ar = [c for c in rows_n if c["op"] == "all-reduce" and c["algorithm"] == "nccl"]
    if ar:
        big = max(ar, key=lambda c: c["size_bytes"])
        if big["ranks"] == 1:
            row(f"NCCL all-reduce {big['size_bytes'] >> 20} MiB, 1 GPU",
                f"plumbing only: {big['time_us']:.0f} µs; busbw of one rank is 0 by definition",
                "runs", True)
        else:
            row(f"NCCL all-reduce {big['size_bytes'] >> 20} MiB, {big['ranks']} GPU(s)",
                f"busbw {big['busbw_gb_s']:.1f} GB/s", "", None)
    else:
        row("NCCL all-reduce", "no NCCL result (fell back or failed)", "runs", False)
    wrong_n = sum(c["wrong_elements"] for c in rows_n)
    row("wrong elements (NCCL collectives)", str(wrong_n), "0", wrong_n == 0 if rows_n else None)

w = [max(len(str(r[i])) for r in rows + [("metric", "value", "goal", "ok?")]) for i in range(4)]
print("  ".join(h.ljust(w[i]) for i, h in enumerate(("metric", "value", "goal", "ok?"))).rstrip())
for r in rows:
    print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip())
sys.exit(2 if broken else (1 if failed else 0))
PY
status=${PIPESTATUS[0]}
exit "$status"
