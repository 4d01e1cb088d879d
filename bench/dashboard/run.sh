#!/usr/bin/env bash
# Benchmark: the dashboard's first render (issue 6: "The dashboard's first render of a pipeline
# with 20 stages and 10,000 historical runs is under 200 ms server time").
#
# 1. A temp dir with a tollgate.yaml (one github host, webhook secret only: intake, no promotions;
#    api.anonymous_read; listen 127.0.0.1:0); `tollgate serve` starts once to create and migrate
#    the SQLite database, and is stopped (SIGTERM, by pid).
# 2. bench/dashboard/dashboard.py fills it: one pipeline of 20 stages (its .tollgate.yaml checked
#    with `tollgate validate`), RUNS runs over 90 days with their states, run_stages rows and
#    ~AUDIT_PER_RUN audit rows each (see dashboard.py's header).
# 3. `tollgate serve` on that database; ROUNDS rounds, each over a fresh keep-alive connection
#    (one curl process), of every request of the dashboard's first render of the pipelines view:
#    GET /, /assets/app.css, /assets/app.js, /api/v1/pipelines, /api/v1/delivery,
#    /api/v1/runs?host=&repo=&pipeline=&limit=10 (the event stream is not part of the render).
#    Server time per request = time to first byte (curl time_starttransfer - time_pretransfer).
#    Prints each request's median and p90, and the median of the per-round sums against 200 ms.
# 4. For information: the run view of the newest run (GET /api/v1/runs/{id}, /api/v1/audit?run=)
#    in the same rounds, and the API's SQL on this database with SQLite's plans (PLANS=0: skip).
# tollgate is stopped by pid and the temp dir removed on exit, also on Ctrl-C.
#
# Usage: bench/dashboard/run.sh          (needs python3, curl; no build is done here)
# Environment: TOLLGATE_BIN=build/service/tollgate  RUNS=10000  AUDIT_PER_RUN=25  ROUNDS=30  SEED=1
#              PLANS=1 (print the queries' plans and times)  KEEP=1 (keep the temp dir)
#              EXTRA_SQL=FILE (run on the filled database before the measurement, e.g. to try an index)
#              MEASURE_JSON=FILE (also write the figures there as JSON)
# Exit status: 0 when the target is met, 1 when it is not, 2 on an error.
set -euo pipefail
if [ -n "${EXTRA_SQL:-}" ]; then EXTRA_SQL=$(realpath "$EXTRA_SQL"); fi
cd "$(dirname "$0")/../.."
root=$PWD
bin=${TOLLGATE_BIN:-build/service/tollgate}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
[ -x "$bin" ] || { echo "run.sh: $bin is not an executable (set TOLLGATE_BIN)"; exit 2; }
RUNS=${RUNS:-10000} AUDIT_PER_RUN=${AUDIT_PER_RUN:-25} ROUNDS=${ROUNDS:-30} SEED=${SEED:-1} PLANS=${PLANS:-1}
helper=$root/bench/dashboard/dashboard.py

work=$(mktemp -d /tmp/tollgate-bench-dashboard.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=
  if [ -n "${KEEP:-}" ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

printf 'bench-dashboard-secret\n' >"$work/webhook-secret"
cat >"$work/tollgate.yaml" <<'EOF'
listen: 127.0.0.1:0
database: ./tollgate.db
data_dir: ./data
public_url: http://127.0.0.1:8080
hosts:
  github:
    kind: github
    webhook_secret_file: webhook-secret
api:
  anonymous_read: true
EOF

# Starts tollgate serve in the background ($pid) and waits for its "listening" line ($base).
start() {
  : >"$work/serve.log"
  "$bin" serve --config "$work/tollgate.yaml" >>"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    if addr=$(grep -o '"msg":"listening","address":"[0-9.:]*"' "$work/serve.log" | grep -o '[0-9.]*:[0-9]*"$'); then
      base="http://${addr%\"}"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "run.sh: tollgate serve exited:"; cat "$work/serve.log"; exit 2; }
    sleep 0.05
  done
  echo "run.sh: tollgate serve did not start listening:"; cat "$work/serve.log"; exit 2
}
stop() {
  kill -TERM "$pid"
  wait "$pid" || { echo "run.sh: tollgate serve exited with status $?:"; tail -5 "$work/serve.log"; exit 2; }
  pid=
}

echo "machine: $(nproc) cores; $(free -g | awk '/^Mem:/ {print $2 " GiB, " $7 " GiB available"}'); load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "tollgate: $bin ($($bin version), built $(stat -c %y "$bin" | cut -d. -f1)); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- service pipeline webhooks 2>/dev/null || echo ' (with uncommitted changes in service/, pipeline/ or webhooks/)'); SQLite $(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)')"
echo "RUNS=$RUNS AUDIT_PER_RUN=$AUDIT_PER_RUN ROUNDS=$ROUNDS SEED=$SEED${EXTRA_SQL:+ EXTRA_SQL=$EXTRA_SQL}"
echo

# 1. An empty, migrated database.
start
stop

# 2. The pipeline file, then the history.
python3 "$helper" definition >"$work/tollgate-pipeline.yaml"
echo "pipeline file: $("$bin" validate --no-source "$work/tollgate-pipeline.yaml")"
python3 "$helper" fill "$work/tollgate.db" "$RUNS" "$AUDIT_PER_RUN" "$SEED"
if [ -n "${EXTRA_SQL:-}" ]; then
  python3 "$helper" sql "$work/tollgate.db" "$EXTRA_SQL"
  echo "EXTRA_SQL applied: $EXTRA_SQL"
fi
python3 "$helper" stats "$work/tollgate.db"
echo

# 3. and 4. The first render, then the run view.
start
echo "tollgate serve: pid $pid, $base"
status=0
python3 "$helper" measure "$base" "$work/tollgate.db" "$ROUNDS" || status=$?
echo "tollgate serve: peak RSS $(awk '/^VmHWM/ {printf "%.1f MB", $2 / 1024}' "/proc/$pid/status"), CPU $(awk '{printf "%.2f s", ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$pid/stat")"
if grep -q '"level":"error"' "$work/serve.log"; then
  echo "tollgate logged errors:"; grep '"level":"error"' "$work/serve.log" | head -5; status=2
fi
stop
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$PLANS" = 1 ]; then
  echo
  python3 "$helper" plans "$work/tollgate.db"
fi
exit $status
