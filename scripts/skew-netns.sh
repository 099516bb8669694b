#!/usr/bin/env bash
# Phase-start skew across network namespaces: how far from the scheduled instant every probe starts
# every phase.
#
#   scripts/skew-netns.sh [PROBES]     # default 32, at most 200; needs root and iproute2 (`ip`)
#
# Topology (as tests/common/netns.rs builds it; nothing is created in, or changed about, the
# namespace the script runs in): a "switch" namespace holding a Linux bridge, and one namespace per
# host with a veth into the bridge and an address of a private /24 (10.78.9.0/24, which exists only
# inside these namespaces): the coordinator at .1, probe K at .(10+K). The coordinator is
# `hallmark run PLAN --listen 10.78.9.1:PORT --json` in its namespace; every probe is `hallmark probe
# --backend sim --devices N --no-data-plane` in its own. The plan has SKEW_PHASES (10) phases of
# SKEW_PHASE_S (3) seconds, alternating steady and square, so every probe starts a phase at a
# scheduled coordinator-clock instant SKEW_PHASES times.
#
# Numbers, from the run store once the run has ended, through the binary's read commands (no SQL
# here; the store may be SQLite or PostgreSQL): `hallmark runs show --json` for the phases' start
# skew and the run's status, `hallmark runs starts --json` for every probe-phase start with the
# probe's stored clock estimate:
#   stored offset   = offset_ns = actual_start_ns − scheduled_start_ns: the probe's start
#                     converted to the coordinator's clock with the probe's own clock estimate.
#                     It is how late the probe's timer fired against its target; an error in the
#                     clock estimate cancels out of it (the same estimate converts both ways).
#   true offset     = stored offset + clock_offset_ns: valid only here, where every
#                     namespace reads the same kernel clock (the real probe − coordinator offset is
#                     0, so the estimated offset is the estimate's error), and only as long as the
#                     estimate stored at the run's start is the one the probe used.
# The clock estimates' figures are over the probes that stored at least one phase start.
# Printed as a Markdown block on stdout (progress on stderr): p50 / p99 / max of |offset| in ms over
# all probe-phase pairs, the per-phase skew (latest − earliest start) and the clock estimates'
# uncertainty and offset.
#
# Environment: HALLMARK (binary; default target/release/hallmark), SKEW_PHASES (10), SKEW_PHASE_S
# (3), SKEW_DEVICES (simulated GPUs per probe, 8), SKEW_KEEP=1 (keep the temporary directory).
# Every wait is bounded: registration 120 s, then the plan's length + 60 s; then the coordinator is
# sent SIGTERM. The namespaces and every process started are removed on exit, on error and on
# Ctrl-C. Exit status: 0 when the run completed, 1 otherwise, 2 when a prerequisite is missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/cluster.sh
source "$root/scripts/lib/cluster.sh"
probes=${1:-32}
phases=${SKEW_PHASES:-10}
phase_s=${SKEW_PHASE_S:-3}
devices=${SKEW_DEVICES:-8}
for v in probes phases phase_s devices; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || ((${!v} < 1)); then
        echo "$0: $v must be a whole number of at least 1 (got '${!v}')" >&2
        exit 1
    fi
done
((probes <= 200)) || { echo "$0: at most 200 probes (the /24 gives .11 to .210)" >&2; exit 1; }
bin=${HALLMARK:-$root/target/release/hallmark}
[[ -x $bin ]] || { echo "$0: no hallmark binary at $bin: run 'cargo build --release' first, or set HALLMARK" >&2; exit 1; }
if (($(id -u) != 0)); then
    echo "$0: network namespaces need root (ip netns add); run it as root" >&2
    exit 2
fi
command -v ip >/dev/null || { echo "$0: 'ip' is missing (Debian package iproute2)" >&2; exit 2; }
hm_find_python "for the statistics" 2

tag="hmsk$$"
switch="${tag}sw"
net=10.78.9
port=7400
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hallmark-skew.XXXXXX")
made=()
pids=()
coord_pid=""
cleanup() {
    local all=("${pids[@]}")
    [[ -n $coord_pid ]] && all+=("$coord_pid")
    hm_stop "${all[@]}"
    # Hosts first, then the switch; a namespace takes its veths and bridge with it.
    local i
    for ((i = ${#made[@]} - 1; i >= 0; i--)); do
        ip netns del "${made[i]}" 2>/dev/null || echo "skew: could not delete namespace ${made[i]}" >&2
    done
    if [[ ${SKEW_KEEP:-0} == 1 ]]; then
        echo "skew: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "skew: $(date -u +%H:%M:%S) $*" >&2; }

ip netns add "$switch" || { echo "$0: cannot create a network namespace (ip netns add)" >&2; exit 2; }
made+=("$switch")
if ! { ip -n "$switch" link add br0 type bridge && ip -n "$switch" link set br0 up; }; then
    echo "$0: cannot create a Linux bridge in a namespace" >&2
    exit 2
fi
hosts=0
# host NAME ADDR: a namespace on the bridge with ADDR/24 on its eth0.
host() {
    local ns="${tag}$1"
    ip netns add "$ns"
    made+=("$ns")
    hosts=$((hosts + 1))
    ip -n "$switch" link add "v$hosts" type veth peer name eth0 netns "$ns"
    ip -n "$switch" link set "v$hosts" master br0
    ip -n "$switch" link set "v$hosts" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$2/24" dev eth0
    ip -n "$ns" link set eth0 up
}
log "namespaces: a bridge, the coordinator and $probes probes"
host c "$net.1"
for k in $(seq "$probes"); do host "p$k" "$net.$((10 + k))"; done

log "certificates in $tmp"
mapfile -t names < <(seq -f 'p%g' "$probes")
hm_certs "$bin" "$tmp/pki" "$net.1" "${names[@]}"

plan=$tmp/skew.toml
{
    echo "# Written by scripts/skew-netns.sh: $phases phases of ${phase_s} s, $probes probes."
    echo 'name = "skew"'
    echo 'sample_hz = 10.0'
    echo '[expect]'
    echo "nodes = $probes"
    echo "devices_per_node = $devices"
    echo 'timeout_s = 120'
    for i in $(seq "$phases"); do
        printf '[[phase]]\nname = "p%02d"\nworkload = "burn"\nduration_s = %d\n' "$i" "$phase_s"
        if ((i % 2)); then
            printf 'pattern = { kind = "steady", level = 1.0 }\n'
        else
            printf 'pattern = { kind = "square", low = 0.3, high = 1.0, period_s = 1.0, duty = 0.5 }\n'
        fi
    done
} >"$plan"

mkdir -p "$tmp/logs"
log "coordinator on $net.1:$port"
ip netns exec "${tag}c" "$bin" run "$plan" --listen "$net.1:$port" --ca "$tmp/pki/ca.pem" \
    --cert "$tmp/pki/coordinator.pem" --key "$tmp/pki/coordinator-key.pem" \
    --results "$tmp/results" --json >"$tmp/run.json" 2>"$tmp/logs/coordinator.log" &
coord_pid=$!
t0=$(date +%s)
sleep 1
for k in $(seq "$probes"); do
    RUST_LOG=warn ip netns exec "${tag}p$k" "$bin" probe --backend sim --devices "$devices" \
        --rack "rack$(((k - 1) / 8 + 1))" --no-data-plane --coordinator "$net.1:$port" \
        --ca "$tmp/pki/ca.pem" --cert "$tmp/pki/nodes/p$k.pem" --key "$tmp/pki/nodes/p$k-key.pem" \
        --node "p$k" >/dev/null 2>"$tmp/logs/p$k.log" &
    pids+=($!)
done
log "$probes probes started; the run takes about $((phases * phase_s)) s once all registered"

hm_watch "$coord_pid" $((t0 + 120 + phases * phase_s + 60)) "the run overran its plan by a minute"
coord_pid=""
log "coordinator exited with $rc after $(($(date +%s) - t0)) s"
hm_summary "$bin" "$tmp"

"$bin" runs starts "$run_id" --results "$tmp/results" --json >"$tmp/starts.json"
"$py" - "$tmp/starts.json" "$tmp/show.json" "$probes" "$phases" "$phase_s" "$devices" \
    "$rc" "$timed_out" "$(nproc)" "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git -C "$root" branch --show-current 2>/dev/null || echo '?')" <<'EOF'
import json, sys, datetime
starts_json, show, probes, phases, phase_s, devices, rc, timed_out, ncpu, commit, branch = sys.argv[1:]
s = json.load(open(show))
run = s["run_id"]
rows = json.load(open(starts_json))
# (phase, node, stored offset, estimated clock offset) of every start of a stored phase.
starts = [(r["phase_id"], r["node"], r["offset_ns"], r["clock_offset_ns"])
          for r in rows if r["offset_ns"] is not None]
# One clock estimate per probe (every start of a probe carries the same one).
clocks = list({r["node"]: (r["clock_offset_ns"], r["clock_uncertainty_ns"]) for r in rows}.values())

def pct(xs, q):
    # Nearest-rank percentile of a sorted list.
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, int(-(-q * len(xs) // 100)) - 1))
    return xs[k]

def row(label, xs):
    xs = sorted(xs)
    if not xs:
        return f"| {label} | 0 | - | - | - | - |"
    f = lambda v: f"{v / 1e6:.3f}"
    return (f"| {label} | {len(xs)} | {f(pct(xs, 50))} | {f(pct(xs, 99))} | {f(xs[-1])} "
            f"| {f(sum(xs) / len(xs))} |")

stored = [abs(d) for _, _, d, _ in starts]
true = [abs(d + o) for _, _, d, o in starts if o is not None]
signed_min = min((d for _, _, d, _ in starts), default=None)
print(f"### Phase-start skew across network namespaces: {probes} probes, {phases} phases "
      f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, branch `{branch}` at {commit})")
print()
print(f"`scripts/skew-netns.sh {probes}`: coordinator and {probes} `hallmark probe --backend sim "
      f"--devices {devices}` processes, each in its own network namespace on one Linux bridge; "
      f"{phases} phases of {phase_s} s (steady / square alternating), 10 samples/s per device; "
      f"machine: {ncpu} CPUs.")
print()
print("|offset| from the scheduled phase start, ms, over every probe-phase pair:")
print()
print("| offset | pairs | p50 | p99 | max | mean |")
print("|---|---:|---:|---:|---:|---:|")
print(row("stored (probe's start in coordinator time − scheduled start)", stored))
print(row("true (stored + estimated clock offset; one kernel clock here)", true))
print()
if signed_min is not None:
    print(f"Earliest stored start relative to schedule: {signed_min / 1e6:+.3f} ms "
          f"({'no probe started early' if signed_min >= 0 else 'some probe started early'}).")
skews = [p["start_skew_ms"] for p in s.get("phases", []) if p.get("start_skew_ms") is not None]
if skews:
    print(f"Per-phase skew (latest − earliest start, `runs show`): median {sorted(skews)[len(skews) // 2]:.3f} ms, "
          f"max {max(skews):.3f} ms over {len(skews)} phases.")
unc = sorted(u for _, u in clocks if u is not None)
off = sorted(abs(o) for o, _ in clocks if o is not None)
if unc:
    print(f"Clock estimates stored at the run's start ({len(unc)} probes): uncertainty p50 "
          f"{pct(unc, 50) / 1e3:.1f} µs, max {unc[-1] / 1e3:.1f} µs; |estimated offset| p50 "
          f"{pct(off, 50) / 1e3:.1f} µs, max {off[-1] / 1e3:.1f} µs (the true offset is 0 here); "
          f"{sum(1 for o, u in clocks if o is not None and u is not None and abs(o) > u)} probe(s) "
          f"with |estimated offset| above their stated uncertainty.")
else:
    print("Clock estimates: none stored (null).")
expected = int(probes) * int(phases)
print(f"Run {run}: status **{s['status']}**"
      f"{' (' + s['status_reason'] + ')' if s.get('status_reason') else ''}, {s['probes']} probes, "
      f"{len(starts)} of {expected} probe-phase starts stored; coordinator exit status {rc}"
      f"{'; STOPPED: overran the time limit' if timed_out == '1' else ''}.")
EOF
status=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$tmp/show.json")
[[ $status == complete && $timed_out == 0 ]]
