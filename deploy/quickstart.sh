#!/usr/bin/env bash
# Quickstart: installs what tollgate needs, builds it, and validates the shipped example
# pipelines, the first thing a team does with tollgate (the service itself comes next).
# Usage: deploy/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "${JOBS:-2}" --target tollgate
echo
echo "== tollgate validate examples/*.yaml"
build/service/tollgate validate examples/*.yaml
echo
echo "== and what a mistake looks like:"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e 's/soak: 30m/soak: 30 minutes/' -e 's/after: \[dev\]/after: [deb]/' examples/repo-per-env.yaml > "$tmp/.tollgate.yaml"
bin=$(pwd)/build/service/tollgate
(cd "$tmp" && "$bin" validate) || true
echo
echo "tollgate is built at build/service/tollgate; try: build/service/tollgate validate --help"
