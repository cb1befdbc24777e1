#!/usr/bin/env bash
# Gateway rules benchmark: 1,000 clients × 100 resources with filters go into the kernel's rule trie
# through the session actors (as the portal's init would put them); one resource every client has
# changes its filters, three times: the time until every session rewrote its entries. Then the TC
# program's run time per packet by verdict with the trie full, from the kernel's BPF statistics
# (kernel.bpf_stats_enabled, restored afterwards), beside a classifier that only passes packets.
#
#   bench/gateway.sh [--clients 1000] [--resources 100] [--repetitions 1000000] [--debug]
#
# Needs root (BPF). Builds in release (--debug: the debug build). Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
configuration=release
arguments=()
while [ $# -gt 0 ]; do
    case "$1" in
        --clients|--resources|--repetitions) arguments+=("$1" "$2"); shift 2 ;;
        --debug) configuration=debug; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "gateway.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
swift build -c "$configuration" --product gateway-bench >/dev/null
bin=$(swift build -c "$configuration" --show-bin-path)
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $configuration build"
"$bin/gateway-bench" "${arguments[@]}" 2>/dev/null
