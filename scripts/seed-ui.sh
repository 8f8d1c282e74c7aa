#!/usr/bin/env bash
# The original system's own web interface (React/Vite, from rhianpablo11/distributed-banking-
# system-TEC502) in headless Chromium against `bank up --seed-compat` (issue 11,
# docs/seed-compat.md): choose a bank, sign up, sign out and in, deposit, look up a key and send
# a Pix to another bank, send a packet from two banks, then `bank audit` clean.
#
# Needs the network (git clone of the original, npm packages), node/npm, and Debian's chromium and
# chromium-driver; so it is not part of CI. It clones and builds the interface in a temporary
# directory and runs the ignored test crates/cli/tests/seed_ui.rs, which starts the consortium,
# serves the build (with the single-page app's fallback to index.html) and drives the browser.
# Each step prints `seed-ui: PASS …`; screenshots go to target/seed-ui/.
#
#   scripts/seed-ui.sh
#   SEED_UI_SRC=path/to/a/checkout scripts/seed-ui.sh     use an existing checkout (no clone)
#   SEED_UI_COMMIT=<sha> scripts/seed-ui.sh               another commit of the original
set -euo pipefail
REPO="https://github.com/rhianpablo11/distributed-banking-system-TEC502.git"
# The commit the compatibility was written against.
COMMIT="${SEED_UI_COMMIT:-982d436621cc7ba1722573da071e4a5a11a4b52e}"
cd "$(dirname "$0")/.."

for tool in node npm /usr/bin/chromium /usr/bin/chromedriver; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nodejs npm chromium chromium-driver)" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [ -n "${SEED_UI_SRC:-}" ]; then
    cp -r "$SEED_UI_SRC/interface/bank-system-interface" "$WORK/ui"
else
    git clone --quiet "$REPO" "$WORK/src"
    git -C "$WORK/src" checkout --quiet "$COMMIT"
    cp -r "$WORK/src/interface/bank-system-interface" "$WORK/ui"
fi
rm -rf "$WORK/ui/node_modules" "$WORK/ui/dist"

# The landing page imports src/assets/globo.gif; some copies of the repository lack it (a file
# too large for the mirror). Any image will do: it is decoration.
if [ ! -s "$WORK/ui/src/assets/globo.gif" ]; then
    cp "$WORK/ui/src/assets/a.gif" "$WORK/ui/src/assets/globo.gif"
fi

(cd "$WORK/ui" && npm ci --no-audit --no-fund --loglevel=error && npm run build)

SEED_UI_DIST="$WORK/ui/dist" cargo test -p bank-cli --locked --test seed_ui -- --ignored --nocapture
