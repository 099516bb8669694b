#!/usr/bin/env bash
# Finds out what this machine allows for network-namespace tests, and cleans up all it creates.
#
#   scripts/peers/netns-probe.sh
#
# Steps, each reported as `STEP <name> ok` or `STEP <name> FAILED: <error text>`:
#   netns_add      `ip netns add` of two namespaces (needs root / CAP_SYS_ADMIN)
#   veth           a veth pair, one end moved into each namespace
#   addr           addresses on both ends (a /30 that exists only between the two namespaces)
#   exec_udp       `ip netns exec` runs a UDP echo in one namespace and a client in the other
#                  (20 round trips, median printed); no packet leaves the two namespaces
#   netem          `tc qdisc add ... root netem delay 1ms` on the veth inside a namespace
#   tbf            `tc qdisc replace ... root tbf` (rate limiting) on the same veth
#   htb            `tc qdisc replace ... root htb` on the same veth
#   tap            a TAP device in a namespace (`ip tuntap add mode tap`, needs /dev/net/tun): the
#                  slow link of tests/netns.rs is two TAPs joined by a delaying thread, since a
#                  token bucket (tbf, htb) delays nothing at idle and there is no netem here
#   userns_root    `unshare -rn` as root (user + network namespace), loopback brought up inside
#   userns_unpriv  `unshare -rn` as an unprivileged user (uid/gid 65534 via setpriv)
#   userns_veth    as that unprivileged user, inside `unshare -rn`: a second network namespace
#                  (`unshare -n`), a veth pair between the two, addresses, and a UDP echo over it
# The last line is `RESULT netns_probe netns=… veth=… exec=… netem=… tbf=… htb=… tap=… userns_root=…
# userns_unpriv=…` with yes/no values. Exit status 0 whatever was found; 2 when a required tool
# (ip, tc, unshare, setpriv, python3) is missing.
set -uo pipefail

for tool in ip tc unshare setpriv python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$0: '$tool' is missing (Debian packages: iproute2, util-linux, python3)" >&2
        exit 2
    fi
done
py=$(command -v python3)
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3

tag="hmp$$"
ns_a="${tag}a"
ns_b="${tag}b"
veth_a="${tag}va"
veth_b="${tag}vb"
# A /30 used only on the veth pair between the two namespaces this script creates.
addr_a=10.231.77.1
addr_b=10.231.77.2
# `ip netns add` creates /run/netns and bind-mounts it onto itself; undone at the end when this run
# made it and it is empty again.
had_run_netns=no
[[ -d /run/netns ]] && had_run_netns=yes

cleanup() {
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    # A veth left in the root namespace (a failed move) goes with its own deletion.
    ip link del "$veth_a" 2>/dev/null || true
}
trap cleanup EXIT

declare -A found
step() {
    # step NAME KEY command... — runs the command, prints ok or the error text, records yes/no.
    local name=$1 key=$2
    shift 2
    local out
    if out=$("$@" 2>&1); then
        echo "STEP $name ok${out:+: $(echo "$out" | tr '\n' ' ' | sed 's/ *$//')}"
        [[ -n $key ]] && found[$key]=yes
        return 0
    fi
    echo "STEP $name FAILED: $(echo "$out" | tr '\n' ' ' | sed 's/ *$//')"
    [[ -n $key ]] && found[$key]=no
    return 1
}
for key in netns veth exec netem tbf htb tap userns_root userns_unpriv userns_veth; do found[$key]=no; done

echo "kernel $(uname -r); $(ip -V); user $(id -un) (uid $(id -u))"
echo "user.max_user_namespaces=$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo '?')" \
    "user.max_net_namespaces=$(cat /proc/sys/user/max_net_namespaces 2>/dev/null || echo '?')"

add_two() { ip netns add "$ns_a" && ip netns add "$ns_b"; }
make_veth() {
    ip link add "$veth_a" type veth peer name "$veth_b" &&
        ip link set "$veth_a" netns "$ns_a" &&
        ip link set "$veth_b" netns "$ns_b"
}
set_addrs() {
    ip -n "$ns_a" link set lo up && ip -n "$ns_b" link set lo up &&
        ip -n "$ns_a" addr add "$addr_a/30" dev "$veth_a" &&
        ip -n "$ns_b" addr add "$addr_b/30" dev "$veth_b" &&
        ip -n "$ns_a" link set "$veth_a" up && ip -n "$ns_b" link set "$veth_b" up
}
udp_exchange() {
    # Echo server in B (stops after 20 datagrams or 10 s), client in A (20 round trips, 2 s each).
    timeout 15 ip netns exec "$ns_b" "$py" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 40777)); s.settimeout(10)
for _ in range(20):
    data, peer = s.recvfrom(2048); s.sendto(data, peer)
' "$addr_b" &
    local server=$!
    sleep 0.5
    local status=0
    timeout 15 ip netns exec "$ns_a" "$py" -c '
import socket, sys, time, statistics
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
rtts = []
for i in range(20):
    t = time.perf_counter(); s.sendto(b"x" * 64, (sys.argv[1], 40777)); s.recvfrom(2048)
    rtts.append((time.perf_counter() - t) * 1e6)
print("20 UDP round trips %s -> %s, median %.1f us" % (sys.argv[2], sys.argv[1], statistics.median(rtts)))
' "$addr_b" "$addr_a" || status=$?
    wait "$server" 2>/dev/null || true
    return "$status"
}

if step netns_add netns add_two; then
    if step veth veth make_veth && step addr "" set_addrs; then
        step exec_udp exec udp_exchange
        step netem netem tc -n "$ns_a" qdisc add dev "$veth_a" root netem delay 1ms
        step tbf tbf tc -n "$ns_a" qdisc replace dev "$veth_a" root tbf rate 1gbit burst 256kb latency 10ms
        step htb htb tc -n "$ns_a" qdisc replace dev "$veth_a" root handle 1: htb default 10
        step tap tap ip -n "$ns_a" tuntap add dev "${tag}t" mode tap
    fi
fi
cleanup
left=$(ip netns list 2>/dev/null | grep -c "^$tag" || true)
if [[ $had_run_netns == no && -d /run/netns && -z $(ls -A /run/netns) ]]; then
    while mountpoint -q /run/netns; do umount /run/netns || break; done
    rmdir /run/netns 2>/dev/null || true
fi
echo "cleanup: $left namespace(s) of this run left; /run/netns $([[ -d /run/netns ]] && echo present || echo absent)"

# shellcheck disable=SC2016 # expanded by the shell inside the namespace
step userns_root userns_root timeout 10 unshare -rn sh -c 'ip link set lo up && echo "uid $(id -u) inside; $(ip -br link show lo)"'
# shellcheck disable=SC2016 # expanded by the shell inside the namespace
step userns_unpriv userns_unpriv timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups \
    --inh-caps=-all unshare -rn sh -c 'ip link set lo up && echo "uid $(id -u) inside; $(ip -br link show lo)"'

step userns_veth userns_veth timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups \
    --inh-caps=-all unshare -rn "$py" -c '
import os, socket, subprocess, sys, time
def run(cmd): subprocess.run(cmd, check=True)
run(["ip", "link", "set", "lo", "up"])
# A second network namespace, owned by the same user namespace, held open by a sleeping child.
inner = subprocess.Popen(["unshare", "-n", "sleep", "15"])
mine = os.readlink("/proc/self/ns/net")
for _ in range(100):
    if os.readlink("/proc/%d/ns/net" % inner.pid) != mine: break
    time.sleep(0.02)
else: sys.exit("the inner namespace did not appear")
pid = str(inner.pid)
into = ["nsenter", "-t", pid, "-n"]
try:
    run(["ip", "link", "add", "hmpx", "type", "veth", "peer", "name", "hmpy", "netns", pid])
    run(["ip", "addr", "add", "10.231.78.1/30", "dev", "hmpx"]); run(["ip", "link", "set", "hmpx", "up"])
    run(into + ["ip", "addr", "add", "10.231.78.2/30", "dev", "hmpy"]); run(into + ["ip", "link", "set", "hmpy", "up"])
    server = subprocess.Popen(into + [sys.executable, "-c",
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((\"10.231.78.2\", 40778));"
        " s.settimeout(5); d, p = s.recvfrom(64); s.sendto(d, p)"])
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); cli.settimeout(0.5)
    for _ in range(10):
        cli.sendto(b"ping", ("10.231.78.2", 40778))
        try: print("echo %r over a veth between two namespaces of an unprivileged user namespace" % cli.recvfrom(64)[0]); break
        except socket.timeout: continue
    else: sys.exit("no echo over the veth")
    server.wait(timeout=5)
finally:
    inner.kill(); inner.wait()
'

echo "RESULT netns_probe netns=${found[netns]} veth=${found[veth]} exec=${found[exec]}" \
    "netem=${found[netem]} tbf=${found[tbf]} htb=${found[htb]} tap=${found[tap]}" \
    "userns_root=${found[userns_root]} userns_unpriv=${found[userns_unpriv]}" \
    "userns_veth=${found[userns_veth]}"
