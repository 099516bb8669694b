#!/usr/bin/env bash
# Baseline for `hallmark bench latency`: sockperf's UDP ping-pong round trip over loopback.
#
#   scripts/peers/sockperf-pingpong.sh [-t SECONDS] [-m BYTES] [-p PORT]
#
# Starts `sockperf server` on 127.0.0.1 and runs `sockperf ping-pong --full-rtt` against it for a
# fixed time, so the figures are whole round trips (client send -> server echo -> client receive),
# the same quantity hallmark's latency bench reports. Without --full-rtt sockperf divides every
# sample by 2 and calls it "latency"; see README.md beside this file.
#
# Options (environment variable in brackets, then the default):
#   -t SECONDS  run time; sockperf 3.7 drops the samples of its first   [SOCKPERF_TIME, 10]
#               400 ms (warm-up) and last 50 ms (cool-down)
#   -m BYTES    UDP payload size (sockperf's minimum is 14)             [SOCKPERF_MSG_SIZE, 64]
#   -p PORT     UDP port on 127.0.0.1                                   [SOCKPERF_PORT, 11111]
# CPU pinning, off unless set (taskset CPU lists, e.g. 0 and 1):
#   SOCKPERF_SERVER_CPUS  pins the server;  SOCKPERF_CLIENT_CPUS  pins the client.
#
# Installs Debian's `sockperf` when missing (apt-get; sudo when not root). Prints the versions, the
# sockperf report, and as its last line:
#   RESULT sockperf_udp_pingpong msg_bytes=… duration_s=… samples=… avg_us=… p50_us=… p99_us=…
#   p999_us=… max_us=… dropped=…
# (one line). Exits non-zero when sockperf fails or its report has no percentiles.
set -euo pipefail

duration=${SOCKPERF_TIME:-10}
msg_size=${SOCKPERF_MSG_SIZE:-64}
port=${SOCKPERF_PORT:-11111}
while getopts ":t:m:p:h" opt; do
    case $opt in
    t) duration=$OPTARG ;;
    m) msg_size=$OPTARG ;;
    p) port=$OPTARG ;;
    h)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: $0 [-t SECONDS] [-m BYTES] [-p PORT] (see -h)" >&2
        exit 2
        ;;
    esac
done
for pair in "duration:$duration" "msg_size:$msg_size" "port:$port"; do
    if [[ ! ${pair#*:} =~ ^[1-9][0-9]*$ ]]; then
        echo "$0: ${pair%%:*} must be a positive whole number, got '${pair#*:}'" >&2
        exit 2
    fi
done
if ((msg_size < 14 || msg_size > 65000)); then
    echo "$0: message size $msg_size is outside sockperf's 14..65000 bytes" >&2
    exit 2
fi
if ((port > 65535)); then
    echo "$0: port $port is not a UDP port (1..65535)" >&2
    exit 2
fi

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "$0: '$*' needs root and there is no sudo; install sockperf by hand" >&2
        exit 1
    fi
}
if ! command -v sockperf >/dev/null 2>&1; then
    echo "$0: installing Debian's sockperf" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sockperf >/dev/null
fi

server_cpus=${SOCKPERF_SERVER_CPUS:-}
client_cpus=${SOCKPERF_CLIENT_CPUS:-}
# Command prefixes that pin a side to its CPU list when one is given.
server_pin=()
client_pin=()
[[ -n $server_cpus ]] && server_pin=(taskset -c "$server_cpus")
[[ -n $client_cpus ]] && client_pin=(taskset -c "$client_cpus")

if ss -Huln "sport = :$port" 2>/dev/null | grep -q .; then
    echo "$0: UDP port $port on this machine is already in use; pick another with -p PORT" >&2
    exit 1
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "sockperf: $(sockperf --version 2>&1 | head -n 1 | sed 's/^sockperf, //')"
echo "kernel: $(uname -r); cpus: $(nproc); load: $(cut -d ' ' -f 1-3 /proc/loadavg)"
echo "settings: udp 127.0.0.1:$port msg_size=${msg_size}B duration=${duration}s" \
    "server_cpus=${server_cpus:-any} client_cpus=${client_cpus:-any}"

"${server_pin[@]}" sockperf server -i 127.0.0.1 -p "$port" >"$work/server.log" 2>&1 &
server_pid=$!
# Wait (at most 5 s) until the server's socket is bound.
for _ in $(seq 1 50); do
    if ss -Huln "sport = :$port" 2>/dev/null | grep -q .; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "$0: sockperf server exited at start:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! ss -Huln "sport = :$port" 2>/dev/null | grep -q .; then
    echo "$0: sockperf server did not bind 127.0.0.1:$port within 5 s:" >&2
    cat "$work/server.log" >&2
    exit 1
fi

status=0
timeout $((duration + 30)) \
    "${client_pin[@]}" sockperf ping-pong -i 127.0.0.1 -p "$port" -m "$msg_size" -t "$duration" --full-rtt \
    >"$work/client.log" 2>&1 || status=$?
# sockperf colours some lines; strip the escapes before reading the figures.
sed 's/\x1b\[[0-9;]*m//g' "$work/client.log" >"$work/client.txt"
cat "$work/client.txt"
if [[ $status -ne 0 ]]; then
    echo "$0: sockperf ping-pong failed (exit $status)" >&2
    exit 1
fi
if ! grep -q 'Summary: Round trip is' "$work/client.txt"; then
    echo "$0: sockperf's report has no round-trip summary (was --full-rtt ignored?)" >&2
    exit 1
fi

percentile() {
    # percentile 50.000 — the value sockperf printed for that percentile (microseconds).
    sed -n "s/.*---> percentile *$1 = *\([0-9.]*\).*/\1/p" "$work/client.txt" | head -n 1
}
p50=$(percentile 50.000)
p99=$(percentile 99.000)
p999=$(percentile 99.900)
max=$(sed -n 's/.*---> <MAX> observation = *\([0-9.]*\).*/\1/p' "$work/client.txt" | head -n 1)
avg=$(sed -n 's/.*avg-rtt=\([0-9.]*\).*/\1/p' "$work/client.txt" | head -n 1)
samples=$(sed -n 's/.*Total \([0-9]*\) observations.*/\1/p' "$work/client.txt" | head -n 1)
dropped=$(sed -n 's/.*# dropped messages = \([0-9]*\).*/\1/p' "$work/client.txt" | head -n 1)
for field in p50 p99 p999 max avg samples dropped; do
    if [[ -z ${!field} ]]; then
        echo "$0: could not read $field from sockperf's report above" >&2
        exit 1
    fi
done
echo "RESULT sockperf_udp_pingpong msg_bytes=$msg_size duration_s=$duration samples=$samples" \
    "avg_us=$avg p50_us=$p50 p99_us=$p99 p999_us=$p999 max_us=$max dropped=$dropped"
