#!/usr/bin/env bash
# The containers, tested on this machine (CI runs this after the README's tests): start a Docker
# engine if none runs, build the registry-free image (docker/local-image.sh), run compose.yaml
# with it, and check five healthy banks, a Pix through the published ports, a bank killed while
# Pix run and restarted by compose, `bank audit` clean, and the data kept across down/up.
# Everything it creates (containers, volumes, network, image, the engine it started) is removed
# at the end, also on failure. Skips, saying so, only where no engine can run (not under CI=1).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/docker-test
mkdir -p "$out"
project="banktest$$"
image="bank:test$$"
dockerd_pid=""
compose() { BANK_IMAGE="$image" docker-compose -p "$project" -f compose.yaml "$@"; }

cleanup() {
    set +e
    compose down -v --remove-orphans >/dev/null 2>&1
    docker image rm -f "$image" >/dev/null 2>&1
    if [ -n "$dockerd_pid" ]; then kill "$dockerd_pid"; wait "$dockerd_pid" 2>/dev/null; fi
}
trap cleanup EXIT

skip() {
    if [ "${CI:-}" = 1 ]; then echo "docker test: $1 (failing under CI)" >&2; exit 1; fi
    echo "docker test: SKIPPED — $1" >&2; exit 0
}

command -v docker-compose >/dev/null && command -v dockerd >/dev/null || skip "docker.io and docker-compose are not installed"
if ! docker info >/dev/null 2>&1; then
    dockerd >"$out/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null 2>&1 || { tail -20 "$out/dockerd.log" >&2; skip "dockerd did not start"; }
fi

step() { echo "--- $*"; }
container() { compose ps -q "$1"; }
health() { docker inspect -f '{{.State.Health.Status}}' "$(container "$1")"; }
wait_healthy() {
    for _ in $(seq 150); do
        local all=1
        for n in 1 2 3 4 5; do [ "$(health bank$n)" = healthy ] || all=0; done
        [ $all = 1 ] && return 0
        sleep 0.4
    done
    compose ps >&2; compose logs --tail 20 >&2; return 1
}

step "image without a registry"
docker/local-image.sh "$image"

step "five banks"
compose up -d
wait_healthy
compose ps

step "a Pix through the published ports"
python3 docker/check.py pix

step "bank 2 killed (SIGKILL of its process) while Pix run; compose restarts it"
python3 docker/check.py load 400 &
load=$!
sleep 1
restarts_before=$(docker inspect -f '{{.RestartCount}}' "$(container bank2)")
kill -9 "$(docker inspect -f '{{.State.Pid}}' "$(container bank2)")"
wait $load
for _ in $(seq 100); do
    [ "$(docker inspect -f '{{.RestartCount}}' "$(container bank2)")" -gt "$restarts_before" ] && break
    sleep 0.2
done
[ "$(docker inspect -f '{{.RestartCount}}' "$(container bank2)")" -gt "$restarts_before" ] || { echo "bank 2 was not restarted" >&2; exit 1; }
wait_healthy

step "bank audit, from a container on the consortium's network"
compose run --rm init audit --consortium /consortium/consortium.toml --wait-s 30

step "data kept across down / up (named volumes)"
python3 docker/check.py balances | tee "$out/before.json"
compose down
compose up -d
wait_healthy
python3 docker/check.py balances | tee "$out/after.json"
cmp "$out/before.json" "$out/after.json"
echo "docker test: passed"
