#!/usr/bin/env bash
# The full test suite, from a fresh Debian 12 machine: installs dependencies, starts a PostgreSQL
# 15 server on 127.0.0.1 (TOLLGATE_TEST_POSTGRES; stopped by its pid at the end), then builds and
# tests three ways: release (-Werror, then the quickstart, deploy/quickstart.sh --ci), ASan+UBSan, and
# clang with the libFuzzer targets, which then fuzz the pipeline loader+validator, the webhook
# normalisers, the file edits and the promotion engine for FUZZ_SECONDS each (default 60).
# Usage: tests/run.sh            (env: JOBS, FUZZ_SECONDS, SKIP_INSTALL=1)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${JOBS:-2}
fuzz_seconds=${FUZZ_SECONDS:-60}

step() { printf '\n=== %s\n' "$*"; }
log=$(mktemp)
corpus=$(mktemp -d)
. tests/postgres.sh
cleanup() {
  stop_postgres
  rm -rf "$corpus" "$log"
}
trap cleanup EXIT
# ctest, with its output kept to add up the three builds' results at the end.
run_ctest() { ctest --test-dir "$1" --output-on-failure -j "$jobs" 2>&1 | tee -a "$log"; }

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  step "dependencies"
  deploy/install-deps.sh --tests
  npm ci --no-audit --no-fund
fi

step "PostgreSQL 15 on 127.0.0.1 (a temporary cluster for the PostgreSQL store's tests)"
start_postgres

step "release build (-Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOLLGATE_WERROR=ON
cmake --build build -j "$jobs"
step "release tests"
run_ctest build
step "the quickstart, non-interactive (deploy/quickstart.sh --ci): a merge promoted to the approval gate and approved"
# The README's first command as a user runs it (its install and build steps find everything done).
deploy/quickstart.sh --ci 2>&1 | tee -a "$log"

step "sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTOLLGATE_WERROR=ON -DTOLLGATE_SANITIZE=ON
cmake --build build-asan -j "$jobs"
step "sanitizer tests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build-asan

step "clang build of the I/O-free parts (pipeline/, templates/, webhooks/, service/edit/) with the libFuzzer targets"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DTOLLGATE_WERROR=ON -DTOLLGATE_CORE_ONLY=ON -DTOLLGATE_FUZZ=ON
cmake --build build-fuzz -j "$jobs"
step "clang tests"
run_ctest build-fuzz

mkdir -p build-fuzz/fuzz-artifacts
fuzz() {  # fuzz NAME SEED_DIR [libFuzzer flags...]
  local name=$1 seeds=$2
  shift 2
  step "fuzzing $name for ${fuzz_seconds}s"
  local out rc=0
  out=$(mktemp)
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build-fuzz/tests/$name" "$seeds" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=build-fuzz/fuzz-artifacts/ "$@" > "$out" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    # The report and the input that caused it (hex, so it can be replayed from the CI log alone).
    grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED)' "$out" | tail -n 60
    for a in $(grep -o 'Test unit written to [^ ]*' "$out" | awk '{print $NF}'); do
      echo "crashing input $a:"; od -An -tx1 -v "$a" | head -n 200
    done
    rm -f "$out"
    echo "fuzzing $name: FAILED (exit $rc)"
    return "$rc"
  fi
  tail -n 8 "$out"
  rm -f "$out"
  echo "fuzzing $name: ${fuzz_seconds}s without a crash"
}
mkdir -p "$corpus/pipeline" "$corpus/webhooks"
cp examples/*.yaml tests/pipeline/invalid/*.yaml "$corpus/pipeline"/
fuzz fuzz_pipeline "$corpus/pipeline" -dict=tests/fuzz/dict/pipeline.dict -max_len=8192
echo
# Seeds: every webhook fixture, each prefixed with the byte that picks its host kind and event.
python3 tests/fuzz/webhook_seeds.py "$corpus/webhooks"
fuzz fuzz_webhooks "$corpus/webhooks" -max_len=65536
echo
# Seeds: "<path>\n<value>\n<file>" for the set / image edits, plus every example YAML file edited at
# a path that exists in it.
mkdir -p "$corpus/edit"
cp tests/fuzz/edit_seeds/* "$corpus/edit"/
for f in examples/*.yaml; do printf 'version\n2\n' | cat - "$f" > "$corpus/edit/$(basename "$f")"; done
fuzz fuzz_edit "$corpus/edit" -max_len=8192
echo
# The promotion engine, from an empty corpus: the bytes pick a sequence of inputs, and every step
# is checked against the engine's promises (tests/fuzz/fuzz_engine.cpp).
mkdir -p "$corpus/engine"
fuzz fuzz_engine "$corpus/engine" -max_len=1024 -len_control=10
echo
# One closing line over the three ctest runs (each printed "N% tests passed, F tests failed out of T")
# and the demo (one test; it printed "run succeeded: ..." or the script stopped there).
awk '/tests passed, [0-9]+ tests? failed out of/ {t += $NF; f += $(NF-5)}
     /^run succeeded: gated stage reached/ {t += 1}
     END {printf "all test stages: %d passed, %d failed\n", t - f, f}' "$log"
