#!/bin/bash
# The growth table of docs/performance.md (issue 13, item 4): one bank's in-bank throughput,
# p99, start-up time and memory as its history grows to 20 million ledger lines.
#
#   scripts/history_growth.sh BIN [WORKDIR] [LEVELS]
#
# Opens 1,000 bench accounts once, then for each level (cumulative ledger lines, default
# "0 1000000 5000000 20000000") pre-loads the history up to it into the stopped bank
# (`bank bench --preload-entries`, bulk insert through the node's own batch writer), starts the
# node (start-up = spawn to /healthz answering; RSS read then), runs `bank bench --mode in-bank
# --accounts 1000 --transfers 20000 --concurrency 64` three times, reads RSS again and stops the
# node. One JSON line per run on stdout. The 20 M level needs about 9 GB of disk in WORKDIR.
set -euo pipefail
bin=$(realpath "$1"); work=${2:-$(mktemp -d /tmp/growth.XXXXXX)}; levels=${3:-"0 1000000 5000000 20000000"}
port=${PORT:-18281}; url=http://127.0.0.1:$port
mkdir -p "$work"; data=$work/bank

start_node() { # -> "pid startup_s"
    local t0 pid
    t0=$(date +%s.%N)
    "$bin" node --id 1 --name Eleven --listen 127.0.0.1:$port --data "$data" >>"$work/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 6000); do
        kill -0 "$pid" 2>/dev/null || { echo "the node exited; see $work/node.log" >&2; exit 1; }
        curl -sf $url/healthz >/dev/null && break
        sleep 0.01
    done
    echo "$pid $(echo "$(date +%s.%N) - $t0" | bc)"
}
stop_node() { kill -TERM "$1"; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }
rss_mib() { awk '/^VmRSS/{printf "%.0f", $2/1024}' /proc/$1/status; }
lines() { python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from entries').fetchone()[0])" "$data/ledger.db"; }

if [ ! -f "$work/accounts.jsonl" ]; then
    read -r pid _ < <(start_node)
    "$bin" bench --target $url --mode in-bank --accounts 1000 --transfers 1 --json \
        --accounts-file "$work/accounts.jsonl" >/dev/null
    stop_node "$pid"
fi
for level in $levels; do
    have=$(lines)
    if [ "$level" -gt "$have" ]; then
        "$bin" bench --preload-entries $((level - have)) --data-dir "$data" >&2
    fi
    read -r pid startup < <(start_node)
    rss_start=$(rss_mib "$pid")
    for run in 1 2 3; do
        out=$("$bin" bench --target $url --mode in-bank --accounts 1000 --transfers 20000 --concurrency 64 \
            --json --accounts-file "$work/accounts.jsonl")
        python3 - "$level" "$(lines)" "$run" "$startup" "$rss_start" "$(rss_mib "$pid")" "$out" <<'PY'
import json, sys
level, lines, run, startup, rss0, rss1, out = sys.argv[1:]
j = json.loads(out)
print(json.dumps({'level': int(level), 'lines': int(lines), 'run': int(run), 'ops_per_s': j['ops_per_s'],
                  'p99_ms': j['latency_ms']['p99'], 'errors': j['errors'], 'conserved': j['conserved'],
                  'startup_s': round(float(startup), 3), 'rss_start_mib': int(rss0), 'rss_after_mib': int(rss1)}))
PY
    done
    stop_node "$pid"
done
du -sh "$data" >&2
