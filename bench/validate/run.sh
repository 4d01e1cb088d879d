#!/usr/bin/env bash
# Benchmark: validating a 5,000-line pipeline file (target: well under 100 ms).
# Prints: the whole `tollgate validate` process (hyperfine), the in-process load+validate cost
# with a phase breakdown, and the ajv peer (YAML parse + schema only) on the same file, in one run.
# Usage: bench/validate/run.sh [LINES]       (builds build/ if needed; needs hyperfine and npm ci)
set -euo pipefail
cd "$(dirname "$0")/../.."
lines=${1:-5000}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "${JOBS:-2}" --target tollgate bench_validate >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
file="$work/pipeline.yaml"
python3 bench/validate/gen.py "$lines" > "$file"
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; $(date -u +%Y-%m-%d)"
echo "file: $(wc -l < "$file") lines, $(wc -c < "$file") bytes; $(build/service/tollgate validate "$file")"
hyperfine --warmup 5 --runs 50 --style none --export-json "$work/h.json" \
  "build/service/tollgate validate --no-source $file" >/dev/null
python3 - "$work/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"tollgate validate (whole process, hyperfine): 50 runs, median {r['median']*1000:.1f} ms, "
      f"mean {r['mean']*1000:.1f} ms, min {r['min']*1000:.1f} ms, max {r['max']*1000:.1f} ms")
PY
build/bench/bench_validate "$file" 50
if [ -d node_modules/ajv ]; then
  node bench/validate/ajv-peer.mjs "$file" 50
else
  echo "ajv peer skipped: run npm ci first"
fi
