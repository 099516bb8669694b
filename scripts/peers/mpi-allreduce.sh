#!/usr/bin/env bash
# Baseline for `hallmark bench collective --op all-reduce`: Open MPI's MPI_Allreduce over TCP loopback.
#
#   scripts/peers/mpi-allreduce.sh [-n RANKS] [-b BYTES] [-i ITERS] [-w WARMUP]
#
# Runs mpi_allreduce.py (beside this file) in RANKS processes on this machine with
#   mpirun -np RANKS --oversubscribe --bind-to none --mca pml ob1 --mca btl tcp,self
#          --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo
# so every byte between ranks goes through the kernel's TCP over 127.0.0.1: no shared-memory btl
# (vader), no UCX, no other interface. The run is made with the pml/btl selection logged, and the
# script fails unless every rank selected ob1, opened only the tcp and self btls and connected only
# to 127.0.0.1. `--allow-run-as-root` is added when running as root.
#
# Options (environment variable in brackets, then the default):
#   -n RANKS   MPI processes                         [MPI_RANKS, 4]
#   -b BYTES   buffer size, a multiple of 4          [MPI_BYTES, 67108864 = 64 MiB of float32]
#   -i ITERS   timed iterations                      [MPI_ITERS, 20]
#   -w WARMUP  untimed iterations before them        [MPI_WARMUP, 5]
#   MPI_TIMEOUT  seconds before the whole run is stopped [600]
#
# Installs what is missing: Debian's `openmpi-bin` (apt-get; sudo when not root), and a virtual
# environment with PyPI's mpi4py and numpy under ${XDG_CACHE_HOME:-$HOME/.cache}/hallmark-peers/venv
# (Debian's libopenmpi-dev too, should mpi4py have to be built from source). Prints the versions, the
# per-rank times, and as its last line:
#   RESULT mpi_allreduce ranks=4 bytes=67108864 iters=20 time_us=… min_rank_time_us=… algbw_gbps=…
#   busbw_gbps=… verified=yes
# (one line; GB/s of 10^9 bytes, busbw = algbw * 2(n-1)/n as in nccl-tests).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ranks=${MPI_RANKS:-4}
bytes=${MPI_BYTES:-67108864}
iters=${MPI_ITERS:-20}
warmup=${MPI_WARMUP:-5}
limit=${MPI_TIMEOUT:-600}
while getopts ":n:b:i:w:h" opt; do
    case $opt in
    n) ranks=$OPTARG ;;
    b) bytes=$OPTARG ;;
    i) iters=$OPTARG ;;
    w) warmup=$OPTARG ;;
    h)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: $0 [-n RANKS] [-b BYTES] [-i ITERS] [-w WARMUP] (see -h)" >&2
        exit 2
        ;;
    esac
done
for pair in "ranks:$ranks" "bytes:$bytes" "iters:$iters" "MPI_TIMEOUT:$limit"; do
    if [[ ! ${pair#*:} =~ ^[1-9][0-9]*$ ]]; then
        echo "$0: ${pair%%:*} must be a positive whole number, got '${pair#*:}'" >&2
        exit 2
    fi
done
if [[ ! $warmup =~ ^[0-9]+$ ]]; then
    echo "$0: warmup must be a whole number, got '$warmup'" >&2
    exit 2
fi
if ((bytes % 4 != 0)); then
    echo "$0: bytes $bytes is not a multiple of 4 (the buffer is float32)" >&2
    exit 2
fi
if ((ranks < 2)); then
    echo "$0: an all-reduce needs at least 2 ranks, got $ranks" >&2
    exit 2
fi

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "$0: '$*' needs root and there is no sudo; install it by hand" >&2
        exit 1
    fi
}
apt_updated=no
apt_install() {
    echo "$0: installing Debian's $*" >&2
    if [[ $apt_updated == no ]]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=yes
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v mpirun >/dev/null 2>&1 || ! mpirun --version 2>/dev/null | grep -q 'Open MPI'; then
    apt_install openmpi-bin
fi
if ! mpirun --version 2>/dev/null | grep -q 'Open MPI'; then
    echo "$0: 'mpirun' is not Open MPI's ($(mpirun --version 2>&1 | head -n 1)); this baseline needs" \
        "Open MPI (Debian's openmpi-bin) first on PATH" >&2
    exit 1
fi

venv=${XDG_CACHE_HOME:-$HOME/.cache}/hallmark-peers/venv
py=$venv/bin/python
if ! "$py" -c 'import mpi4py, numpy' >/dev/null 2>&1; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        apt_install python3-venv
        python3 -m venv "$venv"
    fi
    echo "$0: installing mpi4py and numpy into $venv" >&2
    if ! "$py" -m pip install -q mpi4py numpy; then
        # No binary wheel for this platform: mpi4py builds against Open MPI's headers and mpicc.
        apt_install libopenmpi-dev
        "$py" -m pip install -q mpi4py numpy
    fi
fi

root_flag=()
[[ $(id -u) -eq 0 ]] && root_flag=(--allow-run-as-root)

echo "mpirun: $(mpirun --version 2>&1 | head -n 1)"
echo "kernel: $(uname -r); cpus: $(nproc); load: $(cut -d ' ' -f 1-3 /proc/loadavg)"

out=$(mktemp)
log=$(mktemp)
trap 'rm -f "$out" "$log"' EXIT
status=0
# The ranks' standard output (the figures) and standard error (where Open MPI logs the component
# selection) are kept apart so the two never interleave within a line.
timeout --kill-after=10 "$limit" mpirun "${root_flag[@]}" -np "$ranks" --oversubscribe --bind-to none \
    --mca pml ob1 --mca btl tcp,self \
    --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
    --mca pml_base_verbose 10 --mca btl_base_verbose 10 \
    "$py" "$here/mpi_allreduce.py" --bytes "$bytes" --iters "$iters" --warmup "$warmup" \
    >"$out" 2>"$log" || status=$?

grep -a -v '^RESULT ' "$out" || true
# Standard error less the selection chatter ("[host:pid] mca: ...", "select: ...", "btl:tcp: ...").
chatter='^\[[^]]*:[0-9]+\] (mca: |select|selected |check:select|btl: ?tcp)'
grep -a -v -E "$chatter" "$log" | grep -a -v '^[[:space:]]*$' >&2 || true
if [[ $status -ne 0 ]]; then
    echo "$0: mpirun failed (exit $status$([[ $status -eq 124 ]] && echo ", stopped after $limit s"))" >&2
    exit 1
fi

problems=()
pml_ok=$(grep -a -c 'select: component ob1 selected' "$log" || true)
((pml_ok == ranks)) || problems+=("$pml_ok of $ranks ranks reported selecting pml ob1")
btls=$(grep -a -E 'mca: base: components_open: found loaded component' "$log" |
    sed -E 's/.*found loaded component //' | sort -u | tr '\n' ' ' || true)
for component in $btls; do
    case $component in
    tcp | self | ob1) ;;
    *) problems+=("component '$component' was opened (only btl tcp,self and pml ob1 are wanted)") ;;
    esac
done
peers=$({
    grep -a -E 'btl: ?tcp: attempting to connect\(\)' "$log" | sed -E 's/.* address ([^ ]+) on port.*/\1/' || true
    grep -a -E 'btl: ?tcp: now connected to ' "$log" | sed -E 's/.* now connected to ([^ ,]+),.*/\1/' || true
} | sort -u | tr '\n' ' ')
[[ -n $peers ]] || problems+=("no tcp btl connection was logged (did the ranks talk some other way?)")
for address in $peers; do
    [[ $address == 127.0.0.1 ]] || problems+=("the tcp btl connected to $address, not 127.0.0.1")
done
if ((${#problems[@]})); then
    printf '%s: the transport was not TCP over loopback only:\n' "$0" >&2
    printf '  %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "transport: pml ob1 on all $ranks ranks; components opened: ${btls% }; tcp peers: ${peers% }"

result=$(grep -a '^RESULT mpi_allreduce ' "$out" | tail -n 1)
if [[ -z $result ]]; then
    echo "$0: mpi_allreduce.py printed no RESULT line" >&2
    exit 1
fi
echo "$result"
