#!/usr/bin/env bash
# The relay benchmark: gatehouse relay with its XDP fast path, gatehouse relay in user space only, and
# coturn's turnserver, same secret, same port range, in the same network-namespace topology and run,
# driven by our load generator (bench/RelayLoad):
#
#   client (relay-load) 198.18.1.2 ── .1 router .1 ── 198.18.2.2 peer (relay-load echo)
#                                        .1
#                                        │
#                                   198.18.3.2 relay
#
# The relay hangs off the router because XDP_TX sends a frame back out the interface it came in on (the
# user-space relays and coturn use the same topology, so every run pays for the same hops). The router's
# end of the relay link runs a pass-through XDP program (bpf/counter.bpf.c, compiled here), without
# which veth drops XDP_TX frames; transmit checksum offload is off everywhere, as in the tests.
#
# For each relay and each offered rate it prints the relayed rate, loss, latency p50/p99 and the relay's
# CPU time per relayed packet (utime+stime from /proc, over both directions); for the XDP run also the
# program's own run time per packet (kernel.bpf_stats_enabled=1, run_time_ns / run_cnt of the program,
# and per relayed packet). Then, per relay, the highest rate with at most 1 % loss, and the ratios.
# Figures, not a test: nothing here asserts.
#
#   bench/relay.sh [--rates "20000 40000 80000"] [--seconds 3] [--channels 16] [--size 100]
#                  [--only "gatehouse-xdp gatehouse coturn"]
#
# Needs root (namespaces), a release build (made here), and coturn (scripts/setup installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

rates="10000 20000 40000 60000 80000 100000 140000 180000"
seconds=3
channels=16
size=100
only="gatehouse-xdp gatehouse coturn"
while (($#)); do
  case "$1" in
    --only) only="$2"; shift 2 ;;
    --rates) rates="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --channels) channels="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

swift build -c release --product gatehouse >/dev/null
swift build -c release --product relay-load >/dev/null
bin=$(swift build -c release --show-bin-path)
secret="bench-secret-$$"
prefix="gh-bench-$$"
pids=()

stats_before=$(sysctl -n kernel.bpf_stats_enabled)
work=$(mktemp -d)

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for ns in client router relay peer; do ip netns del "$prefix-$ns" 2>/dev/null || true; done
  sysctl -qw kernel.bpf_stats_enabled="$stats_before"
  rm -rf "$work"
}
trap cleanup EXIT

for ns in client router relay peer; do
  ip netns add "$prefix-$ns"
  ip -n "$prefix-$ns" link set lo up
done
ip link add eth0 netns "$prefix-client" type veth peer name eth0 netns "$prefix-router"
ip link add eth0 netns "$prefix-peer" type veth peer name eth1 netns "$prefix-router"
ip link add eth0 netns "$prefix-relay" type veth peer name eth2 netns "$prefix-router"
ip -n "$prefix-client" addr add 198.18.1.2/24 dev eth0
ip -n "$prefix-router" addr add 198.18.1.1/24 dev eth0
ip -n "$prefix-peer" addr add 198.18.2.2/24 dev eth0
ip -n "$prefix-router" addr add 198.18.2.1/24 dev eth1
ip -n "$prefix-relay" addr add 198.18.3.2/24 dev eth0
ip -n "$prefix-router" addr add 198.18.3.1/24 dev eth2
for link in "client eth0" "peer eth0" "relay eth0" "router eth0" "router eth1" "router eth2"; do
  set -- $link
  ip -n "$prefix-$1" link set "$2" up
  ip netns exec "$prefix-$1" ethtool -K "$2" tx off >/dev/null
done
ip -n "$prefix-client" route add default via 198.18.1.1
ip -n "$prefix-peer" route add default via 198.18.2.1
ip -n "$prefix-relay" route add default via 198.18.3.1
ip netns exec "$prefix-router" sysctl -qw net.ipv4.ip_forward=1

# The pass-through program on the router's end of the relay link (veth drops XDP_TX frames otherwise).
clang -target bpf -O2 -g -I bpf/include -I "/usr/include/$(uname -m)-linux-gnu" \
  -c bpf/counter.bpf.c -o "$work/pass.o"
ip -n "$prefix-router" link set dev eth2 xdpdrv obj "$work/pass.o" sec xdp
sysctl -qw kernel.bpf_stats_enabled=1

ip netns exec "$prefix-peer" "$bin/relay-load" echo --listen 198.18.2.2:7000 >/dev/null &
pids+=($!)

# run_cnt and run_time_ns of a BPF program (kernel.bpf_stats_enabled=1 makes the kernel count them).
program_stats() {
  bpftool -j prog show id "$1" | python3 -c 'import json, sys; p = json.load(sys.stdin); print(p.get("run_cnt", 0), p.get("run_time_ns", 0))'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)

declare -A best
run_relay() {
  local name=$1; shift
  ip netns exec "$prefix-relay" "$@" >"/tmp/$prefix-$name.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  for _ in $(seq 100); do
    ip netns exec "$prefix-relay" ss -uln 2>/dev/null | grep -q "198.18.3.2:3478" && break
    sleep 0.1
  done
  best[$name]=0
  local program=""
  if [[ $name == gatehouse-xdp ]]; then
    program=$(ip netns exec "$prefix-relay" bpftool -j net show dev eth0 | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["xdp"][0]["id"])')
  fi
  for rate in $rates; do
    local before after line received xdp="" runs_before=0 ns_before=0
    if [[ -n $program ]]; then read -r runs_before ns_before < <(program_stats "$program"); fi
    before=$(cpu_ticks "$pid")
    if ! line=$(ip netns exec "$prefix-client" "$bin/relay-load" load --relay 198.18.3.2:3478 --secret "$secret" \
      --peer 198.18.2.2:7000 --channels "$channels" --rate "$rate" --seconds "$seconds" --size "$size" 2>&1); then
      printf '%-16s offered %7s pps  load generator failed: %s\n' "$name" "$rate" "$line"
      break
    fi
    after=$(cpu_ticks "$pid")
    received=$(sed -E 's/.*received=([0-9]+).*/\1/' <<<"$line")
    loss=$(sed -E 's/.*loss=([0-9.]+)%.*/\1/' <<<"$line")
    cpu_us=$(awk -v t=$((after - before)) -v hz="$ticks_per_second" -v r="$received" \
      'BEGIN { if (r > 0) printf "%.2f", t / hz * 1e6 / (2 * r); else print "n/a" }')
    if [[ -n $program ]]; then
      local runs_after ns_after
      read -r runs_after ns_after < <(program_stats "$program")
      xdp=$(awk -v n=$((ns_after - ns_before)) -v c=$((runs_after - runs_before)) -v r="$received" \
        'BEGIN { printf "  xdp_runs=%d xdp_ns_per_run=%.0f xdp_ns_per_relayed_packet=%.0f", c, (c ? n / c : 0), (r ? n / (2 * r) : 0) }')
    fi
    printf '%-16s offered %7s pps  %s  cpu_us_per_relayed_packet=%s%s\n' "$name" "$rate" "$line" "$cpu_us" "$xdp"
    if awk -v l="$loss" 'BEGIN { exit !(l <= 1.0) }'; then best[$name]=$rate; else break; fi
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ); channels=$channels size=$size seconds=$seconds"
gatehouse_flags=(relay --public-ipv4 198.18.3.2 --bind-ipv4 198.18.3.2 --listen-port 3478 --port-range 49152-65535
  --auth-secret "$secret" --operations-address 127.0.0.1:0 --log-level warning)
for name in $only; do
  case "$name" in
    gatehouse-xdp) run_relay gatehouse-xdp "$bin/gatehouse" "${gatehouse_flags[@]}" --xdp eth0 --xdp-mode native ;;
    gatehouse) run_relay gatehouse "$bin/gatehouse" "${gatehouse_flags[@]}" ;;
    coturn)
      run_relay coturn turnserver -n --no-cli --no-tls --no-dtls --listening-ip 198.18.3.2 --listening-port 3478 \
        --relay-ip 198.18.3.2 --min-port 49152 --max-port 65535 --use-auth-secret --static-auth-secret "$secret" \
        --realm gatehouse --no-software-attribute --log-file stdout --simple-log ;;
    *) echo "unknown relay $name" >&2; exit 2 ;;
  esac
done

echo
ratio() { awk -v a="${best[$1]:-0}" -v b="${best[$2]:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "highest rate with <= 1% loss:$(for name in $only; do printf ' %s %s pps;' "$name" "${best[$name]}"; done)"
[[ -n ${best[coturn]:-} ]] && echo "ratios to coturn: gatehouse-xdp $(ratio gatehouse-xdp coturn), gatehouse $(ratio gatehouse coturn)"
exit 0
