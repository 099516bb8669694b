#!/usr/bin/env bash
# Soak: the coordinator's memory and CPU over a long run of the demo hall, the coordinator in a
# process of its own.
#
#   scripts/soak.sh [MINUTES]          # default 30; at least 2
#
# What it does, all in a temporary directory that is deleted at the end (SOAK_KEEP=1 keeps it):
#   * `hallmark certs init` and one `certs issue` per node;
#   * a plan of MINUTES minutes, each minute 30 s steady at full load then 30 s of a 0.3 <-> 1.0
#     square wave at 0.5 Hz, 10 samples/s per device, waiting for every node (`[expect] nodes`);
#   * the coordinator: `hallmark run PLAN --listen 127.0.0.1:PORT ... --json` (its own process);
#   * one `hallmark probe --backend sim --sim-hall HALL --no-data-plane` process per node of the
#     hall (examples/hall-demo.toml: 80 nodes x 8 simulated GPUs);
#   * every SOAK_INTERVAL seconds (60) from the coordinator's start: its VmRSS, RssAnon and VmHWM
#     (/proc/PID/status; the store's SQLite page cache, up to its `cache_size` of 64 MiB, is
#     anonymous memory), its CPU time (utime + stime, /proc/PID/stat), the probes' summed RSS and
#     CPU time, the number of probes alive, the load average and the size of the run store;
#   * at the end `hallmark runs show RUN --json`, and a Markdown block on stdout (progress on stderr)
#     ready to paste into docs/PERFORMANCE.md.
#
# Environment: HALLMARK (binary; default target/release/hallmark), SOAK_HALL (default
# examples/hall-demo.toml), SOAK_PROBES (how many of the hall's nodes get a probe; default all),
# SOAK_INTERVAL (seconds between samples, default 60), SOAK_KEEP=1 (keep the temporary directory).
# Every wait is bounded: registration 180 s, the run MINUTES + 5 min in all; past that the
# coordinator is sent SIGTERM (it aborts and stores the run) and the script exits 1.
# Exit status: 0 when the run completed, 1 otherwise (error, timeout, incomplete run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/cluster.sh
source "$root/scripts/lib/cluster.sh"
minutes=${1:-30}
if ! [[ $minutes =~ ^[0-9]+$ ]] || ((minutes < 2)); then
    echo "$0: MINUTES must be a whole number of at least 2 (got '$minutes')" >&2
    exit 1
fi
bin=${HALLMARK:-$root/target/release/hallmark}
hall=${SOAK_HALL:-$root/examples/hall-demo.toml}
interval=${SOAK_INTERVAL:-60}
if ! [[ $interval =~ ^[0-9]+$ ]] || ((interval < 1)); then
    echo "$0: SOAK_INTERVAL must be a whole number of seconds, at least 1 (got '$interval')" >&2
    exit 1
fi
if [[ ! -x $bin ]]; then
    echo "$0: no hallmark binary at $bin: run 'cargo build --release' first, or set HALLMARK" >&2
    exit 1
fi
[[ -r $hall ]] || { echo "$0: cannot read the hall file $hall (SOAK_HALL)" >&2; exit 1; }
hm_find_python "(3.11 or later) for the hall file and the table" 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hallmark-soak.XXXXXX")
coord_pid=""
probe_pids=()
cleanup() {
    local pids=("${probe_pids[@]}")
    [[ -n $coord_pid ]] && pids+=("$coord_pid")
    hm_stop "${pids[@]}"
    if [[ ${SOAK_KEEP:-0} == 1 ]]; then
        echo "soak: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "soak: $(date -u +%H:%M:%S) $*" >&2; }

# The hall's node names, as HallSpec::node_name makes them: rowR-rackKK-nNN.
mapfile -t nodes < <("$py" - "$hall" <<'EOF'
import sys, tomllib
h = tomllib.load(open(sys.argv[1], "rb"))
for r in range(1, h["rows"] + 1):
    for k in range(1, h["racks_per_row"] + 1):
        for n in range(1, h["nodes_per_rack"] + 1):
            print(f"row{r}-rack{k:02}-n{n:02}")
EOF
)
gpus=$("$py" -c 'import sys,tomllib; print(tomllib.load(open(sys.argv[1],"rb"))["gpus_per_node"])' "$hall")
count=${SOAK_PROBES:-${#nodes[@]}}
if ! [[ $count =~ ^[0-9]+$ ]] || ((count < 1 || count > ${#nodes[@]})); then
    echo "$0: SOAK_PROBES must be 1..${#nodes[@]} (the hall's nodes), got '$count'" >&2
    exit 1
fi
nodes=("${nodes[@]:0:count}")

log "certificates for ${#nodes[@]} nodes in $tmp"
hm_certs "$bin" "$tmp/pki" "" "${nodes[@]}"

plan=$tmp/soak.toml
{
    echo "# Written by scripts/soak.sh: $minutes minutes of steady/square, ${#nodes[@]} nodes."
    echo 'name = "soak"'
    echo 'sample_hz = 10.0'
    echo '[expect]'
    echo "nodes = ${#nodes[@]}"
    echo "devices_per_node = $gpus"
    echo 'timeout_s = 180'
    for m in $(seq "$minutes"); do
        printf '[[phase]]\nname = "steady-%d"\nworkload = "burn"\nduration_s = 30\n' "$m"
        printf 'pattern = { kind = "steady", level = 1.0 }\n'
        printf '[[phase]]\nname = "square-%d"\nworkload = "burn"\nduration_s = 30\n' "$m"
        printf 'pattern = { kind = "square", low = 0.3, high = 1.0, period_s = 2.0, duty = 0.5 }\n'
    done
} >"$plan"

port=$("$py" -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
mkdir -p "$tmp/logs"
log "coordinator on $addr: $bin run soak.toml --listen $addr ..."
"$bin" run "$plan" --listen "$addr" --ca "$tmp/pki/ca.pem" --cert "$tmp/pki/coordinator.pem" \
    --key "$tmp/pki/coordinator-key.pem" --results "$tmp/results" --json \
    >"$tmp/run.json" 2>"$tmp/logs/coordinator.log" &
coord_pid=$!
t0=$(date +%s)
sleep 1
for n in "${nodes[@]}"; do
    RUST_LOG=warn "$bin" probe --backend sim --sim-hall "$hall" --no-data-plane --coordinator "$addr" \
        --ca "$tmp/pki/ca.pem" --cert "$tmp/pki/nodes/$n.pem" \
        --key "$tmp/pki/nodes/$n-key.pem" --node "$n" >/dev/null 2>"$tmp/logs/$n.log" &
    probe_pids+=($!)
done
log "${#probe_pids[@]} probe processes started"

tck=$(getconf CLK_TCK)
# cpu_ticks PID: utime + stime of a live process (fields 14 and 15 after the command name).
cpu_ticks() {
    local v
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || true)
    echo "${v:-0}"
}
kb() {
    local v
    v=$(awk -v k="$2" '$1 == k ":" { print $2 }' "/proc/$1/status" 2>/dev/null || true)
    echo "${v:-0}"
}
sample() {
    local t=$1 prss=0 pcpu=0 alive=0 p
    for p in "${probe_pids[@]}"; do
        kill -0 "$p" 2>/dev/null && alive=$((alive + 1))
        prss=$((prss + $(kb "$p" VmRSS)))
        pcpu=$((pcpu + $(cpu_ticks "$p")))
    done
    local store
    store=$(du -sk "$tmp/results" 2>/dev/null | cut -f1 || echo 0)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$(kb "$coord_pid" VmRSS)" "$(kb "$coord_pid" VmHWM)" \
        "$(cpu_ticks "$coord_pid")" "$prss" "$pcpu" "$(cut -d' ' -f1 /proc/loadavg)" "${store:-0}" "$alive" "$(kb "$coord_pid" RssAnon)" \
        >>"$tmp/samples.tsv"
}

next=$t0
# Called every second while the coordinator runs: a sample every SOAK_INTERVAL.
sample_due() {
    local now
    now=$(date +%s)
    if ((now >= next)); then
        sample $((now - t0))
        log "t=$((now - t0))s coordinator RSS $(($(kb "$coord_pid" VmRSS) / 1024)) MiB, load $(cut -d' ' -f1 /proc/loadavg)"
        next=$((next + interval))
    fi
}
hm_watch "$coord_pid" $((t0 + minutes * 60 + 300)) "the run overran MINUTES + 5 min" sample_due
coord_pid=""
t_end=$(($(date +%s) - t0))
log "coordinator exited with $rc after ${t_end}s"

hm_summary "$bin" "$tmp"
db_kib=$(du -sk "$tmp/results" | cut -f1)

"$py" - "$tmp/samples.tsv" "$tmp/show.json" "$tck" "$minutes" "${#nodes[@]}" "$gpus" "$rc" \
    "$timed_out" "$db_kib" "$t_end" "$interval" "$(nproc)" "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git -C "$root" branch --show-current 2>/dev/null || echo '?')" <<'EOF'
import json, sys, datetime
(tsv, show, tck, minutes, probes, gpus, rc, timed_out, db_kib, t_end, interval, ncpu, commit,
 branch) = sys.argv[1:]
tck = int(tck)
rows = [list(map(float, l.split("\t"))) for l in open(tsv) if l.strip()]
s = json.load(open(show))
mib = lambda kb: kb / 1024
print(f"### Soak: {probes} probe processes x {gpus} simulated GPUs, {minutes} min "
      f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, branch `{branch}` at {commit})")
print()
print(f"`scripts/soak.sh {minutes}`: coordinator `hallmark run PLAN --listen` in its own process, "
      f"{probes} `hallmark probe --backend sim --sim-hall` processes, 10 samples/s per device; "
      f"machine: {ncpu} CPUs. Sampled every {interval} s from the coordinator's start (minute 0 = "
      f"just started, before the probes register).")
print()
print("| minute | coordinator RSS MiB | of which anonymous | VmHWM MiB | coordinator CPU, % of a core (since previous) "
      "| probes alive | probes' RSS MiB (sum) | probes' CPU, % of a core | load avg (1 min) | store MiB |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
prev = None
for r in rows:
    t, rss, hwm, cpu, prss, pcpu, load, store, alive, anon = r
    if prev is None or t == prev[0]:
        ccpu = pc = "-"
    else:
        dt = t - prev[0]
        ccpu = f"{100 * (cpu - prev[3]) / tck / dt:.1f}"
        pc = f"{100 * (pcpu - prev[5]) / tck / dt:.1f}"
    print(f"| {t / 60:.1f} | {mib(rss):.1f} | {mib(anon):.1f} | {mib(hwm):.1f} | {ccpu} | {alive:.0f} | {mib(prss):.0f} | {pc} "
          f"| {load:.2f} | {mib(store):.0f} |")
    prev = r
print()
# Growth after warm-up: least-squares slope of RSS over the second half of the run (the store's
# page cache fills in the first minutes, so earlier samples would show that, not a leak).
warm = int(minutes) / 2
late = [(r[0] / 60, mib(r[1])) for r in rows if r[0] >= warm * 60]
if len(late) >= 2:
    n = len(late)
    mx = sum(x for x, _ in late) / n
    my = sum(y for _, y in late) / n
    sxx = sum((x - mx) ** 2 for x, _ in late)
    slope = sum((x - mx) * (y - my) for x, y in late) / sxx if sxx else 0.0
    print(f"Coordinator RSS over the second half (minute {warm:g} to the last sample): {late[0][1]:.1f} -> {late[-1][1]:.1f} MiB "
          f"(least-squares slope {slope:+.2f} MiB/min over {n} samples); peak (VmHWM) "
          f"{mib(max(r[2] for r in rows)):.1f} MiB.")
else:
    print(f"Too few samples after minute {warm:g} for a growth figure.")
if len(rows) >= 2:
    cpu_s = (rows[-1][3] - rows[0][3]) / tck
    print(f"Coordinator CPU over the sampled {(rows[-1][0] - rows[0][0]) / 60:.1f} min: {cpu_s:.1f} s "
          f"({100 * cpu_s / (rows[-1][0] - rows[0][0]):.1f} % of a core).")
exp, got = s.get("samples_expected"), s.get("samples_stored")
# Truncated, as hallmark prints shares: a count short of the whole never reads as 100 %.
ratio = ""
if exp:
    h = got * 10000 // exp
    ratio = " (100 %)" if got == exp else f" ({h // 100}.{h % 100:02d} %)"
    if got > exp and h == 10000:
        ratio = " (> 100 %)"
print(f"Run {s['run_id']}: status **{s['status']}**"
      f"{' (' + s['status_reason'] + ')' if s.get('status_reason') else ''}, {s['probes']} probes, "
      f"samples stored {got:,} / expected {exp:,}{ratio}; {len(s.get('gaps', []))} gap(s), "
      f"{len(s.get('lost_probes', []))} lost probe(s); store {int(db_kib) / 1024:.0f} MiB on disk; "
      f"coordinator exit status {rc}, wall {int(t_end) / 60:.1f} min"
      f"{'; STOPPED: overran the time limit' if timed_out == '1' else ''}.")
phases = s.get("phases") or []
if phases:
    wait_s = (phases[0]["scheduled_start_ns"] - s["started_at_ns"]) / 1e9
    print(f"Registration of all probes until the first phase: {wait_s:.1f} s.")
EOF
status=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$tmp/show.json")
[[ $status == complete && $timed_out == 0 ]]
