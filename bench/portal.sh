#!/usr/bin/env bash
# Portal benchmark: admin API reads and writes per second against SQLite (wrk against a real
# `gatehouse portal`), and policy evaluations per second through the PolicyEvaluator, on an account
# with 10,000 resources, 1,000 groups, 10,000 users, 100,000 memberships and 20,000 policies.
#
#   bench/portal.sh [--seconds 10]
#
# Needs a release build (made here) and wrk (installed here if missing). Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=10
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "portal.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
swift build -c release --product gatehouse >/dev/null
swift build -c release --product portal-bench >/dev/null
bin=$(swift build -c release --show-bin-path)

work=$(mktemp -d /tmp/gatehouse-portal-bench.XXXXXX)
portal_pid=""
cleanup() {
    [ -n "$portal_pid" ] && kill "$portal_pid" 2>/dev/null && wait "$portal_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
db="$work/portal.sqlite"
token=$("$bin/gatehouse" portal init --db "$db" --admin-email admin@bench.test | tail -1)
export GATEHOUSE_TOKEN="$token"
"$bin/portal-bench" seed --db "$db"
echo "--- policy evaluations (PolicyEvaluator, random user x random resource)"
"$bin/portal-bench" evaluate --db "$db" --evaluations 20000 --concurrency 1
"$bin/portal-bench" evaluate --db "$db" --evaluations 40000 --concurrency 4
"$bin/portal-bench" evaluate --db "$db" --evaluations 500000 --concurrency 1 --from-view
"$bin/portal-bench" evaluate --db "$db" --evaluations 500000 --concurrency 4 --from-view

start_portal() {
    "$bin/gatehouse" portal --db "$db" --listen 127.0.0.1:0 >"$work/portal.log" 2>&1 &
    portal_pid=$!
    for _ in $(seq 100); do
        address=$(grep -oE '127\.0\.0\.1:[0-9]+' "$work/portal.log" | head -1 || true)
        [ -n "$address" ] && return 0
        sleep 0.1
    done
    echo "portal did not start:"; cat "$work/portal.log"; exit 1
}
stop_portal() { kill "$portal_pid"; wait "$portal_pid" 2>/dev/null || true; portal_pid=""; }
rss() { # the portal's resident memory now
    printf '%-58s %s\n' "portal resident memory ($1)" "$(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' "/proc/$portal_pid/status")"
}
wait_for_views() { # the expiry service reads every account's view at start
    for _ in $(seq 300); do
        grep -q "views loaded" "$work/portal.log" && return 0
        sleep 0.1
    done
}

measure() { # name, wrk arguments...
    local name="$1"; shift
    local out
    out=$(wrk -t2 -c8 -d"${seconds}s" --latency "$@")
    local rps p50 p99 errors
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    printf '%-58s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${errors:-0}"
}

actor=$(sqlite3 "$db" "SELECT id FROM actor WHERE type = 'user' LIMIT 1")
resource=$(sqlite3 "$db" "SELECT resource_id FROM policy LIMIT 1")
auth=(-H "Authorization: Bearer $token")
start_portal
wait_for_views
echo "--- admin API over HTTP (wrk, 2 threads, 8 connections, ${seconds} s each)"
rss "after start, views read"
measure "read: GET /api/v1/resources?limit=100" "${auth[@]}" "http://$address/api/v1/resources?limit=100"
measure "read: GET /api/v1/access/explain" "${auth[@]}" "http://$address/api/v1/access/explain?actor=$actor&resource=$resource"
BENCH_RUN=1 measure "write: POST /api/v1/groups (no registered clients)" -s bench/portal-write.lua "http://$address"
rss "after the run"
stop_portal
"$bin/portal-bench" seed-clients --db "$db" --clients 1000
echo "--- one admin change with 1,000 registered clients (memberships, policies, resource filters)"
"$bin/portal-bench" change --db "$db" --changes 300
start_portal
wait_for_views
rss "1,000 clients, after start"
BENCH_RUN=2 measure "write: POST /api/v1/groups (1,000 registered clients)" -s bench/portal-write.lua "http://$address"
export BENCH_GROUP BENCH_ACTORS
BENCH_GROUP=$(sqlite3 "$db" "SELECT id FROM actor_group WHERE name = 'group-0'")
BENCH_ACTORS=$(sqlite3 "$db" "SELECT actor_id FROM device WHERE kind = 'client' LIMIT 50" | paste -sd, -)
BENCH_RUN=3 measure "write: PUT+DELETE membership (1,000 registered clients)" -s bench/portal-membership.lua "http://$address"
rss "1,000 clients, after the run"
stop_portal
