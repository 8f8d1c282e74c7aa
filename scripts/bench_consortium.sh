#!/bin/bash
# One run of the consortium bench of docs/performance.md (issue 13): a fresh five-bank `bank up`
# (extra arguments go to it, e.g. --coordination concurrent or --ops-per-token 1), then
# `bank bench --mode MODE --banks K --accounts 100 --transfers T --concurrency 64 --json`
# against it; prints the bench's JSON line, then stops and removes the consortium.
#
#   scripts/bench_consortium.sh BIN cross-bank|packet K [bank up args...]    (T=10000 by default)
#
# Alternate builds and modes in one sitting and take medians, e.g.
#   for r in 1 2 3; do for c in concurrent token-ring; do
#       scripts/bench_consortium.sh target/release/bank cross-bank 3 --coordination $c; done; done
set -euo pipefail
bin=$(realpath "$1"); mode=$2; banks=$3; shift 3
work=$(mktemp -d /tmp/bench-consortium.XXXXXX)
port=${PORT:-9181}
"$bin" up --banks 5 --data "$work/c" --base-port "$port" --session-file "$work/sessions.json" "$@" >"$work/up.log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$((port + 4))/healthz" >/dev/null && break
    sleep 0.2
done
"$bin" bench --mode "$mode" --consortium "$work/c/consortium.toml" --banks "$banks" --accounts 100 \
    --transfers "${T:-10000}" --concurrency 64 --json --session-file "$work/sessions.json"
