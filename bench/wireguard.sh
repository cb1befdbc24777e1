#!/usr/bin/env bash
# WireGuard tunnel benchmark (issue #15): iperf3 TCP (both directions) and UDP through the tunnel,
# a wireguard-go client <-> `gatehouse gateway` (authorised by a real portal: a client token, a join
# with the client's key and create_flow, as any client is), beside wireguard-go <-> wireguard-go in
# the same topology, in the same run. Prints the throughput and the CPU time each endpoint process
# spent per byte carried (user+system from /proc/PID/stat over the run).
#
#   client ns (wireguard-go, iperf3 -c) -- veth -- gateway ns (gatehouse gateway | wireguard-go)
#                                                   -- veth -- resources ns (iperf3 -s)
#
#   bench/wireguard.sh [--seconds 10] [--runs 1] [--resources 1] [--sessions 0] [--debug]
#
# --resources N: the client holds flows to N resources through the gatehouse gateway (N - 1 more, each
# a /32 with filters, besides the iperf3 host), so that every packet is judged against N rules.
# --sessions N: N other clients (devices of another user) hold a flow each to a shared resource with
# filters, which the measured client holds too: N + 1 sessions at the gatehouse gateway. The cost of
# one rule update across all of them is then measured: the shared resource's filters are changed with
# the admin API three times, and the gateway's time to recompile and rewrite every session's rules
# (from its `resource_updated` log line) is printed, with the time from the API call to that line.
#
# Needs root (namespaces, TUN). Builds in release (--debug: the debug build). Both gateways forward
# without NAT (the resource network routes the tunnel range back), so only the tunnel differs.
# Everything it makes (namespaces, processes, files) is removed on exit. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=10
runs=1
resources=1
sessions=0
configuration=release
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --resources) resources="$2"; shift 2 ;;
        --sessions) sessions="$2"; shift 2 ;;
        --debug) configuration=debug; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "wireguard.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "wireguard.sh: needs root (network namespaces, TUN devices)" >&2; exit 1; }
for tool in wireguard-go wg iperf3 curl; do
    command -v "$tool" >/dev/null || { echo "wireguard.sh: $tool is missing (scripts/setup installs it)" >&2; exit 1; }
done
swift build -c "$configuration" --product gatehouse >/dev/null
bin=$(swift build -c "$configuration" --show-bin-path)
python=.venv/bin/python
[ -x "$python" ] || { echo "wireguard.sh: .venv is missing (scripts/setup makes it)" >&2; exit 1; }

tag="wgb$$"
ns_client="$tag-client" ns_gw="$tag-gw" ns_res="$tag-res"
work=$(mktemp -d /tmp/gatehouse-wireguard-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "$ns_client" "$ns_gw" "$ns_res"; do ip netns delete "$ns" 2>/dev/null || true; done
    rm -f "/var/run/wireguard/${tag}c.sock" "/var/run/wireguard/${tag}g.sock"
    rm -rf "$work"
}
trap cleanup EXIT
# (processes in the background are started with `ip netns exec` itself, so that $! is their pid)
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
wait_for() {  # wait_for FILE PATTERN: until the log says so (30 s)
    for _ in $(seq 300); do grep -qE "$2" "$1" && return 0; sleep 0.1; done
    echo "wireguard.sh: timed out waiting for '$2' in $1:" >&2; tail -20 "$1" >&2; exit 1
}

# Topology: client 198.18.2.1 - 198.18.2.2 gateway 198.18.1.1 - 198.18.1.2 resources.
for ns in "$ns_client" "$ns_gw" "$ns_res"; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
ip link add "${tag}a" type veth peer name "${tag}b"
ip link set "${tag}a" netns "$ns_client"; ip link set "${tag}b" netns "$ns_gw"
in_ns "$ns_client" ip addr add 198.18.2.1/24 dev "${tag}a"; in_ns "$ns_client" ip link set "${tag}a" up
in_ns "$ns_gw" ip addr add 198.18.2.2/24 dev "${tag}b"; in_ns "$ns_gw" ip link set "${tag}b" up
ip link add "${tag}c" type veth peer name "${tag}d"
ip link set "${tag}c" netns "$ns_gw"; ip link set "${tag}d" netns "$ns_res"
in_ns "$ns_gw" ip addr add 198.18.1.1/24 dev "${tag}c"; in_ns "$ns_gw" ip link set "${tag}c" up
in_ns "$ns_res" ip addr add 198.18.1.2/24 dev "${tag}d"; in_ns "$ns_res" ip link set "${tag}d" up
in_ns "$ns_res" ip route add 100.64.0.0/10 via 198.18.1.1
in_ns "$ns_gw" sysctl -qw net.ipv4.ip_forward=1

# The portal (in the gateway's namespace, on its loopback), a site, a resource, a policy, a user.
admin=$("$bin/gatehouse" portal init --db "$work/portal.sqlite" --admin-email admin@bench.test | tail -1)
ip netns exec "$ns_gw" "$bin/gatehouse" portal --db "$work/portal.sqlite" --listen 127.0.0.1:0 >"$work/portal.log" 2>&1 &
pids+=($!)
wait_for "$work/portal.log" "portal listening"
portal=$(grep -oE '127\.0\.0\.1:[0-9]+' "$work/portal.log" | head -1)
api() {  # api METHOD PATH [BODY]: the response body
    in_ns "$ns_gw" curl -sf -X "$1" -H "Authorization: Bearer $admin" -H "Content-Type: application/json" \
        ${3:+--data "$3"} "http://$portal/api/v1$2"
}
field() { "$python" -c "import json,sys; print(json.load(sys.stdin)$1)"; }
site=$(api POST /sites '{"name": "bench"}' | field '["id"]')
resource=$(api POST /resources "{\"name\": \"iperf\", \"type\": \"ip\", \"address\": \"198.18.1.2\", \"site_id\": \"$site\", \"filters\": []}" | field '["id"]')
group=$(api POST /groups '{"name": "bench"}' | field '["id"]')
api POST /policies "{\"group_id\": \"$group\", \"resource_id\": \"$resource\"}" >/dev/null
extra=()
for index in $(seq 2 "$resources"); do
    id=$(api POST /resources "{\"name\": \"r$index\", \"type\": \"ip\", \"address\": \"10.200.$((index / 250)).$((index % 250 + 1))\", \"site_id\": \"$site\", \"filters\": [\"tcp:443\", \"tcp:8000-8100\", \"udp:$((5000 + index))\"]}" | field '["id"]')
    api POST /policies "{\"group_id\": \"$group\", \"resource_id\": \"$id\"}" >/dev/null
    extra+=("$id")
done
if [ "$sessions" -gt 0 ]; then
    shared=$(api POST /resources "{\"name\": \"shared\", \"type\": \"ip\", \"address\": \"10.201.0.1\", \"site_id\": \"$site\", \"filters\": [\"tcp:443\"]}" | field '["id"]')
    api POST /policies "{\"group_id\": \"$group\", \"resource_id\": \"$shared\"}" >/dev/null
    extra+=("$shared")
fi
actor=$(api POST /actors '{"type": "user", "name": "bench", "email": "bench@bench.test"}' | field '["id"]')
api PUT "/groups/$group/members/$actor" >/dev/null
client_token=$(api POST /tokens "{\"kind\": \"client\", \"actor_id\": \"$actor\"}" | field '["secret"]')
gateway_token=$(api POST /tokens "{\"kind\": \"gateway\", \"site_id\": \"$site\"}" | field '["secret"]')

# The wireguard-go client.
client_if="${tag}c"
ip netns exec "$ns_client" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$client_if" >"$work/client-wg.log" 2>&1 &
client_pid=$!
pids+=($client_pid)
for _ in $(seq 100); do in_ns "$ns_client" ip link show "$client_if" >/dev/null 2>&1 && break; sleep 0.1; done
(umask 077; wg genkey >"$work/client.key")
client_public=$(wg pubkey <"$work/client.key")

# The gatehouse gateway (same identity each start), and the flow the portal authorises.
start_gatehouse_gateway() {
    ip netns exec "$ns_gw" env GATEHOUSE_TOKEN="$gateway_token" "$bin/gatehouse" gateway --portal-url "http://$portal" --name bench \
        --endpoint 198.18.2.2:51820 --state-dir "$work/gateway" --operations-address 127.0.0.1:0 --tun-name "${tag}g" \
        --mtu 1420 --no-masquerade >"$work/gateway.log" 2>&1 &
    gatehouse_pid=$!
    pids+=($gatehouse_pid)
    wait_for "$work/gateway.log" '\[Gateway\] init'
}
start_gatehouse_gateway
join_frame="{\"event\": \"join\", \"ref\": \"j\", \"payload\": {\"version\": \"1.0\", \"external_id\": \"bench-laptop\", \"name\": \"bench-laptop\", \"public_key\": \"$client_public\"}}"
flow_frame() { echo "{\"event\": \"create_flow\", \"ref\": \"f$1\", \"payload\": {\"resource_id\": \"$1\", \"connected_gateway_ids\": []}}"; }
printf '%s\n' "$join_frame" "$(flow_frame "$resource")" >"$work/frames"
in_ns "$ns_gw" "$python" Tests/Interop/realtime_client.py "ws://$portal/api/client" "$client_token" --answers 3 --ignore ice_candidates --frames "$work/frames" \
    | tail -1 >"$work/flow.json"
# The other resources' flows, 30 at a time (the portal creates at most 32 at once per device).
for ((start = 0; start < ${#extra[@]}; start += 30)); do
    chunk=("${extra[@]:start:30}")
    { echo "$join_frame"; for id in "${chunk[@]}"; do flow_frame "$id"; done; } >"$work/frames"
    in_ns "$ns_gw" "$python" Tests/Interop/realtime_client.py "ws://$portal/api/client" "$client_token" --answers $((${#chunk[@]} + 2)) --ignore ice_candidates \
        --frames "$work/frames" >/dev/null
done
if [ "$sessions" -gt 0 ]; then
    others=$(api POST /actors '{"type": "user", "name": "others", "email": "others@bench.test"}' | field '["id"]')
    api PUT "/groups/$group/members/$others" >/dev/null
    others_token=$(api POST /tokens "{\"kind\": \"client\", \"actor_id\": \"$others\"}" | field '["secret"]')
    made=$(in_ns "$ns_gw" "$python" bench/sessions.py "ws://$portal/api/client" "$others_token" "$sessions" "$shared" 2>"$work/sessions.err") \
        || { echo "wireguard.sh: not every session got its flow: $made" >&2; tail -8 "$work/sessions.err" >&2; exit 1; }
    echo "other sessions: $made"
fi
read -r client_address gatehouse_public psk < <("$python" -c '
import json, sys
answers = json.load(open(sys.argv[1]))["answers"]
init = next(a for a in answers if a["event"] == "init")["payload"]
flow = next(a for a in answers if a["event"] == "flow_created")["payload"]
print(init["interface"]["ipv4"], flow["gateway_public_key"], flow["preshared_key"])' "$work/flow.json")
(umask 077; printf '%s' "$psk" >"$work/psk")
operations=$(grep -oE '127\.0\.0\.1:[0-9]+.*operations listening' "$work/gateway.log" | head -1 | cut -d' ' -f1)
metric() { in_ns "$ns_gw" curl -s "http://${operations%%[^0-9.:]*}/metrics" | awk -v name="$1" '$1 == name {printf "%d", $2}'; }
echo "the gatehouse gateway holds $(metric gatehouse_gateway_sessions) session(s), $(metric gatehouse_gateway_kernel_rules) kernel rule entries"
if [ "$sessions" -gt 0 ]; then
    # One rule update across every session: the shared resource's filters change.
    for filters in '"tcp:443", "udp:53"' '"tcp:443", "tcp:8443"' '"tcp:443"'; do
        before=$(grep -c 'resource_updated' "$work/gateway.log" || true)
        sent=$(date +%s.%N)
        api PATCH "/resources/$shared" "{\"filters\": [$filters]}" >/dev/null
        for _ in $(seq 300); do [ "$(grep -c 'resource_updated' "$work/gateway.log" || true)" -gt "$before" ] && break; sleep 0.01; done
        seen=$(date +%s.%N)
        line=$(grep 'resource_updated' "$work/gateway.log" | tail -1)
        echo "  rule update ($filters) across $(echo "$line" | grep -oE 'sessions=[0-9]+' | cut -d= -f2) session(s):" \
            "gateway $(echo "$line" | grep -oE 'took_ms=[0-9.]+' | cut -d= -f2) ms, API call to the gateway's log line $("$python" -c "print(round(($seen - $sent) * 1000))") ms"
    done
fi
in_ns "$ns_client" ip addr add "$client_address/32" dev "$client_if"
in_ns "$ns_client" ip link set "$client_if" up
in_ns "$ns_client" ip route add 198.18.1.2/32 dev "$client_if"

ip netns exec "$ns_res" iperf3 -s >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do in_ns "$ns_res" ss -tln | grep -q ':5201' && break; sleep 0.1; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Datagrams the gateway namespace's UDP sockets dropped for a full receive buffer.
gateway_drops() { in_ns "$ns_gw" awk '/^Udp:/ && $2 ~ /^[0-9]+$/ {print $6}' /proc/net/snmp; }
ticks_per_second=$(getconf CLK_TCK)
# measure LABEL GATEWAY_PID IPERF_ARGS...: one iperf3 run; prints Gbit/s and each endpoint's CPU ns per byte.
measure() {
    local label=$1 gateway_pid=$2; shift 2
    local c0 g0 c1 g1 out bytes
    local d0 d1
    c0=$(cpu_ticks "$client_pid"); g0=$(cpu_ticks "$gateway_pid"); d0=$(gateway_drops)
    out=$(in_ns "$ns_client" iperf3 -c 198.18.1.2 -t "$seconds" -J "$@")
    c1=$(cpu_ticks "$client_pid"); g1=$(cpu_ticks "$gateway_pid"); d1=$(gateway_drops)
    "$python" -c '
import json, sys
label, seconds, tps, cpu_client, cpu_gateway, drops = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
end = json.loads(sys.argv[1])["end"]
summary = end.get("sum_received") or end.get("sum")
received = summary["bytes"]
lost = summary.get("lost_percent")
rate = received * 8 / summary["seconds"] / 1e9
per_byte = lambda ticks: ticks / tps * 1e9 / max(received, 1)
extra = f"  loss {lost:.1f} % ({drops} dropped at the gateway socket)" if lost is not None else ""
print(f"  {label:<34} {rate:6.2f} Gbit/s   client {per_byte(cpu_client):6.2f} ns/B   gateway {per_byte(cpu_gateway):6.2f} ns/B{extra}")
' "$out" "$label" "$seconds" "$ticks_per_second" "$((c1 - c0))" "$((g1 - g0))" "$((d1 - d0))"
}
run_suite() {  # run_suite NAME GATEWAY_PID
    measure "$1 TCP upload" "$2"
    measure "$1 TCP download (-R)" "$2" -R
    measure "$1 UDP upload (-b 0, 1300 B)" "$2" -u -b 0 -l 1300
}
configure_client() {  # configure_client PUBLIC_KEY [PSK_FILE]
    in_ns "$ns_client" wg set "$client_if" private-key "$work/client.key" peer "$1" ${2:+preshared-key "$2"} \
        allowed-ips 198.18.1.2/32 endpoint 198.18.2.2:51820
}
remove_peer() { in_ns "$ns_client" wg set "$client_if" peer "$1" remove; }

# The wireguard-go responder in the same place, with the same addresses.
start_wireguard_go_gateway() {
    ip netns exec "$ns_gw" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "${tag}g" >"$work/gateway-wg.log" 2>&1 &
    wggo_pid=$!
    pids+=($wggo_pid)
    for _ in $(seq 100); do in_ns "$ns_gw" ip link show "${tag}g" >/dev/null 2>&1 && break; sleep 0.1; done
    (umask 077; wg genkey >"$work/gateway.key")
    in_ns "$ns_gw" wg set "${tag}g" private-key "$work/gateway.key" listen-port 51820 peer "$client_public" allowed-ips "$client_address/32"
    in_ns "$ns_gw" ip link set "${tag}g" up
    in_ns "$ns_gw" ip route add "$client_address/32" dev "${tag}g"
    wggo_public=$(wg pubkey <"$work/gateway.key")
}

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $configuration build"
echo "wireguard-go $(wireguard-go --version 2>&1 | head -1 | awk '{print $NF}'), iperf3 $(iperf3 --version | head -1 | awk '{print $2}'), $seconds s per run, the client holds $resources resource(s)"
for run in $(seq "$runs"); do
    echo "run $run:"
    configure_client "$gatehouse_public" "$work/psk"
    in_ns "$ns_client" iperf3 -c 198.18.1.2 -t 1 >/dev/null  # the handshake, and a warm-up
    echo "  (gatehouse gateway TUN offloads: $(grep -oE 'offload=[a-z+]+' "$work/gateway.log" | head -1 | cut -d= -f2))"
    run_suite "gatehouse gateway" "$gatehouse_pid"
    remove_peer "$gatehouse_public"
    kill "$gatehouse_pid"; wait "$gatehouse_pid" 2>/dev/null || true
    start_wireguard_go_gateway
    configure_client "$wggo_public"
    in_ns "$ns_client" iperf3 -c 198.18.1.2 -t 1 >/dev/null
    run_suite "wireguard-go gateway" "$wggo_pid"
    remove_peer "$wggo_public"
    kill "$wggo_pid"; wait "$wggo_pid" 2>/dev/null || true
    rm -f "/var/run/wireguard/${tag}g.sock"
    if [ "$run" -lt "$runs" ]; then start_gatehouse_gateway; fi
done
