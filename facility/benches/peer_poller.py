#!/usr/bin/env python3
"""Peer baseline for the collector_poll bench (docs/PERFORMANCE.md): the poller an engineer would
write in Python with the standard library only — one kept-alive http.client connection per
Redfish service, a GET of each rack PDU's Metrics every second, the JSON parsed and the two
readings taken, the polls of a second spread over it — against the same services the bench
starts (its own binary in server mode, in a child process, so that their CPU is not counted).

Usage: peer_poller.py BENCH_BINARY [SECONDS] (BENCH_BINARY: target/release/deps/collector_poll-*)
Prints the polls per second, this process's CPU share of one core after a 5 s warm-up, and the
poll latency p50/p99, in the bench's words.
"""

import http.client
import json
import os
import subprocess
import sys
import time

WARM_UP = 5.0


def main():
    binary = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    origins = 1000
    env = dict(os.environ, HALLMARK_BENCH_REDFISH_SERVER="1", HALLMARK_BENCH_ORIGINS=str(origins))
    child = subprocess.Popen([binary], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ports = [int(p) for p in child.stdout.readline().split()]
        assert len(ports) == origins, ports[:5]
        conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=2) for p in ports]
        paths = [f"/redfish/v1/PowerEquipment/RackPDUs/{i}/Metrics" for i in range(origins)]
        start = time.monotonic()
        cpu0 = None
        t0 = start
        polls = 0
        failed = 0
        latencies = []
        k = 0
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if cpu0 is None and now - start >= WARM_UP:
                cpu0 = sum(os.times()[:2])
                t0 = now
            # Poll i is due at i / origins of each second.
            i = k % origins
            due = start + k / origins
            if due > now:
                time.sleep(due - now)
            a = time.monotonic()
            try:
                conns[i].request("GET", paths[i])
                body = json.loads(conns[i].getresponse().read())
                power = body.get("PowerWatts", {}).get("Reading")
                energy = body.get("EnergykWh", {}).get("Reading")
                ok = isinstance(power, (int, float)) and isinstance(energy, (int, float))
            except (OSError, http.client.HTTPException, ValueError):
                conns[i].close()
                ok = False
            b = time.monotonic()
            if cpu0 is not None:
                polls += 1
                failed += not ok
                latencies.append(b - a)
            k += 1
        wall = time.monotonic() - t0
        cpu = sum(os.times()[:2]) - cpu0
    finally:
        child.stdin.close()
        child.wait()
    latencies.sort()
    q = lambda p: latencies[min(int(len(latencies) * p), len(latencies) - 1)] * 1000
    print(f"peer_poller (Python {sys.version.split()[0]}, http.client, one thread): {origins} Redfish PDUs at 1 Hz, {seconds:.0f} s ({wall:.0f} s measured after a {WARM_UP:.0f} s warm-up)")
    print(f"  polls/s {polls / wall:.1f} (failed {failed}), CPU {100 * cpu / wall:.1f} % of one core, poll latency p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms")


if __name__ == "__main__":
    main()
