#!/usr/bin/env bash
# Benchmark: promotion through the engine (issue "bench/promote"). Real `tollgate serve` against the
# test Git host (tests/githost: real git behind lighttpd + http-backend, GitHub-shaped REST API,
# signed webhooks), both started by bench/promote/promote.mjs on 127.0.0.1 ephemeral ports and
# stopped by pid. Two parts (details in promote.mjs's header):
#   latency     one application, pipeline dev -> qa -> prod, checks: none, merge: auto, no soak;
#               RUNS source merges one after the other. Per stage transition: from the host
#               starting to send stage N's merge webhook to stage N+1's PR being open (the host
#               starting to send its pull_request.opened webhook; the arrival of tollgate's
#               POST .../pulls is shown as a lower bound). Target: p50 <= 150 ms, p99 <= 500 ms.
#   throughput  APPS applications (one pipeline and one run each) x 3 stages, all started at once
#               (their merge webhooks redelivered together), into three shared environment
#               repositories (apps/app-NNN/values.yaml each). Checks: all succeed, no duplicate PR,
#               comment or merge. Stages/min against the floor: a script doing the same git pushes
#               (git CLI over HTTP), PR creations and merges straight at the host with WORKERS at
#               once, just before and just after tollgate. Targets: >= 70% of the floor's (mean) rate, tollgate's peak RSS <= 150 MB.
#               Run in several setups (SETUPS), each on a fresh host and store:
#                 sqlite   one `tollgate serve` on SQLite (the webhook points at it);
#                 pgN      N replicas on one PostgreSQL database (pg1: one, webhook straight at it;
#                          N > 1: behind a round-robin forwarder, tests/promote/replicas.mjs), each
#                          with engine.workers = WORKERS (so pg3 has 3 x the workers);
#                 ...:W    W workers per replica instead (e.g. pg3:2: 6 workers over 3 processes).
#               With PostgreSQL also: transactions (pg_stat_database, net of the benchmark's own
#               sessions and of the idle replicas), the server's CPU, and who holds or waits for
#               tollgate's advisory locks (pg_locks, sampled every second); per replica: jobs done
#               (their lease owner), jobs started, deliveries answered, events / normaliser leader.
#
# Usage: bench/promote/run.sh            (from anywhere; needs node 20 + npm ci, git, lighttpd, python3;
#                                         for pg setups psql and PostgreSQL 15's server, or a server)
# Environment:
#   TOLLGATE_BIN=build/service/tollgate   the binary under test (no build is done here)
#   PARTS="latency throughput"  RUNS=30 (latency runs)  APPS=200 (throughput pipelines)
#   WORKERS=4 (tollgate's engine.workers per replica and the floor's concurrency)  TIMEOUT=900 (s, throughput)
#   SETUPS="sqlite pg1 pg3"     the throughput setups (default these three when PostgreSQL is at
#                               hand: TOLLGATE_TEST_POSTGRES, or a throwaway cluster started here
#                               (tests/postgres.sh) and stopped by its pid at the end; else "sqlite")
#   FLOOR=each (the floor just before and just after every setup, on its host) | once (before the
#   first setup and after the last; every setup is judged against their mean)
#   NO_FLOOR=1 (skip the floor)  KEEP=1 / KEEP_TMP=1 (keep the temp dirs / the replicas' dirs and
#   schemas)  OUT=file (also write the JSON there)  TOLLGATE_TEST_POSTGRES=url (a server to use; it
#   should be idle: the transaction and CPU figures are the whole server's)
#   The latency part runs on SQLite (or TOLLGATE_TEST_STORE=postgres with TOLLGATE_TEST_POSTGRES).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=${TOLLGATE_BIN:-build/service/tollgate}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
[ -x "$bin" ] || { echo "run.sh: $bin is not an executable (set TOLLGATE_BIN)"; exit 1; }
[ -d node_modules/yaml ] || { echo "run.sh: node_modules is missing: run npm ci"; exit 1; }

export TOLLGATE_BIN=$bin RUNS=${RUNS:-30} APPS=${APPS:-200} WORKERS=${WORKERS:-4} PARTS=${PARTS:-"latency throughput"}
. tests/postgres.sh
out=$(mktemp /tmp/tollgate-bench-promote.XXXXXX.json)
trap 'stop_postgres; rm -f "$out"' EXIT
if [ -z "${SETUPS:-}" ]; then
  if [ -n "${TOLLGATE_TEST_POSTGRES:-}" ] || [ -x "$pg_bin/initdb" ]; then SETUPS="sqlite pg1 pg3"; else SETUPS=sqlite; fi
fi
export SETUPS FLOOR=${FLOOR:-each}
if [[ " $PARTS " == *" throughput "* && " $SETUPS " == *" pg"* && -z "${TOLLGATE_TEST_POSTGRES:-}" ]]; then
  start_postgres || exit 1
fi

echo "machine: $(nproc) cores; $(free -g | awk '/^Mem:/ {print $2 " GiB, " $7 " GiB available"}'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "git $(git --version | awk '{print $3}'), $(lighttpd -v 2>/dev/null | head -1 | awk '{print $1}'), node $(node --version)"
echo "tollgate: $bin ($(stat -c %y "$bin" | cut -d. -f1)); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "parts: $PARTS; RUNS=$RUNS APPS=$APPS WORKERS=$WORKERS; throughput setups: $SETUPS (floor: ${NO_FLOOR:+none}${NO_FLOOR:-$FLOOR})"
[ -n "${TOLLGATE_TEST_POSTGRES:-}" ] && echo "PostgreSQL: $TOLLGATE_TEST_POSTGRES ($(psql -XAtd "$TOLLGATE_TEST_POSTGRES" -c 'SHOW server_version' | awk '{print $1}'))"
echo

# promote.mjs prints its progress on stderr and one JSON object on stdout; node's own pids (the
# host, lighttpd, tollgate) are stopped by promote.mjs, also on SIGINT/SIGTERM.
status=0
node bench/promote/promote.mjs >"$out" || status=$?
[ -n "${OUT:-}" ] && cp "$out" "$OUT"
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ok = lambda b: "met" if b else "**NOT met**"
if "latency" in d:
    l = d["latency"]
    print(f"\n## latency ({l['runs']} runs, {l['samples']} stage transitions: dev->qa, qa->prod)\n")
    print("| merge webhook -> next PR open | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|")
    print(f"| PR open (host sends pull_request.opened) | {l['p50_ms']} | {l['p99_ms']} | {l['max_ms']} |")
    print(f"| lower bound (tollgate's POST .../pulls arrives) | {l['p50_post_ms']} | {l['p99_post_ms']} | |")
    print(f"| (source merge -> dev PR open, not in the target) | {l['source_to_dev_p50_ms']} | {l['source_to_dev_p99_ms']} | |")
    b = l.get("breakdown_p50_ms")
    if b:
        names = {"merge_pr_done": "merge webhook sent -> tollgate's merge_pr job done", "prepare_started": "-> next stage's prepare_branch starts (earlier jobs of the run first)",
                 "prepare_done": "-> branch pushed (fetch + commit + push)", "open_pr_started": "-> open_pr job starts", "post_arrived": "-> POST .../pulls arrives (after the existing-PR lookup)",
                 "pr_open": "-> host has opened the PR (sends pull_request.opened)"}
        print("\nmedian of each step (ms, from tollgate's log and the host's records):\n")
        print("| step | ms |\n|---|---:|")
        for k, v in b.items(): print(f"| {names.get(k, k)} | {v} |")
    print(f"\nwhole run (source merge -> run succeeded, 3 stages), median: {l['run_p50_ms']} ms; peak RSS {l['peak_rss_kb']/1024:.1f} MB; load average during the runs {l.get('load_avg', '?')}")
    print("API requests per run: " + ", ".join(f"{k} {v}" for k, v in sorted(l["api_requests_per_run"].items())))
    print(f"targets: p50 <= 150 ms {ok(l['p50_ms'] <= 150)} ({l['p50_ms']}); p99 <= 500 ms {ok(l['p99_ms'] <= 500)} ({l['p99_ms']})")
def split(x):
    c = x.get("host_cpu_split")
    return f"{c['node_s']} / {c['git_s']}" if c else ""
if "throughput" in d:
    t = d["throughput"]
    print(f"\n## throughput ({t['apps']} pipelines x 3 stages = {t['stages']} stages; floor: {t['workers']} at once, measured {t['floor_mode']})\n")
    print("| setup | replicas x workers | seconds (runs / all side effects) | stages/min | floor before / after, stages/min | ratio (runs / side effects) | peak RSS MB (sum; max) | tollgate CPU s | host CPU s (node / git) | API requests per stage | load avg |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in t["setups"]:
        g = s.get("tollgate")
        if not g:
            print(f"| {s['setup']} | {s['replicas']} x {s['workers_per_replica']} | **failed** | | | | | | | | |")
            continue
        fb, fa = s.get("floor_before"), s.get("floor_after")
        fl = f"{fb['stages_per_min'] if fb else '—'} / {fa['stages_per_min'] if fa else '—'}"
        ratio = f"{s['ratio']:.2f} / {s['ratio_drained']:.2f}" if "ratio" in s else ""
        print(f"| {s['setup']} | {s['replicas']} x {s['workers_per_replica']} | {g['seconds']} / {g['drained_seconds']} | {g['stages_per_min']} | {fl} | {ratio} | {g['peak_rss_kb']/1024:.1f}; {g['peak_rss_kb_max']/1024:.1f} | {g['cpu_s']} | {g['host_cpu_s']} ({split(g)}) | {g['api_requests_per_stage_total']} | {g['load_avg']} |")
    for s in t["setups"]:
        print(f"\n### {s['setup']}: {s['store']}, {s['replicas']} replica(s) x {s['workers_per_replica']} workers (world set up in {s.get('world_setup_s', '?')} s)\n")
        for key, label in (("floor_before", "floor, just before"), ("floor_after", "floor, just after")):
            if key in s:
                f = s[key]
                print(f"{label}: {f['seconds']} s, {f['stages_per_min']} stages/min, {f.get('api_requests', '')} API requests, host CPU {f.get('host_cpu_s', '')} s ({split(f)}), load {f.get('load_avg', '')}, machine CPU busy {f.get('machine_cpu', {}).get('busy_share', 0)*100:.0f}% (other work {f.get('machine_cpu', {}).get('other_s')} s)")
        if "error" in s:
            print(f"**ERROR**: {s['error']}")
        g = s.get("tollgate")
        if not g:
            continue
        m = g.get("machine_cpu", {})
        print(f"tollgate: {g['api_requests']} API requests, errors {g['api_errors']}, {g['comments']} comments; its CPU {g['cpu_s']} s, the benchmark's own {g['driver_cpu_s']} s; "
              f"the machine's CPU {m.get('busy_s')} s busy ({m.get('busy_share', 0)*100:.0f}% of all cores; other work than this benchmark's {m.get('other_s')} s)")
        print("API requests per stage: " + ", ".join(f"{k} {v}" for k, v in sorted(g["api_requests_per_stage"].items())))
        e = g["engine"]
        print(f"engine per stage: {', '.join(f'{k} {v}' for k, v in e['per_stage'].items())}; consumed by kind {e['consumed']}; resync timers left pending {e['timers_pending']}")
        print("jobs: " + ", ".join(f"{j['kind']} {j['n']} (done {j['done']}, retried {j['retried']}, failed {j['failed']})" for j in g["jobs"]))
        print("job ms (started -> finished, p50 / p90): " + ", ".join(f"{k} {v['p50']} / {v['p90']}" for k, v in g["job_ms"].items())
              + f"; worker time per stage {g['worker_time_per_stage_ms']} ms; workers busy {g['worker_busy_share']*100:.0f}% of {s['workers_total']} x the time to the last side effect")
        db = s.get("database")
        if db:
            print(f"PostgreSQL: {db['transactions']} transactions ({db['transactions_per_stage']} per stage, {db['transactions_per_s']}/s; raw {db['transactions_raw']}, less the benchmark's {db['harness_transactions']} and idle {db['idle_transactions_per_s']}/s), "
                  f"rollbacks {db['rollbacks']}; per transaction: statements {db['active_ms_per_transaction']} ms, inside transactions {db['in_transaction_ms_per_transaction']} ms, server CPU {db['server_cpu_ms_per_transaction']} ms; server CPU {db['server_cpu_s']} s; rows written {db['rows_written']}")
            print(f"advisory locks ({db['locks']['samples']} samples, one a second): " + "; ".join(f"{k} {v}" for k, v in sorted(db["locks"]["locks"].items())))
        if len(g["replicas"]) > 1:
            print("\n| replica | jobs done | jobs started | deliveries answered | events leader | normaliser leader | peak RSS MB | CPU s | warn / error lines |")
            print("|---|---:|---:|---:|---|---|---:|---:|---:|")
            for name, r in g["replicas"].items():
                print(f"| {name} | {r['jobs_done']} | {r['jobs_started']} | {r.get('deliveries_answered', '')} | {'yes' if r['events_leader'] else ''} | {'yes' if r['normaliser_leader'] else ''} | {r['peak_rss_kb']/1024:.1f} | {r['cpu_s']} | {r['warnings']} / {r['errors']} |")
        if g.get("log_issues"):
            print("log lines at warn/error: " + "; ".join(f"{k} x{v['n']}" for k, v in list(g["log_issues"].items())[:12]))
        print("checks: " + ("all runs succeeded; one PR per application and stage, each merged once; no duplicate comment; every values.yaml holds its run's tag"
                            if not s["problems"] else "**PROBLEMS**: " + "; ".join(s["problems"][:20])))
        targets = [f"no duplicates / all complete {ok(not s['problems'])}", f"peak RSS <= 150 MB per process {ok(g['peak_rss_kb_max'] <= 150 * 1024)} ({g['peak_rss_kb_max']/1024:.1f} MB)"]
        if "ratio" in s:
            strict = min(s['ratio'], s['ratio_drained'])  # judged on the later of the two ends
            targets.insert(0, f">= 70% of the floor's rate {ok(strict >= 0.7)} ({s['ratio']*100:.0f}% to the last run's end, {s['ratio_drained']*100:.0f}% to the last side effect)")
        print("targets: " + "; ".join(targets))
if "error" in d:
    print("\nERROR: " + d["error"])
PY
exit $status
