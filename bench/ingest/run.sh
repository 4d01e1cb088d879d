#!/usr/bin/env bash
# Benchmark: webhook intake (issue 3, "bench/ingest"). In one run, drives four servers with the same
# load generator (bench_loadgen: N keep-alive connections, a signed ~25 KB merged-PR payload, a
# distinct X-GitHub-Delivery on every request):
#   ceiling         bench_ceiling: tollgate's HTTP stack (Beast's parser, coroutines, read and answered
#                   as service/http_server.cpp does), reads, checks the HMAC, answers 202, nothing else
#   ceiling-beast   the same server reading with Beast's http::async_read and answering with
#                   http::async_write (bench_ceiling --stack beast): the bare Beast server the issue
#                   measured (~26,000/s), kept to compare with that figure and earlier runs
#   ceiling-receive the ceiling plus everything tollgate does to a delivery before storing it
#                   (bench_ceiling --work receive: tollgate's receiver, with its JSON validation, and
#                   its LZ4 body encoder), and no storage: what the ceiling leaves for durability
#   ceiling-store   (not in the default set) ceiling-receive plus a minimal durable store (bench_ceiling
#                   --work store: one writer thread commits what has queued up into one SQLite table,
#                   WAL, synchronous=NORMAL, then the 202): the simplest design tollgate could have had
#   peer            bench/ingest/peer.mjs: Node + @octokit/webhooks@14, verify + parse, 202, no storage
#   tollgate        tollgate serve, every 202 committed to SQLite (WAL, synchronous=NORMAL)
#   tollgate-scattered  the same, with delivery ids in no order (bench_loadgen --ids scattered), as
#                   real hosts send them (random GUIDs): every delivery then lands on its own page of
#                   the (host, delivery id) index, where counting ids land on the index's last page
#   tollgate-full   the same as tollgate with intake.sqlite_synchronous: full (power-loss durability)
#   tollgate-prefilled  (not in the default set) tollgate-scattered on an inbox that already holds
#                   PREFILL deliveries (default 1,000,000), filled once through tollgate itself before
#                   the rounds (ids in no order, a ~430-byte payload, normalised) and copied afresh
#                   for every round: how intake holds up once the inbox and its replay keys are large
# For each: start it, record idle RSS, warm up, run the generator, record peak RSS and CPU, (tollgate:
# wait for the normalisation backlog to be worked off, and report it — first round only), stop it.
# The servers run in turn, ROUNDS times over (ceiling, ceiling-beast, peer, tollgate, ..., ceiling, ...),
# so that a slow spell of this shared machine does not land on one server only; the figures are
# each server's medians over the rounds, and the ratios are taken from the medians.
# Afterwards: a table per round and of the medians, the ratios, the targets, and a check that
# tollgate's database holds exactly as many deliveries as it answered 202 (every round).
#
# Usage: bench/ingest/run.sh            (from anywhere; needs g++, cmake, ninja, node + npm ci)
# Environment: CONNECTIONS=64 DURATION=10 WARMUP=2 (seconds) ROUNDS=3
#   SERVERS="ceiling ceiling-beast ceiling-receive peer tollgate tollgate-scattered tollgate-full" (or add
#   ceiling-store, tollgate-prefilled)  PREFILL=1000000
#   SERVER_THREADS (ceiling and tollgate I/O threads; default: their own default, one per core)
#   TOLLGATE_THREADS (tollgate only; overrides SERVER_THREADS)
#   LOADGEN_THREADS=1  BUILD_DIR=build-bench  JOBS=2  NO_BUILD=1 (skip the build)  KEEP=1 (keep the temp dir)
#   TOLLGATE=path (another tollgate binary, e.g. an experiment)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

connections=${CONNECTIONS:-64}
duration=${DURATION:-10}
warmup=${WARMUP:-2}
servers=${SERVERS:-"ceiling ceiling-beast ceiling-receive peer tollgate tollgate-scattered tollgate-full"}
rounds=${ROUNDS:-3}
prefill=${PREFILL:-1000000}
loadgen_threads=${LOADGEN_THREADS:-1}
# Release (-O3). A build directory of its own: build/ is the CI-style RelWithDebInfo -Werror
# build, and g++ 12 at -O3 raises a false -Wrestrict in pipeline/ that -Werror turns into an error.
build=${BUILD_DIR:-build-bench}
case $build in /*) ;; *) build=$root/$build ;; esac

if [ -z "${NO_BUILD:-}" ]; then
  echo "building ($build, Release) ..."
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTOLLGATE_WERROR=OFF -DTOLLGATE_TESTS=OFF >/dev/null
  if ! cmake --build "$build" -j "${JOBS:-2}" --target tollgate bench_loadgen bench_ceiling bench_sqlite_floor >"$build/bench-ingest-build.log" 2>&1; then
    tail -40 "$build/bench-ingest-build.log"
    echo "run.sh: the build failed (full log: $build/bench-ingest-build.log)"
    exit 1
  fi
fi
loadgen=$build/bench/bench_loadgen
ceiling=$build/bench/bench_ceiling
tollgate=${TOLLGATE:-$build/service/tollgate}
[ -d node_modules/@octokit/webhooks ] || { echo "run.sh: node_modules/@octokit/webhooks is missing: run npm ci"; exit 1; }

work=$(mktemp -d /tmp/tollgate-bench-ingest.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The payload: the merged pull_request "closed" fixture (tests/fixtures/webhooks/github, derived from
# @octokit/webhooks-examples@7.6.1 pull_request example #3; see its README), serialised as one line
# (", " and ": " separators): 25,618 bytes. Without the fixture, the same edits are applied here.
python3 - "$work/body.json" <<'PY'
import json, os, sys
fixture = "tests/fixtures/webhooks/github/pull_request.closed.merged.json"
if os.path.exists(fixture):
    d = json.load(open(fixture))
else:
    ex = [e for e in json.load(open("node_modules/@octokit/webhooks-examples/api.github.com/index.json"))
          if e["name"] == "pull_request"][0]["examples"][3]
    ex["pull_request"].update(merged=True, merged_at=ex["pull_request"]["closed_at"], merged_by=ex["sender"])
    d = ex
assert d["action"] == "closed" and d["pull_request"]["merged"] is True
open(sys.argv[1], "w").write(json.dumps(d))
PY
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secret"
run_base=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')  # delivery ids: <run_base><nn>-0000-4000-8000-<counter>
run_no=0

# Prints the port once the server's output ($1, a file) shows it listening; waits up to 15 s.
wait_port() {
  local file=$1 pid=$2
  for _ in $(seq 150); do
    local port
    port=$(grep -m1 -oE '(listening|"address":") ?"?127\.0\.0\.1:[0-9]+' "$file" 2>/dev/null | grep -oE '[0-9]+$' || true)
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Bytes the process handed to write calls (WAL, checkpoints, logs; /proc/PID/io "wchar"): counts
# every rewrite, which write_bytes (what reaches the disk, once per dirty page) does not.
written() { awk '$1 == "wchar:" {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }
loadgen_run() {  # port seconds out.json [sequential|scattered]
  run_no=$((run_no + 1))
  "$loadgen" --port "$1" --path /hooks/github --connections "$connections" --threads "$loadgen_threads" \
    --duration "$2" --body "$work/body.json" --secret-file "$work/secret" --event pull_request \
    --ids "${4:-sequential}" --run-id "$(printf '%s%02x' "$run_base" "$run_no")" --json > "$3" || true
}

start_server() {  # name dir -> sets server_pid, server_out
  local name=$1 dir=$2
  mkdir -p "$dir"
  server_out=$dir/out.log
  case $name in
    ceiling | ceiling-beast | ceiling-receive | ceiling-store)
      local stack=tollgate what=none
      [ "$name" = ceiling-beast ] && stack=beast
      [ "$name" = ceiling-receive ] && what=receive
      [ "$name" = ceiling-store ] && what=store
      "$ceiling" --secret-file "$work/secret" --stack "$stack" --work "$what" --db "$dir/ceiling.db" \
        ${SERVER_THREADS:+--threads "$SERVER_THREADS"} >"$server_out" 2>&1 &
      ;;
    peer)
      node bench/ingest/peer.mjs --secret-file "$work/secret" 0 >"$server_out" 2>&1 &
      ;;
    tollgate | tollgate-scattered | tollgate-full | tollgate-prefilled)
      cp "$work/secret" "$dir/webhook-secret"
      # A fresh copy of the filled inbox (fill_inbox below): each round starts from the same state.
      [ "$name" = tollgate-prefilled ] && cp "$work/prefill/tollgate.db" "$dir/tollgate.db"
      {
        echo "listen: 127.0.0.1:0"
        echo "database: $dir/tollgate.db"
        echo "data_dir: $dir/data"
        echo "public_url: http://127.0.0.1:8080"
        echo "hosts:"
        echo "  github:"
        echo "    kind: github"
        echo "    webhook_secret_file: webhook-secret"
        if [ "$name" = tollgate-full ]; then
          echo "intake:"
          echo "  sqlite_synchronous: full"
        fi
      } > "$dir/tollgate.yaml"
      local tthreads=${TOLLGATE_THREADS:-${SERVER_THREADS:-}}
      "$tollgate" serve --config "$dir/tollgate.yaml" ${tthreads:+--threads "$tthreads"} 2>"$server_out" >/dev/null &
      ;;
  esac
  server_pid=$!
  pids+=("$server_pid")
}

stop_server() {  # pid: SIGTERM, then SIGKILL after 15 s
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "  $pid did not stop within 15 s of SIGTERM: killed"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

load1() { cut -d' ' -f1-3 /proc/loadavg; }
# Deliveries not yet normalised, from a running tollgate's /metrics (empty if it does not answer).
inbox_depth() { curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "tollgate_inbox_depth" {print $2}'; }
# Rows in a stopped tollgate's deliveries table ("?" if it cannot be read). With "truncate", first
# moves everything into the database file itself (no WAL left beside it), so one file is a copy.
db_rows() {  # file [truncate]
  python3 - "$@" <<'PY' 2>/dev/null || echo "?"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
if sys.argv[2:] == ["truncate"]: c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
print(c.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])
PY
}
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -r); $(date -u +%Y-%m-%dT%H:%MZ); load average at start: $(load1)"
echo "NOTE: the load generator and each server share this $(nproc)-core machine (nothing is pinned): the generator's"
echo "      own CPU is shown per run, and other processes on the machine take CPU from both."
echo "load: $connections keep-alive connections, ${loadgen_threads} generator thread(s), warm-up ${warmup} s, then ${duration} s;"
echo "      POST /hooks/github, $(wc -c < "$work/body.json")-byte merged pull_request payload, X-Hub-Signature-256, distinct X-GitHub-Delivery"
echo

# Fills an inbox with $prefill deliveries through tollgate itself (so every invariant of the inbox
# holds: rows, replay keys merged or not, outcomes), with ids in no order, as hosts send them, and
# a ~430-byte payload (the fill is quick and the copy small: what grows with the count is the key
# index, not the append-only deliveries table), then waits until every delivery is normalised.
fill_inbox() {
  local dir=$work/prefill
  python3 - "$work/body.json" "$work/small.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
pr = d["pull_request"]
small = {"action": d["action"], "number": d["number"],
         "pull_request": {k: pr[k] for k in ("url", "id", "number", "state", "title", "merged", "merge_commit_sha")},
         "repository": {k: d["repository"][k] for k in ("id", "name", "full_name")}, "sender": {"login": d["sender"]["login"]}}
open(sys.argv[2], "w").write(json.dumps(small))
PY
  start_server tollgate "$dir"
  local pid=$server_pid port
  if ! port=$(wait_port "$server_out" "$pid"); then echo "prefill: tollgate did not start"; tail -20 "$server_out"; exit 1; fi
  local started=$SECONDS
  "$loadgen" --port "$port" --path /hooks/github --connections "$connections" --requests "$prefill" \
    --body "$work/small.json" --secret-file "$work/secret" --event pull_request --ids scattered \
    --run-id "$(printf '%s%02x' "$run_base" 255)" --json > "$dir/fill.json" || true
  local depth=""
  for _ in $(seq 6000); do  # up to 10 minutes for the normaliser
    depth=$(inbox_depth "$port")
    [ "${depth:-1}" = 0 ] && break
    sleep 0.1
  done
  stop_server "$pid"
  local rows
  rows=$(db_rows "$dir/tollgate.db" truncate)
  if [ "$rows" != "$prefill" ] || [ "${depth:-1}" != 0 ]; then
    echo "prefill: the inbox holds $rows deliveries (wanted $prefill), ${depth:-?} not normalised; see $dir"
    exit 1
  fi
  echo "prefill: $rows deliveries (ids in no order, $(wc -c < "$work/small.json")-byte payload) stored and normalised in $((SECONDS - started)) s;" \
    "database $(($(stat -c %s "$dir/tollgate.db") / 1048576)) MiB"
  echo
}
case " $servers " in *" tollgate-prefilled "*) fill_inbox ;; esac

for round in $(seq "$rounds"); do
[ "$rounds" -gt 1 ] && echo "round $round of $rounds"
for name in $servers; do
  dir=$work/$name/$round
  start_server "$name" "$dir"
  if ! port=$(wait_port "$server_out" "$server_pid"); then
    echo "$name: did not start; its output:"
    tail -20 "$server_out"
    exit 1
  fi
  sleep 0.5
  idle=$(rss_kb "$server_pid" VmRSS)
  ids=sequential
  [ "$name" = tollgate-scattered ] || [ "$name" = tollgate-prefilled ] && ids=scattered
  loadgen_run "$port" "$warmup" "$dir/warmup.json" "$ids"
  sleep 0.5
  load_before=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(cpu_ticks "$server_pid"); w0=$(written "$server_pid")
  loadgen_run "$port" "$duration" "$dir/run.json" "$ids"
  t1=$(cpu_ticks "$server_pid"); w1=$(written "$server_pid")
  peak=$(rss_kb "$server_pid" VmHWM)
  after=$(rss_kb "$server_pid" VmRSS)
  alive=yes
  kill -0 "$server_pid" 2>/dev/null || alive=no
  # tollgate normalises in the background and defers to intake during a burst: report the backlog
  # left at the end of the run and how long it takes to work off (not part of the figures above).
  backlog=""; drained=""
  if [[ $name == tollgate* && $alive == yes && $round == 1 ]]; then
    backlog=$(inbox_depth "$port")
    drain_start=$(date +%s.%N)
    for _ in $(seq 1200); do
      d=$(inbox_depth "$port")
      if [ "${d:-1}" = 0 ]; then drained=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$drain_start" "$(date +%s.%N)"); break; fi
      sleep 0.1
    done
    echo "  $name: normalisation backlog at the end of the run: ${backlog:-?} deliveries; worked off in ${drained:-more than 120} s"
  fi
  stop_server "$server_pid"
  rows=""
  if [[ $name == tollgate* ]]; then
    rows=$(db_rows "$dir/tollgate.db")
  fi
  printf '{"name":"%s","port":%s,"idle_rss_kb":%s,"peak_rss_kb":%s,"rss_after_kb":%s,"server_cpu_ticks":%s,"ticks_per_s":%s,"written_bytes":%s,"alive":"%s","rows":"%s","load":"%s"}\n' \
    "$name" "$port" "${idle:-0}" "${peak:-0}" "${after:-0}" "$((t1 - t0))" "$(getconf CLK_TCK)" "$((w1 - w0))" "$alive" "$rows" \
    "$load_before" > "$dir/server.json"
  python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
r, w, s = (json.load(open(f"{d}/{f}.json")) for f in ("run", "warmup", "server"))
l = r["latency_ms"]
errs = ", ".join(f"{k}: {v}" for k, v in r["status"].items() if not k.startswith("2"))
errs += "".join(f", {k}: {v}" for k, v in r["errors"]["socket"].items())
print(f"{s['name']:<14} {r['requests']:>7} requests in {r['elapsed_s']:.1f} s = {r['rps']:>8.0f}/s  "
      f"p50 {l['p50']:.2f}  p90 {l['p90']:.2f}  p99 {l['p99']:.2f}  max {l['max']:.2f} ms  "
      f"errors {r['errors']['total']}{' (' + errs.lstrip(', ') + ')' if errs else ''}"
      + (f"  written {s['written_bytes'] / r['requests'] / 1024:.1f} KB/request" if s['name'].startswith('tollgate') and r['requests'] else ""))
PY
  if [ "$alive" = no ]; then
    echo "  $name DIED during the run; last lines of its output:"
    tail -5 "$server_out"
  fi
done
done

echo
status=0
python3 - "$work" "$rounds" "$prefill" $servers <<'PY' || status=$?
import json, os, statistics, sys
work, rounds, prefill, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
res = {n: [] for n in names}  # per server: one entry per round
for n in names:
    for k in range(1, rounds + 1):
        d = os.path.join(work, n, str(k))
        r, w, s = (json.load(open(os.path.join(d, f + ".json"))) for f in ("run", "warmup", "server"))
        res[n].append(dict(run=r, warm=w, srv=s))

def mb(kb): return f"{int(kb) / 1024:.1f}"
def cpu(x):
    r, s = x["run"], x["srv"]
    return s["server_cpu_ticks"] / s["ticks_per_s"] / r["elapsed_s"] * 100 if r["elapsed_s"] else 0
def gen(x):
    r = x["run"]
    return r["cpu_s"] / r["elapsed_s"] * 100 if r["elapsed_s"] else 0
med = statistics.median

header = ("| server | requests/s | p50 ms | p99 ms | max ms | errors | idle RSS MB | peak RSS MB | server CPU | generator CPU | load avg |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
if rounds > 1:
    print("each round:")
    print(header.replace("| server |", "| server (round) |", 1))
    for k in range(rounds):
        for n in names:
            x = res[n][k]; r, s = x["run"], x["srv"]; l = r["latency_ms"]
            print(f"| {n} ({k + 1}) | {r['rps']:.0f} | {l['p50']:.2f} | {l['p99']:.2f} | {l['max']:.2f} | {r['errors']['total']} | "
                  f"{mb(s['idle_rss_kb'])} | {mb(s['peak_rss_kb'])} | {cpu(x):.0f}% | {gen(x):.0f}% | {s['load']} |")
    print()
    print(f"medians over the {rounds} rounds (max: the largest; errors: the sum):")
m = {}
print(header)
for n, xs in res.items():
    m[n] = dict(rps=med(x["run"]["rps"] for x in xs), p50=med(x["run"]["latency_ms"]["p50"] for x in xs),
                p99=med(x["run"]["latency_ms"]["p99"] for x in xs), max=max(x["run"]["latency_ms"]["max"] for x in xs),
                errors=sum(x["run"]["errors"]["total"] for x in xs), idle=med(int(x["srv"]["idle_rss_kb"]) for x in xs),
                peak=med(int(x["srv"]["peak_rss_kb"]) for x in xs), cpu=med(cpu(x) for x in xs), gen=med(gen(x) for x in xs))
    v = m[n]
    print(f"| {n} | {v['rps']:.0f} | {v['p50']:.2f} | {v['p99']:.2f} | {v['max']:.2f} | {v['errors']} | "
          f"{mb(v['idle'])} | {mb(v['peak'])} | {v['cpu']:.0f}% | {v['gen']:.0f}% | {', '.join(x['srv']['load'] for x in xs)} |")
print("(server and generator CPU: % of one core during the measured run, 200% = both cores; the generator's")
print(" includes the loopback TCP work the kernel does inside its send(). load avg: 1-minute, before the run)")

print()
peer, ceil, beast = m.get("peer"), m.get("ceiling"), m.get("ceiling-beast")
for n in ("tollgate", "tollgate-scattered", "tollgate-full", "tollgate-prefilled"):
    if n not in m: continue
    t = m[n]
    parts = []
    if peer: parts.append(f"{t['rps'] / peer['rps']:.2f}x peer (target >= 2x)")
    if ceil:
        parts.append(f"{t['rps'] / ceil['rps'] * 100:.0f}% of ceiling (target >= 60%)")
    if beast:
        parts.append(f"{t['rps'] / beast['rps'] * 100:.0f}% of ceiling-beast")
    print(f"{n}: requests/s " + ", ".join(parts) + f"; p99 {t['p99']:.2f} ms (target <= 10)"
          f"; idle RSS {mb(t['idle'])} MB (target <= 20)")
    if rounds > 1 and (peer or ceil or beast):
        per = []
        for k in range(rounds):
            tr = res[n][k]["run"]["rps"]
            bits = []
            if peer: bits.append(f"{tr / res['peer'][k]['run']['rps']:.2f}x")
            if ceil: bits.append(f"{tr / res['ceiling'][k]['run']['rps'] * 100:.0f}%")
            if beast: bits.append(f"{tr / res['ceiling-beast'][k]['run']['rps'] * 100:.0f}%")
            per.append(" / ".join(bits))
        heads = (["peer ratio"] if peer else []) + (["of ceiling"] if ceil else []) + (["of ceiling-beast"] if beast else [])
        print(f"  round by round ({' / '.join(heads)}): " + ", ".join(per))
    ok = []
    if peer: ok.append(t["rps"] >= 2 * peer["rps"])
    if ceil: ok.append(t["rps"] >= 0.6 * ceil["rps"])
    ok += [t["p99"] <= 10, t["idle"] <= 20 * 1024]
    print(f"  targets: {'all met' if all(ok) else 'NOT all met'}")
    kb = [x["srv"].get("written_bytes", 0) / x["run"]["requests"] / 1024 for x in res[n] if x["run"]["requests"]]
    if kb: print(f"  written per request (WAL, checkpoints, log lines): median {med(kb):.1f} KB, rounds " + ", ".join(f"{v:.1f}" for v in kb))

# What the ceiling leaves for storage: the ceiling with tollgate's own work on a delivery and no
# storage (ceiling-receive), and with a minimal store (ceiling-store); server CPU per request is the
# cost that decides throughput on a machine whose cores are all busy.
if ceil:
    for n in ("ceiling", "ceiling-receive", "ceiling-store", "tollgate"):
        if n not in m: continue
        v = m[n]
        print(f"{n}: {v['rps'] / ceil['rps'] * 100:.0f}% of ceiling; server CPU {v['cpu'] / 100 * 1e6 / v['rps']:.1f} us per request"
              f" (median CPU / median requests/s)")

print()
bad = False
for n in ("tollgate", "tollgate-scattered", "tollgate-full", "tollgate-prefilled"):
    if n not in res: continue
    before = prefill if n == "tollgate-prefilled" else 0  # the copied inbox's deliveries
    for k, x in enumerate(res[n]):
        answered = sum(int(v) for key, v in list(x["warm"]["status"].items()) + list(x["run"]["status"].items()) if key == "202")
        rows = x["srv"]["rows"]
        added = int(rows) - before if str(rows).isdigit() else None  # rows this round added
        same = added == answered
        shown = rows if added is None else f"{added}" + (f" (+{before} before)" if before else "")
        bad |= not same or x["srv"]["alive"] != "yes"
        print(f"{n}{f' (round {k + 1})' if rounds > 1 else ''}: database rows {shown}, 202 answers {answered} (warm-up + run): "
              f"{'OK, every 202 is in the inbox, none twice' if same else 'MISMATCH'}"
              f"{'' if x['srv']['alive'] == 'yes' else '; the server died during the run'}")
sys.exit(1 if bad else 0)
PY
echo
# The least SQLite itself needs per delivery, on one thread with nothing around it (see
# bench/ingest/sqlite_floor.cpp): the part of the ceiling's budget durability cannot go below.
if [ -x "$build/bench/bench_sqlite_floor" ]; then
  for ids in sequential scattered; do "$build/bench/bench_sqlite_floor" --db "$work/floor.db" --ids "$ids" || true; done
fi
echo "load average at end: $(load1)"
exit $status
