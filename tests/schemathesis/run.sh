#!/usr/bin/env bash
# Fuzzes the public API with schemathesis against a two-bank consortium (`bank up --banks 2`),
# from the document the bank serves at /api/v1/openapi.json. Bounded: a fixed number of examples
# per operation and a time budget. In CI (CI set) the seed is fixed; by hand it is random
# (printed, so a run can be repeated with SCHEMATHESIS_SEED=<seed>).
#
#   tests/schemathesis/run.sh            # builds the bank if needed, then fuzzes
#
# Settings (environment): SCHEMATHESIS_SEED, SCHEMATHESIS_EXAMPLES (per operation, default 25),
# SCHEMATHESIS_MAX_TIME (seconds, default 150), SCHEMATHESIS_PORT (bank 1's port, default 18281),
# SCHEMATHESIS_VENV (default target/schemathesis-venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

version=4.32.5
validator_version=0.9.0
target_dir=${CARGO_TARGET_DIR:-$root/target}
venv=${SCHEMATHESIS_VENV:-$target_dir/schemathesis-venv}
examples=${SCHEMATHESIS_EXAMPLES:-25}
max_time=${SCHEMATHESIS_MAX_TIME:-150}
seed_max_time=${SCHEMATHESIS_SEED_MAX_TIME:-60}
port=${SCHEMATHESIS_PORT:-18281}
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then
    seed=$SCHEMATHESIS_SEED
elif [ -n "${CI:-}" ]; then
    seed=20261204
else
    seed=$RANDOM$RANDOM
fi

# Python and a virtual environment holding the pinned schemathesis (nothing installed system-wide
# but Debian's python3 and python3-venv).
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends python3 python3-venv
fi
if [ ! -x "$venv/bin/st" ] || [ "$("$venv/bin/python" -c 'import schemathesis; print(schemathesis.__version__)' 2>/dev/null)" != "$version" ] \
    || ! "$venv/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version" \
        "openapi-spec-validator==$validator_version"
fi

cargo build -q -p bank-cli --locked
bank=$target_dir/debug/bank

data=$(mktemp -d)
# With the seed-compatible API on, so its routes (described under their own tag) are fuzzed too.
"$bank" up --banks 2 --seed-compat --data "$data" --base-port "$port" >"$data/up.log" 2>&1 &
up_pid=$!
stop() {
    kill -TERM "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
    rm -rf "$data"
}
trap stop EXIT

bank1=http://127.0.0.1:$port
bank2=http://127.0.0.1:$((port + 1))
for url in "$bank1" "$bank2"; do
    for _ in $(seq 1 100); do
        if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url/healthz" 2>/dev/null; then
            break
        fi
        kill -0 "$up_pid" 2>/dev/null || { cat "$data/up.log"; exit 1; }
        sleep 0.2
    done
done

# An independent validator first: the served document must be valid OpenAPI 3.1.
"$venv/bin/python" - "$bank1/api/v1/openapi.json" <<'PY'
import json, sys, urllib.request
from openapi_spec_validator import validate
validate(json.load(urllib.request.urlopen(sys.argv[1], timeout=10)))
print("openapi-spec-validator: the served document is valid OpenAPI 3.1")
PY

echo "schemathesis $version against $bank1 (payee bank $bank2), seed $seed, $examples examples per operation, at most ${max_time}s"
export BANK_URL=$bank1 PEER_BANK_URL=$bank2
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH=$root/tests/schemathesis${PYTHONPATH:+:$PYTHONPATH}
status=0
# From the target directory: schemathesis keeps its cache (.schemathesis/) in the current one.
cd "$target_dir"
# One schemathesis pass over the served document, every check on; the arguments choose the
# phases, the time bound and the operations.
fuzz() {
    local phases=$1 seconds=$2
    shift 2
    "$venv/bin/st" --config-file "$root/tests/schemathesis/schemathesis.toml" run "$bank1/api/v1/openapi.json" \
        --url "$bank1" \
        --checks all \
        --phases "$phases" \
        --max-examples "$examples" \
        --max-time "$seconds" \
        --seed "$seed" \
        --workers 2 \
        --request-timeout 20 \
        --suppress-health-check too_slow \
        --report junit --report-dir "$target_dir/schemathesis-report" \
        "$@"
}
fuzz examples,coverage,fuzzing,stateful "$max_time" --exclude-tag seed-compatible || status=$?
# The original system's routes (plain-text refusals, no sessions: the hooks' bearer header is
# sent and ignored); every check still holds them to their description. No stateful phase: the
# document declares no links between them.
if [ "$status" -eq 0 ]; then
    echo "schemathesis: the seed-compatible routes"
    fuzz examples,coverage,fuzzing "$seed_max_time" --include-tag seed-compatible || status=$?
fi
if [ "$status" -ne 0 ]; then
    echo "schemathesis failed (seed $seed); bank logs:" >&2
    tail -n 40 "$data"/bank-*/node.log >&2 || true
fi
exit "$status"
