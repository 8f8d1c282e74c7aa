#!/bin/bash
# A/B of in-bank throughput with many accounts (docs/performance.md, issue 13 item 5).
#
#   scripts/bench_in_bank_ab.sh BEFORE_BIN AFTER_BIN ACCOUNTS ROUNDS [TRANSFERS]
#
# Opens ACCOUNTS bench accounts once (with BEFORE_BIN's node, so both builds can open the
# directory: a newer build migrates its copy), keeps a stopped copy of that bank and the accounts'
# sessions (`bank bench --accounts-file`), then alternates BEFORE and AFTER for ROUNDS rounds, each
# run on a fresh copy of that bank. One JSON line per run on stdout: the bench's figures, and from
# the node's /metrics and /proc: batches, commands per batch, mean commit and batch times, bytes
# the node wrote to disk per batch (WAL and database), CPU seconds of the node and of its writer.
set -euo pipefail
before=$1; after=$2; accounts=$3; rounds=$4; transfers=${5:-100000}
work=$(mktemp -d /tmp/bench-ab.XXXXXX)
port=${PORT:-18181}
bench=$after # the bench client (needs --accounts-file)

start_node() { # BIN DIR -> pid
    "$1" node --id 1 --name Eleven --listen 127.0.0.1:$port --data "$2" >"$work/node.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
    echo $pid
}

stop_node() { # PID: SIGTERM, then wait until it has flushed and exited (not our child: poll)
    kill -TERM "$1"
    while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}

pid=$(start_node "$before" "$work/setup")
"$bench" bench --target http://127.0.0.1:$port --mode in-bank --accounts "$accounts" --transfers 1 \
    --json --accounts-file "$work/accounts.jsonl" >"$work/setup.json"
stop_node "$pid"

for _ in $(seq 1 "$rounds"); do
    for label in before after; do
        bin=$before; [ $label = after ] && bin=$after
        rm -rf "$work/run"; cp -a "$work/setup" "$work/run"
        pid=$(start_node "$bin" "$work/run")
        wb0=$(awk '/^write_bytes/{print $2}' /proc/$pid/io)
        out=$("$bench" bench --target http://127.0.0.1:$port --mode in-bank --accounts "$accounts" \
            --transfers "$transfers" --concurrency 64 --json --accounts-file "$work/accounts.jsonl")
        wb1=$(awk '/^write_bytes/{print $2}' /proc/$pid/io)
        cpu=$(awk '{print ($14+$15)/100}' /proc/$pid/stat)
        wcpu=$(for t in /proc/$pid/task/*; do grep -q ledger-writer $t/comm && awk '{print ($14+$15)/100}' $t/stat; done || true)
        metrics=$(curl -s http://127.0.0.1:$port/metrics)
        stop_node "$pid"
        python3 - "$label" "$out" "$wb0" "$wb1" "$cpu" "${wcpu:-0}" "$metrics" <<'PY'
import json, sys
label, out, wb0, wb1, cpu, wcpu, metrics = sys.argv[1:]
m = {l.split()[0]: float(l.split()[1]) for l in metrics.splitlines() if l and not l.startswith('#')}
j = json.loads(out)
b = m.get('bank_writer_batches_total', 0) or 1
print(json.dumps({
    'build': label, 'accounts': j['accounts'], 'ops_per_s': j['ops_per_s'],
    'p50_ms': j['latency_ms']['p50'], 'p99_ms': j['latency_ms']['p99'], 'errors': j['errors'],
    'conserved': j['conserved'], 'batches': int(b),
    'commands_per_batch': round(m.get('bank_writer_batch_commands_sum', 0) / b, 1),
    'commit_ms': round(m.get('bank_writer_commit_seconds_sum', 0) / b * 1000, 2),
    'batch_ms': round(m.get('bank_writer_batch_seconds_sum', 0) / b * 1000, 2),
    'disk_kib_per_batch': round((int(wb1) - int(wb0)) / b / 1024, 1),
    'node_cpu_s': float(cpu), 'writer_cpu_s': float(wcpu), 'elapsed_s': j['elapsed_s'],
}))
PY
    done
done
rm -rf "$work"
