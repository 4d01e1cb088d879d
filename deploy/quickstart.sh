#!/usr/bin/env bash
# Quickstart: installs what tollgate needs, builds it, validates the example pipelines, then runs
# the demo (deploy/demo.mjs): a sandbox Git host with an application repository and three
# environment repositories, `tollgate serve` on SQLite, a merged pull request and its promotion
# dev -> qa -> prod, live, up to the approval that production waits for. Ctrl-C stops everything.
# Usage: deploy/quickstart.sh [--ci] [--port N]    (the options are deploy/demo.mjs's)
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
# The demo's Git host uses the pinned npm packages; install them when absent or older than the lock.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "${JOBS:-2}" --target tollgate
echo
echo "== tollgate validate examples/*.yaml and the demo's pipeline"
build/service/tollgate validate examples/*.yaml deploy/demo/repos/acme/payments/.tollgate.yaml
echo
exec node deploy/demo.mjs "$@"
