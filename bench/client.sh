#!/usr/bin/env bash
# Client benchmark (issue #17): the time from the first packet to the first byte of an HTTP response
# through a new flow, and iperf3 TCP throughput with each side's CPU per byte, `gatehouse client` <->
# `gatehouse gateway` direct and through a relay's XDP path, beside wireguard-go <-> wireguard-go direct
# in the same run and topology.
#
#   client 198.18.1.2 -- core (portal, forwarding) -- 198.18.2.2 gateway -- 198.18.4.0/24 resources
#                          |
#                        relay 198.18.3.2 (gatehouse relay --xdp)
#
#   bench/client.sh [--trials 50] [--seconds 10] [--debug] [--profile DIR]
#
# First byte, over --trials new flows each way: "new flow" (a resource never used before, over a tunnel
# already up: create_flow, the gateway's confirmation, the first packets) and "new client" (the client
# restarted before each trial: join, ICE, WireGuard handshake, the flow). Relayed: the core drops UDP
# between the client's and the gateway's networks, so only the relay is reachable from both. The
# reference makes a fresh WireGuard handshake before each trial (its peer removed and added again).
# Throughput: iperf3 -c for --seconds, the CPU time each tunnel process spent (user+system from
# /proc/PID/stat) per MB carried.
# Relayed throughput twice: with the core batching again what the relay's XDP program sends (GRO with
# UDP GRO forwarding on its link to the relay, as the client's UDP GSO batches the direct path), then
# with the core forwarding each packet; relayed / direct both ways.
# Every throughput is measured in two arrangements of the machine's cores:
# - shared: everything on every core, the emulated network's packet processing (the core's forwarding,
#   the relay's XDP program and what veth does around it) in softirq beside the tunnels' processes;
# - split (two cores or more): the endpoints on CPU 0 (the tunnel processes, iperf3, the packet
#   processing of the client's, gateway's and resources' namespaces, by RPS) and the emulated network on
#   CPU 1 (the core's and relay's namespaces: RPS, and their NAPI instances threaded and pinned there),
#   as the routers and the relay would be machines of their own. Direct and relayed then get the same
#   CPU for the tunnels, and relayed / direct measures what the relayed path costs them.
#
# --profile DIR: `perf record -a -g` over each throughput run; the recordings and a report of each in DIR.
# Needs root. Builds in release (--debug: the debug build). Everything it makes is removed on exit.
# Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=50
seconds=10
configuration=release
profile=""
while [ $# -gt 0 ]; do
    case "$1" in
        --trials) trials="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --debug) configuration=debug; shift ;;
        --profile) profile="$2"; shift 2 ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "client.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "client.sh: needs root (network namespaces, TUN devices, XDP)" >&2; exit 1; }
[ -z "$profile" ] || command -v perf >/dev/null || { echo "client.sh: --profile needs perf (Debian: apt-get install linux-perf)" >&2; exit 1; }
for tool in wireguard-go wg iperf3 curl openssl nft clang ethtool; do
    command -v "$tool" >/dev/null || { echo "client.sh: $tool is missing (scripts/setup installs it)" >&2; exit 1; }
done
swift build -c "$configuration" --product gatehouse >/dev/null
bin=$(swift build -c "$configuration" --show-bin-path)
python=.venv/bin/python
[ -x "$python" ] || { echo "client.sh: .venv is missing (scripts/setup makes it)" >&2; exit 1; }

tag="clb$$"
namespaces=(client core gw res relay)
work=$(mktemp -d /tmp/gatehouse-client-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${namespaces[@]}"; do ip netns delete "$tag-$ns" 2>/dev/null || true; rm -rf "/etc/netns/$tag-$ns"; done
    rm -f "/var/run/wireguard/${tag}r.sock" "/var/run/wireguard/${tag}s.sock"
    rm -rf "$work"
}
trap cleanup EXIT
# (processes in the background are started with `ip netns exec` itself, so that $! is their pid)
in_ns() { local ns=$1; shift; ip netns exec "$tag-$ns" "$@"; }
wait_for() {  # wait_for FILE PATTERN [FROM_LINE]: until the log says so (30 s)
    for _ in $(seq 300); do tail -n +"${3:-1}" "$1" | grep -qE "$2" && return 0; sleep 0.1; done
    echo "client.sh: timed out waiting for '$2' in $1:" >&2; tail -20 "$1" >&2; exit 1
}
link() {  # link NS_A IF_A ADDR_A NS_B IF_B ADDR_B
    ip link add "$2" netns "$tag-$1" type veth peer name "$5" netns "$tag-$4"
    ip -n "$tag-$1" addr add "$3/24" dev "$2"; ip -n "$tag-$1" link set "$2" up
    ip -n "$tag-$4" addr add "$6/24" dev "$5"; ip -n "$tag-$4" link set "$5" up
}

for ns in "${namespaces[@]}"; do ip netns add "$tag-$ns"; ip -n "$tag-$ns" link set lo up; done
link client eth0 198.18.1.2 core eth0 198.18.1.1
link gw eth0 198.18.2.2 core eth1 198.18.2.1
link relay eth0 198.18.3.2 core eth2 198.18.3.1
link gw eth1 198.18.4.1 res eth0 198.18.4.2
for host in $(seq 10 $((10 + 2 * trials + 2))); do ip -n "$tag-res" addr add "198.18.4.$host/24" dev eth0; done
ip -n "$tag-client" route add default via 198.18.1.1
ip -n "$tag-gw" route add default via 198.18.2.1
ip -n "$tag-relay" route add default via 198.18.3.1
ip -n "$tag-res" route add default via 198.18.4.1
for ns in core gw; do in_ns "$ns" sysctl -qw net.ipv4.ip_forward=1; done
# The relay's link as from a real NIC, and the pass-through program on the core's end of it (veth drops
# XDP_TX frames unless the receiving end runs an XDP program).
for pair in "relay eth0" "core eth2"; do set -- $pair; in_ns "$1" ethtool -K "$2" tx off >/dev/null; done
clang -target bpf -O2 -g -I bpf/include -I "/usr/include/$(uname -m)-linux-gnu" -c bpf/counter.bpf.c -o "$work/pass.o"
ip -n "$tag-core" link set dev eth2 xdpdrv obj "$work/pass.o" sec xdp
# The core batches what comes from the relay again (GRO, with UDP GRO forwarding), as the client's UDP
# GSO batches it on the direct path: the relay's XDP program sends each datagram as a frame of its own,
# and without this the core (every router of the emulated network, on the two cores the tunnels use)
# would forward, filter and hand the gateway 45 packets per 64 KB on the relayed path against one skb on
# the direct path. The relayed throughput is printed both ways.
core_batches() { in_ns core ethtool -K eth2 gro "$1" rx-udp-gro-forwarding "$1" >/dev/null; }
core_batches on
# The portal is portal.test (the core's address), over TLS with a CA made for the run.
for ns in client gw relay; do mkdir -p "/etc/netns/$tag-$ns"; printf '127.0.0.1 localhost\n198.18.1.1 portal.test\n' >"/etc/netns/$tag-$ns/hosts"; done
mkdir -p "/etc/netns/$tag-core"; printf '127.0.0.1 localhost portal.test\n' >"/etc/netns/$tag-core/hosts"
printf 'nameserver 198.18.1.1\n' >"/etc/netns/$tag-client/resolv.conf"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -days 1 \
    -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/portal.key" -out "$work/portal.csr" -subj /CN=portal.test >/dev/null 2>&1
printf 'subjectAltName=DNS:portal.test\n' >"$work/ext"
openssl x509 -req -in "$work/portal.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -out "$work/portal.pem" -days 1 \
    -extfile "$work/ext" >/dev/null 2>&1
chmod 600 "$work/portal.key"

admin=$("$bin/gatehouse" portal init --db "$work/portal.sqlite" --admin-email admin@bench.test | tail -1)
ip netns exec "$tag-core" "$bin/gatehouse" portal --db "$work/portal.sqlite" --listen 0.0.0.0:8443 --tls-certificate "$work/portal.pem" \
    --tls-key "$work/portal.key" >"$work/portal.log" 2>&1 &
pids+=($!)
wait_for "$work/portal.log" "portal listening"
url=https://portal.test:8443
api() { in_ns core curl -sf --cacert "$work/ca.pem" -X "$1" -H "Authorization: Bearer $admin" -H "Content-Type: application/json" ${3:+--data "$3"} "$url/api/v1$2"; }
field() { "$python" -c "import json,sys; print(json.load(sys.stdin)$1)"; }
site=$(api POST /sites '{"name": "bench"}' | field '["id"]')
group=$(api POST /groups '{"name": "bench"}' | field '["id"]')
actor=$(api POST /actors '{"type": "user", "name": "bench", "email": "bench@bench.test"}' | field '["id"]')
api PUT "/groups/$group/members/$actor" >/dev/null
# One resource per trial and kind (a new flow each), and the iperf3 host.
for host in $(seq 10 $((10 + 2 * trials + 2))); do
    id=$(api POST /resources "{\"name\": \"r$host\", \"type\": \"ip\", \"address\": \"198.18.4.$host\", \"site_id\": \"$site\", \"filters\": [\"tcp:8080\", \"tcp:5201\"]}" | field '["id"]')
    api POST /policies "{\"group_id\": \"$group\", \"resource_id\": \"$id\"}" >/dev/null
done
client_token=$(api POST /tokens "{\"kind\": \"client\", \"actor_id\": \"$actor\"}" | field '["secret"]')
gateway_token=$(api POST /tokens "{\"kind\": \"gateway\", \"site_id\": \"$site\"}" | field '["secret"]')
relay_token=$("$bin/gatehouse" portal relay-token create --db "$work/portal.sqlite" | tail -1)
(umask 077; printf '%s' "$client_token" >"$work/client.token")

ip netns exec "$tag-res" python3 -m http.server 8080 --bind 0.0.0.0 --directory "$work" >/dev/null 2>&1 &
pids+=($!)
ip netns exec "$tag-res" iperf3 -s -p 5201 >/dev/null 2>&1 &
iperf_server_pid=$!
pids+=($!)
ip netns exec "$tag-relay" env GATEHOUSE_TOKEN="$relay_token" "$bin/gatehouse" relay --public-ipv4 198.18.3.2 --listen-port 3478 --allow-peer 198.18.0.0/15 \
    --operations-address 127.0.0.1:9478 --portal-url "$url" --ca-file "$work/ca.pem" --name relay-1 --xdp eth0 >"$work/relay.log" 2>&1 &
relay_pid=$!
pids+=($relay_pid)
wait_for "$work/relay.log" "joined the portal"
ip netns exec "$tag-gw" env GATEHOUSE_TOKEN="$gateway_token" "$bin/gatehouse" gateway --portal-url "$url" --ca-file "$work/ca.pem" --name bench \
    --endpoint 198.18.2.2:51820 --state-dir "$work/gateway" --operations-address 127.0.0.1:9479 --tun-name "${tag}g" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
wait_for "$work/gateway.log" '\[Gateway\] init'

client_pid=""
start_client() {
    touch "$work/client.log"
    local from=$(( $(wc -l <"$work/client.log") + 1 ))
    ip netns exec "$tag-client" "$bin/gatehouse" client --portal-url "$url" --ca-file "$work/ca.pem" --token-file "$work/client.token" \
        --state-dir "$work/client" --tun-name "${tag}c" --name bench-client >>"$work/client.log" 2>&1 &
    client_pid=$!
    pids+=($client_pid)
    wait_for "$work/client.log" '\[Client\] init' "$from"
}
stop_client() { kill "$client_pid"; wait "$client_pid" 2>/dev/null || true; }
first_byte() {  # seconds to the first byte, or "fail" (curl prints a time even when it fails)
    local seconds
    if seconds=$(in_ns client curl -s -o /dev/null -m 30 -w '%{time_starttransfer}' "http://$1:8080/"); then echo "$seconds"; else echo fail; fi
}
summary() {  # summary LABEL FILE: p50, p99, max in ms over the trials
    "$python" - "$1" "$2" <<'EOF'
import sys
values = [line.strip() for line in open(sys.argv[2])]
times = sorted(float(v) * 1000 for v in values if v not in ("fail", ""))
failed = sum(1 for v in values if v == "fail")
if not times:
    print(f"{sys.argv[1]:<46} no successful trial ({failed} failed)"); sys.exit()
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"{sys.argv[1]:<46} p50 {pick(0.5):7.1f} ms  p99 {pick(0.99):7.1f} ms  max {times[-1]:7.1f} ms  ({len(times)} ok, {failed} failed)")
EOF
}
# arrange shared | arrange split ENDPOINT_PID...: the arrangement of the cores (see the top).
arrangement=shared
cores=$(nproc)
all_cpus=$(printf '%x' $(( (1 << cores) - 1 )))  # taskset's mask, in hex
arrange() {
    arrangement=$1; shift
    local endpoint_rps=0 network_rps=0 threaded=0 endpoint_cpus=$all_cpus network_cpus=$all_cpus ns dev pid
    if [ "$arrangement" = split ]; then endpoint_rps=1; network_rps=2; threaded=1; endpoint_cpus=1; network_cpus=2; fi
    for ns in client gw res core relay; do
        local mask=$endpoint_rps; case $ns in core|relay) mask=$network_rps ;; esac
        for dev in $(in_ns "$ns" ls /sys/class/net); do
            in_ns "$ns" sh -c "for q in /sys/class/net/$dev/queues/rx-*/rps_cpus; do [ ! -e \$q ] || echo $mask >\$q; done"
        done
    done
    # The two NAPI instances of the emulated network: the relay's link (its XDP program) and the core's
    # end of it (the frames the program sends back, and GRO).
    # Only their kernel threads are pinned: the ones that appear when they turn threaded.
    local napi_before
    napi_before=$(pgrep '^napi/' | sort || true)
    in_ns relay sh -c "echo $threaded >/sys/class/net/eth0/threaded"
    in_ns core sh -c "echo $threaded >/sys/class/net/eth2/threaded"
    if [ "$threaded" = 1 ]; then
        for pid in $(comm -13 <(printf '%s\n' "$napi_before") <(pgrep '^napi/' | sort || true)); do taskset -p "$network_cpus" "$pid" >/dev/null; done
    fi
    for pid in "${pids[@]}"; do taskset -a -p "$network_cpus" "$pid" >/dev/null 2>&1 || true; done
    # The endpoints: the tunnel processes given (not the relay's: it is the network's) and iperf3.
    for pid in "$@" "$iperf_server_pid"; do [ "$pid" = "${relay_pid:-}" ] || taskset -a -p "$endpoint_cpus" "$pid" >/dev/null; done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)
throughput() {  # throughput LABEL TARGET PID...: iperf3 for --seconds, Mbit/s and CPU ms per MB of each pid
    local label=$1 target=$2; shift 2
    mbits=0
    local before=() after=() pid
    for pid in "$@"; do before+=("$(cpu_ticks "$pid")"); done
    local machine_before cores_before
    machine_before=$(head -n 1 /proc/stat)
    cores_before=$(grep -E '^cpu[01] ' /proc/stat | tr '\n' ' ')
    local recorder="" name=""
    if [ -n "$profile" ]; then
        name=$(printf '%s' "$label" | tr -c 'a-z0-9' '-' | cut -c1-48)
        mkdir -p "$profile"
        perf record -q -a -g -o "$profile/$name.data" -- sleep "$seconds" >/dev/null 2>&1 &
        recorder=$!
    fi
    local pin=(taskset -c "0-$(($(nproc) - 1))"); [ "$arrangement" = shared ] || pin=(taskset -c 0)
    in_ns client "${pin[@]}" iperf3 -c "$target" -p 5201 -t "$seconds" -J >"$work/iperf.json" || { echo "$label: iperf3 failed"; return; }
    if [ -n "$recorder" ]; then
        wait "$recorder" || true
        perf report -i "$profile/$name.data" --no-children --sort pid,dso,sym --stdio -g none 2>/dev/null | head -200 >"$profile/$name.txt" || true
    fi
    for pid in "$@"; do after+=("$(cpu_ticks "$pid")"); done
    local machine_after cores_after
    machine_after=$(head -n 1 /proc/stat)
    cores_after=$(grep -E '^cpu[01] ' /proc/stat | tr '\n' ' ')
    local bytes
    bytes=$("$python" -c "import json; print(json.load(open('$work/iperf.json'))['end']['sum_received']['bytes'])")
    mbits=$(awk -v b="$bytes" -v s="$seconds" 'BEGIN { printf "%.0f", b * 8 / s / 1000000 }')
    local line
    line=$(awk -v l="$label" -v m="$mbits" 'BEGIN { printf "%-46s %8d Mbit/s", l, m }')
    local index=0
    for pid in "$@"; do
        line+=$(awk -v a="${after[$index]}" -v b="${before[$index]}" -v t="$ticks" -v n="$bytes" 'BEGIN { printf "  cpu %6.2f ms/MB", (a - b) * 1000 / t / (n / 1000000) }')
        index=$((index + 1))
    done
    echo "$line"
    # The whole machine over the run (every core): how busy, and how much of it the kernel's softirq
    # work (the XDP program, the veths, the stack) took; the tunnels' processes share these cores.
    if [ "$arrangement" = shared ]; then
        awk -v before="$machine_before" -v after="$machine_after" 'BEGIN {
            split(before, b, " "); split(after, a, " ")
            total = 0; for (i = 2; i <= 11; i++) total += a[i] - b[i]
            idle = (a[5] - b[5]) + (a[6] - b[6]); soft = a[8] - b[8]
            printf "%-46s machine busy %5.1f %%, softirq %5.1f %% (of all cores)\n", "", 100 * (total - idle) / total, 100 * soft / total
        }'
    else
        # Each core of the split: the endpoints' (0) and the emulated network's (1).
        awk -v before="$cores_before" -v after="$cores_after" 'BEGIN {
            split(before, b, " "); split(after, a, " ")
            for (core = 0; core < 2; core++) {
                o = core * 11; total = 0; for (i = 2; i <= 11; i++) total += a[o + i] - b[o + i]
                busy[core] = 100 * (total - (a[o + 5] - b[o + 5]) - (a[o + 6] - b[o + 6])) / total
            }
            printf "%-46s CPU 0 (endpoints) busy %5.1f %%, CPU 1 (network) busy %5.1f %%\n", "", busy[0], busy[1]
        }'
    fi
}
split_throughput() {  # split_throughput LABEL TARGET PID...: throughput in the split arrangement, then back
    split_mbits=0
    [ "$(nproc)" -ge 2 ] || { echo "$1: needs two cores"; return; }
    arrange split "${@:3}"
    throughput "$@"
    split_mbits=$mbits
    arrange shared
}

echo "client benchmark ($configuration build, $trials trials, $(nproc) cores, $(uname -r))"
# Direct.
start_client
first_byte 198.18.4.10 >/dev/null  # the tunnel up
: >"$work/direct-flow"
for i in $(seq 1 "$trials"); do first_byte "198.18.4.$((10 + i))" >>"$work/direct-flow"; done
summary "gatehouse direct, new flow (tunnel up)" "$work/direct-flow"
throughput "gatehouse direct, iperf3 (client, gateway)" 198.18.4.10 "$client_pid" "$gateway_pid"
direct_mbits=$mbits
split_throughput "  the same, split (endpoints, network)" 198.18.4.10 "$client_pid" "$gateway_pid"
split_direct_mbits=$split_mbits
path=$(in_ns client "$bin/gatehouse" client status --json --state-dir "$work/client" | "$python" -c "import json,sys; f=json.load(sys.stdin)['flows']; print(f[0]['path'], f[0]['candidate_pair'])")
echo "  (path: $path)"
: >"$work/direct-client"
for i in $(seq 1 "$trials"); do
    stop_client; start_client
    first_byte "198.18.4.$((10 + (i % trials) + 1))" >>"$work/direct-client"
done
summary "gatehouse direct, new client (ICE, handshake)" "$work/direct-client"

# Relayed: no UDP between the client's and the gateway's networks.
in_ns core nft -f - <<'EOF'
table inet bench_block {
    chain forward { type filter hook forward priority 0; policy accept;
        ip saddr 198.18.1.0/24 ip daddr 198.18.2.0/24 meta l4proto udp drop;
        ip saddr 198.18.2.0/24 ip daddr 198.18.1.0/24 meta l4proto udp drop; }
}
EOF
stop_client; start_client
first_byte 198.18.4.10 >/dev/null
path=$(in_ns client "$bin/gatehouse" client status --json --state-dir "$work/client" | "$python" -c "import json,sys; f=json.load(sys.stdin)['flows']; print(f[0]['path'], f[0].get('relay'), f[0]['candidate_pair'])")
echo "  (relayed path: $path)"
: >"$work/relayed-flow"
for i in $(seq 1 "$trials"); do first_byte "198.18.4.$((10 + trials + i))" >>"$work/relayed-flow"; done
summary "gatehouse relayed, new flow (tunnel up)" "$work/relayed-flow"
relay_pid=$relay_pid
throughput "gatehouse relayed, iperf3 (client, gateway, relay)" 198.18.4.10 "$client_pid" "$gateway_pid" "$relay_pid"
relayed_mbits=$mbits
core_batches off
throughput "  the same, the core forwarding each packet" 198.18.4.10 "$client_pid" "$gateway_pid" "$relay_pid"
core_batches on
per_packet_mbits=$mbits
split_throughput "  the same, split (endpoints, network)" 198.18.4.10 "$client_pid" "$gateway_pid" "$relay_pid"
awk -v r="$relayed_mbits" -v u="$per_packet_mbits" -v d="$direct_mbits" -v sr="$split_mbits" -v sd="$split_direct_mbits" 'BEGIN {
    if (d > 0) printf "  (relayed / direct, shared: %.0f %%; with the core forwarding each packet: %.0f %%)\n", 100 * r / d, 100 * u / d
    if (sd > 0) printf "  (relayed / direct, split: %.0f %%)\n", 100 * sr / sd }'
: >"$work/relayed-client"
for i in $(seq 1 "$trials"); do
    stop_client; start_client
    first_byte "198.18.4.$((10 + trials + (i % trials) + 1))" >>"$work/relayed-client"
done
summary "gatehouse relayed, new client (ICE, handshake)" "$work/relayed-client"
xdp=$(in_ns relay curl -s http://127.0.0.1:9478/metrics | grep -E '^gatehouse_relay_(xdp_packets_total\{action="relayed"|relayed_packets_total)' | tr '\n' ' ')
echo "  (relay counters: $xdp)"
stop_client
in_ns core nft delete table inet bench_block

# The reference: wireguard-go <-> wireguard-go, direct, to a resource address routed through it.
ip netns exec "$tag-gw" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "${tag}s" >"$work/wg-server.log" 2>&1 &
server_pid=$!; pids+=($server_pid)
ip netns exec "$tag-client" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "${tag}r" >"$work/wg-client.log" 2>&1 &
reference_pid=$!; pids+=($reference_pid)
for _ in $(seq 100); do in_ns client ip link show "${tag}r" >/dev/null 2>&1 && in_ns gw ip link show "${tag}s" >/dev/null 2>&1 && break; sleep 0.1; done
(umask 077; wg genkey >"$work/r.key"; wg genkey >"$work/s.key")
r_pub=$(wg pubkey <"$work/r.key"); s_pub=$(wg pubkey <"$work/s.key")
in_ns gw wg set "${tag}s" listen-port 51821 private-key "$work/s.key" peer "$r_pub" allowed-ips 10.99.0.2/32
in_ns gw ip addr add 10.99.0.1/24 dev "${tag}s"; in_ns gw ip link set "${tag}s" up
in_ns client wg set "${tag}r" private-key "$work/r.key"
in_ns client ip addr add 10.99.0.2/24 dev "${tag}r"; in_ns client ip link set "${tag}r" up
in_ns client ip route add 198.18.4.0/24 dev "${tag}r"
in_ns res ip route add 10.99.0.0/24 via 198.18.4.1
peer_up() { in_ns client wg set "${tag}r" peer "$s_pub" endpoint 198.18.2.2:51821 allowed-ips 198.18.4.0/24; }
peer_up
first_byte 198.18.4.10 >/dev/null
: >"$work/reference"
for i in $(seq 1 "$trials"); do
    # wireguard-go ignores a peer's initiation within 20 ms of the last one it took from that peer
    # (flood protection), or not later than it (replay; timestamps are rounded down to 16.8 ms): trials
    # closer together than that would wait out the 5 s retry, which no real peer meets. 50 ms apart,
    # outside the measured time.
    sleep 0.05
    in_ns client wg set "${tag}r" peer "$s_pub" remove; peer_up
    first_byte "198.18.4.$((10 + i))" >>"$work/reference"
done
summary "wireguard-go direct, fresh handshake" "$work/reference"
throughput "wireguard-go direct, iperf3 (client, server)" 198.18.4.10 "$reference_pid" "$server_pid"
reference_mbits=$mbits
split_throughput "  the same, split (endpoints, network)" 198.18.4.10 "$reference_pid" "$server_pid"
awk -v d="$direct_mbits" -v r="$reference_mbits" -v sd="$split_direct_mbits" -v sr="$split_mbits" 'BEGIN {
    if (r > 0) printf "  (gatehouse direct / wireguard-go, shared: %.1fx", d / r
    if (r > 0 && sr > 0) printf "; split: %.1fx", sd / sr
    if (r > 0) printf ")\n" }'
