#!/usr/bin/env bash
# The relay benchmark: gatehouse relay and coturn's turnserver, same secret, same port range, in the same
# network-namespace topology and run, driven by our load generator (bench/RelayLoad):
#
#   client (relay-load) 198.18.1.1 ── 198.18.1.2 relay ── 198.18.2.2 peer (relay-load echo)
#
# For each relay and each offered rate it prints the relayed rate, loss, latency p50/p99 and the relay's
# CPU time per relayed packet (utime+stime from /proc, over both directions); then, per relay, the
# highest rate with at most 1 % loss, and the ratio. Figures, not a test: nothing here asserts.
#
#   bench/relay.sh [--rates "20000 40000 80000"] [--seconds 3] [--channels 16] [--size 100]
#
# Needs root (namespaces), a release build (made here), and coturn (scripts/setup installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

rates="10000 20000 40000 60000 80000 100000 140000 180000"
seconds=3
channels=16
size=100
while (($#)); do
  case "$1" in
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

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for ns in client relay peer; do ip netns del "$prefix-$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

for ns in client relay peer; do
  ip netns add "$prefix-$ns"
  ip -n "$prefix-$ns" link set lo up
done
ip link add eth0 netns "$prefix-client" type veth peer name eth0 netns "$prefix-relay"
ip link add eth1 netns "$prefix-relay" type veth peer name eth0 netns "$prefix-peer"
ip -n "$prefix-client" addr add 198.18.1.1/24 dev eth0
ip -n "$prefix-relay" addr add 198.18.1.2/24 dev eth0
ip -n "$prefix-relay" addr add 198.18.2.1/24 dev eth1
ip -n "$prefix-peer" addr add 198.18.2.2/24 dev eth0
for link in "client eth0" "relay eth0" "relay eth1" "peer eth0"; do
  set -- $link
  ip -n "$prefix-$1" link set "$2" up
done
ip -n "$prefix-client" route add default via 198.18.1.2
ip -n "$prefix-peer" route add default via 198.18.2.1

ip netns exec "$prefix-peer" "$bin/relay-load" echo --listen 198.18.2.2:7000 >/dev/null &
pids+=($!)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)

declare -A best
run_relay() {
  local name=$1; shift
  ip netns exec "$prefix-relay" "$@" >"/tmp/$prefix-$name.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  for _ in $(seq 100); do
    ip netns exec "$prefix-relay" ss -uln 2>/dev/null | grep -q "198.18.1.2:3478" && break
    sleep 0.1
  done
  best[$name]=0
  for rate in $rates; do
    local before after line received
    before=$(cpu_ticks "$pid")
    line=$(ip netns exec "$prefix-client" "$bin/relay-load" load --relay 198.18.1.2:3478 --secret "$secret" \
      --peer 198.18.2.2:7000 --channels "$channels" --rate "$rate" --seconds "$seconds" --size "$size")
    after=$(cpu_ticks "$pid")
    received=$(sed -E 's/.*received=([0-9]+).*/\1/' <<<"$line")
    loss=$(sed -E 's/.*loss=([0-9.]+)%.*/\1/' <<<"$line")
    cpu_us=$(awk -v t=$((after - before)) -v hz="$ticks_per_second" -v r="$received" \
      'BEGIN { if (r > 0) printf "%.2f", t / hz * 1e6 / (2 * r); else print "n/a" }')
    printf '%-16s offered %7s pps  %s  cpu_us_per_relayed_packet=%s\n' "$name" "$rate" "$line" "$cpu_us"
    if awk -v l="$loss" 'BEGIN { exit !(l <= 1.0) }'; then best[$name]=$rate; else break; fi
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ); channels=$channels size=$size seconds=$seconds"
run_relay gatehouse "$bin/gatehouse" relay --public-ipv4 198.18.1.2 --bind-ipv4 198.18.1.2 --listen-port 3478 \
  --port-range 49152-65535 --auth-secret "$secret" --operations-address 127.0.0.1:0 --log-level warning
run_relay coturn turnserver -n --no-cli --no-tls --no-dtls --listening-ip 198.18.1.2 --listening-port 3478 \
  --relay-ip 198.18.1.2 --min-port 49152 --max-port 65535 --use-auth-secret --static-auth-secret "$secret" \
  --realm gatehouse --no-software-attribute --log-file stdout --simple-log

echo
echo "highest rate with <= 1% loss: gatehouse ${best[gatehouse]} pps, coturn ${best[coturn]} pps" \
  "(ratio $(awk -v a="${best[gatehouse]}" -v b="${best[coturn]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'))"
