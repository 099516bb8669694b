# shellcheck shell=bash
# shellcheck disable=SC2034  # rc, timed_out, run_id and py are set for the sourcing script
# What the measurement scripts (soak.sh, skew-netns.sh) share: finding Python, a private CA with a
# certificate per node, a coordinator watched until it ends or overruns, its run summary read back,
# and every process stopped on exit. Sourced, not run; each function says what it sets.

# hm_find_python WHY CODE: sets `py` to a python3 (Debian's when present), or exits CODE saying
# python3 is needed WHY.
hm_find_python() {
    py=$(command -v python3 || true)
    if [[ -x /usr/bin/python3 ]]; then py=/usr/bin/python3; fi
    [[ -n $py ]] || { echo "$0: python3 is needed $1" >&2; exit "$2"; }
}

# hm_certs BIN DIR SAN NODE...: a CA in DIR (coordinator certificate for SAN, or the default
# loopback names when SAN is empty) and one node certificate per NODE in DIR/nodes.
hm_certs() {
    local bin=$1 dir=$2 san=$3 n
    shift 3
    if [[ -n $san ]]; then
        "$bin" certs init --out "$dir" --san "$san" >/dev/null
    else
        "$bin" certs init --out "$dir" >/dev/null
    fi
    for n in "$@"; do
        "$bin" certs issue --ca "$dir" --node "$n" --out "$dir/nodes" >/dev/null
    done
}

# hm_stop PID...: SIGTERM, up to 5 s for them to go, then SIGKILL; reaps them.
hm_stop() {
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    local p alive
    for _ in $(seq 50); do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
    wait 2>/dev/null || true
}

# hm_watch PID DEADLINE WHAT [EACH]: waits (1 s steps) until the coordinator PID ends, calling the
# function EACH every step when given; at DEADLINE (epoch seconds) logs "WHAT: stopping the
# coordinator" and sends it SIGTERM (it aborts and stores the run). Sets `rc` to its exit status
# and `timed_out` to 1 when it had to be stopped.
hm_watch() {
    local pid=$1 deadline=$2 what=$3 each=${4:-}
    timed_out=0
    while kill -0 "$pid" 2>/dev/null; do
        if [[ -n $each ]]; then "$each"; fi
        if (($(date +%s) >= deadline)); then
            log "$what: stopping the coordinator"
            timed_out=1
            kill -TERM "$pid" 2>/dev/null || true
            break
        fi
        sleep 1
    done
    set +e
    wait "$pid"
    rc=$?
    set -e
}

# hm_summary BIN TMP: the run id from the coordinator's `--json` output (TMP/run.json), and
# `hallmark runs show RUN --json` in TMP/show.json. Sets `run_id`; exits 1 with the end of the
# coordinator's log (TMP/logs/coordinator.log) when it printed no summary.
hm_summary() {
    local bin=$1 tmp=$2
    run_id=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$tmp/run.json" 2>/dev/null || true)
    if [[ -z $run_id ]]; then
        echo "$0: the coordinator printed no run summary; its log ends with:" >&2
        tail -20 "$tmp/logs/coordinator.log" >&2
        exit 1
    fi
    "$bin" runs show "$run_id" --results "$tmp/results" --json >"$tmp/show.json"
}
