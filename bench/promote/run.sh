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
#
# Usage: bench/promote/run.sh            (from anywhere; needs node 20 + npm ci, git, lighttpd, python3)
# Environment:
#   TOLLGATE_BIN=build/service/tollgate   the binary under test (no build is done here)
#   PARTS="latency throughput"  RUNS=30 (latency runs)  APPS=200 (throughput pipelines)
#   WORKERS=4 (tollgate's engine.workers and the floor's concurrency)  TIMEOUT=900 (s, throughput)
#   NO_FLOOR=1 (skip the floor)  KEEP=1 (keep the temp dirs)  OUT=file (also write the JSON there)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=${TOLLGATE_BIN:-build/service/tollgate}
case $bin in /*) ;; *) bin=$root/$bin ;; esac
[ -x "$bin" ] || { echo "run.sh: $bin is not an executable (set TOLLGATE_BIN)"; exit 1; }
[ -d node_modules/yaml ] || { echo "run.sh: node_modules is missing: run npm ci"; exit 1; }

export TOLLGATE_BIN=$bin RUNS=${RUNS:-30} APPS=${APPS:-200} WORKERS=${WORKERS:-4} PARTS=${PARTS:-"latency throughput"}
out=$(mktemp /tmp/tollgate-bench-promote.XXXXXX.json)
trap 'rm -f "$out"' EXIT

echo "machine: $(nproc) cores; $(free -g | awk '/^Mem:/ {print $2 " GiB, " $7 " GiB available"}'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "git $(git --version | awk '{print $3}'), $(lighttpd -v 2>/dev/null | head -1 | awk '{print $1}'), node $(node --version)"
echo "tollgate: $bin ($(stat -c %y "$bin" | cut -d. -f1)); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "parts: $PARTS; RUNS=$RUNS APPS=$APPS WORKERS=$WORKERS"
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
    t = d["throughput"]; g = t["tollgate"]
    print(f"\n## throughput ({t['apps']} pipelines x 3 stages = {t['stages']} stages, {t['workers']} workers)\n")
    print("| | seconds | stages/min | peak RSS MB | CPU s | API requests | host CPU s (node + lighttpd + git) | of which node / git | load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| tollgate | {g['seconds']} | {g['stages_per_min']} | {g['peak_rss_kb']/1024:.1f} | {g['cpu_s']} | {g['api_requests']} | {g.get('host_cpu_s', '')} | {split(g)} | {g.get('load_avg', '')} |")
    for key, label in (("floor_before", "floor, just before"), ("floor_after", "floor, just after")):
        if key in t:
            f = t[key]
            print(f"| {label} (git CLI push + POST pulls + PUT merge) | {f['seconds']} | {f['stages_per_min']} | | | {f.get('api_requests', '')} | {f.get('host_cpu_s', '')} | {split(f)} | {f.get('load_avg', '')} |")
    if "floor" in t:
        print(f"| floor, mean | {t['floor']['seconds']} | {t['floor']['stages_per_min']} | | | | | | |")
    if "drained_seconds" in g:
        print(f"\ntollgate, until every side effect was done (status updates included): {g['drained_seconds']} s, {g['drained_stages_per_min']} stages/min"
              + (f", {t['ratio_drained']*100:.0f}% of the floor" if "ratio_drained" in t else ""))
    print(f"\ntollgate: {g['api_requests']} API requests, errors {g['api_errors']}, {g['comments']} comments")
    if "api_requests_per_stage" in g:
        print("API requests per stage: " + ", ".join(f"{k} {v}" for k, v in sorted(g["api_requests_per_stage"].items())))
    print("jobs: " + ", ".join(f"{j['kind']} {j['n']} (retried {j['retried']}, failed {j['failed']})" for j in g["jobs"]))
    print("checks: " + ("all runs succeeded; one PR per application and stage, each merged once; no duplicate comment; every values.yaml holds its run's tag"
                        if not t["problems"] else "**PROBLEMS**: " + "; ".join(t["problems"][:20])))
    targets = [f"no duplicates / all complete {ok(not t['problems'])}", f"peak RSS <= 150 MB {ok(g['peak_rss_kb'] <= 150 * 1024)} ({g['peak_rss_kb']/1024:.1f} MB)"]
    if "ratio" in t:
        strict = min(t['ratio'], t.get('ratio_drained', t['ratio']))  # judged on the later of the two ends
        targets.insert(0, f">= 70% of the floor's rate {ok(strict >= 0.7)} ({t['ratio']*100:.0f}% to the last run's end"
                          + (f", {t['ratio_drained']*100:.0f}% to the last side effect" if 'ratio_drained' in t else "") + ")")
    print("targets: " + "; ".join(targets))
if "error" in d:
    print("\nERROR: " + d["error"])
PY
exit $status
