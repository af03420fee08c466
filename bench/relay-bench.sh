#!/usr/bin/env bash
# bench/relay-bench.sh: the notify relay alone (no container): one sender -> relay -> a
# receiver that keeps up, against the same sender talking to the receiver directly, in one
# run; the process's RSS before and after; then a stuck receiver (reads nothing while the
# sender sends READY=1 and 100k datagrams): the longest single send, what reached the host.
#   usage: bench/relay-bench.sh [COUNT]   (default 1000000; the JSON line goes to
#          bench/results/relay.json). Prints numbers, asserts nothing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
count=${1:-1000000}
out=$(cd "$repo" && cargo run -q --release -p notify-relay --example relay_bench "$count")
echo "$out" | grep -v '^json: '
mkdir -p "$repo/bench/results"
echo "$out" | sed -n 's/^json: //p' >"$repo/bench/results/relay.json"
echo "relay-bench: wrote bench/results/relay.json" >&2
