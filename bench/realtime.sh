#!/usr/bin/env bash
# Realtime API benchmark: 1,000 simulated gateways and 1,000 simulated clients (one process, many
# sockets) on one account of 10,000 resources; every client holds a flow to one resource through ten
# gateways, all granted by one policy. The policy is deleted; reported: the time until every gateway
# has received all its reject_access (p50, p99, max over gateways) and the portal's resident memory per
# connection. Goals: p99 <= 100 ms, <= 100 KiB per connection.
#
#   bench/realtime.sh [--gateways 1000] [--clients 1000] [--debug]
#
# Builds in release (--debug: the debug build, quicker to make, slower to run). Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
gateways=1000
clients=1000
configuration=release
while [ $# -gt 0 ]; do
    case "$1" in
        --gateways) gateways="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        --debug) configuration=debug; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "realtime.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for product in gatehouse portal-bench realtime-load; do swift build -c "$configuration" --product "$product" >/dev/null; done
bin=$(swift build -c "$configuration" --show-bin-path)

work=$(mktemp -d /tmp/gatehouse-realtime-bench.XXXXXX)
portal_pid=""
cleanup() {
    [ -n "$portal_pid" ] && kill "$portal_pid" 2>/dev/null && wait "$portal_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"  # the hard limit (20,000 here) holds 2,000 sockets on each side
db="$work/portal.sqlite"
token=$("$bin/gatehouse" portal init --db "$db" --admin-email admin@bench.test | tail -1)
"$bin/portal-bench" seed --db "$db"
"$bin/portal-bench" seed-realtime --db "$db" --out "$work/plan.json" --gateways "$gateways" --clients "$clients"
"$bin/gatehouse" portal --db "$db" --listen 127.0.0.1:0 >"$work/portal.log" 2>&1 &
portal_pid=$!
for _ in $(seq 300); do
    grep -q "views loaded" "$work/portal.log" && break
    sleep 0.1
done
address=$(grep -oE '127\.0\.0\.1:[0-9]+' "$work/portal.log" | head -1)
echo "--- $gateways gateways, $clients clients, one process ($configuration build; $(nproc) cores)"
"$bin/realtime-load" --url "http://$address" --plan "$work/plan.json" --admin-token "$token" --portal-pid "$portal_pid"
