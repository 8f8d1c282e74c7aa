#!/usr/bin/env bash
# Builds the image `bank:local` without any registry: `bank` statically linked on this machine,
# stripped, in an empty root (docker/scratch.Dockerfile). Needs a running Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-bank:local}"
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked -p bank-cli --target x86_64-unknown-linux-gnu
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -r docker/rootfs "$stage/rootfs"
strip -o "$stage/bank" target/x86_64-unknown-linux-gnu/release/bank
docker build -q -t "$tag" -f docker/scratch.Dockerfile "$stage" >/dev/null
echo "$tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}')"
