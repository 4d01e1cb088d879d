#!/usr/bin/env bash
# Installs every Debian package tollgate's build and tests need. Idempotent; runs as root or
# through sudo. Usage: deploy/install-deps.sh [--tests]
#   --tests  also what only the test suite needs (chromium for the dashboard's browser tests,
#            systemd for `systemd-analyze verify` of deploy/systemd/tollgate.service, PostgreSQL 15
#            for the PostgreSQL store's tests)
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git ca-certificates
  clang-14 libclang-rt-14-dev llvm-14
  # libraries (DESIGN.md)
  libyaml-cpp-dev libvalijson-dev nlohmann-json3-dev libkainjow-mustache-dev libcli11-dev
  catch2 libexpected-dev libre2-dev
  libboost1.81-dev libsqlite3-dev libssl-dev libsimdjson-dev liblz4-dev libgit2-dev libjemalloc-dev libpq-dev
  # runtime data and tools used by tests and benchmarks
  tzdata hyperfine python3 sqlite3 openssl curl
  # the test Git host: git http-backend behind lighttpd (mod_cgi, mod_auth are in the package)
  lighttpd
)
if [ "${1:-}" = "--tests" ]; then
  packages+=(chromium systemd postgresql-15)
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install-deps: run as root or install sudo" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm run the schema cross-check (ajv). Any Node >= 18 will do; take Debian's only
# when none is installed (a nodesource build ships its own npm and conflicts with Debian's).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
